//! Wire types of the image routes that change the store: delete, prune,
//! disk usage, and the JSON-lines messages of pull, push, load and import.

use serde::{Deserialize, Serialize};

use crate::ImageSummary;

/// One entry of `DELETE /images/{name}` (`ImageDeleteResponseItem`): an
/// untagged name or a deleted image or layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageDeleteResponseItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untagged: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
}

/// `POST /images/prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImagePruneResponse {
    /// `null` when nothing was deleted, as dockerd answers.
    pub images_deleted: Option<Vec<ImageDeleteResponseItem>>,
    pub space_reclaimed: u64,
}

/// `GET /system/df`. Containers, volumes and the build cache are empty
/// until those exist.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SystemDataUsageResponse {
    pub layers_size: i64,
    pub images: Vec<ImageSummary>,
    pub containers: Vec<serde_json::Value>,
    pub volumes: Vec<serde_json::Value>,
    pub build_cache: Vec<serde_json::Value>,
}

/// `progressDetail`: `{}` when there is nothing to measure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProgressDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// `errorDetail`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    pub message: String,
}

/// One line of a JSON-lines answer (`CreateImageInfo`, `PushImageInfo`,
/// the `stream` lines of load): what the docker CLI's `jsonmessage` reads.
/// A line with `error` ends the stream; the CLI prints it and exits 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JsonMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

impl JsonMessage {
    /// `{"status": ...}`.
    pub fn status(status: impl Into<String>) -> JsonMessage {
        JsonMessage {
            status: Some(status.into()),
            ..JsonMessage::default()
        }
    }

    /// `{"status": ..., "progressDetail": {}, "id": ...}`: a layer's step.
    pub fn layer(id: impl Into<String>, status: impl Into<String>) -> JsonMessage {
        JsonMessage {
            status: Some(status.into()),
            progress_detail: Some(ProgressDetail::default()),
            id: Some(id.into()),
            ..JsonMessage::default()
        }
    }

    /// `{"stream": ...}`.
    pub fn stream(text: impl Into<String>) -> JsonMessage {
        JsonMessage {
            stream: Some(text.into()),
            ..JsonMessage::default()
        }
    }

    /// `{"errorDetail": {"message": ...}, "error": ...}`.
    pub fn error(message: impl Into<String>) -> JsonMessage {
        let message = message.into();
        JsonMessage {
            error_detail: Some(ErrorDetail {
                code: None,
                message: message.clone(),
            }),
            error: Some(message),
            ..JsonMessage::default()
        }
    }

    /// The line as sent: JSON and a newline.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("a message serializes");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_look_like_dockerds() {
        assert_eq!(
            JsonMessage::layer("0123456789ab", "Pull complete").to_line(),
            "{\"status\":\"Pull complete\",\"progressDetail\":{},\"id\":\"0123456789ab\"}\n"
        );
        assert_eq!(
            JsonMessage::error("boom").to_line(),
            "{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\n"
        );
        let items = vec![
            ImageDeleteResponseItem {
                untagged: Some("busybox:latest".into()),
                deleted: None,
            },
            ImageDeleteResponseItem {
                untagged: None,
                deleted: Some("sha256:ab".into()),
            },
        ];
        assert_eq!(
            serde_json::to_string(&items).unwrap(),
            r#"[{"Untagged":"busybox:latest"},{"Deleted":"sha256:ab"}]"#
        );
        assert_eq!(
            serde_json::to_string(&ImagePruneResponse::default()).unwrap(),
            r#"{"ImagesDeleted":null,"SpaceReclaimed":0}"#
        );
    }
}
