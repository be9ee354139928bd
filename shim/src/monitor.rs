//! Launching the container and staying with it: its stdout and stderr
//! into the log, reaping, the exit record, and the runtime's clean-up.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use berth_runtime::{Console, CreateOptions, Runtime};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, pipe2};

use crate::Config;
use crate::daemon::Reporter;
use crate::error::{Result, io, runtime, sys};
use crate::exit::{ExitRecord, now_rfc3339};
use crate::files::{self, write_atomic};
use crate::jsonlog::{JsonLog, Stream};

/// How long output may still come after the init is gone (from processes
/// that escaped it, before the runtime kills them).
const DRAIN: Duration = Duration::from_secs(2);

/// Run the container to its end. Reports its start (or the error) to
/// `report`; an error here is a start error, already recorded.
pub fn run(cfg: &Config, mut report: Reporter) -> Result<ExitRecord> {
    std::fs::create_dir_all(&cfg.state_dir).map_err(io("creating", &cfg.state_dir))?;
    let pid = std::process::id().to_string();
    write_atomic(&cfg.state_dir, files::SHIM_PID, pid.as_bytes())?;
    // Orphans of the container come to us, not to a pid 1 that may not reap.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let rt = Runtime::new(&cfg.runtime_root);
    let launched = match launch(cfg, &rt) {
        Ok(l) => l,
        Err(e) => {
            let msg = e.one_line();
            tracing::error!(id = cfg.id, "start failed: {msg}");
            let _ = write_atomic(
                &cfg.state_dir,
                files::START_ERROR,
                format!("{msg}\n").as_bytes(),
            );
            report.failed(&msg);
            return Err(e);
        }
    };
    tracing::info!(
        id = cfg.id,
        pid = launched.pid.as_raw(),
        "container started"
    );
    report.started();
    drop(report);
    let record = watch(cfg, &rt, launched)?;
    write_atomic(
        &cfg.state_dir,
        files::EXIT,
        &serde_json::to_vec(&record).expect("json"),
    )?;
    tracing::info!(
        id = cfg.id,
        exit_code = record.exit_code,
        "container exited"
    );
    Ok(record)
}

struct Launched {
    pid: Pid,
    stdout: OwnedFd,
    stderr: OwnedFd,
    log: JsonLog,
}

/// Puts /dev/null back on stdout and stderr when dropped.
struct StdioBack(OwnedFd);

impl Drop for StdioBack {
    fn drop(&mut self) {
        for fd in [1, 2] {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(self.0.as_raw_fd(), fd) };
        }
    }
}

fn dup_onto(from: &OwnedFd, to: i32) -> Result<()> {
    // SAFETY: dup2 onto a standard descriptor.
    if unsafe { libc::dup2(from.as_raw_fd(), to) } < 0 {
        return Err(sys("redirecting the container's stdio")(Errno::last()));
    }
    Ok(())
}

fn launch(cfg: &Config, rt: &Runtime) -> Result<Launched> {
    let log = JsonLog::open(&cfg.log_path())?;
    let null: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(io("opening", "/dev/null"))?
        .into();
    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("creating the stdout pipe"))?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("creating the stderr pipe"))?;
    // The runtime gives the container our stdio: make it the pipes for
    // the create, and only then; our copies of the write ends must go so
    // that the container's exit is the pipes' end.
    let started = {
        let _back = StdioBack(null.try_clone().map_err(io("duplicating", "/dev/null"))?);
        dup_onto(&null, 0)?;
        dup_onto(&out_w, 1)?;
        dup_onto(&err_w, 2)?;
        drop((out_w, err_w));
        rt.create(
            &cfg.id,
            &CreateOptions {
                bundle: cfg.bundle.clone(),
                console: Console::Inherit,
                ..Default::default()
            },
        )
        .map_err(runtime(&cfg.id))?
    };
    let pid = Pid::from_raw(started.pid);
    if let Err(e) = rt.start(&cfg.id) {
        if let Err(d) = rt.delete(&cfg.id, true) {
            tracing::warn!("removing the container that did not start: {d}");
        }
        let _ = waitpid(pid, None);
        return Err(runtime(&cfg.id)(e));
    }
    if let Err(e) = write_atomic(
        &cfg.state_dir,
        files::INIT_PID,
        started.pid.to_string().as_bytes(),
    ) {
        let _ = rt.delete(&cfg.id, true);
        let _ = waitpid(pid, None);
        return Err(e);
    }
    Ok(Launched {
        pid,
        stdout: out_r,
        stderr: err_r,
        log,
    })
}

/// Copy output and reap until the init is gone and its output read; then
/// remove the container from the runtime.
fn watch(cfg: &Config, rt: &Runtime, l: Launched) -> Result<ExitRecord> {
    let Launched {
        pid,
        stdout,
        stderr,
        mut log,
    } = l;
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(sys("blocking SIGCHLD"))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(sys("creating signalfd"))?;
    let mut pipes: [Option<(Stream, std::fs::File)>; 2] = [
        Some((Stream::Stdout, stdout.into())),
        Some((Stream::Stderr, stderr.into())),
    ];
    let mut ended: Option<(ExitRecord, Instant)> = None;
    // A SIGCHLD from before the block is lost, but the zombie waits.
    reap(pid, &mut ended);
    let mut deleted = false;
    let mut log_failed = false;
    loop {
        if let Some((_, at)) = &ended {
            if !deleted {
                // Whatever else is in the container goes with it.
                if let Err(e) = rt.delete(&cfg.id, true) {
                    tracing::warn!(id = cfg.id, "removing the container: {e}");
                }
                deleted = true;
            }
            if pipes.iter().all(Option::is_none) || at.elapsed() > DRAIN {
                break;
            }
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let mut which = Vec::new();
        for (i, p) in pipes.iter().enumerate() {
            if let Some((_, f)) = p {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                which.push(i);
            }
        }
        let timeout = if ended.is_some() {
            PollTimeout::from(100u8)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(sys("poll")(e)),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            while let Ok(Some(_)) = sfd.read_signal() {}
            reap(pid, &mut ended);
        }
        for (k, i) in which.into_iter().enumerate() {
            if !ready[k + 1] {
                continue;
            }
            let (stream, f) = pipes[i].as_mut().expect("polled");
            let stream = *stream;
            let mut buf = [0u8; 32 * 1024];
            let written = match f.read(&mut buf) {
                Ok(0) | Err(_) => {
                    pipes[i] = None;
                    log.finish(stream)
                }
                Ok(n) => log.write(stream, &buf[..n]),
            };
            // A full disk must not cost the container its exit record or
            // leave it behind: keep reading, say it once.
            if let Err(e) = written
                && !log_failed
            {
                tracing::error!(id = cfg.id, "{e}");
                log_failed = true;
            }
        }
    }
    for stream in [Stream::Stdout, Stream::Stderr] {
        if let Err(e) = log.finish(stream) {
            tracing::error!(id = cfg.id, "{e}");
        }
    }
    Ok(ended.expect("loop ends after the exit").0)
}

/// Collect every exited child; note the init's end.
fn reap(init: Pid, ended: &mut Option<(ExitRecord, Instant)>) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(ws) => {
                if ws.pid() == Some(init)
                    && let Some(r) = ExitRecord::from_wait(ws, now_rfc3339())
                {
                    *ended = Some((r, Instant::now()));
                }
            }
        }
    }
}
