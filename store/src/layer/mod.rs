//! Layers: tar streams of filesystem changes (OCI image spec, "Image Layer
//! Filesystem Changeset"), applied into snapshot directories and created
//! from them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::Digest;

mod apply;
mod create;
mod pgzip;
pub(crate) mod sys;
mod tarfmt;
mod tarread;

pub use tarfmt::{Whiteout, parse_whiteout};

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
    /// Reading the layer's bytes failed (the reader's own error).
    #[error("reading the layer: {0}")]
    Read(std::io::Error),
    /// The compressed stream is corrupt or cut short.
    #[error("layer stream ({compression:?}): {source}")]
    Decompress {
        compression: Compression,
        source: std::io::Error,
    },
    /// Writing the layer failed (the writer's own error).
    #[error("writing the layer: {0}")]
    Write(std::io::Error),
}

pub type Result<T> = std::result::Result<T, LayerError>;

impl Compression {
    /// From a stream's first bytes (at least 4 to recognize anything).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI media type of a layer so compressed.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// Read a layer (any supported compression) from `reader` and unpack it
/// into `dest`. Nothing is ever written outside `dest`.
///
/// The stream is read once, to its end: the returned digest and diff id
/// cover every byte (including padding after the tar's end marker).
///
/// Paths are resolved beneath `dest` (openat2 RESOLVE_BENEATH): entries
/// named with an absolute path or a `..` component, hardlinks to such
/// names, paths through a dangling symlink, and paths through a symlink
/// leading out of `dest` (`etc -> /etc` followed by `etc/passwd`) are
/// refused with [`LayerError::Entry`] naming the entry. Symlinks themselves
/// may point anywhere: they are only ever followed inside a container.
///
/// On error `dest` is left half-applied: the caller deletes it (a snapshot
/// that failed to unpack is never used). A truncated or corrupt stream is
/// an error ([`LayerError::Decompress`] for the compression layer,
/// [`LayerError::Tar`] or [`LayerError::Entry`] for the tar), and so is a
/// tar that ends without its end-of-archive marker.
///
/// `xattrs` of the `trusted.overlay.` namespace in the layer are never
/// applied (logged and skipped): a layer must not forge overlayfs
/// whiteouts or opaque directories. In [`WhiteoutMode::Overlay`], whiteouts
/// become 0:0 character devices and `trusted.overlay.opaque=y` xattrs,
/// which overlayfs honours for a layer mounted as a lower or upper dir
/// without the `userxattr` option (so by a mounter with CAP_SYS_ADMIN in the
/// initial user namespace).
pub fn apply(reader: &mut dyn Read, dest: &Path, opts: &ApplyOptions) -> Result<Applied> {
    apply::apply(reader, dest, opts)
}

/// Write the layer of `changes` to `out`, compressed; its digests are
/// computed in the same pass.
///
/// The tar is reproducible: entries in byte order of their names, depth
/// first; ustar headers with PAX records only where needed (long names,
/// large ids or sizes, xattrs as `SCHILY.xattr.*`); numeric ids only, no
/// user or group names, no atime or ctime, mtimes in whole seconds;
/// whiteouts are empty regular files, mode 0, owned by 0:0, mtime 0. The
/// compressed bytes depend only on the tree, the compression and the level,
/// never on `threads`: gzip is compressed as independent 1 MiB blocks (each
/// primed with the 32 KiB before it, as pigz does) joined into one gzip
/// member; zstd always uses its multithreaded mode, whose output does not
/// depend on the number of workers.
///
/// From an overlay upper dir, its 0:0 character devices become `.wh.`
/// whiteouts and `trusted.overlay.opaque=y` directories get `.wh..wh..opq`;
/// other `trusted.overlay.*` xattrs are not written, and an upper dir that
/// needs its lower (`trusted.overlay.redirect` or `metacopy`) is an error.
///
/// A [`Changes::Diff`] compares entries by type, mode, owner, size, mtime
/// (nanoseconds), xattrs, symlink target and device number; where all of
/// these match but the mtime has no sub-second part (a copy of a tree
/// unpacked from a tar, whose times are whole seconds), the content is
/// compared too. A directory is written if its own metadata differ or if
/// anything below it is (so a layer applied alone, as an overlayfs layer,
/// keeps the metadata of the directories it writes into), and hardlinked
/// files are written as a group whenever one of them is.
pub fn create(changes: &Changes, out: &mut dyn Write, opts: &CreateOptions) -> Result<Created> {
    create::create(changes, out, opts)
}

/// How [`extract`] writes over what is already there.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// Refuse to replace a directory with a non-directory and the reverse
    /// (`docker cp`'s `noOverwriteDirNonDir`); otherwise what is there is
    /// removed first, as a layer replaces it.
    pub no_overwrite_dir_non_dir: bool,
    /// Own every entry by this uid and gid instead of the tar's.
    pub chown: Option<(u32, u32)>,
}

/// Unpack a plain tar (any supported compression) of files into the
/// directory `dest`, as `docker cp` copies them in: the same resolution
/// rules as [`apply`] (nothing is written outside `dest`; `..`, absolute
/// names and paths through a symlink leading out are refused), but `.wh.`
/// names are ordinary files, an entry for `dest` itself is skipped, and
/// an existing directory keeps its other xattrs. Returns the tar's size.
pub fn extract(reader: &mut dyn Read, dest: &Path, opts: &ExtractOptions) -> Result<u64> {
    apply::extract(reader, dest, opts)
}

/// Write an uncompressed tar of the tree at `src` (a file, directory or
/// any other node; a directory's content below it, never following a
/// symlink) to `out`, in the format [`create`] writes. Entries are named
/// under `name` (`name`, `name/a`, ...); with an empty `name`, `src` must
/// be a directory and only its content is written (`a`, `b/c`: the form
/// of `docker export`). Returns the tar's size.
pub fn tar_tree(src: &Path, name: &[u8], out: &mut dyn Write) -> Result<u64> {
    create::tar_tree(src, name, out)
}

/// Reads until `buf` is full or the stream ends; how much was read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
