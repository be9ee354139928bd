//! API errors: each kind maps to the HTTP status dockerd gives it, and the
//! body is always `{"message": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_api::ErrorResponse;
use berth_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: a missing object (`No such image: busybox:latest`).
    #[error("{0}")]
    NotFound(String),
    /// 400: a bad parameter, filter or API version.
    #[error("{0}")]
    InvalidParameter(String),
    /// 409: the request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 500: the store failed.
    #[error(transparent)]
    Store(StoreError),
    /// 500: anything else the daemon could not do.
    #[error("{0}")]
    Internal(String),
    /// A container that would not start: 400 when its command cannot be
    /// run (the CLI maps those to exit codes 126 and 127), 500 otherwise.
    #[error("{0}")]
    Start(String),
}

pub type Result<T> = std::result::Result<T, ApiError>;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::InvalidParameter(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Start(m) => {
                let m = m.to_ascii_lowercase();
                if [
                    "not found",
                    "no such file",
                    "permission denied",
                    "is a directory",
                ]
                .iter()
                .any(|k| m.contains(k))
                {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            }
        }
    }

    /// A store error about the image the client called `name`, worded as
    /// dockerd words it.
    pub fn from_image_lookup(name: &str, e: StoreError) -> ApiError {
        match e {
            StoreError::NoImage(_) => {
                ApiError::NotFound(format!("No such image: {}", familiar_or_id(name)))
            }
            StoreError::Ambiguous(_) => ApiError::InvalidParameter(format!(
                "image id prefix {name} matches more than one image"
            )),
            e => ApiError::Store(e),
        }
    }
}

/// `foo` → `foo:latest`, `docker.io/library/foo:1` → `foo:1`; an id
/// (hex) stays as it was given.
fn familiar_or_id(name: &str) -> String {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    if name.starts_with("sha256:")
        || (hex.len() >= 12 && hex.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return name.to_string();
    }
    match berth_store::refs::ImageName::parse(name) {
        Ok(n) => n.familiar(),
        Err(_) => name.to_string(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), "{self}");
        } else {
            tracing::debug!(status = status.as_u16(), "{self}");
        }
        (
            status,
            Json(ErrorResponse {
                message: self.to_string(),
            }),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_are_worded_like_docker() {
        assert_eq!(familiar_or_id("foo"), "foo:latest");
        assert_eq!(familiar_or_id("docker.io/library/foo:1"), "foo:1");
        assert_eq!(familiar_or_id("quay.io/a/b"), "quay.io/a/b:latest");
        assert_eq!(familiar_or_id("sha256:abcd"), "sha256:abcd");
        assert_eq!(familiar_or_id("0123456789abcdef"), "0123456789abcdef");
    }

    #[test]
    fn statuses() {
        assert_eq!(
            ApiError::NotFound("x".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ApiError::InvalidParameter("x".into()).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
