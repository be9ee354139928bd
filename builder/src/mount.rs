//! `RUN --mount=...`: the option list parsed into a typed mount, with
//! BuildKit's keys, aliases, defaults and checks.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountType,
    pub target: Option<String>,
    pub source: Option<String>,
    /// Stage or image to take the mount's content from (bind, cache).
    pub from: Option<String>,
    pub read_only: bool,
    pub id: Option<String>,
    /// Cache mounts only; `None` means the default, shared.
    pub sharing: Option<Sharing>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// tmpfs size limit in bytes.
    pub size: Option<u64>,
    /// Secret and ssh mounts: fail when the secret is not given.
    pub required: bool,
    /// Secret mounts: also (or only) expose the secret as this variable.
    pub env: Option<String>,
}

impl Mount {
    /// Where the mount appears: the target, else the type's default
    /// (`/run/secrets/<id>` for secrets without `env`,
    /// `/run/buildkit/ssh_agent.<n>` for ssh). None for a secret given
    /// only as an environment variable.
    pub fn effective_target(&self, index: usize) -> Option<String> {
        if let Some(t) = &self.target {
            return Some(t.clone());
        }
        match self.kind {
            MountType::Secret if self.env.is_none() => {
                Some(format!("/run/secrets/{}", self.effective_id()))
            }
            MountType::Ssh => Some(format!("/run/buildkit/ssh_agent.{index}")),
            _ => None,
        }
    }

    /// The id: as given; for secrets the source or the target's base name,
    /// for ssh `default`, for caches the target.
    pub fn effective_id(&self) -> String {
        if let Some(id) = &self.id {
            return id.clone();
        }
        match self.kind {
            MountType::Secret => self
                .source
                .clone()
                .or_else(|| self.target.as_deref().map(base_name))
                .unwrap_or_default(),
            MountType::Ssh => "default".into(),
            _ => self.target.clone().unwrap_or_default(),
        }
    }

    pub fn effective_sharing(&self) -> Sharing {
        self.sharing.unwrap_or(Sharing::Shared)
    }
}

fn base_name(p: &str) -> String {
    p.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Split a CSV record (`a=b,"c=d,e"`), as Go's csv reader does.
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            ',' => {
                fields.push(std::mem::take(&mut cur));
                at_start = true;
            }
            _ => {
                cur.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err(format!(
            "failed to parse csv mounts: unterminated quote in {s:?}"
        ));
    }
    fields.push(cur);
    Ok(fields)
}

fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(format!("invalid value for {key}: {v}")),
    }
}

/// `1g`, `512m`, `100k`, `4096` (bytes; binary units as Docker's
/// RAMInBytes reads them).
fn parse_size(v: &str) -> Result<u64, String> {
    let bad = || format!("invalid size: {v:?}");
    let lower = v.trim().to_ascii_lowercase();
    let num_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(num_end);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(bad()),
    };
    Ok((n * mult as f64) as u64)
}

/// Expands one word of a mount option.
pub type Expander<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Parse one `--mount` value. With `expand`, every value is expanded
/// first (the RUN's build-time expansion); without, values are taken as
/// written and numbers holding a `$` are left for the expanding pass.
pub fn parse_mount(spec: &str, expand: Option<Expander<'_>>) -> Result<Mount, String> {
    let mut m = Mount {
        kind: MountType::Bind,
        target: None,
        source: None,
        from: None,
        read_only: false,
        id: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        required: false,
        env: None,
    };
    let mut ro_auto = true;
    for field in csv_fields(spec)? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(raw) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    ro_auto = false;
                }
                "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                    m.required = true;
                }
                "required" => {
                    return Err(format!(
                        "unexpected key 'required' for mount type '{}'",
                        m.kind.as_str()
                    ));
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let deferred = expand.is_none() && raw.contains('$');
        let value = match expand {
            Some(f) => f(&raw)?,
            None => raw,
        };
        let number = |radix: u32| -> Result<Option<u32>, String> {
            if deferred {
                return Ok(None);
            }
            u32::from_str_radix(&value, radix)
                .map(Some)
                .map_err(|_| format!("invalid value {value} for {key}"))
        };
        match key.as_str() {
            "type" => {
                m.kind = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => return Err(format!("unsupported mount type {value:?}")),
                }
            }
            "target" | "dst" | "destination" | "dest" => m.target = Some(value),
            "source" | "src" => m.source = Some(value),
            "from" => m.from = Some(value),
            "id" => m.id = Some(value),
            "env" => m.env = Some(value),
            "readonly" | "ro" => {
                m.read_only = parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.read_only = !parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "required" => {
                if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    return Err(format!(
                        "unexpected key 'required' for mount type '{}'",
                        m.kind.as_str()
                    ));
                }
                m.required = parse_bool(&key, &value)?;
            }
            "sharing" => {
                if m.kind != MountType::Cache {
                    return Err(format!(
                        "invalid cache sharing set for {} mount",
                        m.kind.as_str()
                    ));
                }
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => return Err(format!("unsupported sharing value {value:?}")),
                });
            }
            "mode" => m.mode = number(8)?,
            "uid" => m.uid = number(10)?,
            "gid" => m.gid = number(10)?,
            "size" => {
                if m.kind != MountType::Tmpfs {
                    return Err(format!(
                        "unexpected key 'size' for mount type '{}'",
                        m.kind.as_str()
                    ));
                }
                if !deferred {
                    m.size = Some(parse_size(&value)?);
                }
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    let file_info = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info {
        for (name, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(format!(
                    "{name} not allowed for {:?} type mounts",
                    m.kind.as_str()
                ));
            }
        }
    }
    if ro_auto {
        m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    match m.kind {
        MountType::Secret => {
            if m.from.is_some() {
                return Err("secret mount should not have a from".into());
            }
            if m.source.is_none() && m.target.is_none() && m.id.is_none() && m.env.is_none() {
                return Err(
                    "invalid secret mount: one of id, source, target or env required".into(),
                );
            }
            if m.source.is_some() && m.id.is_some() {
                return Err("both source and id can't be set".into());
            }
        }
        MountType::Bind | MountType::Cache | MountType::Tmpfs if m.target.is_none() => {
            return Err(format!("mount type {} requires a target", m.kind.as_str()));
        }
        _ => {}
    }
    Ok(m)
}

/// The canonical option list (for the instruction's text and cache key).
impl fmt::Display for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "type={}", self.kind.as_str())?;
        let strs = [
            ("id", &self.id),
            ("target", &self.target),
            ("source", &self.source),
            ("from", &self.from),
            ("env", &self.env),
        ];
        for (k, v) in strs {
            if let Some(v) = v {
                write!(f, ",{k}={v}")?;
            }
        }
        if let Some(s) = self.sharing {
            write!(f, ",sharing={}", format!("{s:?}").to_lowercase())?;
        }
        if let Some(m) = self.mode {
            write!(f, ",mode={m:o}")?;
        }
        if let Some(u) = self.uid {
            write!(f, ",uid={u}")?;
        }
        if let Some(g) = self.gid {
            write!(f, ",gid={g}")?;
        }
        if let Some(s) = self.size {
            write!(f, ",size={s}")?;
        }
        if self.required {
            write!(f, ",required")?;
        }
        write!(f, ",{}", if self.read_only { "ro" } else { "rw" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Mount, String> {
        parse_mount(s, None)
    }

    #[test]
    fn cache_mount_with_every_option() {
        let m = p("type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0700,uid=1000,gid=100,from=base,source=/c").unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(m.id.as_deref(), Some("pip"));
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert_eq!(m.mode, Some(0o700));
        assert_eq!((m.uid, m.gid), (Some(1000), Some(100)));
        assert_eq!(m.from.as_deref(), Some("base"));
        assert_eq!(m.source.as_deref(), Some("/c"));
        assert!(!m.read_only, "cache mounts are writable by default");
    }

    #[test]
    fn bind_defaults_read_only_and_aliases() {
        let m = p("type=bind,src=/x,dst=/y").unwrap();
        assert!(m.read_only);
        assert_eq!(m.source.as_deref(), Some("/x"));
        assert_eq!(m.target.as_deref(), Some("/y"));
        assert!(!p("target=/y,rw").unwrap().read_only);
        assert!(!p("destination=/y,readwrite=true").unwrap().read_only);
        assert!(p("dest=/y,readonly=false").map(|m| !m.read_only).unwrap());
        assert!(p("target=/y,ro=true").unwrap().read_only);
    }

    #[test]
    fn tmpfs_secret_ssh() {
        let t = p("type=tmpfs,target=/tmp,size=64m").unwrap();
        assert_eq!(t.size, Some(64 << 20));
        let s = p("type=secret,id=aws,target=/root/.aws/credentials,required=true").unwrap();
        assert!(s.required && s.read_only);
        assert_eq!(s.effective_id(), "aws");
        let s = p("type=secret,id=tok,env=TOKEN").unwrap();
        assert_eq!(s.env.as_deref(), Some("TOKEN"));
        assert_eq!(s.effective_target(0), None);
        let s = p("type=secret,id=tok").unwrap();
        assert_eq!(s.effective_target(0).as_deref(), Some("/run/secrets/tok"));
        let s = p("type=secret,target=/etc/pw").unwrap();
        assert_eq!(s.effective_id(), "pw");
        let h = p("type=ssh,required").unwrap();
        assert_eq!(h.effective_id(), "default");
        assert_eq!(
            h.effective_target(2).as_deref(),
            Some("/run/buildkit/ssh_agent.2")
        );
    }

    #[test]
    fn invalid_mounts() {
        assert!(
            p("type=nfs,target=/x")
                .unwrap_err()
                .contains("unsupported mount type")
        );
        assert!(
            p("type=bind,target=/x,mode=0755")
                .unwrap_err()
                .contains("mode not allowed")
        );
        assert!(
            p("type=bind,target=/x,sharing=locked")
                .unwrap_err()
                .contains("sharing")
        );
        assert!(
            p("type=cache,target=/x,sharing=weird")
                .unwrap_err()
                .contains("sharing value")
        );
        assert!(p("type=cache").unwrap_err().contains("requires a target"));
        assert!(p("type=secret,id=a,from=x").unwrap_err().contains("from"));
        assert!(
            p("type=secret,id=a,source=b")
                .unwrap_err()
                .contains("both source and id")
        );
        assert!(
            p("type=cache,target=/x,bogus=1")
                .unwrap_err()
                .contains("unexpected key 'bogus'")
        );
        assert!(
            p("type=cache,target=/x,uid=abc")
                .unwrap_err()
                .contains("uid")
        );
        assert!(
            p("type=bind,target=/x,required")
                .unwrap_err()
                .contains("required")
        );
        assert!(
            p("type=cache,target=/x,novalue")
                .unwrap_err()
                .contains("key=value")
        );
        assert!(
            p("type=tmpfs,target=/x,size=lots")
                .unwrap_err()
                .contains("size")
        );
    }

    #[test]
    fn deferred_numbers_then_expanded() {
        let m = p("type=cache,target=/c,uid=$UID").unwrap();
        assert_eq!(m.uid, None);
        let f = |s: &str| -> Result<String, String> { Ok(s.replace("$UID", "42")) };
        let m = parse_mount("type=cache,target=/c,uid=$UID", Some(&f)).unwrap();
        assert_eq!(m.uid, Some(42));
    }

    #[test]
    fn quoted_csv_fields() {
        let m = p("type=bind,\"source=a,b\",target=/t").unwrap();
        assert_eq!(m.source.as_deref(), Some("a,b"));
    }
}
