//! Pull and push against Debian's docker-registry on 127.0.0.1: plain,
//! TLS, basic and token auth, mirrors, and a proxy that breaks downloads.
//! Cross-checked with skopeo where it is installed.

mod registry_support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use berth_store::digest::{Digest, sha256};
use berth_store::registry::{
    self, Auth, ContentStore, Options, Platform, Progress, ProgressStatus, Pulled, Reference,
    RegistryConfig, RegistryError,
};
use registry_support::*;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

fn config(insecure: &[&str]) -> RegistryConfig {
    RegistryConfig {
        insecure: insecure.iter().map(|s| s.to_string()).collect(),
        ..RegistryConfig::default()
    }
}

fn r(host: &str, name: &str) -> Reference {
    format!("{host}/{name}").parse().unwrap()
}

fn linux(arch: &str) -> Platform {
    Platform {
        os: "linux".into(),
        architecture: arch.into(),
        variant: None,
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<Progress>>);

impl Events {
    fn cb(&self) -> impl Fn(Progress) + Send + Sync + '_ {
        |p| self.0.lock().unwrap().push(p)
    }
    fn take(&self) -> Vec<Progress> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

async fn push(
    cfg: &RegistryConfig,
    auth: &Auth,
    reference: &Reference,
    digest: &Digest,
    store: &MemStore,
) -> Result<Digest, RegistryError> {
    registry::push(cfg, auth, reference, digest, store, &|_| {}).await
}

async fn pull(
    cfg: &RegistryConfig,
    auth: &Auth,
    reference: &Reference,
    store: &MemStore,
) -> Result<Pulled, RegistryError> {
    registry::pull(cfg, auth, reference, &linux("amd64"), store, &|_| {}).await
}

/// `dst` holds `img` whole, blob for blob, and its layers unpacked.
fn assert_has_image(dst: &MemStore, src: &MemStore, img: &Image, pulled: &Pulled) {
    assert_eq!(pulled.manifest, img.manifest);
    assert_eq!(pulled.config, img.config);
    for d in img.layers.iter().chain([&img.config, &img.manifest]) {
        assert!(dst.has(d), "{d} missing");
        assert_eq!(dst.get(d), src.get(d), "{d} differs");
    }
    for l in &img.layers {
        assert!(dst.has_layer_blob(l), "layer {l} not unpacked");
    }
    assert_eq!(dst.layer_count(), img.layers.len());
}

fn no_partial(store: &MemStore, layer: &Digest) {
    assert!(!store.has(layer), "partial blob {layer} kept");
    assert!(!store.has_layer_blob(layer), "partial layer {layer} kept");
}

/// skopeo copies `reference` out of the registry: what we pushed is valid
/// to another client. Returns the directory's manifest digest.
fn skopeo_fetch(reference: &str, tls_verify: bool) -> Digest {
    let out = tempfile::tempdir().unwrap();
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &format!("--src-tls-verify={tls_verify}"),
        &format!("docker://{reference}"),
        &format!("dir:{}", out.path().display()),
    ]));
    sha256(&std::fs::read(out.path().join("manifest.json")).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_pull_roundtrip() {
    if !have_tools() {
        return;
    }
    let reg = Registry::start(RegistryKind::Plain);
    let cfg = config(&[&reg.host()]);
    let src = MemStore::new();
    let img = make_image(&src, 1, &[300 * KIB, 2 * MIB, 10 * KIB], "amd64", false);
    let target = r(&reg.host(), "berth/round:v1");

    let up = Events::default();
    let pushed = registry::push(
        &cfg,
        &Auth::Anonymous,
        &target,
        &img.manifest,
        &src,
        &up.cb(),
    )
    .await
    .unwrap();
    assert_eq!(pushed, img.manifest);
    let up = up.take();
    for l in &img.layers {
        let mine: Vec<_> = up.iter().filter(|p| &p.digest == l).collect();
        assert_eq!(
            mine.last().unwrap().status,
            ProgressStatus::Pushed,
            "{mine:?}"
        );
    }

    let dst = MemStore::new();
    let down = Events::default();
    let pulled = registry::pull(
        &cfg,
        &Auth::Anonymous,
        &target,
        &Platform::host(),
        &dst,
        &down.cb(),
    )
    .await
    .unwrap();
    assert_eq!(pulled.digest, img.manifest);
    assert_has_image(&dst, &src, &img, &pulled);
    assert_eq!(
        dst.max_busy.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "unpacks are serial"
    );
    let down = down.take();
    for l in &img.layers {
        let mine: Vec<_> = down.iter().filter(|p| &p.digest == l).collect();
        assert_eq!(
            mine.first().unwrap().status,
            ProgressStatus::Waiting,
            "{mine:?}"
        );
        assert_eq!(
            mine.last().unwrap().status,
            ProgressStatus::Done,
            "{mine:?}"
        );
        assert!(
            mine.iter()
                .any(|p| p.status == ProgressStatus::Downloading && p.total.is_some()),
            "{mine:?}"
        );
    }

    // Pulled again: every layer is there already.
    let again = Events::default();
    registry::pull(
        &cfg,
        &Auth::Anonymous,
        &target,
        &Platform::host(),
        &dst,
        &again.cb(),
    )
    .await
    .unwrap();
    let again = again.take();
    assert!(
        again.iter().all(|p| p.status == ProgressStatus::Exists),
        "{again:?}"
    );
    assert_eq!(again.len(), 3);

    if have_skopeo() {
        assert_eq!(skopeo_fetch(&target.whole(), false), img.manifest);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_schema2_roundtrip_by_digest() {
    if !have_tools() {
        return;
    }
    let reg = Registry::start(RegistryKind::Plain);
    let cfg = config(&[&reg.host()]);
    let src = MemStore::new();
    let img = make_image(&src, 2, &[100 * KIB, 200 * KIB], "amd64", true);
    let target = r(&reg.host(), "berth/docker:v2");
    push(&cfg, &Auth::Anonymous, &target, &img.manifest, &src)
        .await
        .unwrap();
    let by_digest = r(&reg.host(), &format!("berth/docker@{}", img.manifest));
    let dst = MemStore::new();
    let pulled = pull(&cfg, &Auth::Anonymous, &by_digest, &dst)
        .await
        .unwrap();
    assert_has_image(&dst, &src, &img, &pulled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_push_skips_existing_blobs() {
    if !have_tools() {
        return;
    }
    let reg = Registry::start(RegistryKind::Plain);
    let proxy = Proxy::start(reg.port, Fault::None);
    let cfg = config(&[&proxy.host()]);
    let src = MemStore::new();
    let img = make_image(&src, 3, &[64 * KIB, 64 * KIB], "amd64", false);
    let target = r(&proxy.host(), "berth/twice:v1");
    push(&cfg, &Auth::Anonymous, &target, &img.manifest, &src)
        .await
        .unwrap();
    let first = proxy.log();
    assert_eq!(
        first
            .iter()
            .filter(|l| l.starts_with("PUT") && l.contains("/blobs/uploads/"))
            .count(),
        3,
        "{first:#?}"
    );
    proxy.clear_log();
    let ev = Events::default();
    registry::push(
        &cfg,
        &Auth::Anonymous,
        &target,
        &img.manifest,
        &src,
        &ev.cb(),
    )
    .await
    .unwrap();
    let second = proxy.log();
    assert!(
        !second.iter().any(|l| l.contains("/blobs/uploads/")),
        "no upload on the second push: {second:#?}"
    );
    assert_eq!(second.iter().filter(|l| l.starts_with("HEAD")).count(), 3);
    let ev = ev.take();
    assert!(
        ev.iter().all(|p| p.status == ProgressStatus::Pushed),
        "{ev:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_then_push_elsewhere_mounts_blobs() {
    if !have_tools() {
        return;
    }
    let reg = Registry::start(RegistryKind::Plain);
    let proxy = Proxy::start(reg.port, Fault::None);
    let cfg = config(&[&proxy.host()]);
    let src = MemStore::new();
    let img = make_image(&src, 4, &[256 * KIB, 128 * KIB], "amd64", false);
    let one = r(&proxy.host(), "team/one:v1");
    push(&cfg, &Auth::Anonymous, &one, &img.manifest, &src)
        .await
        .unwrap();

    // A fresh store pulls it, remembering where the blobs came from...
    let local = MemStore::new();
    let pulled = pull(&cfg, &Auth::Anonymous, &one, &local).await.unwrap();
    assert_has_image(&local, &src, &img, &pulled);
    assert_eq!(
        local.blob_sources(&img.layers[0]),
        vec![(proxy.host(), "team/one".to_string())]
    );

    // ...and pushes it to another repository: mounted, not uploaded.
    proxy.clear_log();
    let two = r(&proxy.host(), "team/two:v1");
    push(&cfg, &Auth::Anonymous, &two, &pulled.manifest, &local)
        .await
        .unwrap();
    let log = proxy.log();
    let mounts = log
        .iter()
        .filter(|l| l.starts_with("POST /v2/team/two/blobs/uploads/") && l.contains("mount="))
        .count();
    assert_eq!(mounts, 3, "{log:#?}");
    assert!(
        !log.iter()
            .any(|l| l.starts_with("PUT") && l.contains("/blobs/uploads/")),
        "nothing uploaded: {log:#?}"
    );

    let again = MemStore::new();
    let pulled2 = pull(&cfg, &Auth::Anonymous, &two, &again).await.unwrap();
    assert_eq!(pulled2, pulled);
    assert_has_image(&again, &src, &img, &pulled2);

    // Without a record of the source, the hint does it.
    let bare = MemStore::new();
    for d in img.layers.iter().chain([&img.config, &img.manifest]) {
        bare.put(src.get(d));
    }
    proxy.clear_log();
    let three = r(&proxy.host(), "team/three:v1");
    let opts = Options {
        mount_from: vec!["team/one".into()],
        ..Options::default()
    };
    registry::push_with(
        &cfg,
        &Auth::Anonymous,
        &three,
        &img.manifest,
        &bare,
        &|_| {},
        &opts,
    )
    .await
    .unwrap();
    let log = proxy.log();
    assert!(
        !log.iter()
            .any(|l| l.starts_with("PUT") && l.contains("/blobs/uploads/")),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_picks_the_platform() {
    if !have_tools() {
        return;
    }
    let reg = Registry::start(RegistryKind::Plain);
    let cfg = config(&[&reg.host()]);
    let src = MemStore::new();
    let amd = make_image(&src, 5, &[50 * KIB, 60 * KIB], "amd64", false);
    let arm = make_image(&src, 6, &[70 * KIB], "arm64", false);
    let index = make_index(&src, &[&amd, &arm]);
    let target = r(&reg.host(), "berth/multi:v1");
    assert_eq!(
        push(&cfg, &Auth::Anonymous, &target, &index, &src)
            .await
            .unwrap(),
        index
    );

    let dst = MemStore::new();
    let pulled = registry::pull(
        &cfg,
        &Auth::Anonymous,
        &target,
        &linux("arm64"),
        &dst,
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(pulled.digest, index);
    assert!(dst.has(&index), "the index is stored");
    assert_has_image(&dst, &src, &arm, &pulled);
    assert!(!dst.has(&amd.manifest));

    let dst = MemStore::new();
    let pulled = pull(&cfg, &Auth::Anonymous, &target, &dst).await.unwrap();
    assert_has_image(&dst, &src, &amd, &pulled);

    let err = registry::pull(
        &cfg,
        &Auth::Anonymous,
        &target,
        &linux("s390x"),
        &dst,
        &|_| {},
    )
    .await
    .unwrap_err();
    eprintln!("error: {err}");
    assert!(matches!(err, RegistryError::NoPlatform { .. }), "{err}");
    assert!(err.to_string().contains("linux/s390x"), "{err}");
    assert!(err.to_string().contains("berth/multi:v1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_only_when_configured() {
    if !have_tools() {
        return;
    }
    let reg = Registry::start(RegistryKind::Plain);
    let src = MemStore::new();
    let img = make_image(&src, 7, &[10 * KIB], "amd64", false);
    let target = r(&reg.host(), "berth/insecure:v1");
    let err = push(&config(&[]), &Auth::Anonymous, &target, &img.manifest, &src)
        .await
        .unwrap_err();
    eprintln!("error: {err}");
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Connect { .. }), "{msg}");
    assert!(msg.contains("insecure-registries"), "{msg}");
    assert!(!msg.contains('\n'));

    push(
        &config(&[&reg.host()]),
        &Auth::Anonymous,
        &target,
        &img.manifest,
        &src,
    )
    .await
    .unwrap();
    let dst = MemStore::new();
    let err = pull(&config(&[]), &Auth::Anonymous, &target, &dst)
        .await
        .unwrap_err();
    eprintln!("error: {err}");
    assert!(matches!(err, RegistryError::Connect { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_and_without_the_ca() {
    if !have_tools() {
        return;
    }
    let reg = Registry::start(RegistryKind::Tls);
    let with_ca = RegistryConfig {
        ca_certs: vec![reg.ca.clone().unwrap()],
        ..RegistryConfig::default()
    };
    let src = MemStore::new();
    let img = make_image(&src, 8, &[100 * KIB], "amd64", false);
    let target = r(&reg.host(), "berth/tls:v1");

    let err = push(&config(&[]), &Auth::Anonymous, &target, &img.manifest, &src)
        .await
        .unwrap_err();
    eprintln!("error: {err}");
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Connect { .. }), "{msg}");
    assert!(msg.contains("certificate"), "{msg}");

    push(&with_ca, &Auth::Anonymous, &target, &img.manifest, &src)
        .await
        .unwrap();
    let dst = MemStore::new();
    let pulled = pull(&with_ca, &Auth::Anonymous, &target, &dst)
        .await
        .unwrap();
    assert_has_image(&dst, &src, &img, &pulled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth() {
    if !have_tools() {
        return;
    }
    let reg = Registry::start(RegistryKind::Basic {
        user: "alice".into(),
        password: "s3cret".into(),
    });
    let cfg = config(&[&reg.host()]);
    let good = Auth::Basic {
        username: "alice".into(),
        password: "s3cret".into(),
    };
    let bad = Auth::Basic {
        username: "alice".into(),
        password: "wrong".into(),
    };
    let src = MemStore::new();
    let img = make_image(&src, 9, &[100 * KIB], "amd64", false);
    let target = r(&reg.host(), "berth/basic:v1");

    let err = push(&cfg, &bad, &target, &img.manifest, &src)
        .await
        .unwrap_err();
    eprintln!("error: {err}");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("401"), "{err}");

    push(&cfg, &good, &target, &img.manifest, &src)
        .await
        .unwrap();

    let dst = MemStore::new();
    let err = pull(&cfg, &bad, &target, &dst).await.unwrap_err();
    eprintln!("error: {err}");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("401"), "{err}");
    let err = pull(&cfg, &Auth::Anonymous, &target, &dst)
        .await
        .unwrap_err();
    eprintln!("error: {err}");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");

    let pulled = pull(&cfg, &good, &target, &dst).await.unwrap();
    assert_has_image(&dst, &src, &img, &pulled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_auth() {
    if !have_tools() {
        return;
    }
    let tokens = TokenServer::start("bob", "hunter2");
    let reg = Registry::start(RegistryKind::Token {
        realm: tokens.realm(),
        service: registry_support::token::SERVICE.into(),
        issuer: registry_support::token::ISSUER.into(),
        cert: tokens.cert.clone(),
    });
    let cfg = config(&[&reg.host()]);
    let good = Auth::Basic {
        username: "bob".into(),
        password: "hunter2".into(),
    };
    let bad = Auth::Basic {
        username: "bob".into(),
        password: "nope".into(),
    };
    let src = MemStore::new();
    let img = make_image(&src, 10, &[100 * KIB, 20 * KIB], "amd64", false);
    let target = r(&reg.host(), "berth/bearer:v1");

    let err = push(&cfg, &bad, &target, &img.manifest, &src)
        .await
        .unwrap_err();
    eprintln!("error: {err}");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("token server refused"), "{err}");

    push(&cfg, &good, &target, &img.manifest, &src)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    let dst = MemStore::new();
    let pulled = pull(&cfg, &good, &target, &dst).await.unwrap();
    assert_has_image(&dst, &src, &img, &pulled);
    assert!(tokens.issued.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    let scopes = tokens.scopes.lock().unwrap().clone();
    assert!(
        scopes.contains(&"repository:berth/bearer:pull,push".to_string()),
        "{scopes:?}"
    );
    assert!(
        scopes.contains(&"repository:berth/bearer:pull".to_string()),
        "{scopes:?}"
    );

    // An anonymous token grants nothing here.
    let err = pull(&cfg, &Auth::Anonymous, &target, &MemStore::new())
        .await
        .unwrap_err();
    eprintln!("error: {err}");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_serves_the_pull() {
    if !have_tools() {
        return;
    }
    let mut upstream = Registry::start(RegistryKind::Plain);
    let mirror = Registry::start(RegistryKind::Plain);
    let src = MemStore::new();
    let img = make_image(&src, 11, &[100 * KIB, 50 * KIB], "amd64", false);
    // The mirror has the image under the same name.
    push(
        &config(&[&mirror.host()]),
        &Auth::Anonymous,
        &r(&mirror.host(), "library/app:v1"),
        &img.manifest,
        &src,
    )
    .await
    .unwrap();
    push(
        &config(&[&upstream.host()]),
        &Auth::Anonymous,
        &r(&upstream.host(), "library/app:v1"),
        &img.manifest,
        &src,
    )
    .await
    .unwrap();
    let target = r(&upstream.host(), "library/app:v1");

    // A dead mirror first: skipped, then the live one serves it all, while
    // the registry itself is down.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut mirrors = BTreeMap::new();
    mirrors.insert(
        upstream.host(),
        vec![dead, format!("http://{}", mirror.host())],
    );
    let cfg = RegistryConfig {
        insecure: vec![upstream.host()],
        mirrors,
        ..RegistryConfig::default()
    };
    upstream.stop();
    let dst = MemStore::new();
    let pulled = pull(&cfg, &Auth::Anonymous, &target, &dst).await.unwrap();
    assert_has_image(&dst, &src, &img, &pulled);
    assert!(mirror.log().contains("/v2/library/app/blobs/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_without_the_image_falls_back_to_the_registry() {
    if !have_tools() {
        return;
    }
    let upstream = Registry::start(RegistryKind::Plain);
    let mirror = Registry::start(RegistryKind::Plain);
    let counting = Proxy::start(upstream.port, Fault::None);
    let src = MemStore::new();
    let img = make_image(&src, 12, &[100 * KIB], "amd64", false);
    let target = r(&counting.host(), "library/app:v1");
    push(
        &config(&[&counting.host()]),
        &Auth::Anonymous,
        &target,
        &img.manifest,
        &src,
    )
    .await
    .unwrap();
    counting.clear_log();
    let mut mirrors = BTreeMap::new();
    mirrors.insert(counting.host(), vec![format!("http://{}", mirror.host())]);
    let cfg = RegistryConfig {
        insecure: vec![counting.host()],
        mirrors,
        ..RegistryConfig::default()
    };
    let dst = MemStore::new();
    let pulled = pull(&cfg, &Auth::Anonymous, &target, &dst).await.unwrap();
    assert_has_image(&dst, &src, &img, &pulled);
    assert!(mirror.log().contains("/v2/library/app/manifests/v1"));
    assert!(
        counting.log().iter().any(|l| l.contains("/manifests/v1")),
        "{:?}",
        counting.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_dropped_mid_layer() {
    if !have_tools() {
        return;
    }
    let reg = Registry::start(RegistryKind::Plain);
    let src = MemStore::new();
    let img = make_image(&src, 13, &[200 * KIB, 3 * MIB, 100 * KIB], "amd64", false);
    let victim = img.layers[1].clone();
    let proxy = Proxy::start(
        reg.port,
        Fault::Drop {
            digest: victim.to_string(),
            after: MIB,
            times: usize::MAX,
        },
    );
    let cfg = config(&[&proxy.host()]);
    let target = r(&proxy.host(), "berth/drop:v1");
    push(&cfg, &Auth::Anonymous, &target, &img.manifest, &src)
        .await
        .unwrap();

    // Always dropped: resumed once, then a clear error naming the layer,
    // and nothing of it kept.
    let dst = MemStore::new();
    let started = std::time::Instant::now();
    let err = pull(&cfg, &Auth::Anonymous, &target, &dst)
        .await
        .unwrap_err();
    eprintln!("error: {err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let msg = err.to_string();
    match &err {
        RegistryError::Layer { digest, .. } => assert_eq!(digest, &victim),
        other => panic!("{other}"),
    }
    assert!(msg.contains(&victim.to_string()), "{msg}");
    assert!(msg.contains("resumed once"), "{msg}");
    assert_eq!(proxy.faults_applied(), 2, "tried twice");
    no_partial(&dst, &victim);
    assert!(!dst.has(&img.manifest), "no manifest for a failed pull");
    assert!(!dst.has_layer_blob(&img.layers[2]));

    // Dropped once: resumed from where it stopped, with a Range request.
    proxy.set_fault(Fault::Drop {
        digest: victim.to_string(),
        after: MIB,
        times: 1,
    });
    proxy.clear_log();
    let pulled = pull(&cfg, &Auth::Anonymous, &target, &dst).await.unwrap();
    assert_has_image(&dst, &src, &img, &pulled);
    let gets = proxy
        .log()
        .iter()
        .filter(|l| l.contains(&format!("/blobs/{victim}")))
        .count();
    assert_eq!(gets, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_layer_is_rejected() {
    if !have_tools() {
        return;
    }
    let reg = Registry::start(RegistryKind::Plain);
    let src = MemStore::new();
    let img = make_image(&src, 14, &[100 * KIB, 500 * KIB], "amd64", false);
    let victim = img.layers[1].clone();
    let proxy = Proxy::start(
        reg.port,
        Fault::Corrupt {
            digest: victim.to_string(),
            at: 1000,
        },
    );
    let cfg = config(&[&proxy.host()]);
    let target = r(&proxy.host(), "berth/corrupt:v1");
    push(&cfg, &Auth::Anonymous, &target, &img.manifest, &src)
        .await
        .unwrap();
    let dst = MemStore::new();
    let err = pull(&cfg, &Auth::Anonymous, &target, &dst)
        .await
        .unwrap_err();
    eprintln!("error: {err}");
    let msg = err.to_string();
    assert!(
        matches!(&err, RegistryError::Layer { digest, .. } if digest == &victim),
        "{msg}"
    );
    assert!(msg.contains("does not match"), "{msg}");
    no_partial(&dst, &victim);
    assert!(
        dst.has_layer_blob(&img.layers[0]),
        "the good layer before it stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_download_times_out() {
    if !have_tools() {
        return;
    }
    let reg = Registry::start(RegistryKind::Plain);
    let src = MemStore::new();
    let img = make_image(&src, 15, &[MIB], "amd64", false);
    let victim = img.layers[0].clone();
    let proxy = Proxy::start(
        reg.port,
        Fault::Stall {
            digest: victim.to_string(),
            after: 100 * KIB,
        },
    );
    let cfg = config(&[&proxy.host()]);
    let target = r(&proxy.host(), "berth/stall:v1");
    push(&cfg, &Auth::Anonymous, &target, &img.manifest, &src)
        .await
        .unwrap();
    let opts = Options {
        idle_timeout: Duration::from_secs(1),
        retries: 0,
        ..Options::default()
    };
    let dst = MemStore::new();
    let started = std::time::Instant::now();
    let err = registry::pull_with(
        &cfg,
        &Auth::Anonymous,
        &target,
        &Platform::host(),
        &dst,
        &|_| {},
        &opts,
    )
    .await
    .unwrap_err();
    eprintln!("error: {err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let msg = err.to_string();
    assert!(
        matches!(&err, RegistryError::Layer { digest, .. } if digest == &victim),
        "{msg}"
    );
    assert!(
        msg.to_lowercase().contains("timed out") || msg.contains("timeout"),
        "{msg}"
    );
    no_partial(&dst, &victim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_naming_a_missing_blob() {
    if !have_tools() {
        return;
    }
    let reg = Registry::start(RegistryKind::Plain);
    let cfg = config(&[&reg.host()]);
    let src = MemStore::new();
    let img = make_image(&src, 16, &[100 * KIB, 100 * KIB], "amd64", false);
    let target = r(&reg.host(), "berth/missing:v1");
    push(&cfg, &Auth::Anonymous, &target, &img.manifest, &src)
        .await
        .unwrap();
    let victim = img.layers[1].clone();
    // Delete the blob from the repository behind the manifest's back.
    let status = http_status(
        reg.port,
        "DELETE",
        &format!("/v2/berth/missing/blobs/{victim}"),
    );
    assert_eq!(status, 202, "deleting the blob");
    let dst = MemStore::new();
    let err = pull(&cfg, &Auth::Anonymous, &target, &dst)
        .await
        .unwrap_err();
    eprintln!("error: {err}");
    let msg = err.to_string();
    assert!(
        matches!(&err, RegistryError::Layer { digest, .. } if digest == &victim),
        "{msg}"
    );
    assert!(msg.contains("BlobUnknown") || msg.contains("404"), "{msg}");
    no_partial(&dst, &victim);

    // Pushing an image whose blob the store lacks fails as clearly.
    let partial = MemStore::new();
    for d in [&img.manifest, &img.config, &img.layers[0]] {
        partial.put(src.get(d));
    }
    let err = push(
        &cfg,
        &Auth::Anonymous,
        &r(&reg.host(), "berth/other:v1"),
        &img.manifest,
        &partial,
    )
    .await
    .unwrap_err();
    eprintln!("error: {err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&victim.to_string()) && msg.contains("not in the store"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_what_skopeo_pushed() {
    if !have_tools() || !have_skopeo() {
        return;
    }
    let reg = Registry::start(RegistryKind::Plain);
    let cfg = config(&[&reg.host()]);
    let src = MemStore::new();
    let img = make_image(&src, 17, &[300 * KIB, 100 * KIB], "amd64", false);
    let layout = tempfile::tempdir().unwrap();
    write_oci_layout(&src, &img, layout.path(), "v1");

    // As is (OCI), and converted to Docker schema 2.
    for (repo, format) in [("skopeo/oci", None), ("skopeo/docker", Some("v2s2"))] {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if let Some(f) = format {
            cmd.args(["--format", f]);
        }
        cmd.arg(format!("oci:{}:v1", layout.path().display()))
            .arg(format!("docker://{}/{repo}:v1", reg.host()));
        run(&mut cmd);

        let dst = MemStore::new();
        let pulled = pull(
            &cfg,
            &Auth::Anonymous,
            &r(&reg.host(), &format!("{repo}:v1")),
            &dst,
        )
        .await
        .unwrap();
        for l in &img.layers {
            assert_eq!(dst.get(l), src.get(l));
            assert!(dst.has_layer_blob(l));
        }
        if format.is_none() {
            assert_has_image(&dst, &src, &img, &pulled);
        } else {
            let m = String::from_utf8(dst.get(&pulled.manifest)).unwrap();
            assert!(
                m.contains("application/vnd.docker.distribution.manifest.v2+json"),
                "{m}"
            );
        }
    }
}
