//! `POST /images/{name}/tag`, `DELETE /images/{name}`, `POST /images/prune`,
//! `GET /system/df`.
//!
//! Deleting follows dockerd: a name is untagged; an id untags every name
//! (refused without `force` when they span repositories); once an image
//! has no name left its content is collected (`Store::gc`), and each
//! layer so removed is listed as `Deleted`.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use berth_api::{ImageDeleteResponseItem, ImagePruneResponse, SystemDataUsageResponse};
use berth_store::Store;
use berth_store::refs::ImageName;
use serde::Deserialize;

use crate::error::{ApiError, Result};
use crate::filters::Filters;
use crate::images::{blocking, split_names, summary};
use crate::server::Daemon;

/// A stored name as Docker shows it (`busybox:latest`, `bb@sha256:..`).
fn familiar(name: &str) -> String {
    let n = split_names(&[name.to_string()]);
    n.tags
        .into_iter()
        .chain(n.digests)
        .next()
        .unwrap_or_else(|| name.to_string())
}

fn short_id(id: &str) -> String {
    id.strip_prefix("sha256:")
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

fn untagged(name: &str) -> ImageDeleteResponseItem {
    ImageDeleteResponseItem {
        untagged: Some(familiar(name)),
        deleted: None,
    }
}

fn deleted(what: String) -> ImageDeleteResponseItem {
    ImageDeleteResponseItem {
        untagged: None,
        deleted: Some(what),
    }
}

fn parse_name(name: &str) -> Result<ImageName> {
    ImageName::parse(name).map_err(|e| ApiError::InvalidParameter(e.to_string()))
}

/// Name image `source` also `repo[:tag]`.
pub fn tag_image(store: &Store, source: &str, repo: &str, tag: &str) -> Result<()> {
    if repo.is_empty() {
        return Err(ApiError::InvalidParameter(
            "repository name must have at least one component".into(),
        ));
    }
    let target = if tag.is_empty() {
        repo.to_string()
    } else {
        format!("{repo}:{tag}")
    };
    let new = parse_name(&target)?;
    if new.digest.is_some() {
        return Err(ApiError::InvalidParameter(
            "refusing to create a tag with a digest reference".into(),
        ));
    }
    store
        .retag(source, &new)
        .map_err(|e| ApiError::from_image_lookup(source, e))
}

pub async fn tag(
    State(d): State<Arc<Daemon>>,
    source: String,
    repo: String,
    tag: String,
) -> Result<StatusCode> {
    let d2 = d.clone();
    let (src, r, t) = (source.clone(), repo.clone(), tag.clone());
    blocking(move || tag_image(&d2.store, &src, &r, &t)).await?;
    let id = d
        .store
        .image(&source)
        .map(|i| i.id.to_string())
        .unwrap_or_default();
    let full = if tag.is_empty() {
        repo
    } else {
        format!("{repo}:{tag}")
    };
    let name = berth_store::refs::ImageName::parse(&full).map_or(full, |n| n.familiar());
    d.events.image(&id, &name, "tag");
    Ok(StatusCode::CREATED)
}

/// Collect what no name reaches any more; `Deleted` items for the image
/// and its layers. A failed sweep is logged: the next one catches up.
fn collect(store: &Store, image_ids: &[String], out: &mut Vec<ImageDeleteResponseItem>) -> u64 {
    out.extend(image_ids.iter().cloned().map(deleted));
    match store.gc() {
        Ok(report) => {
            out.extend(report.layers.iter().map(|l| deleted(l.to_string())));
            report.bytes
        }
        Err(e) => {
            tracing::warn!("collecting unreferenced content: {e}");
            0
        }
    }
}

/// `docker rmi`.
pub fn delete(store: &Store, name: &str, force: bool) -> Result<Vec<ImageDeleteResponseItem>> {
    let image = store
        .image(name)
        .map_err(|e| ApiError::from_image_lookup(name, e))?;
    let id = image.id.to_string();
    let names = store.names_of(&image.id);
    let by_name = ImageName::parse(name)
        .ok()
        .map(|n| n.to_string())
        .filter(|n| names.contains(n));
    let untag: Vec<String> = match by_name {
        Some(n) => vec![n],
        None => {
            let repos: HashSet<String> = names
                .iter()
                .filter_map(|n| ImageName::parse(n).ok())
                .map(|n| n.repo())
                .collect();
            if repos.len() > 1 && !force {
                return Err(ApiError::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    short_id(&id)
                )));
            }
            names
        }
    };
    let mut out = Vec::new();
    for n in &untag {
        store
            .untag(&parse_name(n)?)
            .map_err(|e| ApiError::from_image_lookup(n, e))?;
        out.push(untagged(n));
    }
    if store.names_of(&image.id).is_empty() {
        collect(store, &[id], &mut out);
    }
    Ok(out)
}

#[derive(Debug, Default, Deserialize)]
pub struct DeleteQuery {
    #[serde(default)]
    pub force: Option<String>,
    /// Keep untagged parents: the store has no parent images, so there is
    /// nothing this changes.
    #[serde(default)]
    pub noprune: Option<String>,
}

fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "true" | "True" | "TRUE"))
}

pub async fn delete_image(
    State(d): State<Arc<Daemon>>,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<Vec<ImageDeleteResponseItem>>> {
    let force = truthy(&q.force);
    let _ = q.noprune;
    let _guard = d.content.clone().write_owned().await;
    let d2 = d.clone();
    let n2 = name.clone();
    let items = blocking(move || delete(&d2.store, &n2, force)).await?;
    for item in &items {
        if let Some(u) = &item.untagged {
            d.events.image(u, u, "untag");
        }
        if let Some(id) = &item.deleted {
            d.events.image(id, &name, "delete");
        }
    }
    Ok(Json(items))
}

/// `docker image prune`: images without a tag (`dangling=true`, the
/// default), or every image no container uses (`dangling=false`).
pub fn prune(store: &Store, filters: &Filters) -> Result<ImagePruneResponse> {
    filters.allow(&["dangling", "label"])?;
    let dangling = filters.bool("dangling")?.unwrap_or(true);
    let mut used = HashSet::new();
    for c in store
        .snapshots
        .containers()
        .map_err(|e| ApiError::Store(e.into()))?
    {
        if let Some(p) = c.parent {
            used.insert(p);
        }
    }
    let mut out = Vec::new();
    let mut ids = Vec::new();
    for info in store.images() {
        let image = match store.image_by_manifest(&info.manifest) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!("image {}: {e}", info.id);
                continue;
            }
        };
        let s = summary(store, &info, &image);
        if (dangling && !s.repo_tags.is_empty())
            || !filters.labels_match(&s.labels)
            || image.top_chain().is_some_and(|t| used.contains(&t))
        {
            continue;
        }
        for n in &info.names {
            store
                .untag(&parse_name(n)?)
                .map_err(|e| ApiError::from_image_lookup(n, e))?;
            out.push(untagged(n));
        }
        ids.push(info.id.to_string());
    }
    if ids.is_empty() {
        return Ok(ImagePruneResponse::default());
    }
    let bytes = collect(store, &ids, &mut out);
    Ok(ImagePruneResponse {
        images_deleted: Some(out),
        space_reclaimed: bytes,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct PruneQuery {
    #[serde(default)]
    pub filters: Option<String>,
}

pub async fn post_prune(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<PruneQuery>,
) -> Result<Json<ImagePruneResponse>> {
    let filters = Filters::parse(q.filters.as_deref())?;
    let _guard = d.content.clone().write_owned().await;
    blocking(move || prune(&d.store, &filters)).await.map(Json)
}

/// `docker system df`: each image's unpacked size and the part of it
/// other images share; `LayersSize` is all the store keeps on disk
/// (unpacked layers and compressed blobs).
pub fn disk_usage(store: &Store) -> Result<SystemDataUsageResponse> {
    let du = store.disk_usage().map_err(ApiError::Store)?;
    let infos = store.images();
    let mut images = Vec::new();
    for u in &du.images {
        let Some(info) = infos.iter().find(|i| i.id == u.id) else {
            continue;
        };
        let Ok(image) = store.image_by_manifest(&info.manifest) else {
            continue;
        };
        let mut s = summary(store, info, &image);
        s.size = u.size as i64;
        s.shared_size = u.shared as i64;
        s.containers = 0;
        images.push(s);
    }
    images.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
    Ok(SystemDataUsageResponse {
        layers_size: (du.layers_total + du.blobs_total) as i64,
        images,
        ..SystemDataUsageResponse::default()
    })
}

pub async fn get_disk_usage(State(d): State<Arc<Daemon>>) -> Result<Json<SystemDataUsageResponse>> {
    blocking(move || disk_usage(&d.store)).await.map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_names_and_short_ids() {
        assert_eq!(
            familiar("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(familiar("127.0.0.1:5000/bt/x:1"), "127.0.0.1:5000/bt/x:1");
        assert_eq!(
            short_id(&format!("sha256:{}", "c".repeat(64))),
            "c".repeat(12)
        );
    }
}
