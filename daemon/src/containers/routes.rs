//! The Engine API's container routes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_api::containers::{
    ContainerCreateRequest, ContainerCreateResponse, ContainerPruneResponse, ContainerSummary,
    ContainerTopResponse, ContainerWaitResponse, WaitExitError,
};

use super::lifecycle;
use super::logs::{self, Options};
use super::record::Status;
use crate::error::{ApiError, Result};
use crate::filters::Filters;
use crate::images::blocking;
use crate::server::Daemon;

type Q = Query<HashMap<String, String>>;

/// Docker's query booleans: `1`, `true`, `True`...; absent is false.
fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k)
        .is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false" | "False" | "FALSE"))
}

fn int(q: &HashMap<String, String>, k: &str) -> Result<Option<i64>> {
    match q.get(k).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::InvalidParameter(format!("invalid value for {k}: {v}"))),
    }
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub async fn post_create(State(d): State<Arc<Daemon>>, q: Q, body: Bytes) -> Result<Response> {
    let req: ContainerCreateRequest = if body.is_empty() {
        ContainerCreateRequest::default()
    } else {
        let de = &mut serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(de).map_err(|e| {
            // Flattened fields lose their path: find it on the config alone.
            let mut path = e.path().to_string();
            if path == "." {
                let de = &mut serde_json::Deserializer::from_slice(&body);
                if let Err(inner) = serde_path_to_error::deserialize::<
                    _,
                    berth_api::containers::ContainerConfig,
                >(de)
                {
                    path = inner.path().to_string();
                }
            }
            ApiError::InvalidParameter(format!("invalid JSON at {path}: {}", e.inner()))
        })?
    };
    let name = q.get("name").cloned();
    let rec = blocking(move || lifecycle::create(&d, name.as_deref(), req)).await?;
    Ok((
        StatusCode::CREATED,
        Json(ContainerCreateResponse {
            id: rec.id,
            warnings: Vec::new(),
        }),
    )
        .into_response())
}

pub async fn get_list(State(d): State<Arc<Daemon>>, q: Q) -> Result<Json<Vec<ContainerSummary>>> {
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;
    filters.allow(&[
        "id", "name", "label", "status", "ancestor", "exited", "before", "since", "volume",
        "network", "health", "is-task", "expose", "publish",
    ])?;
    let all = flag(&q, "all");
    let limit = int(&q, "limit")?.filter(|l| *l > 0);
    let statuses = filters.get("status");
    for s in statuses {
        if !matches!(
            s.as_str(),
            "created" | "restarting" | "running" | "removing" | "paused" | "exited" | "dead"
        ) {
            return Err(ApiError::InvalidParameter(format!(
                "invalid filter 'status={s}'"
            )));
        }
    }
    let mut out = Vec::new();
    let images = d.store.images();
    for e in d.containers.all() {
        let r = e.record();
        let st = r.state.status;
        let show = all || limit.is_some() || !statuses.is_empty() || st.is_live();
        if !show {
            continue;
        }
        let any = |key: &str, f: &dyn Fn(&str) -> bool| {
            let w = filters.get(key);
            w.is_empty() || w.iter().any(|v| f(v))
        };
        let ok = any("id", &|v| r.id.starts_with(v))
            && any("name", &|v| r.name.contains(v.trim_start_matches('/')))
            && any("status", &|v| v == st.as_str())
            && any("exited", &|v| {
                st == Status::Exited && v.parse::<i64>().is_ok_and(|c| c == r.state.exit_code)
            })
            && any("ancestor", &|v| {
                r.image == v
                    || r.image_id
                        .trim_start_matches("sha256:")
                        .starts_with(v.trim_start_matches("sha256:"))
                    || images.iter().any(|i| {
                        i.id.to_string() == r.image_id
                            && i.names
                                .iter()
                                .any(|n| crate::filters::reference_matches(v, n))
                    })
            })
            && any("health", &|v| {
                r.state
                    .health
                    .as_ref()
                    .map_or("none", |h| h.status.as_str())
                    == v
            })
            && filters.labels_match(&r.config.labels.clone().unwrap_or_default());
        if ok {
            let mut sum = r.summary();
            crate::networks::summarize(&d, &r, &mut sum);
            if flag(&q, "size") {
                let (d2, id) = (d.clone(), r.id.clone());
                let (rw, rootfs) = blocking(move || Ok(sizes(&d2, &id))).await?;
                sum.size_rw = Some(rw);
                sum.size_root_fs = Some(rootfs);
            }
            out.push(sum);
        }
        if limit.is_some_and(|l| out.len() as i64 >= l) {
            break;
        }
    }
    Ok(Json(out))
}

/// (the container's own layer, that plus its image's layers), in bytes
/// on disk.
fn sizes(d: &Daemon, id: &str) -> (i64, i64) {
    use berth_store::snapshot::Snapshots;
    let rw = d
        .store
        .snapshots
        .container_changes_dir(id)
        .map_or(0, |p| Snapshots::disk_usage(&p));
    let below: u64 = d
        .store
        .snapshots
        .container(id)
        .ok()
        .and_then(|m| m.parent)
        .and_then(|top| d.store.snapshots.chain_dirs(&top).ok())
        .map_or(0, |dirs| {
            dirs.iter().map(|p| Snapshots::disk_usage(p)).sum()
        });
    (rw as i64, (rw + below) as i64)
}

pub async fn get_inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response> {
    let e = d.containers.get(&id)?;
    if flag(&q, "size") {
        let rec = e.record();
        let (d2, id) = (d.clone(), rec.id.clone());
        let (rw, rootfs) = blocking(move || Ok(sizes(&d2, &id))).await?;
        let mut i = rec.inspect(&d.driver, d.execs.of_container(&e.id));
        crate::networks::settings(&d, &rec, &mut i.network_settings);
        i.size_rw = Some(rw);
        i.size_root_fs = Some(rootfs);
        return Ok(Json(i).into_response());
    }
    let rec = e.record();
    let mut i = rec.inspect(&d.driver, d.execs.of_container(&e.id));
    let d2 = d.clone();
    i.network_settings = blocking(move || {
        let mut s = i.network_settings;
        crate::networks::settings(&d2, &rec, &mut s);
        Ok(s)
    })
    .await?;
    Ok(Json(i).into_response())
}

pub async fn post_start(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Result<Response> {
    let e = d.containers.get(&id)?;
    let _op = e.op.lock().await;
    match e.status() {
        s if s.is_live() => return Ok(StatusCode::NOT_MODIFIED.into_response()),
        Status::Removing | Status::Dead => {
            return Err(ApiError::Conflict(format!(
                "cannot start container {}: it is being removed",
                e.id
            )));
        }
        _ => {}
    }
    let (d2, e2) = (d.clone(), e.clone());
    if let Err(err) = blocking(move || lifecycle::start(&d2, &e2)).await {
        // `run --rm` waits for the removal even when the start failed.
        if e.record().host_config.auto_remove
            && let Err(rm) = lifecycle::remove_stopped(&d, &e, true).await
        {
            tracing::warn!(id = e.id, "auto-remove after a failed start: {rm}");
        }
        return Err(err);
    }
    Ok(no_content())
}

pub async fn post_stop(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response> {
    let e = d.containers.get(&id)?;
    let t = int(&q, "t")?;
    let _op = e.op.lock().await;
    let stopped = lifecycle::stop(&d, &e, t, q.get("signal").map(String::as_str)).await?;
    if !stopped {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    d.events.container(&e.record(), "stop");
    Ok(no_content())
}

pub async fn post_restart(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response> {
    let e = d.containers.get(&id)?;
    let t = int(&q, "t")?;
    let _op = e.op.lock().await;
    lifecycle::stop(&d, &e, t, q.get("signal").map(String::as_str)).await?;
    let (d2, e2) = (d.clone(), e.clone());
    blocking(move || lifecycle::start(&d2, &e2)).await?;
    d.events.container(&e.record(), "restart");
    Ok(no_content())
}

pub async fn post_kill(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response> {
    let e = d.containers.get(&id)?;
    let sig = match q.get("signal").filter(|s| !s.is_empty()) {
        Some(s) => lifecycle::parse_signal(s)?,
        None => nix::sys::signal::Signal::SIGKILL,
    };
    if sig == nix::sys::signal::Signal::SIGKILL {
        // A kill is a stop the user asked for.
        d.containers.update(&e, |r| r.manually_stopped = true)?;
    }
    lifecycle::signal(&d, &e, sig, false)?;
    Ok(no_content())
}

/// `POST /containers/{id}/wait`: the headers go out at once (the docker
/// CLI waits for them before it starts the container), the body when the
/// condition is met.
pub async fn post_wait(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response> {
    let e = d.containers.get(&id)?;
    let condition = q.get("condition").cloned().unwrap_or_default();
    let mut w = e.watch();
    let start = *w.borrow_and_update();
    match condition.as_str() {
        "" | "not-running" | "next-exit" | "removed" => {}
        c => {
            return Err(ApiError::InvalidParameter(format!(
                "invalid condition: \"{c}\""
            )));
        }
    }
    let fut = async move {
        let p = match condition.as_str() {
            "next-exit" => w
                .wait_for(|p| p.exits > start.exits || p.removed)
                .await
                .map(|p| *p),
            "removed" => w.wait_for(|p| p.removed).await.map(|p| *p),
            _ => w
                .wait_for(|p| !p.status.is_live() && p.status != Status::Restarting || p.removed)
                .await
                .map(|p| *p),
        };
        let code = match p {
            Ok(p) => p.exit_code,
            // The sender went with the record: removed.
            Err(_) => e.record().state.exit_code,
        };
        let err = e.record().state.error;
        let resp = ContainerWaitResponse {
            status_code: code,
            error: (!err.is_empty()).then_some(WaitExitError { message: err }),
        };
        let mut v = serde_json::to_vec(&resp).expect("wait json");
        v.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(v))
    };
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(futures_util::stream::once(fut)),
    )
        .into_response())
}

pub async fn delete(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response> {
    let e = d.containers.get(&id)?;
    lifecycle::remove(&d, &e, flag(&q, "force"), flag(&q, "v")).await?;
    Ok(no_content())
}

fn time_param(q: &HashMap<String, String>, k: &str) -> Result<Option<i64>> {
    match q.get(k).filter(|v| !v.is_empty() && v.as_str() != "0") {
        None => Ok(None),
        Some(v) => {
            let (s, frac) = v.split_once('.').unwrap_or((v, "0"));
            let s: i64 = s
                .parse()
                .map_err(|_| ApiError::InvalidParameter(format!("invalid value for {k}: {v}")))?;
            let frac = format!("{frac:0<9}");
            let n: i64 = frac[..9].parse().unwrap_or(0);
            Ok(Some(s * 1_000_000_000 + n))
        }
    }
}

pub async fn get_logs(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response> {
    let e = d.containers.get(&id)?;
    let rec = e.record();
    if rec.host_config.log_config.kind == "none" {
        return Err(ApiError::InvalidParameter(
            "configured logging driver does not support reading".into(),
        ));
    }
    let (stdout, stderr) = (flag(&q, "stdout"), flag(&q, "stderr"));
    if !stdout && !stderr {
        return Err(ApiError::InvalidParameter(
            "Bad parameters: you must choose at least one stream".into(),
        ));
    }
    let tail = match q.get("tail").map(String::as_str) {
        None | Some("") | Some("all") => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| ApiError::InvalidParameter(format!("invalid value for tail: {t}")))?,
        ),
    }
    .map(|t| t.max(0) as usize);
    let opts = Options {
        stdout,
        stderr,
        follow: flag(&q, "follow"),
        tail,
        since: time_param(&q, "since")?,
        until: time_param(&q, "until")?,
        timestamps: flag(&q, "timestamps"),
        raw: rec.config.tty,
    };
    let rx = logs::spawn_reader(rec.log_path.clone().into(), opts, e.watch());
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    let ct = if rec.config.tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok(([(header::CONTENT_TYPE, ct)], Body::from_stream(stream)).into_response())
}

pub async fn post_attach(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
    req: Request,
) -> Result<Response> {
    let e = d.containers.get(&id)?;
    let rec = e.record();
    let ask = berth_shim::proto::AttachRequest {
        stdin: flag(&q, "stdin"),
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
    };
    let sock = super::lifecycle::Paths::new(&d, &rec.id).socket();
    let shim: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> =
        match rec.state.status {
            Status::Running | Status::Paused => {
                let stream = tokio::task::spawn_blocking(move || {
                    berth_shim::client::attach(&sock, ask).map(|(_, s)| s)
                })
                .await
                .map_err(|err| ApiError::Internal(format!("attach: {err}")))?
                .map_err(|err| ApiError::Internal(format!("attaching to {}: {err}", rec.id)))?;
                Box::pin(std::future::ready(Some(stream)))
            }
            Status::Restarting => {
                return Err(ApiError::Conflict(format!(
                    "You cannot attach to a restarting container {}, wait until it is running",
                    rec.id
                )));
            }
            Status::Removing | Status::Dead => {
                return Err(ApiError::Conflict(format!(
                    "You cannot attach to a container that is being removed: {}",
                    rec.id
                )));
            }
            // Not running yet: the streams come with the next start.
            Status::Created | Status::Exited => {
                let rx = e.add_pending_attach(ask);
                Box::pin(async move { rx.await.ok() })
            }
        };
    d.events.container(&rec, "attach");
    Ok(super::attach::hijack(req, rec.config.tty, shim))
}

pub async fn post_rename(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response> {
    let e = d.containers.get(&id)?;
    let new = q.get("name").filter(|n| !n.is_empty()).ok_or_else(|| {
        ApiError::InvalidParameter("Neither old nor new names may be empty".into())
    })?;
    let new = super::names::validate(new)?;
    let old = e.record().name;
    d.containers.rename(&e, &new)?;
    d.events
        .container_with(&e.record(), "rename", [("oldName", format!("/{old}"))]);
    Ok(no_content())
}

pub async fn post_pause(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Result<Response> {
    pause(d, id, true).await
}

pub async fn post_unpause(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Response> {
    pause(d, id, false).await
}

async fn pause(d: Arc<Daemon>, id: String, pause: bool) -> Result<Response> {
    let e = d.containers.get(&id)?;
    let _op = e.op.lock().await;
    let st = e.status();
    if pause && st != Status::Running {
        let why = if st == Status::Paused {
            "already paused"
        } else {
            "not running"
        };
        return Err(ApiError::Conflict(format!("Container {} is {why}", e.id)));
    }
    if !pause && st != Status::Paused {
        return Err(ApiError::Conflict(format!(
            "Container {} is not paused",
            e.id
        )));
    }
    let rt = lifecycle::runtime(&d);
    let r = if pause {
        rt.pause(&e.id)
    } else {
        rt.resume(&e.id)
    };
    r.map_err(|err| {
        ApiError::Internal(format!(
            "Cannot {} container {}: {err}",
            if pause { "pause" } else { "unpause" },
            e.id
        ))
    })?;
    d.containers.update(&e, |r| {
        r.state.status = if pause {
            Status::Paused
        } else {
            Status::Running
        }
    })?;
    d.events
        .container(&e.record(), if pause { "pause" } else { "unpause" });
    Ok(no_content())
}

/// `top`: the container's processes as `ps -ef` would show them, read
/// from /proc.
pub async fn get_top(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<ContainerTopResponse>> {
    let e = d.containers.get(&id)?;
    if !e.status().is_live() {
        return Err(ApiError::Conflict(format!(
            "Container {} is not running",
            e.id
        )));
    }
    let rt = lifecycle::runtime(&d);
    let pids = rt
        .pids(&e.id)
        .map_err(|err| ApiError::Internal(format!("listing the processes of {}: {err}", e.id)))?;
    let mut processes = Vec::new();
    for pid in pids {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .unwrap_or_default()
                .to_string()
        };
        let (uid, ppid) = (field("Uid:"), field("PPid:"));
        let user =
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid.parse().unwrap_or(0)))
                .ok()
                .flatten()
                .map_or(uid, |u| u.name);
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| {
                c.split(|b| *b == 0)
                    .filter(|p| !p.is_empty())
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        processes.push(vec![
            user,
            pid.to_string(),
            ppid,
            "0".into(),
            "?".into(),
            "?".into(),
            "00:00:00".into(),
            cmd,
        ]);
    }
    Ok(Json(ContainerTopResponse {
        titles: ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
            .map(String::from)
            .to_vec(),
        processes,
    }))
}

pub async fn post_prune(
    State(d): State<Arc<Daemon>>,
    q: Q,
) -> Result<Json<ContainerPruneResponse>> {
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;
    filters.allow(&["label", "label!", "until"])?;
    let mut deleted = Vec::new();
    for e in d.containers.all() {
        let r = e.record();
        if r.state.status.is_live()
            || !filters.labels_match(&r.config.labels.clone().unwrap_or_default())
        {
            continue;
        }
        let _op = e.op.lock().await;
        if e.status().is_live() {
            continue;
        }
        lifecycle::remove_stopped(&d, &e, false).await?;
        deleted.push(r.id);
    }
    d.events
        .publish("container", "prune", "", Default::default());
    Ok(Json(ContainerPruneResponse {
        containers_deleted: Some(deleted),
        space_reclaimed: 0,
    }))
}

/// The fields `update` may change: the spec's `Resources` and the
/// restart policy.
const UPDATABLE: &[&str] = &[
    "CpuShares",
    "Memory",
    "CgroupParent",
    "BlkioWeight",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpusetCpus",
    "CpusetMems",
    "MemoryReservation",
    "MemorySwap",
    "MemorySwappiness",
    "NanoCpus",
    "OomKillDisable",
    "PidsLimit",
    "RestartPolicy",
];

/// `update`: new limits, applied to the running container's cgroup and
/// kept in its HostConfig; a new restart policy.
pub async fn post_update(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<berth_api::containers::ContainerUpdateResponse>> {
    let e = d.containers.get(&id)?;
    let change: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
        .map_err(|err| ApiError::InvalidParameter(format!("invalid JSON: {err}")))?;
    let _op = e.op.lock().await;
    let rec = e.record();
    let mut host = serde_json::to_value(&rec.host_config).expect("host config json");
    for (k, v) in change {
        // Zero means "leave as it is", as in dockerd.
        if !UPDATABLE.contains(&k.as_str()) || v.is_null() || v == serde_json::json!(0) || v == "" {
            continue;
        }
        host[k] = v;
    }
    let host: berth_api::containers::HostConfig = serde_json::from_value(host)
        .map_err(|err| ApiError::InvalidParameter(format!("invalid update: {err}")))?;
    let res = crate::spec::update_resources(&host, &d.system)
        .map_err(|err| ApiError::InvalidParameter(err.to_string()))?;
    if host.auto_remove && !matches!(host.restart_policy.name.as_str(), "" | "no") {
        return Err(ApiError::InvalidParameter(
            "Restart policy cannot be updated because AutoRemove is enabled for the container"
                .into(),
        ));
    }
    if rec.state.status.is_live() {
        let rt = super::lifecycle::runtime(&d);
        let id2 = rec.id.clone();
        blocking(move || {
            rt.update(&id2, &res)
                .map(|_| ())
                .map_err(|err| ApiError::Internal(format!("Cannot update container {id2}: {err}")))
        })
        .await?;
    }
    d.containers.update(&e, |r| r.host_config = host)?;
    d.events.container(&e.record(), "update");
    Ok(Json(Default::default()))
}

/// `resize`: the terminal's new size, to the shim.
pub async fn post_resize(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response> {
    let e = d.containers.get(&id)?;
    let (h, w) = (int(&q, "h")?.unwrap_or(0), int(&q, "w")?.unwrap_or(0));
    if !e.status().is_live() {
        return Err(ApiError::Conflict(format!(
            "Container {} is not running",
            e.id
        )));
    }
    let sock = super::lifecycle::Paths::new(&d, &e.id).socket();
    let req = berth_shim::proto::Request::Resize {
        width: w.clamp(0, u16::MAX as i64) as u16,
        height: h.clamp(0, u16::MAX as i64) as u16,
    };
    blocking(move || {
        berth_shim::client::request(&sock, &req)
            .map(|_| ())
            .map_err(|err| ApiError::InvalidParameter(format!("resize: {err}")))
    })
    .await?;
    d.events.container_with(
        &e.record(),
        "resize",
        [("height", h.to_string()), ("width", w.to_string())],
    );
    Ok(StatusCode::OK.into_response())
}
