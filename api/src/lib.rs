//! Docker Engine API wire types (API version 1.47), shared by berthd and
//! the berth CLI.
//!
//! Field names are Docker's (`PascalCase`, with its exceptions such as
//! `ID`, `NCPU`, `OSType`), as in `../shared/spec/docker-engine-api-v1.47.yaml`.
//! Every struct deserializes with missing fields defaulted, so a client
//! reads older or newer daemons' answers too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod containers;
pub mod images;
pub mod networks;
pub mod system;

pub use images::{
    ErrorDetail, ImageDeleteResponseItem, ImagePruneResponse, JsonMessage, ProgressDetail,
    SystemDataUsageResponse,
};
pub use system::{
    Commit, ComponentVersion, IndexInfo, Platform, PluginsInfo, RegistryServiceConfig, Runtime,
    SwarmInfo, SystemInfo, SystemVersion,
};

/// The API version this crate describes and berthd serves.
pub const API_VERSION: &str = "1.47";
/// The oldest API version berthd accepts, as dockerd.
pub const MIN_API_VERSION: &str = "1.24";

/// Every error body: `{"message": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub message: String,
}

/// One image of `GET /images/json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageSummary {
    pub id: String,
    pub parent_id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Seconds since the epoch.
    pub created: i64,
    pub size: i64,
    /// -1: not computed.
    pub shared_size: i64,
    pub labels: BTreeMap<String, String>,
    /// -1: not computed.
    pub containers: i64,
}

/// The container configuration an image carries (`ImageConfig` in the spec).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageConfig {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, EmptyObject>>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<containers::HealthConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    pub image: String,
    pub volumes: Option<BTreeMap<String, EmptyObject>>,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub on_build: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// `{}`: the value of a port or volume set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyObject {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DriverData {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_tag_time: Option<String>,
}

/// `GET /images/{name}/json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    /// RFC 3339, as the image config has it.
    pub created: Option<String>,
    pub docker_version: String,
    pub author: String,
    pub config: Option<ImageConfig>,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    pub size: i64,
    pub graph_driver: DriverData,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    pub metadata: ImageMetadata,
}

/// One entry of `GET /images/{name}/history`, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HistoryResponseItem {
    /// The image id for the top entry, `<missing>` for the layers below.
    pub id: String,
    /// Seconds since the epoch.
    pub created: i64,
    pub created_by: String,
    pub tags: Option<Vec<String>>,
    pub size: i64,
    pub comment: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_summary_uses_docker_field_names() {
        let v = serde_json::to_value(ImageSummary {
            id: "sha256:ab".into(),
            ..Default::default()
        })
        .unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        for k in [
            "Id",
            "ParentId",
            "RepoTags",
            "RepoDigests",
            "Created",
            "Size",
            "SharedSize",
            "Labels",
            "Containers",
        ] {
            assert!(keys.contains(&k), "missing {k} in {keys:?}");
        }
    }

    #[test]
    fn image_inspect_names_rootfs_and_type() {
        let v = serde_json::to_value(ImageInspect {
            root_fs: RootFs {
                kind: "layers".into(),
                layers: vec!["sha256:1".into()],
            },
            ..Default::default()
        })
        .unwrap();
        assert_eq!(v["RootFS"]["Type"], "layers");
        assert_eq!(v["RootFS"]["Layers"][0], "sha256:1");
        assert!(v.get("GraphDriver").is_some());
    }

    #[test]
    fn decodes_docker_answers_with_missing_fields() {
        let s: ImageSummary = serde_json::from_str(r#"{"Id":"sha256:x","Created":5}"#).unwrap();
        assert_eq!(s.created, 5);
        let h: HistoryResponseItem =
            serde_json::from_str(r#"{"Id":"<missing>","Tags":null,"Size":3}"#).unwrap();
        assert_eq!(h.tags, None);
    }
}
