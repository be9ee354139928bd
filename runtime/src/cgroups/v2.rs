//! cgroup v2 backend: one directory in the unified hierarchy at
//! /sys/fs/cgroup.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxResources};
use serde::{Deserialize, Serialize};

use super::fs;
use super::mountinfo::{self, CGROUP_ROOT, CgroupMountInfo};
use super::path::{self, CgroupPath};
use super::stats::{self, OomNotifier, Stats};
use super::{CgroupError, CgroupManager, CgroupMount, CgroupState, FreezerState, Result};

/// How long `freeze` waits for cgroup.events to confirm the new state.
const FREEZE_BUDGET: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V2State {
    /// Where the unified hierarchy is mounted (/sys/fs/cgroup).
    pub mount_point: PathBuf,
    /// The container's directory.
    pub path: PathBuf,
    /// Directories this manager created, shallowest first.
    #[serde(default)]
    pub created: Vec<PathBuf>,
}

#[derive(Debug)]
pub struct V2Manager {
    mount_point: PathBuf,
    path: PathBuf,
    created: Vec<PathBuf>,
}

impl V2Manager {
    /// A manager for `path` below /sys/fs/cgroup.
    pub fn new(path: &Path) -> Result<Self> {
        let cg = CgroupPath::parse(path)?;
        if cg.absolute {
            // The mount root matters only for relative paths: skip
            // mountinfo.
            return Self::resolved(&cg, None);
        }
        let mounts = mountinfo::read()?;
        let root = mounts
            .iter()
            .find(|m| m.v2 && m.mount_point == Path::new(CGROUP_ROOT));
        Self::resolved(&cg, root)
    }

    /// Like [`V2Manager::new`], with the /sys/fs/cgroup mount already read
    /// from mountinfo (`None`: assume it shows the hierarchy root).
    pub fn with_mount(path: &Path, mount: Option<&CgroupMountInfo>) -> Result<Self> {
        Self::resolved(&CgroupPath::parse(path)?, mount)
    }

    fn resolved(cg: &CgroupPath, mount: Option<&CgroupMountInfo>) -> Result<Self> {
        let mount_point = PathBuf::from(CGROUP_ROOT);
        let own = if cg.absolute {
            None
        } else {
            mountinfo::read_proc_self_cgroup()?
                .into_iter()
                .find(|c| c.hierarchy_id == 0)
                .map(|c| c.path)
        };
        let root = mount.map_or(Path::new("/"), |m| m.root.as_path());
        let path = cg.resolve(&mount_point, root, own.as_deref())?;
        Ok(V2Manager {
            mount_point,
            path,
            created: Vec::new(),
        })
    }

    pub fn from_state(state: &V2State) -> Self {
        V2Manager {
            mount_point: state.mount_point.clone(),
            path: state.path.clone(),
            created: state.created.clone(),
        }
    }

    /// The container's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Clone straight into the cgroup; cgroup.procs only as a fallback.
    pub fn placement(&self) -> Result<super::Placement> {
        Ok(super::Placement {
            clone_into: Some(super::open_cgroup_dir(&self.path)?),
            tasks: Vec::new(),
            fallback: vec![self.path.join("cgroup.procs")],
        })
    }

    /// Enable every controller the hierarchy offers in the
    /// subtree_control of each ancestor, so the leaf gets their files.
    fn enable_controllers(&self) -> Result<()> {
        let avail = fs::read(&self.mount_point.join("cgroup.controllers"))?;
        let wanted: Vec<String> = avail.split_whitespace().map(|c| format!("+{c}")).collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let all = wanted.join(" ");
        let chain = path::chain(&self.mount_point, &self.path);
        let ancestors =
            std::iter::once(self.mount_point.as_path()).chain(chain.iter().map(PathBuf::as_path));
        for dir in ancestors.take(chain.len()) {
            let file = dir.join("cgroup.subtree_control");
            if fs::write_raw(&file, &all).is_ok() {
                continue;
            }
            // One controller can fail alone (not offered at this level, or
            // a cgroup with processes of its own refusing domain
            // controllers); the rest still go in. What stays missing is
            // reported when a limit needs it.
            for c in &wanted {
                if let Err(e) = fs::write_raw(&file, c) {
                    tracing::debug!(path = %file.display(), controller = %c, error = %e,
                        "controller not enabled");
                }
            }
        }
        Ok(())
    }

    /// Write a file of `controller`; its absence means the controller is
    /// not enabled for this cgroup.
    fn write_ctrl(&self, controller: &str, file: &str, value: &str) -> Result<()> {
        if fs::write_optional(&self.path.join(file), value)? {
            Ok(())
        } else {
            Err(CgroupError::MissingController(controller.to_owned()))
        }
    }

    fn has_controller(&self, controller: &str) -> bool {
        fs::read(&self.path.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == controller))
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<()> {
        if let Some(l) = m.limit() {
            self.write_ctrl("memory", "memory.max", &max_or(l))?;
        }
        if let Some(r) = m.reservation() {
            self.write_ctrl("memory", "memory.low", &max_or(r))?;
        }
        if let Some(s) = swap_max(m.limit(), m.swap())?
            && !fs::write_optional(&self.path.join("memory.swap.max"), &s)?
        {
            tracing::debug!("swap accounting is off on this host, memory.swap ignored");
        }
        if m.swappiness().is_some()
            || m.disable_oom_killer().is_some()
            || m.kernel().is_some()
            || m.kernel_tcp().is_some()
        {
            tracing::debug!(
                "memory swappiness, disableOOMKiller and kernel limits do not exist on cgroup v2, ignored"
            );
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu) -> Result<()> {
        if let Some(s) = c.shares().filter(|&s| s != 0) {
            self.write_ctrl("cpu", "cpu.weight", &shares_to_weight(s).to_string())?;
        }
        let period = c.period().filter(|&p| p != 0);
        if c.quota().is_some() || period.is_some() {
            let quota = match c.quota() {
                Some(q) => max_or_positive(q),
                // cpu.max takes both at once; keep the quota that is there.
                None => fs::read(&self.path.join("cpu.max"))
                    .map_err(|_| CgroupError::MissingController("cpu".into()))?
                    .split_whitespace()
                    .next()
                    .unwrap_or("max")
                    .to_owned(),
            };
            let v = match period {
                Some(p) => format!("{quota} {p}"),
                None => quota,
            };
            self.write_ctrl("cpu", "cpu.max", &v)?;
        }
        if let Some(b) = c.burst() {
            fs::write_optional(&self.path.join("cpu.max.burst"), &b.to_string())?;
        }
        if let Some(i) = c.idle() {
            fs::write_optional(&self.path.join("cpu.idle"), &i.to_string())?;
        }
        if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
            tracing::debug!("realtime cpu limits do not exist on cgroup v2, ignored");
        }
        if let Some(v) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            self.write_ctrl("cpuset", "cpuset.cpus", v)?;
        }
        if let Some(v) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            self.write_ctrl("cpuset", "cpuset.mems", v)?;
        }
        Ok(())
    }

    fn apply_io(&self, b: &LinuxBlockIo) -> Result<()> {
        // io.weight (iocost) uses 1..10000, io.bfq.weight keeps blkio's
        // 10..1000: convert only for the former.
        let weight = |dev: Option<(i64, i64)>, w: u16| -> Result<()> {
            let prefix = dev
                .map(|(ma, mi)| format!("{ma}:{mi} "))
                .unwrap_or_default();
            let io = format!("{prefix}{}", blkio_to_io_weight(w));
            if fs::write_optional(&self.path.join("io.weight"), &io)? {
                return Ok(());
            }
            if fs::write_optional(&self.path.join("io.bfq.weight"), &format!("{prefix}{w}"))? {
                return Ok(());
            }
            if !self.has_controller("io") {
                return Err(CgroupError::MissingController("io".into()));
            }
            tracing::debug!("no io weight support on this host, blockIO weight ignored");
            Ok(())
        };
        if let Some(w) = b.weight() {
            weight(None, w)?;
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight() {
                weight(Some((d.major(), d.minor())), w)?;
            }
        }
        if b.leaf_weight().is_some()
            || b.weight_device()
                .iter()
                .flatten()
                .any(|d| d.leaf_weight().is_some())
        {
            tracing::debug!("blockIO leaf weights do not exist on cgroup v2, ignored");
        }
        // io.max takes all four limits of a device on one line.
        let mut lines: BTreeMap<(i64, i64), Vec<String>> = BTreeMap::new();
        for (devs, key) in [
            (b.throttle_read_bps_device(), "rbps"),
            (b.throttle_write_bps_device(), "wbps"),
            (b.throttle_read_iops_device(), "riops"),
            (b.throttle_write_iops_device(), "wiops"),
        ] {
            for d in devs.iter().flatten() {
                // As on v1, a zero rate lifts the limit.
                let rate = match d.rate() {
                    0 => "max".to_owned(),
                    r => r.to_string(),
                };
                lines
                    .entry((d.major(), d.minor()))
                    .or_default()
                    .push(format!("{key}={rate}"));
            }
        }
        for ((ma, mi), kv) in lines {
            self.write_ctrl("io", "io.max", &format!("{ma}:{mi} {}", kv.join(" ")))?;
        }
        Ok(())
    }

    fn apply_hugetlb(&self, limits: &[LinuxHugepageLimit]) -> Result<()> {
        for l in limits {
            let size = l.page_size();
            super::check_hugepage_size(size)?;
            let file = format!("hugetlb.{size}.max");
            if !fs::write_optional(&self.path.join(&file), &max_or(l.limit()))? {
                if !self.has_controller("hugetlb") {
                    return Err(CgroupError::MissingController("hugetlb".into()));
                }
                return Err(CgroupError::InvalidResource {
                    field: "hugepageLimits.pageSize".into(),
                    reason: format!("this host has no {size} huge pages"),
                });
            }
        }
        Ok(())
    }

    fn apply_unified(&self, unified: &std::collections::HashMap<String, String>) -> Result<()> {
        // Sorted, so that a failure is the same on every run.
        let mut keys: Vec<&String> = unified.keys().collect();
        keys.sort();
        for key in keys {
            if key.is_empty() || key.contains('/') || key.starts_with('.') {
                return Err(CgroupError::InvalidResource {
                    field: format!("unified.{key}"),
                    reason: "not a cgroup file name".into(),
                });
            }
            if !fs::write_optional(&self.path.join(key), &unified[key])? {
                return Err(CgroupError::InvalidResource {
                    field: format!("unified.{key}"),
                    reason: format!(
                        "{} does not exist (controller not enabled?)",
                        self.path.join(key).display()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Wait until cgroup.events reports `frozen` as `want`.
    fn wait_frozen(&self, want: bool) -> Result<()> {
        let path = self.path.join("cgroup.events");
        let mut f = File::open(&path).map_err(|source| CgroupError::Read {
            path: path.clone(),
            source,
        })?;
        let start = Instant::now();
        let mut buf = String::new();
        loop {
            buf.clear();
            f.seek(SeekFrom::Start(0))
                .and_then(|_| f.read_to_string(&mut buf))
                .map_err(|source| CgroupError::Read {
                    path: path.clone(),
                    source,
                })?;
            if events_frozen(&buf) == want {
                return Ok(());
            }
            let left = FREEZE_BUDGET.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(CgroupError::FreezeTimeout {
                    path,
                    state: if want { "frozen" } else { "thawed" }.into(),
                    waited_ms: start.elapsed().as_millis() as u64,
                });
            }
            // kernfs wakes POLLPRI pollers when cgroup.events changes
            // after our read; the cap is only a safety net.
            let ms = left.min(Duration::from_millis(100)).as_millis() as u16;
            let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLPRI)];
            if let Err(e) = poll(&mut fds, PollTimeout::from(ms))
                && e != nix::errno::Errno::EINTR
            {
                return Err(CgroupError::Read {
                    path,
                    source: e.into(),
                });
            }
        }
    }
}

/// "max" for negative (unlimited) values.
fn max_or(v: i64) -> String {
    if v < 0 { "max".into() } else { v.to_string() }
}

/// "max" for values that cannot be a quota (<= 0).
fn max_or_positive(v: i64) -> String {
    if v <= 0 { "max".into() } else { v.to_string() }
}

/// Whether a cgroup.events text says `frozen 1`.
pub fn events_frozen(events: &str) -> bool {
    events
        .lines()
        .any(|l| l.split_once(' ') == Some(("frozen", "1")))
}

/// cpu.shares (2..262144, default 1024) to cpu.weight (1..10000,
/// default 100), the conversion runc and crun use.
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// blkio.weight (10..1000) to io.weight (1..10000).
pub fn blkio_to_io_weight(weight: u16) -> u64 {
    let w = u64::from(weight.clamp(10, 1000));
    1 + ((w - 10) * 9999) / 990
}

/// memory.swap.max from OCI's limit and memory+swap figures; `None` leaves
/// the file alone.
pub fn swap_max(limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>> {
    let invalid = |reason: String| CgroupError::InvalidResource {
        field: "memory.swap".into(),
        reason,
    };
    match (limit, swap) {
        // An unlimited memory with no word on swap means unlimited swap
        // too, as on v1 where memsw follows the limit.
        (Some(l), None | Some(0)) if l < 0 => Ok(Some("max".into())),
        (_, None | Some(0)) => Ok(None),
        (_, Some(s)) if s < 0 => Ok(Some("max".into())),
        (None, Some(_)) => Err(invalid("a swap limit needs a memory limit".into())),
        (Some(l), Some(_)) if l < 0 => {
            Err(invalid("a swap limit needs a finite memory limit".into()))
        }
        (Some(l), Some(s)) if s < l => Err(invalid(format!(
            "memory+swap {s} is below the memory limit {l}"
        ))),
        (Some(l), Some(s)) => Ok(Some((s - l).to_string())),
    }
}

impl CgroupManager for V2Manager {
    fn create(&mut self, resources: Option<&LinuxResources>) -> Result<()> {
        let result = fs::mkdir_p(&self.mount_point, &self.path, &mut self.created)
            .and_then(|()| self.enable_controllers())
            .and_then(|()| resources.map_or(Ok(()), |r| self.apply(r)));
        if let Err(e) = result {
            // Nothing records a cgroup whose creation failed: undo it.
            if let Err(re) = self.remove() {
                tracing::debug!(error = %re, "removing half-created cgroup");
            }
            self.created.clear();
            return Err(e);
        }
        Ok(())
    }

    fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            self.apply_memory(m)?;
        }
        if let Some(c) = r.cpu() {
            self.apply_cpu(c)?;
        }
        if let Some(p) = r.pids() {
            self.write_ctrl("pids", "pids.max", &max_or_positive(p.limit()))?;
        }
        if let Some(b) = r.block_io() {
            self.apply_io(b)?;
        }
        if let Some(h) = r.hugepage_limits() {
            self.apply_hugetlb(h)?;
        }
        if r.network().is_some() {
            tracing::debug!("network classID and priorities do not exist on cgroup v2, ignored");
        }
        if let Some(rdma) = r.rdma() {
            for l in super::v1::rdma_lines(rdma) {
                self.write_ctrl("rdma", "rdma.max", &l)?;
            }
        }
        // Last, so that explicit files win over the typed fields.
        if let Some(u) = r.unified() {
            self.apply_unified(u)?;
        }
        // An empty list changes nothing, as on v1.
        if let Some(d) = r.devices().as_deref().filter(|d| !d.is_empty()) {
            super::devices::apply(&self.path, d)?;
        }
        Ok(())
    }

    fn add_task(&self, pid: Pid) -> Result<()> {
        fs::write(&self.path.join("cgroup.procs"), &pid.as_raw().to_string())
    }

    fn pids(&self) -> Result<Vec<Pid>> {
        fs::procs_recursive(&self.path)
    }

    fn freeze(&self, state: FreezerState) -> Result<()> {
        let want = state == FreezerState::Frozen;
        if !fs::write_optional(
            &self.path.join("cgroup.freeze"),
            if want { "1" } else { "0" },
        )? {
            return Err(CgroupError::MissingController("freezer".into()));
        }
        let res = self.wait_frozen(want);
        if want && res.is_err() {
            // Half-frozen is the worst outcome: undo it.
            let _ = fs::write(&self.path.join("cgroup.freeze"), "0");
        }
        res
    }

    fn frozen(&self) -> Result<bool> {
        Ok(events_frozen(&fs::read(&self.path.join("cgroup.events"))?))
    }

    fn remove(&self) -> Result<()> {
        fs::remove_created(
            &self.created,
            &self.path,
            Instant::now() + fs::REMOVE_BUDGET,
        )
    }

    fn state(&self) -> CgroupState {
        CgroupState::V2(V2State {
            mount_point: self.mount_point.clone(),
            path: self.path.clone(),
            created: self.created.clone(),
        })
    }

    fn stats(&self) -> Result<Stats> {
        stats::v2(&self.path)
    }

    fn oom_notifier(&self) -> Result<OomNotifier> {
        OomNotifier::v2(&self.path)
    }

    fn container_mounts(&self) -> Vec<CgroupMount> {
        vec![CgroupMount {
            subdir: String::new(),
            fstype: "cgroup2".into(),
            data: String::new(),
            host_path: self.path.clone(),
            symlinks: Vec::new(),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_shares_to_weight() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(262_144), 10_000);
        // Out of range values are clamped, not wrapped.
        assert_eq!(shares_to_weight(0), 1);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(u64::MAX), 10_000);
    }

    #[test]
    fn converts_blkio_weight() {
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(blkio_to_io_weight(0), 1);
    }

    #[test]
    fn computes_swap_max() {
        let mib = 1 << 20;
        assert_eq!(
            swap_max(Some(32 * mib), Some(64 * mib)).unwrap(),
            Some((32 * mib).to_string())
        );
        assert_eq!(
            swap_max(Some(32 * mib), Some(32 * mib)).unwrap(),
            Some("0".into())
        );
        assert_eq!(
            swap_max(Some(32 * mib), Some(-1)).unwrap(),
            Some("max".into())
        );
        assert_eq!(swap_max(Some(32 * mib), None).unwrap(), None);
        assert_eq!(swap_max(Some(-1), None).unwrap(), Some("max".into()));
        assert_eq!(swap_max(None, None).unwrap(), None);
        assert!(swap_max(None, Some(mib)).is_err());
        assert!(swap_max(Some(-1), Some(mib)).is_err());
        let e = swap_max(Some(64 * mib), Some(32 * mib)).unwrap_err();
        assert!(
            e.to_string().starts_with("linux.resources.memory.swap: "),
            "{e}"
        );
    }

    #[test]
    fn parses_cgroup_events() {
        assert!(events_frozen("populated 1\nfrozen 1\n"));
        assert!(!events_frozen("populated 1\nfrozen 0\n"));
        assert!(!events_frozen("populated 0\n"));
    }

    #[test]
    fn absolute_path_and_mounts() {
        let m = V2Manager::with_mount(Path::new("/berth/c1"), None).unwrap();
        assert_eq!(m.path(), Path::new("/sys/fs/cgroup/berth/c1"));
        let mounts = m.container_mounts();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].subdir, "");
        assert_eq!(mounts[0].fstype, "cgroup2");
        assert_eq!(mounts[0].host_path, Path::new("/sys/fs/cgroup/berth/c1"));
        let json = serde_json::to_string(&m.state()).unwrap();
        let back: CgroupState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m.state());
        assert!(V2Manager::with_mount(Path::new("/a/../b"), None).is_err());
    }

    #[test]
    fn unified_keys_are_checked_before_any_write() {
        let m = V2Manager::with_mount(Path::new("/berth-unit-never-created/x"), None).unwrap();
        for bad in ["../memory.max", "a/b", ".hidden", ""] {
            let u = std::collections::HashMap::from([(bad.to_owned(), "1".to_owned())]);
            let e = m.apply_unified(&u).unwrap_err();
            assert!(
                matches!(e, CgroupError::InvalidResource { .. }),
                "{bad}: {e}"
            );
        }
        // A well-formed key whose file is missing is named in the error.
        let u = std::collections::HashMap::from([("memory.high".to_owned(), "1".to_owned())]);
        let e = m.apply_unified(&u).unwrap_err().to_string();
        assert!(e.contains("unified.memory.high"), "{e}");
    }
}
