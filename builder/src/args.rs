//! ARG scoping: global ARGs before the first FROM, ARGs declared in a
//! stage, `--build-arg` overrides, the automatic platform ARGs, the
//! predefined proxy ARGs, and ENV winning over an ARG of the same name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::error::{DockerfileError, Result};
use crate::instruction::{Command, From, Instruction};
use crate::parser::Dockerfile;
use crate::shell::expand_word;

/// Build args usable without an ARG instruction; they reach RUN's
/// environment but never the image's history.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: String,
}

impl Platform {
    /// The machine we run on, in OCI's spelling (`linux/amd64`).
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", ""),
            "x86" => ("386", ""),
            "aarch64" => ("arm64", ""),
            "arm" => ("arm", "v7"),
            "powerpc64" => ("ppc64le", ""),
            "s390x" => ("s390x", ""),
            "riscv64" => ("riscv64", ""),
            other => (other, ""),
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            arch: arch.to_string(),
            variant: variant.to_string(),
        }
    }

    pub fn parse(s: &str) -> std::result::Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: String::new(),
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: variant.to_string(),
            }),
            _ => Err(format!("invalid platform {s:?}: want os/arch[/variant]")),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// What the caller of a build gives that the Dockerfile's words depend on.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `--build-arg name=value`.
    pub build_args: BTreeMap<String, String>,
    pub target_platform: Platform,
    pub build_platform: Platform,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            build_args: BTreeMap::new(),
            target_platform: Platform::host(),
            build_platform: Platform::host(),
        }
    }
}

impl BuildOptions {
    /// TARGETPLATFORM … BUILDVARIANT.
    pub fn platform_args(&self) -> Vec<(String, String)> {
        let (t, b) = (&self.target_platform, &self.build_platform);
        [
            ("TARGETPLATFORM", t.to_string()),
            ("TARGETOS", t.os.clone()),
            ("TARGETARCH", t.arch.clone()),
            ("TARGETVARIANT", t.variant.clone()),
            ("BUILDPLATFORM", b.to_string()),
            ("BUILDOS", b.os.clone()),
            ("BUILDARCH", b.arch.clone()),
            ("BUILDVARIANT", b.variant.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Proxy build args that were given.
    pub fn proxy_args(&self) -> Vec<(String, String)> {
        self.build_args
            .iter()
            .filter(|(k, _)| PROXY_ARGS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The global scope: the automatic platform ARGs and the ARGs declared
/// before the first FROM, with `--build-arg` applied. FROM lines expand in
/// it; stages see a global only when they redeclare it.
#[derive(Debug, Clone)]
pub struct GlobalScope {
    pub file: String,
    pub escape: char,
    /// In order; later entries win.
    pub values: Vec<(String, String)>,
    /// Global ARG names declared without a value and not given.
    pub unset: BTreeSet<String>,
}

impl GlobalScope {
    pub fn new(df: &Dockerfile, opts: &BuildOptions) -> Result<GlobalScope> {
        let escape = df.directives.escape;
        let mut values = opts.platform_args();
        let mut unset = BTreeSet::new();
        for ins in &df.global_args {
            let Command::Arg(args) = &ins.command else {
                continue;
            };
            for a in args {
                let v = match (opts.build_args.get(&a.name), &a.default) {
                    (Some(given), _) => Some(given.clone()),
                    (None, Some(d)) => Some(
                        expand_word(d, &values, escape)
                            .map_err(|e| DockerfileError::new(&df.file, ins.line, e))?,
                    ),
                    (None, None) => None,
                };
                match v {
                    Some(v) => {
                        unset.remove(&a.name);
                        values.push((a.name.clone(), v));
                    }
                    None => {
                        unset.insert(a.name.clone());
                    }
                }
            }
        }
        Ok(GlobalScope {
            file: df.file.clone(),
            escape,
            values,
            unset,
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A stage's FROM with image and `--platform` expanded.
    pub fn expand_from(&self, from: &Instruction) -> Result<From> {
        let expanded = from.expand(&self.values, self.escape, &self.file)?;
        match expanded.command {
            Command::From(f) => {
                if f.image.is_empty() {
                    return Err(DockerfileError::new(
                        &self.file,
                        from.line,
                        format!("base name ({}) should not be blank", original_base(from)),
                    ));
                }
                Ok(f)
            }
            _ => Err(DockerfileError::new(
                &self.file,
                from.line,
                "not a FROM instruction",
            )),
        }
    }
}

fn original_base(from: &Instruction) -> String {
    match &from.command {
        Command::From(f) => f.image.clone(),
        _ => String::new(),
    }
}

/// The variables of one stage as its instructions run: the executor
/// calls [`StageScope::step`] for each instruction, in order, and uses the
/// expanded instruction it returns.
#[derive(Debug, Clone)]
pub struct StageScope {
    file: String,
    escape: char,
    build_args: BTreeMap<String, String>,
    globals: Vec<(String, String)>,
    proxies: Vec<(String, String)>,
    /// ARGs declared in this stage (or its parent stage), in order, with
    /// their values (None: declared, no value).
    args: Vec<(String, Option<String>)>,
    /// The environment: the base image's, then ENV instructions.
    env: Vec<(String, String)>,
}

impl StageScope {
    /// A stage on an image whose config has `base_env` (`KEY=value`
    /// strings split in two).
    pub fn new(
        globals: &GlobalScope,
        opts: &BuildOptions,
        base_env: Vec<(String, String)>,
    ) -> Self {
        StageScope {
            file: globals.file.clone(),
            escape: globals.escape,
            build_args: opts.build_args.clone(),
            globals: globals.values.clone(),
            proxies: opts.proxy_args(),
            args: Vec::new(),
            env: base_env,
        }
    }

    /// A stage `FROM <parent stage>`: it starts with the parent's ENV and,
    /// as in BuildKit, the parent's ARGs.
    pub fn from_parent(parent: &StageScope) -> Self {
        parent.clone()
    }

    /// The words' environment: ARG values, overridden by ENV.
    pub fn expansion_env(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .collect();
        v.extend(self.env.iter().cloned());
        v
    }

    /// The ENV in effect (what goes in the image config).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The environment RUN gets: ENV, plus ARGs that ENV does not
    /// override, plus the proxy build args.
    pub fn run_env(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, v: &str| {
            if !out.iter().any(|(ok, _)| ok == k) {
                out.push((k.to_string(), v.to_string()));
            }
        };
        for (k, v) in self.env.iter().rev() {
            put(k, v);
        }
        for (k, v) in self.args.iter().rev() {
            if let Some(v) = v {
                put(k, v);
            }
        }
        for (k, v) in &self.proxies {
            put(k, v);
        }
        out.reverse();
        out
    }

    /// The ARGs with values that RUN sees and that history and the cache
    /// key record (`|2 A=1 B=2 /bin/sh -c …`): proxy args left out.
    pub fn history_args(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.args {
            let Some(v) = v else { continue };
            if PROXY_ARGS.contains(&k.as_str()) {
                continue;
            }
            out.retain(|(ok, _)| ok != k);
            out.push((k.clone(), v.clone()));
        }
        out
    }

    /// The text a RUN's history entry and cache key carry: Docker's
    /// `|N k=v… ` prefix for the ARGs in scope, then the instruction.
    pub fn history_text(&self, expanded: &Instruction) -> String {
        let args = self.history_args();
        if !matches!(expanded.command, Command::Run(_)) || args.is_empty() {
            return expanded.to_string();
        }
        let kv: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("|{} {} {}", args.len(), kv.join(" "), expanded)
    }

    /// Expand `ins` in the current scope and apply what it declares (ARG,
    /// ENV). Returns the expanded instruction.
    pub fn step(&mut self, ins: &Instruction) -> Result<Instruction> {
        let err = |m: String| DockerfileError::new(&self.file, ins.line, m);
        match &ins.command {
            Command::Arg(args) => {
                let mut out = Vec::new();
                for a in args {
                    let value = if let Some(given) = self.build_args.get(&a.name) {
                        Some(given.clone())
                    } else if let Some(d) = &a.default {
                        Some(expand_word(d, &self.expansion_env(), self.escape).map_err(err)?)
                    } else {
                        self.globals
                            .iter()
                            .rev()
                            .find(|(k, _)| *k == a.name)
                            .map(|(_, v)| v.clone())
                    };
                    self.args.retain(|(k, _)| *k != a.name);
                    self.args.push((a.name.clone(), value.clone()));
                    out.push(crate::instruction::ArgDecl {
                        name: a.name.clone(),
                        default: value,
                    });
                }
                Ok(Instruction {
                    command: Command::Arg(out),
                    ..ins.clone()
                })
            }
            Command::Env(_) => {
                // Every pair expands against the environment from before
                // the instruction: `ENV a=b c=$a` gives c the old a.
                let expanded = ins.expand(&self.expansion_env(), self.escape, &self.file)?;
                if let Command::Env(kvs) = &expanded.command {
                    for kv in kvs {
                        self.env.retain(|(k, _)| *k != kv.key);
                        self.env.push((kv.key.clone(), kv.value.clone()));
                    }
                }
                Ok(expanded)
            }
            _ => ins.expand(&self.expansion_env(), self.escape, &self.file),
        }
    }

    /// Expand one word in the current scope (for the executor's own needs,
    /// such as an ONBUILD trigger's text).
    pub fn expand_word(&self, word: &str, line: usize) -> Result<String> {
        expand_word(word, &self.expansion_env(), self.escape)
            .map_err(|e| DockerfileError::new(&self.file, line, e))
    }
}

/// Build args that were given but that no ARG in the stages built (or the
/// global ones) declares, sorted. Proxy args always count as consumed.
pub fn unconsumed_build_args(
    df: &Dockerfile,
    stages: &[usize],
    opts: &BuildOptions,
) -> Vec<String> {
    let mut declared: BTreeSet<&str> = PROXY_ARGS.iter().copied().collect();
    let instructions = df.global_args.iter().chain(
        stages
            .iter()
            .filter_map(|&i| df.stages.get(i))
            .flat_map(|s| s.instructions.iter()),
    );
    for ins in instructions {
        let cmd = match &ins.command {
            Command::Onbuild(inner) => &inner.command,
            c => c,
        };
        if let Command::Arg(args) = cmd {
            declared.extend(args.iter().map(|a| a.name.as_str()));
        }
    }
    opts.build_args
        .keys()
        .filter(|k| !declared.contains(k.as_str()))
        .cloned()
        .collect()
}

/// Docker's warning for [`unconsumed_build_args`], if any.
pub fn unconsumed_warning(names: &[String]) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    Some(format!(
        "[Warning] One or more build-args [{}] were not consumed",
        names.join(" ")
    ))
}
