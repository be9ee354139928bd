//! The container commands: `run`, `create`, `start`, `ps`, `logs`,
//! `exec`, `attach`, `stop`, `restart`, `kill`, `rm`, `pause`,
//! `unpause`, `rename`, `update`, `wait`, `top`, `port`, `diff`,
//! `export`, `container prune`.

use berth_api::containers::{
    ContainerCreateResponse, ContainerPruneResponse, ContainerSummary, ContainerTopResponse,
    ContainerUpdateRequest, ContainerUpdateResponse, ContainerWaitResponse, ExecConfig,
    ExecInspect, ExecStartConfig, FilesystemChange, IdResponse,
};
use futures_util::StreamExt;
use http::{HeaderMap, Method};
use tokio::io::AsyncWriteExt;

use super::{confirm, eprint, filters_json, print};
use crate::args::{
    AttachArgs, CommitArgs, ExecArgs, ExportArgs, KillArgs, LogsArgs, Names, OneName, PortArgs,
    PruneArgs, PsArgs, RenameArgs, RmArgs, RunArgs, StartArgs, StopArgs, TopArgs, UpdateArgs,
};
use crate::client::{Client, chunks, empty, enc, json_body, query};
use crate::commands::create_opts::CreateOpts;
use crate::error::{CliError, Result};
use crate::formatter::{Format, ellipsis, row, short_id};
use crate::stream::{Ended, RawTerminal, pump};
use crate::template::Value;
use crate::units::{ago, go_time_string, human_size_precision, now_secs, parse_timestamp};

fn cpath(name: &str, rest: &str) -> String {
    format!("/containers/{}{rest}", enc(name))
}

/// Create, pulling the image first when the daemon has none (as docker).
pub async fn create_container(c: &Client, o: &CreateOpts, detach: bool) -> Result<String> {
    let body = o.to_request(detach)?;
    let mut q = vec![];
    if let Some(n) = &o.name {
        q.push(("name", n.clone()));
    }
    if let Some(p) = &o.platform {
        q.push(("platform", p.clone()));
    }
    let path = format!("/containers/create{}", query(&q));
    if o.pull == "always" {
        pull_quietly(c, o).await?;
    }
    let r: ContainerCreateResponse = match c.post(&path, json_body(&body)).await {
        Err(CliError::Daemon {
            status: 404,
            message,
        }) if message.starts_with("No such image") && o.pull != "never" => {
            eprint(&format!(
                "Unable to find image '{}' locally\n",
                with_tag(&o.image)
            ));
            pull_quietly(c, o).await?;
            c.post(&path, json_body(&body)).await?
        }
        r => r?,
    };
    for w in &r.warnings {
        eprint(&format!("WARNING: {w}\n"));
    }
    Ok(r.id)
}

fn with_tag(image: &str) -> String {
    match super::split_tag(image) {
        (_, Some(_)) => image.to_string(),
        _ if image.contains('@') => image.to_string(),
        (n, None) => format!("{n}:latest"),
    }
}

/// docker run's pull: progress on stderr.
async fn pull_quietly(c: &Client, o: &CreateOpts) -> Result<()> {
    let (repo, tag) = super::split_tag(&o.image);
    let mut q = vec![("fromImage", repo.to_string())];
    q.push(("tag", tag.unwrap_or("latest").to_string()));
    let mut h = HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&crate::auth::for_reference(repo)) {
        h.insert("x-registry-auth", v);
    }
    let resp = c
        .call(
            Method::POST,
            &format!("/images/create{}", query(&q)),
            h,
            empty(),
        )
        .await?;
    let mut lines = crate::client::Lines::new(resp);
    if o.quiet {
        crate::jsonmessage::Display::new(std::io::sink(), false, 80)
            .stream(&mut lines)
            .await
    } else {
        use std::io::IsTerminal;
        crate::jsonmessage::Display::new(std::io::stderr(), std::io::stderr().is_terminal(), 80)
            .stream(&mut lines)
            .await
    }
}

/// `create`: the daemon's errors as they are (docker exits 1 on them).
pub async fn create(c: &Client, o: &CreateOpts) -> Result<()> {
    let id = create_container(c, o, false).await?;
    print(&format!("{id}\n"))
}

/// docker's run errors: 125 for the daemon's, 126/127 for a command that
/// cannot be run or found, printed as docker's `StatusError`
/// (`berth: <error>`, a blank line, a pointer to `--help`).
fn run_error(e: CliError) -> CliError {
    match e {
        CliError::Status(_) => e,
        other => {
            let text = other.to_string();
            eprint(&format!(
                "berth: {text}\n\nRun 'berth run --help' for more information\n"
            ));
            CliError::Status(run_error_code(&text))
        }
    }
}

/// docker's `toStatusError`: the exit status for a run that failed.
fn run_error_code(text: &str) -> i32 {
    if text.contains("executable file not found") || text.contains("no such file or directory") {
        127
    } else if text.contains("permission denied") || text.contains("is a directory") {
        126
    } else {
        125
    }
}

/// Keep the daemon's idea of the terminal's size in step with ours.
fn forward_resizes(c: &Client, path: String) {
    // Listen before the first resize: SIGWINCH is ignored by default, so
    // one that came while the first request was in flight would be lost.
    let sig = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change());
    let c = c.clone();
    tokio::spawn(async move {
        let resize = |c: Client, path: String| async move {
            if let Some((h, w)) = super::terminal_size(libc::STDIN_FILENO) {
                let _ = c.post_ok(&format!("{path}?h={h}&w={w}"), empty()).await;
            }
        };
        resize(c.clone(), path.clone()).await;
        let Ok(mut sig) = sig else {
            return;
        };
        while sig.recv().await.is_some() {
            resize(c.clone(), path.clone()).await;
        }
    });
}

pub async fn run(c: &Client, a: &RunArgs) -> Result<()> {
    let o = &a.opts;
    let id = create_container(c, o, a.detach).await.map_err(run_error)?;
    if a.detach {
        c.post_ok(&cpath(&id, "/start"), empty())
            .await
            .map_err(run_error)?;
        return print(&format!("{id}\n"));
    }
    // Wait and attach before start: no output and no exit is missed.
    let condition = if o.rm { "removed" } else { "next-exit" };
    let wait = {
        let c = c.clone();
        let path = cpath(&id, &format!("/wait?condition={condition}"));
        tokio::spawn(async move { c.post::<ContainerWaitResponse>(&path, empty()).await })
    };
    let streams = o.streams(false)?;
    let h = c
        .hijack(&cpath(&id, &streams.attach_query()), empty())
        .await
        .map_err(run_error)?;
    let raw = if o.tty && streams.stdin {
        RawTerminal::stdin()
    } else {
        None
    };
    if let Err(e) = c.post_ok(&cpath(&id, "/start"), empty()).await {
        drop(raw);
        return Err(run_error(e));
    }
    if o.tty {
        forward_resizes(c, cpath(&id, "/resize"));
    }
    let ended = pump(h, o.tty, streams.stdin).await;
    drop(raw);
    if ended? == Ended::Detached {
        return Ok(());
    }
    let status = match wait.await {
        Ok(Ok(w)) => {
            if let Some(e) = w.error.filter(|e| !e.message.is_empty()) {
                eprint(&format!("{}\n", e.message));
            }
            w.status_code
        }
        Ok(Err(e)) => return Err(run_error(e)),
        Err(_) => 125,
    };
    if status == 0 {
        Ok(())
    } else {
        Err(CliError::Status(status as i32))
    }
}

pub async fn start(c: &Client, a: &StartArgs) -> Result<()> {
    if a.attach || a.interactive {
        let name = &a.containers[0];
        let info: serde_json::Value = c.get(&cpath(name, "/json")).await?;
        let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
        let q = format!(
            "/attach?stream=1&stdout=1&stderr=1{}",
            if a.interactive { "&stdin=1" } else { "" }
        );
        let wait = {
            let c = c.clone();
            let path = cpath(name, "/wait?condition=next-exit");
            tokio::spawn(async move { c.post::<ContainerWaitResponse>(&path, empty()).await })
        };
        let h = c.hijack(&cpath(name, &q), empty()).await?;
        let raw = if tty && a.interactive {
            RawTerminal::stdin()
        } else {
            None
        };
        c.post_ok(&cpath(name, "/start"), empty()).await?;
        let ended = pump(h, tty, a.interactive).await;
        drop(raw);
        if ended? == Ended::Detached {
            return Ok(());
        }
        let code = match wait.await {
            Ok(Ok(w)) => w.status_code,
            _ => 0,
        };
        return if code == 0 {
            Ok(())
        } else {
            Err(CliError::Status(code as i32))
        };
    }
    // docker names the ones that failed once more at the end.
    let mut failed = vec![];
    for n in &a.containers {
        match c.post_ok(&cpath(n, "/start"), empty()).await {
            Ok(()) => print(&format!("{n}\n"))?,
            Err(e @ CliError::Connect { .. }) => return Err(e),
            Err(e) => {
                eprint(&format!("{e}\n"));
                failed.push(n.as_str());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Message(format!(
            "Error: failed to start containers: {}",
            failed.join(", ")
        )))
    }
}

/// Run `f` for each name, printing its output; errors are printed and
/// make the exit status 1, as docker's multi-container commands do.
async fn each<F, Fut>(names: &[String], f: F) -> Result<()>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<String>>,
{
    let mut failed = false;
    for n in names {
        match f(n.clone()).await {
            Ok(out) => print(&out)?,
            Err(e @ CliError::Connect { .. }) => return Err(e),
            Err(e) => {
                eprint(&format!("{e}\n"));
                failed = true;
            }
        }
    }
    if failed {
        Err(CliError::Status(1))
    } else {
        Ok(())
    }
}

pub async fn stop(c: &Client, a: &StopArgs, what: &str) -> Result<()> {
    let mut q = vec![];
    if let Some(t) = a.timeout {
        q.push(("t", t.to_string()));
    }
    if let Some(s) = &a.signal {
        q.push(("signal", s.clone()));
    }
    let q = query(&q);
    each(&a.containers, |n| {
        let q = q.clone();
        async move {
            c.post_ok(&cpath(&n, &format!("/{what}{q}")), empty())
                .await?;
            Ok(format!("{n}\n"))
        }
    })
    .await
}

pub async fn kill(c: &Client, a: &KillArgs) -> Result<()> {
    let q = a
        .signal
        .as_ref()
        .map_or(String::new(), |s| query(&[("signal", s.clone())]));
    each(&a.containers, |n| {
        let q = q.clone();
        async move {
            c.post_ok(&cpath(&n, &format!("/kill{q}")), empty()).await?;
            Ok(format!("{n}\n"))
        }
    })
    .await
}

pub async fn rm(c: &Client, a: &RmArgs) -> Result<()> {
    let mut q = vec![];
    if a.force {
        q.push(("force", "1".to_string()));
    }
    if a.volumes {
        q.push(("v", "1".to_string()));
    }
    let q = query(&q);
    each(&a.containers, |n| {
        let q = q.clone();
        async move {
            c.delete_ok(&cpath(&n, &q)).await?;
            Ok(format!("{n}\n"))
        }
    })
    .await
}

pub async fn simple(c: &Client, a: &Names, what: &str) -> Result<()> {
    each(&a.containers, |n| async move {
        c.post_ok(&cpath(&n, &format!("/{what}")), empty()).await?;
        Ok(format!("{n}\n"))
    })
    .await
}

pub async fn commit(c: &Client, a: &CommitArgs) -> Result<()> {
    let mut q = vec![("container", a.container.clone())];
    if let Some(r) = &a.repository {
        let (repo, tag) = super::split_tag(r);
        q.push(("repo", repo.to_string()));
        q.push(("tag", tag.unwrap_or("latest").to_string()));
    }
    for (k, v) in [("author", &a.author), ("comment", &a.message)] {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    q.push(("pause", a.pause.to_string()));
    for ch in &a.change {
        q.push(("changes", ch.clone()));
    }
    let r: IdResponse = c
        .post(&format!("/commit{}", query(&q)), json_body(&()))
        .await?;
    print(&format!("{}\n", r.id))
}

pub async fn update(c: &Client, a: &UpdateArgs) -> Result<()> {
    use super::create_opts::{memory, restart_policy};
    // A bad value is a flag error: docker adds the usage to it.
    let given = |v: &Option<String>, flag: &str| -> Result<Option<i64>> {
        v.as_ref()
            .map(|_| memory(flag, v))
            .transpose()
            .map_err(|e| {
                CliError::Usage(format!(
                    "{e}\n\nUsage:  berth update [OPTIONS] CONTAINER [CONTAINER...]\n\n\
                     Run 'berth update --help' for more information"
                ))
            })
    };
    let body = ContainerUpdateRequest {
        memory: given(&a.memory, "-m, --memory")?,
        memory_swap: given(&a.memory_swap, "--memory-swap")?,
        memory_reservation: given(&a.memory_reservation, "--memory-reservation")?,
        nano_cpus: a.cpus.map(|c| (c * 1e9).round() as i64),
        cpu_shares: a.cpu_shares,
        cpu_period: a.cpu_period,
        cpu_quota: a.cpu_quota,
        cpuset_cpus: a.cpuset_cpus.clone(),
        cpuset_mems: a.cpuset_mems.clone(),
        pids_limit: a.pids_limit,
        blkio_weight: a.blkio_weight,
        restart_policy: a.restart.as_deref().map(restart_policy).transpose()?,
    };
    if body == ContainerUpdateRequest::default() {
        return Err(CliError::Message(
            "you must provide one or more flags when using this command".into(),
        ));
    }
    let body = &body;
    each(&a.containers, |n| async move {
        let r: ContainerUpdateResponse = c.post(&cpath(&n, "/update"), json_body(body)).await?;
        for w in r.warnings {
            eprint(&format!("{w}\n"));
        }
        Ok(format!("{n}\n"))
    })
    .await
}

pub async fn rename(c: &Client, a: &RenameArgs) -> Result<()> {
    let (old, new) = (a.container.trim(), a.new_name.trim());
    if old.is_empty() || new.is_empty() {
        return Err(CliError::Message(
            "Error: Neither old nor new names may be empty".into(),
        ));
    }
    let path = cpath(
        old,
        &format!("/rename{}", query(&[("name", new.to_string())])),
    );
    match c.post_ok(&path, empty()).await {
        Err(e @ CliError::Connect { .. }) => Err(e),
        Err(e) => {
            eprint(&format!("{e}\n"));
            Err(CliError::Message(format!(
                "Error: failed to rename container named {old}"
            )))
        }
        ok => ok,
    }
}

pub async fn wait(c: &Client, a: &Names) -> Result<()> {
    each(&a.containers, |n| async move {
        let w: ContainerWaitResponse = c.post(&cpath(&n, "/wait"), empty()).await?;
        Ok(format!("{}\n", w.status_code))
    })
    .await
}

pub async fn top(c: &Client, a: &TopArgs) -> Result<()> {
    let q = if a.ps_args.is_empty() {
        String::new()
    } else {
        query(&[("ps_args", a.ps_args.join(" "))])
    };
    let t: ContainerTopResponse = c.get(&cpath(&a.container, &format!("/top{q}"))).await?;
    let mut text = t.titles.join("\t");
    text.push('\n');
    for p in &t.processes {
        text.push_str(&p.join("\t"));
        text.push('\n');
    }
    print(
        &crate::tabwriter::TabWriter {
            min_width: 20,
            padding: 1,
        }
        .format(&text),
    )
}

pub async fn port(c: &Client, a: &PortArgs) -> Result<()> {
    let info: berth_api::containers::ContainerInspect =
        c.get(&cpath(&a.container, "/json")).await?;
    let mut lines: Vec<String> = Vec::new();
    let want = a.port.as_ref().map(|p| {
        if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        }
    });
    for (port, bindings) in &info.network_settings.ports {
        if want.as_ref().is_some_and(|w| w != port) {
            continue;
        }
        for b in bindings.iter().flatten() {
            let ip = if b.host_ip.is_empty() {
                "0.0.0.0"
            } else {
                &b.host_ip
            };
            if want.is_some() {
                lines.push(format!("{ip}:{}", b.host_port));
            } else {
                lines.push(format!("{port} -> {ip}:{}", b.host_port));
            }
        }
    }
    // docker sorts the lines naturally: 80/tcp before 7000/udp.
    lines.sort_by(|x, y| natural_cmp(x, y));
    let out: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if out.is_empty()
        && let Some(w) = want
    {
        return Err(CliError::Message(format!(
            "Error: No public port '{w}' published for {}",
            a.container
        )));
    }
    print(&out)
}

/// Order strings with their runs of digits compared as numbers.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (x, y) = (chunks(a), chunks(b));
    for ((dx, cx), (dy, cy)) in x.iter().zip(y.iter()) {
        let o = if *dx && *dy {
            let (tx, ty) = (cx.trim_start_matches('0'), cy.trim_start_matches('0'));
            tx.len().cmp(&ty.len()).then(tx.cmp(ty))
        } else {
            cx.cmp(cy)
        };
        if o.is_ne() {
            return o;
        }
    }
    x.len().cmp(&y.len())
}

pub async fn diff(c: &Client, a: &OneName) -> Result<()> {
    let changes: Option<Vec<FilesystemChange>> = c.get(&cpath(&a.container, "/changes")).await?;
    let mut out = String::new();
    for ch in changes.unwrap_or_default() {
        let k = match ch.kind {
            0 => 'C',
            1 => 'A',
            _ => 'D',
        };
        out.push_str(&format!("{k} {}\n", ch.path));
    }
    print(&out)
}

async fn download(c: &Client, path: &str, output: Option<&std::path::Path>) -> Result<()> {
    use std::io::IsTerminal;
    if output.is_none() && std::io::stdout().is_terminal() {
        return Err(CliError::Message(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
        ));
    }
    let resp = c.call(Method::GET, path, HeaderMap::new(), empty()).await?;
    let mut body = chunks(resp);
    let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match output {
        Some(p) => Box::new(
            tokio::fs::File::create(p)
                .await
                .map_err(CliError::io(format!("open {}", p.display())))?,
        ),
        None => Box::new(tokio::io::stdout()),
    };
    while let Some(chunk) = body.next().await {
        sink.write_all(&chunk?)
            .await
            .map_err(CliError::io("writing the archive"))?;
    }
    sink.flush()
        .await
        .map_err(CliError::io("writing the archive"))
}

pub async fn export(c: &Client, a: &ExportArgs) -> Result<()> {
    download(c, &cpath(&a.container, "/export"), a.output.as_deref()).await
}

pub async fn prune(c: &Client, a: &PruneArgs) -> Result<()> {
    if !a.force && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(());
    }
    let q = filters_json(&a.filter)?.map_or(String::new(), |f| query(&[("filters", f)]));
    let r: ContainerPruneResponse = c.post(&format!("/containers/prune{q}"), empty()).await?;
    print(&super::prune_report(
        "Deleted Containers:",
        r.containers_deleted,
        r.space_reclaimed,
    ))
}

pub async fn logs(c: &Client, a: &LogsArgs) -> Result<()> {
    let info: serde_json::Value = c.get(&cpath(&a.container, "/json")).await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let now = now_secs();
    let mut q = vec![
        ("stdout", "1".to_string()),
        ("stderr", "1".to_string()),
        ("tail", a.tail.clone()),
    ];
    if a.follow {
        q.push(("follow", "1".into()));
    }
    if a.timestamps {
        q.push(("timestamps", "1".into()));
    }
    if a.details {
        q.push(("details", "1".into()));
    }
    for (k, v) in [("since", &a.since), ("until", &a.until)] {
        if let Some(v) = v {
            let t = parse_timestamp(v, now)
                .ok_or_else(|| CliError::Usage(format!("invalid value for \"{k}\": {v}")))?;
            q.push((k, t));
        }
    }
    let resp = c
        .call(
            Method::GET,
            &cpath(&a.container, &format!("/logs{}", query(&q))),
            HeaderMap::new(),
            empty(),
        )
        .await?;
    let body = chunks(resp).map(|r| r.map_err(|e| std::io::Error::other(e.to_string())));
    let mut reader = tokio_util_reader(body);
    let mut out = tokio::io::stdout();
    if tty {
        tokio::io::copy(&mut reader, &mut out)
            .await
            .map_err(CliError::io("reading the logs"))?;
    } else {
        let mut err = tokio::io::stderr();
        crate::stream::demux(&mut reader, &mut out, &mut err)
            .await
            .map_err(CliError::io("reading the logs"))?;
    }
    Ok(())
}

/// A byte stream as an `AsyncRead`.
fn tokio_util_reader<S>(s: S) -> impl tokio::io::AsyncRead + Unpin
where
    S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin,
{
    StreamReader {
        inner: s,
        buf: bytes::Bytes::new(),
    }
}

struct StreamReader<S> {
    inner: S,
    buf: bytes::Bytes,
}

impl<S> tokio::io::AsyncRead for StreamReader<S>
where
    S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin,
{
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        loop {
            if !self.buf.is_empty() {
                let n = self.buf.len().min(out.remaining());
                out.put_slice(&self.buf.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match self.inner.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(b))) => self.buf = b,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

pub async fn exec(c: &Client, a: &ExecArgs) -> Result<()> {
    let attach = !a.detach;
    let cfg = ExecConfig {
        attach_stdin: attach && a.interactive,
        attach_stdout: attach,
        attach_stderr: attach,
        tty: a.tty,
        env: (!a.env.is_empty()).then(|| a.env.clone()),
        cmd: Some(a.command.clone()),
        privileged: a.privileged,
        user: a.user.clone().unwrap_or_default(),
        working_dir: a.workdir.clone().unwrap_or_default(),
        console_size: if a.tty {
            super::terminal_size(libc::STDIN_FILENO).map(|(h, w)| [h as u32, w as u32])
        } else {
            None
        },
        ..ExecConfig::default()
    };
    let id: IdResponse = c
        .post(&cpath(&a.container, "/exec"), json_body(&cfg))
        .await?;
    let start = ExecStartConfig {
        detach: a.detach,
        tty: a.tty,
        console_size: cfg.console_size,
    };
    let path = format!("/exec/{}/start", id.id);
    if a.detach {
        return c.post_ok(&path, json_body(&start)).await;
    }
    let h = c.hijack(&path, json_body(&start)).await?;
    let raw = if a.tty && a.interactive {
        RawTerminal::stdin()
    } else {
        None
    };
    if a.tty {
        forward_resizes(c, format!("/exec/{}/resize", id.id));
    }
    let ended = pump(h, a.tty, a.interactive).await;
    drop(raw);
    if ended? == Ended::Detached {
        return Ok(());
    }
    let info: ExecInspect = c.get(&format!("/exec/{}/json", id.id)).await?;
    match info.exit_code {
        Some(0) | None => Ok(()),
        Some(n) => Err(CliError::Status(n as i32)),
    }
}

pub async fn attach(c: &Client, a: &AttachArgs) -> Result<()> {
    let info: serde_json::Value = c.get(&cpath(&a.container, "/json")).await?;
    if info["State"]["Running"].as_bool() != Some(true) {
        return Err(CliError::Message(
            "You cannot attach to a stopped container, start it first".into(),
        ));
    }
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !a.no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let q = format!(
        "/attach?stream=1&stdout=1&stderr=1{}",
        if stdin { "&stdin=1" } else { "" }
    );
    let h = c.hijack(&cpath(&a.container, &q), empty()).await?;
    let raw = if tty && stdin {
        RawTerminal::stdin()
    } else {
        None
    };
    if tty {
        forward_resizes(c, cpath(&a.container, "/resize"));
    }
    let ended = pump(h, tty, stdin).await;
    drop(raw);
    if ended? == Ended::Detached {
        return Ok(());
    }
    let w: Result<ContainerWaitResponse> = c.post(&cpath(&a.container, "/wait"), empty()).await;
    match w {
        Ok(w) if w.status_code != 0 => Err(CliError::Status(w.status_code as i32)),
        _ => Ok(()),
    }
}

pub const PS_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
pub const PS_HEADER: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Status", "STATUS"),
    ("Ports", "PORTS"),
    ("Names", "NAMES"),
    ("Size", "SIZE"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("State", "STATE"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

/// docker's `DisplayablePorts`: ports sorted (private port, address,
/// public port, protocol); runs of consecutive ports published on the
/// same number fold into one range (`0.0.0.0:80-81->80-81/tcp`), as do
/// runs of unpublished ones (`80-81/tcp`); a port published on another
/// number stands alone, after the runs.
pub fn display_ports(c: &ContainerSummary) -> String {
    let mut ports: Vec<&berth_api::containers::Port> = c.ports.iter().collect();
    ports.sort_by(|a, b| {
        (a.private_port, &a.ip, a.public_port, &a.kind).cmp(&(
            b.private_port,
            &b.ip,
            b.public_port,
            &b.kind,
        ))
    });
    let join = |ip: &str, port: &str| {
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    let render = |(ip, kind): &(String, String), first: u16, last: u16| {
        let span = if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        };
        if ip.is_empty() {
            format!("{span}/{kind}")
        } else {
            format!("{}->{span}/{kind}", join(ip, &span))
        }
    };
    // Runs by (address, protocol), in the order each key first appears.
    let mut runs: Vec<((String, String), u16, u16)> = Vec::new();
    let mut out = Vec::new();
    let mut remapped = Vec::new();
    for p in ports {
        let ip = match p.public_port {
            Some(pp) if pp != p.private_port => {
                let ip = if p.ip.is_empty() { "0.0.0.0" } else { &p.ip };
                remapped.push(format!(
                    "{}->{}/{}",
                    join(ip, &pp.to_string()),
                    p.private_port,
                    p.kind
                ));
                continue;
            }
            Some(_) if p.ip.is_empty() => "0.0.0.0".to_string(),
            Some(_) => p.ip.clone(),
            None => String::new(),
        };
        let key = (ip, p.kind.clone());
        match runs.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, last)) if p.private_port == last.wrapping_add(1) => {
                *last = p.private_port;
            }
            Some(run) => {
                out.push(render(&run.0, run.1, run.2));
                run.1 = p.private_port;
                run.2 = p.private_port;
            }
            None => runs.push((key, p.private_port, p.private_port)),
        }
    }
    out.extend(runs.iter().map(|(k, f, l)| render(k, *f, *l)));
    out.extend(remapped);
    out.join(", ")
}

pub fn ps_rows(list: &[ContainerSummary], trunc: bool, now: i64) -> Vec<Value> {
    list.iter()
        .map(|c| {
            let names: Vec<String> = c
                .names
                .iter()
                .map(|n| n.trim_start_matches('/').to_string())
                .filter(|n| !trunc || !n.contains('/'))
                .collect();
            let image = if trunc && c.image.starts_with("sha256:") {
                short_id(&c.image)
            } else {
                c.image.clone()
            };
            let command = if trunc {
                ellipsis(&c.command, 20)
            } else {
                c.command.clone()
            };
            let size = match (c.size_rw, c.size_root_fs) {
                (Some(rw), Some(root)) => format!(
                    "{} (virtual {})",
                    human_size_precision(rw as f64, 3),
                    human_size_precision(root as f64, 3)
                ),
                (Some(rw), None) => human_size_precision(rw as f64, 3),
                _ => "0B".into(),
            };
            let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mounts: Vec<String> = c
                .mounts
                .iter()
                .map(|m| {
                    let n = if m.name.is_empty() {
                        &m.source
                    } else {
                        &m.name
                    };
                    if trunc { ellipsis(n, 15) } else { n.clone() }
                })
                .collect();
            row(vec![
                (
                    "ID",
                    Value::Str(if trunc { short_id(&c.id) } else { c.id.clone() }),
                ),
                ("Image", Value::Str(image)),
                (
                    "Command",
                    Value::Str(serde_json::to_string(&command).unwrap_or_default()),
                ),
                ("CreatedAt", Value::Str(go_time_string(c.created))),
                ("RunningFor", Value::Str(ago(c.created, now))),
                ("Status", Value::str(&c.status)),
                ("State", Value::str(&c.state)),
                ("Ports", Value::Str(display_ports(c))),
                // docker 28's context has it (the image's platform); berthd
                // reports none.
                ("Platform", Value::Null),
                ("Names", Value::Str(names.join(","))),
                ("Size", Value::Str(size)),
                ("Labels", Value::Str(labels.join(","))),
                (
                    "Label",
                    Value::Map(
                        c.labels
                            .iter()
                            .map(|(k, v)| (k.clone(), Value::str(v)))
                            .collect(),
                    ),
                ),
                ("Mounts", Value::Str(mounts.join(","))),
                (
                    "Networks",
                    Value::Str(
                        c.network_settings
                            .networks
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                ),
                (
                    "LocalVolumes",
                    Value::Str(
                        c.mounts
                            .iter()
                            .filter(|m| m.kind == "volume")
                            .count()
                            .to_string(),
                    ),
                ),
            ])
        })
        .collect()
}

pub async fn ps(c: &Client, a: &PsArgs) -> Result<()> {
    let mut q = vec![];
    if a.all {
        q.push(("all", "1".to_string()));
    }
    let limit = if a.latest { 1 } else { a.last };
    if limit > 0 {
        q.push(("limit", limit.to_string()));
    }
    if a.size {
        q.push(("size", "1".to_string()));
    }
    if let Some(f) = filters_json(&a.filter)? {
        q.push(("filters", f));
    }
    let list: Vec<ContainerSummary> = c.get(&format!("/containers/json{}", query(&q))).await?;
    let default = if a.size {
        format!("{PS_TABLE}\t{{{{.Size}}}}")
    } else {
        PS_TABLE.to_string()
    };
    let format = Format::resolve(a.format.as_deref(), a.quiet, &default, "{{.ID}}");
    print(&format.render(PS_HEADER, &ps_rows(&list, !a.no_trunc, now_secs()))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::containers::Port;

    #[test]
    fn ps_table_like_docker() {
        let c = ContainerSummary {
            id: "0123456789abcdef0123".into(),
            names: vec!["/web".into()],
            image: "busybox".into(),
            command: "sh -c 'while true; do sleep 1; done'".into(),
            created: 1000,
            state: "running".into(),
            status: "Up 3 seconds".into(),
            ports: vec![Port {
                ip: "0.0.0.0".into(),
                private_port: 80,
                public_port: Some(8080),
                kind: "tcp".into(),
            }],
            ..Default::default()
        };
        let rows = ps_rows(&[c], true, 1000 + 130);
        let f = Format::resolve(None, false, PS_TABLE, "{{.ID}}");
        assert_eq!(
            f.render(PS_HEADER, &rows).unwrap(),
            "CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS         PORTS                  NAMES\n\
             0123456789ab   busybox   \"sh -c 'while true; …\"   2 minutes ago   Up 3 seconds   0.0.0.0:8080->80/tcp   web\n"
        );
        let f = Format::resolve(Some("{{.Names}} {{.State}}"), false, "", "");
        assert_eq!(f.render(PS_HEADER, &rows).unwrap(), "web running\n");
    }

    #[test]
    fn port_lines_sort_naturally() {
        let mut l = vec!["7000/udp -> 0.0.0.0:7000", "80/tcp -> 0.0.0.0:8080", ""];
        l.sort_by(|x, y| natural_cmp(x, y));
        assert_eq!(
            l,
            ["", "80/tcp -> 0.0.0.0:8080", "7000/udp -> 0.0.0.0:7000"]
        );
    }

    #[test]
    fn ports_fold_into_ranges_as_docker_prints_them() {
        let port = |ip: &str, private: u16, public: Option<u16>, kind: &str| Port {
            ip: ip.into(),
            private_port: private,
            public_port: public,
            kind: kind.into(),
        };
        let c = ContainerSummary {
            ports: vec![
                port("0.0.0.0", 81, Some(81), "tcp"),
                port("0.0.0.0", 80, Some(80), "tcp"),
                port("", 9000, None, "udp"),
                port("", 9001, None, "udp"),
                port("0.0.0.0", 53, Some(5353), "udp"),
                port("", 7000, None, "tcp"),
                port("", 7002, None, "tcp"),
                port("127.0.0.1", 443, Some(8443), "tcp"),
            ],
            ..Default::default()
        };
        assert_eq!(
            display_ports(&c),
            "7000/tcp, 0.0.0.0:80-81->80-81/tcp, 7002/tcp, 9000-9001/udp, \
             0.0.0.0:5353->53/udp, 127.0.0.1:8443->443/tcp"
        );
    }
}
