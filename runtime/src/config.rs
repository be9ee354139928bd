//! Loading a bundle's config.json and rejecting what cannot work before
//! anything is created, with errors that name the field at fault.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("bundle {path}: {source}")]
    Bundle {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Syntax {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {field}: {source}")]
    Field {
        path: PathBuf,
        field: String,
        source: serde_json::Error,
    },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

pub type Result<T> = std::result::Result<T, ConfigError>;

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A bundle directory with its parsed, validated config.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub path: PathBuf,
    pub spec: Spec,
    /// config.json as read, kept so the container state holds the config
    /// the container was created with, whatever happens to the bundle.
    pub raw: Vec<u8>,
    /// Absolute path of the root filesystem.
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Read `<dir>/config.json`, parse and validate it.
    pub fn load(dir: &Path) -> Result<Bundle> {
        let path = std::path::absolute(dir).map_err(|source| ConfigError::Bundle {
            path: dir.to_path_buf(),
            source,
        })?;
        let config = path.join("config.json");
        let raw = std::fs::read(&config).map_err(|source| ConfigError::Read {
            path: config.clone(),
            source,
        })?;
        let spec = parse_spec(&raw, &config)?;
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| invalid("root", "missing: the bundle has no root filesystem"))?;
        let rootfs = path.join(root.path());
        match std::fs::metadata(&rootfs) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(invalid(
                    "root.path",
                    format!("{} is not a directory", rootfs.display()),
                ));
            }
            Err(e) => return Err(invalid("root.path", format!("{}: {e}", rootfs.display()))),
        }
        validate(&spec)?;
        Ok(Bundle {
            path,
            spec,
            raw,
            rootfs,
        })
    }
}

/// Parse config JSON; a type error names the JSON path of the bad field.
pub fn parse_spec(raw: &[u8], path: &Path) -> Result<Spec> {
    let de = &mut serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let source = e.into_inner();
        if source.is_syntax() || source.is_eof() || field == "." {
            ConfigError::Syntax {
                path: path.to_path_buf(),
                source,
            }
        } else {
            ConfigError::Field {
                path: path.to_path_buf(),
                field,
                source,
            }
        }
    })
}

/// Parse a process JSON (`exec --process`), naming the bad field.
pub fn parse_process(raw: &[u8], path: &Path) -> Result<oci_spec::runtime::Process> {
    let de = &mut serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let source = e.into_inner();
        if source.is_syntax() || source.is_eof() || field == "." {
            ConfigError::Syntax {
                path: path.to_path_buf(),
                source,
            }
        } else {
            ConfigError::Field {
                path: path.to_path_buf(),
                field,
                source,
            }
        }
    })
}

fn require_absolute(field: &str, p: &Path) -> Result<()> {
    if !p.is_absolute() {
        return Err(invalid(field, format!("{:?} is not an absolute path", p)));
    }
    Ok(())
}

fn has_dotdot(p: &Path) -> bool {
    p.components().any(|c| c == Component::ParentDir)
}

const PROPAGATIONS: &[&str] = &[
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

/// Checks that need no system state beyond the spec itself.
pub fn validate(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process", "missing: nothing to run"))?;
    validate_process(process, "process")?;

    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| invalid("linux", "missing"))?;
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    let mut seen = HashSet::new();
    for (i, ns) in namespaces.iter().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(invalid(
                format!("linux.namespaces[{i}]"),
                format!("duplicate namespace type {}", ns.typ()),
            ));
        }
        if let Some(p) = ns.path() {
            require_absolute(&format!("linux.namespaces[{i}].path"), p)?;
        }
    }
    let has_new = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t);
    if !has_new(LinuxNamespaceType::Mount) {
        return Err(invalid(
            "linux.namespaces",
            "a mount namespace is required: berth never mounts in the host's namespace",
        ));
    }
    let user = has_new(LinuxNamespaceType::User);
    let user_joined = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_some());
    let uid_maps = linux.uid_mappings().as_deref().unwrap_or_default();
    let gid_maps = linux.gid_mappings().as_deref().unwrap_or_default();
    if user && !user_joined && (uid_maps.is_empty() || gid_maps.is_empty()) {
        return Err(invalid(
            "linux.uidMappings",
            "a new user namespace needs both uidMappings and gidMappings",
        ));
    }
    if !user && (!uid_maps.is_empty() || !gid_maps.is_empty()) {
        return Err(invalid(
            "linux.uidMappings",
            "id mappings given without a user namespace",
        ));
    }
    for (field, maps) in [
        ("linux.uidMappings", uid_maps),
        ("linux.gidMappings", gid_maps),
    ] {
        for (i, m) in maps.iter().enumerate() {
            if m.size() == 0 {
                return Err(invalid(format!("{field}[{i}].size"), "must not be 0"));
            }
        }
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        && !has_new(LinuxNamespaceType::Uts)
    {
        return Err(invalid(
            "hostname",
            "setting a hostname needs a uts namespace",
        ));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty())
        && !has_new(LinuxNamespaceType::Uts)
    {
        return Err(invalid(
            "domainname",
            "setting a domainname needs a uts namespace",
        ));
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        if !has_new(LinuxNamespaceType::Time) {
            return Err(invalid(
                "linux.timeOffsets",
                "time offsets need a time namespace",
            ));
        }
        for clock in linux
            .time_offsets()
            .as_ref()
            .into_iter()
            .flat_map(|t| t.keys())
        {
            if clock != "monotonic" && clock != "boottime" {
                return Err(invalid(
                    format!("linux.timeOffsets.{clock}"),
                    "only monotonic and boottime clocks can be offset",
                ));
            }
        }
    }
    if let Some(p) = linux.rootfs_propagation().as_deref()
        && !p.is_empty()
        && !PROPAGATIONS.contains(&p)
    {
        return Err(invalid(
            "linux.rootfsPropagation",
            format!(
                "unknown propagation {p:?} (expected one of {})",
                PROPAGATIONS.join(", ")
            ),
        ));
    }
    if let Some(p) = linux.cgroups_path()
        && has_dotdot(p)
    {
        return Err(invalid(
            "linux.cgroupsPath",
            format!("{p:?} must not contain \"..\""),
        ));
    }
    for (field, paths) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        for (i, p) in paths.as_deref().unwrap_or_default().iter().enumerate() {
            require_absolute(&format!("{field}[{i}]"), Path::new(p))?;
        }
    }
    for (i, d) in linux
        .devices()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        require_absolute(&format!("linux.devices[{i}].path"), d.path())?;
        if has_dotdot(d.path()) {
            return Err(invalid(
                format!("linux.devices[{i}].path"),
                "must not contain \"..\"",
            ));
        }
    }
    if let Some(sysctls) = linux.sysctl() {
        for key in sysctls.keys() {
            validate_sysctl(key, &has_new)?;
        }
    }
    for (i, m) in spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if has_dotdot(m.destination()) {
            return Err(invalid(
                format!("mounts[{i}].destination"),
                "must not contain \"..\"",
            ));
        }
    }
    if let Some(hooks) = spec.hooks() {
        #[allow(deprecated)]
        let all = [
            ("prestart", hooks.prestart()),
            ("createRuntime", hooks.create_runtime()),
            ("createContainer", hooks.create_container()),
            ("startContainer", hooks.start_container()),
            ("poststart", hooks.poststart()),
            ("poststop", hooks.poststop()),
        ];
        for (name, list) in all {
            for (i, h) in list.as_deref().unwrap_or_default().iter().enumerate() {
                require_absolute(&format!("hooks.{name}[{i}].path"), h.path())?;
                if h.timeout().is_some_and(|t| t <= 0) {
                    return Err(invalid(
                        format!("hooks.{name}[{i}].timeout"),
                        "must be positive",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Checks on a process, shared by create and exec.
pub fn validate_process(process: &oci_spec::runtime::Process, field: &str) -> Result<()> {
    if process.args().as_deref().unwrap_or_default().is_empty() {
        return Err(invalid(
            format!("{field}.args"),
            "must name a program to run",
        ));
    }
    require_absolute(&format!("{field}.cwd"), process.cwd())?;
    let mut seen = Vec::new();
    for (i, r) in process
        .rlimits()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if seen.contains(&r.typ()) {
            return Err(invalid(
                format!("{field}.rlimits[{i}].type"),
                format!("duplicate rlimit {}", r.typ()),
            ));
        }
        seen.push(r.typ());
        if r.soft() > r.hard() {
            return Err(invalid(
                format!("{field}.rlimits[{i}]"),
                format!(
                    "{}: soft limit {} is above hard limit {}",
                    r.typ(),
                    r.soft(),
                    r.hard()
                ),
            ));
        }
    }
    for (i, e) in process
        .env()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if !e.contains('=') {
            return Err(invalid(
                format!("{field}.env[{i}]"),
                format!("{e:?} is not KEY=VALUE"),
            ));
        }
    }
    Ok(())
}

/// Only sysctls that live in a namespace the container owns may be set,
/// otherwise a container would reconfigure the host.
fn validate_sysctl(key: &str, has_new: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<()> {
    let field = format!("linux.sysctl.{key}");
    let needs = if key.starts_with("kernel.msg")
        || key.starts_with("kernel.sem")
        || key.starts_with("kernel.shm")
        || key.starts_with("fs.mqueue.")
    {
        LinuxNamespaceType::Ipc
    } else if key.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        LinuxNamespaceType::Uts
    } else {
        return Err(invalid(
            field,
            "not a namespaced sysctl: setting it would change the host",
        ));
    };
    if !has_new(needs) {
        return Err(invalid(
            field,
            format!("needs the container's own {needs} namespace"),
        ));
    }
    if key.contains("..") || key.contains('/') && key.contains('.') {
        return Err(invalid(field, "malformed sysctl name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(patch: impl FnOnce(&mut serde_json::Value)) -> Result<Spec> {
        let mut v: serde_json::Value = serde_json::from_str(crate::spec::DEFAULT_SPEC).unwrap();
        v["process"]["terminal"] = false.into();
        patch(&mut v);
        let raw = serde_json::to_vec(&v).unwrap();
        let spec = parse_spec(&raw, Path::new("config.json"))?;
        validate(&spec)?;
        Ok(spec)
    }

    #[test]
    fn default_spec_is_valid() {
        spec_with(|_| {}).unwrap();
    }

    #[test]
    fn unknown_namespace_names_the_field() {
        let err = spec_with(|v| v["linux"]["namespaces"][2]["type"] = "bogus".into()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("linux.namespaces[2].type"), "{msg}");
        assert!(msg.contains("bogus"), "{msg}");
    }

    #[test]
    fn malformed_json_is_a_syntax_error() {
        let err = parse_spec(b"{\"ociVersion\": ", Path::new("/b/config.json")).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
        assert!(
            err.to_string().starts_with("/b/config.json: invalid JSON"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_namespace_rejected() {
        let err = spec_with(|v| {
            v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"type": "pid"}))
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("duplicate namespace type pid"),
            "{err}"
        );
    }

    #[test]
    fn mount_namespace_required() {
        let err = spec_with(|v| {
            v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "mount")
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("linux.namespaces: a mount namespace is required")
        );
    }

    #[test]
    fn user_namespace_needs_mappings() {
        let err = spec_with(|v| {
            v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"type": "user"}))
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("linux.uidMappings:"), "{err}");
    }

    #[test]
    fn host_sysctl_rejected() {
        let err = spec_with(|v| v["linux"]["sysctl"] = serde_json::json!({"vm.swappiness": "1"}))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("linux.sysctl.vm.swappiness: not a namespaced"),
            "{err}"
        );
        spec_with(|v| v["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"}))
            .unwrap();
    }

    #[test]
    fn rlimit_soft_above_hard_rejected() {
        let err = spec_with(|v| {
            v["process"]["rlimits"] =
                serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}])
        })
        .unwrap_err();
        assert!(err.to_string().contains("process.rlimits[0]"), "{err}");
    }

    #[test]
    fn empty_args_rejected() {
        let err = spec_with(|v| v["process"]["args"] = serde_json::json!([])).unwrap_err();
        assert_eq!(err.to_string(), "process.args: must name a program to run");
    }

    #[test]
    fn unknown_capability_names_the_field() {
        let err = spec_with(|v| {
            v["process"]["capabilities"]["bounding"] = serde_json::json!(["CAP_CHOWN", "CAP_BOGUS"])
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("process.capabilities.bounding"),
            "{err}"
        );
    }
}
