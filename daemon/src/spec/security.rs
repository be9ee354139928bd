//! `HostConfig.SecurityOpt`, parsed as dockerd parses it: `key=value`,
//! or the older `key:value` when there is no `=`.

use super::error::{Result, SpecError};

/// Which seccomp profile the container gets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SeccompOpt {
    /// The daemon's choice (berth's default profile unless disabled).
    #[default]
    Default,
    /// `seccomp=unconfined`: no filter.
    Unconfined,
    /// `seccomp=<profile JSON>`, as the docker CLI sends a file's content.
    Profile(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityOpts {
    pub no_new_privileges: bool,
    pub seccomp: SeccompOpt,
    /// `apparmor=PROFILE`; `unconfined` is kept as given.
    pub apparmor: Option<String>,
    /// `writable-cgroups=true`: /sys/fs/cgroup mounted read-write.
    pub writable_cgroups: bool,
    /// `systempaths=unconfined`: no masked or read-only /proc and /sys
    /// paths (the docker CLI turns it into empty MaskedPaths and
    /// ReadonlyPaths; an API client may send it as is).
    pub systempaths_unconfined: bool,
}

fn parse_bool(opt: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(SpecError::SecurityOpt {
            opt: opt.to_owned(),
            reason: format!("{v:?} is not a boolean"),
        }),
    }
}

pub fn parse_security_opts(opts: &[String]) -> Result<SecurityOpts> {
    let mut out = SecurityOpts::default();
    for opt in opts {
        let bad = |reason: &str| SpecError::SecurityOpt {
            opt: opt.clone(),
            reason: reason.to_owned(),
        };
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None if opt == "no-new-privileges" => (opt.as_str(), None),
            None => match opt.split_once(':') {
                Some((k, v)) => (k, Some(v)),
                None => return Err(bad("expected key=value")),
            },
        };
        match (key, value) {
            ("no-new-privileges", None) => out.no_new_privileges = true,
            ("no-new-privileges", Some(v)) => out.no_new_privileges = parse_bool(opt, v)?,
            ("seccomp", Some("unconfined")) => out.seccomp = SeccompOpt::Unconfined,
            ("seccomp", Some("builtin" | "")) => out.seccomp = SeccompOpt::Default,
            ("seccomp", Some(json)) if json.trim_start().starts_with('{') => {
                out.seccomp = SeccompOpt::Profile(json.to_owned())
            }
            ("seccomp", Some(_)) => {
                return Err(bad(
                    "expected unconfined, builtin or a profile's JSON (the docker CLI reads the file and sends its content)",
                ));
            }
            ("apparmor", Some(p)) if !p.is_empty() => out.apparmor = Some(p.to_owned()),
            // SELinux labels: berth has no SELinux support; dockerd on a
            // host without SELinux accepts and ignores them too.
            ("label", Some(v))
                if v == "disable"
                    || v == "nested"
                    || ["user:", "role:", "type:", "level:", "filetype:"]
                        .iter()
                        .any(|p| v.starts_with(p)) => {}
            ("writable-cgroups", Some(v)) => out.writable_cgroups = parse_bool(opt, v)?,
            ("systempaths", Some("unconfined")) => out.systempaths_unconfined = true,
            _ => return Err(bad("unknown or malformed security option")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(opts: &[&str]) -> Result<SecurityOpts> {
        parse_security_opts(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn docker_cli_forms() {
        assert!(parse(&["no-new-privileges"]).unwrap().no_new_privileges);
        assert!(
            parse(&["no-new-privileges:true"])
                .unwrap()
                .no_new_privileges
        );
        assert!(
            parse(&["no-new-privileges=true"])
                .unwrap()
                .no_new_privileges
        );
        assert!(
            !parse(&["no-new-privileges=false"])
                .unwrap()
                .no_new_privileges
        );
        assert_eq!(
            parse(&["seccomp=unconfined"]).unwrap().seccomp,
            SeccompOpt::Unconfined
        );
        assert_eq!(
            parse(&["seccomp:unconfined"]).unwrap().seccomp,
            SeccompOpt::Unconfined
        );
        let p = parse(&[r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#]).unwrap();
        assert_eq!(
            p.seccomp,
            SeccompOpt::Profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#.into())
        );
        let p = parse(&["apparmor=unconfined", "label=disable", "label=type:svirt_t"]).unwrap();
        assert_eq!(p.apparmor.as_deref(), Some("unconfined"));
        assert!(parse(&["writable-cgroups=true"]).unwrap().writable_cgroups);
        assert!(
            parse(&["systempaths=unconfined"])
                .unwrap()
                .systempaths_unconfined
        );
    }

    #[test]
    fn unknown_options_are_named() {
        let e = parse(&["foo=bar"]).unwrap_err().to_string();
        assert!(e.contains("\"foo=bar\""), "{e}");
        let e = parse(&["nonsense"]).unwrap_err().to_string();
        assert!(e.contains("\"nonsense\""), "{e}");
        assert!(parse(&["no-new-privileges=maybe"]).is_err());
        assert!(parse(&["seccomp=/etc/profile.json"]).is_err());
        assert!(parse(&["label=bogus"]).is_err());
    }
}
