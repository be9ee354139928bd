//! Content-addressed blobs in an OCI image layout (`blobs/sha256/<hex>`).
//!
//! A blob is written to `ingest/`, hashed on the way, fsynced, and renamed
//! into place only if its digest is what the writer expected: a store never
//! holds a blob under a name its content does not have, nor half a blob.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::{Digest, HashingWriter, is_sha256};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("size of {digest} does not match: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("unsupported digest algorithm in {0} (only sha256)")]
    Algorithm(Digest),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

pub type Result<T> = std::result::Result<T, BlobError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug)]
pub struct BlobStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

static INGEST_SEQ: AtomicU64 = AtomicU64::new(0);

impl BlobStore {
    /// The blobs of the OCI layout at `root` (created if needed).
    pub fn open(root: &Path) -> Result<BlobStore> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        for d in [&blobs, &ingest] {
            std::fs::create_dir_all(d).map_err(io_err(d))?;
        }
        let layout = root.join("oci-layout");
        if !layout.exists() {
            write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        // Leftovers of writers that died mid-blob.
        if let Ok(entries) = std::fs::read_dir(&ingest) {
            for e in entries.flatten() {
                let stale = e
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .is_some_and(|t| {
                        t.elapsed()
                            .is_ok_and(|age| age > std::time::Duration::from_secs(3600))
                    });
                if stale {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(BlobStore { blobs, ingest })
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.blobs.join(d.digest())
    }

    pub fn contains(&self, d: &Digest) -> bool {
        is_sha256(d) && self.path(d).is_file()
    }

    pub fn size(&self, d: &Digest) -> Result<u64> {
        let p = self.path(d);
        match std::fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BlobError::NotFound(d.clone())),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        let p = self.path(d);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                BlobError::NotFound(d.clone())
            } else {
                io_err(&p)(e)
            }
        })
    }

    /// A whole (small) blob: manifests, configs.
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.path(d);
        std::fs::read(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                BlobError::NotFound(d.clone())
            } else {
                io_err(&p)(e)
            }
        })
    }

    /// Store `data`; its digest is its name.
    pub fn write(&self, data: &[u8]) -> Result<Digest> {
        let mut w = self.writer(None)?;
        w.write_all(data).map_err(io_err(&w.tmp))?;
        w.commit()
    }

    /// Store `data` only if it has the digest `expected`.
    pub fn write_verified(&self, expected: &Digest, data: &[u8]) -> Result<()> {
        let mut w = self.writer(Some(expected))?;
        w.write_all(data).map_err(io_err(&w.tmp))?;
        w.commit().map(drop)
    }

    /// A streaming writer. `commit` checks `expected` (when given) and
    /// moves the blob into place; dropping it uncommitted discards it.
    pub fn writer(&self, expected: Option<&Digest>) -> Result<BlobWriter<'_>> {
        if let Some(d) = expected
            && !is_sha256(d)
        {
            return Err(BlobError::Algorithm(d.clone()));
        }
        let (tmp, file) = self.ingest_file()?;
        Ok(BlobWriter {
            store: self,
            inner: Some(Sink::Hashing(HashingWriter::new(file))),
            tmp,
            expected: expected.cloned(),
        })
    }

    /// A writer for content the caller verifies against `digest` itself,
    /// before it commits (a registry download hashes what it receives):
    /// hashing it a second time here would cost as much as the download's
    /// check, for nothing.
    pub fn writer_verified_by_caller(&self, digest: &Digest) -> Result<BlobWriter<'_>> {
        if !is_sha256(digest) {
            return Err(BlobError::Algorithm(digest.clone()));
        }
        let (tmp, file) = self.ingest_file()?;
        Ok(BlobWriter {
            store: self,
            inner: Some(Sink::Trusted {
                file,
                digest: digest.clone(),
                count: 0,
            }),
            tmp,
            expected: Some(digest.clone()),
        })
    }

    fn ingest_file(&self) -> Result<(PathBuf, File)> {
        let seq = INGEST_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self.ingest.join(format!("{}-{seq}", std::process::id()));
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        Ok((tmp, file))
    }

    pub fn remove(&self, d: &Digest) -> Result<()> {
        let p = self.path(d);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Every blob, as (digest, size).
    pub fn list(&self) -> Result<Vec<(Digest, u64)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.blobs).map_err(io_err(&self.blobs))? {
            let e = e.map_err(io_err(&self.blobs))?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(d) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            out.push((d, size));
        }
        out.sort_by_key(|a| a.0.to_string());
        Ok(out)
    }
}

/// Where a blob's bytes go: hashed on the way, or taken as the digest the
/// caller checks.
enum Sink {
    Hashing(HashingWriter<File>),
    Trusted {
        file: File,
        digest: Digest,
        count: u64,
    },
}

impl Sink {
    fn finish(self) -> (File, Digest) {
        match self {
            Sink::Hashing(h) => {
                let (file, digest, _) = h.finish();
                (file, digest)
            }
            Sink::Trusted { file, digest, .. } => (file, digest),
        }
    }

    fn count(&self) -> u64 {
        match self {
            Sink::Hashing(h) => h.count(),
            Sink::Trusted { count, .. } => *count,
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Hashing(h) => h.write(buf),
            Sink::Trusted { file, count, .. } => {
                let n = file.write(buf)?;
                *count += n as u64;
                Ok(n)
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Hashing(h) => h.flush(),
            Sink::Trusted { file, .. } => file.flush(),
        }
    }
}

pub struct BlobWriter<'a> {
    store: &'a BlobStore,
    inner: Option<Sink>,
    tmp: PathBuf,
    expected: Option<Digest>,
}

impl BlobWriter<'_> {
    /// Verify and move into place; returns the digest.
    pub fn commit(self) -> Result<Digest> {
        self.commit_checked().map(|(d, _)| d)
    }

    /// Like `commit`; also tells whether the blob is new to the store (so
    /// an operation that fails later knows what to take back).
    pub fn commit_checked(mut self) -> Result<(Digest, bool)> {
        let (file, actual) = self.inner.take().expect("not committed twice").finish();
        if let Some(expected) = &self.expected
            && expected != &actual
        {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(BlobError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        let dest = self.store.path(&actual);
        if dest.is_file() {
            let _ = std::fs::remove_file(&self.tmp);
            return Ok((actual, false));
        }
        file.sync_all().map_err(io_err(&self.tmp))?;
        drop(file);
        std::fs::rename(&self.tmp, &dest).map_err(io_err(&dest))?;
        sync_dir(&self.store.blobs);
        Ok((actual, true))
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.inner.as_ref().map_or(0, Sink::count)
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.as_mut().expect("open").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.as_mut().expect("open").flush()
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        if self.inner.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Replace `path` with `data` so a crash leaves the old or the new file:
/// temp file, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id(),
        INGEST_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(data).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;

    #[test]
    fn write_read_verify() {
        let t = tempfile::tempdir().unwrap();
        let s = BlobStore::open(t.path()).unwrap();
        let d = s.write(b"hello").unwrap();
        assert_eq!(d, sha256(b"hello"));
        assert_eq!(s.read(&d).unwrap(), b"hello");
        assert!(t.path().join("oci-layout").exists());
        assert_eq!(s.list().unwrap(), vec![(d.clone(), 5)]);
    }

    #[test]
    fn mismatched_content_is_not_stored() {
        let t = tempfile::tempdir().unwrap();
        let s = BlobStore::open(t.path()).unwrap();
        let claimed = sha256(b"the real thing");
        let err = s.write_verified(&claimed, b"an impostor").unwrap_err();
        assert!(matches!(err, BlobError::DigestMismatch { .. }), "{err}");
        assert!(!s.contains(&claimed));
        assert!(s.list().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(t.path().join("ingest")).unwrap().count(),
            0,
            "no temp left"
        );
    }

    #[test]
    fn caller_verified_writer_stores_under_the_given_digest() {
        let t = tempfile::tempdir().unwrap();
        let s = BlobStore::open(t.path()).unwrap();
        let d = sha256(b"checked upstream");
        let mut w = s.writer_verified_by_caller(&d).unwrap();
        w.write_all(b"checked upstream").unwrap();
        assert_eq!(w.written(), 16);
        assert_eq!(w.commit().unwrap(), d);
        assert_eq!(s.read(&d).unwrap(), b"checked upstream");
        // Dropped before its commit (the caller's check failed): nothing.
        let other = sha256(b"never");
        let mut w = s.writer_verified_by_caller(&other).unwrap();
        w.write_all(b"not this").unwrap();
        drop(w);
        assert!(!s.contains(&other));
        assert_eq!(
            std::fs::read_dir(t.path().join("ingest")).unwrap().count(),
            0
        );
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let s = BlobStore::open(t.path()).unwrap();
        {
            let mut w = s.writer(None).unwrap();
            w.write_all(b"half a blob").unwrap();
        }
        assert!(s.list().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(t.path().join("ingest")).unwrap().count(),
            0
        );
    }
}
