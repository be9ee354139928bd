//! Pull: resolve the reference, pick the platform, fetch the config, then
//! the layers the store lacks.
//!
//! Layers are downloaded by spawned tasks, up to `max_concurrent_downloads`
//! at once, started in layer order; each streams into a bounded pipe
//! (`Options::lookahead` bytes). The unpacking runs on the thread running
//! the pull (inside `block_in_place`; the store is borrowed, not
//! `'static`). Where a layer must be unpacked on top of its parent (the
//! copying snapshotter) it is serial, in layer order, and downloads of
//! later layers run ahead until their pipe is full. Where layers stand
//! alone (overlay), scoped worker threads unpack several at once and this
//! thread commits them in order.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use oci_client::RegistryOperation;
use oci_client::client::BlobResponse;
use oci_spec::image::Descriptor;
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::conn::{Conn, chain, downloads, one_line};
use super::media::{self, Kind};
use super::pipe::{PipeReader, PipeWriter, pipe};
use super::{
    Auth, ContentStore, Detached, Options, Platform, Progress, ProgressStatus, Pulled, Reference,
    RegistryConfig, RegistryError, Result,
};
use crate::digest::{Digest, chain_ids, sha256};

/// Largest manifest, index or config accepted.
const MAX_SMALL_BLOB: u64 = 64 << 20;
/// Progress at most this often per layer...
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// ...or after this many bytes.
const PROGRESS_BYTES: u64 = 512 << 10;

pub(super) async fn pull(
    config: &RegistryConfig,
    auth: &Auth,
    reference: &Reference,
    platform: &Platform,
    store: &dyn ContentStore,
    progress: &(dyn Fn(Progress) + Send + Sync),
    opts: &Options,
) -> Result<Pulled> {
    super::check_runtime(reference)?;
    let conn = Arc::new(Conn::new(config, auth, reference, opts, true)?);
    let name = conn.name.clone();
    let store_err = |source: io::Error| RegistryError::Store {
        reference: name.clone(),
        source,
    };
    conn.login(RegistryOperation::Pull).await?;

    // What the reference names: a manifest or an index.
    let (top, top_digest) = manifest(&conn, None).await?;
    let (kind, _) = media::classify(&top).map_err(|m| blob_err(&conn, &top_digest, m))?;
    let (index, manifest_bytes, manifest_digest) = match kind {
        Kind::Manifest => (None, top, top_digest.clone()),
        Kind::Index => {
            let idx = media::parse_index(&top).map_err(|m| blob_err(&conn, &top_digest, m))?;
            let desc =
                media::pick_platform(&idx, platform).ok_or_else(|| RegistryError::NoPlatform {
                    reference: name.clone(),
                    platform: media::platform_name(platform),
                })?;
            let want = desc.digest().clone();
            let (bytes, got) = manifest(&conn, Some(&want)).await?;
            if got != want || bytes.len() as u64 != desc.size() {
                return Err(blob_err(
                    &conn,
                    &want,
                    format!(
                        "the registry sent {} bytes with digest {got} for it",
                        bytes.len()
                    ),
                ));
            }
            if media::classify(&bytes)
                .map_err(|m| blob_err(&conn, &want, m))?
                .0
                != Kind::Manifest
            {
                return Err(blob_err(&conn, &want, "nested index: not an image".into()));
            }
            (Some((top, top_digest.clone())), bytes, want)
        }
    };
    let image =
        media::parse_manifest(&manifest_bytes).map_err(|m| blob_err(&conn, &manifest_digest, m))?;

    // The config: its diff ids name the layers' snapshots.
    let cdesc = image.config();
    let config_bytes = if store.has_blob(cdesc.digest()) {
        store.read_blob(cdesc.digest()).map_err(store_err)?
    } else {
        let b = small_blob(&conn, cdesc).await?;
        store.write_blob(cdesc.digest(), &b).map_err(store_err)?;
        b
    };
    let diff_ids =
        media::diff_ids(&config_bytes).map_err(|m| blob_err(&conn, cdesc.digest(), m))?;
    if diff_ids.len() != image.layers().len() {
        return Err(blob_err(
            &conn,
            &manifest_digest,
            format!(
                "{} layers but its config has {} diff ids",
                image.layers().len(),
                diff_ids.len()
            ),
        ));
    }
    let chains = chain_ids(&diff_ids);

    // Which layers to fetch.
    let mut plan = Vec::new();
    for (i, desc) in image.layers().iter().enumerate() {
        if store.has_layer(&chains[i]) {
            progress(Progress {
                digest: desc.digest().clone(),
                status: ProgressStatus::Exists,
                current: 0,
                total: Some(desc.size()),
            });
        } else {
            progress(Progress {
                digest: desc.digest().clone(),
                status: ProgressStatus::Waiting,
                current: 0,
                total: Some(desc.size()),
            });
            plan.push(i);
        }
    }

    if !plan.is_empty() {
        let (events_tx, events_rx) = mpsc::channel::<Progress>();
        let mut readers = Vec::new();
        let mut jobs = Vec::new();
        for &i in &plan {
            let (w, r) = pipe(opts.lookahead);
            readers.push((i, r));
            jobs.push((image.layers()[i].clone(), w));
        }
        // Started in layer order: the first layer always has its slot, so
        // the unpacking never waits on a download that cannot start.
        let slots = Arc::new(Semaphore::new(downloads(config)));
        let c = conn.clone();
        let retries = opts.retries;
        let scheduler = tokio::spawn(async move {
            let mut tasks = Tasks(Vec::new());
            for (desc, w) in jobs {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (c, events) = (c.clone(), events_tx.clone());
                tasks.0.push(tokio::spawn(async move {
                    download(&c, &desc, w, &events, retries).await;
                    drop(slot);
                }));
            }
            // Wait for them; dropping this task (abort) aborts them.
            for t in tasks.0.iter_mut() {
                let _ = t.await;
            }
        });
        let scheduler = Tasks(vec![scheduler]);

        let layers = image.layers();
        let result = tokio::task::block_in_place(|| {
            unpack(&conn, store, progress, &events_rx, readers, layers, &chains)
        });
        drop(scheduler);
        result?;
    }

    // Complete: the manifest (and index) go in last.
    store
        .write_blob(&manifest_digest, &manifest_bytes)
        .map_err(store_err)?;
    if let Some((bytes, d)) = &index {
        store.write_blob(d, bytes).map_err(store_err)?;
    }
    let registry = reference.resolve_registry();
    let repository = reference.repository();
    for d in image.layers() {
        store.add_blob_source(d.digest(), registry, repository);
    }
    store.add_blob_source(cdesc.digest(), registry, repository);
    Ok(Pulled {
        digest: top_digest,
        manifest: manifest_digest,
        config: cdesc.digest().clone(),
    })
}

/// Aborts its tasks when dropped: a pull that fails or is cancelled stops
/// its downloads.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

fn blob_err(conn: &Conn, digest: &Digest, message: String) -> RegistryError {
    RegistryError::Blob {
        reference: conn.name.clone(),
        digest: digest.clone(),
        message: one_line(&message),
    }
}

fn layer_err(conn: &Conn, digest: &Digest, message: String) -> RegistryError {
    RegistryError::Layer {
        reference: conn.name.clone(),
        digest: digest.clone(),
        message: one_line(&message),
    }
}

/// The manifest the reference names (or `digest`), from the first endpoint
/// that has it: its bytes and their digest (checked by oci-client against
/// the reference's digest, and here against `digest`).
async fn manifest(conn: &Conn, digest: Option<&Digest>) -> Result<(Vec<u8>, Digest)> {
    let what = match digest {
        Some(d) => format!("fetching manifest {d}"),
        None => "fetching the manifest".to_string(),
    };
    let mut last = None;
    for i in conn.live_endpoints() {
        let r = conn.at(i, digest.map(|d| d.to_string()).as_deref());
        match conn
            .client
            .pull_manifest_raw(&r, &conn.auth, media::MANIFEST_ACCEPT)
            .await
        {
            Ok((bytes, d)) => {
                let d: Digest = d.parse().map_err(|e| RegistryError::Registry {
                    reference: conn.name.clone(),
                    message: format!("{what}: bad digest {d}: {e}"),
                })?;
                let actual = sha256(&bytes);
                if actual != d || digest.is_some_and(|want| want != &actual) {
                    let err = format!("content has digest {actual}, not {d}");
                    if conn.is_mirror(i) {
                        conn.mirror_failed(i, &what, &err);
                        continue;
                    }
                    return Err(blob_err(conn, digest.unwrap_or(&d), err));
                }
                return Ok((bytes.to_vec(), actual));
            }
            Err(e) if conn.is_mirror(i) => conn.mirror_failed(i, &what, &e),
            Err(e) => last = Some(conn.error(&what, &e)),
        }
    }
    Err(last.unwrap_or_else(|| conn.none_left(&what)))
}

/// A config blob, whole, checked against its descriptor.
async fn small_blob(conn: &Conn, desc: &Descriptor) -> Result<Vec<u8>> {
    let digest = desc.digest();
    if desc.size() > MAX_SMALL_BLOB {
        return Err(blob_err(
            conn,
            digest,
            format!("{} bytes is too large for a config", desc.size()),
        ));
    }
    let what = format!("fetching blob {digest}");
    let mut last = None;
    for i in conn.live_endpoints() {
        let r = conn.at(i, None);
        let got = async {
            let mut s = conn
                .client
                .pull_blob_stream(&r, digest.to_string().as_str())
                .await
                .map_err(|e| conn.error(&what, &e))?;
            let mut out = Vec::with_capacity(desc.size() as usize);
            while let Some(chunk) = s.next().await {
                let chunk = chunk.map_err(|e| blob_err(conn, digest, chain(&e)))?;
                if out.len() + chunk.len() > desc.size() as usize {
                    return Err(blob_err(
                        conn,
                        digest,
                        format!("larger than the {} bytes declared", desc.size()),
                    ));
                }
                out.extend_from_slice(&chunk);
            }
            if out.len() as u64 != desc.size() || &sha256(&out) != digest {
                return Err(blob_err(
                    conn,
                    digest,
                    format!(
                        "content ({} bytes, {}) does not match its descriptor ({} bytes)",
                        out.len(),
                        sha256(&out),
                        desc.size()
                    ),
                ));
            }
            Ok(out)
        }
        .await;
        match got {
            Ok(b) => return Ok(b),
            Err(e) if conn.is_mirror(i) => conn.mirror_failed(i, &what, &e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| conn.none_left(&what)))
}

/// The unpacking loop, on a thread that may block: each layer in order,
/// from its pipe into the store; several at once where the store can
/// unpack a layer before its parent.
fn unpack(
    conn: &Conn,
    store: &dyn ContentStore,
    progress: &(dyn Fn(Progress) + Send + Sync),
    events: &mpsc::Receiver<Progress>,
    readers: Vec<(usize, PipeReader)>,
    layers: &[Descriptor],
    chains: &[Digest],
) -> Result<()> {
    let deliver = || {
        while let Ok(p) = events.try_recv() {
            progress(p);
        }
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    if store.detached_layers() && readers.len() > 1 && workers > 1 {
        return unpack_parallel(
            conn, store, progress, &deliver, readers, layers, chains, workers,
        );
    }
    let tick = || {
        deliver();
        Ok(())
    };
    for (i, pipe) in readers {
        let desc = &layers[i];
        let parent = i.checked_sub(1).map(|p| &chains[p]);
        let mut reader = LayerReader::new(pipe, &tick);
        let res = store.write_layer(desc, &chains[i], parent, &mut reader);
        let res = res.and_then(|()| reader.finish());
        deliver();
        if let Err(e) = res {
            // A failed download is the cause, whatever the store made of it.
            let message = reader.failed.unwrap_or_else(|| chain(&e));
            return Err(layer_err(conn, desc.digest(), message));
        }
        done(progress, desc);
    }
    Ok(())
}

fn done(progress: &(dyn Fn(Progress) + Send + Sync), desc: &Descriptor) {
    progress(Progress {
        digest: desc.digest().clone(),
        status: ProgressStatus::Done,
        current: desc.size(),
        total: Some(desc.size()),
    });
}

/// Workers unpack layers as their downloads arrive, each on its own; this
/// thread commits them in stack order and delivers progress. On the first
/// failure the workers stop (their reads fail) and every layer unpacked
/// but not committed is discarded.
#[allow(clippy::too_many_arguments)]
fn unpack_parallel(
    conn: &Conn,
    store: &dyn ContentStore,
    progress: &(dyn Fn(Progress) + Send + Sync),
    deliver: &dyn Fn(),
    readers: Vec<(usize, PipeReader)>,
    layers: &[Descriptor],
    chains: &[Digest],
    workers: usize,
) -> Result<()> {
    let order: Vec<usize> = readers.iter().map(|(i, _)| *i).collect();
    let queue = Mutex::new(readers.into_iter().collect::<VecDeque<_>>());
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, std::result::Result<Detached, String>)>();
    std::thread::scope(|scope| {
        for _ in 0..workers.min(order.len()) {
            let (queue, stop, tx) = (&queue, &stop, tx.clone());
            scope.spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Some((i, pipe)) = queue.lock().expect("not poisoned").pop_front() else {
                        break;
                    };
                    let halt = || {
                        if stop.load(Ordering::Relaxed) {
                            Err(io::Error::other("the pull stopped"))
                        } else {
                            Ok(())
                        }
                    };
                    let mut reader = LayerReader::new(pipe, &halt);
                    let res = store
                        .unpack_detached(&layers[i], &mut reader)
                        .and_then(|d| match reader.finish() {
                            Ok(()) => Ok(d),
                            Err(e) => {
                                store.discard_detached(d);
                                Err(e)
                            }
                        });
                    let res = res.map_err(|e| reader.failed.take().unwrap_or_else(|| chain(&e)));
                    if tx.send((i, res)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let result = commit_in_order(conn, store, progress, deliver, &rx, &order, layers, chains);
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
            // What the workers still finish is not wanted.
            for (_, r) in rx.iter() {
                if let Ok(d) = r {
                    store.discard_detached(d);
                }
            }
        }
        result
    })
}

#[allow(clippy::too_many_arguments)]
fn commit_in_order(
    conn: &Conn,
    store: &dyn ContentStore,
    progress: &(dyn Fn(Progress) + Send + Sync),
    deliver: &dyn Fn(),
    rx: &mpsc::Receiver<(usize, std::result::Result<Detached, String>)>,
    order: &[usize],
    layers: &[Descriptor],
    chains: &[Digest],
) -> Result<()> {
    let mut ready: BTreeMap<usize, Detached> = BTreeMap::new();
    let discard_all = |ready: &mut BTreeMap<usize, Detached>| {
        for (_, d) in std::mem::take(ready) {
            store.discard_detached(d);
        }
    };
    for &i in order {
        let desc = &layers[i];
        while !ready.contains_key(&i) {
            deliver();
            match rx.recv_timeout(super::pipe::TICK) {
                Ok((j, Ok(d))) => {
                    ready.insert(j, d);
                }
                Ok((j, Err(message))) => {
                    discard_all(&mut ready);
                    return Err(layer_err(conn, layers[j].digest(), message));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    discard_all(&mut ready);
                    return Err(layer_err(
                        conn,
                        desc.digest(),
                        "the unpacking workers ended early".into(),
                    ));
                }
            }
        }
        let d = ready.remove(&i).expect("waited for it");
        let parent = i.checked_sub(1).map(|p| &chains[p]);
        if let Err(e) = store.commit_detached(d, &chains[i], parent) {
            discard_all(&mut ready);
            return Err(layer_err(conn, desc.digest(), chain(&e)));
        }
        deliver();
        done(progress, desc);
    }
    Ok(())
}

/// What the store reads: the pipe, calling `tick` (progress, or a check
/// that the pull goes on) while it waits.
struct LayerReader<'a> {
    pipe: PipeReader,
    tick: &'a dyn Fn() -> io::Result<()>,
    eof: bool,
    /// Why the download failed, if it did.
    failed: Option<String>,
}

impl<'a> LayerReader<'a> {
    fn new(pipe: PipeReader, tick: &'a dyn Fn() -> io::Result<()>) -> Self {
        LayerReader {
            pipe,
            tick,
            eof: false,
            failed: None,
        }
    }

    /// The store must have read to the end, where the digest and size
    /// checks report; if it did not, finish reading so they still run.
    fn finish(&mut self) -> io::Result<()> {
        if !self.eof {
            io::copy(self, &mut io::sink())?;
        }
        Ok(())
    }
}

impl Read for LayerReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let tick = self.tick;
        match self.pipe.read_ticking(buf, &mut || tick()) {
            Ok(n) => {
                if n == 0 && !buf.is_empty() {
                    self.eof = true;
                }
                Ok(n)
            }
            Err(e) => {
                self.failed.get_or_insert_with(|| e.to_string());
                Err(e)
            }
        }
    }
}

/// Download one layer into its pipe; the pipe ends with `Ok` only for the
/// whole layer with the right size and digest.
async fn download(
    conn: &Conn,
    desc: &Descriptor,
    mut w: PipeWriter,
    events: &mpsc::Sender<Progress>,
    retries: u32,
) {
    let r = fetch_layer(conn, desc, &mut w, events, retries).await;
    w.finish(r.map_err(io::Error::other));
}

async fn fetch_layer(
    conn: &Conn,
    desc: &Descriptor,
    w: &mut PipeWriter,
    events: &mpsc::Sender<Progress>,
    retries: u32,
) -> std::result::Result<(), String> {
    let digest = desc.digest().to_string();
    let size = desc.size();
    let mut hasher = Sha256::new();
    let mut offset = 0u64;
    let mut last_sent = (0u64, Instant::now());
    let report = |current: u64| {
        let _ = events.send(Progress {
            digest: desc.digest().clone(),
            status: ProgressStatus::Downloading,
            current,
            total: Some(size),
        });
    };
    report(0);
    let mut resumed = 0;
    loop {
        let (i, stream, mut skip) = open_blob(conn, &digest, offset).await?;
        let host = &conn.endpoints[i].host;
        let mut stream = stream;
        let mut failure = None;
        while let Some(item) = stream.next().await {
            let mut chunk = match item {
                Ok(c) => c,
                // oci-client may check the digest of a whole response at its
                // end; ours, below, says it better.
                Err(_) if offset == size && skip == 0 => break,
                Err(e) => {
                    failure = Some(chain(&e));
                    break;
                }
            };
            if skip > 0 {
                let k = skip.min(chunk.len() as u64) as usize;
                chunk.advance(k);
                skip -= k as u64;
            }
            if chunk.is_empty() {
                continue;
            }
            if offset + chunk.len() as u64 > size {
                return Err(format!(
                    "{host} sent more than the {size} bytes the manifest declares"
                ));
            }
            hasher.update(&chunk);
            offset += chunk.len() as u64;
            if w.send(chunk).await.is_err() {
                // The unpacking failed; it reports why.
                return Err("unpacking stopped".into());
            }
            if offset - last_sent.0 >= PROGRESS_BYTES || last_sent.1.elapsed() >= PROGRESS_EVERY {
                report(offset);
                last_sent = (offset, Instant::now());
            }
        }
        let failure = match failure {
            None if offset == size => {
                let actual = crate::digest::from_hasher(hasher);
                if actual.to_string() != digest {
                    return Err(format!(
                        "content from {host} does not match the digest: got {actual}"
                    ));
                }
                report(offset);
                return Ok(());
            }
            None => "the connection closed early".to_string(),
            Some(e) => e,
        };
        let failure = format!("broke after {offset} of {size} bytes: {failure}");
        if conn.is_mirror(i) {
            conn.mirror_failed(i, &format!("sending layer {digest}"), &failure);
            continue;
        }
        if resumed >= retries {
            let tried = match resumed {
                0 => String::new(),
                1 => " (resumed once)".into(),
                n => format!(" (resumed {n} times)"),
            };
            return Err(format!("download from {host} {failure}{tried}"));
        }
        resumed += 1;
        tracing::warn!(
            layer = %digest,
            reference = %conn.name,
            "download from {host} {failure}; resuming at byte {offset}"
        );
    }
}

type BlobStream = futures_util::stream::BoxStream<'static, std::result::Result<Bytes, io::Error>>;

/// A stream of the blob from byte `offset` on, from the first endpoint that
/// answers: (endpoint, stream, bytes at its start to skip because the
/// server ignored the range).
async fn open_blob(
    conn: &Conn,
    digest: &str,
    offset: u64,
) -> std::result::Result<(usize, BlobStream, u64), String> {
    let what = format!("fetching layer {digest}");
    let mut last = None;
    for i in conn.live_endpoints() {
        let r = conn.at(i, None);
        // A range from byte 0 too: a 206 answer is not digest-checked by
        // oci-client, which would hash the layer a second time (we do).
        match conn
            .client
            .pull_blob_stream_partial(&r, digest, offset, None)
            .await
        {
            Ok(BlobResponse::Partial(s)) => return Ok((i, s.stream, 0)),
            Ok(BlobResponse::Full(s)) => return Ok((i, s.stream, offset)),
            Err(e) if conn.is_mirror(i) => conn.mirror_failed(i, &what, &e),
            Err(e) => last = Some(super::conn::describe(&e)),
        }
    }
    Err(last.unwrap_or_else(|| conn.none_left(&what).to_string()))
}
