//! Following a shim: a pidfd says when it is gone, then its exit.json
//! says how the container ended. A shim gone without an exit record was
//! killed: its container is killed too and reported as exited with an
//! error, so nothing is left running unseen.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

use berth_shim::ExitRecord;
use nix::sys::signal::Signal;
use tokio::io::unix::AsyncFd;

use super::lifecycle::{self, Paths};
use super::record::Status;
use super::registry::Entry;
use crate::server::Daemon;

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Resolves when process `pid` is gone (at once if it already is).
pub async fn process_gone(pid: i32) {
    let Ok(fd) = pidfd_open(pid) else { return };
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same
    // for its whole life.
    let Ok(afd) = (unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) })
    else {
        // No reactor registration: fall back to polling /proc.
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        return;
    };
    let _ = afd.readable().await;
}

/// What a container's shim directory says of a start its record may not
/// show.
enum Started {
    /// Its shim runs.
    Live {
        shim: i32,
        init: i64,
        started_at: String,
    },
    /// It ran and left an exit record.
    Ended,
}

fn started_unrecorded(d: &Daemon, id: &str) -> Option<Started> {
    use berth_shim::files;
    let dir = Paths::new(d, id).shim_dir();
    let shim = lifecycle::read_pid(&dir, files::SHIM_PID)?;
    if is_shim(shim) && shim_of(shim, id) {
        let init = lifecycle::read_pid(&dir, files::INIT_PID)?;
        let started_at = std::fs::metadata(dir.join(files::INIT_PID))
            .and_then(|m| m.modified())
            .map(|t| humantime::format_rfc3339_nanos(t).to_string())
            .unwrap_or_else(|_| super::record::now_rfc3339());
        return Some(Started::Live {
            shim,
            init: init.into(),
            started_at,
        });
    }
    dir.join(files::EXIT).exists().then_some(Started::Ended)
}

/// Whether shim `pid` serves container `id`: a pid can be reused by
/// another container's shim.
fn shim_of(pid: i32, id: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let args: Vec<&[u8]> = c.split(|&b| b == 0).collect();
        args.windows(2)
            .any(|w| w[0] == b"--id" && w[1] == id.as_bytes())
    })
}

/// Whether `pid` is a live berth-shim (not a reused pid).
pub fn is_shim(pid: i32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|n| n.starts_with("berth-shim"))
}

/// Follow the shim of a running container in the background.
pub fn follow(d: Arc<Daemon>, e: Arc<Entry>, shim_pid: i32) {
    tokio::spawn(async move {
        process_gone(shim_pid).await;
        tracing::debug!(id = e.id, shim = shim_pid, "shim gone");
        ended(&d, &e).await;
        lifecycle::after_exit(d, e).await;
    });
}

/// Record how the container ended, from what its shim left.
pub async fn ended(d: &Arc<Daemon>, e: &Arc<Entry>) {
    let paths = Paths::new(d, &e.id);
    let exit_path = paths.shim_dir().join(berth_shim::files::EXIT);
    let record: Option<ExitRecord> = std::fs::read(&exit_path)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok());
    let (code, error, finished) = match record {
        Some(r) => (r.exit_code as i64, String::new(), r.finished_at),
        None => {
            // The shim died first: take the container down with it.
            let rt = lifecycle::runtime(d);
            let _ = rt.kill(&e.id, Signal::SIGKILL, true);
            let _ = rt.delete(&e.id, true);
            let pid = e.record().state.shim_pid.unwrap_or_default();
            tracing::warn!(id = e.id, "berth-shim (pid {pid}) died; container killed");
            (
                137,
                format!("berth-shim (pid {pid}) died unexpectedly; the container was killed"),
                super::record::now_rfc3339(),
            )
        }
    };
    // An auto-remove container's exit is followed at once by its removal,
    // whose durable write carries this one; if berthd dies in between,
    // restore finds the record running with its shim gone, or exited, and
    // removes it either way.
    let durable = !e.record().host_config.auto_remove;
    let r = d.containers.update_exit(e, durable, |r| {
        r.state.status = Status::Exited;
        r.state.exit_code = code;
        r.state.error = error;
        r.state.finished_at = finished;
        r.state.pid = 0;
        r.state.shim_pid = None;
    });
    if let Err(err) = r {
        tracing::error!(id = e.id, "recording the exit: {err}");
    }
    let rec = e.record();
    tracing::debug!(id = e.id, code, "exit recorded");
    d.events
        .container_with(&rec, "die", [("exitCode", code.to_string())]);
    d.events.volume_mounts(&rec, "unmount");
}

/// At daemon start: follow the shims still running, settle the records of
/// those that ended while berthd was away, and start again what the
/// restart policy keeps up.
pub async fn restore(d: &Arc<Daemon>) {
    for e in d.containers.all() {
        let mut rec = e.record();
        if !matches!(
            rec.state.status,
            Status::Running | Status::Paused | Status::Removing
        ) {
            // A start records `running` without waiting for the disk, so
            // after a crash the record can be behind its shim.
            match started_unrecorded(d, &rec.id) {
                Some(Started::Live {
                    shim,
                    init,
                    started_at,
                }) => {
                    tracing::info!(id = rec.id, shim, "live restore of an unrecorded start");
                    let r = d.containers.update(&e, |r| {
                        r.state = super::record::State {
                            status: Status::Running,
                            pid: init,
                            started_at,
                            shim_pid: Some(shim),
                            ..super::record::State::default()
                        };
                        r.has_been_started = true;
                        r.manually_stopped = false;
                    });
                    if let Err(err) = r {
                        tracing::error!(id = rec.id, "recording the live restore: {err}");
                    }
                    rec = e.record();
                }
                Some(Started::Ended) if !rec.has_been_started => {
                    let _ = d
                        .containers
                        .update_volatile(&e, |r| r.has_been_started = true);
                    ended(d, &e).await;
                    tokio::spawn(lifecycle::after_exit(d.clone(), e.clone()));
                    continue;
                }
                _ => {}
            }
        }
        match rec.state.status {
            Status::Running | Status::Paused => match rec.state.shim_pid {
                Some(pid) if is_shim(pid) => {
                    tracing::info!(id = rec.id, shim = pid, "live restore");
                    follow(d.clone(), e.clone(), pid);
                    super::health::spawn(d.clone(), e.clone());
                }
                _ => {
                    ended(d, &e).await;
                    tokio::spawn(lifecycle::after_exit(d.clone(), e.clone()));
                }
            },
            Status::Restarting => {
                let _ = d.containers.update(&e, |r| r.state.status = Status::Exited);
                tokio::spawn(lifecycle::after_exit(d.clone(), e.clone()));
            }
            Status::Removing => {
                let _op = e.op.lock().await;
                if let Err(err) = lifecycle::remove_stopped(d, &e, false).await {
                    tracing::warn!(id = rec.id, "finishing removal: {err}");
                }
            }
            Status::Exited | Status::Dead
                if rec.host_config.auto_remove && rec.has_been_started =>
            {
                // As dockerd: an auto-remove container that ended while
                // berthd was away, or whose removal berthd did not finish.
                let _op = e.op.lock().await;
                if let Err(err) = lifecycle::remove_stopped(d, &e, true).await {
                    tracing::warn!(id = rec.id, "auto-remove: {err}");
                }
            }
            Status::Exited | Status::Created | Status::Dead => {
                let p = rec.host_config.restart_policy.name.as_str();
                if rec.has_been_started
                    && !rec.manually_stopped
                    && (p == "always" || p == "unless-stopped")
                {
                    tokio::spawn(lifecycle::after_exit(d.clone(), e.clone()));
                }
            }
        }
    }
}
