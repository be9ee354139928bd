//! The store: blobs, names, and snapshots, kept consistent with each other.
//!
//! Layers are kept twice, as in containerd: the compressed blob (what
//! push and save send, byte for byte) and its unpacked snapshot (what
//! containers run on). Both are written from one read of the layer.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};

use crate::blobs::{BlobError, BlobStore};
use crate::digest::{Digest, chain_id, chain_ids};
use crate::image::{self, ImageError, Kind};
use crate::layer::{self, ApplyOptions, LayerError};
use crate::refs::{ImageName, RefEntry, RefError, RefIndex};
use crate::registry::{ContentStore, Detached, Platform};
use crate::snapshot::{Driver, SnapshotError, Snapshots};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Ref(#[from] RefError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("layer {digest}: {source}")]
    Layer { digest: String, source: LayerError },
    #[error("layer {digest}: its content is {actual}, the config says {expected}")]
    DiffId {
        digest: String,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error("no such image: {0}")]
    NoImage(String),
    #[error("image id prefix {0} matches more than one image")]
    Ambiguous(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// An image as listed: every name pointing at the same config is the same
/// image (its id is the config digest, as in Docker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: Digest,
    pub names: Vec<String>,
    /// What the names point at (an index or a manifest).
    pub target: Digest,
    pub manifest: Digest,
    pub created: String,
}

/// A resolved image: its manifest and config, parsed.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: Digest,
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// The config blob as JSON: with what `config` has no field for
    /// (Docker's `Healthcheck`, `OnBuild`, `Shell`).
    pub raw_config: serde_json::Value,
    pub diff_ids: Vec<Digest>,
}

impl Image {
    /// The chain id of the whole layer stack; `None` for an image without
    /// layers.
    pub fn top_chain(&self) -> Option<Digest> {
        chain_ids(&self.diff_ids).pop()
    }
}

#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    pub blobs: BlobStore,
    refs: Mutex<RefIndex>,
    pub snapshots: Snapshots,
    pub(crate) sources: crate::transfer::BlobSources,
}

pub(crate) fn now_rfc3339() -> String {
    // Seconds resolution, UTC, without pulling in a date crate.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

pub(crate) fn rfc3339(secs: u64) -> String {
    let days = secs / 86400;
    let rem = secs % 86400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// Whether overlayfs works on `dir`'s filesystem for us (root, a
/// filesystem that can be an upper layer).
fn overlay_works(dir: &Path) -> bool {
    let Ok(t) = tempfile::Builder::new()
        .prefix(".overlay-probe")
        .tempdir_in(dir)
    else {
        return false;
    };
    let (lower, upper, work, merged) = (
        t.path().join("l"),
        t.path().join("u"),
        t.path().join("w"),
        t.path().join("m"),
    );
    for d in [&lower, &upper, &work, &merged] {
        if std::fs::create_dir(d).is_err() {
            return false;
        }
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let ok = nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(data.as_str()),
    )
    .is_ok();
    if ok {
        let _ = nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH);
    }
    ok
}

/// A reader that copies what it reads into a writer: one read of a layer
/// both unpacks it and stores its blob.
pub(crate) struct Tee<'a, R, W> {
    pub(crate) inner: R,
    pub(crate) copy: &'a mut W,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

impl Store {
    /// Open (or create) the store at `root`. `driver` None picks overlay
    /// where it works, copying otherwise.
    pub fn open(root: &Path, driver: Option<Driver>) -> Result<Store> {
        std::fs::create_dir_all(root).map_err(|source| StoreError::Io {
            path: root.into(),
            source,
        })?;
        let blobs = BlobStore::open(root)?;
        let refs = RefIndex::load(root)?;
        let snaps_root = root.join("snapshots");
        let driver_file = snaps_root.join("driver");
        // A store keeps the driver it was created with: its layers are in
        // that driver's format.
        let recorded: Option<Driver> = std::fs::read_to_string(&driver_file)
            .ok()
            .and_then(|s| serde_json::from_str(&format!("\"{}\"", s.trim())).ok());
        let driver = match (recorded, driver) {
            (Some(r), Some(want)) if r != want => {
                return Err(StoreError::Invalid(format!(
                    "{} holds {r:?} snapshots; it cannot be opened with the {want:?} driver",
                    root.display()
                )));
            }
            (Some(r), _) => r,
            (None, Some(d)) => d,
            (None, None) => {
                std::fs::create_dir_all(&snaps_root).map_err(|source| StoreError::Io {
                    path: snaps_root.clone(),
                    source,
                })?;
                if overlay_works(&snaps_root) {
                    Driver::Overlay
                } else {
                    Driver::Copy
                }
            }
        };
        let snapshots = Snapshots::open(&snaps_root, driver)?;
        if recorded.is_none() {
            let name = match driver {
                Driver::Overlay => "overlay",
                Driver::Copy => "copy",
            };
            crate::blobs::write_atomic(&driver_file, name.as_bytes())?;
        }
        Ok(Store {
            root: root.to_path_buf(),
            blobs,
            refs: Mutex::new(refs),
            snapshots,
            sources: crate::transfer::BlobSources::open(root),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn refs(&self) -> std::sync::MutexGuard<'_, RefIndex> {
        self.refs.lock().expect("not poisoned")
    }

    /// The platform manifest and config behind `target` (a manifest or
    /// an index already in the store).
    pub fn resolve_target(&self, target: &Digest, platform: &Platform) -> Result<(Digest, Digest)> {
        let raw = self.blobs.read(target)?;
        let manifest_digest = match image::kind_of(None, &raw) {
            Kind::Manifest => target.clone(),
            Kind::Index => {
                let index = image::parse_index(target, &raw)?;
                let d = image::select_platform(&index, platform).ok_or_else(|| {
                    ImageError::NoPlatform {
                        digest: target.to_string(),
                        platform: image::platform_string(platform),
                    }
                })?;
                d.digest().to_string().parse().expect("index digests parse")
            }
        };
        let manifest =
            image::parse_manifest(&manifest_digest, &self.blobs.read(&manifest_digest)?)?;
        let config: Digest = manifest
            .config()
            .digest()
            .to_string()
            .parse()
            .expect("config digest parses");
        Ok((manifest_digest, config))
    }

    /// Point `name` at `target` (which must be in the store).
    pub fn tag(&self, name: &ImageName, target: &Descriptor, platform: &Platform) -> Result<()> {
        let digest: Digest = target
            .digest()
            .to_string()
            .parse()
            .expect("descriptor digest parses");
        let (manifest, config) = self.resolve_target(&digest, platform)?;
        self.refs().set(RefEntry {
            name: name.to_string(),
            target: target.clone(),
            manifest,
            config,
            created: now_rfc3339(),
        })?;
        Ok(())
    }

    /// Give the image `existing` (name or id) another name.
    pub fn retag(&self, existing: &str, new: &ImageName) -> Result<()> {
        let entry = self.find(existing)?;
        self.refs().set(RefEntry {
            name: new.to_string(),
            created: now_rfc3339(),
            ..entry
        })?;
        Ok(())
    }

    /// Remove a name. The content stays until [`Store::gc`].
    pub fn untag(&self, name: &ImageName) -> Result<()> {
        self.refs().remove(&name.to_string())?;
        Ok(())
    }

    /// Every image, names grouped by image id.
    pub fn images(&self) -> Vec<ImageInfo> {
        let refs = self.refs();
        let mut out: Vec<ImageInfo> = Vec::new();
        for e in refs.all() {
            match out.iter_mut().find(|i| i.id == e.config) {
                Some(i) => i.names.push(e.name.clone()),
                None => out.push(ImageInfo {
                    id: e.config.clone(),
                    names: vec![e.name.clone()],
                    target: e
                        .target
                        .digest()
                        .to_string()
                        .parse()
                        .expect("digest parses"),
                    manifest: e.manifest.clone(),
                    created: e.created.clone(),
                }),
            }
        }
        out
    }

    /// A name's entry, or an image id (a config digest, or a unique prefix
    /// of its hex of at least 4 characters).
    pub(crate) fn find(&self, name_or_id: &str) -> Result<RefEntry> {
        let refs = self.refs();
        if let Ok(n) = ImageName::parse(name_or_id)
            && let Some(e) = refs.get(&n.to_string())
        {
            return Ok(e.clone());
        }
        let hex = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
        if hex.len() >= 4 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut hits: Vec<&RefEntry> = refs
                .all()
                .filter(|e| e.config.digest().starts_with(hex))
                .collect();
            hits.dedup_by(|a, b| a.config == b.config);
            match hits.as_slice() {
                [one] => return Ok((*one).clone()),
                [] => {}
                _ => return Err(StoreError::Ambiguous(name_or_id.to_string())),
            }
            drop(refs);
            // An unnamed image the builder pinned (an untagged build).
            let mut pinned: Vec<(Digest, Digest)> = self
                .pins()
                .into_iter()
                .filter(|(_, c)| c.digest().starts_with(hex))
                .collect();
            pinned.dedup_by(|a, b| a.1 == b.1);
            match pinned.as_slice() {
                [(manifest, config)] => {
                    let target: Descriptor = serde_json::from_value(serde_json::json!({
                        "mediaType": image::OCI_MANIFEST,
                        "digest": manifest.to_string(),
                        "size": self.blobs.size(manifest)?,
                    }))
                    .expect("descriptor");
                    return Ok(RefEntry {
                        name: String::new(),
                        target,
                        manifest: manifest.clone(),
                        config: config.clone(),
                        created: String::new(),
                    });
                }
                [] => {}
                _ => return Err(StoreError::Ambiguous(name_or_id.to_string())),
            }
        }
        Err(StoreError::NoImage(name_or_id.to_string()))
    }

    /// Resolve a name or id to its manifest and config.
    pub fn image(&self, name_or_id: &str) -> Result<Image> {
        let e = self.find(name_or_id)?;
        self.image_by_manifest(&e.manifest)
    }

    pub fn image_by_manifest(&self, manifest_digest: &Digest) -> Result<Image> {
        let manifest = image::parse_manifest(manifest_digest, &self.blobs.read(manifest_digest)?)?;
        let id: Digest = manifest
            .config()
            .digest()
            .to_string()
            .parse()
            .expect("config digest parses");
        let raw = self.blobs.read(&id)?;
        let config = image::parse_config(&id, &raw)?;
        // parse_config accepted it, so it is JSON.
        let raw_config = serde_json::from_slice(&raw).unwrap_or_default();
        let diff_ids = image::diff_ids(&id, &config, manifest.layers().len())?;
        Ok(Image {
            id,
            manifest_digest: manifest_digest.clone(),
            manifest,
            config,
            raw_config,
            diff_ids,
        })
    }

    /// The names pointing at image `id`.
    pub fn names_of(&self, id: &Digest) -> Vec<String> {
        self.refs()
            .all()
            .filter(|e| &e.config == id)
            .map(|e| e.name.clone())
            .collect()
    }

    /// Make sure every layer of `image` is unpacked (after a load, or once
    /// a snapshot was collected); returns the top chain id.
    pub fn unpack(&self, image: &Image) -> Result<Option<Digest>> {
        let chains = chain_ids(&image.diff_ids);
        for (i, (desc, chain)) in image.manifest.layers().iter().zip(&chains).enumerate() {
            if self.snapshots.has_layer(chain) {
                continue;
            }
            let digest: Digest = desc
                .digest()
                .to_string()
                .parse()
                .expect("layer digest parses");
            let mut blob = self.blobs.open_blob(&digest)?;
            let parent = if i == 0 { None } else { Some(&chains[i - 1]) };
            self.apply_layer(&digest, chain, parent, &mut blob)?;
        }
        Ok(chains.last().cloned())
    }

    /// Unpack one layer from `reader` as `chain`; the chain id proves the
    /// content is the diff id the config promised.
    fn apply_layer(
        &self,
        digest: &Digest,
        chain: &Digest,
        parent: Option<&Digest>,
        reader: &mut dyn Read,
    ) -> Result<layer::Applied> {
        let txn = self.snapshots.begin_layer(parent)?;
        let opts = ApplyOptions {
            whiteouts: self.snapshots.whiteout_mode(),
        };
        let applied =
            layer::apply(reader, &txn.dir, &opts).map_err(|source| StoreError::Layer {
                digest: digest.to_string(),
                source,
            })?;
        if &chain_id(parent, &applied.diff_id) != chain {
            return Err(StoreError::DiffId {
                digest: digest.to_string(),
                expected: chain.to_string(),
                actual: applied.diff_id.to_string(),
            });
        }
        txn.commit(chain, &applied.diff_id, applied.size)?;
        Ok(applied)
    }

    /// Store a layer read from `reader` as a blob and unpack it, in one
    /// pass. The unpacked content must give `chain` on top of `parent`.
    /// The reader vouches for `digest`: it fails a read, at the latest the
    /// one at the end, if the bytes do not have it. On error neither stays.
    pub(crate) fn write_layer_from(
        &self,
        digest: &Digest,
        chain: &Digest,
        parent: Option<&Digest>,
        reader: &mut dyn Read,
    ) -> Result<()> {
        let have_blob = self.blobs.contains(digest);
        if have_blob {
            if !self.snapshots.has_layer(chain) {
                self.apply_layer(digest, chain, parent, reader)?;
            }
            io::copy(reader, &mut io::sink()).map_err(|source| StoreError::Io {
                path: self.root.clone(),
                source,
            })?;
            return Ok(());
        }
        // The reader checks the digest (ContentStore::write_layer).
        let mut writer = self.blobs.writer_verified_by_caller(digest)?;
        if self.snapshots.has_layer(chain) {
            io::copy(reader, &mut writer).map_err(|source| StoreError::Io {
                path: self.root.clone(),
                source,
            })?;
            writer.commit()?;
            return Ok(());
        }
        let txn = self.snapshots.begin_layer(parent)?;
        let opts = ApplyOptions {
            whiteouts: self.snapshots.whiteout_mode(),
        };
        let mut tee = Tee {
            inner: reader,
            copy: &mut writer,
        };
        let applied =
            layer::apply(&mut tee, &txn.dir, &opts).map_err(|source| StoreError::Layer {
                digest: digest.to_string(),
                source,
            })?;
        // A tar ends before its stream does (padding, compression trailer):
        // the blob needs every byte.
        io::copy(&mut tee, &mut io::sink()).map_err(|source| StoreError::Io {
            path: self.root.clone(),
            source,
        })?;
        if &chain_id(parent, &applied.diff_id) != chain {
            return Err(StoreError::DiffId {
                digest: digest.to_string(),
                expected: chain.to_string(),
                actual: applied.diff_id.to_string(),
            });
        }
        // The blob first: a snapshot without its blob could not be pushed.
        writer.commit()?;
        txn.commit(chain, &applied.diff_id, applied.size)?;
        Ok(())
    }
}

/// A new image: its config and the layers it adds to a parent's.
#[derive(Debug, Clone, Default)]
pub struct NewImage {
    /// Layer blobs already in the store (compressed or not), in order.
    pub layers: Vec<Digest>,
    /// The history entry for each layer (created_by), and for
    /// config-only changes (empty_layer).
    pub history: Vec<serde_json::Value>,
    /// The image config's `config` object (Env, Cmd, ...), replacing the
    /// parent's.
    pub config: Option<serde_json::Value>,
    /// The image's `author` (`docker commit --author`).
    pub author: Option<String>,
}

impl Store {
    /// Write an image made of `parent`'s layers plus `new.layers`, name it
    /// `name` if given, unpack it. Returns its manifest digest.
    pub fn commit_image(
        &self,
        parent: Option<&Image>,
        new: &NewImage,
        name: Option<&ImageName>,
    ) -> Result<Digest> {
        let platform = Platform::host();
        let mut config = match parent {
            // Raw, so that Docker's extensions (Healthcheck, OnBuild) live on.
            Some(p) => p.raw_config.clone(),
            None => serde_json::json!({
                "architecture": platform.architecture, "os": platform.os, "config": {},
                "rootfs": {"type": "layers", "diff_ids": []}, "history": []
            }),
        };
        let mut layers: Vec<Descriptor> = parent
            .map(|p| p.manifest.layers().clone())
            .unwrap_or_default();
        let mut diff_ids: Vec<Digest> = parent.map(|p| p.diff_ids.clone()).unwrap_or_default();
        for d in &new.layers {
            let mut blob = self.blobs.open_blob(d)?;
            let mut head = [0u8; 4];
            let n = blob.read(&mut head).map_err(|source| StoreError::Io {
                path: self.blobs.path(d),
                source,
            })?;
            let media = match layer::Compression::detect(&head[..n]) {
                layer::Compression::Gzip => image::OCI_LAYER_GZIP,
                layer::Compression::Zstd => image::OCI_LAYER_ZSTD,
                layer::Compression::None => image::OCI_LAYER,
            };
            // The diff id comes from unpacking the layer onto its parent.
            let parent_chain = chain_ids(&diff_ids).pop();
            let mut blob = self.blobs.open_blob(d)?;
            let txn = self.snapshots.begin_layer(parent_chain.as_ref())?;
            let applied = layer::apply(
                &mut blob,
                &txn.dir,
                &ApplyOptions {
                    whiteouts: self.snapshots.whiteout_mode(),
                },
            )
            .map_err(|source| StoreError::Layer {
                digest: d.to_string(),
                source,
            })?;
            let chain = chain_id(parent_chain.as_ref(), &applied.diff_id);
            txn.commit(&chain, &applied.diff_id, applied.size)?;
            diff_ids.push(applied.diff_id);
            layers.push(
                serde_json::from_value(serde_json::json!({
                    "mediaType": media, "digest": d.to_string(), "size": self.blobs.size(d)?
                }))
                .expect("descriptor"),
            );
        }
        let now = now_rfc3339();
        config["created"] = now.clone().into();
        config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()});
        if let Some(c) = &new.config {
            config["config"] = c.clone();
        }
        if let Some(a) = &new.author {
            config["author"] = a.clone().into();
        }
        if !config["history"].is_array() {
            config["history"] = serde_json::json!([]);
        }
        for h in &new.history {
            let mut h = h.clone();
            if h.get("created").is_none() {
                h["created"] = now.clone().into();
            }
            config["history"].as_array_mut().expect("array").push(h);
        }
        let config_raw = serde_json::to_vec(&config).expect("config serializes");
        let config_digest = self.blobs.write(&config_raw)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": image::OCI_MANIFEST,
            "config": {"mediaType": image::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_raw.len()},
            "layers": layers,
        });
        let raw = serde_json::to_vec(&manifest).expect("manifest serializes");
        let digest = self.blobs.write(&raw)?;
        if let Some(n) = name {
            let desc: Descriptor = serde_json::from_value(serde_json::json!({
                "mediaType": image::OCI_MANIFEST, "digest": digest.to_string(), "size": raw.len()
            }))
            .expect("descriptor");
            self.tag(n, &desc, &platform)?;
        }
        Ok(digest)
    }

    /// A writable snapshot for container `id` on `image`, unpacking what
    /// is missing.
    pub fn prepare_container(&self, id: &str, image: &Image) -> Result<()> {
        let top = self.unpack(image)?;
        self.snapshots.create_container(id, top.as_ref())?;
        Ok(())
    }

    pub fn mount_container(&self, id: &str, target: &Path) -> Result<()> {
        Ok(self.snapshots.mount_container(id, target)?)
    }

    /// As `mount_container`; `volatile` for a container whose changes go
    /// when it exits (see `Snapshots::mount_container_with`).
    pub fn mount_container_with(&self, id: &str, target: &Path, volatile: bool) -> Result<()> {
        Ok(self.snapshots.mount_container_with(id, target, volatile)?)
    }

    pub fn remove_container(&self, id: &str) -> Result<()> {
        Ok(self.snapshots.remove_container(id)?)
    }

    /// See [`crate::snapshot::Snapshots::discard_container`].
    pub fn discard_container(&self, id: &str) -> Result<Option<std::path::PathBuf>> {
        Ok(self.snapshots.discard_container(id)?)
    }

    /// See [`crate::snapshot::Snapshots::sweep_discarded`].
    pub fn sweep_discarded_containers(&self) {
        self.snapshots.sweep_discarded()
    }

    /// The changes container `id` made, as a new layer blob in the store.
    pub fn commit_container_layer(
        &self,
        id: &str,
        opts: &layer::CreateOptions,
    ) -> Result<layer::Created> {
        let meta = self.snapshots.container(id)?;
        let changes = match meta.driver {
            Driver::Overlay => {
                layer::Changes::OverlayUpper(self.snapshots.container_changes_dir(id)?)
            }
            Driver::Copy => layer::Changes::Diff {
                lower: meta
                    .parent
                    .as_ref()
                    .and_then(|p| self.snapshots.layer_dir(p)),
                upper: self.snapshots.container_changes_dir(id)?,
            },
        };
        let mut w = self.blobs.writer(None)?;
        let created =
            layer::create(&changes, &mut w, opts).map_err(|source| StoreError::Layer {
                digest: format!("of container {id}"),
                source,
            })?;
        let d = w.commit()?;
        if d != created.digest {
            return Err(StoreError::Invalid(format!(
                "layer of container {id}: digest {} written as {d}",
                created.digest
            )));
        }
        Ok(created)
    }
}

fn to_io(e: StoreError) -> io::Error {
    io::Error::other(e.to_string())
}

impl ContentStore for Store {
    fn has_blob(&self, digest: &Digest) -> bool {
        self.blobs.contains(digest)
    }
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.blobs.size(digest).ok()
    }
    fn read_blob(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        self.blobs.read(digest).map_err(|e| to_io(e.into()))
    }
    fn open_blob(&self, digest: &Digest) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(
            self.blobs.open_blob(digest).map_err(|e| to_io(e.into()))?,
        ))
    }
    fn write_blob(&self, digest: &Digest, data: &[u8]) -> io::Result<()> {
        self.blobs
            .write_verified(digest, data)
            .map_err(|e| to_io(e.into()))
    }
    fn has_layer(&self, chain_id: &Digest) -> bool {
        self.snapshots.has_layer(chain_id)
    }
    fn write_layer(
        &self,
        desc: &Descriptor,
        chain_id: &Digest,
        parent: Option<&Digest>,
        reader: &mut dyn Read,
    ) -> io::Result<()> {
        let digest: Digest = desc
            .digest()
            .to_string()
            .parse()
            .map_err(io::Error::other)?;
        self.write_layer_from(&digest, chain_id, parent, reader)
            .map_err(to_io)
    }
    fn add_blob_source(&self, digest: &Digest, registry: &str, repository: &str) {
        self.sources.add(digest, registry, repository);
    }
    fn detached_layers(&self) -> bool {
        self.snapshots.driver() == Driver::Overlay
    }
    fn unpack_detached(&self, desc: &Descriptor, reader: &mut dyn Read) -> io::Result<Detached> {
        self.unpack_detached_from(desc.digest(), reader)
            .map_err(to_io)
    }
    fn commit_detached(
        &self,
        layer: Detached,
        chain_id: &Digest,
        parent: Option<&Digest>,
    ) -> io::Result<()> {
        self.commit_detached_layer(layer, chain_id, parent)
            .map_err(to_io)
    }
    fn discard_detached(&self, layer: Detached) {
        if let Ok(txn) = self.snapshots.adopt(&layer.location) {
            drop(txn);
        }
    }
    fn blob_sources(&self, digest: &Digest) -> Vec<(String, String)> {
        self.sources.get(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951782400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1795478400), "2026-11-24T00:00:00Z");
    }
}
