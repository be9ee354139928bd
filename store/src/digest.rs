//! sha256 digests, and readers and writers that compute one on the way.

use std::io::{self, Read, Write};

pub use oci_spec::image::Digest;
use sha2::{Digest as _, Sha256};

/// The digest of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    from_hasher(Sha256::new_with_prefix(data))
}

pub(crate) fn from_hasher(h: Sha256) -> Digest {
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
        .parse()
        .expect("a sha256 digest is valid")
}

/// Whether `d` is a sha256 digest, the only kind the store keeps.
pub fn is_sha256(d: &Digest) -> bool {
    d.algorithm().as_ref() == "sha256"
}

/// Hashes and counts what passes through.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The digest and size of everything read so far.
    pub fn finish(self) -> (Digest, u64) {
        (from_hasher(self.hasher), self.count)
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Hashes and counts what passes through.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The inner writer, and the digest and size of everything written.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, from_hasher(self.hasher), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The chain id of a layer stack (OCI image spec): the first layer's diff
/// id, then sha256 of "<parent chain id> <diff id>" for each further one.
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => sha256(format!("{p} {diff_id}").as_bytes()),
    }
}

/// Chain ids of every prefix of `diff_ids`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = chain_id(out.last(), d);
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            sha256(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut r = HashingReader::new(&b"hello"[..]);
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        assert_eq!(r.finish(), (sha256(b"hello"), 5));
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = sha256(b"a");
        let b = sha256(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], sha256(format!("{a} {b}").as_bytes()));
    }
}
