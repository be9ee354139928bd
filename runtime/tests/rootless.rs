//! berth-runtime run by an unprivileged user: id maps written directly
//! for the user's own id, through newuidmap/newgidmap for subordinate
//! ranges. Needs the `berth-test` user with /etc/subuid and /etc/subgid
//! ranges, which scripts/test creates.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::json;

const USER: &str = "berth-test";

struct User {
    uid: u32,
    gid: u32,
    sub: (u32, u32),
}

fn user() -> User {
    common::require_root();
    let u = nix::unistd::User::from_name(USER)
        .unwrap()
        .unwrap_or_else(|| panic!("user {USER} missing: scripts/test creates it"));
    let sub = std::fs::read_to_string("/etc/subuid")
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            if f.next()? != USER {
                return None;
            }
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .unwrap_or_else(|| panic!("{USER} has no /etc/subuid range: scripts/test adds one"));
    User {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        sub,
    }
}

/// A bundle and a state root the user can use.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(u: &User, config: impl FnOnce(&mut serde_json::Value)) -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("bt-rootless-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        common::make_rootfs(&dir.path().join("rootfs"));
        let root = dir.path().join("state");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::chown(&root, Some(u.uid), Some(u.gid)).unwrap();
        let mut c = berth_runtime::spec::default_spec_json(true, u.uid, u.gid);
        c["process"]["terminal"] = json!(false);
        config(&mut c);
        std::fs::write(dir.path().join("config.json"), c.to_string()).unwrap();
        Setup { dir }
    }

    fn run_as(&self, u: &User, extra: &[&str], id: &str) -> Output {
        Command::new(common::BIN)
            .uid(u.uid)
            .gid(u.gid)
            .env_remove("XDG_RUNTIME_DIR")
            .env("HOME", "/")
            .arg("--root")
            .arg(self.dir.path().join("state"))
            .args(extra)
            .args(["run", "--bundle"])
            .arg(self.dir.path())
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn own_id_mapped_directly() {
    let u = user();
    let s = Setup::new(&u, |c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; echo pid=$$; ls /sys/class/net"
        ]);
    });
    let out = s.run_as(&u, &["--cgroup-manager", "none"], "rl-direct");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let o = text(&out.stdout);
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {o}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", &u.uid.to_string(), "1"]
    );
    assert_eq!(lines[2], "pid=1");
    assert!(
        !Path::new(&s.dir.path().join("state/rl-direct")).exists(),
        "run removed its state"
    );
}

#[test]
fn subordinate_ranges_go_through_newuidmap() {
    let u = user();
    let (start, count) = u.sub;
    let s = Setup::new(&u, |c| {
        c["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": u.uid, "size": 1},
            {"containerID": 1, "hostID": start, "size": count}
        ]);
        c["linux"]["gidMappings"] = json!([
            {"containerID": 0, "hostID": u.gid, "size": 1},
            {"containerID": 1, "hostID": start, "size": count}
        ]);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map /proc/self/gid_map; sleep 0.3"
        ]);
    });
    let out = s.run_as(&u, &["--cgroup-manager", "none"], "rl-sub");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let o = text(&out.stdout);
    let lines: Vec<Vec<&str>> = o.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["1000"], "{o}");
    let (uid, sub) = (u.uid.to_string(), start.to_string());
    let cnt = count.to_string();
    assert_eq!(lines[1], ["0", uid.as_str(), "1"], "{o}");
    assert_eq!(lines[2], ["1", sub.as_str(), cnt.as_str()], "{o}");
    assert_eq!(
        lines[4],
        ["1", sub.as_str(), cnt.as_str()],
        "gid map too: {o}"
    );
}

#[test]
fn without_cgroup_access_the_error_says_what_to_do() {
    let u = user();
    let s = Setup::new(&u, |c| c["process"]["args"] = json!(["true"]));
    let out = s.run_as(&u, &[], "rl-nocg");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("Permission denied") && err.contains("--cgroup-manager none"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
