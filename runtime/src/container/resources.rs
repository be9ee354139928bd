//! What changes or reads a running container's cgroup: pause, resume,
//! update, stats, OOM events.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use oci_spec::runtime::LinuxResources;
use serde_json::Value;

use super::Runtime;
use crate::cgroups::stats::Stats;
use crate::cgroups::{AnyManager, CgroupManager, FreezerState};
use crate::error::{Error, Result, io, sys};
use crate::process::pidfd::PidFd;
use crate::state::{CONFIG_FILE, Status};

/// Something `events` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Stats(Box<Stats>),
    /// The OOM killer killed `kills` processes in the container.
    Oom {
        kills: u64,
    },
}

/// Overlay `update` on `base`: every field `update` sets replaces the same
/// field of `base`, recursively; the rest of `base` stays.
fn merge(base: &mut Value, update: &Value) {
    match (base, update) {
        (Value::Object(b), Value::Object(u)) => {
            for (k, v) in u {
                if v.is_null() {
                    continue;
                }
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, u) => *b = u.clone(),
    }
}

impl Runtime {
    /// Freeze every process of a running container.
    pub fn pause(&self, id: &str) -> Result<()> {
        let (dir, state) = self.open(id)?;
        let _lock = dir.lock()?;
        match state.status(&dir) {
            Status::Running => {}
            s => {
                return Err(Self::wrong_state(
                    id,
                    format!("cannot pause a container that is {s}"),
                ));
            }
        }
        AnyManager::from_state(&state.cgroup).freeze(FreezerState::Frozen)?;
        Ok(())
    }

    /// Thaw a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let (dir, state) = self.open(id)?;
        let _lock = dir.lock()?;
        match state.status(&dir) {
            Status::Paused => {}
            s => {
                return Err(Self::wrong_state(
                    id,
                    format!("cannot resume a container that is {s}"),
                ));
            }
        }
        AnyManager::from_state(&state.cgroup).freeze(FreezerState::Thawed)?;
        Ok(())
    }

    /// Apply new limits to a live container. Fields `resources` leaves
    /// unset keep their values; the container's config records the result,
    /// so later updates and execs see it.
    pub fn update(&self, id: &str, resources: &LinuxResources) -> Result<LinuxResources> {
        let (dir, state) = self.open(id)?;
        let _lock = dir.lock()?;
        if state.status(&dir) == Status::Stopped {
            return Err(Self::wrong_state(
                id,
                "cannot update a container that is stopped",
            ));
        }
        let path = dir.config_path();
        let raw = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
        let mut config: Value = serde_json::from_slice(&raw)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        let update = serde_json::to_value(resources).expect("resources serialize");
        let current = config["linux"]["resources"].take();
        let mut merged = if current.is_null() {
            Value::Object(Default::default())
        } else {
            current
        };
        merge(&mut merged, &update);
        let merged_typed: LinuxResources = serde_json::from_value(merged.clone())
            .map_err(|e| Error::Invalid(format!("linux.resources: {e}")))?;
        // Only what changed goes to the cgroup: rewriting device rules, for
        // one, would deny every device for a moment.
        AnyManager::from_state(&state.cgroup).apply(resources)?;
        config["linux"]["resources"] = merged;
        dir.write_atomic(
            CONFIG_FILE,
            &serde_json::to_vec(&config).expect("config serializes"),
        )?;
        Ok(merged_typed)
    }

    /// Resource usage of a container.
    pub fn stats(&self, id: &str) -> Result<Stats> {
        let (dir, state) = self.open(id)?;
        if state.status(&dir) == Status::Stopped {
            return Err(Self::wrong_state(id, "a stopped container has no stats"));
        }
        Ok(AnyManager::from_state(&state.cgroup).stats()?)
    }

    /// Report stats every `interval` and OOM kills as they happen, until
    /// the container stops or `sink` returns false.
    pub fn events(
        &self,
        id: &str,
        interval: Duration,
        mut sink: impl FnMut(Event) -> bool,
    ) -> Result<()> {
        let (dir, state) = self.open(id)?;
        if state.status(&dir) == Status::Stopped {
            return Err(Self::wrong_state(id, "container is not running"));
        }
        let manager = AnyManager::from_state(&state.cgroup);
        let init = PidFd::open(state.pid).map_err(sys("opening the init's pidfd"))?;
        let mut oom = manager.oom_notifier().ok();
        let mut next = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next {
                if !sink(Event::Stats(Box::new(manager.stats()?))) {
                    return Ok(());
                }
                next = now + interval;
            }
            let wait = next.saturating_duration_since(Instant::now());
            let ms = PollTimeout::try_from(wait.as_millis().min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::MAX);
            let mut fds = vec![PollFd::new(init.as_fd(), PollFlags::POLLIN)];
            if let Some(o) = &oom {
                fds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, ms) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(sys("waiting for events")(e)),
            }
            let ready = |i: usize| {
                fds.get(i)
                    .and_then(|f| f.revents())
                    .is_some_and(|r| !r.is_empty())
            };
            let (exited, oom_ready) = (ready(0), ready(1));
            drop(fds);
            if oom_ready && let Some(o) = oom.as_mut() {
                let kills = o.consume()?;
                if kills > 0 && !sink(Event::Oom { kills }) {
                    return Ok(());
                }
            }
            if exited {
                // A last OOM kill may be what ended the init.
                if let Some(o) = oom.as_mut()
                    && let Ok(kills) = o.consume()
                    && kills > 0
                {
                    sink(Event::Oom { kills });
                }
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_keeps_what_the_update_leaves_unset() {
        let mut base = json!({"memory": {"limit": 100, "swap": 200}, "pids": {"limit": 5}});
        merge(
            &mut base,
            &json!({"memory": {"limit": 300}, "cpu": {"shares": 2}}),
        );
        assert_eq!(
            base,
            json!({"memory": {"limit": 300, "swap": 200}, "pids": {"limit": 5}, "cpu": {"shares": 2}})
        );
    }
}
