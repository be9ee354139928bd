//! Staying with a container process until it exits, as `runc run` does
//! without --detach: forward the signals we get to it, proxy its terminal
//! if it has one, reap, and turn its end into an exit code.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::error::{Result, sys};

const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCONT,
    Signal::SIGALRM,
];

/// The shell convention: the exit code, or 128 + the killing signal.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter(fd: BorrowedFd<'_>) -> Option<RawMode> {
        let saved = tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

fn copy_winsize(master: &OwnedFd) {
    if let Some((rows, cols)) = crate::tty::get_winsize(0) {
        crate::tty::set_winsize(master.as_raw_fd(), rows, cols);
    }
}

/// Wait for `pid` (a child of this process) to exit and return its exit
/// code. With `console`, copy between it and our stdin/stdout meanwhile.
pub fn wait(pid: i32, console: Option<OwnedFd>) -> Result<i32> {
    let target = Pid::from_raw(pid);
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.add(Signal::SIGWINCH);
    for s in FORWARDED {
        mask.add(*s);
    }
    let old = mask
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .map_err(sys("blocking signals"))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(sys("creating signalfd"))?;
    // Orphans of the container (without a pid namespace) come to us.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    let stdin = std::io::stdin();
    let _raw = console.as_ref().and_then(|_| RawMode::enter(stdin.as_fd()));
    if let Some(m) = &console {
        copy_winsize(m);
    }
    let mut master = console.map(std::fs::File::from);
    let mut stdin_open = master.is_some();
    let mut status: Option<i32> = None;
    let mut exited_at: Option<Instant> = None;
    // SIGCHLD delivered before it was blocked is lost; the child, though,
    // waits as a zombie, so look once before relying on the signal.
    reap(target, &mut status, &mut exited_at);
    let result = loop {
        // A process that left the pty to a daemonized grandchild must not
        // keep us forever: drain for a moment after the exit.
        if let Some(t) = exited_at
            && (master.is_none() || t.elapsed() > Duration::from_millis(200))
        {
            break Ok(status.unwrap_or(0));
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = &master {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
        }
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        let timeout = if exited_at.is_some() {
            PollTimeout::from(50u8)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => break Err(sys("poll")(e)),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (sig_ready, master_ready, stdin_ready) = (
            ready(0),
            master.is_some() && ready(1),
            stdin_open && ready(if master.is_some() { 2 } else { 1 }),
        );
        if sig_ready {
            while let Ok(Some(info)) = sfd.read_signal() {
                let signo = info.ssi_signo as i32;
                if signo == libc::SIGCHLD {
                    reap(target, &mut status, &mut exited_at);
                } else if signo == libc::SIGWINCH {
                    if let Some(m) = &master {
                        copy_winsize(&OwnedFd::from(m.try_clone().expect("dup")));
                    }
                } else if let Ok(sig) = Signal::try_from(signo) {
                    let _ = kill(target, sig);
                }
            }
        }
        if master_ready {
            let mut buf = [0u8; 8192];
            match master.as_mut().expect("ready").read(&mut buf) {
                Ok(0) | Err(_) => master = None,
                Ok(n) => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
            }
        }
        if stdin_ready {
            let mut buf = [0u8; 8192];
            match std::io::stdin().lock().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if let Some(m) = master.as_mut() {
                        let _ = m.write_all(&buf[..n]);
                    }
                }
            }
        }
    };
    let _ = old.thread_set_mask();
    result
}

/// Collect every exited child; note the target's exit.
fn reap(target: Pid, status: &mut Option<i32>, exited_at: &mut Option<Instant>) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(ws) => {
                if ws.pid() == Some(target)
                    && let Some(code) = exit_code(ws)
                {
                    *status = Some(code);
                    *exited_at = Some(Instant::now());
                }
            }
        }
    }
}
