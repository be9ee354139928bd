//! Resource usage of a cgroup, for `docker stats`, CRI's container stats
//! and `berth-runtime events`. Counters the backend cannot read are zero
//! or `None`, never made up.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub io: IoStats,
    /// Per page size ("2MB", "1GB").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Total CPU time consumed, in nanoseconds.
    pub usage_ns: u64,
    pub user_ns: u64,
    pub system_ns: u64,
    /// Per CPU, where the backend reports it (v1 cpuacct.usage_percpu).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_cpu_ns: Vec<u64>,
    /// CFS bandwidth: enforcement periods, periods in which the group was
    /// throttled, and the total time it was throttled.
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Current usage in bytes (including page cache).
    pub usage: u64,
    /// Peak usage, where the kernel keeps it.
    pub max_usage: Option<u64>,
    /// The limit; `None` when unlimited.
    pub limit: Option<u64>,
    /// Page cache (v1 `cache`, v2 `file`).
    pub cache: u64,
    /// Anonymous memory (v1 `rss`, v2 `anon`).
    pub rss: u64,
    /// `inactive_file`: docker's working set is usage minus this.
    pub inactive_file: u64,
    pub swap_usage: Option<u64>,
    /// Times the group hit its limit and the OOM killer ran or would have
    /// (v2 memory.events `oom`; v1 `under_oom` transitions are not
    /// counted, so v1 reports the kills).
    pub oom_events: u64,
    /// Processes the OOM killer killed in the group (v2 memory.events
    /// `oom_kill`, v1 memory.oom_control `oom_kill`).
    pub oom_kills: u64,
    /// v1 memory.failcnt.
    pub failcnt: Option<u64>,
    /// memory.stat as the kernel gives it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    pub current: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoStats {
    pub devices: Vec<IoDeviceStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoDeviceStats {
    pub major: u64,
    pub minor: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ops: u64,
    pub write_ops: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HugetlbStats {
    pub usage: u64,
    pub max_usage: Option<u64>,
    pub failcnt: u64,
}

/// Tells when the OOM killer acts in a cgroup: v2 watches memory.events
/// (inotify), v1 registers an eventfd on memory.oom_control
/// (cgroup.event_control). Poll [`OomNotifier::as_fd`] for readability,
/// then call [`OomNotifier::consume`].
#[derive(Debug)]
pub struct OomNotifier {
    pub(super) fd: OwnedFd,
    pub(super) kind: OomKind,
}

#[derive(Debug)]
pub(super) enum OomKind {
    /// The eventfd counter is the number of OOM events.
    V1Eventfd,
    /// inotify on memory.events; the count comes from re-reading it.
    V2Inotify {
        events_file: std::path::PathBuf,
        last_kills: u64,
    },
}

impl AsFd for OomNotifier {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
