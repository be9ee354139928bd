//! Image archives: `save`/`load` in docker-archive and OCI-archive format,
//! and `import` of a root filesystem tarball.
//!
//! docker-archive is written the way Docker 25 writes it: an OCI layout
//! (layers as uncompressed tars, named by their diff ids) plus Docker's
//! `manifest.json` and `repositories`, so both Docker-era and OCI tools
//! read it. OCI-archive keeps the blobs exactly as stored, so a save and a
//! load give back the same manifest digests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{SyncSender, sync_channel};

use oci_spec::image::Descriptor;
use serde_json::{Value, json};

use crate::blobs::{BlobError, BlobWriter};
use crate::digest::{Digest, HashingReader, chain_ids, sha256};
use crate::image;
use crate::layer::{self, ApplyOptions, Compression};
use crate::refs::{self, ImageName};
use crate::registry::Platform;
use crate::snapshot::{Driver, LayerTxn};
use crate::store::{Image, Result, Store, StoreError, now_rfc3339};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Docker,
    Oci,
}

/// Files of an archive small enough to keep in memory: metadata.
const SMALL: u64 = 16 << 20;

/// A reader of the uncompressed bytes of a plain, gzip or zstd stream.
fn decompress<'a>(r: &'a mut dyn Read) -> io::Result<Box<dyn Read + 'a>> {
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let chained = io::Cursor::new(head[..n].to_vec()).chain(r);
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(chained)),
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(zstd::stream::read::Decoder::new(chained)?),
        _ => Box::new(chained),
    })
}

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

fn io(path: &str) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: PathBuf::from(path),
        source,
    }
}

/// An archive path with `./` and leading slashes gone; `..` refused.
fn clean(p: &Path) -> Option<String> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            _ => return None,
        }
    }
    out.to_str().map(str::to_string)
}

/// A layer unpacked while the archive streamed by, before the manifest and
/// config said where it stacks; committed once its chain id is known, and
/// discarded (its directory removed) if it never is.
struct Unpacked<'a> {
    txn: LayerTxn<'a>,
    diff_id: Digest,
    size: u64,
}

/// Layers unpacked on the way in, by blob digest.
type Preunpacked<'a> = HashMap<Digest, Unpacked<'a>>;

/// Whether an archive file that starts with `head` is a layer: compressed,
/// or a tar (the ustar magic of its first header). Configs and manifests
/// are JSON.
fn looks_like_layer(head: &[u8]) -> bool {
    match Compression::detect(head) {
        Compression::Gzip | Compression::Zstd => true,
        Compression::None => head.get(257..262) == Some(b"ustar"),
    }
}

/// Chunks in flight from a [`Tee`] to its blob writer.
const TEE_IN_FLIGHT: usize = 16;

/// A reader that sends what it reads to a thread writing it into a blob:
/// one read of a layer both unpacks it and stores it, and hashing and
/// writing the blob overlap with unpacking.
struct Tee<'a> {
    inner: &'a mut dyn Read,
    copy: SyncSender<Vec<u8>>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 && self.copy.send(buf[..n].to_vec()).is_err() {
            // The writer stopped on an error, which it returns.
            return Err(io::Error::other("writing the blob failed"));
        }
        Ok(n)
    }
}

/// A blob of an archive being committed on a thread of its own.
struct Committing<'scope, 's> {
    name: String,
    unpacked: Option<Unpacked<'s>>,
    commit: std::thread::ScopedJoinHandle<'scope, std::result::Result<(Digest, bool), BlobError>>,
}

impl<'s> Committing<'_, 's> {
    /// Wait for the commit; note the blob as added, under its archive name.
    fn finish(
        self,
        added: &mut Added<'_>,
        files: &mut HashMap<String, Digest>,
        pre: &mut Preunpacked<'s>,
    ) -> Result<()> {
        let (d, new) = self
            .commit
            .join()
            .expect("committing a blob does not panic")?;
        added.blob(&d, !new);
        let name = self.name;
        if let Some(hex) = name.strip_prefix("blobs/sha256/")
            && hex != d.digest()
        {
            return Err(invalid(format!(
                "archive entry {name}: content does not match its digest ({d})"
            )));
        }
        if let Some(u) = self.unpacked {
            pre.insert(d.clone(), u);
        }
        files.insert(name, d);
        Ok(())
    }
}

/// What was added by an operation that may still fail: removed again if
/// it does, so the store holds exactly what it held before.
pub(crate) struct Added<'a> {
    store: &'a Store,
    pub(crate) blobs: Vec<Digest>,
    pub(crate) layers: Vec<Digest>,
    pub(crate) names: Vec<ImageName>,
    pub(crate) keep: bool,
}

impl<'a> Added<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Added {
            store,
            blobs: Vec::new(),
            layers: Vec::new(),
            names: Vec::new(),
            keep: false,
        }
    }

    pub(crate) fn blob(&mut self, d: &Digest, existed: bool) {
        if !existed {
            self.blobs.push(d.clone());
        }
    }
}

impl Drop for Added<'_> {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for n in &self.names {
            let _ = self.store.untag(n);
        }
        for l in self.layers.iter().rev() {
            let _ = self.store.snapshots.remove_layer(l);
        }
        for b in &self.blobs {
            let _ = self.store.blobs.remove(b);
        }
    }
}

impl Store {
    fn put_blob(&self, added: &mut Added<'_>, data: &[u8]) -> Result<Digest> {
        let d = sha256(data);
        let existed = self.blobs.contains(&d);
        if !existed {
            self.blobs.write_verified(&d, data)?;
        }
        added.blob(&d, existed);
        Ok(d)
    }

    fn detect_blob(&self, d: &Digest) -> Result<Compression> {
        let mut head = [0u8; 8];
        let mut f = self.blobs.open_blob(d)?;
        let n = f.read(&mut head).map_err(io("blob"))?;
        Ok(Compression::detect(&head[..n]))
    }

    /// Copy an archive file into the blob writer `w`. A layer is unpacked
    /// on the way when the store's layers stand alone (overlay), so the
    /// archive is read once and each layer written once; a file that
    /// turns out not to unpack is only stored (and if a manifest names it
    /// as a layer, unpacking it from its blob reports why). A blob the
    /// store already holds (by its archive name) is most likely unpacked
    /// already: it is only copied.
    fn ingest<'s>(
        &'s self,
        entry: &mut dyn Read,
        w: &mut BlobWriter<'_>,
        name: &str,
    ) -> Result<Option<Unpacked<'s>>> {
        let err = |e: io::Error| invalid(format!("archive entry {name}: {e}"));
        let mut head = Vec::with_capacity(512);
        (&mut *entry)
            .take(512)
            .read_to_end(&mut head)
            .map_err(err)?;
        let layer_like = looks_like_layer(&head);
        let known = name
            .strip_prefix("blobs/sha256/")
            .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
            .is_some_and(|d| self.blobs.contains(&d));
        let mut src = io::Cursor::new(head).chain(entry);
        if self.snapshots.driver() != Driver::Overlay || !layer_like || known {
            io::copy(&mut src, w).map_err(err)?;
            return Ok(None);
        }
        let txn = self.snapshots.begin_layer(None)?;
        let opts = ApplyOptions {
            whiteouts: self.snapshots.whiteout_mode(),
        };
        let (tx, rx) = sync_channel::<Vec<u8>>(TEE_IN_FLIGHT);
        let (applied, rest, written) = std::thread::scope(|s| {
            let writer = s.spawn(move || -> io::Result<()> {
                for chunk in rx {
                    w.write_all(&chunk)?;
                }
                Ok(())
            });
            let mut tee = Tee {
                inner: &mut src,
                copy: tx,
            };
            let applied = layer::apply(&mut tee, &txn.dir, &opts);
            // The blob needs every byte: what follows the tar (padding, the
            // compression trailer), or all the rest if it did not unpack.
            let rest = io::copy(&mut tee, &mut io::sink());
            drop(tee);
            let written = writer.join().expect("the blob writer does not panic");
            (applied, rest, written)
        });
        written.map_err(err)?;
        rest.map_err(err)?;
        Ok(applied.ok().map(|a| Unpacked {
            txn,
            diff_id: a.diff_id,
            size: a.size,
        }))
    }

    /// Unpack the layers of a just-assembled image, remembering them for
    /// rollback: those unpacked while the archive was read are committed,
    /// the rest unpacked from their blobs.
    fn unpack_added(
        &self,
        added: &mut Added<'_>,
        manifest: &Digest,
        pre: &mut Preunpacked<'_>,
    ) -> Result<()> {
        let img = self.image_by_manifest(manifest)?;
        let chains = chain_ids(&img.diff_ids);
        let before: HashSet<Digest> = chains
            .iter()
            .filter(|c| self.snapshots.has_layer(c))
            .cloned()
            .collect();
        let result = self
            .commit_unpacked(&img, &chains, pre)
            .and_then(|()| self.unpack(&img));
        for c in chains {
            if !before.contains(&c) && self.snapshots.has_layer(&c) {
                added.layers.push(c);
            }
        }
        result.map(drop)
    }

    /// Commit the layers of `img` found in `pre`, bottom up, while each
    /// one's parent is there; [`Store::unpack`] does the rest. A layer whose
    /// content is not the config's diff id is left to it too: unpacking it
    /// again reports the mismatch.
    fn commit_unpacked(
        &self,
        img: &Image,
        chains: &[Digest],
        pre: &mut Preunpacked<'_>,
    ) -> Result<()> {
        for (i, (desc, chain)) in img.manifest.layers().iter().zip(chains).enumerate() {
            if self.snapshots.has_layer(chain) {
                continue;
            }
            let digest: Digest = desc
                .digest()
                .to_string()
                .parse()
                .expect("layer digest parses");
            let Some(u) = pre.remove(&digest) else {
                break;
            };
            if u.diff_id != img.diff_ids[i] {
                break;
            }
            let parent = i.checked_sub(1).map(|p| &chains[p]);
            u.txn.commit_onto(parent, chain, &u.diff_id, u.size)?;
        }
        Ok(())
    }

    /// Write an OCI manifest for `config` and `layers` (digests in the
    /// store), point `names` at it, and unpack it.
    fn assemble(
        &self,
        added: &mut Added<'_>,
        pre: &mut Preunpacked<'_>,
        config: &Digest,
        layers: &[Digest],
        names: &[ImageName],
    ) -> Result<Digest> {
        let config_raw = self.blobs.read(config)?;
        let cfg = image::parse_config(config, &config_raw)?;
        let diff_ids = image::diff_ids(config, &cfg, layers.len())?;
        let mut descs = Vec::new();
        for (l, _) in layers.iter().zip(&diff_ids) {
            let media = match self.detect_blob(l)? {
                Compression::Gzip => image::OCI_LAYER_GZIP,
                Compression::Zstd => image::OCI_LAYER_ZSTD,
                Compression::None => image::OCI_LAYER,
            };
            descs.push(
                json!({"mediaType": media, "digest": l.to_string(), "size": self.blobs.size(l)?}),
            );
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": image::OCI_MANIFEST,
            "config": {"mediaType": image::OCI_CONFIG, "digest": config.to_string(), "size": config_raw.len()},
            "layers": descs,
        });
        let raw = serde_json::to_vec(&manifest).expect("manifest serializes");
        let digest = self.put_blob(added, &raw)?;
        self.unpack_added(added, &digest, pre)?;
        let desc: Descriptor = serde_json::from_value(json!({
            "mediaType": image::OCI_MANIFEST, "digest": digest.to_string(), "size": raw.len()
        }))
        .expect("descriptor");
        for n in names {
            self.tag(n, &desc, &Platform::host())?;
            added.names.push(n.clone());
        }
        Ok(digest)
    }

    /// A one-layer image from a root filesystem tarball (plain, gzip or
    /// zstd), named `name`.
    pub fn import(
        &self,
        reader: &mut dyn Read,
        name: &ImageName,
        message: Option<&str>,
    ) -> Result<Digest> {
        self.import_with_config(reader, name, message, None)
    }

    /// [`Store::import`] with the image config's `config` object (Cmd,
    /// Env, ...) given (`docker import --change`).
    pub fn import_with_config(
        &self,
        reader: &mut dyn Read,
        name: &ImageName,
        message: Option<&str>,
        config: Option<serde_json::Value>,
    ) -> Result<Digest> {
        let mut added = Added::new(self);
        // The tarball becomes the layer blob as it is; its compression is
        // detected when the manifest is written.
        let mut w = self.blobs.writer(None)?;
        io::copy(reader, &mut w).map_err(io("import"))?;
        let (layer, new) = w.commit_checked()?;
        added.blob(&layer, !new);
        let mut blob = self.blobs.open_blob(&layer)?;
        let mut tar = HashingReader::new(decompress(&mut blob).map_err(io("import"))?);
        io::copy(&mut tar, &mut io::sink())
            .map_err(|e| invalid(format!("import: not a tar stream: {e}")))?;
        let (diff_id, _) = tar.finish();
        let created = now_rfc3339();
        let platform = Platform::host();
        let config = json!({
            "created": created,
            "architecture": platform.architecture,
            "os": platform.os,
            "config": config.unwrap_or_else(|| json!({})),
            "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
            "history": [{"created": created, "created_by": "berth import", "comment": message.unwrap_or("imported from tarball")}],
        });
        let config = self.put_blob(
            &mut added,
            &serde_json::to_vec(&config).expect("config serializes"),
        )?;
        let digest = self.assemble(
            &mut added,
            &mut HashMap::new(),
            &config,
            &[layer],
            std::slice::from_ref(name),
        )?;
        added.keep = true;
        Ok(digest)
    }

    /// Load a docker-archive or OCI-archive; returns the names it set.
    pub fn load(&self, reader: &mut dyn Read) -> Result<Vec<String>> {
        let mut added = Added::new(self);
        let mut small: HashMap<String, Vec<u8>> = HashMap::new();
        let mut files: HashMap<String, Digest> = HashMap::new();
        let mut pre = Preunpacked::new();
        self.read_archive(reader, &mut added, &mut small, &mut files, &mut pre)?;
        let names = if let Some(raw) = small.get("manifest.json") {
            self.load_docker(&mut added, &mut pre, raw, &files, &small)?
        } else if let Some(raw) = small.get("index.json") {
            self.load_oci(&mut added, &mut pre, raw, &files)?
        } else {
            return Err(invalid(
                "archive: neither manifest.json (docker-archive) nor index.json (OCI layout)",
            ));
        };
        added.keep = true;
        Ok(names)
    }

    /// Read the archive's files: metadata into `small`, every other file
    /// into the blob store as it streams by (`files`: archive name to
    /// digest; the archive's own names are checked later), layers unpacked
    /// on the way into `pre`. Each blob is committed (fsynced) on a thread
    /// of its own while the next file streams in.
    fn read_archive<'s>(
        &'s self,
        reader: &mut dyn Read,
        added: &mut Added<'_>,
        small: &mut HashMap<String, Vec<u8>>,
        files: &mut HashMap<String, Digest>,
        pre: &mut Preunpacked<'s>,
    ) -> Result<()> {
        let mut archive = tar::Archive::new(reader);
        std::thread::scope(|s| {
            let mut committing: Option<Committing<'_, 's>> = None;
            let read = (|| {
                for entry in archive
                    .entries()
                    .map_err(|e| invalid(format!("archive: {e}")))?
                {
                    let mut entry = entry.map_err(|e| invalid(format!("archive: {e}")))?;
                    if !entry.header().entry_type().is_file() {
                        continue;
                    }
                    let path = entry
                        .path()
                        .map_err(|e| invalid(format!("archive: {e}")))?
                        .into_owned();
                    let name = clean(&path).ok_or_else(|| {
                        invalid(format!(
                            "archive entry {}: path leaves the archive",
                            path.display()
                        ))
                    })?;
                    let size = entry.header().size().unwrap_or(0);
                    let is_meta = matches!(
                        name.as_str(),
                        "manifest.json" | "index.json" | "oci-layout" | "repositories"
                    ) || name.ends_with("/json")
                        || name.ends_with("/VERSION");
                    if is_meta && size <= SMALL {
                        let mut buf = Vec::with_capacity(size as usize);
                        entry
                            .read_to_end(&mut buf)
                            .map_err(|e| invalid(format!("archive entry {name}: {e}")))?;
                        small.insert(name, buf);
                        continue;
                    }
                    let mut w = self.blobs.writer(None)?;
                    let unpacked = self.ingest(&mut entry, &mut w, &name)?;
                    if let Some(c) = committing.take() {
                        c.finish(added, files, pre)?;
                    }
                    committing = Some(Committing {
                        name,
                        unpacked,
                        commit: s.spawn(move || w.commit_checked()),
                    });
                }
                Ok(())
            })();
            // The last blob, or the one committing when reading failed: it
            // must be known to be taken back.
            let last = committing.map_or(Ok(()), |c| c.finish(added, files, pre));
            read.and(last)
        })
    }

    fn load_docker(
        &self,
        added: &mut Added<'_>,
        pre: &mut Preunpacked<'_>,
        raw: &[u8],
        files: &HashMap<String, Digest>,
        small: &HashMap<String, Vec<u8>>,
    ) -> Result<Vec<String>> {
        let entries: Vec<Value> =
            serde_json::from_slice(raw).map_err(|e| invalid(format!("manifest.json: {e}")))?;
        let mut names = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let field = |k: &str| format!("manifest.json[{i}].{k}");
            let cfg_path = e["Config"]
                .as_str()
                .ok_or_else(|| invalid(format!("{}: missing", field("Config"))))?;
            let cfg_path = clean(Path::new(cfg_path)).ok_or_else(|| invalid(field("Config")))?;
            let config = match files.get(&cfg_path) {
                Some(d) => d.clone(),
                // Small configs were kept in memory when named like metadata.
                None => match small.get(&cfg_path) {
                    Some(data) => self.put_blob(added, data)?,
                    None => {
                        return Err(invalid(format!(
                            "{}: {cfg_path} is not in the archive",
                            field("Config")
                        )));
                    }
                },
            };
            if let Some(hex) = cfg_path
                .strip_suffix(".json")
                .and_then(|p| p.rsplit('/').next())
                && hex.len() == 64
                && hex != config.digest()
            {
                return Err(invalid(format!(
                    "{}: {cfg_path} does not match its digest",
                    field("Config")
                )));
            }
            let mut layers = Vec::new();
            for (j, l) in e["Layers"]
                .as_array()
                .unwrap_or(&Vec::new())
                .iter()
                .enumerate()
            {
                let p = l
                    .as_str()
                    .and_then(|p| clean(Path::new(p)))
                    .ok_or_else(|| invalid(format!("{}[{j}]", field("Layers"))))?;
                let d = files.get(&p).ok_or_else(|| {
                    invalid(format!(
                        "{}[{j}]: {p} is not in the archive",
                        field("Layers")
                    ))
                })?;
                layers.push(d.clone());
            }
            let tags: Vec<ImageName> = e["RepoTags"]
                .as_array()
                .unwrap_or(&Vec::new())
                .iter()
                .filter_map(|t| t.as_str())
                .map(ImageName::parse)
                .collect::<std::result::Result<_, _>>()?;
            self.assemble(added, pre, &config, &layers, &tags)?;
            names.extend(tags.iter().map(|t| t.to_string()));
        }
        Ok(names)
    }

    fn load_oci(
        &self,
        added: &mut Added<'_>,
        pre: &mut Preunpacked<'_>,
        raw: &[u8],
        files: &HashMap<String, Digest>,
    ) -> Result<Vec<String>> {
        let index: Value =
            serde_json::from_slice(raw).map_err(|e| invalid(format!("index.json: {e}")))?;
        let mut names = Vec::new();
        for (i, m) in index["manifests"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .enumerate()
        {
            let desc: Descriptor = serde_json::from_value(m.clone())
                .map_err(|e| invalid(format!("index.json manifests[{i}]: {e}")))?;
            let digest: Digest = desc
                .digest()
                .to_string()
                .parse()
                .map_err(|e| invalid(format!("index.json manifests[{i}]: {e}")))?;
            if !files.values().any(|d| d == &digest) {
                return Err(invalid(format!(
                    "index.json manifests[{i}]: blob {digest} is not in the archive"
                )));
            }
            let ann = desc.annotations().clone().unwrap_or_default();
            let name = ann
                .get("io.containerd.image.name")
                .or_else(|| ann.get(refs::REF_NAME))
                .ok_or_else(|| {
                    invalid(format!(
                        "index.json manifests[{i}]: no image name annotation"
                    ))
                })?;
            // A bare tag ("latest") names nothing; OCI layouts from other
            // tools use full references.
            let name = ImageName::parse(name)?;
            let platform = Platform::host();
            let (manifest, _) = self.resolve_target(&digest, &platform)?;
            let img = self.image_by_manifest(&manifest)?;
            for l in img.manifest.layers() {
                let ld: Digest = l.digest().to_string().parse().expect("layer digest parses");
                if !self.blobs.contains(&ld) {
                    return Err(invalid(format!(
                        "manifest {manifest}: layer {ld} is not in the archive"
                    )));
                }
            }
            self.unpack_added(added, &manifest, pre)?;
            self.tag(&name, &desc, &platform)?;
            added.names.push(name.clone());
            names.push(name.to_string());
        }
        Ok(names)
    }

    /// Write images (names or ids) to `out` as an archive.
    pub fn save(&self, images: &[String], format: Format, out: &mut dyn Write) -> Result<()> {
        let mut tar = tar::Builder::new(out);
        let mut written: HashSet<Digest> = HashSet::new();
        let mut manifest_json = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut index_entries = Vec::new();
        let put = |tar: &mut tar::Builder<&mut dyn Write>,
                   path: &str,
                   size: u64,
                   data: &mut dyn Read|
         -> Result<()> {
            let mut h = tar::Header::new_ustar();
            h.set_size(size);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, path, data).map_err(io("save"))
        };
        for name in images {
            let img = self.image(name)?;
            let tags: Vec<String> = match ImageName::parse(name) {
                Ok(n) if self.names_of(&img.id).contains(&n.to_string()) => vec![n.to_string()],
                _ => self.names_of(&img.id),
            };
            let cfg_path = format!("blobs/sha256/{}", img.id.digest());
            if written.insert(img.id.clone()) {
                let data = self.blobs.read(&img.id)?;
                put(&mut tar, &cfg_path, data.len() as u64, &mut &data[..])?;
            }
            let (manifest_digest, manifest_raw) = match format {
                Format::Oci => {
                    for l in img.manifest.layers() {
                        let d: Digest = l.digest().to_string().parse().expect("digest parses");
                        if written.insert(d.clone()) {
                            let mut f = self.blobs.open_blob(&d)?;
                            put(
                                &mut tar,
                                &format!("blobs/sha256/{}", d.digest()),
                                self.blobs.size(&d)?,
                                &mut f,
                            )?;
                        }
                    }
                    (
                        img.manifest_digest.clone(),
                        self.blobs.read(&img.manifest_digest)?,
                    )
                }
                Format::Docker => {
                    let chains = chain_ids(&img.diff_ids);
                    let mut layer_descs = Vec::new();
                    for ((l, diff), chain) in
                        img.manifest.layers().iter().zip(&img.diff_ids).zip(&chains)
                    {
                        let d: Digest = l.digest().to_string().parse().expect("digest parses");
                        let size = match self.snapshots.layer_meta(chain) {
                            Ok(m) => m.size,
                            Err(_) => {
                                let mut f = self.blobs.open_blob(&d)?;
                                io::copy(
                                    &mut decompress(&mut f).map_err(io("save"))?,
                                    &mut io::sink(),
                                )
                                .map_err(io("save"))?
                            }
                        };
                        if written.insert(diff.clone()) {
                            let mut f = self.blobs.open_blob(&d)?;
                            let mut plain = decompress(&mut f).map_err(io("save"))?;
                            put(
                                &mut tar,
                                &format!("blobs/sha256/{}", diff.digest()),
                                size,
                                &mut plain,
                            )?;
                        }
                        layer_descs.push(json!({"mediaType": image::OCI_LAYER, "digest": diff.to_string(), "size": size}));
                    }
                    let cfg_size = self.blobs.size(&img.id)?;
                    let m = json!({
                        "schemaVersion": 2,
                        "mediaType": image::OCI_MANIFEST,
                        "config": {"mediaType": image::OCI_CONFIG, "digest": img.id.to_string(), "size": cfg_size},
                        "layers": layer_descs,
                    });
                    let raw = serde_json::to_vec(&m).expect("manifest serializes");
                    manifest_json.push(json!({
                        "Config": cfg_path,
                        "RepoTags": tags.iter().filter_map(|t| ImageName::parse(t).ok()).map(|t| t.familiar()).collect::<Vec<_>>(),
                        "Layers": img.diff_ids.iter().map(|d| format!("blobs/sha256/{}", d.digest())).collect::<Vec<_>>(),
                    }));
                    for t in tags.iter().filter_map(|t| ImageName::parse(t).ok()) {
                        let fam = t.familiar();
                        let (repo, tag) = fam.rsplit_once(':').unwrap_or((&fam, "latest"));
                        repositories
                            .entry(repo.to_string())
                            .or_default()
                            .insert(tag.to_string(), img.id.digest().to_string());
                    }
                    (sha256(&raw), raw)
                }
            };
            if written.insert(manifest_digest.clone()) {
                put(
                    &mut tar,
                    &format!("blobs/sha256/{}", manifest_digest.digest()),
                    manifest_raw.len() as u64,
                    &mut &manifest_raw[..],
                )?;
            }
            for t in &tags {
                let tag = ImageName::parse(t)
                    .ok()
                    .and_then(|n| n.tag)
                    .unwrap_or_else(|| "latest".into());
                index_entries.push(json!({
                    "mediaType": image::OCI_MANIFEST,
                    "digest": manifest_digest.to_string(),
                    "size": manifest_raw.len(),
                    "annotations": {"io.containerd.image.name": t, refs::REF_NAME: tag},
                }));
            }
        }
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        put(
            &mut tar,
            "oci-layout",
            layout.len() as u64,
            &mut &layout[..],
        )?;
        let index = serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": image::OCI_INDEX, "manifests": index_entries}),
        )
        .expect("index serializes");
        put(&mut tar, "index.json", index.len() as u64, &mut &index[..])?;
        if format == Format::Docker {
            let m = serde_json::to_vec(&manifest_json).expect("manifest.json serializes");
            put(&mut tar, "manifest.json", m.len() as u64, &mut &m[..])?;
            let r = serde_json::to_vec(&repositories).expect("repositories serializes");
            put(&mut tar, "repositories", r.len() as u64, &mut &r[..])?;
        }
        tar.finish().map_err(io("save"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Driver;

    fn layer(files: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, data.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// A docker-archive of `layers`, written in the order `order` (the
    /// config and manifest.json last), stacked as `stack` (indexes into
    /// `layers`) with the given diff ids.
    fn archive(
        layers: &[Vec<u8>],
        order: &[usize],
        stack: &[usize],
        diff_ids: &[Digest],
    ) -> Vec<u8> {
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&json!([{
            "Config": "config.json",
            "RepoTags": ["bt/pre:1"],
            "Layers": stack.iter().map(|i| format!("{i}/layer.tar")).collect::<Vec<_>>(),
        }]))
        .unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut put = |path: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, data).unwrap();
        };
        for &i in order {
            put(&format!("{i}/layer.tar"), &layers[i]);
        }
        put("config.json", &config);
        put("manifest.json", &manifest);
        b.into_inner().unwrap()
    }

    fn tmp_entries(root: &Path) -> usize {
        std::fs::read_dir(root.join("snapshots/tmp"))
            .unwrap()
            .count()
    }

    /// Layer metas by chain, bottom up from `top`.
    fn stack_of(s: &Store, top: &Digest) -> Vec<(Digest, Option<Digest>)> {
        let mut out = Vec::new();
        let mut next = Some(top.clone());
        while let Some(c) = next {
            let m = s.snapshots.layer_meta(&c).unwrap();
            out.push((c, m.parent.clone()));
            next = m.parent;
        }
        out.reverse();
        out
    }

    #[test]
    fn layers_unpacked_as_they_stream_by_stack_as_the_manifest_says() {
        let layers: Vec<Vec<u8>> = (0..3)
            .map(|i| layer(&[(&format!("f{i}"), &format!("layer {i}"))]))
            .collect();
        let diffs: Vec<Digest> = layers.iter().map(|l| sha256(l)).collect();
        for driver in [Driver::Overlay, Driver::Copy] {
            let t = tempfile::tempdir().unwrap();
            let s = Store::open(t.path(), Some(driver)).unwrap();
            // The top layer streams by first, the base last.
            let names = s
                .load(&mut &archive(&layers, &[2, 0, 1], &[0, 1, 2], &diffs)[..])
                .unwrap();
            assert_eq!(names, ["docker.io/bt/pre:1"]);
            let img = s.image("bt/pre:1").unwrap();
            let chains = chain_ids(&diffs);
            let stack = stack_of(&s, img.top_chain().as_ref().unwrap());
            assert_eq!(
                stack,
                vec![
                    (chains[0].clone(), None),
                    (chains[1].clone(), Some(chains[0].clone())),
                    (chains[2].clone(), Some(chains[1].clone())),
                ],
                "{driver:?}"
            );
            for (i, c) in chains.iter().enumerate() {
                let dir = s.snapshots.layer_dir(c).unwrap();
                assert_eq!(
                    std::fs::read_to_string(dir.join(format!("f{i}"))).unwrap(),
                    format!("layer {i}")
                );
                assert_eq!(
                    s.snapshots.layer_meta(c).unwrap().size,
                    layers[i].len() as u64
                );
            }
            assert_eq!(s.snapshots.layers().unwrap().len(), 3, "{driver:?}");
            assert_eq!(tmp_entries(t.path()), 0, "{driver:?}: unpacks left over");
        }
    }

    #[test]
    fn a_layer_in_two_places_is_unpacked_for_each() {
        let layers = vec![layer(&[("a", "A")]), layer(&[("b", "B")])];
        let diffs: Vec<Digest> = [0, 1, 0].iter().map(|&i| sha256(&layers[i])).collect();
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path(), Some(Driver::Overlay)).unwrap();
        s.load(&mut &archive(&layers, &[0, 1], &[0, 1, 0], &diffs)[..])
            .unwrap();
        let chains = chain_ids(&diffs);
        let img = s.image("bt/pre:1").unwrap();
        assert_eq!(stack_of(&s, img.top_chain().as_ref().unwrap()).len(), 3);
        assert!(
            s.snapshots
                .layer_dir(&chains[2])
                .unwrap()
                .join("a")
                .is_file()
        );
        assert_eq!(tmp_entries(t.path()), 0);

        // Loaded again on top of what is there: the same layers.
        s.load(&mut &archive(&layers, &[1, 0], &[0, 1, 0], &diffs)[..])
            .unwrap();
        assert_eq!(s.snapshots.layers().unwrap().len(), 3);
        assert_eq!(tmp_entries(t.path()), 0);
    }

    #[test]
    fn a_failed_load_takes_back_the_layers_unpacked_on_the_way() {
        let layers = vec![layer(&[("a", "A")]), layer(&[("b", "B")])];
        let good: Vec<Digest> = layers.iter().map(|l| sha256(l)).collect();
        // A tar that looks like one but is cut short.
        let mut cut = layer(&[("c", &"C".repeat(5000))]);
        cut.truncate(1024);
        let broken = vec![layers[0].clone(), cut.clone()];
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "a layer that is not its diff id",
                archive(
                    &layers,
                    &[1, 0],
                    &[0, 1],
                    &[good[0].clone(), sha256(b"other")],
                ),
                "the config says",
            ),
            (
                "a truncated layer",
                archive(&broken, &[0, 1], &[0, 1], &[good[0].clone(), sha256(&cut)]),
                "layer",
            ),
        ];
        for (what, bytes, want) in cases {
            let t = tempfile::tempdir().unwrap();
            let s = Store::open(t.path(), Some(Driver::Overlay)).unwrap();
            let err = s.load(&mut &bytes[..]).expect_err(what).to_string();
            assert!(err.contains(want), "{what}: {err}");
            assert!(
                s.snapshots.layers().unwrap().is_empty(),
                "{what}: layers kept"
            );
            assert!(s.blobs.list().unwrap().is_empty(), "{what}: blobs kept");
            assert!(s.images().is_empty(), "{what}: names kept");
            assert_eq!(tmp_entries(t.path()), 0, "{what}: unpacks left over");
        }
    }
}
