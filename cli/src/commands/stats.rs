//! `stats`: the containers' CPU, memory, network, block I/O and pids,
//! computed from the daemon's samples as the docker CLI computes them,
//! once (`--no-stream`) or redrawn twice a second.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::containers::{ContainerStats, ContainerSummary, MemoryStats};

use super::print;
use crate::args::StatsArgs;
use crate::client::{Client, Lines, enc, query};
use crate::error::{CliError, Result};
use crate::formatter::{Format, row, short_id};
use crate::template::Value;
use crate::units::{bytes_size, human_size_precision};

const TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";
const HEADER: &[(&str, &str)] = &[
    ("Container", "CONTAINER"),
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

/// What one row shows, from one sample.
#[derive(Debug, Clone, Default, PartialEq)]
struct Figures {
    container: String,
    id: String,
    name: String,
    cpu_percent: f64,
    memory: f64,
    memory_limit: f64,
    memory_percent: f64,
    net_rx: f64,
    net_tx: f64,
    block_read: f64,
    block_write: f64,
    pids: u64,
    /// No sample yet (or the container is gone): dashes.
    invalid: bool,
}

/// The docker CLI's arithmetic over one sample.
fn figures(container: &str, s: &ContainerStats) -> Figures {
    let cpu_delta =
        s.cpu_stats.cpu_usage.total_usage as f64 - s.precpu_stats.cpu_usage.total_usage as f64;
    let system_delta = s.cpu_stats.system_cpu_usage as f64 - s.precpu_stats.system_cpu_usage as f64;
    let mut cpus = s.cpu_stats.online_cpus as f64;
    if cpus == 0.0 {
        cpus = s
            .cpu_stats
            .cpu_usage
            .percpu_usage
            .as_ref()
            .map_or(0, Vec::len) as f64;
    }
    let cpu_percent = if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * cpus * 100.0
    } else {
        0.0
    };
    let memory = memory_without_cache(&s.memory_stats);
    let memory_limit = s.memory_stats.limit as f64;
    let (mut block_read, mut block_write) = (0.0, 0.0);
    for e in s.blkio_stats.io_service_bytes_recursive.iter().flatten() {
        match e.op.to_lowercase().as_str() {
            "read" => block_read += e.value as f64,
            "write" => block_write += e.value as f64,
            _ => {}
        }
    }
    let (mut net_rx, mut net_tx) = (0.0, 0.0);
    for n in s.networks.iter().flat_map(|m| m.values()) {
        net_rx += n.rx_bytes as f64;
        net_tx += n.tx_bytes as f64;
    }
    Figures {
        container: container.to_string(),
        id: s.id.clone(),
        name: s.name.trim_start_matches('/').to_string(),
        cpu_percent,
        memory,
        memory_limit,
        memory_percent: if memory_limit != 0.0 {
            memory / memory_limit * 100.0
        } else {
            0.0
        },
        net_rx,
        net_tx,
        block_read,
        block_write,
        pids: s.pids_stats.current,
        invalid: false,
    }
}

/// Usage less the inactive file pages (v1 `total_inactive_file`, v2
/// `inactive_file`), which the kernel can drop at will.
fn memory_without_cache(m: &MemoryStats) -> f64 {
    if let Some(&v) = m.stats.get("total_inactive_file") {
        if v < m.usage {
            return (m.usage - v) as f64;
        }
    }
    match m.stats.get("inactive_file") {
        Some(&v) if v < m.usage => (m.usage - v) as f64,
        _ => m.usage as f64,
    }
}

fn stats_row(f: &Figures, trunc: bool) -> Value {
    let dash = |s: String| Value::str(if f.invalid { "--".to_string() } else { s });
    let id = if trunc { short_id(&f.id) } else { f.id.clone() };
    row(vec![
        ("Container", Value::str(&f.container)),
        ("ID", Value::str(id)),
        (
            "Name",
            Value::str(if f.name.is_empty() { "--" } else { &f.name }),
        ),
        ("CPUPerc", dash(format!("{:.2}%", f.cpu_percent))),
        (
            "MemUsage",
            dash(format!(
                "{} / {}",
                bytes_size(f.memory),
                bytes_size(f.memory_limit)
            )),
        ),
        ("MemPerc", dash(format!("{:.2}%", f.memory_percent))),
        (
            "NetIO",
            dash(format!(
                "{} / {}",
                human_size_precision(f.net_rx, 3),
                human_size_precision(f.net_tx, 3)
            )),
        ),
        (
            "BlockIO",
            dash(format!(
                "{} / {}",
                human_size_precision(f.block_read, 3),
                human_size_precision(f.block_write, 3)
            )),
        ),
        ("PIDs", dash(f.pids.to_string())),
    ])
}

fn stats_path(name: &str, stream: bool) -> String {
    format!(
        "/containers/{}/stats{}",
        enc(name),
        query(&[("stream", stream.to_string())])
    )
}

pub async fn stats(c: &Client, a: &StatsArgs) -> Result<()> {
    let format = Format::resolve(a.format.as_deref(), false, TABLE, TABLE);
    let names: Vec<String> = if a.containers.is_empty() {
        let q = if a.all { "?all=1" } else { "" };
        let list: Vec<ContainerSummary> = c.get(&format!("/containers/json{q}")).await?;
        list.into_iter().map(|s| s.id).collect()
    } else {
        a.containers.clone()
    };
    if a.no_stream {
        let jobs = names.iter().map(|n| async move {
            let s: Result<ContainerStats> = c.get(&stats_path(n, false)).await;
            (n.clone(), s)
        });
        let mut rows = Vec::new();
        let mut failed = None;
        for (n, s) in futures_util::future::join_all(jobs).await {
            match s {
                Ok(s) => rows.push(stats_row(&figures(&n, &s), !a.no_trunc)),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        return print(&format.render(HEADER, &rows)?);
    }
    let latest: Arc<Mutex<BTreeMap<usize, Figures>>> = Arc::default();
    for (i, n) in names.iter().enumerate() {
        latest.lock().unwrap().insert(
            i,
            Figures {
                container: n.clone(),
                id: n.clone(),
                invalid: true,
                ..Figures::default()
            },
        );
        let (c, n, latest) = (c.clone(), n.clone(), latest.clone());
        tokio::spawn(async move {
            let resp = c
                .call(
                    http::Method::GET,
                    &stats_path(&n, true),
                    http::HeaderMap::new(),
                    crate::client::empty(),
                )
                .await;
            let Ok(resp) = resp else { return };
            let mut lines = Lines::new(resp);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(s) = serde_json::from_str::<ContainerStats>(&line) {
                    latest.lock().unwrap().insert(i, figures(&n, &s));
                }
            }
            if let Some(f) = latest.lock().unwrap().get_mut(&i) {
                f.invalid = true;
            }
        });
    }
    let tty = super::stdout_is_terminal();
    loop {
        let rows: Vec<Value> = latest
            .lock()
            .unwrap()
            .values()
            .map(|f| stats_row(f, !a.no_trunc))
            .collect();
        let text = format.render(HEADER, &rows)?;
        if tty {
            print(&format!("\x1b[2J\x1b[H{text}"))?;
        } else {
            print(&text)?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if a.containers.is_empty() && rows.is_empty() && !tty {
            return Err(CliError::Status(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::containers::{BlkioEntry, CpuStats, CpuUsage, NetworkStats, PidsStats};

    fn sample() -> ContainerStats {
        ContainerStats {
            id: "0123456789abcdef0123".into(),
            name: "/web".into(),
            cpu_stats: CpuStats {
                cpu_usage: CpuUsage {
                    total_usage: 3_000,
                    ..CpuUsage::default()
                },
                system_cpu_usage: 20_000,
                online_cpus: 2,
            },
            precpu_stats: CpuStats {
                cpu_usage: CpuUsage {
                    total_usage: 1_000,
                    ..CpuUsage::default()
                },
                system_cpu_usage: 10_000,
                online_cpus: 2,
            },
            memory_stats: MemoryStats {
                usage: 3 << 20,
                limit: 1 << 30,
                stats: [("total_inactive_file".to_string(), 1 << 20)].into(),
            },
            pids_stats: PidsStats {
                current: 4,
                limit: None,
            },
            blkio_stats: berth_api::containers::BlkioStats {
                io_service_bytes_recursive: Some(vec![
                    BlkioEntry {
                        op: "Read".into(),
                        value: 1500,
                        ..BlkioEntry::default()
                    },
                    BlkioEntry {
                        op: "write".into(),
                        value: 2_000_000,
                        ..BlkioEntry::default()
                    },
                ]),
            },
            networks: Some(
                [(
                    "eth0".to_string(),
                    NetworkStats {
                        rx_bytes: 100,
                        tx_bytes: 0,
                    },
                )]
                .into(),
            ),
            ..ContainerStats::default()
        }
    }

    #[test]
    fn figures_as_the_docker_cli_computes_them() {
        let f = figures("web", &sample());
        // 2000 of 10000 ns of system time on 2 CPUs.
        assert!((f.cpu_percent - 40.0).abs() < 1e-9);
        assert_eq!(f.memory, (2 << 20) as f64);
        let fmt = Format::resolve(None, false, TABLE, TABLE);
        let out = fmt.render(HEADER, &[stats_row(&f, true)]).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("CONTAINER ID   NAME      CPU %"),
            "{out}"
        );
        assert!(
            lines[1].starts_with("0123456789ab   web       40.00%"),
            "{out}"
        );
        assert!(lines[1].contains("2MiB / 1GiB"), "{out}");
        assert!(lines[1].contains("0.20%"), "{out}");
        assert!(lines[1].contains("100B / 0B"), "{out}");
        assert!(lines[1].contains("1.5kB / 2MB"), "{out}");
        assert!(lines[1].ends_with(" 4"), "{out}");
    }

    #[test]
    fn no_sample_shows_dashes() {
        let f = Figures {
            container: "x".into(),
            invalid: true,
            ..Figures::default()
        };
        let fmt = Format::resolve(
            Some("{{.Name}} {{.CPUPerc}} {{.PIDs}}"),
            false,
            TABLE,
            TABLE,
        );
        assert_eq!(
            fmt.render(HEADER, &[stats_row(&f, true)]).unwrap(),
            "-- -- --\n"
        );
    }
}
