//! Pull and push on the store. The registry module moves the bytes; this
//! names what arrived, remembers where blobs came from (for cross-repository
//! mounts), and takes everything back if a pull fails, so a failed pull
//! leaves the store exactly as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use oci_spec::image::Descriptor;

use crate::archive::Added;
use crate::digest::Digest;
use crate::digest::chain_id;
use crate::image::{self, Kind};
use crate::layer::{self, ApplyOptions};
use crate::refs::ImageName;
use crate::registry::{
    self, Auth, ContentStore, Detached, Options, Platform, Progress, Pulled, Reference,
    RegistryConfig,
};
use crate::store::{Result, Store, StoreError, Tee};

/// Which (registry, repository) pairs hold each blob, kept in
/// `<root>/blob-sources.json`. Losing it only costs uploads a mount would
/// have saved, so failures to read or write it are logged, not returned.
#[derive(Debug)]
pub(crate) struct BlobSources {
    path: PathBuf,
    map: Mutex<Option<SourceMap>>,
}

type SourceMap = BTreeMap<String, BTreeSet<(String, String)>>;

impl BlobSources {
    pub(crate) fn open(root: &Path) -> BlobSources {
        BlobSources {
            path: root.join("blob-sources.json"),
            map: Mutex::new(None),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut SourceMap) -> T) -> T {
        let mut guard = self.map.lock().expect("not poisoned");
        let map = guard.get_or_insert_with(|| {
            std::fs::read(&self.path)
                .ok()
                .and_then(|raw| serde_json::from_slice(&raw).ok())
                .unwrap_or_default()
        });
        f(map)
    }

    pub(crate) fn add(&self, digest: &Digest, registry: &str, repository: &str) {
        self.with(|map| {
            let new = map
                .entry(digest.to_string())
                .or_default()
                .insert((registry.to_string(), repository.to_string()));
            if new {
                let raw = serde_json::to_vec(map).expect("sources serialize");
                if let Err(e) = crate::blobs::write_atomic(&self.path, &raw) {
                    tracing::warn!("recording where {digest} came from: {e}");
                }
            }
        })
    }

    pub(crate) fn get(&self, digest: &Digest) -> Vec<(String, String)> {
        self.with(|map| {
            map.get(&digest.to_string())
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default()
        })
    }
}

/// The store as a pull sees it, noting every blob and layer the pull adds.
struct Tracked<'a> {
    store: &'a Store,
    added: Mutex<(Vec<Digest>, Vec<Digest>)>,
}

impl ContentStore for Tracked<'_> {
    fn has_blob(&self, digest: &Digest) -> bool {
        self.store.has_blob(digest)
    }
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.store.blob_size(digest)
    }
    fn read_blob(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        self.store.read_blob(digest)
    }
    fn open_blob(&self, digest: &Digest) -> io::Result<Box<dyn Read + Send>> {
        self.store.open_blob(digest)
    }
    fn write_blob(&self, digest: &Digest, data: &[u8]) -> io::Result<()> {
        let existed = self.store.has_blob(digest);
        self.store.write_blob(digest, data)?;
        if !existed {
            self.added
                .lock()
                .expect("not poisoned")
                .0
                .push(digest.clone());
        }
        Ok(())
    }
    fn has_layer(&self, chain_id: &Digest) -> bool {
        self.store.has_layer(chain_id)
    }
    fn write_layer(
        &self,
        desc: &Descriptor,
        chain_id: &Digest,
        parent: Option<&Digest>,
        reader: &mut dyn Read,
    ) -> io::Result<()> {
        let blob_existed = self.store.has_blob(desc.digest());
        let layer_existed = self.store.has_layer(chain_id);
        self.store.write_layer(desc, chain_id, parent, reader)?;
        let mut added = self.added.lock().expect("not poisoned");
        if !blob_existed {
            added.0.push(desc.digest().clone());
        }
        if !layer_existed {
            added.1.push(chain_id.clone());
        }
        Ok(())
    }
    fn add_blob_source(&self, digest: &Digest, registry: &str, repository: &str) {
        self.store.add_blob_source(digest, registry, repository)
    }
    fn detached_layers(&self) -> bool {
        self.store.detached_layers()
    }
    fn unpack_detached(&self, desc: &Descriptor, reader: &mut dyn Read) -> io::Result<Detached> {
        let existed = self.store.has_blob(desc.digest());
        let layer = self.store.unpack_detached(desc, reader)?;
        if !existed {
            self.added
                .lock()
                .expect("not poisoned")
                .0
                .push(desc.digest().clone());
        }
        Ok(layer)
    }
    fn commit_detached(
        &self,
        layer: Detached,
        chain_id: &Digest,
        parent: Option<&Digest>,
    ) -> io::Result<()> {
        let existed = self.store.has_layer(chain_id);
        self.store.commit_detached(layer, chain_id, parent)?;
        if !existed {
            self.added
                .lock()
                .expect("not poisoned")
                .1
                .push(chain_id.clone());
        }
        Ok(())
    }
    fn discard_detached(&self, layer: Detached) {
        self.store.discard_detached(layer)
    }
    fn blob_sources(&self, digest: &Digest) -> Vec<(String, String)> {
        self.store.blob_sources(digest)
    }
}

fn reference_of(name: &ImageName) -> Result<Reference> {
    name.to_string()
        .parse::<Reference>()
        .map_err(|e| StoreError::Invalid(format!("{name}: not a registry reference: {e}")))
}

impl Store {
    /// Pull `name` for `platform` and point `name` at it. On any error the
    /// store is left as it was: what the pull had added is removed again.
    ///
    /// Two pulls sharing a layer may run at once; if one fails after adding
    /// a layer the other then skipped, the other's image misses it, so the
    /// daemon serializes pulls of the same layers.
    pub async fn pull(
        &self,
        config: &RegistryConfig,
        auth: &Auth,
        name: &ImageName,
        platform: &Platform,
        progress: &(dyn Fn(Progress) + Send + Sync),
        options: &Options,
    ) -> Result<Pulled> {
        let reference = reference_of(name)?;
        let tracked = Tracked {
            store: self,
            added: Mutex::new(Default::default()),
        };
        let result = registry::pull_with(
            config, auth, &reference, platform, &tracked, progress, options,
        )
        .await;
        let (blobs, layers) = tracked.added.into_inner().expect("not poisoned");
        let mut added = Added::new(self);
        added.blobs = blobs;
        added.layers = layers;
        let pulled = result?;
        let desc = self.descriptor_of(&pulled.digest)?;
        self.tag(name, &desc, platform)?;
        added.keep = true;
        Ok(pulled)
    }

    /// Push the image `image` (a name or an id) as `target`. An index is
    /// pushed whole when every manifest it names is in the store, otherwise
    /// (an image pulled for one platform) only that platform's manifest.
    /// Returns the digest pushed.
    pub async fn push(
        &self,
        config: &RegistryConfig,
        auth: &Auth,
        image: &str,
        target: &ImageName,
        progress: &(dyn Fn(Progress) + Send + Sync),
        options: &Options,
    ) -> Result<Digest> {
        let entry = self.find(image)?;
        let top: Digest = entry.target.digest().clone();
        let digest = if self.is_complete(&top)? {
            top
        } else {
            entry.manifest.clone()
        };
        let reference = reference_of(target)?;
        let pushed =
            registry::push_with(config, auth, &reference, &digest, self, progress, options)
                .await
                .map_err(StoreError::from)?;
        Ok(pushed)
    }

    /// Unpack a layer on its own (overlay: a layer's directory holds only
    /// its changes), keeping its blob unless the store has it. As for
    /// `write_layer_from`, the reader vouches for `digest`.
    pub(crate) fn unpack_detached_from(
        &self,
        digest: &Digest,
        reader: &mut dyn Read,
    ) -> Result<Detached> {
        let layer_err = |source| StoreError::Layer {
            digest: digest.to_string(),
            source,
        };
        let read_err = |source| StoreError::Io {
            path: self.root().to_path_buf(),
            source,
        };
        let txn = self.snapshots.begin_layer(None)?;
        let opts = ApplyOptions {
            whiteouts: self.snapshots.whiteout_mode(),
        };
        let applied = if self.blobs.contains(digest) {
            let applied = layer::apply(reader, &txn.dir, &opts).map_err(layer_err)?;
            io::copy(reader, &mut io::sink()).map_err(read_err)?;
            applied
        } else {
            // The reader checks the digest (ContentStore::write_layer).
            let mut writer = self.blobs.writer_verified_by_caller(digest)?;
            let mut tee = Tee {
                inner: reader,
                copy: &mut writer,
            };
            let applied = layer::apply(&mut tee, &txn.dir, &opts).map_err(layer_err)?;
            // The blob needs the bytes after the tar too (padding, trailer).
            io::copy(&mut tee, &mut io::sink()).map_err(read_err)?;
            writer.commit()?;
            applied
        };
        Ok(Detached {
            location: txn.detach(),
            diff_id: applied.diff_id,
            size: applied.size,
        })
    }

    pub(crate) fn commit_detached_layer(
        &self,
        layer: Detached,
        chain: &Digest,
        parent: Option<&Digest>,
    ) -> Result<()> {
        let txn = self.snapshots.adopt(&layer.location)?;
        if &chain_id(parent, &layer.diff_id) != chain {
            return Err(StoreError::Invalid(format!(
                "a layer with diff id {} does not make chain {chain} on its parent",
                layer.diff_id
            )));
        }
        txn.commit_onto(parent, chain, &layer.diff_id, layer.size)?;
        Ok(())
    }

    /// A descriptor for a manifest or index in the store.
    fn descriptor_of(&self, digest: &Digest) -> Result<Descriptor> {
        let raw = self.blobs.read(digest)?;
        let declared = serde_json::from_slice::<serde_json::Value>(&raw)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string));
        let media = declared.unwrap_or_else(|| {
            match image::kind_of(None, &raw) {
                Kind::Index => image::OCI_INDEX,
                Kind::Manifest => image::OCI_MANIFEST,
            }
            .to_string()
        });
        let desc = serde_json::from_value(serde_json::json!({
            "mediaType": media, "digest": digest.to_string(), "size": raw.len()
        }))
        .map_err(|e| StoreError::Invalid(format!("{digest}: {e}")))?;
        Ok(desc)
    }

    /// Whether every blob `digest` (manifest or index) reaches is here.
    fn is_complete(&self, digest: &Digest) -> Result<bool> {
        let raw = self.blobs.read(digest)?;
        let manifests = match image::kind_of(None, &raw) {
            Kind::Manifest => vec![digest.clone()],
            Kind::Index => image::parse_index(digest, &raw)?
                .manifests()
                .iter()
                .map(|d| d.digest().clone())
                .collect(),
        };
        for m in manifests {
            if !self.blobs.contains(&m) {
                return Ok(false);
            }
            let manifest = image::parse_manifest(&m, &self.blobs.read(&m)?)?;
            let config = manifest.config().digest();
            if !self.blobs.contains(config)
                || !manifest
                    .layers()
                    .iter()
                    .all(|l| self.blobs.contains(l.digest()))
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// The daemon spawns pulls and pushes onto its runtime's workers.
    #[test]
    fn pull_and_push_futures_are_send() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None).unwrap();
        let config = RegistryConfig::default();
        let name = ImageName::parse("bt/x").unwrap();
        let options = Options::default();
        let platform = Platform::host();
        let quiet = |_| {};
        let pull = store.pull(
            &config,
            &Auth::Anonymous,
            &name,
            &platform,
            &quiet,
            &options,
        );
        assert_send(&pull);
        let push = store.push(&config, &Auth::Anonymous, "bt/x", &name, &quiet, &options);
        assert_send(&push);
    }
}
