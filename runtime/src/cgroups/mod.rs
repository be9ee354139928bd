//! Cgroup managers: one trait, a backend per cgroup hierarchy layout.
//!
//! The container init never touches cgroupfs itself: the runtime process
//! creates the cgroup, applies the limits and places the first process,
//! then the init only mounts what [`AnyManager::container_mounts`] describes.

mod bpf;
mod devices;
mod fs;
pub mod mountinfo;
pub mod path;
pub mod stats;
pub mod v1;
pub mod v2;

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

/// How the host mounts its cgroup hierarchies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupSetup {
    /// Only cgroup v1 hierarchies.
    Legacy,
    /// v1 controllers plus a cgroup2 mount (usually /sys/fs/cgroup/unified).
    Hybrid,
    /// A single cgroup2 hierarchy at /sys/fs/cgroup.
    Unified,
}

/// Errors from cgroup management; each carries the path or value involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("creating cgroup {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("removing cgroup {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no cgroup hierarchy is mounted (looked in /proc/self/mountinfo)")]
    NoHierarchy,
    #[error("cgroup controller {0} is not available on this host")]
    MissingController(String),
    #[error("invalid cgroupsPath {path:?}: {reason}")]
    InvalidPath { path: PathBuf, reason: String },
    #[error("linux.resources.{field}: {reason}")]
    InvalidResource { field: String, reason: String },
    #[error("cgroup {path} does not exist (removed?)")]
    Gone { path: PathBuf },
    #[error("OOM notifier for {path}: {op}: {source}")]
    Notify {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    /// Loading, attaching or replacing the eBPF device filter of a cgroup
    /// v2 directory; `log` is the verifier's output on a failed load.
    #[error("device filter for {path}: {op}: {source}{}", verifier_log(.log))]
    DeviceFilter {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
        log: String,
    },
    #[error("cgroup {path} did not become {state} within {waited_ms} ms")]
    FreezeTimeout {
        path: PathBuf,
        state: String,
        waited_ms: u64,
    },
}

pub type Result<T> = std::result::Result<T, CgroupError>;

fn verifier_log(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!("; verifier log:\n{}", log.trim_end())
    }
}

/// Freezer state of a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Frozen,
    Thawed,
}

/// One cgroup filesystem the container init must mount under the
/// container's cgroup mount point (usually /sys/fs/cgroup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupMount {
    /// Directory below the cgroup mount point: "memory", "cpu,cpuacct",
    /// "systemd", "unified", or "" for a v2 host (mount at the point itself).
    pub subdir: String,
    /// "cgroup" or "cgroup2".
    pub fstype: String,
    /// Mount data for a fresh mount inside a cgroup namespace: the
    /// subsystems ("memory", "cpu,cpuacct", "none,name=systemd") or "" for v2.
    pub data: String,
    /// Host path of the container's cgroup in this hierarchy, bind-mounted
    /// when the container has no cgroup namespace of its own.
    pub host_path: PathBuf,
    /// Symlinks to create next to `subdir` for co-mounted controllers
    /// (e.g. "cpu" and "cpuacct" pointing at "cpu,cpuacct").
    pub symlinks: Vec<String>,
}

/// What a container's state file records about its cgroup, enough to
/// rebuild the manager in a later runtime invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CgroupState {
    V1(v1::V1State),
    V2(v2::V2State),
    None,
}

/// Operations every backend provides.
pub trait CgroupManager {
    /// Create the cgroup, and any missing parents, then apply `resources`.
    fn create(&mut self, resources: Option<&LinuxResources>) -> Result<()>;
    /// Apply resource limits to an existing cgroup (also used by
    /// `update`). On v2, device rules become an eBPF program that
    /// replaces the cgroup's previous one.
    fn apply(&self, resources: &LinuxResources) -> Result<()>;
    /// Move a process (and its threads) into the cgroup.
    fn add_task(&self, pid: Pid) -> Result<()>;
    /// Every process in the cgroup and its descendants.
    fn pids(&self) -> Result<Vec<Pid>>;
    /// Freeze or thaw every process in the cgroup.
    fn freeze(&self, state: FreezerState) -> Result<()>;
    /// Whether the cgroup is frozen.
    fn frozen(&self) -> Result<bool>;
    /// Remove the cgroup and the parents this manager created, if empty.
    fn remove(&self) -> Result<()>;
    /// The state to persist.
    fn state(&self) -> CgroupState;
    /// Filesystems the init mounts for a `cgroup` mount entry.
    fn container_mounts(&self) -> Vec<CgroupMount>;
    /// Resource usage now. Reads each file once (about a dozen), no
    /// directory walks; works as well on a manager rebuilt with
    /// `from_state`. A controller the cgroup lacks leaves its section at
    /// the defaults; a cgroup that no longer exists is
    /// [`CgroupError::Gone`].
    fn stats(&self) -> Result<stats::Stats>;
    /// A notifier of OOM kills in the cgroup; see [`stats::OomNotifier`].
    fn oom_notifier(&self) -> Result<stats::OomNotifier>;
}

/// Enum dispatch over the closed set of backends.
#[derive(Debug)]
pub enum AnyManager {
    V1(v1::V1Manager),
    V2(v2::V2Manager),
    /// No cgroup at all; only chosen explicitly (`--cgroup-manager=none`).
    None,
}

/// Which backend to use: detected from the host, or explicitly none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagerKind {
    Auto,
    None,
}

impl AnyManager {
    /// A manager for a new container. `cgroups_path` is the config's
    /// `linux.cgroupsPath`: absolute paths are taken below each hierarchy's
    /// root, relative ones below the cgroup the runtime itself runs in
    /// (runc's cgroupfs driver does the same). Without one, the container
    /// gets `/<id>`.
    pub fn new(kind: ManagerKind, cgroups_path: Option<&Path>, id: &str) -> Result<Self> {
        Self::with_cache(kind, cgroups_path, id, None)
    }

    /// As [`AnyManager::new`], with the host's cgroup mounts kept in
    /// `cache` between runs (see [`mountinfo::read_cached`]).
    pub fn with_cache(
        kind: ManagerKind,
        cgroups_path: Option<&Path>,
        id: &str,
        cache: Option<&Path>,
    ) -> Result<Self> {
        if kind == ManagerKind::None {
            return Ok(AnyManager::None);
        }
        let path = match cgroups_path {
            Some(p) => p.to_path_buf(),
            None => PathBuf::from("/").join(id),
        };
        // One mountinfo parse serves both the detection and the manager.
        let mounts = match cache {
            Some(c) => mountinfo::read_cached(c)?,
            None => mountinfo::read()?,
        };
        match setup_from_mounts(&mounts)? {
            CgroupSetup::Unified => {
                let root = mounts
                    .iter()
                    .find(|m| m.v2 && m.mount_point == Path::new(mountinfo::CGROUP_ROOT));
                Ok(AnyManager::V2(v2::V2Manager::with_mount(&path, root)?))
            }
            CgroupSetup::Legacy | CgroupSetup::Hybrid => {
                Ok(AnyManager::V1(v1::V1Manager::from_mounts(&path, &mounts)?))
            }
        }
    }

    /// Rebuild the manager of an existing container from its state.
    pub fn from_state(state: &CgroupState) -> Self {
        match state {
            CgroupState::V1(s) => AnyManager::V1(v1::V1Manager::from_state(s)),
            CgroupState::V2(s) => AnyManager::V2(v2::V2Manager::from_state(s)),
            CgroupState::None => AnyManager::None,
        }
    }

    /// How the first process of a container or exec enters the cgroup;
    /// see [`Placement`].
    pub fn placement(&self) -> Result<Placement> {
        match self {
            AnyManager::V1(m) => m.placement(),
            AnyManager::V2(m) => m.placement(),
            AnyManager::None => Ok(Placement::default()),
        }
    }
}

/// Moving a process between cgroups by writing its pid to cgroup.procs
/// takes the kernel's global threadgroup lock for writing, which waits for
/// an RCU grace period: 5–25 ms on this kind of host, most of a container
/// start. Two ways around it: clone3(CLONE_INTO_CGROUP) starts the child
/// in a cgroup2 directory, and a single-threaded child that writes "0"
/// (itself) to a v1 `tasks` file moves only its own thread, which the
/// kernel does without that lock.
#[derive(Debug, Default)]
pub struct Placement {
    /// The cgroup2 directory to clone into (v2, or a hybrid host's
    /// unified hierarchy).
    pub clone_into: Option<std::os::fd::OwnedFd>,
    /// v1 `tasks` files the child writes "0" to.
    pub tasks: Vec<PathBuf>,
    /// cgroup.procs files the child writes "0" to when clone3 could not
    /// place it (old kernels): correct, only slower.
    pub fallback: Vec<PathBuf>,
}

impl Placement {
    /// Run in the cloned child; `cloned_in` says whether clone3 already
    /// put it in `clone_into`.
    pub fn join_self(&self, cloned_in: bool) -> Result<()> {
        let fallback: &[PathBuf] = if cloned_in { &[] } else { &self.fallback };
        for path in self.tasks.iter().chain(fallback) {
            fs::write(path, "0")?;
        }
        Ok(())
    }
}

/// An O_PATH fd of a cgroup2 directory, for clone3(CLONE_INTO_CGROUP).
fn open_cgroup_dir(path: &Path) -> Result<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map(Into::into)
        .map_err(|source| CgroupError::Read {
            path: path.to_path_buf(),
            source,
        })
}

macro_rules! dispatch {
    ($self:ident, $m:ident => $e:expr, none => $n:expr) => {
        match $self {
            AnyManager::V1($m) => $e,
            AnyManager::V2($m) => $e,
            AnyManager::None => $n,
        }
    };
}

impl CgroupManager for AnyManager {
    fn create(&mut self, resources: Option<&LinuxResources>) -> Result<()> {
        dispatch!(self, m => m.create(resources), none => Ok(()))
    }
    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        dispatch!(self, m => m.apply(resources), none => Ok(()))
    }
    fn add_task(&self, pid: Pid) -> Result<()> {
        dispatch!(self, m => m.add_task(pid), none => Ok(()))
    }
    fn pids(&self) -> Result<Vec<Pid>> {
        dispatch!(self, m => m.pids(), none => Ok(Vec::new()))
    }
    fn freeze(&self, state: FreezerState) -> Result<()> {
        dispatch!(self, m => m.freeze(state), none => Err(CgroupError::MissingController("freezer".into())))
    }
    fn frozen(&self) -> Result<bool> {
        dispatch!(self, m => m.frozen(), none => Ok(false))
    }
    fn remove(&self) -> Result<()> {
        dispatch!(self, m => m.remove(), none => Ok(()))
    }
    fn state(&self) -> CgroupState {
        dispatch!(self, m => m.state(), none => CgroupState::None)
    }
    fn container_mounts(&self) -> Vec<CgroupMount> {
        dispatch!(self, m => m.container_mounts(), none => Vec::new())
    }
    fn stats(&self) -> Result<stats::Stats> {
        dispatch!(self, m => m.stats(), none => Err(CgroupError::MissingController("stats need a cgroup (--cgroup-manager none)".into())))
    }
    fn oom_notifier(&self) -> Result<stats::OomNotifier> {
        dispatch!(self, m => m.oom_notifier(), none => Err(CgroupError::MissingController("memory".into())))
    }
}

/// Detect the host's cgroup layout from what is mounted at /sys/fs/cgroup.
pub fn detect_setup() -> Result<CgroupSetup> {
    setup_from_mounts(&mountinfo::read()?)
}

/// The layout that a set of cgroup mounts (from [`mountinfo::parse`]) makes.
pub fn setup_from_mounts(mounts: &[mountinfo::CgroupMountInfo]) -> Result<CgroupSetup> {
    let root = Path::new(mountinfo::CGROUP_ROOT);
    if mounts.iter().any(|m| m.v2 && m.mount_point == root) {
        return Ok(CgroupSetup::Unified);
    }
    let v1 = mounts.iter().any(|m| !m.v2);
    let v2 = mounts.iter().any(|m| m.v2);
    match (v1, v2) {
        (true, true) => Ok(CgroupSetup::Hybrid),
        (true, false) => Ok(CgroupSetup::Legacy),
        _ => Err(CgroupError::NoHierarchy),
    }
}

/// Allow rules for the devices every container gets: null, zero, full,
/// random, urandom, tty, console, ptmx and the pts slaves, all `rwm`.
/// The caller appends them after the config's own rules when it wants them.
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    const CHAR: &[(i64, Option<i64>)] = &[
        (1, Some(3)),
        (1, Some(5)),
        (1, Some(7)),
        (1, Some(8)),
        (1, Some(9)),
        (5, Some(0)),
        (5, Some(1)),
        (5, Some(2)),
        (136, None),
    ];
    CHAR.iter()
        .map(|&(major, minor)| {
            let mut r = LinuxDeviceCgroup::default();
            r.set_allow(true)
                .set_typ(Some(LinuxDeviceType::C))
                .set_major(Some(major))
                .set_minor(minor)
                .set_access(Some("rwm".to_owned()));
            r
        })
        .collect()
}

/// A device rule in the devices.allow / devices.deny syntax
/// (`c 1:3 rwm`, `*` for an absent or negative number). `None` for FIFO
/// rules: the devices controller does not govern FIFOs.
pub fn device_rule_string(rule: &LinuxDeviceCgroup) -> Result<Option<String>> {
    let typ = match rule.typ() {
        None | Some(LinuxDeviceType::A) => 'a',
        Some(LinuxDeviceType::B) => 'b',
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        Some(LinuxDeviceType::P) => return Ok(None),
    };
    let num = |n: Option<i64>| match n {
        Some(n) if n >= 0 => n.to_string(),
        _ => "*".to_owned(),
    };
    let access = match rule.access().as_deref() {
        None | Some("") => "rwm",
        Some(a) => {
            if !a.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
                return Err(CgroupError::InvalidResource {
                    field: "devices.access".into(),
                    reason: format!("{a:?} is not a subset of \"rwm\""),
                });
            }
            a
        }
    };
    Ok(Some(format!(
        "{typ} {}:{} {access}",
        num(rule.major()),
        num(rule.minor())
    )))
}

/// Whether a rule removes every device: the kernel treats any type-`a`
/// deny as "deny all", whatever the numbers.
pub fn is_deny_all(rule: &LinuxDeviceCgroup) -> bool {
    !rule.allow() && matches!(rule.typ(), None | Some(LinuxDeviceType::A))
}

/// Validate a hugepage size ("2MB", "1GB", "64KB") before it becomes part
/// of a file name.
pub fn check_hugepage_size(size: &str) -> Result<()> {
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(unit, "KB" | "MB" | "GB" | "TB" | "PB");
    if ok {
        Ok(())
    } else {
        Err(CgroupError::InvalidResource {
            field: "hugepageLimits.pageSize".into(),
            reason: format!("{size:?} is not a size like \"2MB\" or \"1GB\""),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(text: &str) -> Result<CgroupSetup> {
        setup_from_mounts(&mountinfo::parse(text))
    }

    #[test]
    fn detects_layouts() {
        let unified = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(setup(unified).unwrap(), CgroupSetup::Unified);
        let hybrid = "\
31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
        assert_eq!(setup(hybrid).unwrap(), CgroupSetup::Hybrid);
        let legacy = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(setup(legacy).unwrap(), CgroupSetup::Legacy);
        assert!(matches!(
            setup("22 1 0:21 / /sys rw - sysfs sysfs rw\n"),
            Err(CgroupError::NoHierarchy)
        ));
    }

    fn rule(
        allow: bool,
        typ: Option<LinuxDeviceType>,
        major: Option<i64>,
        minor: Option<i64>,
        access: Option<&str>,
    ) -> LinuxDeviceCgroup {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow)
            .set_typ(typ)
            .set_major(major)
            .set_minor(minor)
            .set_access(access.map(str::to_owned));
        r
    }

    #[test]
    fn formats_device_rules() {
        use LinuxDeviceType::*;
        let f = |r: &LinuxDeviceCgroup| device_rule_string(r).unwrap();
        assert_eq!(
            f(&rule(true, Some(C), Some(1), Some(3), Some("rwm"))).unwrap(),
            "c 1:3 rwm"
        );
        assert_eq!(
            f(&rule(true, Some(C), Some(136), None, Some("rw"))).unwrap(),
            "c 136:* rw"
        );
        assert_eq!(
            f(&rule(false, None, None, None, None)).unwrap(),
            "a *:* rwm"
        );
        assert_eq!(
            f(&rule(true, Some(B), Some(8), Some(-1), Some("r"))).unwrap(),
            "b 8:* r"
        );
        assert_eq!(
            f(&rule(true, Some(U), Some(4), Some(1), Some(""))).unwrap(),
            "c 4:1 rwm"
        );
        assert_eq!(f(&rule(true, Some(P), None, None, None)), None);
        let e = device_rule_string(&rule(true, Some(C), Some(1), Some(3), Some("rx"))).unwrap_err();
        assert!(matches!(e, CgroupError::InvalidResource { .. }), "{e}");
    }

    #[test]
    fn recognises_deny_all() {
        use LinuxDeviceType::*;
        assert!(is_deny_all(&rule(false, None, None, None, Some("rwm"))));
        assert!(is_deny_all(&rule(false, Some(A), None, None, None)));
        assert!(!is_deny_all(&rule(true, Some(A), None, None, None)));
        assert!(!is_deny_all(&rule(false, Some(C), None, None, None)));
    }

    #[test]
    fn default_rules_are_the_usual_nine() {
        let rules: Vec<String> = default_device_rules()
            .iter()
            .map(|r| device_rule_string(r).unwrap().unwrap())
            .collect();
        assert_eq!(
            rules,
            [
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:1 rwm",
                "c 5:2 rwm",
                "c 136:* rwm"
            ]
        );
        assert!(default_device_rules().iter().all(|r| r.allow()));
    }

    #[test]
    fn validates_hugepage_sizes() {
        for ok in ["2MB", "1GB", "64KB"] {
            check_hugepage_size(ok).unwrap();
        }
        for bad in ["", "MB", "2mb", "2M", "2MB/../x", "1.5GB", "2 MB"] {
            assert!(check_hugepage_size(bad).is_err(), "{bad}");
        }
    }
}
