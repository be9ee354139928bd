//! OCI lifecycle hooks: each gets the container state as JSON on stdin
//! and must finish within its timeout.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use oci_spec::runtime::Hook;

use crate::process::pidfd::PidFd;
use crate::state::OciState;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hooks.{phase}[{index}] {path}: {source}")]
    Spawn {
        phase: &'static str,
        index: usize,
        path: String,
        source: std::io::Error,
    },
    #[error("hooks.{phase}[{index}] {path}: timed out after {secs}s")]
    Timeout {
        phase: &'static str,
        index: usize,
        path: String,
        secs: i64,
    },
    #[error("hooks.{phase}[{index}] {path}: {status}{stderr}")]
    Failed {
        phase: &'static str,
        index: usize,
        path: String,
        status: String,
        stderr: String,
    },
}

const KEEP_OUTPUT: usize = 4096;

/// Run `hooks` in order; the first failure stops the rest.
pub fn run(phase: &'static str, hooks: &[Hook], state: &OciState) -> Result<(), HookError> {
    let json = serde_json::to_vec(state).expect("state serializes");
    for (index, hook) in hooks.iter().enumerate() {
        run_one(phase, index, hook, &json)?;
    }
    Ok(())
}

fn run_one(phase: &'static str, index: usize, hook: &Hook, state: &[u8]) -> Result<(), HookError> {
    let path = hook.path().display().to_string();
    let spawn_err = |source| HookError::Spawn {
        phase,
        index,
        path: path.clone(),
        source,
    };
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args()
        && let Some((arg0, rest)) = args.split_first()
    {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().as_deref().unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    // Its own process group, so a timeout kills what the hook started too.
    cmd.process_group(0);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(spawn_err)?;
    let pidfd = PidFd::open(child.id() as i32).map_err(|e| spawn_err(e.into()))?;
    // Written from the poll loop below, so a hook that never reads its
    // stdin still runs into its timeout rather than blocking us.
    let mut stdin = child.stdin.take();
    if let Some(s) = &stdin {
        let _ = nix::fcntl::fcntl(
            s.as_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
    }
    let mut pending: &[u8] = state;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let timeout = hook.timeout().map(|s| Duration::from_secs(s as u64));
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut err_buf = Vec::new();
    let mut out_buf = Vec::new();
    let mut open = [true, true];
    // Drain both pipes while waiting, so a chatty hook cannot block on a
    // full pipe and look like a hung one.
    loop {
        let ms = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(child.id() as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let _ = child.wait();
                    return Err(HookError::Timeout {
                        phase,
                        index,
                        path,
                        secs: hook.timeout().unwrap_or_default(),
                    });
                }
                PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
                    .unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = vec![PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        if open[0] {
            fds.push(PollFd::new(stdout.as_fd(), PollFlags::POLLIN));
        }
        if open[1] {
            fds.push(PollFd::new(stderr.as_fd(), PollFlags::POLLIN));
        }
        if let Some(s) = &stdin {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLOUT));
        }
        match poll(&mut fds, ms) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(spawn_err(e.into())),
            Ok(_) => {}
        }
        let revents: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if revents.len() > 1 + open.iter().filter(|o| **o).count()
            && *revents.last().unwrap_or(&false)
        {
            let s = stdin.as_mut().expect("polled");
            match s.write(pending) {
                Ok(n) => pending = &pending[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // A hook that ignores its stdin and exits early is fine.
                Err(_) => pending = &[],
            }
            if pending.is_empty() {
                stdin = None;
            }
        }
        let exited = revents[0];
        let mut i = 1;
        for (which, buf) in [(0, &mut out_buf), (1, &mut err_buf)] {
            if !open[which] {
                continue;
            }
            let ready = revents[i];
            i += 1;
            if ready {
                let mut chunk = [0u8; 4096];
                let n = if which == 0 {
                    stdout.read(&mut chunk)
                } else {
                    stderr.read(&mut chunk)
                };
                match n {
                    Ok(0) | Err(_) => open[which] = false,
                    Ok(n) => {
                        if buf.len() < KEEP_OUTPUT {
                            buf.extend_from_slice(&chunk[..n]);
                        }
                    }
                }
            }
        }
        if exited && !open[0] && !open[1] {
            break;
        }
        if exited {
            // Output still buffered in the pipes: loop to drain it, but a
            // grandchild holding them open must not keep us here.
            drain(&mut stdout, &mut out_buf);
            drain(&mut stderr, &mut err_buf);
            break;
        }
    }
    let status = child.wait().map_err(spawn_err)?;
    if !out_buf.is_empty() {
        tracing::debug!(
            "hook {path} stdout: {}",
            String::from_utf8_lossy(&out_buf).trim()
        );
    }
    if status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&err_buf);
    let last = text.trim().lines().last().unwrap_or_default().to_string();
    Err(HookError::Failed {
        phase,
        index,
        path,
        status: status.to_string(),
        stderr: if last.is_empty() {
            String::new()
        } else {
            format!(": {last}")
        },
    })
}

fn drain<R: Read + AsFd>(r: &mut R, buf: &mut Vec<u8>) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    // Take what is already in the pipe without waiting for writers that
    // outlived the hook.
    let _ = fcntl(r.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    let mut chunk = [0u8; 4096];
    while let Ok(n) = r.read(&mut chunk) {
        if n == 0 {
            break;
        }
        if buf.len() < KEEP_OUTPUT {
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn state() -> OciState {
        OciState {
            oci_version: "1.2.0".into(),
            id: "h".into(),
            pid: 1,
            status: crate::state::Status::Creating,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: String::new(),
            owner: String::new(),
            annotations: BTreeMap::new(),
        }
    }

    fn hook(args: &[&str], timeout: Option<i64>) -> Hook {
        let mut v = serde_json::json!({ "path": "/bin/sh", "args": args });
        if let Some(t) = timeout {
            v["timeout"] = t.into();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn hook_gets_state_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(&["sh", "-c", &format!("cat > {}", out.display())], None);
        run("prestart", &[h], &state()).unwrap();
        let got: OciState = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
        assert_eq!(got.id, "h");
    }

    #[test]
    fn failing_hook_reports_stderr_and_index() {
        let ok = hook(&["sh", "-c", "true"], None);
        let bad = hook(&["sh", "-c", "echo boom >&2; exit 3"], None);
        let err = run("poststart", &[ok, bad], &state())
            .unwrap_err()
            .to_string();
        assert_eq!(err, "hooks.poststart[1] /bin/sh: exit status: 3: boom");
    }

    #[test]
    fn timeout_kills_hook_and_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let h = hook(&["sh", "-c", &script], Some(1));
        let t = Instant::now();
        let err = run("createRuntime", &[h], &state())
            .unwrap_err()
            .to_string();
        assert_eq!(err, "hooks.createRuntime[0] /bin/sh: timed out after 1s");
        assert!(t.elapsed() < Duration::from_secs(5));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        // Killed; an orphaned zombie may linger until init reaps it.
        while crate::state::proc_stat(pid).is_some_and(|s| s.state != 'Z') {
            assert!(Instant::now() < deadline, "the hook's child {pid} survived");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn hook_ignoring_a_large_stdin_still_times_out() {
        let mut st = state();
        // More than a pipe buffer: writing it blocks until the hook reads.
        st.annotations.insert("big".into(), "x".repeat(1 << 20));
        let h = hook(&["sh", "-c", "sleep 30"], Some(1));
        let t = Instant::now();
        let err = run("prestart", &[h], &st).unwrap_err().to_string();
        assert!(err.ends_with("timed out after 1s"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn chatty_hook_does_not_deadlock() {
        let h = hook(
            &[
                "sh",
                "-c",
                "head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2",
            ],
            Some(10),
        );
        run("prestart", &[h], &state()).unwrap();
    }
}
