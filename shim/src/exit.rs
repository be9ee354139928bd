//! How a container ended, as exit.json records it.

use nix::sys::wait::WaitStatus;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit code, or 128 + the signal, as Docker reports it.
    pub exit_code: i32,
    /// The signal that killed the process (`"SIGKILL"`), if one did.
    pub signal: Option<String>,
    /// RFC 3339 with nanoseconds.
    pub finished_at: String,
}

impl ExitRecord {
    /// The record of an exit or a death by signal; `None` for a stop or
    /// anything else that is not an end.
    pub fn from_wait(status: WaitStatus, finished_at: String) -> Option<ExitRecord> {
        match status {
            WaitStatus::Exited(_, code) => Some(ExitRecord {
                exit_code: code,
                signal: None,
                finished_at,
            }),
            WaitStatus::Signaled(_, sig, _) => Some(ExitRecord {
                exit_code: 128 + sig as i32,
                signal: Some(sig.as_str().to_string()),
                finished_at,
            }),
            _ => None,
        }
    }
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn codes() {
        let p = Pid::from_raw(1);
        let t = || "t".to_string();
        let e = ExitRecord::from_wait(WaitStatus::Exited(p, 3), t()).unwrap();
        assert_eq!((e.exit_code, e.signal), (3, None));
        let k =
            ExitRecord::from_wait(WaitStatus::Signaled(p, Signal::SIGKILL, false), t()).unwrap();
        assert_eq!((k.exit_code, k.signal.as_deref()), (137, Some("SIGKILL")));
        assert_eq!(
            serde_json::to_string(&ExitRecord::from_wait(WaitStatus::Exited(p, 0), t()).unwrap())
                .unwrap(),
            r#"{"exit_code":0,"signal":null,"finished_at":"t"}"#
        );
        assert!(ExitRecord::from_wait(WaitStatus::StillAlive, t()).is_none());
    }
}
