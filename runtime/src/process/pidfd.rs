//! pidfds: a handle on a process that cannot be confused with a later
//! process reusing its pid, and that poll(2) reports readable on exit —
//! also for processes that are not our children.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;

#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    pub pid: i32,
}

impl PidFd {
    pub fn open(pid: i32) -> Result<PidFd, Errno> {
        // SAFETY: pidfd_open takes a pid and flags.
        let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = Errno::result(rc)? as i32;
        // SAFETY: the kernel returned a new fd.
        Ok(PidFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            pid,
        })
    }

    pub fn signal(&self, sig: Signal) -> Result<(), Errno> {
        // SAFETY: pidfd_send_signal on our pidfd with no siginfo.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig as i32,
                0usize,
                0u32,
            )
        };
        Errno::result(rc).map(drop)
    }

    /// Wait until the process exits; false on timeout.
    pub fn wait_exit(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let ms = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
                        .unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(0) => return false,
                Ok(_) => return true,
                Err(Errno::EINTR) => continue,
                Err(_) => return true,
            }
        }
    }
}

impl AsFd for PidFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
