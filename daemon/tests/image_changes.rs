//! The real docker CLI changing berthd's images: tag, rmi (and the
//! content collected after it), save/load, import, system df, prune, and
//! push/pull against a real docker-registry.

mod support;

use std::path::Path;

use support::Berthd;
use support::registry::Registry;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn id_of(d: &Berthd, name: &str) -> String {
    d.docker_ok(&["image", "inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_string()
}

#[test]
fn tag_rmi_and_content_collected() {
    let (d, id) = Berthd::start(&["busybox:latest"]);
    let id = id.unwrap();
    let blobs = d.data_root.join("image/blobs");
    assert!(!files(&blobs).is_empty());

    d.docker_ok(&["tag", "busybox", "bt/x:1"]);
    let table = d.docker_ok(&["images"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("bt/x ") && l.contains(" 1 ")),
        "{table}"
    );
    assert_eq!(id_of(&d, "bt/x:1"), id);
    let bad = d.docker(&["tag", "nosuch", "bt/y:1"]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("No such image"), "{bad:?}");

    // By id with names in two repositories: refused without -f.
    let out = d.docker(&["rmi", &id]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("must be forced") && err.contains("referenced in multiple repositories"),
        "{err}"
    );

    let out = d.docker_ok(&["rmi", "bt/x:1"]);
    assert_eq!(out.trim(), "Untagged: bt/x:1");
    assert!(!files(&blobs).is_empty(), "busybox still names the content");

    let out = d.docker_ok(&["rmi", "busybox"]);
    assert!(out.contains("Untagged: busybox:latest"), "{out}");
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
    assert_eq!(files(&blobs), Vec::<std::path::PathBuf>::new());
    assert_eq!(d.docker_ok(&["images", "-q"]).trim(), "");
    let out = d.docker(&["rmi", "busybox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("No such image: busybox:latest"));
}

#[test]
fn rmi_force_by_id_removes_every_name() {
    let (d, id) = Berthd::start(&["busybox:latest", "bt/other:2"]);
    let id = id.unwrap();
    let out = d.docker_ok(&["rmi", "-f", &id[7..19]]);
    assert!(out.contains("Untagged: busybox:latest"), "{out}");
    assert!(out.contains("Untagged: bt/other:2"), "{out}");
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
    assert_eq!(d.docker_ok(&["images", "-q"]).trim(), "");
}

#[test]
fn save_rmi_load_gives_the_same_image() {
    let (d, id) = Berthd::start(&["busybox:latest"]);
    let id = id.unwrap();
    let tar = d.dir.path().join("f.tar");
    d.docker_ok(&["save", "busybox", "-o", tar.to_str().unwrap()]);
    assert!(std::fs::metadata(&tar).unwrap().len() > 1 << 20);
    // Several names at once go through /images/get?names=..
    d.docker_ok(&["tag", "busybox", "bt/two:1"]);
    let both = d.dir.path().join("both.tar");
    d.docker_ok(&["save", "-o", both.to_str().unwrap(), "busybox", "bt/two:1"]);
    let mut listing = tar::Archive::new(std::fs::File::open(&both).unwrap());
    let names: Vec<String> = listing
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "manifest.json"), "{names:?}");

    d.docker_ok(&["rmi", "bt/two:1"]);
    d.docker_ok(&["rmi", "busybox"]);
    let out = d.docker_ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    assert_eq!(id_of(&d, "busybox"), id);

    let nothing = d.dir.path().join("nothing.tar");
    let out = d.docker(&["save", "nosuch", "-o", nothing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("No such image"), "{out:?}");
    let junk = d.dir.path().join("junk.tar");
    std::fs::write(&junk, b"not a tar at all").unwrap();
    let out = d.docker(&["load", "-i", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn import_a_rootfs_tarball() {
    let (d, _) = Berthd::start(&[]);
    let rootfs = d.dir.path().join("rootfs.tar");
    std::fs::write(&rootfs, support::busybox_tar()).unwrap();
    let out = d.docker_ok(&[
        "import",
        "-m",
        "from a test",
        rootfs.to_str().unwrap(),
        "bt/imp:1",
    ]);
    let id = out.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");
    assert_eq!(id_of(&d, "bt/imp:1"), id);
    let out = d.docker_ok(&["history", "--format", "{{.Comment}}", "bt/imp:1"]);
    assert_eq!(out.trim(), "from a test");
}

#[test]
fn system_df_and_prune() {
    let (d, id) = Berthd::start(&["busybox:latest"]);
    let id = id.unwrap();
    let out = d.docker_ok(&["system", "df"]);
    let row = out
        .lines()
        .find(|l| l.starts_with("Images"))
        .unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "1", "{out}");
    let json = d.docker_ok(&["system", "df", "--format", "{{json .}}"]);
    let v: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(v["Type"], "Images", "{json}");
    assert_eq!(v["TotalCount"], "1", "{json}");
    assert_ne!(v["Size"], "0B", "{json}");
    let verbose = d.docker_ok(&["system", "df", "-v"]);
    assert!(verbose.contains("busybox"), "{verbose}");

    // Nothing dangling: nothing goes.
    let out = d.docker_ok(&["image", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
    assert_eq!(id_of(&d, "busybox"), id);
    // -a: every image no container uses.
    let out = d.docker_ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains(&format!("deleted: {id}")), "{out}");
    assert_eq!(d.docker_ok(&["images", "-q"]).trim(), "");
    assert!(files(&d.data_root.join("image/blobs")).is_empty());
}

#[test]
fn push_rmi_pull_through_a_registry() {
    let reg = Registry::start();
    let host = reg.host();
    let (d, id) = Berthd::start_with(&["busybox:latest"], &["--insecure-registry", &host]);
    let id = id.unwrap();
    let name = format!("{host}/bt/x:1");
    d.docker_ok(&["tag", "busybox", &name]);
    let out = d.docker(&["push", &name]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}\nregistry:\n{}\nberthd:\n{}",
        text(&out.stderr),
        reg.log(),
        d.log()
    );
    assert!(
        stdout.contains(&format!("The push refers to repository [{host}/bt/x]")),
        "{stdout}"
    );
    assert!(stdout.contains(": Pushed"), "{stdout}");
    assert!(stdout.contains("1: digest: sha256:"), "{stdout}");
    // Again: the registry has it all.
    let again = d.docker_ok(&["push", &name]);
    assert!(again.contains("Layer already exists"), "{again}");

    d.docker_ok(&["rmi", &name]);
    d.docker_ok(&["rmi", "busybox"]);
    assert!(files(&d.data_root.join("image/blobs")).is_empty());

    let out = d.docker(&["pull", &name]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}\nberthd:\n{}",
        text(&out.stderr),
        d.log()
    );
    assert!(stdout.contains("1: Pulling from bt/x"), "{stdout}");
    assert!(stdout.contains("Pull complete"), "{stdout}");
    assert!(stdout.contains("Digest: sha256:"), "{stdout}");
    assert!(
        stdout.contains(&format!("Status: Downloaded newer image for {name}")),
        "{stdout}"
    );
    assert_eq!(id_of(&d, &name), id);
    let again = d.docker_ok(&["pull", &name]);
    assert!(again.contains("Status: Image is up to date"), "{again}");

    // A missing image: exit 1, one line naming what is missing.
    let out = d.docker(&["pull", &format!("{host}/bt/nope:1")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    let err = err.trim();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("not found") || err.contains("manifest unknown"),
        "{err}"
    );
}

#[test]
fn pull_errors_arrive_in_the_stream() {
    let reg = Registry::start();
    let host = reg.host();
    let (d, _) = Berthd::start_with(&[], &["--insecure-registry", &host]);
    let (status, head, body) = d.request(
        "POST",
        &format!("/v1.47/images/create?fromImage={host}/bt/nope&tag=1"),
    );
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let last: serde_json::Value = serde_json::from_str(body.lines().last().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {body}"));
    let message = last["errorDetail"]["message"].as_str().unwrap();
    assert_eq!(last["error"].as_str(), Some(message), "{body}");
    assert!(message.contains("not found"), "{body}");
    let first: serde_json::Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(first["status"], "Pulling from bt/nope", "{body}");
    assert_eq!(first["id"], "1", "{body}");

    // Before the stream starts: plain HTTP errors.
    let (status, _, body) = d.request("POST", "/images/create?fromImage=UPPER/case");
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = d.request("POST", "/images/nosuch/push");
    assert_eq!(status, 404, "{body}");
    let (status, _, _) = d.request("POST", "/images/nosuch/tag?repo=bt/a");
    assert_eq!(status, 404);
    let (status, _, body) = d.request("DELETE", "/images/nosuch");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body, r#"{"message":"No such image: nosuch:latest"}"#);
}
