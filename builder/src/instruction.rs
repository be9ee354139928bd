//! The typed form of a Dockerfile: one `Instruction` per instruction, its
//! arguments and flags parsed, its words not yet expanded.

use std::fmt;
use std::time::Duration;

use crate::mount::Mount;

/// One instruction, with where it is in the Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// First line (1-based).
    pub line: usize,
    /// Last line, including heredoc bodies.
    pub end_line: usize,
    /// The instruction as written, continuation lines joined, heredoc
    /// bodies left out.
    pub original: String,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    From(From),
    Run(Run),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Shell(Vec<String>),
    Label(Vec<KeyValue>),
    Env(Vec<KeyValue>),
    /// Port words as written; expansion turns them into `port/proto` each.
    Expose(Vec<String>),
    Add(Copy),
    Copy(Copy),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Arg(Vec<ArgDecl>),
    Onbuild(Box<Instruction>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    Maintainer(String),
}

impl Command {
    /// The instruction's keyword, upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::From(_) => "FROM",
            Command::Run(_) => "RUN",
            Command::Cmd(_) => "CMD",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Shell(_) => "SHELL",
            Command::Label(_) => "LABEL",
            Command::Env(_) => "ENV",
            Command::Expose(_) => "EXPOSE",
            Command::Add(_) => "ADD",
            Command::Copy(_) => "COPY",
            Command::Volume(_) => "VOLUME",
            Command::User(_) => "USER",
            Command::Workdir(_) => "WORKDIR",
            Command::Arg(_) => "ARG",
            Command::Onbuild(_) => "ONBUILD",
            Command::StopSignal(_) => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Maintainer(_) => "MAINTAINER",
        }
    }

    /// Whether the instruction changes the filesystem (one layer each);
    /// the others change only the image config.
    pub fn changes_filesystem(&self) -> bool {
        matches!(self, Command::Run(_) | Command::Add(_) | Command::Copy(_))
    }
}

/// `FROM [--platform=p] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    pub image: String,
    pub platform: Option<String>,
    /// The stage name, lower-cased as BuildKit stores it.
    pub name: Option<String>,
}

/// Exec form (JSON array) or shell form (a string for the SHELL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    Exec(Vec<String>),
    Shell(String),
}

impl CommandLine {
    /// The argv to run: exec form as is, shell form through `shell`.
    pub fn argv(&self, shell: &[String]) -> Vec<String> {
        match self {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
        }
    }
}

/// A here-document attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter, quotes removed; also the file name for COPY/ADD.
    pub name: String,
    /// The body as written, every line ending in `\n`.
    pub content: String,
    /// False when the delimiter was quoted: no expansion of the body.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body and the delimiter.
    pub chomp: bool,
    /// `3<<EOF`: the file descriptor, when given.
    pub fd: Option<u32>,
}

impl Heredoc {
    /// The body with `<<-` applied.
    pub fn data(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Sandbox,
    Insecure,
}

/// `RUN [--mount=...]... [--network=...] [--security=...] command`.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub command: CommandLine,
    pub heredocs: Vec<Heredoc>,
    pub mounts: Vec<Mount>,
    /// The `--mount` values as written, for expansion.
    pub mount_specs: Vec<String>,
    pub network: Option<Network>,
    pub security: Option<Security>,
}

/// What a RUN executes, heredocs resolved as BuildKit does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunScript {
    /// Exec form: this argv, no shell.
    Exec(Vec<String>),
    /// Run this text with the stage's SHELL (`shell... text`).
    Shell(String),
    /// `RUN <<EOF` whose body starts with `#!`: write the body to a file
    /// (mode 0755) and execute that file.
    File { name: String, content: String },
}

impl Run {
    pub fn script(&self) -> RunScript {
        let cmd = match &self.command {
            CommandLine::Exec(v) => return RunScript::Exec(v.clone()),
            CommandLine::Shell(s) => s,
        };
        if self.heredocs.is_empty() {
            return RunScript::Shell(cmd.clone());
        }
        if crate::parser::is_single_heredoc(cmd.trim()) {
            let doc = &self.heredocs[0];
            let data = doc.data();
            if data.starts_with("#!") {
                return RunScript::File {
                    name: doc.name.clone(),
                    content: data,
                };
            }
            return RunScript::Shell(data);
        }
        // Anything else: hand the shell the heredocs as a shell would read
        // them from a script.
        let mut full = cmd.clone();
        for doc in &self.heredocs {
            full.push('\n');
            full.push_str(&doc.content);
            full.push_str(&doc.name);
        }
        RunScript::Shell(full)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// The default as written (expanded when the ARG is reached).
    pub default: Option<String>,
}

/// `--chmod`: octal bits, or a symbolic mode (`u=rwx,go=rx`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    Octal(u32),
    Symbolic(String),
}

/// COPY and ADD (flags not valid for one stay at their defaults).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Copy {
    /// Source paths, URLs or globs (heredoc sources are in `inline`).
    pub sources: Vec<String>,
    /// Heredoc sources: files created with the heredoc's name and body.
    pub inline: Vec<Heredoc>,
    pub dest: String,
    /// COPY `--from`: a stage name, a stage index or an image.
    pub from: Option<String>,
    pub chown: Option<String>,
    /// As written; [`Copy::chmod_bits`] validates after expansion.
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    /// ADD `--checksum`.
    pub checksum: Option<String>,
    /// ADD `--keep-git-dir`.
    pub keep_git_dir: bool,
}

impl Copy {
    pub fn chmod_bits(&self) -> Result<Option<Chmod>, String> {
        self.chmod.as_deref().map(parse_chmod).transpose()
    }
}

pub(crate) fn parse_chmod(s: &str) -> Result<Chmod, String> {
    if !s.is_empty() && s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        let bits = u32::from_str_radix(s, 8).map_err(|e| format!("invalid chmod {s}: {e}"))?;
        if bits > 0o7777 {
            return Err(format!("invalid chmod {s}: out of range"));
        }
        return Ok(Chmod::Octal(bits));
    }
    let clause_ok = |c: &str| {
        let rest = c.trim_start_matches(['u', 'g', 'o', 'a']);
        let mut chars = rest.chars();
        matches!(chars.next(), Some('+' | '-' | '=')) && chars.all(|ch| "rwxXst+-=".contains(ch))
    };
    if !s.is_empty() && s.split(',').all(clause_ok) {
        return Ok(Chmod::Symbolic(s.to_string()));
    }
    Err(format!("invalid chmod {s:?}: neither octal nor symbolic"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    Check {
        test: CommandLine,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

impl Healthcheck {
    /// The image config's `Healthcheck.Test`.
    pub fn test(&self) -> Vec<String> {
        match self {
            Healthcheck::None => vec!["NONE".into()],
            Healthcheck::Check {
                test: CommandLine::Exec(v),
                ..
            } => std::iter::once("CMD".to_string())
                .chain(v.iter().cloned())
                .collect(),
            Healthcheck::Check {
                test: CommandLine::Shell(s),
                ..
            } => vec!["CMD-SHELL".into(), s.clone()],
        }
    }
}

/// A port from EXPOSE: one port or a range, and its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
    pub proto: Proto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        })
    }
}

impl PortRange {
    /// `80`, `80/udp`, `8000-8010/tcp`.
    pub fn parse(s: &str) -> Result<PortRange, String> {
        let (ports, proto) = match s.split_once('/') {
            Some((p, proto)) => (p, proto),
            None => (s, "tcp"),
        };
        let proto = match proto.to_ascii_lowercase().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "sctp" => Proto::Sctp,
            other => return Err(format!("invalid proto: {other}")),
        };
        let port = |p: &str| -> Result<u16, String> {
            p.parse::<u16>()
                .map_err(|_| format!("invalid containerPort: {s}"))
        };
        let (start, end) = match ports.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(ports)?, port(ports)?),
        };
        if end < start {
            return Err(format!("invalid range specified for container port: {s}"));
        }
        Ok(PortRange { start, end, proto })
    }

    /// The image config keys, one per port: `80/tcp`.
    pub fn keys(&self) -> Vec<String> {
        (self.start..=self.end)
            .map(|p| format!("{p}/{}", self.proto))
            .collect()
    }
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).expect("strings serialize")
}

fn duration_text(d: &Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The canonical text of an instruction: what history shows and what the
/// cache key hashes, flags in a fixed order.
impl fmt::Display for Instruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.command, f)
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandLine::Exec(v) => f.write_str(&json_list(v)),
            CommandLine::Shell(s) => f.write_str(s),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.keyword())?;
        match self {
            Command::From(from) => {
                if let Some(p) = &from.platform {
                    write!(f, " --platform={p}")?;
                }
                write!(f, " {}", from.image)?;
                if let Some(n) = &from.name {
                    write!(f, " AS {n}")?;
                }
            }
            Command::Run(run) => {
                for m in &run.mounts {
                    write!(f, " --mount={m}")?;
                }
                if let Some(n) = run.network {
                    write!(f, " --network={}", format!("{n:?}").to_lowercase())?;
                }
                if let Some(s) = run.security {
                    write!(f, " --security={}", format!("{s:?}").to_lowercase())?;
                }
                write!(f, " {}", run.command)?;
                for doc in &run.heredocs {
                    write!(f, "\n{}{}", doc.content, doc.name)?;
                }
            }
            Command::Cmd(c) | Command::Entrypoint(c) => write!(f, " {c}")?,
            Command::Shell(v) => write!(f, " {}", json_list(v))?,
            Command::Label(kvs) | Command::Env(kvs) => {
                for kv in kvs {
                    write!(
                        f,
                        " {}={}",
                        kv.key,
                        serde_json::Value::from(kv.value.clone())
                    )?;
                }
            }
            Command::Expose(v) | Command::Volume(v) => write!(f, " {}", v.join(" "))?,
            Command::Add(c) | Command::Copy(c) => {
                if let Some(x) = &c.from {
                    write!(f, " --from={x}")?;
                }
                if let Some(x) = &c.chown {
                    write!(f, " --chown={x}")?;
                }
                if let Some(x) = &c.chmod {
                    write!(f, " --chmod={x}")?;
                }
                if c.link {
                    write!(f, " --link")?;
                }
                if c.parents {
                    write!(f, " --parents")?;
                }
                for x in &c.exclude {
                    write!(f, " --exclude={x}")?;
                }
                if let Some(x) = &c.checksum {
                    write!(f, " --checksum={x}")?;
                }
                if c.keep_git_dir {
                    write!(f, " --keep-git-dir")?;
                }
                for s in &c.sources {
                    write!(f, " {s}")?;
                }
                for doc in &c.inline {
                    write!(f, " <<{}", doc.name)?;
                }
                write!(f, " {}", c.dest)?;
                for doc in &c.inline {
                    write!(f, "\n{}{}", doc.data(), doc.name)?;
                }
            }
            Command::User(s)
            | Command::Workdir(s)
            | Command::StopSignal(s)
            | Command::Maintainer(s) => write!(f, " {s}")?,
            Command::Arg(args) => {
                for a in args {
                    match &a.default {
                        Some(d) => write!(f, " {}={d}", a.name)?,
                        None => write!(f, " {}", a.name)?,
                    }
                }
            }
            Command::Onbuild(ins) => write!(f, " {ins}")?,
            Command::Healthcheck(Healthcheck::None) => write!(f, " NONE")?,
            Command::Healthcheck(Healthcheck::Check {
                test,
                interval,
                timeout,
                start_period,
                start_interval,
                retries,
            }) => {
                for (flag, d) in [
                    ("interval", interval),
                    ("timeout", timeout),
                    ("start-period", start_period),
                    ("start-interval", start_interval),
                ] {
                    if let Some(d) = d {
                        write!(f, " --{flag}={}", duration_text(d))?;
                    }
                }
                if let Some(r) = retries {
                    write!(f, " --retries={r}")?;
                }
                write!(f, " CMD {test}")?;
            }
        }
        Ok(())
    }
}
