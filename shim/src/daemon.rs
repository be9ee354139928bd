//! Leaving the caller: double fork and setsid, so the shim belongs to no
//! session or process of the caller's and outlives it. The caller keeps
//! the read end of a pipe and learns from it whether the container
//! started, so it can exit with the shim's verdict.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork, pipe2, setsid};

use crate::error::{Error, Result, sys};

/// Which side of the fork this process is on.
pub enum Role {
    /// The original process: wait for the verdict with [`Caller::wait`].
    Caller(Caller),
    /// The daemonized shim: report with [`Reporter`].
    Shim(Reporter),
}

pub struct Caller(OwnedFd);

impl Caller {
    /// Block until the shim reports: `Ok` once the container runs.
    pub fn wait(self) -> Result<()> {
        let mut f = std::fs::File::from(self.0);
        let mut got = Vec::new();
        let mut b = [0u8; 512];
        loop {
            match f.read(&mut b) {
                Ok(0) => break,
                Ok(n) => {
                    got.extend_from_slice(&b[..n]);
                    if got.contains(&b'\n') {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let msg = String::from_utf8_lossy(&got);
        let line = msg.lines().next().unwrap_or_default();
        match line.split_once(' ') {
            _ if line == "ok" => Ok(()),
            Some(("error", m)) => Err(Error::Start(m.to_string())),
            _ => Err(Error::NoReport),
        }
    }
}

pub struct Reporter(Option<std::fs::File>);

impl Reporter {
    /// A reporter that reports to nobody (the shim run in the foreground).
    pub fn none() -> Reporter {
        Reporter(None)
    }

    pub fn started(&mut self) {
        self.send("ok");
    }

    pub fn failed(&mut self, msg: &str) {
        self.send(&format!("error {msg}"));
    }

    fn send(&mut self, line: &str) {
        if let Some(mut f) = self.0.take() {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Fork twice with a setsid in between. Call before any thread exists.
pub fn daemonize() -> Result<Role> {
    let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("creating the report pipe"))?;
    // SAFETY: the shim calls this first thing, single-threaded.
    match unsafe { fork() }.map_err(sys("forking"))? {
        ForkResult::Parent { child } => {
            drop(w);
            // The intermediate process exits at once.
            let _ = waitpid(child, None);
            Ok(Role::Caller(Caller(r)))
        }
        ForkResult::Child => {
            drop(r);
            if setsid().is_err() {
                // SAFETY: leaving the forked child without unwinding.
                unsafe { libc::_exit(1) };
            }
            // SAFETY: still single-threaded.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    detach_stdio();
                    Ok(Role::Shim(Reporter(Some(std::fs::File::from(w)))))
                }
                // SAFETY: the intermediate process leaves without unwinding.
                _ => unsafe { libc::_exit(0) },
            }
        }
    }
}

/// stdin, stdout and stderr to /dev/null: the caller's pipes must not be
/// held open by the shim; the working directory to /.
fn detach_stdio() {
    let _ = std::env::set_current_dir("/");
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}
