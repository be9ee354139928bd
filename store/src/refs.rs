//! Image names and the index that maps them to content.
//!
//! Names are normalized as Docker does (`busybox` is
//! `docker.io/library/busybox:latest`). The index is the OCI layout's own
//! `index.json`, one descriptor per name with the name in the
//! `org.opencontainers.image.ref.name` annotation, so the store directory
//! is an image layout other tools (skopeo, umoci) can read. It is replaced
//! atomically on every change.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, MediaType};
use serde::{Deserialize, Serialize};

use crate::blobs::write_atomic;
use crate::digest::Digest;

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Where the index also remembers the platform manifest and config of a
/// name that points at an index, so listing images reads no blobs.
pub const BERTH_MANIFEST: &str = "io.github.berth.manifest";
pub const BERTH_CONFIG: &str = "io.github.berth.config";
pub const BERTH_CREATED: &str = "io.github.berth.created";

#[derive(Debug, thiserror::Error)]
pub enum RefError {
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    Blob(#[from] crate::blobs::BlobError),
}

pub type Result<T> = std::result::Result<T, RefError>;

/// A normalized image name: registry/repository:tag (or @digest).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ImageName {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

pub const DEFAULT_REGISTRY: &str = "docker.io";

impl ImageName {
    /// Parse as `docker pull` does: default registry docker.io, default
    /// namespace library/ there, default tag latest.
    pub fn parse(input: &str) -> Result<ImageName> {
        let bad = |reason: &str| RefError::InvalidName {
            name: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("empty"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                d.parse::<Digest>()
                    .map_err(|_| bad("the part after @ is not a digest"))?;
                (r, Some(d.to_string()))
            }
            None => (input, None),
        };
        // A tag follows the last ':' after the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        let (registry, mut repository) = match path.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), path.to_string()),
        };
        if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && !c.starts_with(['.', '_', '-'])
                && !c.ends_with(['.', '_', '-'])
        };
        if !repository.split('/').all(component_ok) {
            return Err(bad(
                "repository names are lowercase letters, digits and . _ - separated by /",
            ));
        }
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(bad("tags are up to 128 letters, digits, . _ -"));
            }
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(ImageName {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// registry/repository
    pub fn repo(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form Docker shows: `busybox:latest`, `quay.io/x/y:1`.
    pub fn familiar(&self) -> String {
        let repo = if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.repo()
        };
        match (&self.tag, &self.digest) {
            (Some(t), _) => format!("{repo}:{t}"),
            (None, Some(d)) => format!("{repo}@{d}"),
            (None, None) => repo,
        }
    }
}

impl std::fmt::Display for ImageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.repo())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// What a name points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefEntry {
    pub name: String,
    /// The manifest or index the name was given.
    pub target: Descriptor,
    /// The platform manifest and its config.
    pub manifest: Digest,
    pub config: Digest,
    /// RFC 3339; when the name was last set.
    pub created: String,
}

/// The names in a store, backed by `index.json`.
#[derive(Debug)]
pub struct RefIndex {
    path: PathBuf,
    entries: BTreeMap<String, RefEntry>,
}

impl RefIndex {
    pub fn load(root: &Path) -> Result<RefIndex> {
        let path = root.join("index.json");
        let mut entries = BTreeMap::new();
        match std::fs::read(&path) {
            Ok(raw) => {
                let index: ImageIndex =
                    serde_json::from_slice(&raw).map_err(|e| RefError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                for d in index.manifests() {
                    let ann = d.annotations().clone().unwrap_or_default();
                    let (Some(name), Some(manifest), Some(config)) = (
                        ann.get(REF_NAME),
                        ann.get(BERTH_MANIFEST),
                        ann.get(BERTH_CONFIG),
                    ) else {
                        // Entries without a name (another tool's) are kept out
                        // of the name map but not lost on rewrite? They are
                        // dropped: berth owns this layout.
                        continue;
                    };
                    let parse = |s: &str| {
                        s.parse::<Digest>().map_err(|e| RefError::Corrupt {
                            path: path.clone(),
                            reason: e.to_string(),
                        })
                    };
                    entries.insert(
                        name.clone(),
                        RefEntry {
                            name: name.clone(),
                            target: d.clone(),
                            manifest: parse(manifest)?,
                            config: parse(config)?,
                            created: ann.get(BERTH_CREATED).cloned().unwrap_or_default(),
                        },
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(RefError::Corrupt {
                    path,
                    reason: e.to_string(),
                });
            }
        }
        Ok(RefIndex { path, entries })
    }

    fn save(&self) -> Result<()> {
        let manifests: Vec<Descriptor> = self
            .entries
            .values()
            .map(|e| {
                let mut d = e.target.clone();
                let mut ann: HashMap<String, String> = d.annotations().clone().unwrap_or_default();
                ann.insert(REF_NAME.into(), e.name.clone());
                ann.insert(BERTH_MANIFEST.into(), e.manifest.to_string());
                ann.insert(BERTH_CONFIG.into(), e.config.to_string());
                ann.insert(BERTH_CREATED.into(), e.created.clone());
                d.set_annotations(Some(ann));
                d
            })
            .collect();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MediaType::ImageIndex.to_string(),
            "manifests": manifests,
        });
        write_atomic(
            &self.path,
            &serde_json::to_vec_pretty(&index).expect("index serializes"),
        )?;
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&RefEntry> {
        self.entries.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &RefEntry> {
        self.entries.values()
    }

    /// Set (or move) a name.
    pub fn set(&mut self, entry: RefEntry) -> Result<()> {
        let old = self.entries.insert(entry.name.clone(), entry.clone());
        if let Err(e) = self.save() {
            match old {
                Some(o) => self.entries.insert(o.name.clone(), o),
                None => self.entries.remove(&entry.name),
            };
            return Err(e);
        }
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> Result<RefEntry> {
        let old = self
            .entries
            .remove(name)
            .ok_or_else(|| RefError::NotFound(name.to_string()))?;
        if let Err(e) = self.save() {
            self.entries.insert(old.name.clone(), old);
            return Err(e);
        }
        Ok(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        ImageName::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(n("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(n("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(n("user/app"), "docker.io/user/app:latest");
        assert_eq!(n("localhost:5000/app:v1"), "localhost:5000/app:v1");
        assert_eq!(n("127.0.0.1:5000/a/b"), "127.0.0.1:5000/a/b:latest");
        assert_eq!(n("quay.io/x/y"), "quay.io/x/y:latest");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            n(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            ImageName::parse("busybox").unwrap().familiar(),
            "busybox:latest"
        );
        assert_eq!(
            ImageName::parse("quay.io/x/y:2").unwrap().familiar(),
            "quay.io/x/y:2"
        );
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "UPPER", "a//b", "a:", "x@sha256:nothex", "-lead"] {
            assert!(ImageName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
