//! From Dockerfile text to instructions: parser directives, continuation
//! lines, comments, heredocs, flags, JSON and shell forms, with BuildKit's
//! rules (frontend/dockerfile/parser and instructions, syntax 1.x).

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use crate::error::{DockerfileError, Result};
use crate::instruction::*;
use crate::mount::parse_mount;
use crate::shell::{NoEnv, expand_words};

/// The parser directives at the top of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=docker/dockerfile:1`: recorded; berth parses 1.x itself.
    pub syntax: Option<String>,
    /// `# escape=\` (default) or `` # escape=` ``.
    pub escape: char,
    pub check: Option<Check>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// `# check=skip=Rule1,Rule2;error=true`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Check {
    pub skip: Vec<String>,
    pub skip_all: bool,
    pub error: bool,
}

/// A parsed Dockerfile: the ARGs before the first FROM, then the stages.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// The name errors carry (`Dockerfile`, `build/app.Dockerfile`).
    pub file: String,
    pub directives: Directives,
    /// ARG instructions before the first FROM.
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
    /// Things BuildKit warns about (empty continuation lines), with lines.
    pub warnings: Vec<String>,
}

/// One build stage: its FROM and what follows up to the next FROM.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub index: usize,
    /// The `AS` name, lower case.
    pub name: Option<String>,
    /// The FROM instruction (its command is always `Command::From`).
    pub from: Instruction,
    pub instructions: Vec<Instruction>,
}

impl Stage {
    pub fn from(&self) -> &From {
        match &self.from.command {
            Command::From(f) => f,
            _ => unreachable!("a stage starts with FROM"),
        }
    }

    /// The name if it has one, else its index (as `--from` accepts it).
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.index.to_string())
    }
}

impl Dockerfile {
    pub fn stage_by_name(&self, name: &str) -> Option<&Stage> {
        let name = name.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(name.as_str()))
    }
}

/// Parse a whole Dockerfile and split it into stages.
pub fn parse(file: &str, text: &str) -> Result<Dockerfile> {
    let (directives, instructions, warnings) = parse_instructions(file, text)?;
    let err = |line, msg: String| DockerfileError::new(file, line, msg);
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in instructions {
        match &ins.command {
            Command::From(from) => {
                if let Some(name) = &from.name
                    && stages.iter().any(|s| s.name.as_ref() == Some(name))
                {
                    return Err(err(ins.line, format!("duplicate stage name {name:?}")));
                }
                stages.push(Stage {
                    index: stages.len(),
                    name: from.name.clone(),
                    from: ins,
                    instructions: Vec::new(),
                });
            }
            _ => match stages.last_mut() {
                Some(stage) => stage.instructions.push(ins),
                None if matches!(ins.command, Command::Arg(_)) => global_args.push(ins),
                None => {
                    return Err(err(
                        ins.line,
                        format!(
                            "{} before the first FROM: only ARG may come first",
                            ins.command.keyword()
                        ),
                    ));
                }
            },
        }
    }
    if stages.is_empty() {
        return Err(err(
            0,
            "no FROM instruction: a Dockerfile needs at least one stage".into(),
        ));
    }
    Ok(Dockerfile {
        file: file.to_string(),
        directives,
        global_args,
        stages,
        warnings,
    })
}

static DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$").expect("valid regex")
});

struct DirectiveParser {
    directives: Directives,
    done: bool,
    seen: Vec<String>,
}

impl DirectiveParser {
    fn line(&mut self, line: &str) -> std::result::Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some(c) = DIRECTIVE.captures(line) else {
            // A comment that is not a directive, an empty line or an
            // instruction: no directives after it.
            self.done = true;
            return Ok(());
        };
        let key = c[1].to_ascii_lowercase();
        let value = c[2].to_string();
        if !["syntax", "escape", "check"].contains(&key.as_str()) {
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&key) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        self.seen.push(key.clone());
        match key.as_str() {
            "escape" => {
                self.directives.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(format!(
                            "invalid escape token '{value}' does not match ` or \\"
                        ));
                    }
                }
            }
            "syntax" => self.directives.syntax = Some(value),
            _ => self.directives.check = Some(parse_check(&value)?),
        }
        Ok(())
    }
}

fn parse_check(v: &str) -> std::result::Result<Check, String> {
    let mut check = Check::default();
    for part in v.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, val) = part
            .split_once('=')
            .ok_or_else(|| format!("invalid check directive {part:?}: want key=value"))?;
        match k.trim().to_ascii_lowercase().as_str() {
            "skip" => {
                for rule in val.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                    if rule.eq_ignore_ascii_case("all") {
                        check.skip_all = true;
                    } else {
                        check.skip.push(rule.to_string());
                    }
                }
            }
            "error" => {
                check.error = match val.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(format!(
                            "invalid check directive: error={val} is not a boolean"
                        ));
                    }
                }
            }
            other => return Err(format!("invalid check directive: unknown key {other:?}")),
        }
    }
    Ok(check)
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Strip a trailing escape character (and blanks after it): the line
/// continues on the next one.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(s) => (s, false),
        None => (line, true),
    }
}

/// Parse the instructions, without splitting them into stages.
pub fn parse_instructions(
    file: &str,
    text: &str,
) -> Result<(Directives, Vec<Instruction>, Vec<String>)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut dp = DirectiveParser {
        directives: Directives::default(),
        done: false,
        seen: Vec::new(),
    };
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let first = lines[i];
        i += 1;
        let start_line = i;
        let trimmed = first.trim_start();
        dp.line(trimmed)
            .map_err(|e| DockerfileError::new(file, start_line, e))?;
        if is_comment(trimmed) {
            continue;
        }
        let escape = dp.directives.escape;
        let (head, mut ended) = trim_continuation(trimmed, escape);
        if ended && head.is_empty() {
            continue;
        }
        let mut line = head.to_string();
        let mut empty_continuation = false;
        while !ended && i < lines.len() {
            let next = lines[i];
            i += 1;
            if is_comment(next) {
                continue;
            }
            if next.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, e) = trim_continuation(next, escape);
            line.push_str(part);
            ended = e;
        }
        if empty_continuation {
            warnings.push(format!(
                "{file}:{start_line}: empty continuation line (an error in a future Dockerfile syntax)"
            ));
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut end_line = i;
        let err = |msg: String| DockerfileError::new(file, start_line, msg);
        let (keyword, flags, rest) = split_command(&line).map_err(err)?;
        let kw = keyword.to_ascii_uppercase();
        let mut heredocs = Vec::new();
        if matches!(kw.as_str(), "RUN" | "COPY" | "ADD")
            && line.contains("<<")
            && parse_json(&rest).is_err()
        {
            for (name, expand, chomp, fd) in heredocs_in(&line) {
                let mut content = String::new();
                let mut terminated = false;
                while i < lines.len() {
                    let body = lines[i];
                    i += 1;
                    let candidate = if chomp {
                        body.trim_start_matches('\t')
                    } else {
                        body
                    };
                    if candidate == name {
                        terminated = true;
                        break;
                    }
                    content.push_str(body);
                    content.push('\n');
                }
                end_line = i;
                if !terminated {
                    return Err(err(format!(
                        "unterminated heredoc {name:?}: no line {name:?} before the end of the file"
                    )));
                }
                heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                    chomp,
                    fd,
                });
            }
        }
        let command = build_command(&kw, &keyword, &flags, &rest, heredocs, escape).map_err(err)?;
        out.push(Instruction {
            line: start_line,
            end_line,
            original: line.trim().to_string(),
            command,
        });
    }
    if out.is_empty() {
        return Err(DockerfileError::new(file, 0, "file with no instructions"));
    }
    Ok((dp.directives, out, warnings))
}

/// Parse one instruction line on its own, as an ONBUILD trigger taken
/// from a base image's config is parsed when it fires.
pub fn parse_line(file: &str, line: usize, text: &str, escape: char) -> Result<Instruction> {
    let err = |msg: String| DockerfileError::new(file, line, msg);
    let (keyword, flags, rest) = split_command(text).map_err(err)?;
    let command = build_command(
        &keyword.to_ascii_uppercase(),
        &keyword,
        &flags,
        &rest,
        Vec::new(),
        escape,
    )
    .map_err(err)?;
    Ok(Instruction {
        line,
        end_line: line,
        original: text.trim().to_string(),
        command,
    })
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r')
}

/// The keyword, its `--flags`, and the rest of the line.
fn split_command(line: &str) -> std::result::Result<(String, Vec<String>, String), String> {
    let line = line.trim();
    let (kw, args) = match line.find(is_blank) {
        Some(p) => (&line[..p], line[p..].trim_start_matches(is_blank)),
        None => (line, ""),
    };
    let (rest, flags) = extract_flags(args);
    Ok((kw.to_string(), flags, rest.trim().to_string()))
}

/// Leading words that start with `--` are flags (quotes and backslashes
/// inside them processed); a lone `--` ends them.
fn extract_flags(line: &str) -> (&str, Vec<String>) {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut flags = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && chars[i].1.is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            return ("", flags);
        }
        if !(chars[i].1 == '-' && chars.get(i + 1).map(|c| c.1) == Some('-')) {
            return (&line[chars[i].0..], flags);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i].1;
            match quote {
                None if c.is_whitespace() => break,
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if let Some(&(_, n)) = chars.get(i + 1) {
                        word.push(n);
                        i += 1;
                    }
                }
                _ => word.push(c),
            }
            i += 1;
        }
        if word == "--" {
            let at = chars.get(i).map(|c| c.0).unwrap_or(line.len());
            return (&line[at..], flags);
        }
        flags.push(word);
    }
}

/// Split on blanks, keeping quotes and escapes in the words (ENV, LABEL,
/// ARG): expansion removes them later.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match quote {
            None => {
                if c.is_whitespace() {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                    continue;
                }
                in_word = true;
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
                if c == escape {
                    if i == chars.len() {
                        continue;
                    }
                    word.push(c);
                    word.push(chars[i]);
                    i += 1;
                    continue;
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                } else if c == escape && q != '\'' {
                    if i == chars.len() {
                        quote = None;
                        continue;
                    }
                    word.push(c);
                    word.push(chars[i]);
                    i += 1;
                    continue;
                }
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Split a line the way a shell reads words, keeping quotes and
/// backslashes: heredoc markers are looked for in these.
fn raw_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match quote {
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                continue;
            }
            None if c == '\'' || c == '"' => quote = Some(c),
            Some(q) if c == q => quote = None,
            Some('\'') => {}
            _ if c == '\\' => {
                word.push(c);
                if let Some(n) = chars.next() {
                    word.push(n);
                }
                continue;
            }
            _ => {}
        }
        word.push(c);
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// `[n]<<[-]WORD`: (fd, chomp, WORD as written).
pub(crate) fn heredoc_word(word: &str) -> Option<(Option<u32>, bool, &str)> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let fd = word[..digits].parse().ok();
    Some((fd, chomp, rest))
}

/// Whether `s` is one heredoc marker and nothing else (`<<EOF`, not
/// `<<EOF bash`).
pub(crate) fn is_single_heredoc(s: &str) -> bool {
    heredoc_word(s)
        .and_then(|(_, _, raw)| heredoc_name(raw))
        .is_some()
}

/// The delimiter's name with quotes removed, and whether the body expands
/// (no part of the delimiter was quoted).
fn heredoc_name(raw: &str) -> Option<(String, bool)> {
    let words = expand_words(raw, &NoEnv, '\\').ok()?;
    let [name] = words.as_slice() else {
        return None;
    };
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Some((name.clone(), quotes(name) == quotes(raw)))
}

/// The heredocs a line opens, in order: (name, expand, chomp, fd).
fn heredocs_in(line: &str) -> Vec<(String, bool, bool, Option<u32>)> {
    raw_words(line)
        .iter()
        .filter_map(|w| {
            let (fd, chomp, raw) = heredoc_word(w)?;
            let (name, expand) = heredoc_name(raw)?;
            Some((name, expand, chomp, fd))
        })
        .collect()
}

/// A JSON array of strings; `Err(None)` when the text is not JSON at all
/// (then it is shell form), `Err(Some(msg))` when it is JSON but not an
/// array of strings.
fn parse_json(rest: &str) -> std::result::Result<Vec<String>, Option<String>> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Err(None);
    }
    let v: serde_json::Value = serde_json::from_str(rest).map_err(|_| None)?;
    let arr = v.as_array().ok_or(None)?;
    arr.iter()
        .map(|e| {
            e.as_str().map(str::to_string).ok_or_else(|| {
                Some(
                    "when using JSON array syntax, arrays must be comprised of strings only".into(),
                )
            })
        })
        .collect()
}

/// JSON if it parses as an array of strings, else shell form.
fn maybe_json(rest: &str) -> std::result::Result<CommandLine, String> {
    match parse_json(rest) {
        Ok(v) => Ok(CommandLine::Exec(v)),
        Err(Some(e)) => Err(e),
        Err(None) => Ok(CommandLine::Shell(rest.to_string())),
    }
}

/// JSON list, else words split on blanks (no quote handling: that is what
/// the JSON form is for).
fn maybe_json_list(rest: &str) -> std::result::Result<(Vec<String>, bool), String> {
    match parse_json(rest) {
        Ok(v) => Ok((v, true)),
        Err(Some(e)) => Err(e),
        Err(None) => Ok((
            rest.split(is_blank)
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect(),
            false,
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum FlagKind {
    Bool,
    Str,
    List,
}

#[derive(Debug, Clone)]
enum FlagValue {
    Bool(bool),
    Str(String),
    List(Vec<String>),
}

struct Flags(HashMap<&'static str, FlagValue>);

impl Flags {
    fn parse(
        kw: &str,
        raw: &[String],
        spec: &[(&'static str, FlagKind)],
    ) -> std::result::Result<Flags, String> {
        let mut out: HashMap<&'static str, FlagValue> = HashMap::new();
        for arg in raw {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(format!("flag should start with --: {arg}"));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(key, kind)) = spec.iter().find(|(k, _)| *k == name) else {
                return Err(format!("unknown flag --{name} for {kw}"));
            };
            if kind != FlagKind::List && out.contains_key(key) {
                return Err(format!("duplicate flag specified: --{name}"));
            }
            match kind {
                FlagKind::Bool => {
                    let b = match value.map(str::to_ascii_lowercase).as_deref() {
                        None | Some("true") => true,
                        Some("false") => false,
                        Some("") => return Err(format!("missing a value on flag: --{name}")),
                        Some(_) => {
                            return Err(format!(
                                "expecting boolean value for flag --{name}, not: {}",
                                value.unwrap_or_default()
                            ));
                        }
                    };
                    out.insert(key, FlagValue::Bool(b));
                }
                FlagKind::Str => {
                    let v = value.ok_or_else(|| format!("missing a value on flag: --{name}"))?;
                    out.insert(key, FlagValue::Str(v.to_string()));
                }
                FlagKind::List => {
                    let v = value.ok_or_else(|| format!("missing a value on flag: --{name}"))?;
                    match out.entry(key).or_insert(FlagValue::List(Vec::new())) {
                        FlagValue::List(l) => l.push(v.to_string()),
                        _ => unreachable!("list flags hold lists"),
                    }
                }
            }
        }
        Ok(Flags(out))
    }

    fn str(&self, k: &str) -> Option<String> {
        match self.0.get(k) {
            Some(FlagValue::Str(s)) => Some(s.clone()),
            _ => None,
        }
    }

    fn bool(&self, k: &str) -> bool {
        matches!(self.0.get(k), Some(FlagValue::Bool(true)))
    }

    fn list(&self, k: &str) -> Vec<String> {
        match self.0.get(k) {
            Some(FlagValue::List(l)) => l.clone(),
            _ => Vec::new(),
        }
    }
}

fn flag_spec(kw: &str) -> &'static [(&'static str, FlagKind)] {
    use FlagKind::*;
    match kw {
        "FROM" => &[("platform", Str)],
        "RUN" => &[("mount", List), ("network", Str), ("security", Str)],
        "COPY" => &[
            ("from", Str),
            ("chown", Str),
            ("chmod", Str),
            ("link", Bool),
            ("parents", Bool),
            ("exclude", List),
        ],
        "ADD" => &[
            ("chown", Str),
            ("chmod", Str),
            ("link", Bool),
            ("checksum", Str),
            ("keep-git-dir", Bool),
            ("exclude", List),
        ],
        "HEALTHCHECK" => &[
            ("interval", Str),
            ("timeout", Str),
            ("start-period", Str),
            ("start-interval", Str),
            ("retries", Str),
        ],
        _ => &[],
    }
}

static STAGE_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9\-_.]*$").expect("valid regex"));

fn build_command(
    kw: &str,
    written: &str,
    raw_flags: &[String],
    rest: &str,
    heredocs: Vec<Heredoc>,
    escape: char,
) -> std::result::Result<Command, String> {
    const KNOWN: [&str; 18] = [
        "FROM",
        "RUN",
        "CMD",
        "ENTRYPOINT",
        "SHELL",
        "LABEL",
        "ENV",
        "EXPOSE",
        "ADD",
        "COPY",
        "VOLUME",
        "USER",
        "WORKDIR",
        "ARG",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "MAINTAINER",
    ];
    if !KNOWN.contains(&kw) {
        return Err(format!("unknown instruction: {written}"));
    }
    let flags = Flags::parse(kw, raw_flags, flag_spec(kw))?;
    let need_one = |what: &str| -> std::result::Result<String, String> {
        if rest.is_empty() {
            Err(format!("{what} requires exactly one argument"))
        } else {
            Ok(rest.to_string())
        }
    };
    let at_least_one = || -> std::result::Result<(), String> {
        if rest.is_empty() {
            Err(format!("{kw} requires at least one argument"))
        } else {
            Ok(())
        }
    };
    Ok(match kw {
        "FROM" => {
            let words: Vec<&str> = rest.split(is_blank).filter(|w| !w.is_empty()).collect();
            let (image, name) = match words.as_slice() {
                [image] => (image.to_string(), None),
                [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    let name = name.to_ascii_lowercase();
                    if !STAGE_NAME.is_match(&name) {
                        return Err(format!(
                            "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                        ));
                    }
                    (image.to_string(), Some(name))
                }
                _ => return Err("FROM requires either one or three arguments".into()),
            };
            Command::From(From {
                image,
                platform: flags.str("platform"),
                name,
            })
        }
        "RUN" => {
            at_least_one()?;
            let command = maybe_json(rest)?;
            let mount_specs = flags.list("mount");
            let mounts = mount_specs
                .iter()
                .map(|m| parse_mount(m, None).map_err(|e| format!("--mount={m}: {e}")))
                .collect::<std::result::Result<_, _>>()?;
            let network = flags
                .str("network")
                .map(|n| match n.as_str() {
                    "default" => Ok(Network::Default),
                    "none" => Ok(Network::None),
                    "host" => Ok(Network::Host),
                    _ => Err(format!(
                        "unsupported network mode {n:?}: want default, none or host"
                    )),
                })
                .transpose()?;
            let security = flags
                .str("security")
                .map(|s| match s.as_str() {
                    "sandbox" => Ok(Security::Sandbox),
                    "insecure" => Ok(Security::Insecure),
                    _ => Err(format!(
                        "unsupported security mode {s:?}: want sandbox or insecure"
                    )),
                })
                .transpose()?;
            Command::Run(Run {
                command,
                heredocs,
                mounts,
                mount_specs,
                network,
                security,
            })
        }
        "CMD" | "ENTRYPOINT" => {
            at_least_one()?;
            let c = maybe_json(rest)?;
            if kw == "CMD" {
                Command::Cmd(c)
            } else {
                Command::Entrypoint(c)
            }
        }
        "SHELL" => match parse_json(rest) {
            Ok(v) if v.is_empty() => return Err("SHELL requires at least one argument".into()),
            Ok(v) => Command::Shell(v),
            Err(Some(e)) => return Err(e),
            Err(None) if rest.is_empty() => {
                return Err("SHELL requires at least one argument".into());
            }
            Err(None) => {
                return Err(format!(
                    "SHELL requires the arguments to be in JSON form, not {rest:?}"
                ));
            }
        },
        "LABEL" | "ENV" => {
            at_least_one()?;
            let kvs = parse_name_values(rest, kw, escape)?;
            if kw == "LABEL" {
                Command::Label(kvs)
            } else {
                Command::Env(kvs)
            }
        }
        "EXPOSE" => {
            at_least_one()?;
            Command::Expose(
                rest.split(is_blank)
                    .filter(|w| !w.is_empty())
                    .map(str::to_string)
                    .collect(),
            )
        }
        "ADD" | "COPY" => {
            let (args, json) = maybe_json_list(rest)?;
            if args.len() < 2 {
                return Err(format!(
                    "{kw} requires at least two arguments, but only {} provided: the destination could not be determined",
                    if args.is_empty() {
                        "none was"
                    } else {
                        "one was"
                    }
                ));
            }
            let (dest, srcs) = args.split_last().expect("two or more");
            if !json && heredoc_word(dest).is_some() {
                return Err(format!("{kw} cannot accept a heredoc as a destination"));
            }
            let mut sources = Vec::new();
            let mut inline = Vec::new();
            for s in srcs {
                match (
                    json,
                    heredoc_word(s).and_then(|(_, _, raw)| heredoc_name(raw)),
                ) {
                    (false, Some((name, _))) => {
                        let doc = heredocs
                            .iter()
                            .find(|d| d.name == name)
                            .ok_or_else(|| format!("{kw}: no body for heredoc {name:?}"))?;
                        inline.push(doc.clone());
                    }
                    _ => sources.push(s.clone()),
                }
            }
            let copy = Copy {
                sources,
                inline,
                dest: dest.clone(),
                from: flags.str("from"),
                chown: flags.str("chown"),
                chmod: flags.str("chmod"),
                link: flags.bool("link"),
                parents: flags.bool("parents"),
                exclude: flags.list("exclude"),
                checksum: flags.str("checksum"),
                keep_git_dir: flags.bool("keep-git-dir"),
            };
            if let Some(c) = &copy.chmod
                && !c.contains('$')
            {
                parse_chmod(c)?;
            }
            if kw == "ADD" {
                Command::Add(copy)
            } else {
                Command::Copy(copy)
            }
        }
        "VOLUME" => {
            at_least_one()?;
            let (v, _) = maybe_json_list(rest)?;
            if v.is_empty() || v.iter().any(|s| s.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            Command::Volume(v)
        }
        "USER" => Command::User(need_one("USER")?),
        "WORKDIR" => Command::Workdir(need_one("WORKDIR")?),
        "STOPSIGNAL" => Command::StopSignal(need_one("STOPSIGNAL")?),
        "MAINTAINER" => Command::Maintainer(need_one("MAINTAINER")?),
        "ARG" => {
            at_least_one()?;
            let mut args = Vec::new();
            for w in parse_words(rest, escape) {
                let (name, default) = match w.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (w.clone(), None),
                };
                if name.is_empty() {
                    return Err("ARG names can not be blank".into());
                }
                args.push(ArgDecl { name, default });
            }
            Command::Arg(args)
        }
        "ONBUILD" => {
            at_least_one()?;
            let (sub_kw, sub_flags, sub_rest) = split_command(rest)?;
            let sub = sub_kw.to_ascii_uppercase();
            match sub.as_str() {
                "ONBUILD" => {
                    return Err("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into());
                }
                "FROM" | "MAINTAINER" => {
                    return Err(format!("{sub} isn't allowed as an ONBUILD trigger"));
                }
                _ => {}
            }
            let command = build_command(&sub, &sub_kw, &sub_flags, &sub_rest, Vec::new(), escape)?;
            Command::Onbuild(Box::new(Instruction {
                line: 0,
                end_line: 0,
                original: rest.to_string(),
                command,
            }))
        }
        "HEALTHCHECK" => {
            let (typ, after) = match rest.find(char::is_whitespace) {
                Some(p) => (&rest[..p], rest[p..].trim_start()),
                None => (rest, ""),
            };
            match typ.to_ascii_uppercase().as_str() {
                "" => return Err("HEALTHCHECK requires an argument: NONE or CMD".into()),
                "NONE" => {
                    if !after.is_empty() {
                        return Err("HEALTHCHECK NONE takes no arguments".into());
                    }
                    if !raw_flags.is_empty() {
                        return Err("HEALTHCHECK NONE takes no flags".into());
                    }
                    Command::Healthcheck(Healthcheck::None)
                }
                "CMD" => {
                    if after.is_empty() {
                        return Err("missing command after HEALTHCHECK CMD".into());
                    }
                    let test = maybe_json(after)?;
                    if matches!(&test, CommandLine::Exec(v) if v.is_empty()) {
                        return Err("missing command after HEALTHCHECK CMD".into());
                    }
                    let dur = |k: &str| -> std::result::Result<Option<Duration>, String> {
                        flags
                            .str(k)
                            .map(|v| health_duration(k, &v))
                            .transpose()
                            .map(Option::flatten)
                    };
                    let retries = flags
                        .str("retries")
                        .map(|r| {
                            r.parse::<i64>()
                                .map_err(|_| format!("--retries: {r:?} is not a number"))
                                .and_then(|n| {
                                    u32::try_from(n)
                                        .map_err(|_| format!("--retries cannot be negative ({n})"))
                                })
                        })
                        .transpose()?;
                    Command::Healthcheck(Healthcheck::Check {
                        test,
                        interval: dur("interval")?,
                        timeout: dur("timeout")?,
                        start_period: dur("start-period")?,
                        start_interval: dur("start-interval")?,
                        retries,
                    })
                }
                other => return Err(format!("unknown type {other:?} in HEALTHCHECK (try CMD)")),
            }
        }
        _ => unreachable!("keyword checked against KNOWN"),
    })
}

/// A HEALTHCHECK duration flag: zero means "the default" (None); anything
/// else must be at least 1ms.
fn health_duration(flag: &str, v: &str) -> std::result::Result<Option<Duration>, String> {
    let (negative, d) = parse_go_duration(v).map_err(|e| format!("--{flag}: {e}"))?;
    if d.is_zero() {
        return Ok(None);
    }
    if negative {
        return Err(format!("--{flag} cannot be negative: {v}"));
    }
    if d < Duration::from_millis(1) {
        return Err(format!("--{flag} cannot be less than 1ms: {v}"));
    }
    Ok(Some(d))
}

/// Go's `time.ParseDuration`: `300ms`, `1.5h`, `2h45m`, `-1s`, `0`.
pub fn parse_go_duration(s: &str) -> std::result::Result<(bool, Duration), String> {
    let bad = || format!("invalid duration {s:?}");
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok((negative, Duration::ZERO));
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {s:?}"))?;
        if n == 0 {
            return Err(bad());
        }
        let num: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => return Err(format!("unknown unit {other:?} in duration {s:?}")),
        };
        total += num * nanos;
        rest = &rest[u..];
    }
    Ok((negative, Duration::from_nanos(total.round() as u64)))
}

/// ENV and LABEL: `key value` (old form, one pair) or `k=v k2="v 2"`.
fn parse_name_values(
    rest: &str,
    kw: &str,
    escape: char,
) -> std::result::Result<Vec<KeyValue>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(format!("{kw} requires at least one argument"));
    };
    if !first.contains('=') {
        let Some(p) = rest.find(is_blank) else {
            return Err(format!("{kw} must have two arguments"));
        };
        let value = rest[p..].trim_start_matches(is_blank);
        return Ok(vec![KeyValue {
            key: rest[..p].to_string(),
            value: value.to_string(),
        }]);
    }
    words
        .iter()
        .map(|w| {
            let (k, v) = w.split_once('=').ok_or_else(|| {
                format!("syntax error - can't find = in {w:?}. Must be of the form: name=value")
            })?;
            if k.is_empty() {
                return Err(format!("{kw} names can not be blank"));
            }
            Ok(KeyValue {
                key: k.to_string(),
                value: v.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_extraction() {
        let (rest, flags) = extract_flags("--a=1 --b=\"x y\" -- --c d");
        assert_eq!(flags, vec!["--a=1", "--b=x y"]);
        assert_eq!(rest.trim(), "--c d");
        let (rest, flags) = extract_flags("--link src dst");
        assert_eq!(flags, vec!["--link"]);
        assert_eq!(rest, "src dst");
        let (rest, flags) = extract_flags("-x y");
        assert!(flags.is_empty());
        assert_eq!(rest, "-x y");
    }

    #[test]
    fn words_keep_quotes() {
        assert_eq!(
            parse_words(r#"a="b c" d=e\ f 'g h'"#, '\\'),
            vec![r#"a="b c""#, r"d=e\ f", "'g h'"]
        );
    }

    #[test]
    fn heredoc_words() {
        assert_eq!(heredoc_word("<<EOF"), Some((None, false, "EOF")));
        assert_eq!(heredoc_word("<<-EOF"), Some((None, true, "EOF")));
        assert_eq!(heredoc_word("3<<EOF"), Some((Some(3), false, "EOF")));
        assert_eq!(heredoc_word("<<"), None);
        assert_eq!(heredoc_word("a<<EOF"), None);
        assert_eq!(heredoc_name("\"EOF\""), Some(("EOF".into(), false)));
        assert_eq!(heredoc_name("'EOF'"), Some(("EOF".into(), false)));
        assert_eq!(heredoc_name("EOF"), Some(("EOF".into(), true)));
        assert_eq!(
            heredocs_in(r#"RUN cat <<A "<<B" <<-'C' > x"#),
            vec![
                ("A".into(), true, false, None),
                ("C".into(), false, true, None)
            ]
        );
    }

    #[test]
    fn go_durations() {
        let d = |s| parse_go_duration(s).unwrap().1;
        assert_eq!(d("30s"), Duration::from_secs(30));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("1.5h"), Duration::from_secs(5400));
        assert_eq!(d("300ms"), Duration::from_millis(300));
        assert_eq!(d("10us"), Duration::from_micros(10));
        assert_eq!(d("0"), Duration::ZERO);
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("5x").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("-2s").unwrap().0);
    }
}
