//! `berth-vm`: run a command in a throwaway qemu guest with a pure cgroup2
//! hierarchy; exits with the command's status (124 on timeout).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_tests::vm::{VmConfig, run};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "berth-vm",
    about = "Run a command in a throwaway cgroup2 guest (qemu)"
)]
struct Cli {
    /// Host directory to mount read-write at the same path (repeatable).
    #[arg(long, value_name = "DIR")]
    share: Vec<PathBuf>,
    /// Seconds before the guest is killed (status 124).
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    #[arg(long, default_value_t = 2048)]
    memory: u32,
    #[arg(long, default_value_t = 2)]
    cpus: u32,
    /// A scratch disk of this many MiB at /dev/vda.
    #[arg(long, value_name = "MIB")]
    disk: Option<u32>,
    /// KEY=VALUE added to the command's environment (repeatable); the
    /// host's environment is passed through otherwise.
    #[arg(long, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Where to cache the kernel and initramfs.
    #[arg(long, default_value = "/var/tmp/berth-vm")]
    cache: PathBuf,
    #[arg(trailing_var_arg = true, required = true)]
    command: Vec<String>,
}

/// The host's environment, minus what only makes sense on the host.
fn environment(extra: &[String]) -> Result<Vec<(String, String)>> {
    let skip = ["PWD", "OLDPWD", "SHLVL", "_", "TMPDIR", "HOSTNAME", "TERM"];
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            !skip.contains(&k.as_str()) && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .collect();
    for kv in extra {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--env {kv}: expected KEY=VALUE"))?;
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    Ok(env)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = (|| -> Result<i32> {
        let cfg = VmConfig {
            shares: cli
                .share
                .iter()
                .map(std::path::absolute)
                .collect::<std::io::Result<_>>()?,
            cwd: std::env::current_dir()?,
            env: environment(&cli.env)?,
            command: cli.command.clone(),
            memory_mib: cli.memory,
            cpus: cli.cpus,
            disk_mib: cli.disk,
            timeout: Duration::from_secs(cli.timeout),
            cache: cli.cache.clone(),
        };
        Ok(run(&cfg)?)
    })();
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("berth-vm: {e:#}");
            ExitCode::from(125)
        }
    }
}
