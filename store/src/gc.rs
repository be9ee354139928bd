//! What the store can let go of, and what it costs on disk.
//!
//! Nothing is counted ahead: a blob or layer is kept while a name reaches
//! it (name → index → manifest → config and layers, and the layer stack's
//! snapshots) or a container snapshot sits on it. Collection marks from
//! those roots and sweeps the rest, so a crash between untag and sweep
//! only delays the sweep.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::digest::{Digest, chain_ids};
use crate::snapshot::Snapshots;
use crate::store::{Result, Store};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs: Vec<Digest>,
    pub layers: Vec<Digest>,
    pub bytes: u64,
}

/// `docker system df`'s view of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUsage {
    pub id: Digest,
    pub names: Vec<String>,
    /// Unpacked layers on disk, shared ones included.
    pub size: u64,
    /// Of which layers another image uses too.
    pub shared: u64,
    /// Of which layers only this image uses.
    pub unique: u64,
    /// Compressed blobs (what a pull downloaded).
    pub blobs: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    pub images: Vec<ImageUsage>,
    /// Container snapshots: id → bytes in their writable layer.
    pub containers: BTreeMap<String, u64>,
    /// Every blob and every unpacked layer.
    pub blobs_total: u64,
    pub layers_total: u64,
}

struct Marks {
    blobs: HashSet<Digest>,
    layers: HashSet<Digest>,
}

impl Store {
    /// Everything reachable from a name, a pin or a container snapshot.
    fn mark(&self) -> Result<Marks> {
        let mut m = Marks {
            blobs: HashSet::new(),
            layers: HashSet::new(),
        };
        for info in self.images() {
            // The name's target (index or manifest) and, for an index, the
            // one platform manifest the store keeps.
            m.blobs.insert(info.target.clone());
            m.blobs.insert(info.manifest.clone());
            let img = self.image_by_manifest(&info.manifest)?;
            m.blobs.insert(img.id.clone());
            for l in img.manifest.layers() {
                m.blobs
                    .insert(l.digest().to_string().parse().expect("digest parses"));
            }
            m.layers.extend(chain_ids(&img.diff_ids));
        }
        // Pinned images (the build cache) are roots too; a pin whose
        // manifest is gone reaches nothing.
        for (manifest, _) in self.pins() {
            let Ok(img) = self.image_by_manifest(&manifest) else {
                continue;
            };
            m.blobs.insert(manifest);
            m.blobs.insert(img.id.clone());
            for l in img.manifest.layers() {
                m.blobs
                    .insert(l.digest().to_string().parse().expect("digest parses"));
            }
            m.layers.extend(chain_ids(&img.diff_ids));
        }
        for c in self.snapshots.containers()? {
            let mut next = c.parent.clone();
            while let Some(chain) = next {
                next = self
                    .snapshots
                    .layer_meta(&chain)
                    .ok()
                    .and_then(|meta| meta.parent);
                m.layers.insert(chain);
            }
        }
        Ok(m)
    }

    /// Remove every blob and unpacked layer nothing reaches.
    pub fn gc(&self) -> Result<GcReport> {
        let marks = self.mark()?;
        let mut report = GcReport::default();
        for (d, size) in self.blobs.list()? {
            if !marks.blobs.contains(&d) {
                self.blobs.remove(&d)?;
                report.bytes += size;
                report.blobs.push(d);
            }
        }
        for meta in self.snapshots.layers()? {
            if !marks.layers.contains(&meta.chain_id) {
                report.bytes += self.snapshots.layer_disk_usage(&meta.chain_id);
                self.snapshots.remove_layer(&meta.chain_id)?;
                report.layers.push(meta.chain_id);
            }
        }
        Ok(report)
    }

    /// Disk usage per image, shared and unique, and per container.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let mut du = DiskUsage::default();
        let mut layer_size: HashMap<Digest, u64> = HashMap::new();
        for meta in self.snapshots.layers()? {
            let s = self.snapshots.layer_disk_usage(&meta.chain_id);
            du.layers_total += s;
            layer_size.insert(meta.chain_id, s);
        }
        let blob_size: HashMap<Digest, u64> = self.blobs.list()?.into_iter().collect();
        du.blobs_total = blob_size.values().sum();
        let mut users: HashMap<Digest, usize> = HashMap::new();
        let mut per_image = Vec::new();
        for info in self.images() {
            let img = self.image_by_manifest(&info.manifest)?;
            let chains = chain_ids(&img.diff_ids);
            for c in &chains {
                *users.entry(c.clone()).or_default() += 1;
            }
            let blobs: u64 = img
                .manifest
                .layers()
                .iter()
                .filter_map(|l| {
                    blob_size.get(
                        &l.digest()
                            .to_string()
                            .parse::<Digest>()
                            .expect("digest parses"),
                    )
                })
                .sum();
            per_image.push((info, chains, blobs));
        }
        for (info, chains, blobs) in per_image {
            let mut u = ImageUsage {
                id: info.id,
                names: info.names,
                size: 0,
                shared: 0,
                unique: 0,
                blobs,
            };
            for c in &chains {
                let s = layer_size.get(c).copied().unwrap_or(0);
                u.size += s;
                if users.get(c).copied().unwrap_or(0) > 1 {
                    u.shared += s;
                } else {
                    u.unique += s;
                }
            }
            du.images.push(u);
        }
        for c in self.snapshots.containers()? {
            let dir = self.snapshots.container_changes_dir(&c.id)?;
            du.containers
                .insert(c.id.clone(), Snapshots::disk_usage(&dir));
        }
        Ok(du)
    }
}
