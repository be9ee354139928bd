//! The build cache: step key → the image the step made, in a redb file
//! of its own. Each entry's image is pinned in the store
//! ([`berth_store::Store::pin`]), so collecting unnamed images never
//! breaks an entry; `prune` drops the entries and their pins, then lets
//! the store collect what nothing else reaches.

use std::path::{Path, PathBuf};

use berth_store::Store;
use berth_store::digest::Digest;
use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};

const STEPS: TableDefinition<&str, &str> = TableDefinition::new("steps");
/// What COPY --from matched in an image, by the image's id and the COPY's
/// sources: images never change, so the digest of the files a COPY takes
/// from one is worked out (with the image mounted) once.
const FROM_IMAGE: TableDefinition<&str, &str> = TableDefinition::new("from-image");

#[derive(Debug, thiserror::Error)]
#[error("build cache {path}: {message}")]
pub struct CacheError {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Debug)]
pub struct Cache {
    path: PathBuf,
    db: Database,
}

/// What `builder prune` let go of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Cache entries removed.
    pub entries: usize,
    /// The step images they pinned.
    pub images: Vec<Digest>,
    /// Bytes the store and the cache mounts freed.
    pub bytes: u64,
}

impl Cache {
    pub fn open(path: &Path) -> Result<Cache, CacheError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CacheError {
                path: path.into(),
                message: e.to_string(),
            })?;
        }
        let db = Database::create(path).map_err(|e| CacheError {
            path: path.into(),
            message: e.to_string(),
        })?;
        let c = Cache {
            path: path.into(),
            db,
        };
        let tx = c.db.begin_write().map_err(c.err())?;
        tx.open_table(STEPS).map_err(c.err())?;
        tx.open_table(FROM_IMAGE).map_err(c.err())?;
        tx.commit().map_err(c.err())?;
        Ok(c)
    }

    fn err<E: std::fmt::Display>(&self) -> impl Fn(E) -> CacheError + '_ {
        |e| CacheError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// The manifest of the image step `key` made, if cached.
    pub fn get(&self, key: &str) -> Result<Option<Digest>, CacheError> {
        let tx = self.db.begin_read().map_err(self.err())?;
        let t = tx.open_table(STEPS).map_err(self.err())?;
        let v = t.get(key).map_err(self.err())?;
        Ok(v.and_then(|v| v.value().parse().ok()))
    }

    /// Record that step `key` made the image with `manifest`, pinning it.
    pub fn put(
        &self,
        store: &Store,
        key: &str,
        manifest: &Digest,
        config: &Digest,
    ) -> Result<(), CacheError> {
        store.pin(manifest, config).map_err(self.err())?;
        let mut tx = self.db.begin_write().map_err(self.err())?;
        // Made durable once per build ([`Cache::flush`]), not per step: a
        // crash loses at most that build's entries (their pins stay, until
        // `builder prune`).
        tx.set_durability(redb::Durability::None)
            .map_err(self.err())?;
        {
            let mut t = tx.open_table(STEPS).map_err(self.err())?;
            t.insert(key, manifest.to_string().as_str())
                .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())
    }

    /// The remembered match of `key` (see [`FROM_IMAGE`]).
    pub fn from_image(&self, key: &str) -> Result<Option<String>, CacheError> {
        let tx = self.db.begin_read().map_err(self.err())?;
        let t = tx.open_table(FROM_IMAGE).map_err(self.err())?;
        let v = t.get(key).map_err(self.err())?;
        Ok(v.map(|v| v.value().to_string()))
    }

    pub fn put_from_image(&self, key: &str, value: &str) -> Result<(), CacheError> {
        let mut tx = self.db.begin_write().map_err(self.err())?;
        // A lost entry is only worked out again: no need to wait for disk.
        tx.set_durability(redb::Durability::None)
            .map_err(self.err())?;
        {
            let mut t = tx.open_table(FROM_IMAGE).map_err(self.err())?;
            t.insert(key, value).map_err(self.err())?;
        }
        tx.commit().map_err(self.err())
    }

    /// Everything put so far, on disk.
    pub fn flush(&self) -> Result<(), CacheError> {
        let tx = self.db.begin_write().map_err(self.err())?;
        tx.commit().map_err(self.err())
    }

    pub fn len(&self) -> Result<usize, CacheError> {
        let tx = self.db.begin_read().map_err(self.err())?;
        let t = tx.open_table(STEPS).map_err(self.err())?;
        Ok(t.len().map_err(self.err())? as usize)
    }

    pub fn is_empty(&self) -> Result<bool, CacheError> {
        Ok(self.len()? == 0)
    }

    /// Drop every entry and pin, the cache mounts under `mounts_dir`,
    /// and collect the store. The caller keeps builds and other writers
    /// of the store out meanwhile.
    pub fn prune(&self, store: &Store, mounts_dir: &Path) -> Result<PruneReport, CacheError> {
        let tx = self.db.begin_write().map_err(self.err())?;
        let entries;
        {
            let mut t = tx.open_table(STEPS).map_err(self.err())?;
            entries = t.len().map_err(self.err())? as usize;
            t.retain(|_, _| false).map_err(self.err())?;
            let mut f = tx.open_table(FROM_IMAGE).map_err(self.err())?;
            f.retain(|_, _| false).map_err(self.err())?;
        }
        tx.commit().map_err(self.err())?;
        let mut images = Vec::new();
        for (manifest, _) in store.pins() {
            store.unpin(&manifest).map_err(self.err())?;
            images.push(manifest);
        }
        let mut bytes = 0;
        if mounts_dir.exists() {
            bytes += berth_store::snapshot::Snapshots::disk_usage(mounts_dir);
            std::fs::remove_dir_all(mounts_dir).map_err(self.err())?;
        }
        let gc = store.gc().map_err(self.err())?;
        bytes += gc.bytes;
        Ok(PruneReport {
            entries,
            images,
            bytes,
        })
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_persist_and_pin_their_images_until_pruned() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("image"), None).unwrap();
        let manifest = store
            .commit_image(None, &berth_store::NewImage::default(), None)
            .unwrap();
        let img = store.image_by_manifest(&manifest).unwrap();
        let path = t.path().join("builder/cache.redb");
        {
            let c = Cache::open(&path).unwrap();
            c.put(&store, "sha256:k1", &manifest, &img.id).unwrap();
        }
        // Reopened (a daemon restart): the entry is there, and the pin
        // keeps the unnamed image through a collection.
        let c = Cache::open(&path).unwrap();
        assert_eq!(c.get("sha256:k1").unwrap(), Some(manifest.clone()));
        assert_eq!(c.get("sha256:other").unwrap(), None);
        store.gc().unwrap();
        assert!(store.image_by_manifest(&manifest).is_ok());
        // An id finds the pinned image.
        assert_eq!(store.image(&img.id.digest()[..12]).unwrap().id, img.id);
        let r = c
            .prune(&store, &t.path().join("builder/cache-mounts"))
            .unwrap();
        assert_eq!(r.entries, 1);
        assert_eq!(r.images, vec![manifest.clone()]);
        assert!(c.is_empty().unwrap());
        assert!(
            store.image_by_manifest(&manifest).is_err(),
            "collected after the prune"
        );
    }
}
