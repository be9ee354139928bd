//! `docker cp`, `docker export` and `docker diff` through the real docker
//! CLI against berthd: files both ways for running and stopped
//! containers, volumes, hostile symlinks and tars that try to leave the
//! container. As root, inside `unshare -m --propagation private` (as
//! scripts/test runs it).

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use support::Berthd;

/// One tar entry: type, permission bits, content, link target.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    kind: char,
    mode: u32,
    data: Vec<u8>,
    link: String,
}

fn tar_items(bytes: &[u8]) -> BTreeMap<String, Item> {
    let mut out = BTreeMap::new();
    let mut a = tar::Archive::new(bytes);
    for e in a.entries().expect("a tar") {
        let mut e = e.expect("a tar entry");
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Regular => 'f',
            _ => '?',
        };
        let link = h
            .link_name()
            .ok()
            .flatten()
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        out.insert(
            name,
            Item {
                kind,
                mode: h.mode().unwrap() & 0o7777,
                data,
                link,
            },
        );
    }
    out
}

/// A host tree as the same map (names relative to `root`, prefixed
/// with `prefix`).
fn host_items(root: &Path, prefix: &str) -> BTreeMap<String, Item> {
    let mut out = BTreeMap::new();
    fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, Item>) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let p = dir.join(&n);
            let rel = format!("{rel}/{}", n.to_string_lossy());
            let md = std::fs::symlink_metadata(&p).unwrap();
            let (kind, data, link) = if md.is_dir() {
                ('d', Vec::new(), String::new())
            } else if md.file_type().is_symlink() {
                (
                    'l',
                    Vec::new(),
                    std::fs::read_link(&p).unwrap().display().to_string(),
                )
            } else {
                ('f', std::fs::read(&p).unwrap(), String::new())
            };
            out.insert(
                rel.clone(),
                Item {
                    kind,
                    mode: if kind == 'l' {
                        0o777
                    } else {
                        md.mode() & 0o7777
                    },
                    data,
                    link,
                },
            );
            if md.is_dir() {
                walk(&p, &rel, out);
            }
        }
    }
    walk(root, prefix, &mut out);
    out
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("bt-").tempdir().unwrap()
}

/// `docker cp c:path -`: the tar the CLI writes to stdout.
fn cp_out(d: &Berthd, src: &str) -> BTreeMap<String, Item> {
    let out = d.docker(&["cp", src, "-"]);
    assert!(
        out.status.success(),
        "docker cp {src} -: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    tar_items(&out.stdout)
}

fn run_detached(d: &Berthd, args: &[&str]) {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    d.docker_ok(&all);
}

#[test]
fn cp_both_ways_with_a_running_container() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    run_detached(&d, &["--name", "cc", "busybox", "sleep", "300"]);
    let host = tempdir();

    // A file into /tmp and back.
    let f = host.path().join("hello.txt");
    std::fs::write(&f, "hello from the host\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    d.docker_ok(&["cp", f.to_str().unwrap(), "cc:/tmp/"]);
    let got = cp_out(&d, "cc:/tmp/hello.txt");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got["hello.txt"].data, b"hello from the host\n");
    assert_eq!(got["hello.txt"].mode, 0o640);
    let back = host.path().join("back.txt");
    d.docker_ok(&["cp", "cc:/tmp/hello.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), b"hello from the host\n");

    // /etc/passwd as a tar on stdout.
    let passwd = cp_out(&d, "cc:/etc/passwd");
    assert_eq!(
        passwd["passwd"].data, b"root:x:0:0:root:/root:/bin/sh\n",
        "{passwd:?}"
    );

    // A tree with modes and a symlink, round trip.
    let tree = host.path().join("tree");
    std::fs::create_dir_all(tree.join("sub/deeper")).unwrap();
    std::fs::write(tree.join("a"), "a\n").unwrap();
    std::fs::write(tree.join("sub/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(tree.join("sub/deeper/.wh.not-a-whiteout"), "plain\n").unwrap();
    std::fs::set_permissions(tree.join("a"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(
        tree.join("sub/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(tree.join("sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
    symlink("../a", tree.join("sub/link")).unwrap();
    d.docker_ok(&["cp", tree.to_str().unwrap(), "cc:/tmp/tree"]);
    let out = host.path().join("out");
    std::fs::create_dir(&out).unwrap();
    d.docker_ok(&["cp", "cc:/tmp/tree", out.join("tree").to_str().unwrap()]);
    assert_eq!(host_items(&out.join("tree"), ""), host_items(&tree, ""));
    // The tar names the directory first, by its base name.
    let tar = cp_out(&d, "cc:/tmp/tree");
    let mut want = host_items(&tree, "tree");
    want.insert(
        "tree".into(),
        Item {
            kind: 'd',
            mode: std::fs::metadata(&tree).unwrap().mode() & 0o7777,
            data: Vec::new(),
            link: String::new(),
        },
    );
    let got: BTreeMap<String, Item> = tar
        .into_iter()
        .map(|(k, v)| (k.trim_end_matches('/').to_string(), v))
        .collect();
    assert_eq!(got, want);
    // `dir/.`: the content, into an existing directory.
    let content = host.path().join("content");
    std::fs::create_dir(&content).unwrap();
    d.docker_ok(&["cp", "cc:/tmp/tree/.", content.to_str().unwrap()]);
    assert_eq!(host_items(&content, ""), host_items(&tree, ""));

    // Missing paths: dockerd's 404 from HEAD and GET.
    let (status, _, _) = d.request("HEAD", "/containers/cc/archive?path=/nope");
    assert_eq!(status, 404);
    let (status, _, body) = d.request("GET", "/containers/cc/archive?path=/nope");
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("Could not find the file /nope in container cc"),
        "{body}"
    );
    let o = d.docker(&["cp", "cc:/nope", host.path().to_str().unwrap()]);
    assert!(!o.status.success());
    // The stat header of a symlink names where it leads.
    let (status, head, _) = d.request("HEAD", "/containers/cc/archive?path=/bin/sh");
    assert_eq!(status, 200, "{head}");
    let line = head
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("x-docker-container-path-stat:")
        })
        .expect("the stat header");
    let b64 = line.split_once(':').unwrap().1.trim();
    let out = std::process::Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b64.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let stat: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stat["name"], "sh");
    assert_eq!(stat["linkTarget"], "/bin/busybox");
    assert_eq!(stat["mode"].as_u64().unwrap() & (1 << 27), 1 << 27);

    // noOverwriteDirNonDir (the CLI always sets it): a file does not
    // replace the directory /tmp/tree.
    let file_named_tree = host.path().join("x/tree");
    std::fs::create_dir_all(file_named_tree.parent().unwrap()).unwrap();
    std::fs::write(&file_named_tree, "file\n").unwrap();
    let o = d.docker(&["cp", file_named_tree.to_str().unwrap(), "cc:/tmp/"]);
    assert!(!o.status.success(), "a file replaced a directory");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot overwrite"), "{err}");
    // Into a path that is not a directory: 400.
    let o = d.docker(&["cp", f.to_str().unwrap(), "cc:/etc/passwd/x"]);
    assert!(!o.status.success());
}

#[test]
fn cp_into_and_out_of_a_volume() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    run_detached(
        &d,
        &["--name", "vv", "-v", "vol:/data", "busybox", "sleep", "300"],
    );
    let host = tempdir();
    let f = host.path().join("in-volume");
    std::fs::write(&f, "kept in the volume\n").unwrap();
    d.docker_ok(&["cp", f.to_str().unwrap(), "vv:/data/"]);
    // It went to the volume, not to the container's rootfs under it.
    let on_host = d.data_root.join("volumes/vol/_data/in-volume");
    assert_eq!(
        std::fs::read(&on_host).unwrap(),
        b"kept in the volume\n",
        "{}",
        d.log()
    );
    std::fs::write(
        d.data_root.join("volumes/vol/_data/from-host"),
        "made on the host\n",
    )
    .unwrap();
    let got = cp_out(&d, "vv:/data/from-host");
    assert_eq!(got["from-host"].data, b"made on the host\n");
}

#[test]
fn cp_with_a_stopped_container() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    d.docker_ok(&[
        "run",
        "--name",
        "st",
        "busybox",
        "sh",
        "-c",
        "echo written while running > /tmp/w",
    ]);
    let got = cp_out(&d, "st:/tmp/w");
    assert_eq!(got["w"].data, b"written while running\n");
    let host = tempdir();
    let f = host.path().join("later");
    std::fs::write(&f, "copied while stopped\n").unwrap();
    d.docker_ok(&["cp", f.to_str().unwrap(), "st:/tmp/later"]);
    assert_eq!(
        cp_out(&d, "st:/tmp/later")["later"].data,
        b"copied while stopped\n"
    );
    // It was in the snapshot: the container sees it when started again.
    d.docker_ok(&["start", "st"]);
    d.docker_ok(&["wait", "st"]);
    assert_eq!(
        cp_out(&d, "st:/tmp/later")["later"].data,
        b"copied while stopped\n"
    );
    // Nothing is left mounted.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let tmp = d.dir.path().join("exec/archive");
    assert!(
        !mounts.contains(tmp.to_str().unwrap()),
        "a snapshot is still mounted: {mounts}"
    );
    // A created container that never ran works too.
    d.docker_ok(&["create", "--name", "fresh", "busybox", "true"]);
    assert!(cp_out(&d, "fresh:/bin/busybox").contains_key("busybox"));
}

/// Raw tar bytes with one regular file entry named `name` (no checks on
/// the name).
fn raw_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
    }
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn hostile_paths_stay_in_the_container() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    let tag = format!("bt-evil-{}", std::process::id());
    // The first run makes the links and ends; started again, it stays up.
    d.docker_ok(&[
        "run",
        "--name",
        "hh",
        "busybox",
        "sh",
        "-c",
        "test -L /tmp/evil && exec sleep 300; ln -s / /tmp/evil; ln -s ../../../../ /tmp/up",
    ]);
    d.docker_ok(&["start", "hh"]);
    assert_eq!(
        d.request("HEAD", "/containers/hh/archive?path=/tmp/up").0,
        200,
        "{}",
        d.log()
    );
    let host = tempdir();
    let f = host.path().join(&tag);
    std::fs::write(&f, "must stay inside\n").unwrap();
    let on_host = Path::new("/").join(&tag);
    assert!(
        !on_host.exists(),
        "{} exists before the test",
        on_host.display()
    );

    d.docker_ok(&["cp", f.to_str().unwrap(), &format!("hh:/tmp/evil/{tag}")]);
    d.docker_ok(&["cp", f.to_str().unwrap(), "hh:/tmp/up/"]);
    d.docker_ok(&["cp", f.to_str().unwrap(), "hh:/tmp/evil"]);
    assert!(
        !on_host.exists(),
        "docker cp wrote {} on the host",
        on_host.display()
    );
    // It is in the container's own root.
    assert_eq!(
        cp_out(&d, &format!("hh:/{tag}"))[&tag].data,
        b"must stay inside\n"
    );
    // Reading through the links reads the container's files, not the host's.
    let via = cp_out(&d, "hh:/tmp/evil/etc/passwd");
    assert_eq!(via["passwd"].data, b"root:x:0:0:root:/root:/bin/sh\n");

    // Tars that name paths outside the destination are refused.
    let escape = format!("../../../../../../{tag}-dotdot");
    for (name, host_path) in [
        (escape.as_str(), format!("/{tag}-dotdot")),
        (&format!("/{tag}-abs")[..], format!("/{tag}-abs")),
    ] {
        let tar = host.path().join("bad.tar");
        std::fs::write(&tar, raw_tar(name, b"escaped\n")).unwrap();
        for dest in ["/tmp", "/tmp/evil", "/tmp/up"] {
            let out = d.curl(&[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/x-tar",
                "--data-binary",
                &format!("@{}", tar.display()),
                &format!("http://d/containers/hh/archive?path={dest}"),
            ]);
            let code = String::from_utf8_lossy(&out.stdout).into_owned();
            assert_eq!(code, "400", "{name} into {dest}: {}", d.log());
            assert!(!Path::new(&host_path).exists(), "{host_path} was written");
        }
    }

    // The same with the container stopped (its snapshot mounted).
    d.docker_ok(&["stop", "-t", "0", "hh"]);
    d.docker_ok(&[
        "cp",
        f.to_str().unwrap(),
        &format!("hh:/tmp/evil/{tag}-stopped"),
    ]);
    assert!(!Path::new(&format!("/{tag}-stopped")).exists());
    assert!(cp_out(&d, &format!("hh:/{tag}-stopped")).contains_key(&format!("{tag}-stopped")));
}

#[test]
fn read_only_rootfs_is_refused() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    run_detached(
        &d,
        &[
            "--read-only",
            "--name",
            "ro",
            "-v",
            "rw:/data",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let host = tempdir();
    let f = host.path().join("f");
    std::fs::write(&f, "x\n").unwrap();
    let o = d.docker(&["cp", f.to_str().unwrap(), "ro:/tmp/"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("container rootfs is marked read-only"),
        "{err}"
    );
    // A volume in it is still writable, as with dockerd.
    d.docker_ok(&["cp", f.to_str().unwrap(), "ro:/data/"]);
    assert_eq!(cp_out(&d, "ro:/data/f")["f"].data, b"x\n");
}

#[test]
fn export_and_diff() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    d.docker_ok(&[
        "run",
        "--name",
        "df",
        "busybox",
        "sh",
        "-c",
        "echo > /tmp/new; rm /bin/cat",
    ]);
    let diff = d.docker_ok(&["diff", "df"]);
    assert_eq!(
        diff.lines().collect::<Vec<_>>(),
        ["C /bin", "D /bin/cat", "C /tmp", "A /tmp/new"],
        "{diff}"
    );

    // Export, stopped: the container's files, no deleted ones.
    let host = tempdir();
    let out = host.path().join("df.tar");
    d.docker_ok(&["export", "-o", out.to_str().unwrap(), "df"]);
    let items = tar_items(&std::fs::read(&out).unwrap());
    assert!(items.contains_key("bin/busybox"), "{:?}", items.keys());
    assert!(items.contains_key("tmp/new"));
    assert!(!items.contains_key("bin/cat"));

    // Export, running: its rootfs without the mounts the runtime made.
    run_detached(
        &d,
        &["--name", "up", "-v", "vol:/data", "busybox", "sleep", "300"],
    );
    let out = d.docker(&["export", "up"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let items = tar_items(&out.stdout);
    assert!(items.contains_key("bin/busybox"), "{:?}", items.keys());
    assert!(
        !items.keys().any(|k| k.starts_with("proc/") && k != "proc/"),
        "/proc's content was exported: {:?}",
        items.keys()
    );
    // Its volume mount point is a change; /proc and /etc/hosts are not.
    let diff = d.docker_ok(&["diff", "up"]);
    assert_eq!(diff.lines().collect::<Vec<_>>(), ["A /data"], "{diff}");
}
