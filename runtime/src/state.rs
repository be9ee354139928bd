//! Container state under `--root`: one directory per container holding
//! `state.json`, the config the container was created with, and the
//! `exec.fifo` that holds a created container until `start`.
//!
//! State files are replaced by rename, never rewritten in place, so a
//! crash leaves the old or the new state. They are not fsynced: the root
//! lives under /run, and a power loss takes the containers with it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroups::{AnyManager, CgroupManager, CgroupState};

pub const STATE_FILE: &str = "state.json";
pub const CONFIG_FILE: &str = "config.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container {0} already exists")]
    Exists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("invalid container id {0:?}: use letters, digits, '_', '+', '-' and '.'")]
    InvalidId(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt state: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

pub type Result<T> = std::result::Result<T, StateError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Lifecycle status, as the OCI runtime spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What the runtime remembers about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    /// Host pid of the container's init; 0 until it exists.
    pub pid: i32,
    /// The init's start time in clock ticks since boot (/proc/<pid>/stat
    /// field 22): a pid alone may be reused once the init is gone.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub cgroup: CgroupState,
    #[serde(default)]
    pub rootless: bool,
    /// The init finished setting up: until then the container is
    /// creating, whatever else is true, so nothing acts on a half-built one.
    #[serde(default)]
    pub ready: bool,
}

/// The state document `berth-runtime state` prints: the OCI fields plus
/// runc's `rootfs`, `created` and `owner`, which clients read too.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OciState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The OCI runtime spec version berth-runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

/// Fields of /proc/<pid>/stat the runtime needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

/// Parse /proc/<pid>/stat; `None` when the process does not exist.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let raw = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat(&raw)
}

fn parse_proc_stat(raw: &str) -> Option<ProcStat> {
    // comm may contain spaces and parentheses; it ends at the last ')'.
    let rest = &raw[raw.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // rest starts at field 3 (state); starttime is field 22.
    let state = fields.first()?.chars().next()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

impl ContainerState {
    /// Whether the recorded init is still the same live process.
    pub fn init_alive(&self) -> bool {
        if self.pid <= 0 {
            return false;
        }
        match proc_stat(self.pid) {
            Some(st) => st.start_time == self.start_time && st.state != 'Z' && st.state != 'X',
            None => false,
        }
    }

    /// The current status, derived from the system rather than stored: the
    /// init may have exited since the runtime last ran.
    pub fn status(&self, dir: &StateDir) -> Status {
        if self.pid == 0 {
            return Status::Creating;
        }
        if !self.init_alive() {
            return Status::Stopped;
        }
        if !self.ready {
            return Status::Creating;
        }
        if dir.path.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if AnyManager::from_state(&self.cgroup)
            .frozen()
            .unwrap_or(false)
        {
            return Status::Paused;
        }
        Status::Running
    }

    pub fn oci(&self, status: Status) -> OciState {
        OciState {
            oci_version: OCI_VERSION.to_string(),
            id: self.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

/// runc's rule for ids: they become directory and cgroup names.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidId(id.to_string()))
    }
}

/// A container's directory under the runtime root.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub id: String,
    pub path: PathBuf,
}

/// An exclusive lock on a container's state, held until dropped.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateDir {
    /// Make the directory of a new container; fails if the id is taken.
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(io_err(root))?;
        let path = root.join(id);
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => Ok(StateDir {
                id: id.to_string(),
                path,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StateError::Exists(id.to_string()))
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The directory of an existing container.
    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        let path = root.join(id);
        if !path.is_dir() {
            return Err(StateError::NotFound(id.to_string()));
        }
        Ok(StateDir {
            id: id.to_string(),
            path,
        })
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path.join(CONFIG_FILE)
    }

    /// Serialize operations that change a container (start, delete, exec).
    pub fn lock(&self) -> Result<StateLock> {
        let file = File::open(&self.path).map_err(io_err(&self.path))?;
        // SAFETY: flock on an fd we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(io_err(&self.path)(std::io::Error::last_os_error()));
        }
        Ok(StateLock { _file: file })
    }

    pub fn load(&self) -> Result<ContainerState> {
        let path = self.path.join(STATE_FILE);
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(self.id.clone()));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        serde_json::from_slice(&raw).map_err(|source| StateError::Corrupt { path, source })
    }

    pub fn save(&self, state: &ContainerState) -> Result<()> {
        let json = serde_json::to_vec(state).expect("state serializes");
        self.write_atomic(STATE_FILE, &json)
    }

    /// Write `name` in the state directory by rename, so readers never see
    /// a partial file.
    pub fn write_atomic(&self, name: &str, data: &[u8]) -> Result<()> {
        let tmp = self.path.join(format!(".{name}.tmp"));
        let dest = self.path.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        f.write_all(data).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &dest).map_err(io_err(&dest))
    }

    /// Remove the directory and everything in it.
    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&self.path)(e)),
        }
    }
}

/// Ids of every container under `root`, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(root)(e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| validate_id(id).is_ok() && !id.starts_with('.'))
        .collect();
    ids.sort();
    Ok(ids)
}

/// Write a pid file atomically (clients poll for it).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    std::fs::write(&tmp, pid.to_string()).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        let raw =
            "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10 ...";
        let st = parse_proc_stat(raw).unwrap();
        assert_eq!(st.state, 'S');
        assert_eq!(st.start_time, 98765);
    }

    #[test]
    fn own_process_is_alive() {
        let me = std::process::id() as i32;
        let st = proc_stat(me).unwrap();
        let state = ContainerState {
            id: "x".into(),
            pid: me,
            start_time: st.start_time,
            bundle: "/".into(),
            rootfs: "/".into(),
            created: String::new(),
            owner: String::new(),
            annotations: Default::default(),
            cgroup: CgroupState::None,
            rootless: false,
            ready: true,
        };
        assert!(state.init_alive());
        let reused = ContainerState {
            start_time: st.start_time + 1,
            ..state
        };
        assert!(
            !reused.init_alive(),
            "a different start time means a reused pid"
        );
    }

    #[test]
    fn ids() {
        for ok in ["abc", "a.b-c_d+e", "0123"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "ä"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn create_twice_fails_and_load_roundtrips() {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir::create(root.path(), "c1").unwrap();
        assert!(matches!(
            StateDir::create(root.path(), "c1"),
            Err(StateError::Exists(_))
        ));
        assert!(matches!(dir.load(), Err(StateError::NotFound(_))));
        let st = ContainerState {
            id: "c1".into(),
            pid: 0,
            start_time: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "now".into(),
            owner: String::new(),
            annotations: Default::default(),
            cgroup: CgroupState::None,
            rootless: false,
            ready: true,
        };
        dir.save(&st).unwrap();
        assert_eq!(dir.load().unwrap().bundle, PathBuf::from("/b"));
        assert_eq!(st.status(&dir), Status::Creating);
        assert_eq!(list_ids(root.path()).unwrap(), vec!["c1".to_string()]);
        dir.remove().unwrap();
        assert!(list_ids(root.path()).unwrap().is_empty());
    }
}
