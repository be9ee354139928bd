//! `Config.User` and `HostConfig.GroupAdd` → uid, gid and supplementary
//! groups, looked up in the container's own /etc/passwd and /etc/group as
//! runc and dockerd do.
//!
//! The rootfs comes from an image, so its files are untrusted: a
//! `/etc/passwd -> /etc/shadow` symlink made for the host must not make us
//! read the host's. Files are opened with openat2(RESOLVE_IN_ROOT) through
//! the runtime's `Root`, which resolves every symlink and `..` as if the
//! rootfs were `/`.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use berth_runtime::rootfs::path::{Root, fd_path};
use oci_spec::runtime::User;

use super::error::{Result, SpecError};

/// The largest id runc and dockerd accept (ids are signed 32-bit there).
const MAX_ID: u64 = i32::MAX as u64;

/// A passwd or group file larger than this is not a real one; reading it
/// whole would let an image make the daemon allocate without bound.
const MAX_FILE: u64 = 16 << 20;

/// Who the container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the user's groups from /etc/group (when the
    /// group was not given explicitly), then `GroupAdd`.
    pub additional_gids: Vec<u32>,
    /// From the passwd entry, "/" without one: becomes HOME unless the
    /// environment sets it (runc fills HOME in; berth's runtime does not,
    /// so the spec carries it).
    pub home: String,
}

impl ResolvedUser {
    pub fn oci_user(&self) -> User {
        let mut u = User::default();
        u.set_uid(self.uid);
        u.set_gid(self.gid);
        if !self.additional_gids.is_empty() {
            u.set_additional_gids(Some(self.additional_gids.clone()));
        }
        u
    }
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Lines of `name:x:...`; malformed lines are skipped, as libc and runc
/// skip them.
fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim_end().split(':').collect();
            if f.len() < 4 || f[0].is_empty() || f[0].starts_with('#') {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).copied().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim_end().split(':').collect();
            if f.len() < 3 || f[0].is_empty() || f[0].starts_with('#') {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_owned(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// A numeric id, `None` when `s` is a name; out of range is an error.
fn numeric_id(s: &str) -> Result<Option<u32>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u64>() {
        Ok(n) if n <= MAX_ID => Ok(Some(n as u32)),
        _ => Err(SpecError::IdRange(s.to_owned())),
    }
}

/// Read `path` (a container path) inside `rootfs` without leaving it.
/// `None` when it does not exist there, which is not an error: numeric
/// users work in images without an /etc/passwd.
pub(crate) fn read_in_root(rootfs: &Path, path: &'static str) -> Result<Option<String>> {
    let err = |source: std::io::Error| SpecError::Rootfs {
        rootfs: rootfs.to_path_buf(),
        path,
        source,
    };
    let root = Root::open(rootfs).map_err(err)?;
    let fd = match root.open_path(Path::new(path)) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    // An O_PATH fd can be stat'ed but not read: reopen it through
    // /proc/self/fd, which names exactly the file resolved above. A FIFO
    // or device would block or do worse, so only a regular file is read.
    let file_type = std::fs::metadata(fd_path(&fd)).map_err(err)?.file_type();
    if !file_type.is_file() || file_type.is_fifo() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file",
        )));
    }
    let file = std::fs::File::open(fd_path(&fd)).map_err(err)?;
    let mut text = String::new();
    let n = file
        .take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(err)?;
    if n as u64 > MAX_FILE {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_FILE} bytes"),
        )));
    }
    Ok(Some(text))
}

/// Resolve `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...) and
/// `group_add` against the rootfs's /etc/passwd and /etc/group.
///
/// As dockerd (through runc's user package): an empty user is root; a
/// name must exist in passwd, a number need not; an explicit group
/// replaces the primary group and suppresses the user's supplementary
/// groups from /etc/group; `group_add` entries are names or numbers
/// appended after them.
pub fn resolve_user(rootfs: &Path, user: &str, group_add: &[String]) -> Result<ResolvedUser> {
    let passwd = read_in_root(rootfs, "/etc/passwd")?
        .map(|t| parse_passwd(&t))
        .unwrap_or_default();
    // /etc/group is only needed for a group or a named user; reading it
    // anyway keeps the code simple and costs one small file.
    let groups = read_in_root(rootfs, "/etc/group")?
        .map(|t| parse_group(&t))
        .unwrap_or_default();
    resolve_in(&passwd, &groups, user, group_add)
}

fn resolve_in(
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
    user: &str,
    group_add: &[String],
) -> Result<ResolvedUser> {
    let (user_arg, group_arg) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let mut resolved = ResolvedUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: "/".to_owned(),
    };
    let uid_arg = numeric_id(user_arg)?;
    // An empty user means root, looked up by uid so root's home and
    // groups come from passwd when it has them.
    let wanted_uid = if user_arg.is_empty() {
        Some(0)
    } else {
        uid_arg
    };
    let entry = passwd.iter().find(|e| match wanted_uid {
        Some(uid) => e.uid == uid,
        None => e.name == user_arg,
    });
    match (entry, wanted_uid) {
        (Some(e), _) => {
            resolved.uid = e.uid;
            resolved.gid = e.gid;
            resolved.home = e.home.clone();
        }
        (None, Some(uid)) => resolved.uid = uid,
        (None, None) => return Err(SpecError::UnknownUser(user_arg.to_owned())),
    }

    match group_arg {
        Some(g) if !g.is_empty() => {
            let gid_arg = numeric_id(g)?;
            let found = groups.iter().find(|e| match gid_arg {
                Some(gid) => e.gid == gid,
                None => e.name == g,
            });
            resolved.gid = match (found, gid_arg) {
                (Some(e), _) => e.gid,
                (None, Some(gid)) => gid,
                (None, None) => return Err(SpecError::UnknownGroup(g.to_owned())),
            };
        }
        _ => {
            if let Some(e) = entry {
                resolved.additional_gids = groups
                    .iter()
                    .filter(|g| g.members.contains(&e.name))
                    .map(|g| g.gid)
                    .collect();
            }
        }
    }

    for g in group_add {
        let gid = match numeric_id(g)? {
            Some(gid) => gid,
            None => groups
                .iter()
                .find(|e| e.name == *g)
                .map(|e| e.gid)
                .ok_or_else(|| SpecError::UnknownGroup(g.clone()))?,
        };
        resolved.additional_gids.push(gid);
    }
    let mut seen = std::collections::HashSet::new();
    resolved.additional_gids.retain(|g| seen.insert(*g));
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        alice:x:1000:1000:Alice:/home/alice:/bin/sh\n\
        broken line\n\
        bob:x:1001:100::/home/bob:/bin/sh\n";
    const GROUP: &str = "root:x:0:\n\
        audio:x:29:alice\n\
        users:x:100:\n\
        alice:x:1000:\n\
        video:x:44:alice,bob\n\
        wheel:x:10:root\n";

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("bt-user-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(dir.path().join("etc/group"), GROUP).unwrap();
        dir
    }

    fn resolve(user: &str, add: &[&str]) -> Result<ResolvedUser> {
        let dir = rootfs();
        let add: Vec<String> = add.iter().map(|s| s.to_string()).collect();
        resolve_user(dir.path(), user, &add)
    }

    #[test]
    fn empty_user_is_root_with_its_groups_and_home() {
        let u = resolve("", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert_eq!(u.additional_gids, vec![10]);
    }

    #[test]
    fn name_gets_primary_and_supplementary_groups() {
        let u = resolve("alice", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.additional_gids, vec![29, 44]);
        assert_eq!(u.home, "/home/alice");
    }

    #[test]
    fn uid_with_entry_is_looked_up_and_without_is_taken_as_is() {
        let u = resolve("1001", &[]).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1001, 100, vec![44])
        );
        let u = resolve("4242", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 0, "/"));
        assert!(u.additional_gids.is_empty());
    }

    #[test]
    fn explicit_group_replaces_primary_and_drops_supplementary() {
        let u = resolve("alice:users", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 100));
        assert!(u.additional_gids.is_empty());
        let u = resolve("1000:1000", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert!(u.additional_gids.is_empty());
        let u = resolve("5000:6000", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (5000, 6000));
    }

    #[test]
    fn group_add_appends_names_and_numbers() {
        let u = resolve("1000:1000", &["audio", "1234", "audio"]).unwrap();
        assert_eq!(u.additional_gids, vec![29, 1234]);
        let oci = u.oci_user();
        assert_eq!(oci.additional_gids().as_deref(), Some(&[29, 1234][..]));
    }

    #[test]
    fn unknown_names_read_as_docker_says() {
        let e = resolve("foo", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user foo: no matching entries in passwd file"
        );
        let e = resolve("alice:nogroup", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find group nogroup: no matching entries in group file"
        );
        let e = resolve("alice", &["plugdev"]).unwrap_err();
        assert!(e.to_string().contains("plugdev"), "{e}");
        let e = resolve("4294967296", &[]).unwrap_err();
        assert!(matches!(e, SpecError::IdRange(_)), "{e}");
        let e = resolve("2147483648", &[]).unwrap_err();
        assert!(e.to_string().contains("2147483648"), "{e}");
    }

    #[test]
    fn missing_files_allow_numeric_users_only() {
        let dir = tempfile::Builder::new()
            .prefix("bt-user-")
            .tempdir()
            .unwrap();
        let u = resolve_user(dir.path(), "123:456", &["789".into()]).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (123, 456, vec![789]));
        let u = resolve_user(dir.path(), "", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/"));
        assert!(matches!(
            resolve_user(dir.path(), "root", &[]),
            Err(SpecError::UnknownUser(_))
        ));
    }

    #[test]
    fn symlinks_out_of_the_rootfs_stay_inside_it() {
        // A "host" passwd that knows a user the rootfs does not.
        let outside = tempfile::Builder::new()
            .prefix("bt-host-")
            .tempdir()
            .unwrap();
        let host_passwd = outside.path().join("passwd");
        std::fs::write(&host_passwd, "hostonly:x:777:777::/host:/bin/sh\n").unwrap();

        let dir = tempfile::Builder::new()
            .prefix("bt-user-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        // Absolute and relative escapes: both must resolve inside the
        // rootfs, where nothing exists.
        std::os::unix::fs::symlink(&host_passwd, dir.path().join("etc/passwd")).unwrap();
        let depth = dir.path().components().count() + 2;
        let rel = format!(
            "{}{}",
            "../".repeat(depth),
            host_passwd.display().to_string().trim_start_matches('/')
        );
        std::os::unix::fs::symlink(&rel, dir.path().join("etc/group")).unwrap();

        let e = resolve_user(dir.path(), "hostonly", &[]).unwrap_err();
        assert!(matches!(e, SpecError::UnknownUser(_)), "{e}");
        let e = resolve_user(dir.path(), "0:hostonly", &[]).unwrap_err();
        assert!(matches!(e, SpecError::UnknownGroup(_)), "{e}");

        // The same link target inside the rootfs is followed there.
        let inside = dir.path().join(host_passwd.strip_prefix("/").unwrap());
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::write(&inside, "inner:x:55:66::/in:/bin/sh\n").unwrap();
        let u = resolve_user(dir.path(), "inner", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (55, 66, "/in"));
    }

    #[test]
    fn a_fifo_is_not_read() {
        let dir = tempfile::Builder::new()
            .prefix("bt-user-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        nix::unistd::mkfifo(
            &dir.path().join("etc/passwd"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let e = resolve_user(dir.path(), "alice", &[]).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
