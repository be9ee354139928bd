//! Device nodes in the container's /dev: the defaults every container
//! gets, the config's `linux.devices`, and the standard symlinks.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::RootfsError;
use super::path::{Root, fd_path};
use crate::syscall::Syscall;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

fn char_dev(path: &str, major: u64, minor: u64) -> DeviceNode {
    DeviceNode {
        path: path.into(),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    }
}

/// The devices the OCI runtime spec says every container has.
pub fn default_devices() -> Vec<DeviceNode> {
    vec![
        char_dev("/dev/null", 1, 3),
        char_dev("/dev/zero", 1, 5),
        char_dev("/dev/full", 1, 7),
        char_dev("/dev/random", 1, 8),
        char_dev("/dev/urandom", 1, 9),
        char_dev("/dev/tty", 5, 0),
    ]
}

impl DeviceNode {
    pub fn from_config(d: &LinuxDevice) -> DeviceNode {
        let kind = match d.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        DeviceNode {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        }
    }
}

/// Defaults first, then the config's devices, a config entry replacing a
/// default at the same path.
pub fn devices_for(config: &[LinuxDevice]) -> Vec<DeviceNode> {
    let mut out: Vec<DeviceNode> = default_devices()
        .into_iter()
        .filter(|d| !config.iter().any(|c| c.path() == &d.path))
        .collect();
    out.extend(config.iter().map(DeviceNode::from_config));
    out
}

fn unlink_at(dir: &std::os::fd::OwnedFd, name: &Path) {
    if let Ok(c) = CString::new(name.as_os_str().as_bytes()) {
        // SAFETY: unlinkat relative to an open directory fd; failure is fine.
        unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) };
    }
}

/// Create `dev` inside the root. In a user namespace mknod is not
/// allowed, so the host's node is bind-mounted onto an empty file.
pub fn create(
    sys: &dyn Syscall,
    root: &Root,
    dev: &DeviceNode,
    bind: bool,
) -> Result<(), RootfsError> {
    let err = |source: std::io::Error| RootfsError::Device {
        path: dev.path.clone(),
        source,
    };
    if bind {
        let fd = root.create_file(&dev.path, 0o000).map_err(err)?;
        return sys
            .mount(Some(&dev.path), &fd_path(&fd), None, MsFlags::MS_BIND, None)
            .map_err(|e| err(e.into()));
    }
    let (dir, name) = root.parent_and_name(&dev.path).map_err(err)?;
    unlink_at(&dir, &name);
    let target = fd_path(&dir).join(&name);
    let devno = nix::sys::stat::makedev(dev.major, dev.minor);
    sys.mknod(&target, dev.kind, Mode::from_bits_truncate(dev.mode), devno)
        .map_err(|e| err(e.into()))?;
    let c = CString::new(name.as_os_str().as_bytes())
        .map_err(|_| err(std::io::ErrorKind::InvalidInput.into()))?;
    // The init runs with umask 0, so mknod gave the exact mode.
    // SAFETY: fchownat relative to an open directory fd, not following links.
    unsafe {
        if libc::fchownat(
            dir.as_raw_fd(),
            c.as_ptr(),
            dev.uid,
            dev.gid,
            libc::AT_SYMLINK_NOFOLLOW,
        ) != 0
        {
            return Err(err(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// /dev/fd, /dev/std{in,out,err}, /dev/core and, with a devpts at
/// /dev/pts, /dev/ptmx pointing into it.
pub fn symlinks(sys: &dyn Syscall, root: &Root, with_pts: bool) -> Result<(), RootfsError> {
    let mut links = vec![
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "/dev/core"));
    }
    if with_pts {
        links.push(("pts/ptmx", "/dev/ptmx"));
    }
    for (target, link) in links {
        let err = |source: std::io::Error| RootfsError::Device {
            path: link.into(),
            source,
        };
        let (dir, name) = root.parent_and_name(Path::new(link)).map_err(err)?;
        unlink_at(&dir, &name);
        sys.symlink(Path::new(target), &fd_path(&dir).join(&name))
            .map_err(|e| err(e.into()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_device_replaces_default() {
        let cfg: LinuxDevice = serde_json::from_value(serde_json::json!({
            "path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 384
        }))
        .unwrap();
        let all = devices_for(&[cfg]);
        let nulls: Vec<_> = all
            .iter()
            .filter(|d| d.path == Path::new("/dev/null"))
            .collect();
        assert_eq!(nulls.len(), 1);
        assert_eq!(nulls[0].mode, 0o600);
        assert_eq!(all.len(), 6);
    }
}
