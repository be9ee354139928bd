//! `POST /build` and `POST /build/prune`: the Engine API's classic build.
//!
//! The body (a tar context, plain or gzip, or a bare Dockerfile) is
//! unpacked into a directory of its own, the build runs on a blocking
//! thread through `berth_builder::exec` (RUN steps through
//! [`runner::ShimRunner`]), and its progress streams back as the legacy
//! builder's JSON lines: `stream` text, the `aux` image ID, and an
//! `errorDetail` line when it fails.

pub mod runner;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use berth_api::JsonMessage;
use berth_builder::exec::{BuildRequest, Builder, Cache, ImageSource, MountLocks, Output};
use berth_builder::{BuildOptions, Platform};
use berth_store::Image;
use berth_store::refs::ImageName;
use futures_util::StreamExt;
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::progress;
use crate::server::Daemon;

/// The builder's daemon-wide state: its cache and cache-mount locks.
#[derive(Debug)]
pub struct BuildState {
    pub cache: Cache,
    pub locks: MountLocks,
    /// `<data-root>/builder`: the cache database, cache mounts, contexts.
    pub dir: PathBuf,
}

impl BuildState {
    pub fn open(data_root: &Path) -> std::result::Result<BuildState, String> {
        let dir = data_root.join("builder");
        let cache = Cache::open(&dir.join("cache.redb")).map_err(|e| e.to_string())?;
        // Contexts and mounts of builds a crash interrupted.
        let _ = std::fs::remove_dir_all(dir.join("tmp"));
        let _ = std::fs::remove_dir_all(dir.join("contexts"));
        Ok(BuildState {
            cache,
            locks: MountLocks::default(),
            dir,
        })
    }
}

/// The query of `POST /build`, repeated keys (`t`) kept.
#[derive(Debug, Default)]
struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn parse(raw: Option<&str>) -> Result<Query> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| ApiError::InvalidParameter(format!("invalid query: {e}")))?;
        Ok(Query { pairs })
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, k: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(key, v)| key == k && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("1" | "true" | "True" | "TRUE"))
    }

    fn json_map(&self, k: &str) -> Result<BTreeMap<String, String>> {
        let Some(raw) = self.get(k).filter(|s| !s.is_empty()) else {
            return Ok(BTreeMap::new());
        };
        let v: BTreeMap<String, Option<String>> = serde_json::from_str(raw)
            .map_err(|e| ApiError::InvalidParameter(format!("invalid {k}: {e}")))?;
        // A null value is an arg the client had no value for: unset.
        Ok(v.into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }
}

/// Where `outputs` sends the result; a path on the daemon's host.
fn parse_outputs(raw: Option<&str>) -> Result<Option<Output>> {
    let Some(raw) = raw.filter(|s| !s.is_empty() && *s != "[]") else {
        return Ok(None);
    };
    let v: Vec<Value> = serde_json::from_str(raw)
        .map_err(|e| ApiError::InvalidParameter(format!("invalid outputs: {e}")))?;
    let Some(o) = v.first() else { return Ok(None) };
    let typ = o
        .get("Type")
        .or_else(|| o.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let attrs = o.get("Attrs").or_else(|| o.get("attrs"));
    let dest = attrs
        .and_then(|a| a.get("dest"))
        .and_then(Value::as_str)
        .map(PathBuf::from);
    match (typ, dest) {
        ("local", Some(d)) => Ok(Some(Output::Local(d))),
        ("tar", Some(d)) => Ok(Some(Output::Tar(d))),
        ("local" | "tar", None) => Err(ApiError::InvalidParameter(format!(
            "output type={typ} needs dest=PATH (a path on the daemon's host)"
        ))),
        ("image" | "docker" | "", _) => Ok(None),
        (t, _) => Err(ApiError::InvalidParameter(format!(
            "output type={t} is not supported: use local, tar or image"
        ))),
    }
}

/// Registry credentials from `X-Registry-Config` (base64 JSON: registry
/// → auth config), for pulls of base images.
fn registry_configs(headers: &HeaderMap) -> BTreeMap<String, berth_store::registry::Auth> {
    use base64::Engine as _;
    let mut out = BTreeMap::new();
    let Some(raw) = headers
        .get("X-Registry-Config")
        .and_then(|v| v.to_str().ok())
    else {
        return out;
    };
    let decoded = [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::STANDARD,
    ]
    .iter()
    .find_map(|e| e.decode(raw.trim()).ok());
    let Some(map) =
        decoded.and_then(|d| serde_json::from_slice::<BTreeMap<String, Value>>(&d).ok())
    else {
        return out;
    };
    for (reg, c) in map {
        let user = c.get("username").and_then(Value::as_str).unwrap_or("");
        let pass = c.get("password").and_then(Value::as_str).unwrap_or("");
        if user.is_empty() {
            continue;
        }
        let host = reg
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("")
            .replace("index.docker.io", "docker.io");
        out.insert(
            host,
            berth_store::registry::Auth::Basic {
                username: user.to_string(),
                password: pass.to_string(),
            },
        );
    }
    out
}

/// Base images: the store, else a pull through the registry client.
struct DaemonImages {
    d: Arc<Daemon>,
    rt: tokio::runtime::Handle,
    auths: BTreeMap<String, berth_store::registry::Auth>,
}

impl ImageSource for DaemonImages {
    fn image(
        &self,
        name: &str,
        pull: bool,
        progress: &dyn Fn(&str),
    ) -> std::result::Result<Image, String> {
        if !pull && let Ok(img) = self.d.store.image(name) {
            return Ok(img);
        }
        let parsed = ImageName::parse(name).map_err(|e| e.to_string())?;
        if parsed.registry.is_empty() {
            return Err(format!("no such image: {name}"));
        }
        progress(&format!(
            "{}: Pulling from {}\n",
            parsed.familiar(),
            parsed.repository
        ));
        let auth = self
            .auths
            .get(&parsed.registry)
            .cloned()
            .unwrap_or(berth_store::registry::Auth::Anonymous);
        let report = |_p: berth_store::registry::Progress| {};
        let pulled = self.rt.block_on(self.d.store.pull(
            &self.d.registry,
            &auth,
            &parsed,
            &berth_store::registry::Platform::host(),
            &report,
            &berth_store::registry::Options::default(),
        ));
        match pulled {
            Ok(p) => {
                progress(&format!("Digest: {}\n", p.digest));
                self.d.store.image(name).map_err(|e| e.to_string())
            }
            Err(e) => {
                // A name only the store knew, pulled for --pull: keep it.
                if let Ok(img) = self.d.store.image(name) {
                    return Ok(img);
                }
                Err(format!(
                    "pull access denied or no such image {name}: {}",
                    one_line(&e.to_string())
                ))
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Unpack the request body into `dir`: a tar (plain or gzip), or a bare
/// Dockerfile. Returns whether it was a bare Dockerfile.
fn unpack_context(body: &[u8], dir: &Path) -> std::result::Result<bool, String> {
    let gz = body.starts_with(&[0x1f, 0x8b]);
    let data: Vec<u8> = if gz {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .map_err(|e| format!("the build context is not valid gzip: {e}"))?;
        out
    } else {
        body.to_vec()
    };
    let is_tar = data.len() >= 512 && &data[257..262] == b"ustar"
        || (data.len() >= 1024 && data[..1024].iter().all(|&b| b == 0));
    if !is_tar {
        std::fs::write(dir.join("Dockerfile"), &data).map_err(|e| e.to_string())?;
        return Ok(true);
    }
    // The docker CLI's context for a Dockerfile outside the directory
    // (ReplaceFileTarWrapper) ends without its last padding and the
    // end-of-archive blocks; Go's reader accepts that, so berth does too.
    let mut data = data;
    let pad = (512 - data.len() % 512) % 512;
    data.extend(std::iter::repeat_n(0u8, pad + 1024));
    let mut ar = tar::Archive::new(&data[..]);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_unpack_xattrs(false);
    ar.set_overwrite(true);
    ar.unpack(dir).map_err(|e| {
        let mut msg = format!("unpacking the build context: {e}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        msg
    })?;
    Ok(false)
}

pub async fn post_build(
    State(d): State<Arc<Daemon>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let q = Query::parse(raw.as_deref())?;
    if q.get("remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::InvalidParameter(
            "remote build contexts (a URL or git repository) are not supported: send the context as a tar".into(),
        ));
    }
    let mut options = BuildOptions {
        build_args: q.json_map("buildargs")?,
        ..BuildOptions::default()
    };
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        let want = Platform::parse(p).map_err(ApiError::InvalidParameter)?;
        let host = Platform::host();
        if want.os != host.os || want.arch != host.arch {
            return Err(ApiError::InvalidParameter(format!(
                "platform {p}: berth builds only for the host's platform ({host})"
            )));
        }
        options.target_platform = want;
    }
    let network = q.get("networkmode").unwrap_or("");
    let network_host = match network {
        "host" => true,
        "" | "default" | "none" | "bridge" => false,
        other => {
            return Err(ApiError::InvalidParameter(format!(
                "network mode {other:?} is not supported for builds: use none or host"
            )));
        }
    };
    let output = parse_outputs(q.get("outputs"))?;
    let quiet = q.flag("q");
    let tags = q.all("t");
    for t in &tags {
        ImageName::parse(t)
            .map_err(|e| ApiError::InvalidParameter(format!("invalid tag {t:?}: {e}")))?;
    }
    let labels = q.json_map("labels")?;
    let extra_hosts = q.all("extrahosts");
    // berth's own: `--secret id=…,src=…` as {"id": "/path on this host"}.
    let secrets: BTreeMap<String, PathBuf> = q
        .json_map("secrets")?
        .into_iter()
        .map(|(k, v)| (k, PathBuf::from(v)))
        .collect();
    // And `--ssh id=SOCKET` as {"id": "/agent socket on this host"}.
    let ssh: BTreeMap<String, PathBuf> = q
        .json_map("ssh")?
        .into_iter()
        .map(|(k, v)| (k, PathBuf::from(v)))
        .collect();
    // berth's own, as buildx's `--allow`: the entitlements a build has.
    let mut allow_insecure = false;
    for a in q.all("allow").iter().flat_map(|a| a.split(',')) {
        match a.trim() {
            "security.insecure" => allow_insecure = true,
            // RUN --network=host needs nothing more here.
            "network.host" | "" => {}
            other => {
                return Err(ApiError::InvalidParameter(format!(
                    "invalid entitlement {other:?}: want security.insecure or network.host"
                )));
            }
        }
    }
    let target = q.get("target").filter(|t| !t.is_empty()).map(String::from);
    let no_cache = q.flag("nocache");
    let pull = q.flag("pull");
    let dockerfile_param = q.get("dockerfile").unwrap_or("").to_string();
    let auths = registry_configs(&headers);

    // The whole body first: contexts are small next to what a build does.
    let mut body_bytes = Vec::new();
    let mut s = body.into_data_stream();
    while let Some(chunk) = s.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::InvalidParameter(format!("reading the build context: {e}")))?;
        body_bytes.extend_from_slice(&chunk);
    }

    let (lines, response) = progress::channel();
    let rt = tokio::runtime::Handle::current();
    tokio::spawn(async move {
        // Builds add content: a collection must not sweep what a build
        // wrote before pinning it; builds run side by side.
        let _guard = d.content.clone().read_owned().await;
        let d2 = d.clone();
        let lines2 = lines.clone();
        let res = tokio::task::spawn_blocking(move || {
            let d = d2;
            let lines = lines2;
            let ctx_dir = tempfile::Builder::new()
                .prefix("ctx-")
                .tempdir_in({
                    let p = d.build.dir.join("contexts");
                    let _ = std::fs::create_dir_all(&p);
                    p
                })
                .map_err(|e| format!("creating the context directory: {e}"))?;
            let bare = unpack_context(&body_bytes, ctx_dir.path())?;
            drop(body_bytes);
            let df_name = if bare || dockerfile_param.is_empty() {
                "Dockerfile".to_string()
            } else {
                dockerfile_param.clone()
            };
            let mut df_path = berth_builder::exec::fsops::scoped(ctx_dir.path(), &df_name, true)
                .map_err(|e| e.to_string())?;
            if !df_path.exists() && df_name == "Dockerfile" {
                df_path = ctx_dir.path().join("dockerfile");
            }
            let text = std::fs::read_to_string(&df_path)
                .map_err(|_| format!("Cannot locate specified Dockerfile: {df_name}"))?;
            let req = BuildRequest {
                dockerfile: text,
                dockerfile_name: df_name
                    .rsplit('/')
                    .next()
                    .unwrap_or("Dockerfile")
                    .to_string(),
                dockerfile_path: df_path,
                context: ctx_dir.path().to_path_buf(),
                options,
                target,
                tags,
                labels,
                no_cache,
                pull,
                network_host,
                secrets,
                ssh,
                output,
                extra_hosts,
                allow_insecure,
            };
            let runner = runner::ShimRunner { daemon: d.clone() };
            let images = DaemonImages {
                d: d.clone(),
                rt,
                auths,
            };
            let b = Builder {
                store: &d.store,
                cache: &d.build.cache,
                runner: &runner,
                images: &images,
                state_dir: d.build.dir.clone(),
                locks: &d.build.locks,
            };
            let say = |s: &str| {
                if !quiet {
                    lines.send(JsonMessage::stream(s));
                }
            };
            let r = b.build(&req, &say).map_err(|e| e.to_string())?;
            Ok::<_, String>((r, req.output.is_some()))
        })
        .await;
        match res {
            Ok(Ok((r, exported))) => {
                let id = r.image.id.to_string();
                lines.send(JsonMessage {
                    aux: Some(serde_json::json!({ "ID": id })),
                    ..JsonMessage::default()
                });
                if quiet {
                    lines.send(JsonMessage::stream(format!("{id}\n")));
                } else if !exported {
                    lines.send(JsonMessage::stream(format!(
                        "Successfully built {}\n",
                        &r.image.id.digest()[..12]
                    )));
                    for t in &r.tags {
                        let fam = ImageName::parse(t).map_or_else(|_| t.clone(), |n| n.familiar());
                        lines.send(JsonMessage::stream(format!("Successfully tagged {fam}\n")));
                    }
                }
                for t in &r.tags {
                    let fam = ImageName::parse(t).map_or_else(|_| t.clone(), |n| n.familiar());
                    d.events.image(&id, &fam, "tag");
                }
            }
            Ok(Err(e)) => lines.error(e),
            Err(e) => lines.error(format!("the build panicked: {e}")),
        }
    });
    Ok(response)
}

/// `POST /build/prune`: drop the build cache (every entry; `all`,
/// `keep-storage` and filters are accepted, berth keeps no partial
/// cache), its cache mounts, and what only they kept.
pub async fn post_prune(State(d): State<Arc<Daemon>>) -> Result<axum::Json<Value>> {
    let _guard = d.content.clone().write_owned().await;
    let d2 = d.clone();
    let report = tokio::task::spawn_blocking(move || {
        d2.build.cache.prune(
            &d2.store,
            &berth_builder::exec::cache_mounts_dir(&d2.build.dir),
        )
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(axum::Json(serde_json::json!({
        "CachesDeleted": report.images.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "SpaceReclaimed": report.bytes,
    })))
}
