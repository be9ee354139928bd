//! berth-shim: one per container. It leaves its caller (double fork,
//! setsid), becomes a child subreaper, creates and starts the container
//! through the runtime library with pipes for stdout and stderr, copies
//! them into a Docker json-file log, reaps the container, records how it
//! ended, removes it from the runtime root and exits.
//!
//! Files in the state directory, each written whole (temp + rename):
//! `shim.pid`, `init.pid` (the container runs), `exit.json`
//! (`{"exit_code":N,"signal":null|"SIGKILL","finished_at":...}`),
//! `start-error` (one line, when the container could not start), and
//! the shim's own `shim.log`.
//!
//! No async runtime and no threads: the runtime creates containers only
//! from a single-threaded process.

pub mod daemon;
pub mod error;
pub mod exit;
pub mod files;
pub mod jsonlog;
mod monitor;

use std::path::PathBuf;

pub use daemon::{Reporter, Role, daemonize};
pub use error::{Error, Result};
pub use exit::ExitRecord;
pub use monitor::run;

#[derive(Debug, Clone)]
pub struct Config {
    pub id: String,
    pub bundle: PathBuf,
    pub state_dir: PathBuf,
    pub runtime_root: PathBuf,
    /// The json-file log; `<state_dir>/<id>-json.log` by default.
    pub log: Option<PathBuf>,
}

impl Config {
    pub fn log_path(&self) -> PathBuf {
        self.log
            .clone()
            .unwrap_or_else(|| self.state_dir.join(format!("{}-json.log", self.id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_path() {
        let mut c = Config {
            id: "c1".into(),
            bundle: "/b".into(),
            state_dir: "/s".into(),
            runtime_root: "/r".into(),
            log: None,
        };
        assert_eq!(c.log_path(), PathBuf::from("/s/c1-json.log"));
        c.log = Some("/l/x.log".into());
        assert_eq!(c.log_path(), PathBuf::from("/l/x.log"));
    }
}
