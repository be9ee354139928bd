//! The new mount API (fsopen/fsconfig/fsmount/move_mount, Linux 5.2): a
//! filesystem mounted nowhere until it is moved onto its target.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::mount::MsFlags;

use super::options;

const FSOPEN_CLOEXEC: u32 = 1;
const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
const FSMOUNT_CLOEXEC: u32 = 1;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

fn cstr(s: &str) -> std::io::Result<CString> {
    CString::new(s).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

fn fd_result(rc: libc::c_long) -> std::io::Result<OwnedFd> {
    let fd = Errno::result(rc)? as i32;
    // SAFETY: the kernel returned a new fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The mount_setattr bits for mount flags a fresh mount takes.
fn attrs(flags: MsFlags) -> u64 {
    let mut a = 0;
    for (ms, attr) in [
        (MsFlags::MS_RDONLY, options::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, options::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, options::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, options::MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NOATIME, options::MOUNT_ATTR_NOATIME),
        (MsFlags::MS_STRICTATIME, options::MOUNT_ATTR_STRICTATIME),
        (MsFlags::MS_NODIRATIME, options::MOUNT_ATTR_NODIRATIME),
    ] {
        if flags.contains(ms) {
            a |= attr;
        }
    }
    a
}

/// A detached tmpfs with `data` options (`size=…,mode=…`).
pub fn tmpfs(flags: MsFlags, data: Option<&str>) -> std::io::Result<OwnedFd> {
    let name = cstr("tmpfs")?;
    // SAFETY: fsopen with a NUL-terminated name.
    let fs = fd_result(unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) })?;
    for opt in data
        .unwrap_or_default()
        .split(',')
        .filter(|o| !o.is_empty())
    {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (cstr(k)?, Some(cstr(v)?)),
            None => (cstr(opt)?, None),
        };
        let (cmd, vptr) = match &value {
            Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
            None => (FSCONFIG_SET_FLAG, std::ptr::null()),
        };
        // SAFETY: fsconfig with NUL-terminated key and value.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                cmd,
                key.as_ptr(),
                vptr,
                0,
            )
        };
        Errno::result(rc).map_err(|e| std::io::Error::other(format!("tmpfs option {opt}: {e}")))?;
    }
    // SAFETY: fsconfig command without key or value.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    Errno::result(rc)?;
    // SAFETY: fsmount of the configured context.
    fd_result(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs(flags),
        )
    })
}

/// Attach the detached mount `mnt` onto the directory `target`.
pub fn move_onto(mnt: &OwnedFd, target: &OwnedFd) -> std::io::Result<()> {
    let empty = cstr("")?;
    // SAFETY: move_mount between two fds with empty paths.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(rc).map(drop).map_err(Into::into)
}
