//! Pull and push with the real store on disk against Debian's
//! docker-registry on 127.0.0.1: layers land unpacked in snapshots, names
//! are tagged, a push to another repository mounts blobs, and a pull that
//! fails part-way leaves the store exactly as it was. As root (overlayfs).

mod fixtures;
mod registry_support;

use std::path::Path;
use std::sync::Mutex;

use berth_store::digest::Digest;
use berth_store::refs::ImageName;
use berth_store::registry::{Auth, Options, Platform, Progress, ProgressStatus, RegistryConfig};
use berth_store::snapshot::Driver;
use berth_store::{NewImage, Store};
use fixtures::{Mounted, busybox_tar, contents, tree};
use registry_support::{Fault, Proxy, Registry, RegistryKind, have_skopeo, have_tools, make_layer};

const MIB: usize = 1024 * 1024;

fn name(s: &str) -> ImageName {
    ImageName::parse(s).unwrap()
}

fn open(dir: &Path) -> Store {
    fixtures::require_root();
    Store::open(dir, Some(Driver::Overlay)).unwrap()
}

fn config(host: &str) -> RegistryConfig {
    RegistryConfig {
        insecure: vec![host.to_string()],
        ..RegistryConfig::default()
    }
}

/// busybox plus layers of random files of `sizes`, named `n`.
fn make_image(s: &Store, n: &str, seed: u64, sizes: &[usize]) {
    s.import(&mut &busybox_tar()[..], &name("bt/busybox-base"), None)
        .unwrap();
    let base = s.image("bt/busybox-base").unwrap();
    let layers = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| {
            s.blobs
                .write(&make_layer(seed + i as u64, *size).blob)
                .unwrap()
        })
        .collect();
    let new = NewImage {
        layers,
        history: sizes
            .iter()
            .map(|_| serde_json::json!({"created_by": "test"}))
            .collect(),
        config: Some(serde_json::json!({"Cmd": ["sh"]})),
        author: None,
    };
    s.commit_image(Some(&base), &new, Some(&name(n))).unwrap();
    s.untag(&name("bt/busybox-base")).unwrap();
}

/// The files of image `n` as a container sees them.
fn image_tree(s: &Store, n: &str, scratch: &Path) -> std::collections::BTreeMap<String, String> {
    let img = s.image(n).unwrap();
    let id = format!("view-{}", std::process::id());
    s.prepare_container(&id, &img).unwrap();
    let target = scratch.join(&id);
    std::fs::create_dir_all(&target).unwrap();
    s.mount_container(&id, &target).unwrap();
    let t = {
        let _m = Mounted(target.clone());
        tree(&target)
    };
    s.remove_container(&id).unwrap();
    t
}

#[derive(Default)]
struct Events(Mutex<Vec<Progress>>);

impl Events {
    fn statuses(&self, d: &Digest) -> Vec<ProgressStatus> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|p| &p.digest == d)
            .map(|p| p.status)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_push_pull_round_trips_through_the_store() {
    have_tools();
    let reg = Registry::start(RegistryKind::Plain);
    let cfg = config(&reg.host());
    let auth = Auth::Anonymous;
    let opts = Options::default();
    let host = Platform::host();
    let scratch = tempfile::tempdir().unwrap();

    let a_dir = tempfile::tempdir().unwrap();
    let a = open(a_dir.path());
    make_image(&a, "bt/app:1", 1, &[MIB, 3 * MIB, 64 * 1024]);
    let original = a.image("bt/app:1").unwrap();
    let first = name(&format!("{}/bt/app:1", reg.host()));
    let pushed = a
        .push(&cfg, &auth, "bt/app:1", &first, &|_| {}, &opts)
        .await
        .unwrap();
    assert_eq!(pushed, original.manifest_digest);

    // Pulled into an empty store: the same digests, the same files.
    let b_dir = tempfile::tempdir().unwrap();
    let b = open(b_dir.path());
    let events = Events::default();
    let pulled = b
        .pull(
            &cfg,
            &auth,
            &first,
            &host,
            &|p| events.0.lock().unwrap().push(p),
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(pulled.manifest, original.manifest_digest);
    let copy = b.image(&first.to_string()).unwrap();
    assert_eq!(copy.id, original.id);
    assert_eq!(copy.diff_ids, original.diff_ids);
    for l in original.manifest.layers() {
        assert!(
            events.statuses(l.digest()).contains(&ProgressStatus::Done),
            "progress for {}",
            l.digest()
        );
    }
    let want = image_tree(&a, "bt/app:1", scratch.path());
    assert_eq!(image_tree(&b, &first.to_string(), scratch.path()), want);
    assert!(want.contains_key("file-2"), "the layers' files are there");

    // Pushed on to another repository: its blobs are mounted, not sent.
    let second = name(&format!("{}/bt/other:2", reg.host()));
    let events = Events::default();
    let again = b
        .push(
            &cfg,
            &auth,
            &first.to_string(),
            &second,
            &|p| events.0.lock().unwrap().push(p),
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(again, original.manifest_digest);
    let log = reg.log();
    let mounts = log
        .lines()
        .filter(|l| l.contains("/v2/bt/other/blobs/uploads/") && l.contains("mount="))
        .count();
    assert!(mounts >= 4, "layers and config mounted from bt/app:\n{log}");

    // And pulled back once more: the same image again.
    let c_dir = tempfile::tempdir().unwrap();
    let c = open(c_dir.path());
    let pulled = c
        .pull(&cfg, &auth, &second, &host, &|_| {}, &opts)
        .await
        .unwrap();
    assert_eq!(pulled.manifest, original.manifest_digest);
    assert_eq!(
        c.image(&second.to_string()).unwrap().diff_ids,
        original.diff_ids
    );

    // A second pull finds everything present.
    let events = Events::default();
    c.pull(
        &cfg,
        &auth,
        &second,
        &host,
        &|p| events.0.lock().unwrap().push(p),
        &opts,
    )
    .await
    .unwrap();
    for l in original.manifest.layers() {
        assert_eq!(events.statuses(l.digest()), [ProgressStatus::Exists]);
    }

    // What berth pushed is an image to skopeo too.
    have_skopeo();
    let out = tempfile::tempdir().unwrap();
    registry_support::run(std::process::Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{second}"),
        &format!("dir:{}", out.path().display()),
    ]));
    let manifest = std::fs::read(out.path().join("manifest.json")).unwrap();
    assert_eq!(
        berth_store::digest::sha256(&manifest),
        original.manifest_digest
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pulls_leave_the_store_as_it_was() {
    have_tools();
    let reg = Registry::start(RegistryKind::Plain);
    let src_dir = tempfile::tempdir().unwrap();
    let src = open(src_dir.path());
    make_image(&src, "bt/big:1", 7, &[MIB, 4 * MIB, 2 * MIB]);
    let img = src.image("bt/big:1").unwrap();
    // The busybox layer, then three random ones; break the third.
    let victim = img.manifest.layers()[2].digest().clone();
    let proxy = Proxy::start(reg.port, Fault::None);
    let cfg = config(&proxy.host());
    let target = name(&format!("{}/bt/big:1", proxy.host()));
    let opts = Options::default();
    src.push(&cfg, &Auth::Anonymous, "bt/big:1", &target, &|_| {}, &opts)
        .await
        .unwrap();

    // The store already holds busybox (the first layer) and another image.
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.import(&mut &busybox_tar()[..], &name("bt/mine"), None)
        .unwrap();
    let before = contents(&s);

    let faults = [
        (
            "a connection dropped mid-layer, every time",
            Fault::Drop {
                digest: victim.to_string(),
                after: MIB,
                times: usize::MAX,
            },
        ),
        (
            "a layer whose bytes do not match its digest",
            Fault::Corrupt {
                digest: victim.to_string(),
                at: 2 * MIB,
            },
        ),
    ];
    for (what, fault) in faults {
        proxy.set_fault(fault);
        let err = s
            .pull(
                &cfg,
                &Auth::Anonymous,
                &target,
                &Platform::host(),
                &|_| {},
                &opts,
            )
            .await
            .expect_err(what)
            .to_string();
        eprintln!("{what}: {err}");
        assert!(err.contains(&victim.to_string()), "{what}: {err}");
        assert!(!err.contains('\n'), "{what}: one line: {err}");
        assert_eq!(contents(&s), before, "{what}: the store changed");
        for scratch in ["snapshots/tmp", "ingest"] {
            let left = std::fs::read_dir(dir.path().join(scratch)).unwrap().count();
            assert_eq!(left, 0, "{what}: {scratch} keeps {left} entries");
        }
        assert!(
            s.image(&target.to_string()).is_err(),
            "{what}: the name was tagged"
        );
    }

    // The registry mended: the pull completes, reusing the busybox layer.
    proxy.set_fault(Fault::None);
    let events = Events::default();
    s.pull(
        &cfg,
        &Auth::Anonymous,
        &target,
        &Platform::host(),
        &|p| events.0.lock().unwrap().push(p),
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(
        events.statuses(img.manifest.layers()[0].digest()),
        [ProgressStatus::Exists]
    );
    assert_eq!(s.image(&target.to_string()).unwrap().diff_ids, img.diff_ids);
}
