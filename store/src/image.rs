//! Manifests, indexes and configs, in their OCI and Docker schema 2
//! spellings, and picking a platform's manifest out of an index.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use crate::digest::Digest;
use crate::registry::Platform;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{what} {digest}: {reason}")]
    Invalid {
        what: &'static str,
        digest: String,
        reason: String,
    },
    #[error("{digest}: no manifest for {platform} in the index")]
    NoPlatform { digest: String, platform: String },
}

pub type Result<T> = std::result::Result<T, ImageError>;

/// What a manifest-ish blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Manifest,
    Index,
}

/// Tell a manifest from an index: by media type, else by shape (the
/// mediaType field is optional in OCI).
pub fn kind_of(media_type: Option<&str>, raw: &[u8]) -> Kind {
    match media_type {
        Some(OCI_INDEX | DOCKER_LIST) => Kind::Index,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => Kind::Manifest,
        _ => {
            let v: serde_json::Value = serde_json::from_slice(raw).unwrap_or_default();
            match v.get("mediaType").and_then(|m| m.as_str()) {
                Some(OCI_INDEX | DOCKER_LIST) => Kind::Index,
                Some(OCI_MANIFEST | DOCKER_MANIFEST) => Kind::Manifest,
                _ if v.get("manifests").is_some() => Kind::Index,
                _ => Kind::Manifest,
            }
        }
    }
}

fn invalid(what: &'static str, digest: &Digest, e: impl std::fmt::Display) -> ImageError {
    ImageError::Invalid {
        what,
        digest: digest.to_string(),
        reason: e.to_string(),
    }
}

pub fn parse_manifest(digest: &Digest, raw: &[u8]) -> Result<ImageManifest> {
    serde_json::from_slice(raw).map_err(|e| invalid("manifest", digest, e))
}

pub fn parse_index(digest: &Digest, raw: &[u8]) -> Result<ImageIndex> {
    serde_json::from_slice(raw).map_err(|e| invalid("index", digest, e))
}

pub fn parse_config(digest: &Digest, raw: &[u8]) -> Result<ImageConfiguration> {
    serde_json::from_slice(raw).map_err(|e| invalid("config", digest, e))
}

/// The diff ids a config lists, checked against the manifest's layers.
pub fn diff_ids(
    config_digest: &Digest,
    config: &ImageConfiguration,
    layers: usize,
) -> Result<Vec<Digest>> {
    let ids: Vec<Digest> = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| {
            d.parse::<Digest>()
                .map_err(|e| invalid("config", config_digest, format!("rootfs.diff_ids: {e}")))
        })
        .collect::<Result<_>>()?;
    if ids.len() != layers {
        return Err(invalid(
            "config",
            config_digest,
            format!(
                "rootfs.diff_ids lists {} layers, the manifest {layers}",
                ids.len()
            ),
        ));
    }
    Ok(ids)
}

/// The platform string users see: linux/amd64, linux/arm/v7.
pub fn platform_string(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// The index entry for `want`. A variant only matters when both sides
/// name one (arm64's v8 is the default one).
pub fn select_platform<'a>(index: &'a ImageIndex, want: &Platform) -> Option<&'a Descriptor> {
    index.manifests().iter().find(|d| {
        let Some(p) = d.platform() else { return false };
        let variant_ok = match (p.variant().as_deref(), want.variant.as_deref()) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        p.os().to_string() == want.os
            && p.architecture().to_string() == want.architecture
            && variant_ok
    })
}

/// Is this a layer media type the store can unpack?
pub fn is_layer(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_LAYER | OCI_LAYER_GZIP | OCI_LAYER_ZSTD | DOCKER_LAYER | DOCKER_LAYER_GZIP
    ) || media_type.starts_with("application/vnd.oci.image.layer.nondistributable.v1.tar")
        || media_type == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind_of(Some(DOCKER_LIST), b"{}"), Kind::Index);
        assert_eq!(
            kind_of(None, br#"{"schemaVersion":2,"manifests":[]}"#),
            Kind::Index
        );
        assert_eq!(
            kind_of(None, br#"{"schemaVersion":2,"config":{},"layers":[]}"#),
            Kind::Manifest
        );
    }

    #[test]
    fn selects_platform() {
        let d = crate::digest::sha256(b"x");
        let raw = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": 1,
                 "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
                {"mediaType": OCI_MANIFEST, "digest": crate::digest::sha256(b"y").to_string(), "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}}
            ]
        });
        let index = parse_index(&d, raw.to_string().as_bytes()).unwrap();
        let amd = Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        };
        assert_eq!(
            select_platform(&index, &amd).unwrap().digest().to_string(),
            crate::digest::sha256(b"y").to_string()
        );
        let v6 = Platform {
            os: "linux".into(),
            architecture: "arm".into(),
            variant: Some("v6".into()),
        };
        assert!(select_platform(&index, &v6).is_none());
    }
}
