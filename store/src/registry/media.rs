//! Media types (OCI and Docker schema 2), telling manifests from indexes,
//! reading a config's diff ids, and picking a platform out of an index.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Deserialize;

use super::Platform;
use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// What a registry is asked for when resolving a reference.
pub const MANIFEST_ACCEPT: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

const CONFIGS: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

const LAYERS: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Manifest,
    Index,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    schema_version: Option<i64>,
    media_type: Option<String>,
    manifests: Option<serde::de::IgnoredAny>,
    config: Option<serde::de::IgnoredAny>,
}

/// Whether `bytes` is an image manifest or an index, and its media type.
pub fn classify(bytes: &[u8]) -> Result<(Kind, String), String> {
    let head: Head =
        serde_json::from_slice(bytes).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
    match head.schema_version {
        Some(2) => {}
        Some(1) => return Err("Docker schema 1 manifests are not supported".into()),
        Some(v) => return Err(format!("manifest schema version {v} is not supported")),
        None => return Err("manifest has no schemaVersion".into()),
    }
    match head.media_type.as_deref() {
        Some(OCI_MANIFEST) => Ok((Kind::Manifest, OCI_MANIFEST.into())),
        Some(DOCKER_MANIFEST) => Ok((Kind::Manifest, DOCKER_MANIFEST.into())),
        Some(OCI_INDEX) => Ok((Kind::Index, OCI_INDEX.into())),
        Some(DOCKER_LIST) => Ok((Kind::Index, DOCKER_LIST.into())),
        Some(other) => Err(format!("unsupported manifest media type {other}")),
        // OCI allows leaving mediaType out.
        None if head.manifests.is_some() => Ok((Kind::Index, OCI_INDEX.into())),
        None if head.config.is_some() => Ok((Kind::Manifest, OCI_MANIFEST.into())),
        None => Err("neither an image manifest nor an index".into()),
    }
}

pub fn parse_manifest(bytes: &[u8]) -> Result<ImageManifest, String> {
    let m: ImageManifest =
        serde_json::from_slice(bytes).map_err(|e| format!("invalid image manifest: {e}"))?;
    let cfg = m.config().media_type().as_ref();
    if !CONFIGS.contains(&cfg) {
        return Err(format!(
            "config media type {cfg} is not a container image's (an OCI artifact?)"
        ));
    }
    for l in m.layers() {
        let mt = l.media_type().as_ref();
        if !LAYERS.contains(&mt) {
            return Err(format!(
                "layer {} has unsupported media type {mt}",
                l.digest()
            ));
        }
    }
    Ok(m)
}

pub fn parse_index(bytes: &[u8]) -> Result<ImageIndex, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("invalid image index: {e}"))
}

#[derive(Deserialize)]
struct Config {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// The config's `rootfs.diff_ids`.
pub fn diff_ids(config: &[u8]) -> Result<Vec<Digest>, String> {
    let c: Config =
        serde_json::from_slice(config).map_err(|e| format!("invalid image config: {e}"))?;
    c.rootfs
        .diff_ids
        .iter()
        .map(|d| {
            d.parse::<Digest>()
                .map_err(|e| format!("invalid diff id {d:?} in image config: {e}"))
        })
        .collect()
}

/// `os/arch[/variant]`.
pub fn platform_name(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// The variant an architecture has when an index leaves it out.
fn default_variant(arch: &str) -> Option<&'static str> {
    match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    }
}

/// The index entry for `want`: same os and architecture; same variant if
/// one is asked for (an absent variant is the architecture's default: v8
/// for arm64, v7 for arm); with none asked for, the default variant is
/// preferred, then the first entry.
pub fn pick_platform<'a>(index: &'a ImageIndex, want: &Platform) -> Option<&'a Descriptor> {
    let candidates = index.manifests().iter().filter(|d| {
        d.platform().as_ref().is_some_and(|p| {
            p.os().to_string() == want.os && p.architecture().to_string() == want.architecture
        })
    });
    let variant_of = |d: &Descriptor| -> Option<String> {
        let p = d.platform().as_ref()?;
        p.variant()
            .clone()
            .or_else(|| default_variant(&want.architecture).map(str::to_string))
    };
    match &want.variant {
        Some(v) => candidates
            .into_iter()
            .find(|d| variant_of(d).as_deref() == Some(v.as_str())),
        None => {
            let all: Vec<&Descriptor> = candidates.collect();
            let default = default_variant(&want.architecture);
            all.iter()
                .find(|d| default.is_some() && variant_of(d).as_deref() == default)
                .or(all.first())
                .copied()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> ImageIndex {
        let d = |arch: &str, variant: Option<&str>, n: u8| {
            let v = variant
                .map(|v| format!(r#","variant":"{v}""#))
                .unwrap_or_default();
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","size":1,"digest":"sha256:{}","platform":{{"os":"linux","architecture":"{arch}"{v}}}}}"#,
                format!("{n:02x}").repeat(32)
            )
        };
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{},{},{}]}}"#,
            d("amd64", None, 1),
            d("arm", Some("v6"), 2),
            d("arm", Some("v7"), 3),
            d("arm64", None, 4),
        );
        parse_index(json.as_bytes()).unwrap()
    }

    fn p(arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
        }
    }

    #[test]
    fn platforms() {
        let i = index();
        let pick = |arch, v| {
            pick_platform(&i, &p(arch, v)).map(|d| d.digest().to_string()[7..9].to_string())
        };
        assert_eq!(pick("amd64", None).as_deref(), Some("01"));
        assert_eq!(pick("arm", None).as_deref(), Some("03"));
        assert_eq!(pick("arm", Some("v6")).as_deref(), Some("02"));
        assert_eq!(pick("arm64", Some("v8")).as_deref(), Some("04"));
        assert_eq!(pick("arm64", None).as_deref(), Some("04"));
        assert_eq!(pick("s390x", None), None);
        assert_eq!(pick("amd64", Some("v3")), None);
    }

    #[test]
    fn kinds() {
        assert_eq!(
            classify(br#"{"schemaVersion":2,"manifests":[]}"#)
                .unwrap()
                .0,
            Kind::Index
        );
        assert_eq!(
            classify(
                format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}"}}"#).as_bytes()
            )
            .unwrap()
            .0,
            Kind::Manifest
        );
        assert!(classify(br#"{"schemaVersion":1}"#).is_err());
    }
}
