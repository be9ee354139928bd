//! berth-shim: one per container (and one per exec). It leaves its
//! caller (double fork, setsid), becomes a child subreaper, creates the
//! container through the runtime library, holds its stdio or its
//! terminal, copies its output into a Docker json-file log, serves attach
//! and control on its own unix socket, reaps the container, records how
//! it ended, removes it from the runtime root and exits. All of that goes
//! on while berthd is down.
//!
//! # Command line
//!
//! `berth-shim --id ID --state-dir DIR --runtime-root DIR` and either
//! `--bundle DIR` (a container) or `--exec --process FILE` (one more
//! process, an OCI Process JSON as `runc exec --process` takes, in the
//! running container ID; its own state dir; no log unless `--log`; the
//! container is left as it is). Options: `--log FILE` (default
//! `<state-dir>/<id>-json.log` for a container), `--socket PATH` (default
//! `<state-dir>/shim.sock`, mode 0600, removed at exit), `--stdin` (the
//! process's stdin is a pipe the shim holds; /dev/null otherwise),
//! `--stdin-once` (the first stdin client's end of input closes the
//! process's stdin), `--tty` (the process has a terminal; process.terminal
//! must be true; the log gets it all as stdout), `--no-start` (create,
//! open the socket, report, and wait for a `start` request).
//!
//! The caller returns once the container runs (or, with `--no-start`, is
//! created and the socket listens), with the shim's error if it could
//! not.
//!
//! # Socket
//!
//! See [`proto`] for the types and [`client`] for a blocking client. One
//! request per connection, one JSON line; every reply starts with one
//! JSON line:
//!
//! - `{"op":"attach","stdin":b,"stdout":b,"stderr":b}` → `{"ok":true,"tty":b}`,
//!   then output as multiplexed frames (raw bytes with a terminal, where
//!   only `stdout` counts) and client bytes as stdin (used with
//!   `--stdin` only). Output made while nobody is attached goes to the
//!   log only. A client that leaves more than [`conn::MAX_UNREAD`] bytes
//!   unread is dropped (and shim.log says so): it never holds up the log,
//!   the process or the other clients. A client's end of input (EOF,
//!   `shutdown(SHUT_WR)`) with `--stdin-once`, from the first client that
//!   attached with stdin, closes the stdin pipe; a terminal gets ^D
//!   (0x04) instead, which ends input at a shell or `cat`, since a pty
//!   cannot be closed for input alone. Once the process exited and its
//!   output is in, every attach connection is closed, after exit.json is
//!   written.
//! - `{"op":"start"}` → `{"ok":true,"pid":N}`, or `{"ok":false,"error":"one line"}`
//!   (also in start-error; the shim then exits). Twice is an error.
//! - `{"op":"resize","width":W,"height":H}` → `{"ok":true}` (before a
//!   terminal exists, kept for it); an error without `--tty`.
//! - `{"op":"kill","signal":N}` → `{"ok":true}`: to the container's init,
//!   or the exec'd process.
//! - `{"op":"state"}` → `{"ok":true,"status":"created"|"running"|"exited",
//!   "pid":N|null,"exit":ExitRecord|null,"tty":b,"stdin":b}`.
//! - anything else → `{"ok":false,"error":"..."}`, and the connection closes.
//!
//! # Files
//!
//! In the state directory, each written whole (temp + rename):
//! `shim.pid`, `init.pid` (the process exists: the container's init, or
//! the exec'd process), `exit.json`
//! (`{"exit_code":N,"signal":null|"SIGKILL","finished_at":...}`, written
//! once the output is in the log), `start-error` (one line, when the
//! process could not start), and the shim's own `shim.log`.
//!
//! No async runtime and no threads: the runtime creates containers only
//! from a single-threaded process, and a shim must stay small.

pub mod client;
pub mod conn;
pub mod daemon;
pub mod error;
pub mod exit;
pub mod files;
pub mod jsonlog;
pub mod memory;
mod monitor;
pub mod proto;

use std::path::PathBuf;

pub use daemon::{Reporter, Role, daemonize};
pub use error::{Error, Result};
pub use exit::ExitRecord;
pub use monitor::run;
pub use proto::{AttachRequest, Reply, Request, StateReply, Status, read_frame};

/// What the shim runs.
#[derive(Debug, Clone)]
pub enum Launch {
    /// The container of an OCI bundle.
    Create { bundle: PathBuf },
    /// One more process (an OCI Process JSON file) in a running container.
    Exec { process: PathBuf },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub id: String,
    pub launch: Launch,
    pub state_dir: PathBuf,
    pub runtime_root: PathBuf,
    /// The json-file log; `<state_dir>/<id>-json.log` by default for a
    /// container, none for an exec.
    pub log: Option<PathBuf>,
    /// No log at all (Docker's `none` log driver).
    pub no_log: bool,
    /// Rotate the log at this size, keeping `log_max_files` files.
    pub log_max_size: Option<u64>,
    pub log_max_files: u32,
    /// The socket; `<state_dir>/shim.sock` by default.
    pub socket: Option<PathBuf>,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    pub no_start: bool,
}

impl Config {
    pub fn log_path(&self) -> Option<PathBuf> {
        if self.no_log {
            return None;
        }
        match (&self.log, &self.launch) {
            (Some(p), _) => Some(p.clone()),
            (None, Launch::Create { .. }) => {
                Some(self.state_dir.join(format!("{}-json.log", self.id)))
            }
            (None, Launch::Exec { .. }) => None,
        }
    }

    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.state_dir.join(files::SOCKET))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_paths() {
        let mut c = Config {
            id: "c1".into(),
            launch: Launch::Create {
                bundle: "/b".into(),
            },
            state_dir: "/s".into(),
            runtime_root: "/r".into(),
            log: None,
            no_log: false,
            log_max_size: None,
            log_max_files: 1,
            socket: None,
            stdin: false,
            stdin_once: false,
            tty: false,
            no_start: false,
        };
        assert_eq!(c.log_path(), Some(PathBuf::from("/s/c1-json.log")));
        assert_eq!(c.socket_path(), PathBuf::from("/s/shim.sock"));
        c.log = Some("/l/x.log".into());
        assert_eq!(c.log_path(), Some(PathBuf::from("/l/x.log")));
        c.launch = Launch::Exec {
            process: "/p.json".into(),
        };
        c.log = None;
        assert_eq!(c.log_path(), None);
    }
}
