//! Registry credentials from docker's `config.json` (`auths`, as `docker
//! login` writes them), sent as the `X-Registry-Auth` header.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde::{Deserialize, Serialize};

/// Docker Hub's key in `auths`.
pub const INDEX_SERVER: &str = "https://index.docker.io/v1/";

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    identitytoken: String,
}

/// What `X-Registry-Auth` carries (`AuthConfig`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct AuthConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub password: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
    pub serveraddress: String,
}

/// `$DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker"))
}

/// The registry of an image reference, as `auths` names it.
pub fn registry_key(reference: &str) -> String {
    match reference.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            if first == "docker.io" || first == "index.docker.io" {
                INDEX_SERVER.to_string()
            } else {
                first.to_string()
            }
        }
        _ => INDEX_SERVER.to_string(),
    }
}

/// The credentials for `reference` in `dir/config.json`, if any.
pub fn lookup(dir: &Path, reference: &str) -> Option<AuthConfig> {
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let cfg: ConfigFile = serde_json::from_str(&text).ok()?;
    let key = registry_key(reference);
    let strip = |k: &str| {
        k.trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string()
    };
    let (addr, entry) = cfg.auths.iter().find(|(k, _)| **k == key).or_else(|| {
        let want = strip(&key);
        cfg.auths
            .iter()
            .find(|(k, _)| strip(k).split('/').next() == Some(want.split('/').next().unwrap_or("")))
    })?;
    let mut out = AuthConfig {
        serveraddress: addr.clone(),
        identitytoken: entry.identitytoken.clone(),
        ..AuthConfig::default()
    };
    if !entry.auth.is_empty() {
        let raw = STANDARD.decode(entry.auth.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        out.username = u.to_string();
        out.password = p.to_string();
    }
    Some(out)
}

/// The `X-Registry-Auth` value: base64url of the JSON (`{}` without
/// credentials, as docker sends).
pub fn header_value(auth: Option<&AuthConfig>) -> String {
    let json = match auth {
        Some(a) => serde_json::to_vec(a).expect("auth serializes"),
        None => b"{}".to_vec(),
    };
    URL_SAFE.encode(json)
}

/// The header value for `reference` from the user's docker config.
pub fn for_reference(reference: &str) -> String {
    let auth = config_dir().and_then(|d| lookup(&d, reference));
    header_value(auth.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_keys() {
        assert_eq!(registry_key("busybox"), INDEX_SERVER);
        assert_eq!(registry_key("library/busybox:1"), INDEX_SERVER);
        assert_eq!(registry_key("docker.io/library/busybox"), INDEX_SERVER);
        assert_eq!(registry_key("localhost:5000/bb"), "localhost:5000");
        assert_eq!(registry_key("quay.io/a/b"), "quay.io");
    }

    #[test]
    fn reads_docker_login_auths() {
        let dir = tempfile::Builder::new()
            .prefix("bt-auth")
            .tempdir()
            .unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            format!(
                r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{}"}},"https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#,
                STANDARD.encode("alice:s3cret"),
                STANDARD.encode("bob:pw")
            ),
        )
        .unwrap();
        let a = lookup(dir.path(), "127.0.0.1:5000/bb:1").unwrap();
        assert_eq!(
            (a.username.as_str(), a.password.as_str()),
            ("alice", "s3cret")
        );
        assert_eq!(a.serveraddress, "127.0.0.1:5000");
        let b = lookup(dir.path(), "busybox").unwrap();
        assert_eq!(b.username, "bob");
        assert!(lookup(dir.path(), "quay.io/x/y").is_none());
        let h = header_value(Some(&a));
        let json = String::from_utf8(URL_SAFE.decode(h).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"username":"alice","password":"s3cret","serveraddress":"127.0.0.1:5000"}"#
        );
        assert_eq!(header_value(None), URL_SAFE.encode("{}"));
    }
}
