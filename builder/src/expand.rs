//! Expanding an instruction's words: exactly the instructions and
//! positions BuildKit expands at build time (ADD COPY ENV EXPOSE FROM LABEL
//! STOPSIGNAL USER VOLUME WORKDIR, COPY/ADD flags, RUN mount options); RUN,
//! CMD, ENTRYPOINT, SHELL and HEALTHCHECK are left to the shell, ONBUILD
//! to the child build.

use crate::error::{DockerfileError, Result};
use crate::instruction::*;
use crate::mount::parse_mount;
use crate::shell::{Env, expand_heredoc, expand_word, expand_words};

impl Instruction {
    /// This instruction with its words expanded against `env` (the
    /// stage's build args and ENV, ENV winning; [`crate::StageScope`]
    /// builds it). `escape` is the Dockerfile's escape character. ARG
    /// defaults are left as written: [`crate::StageScope::step`] expands
    /// them, as only it knows whether a build arg overrides the default.
    pub fn expand(&self, env: &dyn Env, escape: char, file: &str) -> Result<Instruction> {
        let err = |m: String| DockerfileError::new(file, self.line, m);
        let word = |w: &str| expand_word(w, env, escape).map_err(err);
        let opt = |w: &Option<String>| w.as_deref().map(word).transpose();
        let command = match &self.command {
            Command::From(f) => Command::From(From {
                image: word(&f.image)?,
                platform: opt(&f.platform)?,
                name: f.name.clone(),
            }),
            Command::Run(r) => {
                let expander = |w: &str| expand_word(w, env, escape);
                let mounts = r
                    .mount_specs
                    .iter()
                    .map(|m| {
                        parse_mount(m, Some(&expander))
                            .map_err(|e| err(format!("--mount={m}: {e}")))
                    })
                    .collect::<Result<_>>()?;
                Command::Run(Run {
                    mounts,
                    ..r.clone()
                })
            }
            Command::Label(kvs) | Command::Env(kvs) => {
                let kvs = kvs
                    .iter()
                    .map(|kv| {
                        let key = word(&kv.key)?;
                        if key.is_empty() {
                            return Err(err(format!(
                                "{} names can not be blank",
                                self.command.keyword()
                            )));
                        }
                        Ok(KeyValue {
                            key,
                            value: word(&kv.value)?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                if matches!(self.command, Command::Env(_)) {
                    Command::Env(kvs)
                } else {
                    Command::Label(kvs)
                }
            }
            Command::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    for w in expand_words(p, env, escape).map_err(err)? {
                        let range = PortRange::parse(&w).map_err(err)?;
                        out.extend(range.keys());
                    }
                }
                Command::Expose(out)
            }
            Command::Add(c) | Command::Copy(c) => {
                let is_add = matches!(self.command, Command::Add(_));
                let inline = c
                    .inline
                    .iter()
                    .map(|d| {
                        let mut d = d.clone();
                        d.content = d.data();
                        d.chomp = false;
                        if d.expand {
                            d.content = expand_heredoc(&d.content, env).map_err(err)?;
                        }
                        Ok(d)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let copy = Copy {
                    sources: c.sources.iter().map(|s| word(s)).collect::<Result<_>>()?,
                    inline,
                    dest: word(&c.dest)?,
                    from: opt(&c.from)?,
                    chown: opt(&c.chown)?,
                    chmod: opt(&c.chmod)?,
                    link: c.link,
                    parents: c.parents,
                    exclude: c.exclude.iter().map(|s| word(s)).collect::<Result<_>>()?,
                    checksum: opt(&c.checksum)?,
                    keep_git_dir: c.keep_git_dir,
                };
                copy.chmod_bits().map_err(err)?;
                if let Some(sum) = &copy.checksum {
                    validate_checksum(sum).map_err(err)?;
                    if let Some(local) = copy.sources.iter().find(|s| !is_remote(s)) {
                        return Err(err(format!(
                            "--checksum can't be specified for a local source: {local}"
                        )));
                    }
                }
                if is_add {
                    Command::Add(copy)
                } else {
                    Command::Copy(copy)
                }
            }
            Command::Volume(v) => {
                let v = v.iter().map(|s| word(s)).collect::<Result<Vec<_>>>()?;
                if v.iter().any(|s| s.trim().is_empty()) {
                    return Err(err("VOLUME specified can not be an empty string".into()));
                }
                Command::Volume(v)
            }
            Command::User(s) => Command::User(word(s)?),
            Command::Workdir(s) => Command::Workdir(word(s)?),
            Command::StopSignal(s) => Command::StopSignal(word(s)?),
            other => other.clone(),
        };
        Ok(Instruction {
            command,
            ..self.clone()
        })
    }
}

/// An ADD source fetched from the network rather than the context.
pub fn is_remote(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://") || is_git(src)
}

/// A git source for ADD: `git@host:repo`, `git://…`, `ssh://…`, `https://…/x.git`.
pub fn is_git(src: &str) -> bool {
    src.starts_with("git@")
        || src.starts_with("git://")
        || src.starts_with("ssh://")
        // Over HTTP only a `.git` path says git; a local `x.git` in the
        // context stays a context file (never a repository on the host).
        || ((src.starts_with("http://") || src.starts_with("https://"))
            && src.split('#').next().is_some_and(|s| s.ends_with(".git")))
}

fn validate_checksum(sum: &str) -> std::result::Result<(), String> {
    let (algo, hex) = sum.split_once(':').unwrap_or(("", sum));
    let want = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        // A bare git commit.
        "" => hex.len().max(1),
        other => {
            return Err(format!(
                "--checksum: unsupported digest algorithm {other:?}"
            ));
        }
    };
    if hex.len() != want || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("--checksum: invalid digest {sum:?}"));
    }
    Ok(())
}
