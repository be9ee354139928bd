//! A [`Syscall`] that records calls instead of making them.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};

use super::{Result, Syscall};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    MountSetattr {
        target: PathBuf,
        set: u64,
        clear: u64,
    },
    Umount2 {
        target: PathBuf,
        flags: MntFlags,
    },
    PivotRoot {
        new_root: PathBuf,
        put_old: PathBuf,
    },
    Chroot(PathBuf),
    Chdir(PathBuf),
    Fchdir(i32),
    Mknod {
        path: PathBuf,
        kind: SFlag,
        perm: Mode,
        dev: u64,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    Setns {
        fd: i32,
        nstype: CloneFlags,
    },
    Unshare(CloneFlags),
    Sethostname(String),
    Setdomainname(String),
    Setgroups(Vec<Gid>),
    Setresgid(Gid),
    Setresuid(Uid),
}

/// Records every call; every call succeeds.
#[derive(Debug, Default)]
pub struct RecordingSyscall {
    calls: RefCell<Vec<Call>>,
}

impl RecordingSyscall {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    fn push(&self, call: Call) -> Result<()> {
        self.calls.borrow_mut().push(call);
        Ok(())
    }
}

impl Syscall for RecordingSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        self.push(Call::Mount {
            source: source.map(Path::to_path_buf),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        })
    }
    fn mount_setattr_recursive(&self, target: &Path, set: u64, clear: u64) -> Result<()> {
        self.push(Call::MountSetattr {
            target: target.to_path_buf(),
            set,
            clear,
        })
    }
    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()> {
        self.push(Call::Umount2 {
            target: target.to_path_buf(),
            flags,
        })
    }
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()> {
        self.push(Call::PivotRoot {
            new_root: new_root.into(),
            put_old: put_old.into(),
        })
    }
    fn chroot(&self, path: &Path) -> Result<()> {
        self.push(Call::Chroot(path.into()))
    }
    fn chdir(&self, path: &Path) -> Result<()> {
        self.push(Call::Chdir(path.into()))
    }
    fn fchdir(&self, fd: BorrowedFd<'_>) -> Result<()> {
        self.push(Call::Fchdir(fd.as_raw_fd()))
    }
    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> Result<()> {
        self.push(Call::Mknod {
            path: path.into(),
            kind,
            perm,
            dev,
        })
    }
    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        self.push(Call::Symlink {
            target: target.into(),
            link: link.into(),
        })
    }
    fn setns(&self, fd: BorrowedFd<'_>, nstype: CloneFlags) -> Result<()> {
        self.push(Call::Setns {
            fd: fd.as_raw_fd(),
            nstype,
        })
    }
    fn unshare(&self, flags: CloneFlags) -> Result<()> {
        self.push(Call::Unshare(flags))
    }
    fn sethostname(&self, name: &str) -> Result<()> {
        self.push(Call::Sethostname(name.into()))
    }
    fn setdomainname(&self, name: &str) -> Result<()> {
        self.push(Call::Setdomainname(name.into()))
    }
    fn setgroups(&self, groups: &[Gid]) -> Result<()> {
        self.push(Call::Setgroups(groups.to_vec()))
    }
    fn setresgid(&self, gid: Gid) -> Result<()> {
        self.push(Call::Setresgid(gid))
    }
    fn setresuid(&self, uid: Uid) -> Result<()> {
        self.push(Call::Setresuid(uid))
    }
}
