//! seccomp(2) without allocating: `install` runs in a child forked from a
//! possibly multi-threaded process, where the allocator's lock may be held
//! by a thread that no longer exists.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use super::bpf::MAX_INSNS;
use super::compile::{FLAG_NEW_LISTENER, FLAG_TSYNC, FLAG_TSYNC_ESRCH};
use super::{CompiledFilter, Result, SeccompError};

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;

pub(crate) fn install(filter: &CompiledFilter) -> Result<Option<OwnedFd>> {
    let len = filter.program.len();
    if len > MAX_INSNS {
        return Err(SeccompError::TooLarge(len));
    }
    if len == 0 {
        return Err(SeccompError::Install(io::Error::from_raw_os_error(
            libc::EINVAL,
        )));
    }

    // The program is stored as tuples, whose layout Rust does not fix, so
    // it is copied into kernel-layout instructions on the stack (32 KiB).
    let mut insns = [libc::sock_filter {
        code: 0,
        jt: 0,
        jf: 0,
        k: 0,
    }; MAX_INSNS];
    for (slot, &(code, jt, jf, k)) in insns.iter_mut().zip(&filter.program) {
        *slot = libc::sock_filter { code, jt, jf, k };
    }
    let prog = libc::sock_fprog {
        len: len as libc::c_ushort,
        filter: insns.as_mut_ptr(),
    };

    let mut flags = filter.flags;
    if filter.notify {
        flags |= FLAG_NEW_LISTENER;
    }

    // SAFETY: `prog` points at `len` initialised instructions that outlive
    // the call; the kernel copies them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            &prog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        return Err(SeccompError::Install(io::Error::last_os_error()));
    }
    if flags & FLAG_NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER the kernel returns a fresh fd we own.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as libc::c_int) }));
    }
    if ret > 0 && flags & FLAG_TSYNC != 0 && flags & FLAG_TSYNC_ESRCH == 0 {
        // TSYNC reports the thread it could not synchronise by returning
        // its id; nothing was installed.
        return Err(SeccompError::Install(io::Error::from_raw_os_error(
            libc::ESRCH,
        )));
    }
    Ok(None)
}
