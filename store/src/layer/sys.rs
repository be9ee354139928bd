//! Thin wrappers over the `*at` system calls the layer code needs. Every
//! path handed to them is either resolved by `openat2` inside a root, or a
//! single name component relative to a directory fd so resolved.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `bytes` as a C string; a NUL inside is an `InvalidInput` error.
pub fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

/// openat2(2) with `how.resolve = resolve`; retried on EAGAIN (a concurrent
/// rename while resolving "..").
pub fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &CStr,
    flags: libc::c_int,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = u64::from(mode);
    how.resolve = resolve;
    for _ in 0..16 {
        // SAFETY: valid fd, NUL-terminated path, `how` lives across the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if r >= 0 {
            // SAFETY: the kernel returned a new fd we own.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EAGAIN) {
            return Err(e);
        }
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

pub fn openat(
    dirfd: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    // SAFETY: valid fd and C string.
    let fd = cvt(unsafe {
        libc::openat(
            dirfd.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn mkdirat(dirfd: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid fd and C string.
    cvt(unsafe { libc::mkdirat(dirfd.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })?;
    Ok(())
}

pub fn mknodat(dirfd: BorrowedFd<'_>, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    // SAFETY: valid fd and C string.
    cvt(unsafe {
        libc::mknodat(
            dirfd.as_raw_fd(),
            name.as_ptr(),
            mode as libc::mode_t,
            dev as libc::dev_t,
        )
    })?;
    Ok(())
}

pub fn symlinkat(target: &CStr, dirfd: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: valid fd and C strings.
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dirfd.as_raw_fd(), name.as_ptr()) })?;
    Ok(())
}

/// linkat(2) without AT_SYMLINK_FOLLOW: a symlink target is linked itself.
pub fn linkat(
    olddir: BorrowedFd<'_>,
    oldname: &CStr,
    newdir: BorrowedFd<'_>,
    newname: &CStr,
) -> io::Result<()> {
    // SAFETY: valid fds and C strings.
    cvt(unsafe {
        libc::linkat(
            olddir.as_raw_fd(),
            oldname.as_ptr(),
            newdir.as_raw_fd(),
            newname.as_ptr(),
            0,
        )
    })?;
    Ok(())
}

pub fn unlinkat(dirfd: BorrowedFd<'_>, name: &CStr, dir: bool) -> io::Result<()> {
    let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid fd and C string.
    cvt(unsafe { libc::unlinkat(dirfd.as_raw_fd(), name.as_ptr(), flags) })?;
    Ok(())
}

/// lstat relative to `dirfd` (never follows a final symlink).
pub fn lstatat(dirfd: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, C string and out pointer.
    cvt(unsafe {
        libc::fstatat(
            dirfd.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    cvt(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })?;
    Ok(())
}

/// lchown relative to `dirfd`.
pub fn lchownat(dirfd: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd and C string.
    cvt(unsafe {
        libc::fchownat(
            dirfd.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })?;
    Ok(())
}

/// chmod of the inode an `O_PATH` fd refers to (never a symlink's target:
/// the fd was opened with O_NOFOLLOW), through its /proc/self/fd link.
pub fn chmod_opath(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let p = cstring(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())?;
    // SAFETY: C string.
    cvt(unsafe { libc::chmod(p.as_ptr(), mode as libc::mode_t) })?;
    Ok(())
}

fn timespec(sec: i64, nsec: u32) -> libc::timespec {
    libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    }
}

/// Sets atime and mtime to (sec, nsec) of `name` in `dirfd`, not following
/// a symlink.
pub fn lutimesat(dirfd: BorrowedFd<'_>, name: &CStr, sec: i64, nsec: u32) -> io::Result<()> {
    let ts = [timespec(sec, nsec), timespec(sec, nsec)];
    // SAFETY: valid fd, C string, two timespecs.
    cvt(unsafe {
        libc::utimensat(
            dirfd.as_raw_fd(),
            name.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

pub fn futimens(fd: BorrowedFd<'_>, sec: i64, nsec: u32) -> io::Result<()> {
    let ts = [timespec(sec, nsec), timespec(sec, nsec)];
    // SAFETY: valid fd and two timespecs.
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) })?;
    Ok(())
}

pub fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: valid fd, C string, value slice.
    cvt(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })?;
    Ok(())
}

pub fn lsetxattr(path: &CStr, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: C strings and value slice.
    cvt(unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })?;
    Ok(())
}

pub fn fremovexattr(fd: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: valid fd and C string.
    cvt(unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) })?;
    Ok(())
}

fn split_names(buf: &[u8]) -> Vec<Vec<u8>> {
    buf.split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Grows a buffer until `f` fits its answer into it (ERANGE otherwise).
fn sized(mut f: impl FnMut(&mut [u8]) -> io::Result<usize>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        match f(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => {
                let len = buf.len() * 4;
                if len > 1 << 24 {
                    return Err(e);
                }
                buf.resize(len, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENODATA))
}

/// Names of the xattrs of `fd` (empty where the filesystem has none).
pub fn flistxattr(fd: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let r = sized(|b| {
        // SAFETY: valid fd and buffer.
        cvt_size(unsafe { libc::flistxattr(fd.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) })
    });
    match r {
        Ok(buf) => Ok(split_names(&buf)),
        Err(e) if unsupported(&e) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Names of the xattrs at `path`, not following a symlink.
pub fn llistxattr(path: &CStr) -> io::Result<Vec<Vec<u8>>> {
    let r = sized(|b| {
        // SAFETY: C string and buffer.
        cvt_size(unsafe { libc::llistxattr(path.as_ptr(), b.as_mut_ptr().cast(), b.len()) })
    });
    match r {
        Ok(buf) => Ok(split_names(&buf)),
        Err(e) if unsupported(&e) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The value of xattr `name` at `path` (not following a symlink); `None`
/// if it is not set.
pub fn lgetxattr(path: &CStr, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let r = sized(|b| {
        // SAFETY: C strings and buffer.
        cvt_size(unsafe {
            libc::lgetxattr(path.as_ptr(), name.as_ptr(), b.as_mut_ptr().cast(), b.len())
        })
    });
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if unsupported(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The names in the directory `fd` refers to, without "." and "..".
pub fn read_dir_names(fd: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let dup = fd.try_clone_to_owned()?;
    // The duplicate shares the file offset: rewind it for a fresh listing.
    // SAFETY: valid fd.
    unsafe { libc::lseek(dup.as_raw_fd(), 0, libc::SEEK_SET) };
    let mut dir = nix::dir::Dir::from_fd(dup).map_err(io::Error::from)?;
    let mut names = Vec::new();
    for e in dir.iter() {
        let e = e.map_err(io::Error::from)?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    Ok(names)
}

pub fn makedev(major: u32, minor: u32) -> u64 {
    libc::makedev(major, minor)
}

pub fn major(dev: u64) -> u32 {
    libc::major(dev as libc::dev_t)
}

pub fn minor(dev: u64) -> u32 {
    libc::minor(dev as libc::dev_t)
}
