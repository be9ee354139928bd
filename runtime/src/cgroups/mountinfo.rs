//! Parsing of /proc/self/mountinfo (cgroup mounts only) and
//! /proc/<pid>/cgroup.

use std::path::{Path, PathBuf};

use super::{CgroupError, Result};

pub const MOUNTINFO: &str = "/proc/self/mountinfo";
pub const PROC_SELF_CGROUP: &str = "/proc/self/cgroup";

/// The mount point every layout we support is rooted at.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One cgroup or cgroup2 filesystem mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMountInfo {
    /// Where the hierarchy is mounted (field 5).
    pub mount_point: PathBuf,
    /// The cgroup of the hierarchy that appears at the mount point
    /// (field 4): "/" for a normal mount, something deeper for a bind mount
    /// of a sub-cgroup or a mount made inside a cgroup namespace.
    pub root: PathBuf,
    /// True for cgroup2.
    pub v2: bool,
    /// v1 only: controllers and `name=` entries from the super options, in
    /// the order the kernel prints them ("cpu", "cpuacct", "name=systemd").
    pub subsystems: Vec<String>,
}

/// Super options of a v1 mount that are flags, not subsystems.
const V1_FLAG_OPTIONS: &[&str] = &[
    "rw",
    "ro",
    "all",
    "none",
    "noprefix",
    "clone_children",
    "cpuset_v2_mode",
    "xattr",
    "favordynmods",
    "nofavordynmods",
];

/// Undo the octal escapes (`\040` for space, ...) the kernel applies to
/// paths in mountinfo.
pub fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            if v <= 0xff {
                out.push(v as u8);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse one mountinfo line; `None` for malformed lines and for
/// filesystems other than cgroup and cgroup2.
pub fn parse_line(line: &str) -> Option<CgroupMountInfo> {
    // Cheap reject before splitting: nearly all lines are not cgroups.
    if !line.contains(" - cgroup") {
        return None;
    }
    let mut fields = line.split(' ');
    let _id = fields.next()?;
    let _parent = fields.next()?;
    let _devno = fields.next()?;
    let root = fields.next()?;
    let mount_point = fields.next()?;
    let _mount_opts = fields.next()?;
    // Optional fields ("shared:1", "master:2", ...) end at a lone "-".
    for f in fields.by_ref() {
        if f == "-" {
            break;
        }
    }
    let fstype = fields.next()?;
    let _source = fields.next()?;
    let super_opts = fields.next().unwrap_or("");
    let v2 = match fstype {
        "cgroup2" => true,
        "cgroup" => false,
        _ => return None,
    };
    let subsystems = if v2 {
        Vec::new()
    } else {
        super_opts
            .split(',')
            .filter(|o| {
                !o.is_empty() && !V1_FLAG_OPTIONS.contains(o) && !o.starts_with("release_agent=")
            })
            .map(str::to_owned)
            .collect()
    };
    Some(CgroupMountInfo {
        mount_point: PathBuf::from(unescape(mount_point)),
        root: PathBuf::from(unescape(root)),
        v2,
        subsystems,
    })
}

/// Every distinct cgroup hierarchy in a mountinfo text. A hierarchy
/// mounted more than once (bind mounts) is reported once, preferring a
/// mount under /sys/fs/cgroup.
pub fn parse(text: &str) -> Vec<CgroupMountInfo> {
    let mut out: Vec<CgroupMountInfo> = Vec::new();
    for m in text.lines().filter_map(parse_line) {
        let same = out
            .iter_mut()
            .find(|o| o.v2 == m.v2 && same_subsystems(&o.subsystems, &m.subsystems));
        match same {
            Some(prev) => {
                let root = Path::new(CGROUP_ROOT);
                if !prev.mount_point.starts_with(root) && m.mount_point.starts_with(root) {
                    *prev = m;
                }
            }
            None => out.push(m),
        }
    }
    out
}

/// Read and parse /proc/self/mountinfo.
pub fn read() -> Result<Vec<CgroupMountInfo>> {
    let text = std::fs::read_to_string(MOUNTINFO).map_err(|source| CgroupError::Read {
        path: MOUNTINFO.into(),
        source,
    })?;
    Ok(parse(&text))
}

/// As [`read`], through `cache`: a file keeping the cgroup lines of
/// mountinfo between runs. With many containers running, mountinfo is
/// long (each has an overlay mount with long options) and the kernel
/// formats all of it for every read, for the dozen lines this needs.
/// The cached lines are used while they still describe the host: each
/// mount point still holds a cgroup filesystem and /proc/self/cgroup
/// names as many v1 hierarchies; otherwise mountinfo is read again.
pub fn read_cached(cache: &Path) -> Result<Vec<CgroupMountInfo>> {
    if let Ok(text) = std::fs::read_to_string(cache) {
        let mounts = parse(&text);
        if !mounts.is_empty() && still_mounted(&mounts) {
            return Ok(mounts);
        }
    }
    let text = std::fs::read_to_string(MOUNTINFO).map_err(|source| CgroupError::Read {
        path: MOUNTINFO.into(),
        source,
    })?;
    let lines: String = text
        .lines()
        .filter(|l| parse_line(l).is_some())
        .flat_map(|l| [l, "\n"])
        .collect();
    // Best effort, atomic: a reader sees the old lines or the new ones.
    let tmp = cache.with_extension(format!("tmp-{}", std::process::id()));
    if std::fs::write(&tmp, &lines).is_ok() && std::fs::rename(&tmp, cache).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(parse(&text))
}

fn still_mounted(mounts: &[CgroupMountInfo]) -> bool {
    const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let mounted = mounts.iter().all(|m| {
        let want = if m.v2 {
            CGROUP2_SUPER_MAGIC
        } else {
            CGROUP_SUPER_MAGIC
        };
        nix::sys::statfs::statfs(&m.mount_point).is_ok_and(|s| s.filesystem_type().0 == want)
    });
    let v1 = mounts.iter().filter(|m| !m.v2).count();
    mounted
        && read_proc_self_cgroup()
            .is_ok_and(|c| c.iter().filter(|c| c.hierarchy_id != 0).count() == v1)
}

/// Order-insensitive comparison of subsystem lists.
pub fn same_subsystems(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// One line of /proc/<pid>/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroup {
    pub hierarchy_id: u32,
    /// Controllers and `name=` entries; empty for the v2 (`0::`) line.
    pub subsystems: Vec<String>,
    pub path: String,
}

pub fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy_id = parts.next()?.parse().ok()?;
            let subsystems = parts
                .next()?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let path = parts.next()?.to_owned();
            Some(ProcCgroup {
                hierarchy_id,
                subsystems,
                path,
            })
        })
        .collect()
}

/// Read and parse /proc/self/cgroup.
pub fn read_proc_self_cgroup() -> Result<Vec<ProcCgroup>> {
    let text = std::fs::read_to_string(PROC_SELF_CGROUP).map_err(|source| CgroupError::Read {
        path: PROC_SELF_CGROUP.into(),
        source,
    })?;
    Ok(parse_proc_cgroup(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:8 master:3 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn parses_hybrid_mountinfo() {
        let m = parse(HYBRID);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m[0].subsystems, ["cpu", "cpuacct"]);
        assert!(!m[0].v2);
        assert_eq!(m[1].subsystems, ["cpuset"]);
        assert_eq!(m[3].subsystems, ["name=systemd"]);
        assert!(m[4].v2);
        assert!(m[4].subsystems.is_empty());
        assert_eq!(m[4].root, Path::new("/"));
    }

    #[test]
    fn parses_escaped_paths_and_odd_roots() {
        let line =
            "50 31 0:32 /docker/abc\\040def /mnt/my\\040cgroups rw - cgroup cgroup rw,memory";
        let m = parse_line(line).unwrap();
        assert_eq!(m.root, Path::new("/docker/abc def"));
        assert_eq!(m.mount_point, Path::new("/mnt/my cgroups"));
        assert_eq!(m.subsystems, ["memory"]);
    }

    #[test]
    fn ignores_non_cgroup_and_malformed_lines() {
        assert!(parse_line("22 1 0:21 / /sys rw - sysfs sysfs rw").is_none());
        assert!(parse_line("22 1 0:21 / /x rw - cgroupfoo x rw").is_none());
        assert!(parse_line("garbage - cgroup").is_none());
        assert!(parse_line("").is_none());
    }

    #[test]
    fn deduplicates_bind_mounts_preferring_sys_fs_cgroup() {
        let text = "\
1 0 0:32 /a /mnt/mem rw - cgroup cgroup rw,memory
2 0 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
3 0 0:32 /b /other rw - cgroup cgroup rw,memory
";
        let m = parse(text);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(m[0].root, Path::new("/"));
    }

    #[test]
    fn unified_only() {
        let m = parse(
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
        );
        assert_eq!(m.len(), 1);
        assert!(m[0].v2);
        assert_eq!(m[0].mount_point, Path::new("/sys/fs/cgroup"));
    }

    #[test]
    fn unescape_leaves_plain_and_broken_escapes() {
        assert_eq!(unescape("/a/b"), "/a/b");
        assert_eq!(unescape("a\\011b"), "a\tb");
        assert_eq!(unescape("a\\134b"), "a\\b");
        assert_eq!(unescape("a\\9"), "a\\9");
        assert_eq!(unescape("tail\\04"), "tail\\04");
    }

    #[test]
    fn parses_proc_cgroup() {
        let text = "\
9:name=systemd:/user.slice
4:memory:/process_api/38d7
2:cpu,cpuacct:/
0::/init.scope
1:net_cls:/with:colon
";
        let c = parse_proc_cgroup(text);
        assert_eq!(c.len(), 5);
        assert_eq!(c[0].subsystems, ["name=systemd"]);
        assert_eq!(c[1].path, "/process_api/38d7");
        assert_eq!(c[2].subsystems, ["cpu", "cpuacct"]);
        assert_eq!(c[3].hierarchy_id, 0);
        assert!(c[3].subsystems.is_empty());
        assert_eq!(c[3].path, "/init.scope");
        assert_eq!(c[4].path, "/with:colon");
    }

    #[test]
    fn subsystem_comparison_ignores_order() {
        let a = vec!["cpu".to_owned(), "cpuacct".to_owned()];
        let b = vec!["cpuacct".to_owned(), "cpu".to_owned()];
        assert!(same_subsystems(&a, &b));
        assert!(!same_subsystems(&a, &b[..1]));
    }

    #[test]
    fn the_cache_keeps_the_cgroup_lines_while_they_hold() {
        let t = tempfile::tempdir().unwrap();
        let cache = t.path().join("cgroup-mounts");
        let fresh = read().unwrap();
        assert!(!fresh.is_empty(), "this host mounts cgroups");
        assert_eq!(read_cached(&cache).unwrap(), fresh);
        let kept = std::fs::read_to_string(&cache).unwrap();
        assert_eq!(
            kept.lines().count(),
            kept.lines().filter(|l| parse_line(l).is_some()).count()
        );
        assert_eq!(parse(&kept), fresh, "only cgroup lines, all of them");
        assert_eq!(read_cached(&cache).unwrap(), fresh, "served from the cache");
        // A cached mount point that no longer holds a cgroup filesystem:
        // mountinfo is read again and the cache rewritten.
        let stale = kept.replacen(" /sys/fs/cgroup", &format!(" {}", t.path().display()), 1);
        assert_ne!(stale, kept);
        std::fs::write(&cache, &stale).unwrap();
        assert_eq!(read_cached(&cache).unwrap(), fresh);
        assert_eq!(std::fs::read_to_string(&cache).unwrap(), kept);
    }
}
