//! `docker exec`: one more process in a running container, run by a
//! berth-shim of its own in exec mode (`--exec --process`), which serves
//! the same socket protocol as a container's shim.
//!
//! Execs live in memory only ([`Execs`], on the daemon): a restart of
//! berthd forgets them, and they go when their container is removed. An
//! exec's files are in `<exec-root>/x/<exec id>` (process.json and the
//! shim's state) until its shim is gone and its exit code is read; its
//! socket is `<exec-root>/s/x-<32 hex>`, short enough for a unix socket
//! address as the containers' `c-<32 hex>` are.
//!
//! Start without `Detach` is a hijack like attach: dockerd answers 101
//! first and starts the process after, so a start that fails (no such
//! executable) is reported in the stream, with the exit code (127, 126)
//! in `GET /exec/{id}/json`, where the docker CLI reads it.

use std::collections::{HashMap, HashSet};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_api::containers::{
    ExecConfig, ExecInspect, ExecProcessConfig, ExecStartConfig, IdResponse,
};
use berth_shim::ExitRecord;
use berth_shim::proto::{AttachRequest, Request as ShimRequest};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::lifecycle::{self, Paths};
use super::record::{Record, Status};
use super::registry::Entry;
use super::{monitor, names};
use crate::error::{ApiError, Result};
use crate::images::blocking;
use crate::server::Daemon;

/// Where an exec is in its life.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecState {
    /// A start was asked for (a second one is refused).
    pub started: bool,
    pub running: bool,
    /// The process's host pid, once it ran.
    pub pid: i64,
    /// Set once it ended, or could not start.
    pub exit_code: Option<i64>,
}

#[derive(Debug)]
pub struct Exec {
    pub id: String,
    pub container: String,
    pub config: ExecConfig,
    state: watch::Sender<ExecState>,
}

impl Exec {
    pub fn state(&self) -> ExecState {
        self.state.borrow().clone()
    }

    /// `Entrypoint Args...`, as dockerd puts it in its event actions.
    fn command_line(&self) -> String {
        let cmd = self.config.cmd.as_deref().unwrap_or_default();
        match cmd.split_first() {
            Some((first, rest)) => format!("{first} {}", rest.join(" ")),
            None => String::new(),
        }
    }

    fn dir(&self, d: &Daemon) -> PathBuf {
        d.config.exec_root.join("x").join(&self.id)
    }

    fn socket(&self, d: &Daemon) -> PathBuf {
        d.config
            .exec_root
            .join("s")
            .join(format!("x-{}", &self.id[..32]))
    }

    /// The exit code from the shim's exit.json, if it wrote one and none
    /// is known yet. True when this call recorded it.
    fn settle_from_exit_file(&self, d: &Daemon) -> bool {
        let path = self.dir(d).join(berth_shim::files::EXIT);
        self.state.send_if_modified(|s| {
            if s.exit_code.is_some() || !s.running {
                return false;
            }
            let Some(rec) = std::fs::read(&path)
                .ok()
                .and_then(|raw| serde_json::from_slice::<ExitRecord>(&raw).ok())
            else {
                return false;
            };
            s.exit_code = Some(rec.exit_code as i64);
            s.running = false;
            true
        })
    }
}

/// Every exec berthd knows, by id.
#[derive(Debug, Default)]
pub struct Execs {
    by_id: Mutex<HashMap<String, Arc<Exec>>>,
    /// Containers whose removal is watched, to drop their execs.
    watched: Mutex<HashSet<String>>,
}

impl Execs {
    pub fn get(&self, id: &str) -> Result<Arc<Exec>> {
        self.by_id
            .lock()
            .expect("execs lock")
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("No such exec instance: {id}")))
    }

    /// The ids of the container's execs that have not ended, as a
    /// container's `ExecIDs` lists them.
    pub fn of_container(&self, container: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_id
            .lock()
            .expect("execs lock")
            .values()
            .filter(|x| x.container == container && x.state().exit_code.is_none())
            .map(|x| x.id.clone())
            .collect();
        v.sort();
        v
    }

    fn insert(&self, x: Arc<Exec>) {
        self.by_id
            .lock()
            .expect("execs lock")
            .insert(x.id.clone(), x);
    }

    /// Forget the container's execs; the files of those that are over go
    /// (a running one's follower removes its own).
    fn drop_container(&self, d: &Daemon, container: &str) {
        let gone: Vec<Arc<Exec>> = {
            let mut map = self.by_id.lock().expect("execs lock");
            let ids: Vec<String> = map
                .values()
                .filter(|x| x.container == container)
                .map(|x| x.id.clone())
                .collect();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        for x in gone {
            if !x.state().running {
                let _ = std::fs::remove_dir_all(x.dir(d));
            }
        }
        self.watched.lock().expect("watched lock").remove(container);
    }
}

/// Drop the container's execs once it is removed.
fn watch_removal(d: &Arc<Daemon>, e: &Entry) {
    if !d
        .execs
        .watched
        .lock()
        .expect("watched lock")
        .insert(e.id.clone())
    {
        return;
    }
    let mut w = e.watch();
    let (d, id) = (d.clone(), e.id.clone());
    tokio::spawn(async move {
        // An error: the entry itself is gone, so the container is too.
        let _ = w.wait_for(|p| p.removed).await;
        d.execs.drop_container(&d, &id);
    });
}

/// dockerd's refusals of an exec in a container that is not running.
fn check_running(rec: &Record) -> Result<()> {
    match rec.state.status {
        Status::Running => Ok(()),
        Status::Paused => Err(ApiError::Conflict(format!(
            "Container {} is paused, unpause the container before exec",
            rec.id
        ))),
        Status::Restarting => Err(ApiError::Conflict(format!(
            "Container {} is restarting, wait until the container is running",
            rec.id
        ))),
        _ => Err(ApiError::Conflict(format!(
            "Container {} is not running",
            rec.id
        ))),
    }
}

fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::InvalidParameter(format!("invalid JSON body: {e}")))
}

fn exec_event(d: &Daemon, x: &Exec, action: &str, code: Option<i64>) {
    let Ok(e) = d.containers.get(&x.container) else {
        return;
    };
    let rec = e.record();
    match code {
        Some(c) => d.events.container_with(
            &rec,
            action,
            [("execID", x.id.clone()), ("exitCode", c.to_string())],
        ),
        None => d
            .events
            .container_with(&rec, action, [("execID", x.id.clone())]),
    }
}

/// `POST /containers/{id}/exec`.
pub async fn post_create(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let e = d.containers.get(&id)?;
    let config: ExecConfig = parse_body(&body)?;
    if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(ApiError::InvalidParameter(
            "No exec command specified".into(),
        ));
    }
    check_running(&e.record())?;
    let (state, _) = watch::channel(ExecState::default());
    let x = Arc::new(Exec {
        id: names::new_id(),
        container: e.id.clone(),
        config,
        state,
    });
    d.execs.insert(x.clone());
    watch_removal(&d, &e);
    exec_event(&d, &x, &format!("exec_create: {}", x.command_line()), None);
    Ok((StatusCode::CREATED, Json(IdResponse { id: x.id.clone() })).into_response())
}

/// `GET /exec/{id}/json`.
pub async fn get_inspect(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Result<Response> {
    let x = d.execs.get(&id)?;
    // The shim writes exit.json before it closes the streams: a client
    // that saw the end asks before the follower has seen the shim go.
    x.settle_from_exit_file(&d);
    let s = x.state();
    let c = &x.config;
    let cmd = c.cmd.clone().unwrap_or_default();
    Ok(Json(ExecInspect {
        can_remove: false,
        detach_keys: c.detach_keys.clone(),
        id: x.id.clone(),
        running: s.running,
        exit_code: s.exit_code,
        process_config: ExecProcessConfig {
            privileged: c.privileged,
            user: c.user.clone(),
            tty: c.tty,
            entrypoint: cmd.first().cloned().unwrap_or_default(),
            arguments: cmd.iter().skip(1).cloned().collect(),
        },
        open_stdin: c.attach_stdin,
        open_stderr: c.attach_stderr,
        open_stdout: c.attach_stdout,
        container_id: x.container.clone(),
        pid: s.pid,
    })
    .into_response())
}

/// `POST /exec/{id}/resize?h=&w=`: waits (10 s at most, as dockerd) for
/// a start in progress.
pub async fn post_resize(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let x = d.execs.get(&id)?;
    let dim = |k: &str| -> Result<u16> {
        let v = q.get(k).map(String::as_str).unwrap_or("0");
        v.parse::<i64>()
            .map(|n| n.clamp(0, u16::MAX as i64) as u16)
            .map_err(|_| ApiError::InvalidParameter(format!("invalid value for {k}: {v}")))
    };
    let (height, width) = (dim("h")?, dim("w")?);
    let mut w = x.state.subscribe();
    let ready = tokio::time::timeout(
        Duration::from_secs(10),
        w.wait_for(|s| s.running || s.exit_code.is_some()),
    )
    .await
    .map(|r| r.is_ok_and(|s| s.running));
    match ready {
        Err(_) => {
            return Err(ApiError::Internal(
                "timeout waiting for exec session ready".into(),
            ));
        }
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::InvalidParameter(
                "exec process is not started".into(),
            ));
        }
    }
    let sock = x.socket(&d);
    blocking(move || {
        berth_shim::client::request(&sock, &ShimRequest::Resize { width, height })
            .map(|_| ())
            .map_err(|err| ApiError::InvalidParameter(format!("resize: {err}")))
    })
    .await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /exec/{id}/start`.
pub async fn post_start(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::InvalidParameter(format!("reading the body: {e}")))?;
    let req = Request::from_parts(parts, axum::body::Body::empty());
    let start: ExecStartConfig = parse_body(&body)?;
    let x = d.execs.get(&id)?;
    let e = d.containers.get(&x.container)?;
    check_running(&e.record())?;
    let mut refused = None;
    x.state.send_if_modified(|s| {
        if s.exit_code.is_some() {
            refused = Some(format!("Error: Exec command {} has already run", x.id));
        } else if s.started {
            refused = Some(format!("Error: Exec command {} is already running", x.id));
        } else {
            s.started = true;
        }
        refused.is_none()
    });
    if let Some(msg) = refused {
        return Err(ApiError::Conflict(msg));
    }
    exec_event(&d, &x, &format!("exec_start: {}", x.command_line()), None);
    let console = start.console_size.or(x.config.console_size);
    if start.detach {
        let (d2, x2) = (d.clone(), x.clone());
        let launched = blocking(move || Ok(launch(&d2, &x2, None, console))).await?;
        let (_, shim_pid, err) = launched;
        if let Some(pid) = shim_pid {
            follow(d.clone(), x.clone(), pid);
        }
        return match err {
            Some(err) => Err(err),
            None => Ok(StatusCode::OK.into_response()),
        };
    }
    let tty = x.config.tty;
    let attach = AttachRequest {
        stdin: x.config.attach_stdin,
        stdout: x.config.attach_stdout,
        stderr: x.config.attach_stderr,
    };
    let shim = async move {
        let (d2, x2) = (d.clone(), x.clone());
        let launched = tokio::task::spawn_blocking(move || launch(&d2, &x2, Some(attach), console))
            .await
            .unwrap_or_else(|err| {
                (
                    None,
                    None,
                    Some(ApiError::Internal(format!("exec start: {err}"))),
                )
            });
        let (stream, shim_pid, err) = launched;
        if let Some(pid) = shim_pid {
            follow(d.clone(), x.clone(), pid);
        }
        match err {
            Some(err) => error_stream(&err.to_string(), tty),
            None => stream,
        }
    };
    Ok(super::attach::hijack(req, tty, shim))
}

/// Run `cmd` in the container as an exec nobody sees (a health probe):
/// its exit code and its output (stdout and stderr, at most 4 KiB), or
/// None when it outlived `limit` (it is killed then).
pub async fn probe(
    d: &Arc<Daemon>,
    container: &str,
    cmd: Vec<String>,
    limit: std::time::Duration,
) -> Result<(Option<i64>, String)> {
    let (state, _) = watch::channel(ExecState {
        started: true,
        ..Default::default()
    });
    let x = Arc::new(Exec {
        id: names::new_id(),
        container: container.to_string(),
        config: ExecConfig {
            attach_stdout: true,
            attach_stderr: true,
            cmd: Some(cmd),
            ..Default::default()
        },
        state,
    });
    let attach = AttachRequest {
        stdin: false,
        stdout: true,
        stderr: true,
    };
    let (d2, x2) = (d.clone(), x.clone());
    let (stream, shim_pid, err) =
        tokio::task::spawn_blocking(move || launch(&d2, &x2, Some(attach), None))
            .await
            .map_err(|e| ApiError::Internal(format!("health probe: {e}")))?;
    let Some(pid) = shim_pid else {
        return Err(err.unwrap_or_else(|| ApiError::Internal("health probe: no shim".into())));
    };
    follow(d.clone(), x.clone(), pid);
    if let Some(err) = err {
        return Ok((Some(start_failure_code(&err.to_string())), err.to_string()));
    }
    let read = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        if let Some(mut s) = stream {
            while let Ok(Some(f)) = berth_shim::proto::read_frame(&mut s) {
                if out.len() < 4096 {
                    out.extend_from_slice(&f.data[..f.data.len().min(4096 - out.len())]);
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    let mut w = x.state.subscribe();
    let ended = tokio::time::timeout(limit, async {
        let _ = w.wait_for(|s| s.exit_code.is_some()).await;
    })
    .await;
    if ended.is_err() {
        let pid = x.state().pid as i32;
        if pid > 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        return Ok((None, String::new()));
    }
    let output = read.await.unwrap_or_default();
    Ok((x.state().exit_code, output))
}

/// A stream that carries `msg` (on stderr without a terminal) and ends:
/// what a client attached to an exec that could not start reads.
fn error_stream(msg: &str, tty: bool) -> Option<StdUnixStream> {
    use std::io::Write;
    let (mut ours, theirs) = StdUnixStream::pair().ok()?;
    let text = format!("{msg}\r\n");
    if !tty {
        let _ = ours.write_all(&berth_shim::proto::frame_header(
            berth_shim::proto::STDERR,
            text.len(),
        ));
    }
    let _ = ours.write_all(text.as_bytes());
    Some(theirs)
}

/// Docker's exit codes for a process that could not start: 127 when the
/// command is not there, 126 when it cannot be run or anything else went
/// wrong.
fn start_failure_code(msg: &str) -> i64 {
    let m = msg.to_ascii_lowercase();
    if m.contains("executable file not found") || m.contains("no such file or directory") {
        127
    } else {
        126
    }
}

/// What a launch gives: the attached stream (when asked for), the shim's
/// pid (when one was started; it is to be followed), and the error.
type Launched = (Option<StdUnixStream>, Option<i32>, Option<ApiError>);

/// Run the exec: its process.json, its shim (`--no-start`), the attach,
/// the initial size, then `start`. Blocking. Records the outcome in the
/// exec's state.
fn launch(
    d: &Daemon,
    x: &Exec,
    attach: Option<AttachRequest>,
    console: Option<[u32; 2]>,
) -> Launched {
    let mut shim_pid = None;
    let r = launch_inner(d, x, attach, console, &mut shim_pid);
    match r {
        Ok((stream, pid)) => {
            x.state.send_modify(|s| {
                s.running = true;
                s.pid = pid as i64;
            });
            (stream, shim_pid, None)
        }
        Err((err, sent_start)) => {
            let msg = err.to_string();
            tracing::info!(exec = x.id, container = x.container, "exec start: {msg}");
            if let Some(pid) = shim_pid
                && !sent_start
                && monitor::is_shim(pid)
            {
                // Still waiting for a start that will not come.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if shim_pid.is_none() {
                let _ = std::fs::remove_dir_all(x.dir(d));
            }
            x.state.send_modify(|s| {
                s.running = false;
                s.exit_code = Some(start_failure_code(&msg));
            });
            (None, shim_pid, Some(err))
        }
    }
}

/// The steps of [`launch`]; an error says whether `start` was sent.
fn launch_inner(
    d: &Daemon,
    x: &Exec,
    attach: Option<AttachRequest>,
    console: Option<[u32; 2]>,
    shim_pid: &mut Option<i32>,
) -> std::result::Result<(Option<StdUnixStream>, i32), (ApiError, bool)> {
    let before = |err: ApiError| (err, false);
    let e = d.containers.get(&x.container).map_err(before)?;
    let rec = e.record();
    check_running(&rec).map_err(before)?;
    let dir = x.dir(d);
    let sock = x.socket(d);
    let _ = std::fs::remove_dir_all(&dir);
    for p in [&dir, &d.config.exec_root.join("s")] {
        std::fs::create_dir_all(p).map_err(|err| {
            before(ApiError::Internal(format!(
                "creating {}: {err}",
                p.display()
            )))
        })?;
    }
    let process = process(d, &rec, &x.config).map_err(before)?;
    let process_file = dir.join("process.json");
    std::fs::write(
        &process_file,
        serde_json::to_vec_pretty(&process).expect("process json"),
    )
    .map_err(|err| {
        before(ApiError::Internal(format!(
            "writing {}: {err}",
            process_file.display()
        )))
    })?;
    let stdin = attach.is_some_and(|a| a.stdin);
    let mut cmd = std::process::Command::new(&d.shim);
    cmd.arg("--exec")
        .arg("--id")
        .arg(&rec.id)
        .arg("--process")
        .arg(&process_file)
        .arg("--state-dir")
        .arg(&dir)
        .arg("--runtime-root")
        .arg(lifecycle::runtime(d).root)
        .arg("--socket")
        .arg(&sock)
        .arg("--no-start");
    if stdin {
        // Docker closes an exec's stdin when the client's input ends.
        cmd.args(["--stdin", "--stdin-once"]);
    }
    if x.config.tty {
        cmd.arg("--tty");
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|err| {
            before(ApiError::Internal(format!(
                "running {}: {err}",
                d.shim.display()
            )))
        })?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        let msg = msg.trim().trim_start_matches("berth-shim: ");
        return Err(before(ApiError::Start(msg.to_string())));
    }
    *shim_pid = std::fs::read_to_string(dir.join(berth_shim::files::SHIM_PID))
        .ok()
        .and_then(|p| p.trim().parse().ok());
    if shim_pid.is_none() {
        return Err(before(ApiError::Internal(format!(
            "berth-shim for exec {} left no pid file in {}",
            x.id,
            dir.display()
        ))));
    }
    let stream = match attach {
        Some(a) => Some(
            berth_shim::client::attach(&sock, a)
                .map(|(_, s)| s)
                .map_err(|err| {
                    before(ApiError::Internal(format!(
                        "attaching to exec {}: {err}",
                        x.id
                    )))
                })?,
        ),
        None => None,
    };
    if let Some([h, w]) = console
        && x.config.tty
        && h > 0
        && w > 0
    {
        let _ = berth_shim::client::request(
            &sock,
            &ShimRequest::Resize {
                width: w.min(u16::MAX as u32) as u16,
                height: h.min(u16::MAX as u32) as u16,
            },
        );
    }
    match berth_shim::client::request(&sock, &ShimRequest::Start) {
        Ok(reply) => Ok((stream, reply.pid.unwrap_or_default())),
        Err(err) => {
            let msg = match err {
                berth_shim::Error::Refused { msg, .. } => msg,
                other => other.to_string(),
            };
            Err((
                ApiError::Start(format!("OCI runtime exec failed: {msg}")),
                true,
            ))
        }
    }
}

/// `name=value` entries: `over` replaces same-named ones in `env` or is
/// appended; a bare `name` removes it (dockerd's ReplaceOrAppendEnvValues).
fn merge_env(env: &mut Vec<String>, over: &[String]) {
    for o in over {
        let key = o.split('=').next().unwrap_or_default();
        let named = |e: &String| e.split('=').next() == Some(key);
        if !o.contains('=') {
            env.retain(|e| !named(e));
        } else if let Some(slot) = env.iter_mut().find(|e| named(e)) {
            *slot = o.clone();
        } else {
            env.push(o.clone());
        }
    }
}

/// The exec's OCI process: the container's, with the exec's command,
/// environment, user, working directory and terminal.
fn process(d: &Daemon, rec: &Record, c: &ExecConfig) -> Result<Value> {
    let base = lifecycle::runtime(d)
        .container_process(&rec.id)
        .map_err(|err| ApiError::Internal(format!("the process of {}: {err}", rec.id)))?;
    let mut p = serde_json::to_value(&base).expect("process json");
    let mut env: Vec<String> = p["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    if c.tty {
        merge_env(&mut env, &["TERM=xterm".into()]);
    }
    merge_env(&mut env, c.env.as_deref().unwrap_or_default());
    if !c.user.is_empty() {
        let rootfs = Paths::new(d, &rec.id).rootfs();
        let group_add = rec.host_config.group_add.clone().unwrap_or_default();
        let u = crate::spec::resolve_user(&rootfs, &c.user, &group_add)
            .map_err(|err| ApiError::Start(err.to_string()))?;
        p["user"] = serde_json::to_value(u.oci_user()).expect("user json");
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", u.home));
        }
    }
    if c.privileged {
        let all = json!(grantable_caps());
        p["capabilities"] = json!({"bounding": all, "effective": all, "permitted": all});
    }
    p["args"] = json!(c.cmd.clone().unwrap_or_default());
    p["env"] = json!(env);
    if !c.working_dir.is_empty() {
        p["cwd"] = json!(c.working_dir);
    }
    p["terminal"] = json!(c.tty);
    if let Some(o) = p.as_object_mut() {
        o.remove("consoleSize");
    }
    Ok(p)
}

/// Every capability berthd itself may hand on: all of them, less what
/// its own bounding set lacks (a daemon run in a container may not have
/// them all, and asking for one more fails the exec).
fn grantable_caps() -> Vec<&'static str> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    // ALL_CAPS is in bit order: a capability's index is its number.
    crate::spec::caps::ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1 << bit) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// Follow the exec's shim: when it is gone, the exit code (from
/// exit.json), `exec_die`, and its files go.
fn follow(d: Arc<Daemon>, x: Arc<Exec>, shim_pid: i32) {
    tokio::spawn(async move {
        monitor::process_gone(shim_pid).await;
        x.settle_from_exit_file(&d);
        x.state.send_if_modified(|s| {
            if s.exit_code.is_some() {
                return false;
            }
            // Gone without a record: killed before it could write one.
            tracing::warn!(
                exec = x.id,
                "berth-shim (pid {shim_pid}) died without an exit record"
            );
            s.exit_code = Some(137);
            s.running = false;
            true
        });
        let s = x.state();
        if s.pid != 0 {
            exec_event(&d, &x, "exec_die", s.exit_code);
        }
        let _ = std::fs::remove_dir_all(x.dir(&d));
        let _ = std::fs::remove_file(x.socket(&d));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_merges_by_name() {
        let mut env = vec!["PATH=/bin".to_string(), "A=1".into(), "B=2".into()];
        merge_env(&mut env, &["A=3".into(), "C=4".into(), "B".into()]);
        assert_eq!(env, ["PATH=/bin", "A=3", "C=4"]);
    }

    #[test]
    fn start_failures_map_to_docker_codes() {
        assert_eq!(
            start_failure_code("exec: \"nope\": executable file not found in $PATH"),
            127
        );
        assert_eq!(start_failure_code("exec /etc: permission denied"), 126);
    }

    #[test]
    fn refusals_name_the_container_state() {
        let r = Record {
            id: "c".into(),
            ..Default::default()
        };
        let mut paused = r.clone();
        paused.state.status = Status::Paused;
        assert!(
            check_running(&paused)
                .unwrap_err()
                .to_string()
                .contains("is paused, unpause the container before exec")
        );
        assert_eq!(
            check_running(&r).unwrap_err().to_string(),
            "Container c is not running"
        );
    }
}
