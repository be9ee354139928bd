//! Validation of `linux.cgroupsPath` and its resolution to a directory in
//! one hierarchy.

use std::path::{Component, Path, PathBuf};

use super::{CgroupError, Result};

/// A validated `linux.cgroupsPath`: normalised, without `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPath {
    /// Absolute paths are taken below each hierarchy's mount; relative
    /// ones below the runtime's own cgroup.
    pub absolute: bool,
    /// The path without its leading `/`; never empty.
    pub rel: PathBuf,
}

impl CgroupPath {
    pub fn parse(path: &Path) -> Result<Self> {
        let invalid = |reason: &str| CgroupError::InvalidPath {
            path: path.to_path_buf(),
            reason: reason.to_owned(),
        };
        let mut rel = PathBuf::new();
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(n) => rel.push(n),
                // A `..` could walk out of the hierarchy, or into a cgroup
                // that belongs to somebody else.
                Component::ParentDir => return Err(invalid("\"..\" is not allowed")),
                Component::Prefix(_) => return Err(invalid("unsupported path prefix")),
            }
        }
        if rel.as_os_str().is_empty() {
            // The container would share (and on removal, try to delete)
            // the hierarchy root or the runtime's own cgroup.
            return Err(invalid("must name a cgroup below the hierarchy root"));
        }
        Ok(CgroupPath {
            absolute: path.has_root(),
            rel,
        })
    }

    /// The container's directory in a hierarchy mounted at `mount_point`
    /// whose mount shows cgroup `mount_root`. `own` is this process's cgroup
    /// in that hierarchy as /proc/self/cgroup shows it; only relative paths
    /// use it.
    pub fn resolve(
        &self,
        mount_point: &Path,
        mount_root: &Path,
        own: Option<&str>,
    ) -> Result<PathBuf> {
        if self.absolute {
            return Ok(mount_point.join(&self.rel));
        }
        let own = own.ok_or_else(|| CgroupError::InvalidPath {
            path: self.rel.clone(),
            reason: format!(
                "relative path, but this process's cgroup for {} is not in /proc/self/cgroup",
                mount_point.display()
            ),
        })?;
        // /proc/self/cgroup paths are relative to the hierarchy root, the
        // mount point shows `mount_root`: only the part below it exists
        // under the mount point (nested containers see this).
        let below = Path::new(own)
            .strip_prefix(mount_root)
            .map_err(|_| CgroupError::InvalidPath {
                path: self.rel.clone(),
                reason: format!(
                    "relative path, but this process's cgroup {own} is outside {} (mounted from {})",
                    mount_point.display(),
                    mount_root.display()
                ),
            })?;
        Ok(mount_point.join(below).join(&self.rel))
    }
}

/// The directories from `mount_point` (exclusive) down to `leaf`
/// (inclusive), shallowest first.
pub fn chain(mount_point: &Path, leaf: &Path) -> Vec<PathBuf> {
    let Ok(rest) = leaf.strip_prefix(mount_point) else {
        return vec![leaf.to_path_buf()];
    };
    let mut cur = mount_point.to_path_buf();
    rest.components()
        .map(|c| {
            cur.push(c);
            cur.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> CgroupPath {
        CgroupPath::parse(Path::new(s)).unwrap()
    }

    #[test]
    fn parses_absolute_and_relative() {
        let a = p("/a/b/./c//");
        assert!(a.absolute);
        assert_eq!(a.rel, Path::new("a/b/c"));
        let r = p("x/y");
        assert!(!r.absolute);
        assert_eq!(r.rel, Path::new("x/y"));
    }

    #[test]
    fn rejects_dotdot_and_empty() {
        for bad in ["/a/../b", "../x", "a/..", "/", "", ".", "/./"] {
            let e = CgroupPath::parse(Path::new(bad)).unwrap_err();
            assert!(matches!(e, CgroupError::InvalidPath { .. }), "{bad}: {e}");
        }
        let msg = CgroupPath::parse(Path::new("/a/../b"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("\"/a/../b\""), "{msg}");
    }

    #[test]
    fn absolute_goes_below_the_mount_point_whatever_its_root() {
        let m = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(
            p("/berth/c1").resolve(m, Path::new("/"), None).unwrap(),
            Path::new("/sys/fs/cgroup/memory/berth/c1")
        );
        assert_eq!(
            p("/berth/c1")
                .resolve(m, Path::new("/docker/abc"), None)
                .unwrap(),
            Path::new("/sys/fs/cgroup/memory/berth/c1")
        );
    }

    #[test]
    fn relative_goes_below_own_cgroup() {
        let m = Path::new("/sys/fs/cgroup/memory");
        let r = p("c1");
        assert_eq!(
            r.resolve(m, Path::new("/"), Some("/user.slice/s1"))
                .unwrap(),
            Path::new("/sys/fs/cgroup/memory/user.slice/s1/c1")
        );
        assert_eq!(
            r.resolve(m, Path::new("/"), Some("/")).unwrap(),
            Path::new("/sys/fs/cgroup/memory/c1")
        );
    }

    #[test]
    fn relative_with_odd_mount_root() {
        // A container without a cgroup namespace: the host bind-mounted its
        // cgroup /docker/abc at the mount point, /proc/self/cgroup still
        // shows host paths.
        let m = Path::new("/sys/fs/cgroup/memory");
        let r = p("c1");
        assert_eq!(
            r.resolve(m, Path::new("/docker/abc"), Some("/docker/abc"))
                .unwrap(),
            Path::new("/sys/fs/cgroup/memory/c1")
        );
        assert_eq!(
            r.resolve(m, Path::new("/docker/abc"), Some("/docker/abc/sub"))
                .unwrap(),
            Path::new("/sys/fs/cgroup/memory/sub/c1")
        );
        // A prefix that only matches as a string is not below the root.
        assert!(
            r.resolve(m, Path::new("/docker/abc"), Some("/docker/abcd"))
                .is_err()
        );
        assert!(
            r.resolve(m, Path::new("/docker/abc"), Some("/other"))
                .is_err()
        );
        assert!(r.resolve(m, Path::new("/"), None).is_err());
    }

    #[test]
    fn chain_lists_each_level() {
        assert_eq!(
            chain(Path::new("/m"), Path::new("/m/a/b")),
            [PathBuf::from("/m/a"), PathBuf::from("/m/a/b")]
        );
    }
}
