//! Pulling from and pushing to registries (OCI distribution API), through
//! oci-client. This module speaks the protocol; what it fetches goes
//! through [`ContentStore`], which the store implements.
//!
//! # For callers
//!
//! - [`pull`] and [`push`] run on a **multi-threaded tokio runtime**: a
//!   pull unpacks layers through the blocking [`ContentStore::write_layer`]
//!   inside `tokio::task::block_in_place`, while its downloads run as
//!   spawned tasks. On a current-thread runtime they return an error.
//! - `progress` is called on the thread running the `pull`/`push` future
//!   (or, during an unpack, the thread `block_in_place` runs on), never
//!   concurrently with itself; it must be quick (send to a channel).
//! - Credentials are the caller's: [`Auth`] for the registry of the
//!   reference. Bearer tokens are fetched from the registry's challenge
//!   with them. Mirrors are always reached anonymously.
//! - Cross-repository mounts on push use the repositories that
//!   [`ContentStore::blob_sources`] names (pull records them through
//!   [`ContentStore::add_blob_source`]), and [`Options::mount_from`].

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

mod conn;
mod media;
mod pipe;
mod pull;
mod push;

pub use oci_client::Reference;
use oci_spec::image::Descriptor;

use crate::digest::Digest;

/// Registry settings, as dockerd's daemon.json names them.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Registries (`host[:port]`) reached over plain HTTP
    /// (`insecure-registries`).
    pub insecure: Vec<String>,
    /// Mirrors tried in order before a registry (`registry-mirrors`),
    /// keyed by registry host ("docker.io").
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Extra CA certificates (PEM files) to trust.
    pub ca_certs: Vec<PathBuf>,
    /// Layers fetched at once (dockerd's `max-concurrent-downloads`, 3).
    pub max_concurrent_downloads: usize,
    /// Layers sent at once (`max-concurrent-uploads`, 5).
    pub max_concurrent_uploads: usize,
}

/// Credentials for one registry. Bearer tokens are negotiated from the
/// registry's challenge with these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Anonymous,
    Basic { username: String, password: String },
}

/// The platform to pick out of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary runs on, as OCI names it.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }
}

/// Per-layer progress, for the JSON-lines progress of the Engine API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub digest: Digest,
    pub status: ProgressStatus,
    pub current: u64,
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressStatus {
    Waiting,
    Downloading,
    /// Already in the store: not fetched.
    Exists,
    /// Downloaded, verified and unpacked.
    Done,
    Uploading,
    /// Already in the target repository, or mounted from another one.
    Pushed,
}

/// What pull and push need from the local store.
pub trait ContentStore: Send + Sync {
    fn has_blob(&self, digest: &Digest) -> bool;
    fn blob_size(&self, digest: &Digest) -> Option<u64>;
    /// A whole small blob (manifest, config, index).
    fn read_blob(&self, digest: &Digest) -> std::io::Result<Vec<u8>>;
    fn open_blob(&self, digest: &Digest) -> std::io::Result<Box<dyn Read + Send>>;
    /// Store a small blob, only if it has `digest`.
    fn write_blob(&self, digest: &Digest, data: &[u8]) -> std::io::Result<()>;
    /// Whether the layer stack `chain_id` is unpacked.
    fn has_layer(&self, chain_id: &Digest) -> bool;
    /// Read a layer once: keep its compressed blob (checked against
    /// `desc.digest`) and unpack it as `chain_id` on top of `parent`. On
    /// any error nothing of it stays.
    ///
    /// The reader checks `desc.size` and `desc.digest` itself and reports a
    /// mismatch, or a download that failed, as an error from a read, at the
    /// latest from the read that would return end of file: read it to the
    /// end before keeping anything.
    fn write_layer(
        &self,
        desc: &Descriptor,
        chain_id: &Digest,
        parent: Option<&Digest>,
        reader: &mut dyn Read,
    ) -> std::io::Result<()>;

    /// Remember that `repository` of `registry` (`host[:port]`, as
    /// [`Reference::resolve_registry`] names it) holds blob `digest`: a
    /// push to another repository of that registry can then mount it
    /// rather than upload it. Called after pulls and pushes. Optional.
    fn add_blob_source(&self, digest: &Digest, registry: &str, repository: &str) {
        let _ = (digest, registry, repository);
    }

    /// The (registry, repository) pairs known to hold `digest`.
    fn blob_sources(&self, digest: &Digest) -> Vec<(String, String)> {
        let _ = digest;
        Vec::new()
    }

    /// Whether a layer can be unpacked before its parent is
    /// ([`ContentStore::unpack_detached`]): true where each layer's
    /// snapshot holds only its own changes (overlay). A pull then unpacks
    /// several layers at once and commits them in order.
    fn detached_layers(&self) -> bool {
        false
    }

    /// Read a layer once, as [`ContentStore::write_layer`] does (the blob
    /// is kept, checked against `desc`), unpacking it on its own; it joins
    /// a stack with [`ContentStore::commit_detached`], or is dropped with
    /// [`ContentStore::discard_detached`].
    fn unpack_detached(
        &self,
        desc: &Descriptor,
        reader: &mut dyn Read,
    ) -> std::io::Result<Detached> {
        let _ = (desc, reader);
        Err(std::io::Error::other(
            "this store unpacks layers in order only",
        ))
    }

    /// Make a detached layer `chain_id` on top of `parent` (which exists):
    /// an error if its content does not give `chain_id` there.
    fn commit_detached(
        &self,
        layer: Detached,
        chain_id: &Digest,
        parent: Option<&Digest>,
    ) -> std::io::Result<()> {
        let _ = (layer, chain_id, parent);
        Err(std::io::Error::other(
            "this store unpacks layers in order only",
        ))
    }

    fn discard_detached(&self, layer: Detached) {
        let _ = layer;
    }
}

/// A layer unpacked by [`ContentStore::unpack_detached`], not yet part of
/// any stack.
#[derive(Debug)]
pub struct Detached {
    /// Where the store keeps it meanwhile.
    pub location: PathBuf,
    pub diff_id: Digest,
    /// Bytes of uncompressed tar.
    pub size: u64,
}

/// Transfer settings beyond daemon.json's.
#[derive(Debug, Clone)]
pub struct Options {
    /// Connecting (TCP and TLS) to a registry.
    pub connect_timeout: Duration,
    /// A request fails when no byte arrives for this long.
    pub idle_timeout: Duration,
    /// How often a layer download that breaks mid-way is resumed (from the
    /// byte it stopped at, with a Range request) before the pull fails. A
    /// mirror that breaks is skipped instead, not counted.
    pub retries: u32,
    /// Bytes a download may run ahead of its unpacking, per layer.
    pub lookahead: usize,
    /// Push: repositories of the target registry to try mounting blobs
    /// from, besides those the store names.
    pub mount_from: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            retries: 1,
            lookahead: 16 << 20,
            mount_from: Vec::new(),
        }
    }
}

/// The result of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// What the reference resolved to: an index or a manifest.
    pub digest: Digest,
    /// The manifest of the platform, and its config.
    pub manifest: Digest,
    pub config: Digest,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{reference}: {message}")]
    Registry { reference: String, message: String },
    /// 401/403, or a token server refusing the credentials.
    #[error("{reference}: unauthorized: {message}")]
    Unauthorized { reference: String, message: String },
    /// The registry has no such manifest, blob or repository.
    #[error("{reference}: not found: {message}")]
    NotFound { reference: String, message: String },
    /// Connecting, TLS, timeouts.
    #[error("{reference}: cannot reach the registry: {message}")]
    Connect { reference: String, message: String },
    /// A layer failed: download, verification, or unpacking.
    #[error("{reference}: layer {digest}: {message}")]
    Layer {
        reference: String,
        digest: Digest,
        message: String,
    },
    /// A manifest, index or config blob failed.
    #[error("{reference}: blob {digest}: {message}")]
    Blob {
        reference: String,
        digest: Digest,
        message: String,
    },
    #[error("{reference}: no manifest for {platform} in the index")]
    NoPlatform { reference: String, platform: String },
    #[error("{reference}: {source}")]
    Store {
        reference: String,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, RegistryError>;

/// Fetch `reference` for `platform` into `store`: index, manifest, config,
/// and the layers the store lacks, several at once, each streamed from the
/// network through decompression into its snapshot.
pub async fn pull(
    config: &RegistryConfig,
    auth: &Auth,
    reference: &Reference,
    platform: &Platform,
    store: &dyn ContentStore,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Pulled> {
    pull::pull(
        config,
        auth,
        reference,
        platform,
        store,
        progress,
        &Options::default(),
    )
    .await
}

/// [`pull`] with [`Options`].
pub async fn pull_with(
    config: &RegistryConfig,
    auth: &Auth,
    reference: &Reference,
    platform: &Platform,
    store: &dyn ContentStore,
    progress: &(dyn Fn(Progress) + Send + Sync),
    options: &Options,
) -> Result<Pulled> {
    pull::pull(config, auth, reference, platform, store, progress, options).await
}

/// Send the image whose manifest (or index) is `digest` to `reference`,
/// skipping blobs the repository has and mounting ones another repository
/// of the same registry has.
pub async fn push(
    config: &RegistryConfig,
    auth: &Auth,
    reference: &Reference,
    digest: &Digest,
    store: &dyn ContentStore,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Digest> {
    push::push(
        config,
        auth,
        reference,
        digest,
        store,
        progress,
        &Options::default(),
    )
    .await
}

/// [`push`] with [`Options`] (e.g. [`Options::mount_from`]).
pub async fn push_with(
    config: &RegistryConfig,
    auth: &Auth,
    reference: &Reference,
    digest: &Digest,
    store: &dyn ContentStore,
    progress: &(dyn Fn(Progress) + Send + Sync),
    options: &Options,
) -> Result<Digest> {
    push::push(config, auth, reference, digest, store, progress, options).await
}

/// Both operations need worker threads besides the one running them.
fn check_runtime(reference: &Reference) -> Result<()> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => Ok(()),
        _ => Err(RegistryError::Registry {
            reference: reference.whole(),
            message: "pull and push need a multi-threaded tokio runtime".into(),
        }),
    }
}
