//! Copying a directory tree with modes and owners, for `tmpcopyup`.
//!
//! The source is the image's: every step goes through an fd opened with
//! O_NOFOLLOW, so a symlink swapped in cannot make us copy a host file.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat};

fn open_at(dir: RawFd, name: &CStr, flags: i32, mode: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: openat relative to an open directory fd.
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: new fd from openat.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn own(fd: RawFd, st: &FileStat) -> std::io::Result<()> {
    // SAFETY: fchown/fchmod on an fd we own.
    unsafe {
        if libc::fchown(fd, st.st_uid, st.st_gid) != 0 || libc::fchmod(fd, st.st_mode & 0o7777) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn copy_dir(src: &OwnedFd, dst: &OwnedFd) -> std::io::Result<()> {
    let listing = Dir::from_fd(src.try_clone()?)?;
    for entry in listing.into_iter() {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let st = fstatat(src, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        match SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) {
            SFlag::S_IFDIR => {
                // SAFETY: mkdirat relative to an open directory fd.
                if unsafe { libc::mkdirat(dst.as_raw_fd(), name.as_ptr(), 0o700) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let s = open_at(src.as_raw_fd(), name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                let d = open_at(dst.as_raw_fd(), name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                copy_dir(&s, &d)?;
                own(d.as_raw_fd(), &st)?;
            }
            SFlag::S_IFREG => {
                let s = open_at(src.as_raw_fd(), name, libc::O_RDONLY, 0)?;
                let d = open_at(
                    dst.as_raw_fd(),
                    name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    0o600,
                )?;
                std::io::copy(
                    &mut std::fs::File::from(s),
                    &mut std::fs::File::from(d.try_clone()?),
                )?;
                own(d.as_raw_fd(), &st)?;
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(src, name)?;
                let t =
                    CString::new(target.as_bytes()).map_err(|_| std::io::ErrorKind::InvalidData)?;
                // SAFETY: symlinkat and fchownat relative to an open directory fd.
                unsafe {
                    if libc::symlinkat(t.as_ptr(), dst.as_raw_fd(), name.as_ptr()) != 0
                        || libc::fchownat(
                            dst.as_raw_fd(),
                            name.as_ptr(),
                            st.st_uid,
                            st.st_gid,
                            libc::AT_SYMLINK_NOFOLLOW,
                        ) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            // Sockets, fifos and device nodes do not belong in a tmpfs seed.
            _ => {}
        }
    }
    Ok(())
}

/// Copy the contents of directory `src` into directory `dst`, and give
/// `dst` the mode and owner of `src`.
pub fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    let open = |p: &Path| {
        let c =
            CString::new(p.as_os_str().as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        nix::fcntl::open(
            c.as_c_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(std::io::Error::from)
    };
    let (s, d) = (open(src)?, open(dst)?);
    copy_dir(&s, &d)?;
    let st = nix::sys::stat::fstat(&s)?;
    own(d.as_raw_fd(), &st)
}
