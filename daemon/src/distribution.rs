//! `POST /images/create?fromImage=` (pull) and `POST /images/{name}/push`.
//!
//! The answer is 200 at once and streams JSON lines: the pull or push
//! runs as a task sending [`JsonMessage`]s through a channel to the body
//! (see `progress`). An error after that point is the last line,
//! `{"errorDetail":{"message":..},"error":..}`, as dockerd sends it.
//! Errors found before (a bad name, bad credentials header, an image not
//! here to push) are plain HTTP errors.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine;
use berth_api::JsonMessage;
use berth_store::refs::ImageName;
use berth_store::registry::{Auth, Options, Platform, Progress};
use serde::Deserialize;

use crate::error::{ApiError, Result};
use crate::progress::{self, Direction, LayerProgress, short};
use crate::server::Daemon;

#[derive(Debug, Default, Deserialize)]
pub struct CreateQuery {
    #[serde(default, rename = "fromImage")]
    pub from_image: Option<String>,
    #[serde(default, rename = "fromSrc")]
    pub from_src: Option<String>,
    #[serde(default)]
    pub repo: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
    /// `import --change`: one Dockerfile instruction each.
    #[serde(default)]
    pub changes: Vec<String>,
}

impl CreateQuery {
    /// From the query's pairs: `changes` may come several times, the
    /// rest once (the last one wins).
    pub fn from_pairs(pairs: &[(String, String)]) -> CreateQuery {
        let get = |k: &str| {
            pairs
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        CreateQuery {
            from_image: get("fromImage"),
            from_src: get("fromSrc"),
            repo: get("repo"),
            tag: get("tag"),
            message: get("message"),
            platform: get("platform"),
            changes: pairs
                .iter()
                .filter(|(k, _)| k == "changes")
                .map(|(_, v)| v.clone())
                .collect(),
        }
    }
}

/// The `X-Registry-Auth` header: base64url of `{username, password,
/// serveraddress}` (or `auth`, base64 of `user:pass`). Missing or empty:
/// anonymous.
pub fn registry_auth(headers: &HeaderMap) -> Result<Auth> {
    let bad =
        |why: &str| ApiError::InvalidParameter(format!("invalid X-Registry-Auth header: {why}"));
    let Some(v) = headers.get("X-Registry-Auth") else {
        return Ok(Auth::Anonymous);
    };
    let raw = v.to_str().map_err(|_| bad("not ASCII"))?.trim();
    if raw.is_empty() {
        return Ok(Auth::Anonymous);
    }
    let b64 = |s: &str| {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        [URL_SAFE, URL_SAFE_NO_PAD, STANDARD, STANDARD_NO_PAD]
            .iter()
            .find_map(|e| e.decode(s).ok())
    };
    let json = b64(raw).ok_or_else(|| bad("not base64"))?;
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct AuthConfig {
        username: String,
        password: String,
        auth: String,
        identitytoken: String,
        registrytoken: String,
    }
    let c: AuthConfig = serde_json::from_slice(&json).map_err(|e| bad(&e.to_string()))?;
    if !c.username.is_empty() {
        return Ok(Auth::Basic {
            username: c.username,
            password: c.password,
        });
    }
    if !c.auth.is_empty() {
        let pair = b64(&c.auth)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad("auth is not base64 of user:password"))?;
        let (u, p) = pair
            .split_once(':')
            .ok_or_else(|| bad("auth is not base64 of user:password"))?;
        return Ok(Auth::Basic {
            username: u.into(),
            password: p.into(),
        });
    }
    if !c.identitytoken.is_empty() || !c.registrytoken.is_empty() {
        return Err(ApiError::InvalidParameter(
            "identity and registry tokens are not supported yet: log in with a username and password".into(),
        ));
    }
    Ok(Auth::Anonymous)
}

/// `os/arch[/variant]`; empty: the host's.
fn platform(p: Option<&str>) -> Result<Platform> {
    let Some(p) = p.filter(|p| !p.is_empty()) else {
        return Ok(Platform::host());
    };
    let mut parts = p.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(os), Some(arch), variant, None) if !os.is_empty() && !arch.is_empty() => {
            Ok(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(str::to_string),
            })
        }
        _ => Err(ApiError::InvalidParameter(format!(
            "invalid platform {p:?}: expected os/arch[/variant]"
        ))),
    }
}

/// The reference a pull names: `fromImage` with `tag` (a tag or a
/// digest) applied.
pub fn pull_reference(from_image: &str, tag: &str) -> Result<ImageName> {
    let full = if tag.is_empty() {
        from_image.to_string()
    } else if tag.starts_with("sha256:") {
        format!("{from_image}@{tag}")
    } else {
        format!("{from_image}:{tag}")
    };
    ImageName::parse(&full).map_err(|e| ApiError::InvalidParameter(e.to_string()))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub async fn pull(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<CreateQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let Some(from) = q.from_image.as_deref().filter(|f| !f.is_empty()) else {
        return Err(ApiError::InvalidParameter(
            "fromImage or fromSrc is required".into(),
        ));
    };
    let name = pull_reference(from, q.tag.as_deref().unwrap_or(""))?;
    let auth = registry_auth(&headers)?;
    let platform = platform(q.platform.as_deref())?;
    let (lines, response) = progress::channel();
    tokio::spawn(async move {
        let _guard = d.content.clone().write_owned().await;
        let before = d
            .store
            .images()
            .into_iter()
            .find(|i| i.names.contains(&name.to_string()))
            .map(|i| i.target);
        lines.send(JsonMessage {
            status: Some(format!("Pulling from {}", name.repository)),
            id: name.tag.clone().or_else(|| name.digest.clone()),
            ..JsonMessage::default()
        });
        let layers = LayerProgress::new(lines.clone(), Direction::Pull);
        let report = |p: Progress| layers.report(p);
        let report: &(dyn Fn(Progress) + Send + Sync) = &report;
        let result = d
            .store
            .pull(
                &d.registry,
                &auth,
                &name,
                &platform,
                report,
                &Options::default(),
            )
            .await;
        match result {
            Ok(pulled) => {
                lines.status(format!("Digest: {}", pulled.digest));
                let fresh = layers.fetched.load(Ordering::Relaxed)
                    || before.as_ref() != Some(&pulled.digest);
                d.events
                    .image(pulled.digest.as_ref(), &name.familiar(), "pull");
                lines.status(format!(
                    "Status: {} for {}",
                    if fresh {
                        "Downloaded newer image"
                    } else {
                        "Image is up to date"
                    },
                    name.familiar()
                ));
            }
            Err(e) => {
                tracing::info!("pull {name}: {e}");
                lines.error(one_line(&e.to_string()));
            }
        }
    });
    Ok(response)
}

pub async fn push(
    State(d): State<Arc<Daemon>>,
    name: String,
    tag: String,
    headers: HeaderMap,
) -> Result<Response> {
    let full = if tag.is_empty() {
        name.clone()
    } else {
        format!("{name}:{tag}")
    };
    let target = ImageName::parse(&full).map_err(|e| ApiError::InvalidParameter(e.to_string()))?;
    let auth = registry_auth(&headers)?;
    let store_name = target.to_string();
    let image = {
        let d = d.clone();
        let n = store_name.clone();
        crate::images::blocking(move || {
            d.store.image(&n).map_err(|e| match e {
                berth_store::StoreError::NoImage(_) => ApiError::NotFound(format!(
                    "An image does not exist locally with the tag: {}",
                    ImageName {
                        tag: None,
                        digest: None,
                        ..target.clone()
                    }
                    .familiar()
                )),
                e => ApiError::Store(e),
            })
        })
        .await?
    };
    let target = ImageName::parse(&store_name).expect("parsed before");
    let (lines, response) = progress::channel();
    tokio::spawn(async move {
        {
            let _guard = d.content.clone().read_owned().await;
            let repo = ImageName {
                tag: Some("x".into()),
                digest: None,
                ..target.clone()
            }
            .familiar();
            lines.status(format!(
                "The push refers to repository [{}]",
                repo.strip_suffix(":x").unwrap_or(&repo)
            ));
            for l in image.manifest.layers().iter().rev() {
                if let Ok(digest) = l.digest().to_string().parse() {
                    lines.send(JsonMessage::layer(short(&digest), "Preparing"));
                }
            }
            let layers = LayerProgress::new(lines.clone(), Direction::Push);
            let report = |p: Progress| layers.report(p);
            let report: &(dyn Fn(Progress) + Send + Sync) = &report;
            let result = d
                .store
                .push(
                    &d.registry,
                    &auth,
                    &store_name,
                    &target,
                    report,
                    &Options::default(),
                )
                .await;
            match result {
                Ok(digest) => {
                    let size = d.store.blobs.size(&digest).unwrap_or(0);
                    let tag = target.tag.clone().unwrap_or_else(|| "latest".into());
                    lines.status(format!("{tag}: digest: {digest} size: {size}"));
                    lines.send(JsonMessage {
                        progress_detail: Some(Default::default()),
                        aux: Some(serde_json::json!({
                            "Tag": tag, "Digest": digest.to_string(), "Size": size
                        })),
                        ..JsonMessage::default()
                    });
                }
                Err(e) => {
                    tracing::info!("push {target}: {e}");
                    lines.error(one_line(&e.to_string()));
                }
            }
        }
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(json: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::URL_SAFE.encode(json);
        h.insert("X-Registry-Auth", HeaderValue::from_str(&v).unwrap());
        h
    }

    #[test]
    fn registry_auth_header() {
        assert_eq!(registry_auth(&HeaderMap::new()).unwrap(), Auth::Anonymous);
        assert_eq!(registry_auth(&with_auth("{}")).unwrap(), Auth::Anonymous);
        assert_eq!(
            registry_auth(&with_auth(
                r#"{"username":"u","password":"p?>","serveraddress":"r"}"#
            ))
            .unwrap(),
            Auth::Basic {
                username: "u".into(),
                password: "p?>".into()
            }
        );
        assert_eq!(
            registry_auth(&with_auth(r#"{"auth":"dTpw"}"#)).unwrap(),
            Auth::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
        assert!(registry_auth(&with_auth(r#"{"identitytoken":"t"}"#)).is_err());
        let mut h = HeaderMap::new();
        h.insert("X-Registry-Auth", HeaderValue::from_static("!!!"));
        assert!(registry_auth(&h).is_err());
    }

    #[test]
    fn references_and_platforms() {
        assert_eq!(
            pull_reference("busybox", "").unwrap().to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            pull_reference("127.0.0.1:5000/bt/x", "1")
                .unwrap()
                .to_string(),
            "127.0.0.1:5000/bt/x:1"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            pull_reference("bt/x", &d).unwrap().digest.as_deref(),
            Some(d.as_str())
        );
        assert_eq!(
            platform(Some("linux/arm64/v8")).unwrap().variant.as_deref(),
            Some("v8")
        );
        assert!(platform(Some("linux")).is_err());
    }
}
