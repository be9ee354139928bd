//! Mounts: what `Binds`, `Mounts`, `Tmpfs` and `Config.Volumes` ask for
//! ([`parse_mounts`], checked as dockerd checks them), what the caller
//! makes of them once volumes have host directories ([`ResolvedMount`]),
//! and the mount list of the spec (defaults, the /etc files, the user's).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use berth_api::containers::{ContainerConfig, HostConfig, Mount as ApiMount};
use serde_json::{Value, json};

use super::error::{Result, SpecError};

/// How a resolved mount is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// A bind of `source` (a host path; a volume's `_data` directory).
    Bind,
    /// A fresh tmpfs; `source` is ignored.
    Tmpfs,
}

/// Where a requested mount's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A host path (`-v /host:/ctr`, `--mount type=bind`).
    HostPath(PathBuf),
    /// A named volume, or an anonymous one (`name: None`) the caller
    /// creates.
    Volume {
        name: Option<String>,
        subpath: Option<String>,
        /// `nocopy`: do not copy the image's content at the destination
        /// into a new volume.
        no_copy: bool,
    },
    Tmpfs,
}

/// Bind propagation modes (`-v a:b:rslave`, `bind-propagation=`).
const PROPAGATIONS: [&str; 6] = [
    "shared", "rshared", "slave", "rslave", "private", "rprivate",
];

/// What one mount in the container asks for, before volumes are looked
/// up. The caller turns each into a [`ResolvedMount`] with
/// [`MountRequest::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    /// Absolute, cleaned.
    pub destination: String,
    pub source: MountSource,
    pub read_only: bool,
    /// Bind propagation (`rprivate` when not given).
    pub propagation: Option<String>,
    /// `--mount ...,bind-nonrecursive`: a plain bind, submounts left out.
    pub non_recursive: bool,
    /// `-v` creates a missing host directory; `--mount type=bind` refuses
    /// one ("bind source path does not exist") unless `create_mountpoint`.
    pub create_host_path: bool,
    /// tmpfs data options (`size=64m`, `mode=1777`, `exec`...).
    pub tmpfs_options: Vec<String>,
}

/// A mount with its host source decided, ready for the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMount {
    pub source: PathBuf,
    pub destination: String,
    pub kind: MountKind,
    pub read_only: bool,
    /// Binds: a propagation mode, `bind` for a non-recursive bind, or
    /// other mount flags. Tmpfs: data options (`size=`, `mode=`, `exec`).
    /// Defaults (`rbind`, `rprivate`; `noexec,nosuid,nodev`) are added
    /// by [`super::build`] unless overridden here.
    pub options: Vec<String>,
}

impl MountRequest {
    /// The mount once the caller knows the host source: `volume_dir` is
    /// the volume's directory (its `_data`, subpath applied) and is
    /// ignored for binds of host paths and for tmpfs.
    pub fn resolve(&self, volume_dir: Option<PathBuf>) -> ResolvedMount {
        let (source, kind) = match &self.source {
            MountSource::HostPath(p) => (p.clone(), MountKind::Bind),
            MountSource::Volume { .. } => (volume_dir.unwrap_or_default(), MountKind::Bind),
            MountSource::Tmpfs => (PathBuf::from("tmpfs"), MountKind::Tmpfs),
        };
        let options = match kind {
            MountKind::Tmpfs => self.tmpfs_options.clone(),
            MountKind::Bind => {
                let mut o: Vec<String> = self.propagation.iter().cloned().collect();
                if self.non_recursive {
                    o.push("bind".into());
                }
                o
            }
        };
        ResolvedMount {
            source,
            destination: self.destination.clone(),
            kind,
            read_only: self.read_only,
            options,
        }
    }
}

/// `path` cleaned lexically (`/a/./b//c/` → `/a/b/c`, `..` resolved as
/// far as it goes), as Go's filepath.Clean which dockerd applies.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str().unwrap_or_default()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// A destination must be absolute and not `/` itself.
fn check_destination(dest: &str) -> std::result::Result<String, String> {
    if dest.is_empty() {
        return Err("field Target must not be empty".into());
    }
    if !dest.starts_with('/') {
        return Err(format!(
            "invalid mount path: '{dest}' mount path must be absolute"
        ));
    }
    let clean = clean(dest);
    if clean == "/" {
        return Err("invalid specification: destination can't be '/'".into());
    }
    Ok(clean)
}

/// Local volume names as dockerd accepts them: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn valid_volume_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

fn volume_name_error(name: &str) -> String {
    format!(
        "{name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )
}

/// One `Binds` entry: `src:dst[:mode]` or `dst` (an anonymous volume).
/// `src` is a host path when absolute, else a volume name. `mode` is a
/// comma list of at most one each of `ro`/`rw`, a propagation, `z`/`Z`
/// (SELinux relabel, which berth ignores: it has no SELinux support),
/// `nocopy` (volumes only), and `consistent`/`cached`/`delegated`.
pub fn parse_bind(spec: &str) -> Result<MountRequest> {
    let invalid = |reason: Option<String>| SpecError::VolumeSpec {
        spec: spec.to_owned(),
        reason,
    };
    let parts: Vec<&str> = spec.split(':').collect();
    if parts[0].is_empty() {
        return Err(invalid(None));
    }
    let (src, dst, mode) = match parts.as_slice() {
        [dst] => (None, *dst, None),
        // `/foo:rw` names a destination and a mode but no source.
        [_, m] if is_valid_mode(m) => return Err(invalid(None)),
        [src, dst] => (Some(*src), *dst, None),
        [src, dst, mode] => (Some(*src), *dst, Some(*mode)),
        _ => return Err(invalid(None)),
    };
    let destination = check_destination(dst).map_err(|r| invalid(Some(r)))?;
    let mut req = MountRequest {
        destination,
        source: MountSource::Volume {
            name: None,
            subpath: None,
            no_copy: false,
        },
        read_only: false,
        propagation: None,
        non_recursive: false,
        create_host_path: true,
        tmpfs_options: Vec::new(),
    };
    let mut no_copy = false;
    if let Some(mode) = mode {
        if !is_valid_mode(mode) {
            return Err(invalid(Some(format!("invalid mode: {mode}"))));
        }
        for m in mode.split(',') {
            match m {
                "ro" => req.read_only = true,
                "rw" => req.read_only = false,
                "nocopy" => no_copy = true,
                p if PROPAGATIONS.contains(&p) => req.propagation = Some(p.to_owned()),
                _ => {}
            }
        }
    }
    match src {
        Some(src) if src.starts_with('/') => {
            if no_copy {
                return Err(invalid(Some(format!(
                    "invalid mode: {}: nocopy applies to volumes only",
                    mode.unwrap_or_default()
                ))));
            }
            req.source = MountSource::HostPath(PathBuf::from(clean(src)));
        }
        Some(name) => {
            if !valid_volume_name(name) {
                return Err(invalid(Some(volume_name_error(name))));
            }
            if req.propagation.is_some() {
                return Err(invalid(Some(format!(
                    "invalid mode: {}: propagation applies to bind mounts only",
                    mode.unwrap_or_default()
                ))));
            }
            req.source = MountSource::Volume {
                name: Some(name.to_owned()),
                subpath: None,
                no_copy,
            };
        }
        None => {}
    }
    Ok(req)
}

/// Is `mode` a comma list with at most one option of each kind?
fn is_valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return false;
    }
    let (mut rw, mut prop, mut label, mut copy, mut consistency) = (0, 0, 0, 0, 0);
    for m in mode.split(',') {
        let counter = match m {
            "ro" | "rw" => &mut rw,
            "z" | "Z" => &mut label,
            "nocopy" => &mut copy,
            "consistent" | "cached" | "delegated" => &mut consistency,
            p if PROPAGATIONS.contains(&p) => &mut prop,
            _ => return false,
        };
        *counter += 1;
        if *counter > 1 {
            return false;
        }
    }
    true
}

/// One `--mount` (`HostConfig.Mounts`) entry, checked as dockerd's
/// `validateMountConfig` checks it.
pub fn parse_api_mount(m: &ApiMount) -> Result<MountRequest> {
    let kind = m.kind.as_str();
    let err = |reason: String| SpecError::mount_config(kind, reason);
    let destination = check_destination(&m.target).map_err(err)?;
    let mut req = MountRequest {
        destination,
        source: MountSource::Tmpfs,
        read_only: m.read_only,
        propagation: None,
        non_recursive: false,
        create_host_path: false,
        tmpfs_options: Vec::new(),
    };
    let extra = |field: &str| err(format!("field {field} must not be specified"));
    match kind {
        "bind" => {
            if m.volume_options.is_some() {
                return Err(extra("VolumeOptions"));
            }
            if m.tmpfs_options.is_some() {
                return Err(extra("TmpfsOptions"));
            }
            if m.source.is_empty() {
                return Err(err("field Source must not be empty".into()));
            }
            if !m.source.starts_with('/') {
                return Err(err(format!(
                    "invalid mount path: '{}' mount path must be absolute",
                    m.source
                )));
            }
            req.source = MountSource::HostPath(PathBuf::from(clean(&m.source)));
            if let Some(b) = &m.bind_options {
                if let Some(p) = b.propagation.as_deref().filter(|p| !p.is_empty()) {
                    if !PROPAGATIONS.contains(&p) {
                        return Err(err(format!("invalid propagation mode: {p}")));
                    }
                    req.propagation = Some(p.to_owned());
                }
                req.non_recursive = b.non_recursive.unwrap_or(false);
                req.create_host_path = b.create_mountpoint.unwrap_or(false);
            }
        }
        "volume" => {
            if m.bind_options.is_some() {
                return Err(extra("BindOptions"));
            }
            if m.tmpfs_options.is_some() {
                return Err(extra("TmpfsOptions"));
            }
            if !m.source.is_empty() && !valid_volume_name(&m.source) {
                return Err(err(volume_name_error(&m.source)));
            }
            let vo = m.volume_options.clone().unwrap_or_default();
            if let Some(sp) = vo.subpath.as_deref().filter(|s| !s.is_empty()) {
                // A subpath is relative to the volume and stays in it.
                if sp.starts_with('/')
                    || Path::new(sp)
                        .components()
                        .any(|c| c == Component::ParentDir)
                {
                    return Err(err(format!(
                        "subpath must be a relative path within the volume: {sp:?}"
                    )));
                }
            }
            req.source = MountSource::Volume {
                name: (!m.source.is_empty()).then(|| m.source.clone()),
                subpath: vo.subpath.filter(|s| !s.is_empty()),
                no_copy: vo.no_copy.unwrap_or(false),
            };
        }
        "tmpfs" => {
            if !m.source.is_empty() {
                return Err(extra("Source"));
            }
            if m.bind_options.is_some() {
                return Err(extra("BindOptions"));
            }
            if m.volume_options.is_some() {
                return Err(extra("VolumeOptions"));
            }
            if let Some(t) = &m.tmpfs_options {
                if let Some(size) = t.size_bytes {
                    if size < 0 {
                        return Err(err(format!("invalid tmpfs size: {size}")));
                    }
                    if size > 0 {
                        req.tmpfs_options.push(format!("size={}", human_size(size)));
                    }
                }
                if let Some(mode) = t.mode.filter(|m| *m != 0) {
                    req.tmpfs_options.push(format!("mode={mode:o}"));
                }
            }
        }
        _ => return Err(err("mount type unknown".into())),
    }
    Ok(req)
}

/// Bytes as tmpfs's `size=` option, in the largest exact unit (dockerd
/// does the same, so inspect output matches).
fn human_size(n: i64) -> String {
    for (unit, shift) in [("g", 30), ("m", 20), ("k", 10)] {
        if n % (1 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// One `Tmpfs` map entry: `"/run": "size=64m,exec"`.
pub fn parse_tmpfs(dest: &str, options: &str) -> Result<MountRequest> {
    let err = |reason: String| SpecError::Tmpfs {
        destination: dest.to_owned(),
        reason,
    };
    let destination = check_destination(dest).map_err(err)?;
    let tmpfs_options: Vec<String> = options
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect();
    let mut read_only = false;
    for o in &tmpfs_options {
        let key = o.split('=').next().unwrap_or_default();
        if !TMPFS_OPTIONS.contains(&key) {
            return Err(err(format!("unknown option {o:?}")));
        }
        match o.as_str() {
            "ro" => read_only = true,
            "rw" => read_only = false,
            _ => {}
        }
    }
    Ok(MountRequest {
        destination,
        source: MountSource::Tmpfs,
        read_only,
        propagation: None,
        non_recursive: false,
        create_host_path: false,
        tmpfs_options: tmpfs_options
            .into_iter()
            .filter(|o| o != "ro" && o != "rw")
            .collect(),
    })
}

/// Options a `--tmpfs` may carry: tmpfs's own and the generic flags.
const TMPFS_OPTIONS: &[&str] = &[
    "size",
    "nr_blocks",
    "nr_inodes",
    "mode",
    "uid",
    "gid",
    "huge",
    "mpol",
    "noswap",
    "ro",
    "rw",
    "exec",
    "noexec",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "sync",
    "async",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "dirsync",
    "mand",
    "nomand",
    "tmpcopyup",
];

/// Every mount the container's configuration asks for, in the order
/// dockerd considers them: `Binds`, `Mounts`, `Tmpfs`, then the image's
/// and `-v /path`'s anonymous volumes (`Config.Volumes`) not covered by
/// one of those. Two requests for one destination are an error.
pub fn parse_mounts(config: &ContainerConfig, host: &HostConfig) -> Result<Vec<MountRequest>> {
    let mut out: Vec<MountRequest> = Vec::new();
    let push = |req: MountRequest, out: &mut Vec<MountRequest>| {
        if out.iter().any(|m| m.destination == req.destination) {
            return Err(SpecError::DuplicateMount(req.destination));
        }
        out.push(req);
        Ok(())
    };
    for b in host.binds.iter().flatten() {
        push(parse_bind(b)?, &mut out)?;
    }
    for m in host.mounts.iter().flatten() {
        push(parse_api_mount(m)?, &mut out)?;
    }
    let tmpfs: &BTreeMap<String, String> = match &host.tmpfs {
        Some(t) => t,
        None => &BTreeMap::new(),
    };
    for (dest, opts) in tmpfs {
        push(parse_tmpfs(dest, opts)?, &mut out)?;
    }
    for dest in config.volumes.iter().flat_map(|v| v.keys()) {
        let d = check_destination(dest).map_err(|r| SpecError::VolumeSpec {
            spec: dest.clone(),
            reason: Some(r),
        })?;
        if out.iter().any(|m| m.destination == d) {
            continue;
        }
        out.push(MountRequest {
            destination: d,
            source: MountSource::Volume {
                name: None,
                subpath: None,
                no_copy: false,
            },
            read_only: false,
            propagation: None,
            non_recursive: false,
            create_host_path: false,
            tmpfs_options: Vec::new(),
        });
    }
    Ok(out)
}

/// Merge mount flag options: a later flag replaces an earlier one of the
/// same pair (`exec` after the default `noexec`), a later `key=value` an
/// earlier one of the same key.
pub(crate) fn merge_options(defaults: &[&str], extra: &[String]) -> Vec<String> {
    fn key(o: &str) -> &str {
        let k = o.split('=').next().unwrap_or(o);
        match k {
            "exec" | "noexec" => "exec",
            "suid" | "nosuid" => "suid",
            "dev" | "nodev" => "dev",
            "ro" | "rw" => "ro",
            "atime" | "noatime" => "atime",
            p if PROPAGATIONS.contains(&p) => "propagation",
            "bind" | "rbind" => "bind",
            _ => k,
        }
    }
    let mut out: Vec<String> = defaults.iter().map(|s| s.to_string()).collect();
    for o in extra {
        match out.iter().position(|x| key(x) == key(o)) {
            Some(i) => out[i] = o.clone(),
            None => out.push(o.clone()),
        }
    }
    out
}

/// What [`mount_list`] needs beyond the user's mounts.
pub(crate) struct MountPlan<'a> {
    pub privileged: bool,
    pub writable_cgroups: bool,
    pub shm: Shm,
    pub read_only_rootfs: bool,
    pub etc_files: [(&'a str, &'a Path); 3],
    pub init: Option<(&'a str, &'a Path)>,
    pub user: &'a [ResolvedMount],
}

/// The container's /dev/shm.
pub(crate) enum Shm {
    /// Its own tmpfs of this many bytes (private IPC namespace).
    Tmpfs(u64),
    /// The host's /dev/shm (`--ipc host`).
    Host,
    /// A tmpfs the daemon mounted on the host (`--ipc shareable`), or that
    /// of the container whose IPC namespace this one joins (`--ipc
    /// container:<name>`): POSIX shared memory is then shared as SysV IPC
    /// is.
    Bind(std::path::PathBuf),
    /// None at all (`--ipc none`).
    None,
}

fn mount(dest: &str, typ: &str, source: &str, options: Vec<String>) -> Value {
    json!({ "destination": dest, "type": typ, "source": source, "options": options })
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The spec's mounts: the defaults every container gets (less those a
/// user mount replaces), the /etc files the daemon wrote (ditto), the init
/// binary, then the user's mounts with parents before children.
pub(crate) fn mount_list(plan: &MountPlan) -> Vec<Value> {
    let sys_ro = if plan.privileged { vec![] } else { vec!["ro"] };
    let cgroup_ro = if plan.privileged || plan.writable_cgroups {
        vec![]
    } else {
        vec!["ro"]
    };
    let mut defaults = vec![
        mount(
            "/proc",
            "proc",
            "proc",
            strs(&["nosuid", "noexec", "nodev"]),
        ),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            strs(&["nosuid", "strictatime", "mode=755", "size=65536k"]),
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            strs(&[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ]),
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            [strs(&["nosuid", "noexec", "nodev"]), strs(&sys_ro)].concat(),
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            [
                strs(&["nosuid", "noexec", "nodev", "relatime"]),
                strs(&cgroup_ro),
            ]
            .concat(),
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            strs(&["nosuid", "noexec", "nodev"]),
        ),
    ];
    match &plan.shm {
        Shm::Tmpfs(size) => defaults.push(mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            vec![
                "nosuid".into(),
                "noexec".into(),
                "nodev".into(),
                "mode=1777".into(),
                format!("size={size}"),
            ],
        )),
        Shm::Host => defaults.push(mount(
            "/dev/shm",
            "bind",
            "/dev/shm",
            strs(&["rbind", "rprivate", "nosuid", "noexec", "nodev"]),
        )),
        Shm::Bind(source) => defaults.push(mount(
            "/dev/shm",
            "bind",
            &source.to_string_lossy(),
            strs(&["rbind", "rprivate", "nosuid", "noexec", "nodev"]),
        )),
        Shm::None => {}
    }
    // A user mount replaces the default at its destination, and those
    // beneath it (`-v x:/dev` takes /dev/pts and /dev/shm with it): they
    // would be mounted first and hidden anyway.
    let covered = |dest: &str| {
        plan.user.iter().any(|m| {
            dest == m.destination
                || dest
                    .strip_prefix(m.destination.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    };
    let mut out: Vec<Value> = defaults
        .into_iter()
        .filter(|m| !covered(m["destination"].as_str().unwrap_or_default()))
        .collect();

    // The daemon's /etc files and the init binary go with the user's
    // mounts, as dockerd sorts them together: `-v x:/etc` still gets the
    // container's own hosts file over it.
    let mut layered: Vec<(String, Value)> = Vec::new();
    let replaced = |dest: &str| plan.user.iter().any(|m| m.destination == dest);
    for (dest, src) in plan.etc_files {
        // Writable unless the rootfs is read-only, as dockerd makes them.
        let mut opts = strs(&["rbind", "rprivate"]);
        if plan.read_only_rootfs {
            opts.push("ro".into());
        }
        if !replaced(dest) {
            layered.push((
                dest.to_owned(),
                mount(dest, "bind", &src.to_string_lossy(), opts),
            ));
        }
    }
    if let Some((dest, src)) = plan.init {
        layered.push((
            dest.to_owned(),
            mount(dest, "bind", &src.to_string_lossy(), strs(&["bind", "ro"])),
        ));
    }
    for m in plan.user {
        let (typ, source, mut opts) = match m.kind {
            MountKind::Bind => (
                "bind",
                m.source.to_string_lossy().into_owned(),
                merge_options(&["rbind", "rprivate"], &m.options),
            ),
            MountKind::Tmpfs => {
                let mut defaults = vec!["noexec", "nosuid", "nodev", "rprivate"];
                if m.options.is_empty() {
                    // dockerd's size for a tmpfs given no options at all.
                    defaults.push("size=65536k");
                }
                (
                    "tmpfs",
                    "tmpfs".to_owned(),
                    merge_options(&defaults, &m.options),
                )
            }
        };
        if m.read_only {
            opts = merge_options(&[], &[opts, vec!["ro".into()]].concat());
        }
        layered.push((
            m.destination.clone(),
            mount(&m.destination, typ, &source, opts),
        ));
    }
    // Stable by depth: a parent (fewer components) is mounted before
    // anything beneath it, and equal depths keep their order.
    layered.sort_by_key(|(dest, _)| dest.split('/').filter(|s| !s.is_empty()).count());
    out.extend(layered.into_iter().map(|(_, m)| m));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::containers::{BindOptions, TmpfsOptions, VolumeOptions};

    #[test]
    fn clean_is_lexical() {
        assert_eq!(clean("/a/./b//c/"), "/a/b/c");
        assert_eq!(clean("/a/../../b"), "/b");
        assert_eq!(clean("/"), "/");
    }

    #[test]
    fn binds_host_paths_and_modes() {
        let m = parse_bind("/host//dir/:/data:ro,rslave").unwrap();
        assert_eq!(m.source, MountSource::HostPath("/host/dir".into()));
        assert_eq!(m.destination, "/data");
        assert!(m.read_only && m.create_host_path);
        assert_eq!(m.propagation.as_deref(), Some("rslave"));
        let r = m.resolve(None);
        assert_eq!(
            (r.kind, r.options.clone()),
            (MountKind::Bind, vec!["rslave".to_string()])
        );

        let m = parse_bind("/a:/b:z,rw").unwrap();
        assert!(!m.read_only);
        let m = parse_bind("/a:/b").unwrap();
        assert!(!m.read_only && m.propagation.is_none());
    }

    #[test]
    fn binds_named_and_anonymous_volumes() {
        let m = parse_bind("named:/named:nocopy").unwrap();
        assert_eq!(
            m.source,
            MountSource::Volume {
                name: Some("named".into()),
                subpath: None,
                no_copy: true
            }
        );
        let r = m.resolve(Some("/var/lib/berth/volumes/named/_data".into()));
        assert_eq!(
            r.source,
            PathBuf::from("/var/lib/berth/volumes/named/_data")
        );
        let m = parse_bind("/anon").unwrap();
        assert_eq!(
            m.source,
            MountSource::Volume {
                name: None,
                subpath: None,
                no_copy: false
            }
        );
    }

    #[test]
    fn bad_binds_read_as_docker_says() {
        for (spec, want) in [
            (
                "/host:data",
                "invalid volume specification: '/host:data': invalid mount path: 'data' mount path must be absolute",
            ),
            ("/foo:rw", "invalid volume specification: '/foo:rw'"),
            ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
            (":/x", "invalid volume specification: ':/x'"),
            (
                "/a:/b:rx",
                "invalid volume specification: '/a:/b:rx': invalid mode: rx",
            ),
            (
                "/a:/b:ro,rw",
                "invalid volume specification: '/a:/b:ro,rw': invalid mode: ro,rw",
            ),
            (
                "/a:/",
                "invalid volume specification: '/a:/': invalid specification: destination can't be '/'",
            ),
        ] {
            assert_eq!(parse_bind(spec).unwrap_err().to_string(), want, "{spec}");
        }
        let e = parse_bind("./rel:/x").unwrap_err().to_string();
        assert!(
            e.contains("includes invalid characters for a local volume name"),
            "{e}"
        );
        let e = parse_bind("/a:/b:nocopy").unwrap_err().to_string();
        assert!(e.contains("nocopy"), "{e}");
        let e = parse_bind("vol:/b:rshared").unwrap_err().to_string();
        assert!(e.contains("propagation"), "{e}");
    }

    fn api(kind: &str, src: &str, dst: &str) -> ApiMount {
        ApiMount {
            kind: kind.into(),
            source: src.into(),
            target: dst.into(),
            ..Default::default()
        }
    }

    #[test]
    fn api_mounts() {
        let mut m = api("bind", "/srv", "/srv");
        m.read_only = true;
        m.bind_options = Some(BindOptions {
            propagation: Some("rslave".into()),
            non_recursive: Some(true),
            ..Default::default()
        });
        let r = parse_api_mount(&m).unwrap();
        assert!(!r.create_host_path && r.read_only && r.non_recursive);
        assert_eq!(
            r.resolve(None).options,
            vec!["rslave".to_string(), "bind".to_string()]
        );

        let mut m = api("volume", "vol1", "/vol");
        m.volume_options = Some(VolumeOptions {
            subpath: Some("sub/dir".into()),
            no_copy: Some(true),
            ..Default::default()
        });
        let r = parse_api_mount(&m).unwrap();
        assert_eq!(
            r.source,
            MountSource::Volume {
                name: Some("vol1".into()),
                subpath: Some("sub/dir".into()),
                no_copy: true
            }
        );

        let mut m = api("tmpfs", "", "/scratch");
        m.tmpfs_options = Some(TmpfsOptions {
            size_bytes: Some(1 << 20),
            mode: Some(0o1700),
        });
        let r = parse_api_mount(&m).unwrap();
        assert_eq!(
            r.tmpfs_options,
            vec!["size=1m".to_string(), "mode=1700".to_string()]
        );
    }

    #[test]
    fn bad_api_mounts_name_the_field() {
        let cases = [
            (
                api("bind", "", "/x"),
                "invalid mount config for type \"bind\": field Source must not be empty",
            ),
            (
                api("bind", "rel", "/x"),
                "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute",
            ),
            (
                api("bind", "/a", "x"),
                "invalid mount config for type \"bind\": invalid mount path: 'x' mount path must be absolute",
            ),
            (
                api("tmpfs", "/a", "/x"),
                "invalid mount config for type \"tmpfs\": field Source must not be specified",
            ),
            (
                api("npipe", "a", "/x"),
                "invalid mount config for type \"npipe\": mount type unknown",
            ),
            (
                api("volume", "v", ""),
                "invalid mount config for type \"volume\": field Target must not be empty",
            ),
        ];
        for (m, want) in cases {
            assert_eq!(parse_api_mount(&m).unwrap_err().to_string(), want);
        }
        let mut m = api("volume", "vol", "/x");
        m.bind_options = Some(BindOptions::default());
        assert!(
            parse_api_mount(&m)
                .unwrap_err()
                .to_string()
                .contains("BindOptions")
        );
        let mut m = api("volume", "vol", "/x");
        m.volume_options = Some(VolumeOptions {
            subpath: Some("../up".into()),
            ..Default::default()
        });
        assert!(
            parse_api_mount(&m)
                .unwrap_err()
                .to_string()
                .contains("subpath")
        );
        // dockerd's volume names have two characters at least.
        let e = parse_api_mount(&api("volume", "v", "/x"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("invalid characters for a local volume name"),
            "{e}"
        );
    }

    #[test]
    fn tmpfs_entries() {
        let r = parse_tmpfs("/run", "size=64m,exec,ro").unwrap();
        assert!(r.read_only);
        assert_eq!(
            r.tmpfs_options,
            vec!["size=64m".to_string(), "exec".to_string()]
        );
        let e = parse_tmpfs("run", "").unwrap_err().to_string();
        assert!(e.contains("must be absolute"), "{e}");
        let e = parse_tmpfs("/run", "bogus=1").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn duplicates_and_anonymous_volumes() {
        let host = HostConfig {
            binds: Some(vec!["/a:/data".into()]),
            tmpfs: Some([("/data/".to_string(), String::new())].into()),
            ..Default::default()
        };
        let e = parse_mounts(&ContainerConfig::default(), &host).unwrap_err();
        assert_eq!(e.to_string(), "Duplicate mount point: /data");

        let host = HostConfig {
            binds: Some(vec!["/a:/data".into()]),
            ..Default::default()
        };
        let config = ContainerConfig {
            volumes: Some(
                [
                    ("/data".to_string(), Default::default()),
                    ("/cache".to_string(), Default::default()),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let m = parse_mounts(&config, &host).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].destination, "/cache");
        assert!(matches!(
            m[1].source,
            MountSource::Volume { name: None, .. }
        ));
    }

    #[test]
    fn option_merge_lets_later_flags_win() {
        let o = merge_options(
            &["noexec", "nosuid", "nodev", "size=65536k"],
            &["exec".into(), "size=1m".into()],
        );
        assert_eq!(o, vec!["exec", "nosuid", "nodev", "size=1m"]);
    }
}
