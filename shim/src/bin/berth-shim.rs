//! berth-shim: see the berth_shim library.

use std::path::PathBuf;

use anyhow::{Context, Result};
use berth_shim::{Config, Role};
use clap::Parser;

#[derive(Parser)]
#[command(name = "berth-shim", version, about = "berth's per-container monitor")]
struct Cli {
    /// The container id in the runtime root.
    #[arg(long)]
    id: String,
    /// The OCI bundle.
    #[arg(long)]
    bundle: PathBuf,
    /// Where shim.pid, init.pid, exit.json, start-error and logs go.
    #[arg(long)]
    state_dir: PathBuf,
    /// The runtime's state root.
    #[arg(long)]
    runtime_root: PathBuf,
    /// The json-file log (default <state-dir>/<id>-json.log).
    #[arg(long)]
    log: Option<PathBuf>,
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
        bundle: absolute(cli.bundle)?,
        state_dir: absolute(cli.state_dir)?,
        runtime_root: absolute(cli.runtime_root)?,
        log: cli.log.map(absolute).transpose()?,
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
            tracing_subscriber::fmt()
                .with_writer(std::sync::Mutex::new(log))
                .with_ansi(false)
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("BERTH_SHIM_LOG")
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            berth_shim::run(&cfg, report)?;
            Ok(())
        }
    }
}
