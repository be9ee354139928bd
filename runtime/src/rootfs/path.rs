//! Resolving paths inside the container's root without ever leaving it.
//!
//! A rootfs is untrusted: `/etc -> /` or `../../..` must not let a mount
//! land on the host. openat2(RESOLVE_IN_ROOT) makes the kernel resolve
//! symlinks and `..` as if the rootfs were `/`, and we mount onto the
//! resulting fd through /proc/self/fd, so nothing can swap a path between
//! the check and the mount.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn cstring(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

fn openat2(
    dirfd: RawFd,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> std::io::Result<OwnedFd> {
    let c = cstring(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // SAFETY: c and how live across the call; size matches OpenHow.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if rc >= 0 {
            // SAFETY: the kernel returned a new fd.
            return Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) });
        }
        let e = Errno::last();
        // EAGAIN: a concurrent rename raced the lookup; retrying is safe.
        if e != Errno::EAGAIN {
            return Err(e.into());
        }
    }
}

/// The relative form of a container path: "/dev/pts" → "dev/pts".
pub fn relative(p: &Path) -> PathBuf {
    let rel: PathBuf = p
        .components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect();
    // openat2 rejects an empty path; "." names the root itself.
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// `/proc/self/fd/N`, a path naming exactly the object behind `fd`.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// A root directory to resolve container paths in.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    pub path: PathBuf,
}

impl Root {
    pub fn open(path: &Path) -> std::io::Result<Root> {
        let c = cstring(path)?;
        // SAFETY: plain open of a NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: new fd from open.
        Ok(Root {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_path_buf(),
        })
    }

    /// Open `p` (a container path) as O_PATH, symlinks resolved in root.
    pub fn open_path(&self, p: &Path) -> std::io::Result<OwnedFd> {
        openat2(
            self.fd.as_raw_fd(),
            &relative(p),
            libc::O_PATH,
            0,
            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        )
    }

    /// Open `p` refusing any symlink on the way: for /proc and /sys,
    /// where a symlinked destination would let the container dodge the
    /// masks applied to the real paths.
    pub fn open_no_symlinks(&self, p: &Path) -> std::io::Result<OwnedFd> {
        openat2(
            self.fd.as_raw_fd(),
            &relative(p),
            libc::O_PATH,
            0,
            RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        )
    }

    /// Create the directory `p` and its missing parents inside the root.
    pub fn mkdir_all(&self, p: &Path, mode: u32) -> std::io::Result<OwnedFd> {
        let rel = relative(p);
        let mut prefix = PathBuf::new();
        let mut cur = self.open_path(Path::new("."))?;
        for comp in rel.components().filter(|c| *c != Component::CurDir) {
            prefix.push(comp);
            let open = |prefix: &Path| {
                openat2(
                    self.fd.as_raw_fd(),
                    prefix,
                    libc::O_PATH | libc::O_DIRECTORY,
                    0,
                    RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
                )
            };
            cur = match open(&prefix) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let name = cstring(Path::new(comp.as_os_str()))?;
                    // SAFETY: mkdirat relative to an open directory fd.
                    let rc = unsafe { libc::mkdirat(cur.as_raw_fd(), name.as_ptr(), mode) };
                    if rc != 0 && Errno::last() != Errno::EEXIST {
                        return Err(std::io::Error::last_os_error());
                    }
                    open(&prefix)?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(cur)
    }

    /// Create (if missing) the regular file `p` and its parents; returns
    /// an O_PATH fd of it. Used for bind mounts of files.
    pub fn create_file(&self, p: &Path, mode: u32) -> std::io::Result<OwnedFd> {
        match self.open_path(p) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
            Err(_) => {}
        }
        let rel = relative(p);
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel
            .file_name()
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let dir = self.mkdir_all(parent, 0o755)?;
        let cname = cstring(Path::new(name))?;
        // O_PATH fds cannot create: reopen the parent for real first.
        let dir_real = openat2(
            dir.as_raw_fd(),
            Path::new("."),
            libc::O_DIRECTORY | libc::O_RDONLY,
            0,
            0,
        )?;
        // SAFETY: openat relative to an open directory, creating a new file.
        let fd = unsafe {
            libc::openat(
                dir_real.as_raw_fd(),
                cname.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: new fd from openat; closing it right away.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        self.open_path(p)
    }

    /// Host-side path of the parent directory of `p` (resolved in root)
    /// and the final component, for calls that take a name in a directory.
    pub fn parent_and_name(&self, p: &Path) -> std::io::Result<(OwnedFd, PathBuf)> {
        let rel = relative(p);
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel
            .file_name()
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok((self.mkdir_all(parent, 0o755)?, PathBuf::from(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn real(fd: &OwnedFd) -> PathBuf {
        std::fs::read_link(fd_path(fd)).unwrap()
    }

    #[test]
    fn symlinks_and_dotdot_stay_inside() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        symlink("/", root.join("etc/escape")).unwrap();
        symlink("../../../..", root.join("up")).unwrap();
        let r = Root::open(&root).unwrap();
        let fd = r.mkdir_all(Path::new("/etc/escape/tmp/x"), 0o755).unwrap();
        assert_eq!(real(&fd), root.join("tmp/x"));
        let fd = r.mkdir_all(Path::new("/up/y"), 0o755).unwrap();
        assert_eq!(real(&fd), root.join("y"));
        let fd = r.mkdir_all(Path::new("/../../z"), 0o755).unwrap();
        assert_eq!(real(&fd), root.join("z"));
    }

    #[test]
    fn create_file_through_symlinked_parent() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        symlink("/", root.join("rootlink")).unwrap();
        let r = Root::open(&root).unwrap();
        let fd = r
            .create_file(Path::new("/rootlink/etc/hosts"), 0o644)
            .unwrap();
        assert_eq!(real(&fd), root.join("etc/hosts"));
        assert!(root.join("etc/hosts").is_file());
    }

    #[test]
    fn no_symlinks_refuses_symlinked_proc() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        symlink("/tmp", root.join("proc")).unwrap();
        let r = Root::open(&root).unwrap();
        let err = r.open_no_symlinks(Path::new("/proc")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }
}
