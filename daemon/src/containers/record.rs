//! What berthd keeps about a container, and how it reads back as the
//! Engine API's inspect and list shapes.

use berth_api::containers::{
    ContainerConfig, ContainerInspect, ContainerState, ContainerSummary, GraphDriver, Health,
    HostConfig, MountPoint, NetworkSettings, SummaryHostConfig,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// The container has a live process (paused counts).
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    pub oom_killed: bool,
    pub health: Option<Health>,
    /// The shim that holds the running container.
    pub shim_pid: Option<i32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub created: String,
    /// The image as the client named it.
    pub image: String,
    /// `sha256:<config digest>`.
    pub image_id: String,
    /// Merged with the image's config.
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub path: String,
    pub args: Vec<String>,
    pub state: State,
    pub restart_count: i64,
    pub has_been_started: bool,
    /// Stopped by a user: `unless-stopped` leaves it down, even across a
    /// daemon restart.
    pub manually_stopped: bool,
    pub mounts: Vec<MountPoint>,
    pub log_path: String,
    pub hostname_path: String,
    pub hosts_path: String,
    pub resolv_conf_path: String,
    /// The networks the container joins when it starts (name → its
    /// endpoint settings: aliases, static address).
    pub networks: std::collections::BTreeMap<String, berth_api::containers::EndpointSettings>,
}

pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Record {
    pub fn api_state(&self) -> ContainerState {
        let s = &self.state;
        ContainerState {
            status: s.status.as_str().to_string(),
            running: s.status.is_live(),
            paused: s.status == Status::Paused,
            restarting: s.status == Status::Restarting,
            oom_killed: s.oom_killed,
            dead: s.status == Status::Dead,
            pid: if s.status.is_live() { s.pid } else { 0 },
            exit_code: s.exit_code,
            error: s.error.clone(),
            started_at: non_empty_time(&s.started_at),
            finished_at: non_empty_time(&s.finished_at),
            health: s.health.clone(),
        }
    }

    pub fn inspect(&self, driver: &str, exec_ids: Vec<String>) -> ContainerInspect {
        let mut network = NetworkSettings::default();
        if self.host_config.network_mode == "host" || self.host_config.network_mode == "none" {
            network
                .networks
                .insert(self.host_config.network_mode.clone(), Default::default());
        }
        ContainerInspect {
            id: self.id.clone(),
            created: self.created.clone(),
            path: self.path.clone(),
            args: self.args.clone(),
            state: self.api_state(),
            image: self.image_id.clone(),
            resolv_conf_path: self.resolv_conf_path.clone(),
            hostname_path: self.hostname_path.clone(),
            hosts_path: self.hosts_path.clone(),
            log_path: self.log_path.clone(),
            name: format!("/{}", self.name),
            restart_count: self.restart_count,
            driver: driver.to_string(),
            platform: "linux".into(),
            exec_ids: (!exec_ids.is_empty()).then_some(exec_ids),
            host_config: self.host_config.clone(),
            graph_driver: GraphDriver {
                name: driver.to_string(),
                data: Default::default(),
            },
            mounts: self.mounts.clone(),
            config: self.config.clone(),
            network_settings: network,
            ..Default::default()
        }
    }

    pub fn summary(&self) -> ContainerSummary {
        let mut command = self.path.clone();
        for a in &self.args {
            command.push(' ');
            command.push_str(a);
        }
        ContainerSummary {
            id: self.id.clone(),
            names: vec![format!("/{}", self.name)],
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            command,
            created: unix_seconds(&self.created),
            labels: self.config.labels.clone().unwrap_or_default(),
            state: self.state.status.as_str().to_string(),
            status: self.status_line(std::time::SystemTime::now()),
            host_config: SummaryHostConfig {
                network_mode: if self.host_config.network_mode.is_empty() {
                    "default".into()
                } else {
                    self.host_config.network_mode.clone()
                },
                annotations: None,
            },
            mounts: self.mounts.clone(),
            ..Default::default()
        }
    }

    /// `Up 3 seconds`, `Exited (0) 5 seconds ago`, `Created`, as ps says.
    pub fn status_line(&self, now: std::time::SystemTime) -> String {
        let s = &self.state;
        let since = |t: &str| {
            humantime::parse_rfc3339_weak(t)
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .map(human_duration)
                .unwrap_or_else(|| "Less than a second".into())
        };
        let health = match s.health.as_ref().map(|h| h.status.as_str()) {
            Some("starting") => " (health: starting)",
            Some("healthy") => " (healthy)",
            Some("unhealthy") => " (unhealthy)",
            _ => "",
        };
        match s.status {
            Status::Created => "Created".into(),
            Status::Running => format!("Up {}{health}", since(&s.started_at)),
            Status::Paused => format!("Up {} (Paused)", since(&s.started_at)),
            Status::Restarting => {
                format!("Restarting ({}) {} ago", s.exit_code, since(&s.finished_at))
            }
            Status::Removing => "Removal In Progress".into(),
            Status::Exited => format!("Exited ({}) {} ago", s.exit_code, since(&s.finished_at)),
            Status::Dead => "Dead".into(),
        }
    }
}

fn non_empty_time(t: &str) -> String {
    if t.is_empty() {
        ZERO_TIME.to_string()
    } else {
        t.to_string()
    }
}

pub fn unix_seconds(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

/// docker's go-units HumanDuration.
pub fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let mins = secs / 60;
    let hours = mins / 60;
    if secs < 1 {
        "Less than a second".into()
    } else if secs == 1 {
        "1 second".into()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if mins == 1 {
        "About a minute".into()
    } else if mins < 60 {
        format!("{mins} minutes")
    } else if (hours as f64 + 0.5) as u64 == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
        assert_eq!(human_duration(Duration::from_secs(59)), "59 seconds");
        assert_eq!(human_duration(Duration::from_secs(61)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(3600)), "About an hour");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600)), "3 hours");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3 days");
    }

    #[test]
    fn status_lines() {
        let now = std::time::SystemTime::now();
        let mut r = Record::default();
        assert_eq!(r.status_line(now), "Created");
        r.state.status = Status::Exited;
        r.state.exit_code = 3;
        r.state.finished_at =
            humantime::format_rfc3339_nanos(now - Duration::from_secs(5)).to_string();
        assert_eq!(r.status_line(now), "Exited (3) 5 seconds ago");
        assert_eq!(r.api_state().started_at, ZERO_TIME);
        assert_eq!(r.api_state().pid, 0);
    }
}
