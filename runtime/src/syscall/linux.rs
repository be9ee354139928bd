use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};

use super::{Result, Syscall};

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn mount_setattr_recursive(&self, target: &Path, set: u64, clear: u64) -> Result<()> {
        let path = cstr(target)?;
        let attr = MountAttr {
            attr_set: set,
            attr_clr: clear,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: path and attr outlive the call; size matches the struct.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                path.as_ptr(),
                libc::AT_RECURSIVE as libc::c_uint,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        Errno::result(rc).map(drop)
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()> {
        nix::mount::umount2(target, flags)
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()> {
        nix::unistd::pivot_root(new_root, put_old)
    }

    fn chroot(&self, path: &Path) -> Result<()> {
        nix::unistd::chroot(path)
    }

    fn chdir(&self, path: &Path) -> Result<()> {
        nix::unistd::chdir(path)
    }

    fn fchdir(&self, fd: BorrowedFd<'_>) -> Result<()> {
        nix::unistd::fchdir(fd)
    }

    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> Result<()> {
        nix::sys::stat::mknod(path, kind, perm, dev)
    }

    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        std::os::unix::fs::symlink(target, link)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
    }

    fn setns(&self, fd: BorrowedFd<'_>, nstype: CloneFlags) -> Result<()> {
        // SAFETY: plain syscall on a borrowed, open fd.
        let rc = unsafe { libc::setns(fd.as_raw_fd(), nstype.bits()) };
        Errno::result(rc).map(drop)
    }

    fn unshare(&self, flags: CloneFlags) -> Result<()> {
        // SAFETY: plain syscall; CLONE_NEWTIME is outside nix's CloneFlags
        // helpers but accepted by the kernel through the same argument.
        let rc = unsafe { libc::unshare(flags.bits()) };
        Errno::result(rc).map(drop)
    }

    fn sethostname(&self, name: &str) -> Result<()> {
        nix::unistd::sethostname(name)
    }

    fn setdomainname(&self, name: &str) -> Result<()> {
        // SAFETY: pointer and length describe `name`.
        let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        Errno::result(rc).map(drop)
    }

    fn setgroups(&self, groups: &[Gid]) -> Result<()> {
        nix::unistd::setgroups(groups)
    }

    fn setresgid(&self, gid: Gid) -> Result<()> {
        nix::unistd::setresgid(gid, gid, gid)
    }

    fn setresuid(&self, uid: Uid) -> Result<()> {
        nix::unistd::setresuid(uid, uid, uid)
    }
}
