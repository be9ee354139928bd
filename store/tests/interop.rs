//! Archives exchanged with Debian's podman and skopeo, both directions,
//! checked on digests and on files inside the image. As root.

mod fixtures;

use std::path::Path;
use std::process::Command;

use berth_store::Store;
use berth_store::archive::Format;
use berth_store::refs::ImageName;
use berth_store::snapshot::Driver;
use fixtures::{Mounted, busybox_tar};

struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        fixtures::require_root();
        assert!(
            Path::new("/usr/bin/podman").exists(),
            "install Debian's podman"
        );
        Podman {
            dir: tempfile::Builder::new()
                .prefix("bt-store-podman-")
                .tempdir()
                .unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("podman")
            .arg("--root")
            .arg(self.dir.path().join("storage"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args(["--storage-driver", "vfs", "--events-backend", "file"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A file of an image, through `podman image mount`.
    fn file(&self, image: &str, path: &str) -> Vec<u8> {
        let root = self.run(&["image", "mount", image]);
        let data = std::fs::read(Path::new(root.trim()).join(path)).unwrap();
        self.run(&["image", "unmount", image]);
        data
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .arg("--root")
            .arg(self.dir.path().join("storage"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args(["--storage-driver", "vfs", "image", "unmount", "--all"])
            .output();
    }
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("install Debian's skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn file_in(s: &Store, image: &str, path: &str, scratch: &Path) -> Vec<u8> {
    let img = s.image(image).unwrap();
    let id = format!("interop-{}", std::process::id());
    s.prepare_container(&id, &img).unwrap();
    let mnt = scratch.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    s.mount_container(&id, &mnt).unwrap();
    let data = {
        let _m = Mounted(mnt.clone());
        std::fs::read(mnt.join(path)).unwrap()
    };
    s.remove_container(&id).unwrap();
    data
}

#[test]
fn podman_archives_load_into_berth() {
    let p = Podman::new();
    let tar = p.dir.path().join("rootfs.tar");
    std::fs::write(&tar, busybox_tar()).unwrap();
    p.run(&["import", tar.to_str().unwrap(), "localhost/bt-podman:1"]);
    let podman_id = p.run(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        "localhost/bt-podman:1",
    ]);
    for (format, file) in [("docker-archive", "d.tar"), ("oci-archive", "o.tar")] {
        let out = p.dir.path().join(file);
        p.run(&[
            "save",
            "--format",
            format,
            "-o",
            out.to_str().unwrap(),
            "localhost/bt-podman:1",
        ]);
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path(), Some(Driver::Overlay)).unwrap();
        let names = s.load(&mut std::fs::File::open(&out).unwrap()).unwrap();
        assert_eq!(names, ["localhost/bt-podman:1"], "{format}");
        let img = s.image("localhost/bt-podman:1").unwrap();
        assert_eq!(
            img.id.digest(),
            podman_id.trim(),
            "{format}: the same image id (config digest)"
        );
        assert_eq!(
            file_in(&s, "localhost/bt-podman:1", "etc/passwd", t.path()),
            p.file("localhost/bt-podman:1", "etc/passwd")
        );
    }
}

#[test]
fn berth_archives_load_into_podman() {
    let p = Podman::new();
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path(), Some(Driver::Overlay)).unwrap();
    s.import(
        &mut &busybox_tar()[..],
        &ImageName::parse("localhost/bt-berth:2").unwrap(),
        None,
    )
    .unwrap();
    let img = s.image("localhost/bt-berth:2").unwrap();
    for (format, file) in [(Format::Docker, "d.tar"), (Format::Oci, "o.tar")] {
        let out = t.path().join(file);
        s.save(
            &["localhost/bt-berth:2".into()],
            format,
            &mut std::fs::File::create(&out).unwrap(),
        )
        .unwrap();
        let loaded = p.run(&["load", "-i", out.to_str().unwrap()]);
        assert!(loaded.contains("bt-berth:2"), "{format:?}: {loaded}");
        let id = p.run(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "localhost/bt-berth:2",
        ]);
        assert_eq!(id.trim(), img.id.digest(), "{format:?}");
        assert_eq!(
            p.file("localhost/bt-berth:2", "home/user/.profile"),
            b"x=1\n\n"
        );
        p.run(&["rmi", "localhost/bt-berth:2"]);
    }
}

#[test]
fn skopeo_copies_both_ways() {
    fixtures::require_root();
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(&t.path().join("store"), Some(Driver::Overlay)).unwrap();
    s.import(
        &mut &busybox_tar()[..],
        &ImageName::parse("bt/sk:1").unwrap(),
        None,
    )
    .unwrap();
    let img = s.image("bt/sk:1").unwrap();
    // Out of berth's store (an OCI layout) into skopeo's docker-archive...
    let da = t.path().join("sk.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:docker.io/bt/sk:1", t.path().join("store").display()),
        &format!("docker-archive:{}:bt/sk:copied", da.display()),
    ]);
    // ...and back into a second store.
    let s2 = Store::open(&t.path().join("store2"), Some(Driver::Overlay)).unwrap();
    let names = s2.load(&mut std::fs::File::open(&da).unwrap()).unwrap();
    assert_eq!(names, ["docker.io/bt/sk:copied"]);
    assert_eq!(s2.image("bt/sk:copied").unwrap().id, img.id);
    // berth's own archive, read by skopeo.
    let oa = t.path().join("berth-oci.tar");
    s.save(
        &["bt/sk:1".into()],
        Format::Oci,
        &mut std::fs::File::create(&oa).unwrap(),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("oci-archive:{}:1", oa.display()),
    ]))
    .unwrap();
    assert_eq!(v["Digest"], img.manifest_digest.to_string());
    let db = t.path().join("berth-docker.tar");
    s.save(
        &["bt/sk:1".into()],
        Format::Docker,
        &mut std::fs::File::create(&db).unwrap(),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--config",
        &format!("docker-archive:{}", db.display()),
    ]))
    .unwrap();
    assert_eq!(v["rootfs"]["diff_ids"][0], img.diff_ids[0].to_string());
}
