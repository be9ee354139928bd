//! The init layer: the mount points every container needs (/proc, /sys,
//! /dev, and /etc's hostname, hosts and resolv.conf) that an image lacks,
//! made once per image in a small read-only layer above its top layer.
//!
//! Without it the runtime makes them in each container's upper directory
//! at every start. On the data root that is four directories (one a
//! copy-up of /etc) and three files per container, and a directory costs
//! most on ext4, whose allocator searches block groups for each one.
//! dockerd keeps the same entries in an init layer of its own per
//! container; one per image is enough, as nothing in it is per container.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::layer::sys::lgetxattr;

/// Directories the runtime mounts over.
const MOUNT_DIRS: &[&str] = &["proc", "sys", "dev"];
/// Files in /etc the daemon binds its own over.
const ETC_FILES: &[&str] = &["hostname", "hosts", "resolv.conf"];

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    matches!(lgetxattr(&c, c"trusted.overlay.opaque"), Ok(Some(v)) if v == b"y")
}

/// What `rel` is in the overlay of `lowers` (top first, each in
/// overlayfs's whiteout format): its metadata, or None if absent.
pub(super) fn lookup(lowers: &[PathBuf], rel: &[&str]) -> Option<std::fs::Metadata> {
    'layers: for layer in lowers {
        let mut p = layer.clone();
        for (i, name) in rel.iter().enumerate() {
            p.push(name);
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue 'layers;
            };
            if is_whiteout(&m) {
                return None;
            }
            if i + 1 == rel.len() {
                return Some(m);
            }
            // A file here hides the rest of the path in every layer below.
            if !m.is_dir() {
                return None;
            }
            // So does an opaque directory, for what it does not hold itself.
            if is_opaque(&p) {
                return lookup(&[p], &rel[i + 1..]);
            }
        }
    }
    None
}

/// Fill `dir` (empty) with what the image of `lowers` lacks.
pub(super) fn build(lowers: &[PathBuf], dir: &Path) -> std::io::Result<()> {
    let mut mkdir = std::fs::DirBuilder::new();
    mkdir.mode(0o755);
    for name in MOUNT_DIRS {
        if lookup(lowers, &[name]).is_none() {
            let p = dir.join(name);
            mkdir.create(&p)?;
            // Not as the umask would have it.
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    let etc = lookup(lowers, &["etc"]);
    // An /etc that is not a directory is left to the runtime.
    if etc.as_ref().is_some_and(|m| !m.is_dir()) {
        return Ok(());
    }
    let missing: Vec<&str> = ETC_FILES
        .iter()
        .copied()
        .filter(|f| lookup(lowers, &["etc", f]).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let etc_dir = dir.join("etc");
    mkdir.create(&etc_dir)?;
    // overlayfs shows a directory with the attributes of its topmost
    // layer: this one must look like the image's /etc.
    let (mode, uid, gid) = etc
        .map(|m| (m.mode() & 0o7777, m.uid(), m.gid()))
        .unwrap_or((0o755, 0, 0));
    std::os::unix::fs::lchown(&etc_dir, Some(uid), Some(gid))?;
    std::fs::set_permissions(&etc_dir, std::fs::Permissions::from_mode(mode))?;
    for f in missing {
        let p = etc_dir.join(f);
        std::fs::File::create(&p)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whiteout(p: &Path) {
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: a C string path; 0:0 char device is overlayfs's whiteout.
        let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, 0) };
        assert_eq!(
            rc,
            0,
            "mknod {}: {}",
            p.display(),
            std::io::Error::last_os_error()
        );
    }

    #[test]
    fn lookup_follows_overlay_rules() {
        if !nix::unistd::geteuid().is_root() {
            panic!("this test needs root (whiteouts are 0:0 character devices)");
        }
        let t = tempfile::tempdir().unwrap();
        let (top, mid, low) = (
            t.path().join("top"),
            t.path().join("mid"),
            t.path().join("low"),
        );
        for d in [&top, &mid, &low] {
            std::fs::create_dir_all(d.join("etc")).unwrap();
        }
        std::fs::write(low.join("etc/hosts"), "").unwrap();
        std::fs::write(low.join("etc/hostname"), "").unwrap();
        std::fs::create_dir(low.join("proc")).unwrap();
        std::fs::create_dir(low.join("sys")).unwrap();
        // mid deletes /proc and hides low's /etc/hostname behind an opaque /etc.
        whiteout(&mid.join("proc"));
        std::fs::write(mid.join("etc/resolv.conf"), "").unwrap();
        let c = CString::new(mid.join("etc").as_os_str().as_bytes()).unwrap();
        // SAFETY: C strings and a buffer of the given length.
        let rc = unsafe {
            libc::lsetxattr(
                c.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(rc, 0);
        std::fs::set_permissions(top.join("etc"), std::fs::Permissions::from_mode(0o750)).unwrap();
        let lowers = [top, mid, low];
        assert!(lookup(&lowers, &["proc"]).is_none(), "whited out");
        assert!(lookup(&lowers, &["sys"]).unwrap().is_dir());
        assert!(lookup(&lowers, &["dev"]).is_none());
        assert!(lookup(&lowers, &["etc", "resolv.conf"]).is_some());
        assert!(
            lookup(&lowers, &["etc", "hosts"]).is_none(),
            "behind the opaque /etc"
        );
        assert!(lookup(&lowers, &["etc", "hostname"]).is_none());

        let init = t.path().join("init");
        std::fs::create_dir(&init).unwrap();
        build(&lowers, &init).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&init)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["dev", "etc", "proc"]);
        let etc = std::fs::metadata(init.join("etc")).unwrap();
        assert_eq!(etc.mode() & 0o7777, 0o750, "the image's /etc mode");
        let mut files: Vec<String> = std::fs::read_dir(init.join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(files, ["hostname", "hosts"]);
    }
}
