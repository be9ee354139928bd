//! Cgroup managers: one trait, a backend per cgroup hierarchy layout.
//!
//! The container init never touches cgroupfs itself: the runtime process
//! creates the cgroup, applies the limits and places the first process,
//! then the init only mounts what [`AnyManager::container_mounts`] describes.

pub mod v1;
pub mod v2;

use std::path::{Path, PathBuf};

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
}

pub type Result<T> = std::result::Result<T, CgroupError>;

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
    /// Apply resource limits to an existing cgroup (also used by `update`).
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
        if kind == ManagerKind::None {
            return Ok(AnyManager::None);
        }
        let path = match cgroups_path {
            Some(p) => p.to_path_buf(),
            None => PathBuf::from("/").join(id),
        };
        match detect_setup()? {
            CgroupSetup::Unified => Ok(AnyManager::V2(v2::V2Manager::new(&path)?)),
            CgroupSetup::Legacy | CgroupSetup::Hybrid => {
                Ok(AnyManager::V1(v1::V1Manager::new(&path)?))
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

    /// On cgroup v2, an open fd of the container's cgroup directory for
    /// clone3(CLONE_INTO_CGROUP); `None` on v1 or without a cgroup.
    pub fn clone_into_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match self {
            AnyManager::V2(m) => m.dir_fd(),
            _ => None,
        }
    }
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
}

/// Detect the host's cgroup layout from what is mounted at /sys/fs/cgroup.
pub fn detect_setup() -> Result<CgroupSetup> {
    todo!("cgroups helper")
}
