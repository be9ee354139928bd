//! `GET /images/json`, `GET /images/{name}/json`, `GET /images/{name}/history`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use berth_api::{
    DriverData, HistoryResponseItem, ImageConfig, ImageInspect, ImageMetadata, ImageSummary, RootFs,
};
use berth_store::digest::chain_ids;
use berth_store::refs::ImageName;
use berth_store::{Image, ImageInfo, Store};
use serde::Deserialize;

use crate::error::{ApiError, Result};
use crate::filters::{Filters, reference_matches};
use crate::host::parse_rfc3339;
use crate::server::Daemon;

/// An image's names as Docker shows them: tags and digests, familiar.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Names {
    pub tags: Vec<String>,
    pub digests: Vec<String>,
}

pub fn split_names(names: &[String]) -> Names {
    let mut out = Names::default();
    for n in names {
        let Ok(parsed) = ImageName::parse(n) else {
            continue;
        };
        match (&parsed.tag, &parsed.digest) {
            (Some(_), _) => out.tags.push(parsed.familiar()),
            (None, Some(d)) => {
                let repo = ImageName {
                    tag: Some("x".into()),
                    digest: None,
                    ..parsed.clone()
                }
                .familiar();
                let repo = repo.strip_suffix(":x").unwrap_or(&repo);
                out.digests.push(format!("{repo}@{d}"));
            }
            (None, None) => {}
        }
    }
    out.tags.sort();
    out.digests.sort();
    out
}

/// Bytes of each layer, uncompressed where it is unpacked (as Docker
/// counts), else as stored.
fn layer_sizes(store: &Store, image: &Image) -> Vec<i64> {
    let chains = chain_ids(&image.diff_ids);
    image
        .manifest
        .layers()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            chains
                .get(i)
                .and_then(|c| store.snapshots.layer_meta(c).ok())
                .map_or(l.size() as i64, |m| m.size as i64)
        })
        .collect()
}

fn created_secs(image: &Image, info_created: &str) -> i64 {
    image
        .config
        .created()
        .as_deref()
        .and_then(parse_rfc3339)
        .or_else(|| parse_rfc3339(info_created))
        .unwrap_or(0)
}

fn labels(image: &Image) -> BTreeMap<String, String> {
    image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .map(|l| l.into_iter().collect())
        .unwrap_or_default()
}

pub(crate) fn summary(store: &Store, info: &ImageInfo, image: &Image) -> ImageSummary {
    let names = split_names(&info.names);
    ImageSummary {
        id: image.id.to_string(),
        parent_id: String::new(),
        repo_tags: names.tags,
        repo_digests: names.digests,
        created: created_secs(image, &info.created),
        size: layer_sizes(store, image).iter().sum(),
        shared_size: -1,
        labels: labels(image),
        containers: -1,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub all: Option<String>,
    #[serde(default)]
    pub filters: Option<String>,
    /// Before API 1.41, a reference filter of its own.
    #[serde(default)]
    pub filter: Option<String>,
}

/// The images a filter set selects, newest first, tags narrowed to the
/// matching ones when a `reference` filter is given (as dockerd).
pub fn list(store: &Store, filters: &Filters) -> Result<Vec<ImageSummary>> {
    filters.allow(&["reference", "dangling", "label", "before", "since"])?;
    let dangling = filters.bool("dangling")?;
    let bound = |key: &str| -> Result<Option<i64>> {
        match filters.get(key).first() {
            None => Ok(None),
            Some(r) => {
                let info = store.images();
                let img = store
                    .image(r)
                    .map_err(|e| ApiError::from_image_lookup(r, e))?;
                let created = info
                    .iter()
                    .find(|i| i.id == img.id)
                    .map_or(String::new(), |i| i.created.clone());
                Ok(Some(created_secs(&img, &created)))
            }
        }
    };
    let (before, since) = (bound("before")?, bound("since")?);
    let mut out = Vec::new();
    for info in store.images() {
        let image = match store.image_by_manifest(&info.manifest) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!("image {}: {e}", info.id);
                continue;
            }
        };
        let mut s = summary(store, &info, &image);
        if let Some(d) = dangling
            && d != s.repo_tags.is_empty()
        {
            continue;
        }
        let refs = filters.get("reference");
        if !refs.is_empty() {
            s.repo_tags
                .retain(|t| refs.iter().any(|p| reference_matches(p, t)));
            s.repo_digests
                .retain(|t| refs.iter().any(|p| reference_matches(p, t)));
            if s.repo_tags.is_empty() && s.repo_digests.is_empty() {
                continue;
            }
        }
        if !filters.labels_match(&s.labels)
            || before.is_some_and(|b| s.created >= b)
            || since.is_some_and(|b| s.created <= b)
        {
            continue;
        }
        out.push(s);
    }
    out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// The image's `config` as Docker reports it, read from the raw config
/// so that Docker's extensions (Healthcheck, OnBuild, Shell) are there.
pub(crate) fn image_config(image: &Image) -> ImageConfig {
    image
        .raw_config
        .get("config")
        .filter(|c| c.is_object())
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default()
}

pub fn inspect(store: &Store, driver: &str, name: &str) -> Result<ImageInspect> {
    let image = store
        .image(name)
        .map_err(|e| ApiError::from_image_lookup(name, e))?;
    let info = store.images().into_iter().find(|i| i.id == image.id);
    let names = split_names(&store.names_of(&image.id));
    let cfg = &image.config;
    Ok(ImageInspect {
        id: image.id.to_string(),
        repo_tags: names.tags,
        repo_digests: names.digests,
        parent: String::new(),
        comment: cfg
            .history()
            .as_ref()
            .and_then(|h| h.last())
            .and_then(|h| h.comment().clone())
            .unwrap_or_default(),
        created: cfg
            .created()
            .clone()
            .or_else(|| info.as_ref().map(|i| i.created.clone())),
        docker_version: String::new(),
        author: cfg.author().clone().unwrap_or_default(),
        config: Some(image_config(&image)),
        architecture: cfg.architecture().to_string(),
        variant: cfg.variant().clone(),
        os: cfg.os().to_string(),
        os_version: cfg.os_version().clone(),
        size: layer_sizes(store, &image).iter().sum(),
        graph_driver: DriverData {
            name: driver.to_string(),
            data: BTreeMap::new(),
        },
        root_fs: RootFs {
            kind: "layers".into(),
            layers: image.diff_ids.iter().map(|d| d.to_string()).collect(),
        },
        metadata: ImageMetadata {
            last_tag_time: info.map(|i| i.created),
        },
    })
}

pub fn history(store: &Store, name: &str) -> Result<Vec<HistoryResponseItem>> {
    let image = store
        .image(name)
        .map_err(|e| ApiError::from_image_lookup(name, e))?;
    let sizes = layer_sizes(store, &image);
    let mut layers = sizes.iter();
    let mut out: Vec<HistoryResponseItem> = match image.config.history() {
        Some(h) if !h.is_empty() => h
            .iter()
            .map(|e| HistoryResponseItem {
                id: "<missing>".into(),
                created: e.created().as_deref().and_then(parse_rfc3339).unwrap_or(0),
                created_by: e.created_by().clone().unwrap_or_default(),
                tags: None,
                size: if e.empty_layer().unwrap_or(false) {
                    0
                } else {
                    layers.next().copied().unwrap_or(0)
                },
                comment: e.comment().clone().unwrap_or_default(),
            })
            .collect(),
        _ => sizes
            .iter()
            .map(|s| HistoryResponseItem {
                id: "<missing>".into(),
                size: *s,
                ..Default::default()
            })
            .collect(),
    };
    out.reverse();
    if let Some(top) = out.first_mut() {
        top.id = image.id.to_string();
        top.tags = Some(split_names(&store.names_of(&image.id)).tags);
    }
    Ok(out)
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("task failed: {e}")))?
}

pub async fn get_list(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<ImageSummary>>> {
    let mut filters = Filters::parse(q.filters.as_deref())?;
    if let Some(r) = q.filter.filter(|r| !r.is_empty()) {
        filters = Filters::parse(Some(&serde_json::json!({ "reference": [r] }).to_string()))?;
    }
    // `all` adds intermediate images of builds; the store keeps none.
    let _ = q.all;
    blocking(move || list(&d.store, &filters)).await.map(Json)
}

/// `/images/{name}/json` and `/images/{name}/history`: a name may hold
/// slashes (`quay.io/a/b:1`), so the suffix picks the handler.
pub async fn get_by_name(State(d): State<Arc<Daemon>>, Path(rest): Path<String>) -> Response {
    let result = if let Some(name) = rest.strip_suffix("/json") {
        let name = name.to_string();
        blocking(move || inspect(&d.store, &d.driver, &name))
            .await
            .map(|i| Json(i).into_response())
    } else if let Some(name) = rest.strip_suffix("/get") {
        return crate::archives::save(d, vec![name.to_string()])
            .await
            .into_response();
    } else if let Some(name) = rest.strip_suffix("/history") {
        let name = name.to_string();
        blocking(move || history(&d.store, &name))
            .await
            .map(|h| Json(h).into_response())
    } else {
        return crate::server::not_found().await.into_response();
    };
    result.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_familiar_tags_and_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let n = split_names(&[
            "docker.io/library/busybox:latest".into(),
            "quay.io/x/y:1".into(),
            format!("docker.io/library/busybox@{d}"),
        ]);
        assert_eq!(n.tags, ["busybox:latest", "quay.io/x/y:1"]);
        assert_eq!(n.digests, [format!("busybox@{d}")]);
    }
}
