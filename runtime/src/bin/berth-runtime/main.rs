//! `berth-runtime`: runc's command line over berth's runtime library.

mod cli;
mod log;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use berth_runtime::cgroups::ManagerKind;
use berth_runtime::container::{default_root, foreground};
use berth_runtime::{Console, CreateOptions, ExecOptions, Runtime};
use clap::Parser;
use nix::sys::signal::Signal;
use tracing_subscriber::layer::SubscriberExt;

use cli::{CgroupManagerArg, Cli, Command, CreateArgs, ExecArgs, Format};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        println!(
            "berth-runtime version {}\nspec: {}",
            env!("CARGO_PKG_VERSION"),
            berth_runtime::state::OCI_VERSION
        );
        return ExitCode::SUCCESS;
    }
    let logger = match open_log(&cli) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("berth-runtime: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = render(&e);
            // With --log the caller reads errors from the log file (conmon
            // does); say it on stderr too for people at a terminal.
            if let Some(l) = &logger {
                l.line("error", &msg);
            }
            eprintln!("berth-runtime: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// One line: the context, then each cause not already spelled out by the
/// one before it (library errors name their cause in their message).
fn render(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}

/// Install the tracing subscriber; returns the file logger when --log is
/// given, so fatal errors reach the file as well.
fn open_log(cli: &Cli) -> Result<Option<Arc<log::RuncLog>>> {
    let level = if cli.debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    };
    let filter = tracing_subscriber::filter::LevelFilter::from_level(level);
    let out: Box<dyn Write + Send> = match &cli.log {
        Some(p) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening log file {}", p.display()))?,
        ),
        None => Box::new(std::io::stderr()),
    };
    let layer = Arc::new(log::RuncLog {
        out: Mutex::new(out),
        format: cli.log_format,
    });
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(log::Shared(layer.clone()));
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(cli.log.as_ref().map(|_| layer))
}

fn runtime(cli: &Cli) -> Result<Runtime> {
    if cli.systemd_cgroup {
        bail!("--systemd-cgroup is not supported: berth-runtime manages cgroups through cgroupfs");
    }
    let mut rt = Runtime::new(cli.root.clone().unwrap_or_else(default_root));
    rt.cgroup_manager = match cli.cgroup_manager {
        CgroupManagerArg::Cgroupfs => ManagerKind::Auto,
        CgroupManagerArg::None => ManagerKind::None,
    };
    Ok(rt)
}

fn create_options(a: &CreateArgs, console: Console) -> CreateOptions {
    CreateOptions {
        bundle: a.bundle.clone(),
        console,
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
    }
}

fn run(cli: Cli) -> Result<u8> {
    let Some(command) = &cli.command else {
        bail!("no command given (try --help)");
    };
    let rt = runtime(&cli)?;
    match command {
        Command::Create(a) => {
            let console = a
                .console_socket
                .clone()
                .map(Console::Socket)
                .unwrap_or_default();
            rt.create(&a.id, &create_options(a, console))
                .with_context(|| format!("create {}", a.id))?;
        }
        Command::Start { id } => rt.start(id).with_context(|| format!("start {id}"))?,
        Command::Run {
            create,
            detach,
            keep,
        } => return run_container(&rt, create, *detach, *keep),
        Command::State { id } => {
            let state = rt.state(id).with_context(|| format!("state {id}"))?;
            println!("{}", serde_json::to_string_pretty(&state)?);
        }
        Command::Kill { id, signal, all } => {
            let sig = parse_signal(signal.as_deref().unwrap_or("TERM"))?;
            rt.kill(id, sig, *all)
                .with_context(|| format!("kill {id}"))?;
        }
        Command::Delete { id, force } => rt
            .delete(id, *force)
            .with_context(|| format!("delete {id}"))?,
        Command::Exec(a) => return exec(&rt, a),
        Command::Ps {
            id,
            format,
            ps_args,
        } => ps(&rt, id, *format, ps_args)?,
        Command::List { format, quiet } => list(&rt, *format, *quiet)?,
        Command::Spec { bundle, rootless } => spec(bundle, *rootless)?,
        Command::Features => println!("{}", serde_json::to_string_pretty(&features())?),
        Command::Pause { id } => rt.pause(id).with_context(|| format!("pause {id}"))?,
        Command::Resume { id } => rt.resume(id).with_context(|| format!("resume {id}"))?,
        Command::Update(a) => {
            let resources = update_resources(a).with_context(|| format!("update {}", a.id))?;
            rt.update(&a.id, &resources)
                .with_context(|| format!("update {}", a.id))?;
        }
        Command::Events {
            id,
            stats,
            interval,
        } => events(&rt, id, *stats, *interval)?,
    }
    Ok(0)
}

fn exit_byte(code: i32) -> u8 {
    code.clamp(0, 255) as u8
}

fn run_container(rt: &Runtime, a: &CreateArgs, detach: bool, keep: bool) -> Result<u8> {
    let console = match (&a.console_socket, detach) {
        (Some(p), _) => Console::Socket(p.clone()),
        (None, false) => Console::Receive,
        (None, true) => Console::Inherit,
    };
    let started = rt
        .create(&a.id, &create_options(a, console))
        .with_context(|| format!("run {}", a.id))?;
    if let Err(e) = rt.start(&a.id) {
        let _ = rt.delete(&a.id, true);
        return Err(e).with_context(|| format!("run {}", a.id));
    }
    if detach {
        return Ok(0);
    }
    let code =
        foreground::wait(started.pid, started.console).with_context(|| format!("run {}", a.id))?;
    if !keep {
        rt.delete(&a.id, true)
            .with_context(|| format!("run {}: removing the exited container", a.id))?;
    }
    Ok(exit_byte(code))
}

/// Bytes from "1024", "512k", "64m", "2g"; -1 stays -1 (no limit).
fn parse_size(flag: &str, s: &str) -> Result<i64> {
    let s = s.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &lower[digits.len()..];
    let mult: i64 = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => bail!("--{flag} {s}: unknown unit {unit:?}"),
    };
    let n: i64 = digits
        .parse()
        .with_context(|| format!("--{flag} {s}: not a size"))?;
    n.checked_mul(mult)
        .with_context(|| format!("--{flag} {s}: too large"))
}

/// The resources `update` applies: a JSON document, overlaid with flags.
fn update_resources(a: &cli::UpdateArgs) -> Result<oci_spec::runtime::LinuxResources> {
    let mut v = match &a.resources {
        Some(p) if p.as_os_str() == "-" => {
            let mut raw = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut raw)?;
            serde_json::from_slice(&raw).context("resources from stdin")?
        }
        Some(p) => serde_json::from_slice(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("{}", p.display()))?,
        None => serde_json::json!({}),
    };
    let mut set = |section: &str, key: &str, val: serde_json::Value| {
        if !v[section].is_object() {
            v[section] = serde_json::json!({});
        }
        v[section][key] = val;
    };
    if let Some(m) = &a.memory {
        set("memory", "limit", parse_size("memory", m)?.into());
    }
    if let Some(m) = &a.memory_reservation {
        set(
            "memory",
            "reservation",
            parse_size("memory-reservation", m)?.into(),
        );
    }
    if let Some(m) = &a.memory_swap {
        set("memory", "swap", parse_size("memory-swap", m)?.into());
    }
    for (key, val) in [
        ("shares", a.cpu_share),
        ("period", a.cpu_period),
        ("realtimePeriod", a.cpu_rt_period),
    ] {
        if let Some(x) = val {
            set("cpu", key, x.into());
        }
    }
    for (key, val) in [
        ("quota", a.cpu_quota),
        ("realtimeRuntime", a.cpu_rt_runtime),
    ] {
        if let Some(x) = val {
            set("cpu", key, x.into());
        }
    }
    if let Some(c) = &a.cpuset_cpus {
        set("cpu", "cpus", c.clone().into());
    }
    if let Some(c) = &a.cpuset_mems {
        set("cpu", "mems", c.clone().into());
    }
    if let Some(p) = a.pids_limit {
        set("pids", "limit", p.into());
    }
    if let Some(w) = a.blkio_weight {
        set("blockIO", "weight", w.into());
    }
    let json = v.to_string();
    let de = &mut serde_json::Deserializer::from_str(&json);
    serde_path_to_error::deserialize(de)
        .map_err(|e| anyhow::anyhow!("linux.resources.{}: {}", e.path(), e.inner()))
}

/// `events`: JSON lines as runc prints them, {"type","id","data"}.
fn events(rt: &Runtime, id: &str, once: bool, interval: std::time::Duration) -> Result<()> {
    let what = || format!("events {id}");
    let line = |kind: &str, data: serde_json::Value| {
        println!(
            "{}",
            serde_json::json!({ "type": kind, "id": id, "data": data })
        );
    };
    if once {
        let stats = rt.stats(id).with_context(what)?;
        line("stats", serde_json::to_value(stats)?);
        return Ok(());
    }
    rt.events(id, interval, |e| {
        match e {
            berth_runtime::container::Event::Stats(s) => {
                line("stats", serde_json::to_value(*s).unwrap_or_default())
            }
            berth_runtime::container::Event::Oom { kills } => {
                line("oom", serde_json::json!({ "kills": kills }))
            }
        }
        // A reader that went away ends the stream.
        std::io::Write::flush(&mut std::io::stdout()).is_ok()
    })
    .with_context(what)
}

fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).with_context(|| format!("invalid signal number {n}"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| anyhow::anyhow!("unknown signal {s:?}"))
}

fn exec(rt: &Runtime, a: &ExecArgs) -> Result<u8> {
    let what = || format!("exec {}", a.id);
    let process = match &a.process {
        Some(path) => {
            let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            berth_runtime::config::parse_process(&raw, path)?
        }
        None => exec_process(rt, a).with_context(what)?,
    };
    let console = match (&a.console_socket, a.detach) {
        (Some(p), _) => Console::Socket(p.clone()),
        (None, false) => Console::Receive,
        (None, true) => Console::Inherit,
    };
    let opts = ExecOptions {
        console,
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
    };
    let started = rt.exec(&a.id, &process, &opts).with_context(what)?;
    if a.detach {
        return Ok(0);
    }
    let code = foreground::wait(started.pid, started.console).with_context(what)?;
    Ok(exit_byte(code))
}

/// The container's process with the command-line overrides applied.
fn exec_process(rt: &Runtime, a: &ExecArgs) -> Result<oci_spec::runtime::Process> {
    if a.command.is_empty() {
        bail!("no command given");
    }
    let mut p = rt.container_process(&a.id)?;
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &a.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let mut user = p.user().clone();
        user.set_uid(
            uid.parse()
                .with_context(|| format!("--user {u}: uid must be numeric"))?,
        );
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .with_context(|| format!("--user {u}: gid must be numeric"))?,
            );
        }
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if !a.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for c in &a.caps {
            let cap: oci_spec::runtime::Capability =
                serde_json::from_value(serde_json::json!(c))
                    .map_err(|_| anyhow::anyhow!("--cap {c}: unknown capability"))?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &a.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    Ok(p)
}

fn ps(rt: &Runtime, id: &str, format: Format, ps_args: &[String]) -> Result<()> {
    let pids = rt.pids(id).with_context(|| format!("ps {id}"))?;
    if format == Format::Json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("running ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}

fn list(rt: &Runtime, format: Format, quiet: bool) -> Result<()> {
    let all = rt.list()?;
    if quiet {
        for s in &all {
            println!("{}", s.id);
        }
        return Ok(());
    }
    if format == Format::Json {
        println!("{}", serde_json::to_string(&all)?);
        return Ok(());
    }
    let mut out = String::from("ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n");
    for s in &all {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            s.id,
            s.pid,
            s.status,
            s.bundle.display(),
            s.created,
            if s.owner.is_empty() { "root" } else { &s.owner }
        ));
    }
    print!("{out}");
    Ok(())
}

fn spec(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{} exists: remove it first", path.display());
    }
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let v = berth_runtime::spec::default_spec_json(rootless, uid, gid);
    std::fs::write(&path, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

fn features() -> serde_json::Value {
    let caps: Vec<String> = {
        let mut v: Vec<String> = caps::runtime::thread_all_supported()
            .iter()
            .map(|c| c.to_string())
            .collect();
        v.sort();
        v
    };
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": berth_runtime::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "acl", "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
            "iversion", "lazytime", "loud", "mand", "noacl", "noatime", "nodev", "nodiratime",
            "noexec", "noiversion", "nolazytime", "nomand", "norelatime", "nostrictatime",
            "nosuid", "nosymfollow", "private", "ratime", "rbind", "rdev", "rdiratime",
            "relatime", "remount", "rexec", "rnoatime", "rnodev", "rnodiratime", "rnoexec",
            "rnorelatime", "rnostrictatime", "rnosuid", "rnosymfollow", "ro", "rprivate",
            "rrelatime", "rro", "rrw", "rshared", "rslave", "rstrictatime", "rsuid",
            "rsymfollow", "runbindable", "rw", "shared", "silent", "slave", "strictatime",
            "suid", "symfollow", "sync", "tmpcopyup", "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false },
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
                ],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
                "knownFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                ],
                "supportedFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                ]
            },
            "apparmor": { "enabled": berth_runtime::apparmor::is_enabled() },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": false } }
        },
        "annotations": { "io.github.berth.runtime.version": env!("CARGO_PKG_VERSION") }
    })
}
