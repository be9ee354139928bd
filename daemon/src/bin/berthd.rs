//! berthd: parse the configuration, set up logging, serve.

use anyhow::Context;
use berth_daemon::Config;

fn main() {
    if let Err(e) = real_main() {
        eprintln!("berthd: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, each cause once (most messages
/// already include their source's text).
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

fn real_main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| config.log_level.as_filter().into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(berth_daemon::run(config))?;
    Ok(())
}
