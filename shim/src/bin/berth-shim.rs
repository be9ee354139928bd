//! berth-shim: see the berth_shim library.

use std::path::PathBuf;

use anyhow::{Context, Result};
use berth_shim::{Config, Launch, Role};
use clap::Parser;

#[derive(Parser)]
#[command(name = "berth-shim", version, about = "berth's per-container monitor")]
struct Cli {
    /// The container id in the runtime root.
    #[arg(long)]
    id: String,
    /// The OCI bundle (a container; not with --exec).
    #[arg(long, required_unless_present = "exec", conflicts_with = "exec")]
    bundle: Option<PathBuf>,
    /// Run one more process in the running container --id instead.
    #[arg(long, requires = "process")]
    exec: bool,
    /// The exec's OCI Process JSON (as runc exec --process).
    #[arg(long, requires = "exec")]
    process: Option<PathBuf>,
    /// Where shim.pid, init.pid, exit.json, start-error and logs go.
    #[arg(long)]
    state_dir: PathBuf,
    /// The runtime's state root.
    #[arg(long)]
    runtime_root: PathBuf,
    /// The json-file log (default <state-dir>/<id>-json.log; none for --exec).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Write no log (Docker's `none` log driver).
    #[arg(long, conflicts_with = "log")]
    no_log: bool,
    /// Rotate the log once it would grow past this many bytes.
    #[arg(long)]
    log_max_size: Option<u64>,
    /// How many log files rotation keeps, the current one included.
    #[arg(long, default_value_t = 1, requires = "log_max_size")]
    log_max_files: u32,
    /// The attach and control socket (default <state-dir>/shim.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Give the process a pipe as stdin, fed by attach clients.
    #[arg(long)]
    stdin: bool,
    /// Close the process's stdin when the first stdin client's input ends.
    #[arg(long, requires = "stdin")]
    stdin_once: bool,
    /// The process has a terminal (process.terminal is true).
    #[arg(long)]
    tty: bool,
    /// Create, then wait for a start request on the socket.
    #[arg(long)]
    no_start: bool,
}

fn absolute(p: PathBuf) -> Result<PathBuf> {
    std::path::absolute(&p).with_context(|| format!("resolving {}", p.display()))
}

fn main() {
    let cli = Cli::parse();
    let code = match shim(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth-shim: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn shim(cli: Cli) -> Result<()> {
    // The shim leaves for / : every path must stand on its own.
    let cfg = Config {
        id: cli.id,
        launch: match (cli.bundle, cli.process) {
            (Some(bundle), _) => Launch::Create {
                bundle: absolute(bundle)?,
            },
            (None, Some(process)) => Launch::Exec {
                process: absolute(process)?,
            },
            (None, None) => unreachable!("clap requires one"),
        },
        state_dir: absolute(cli.state_dir)?,
        runtime_root: absolute(cli.runtime_root)?,
        log: cli.log.map(absolute).transpose()?,
        no_log: cli.no_log,
        log_max_size: cli.log_max_size,
        log_max_files: cli.log_max_files,
        socket: cli.socket.map(absolute).transpose()?,
        stdin: cli.stdin,
        stdin_once: cli.stdin_once,
        tty: cli.tty,
        no_start: cli.no_start,
    };
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating {}", cfg.state_dir.display()))?;
    match berth_shim::daemonize()? {
        Role::Caller(c) => c.wait().with_context(|| format!("starting {}", cfg.id)),
        Role::Shim(report) => {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(cfg.state_dir.join(berth_shim::files::SHIM_LOG))?;
            // A level, not an EnvFilter: its regex engine would be most of
            // the binary, and every shim maps it.
            let level = std::env::var("BERTH_SHIM_LOG")
                .ok()
                .and_then(|v| v.parse::<tracing_subscriber::filter::LevelFilter>().ok())
                .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
            tracing_subscriber::fmt()
                .with_writer(std::sync::Mutex::new(log))
                .with_ansi(false)
                .with_max_level(level)
                .init();
            berth_shim::run(&cfg, report)?;
            Ok(())
        }
    }
}
