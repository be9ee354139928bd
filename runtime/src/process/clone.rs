//! fork-like process creation through clone3(2).
//!
//! clone3 lets a child start directly in its cgroup (CLONE_INTO_CGROUP, so
//! no later cgroup.procs write) and be parented to our own parent
//! (CLONE_PARENT, so the container init becomes the runtime's child even
//! though an intermediate process created it). With no stack it behaves
//! like fork: the child continues on a copy of the caller's stack.

use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::unistd::Pid;

pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// The two sides of a clone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// `in_cgroup`: the child started in the requested cgroup.
    Child { in_cgroup: bool },
    /// `in_cgroup` tells whether the child started in the requested
    /// cgroup; when false the caller must move it there.
    Parent { pid: Pid, in_cgroup: bool },
}

/// Create a process like fork(2), with extra clone flags.
///
/// # Safety
/// The caller must be single-threaded: the child is a copy of this thread
/// only, and would deadlock on any lock another thread held.
pub unsafe fn clone_process(flags: u64, cgroup_fd: Option<RawFd>) -> Result<Forked, Errno> {
    let parent = flags & libc::CLONE_PARENT as u64 != 0;
    let mut args = CloneArgs {
        flags,
        // With CLONE_PARENT the kernel requires 0 and gives the child our
        // own exit signal (SIGCHLD), which our parent then receives.
        exit_signal: if parent { 0 } else { libc::SIGCHLD as u64 },
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: args is a valid clone_args of the size passed; no stack means
    // fork semantics, which the caller's single-threadedness makes sound.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match Errno::result(rc) {
        Ok(0) => {
            return Ok(Forked::Child {
                in_cgroup: cgroup_fd.is_some(),
            });
        }
        Ok(pid) => {
            return Ok(Forked::Parent {
                pid: Pid::from_raw(pid as i32),
                in_cgroup: cgroup_fd.is_some(),
            });
        }
        // Old kernels lack clone3 or CLONE_INTO_CGROUP; seccomp profiles of
        // an outer container may also hide clone3 behind ENOSYS.
        Err(Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL | Errno::EPERM) => {}
        Err(e) => return Err(e),
    }
    let signal = if parent { 0 } else { libc::SIGCHLD as u64 };
    // SAFETY: legacy clone with a null stack is fork with flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | signal) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match Errno::result(rc)? {
        0 => Ok(Forked::Child { in_cgroup: false }),
        pid => Ok(Forked::Parent {
            pid: Pid::from_raw(pid as i32),
            in_cgroup: false,
        }),
    }
}

/// Fail unless the calling process has a single thread (see
/// [`clone_process`]).
pub fn ensure_single_threaded() -> Result<(), usize> {
    let n = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1);
    if n == 1 { Ok(()) } else { Err(n) }
}

/// End a forked child without running destructors or atexit handlers that
/// belong to the parent's copy of the process.
pub fn exit_child(code: i32) -> ! {
    // SAFETY: _exit is always safe to call.
    unsafe { libc::_exit(code) }
}
