//! An in-memory ContentStore: blobs by digest, layers by chain id. Its
//! write_layer reads the layer to the end, checks digest and size, and
//! keeps nothing unless all is well; it refuses a layer whose parent is
//! not there (so unpack order is checked), and counts concurrent calls.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_store::digest::{Digest, sha256};
use berth_store::registry::ContentStore;
use oci_spec::image::Descriptor;

#[derive(Default)]
pub struct MemStore {
    pub blobs: Mutex<HashMap<Digest, Vec<u8>>>,
    /// chain id → (layer digest, parent chain id)
    pub layers: Mutex<HashMap<Digest, (Digest, Option<Digest>)>>,
    pub sources: Mutex<HashMap<Digest, Vec<(String, String)>>>,
    /// write_layer calls running now, and the most seen at once.
    busy: AtomicUsize,
    pub max_busy: AtomicUsize,
    /// Layers started and failed.
    pub layer_failures: AtomicUsize,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    pub fn put(&self, data: Vec<u8>) -> Digest {
        let d = sha256(&data);
        self.blobs.lock().unwrap().insert(d.clone(), data);
        d
    }

    pub fn has(&self, d: &Digest) -> bool {
        self.blobs.lock().unwrap().contains_key(d)
    }

    pub fn get(&self, d: &Digest) -> Vec<u8> {
        self.blobs.lock().unwrap()[d].clone()
    }

    pub fn layer_count(&self) -> usize {
        self.layers.lock().unwrap().len()
    }

    /// Whether any layer was kept with this blob digest.
    pub fn has_layer_blob(&self, d: &Digest) -> bool {
        self.layers.lock().unwrap().values().any(|(b, _)| b == d)
    }
}

impl ContentStore for MemStore {
    fn has_blob(&self, digest: &Digest) -> bool {
        self.has(digest)
    }

    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.blobs
            .lock()
            .unwrap()
            .get(digest)
            .map(|b| b.len() as u64)
    }

    fn read_blob(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        self.blobs
            .lock()
            .unwrap()
            .get(digest)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no blob {digest}")))
    }

    fn open_blob(&self, digest: &Digest) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(io::Cursor::new(self.read_blob(digest)?)))
    }

    fn write_blob(&self, digest: &Digest, data: &[u8]) -> io::Result<()> {
        let actual = sha256(data);
        if &actual != digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob {digest} has digest {actual}"),
            ));
        }
        self.blobs
            .lock()
            .unwrap()
            .insert(digest.clone(), data.to_vec());
        Ok(())
    }

    fn has_layer(&self, chain_id: &Digest) -> bool {
        self.layers.lock().unwrap().contains_key(chain_id)
    }

    fn write_layer(
        &self,
        desc: &Descriptor,
        chain_id: &Digest,
        parent: Option<&Digest>,
        reader: &mut dyn Read,
    ) -> io::Result<()> {
        let now = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_busy.fetch_max(now, Ordering::SeqCst);
        let r = (|| {
            if let Some(p) = parent
                && !self.has_layer(p)
            {
                return Err(io::Error::other(format!("parent {p} is not unpacked")));
            }
            let mut data = Vec::new();
            reader.read_to_end(&mut data)?;
            let actual = sha256(&data);
            if &actual != desc.digest() || data.len() as u64 != desc.size() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("layer {} read as {actual}", desc.digest()),
                ));
            }
            self.blobs
                .lock()
                .unwrap()
                .insert(desc.digest().clone(), data);
            self.layers
                .lock()
                .unwrap()
                .insert(chain_id.clone(), (desc.digest().clone(), parent.cloned()));
            Ok(())
        })();
        if r.is_err() {
            self.layer_failures.fetch_add(1, Ordering::SeqCst);
        }
        self.busy.fetch_sub(1, Ordering::SeqCst);
        r
    }

    fn add_blob_source(&self, digest: &Digest, registry: &str, repository: &str) {
        let mut s = self.sources.lock().unwrap();
        let v = s.entry(digest.clone()).or_default();
        let e = (registry.to_string(), repository.to_string());
        if !v.contains(&e) {
            v.push(e);
        }
    }

    fn blob_sources(&self, digest: &Digest) -> Vec<(String, String)> {
        self.sources
            .lock()
            .unwrap()
            .get(digest)
            .cloned()
            .unwrap_or_default()
    }
}
