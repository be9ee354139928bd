//! API versions and the `/vX.Y/` prefix.
//!
//! Every route exists unversioned and under `/vX.Y/`. The prefix is taken
//! off before routing (an outer middleware rewrites the URI), so the router
//! holds each route once; the version goes into the request's extensions.

use std::cmp::Ordering;
use std::fmt;
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, Uri, uri::PathAndQuery};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// A `major.minor` API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u32,
    pub minor: u32,
}

pub const CURRENT: ApiVersion = ApiVersion {
    major: 1,
    minor: 47,
};
pub const MINIMUM: ApiVersion = ApiVersion {
    major: 1,
    minor: 24,
};

impl ApiVersion {
    /// `1.47`, `1` (= `1.0`); anything else is `None`.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (major, minor) = match s.split_once('.') {
            Some((a, b)) => (a, b),
            None => (s, "0"),
        };
        let digits =
            |x: &str| !x.is_empty() && x.len() <= 9 && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !digits(minor) {
            return None;
        }
        Some(ApiVersion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }

    /// dockerd's answer to a version outside MINIMUM..=CURRENT.
    pub fn check(requested: &str) -> Result<ApiVersion, ApiError> {
        let Some(v) = ApiVersion::parse(requested) else {
            return Err(ApiError::InvalidParameter(format!(
                "invalid API version {requested:?}"
            )));
        };
        match (v.cmp(&MINIMUM), v.cmp(&CURRENT)) {
            (Ordering::Less, _) => Err(ApiError::InvalidParameter(format!(
                "client version {requested} is too old. Minimum supported API version is {MINIMUM}, please upgrade your client to a newer version"
            ))),
            (_, Ordering::Greater) => Err(ApiError::InvalidParameter(format!(
                "client version {requested} is too new. Maximum supported API version is {CURRENT}"
            ))),
            _ => Ok(v),
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Splits `/v1.47/images/json` into `("1.47", "/images/json")`. A path
/// without a version prefix gives `None`.
pub fn split_prefix(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let version = &rest[..end];
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let tail = &rest[end..];
    Some((version, if tail.is_empty() { "/" } else { tail }))
}

/// The outer middleware: strips and checks the version prefix, sets the
/// headers dockerd sets on every answer, logs one line per request.
pub async fn middleware(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let original = req.uri().path().to_string();
    let mut version = CURRENT;
    let mut rejected = None;
    if let Some((requested, tail)) = split_prefix(&original) {
        match ApiVersion::check(requested) {
            Ok(v) => {
                version = v;
                let pq = match req.uri().query() {
                    Some(q) => format!("{tail}?{q}"),
                    None => tail.to_string(),
                };
                let mut parts = req.uri().clone().into_parts();
                parts.path_and_query = PathAndQuery::try_from(pq).ok();
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
            Err(e) => rejected = Some(e),
        }
    }
    req.extensions_mut().insert(version);
    let mut resp = match rejected {
        Some(e) => e.into_response(),
        None => next.run(req).await,
    };
    let h = resp.headers_mut();
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    h.insert(
        "Api-Version",
        HeaderValue::from_static(berth_api::API_VERSION),
    );
    h.insert("Ostype", HeaderValue::from_static("linux"));
    tracing::debug!(
        "{method} {original} {} {}ms",
        resp.status().as_u16(),
        started.elapsed().as_millis()
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(ApiVersion::parse("1.47"), Some(CURRENT));
        assert_eq!(
            ApiVersion::parse("1"),
            Some(ApiVersion { major: 1, minor: 0 })
        );
        assert_eq!(ApiVersion::parse("1.4a"), None);
        assert_eq!(ApiVersion::parse("1..2"), None);
        assert_eq!(ApiVersion::parse(""), None);
        assert!(ApiVersion::parse("1.9").unwrap() < ApiVersion::parse("1.10").unwrap());
    }

    #[test]
    fn checks_the_range_with_dockers_words() {
        assert_eq!(ApiVersion::check("1.24").unwrap(), MINIMUM);
        assert_eq!(ApiVersion::check("1.47").unwrap(), CURRENT);
        assert_eq!(
            ApiVersion::check("1.12").unwrap_err().to_string(),
            "client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
        );
        assert_eq!(
            ApiVersion::check("1.48").unwrap_err().to_string(),
            "client version 1.48 is too new. Maximum supported API version is 1.47"
        );
        assert!(ApiVersion::check("2.0").is_err());
    }

    #[test]
    fn splits_prefixes() {
        assert_eq!(split_prefix("/v1.47/info"), Some(("1.47", "/info")));
        assert_eq!(
            split_prefix("/v1.47/images/a/b/json"),
            Some(("1.47", "/images/a/b/json"))
        );
        assert_eq!(split_prefix("/v1.47"), Some(("1.47", "/")));
        assert_eq!(split_prefix("/version"), None);
        assert_eq!(split_prefix("/volumes"), None);
        assert_eq!(split_prefix("/info"), None);
    }
}
