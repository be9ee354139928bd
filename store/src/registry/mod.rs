//! Pulling from and pushing to registries (OCI distribution API), through
//! oci-client. This module speaks the protocol; what it fetches goes
//! through [`ContentStore`], which the store implements.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

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
    fn write_layer(
        &self,
        desc: &Descriptor,
        chain_id: &Digest,
        parent: Option<&Digest>,
        reader: &mut dyn Read,
    ) -> std::io::Result<()>;
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
    let _ = (config, auth, reference, platform, store, progress);
    todo!("registry helper")
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
    let _ = (config, auth, reference, digest, store, progress);
    todo!("registry helper")
}
