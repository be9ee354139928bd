//! Volumes of the `local` driver: a directory `<data-root>/volumes/<name>/_data`
//! per volume, its record in the state database, and the Engine API's
//! volume routes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_api::containers::{
    Volume, VolumeCreateOptions, VolumeListResponse, VolumePruneResponse, VolumeUsageData,
};
use serde::{Deserialize, Serialize};

use crate::db::{Db, DbError, Table};
use crate::error::{ApiError, Result};
use crate::filters::Filters;
use crate::images::blocking;
use crate::server::Daemon;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeRecord {
    pub name: String,
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// Made for a container (`-v /data`, an image VOLUME): `rm -v` and
    /// `run --rm` take it away with the container.
    pub anonymous: bool,
}

#[derive(Debug)]
pub struct Volumes {
    db: Arc<Db>,
    root: PathBuf,
    map: Mutex<BTreeMap<String, VolumeRecord>>,
}

fn db_err(e: DbError) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// Docker's rule for volume names.
fn valid_name(name: &str) -> bool {
    name.len() >= 2
        && name
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl Volumes {
    pub fn load(db: Arc<Db>, root: PathBuf) -> std::result::Result<Volumes, DbError> {
        let map = db
            .load_all::<VolumeRecord>(Table::Volumes)?
            .into_iter()
            .collect();
        Ok(Volumes {
            db,
            root,
            map: Mutex::new(map),
        })
    }

    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    /// Create `name` (a random one when None); an existing volume of that
    /// name is returned as it is, as Docker does.
    pub fn create(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<(VolumeRecord, bool)> {
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => crate::containers::names::new_id(),
        };
        if !valid_name(&name) {
            return Err(ApiError::InvalidParameter(format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, \
                 only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host \
                 directory, use absolute path"
            )));
        }
        if let Some(k) = options.keys().next() {
            return Err(ApiError::InvalidParameter(format!(
                "create {name}: invalid option key: {k:?} (the local driver takes no options yet)"
            )));
        }
        let mut map = self.map.lock().expect("volumes lock");
        if let Some(v) = map.get(&name) {
            return Ok((v.clone(), false));
        }
        let dir = self.data_dir(&name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| ApiError::Internal(format!("create {name}: {}: {e}", dir.display())))?;
        let rec = VolumeRecord {
            name: name.clone(),
            created_at: crate::containers::record::now_rfc3339(),
            labels,
            options,
            anonymous,
        };
        if let Err(e) = self.db.put(Table::Volumes, &name, &rec) {
            let _ = std::fs::remove_dir_all(self.root.join(&name));
            return Err(db_err(e));
        }
        map.insert(name, rec.clone());
        Ok((rec, true))
    }

    pub fn get(&self, name: &str) -> Result<VolumeRecord> {
        self.map
            .lock()
            .expect("volumes lock")
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("get {name}: no such volume")))
    }

    pub fn all(&self) -> Vec<VolumeRecord> {
        self.map
            .lock()
            .expect("volumes lock")
            .values()
            .cloned()
            .collect()
    }

    /// Remove a volume no container uses (`users` names those that do).
    pub fn remove(&self, name: &str, users: &[String]) -> Result<()> {
        if !users.is_empty() {
            return Err(ApiError::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        let mut map = self.map.lock().expect("volumes lock");
        if !map.contains_key(name) {
            return Err(ApiError::NotFound(format!("get {name}: no such volume")));
        }
        let dir = self.root.join(name);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(ApiError::Internal(format!(
                "remove {name}: {}: {e}",
                dir.display()
            )));
        }
        self.db.delete(Table::Volumes, name).map_err(db_err)?;
        map.remove(name);
        Ok(())
    }

    pub fn api(&self, v: &VolumeRecord, usage: Option<(u64, usize)>) -> Volume {
        Volume {
            name: v.name.clone(),
            driver: "local".into(),
            mountpoint: self.data_dir(&v.name).display().to_string(),
            created_at: v.created_at.clone(),
            status: None,
            labels: v.labels.clone(),
            scope: "local".into(),
            options: v.options.clone(),
            usage_data: usage.map(|(size, refs)| VolumeUsageData {
                size: size as i64,
                ref_count: refs as i64,
            }),
        }
    }
}

/// The containers (ids) that mount volume `name`.
pub fn users(d: &Daemon, name: &str) -> Vec<String> {
    d.containers
        .all()
        .into_iter()
        .filter(|e| {
            e.record()
                .mounts
                .iter()
                .any(|m| m.kind == "volume" && m.name == name)
        })
        .map(|e| e.id.clone())
        .collect()
}

pub async fn post_create(
    State(d): State<Arc<Daemon>>,
    body: axum::body::Bytes,
) -> Result<Response> {
    let opts: VolumeCreateOptions = if body.is_empty() {
        VolumeCreateOptions::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::InvalidParameter(format!("invalid JSON: {e}")))?
    };
    if !opts.driver.is_empty() && opts.driver != "local" {
        return Err(ApiError::NotFound(format!(
            "error looking up volume plugin {}: plugin \"{}\" not found",
            opts.driver, opts.driver
        )));
    }
    let (v, made) = d.volumes.create(
        Some(&opts.name)
            .filter(|n| !n.is_empty())
            .map(String::as_str),
        opts.labels,
        opts.driver_opts,
        false,
    )?;
    if made {
        d.events.volume(&v.name, "create", "local");
    }
    Ok((StatusCode::CREATED, Json(d.volumes.api(&v, None))).into_response())
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    filters: Option<String>,
}

fn filtered(d: &Daemon, filters: &Filters) -> Result<Vec<VolumeRecord>> {
    filters.allow(&["dangling", "driver", "label", "name", "all", "label!"])?;
    let dangling = filters.bool("dangling")?;
    Ok(d.volumes
        .all()
        .into_iter()
        .filter(|v| {
            let unused = users(d, &v.name).is_empty();
            dangling.is_none_or(|want| want == unused)
                && filters.labels_match(&v.labels)
                && (filters.get("name").is_empty()
                    || filters
                        .get("name")
                        .iter()
                        .any(|n| v.name.contains(n.as_str())))
                && (filters.get("driver").is_empty()
                    || filters.get("driver").iter().any(|n| n == "local"))
        })
        .collect())
}

pub async fn get_list(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<VolumeListResponse>> {
    let filters = Filters::parse(q.filters.as_deref())?;
    let vols = filtered(&d, &filters)?;
    Ok(Json(VolumeListResponse {
        volumes: vols.iter().map(|v| d.volumes.api(v, None)).collect(),
        warnings: Vec::new(),
    }))
}

pub async fn get_inspect(
    State(d): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> Result<Json<Volume>> {
    let v = d.volumes.get(&name)?;
    Ok(Json(d.volumes.api(&v, None)))
}

#[derive(Debug, Deserialize)]
pub struct DeleteQuery {
    force: Option<String>,
}

pub async fn delete(
    State(d): State<Arc<Daemon>>,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<Response> {
    let force = q.force.is_some_and(|f| f == "1" || f == "true");
    match d.volumes.get(&name) {
        Ok(_) => {}
        Err(_) if force => return Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => return Err(e),
    }
    let users = users(&d, &name);
    let d2 = d.clone();
    let n2 = name.clone();
    blocking(move || d2.volumes.remove(&n2, &users)).await?;
    d.events.volume(&name, "destroy", "local");
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn post_prune(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<VolumePruneResponse>> {
    let filters = Filters::parse(q.filters.as_deref())?;
    // Since API 1.42 prune takes anonymous volumes only, unless all=true.
    let all = filters.bool("all")?.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for v in filtered(&d, &filters)? {
        if (!all && !v.anonymous) || !users(&d, &v.name).is_empty() {
            continue;
        }
        let size = berth_store::snapshot::Snapshots::disk_usage(&d.volumes.data_dir(&v.name));
        let d2 = d.clone();
        let n2 = v.name.clone();
        blocking(move || d2.volumes.remove(&n2, &[])).await?;
        d.events.volume(&v.name, "destroy", "local");
        reclaimed += size;
        deleted.push(v.name);
    }
    d.events.publish("volume", "prune", "", Default::default());
    Ok(Json(VolumePruneResponse {
        volumes_deleted: Some(deleted),
        space_reclaimed: reclaimed as i64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_get_remove() {
        let d = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(&d.path().join("s.redb")).unwrap());
        let v = Volumes::load(db.clone(), d.path().join("volumes")).unwrap();
        let (rec, made) = v
            .create(Some("data"), Default::default(), Default::default(), false)
            .unwrap();
        assert!(made && v.data_dir("data").is_dir());
        let (_, made) = v
            .create(Some("data"), Default::default(), Default::default(), false)
            .unwrap();
        assert!(!made, "creating an existing volume returns it");
        assert_eq!(rec.name, "data");
        let e = v.remove("data", &["abc".into()]).unwrap_err().to_string();
        assert_eq!(e, "remove data: volume is in use - [abc]");
        let e = v
            .create(Some("a/b"), Default::default(), Default::default(), false)
            .unwrap_err();
        assert!(e.to_string().contains("invalid characters"), "{e}");
        drop(v);
        let v = Volumes::load(db, d.path().join("volumes")).unwrap();
        assert_eq!(v.get("data").unwrap().name, "data");
        v.remove("data", &[]).unwrap();
        assert!(!d.path().join("volumes/data").exists());
        assert_eq!(
            v.get("data").unwrap_err().to_string(),
            "get data: no such volume"
        );
    }
}
