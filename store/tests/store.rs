//! The store on a real filesystem: archives round-trip, hostile archives
//! leave it untouched, collection keeps exactly what is reachable,
//! container snapshots mount and commit. As root (overlayfs, mknod).

mod fixtures;

use std::path::Path;

use berth_store::archive::Format;
use berth_store::refs::ImageName;
use berth_store::snapshot::Driver;
use berth_store::{NewImage, Store};
use fixtures::{Mounted, busybox_tar, contents, gzip, tar_of, tree, zstd};

fn name(s: &str) -> ImageName {
    ImageName::parse(s).unwrap()
}

fn open(dir: &Path, driver: Driver) -> Store {
    fixtures::require_root();
    Store::open(dir, Some(driver)).unwrap()
}

/// Mount an image's root filesystem through a container snapshot and
/// describe its tree.
fn image_tree(
    s: &Store,
    image: &str,
    scratch: &Path,
) -> std::collections::BTreeMap<String, String> {
    let img = s.image(image).unwrap();
    let id = format!("view-{}", std::process::id());
    s.prepare_container(&id, &img).unwrap();
    let target = scratch.join("mnt");
    std::fs::create_dir_all(&target).unwrap();
    s.mount_container(&id, &target).unwrap();
    let t = {
        let _m = Mounted(target.clone());
        tree(&target)
    };
    s.remove_container(&id).unwrap();
    t
}

fn import_busybox(s: &Store, n: &str) {
    s.import(&mut &busybox_tar()[..], &name(n), None).unwrap();
}

#[test]
fn import_then_save_and_load_round_trips_both_formats() {
    for driver in [Driver::Overlay, Driver::Copy] {
        let a = tempfile::tempdir().unwrap();
        let s = open(a.path(), driver);
        import_busybox(&s, "bt/busybox:1");
        let img = s.image("bt/busybox:1").unwrap();
        let want = image_tree(&s, "bt/busybox:1", a.path());
        assert_eq!(want["bin/busybox"].split(' ').next(), Some("mode=100755"));
        assert!(
            want["etc/passwd.hard"].contains("hardlink-of=etc/passwd"),
            "{want:?}"
        );
        assert!(want["home/user/.profile"].starts_with("mode=100600 uid=1000 gid=1000"));

        for format in [Format::Docker, Format::Oci] {
            let mut archive = Vec::new();
            s.save(&["bt/busybox:1".into()], format, &mut archive)
                .unwrap();
            let b = tempfile::tempdir().unwrap();
            let s2 = open(b.path(), driver);
            let names = s2.load(&mut &archive[..]).unwrap();
            assert_eq!(names, ["docker.io/bt/busybox:1"], "{format:?}");
            let img2 = s2.image("bt/busybox:1").unwrap();
            assert_eq!(img2.id, img.id, "same config digest ({format:?})");
            assert_eq!(img2.diff_ids, img.diff_ids);
            if format == Format::Oci {
                assert_eq!(
                    img2.manifest_digest, img.manifest_digest,
                    "OCI keeps the manifest"
                );
            }
            assert_eq!(
                image_tree(&s2, "bt/busybox:1", b.path()),
                want,
                "{driver:?} {format:?}"
            );
            // And a second save of the loaded image gives the same bytes.
            let mut again = Vec::new();
            s2.save(&["bt/busybox:1".into()], format, &mut again)
                .unwrap();
            assert_eq!(again, archive, "saves are reproducible ({format:?})");
        }
    }
}

/// Rewrites (or drops, with `None`) one archive entry: path, data.
type EditEntry = dyn Fn(&str, Vec<u8>) -> Option<(String, Vec<u8>)>;

#[test]
fn import_reads_gzip_and_zstd_tarballs() {
    let t = tempfile::tempdir().unwrap();
    let s = open(t.path(), Driver::Overlay);
    let plain = tar_of(&[("a/b.txt", b"hello")]);
    s.import(&mut &gzip(&plain)[..], &name("bt/gz"), None)
        .unwrap();
    s.import(&mut &zstd(&plain)[..], &name("bt/zst"), None)
        .unwrap();
    s.import(&mut &plain[..], &name("bt/plain"), None).unwrap();
    let ids: Vec<_> = ["bt/gz", "bt/zst", "bt/plain"]
        .iter()
        .map(|n| s.image(n).unwrap().diff_ids)
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2], "the same tar inside, the same diff id");
    let media: Vec<String> = ["bt/gz", "bt/zst", "bt/plain"]
        .iter()
        .map(|n| {
            s.image(n).unwrap().manifest.layers()[0]
                .media_type()
                .to_string()
        })
        .collect();
    assert_eq!(
        media,
        [
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.oci.image.layer.v1.tar"
        ]
    );
}

#[test]
fn hostile_archives_leave_the_store_as_it_was() {
    let t = tempfile::tempdir().unwrap();
    let s = open(t.path(), Driver::Overlay);
    import_busybox(&s, "bt/base");
    let before = contents(&s);
    // The archive's image is one the store lacks: a blob it already holds
    // would not need to be in the archive.
    let other = tempfile::tempdir().unwrap();
    let o = open(other.path(), Driver::Overlay);
    let big: Vec<u8> = (0..400_000u32).map(|i| (i * 7 % 251) as u8).collect();
    o.import(
        &mut &tar_of(&[("data/big", &big)])[..],
        &name("bt/other"),
        None,
    )
    .unwrap();
    let mut good = Vec::new();
    o.save(&["bt/other".into()], Format::Oci, &mut good)
        .unwrap();

    let rebuild = |edit: &EditEntry| {
        let mut out = tar::Builder::new(Vec::new());
        let mut ar = tar::Archive::new(&good[..]);
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            if let Some((p, d)) = edit(&path, data) {
                let mut h = tar::Header::new_ustar();
                h.set_size(d.len() as u64);
                h.set_mode(0o644);
                out.append_data(&mut h, p, &d[..]).unwrap();
            }
        }
        out.into_inner().unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a blob whose content does not match its name",
            rebuild(&|p, d| {
                if p.starts_with("blobs/") && d.len() > 1000 {
                    let mut d = d;
                    let n = d.len();
                    d[n / 2] ^= 0xff;
                    Some((p.to_string(), d))
                } else {
                    Some((p.to_string(), d))
                }
            }),
            "does not match its digest",
        ),
        (
            "a manifest naming a blob the archive lacks",
            rebuild(&|p, d| {
                (!(p.starts_with("blobs/") && d.len() > 100_000)).then(|| (p.to_string(), d))
            }),
            "is not in the archive",
        ),
        (
            "a truncated archive",
            good[..good.len() / 2].to_vec(),
            "archive",
        ),
        (
            "an entry leaving the archive",
            fixtures::raw_tar(&[(tar::EntryType::Regular, "../../etc/evil", "", b"x")]),
            "leaves the archive",
        ),
        (
            "no index at all",
            tar_of(&[("random.txt", b"x")]),
            "neither manifest.json",
        ),
    ];
    for (what, archive, want) in cases {
        let err = s.load(&mut &archive[..]).expect_err(what).to_string();
        assert!(err.contains(want), "{what}: {err}");
        assert_eq!(contents(&s), before, "{what}: the store changed");
        assert_eq!(
            std::fs::read_dir(t.path().join("ingest")).unwrap().count(),
            0,
            "{what}: ingest left over"
        );
    }
    // A rootfs tarball whose entries climb out: refused, nothing kept.
    for (kind, entry, link) in [
        (tar::EntryType::Regular, "../../etc/evil", ""),
        (tar::EntryType::Link, "shadow", "/etc/shadow"),
    ] {
        let hostile = fixtures::raw_tar(&[
            (tar::EntryType::Regular, "ok", "", b"fine"),
            (kind, entry, link, b""),
        ]);
        let err = s
            .import(&mut &hostile[..], &name("bt/hostile"), None)
            .expect_err(entry)
            .to_string();
        assert!(err.contains(entry), "{entry}: {err}");
        assert_eq!(contents(&s), before, "{entry}: the store changed");
    }
    // A docker-archive naming a layer it does not hold.
    let bad = tar_of(&[(
        "manifest.json",
        br#"[{"Config":"c.json","RepoTags":["bt/x:1"],"Layers":["nope/layer.tar"]}]"#,
    )]);
    let err = s.load(&mut &bad[..]).unwrap_err().to_string();
    assert!(
        err.contains("Config") || err.contains("not in the archive"),
        "{err}"
    );
    assert_eq!(contents(&s), before);
}

#[test]
fn gc_keeps_what_is_reachable_and_df_tells_shared_from_unique() {
    let t = tempfile::tempdir().unwrap();
    let s = open(t.path(), Driver::Overlay);
    import_busybox(&s, "bt/base");
    let base = s.image("bt/base").unwrap();
    let extra = |text: &[u8]| {
        s.blobs
            .write(&gzip(&tar_of(&[("data/file", text)])))
            .unwrap()
    };
    let a_layer = extra(&vec![b'a'; 300_000]);
    let b_layer = extra(&vec![b'b'; 200_000]);
    for (n, l) in [("bt/a", a_layer.clone()), ("bt/b", b_layer.clone())] {
        let new = NewImage {
            layers: vec![l],
            history: vec![serde_json::json!({"created_by": n})],
            config: None,
            author: None,
        };
        s.commit_image(Some(&base), &new, Some(&name(n))).unwrap();
    }
    // Nothing is garbage yet... except what nobody names: base's own name
    // keeps it.
    assert!(s.gc().unwrap().blobs.is_empty());
    let du = s.disk_usage().unwrap();
    let a = du
        .images
        .iter()
        .find(|i| i.names.contains(&"docker.io/bt/a:latest".to_string()))
        .unwrap();
    assert!(a.shared > 0 && a.unique >= 300_000, "{a:?}");
    assert_eq!(a.size, a.shared + a.unique);

    s.untag(&name("bt/a")).unwrap();
    let report = s.gc().unwrap();
    assert!(report.blobs.contains(&a_layer), "{report:?}");
    assert!(!report.blobs.contains(&b_layer));
    assert_eq!(report.layers.len(), 1, "only a's own layer");
    assert!(s.image("bt/b").is_ok() && s.image("bt/base").is_ok());
    assert!(!s.blobs.contains(&a_layer));

    // A container keeps its layers after its image's names are gone.
    let b = s.image("bt/b").unwrap();
    s.prepare_container("c1", &b).unwrap();
    s.untag(&name("bt/b")).unwrap();
    s.untag(&name("bt/base")).unwrap();
    let report = s.gc().unwrap();
    assert!(
        report.layers.is_empty(),
        "the container's layers stay: {report:?}"
    );
    s.remove_container("c1").unwrap();
    s.gc().unwrap();
    assert!(s.snapshots.layers().unwrap().is_empty());
    assert!(
        s.blobs.list().unwrap().is_empty(),
        "{:?}",
        s.blobs.list().unwrap()
    );
}

#[test]
fn container_changes_become_a_layer_and_a_new_image() {
    for driver in [Driver::Overlay, Driver::Copy] {
        let t = tempfile::tempdir().unwrap();
        let s = open(t.path(), driver);
        import_busybox(&s, "bt/base");
        let base = s.image("bt/base").unwrap();
        s.prepare_container("c", &base).unwrap();
        let mnt = t.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        s.mount_container("c", &mnt).unwrap();
        {
            let _m = Mounted(mnt.clone());
            std::fs::write(mnt.join("etc/new"), "new file").unwrap();
            std::fs::remove_file(mnt.join("bin/cat")).unwrap();
            std::fs::write(mnt.join("etc/passwd"), "changed\n").unwrap();
        }
        let opts = berth_store::layer::CreateOptions {
            compression: berth_store::layer::Compression::Gzip,
            level: None,
            threads: 0,
        };
        let created = s.commit_container_layer("c", &opts).unwrap();
        let new = NewImage {
            layers: vec![created.digest.clone()],
            history: vec![serde_json::json!({"created_by": "test"})],
            config: Some(serde_json::json!({"Cmd": ["sh"]})),
            author: None,
        };
        s.commit_image(Some(&base), &new, Some(&name("bt/child")))
            .unwrap();
        let child = s.image("bt/child").unwrap();
        assert_eq!(child.diff_ids.len(), 2);
        assert_eq!(child.diff_ids[1], created.diff_id);
        let t2 = image_tree(&s, "bt/child", t.path());
        assert!(t2.contains_key("etc/new"), "{driver:?}");
        assert!(
            !t2.contains_key("bin/cat"),
            "the deletion is a whiteout ({driver:?})"
        );
        assert!(t2["etc/passwd"].contains("size=8"), "{driver:?}");
        s.remove_container("c").unwrap();
    }
}

#[test]
fn stacks_deeper_than_the_mount_option_limit_still_mount() {
    let t = tempfile::tempdir().unwrap();
    let s = open(t.path(), Driver::Overlay);
    import_busybox(&s, "bt/deep");
    let mut img = s.image("bt/deep").unwrap();
    // 200 layers: as absolute paths their overlay options would take far
    // more than a page.
    for i in 0..199 {
        let l = s
            .blobs
            .write(&tar_of(&[(
                &format!("layers/{i}"),
                format!("{i}").as_bytes(),
            )]))
            .unwrap();
        let new = NewImage {
            layers: vec![l],
            history: vec![],
            config: None,
            author: None,
        };
        let d = s.commit_image(Some(&img), &new, None).unwrap();
        img = s.image_by_manifest(&d).unwrap();
    }
    assert_eq!(img.diff_ids.len(), 200);
    s.prepare_container("deep", &img).unwrap();
    let mnt = t.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    s.mount_container("deep", &mnt).unwrap();
    let _m = Mounted(mnt.clone());
    assert_eq!(std::fs::read_to_string(mnt.join("layers/0")).unwrap(), "0");
    assert_eq!(
        std::fs::read_to_string(mnt.join("layers/198")).unwrap(),
        "198"
    );
    assert!(mnt.join("bin/busybox").exists());
}

#[test]
fn the_store_is_an_oci_layout_skopeo_reads() {
    let t = tempfile::tempdir().unwrap();
    let s = open(t.path(), Driver::Overlay);
    import_busybox(&s, "bt/layout");
    let img = s.image("bt/layout").unwrap();
    let out = std::process::Command::new("skopeo")
        .arg("inspect")
        .arg(format!(
            "oci:{}:docker.io/bt/layout:latest",
            t.path().display()
        ))
        .output()
        .expect("skopeo: install Debian's skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"], img.manifest_digest.to_string());
}
