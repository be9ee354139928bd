//! The runtime's public API: a [`Runtime`] rooted at a state directory
//! manages containers by id across separate invocations, as runc does.

mod create;
mod exec;
pub mod foreground;
mod lifecycle;
mod resources;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::cgroups::ManagerKind;
use crate::error::{Error, Result};
use crate::state::{ContainerState, StateDir};

pub use exec::ExecOptions;
pub use resources::Event;

/// Where a terminal container's pty master goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Console {
    /// No terminal requested: the container inherits the caller's stdio.
    #[default]
    Inherit,
    /// Send it to this unix socket (`--console-socket`).
    Socket(PathBuf),
    /// Hand it back to the caller (foreground `run -t`).
    Receive,
}

#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub console: Console,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
}

/// A process the runtime started: the container init or an exec'd one.
#[derive(Debug)]
pub struct Started {
    /// Host pid; the caller's child (CLONE_PARENT) until the caller exits.
    pub pid: i32,
    /// The pty master, for [`Console::Receive`].
    pub console: Option<OwnedFd>,
}

/// The file under the runtime root that keeps the host's cgroup mounts
/// between runs (see [`crate::cgroups::mountinfo::read_cached`]); whoever
/// owns the root removes it when the host may have changed, at boot or
/// daemon start.
pub const CGROUP_MOUNTS_CACHE: &str = ".cgroup-mounts";

#[derive(Debug, Clone)]
pub struct Runtime {
    pub root: PathBuf,
    pub cgroup_manager: ManagerKind,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime {
            root: root.into(),
            cgroup_manager: ManagerKind::Auto,
        }
    }

    /// Compiled seccomp filters are cached here, shared by containers.
    fn seccomp_cache(&self) -> PathBuf {
        self.root.join(".seccomp")
    }

    fn open(&self, id: &str) -> Result<(StateDir, ContainerState)> {
        let dir = StateDir::open(&self.root, id)?;
        let state = dir.load()?;
        Ok((dir, state))
    }

    fn wrong_state(id: &str, msg: impl Into<String>) -> Error {
        Error::WrongState {
            id: id.to_string(),
            msg: msg.into(),
        }
    }
}

/// Default root directory: /run/berth-runtime as root, under
/// $XDG_RUNTIME_DIR otherwise.
pub fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/run/berth-runtime");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => Path::new(&d).join("berth-runtime"),
        _ => PathBuf::from(format!("/tmp/berth-runtime-{}", nix::unistd::geteuid())),
    }
}
