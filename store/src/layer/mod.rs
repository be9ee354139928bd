//! Layers: tar streams of filesystem changes (OCI image spec, "Image Layer
//! Filesystem Changeset"), applied into snapshot directories and created
//! from them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::Digest;

/// How a layer's bytes are compressed; detected from the first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// How whiteouts (`.wh.<name>`, `.wh..wh..opq`) land in the directory a
/// layer is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// The directory is one overlayfs layer: a deleted file becomes a
    /// 0:0 character device, an opaque directory gets the
    /// `trusted.overlay.opaque` xattr, as overlayfs reads them.
    Overlay,
    /// The directory is a full copy of the parent's tree: deleted files are
    /// removed, an opaque directory is emptied.
    Delete,
}

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub whiteouts: WhiteoutMode,
}

/// What applying a layer read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// sha256 of the bytes as read (the manifest's layer digest).
    pub digest: Digest,
    pub compression: Compression,
    /// Bytes read (compressed size).
    pub compressed_size: u64,
    /// Bytes of the uncompressed tar.
    pub size: u64,
}

/// What a layer is made from.
#[derive(Debug, Clone)]
pub enum Changes {
    /// An overlayfs upper directory: its whiteouts (0:0 devices, opaque
    /// xattrs) become tar whiteouts.
    OverlayUpper(PathBuf),
    /// The differences of `upper` against `lower` (a full tree, or none
    /// for a first layer), as the copying snapshotter keeps them.
    Diff {
        lower: Option<PathBuf>,
        upper: PathBuf,
    },
}

#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub compression: Compression,
    /// Compression level; `None` for the format's default.
    pub level: Option<i32>,
    /// Threads compressing in parallel (gzip and zstd); 0 = the number of CPUs.
    pub threads: usize,
}

/// A layer that was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub diff_id: Digest,
    pub digest: Digest,
    /// Bytes written (compressed size).
    pub size: u64,
    /// OCI media type for the manifest.
    pub media_type: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("layer tar: {0}")]
    Tar(std::io::Error),
    #[error("layer entry {entry:?}: {reason}")]
    Entry { entry: String, reason: String },
}

pub type Result<T> = std::result::Result<T, LayerError>;

impl Compression {
    /// From a stream's first bytes (at least 4 to recognize anything).
    pub fn detect(head: &[u8]) -> Compression {
        let _ = head;
        todo!("layer helper")
    }
}

/// Read a layer (any supported compression) from `reader` and unpack it
/// into `dest`. Nothing is ever written outside `dest`.
pub fn apply(reader: &mut dyn Read, dest: &Path, opts: &ApplyOptions) -> Result<Applied> {
    let _ = (reader, dest, opts);
    todo!("layer helper")
}

/// Write the layer of `changes` to `out`, compressed; its digests are
/// computed in the same pass.
pub fn create(changes: &Changes, out: &mut dyn Write, opts: &CreateOptions) -> Result<Created> {
    let _ = (changes, out, opts);
    todo!("layer helper")
}
