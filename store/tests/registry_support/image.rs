//! Test images: layers of random bytes (tar + gzip), a config with their
//! diff ids, an OCI or Docker schema 2 manifest, and indexes.

use std::io::Write;
use std::path::Path;

use berth_store::digest::{Digest, sha256};
use flate2::Compression;
use flate2::write::GzEncoder;

use super::MemStore;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Deterministic pseudo-random bytes (xorshift64*): incompressible.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

pub struct Layer {
    pub blob: Vec<u8>,
    pub digest: Digest,
    pub diff_id: Digest,
}

/// A gzipped tar holding one file of `size` random bytes.
pub fn make_layer(seed: u64, size: usize) -> Layer {
    let mut tar = tar::Builder::new(Vec::new());
    let data = random_bytes(seed, size);
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, format!("file-{seed}"), &data[..])
        .unwrap();
    let tar = tar.into_inner().unwrap();
    let diff_id = sha256(&tar);
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&tar).unwrap();
    let blob = gz.finish().unwrap();
    Layer {
        digest: sha256(&blob),
        blob,
        diff_id,
    }
}

#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: Digest,
    pub manifest_size: u64,
    pub config: Digest,
    pub layers: Vec<Digest>,
    pub arch: String,
}

/// An image of layers of `sizes` random bytes, stored in `store`.
pub fn make_image(store: &MemStore, seed: u64, sizes: &[usize], arch: &str, docker: bool) -> Image {
    let (mt_manifest, mt_config, mt_layer) = if docker {
        (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER)
    } else {
        (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
    };
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut digests = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let l = make_layer(seed * 1000 + i as u64, size);
        layer_descs.push(format!(
            r#"{{"mediaType":"{mt_layer}","digest":"{}","size":{}}}"#,
            l.digest,
            l.blob.len()
        ));
        diff_ids.push(format!("\"{}\"", l.diff_id));
        digests.push(l.digest.clone());
        store.put(l.blob);
    }
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Env":["SEED={seed}"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}},"history":[]}}"#,
        diff_ids.join(",")
    );
    let config_size = config.len();
    let config = store.put(config.into_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{mt_manifest}","config":{{"mediaType":"{mt_config}","digest":"{config}","size":{config_size}}},"layers":[{}]}}"#,
        layer_descs.join(",")
    );
    let manifest_size = manifest.len() as u64;
    let manifest = store.put(manifest.into_bytes());
    Image {
        manifest,
        manifest_size,
        config,
        layers: digests,
        arch: arch.into(),
    }
}

/// An OCI index of `images`, each with platform linux/<its arch>.
pub fn make_index(store: &MemStore, images: &[&Image]) -> Digest {
    let entries: Vec<String> = images
        .iter()
        .map(|i| {
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"{}","os":"linux"}}}}"#,
                i.manifest, i.manifest_size, i.arch
            )
        })
        .collect();
    store.put(
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            entries.join(",")
        )
        .into_bytes(),
    )
}

/// Write the image's blobs as an OCI image layout at `dir`, tagged `tag`.
pub fn write_oci_layout(store: &MemStore, img: &Image, dir: &Path, tag: &str) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for d in img.layers.iter().chain([&img.config, &img.manifest]) {
        std::fs::write(blobs.join(d.digest()), store.get(d)).unwrap();
    }
    std::fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{tag}"}}}}]}}"#,
            img.manifest, img.manifest_size
        ),
    )
    .unwrap();
}
