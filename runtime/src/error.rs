//! The runtime's error: each module's error, plus lifecycle errors.

use crate::cgroups::CgroupError;
use crate::config::ConfigError;
use crate::hooks::HookError;
use crate::namespaces::NamespaceError;
use crate::process::idmap::IdMapError;
use crate::seccomp::SeccompError;
use crate::state::StateError;
use crate::tty::TtyError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Tty(#[from] TtyError),
    #[error("writing id maps: {0}")]
    IdMap(#[from] IdMapError),
    /// A step inside the container's processes failed.
    #[error("{0}")]
    Child(String),
    /// The operation does not fit the container's current status.
    #[error("container {id}: {msg}")]
    WrongState { id: String, msg: String },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        source: nix::errno::Errno,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("containers must be created from a single-threaded process (this one has {0} threads)")]
    Threads(usize),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> Error {
    let what = what.into();
    move |source| Error::Sys { what, source }
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
