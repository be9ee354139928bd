//! The shim's errors. Each carries what it was doing and the path or id
//! involved, in its message: a start error is reported as one line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {}: {err}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("{what}: {err}")]
    Sys {
        what: &'static str,
        err: nix::errno::Errno,
    },
    #[error("container {id}: {err}")]
    Runtime {
        id: String,
        err: berth_runtime::Error,
    },
    /// The daemonized shim reported this instead of a start.
    #[error("{0}")]
    Start(String),
    #[error("the shim exited before it reported starting the container")]
    NoReport,
    /// The shim's socket said something that is not the protocol.
    #[error("shim socket {}: {msg}", path.display())]
    Protocol { path: PathBuf, msg: String },
    /// The shim answered `{"ok":false,"error":msg}`.
    #[error("shim socket {}: {msg}", path.display())]
    Refused { path: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The message on one line, for start-error and the caller.
    pub fn one_line(&self) -> String {
        self.to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

pub(crate) fn io(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |err| Error::Io { what, path, err }
}

pub(crate) fn sys(what: &'static str) -> impl FnOnce(nix::errno::Errno) -> Error {
    move |err| Error::Sys { what, err }
}

pub(crate) fn runtime(id: &str) -> impl FnOnce(berth_runtime::Error) -> Error + '_ {
    move |err| Error::Runtime {
        id: id.to_string(),
        err,
    }
}
