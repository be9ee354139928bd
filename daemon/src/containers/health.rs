//! Healthchecks: while a container with a `Healthcheck` runs, its test
//! runs in it (as an exec nobody sees) every interval; the results make
//! `State.Health` (status, failing streak, the last five results) and
//! `health_status` events, as Docker does.

use std::sync::Arc;
use std::time::Duration;

use berth_api::containers::{Health, HealthConfig, HealthcheckResult};

use super::record::now_rfc3339;
use super::registry::Entry;
use crate::server::Daemon;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
const KEEP: usize = 5;

fn nanos(n: i64, default: Duration) -> Duration {
    if n > 0 {
        Duration::from_nanos(n as u64)
    } else {
        default
    }
}

/// The command a healthcheck runs: `CMD args...` as is, `CMD-SHELL cmd`
/// through `/bin/sh -c`; None for no check (`NONE`, or no test).
pub fn command(hc: &HealthConfig) -> Option<Vec<String>> {
    let test = hc.test.as_ref()?;
    match test.split_first()?.0.as_str() {
        "CMD" => Some(test[1..].to_vec()).filter(|c| !c.is_empty()),
        "CMD-SHELL" => Some(vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")]),
        _ => None,
    }
}

/// The next health after a probe: the streak and the status, as Docker
/// counts them (failures during the start period do not count).
pub fn next(
    prev: &Health,
    ok: bool,
    in_start_period: bool,
    retries: i64,
    result: HealthcheckResult,
) -> Health {
    let mut h = prev.clone();
    if ok {
        h.failing_streak = 0;
        h.status = "healthy".into();
    } else if !in_start_period {
        h.failing_streak += 1;
        if h.failing_streak >= retries {
            h.status = "unhealthy".into();
        }
    }
    h.log.push(result);
    if h.log.len() > KEEP {
        let cut = h.log.len() - KEEP;
        h.log.drain(..cut);
    }
    h
}

/// Start checking a container that has just started.
pub fn spawn(d: Arc<Daemon>, e: Arc<Entry>) {
    let rec = e.record();
    let Some(hc) = rec.config.healthcheck.clone() else {
        return;
    };
    let Some(cmd) = command(&hc) else { return };
    let started_at = rec.state.started_at.clone();
    let _ = d.containers.update(&e, |r| {
        r.state.health = Some(Health {
            status: "starting".into(),
            failing_streak: 0,
            log: Vec::new(),
        })
    });
    tokio::spawn(async move {
        let interval = nanos(hc.interval, DEFAULT_INTERVAL);
        let timeout = nanos(hc.timeout, DEFAULT_TIMEOUT);
        let start_period = nanos(hc.start_period, Duration::ZERO);
        let start_interval = nanos(hc.start_interval, DEFAULT_START_INTERVAL);
        let retries = if hc.retries > 0 {
            hc.retries
        } else {
            DEFAULT_RETRIES
        };
        let began = tokio::time::Instant::now();
        loop {
            let in_start = began.elapsed() < start_period;
            let wait = if in_start && hc.start_interval > 0 {
                start_interval
            } else {
                interval
            };
            tokio::time::sleep(wait).await;
            // This run of the container only: a restart starts its own.
            let now = e.record();
            if !now.state.status.is_live() || now.state.started_at != started_at {
                return;
            }
            if now.state.status != super::record::Status::Running {
                continue;
            }
            let start = now_rfc3339();
            let probe = super::exec::probe(&d, &e.id, cmd.clone(), timeout).await;
            let (code, output) = match probe {
                Ok((Some(c), out)) => (c, out),
                Ok((None, _)) => (
                    -1,
                    format!(
                        "Health check exceeded timeout ({})",
                        humantime::format_duration(timeout)
                    ),
                ),
                Err(err) => (-1, err.to_string()),
            };
            let result = HealthcheckResult {
                start,
                end: now_rfc3339(),
                exit_code: code,
                output,
            };
            let in_start = began.elapsed() < start_period;
            let mut changed = None;
            let r = d.containers.update(&e, |r| {
                if r.state.started_at != started_at {
                    return;
                }
                let prev = r.state.health.clone().unwrap_or_default();
                let h = next(&prev, code == 0, in_start, retries, result);
                if h.status != prev.status {
                    changed = Some(h.status.clone());
                }
                r.state.health = Some(h);
            });
            if r.is_err() {
                return;
            }
            if let Some(status) = changed {
                d.events
                    .container(&e.record(), &format!("health_status: {status}"));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let hc = |t: &[&str]| HealthConfig {
            test: Some(t.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        assert_eq!(command(&hc(&["CMD", "true"])).unwrap(), ["true"]);
        assert_eq!(
            command(&hc(&["CMD-SHELL", "test -f /x"])).unwrap(),
            ["/bin/sh", "-c", "test -f /x"]
        );
        assert_eq!(command(&hc(&["NONE"])), None);
        assert_eq!(command(&HealthConfig::default()), None);
    }

    #[test]
    fn streaks_and_statuses() {
        let r = || HealthcheckResult::default();
        let mut h = Health {
            status: "starting".into(),
            ..Default::default()
        };
        h = next(&h, false, true, 2, r());
        assert_eq!((h.status.as_str(), h.failing_streak), ("starting", 0));
        h = next(&h, true, false, 2, r());
        assert_eq!(h.status, "healthy");
        h = next(&h, false, false, 2, r());
        assert_eq!((h.status.as_str(), h.failing_streak), ("healthy", 1));
        h = next(&h, false, false, 2, r());
        assert_eq!((h.status.as_str(), h.failing_streak), ("unhealthy", 2));
        for _ in 0..10 {
            h = next(&h, false, false, 2, r());
        }
        assert_eq!(h.log.len(), KEEP);
    }
}
