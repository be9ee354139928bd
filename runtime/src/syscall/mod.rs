//! The kernel calls container setup makes, behind a trait so rootfs and
//! namespace logic can be unit-tested without root: [`LinuxSyscall`] does
//! them, [`RecordingSyscall`](fake::RecordingSyscall) records them.

pub mod fake;
mod linux;

use std::os::fd::BorrowedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};

pub use linux::LinuxSyscall;

pub type Result<T> = std::result::Result<T, Errno>;

pub trait Syscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()>;
    /// mount_setattr(2) with AT_RECURSIVE: the recursive variants of
    /// mount flags ("rro", "rnosuid", ...) that mount(2) cannot express.
    fn mount_setattr_recursive(&self, target: &Path, set: u64, clear: u64) -> Result<()>;
    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()>;
    fn chroot(&self, path: &Path) -> Result<()>;
    fn chdir(&self, path: &Path) -> Result<()>;
    fn fchdir(&self, fd: BorrowedFd<'_>) -> Result<()>;
    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> Result<()>;
    fn setns(&self, fd: BorrowedFd<'_>, nstype: CloneFlags) -> Result<()>;
    fn unshare(&self, flags: CloneFlags) -> Result<()>;
    fn sethostname(&self, name: &str) -> Result<()>;
    fn setdomainname(&self, name: &str) -> Result<()>;
    fn setgroups(&self, groups: &[Gid]) -> Result<()>;
    fn setresgid(&self, gid: Gid) -> Result<()>;
    fn setresuid(&self, uid: Uid) -> Result<()>;
}
