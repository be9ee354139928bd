//! `GET /containers/{id}/stats`: the container's cgroup counters in
//! Docker's JSON, once or every second. `precpu_stats` is the sample
//! before, so a client can turn CPU time into a percentage; the one-shot
//! form without `one-shot=true` takes two samples a second apart, as
//! dockerd does, so `docker stats --no-stream` has both.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use berth_runtime::cgroups::stats::Stats;
use serde_json::{Value, json};

use super::lifecycle;
use super::registry::Entry;
use crate::error::Result;
use crate::server::Daemon;

/// Host CPU time in nanoseconds: the `cpu` line of /proc/stat (in clock
/// ticks of 1/100 s).
fn system_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    ticks * 10_000_000
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn cpu_json(s: Option<&Stats>, system: u64, ncpu: u32) -> Value {
    let Some(s) = s else {
        return json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
            "usage_in_usermode": 0}, "throttling_data": {"periods": 0,
            "throttled_periods": 0, "throttled_time": 0}});
    };
    let mut usage = json!({
        "total_usage": s.cpu.usage_ns,
        "usage_in_kernelmode": s.cpu.system_ns,
        "usage_in_usermode": s.cpu.user_ns,
    });
    if !s.cpu.per_cpu_ns.is_empty() {
        usage["percpu_usage"] = json!(s.cpu.per_cpu_ns);
    }
    json!({
        "cpu_usage": usage,
        "system_cpu_usage": system,
        "online_cpus": ncpu,
        "throttling_data": {
            "periods": s.cpu.periods,
            "throttled_periods": s.cpu.throttled_periods,
            "throttled_time": s.cpu.throttled_ns,
        },
    })
}

/// One stats object in Docker's shape.
pub fn render(
    id: &str,
    name: &str,
    now: &Stats,
    now_system: u64,
    before: Option<(&Stats, u64, &str)>,
    ncpu: u32,
) -> Value {
    let m = &now.memory;
    let mut mstats: serde_json::Map<String, Value> =
        m.raw.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    // The CLI subtracts inactive file pages from usage: cgroup v1 names
    // it `total_inactive_file`, v2 `inactive_file`.
    mstats
        .entry("total_inactive_file".to_string())
        .or_insert(json!(m.inactive_file));
    let mut memory = json!({
        "usage": m.usage,
        "stats": mstats,
        "limit": m.limit.unwrap_or_else(host_memory),
    });
    if let Some(max) = m.max_usage {
        memory["max_usage"] = json!(max);
    }
    if let Some(f) = m.failcnt {
        memory["failcnt"] = json!(f);
    }
    let mut io = Vec::new();
    for d in &now.io.devices {
        for (op, v) in [("read", d.read_bytes), ("write", d.write_bytes)] {
            io.push(json!({"major": d.major, "minor": d.minor, "op": op, "value": v}));
        }
    }
    let now_time = crate::containers::record::now_rfc3339();
    json!({
        "read": now_time,
        "preread": before.map_or(super::record::ZERO_TIME, |b| b.2),
        "pids_stats": {"current": now.pids.current, "limit": now.pids.limit},
        "blkio_stats": {"io_service_bytes_recursive": io},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_json(Some(now), now_system, ncpu),
        "precpu_stats": match before {
            Some((b, sys, _)) => cpu_json(Some(b), sys, ncpu),
            None => cpu_json(None, 0, ncpu),
        },
        "memory_stats": memory,
        "name": format!("/{name}"),
        "id": id,
    })
}

fn sample(d: &Daemon, e: &Entry) -> Option<(Stats, u64, String)> {
    let s = lifecycle::runtime(d).stats(&e.id).ok()?;
    Some((s, system_cpu_ns(), crate::containers::record::now_rfc3339()))
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).expect("stats json");
    b.push(b'\n');
    Bytes::from(b)
}

pub async fn get_stats(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let e = d.containers.get(&id)?;
    let on = |k: &str| q.get(k).is_some_and(|v| v == "1" || v == "true");
    // `stream` defaults to true.
    let stream = q.get("stream").is_none_or(|v| v == "1" || v == "true");
    let one_shot = on("one-shot");
    let ncpu = d.system.ncpu;
    let name = e.record().name;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let d2 = d.clone();
    tokio::spawn(async move {
        let mut before: Option<(Stats, u64, String)> = None;
        loop {
            if !e.status().is_live() {
                // A stopped container reports zeros, as dockerd does.
                let v = json!({"read": super::record::ZERO_TIME, "preread": super::record::ZERO_TIME,
                    "id": e.id, "name": format!("/{name}"), "pids_stats": {}, "blkio_stats": {},
                    "num_procs": 0, "storage_stats": {}, "cpu_stats": cpu_json(None, 0, ncpu),
                    "precpu_stats": cpu_json(None, 0, ncpu), "memory_stats": {}});
                let _ = tx.send(line(&v)).await;
                return;
            }
            let (d3, e3) = (d2.clone(), e.clone());
            let now = tokio::task::spawn_blocking(move || sample(&d3, &e3))
                .await
                .ok()
                .flatten();
            let Some(now) = now else { return };
            let first = before.is_none();
            if !stream && first && !one_shot {
                before = Some(now);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let v = render(
                &e.id,
                &name,
                &now.0,
                now.1,
                before.as_ref().map(|b| (&b.0, b.1, b.2.as_str())),
                ncpu,
            );
            if tx.send(line(&v)).await.is_err() || !stream {
                return;
            }
            before = Some(now);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_shape() {
        let mut now = Stats::default();
        now.cpu.usage_ns = 2_000;
        now.memory.usage = 100;
        now.memory.inactive_file = 40;
        now.memory.limit = Some(1000);
        now.pids.current = 3;
        let before = Stats::default();
        let v = render("abc", "web", &now, 10_000, Some((&before, 5_000, "t0")), 2);
        assert_eq!(v["name"], "/web");
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 2000);
        assert_eq!(v["precpu_stats"]["system_cpu_usage"], 5000);
        assert_eq!(v["cpu_stats"]["online_cpus"], 2);
        assert_eq!(v["memory_stats"]["stats"]["total_inactive_file"], 40);
        assert_eq!(v["memory_stats"]["limit"], 1000);
        assert_eq!(v["pids_stats"]["current"], 3);
        assert_eq!(v["preread"], "t0");
        assert!(system_cpu_ns() > 0);
    }
}
