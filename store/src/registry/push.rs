//! Push: every blob the image (or each image of an index) needs, then the
//! manifests, then the index. A blob the repository has is skipped (HEAD);
//! one another repository of the registry is known to hold is mounted;
//! the rest are uploaded, streamed from the store (one monolithic PUT per
//! blob, its body read from `open_blob` 1 MiB at a time).

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use oci_client::errors::OciDistributionError;
use oci_client::{Reference, RegistryOperation};
use oci_spec::image::Descriptor;

use super::conn::{Conn, chain, one_line, uploads};
use super::media::{self, Kind};
use super::{
    Auth, ContentStore, Options, Progress, ProgressStatus, RegistryConfig, RegistryError, Result,
};
use crate::digest::{Digest, sha256};

const READ_CHUNK: usize = 1 << 20;

pub(super) async fn push(
    config: &RegistryConfig,
    auth: &Auth,
    reference: &Reference,
    digest: &Digest,
    store: &dyn ContentStore,
    progress: &(dyn Fn(Progress) + Send + Sync),
    opts: &Options,
) -> Result<Digest> {
    let conn = Conn::new(config, auth, reference, opts, false)?;
    if let Some(d) = reference.digest()
        && d != digest.to_string()
    {
        return Err(RegistryError::Registry {
            reference: conn.name.clone(),
            message: format!("the reference's digest is not that of the image, {digest}"),
        });
    }
    conn.login(RegistryOperation::Push).await?;

    let top = read_manifest(&conn, store, digest)?;
    let (kind, top_type) = media::classify(&top).map_err(|m| blob_err(&conn, digest, m))?;
    // Manifests pushed by digest before the top one: an index's images.
    let mut children: Vec<(Digest, Vec<u8>, String)> = Vec::new();
    let mut blobs: Vec<(Descriptor, bool)> = Vec::new();
    let mut seen = HashSet::new();
    match kind {
        Kind::Manifest => collect_blobs(&conn, &top, digest, &mut blobs, &mut seen)?,
        Kind::Index => {
            let idx = media::parse_index(&top).map_err(|m| blob_err(&conn, digest, m))?;
            for d in idx.manifests() {
                let bytes = read_manifest(&conn, store, d.digest())?;
                let (k, mt) =
                    media::classify(&bytes).map_err(|m| blob_err(&conn, d.digest(), m))?;
                if k != Kind::Manifest {
                    return Err(blob_err(&conn, d.digest(), "nested index".into()));
                }
                collect_blobs(&conn, &bytes, d.digest(), &mut blobs, &mut seen)?;
                children.push((d.digest().clone(), bytes, mt));
            }
        }
    }

    // Owned items: a closure over borrowed ones makes this future !Send
    // (rust-lang/rust#102211), and the daemon spawns pushes.
    let conn_ref = &conn;
    futures_util::stream::iter(blobs)
        .map(|(desc, layer)| async move {
            push_blob(conn_ref, store, &desc, layer, progress, opts).await
        })
        .buffer_unordered(uploads(config))
        .try_collect::<Vec<()>>()
        .await?;

    for (d, bytes, mt) in children {
        let r = reference.clone_with_digest(d.to_string());
        put_manifest(&conn, &r, &d, bytes, &mt).await?;
    }
    put_manifest(&conn, reference, digest, top, &top_type).await?;
    Ok(digest.clone())
}

fn blob_err(conn: &Conn, digest: &Digest, message: String) -> RegistryError {
    RegistryError::Blob {
        reference: conn.name.clone(),
        digest: digest.clone(),
        message: one_line(&message),
    }
}

/// A manifest or index from the store, checked against its digest.
fn read_manifest(conn: &Conn, store: &dyn ContentStore, digest: &Digest) -> Result<Vec<u8>> {
    let bytes = store.read_blob(digest).map_err(|e| {
        blob_err(
            conn,
            digest,
            format!("cannot read it from the store: {}", chain(&e)),
        )
    })?;
    let actual = sha256(&bytes);
    if &actual != digest {
        return Err(blob_err(
            conn,
            digest,
            format!("the store's copy has digest {actual}"),
        ));
    }
    Ok(bytes)
}

fn collect_blobs(
    conn: &Conn,
    manifest: &[u8],
    digest: &Digest,
    blobs: &mut Vec<(Descriptor, bool)>,
    seen: &mut HashSet<String>,
) -> Result<()> {
    let m = media::parse_manifest(manifest).map_err(|e| blob_err(conn, digest, e))?;
    for l in m.layers() {
        if seen.insert(l.digest().to_string()) {
            blobs.push((l.clone(), true));
        }
    }
    if seen.insert(m.config().digest().to_string()) {
        blobs.push((m.config().clone(), false));
    }
    Ok(())
}

async fn put_manifest(
    conn: &Conn,
    r: &Reference,
    digest: &Digest,
    bytes: Vec<u8>,
    media_type: &str,
) -> Result<()> {
    let ct = http::HeaderValue::from_str(media_type)
        .map_err(|e| blob_err(conn, digest, format!("media type {media_type:?}: {e}")))?;
    conn.client
        .push_manifest_raw(r, bytes, ct)
        .await
        .map_err(|e| conn.error(&format!("pushing manifest {digest}"), &e))?;
    Ok(())
}

/// One blob: skipped if there, mounted if another repository has it,
/// uploaded otherwise.
async fn push_blob(
    conn: &Conn,
    store: &dyn ContentStore,
    desc: &Descriptor,
    layer: bool,
    progress: &(dyn Fn(Progress) + Send + Sync),
    opts: &Options,
) -> Result<()> {
    let digest = desc.digest();
    let ds = digest.to_string();
    let size = desc.size();
    let target = &conn.reference;
    let registry = target.resolve_registry();
    let repository = target.repository();
    let report = |status, current| {
        if layer {
            progress(Progress {
                digest: digest.clone(),
                status,
                current,
                total: Some(size),
            });
        }
    };
    let kind = if layer { "layer" } else { "blob" };

    let exists = conn
        .client
        .blob_exists(target, &ds)
        .await
        .map_err(|e| conn.error(&format!("checking {kind} {digest}"), &e))?;
    if exists {
        report(ProgressStatus::Pushed, size);
        store.add_blob_source(digest, registry, repository);
        return Ok(());
    }

    let mut sources: Vec<String> = store
        .blob_sources(digest)
        .into_iter()
        .filter(|(r, _)| r == registry)
        .map(|(_, repo)| repo)
        .collect();
    sources.extend(opts.mount_from.iter().cloned());
    let mut tried = HashSet::new();
    for repo in sources {
        if repo == repository || !tried.insert(repo.clone()) {
            continue;
        }
        let from = Reference::with_digest(target.registry().into(), repo.clone(), ds.clone());
        match conn.client.mount_blob(target, &from, &ds).await {
            Ok(()) => {
                tracing::debug!(blob = %ds, from = %repo, "mounted");
                report(ProgressStatus::Pushed, size);
                store.add_blob_source(digest, registry, repository);
                return Ok(());
            }
            Err(e) => tracing::debug!(blob = %ds, from = %repo, "mount failed: {e}"),
        }
    }

    let err = |message: String| {
        if layer {
            RegistryError::Layer {
                reference: conn.name.clone(),
                digest: digest.clone(),
                message: one_line(&message),
            }
        } else {
            blob_err(conn, digest, message)
        }
    };
    match store.blob_size(digest) {
        None => return Err(err("not in the store".into())),
        Some(s) if s != size => {
            return Err(err(format!(
                "the store's copy has {s} bytes, the manifest says {size}"
            )));
        }
        Some(_) => {}
    }
    let mut attempt = 0;
    loop {
        let reader = store
            .open_blob(digest)
            .map_err(|e| err(format!("cannot read it from the store: {}", chain(&e))))?;
        let sent = Arc::new(AtomicU64::new(0));
        let upload = conn.client.push_blob_stream(
            target,
            read_stream(reader, sent.clone()),
            &ds,
            Some(size),
        );
        tokio::pin!(upload);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut last = u64::MAX;
        let res = loop {
            tokio::select! {
                r = &mut upload => break r,
                _ = tick.tick() => {
                    let n = sent.load(Ordering::Relaxed);
                    if n != last {
                        report(ProgressStatus::Uploading, n);
                        last = n;
                    }
                }
            }
        };
        match res {
            Ok(_) => {
                report(ProgressStatus::Pushed, size);
                store.add_blob_source(digest, registry, repository);
                return Ok(());
            }
            Err(e) if attempt < opts.retries && retryable(&e) => {
                attempt += 1;
                tracing::warn!(blob = %ds, reference = %conn.name, "upload failed, retrying: {}", super::conn::describe(&e));
            }
            Err(e) => {
                let e = conn.error(&format!("uploading {kind} {digest}"), &e);
                return Err(match e {
                    RegistryError::Registry { message, .. } => err(message),
                    other => other,
                });
            }
        }
    }
}

fn retryable(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(e) => e.status().is_none_or(|s| s.is_server_error()),
        OciDistributionError::ServerError { code, .. } => *code >= 500,
        OciDistributionError::IoError(_) => false,
        _ => false,
    }
}

/// The blob as a stream, read on a blocking thread 1 MiB at a time, with
/// at most 4 MiB in flight. `sent` counts the bytes handed on.
fn read_stream(
    mut reader: Box<dyn Read + Send>,
    sent: Arc<AtomicU64>,
) -> impl futures_util::Stream<Item = oci_client::errors::Result<Bytes>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut buf = BytesMut::new();
        loop {
            buf.resize(READ_CHUNK, 0);
            let item = match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    Ok(buf.split().freeze())
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    futures_util::stream::unfold(rx, move |mut rx| {
        let sent = sent.clone();
        async move {
            let item = rx.recv().await?;
            if let Ok(b) = &item {
                sent.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
            Some((item.map_err(OciDistributionError::IoError), rx))
        }
    })
}
