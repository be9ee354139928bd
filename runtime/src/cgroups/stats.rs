//! Resource usage of a cgroup, for `docker stats`, CRI's container stats
//! and `berth-runtime events`. Counters the backend cannot read are zero
//! or `None`, never made up.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::fs::{self, read_opt};
use super::{CgroupError, Result};

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
    /// Page cache (v1 `total_cache`, v2 `file`).
    ///
    /// On v1 the `total_` keys are used: like `usage` (and like every v2
    /// figure) they include the group's sub-cgroups, so `usage -
    /// inactive_file` stays a working set when the container makes
    /// cgroups of its own. The group-only keys are in `raw`.
    pub cache: u64,
    /// Anonymous memory (v1 `total_rss`, v2 `anon`).
    pub rss: u64,
    /// `inactive_file` (v1 `total_inactive_file`): docker's working set
    /// is usage minus this.
    pub inactive_file: u64,
    /// Swap in use: v1 memsw usage minus usage, v2 memory.swap.current;
    /// `None` without swap accounting.
    pub swap_usage: Option<u64>,
    /// Times the group hit its limit and the OOM killer ran or would have
    /// (v2 memory.events `oom`; v1 `under_oom` transitions are not
    /// counted, so v1 reports the kills).
    pub oom_events: u64,
    /// Processes the OOM killer killed in the group (v2 memory.events
    /// `oom_kill`, v1 memory.oom_control `oom_kill`).
    pub oom_kills: u64,
    /// v1 memory.failcnt; `None` on v2, which has no such counter
    /// (memory.events `max` counts something else).
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
    /// Peak usage (v1 only; v2 keeps no peak).
    pub max_usage: Option<u64>,
    /// Allocations refused at the limit (v1 `failcnt`, v2 `.events` `max`).
    pub failcnt: u64,
    /// The limit; `None` when unlimited.
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Tells when the OOM killer acts in a cgroup: v2 watches memory.events
/// (inotify), v1 registers an eventfd on memory.oom_control
/// (cgroup.event_control). Poll [`OomNotifier::as_fd`] for readability
/// (it is non-blocking and close-on-exec), then call
/// [`OomNotifier::consume`]. An error from `consume` means the cgroup is
/// gone (or unreadable): stop watching.
#[derive(Debug)]
pub struct OomNotifier {
    pub(super) fd: OwnedFd,
    pub(super) kind: OomKind,
}

#[derive(Debug)]
pub(super) enum OomKind {
    /// The eventfd counter is the number of OOM events. The kernel also
    /// signals it once when the cgroup is removed, hence the file to
    /// check.
    V1Eventfd { oom_control: PathBuf },
    /// inotify on memory.events; the count comes from re-reading it.
    V2Inotify {
        events_file: PathBuf,
        last_kills: u64,
    },
}

impl AsFd for OomNotifier {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl OomNotifier {
    /// v1: an eventfd the kernel signals when the memory cgroup at `dir`
    /// runs out of memory.
    pub(super) fn v1(dir: &Path) -> Result<Self> {
        let oom_control = dir.join("memory.oom_control");
        let control =
            File::open(&oom_control).map_err(|source| gone_or(dir, &oom_control, source))?;
        // SAFETY: eventfd takes no pointers; a non-negative result is a new
        // fd that nothing else owns.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(notify_err(
                &oom_control,
                "eventfd",
                io::Error::last_os_error(),
            ));
        }
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        // The kernel resolves both fds during this write and keeps its
        // own references: `control` can be closed right after.
        let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
        fs::write(&dir.join("cgroup.event_control"), &line)?;
        Ok(OomNotifier {
            fd: efd,
            kind: OomKind::V1Eventfd { oom_control },
        })
    }

    /// v2: inotify on `dir`/memory.events, counting `oom_kill` from now on.
    pub(super) fn v2(dir: &Path) -> Result<Self> {
        let events_file = dir.join("memory.events");
        // SAFETY: no pointers; a non-negative result is a new fd.
        let ifd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if ifd < 0 {
            return Err(notify_err(
                &events_file,
                "inotify_init1",
                io::Error::last_os_error(),
            ));
        }
        let ifd = unsafe { OwnedFd::from_raw_fd(ifd) };
        let cpath = std::ffi::CString::new(events_file.as_os_str().as_bytes()).map_err(|_| {
            notify_err(
                &events_file,
                "inotify_add_watch",
                io::ErrorKind::InvalidInput.into(),
            )
        })?;
        // SAFETY: `cpath` is a valid NUL-terminated string for the call.
        let wd =
            unsafe { libc::inotify_add_watch(ifd.as_raw_fd(), cpath.as_ptr(), libc::IN_MODIFY) };
        if wd < 0 {
            let e = io::Error::last_os_error();
            return Err(if e.kind() == io::ErrorKind::NotFound && dir.is_dir() {
                CgroupError::MissingController("memory".into())
            } else {
                gone_or(dir, &events_file, e)
            });
        }
        // Watch first, then read: a kill in between wakes the poller and
        // is already counted, so `consume` reports 0 rather than missing it.
        let last_kills = memory_events_kills(&events_file)?;
        Ok(OomNotifier {
            fd: ifd,
            kind: OomKind::V2Inotify {
                events_file,
                last_kills,
            },
        })
    }

    /// After the fd polled readable: how many OOM kills (v2) or OOM
    /// events (v1: the eventfd counter) happened since the previous call;
    /// 0 if the wake-up was for another memory event or spurious.
    pub fn consume(&mut self) -> Result<u64> {
        match &mut self.kind {
            OomKind::V1Eventfd { oom_control } => {
                let mut buf = [0u8; 8];
                // SAFETY: reads at most 8 bytes into `buf`.
                let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
                let count = if n == 8 {
                    u64::from_ne_bytes(buf)
                } else {
                    let e = io::Error::last_os_error();
                    if n < 0 && e.kind() != io::ErrorKind::WouldBlock {
                        return Err(notify_err(oom_control, "reading the eventfd", e));
                    }
                    0
                };
                if !oom_control.exists() {
                    // The removal signal, not an OOM.
                    return Err(CgroupError::Gone {
                        path: oom_control.parent().unwrap_or(oom_control).to_path_buf(),
                    });
                }
                Ok(count)
            }
            OomKind::V2Inotify {
                events_file,
                last_kills,
            } => {
                let mut buf = [0u8; 1024];
                loop {
                    // SAFETY: reads at most `buf.len()` bytes into `buf`.
                    let n = unsafe {
                        libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                    };
                    if n > 0 {
                        continue;
                    }
                    let e = io::Error::last_os_error();
                    if n == 0 || e.kind() == io::ErrorKind::WouldBlock {
                        break;
                    }
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(notify_err(events_file, "reading inotify events", e));
                    }
                }
                let now = memory_events_kills(events_file)?;
                // A smaller count can only come from a different cgroup
                // at the same path: start over from it.
                let new = now.saturating_sub(*last_kills);
                *last_kills = now;
                Ok(new)
            }
        }
    }
}

fn notify_err(path: &Path, op: &'static str, source: io::Error) -> CgroupError {
    CgroupError::Notify {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// `Gone` when `dir` itself has disappeared, else a read error of `file`.
fn gone_or(dir: &Path, file: &Path, source: io::Error) -> CgroupError {
    if source.kind() == io::ErrorKind::NotFound && !dir.exists() {
        CgroupError::Gone {
            path: dir.to_path_buf(),
        }
    } else {
        CgroupError::Read {
            path: file.to_path_buf(),
            source,
        }
    }
}

fn memory_events_kills(path: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| gone_or(path.parent().unwrap_or(path), path, source))?;
    Ok(keyed(&text)
        .find_map(|(k, v)| (k == "oom_kill").then_some(v))
        .unwrap_or(0))
}

// ---------------------------------------------------------------- parsing
//
// Pure functions over file contents, so that they are testable without
// cgroups.

/// `key value` lines (cpu.stat, memory.stat, memory.events,
/// memory.oom_control); lines that do not fit are skipped.
pub fn keyed(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|l| {
        let (k, v) = l.split_once(' ')?;
        Some((k, v.trim().parse().ok()?))
    })
}

/// A file holding one number.
pub fn single(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// A v2 limit: "max" is unlimited.
pub fn v2_limit(text: &str) -> Option<u64> {
    match text.trim() {
        "max" => None,
        t => t.parse().ok(),
    }
}

/// A v1 memory or hugetlb limit. "Unlimited" is the page counter's
/// maximum, LONG_MAX rounded down to the page size
/// (9223372036854771712 with 4 KiB pages): anything that close to
/// i64::MAX is unlimited, whatever the page size.
pub fn v1_limit(text: &str) -> Option<u64> {
    const UNLIMITED_FROM: u64 = i64::MAX as u64 - (1 << 20);
    single(text).filter(|&v| v < UNLIMITED_FROM)
}

/// cpuacct.usage_all: `cpu user system` then one line per CPU, in ns.
/// Gives per-CPU usage (user + system, as cpuacct.usage_percpu), user
/// and system totals.
pub fn parse_cpuacct_usage_all(text: &str) -> Option<(Vec<u64>, u64, u64)> {
    let mut lines = text.lines();
    if lines.next()?.split_whitespace().collect::<Vec<_>>() != ["cpu", "user", "system"] {
        return None;
    }
    let (mut per_cpu, mut user, mut system) = (Vec::new(), 0u64, 0u64);
    for l in lines {
        let mut f = l.split_whitespace();
        let (Some(_), Some(u), Some(s)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let (u, s): (u64, u64) = (u.parse().ok()?, s.parse().ok()?);
        per_cpu.push(u + s);
        user += u;
        system += s;
    }
    Some((per_cpu, user, system))
}

/// cpuacct.usage_percpu: space-separated ns.
pub fn parse_percpu(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// cpuacct.stat (`user N`, `system N` in USER_HZ ticks) to ns.
pub fn parse_cpuacct_stat(text: &str, user_hz: u64) -> (u64, u64) {
    let ns_per_tick = 1_000_000_000 / user_hz.max(1);
    let (mut user, mut system) = (0, 0);
    for (k, v) in keyed(text) {
        match k {
            "user" => user = v.saturating_mul(ns_per_tick),
            "system" => system = v.saturating_mul(ns_per_tick),
            _ => {}
        }
    }
    (user, system)
}

/// v1 cpu.stat: periods, throttled periods, throttled time (ns).
pub fn parse_v1_cpu_stat(text: &str, cpu: &mut CpuStats) {
    for (k, v) in keyed(text) {
        match k {
            "nr_periods" => cpu.periods = v,
            "nr_throttled" => cpu.throttled_periods = v,
            "throttled_time" => cpu.throttled_ns = v,
            _ => {}
        }
    }
}

/// v2 cpu.stat (µs) into `cpu` (ns).
pub fn parse_v2_cpu_stat(text: &str, cpu: &mut CpuStats) {
    let ns = |us: u64| us.saturating_mul(1000);
    for (k, v) in keyed(text) {
        match k {
            "usage_usec" => cpu.usage_ns = ns(v),
            "user_usec" => cpu.user_ns = ns(v),
            "system_usec" => cpu.system_ns = ns(v),
            "nr_periods" => cpu.periods = v,
            "nr_throttled" => cpu.throttled_periods = v,
            "throttled_usec" => cpu.throttled_ns = ns(v),
            _ => {}
        }
    }
}

/// memory.stat into `raw`, with cache, rss and inactive_file taken from
/// the keys named by `cache`, `rss` and `inactive`.
fn parse_memory_stat(text: &str, m: &mut MemoryStats, keys: [&str; 3]) {
    for (k, v) in keyed(text) {
        if k == keys[0] {
            m.cache = v;
        } else if k == keys[1] {
            m.rss = v;
        } else if k == keys[2] {
            m.inactive_file = v;
        }
        m.raw.insert(k.to_owned(), v);
    }
}

/// v1 memory.stat. The `total_` (hierarchical) keys are preferred, see
/// [`MemoryStats::cache`]; a kernel without them gets the local ones.
pub fn parse_v1_memory_stat(text: &str, m: &mut MemoryStats) {
    if text.lines().any(|l| l.starts_with("total_cache ")) {
        parse_memory_stat(text, m, ["total_cache", "total_rss", "total_inactive_file"]);
    } else {
        parse_memory_stat(text, m, ["cache", "rss", "inactive_file"]);
    }
}

/// v2 memory.stat.
pub fn parse_v2_memory_stat(text: &str, m: &mut MemoryStats) {
    parse_memory_stat(text, m, ["file", "anon", "inactive_file"]);
}

/// v2 memory.events: `oom` and `oom_kill`.
pub fn parse_memory_events(text: &str, m: &mut MemoryStats) {
    for (k, v) in keyed(text) {
        match k {
            "oom" => m.oom_events = v,
            "oom_kill" => m.oom_kills = v,
            _ => {}
        }
    }
}

/// v1 memory.oom_control: its `oom_kill` counter is both the kills and,
/// for want of a better count, the events (see
/// [`MemoryStats::oom_events`]).
pub fn parse_oom_control(text: &str, m: &mut MemoryStats) {
    if let Some(k) = keyed(text).find_map(|(k, v)| (k == "oom_kill").then_some(v)) {
        m.oom_kills = k;
        m.oom_events = k;
    }
}

fn device(devs: &mut Vec<IoDeviceStats>, major: u64, minor: u64) -> &mut IoDeviceStats {
    // A handful of devices: a linear search beats a map.
    let i = match devs
        .iter()
        .position(|d| d.major == major && d.minor == minor)
    {
        Some(i) => i,
        None => {
            devs.push(IoDeviceStats {
                major,
                minor,
                ..Default::default()
            });
            devs.len() - 1
        }
    };
    &mut devs[i]
}

fn major_minor(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// v1 blkio `io_service_bytes*` (`bytes`) or `io_serviced*` (ops) lines,
/// `8:0 Read 4096`, into per-device stats.
pub fn parse_blkio(text: &str, bytes: bool, devs: &mut Vec<IoDeviceStats>) {
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let (Some(dev), Some(op), Some(v)) = (f.next(), f.next(), f.next()) else {
            continue; // also the closing `Total N`
        };
        let (Some((major, minor)), Ok(v)) = (major_minor(dev), v.parse::<u64>()) else {
            continue;
        };
        let d = device(devs, major, minor);
        match (op, bytes) {
            ("Read", true) => d.read_bytes = v,
            ("Write", true) => d.write_bytes = v,
            ("Read", false) => d.read_ops = v,
            ("Write", false) => d.write_ops = v,
            _ => {}
        }
    }
}

/// v2 io.stat: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`.
pub fn parse_io_stat(text: &str) -> Vec<IoDeviceStats> {
    let mut devs = Vec::new();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some((major, minor)) = f.next().and_then(major_minor) else {
            continue;
        };
        let d = device(&mut devs, major, minor);
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse() else { continue };
            match k {
                "rbytes" => d.read_bytes = v,
                "wbytes" => d.write_bytes = v,
                "rios" => d.read_ops = v,
                "wios" => d.write_ops = v,
                _ => {}
            }
        }
    }
    devs
}

/// The cgroup name of a huge page size from its /sys/kernel/mm/hugepages
/// entry ("hugepages-2048kB" → "2MB"), formatted as the kernel's hugetlb
/// controller names its files.
pub fn hugepage_size_name(entry: &str) -> Option<String> {
    let kb: u64 = entry
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    Some(if kb >= 1 << 20 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    })
}

/// The host's huge page sizes, read once: they only change with a reboot.
fn hugepage_sizes() -> &'static [String] {
    static SIZES: OnceLock<Vec<String>> = OnceLock::new();
    SIZES.get_or_init(|| {
        let mut v: Vec<String> = std::fs::read_dir("/sys/kernel/mm/hugepages")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| hugepage_size_name(&e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    })
}

// ------------------------------------------------------------- collection
//
// Each file is read once; a missing file leaves its figures at their
// defaults, unless the cgroup directory itself is gone.

fn user_hz() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as u64 } else { 100 }
}

/// v1 cpuacct: one read of cpuacct.usage_all where the kernel has it
/// (4.7+), else cpuacct.usage, usage_percpu and stat.
pub(super) fn v1_cpuacct(dir: &Path, cpu: &mut CpuStats) -> Result<()> {
    if let Some(t) = read_opt(dir, "cpuacct.usage_all")?
        && let Some((per_cpu, user, system)) = parse_cpuacct_usage_all(&t)
    {
        cpu.usage_ns = per_cpu.iter().sum();
        cpu.per_cpu_ns = per_cpu;
        cpu.user_ns = user;
        cpu.system_ns = system;
        return Ok(());
    }
    if let Some(t) = read_opt(dir, "cpuacct.usage")? {
        cpu.usage_ns = single(&t).unwrap_or(0);
    }
    if let Some(t) = read_opt(dir, "cpuacct.usage_percpu")? {
        cpu.per_cpu_ns = parse_percpu(&t);
    }
    if let Some(t) = read_opt(dir, "cpuacct.stat")? {
        (cpu.user_ns, cpu.system_ns) = parse_cpuacct_stat(&t, user_hz());
    }
    Ok(())
}

pub(super) fn v1_cpu(dir: &Path, cpu: &mut CpuStats) -> Result<()> {
    if let Some(t) = read_opt(dir, "cpu.stat")? {
        parse_v1_cpu_stat(&t, cpu);
    }
    Ok(())
}

pub(super) fn v1_memory(dir: &Path, m: &mut MemoryStats) -> Result<()> {
    if let Some(t) = read_opt(dir, "memory.usage_in_bytes")? {
        m.usage = single(&t).unwrap_or(0);
    }
    if let Some(t) = read_opt(dir, "memory.max_usage_in_bytes")? {
        m.max_usage = single(&t);
    }
    if let Some(t) = read_opt(dir, "memory.limit_in_bytes")? {
        m.limit = v1_limit(&t);
    }
    if let Some(t) = read_opt(dir, "memory.failcnt")? {
        m.failcnt = single(&t);
    }
    // Only with swap accounting (swapaccount=1 / CONFIG_MEMCG_SWAP).
    if let Some(t) = read_opt(dir, "memory.memsw.usage_in_bytes")? {
        m.swap_usage = single(&t).map(|memsw| memsw.saturating_sub(m.usage));
    }
    if let Some(t) = read_opt(dir, "memory.stat")? {
        parse_v1_memory_stat(&t, m);
    }
    if let Some(t) = read_opt(dir, "memory.oom_control")? {
        parse_oom_control(&t, m);
    }
    Ok(())
}

/// pids.current and pids.max: same files on v1 and v2.
pub(super) fn pids(dir: &Path, p: &mut PidsStats) -> Result<()> {
    if let Some(t) = read_opt(dir, "pids.current")? {
        p.current = single(&t).unwrap_or(0);
    }
    if let Some(t) = read_opt(dir, "pids.max")? {
        p.limit = v2_limit(&t);
    }
    Ok(())
}

/// v1 blkio: the `_recursive` files (they count the container's own
/// sub-cgroups too, like the other figures), or the plain ones on
/// kernels before 4.x that lack them.
pub(super) fn v1_blkio(dir: &Path, io: &mut IoStats) -> Result<()> {
    for (file, bytes) in [
        ("blkio.throttle.io_service_bytes", true),
        ("blkio.throttle.io_serviced", false),
    ] {
        let text = match read_opt(dir, &format!("{file}_recursive"))? {
            Some(t) => Some(t),
            None => read_opt(dir, file)?,
        };
        if let Some(t) = text {
            parse_blkio(&t, bytes, &mut io.devices);
        }
    }
    Ok(())
}

pub(super) fn v1_hugetlb(dir: &Path, out: &mut BTreeMap<String, HugetlbStats>) -> Result<()> {
    for size in hugepage_sizes() {
        let file = |name: &str| format!("hugetlb.{size}.{name}");
        let Some(usage) = read_opt(dir, &file("usage_in_bytes"))? else {
            continue;
        };
        let mut h = HugetlbStats {
            usage: single(&usage).unwrap_or(0),
            ..Default::default()
        };
        if let Some(t) = read_opt(dir, &file("max_usage_in_bytes"))? {
            h.max_usage = single(&t);
        }
        if let Some(t) = read_opt(dir, &file("failcnt"))? {
            h.failcnt = single(&t).unwrap_or(0);
        }
        if let Some(t) = read_opt(dir, &file("limit_in_bytes"))? {
            h.limit = v1_limit(&t);
        }
        out.insert(size.clone(), h);
    }
    Ok(())
}

/// v2 hugetlb (also a hybrid host's cgroup2 hierarchy, where hugetlb
/// may be the only controller). Stops at the first missing `.current`:
/// the controller is not enabled for this cgroup.
pub(super) fn v2_hugetlb(dir: &Path, out: &mut BTreeMap<String, HugetlbStats>) -> Result<()> {
    for size in hugepage_sizes() {
        let file = |name: &str| format!("hugetlb.{size}.{name}");
        let Some(current) = read_opt(dir, &file("current"))? else {
            break;
        };
        let mut h = HugetlbStats {
            usage: single(&current).unwrap_or(0),
            ..Default::default()
        };
        if let Some(t) = read_opt(dir, &file("max"))? {
            h.limit = v2_limit(&t);
        }
        if let Some(t) = read_opt(dir, &file("events"))? {
            h.failcnt = keyed(&t)
                .find_map(|(k, v)| (k == "max").then_some(v))
                .unwrap_or(0);
        }
        out.insert(size.clone(), h);
    }
    Ok(())
}

/// Everything of a v2 cgroup.
pub(super) fn v2(dir: &Path) -> Result<Stats> {
    let mut s = Stats::default();
    if let Some(t) = read_opt(dir, "cpu.stat")? {
        parse_v2_cpu_stat(&t, &mut s.cpu);
    }
    let m = &mut s.memory;
    if let Some(t) = read_opt(dir, "memory.current")? {
        m.usage = single(&t).unwrap_or(0);
        // Only with the memory controller: skip its other files without.
        if let Some(t) = read_opt(dir, "memory.peak")? {
            m.max_usage = single(&t);
        }
        if let Some(t) = read_opt(dir, "memory.max")? {
            m.limit = v2_limit(&t);
        }
        if let Some(t) = read_opt(dir, "memory.swap.current")? {
            m.swap_usage = single(&t);
        }
        if let Some(t) = read_opt(dir, "memory.stat")? {
            parse_v2_memory_stat(&t, m);
        }
        if let Some(t) = read_opt(dir, "memory.events")? {
            parse_memory_events(&t, m);
        }
    }
    pids(dir, &mut s.pids)?;
    if let Some(t) = read_opt(dir, "io.stat")? {
        s.io.devices = parse_io_stat(&t);
    }
    v2_hugetlb(dir, &mut s.hugetlb)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Contents as read on the hosts these run on: a hybrid 6.18 host (v1)
    // and the Debian 6.1 test guest (v2), shortened where long.

    const V1_MEMORY_STAT: &str = "\
cache 9494528
rss 2482176
rss_huge 0
shmem 9166848
mapped_file 7016448
swap 0
inactive_anon 0
active_anon 1531904
inactive_file 12288
active_file 315392
unevictable 10117120
hierarchical_memory_limit 9223372036854771712
hierarchical_memsw_limit 9223372036854771712
total_cache 1703563264
total_rss 5730304
total_rss_huge 0
total_swap 0
total_inactive_anon 3252224
total_active_anon 2338816
total_inactive_file 948228096
total_active_file 745238528
";

    const V2_MEMORY_STAT: &str = "\
anon 122880
file 184320
kernel 135168
kernel_stack 16384
pagetables 40960
shmem 0
file_mapped 40960
inactive_anon 94208
active_anon 4096
inactive_file 135168
active_file 49152
slab 45848
pgfault 636
thp_collapse_alloc 0
";

    #[test]
    fn parses_single_values_and_limits() {
        assert_eq!(single("643072\n"), Some(643072));
        assert_eq!(single("max\n"), None);
        assert_eq!(v2_limit("max\n"), None);
        assert_eq!(v2_limit("33554432\n"), Some(33554432));
        // 4 KiB and 64 KiB page hosts' "unlimited".
        assert_eq!(v1_limit("9223372036854771712\n"), None);
        assert_eq!(v1_limit("9223372036854710272\n"), None);
        assert_eq!(v1_limit("268435456\n"), Some(268435456));
        assert_eq!(v1_limit("garbage"), None);
        let kv: Vec<_> = keyed("a 1\nbad\nb x\nc 3\n\n").collect();
        assert_eq!(kv, [("a", 1), ("c", 3)]);
    }

    #[test]
    fn parses_v1_cpu() {
        let all = "cpu user system\n0 1031085782562 222791210323\n1 1146884161645 260911711525\n";
        let (per_cpu, user, system) = parse_cpuacct_usage_all(all).unwrap();
        assert_eq!(per_cpu, [1253876992885, 1407795873170]);
        assert_eq!(user, 1031085782562 + 1146884161645);
        assert_eq!(system, 222791210323 + 260911711525);
        assert_eq!(parse_cpuacct_usage_all("1 2 3\n"), None);
        assert_eq!(parse_percpu("12 0 34 \n"), [12, 0, 34]);
        // USER_HZ ticks: 100 per second here.
        assert_eq!(
            parse_cpuacct_stat("user 250\nsystem 3\n", 100),
            (2_500_000_000, 30_000_000)
        );
        let mut cpu = CpuStats::default();
        parse_v1_cpu_stat(
            "nr_periods 40\nnr_throttled 38\nthrottled_time 3613291302\nnr_bursts 0\nburst_time 0\n",
            &mut cpu,
        );
        assert_eq!(
            (cpu.periods, cpu.throttled_periods, cpu.throttled_ns),
            (40, 38, 3613291302)
        );
    }

    #[test]
    fn parses_v2_cpu() {
        let mut cpu = CpuStats::default();
        parse_v2_cpu_stat(
            "usage_usec 284638\nuser_usec 138006\nsystem_usec 146631\nnr_periods 12\n\
             nr_throttled 9\nthrottled_usec 812345\nnr_bursts 0\nburst_usec 0\n",
            &mut cpu,
        );
        assert_eq!(
            cpu,
            CpuStats {
                usage_ns: 284_638_000,
                user_ns: 138_006_000,
                system_ns: 146_631_000,
                per_cpu_ns: Vec::new(),
                periods: 12,
                throttled_periods: 9,
                throttled_ns: 812_345_000,
            }
        );
    }

    #[test]
    fn parses_memory_stat_both_versions() {
        let mut m = MemoryStats::default();
        parse_v1_memory_stat(V1_MEMORY_STAT, &mut m);
        assert_eq!(
            (m.cache, m.rss, m.inactive_file),
            (1703563264, 5730304, 948228096)
        );
        assert_eq!(m.raw["cache"], 9494528);
        assert_eq!(m.raw["total_active_file"], 745238528);
        assert_eq!(m.raw.len(), 21);
        // A kernel without hierarchy keys: the group's own.
        let own: String = V1_MEMORY_STAT
            .lines()
            .filter(|l| !l.starts_with("total_"))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut m = MemoryStats::default();
        parse_v1_memory_stat(&own, &mut m);
        assert_eq!((m.cache, m.rss, m.inactive_file), (9494528, 2482176, 12288));

        let mut m = MemoryStats::default();
        parse_v2_memory_stat(V2_MEMORY_STAT, &mut m);
        assert_eq!((m.cache, m.rss, m.inactive_file), (184320, 122880, 135168));
        assert_eq!(m.raw["kernel_stack"], 16384);
    }

    #[test]
    fn parses_oom_counters() {
        let mut m = MemoryStats::default();
        parse_memory_events(
            "low 0\nhigh 4\nmax 97\noom 2\noom_kill 1\noom_group_kill 0\n",
            &mut m,
        );
        assert_eq!((m.oom_events, m.oom_kills), (2, 1));
        let mut m = MemoryStats::default();
        parse_oom_control("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", &mut m);
        assert_eq!((m.oom_events, m.oom_kills), (3, 3));
        // Kernels before 4.13 have no oom_kill line.
        let mut m = MemoryStats::default();
        parse_oom_control("oom_kill_disable 0\nunder_oom 1\n", &mut m);
        assert_eq!((m.oom_events, m.oom_kills), (0, 0));
    }

    #[test]
    fn parses_block_io_both_versions() {
        let bytes = "\
254:0 Read 14442848256
254:0 Write 16087035904
254:0 Sync 26328907776
254:0 Async 15991369728
254:0 Discard 11790393344
254:0 Total 42320277504
7:0 Read 4096
7:0 Write 0
7:0 Sync 4096
7:0 Async 0
7:0 Discard 0
7:0 Total 4096
Total 42320281600
";
        let ops = "254:0 Read 901\n254:0 Write 77\n254:0 Total 978\n7:0 Read 1\nTotal 979\n";
        let mut devs = Vec::new();
        parse_blkio(bytes, true, &mut devs);
        parse_blkio(ops, false, &mut devs);
        assert_eq!(
            devs,
            [
                IoDeviceStats {
                    major: 254,
                    minor: 0,
                    read_bytes: 14442848256,
                    write_bytes: 16087035904,
                    read_ops: 901,
                    write_ops: 77,
                },
                IoDeviceStats {
                    major: 7,
                    minor: 0,
                    read_bytes: 4096,
                    write_bytes: 0,
                    read_ops: 1,
                    write_ops: 0,
                },
            ]
        );
        let mut none = Vec::new();
        parse_blkio("Total 0\n", true, &mut none);
        assert!(none.is_empty());

        let io = "\
254:0 rbytes=3522560 wbytes=0 rios=91 wios=0 dbytes=0 dios=0
8:16 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0 cost.vrate=100.00 cost.usage=5

";
        let devs = parse_io_stat(io);
        assert_eq!(devs.len(), 2);
        assert_eq!(
            (
                devs[0].major,
                devs[0].minor,
                devs[0].read_bytes,
                devs[0].read_ops
            ),
            (254, 0, 3522560, 91)
        );
        assert_eq!(
            (
                devs[1].major,
                devs[1].minor,
                devs[1].write_bytes,
                devs[1].write_ops
            ),
            (8, 16, 2, 4)
        );
    }

    #[test]
    fn names_huge_page_sizes_like_the_kernel() {
        assert_eq!(hugepage_size_name("hugepages-2048kB").unwrap(), "2MB");
        assert_eq!(hugepage_size_name("hugepages-1048576kB").unwrap(), "1GB");
        assert_eq!(hugepage_size_name("hugepages-64kB").unwrap(), "64KB");
        assert_eq!(hugepage_size_name("hugepages-32768kB").unwrap(), "32MB");
        assert_eq!(hugepage_size_name("hugepages-16777216kB").unwrap(), "16GB");
        assert_eq!(hugepage_size_name("hugepages-2048"), None);
        assert_eq!(hugepage_size_name("other"), None);
        for s in hugepage_sizes() {
            super::super::check_hugepage_size(s).unwrap();
        }
    }

    fn write_files(dir: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    #[test]
    fn collects_v2_from_files_and_tells_a_gone_cgroup() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        std::fs::create_dir(&dir).unwrap();
        write_files(
            &dir,
            &[
                ("cpu.stat", "usage_usec 5\nuser_usec 3\nsystem_usec 2\n"),
                ("memory.current", "643072\n"),
                ("memory.peak", "3919872\n"),
                ("memory.max", "33554432\n"),
                ("memory.swap.current", "4096\n"),
                ("memory.stat", V2_MEMORY_STAT),
                ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
                ("pids.current", "2\n"),
                ("pids.max", "max\n"),
                ("io.stat", "254:0 rbytes=3522560 wbytes=0 rios=91 wios=0\n"),
            ],
        );
        let s = v2(&dir).unwrap();
        assert_eq!(s.cpu.usage_ns, 5000);
        let m = &s.memory;
        assert_eq!(
            (m.usage, m.max_usage, m.limit, m.swap_usage),
            (643072, Some(3919872), Some(33554432), Some(4096))
        );
        assert_eq!((m.oom_events, m.oom_kills, m.failcnt), (1, 1, None));
        assert_eq!(m.rss, 122880);
        assert_eq!((s.pids.current, s.pids.limit), (2, None));
        assert_eq!(s.io.devices[0].read_bytes, 3522560);
        assert!(s.hugetlb.is_empty());

        // No memory controller: that section stays empty, no error.
        for f in ["memory.current", "memory.stat", "memory.events"] {
            std::fs::remove_file(dir.join(f)).unwrap();
        }
        let s = v2(&dir).unwrap();
        assert_eq!(s.memory, MemoryStats::default());
        assert_eq!(s.pids.current, 2);

        std::fs::remove_dir_all(&dir).unwrap();
        let e = v2(&dir).unwrap_err();
        assert!(
            matches!(&e, CgroupError::Gone { path } if path == &dir),
            "{e}"
        );
    }

    #[test]
    fn collects_v1_memory_with_swap_and_unlimited() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_files(
            dir,
            &[
                ("memory.usage_in_bytes", "71303168\n"),
                ("memory.max_usage_in_bytes", "72351744\n"),
                ("memory.limit_in_bytes", "9223372036854771712\n"),
                ("memory.failcnt", "12\n"),
                ("memory.memsw.usage_in_bytes", "75497472\n"),
                ("memory.stat", V1_MEMORY_STAT),
                (
                    "memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
                ),
            ],
        );
        let mut m = MemoryStats::default();
        v1_memory(dir, &mut m).unwrap();
        assert_eq!(m.usage, 71303168);
        assert_eq!(m.max_usage, Some(72351744));
        assert_eq!(m.limit, None);
        assert_eq!(m.failcnt, Some(12));
        assert_eq!(m.swap_usage, Some(75497472 - 71303168));
        assert_eq!((m.oom_events, m.oom_kills), (2, 2));
        assert_eq!(m.cache, 1703563264);
        // Without swap accounting there is no swap figure.
        std::fs::remove_file(dir.join("memory.memsw.usage_in_bytes")).unwrap();
        let mut m = MemoryStats::default();
        v1_memory(dir, &mut m).unwrap();
        assert_eq!(m.swap_usage, None);
    }

    fn readable(n: &OomNotifier) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut fds = [PollFd::new(n.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(1000u16)).unwrap() == 1
    }

    fn flags_of(n: &OomNotifier) -> (bool, bool) {
        // SAFETY: F_GETFD/F_GETFL only query.
        let fd = unsafe { libc::fcntl(n.fd.as_raw_fd(), libc::F_GETFD) };
        let fl = unsafe { libc::fcntl(n.fd.as_raw_fd(), libc::F_GETFL) };
        (fd & libc::FD_CLOEXEC != 0, fl & libc::O_NONBLOCK != 0)
    }

    #[test]
    fn v2_notifier_counts_kills_since_the_last_call() {
        // inotify works on any file: a plain one stands in for
        // memory.events.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        std::fs::create_dir(&dir).unwrap();
        let events = |kills: u64| {
            let text = format!("low 0\nhigh 0\nmax 9\noom 4\noom_kill {kills}\n");
            std::fs::write(dir.join("memory.events"), text).unwrap();
        };
        events(2);
        let mut n = OomNotifier::v2(&dir).unwrap();
        assert_eq!(flags_of(&n), (true, true));
        // Kills from before the notifier are not reported.
        assert_eq!(n.consume().unwrap(), 0);
        events(5);
        assert!(readable(&n));
        assert_eq!(n.consume().unwrap(), 3);
        // Drained: quiet until the next change, which may not be a kill.
        assert_eq!(n.consume().unwrap(), 0);
        events(5);
        assert!(readable(&n));
        assert_eq!(n.consume().unwrap(), 0);
        events(6);
        assert_eq!(n.consume().unwrap(), 1);

        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(n.consume(), Err(CgroupError::Gone { .. })));
        // A cgroup without the memory controller has no memory.events.
        std::fs::create_dir(&dir).unwrap();
        assert!(matches!(
            OomNotifier::v2(&dir),
            Err(CgroupError::MissingController(c)) if c == "memory"
        ));
        std::fs::remove_dir(&dir).unwrap();
        assert!(matches!(
            OomNotifier::v2(&dir),
            Err(CgroupError::Gone { .. })
        ));
    }

    #[test]
    fn v1_notifier_returns_the_eventfd_counter() {
        // cgroup.event_control in a plain directory just stores the line,
        // so the eventfd is signalled by hand here.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_files(
            dir,
            &[
                ("memory.oom_control", "oom_kill 0\n"),
                ("cgroup.event_control", ""),
            ],
        );
        let mut n = OomNotifier::v1(dir).unwrap();
        assert_eq!(flags_of(&n), (true, true));
        let line = std::fs::read_to_string(dir.join("cgroup.event_control")).unwrap();
        assert_eq!(
            line.split(' ').next().unwrap(),
            n.fd.as_raw_fd().to_string(),
            "{line}"
        );
        assert_eq!(n.consume().unwrap(), 0);
        nix::unistd::write(&n.fd, &2u64.to_ne_bytes()).unwrap();
        assert!(readable(&n));
        assert_eq!(n.consume().unwrap(), 2);
        assert_eq!(n.consume().unwrap(), 0);
        // The kernel signals the eventfd when the cgroup goes away: that
        // is not an OOM.
        std::fs::remove_file(dir.join("memory.oom_control")).unwrap();
        nix::unistd::write(&n.fd, &1u64.to_ne_bytes()).unwrap();
        assert!(matches!(n.consume(), Err(CgroupError::Gone { .. })));
    }
}
