//! cgroup v1 backend: one directory per mounted hierarchy (plus the
//! cgroup2 `unified` mount on hybrid hosts, as runc does).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory, LinuxNetwork,
    LinuxRdma, LinuxResources,
};
use serde::{Deserialize, Serialize};

use super::fs;
use super::mountinfo::{self, CgroupMountInfo, ProcCgroup};
use super::path::CgroupPath;
use super::stats::{self, OomNotifier, Stats};
use super::{
    CgroupError, CgroupManager, CgroupMount, CgroupState, FreezerState, Result, device_rule_string,
    is_deny_all,
};

/// How long `freeze` waits for FREEZING to become FROZEN.
const FREEZE_BUDGET: Duration = Duration::from_secs(5);

/// The container's cgroup in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Hierarchy {
    /// Controllers and `name=` entries as mounted, in the kernel's order
    /// (`["cpu", "cpuacct"]`, `["name=systemd"]`); empty for cgroup2.
    pub subsystems: Vec<String>,
    /// The hybrid host's cgroup2 mount (usually /sys/fs/cgroup/unified).
    #[serde(default)]
    pub cgroup2: bool,
    pub mount_point: PathBuf,
    /// The container's directory.
    pub path: PathBuf,
    /// Directories this manager created, shallowest first.
    #[serde(default)]
    pub created: Vec<PathBuf>,
}

impl V1Hierarchy {
    fn has(&self, controller: &str) -> bool {
        !self.cgroup2 && self.subsystems.iter().any(|s| s == controller)
    }

    fn mount(&self) -> CgroupMount {
        if self.cgroup2 {
            return CgroupMount {
                subdir: "unified".into(),
                fstype: "cgroup2".into(),
                data: String::new(),
                host_path: self.path.clone(),
                symlinks: Vec::new(),
            };
        }
        let controllers: Vec<String> = self
            .subsystems
            .iter()
            .filter(|s| !s.starts_with("name="))
            .cloned()
            .collect();
        let name = self
            .subsystems
            .iter()
            .find_map(|s| s.strip_prefix("name="))
            .unwrap_or_default();
        let (subdir, data) = if controllers.is_empty() {
            (name.to_owned(), format!("none,name={name}"))
        } else {
            (controllers.join(","), self.subsystems.join(","))
        };
        CgroupMount {
            subdir,
            fstype: "cgroup".into(),
            data,
            host_path: self.path.clone(),
            symlinks: if controllers.len() > 1 {
                controllers
            } else {
                Vec::new()
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1State {
    pub hierarchies: Vec<V1Hierarchy>,
}

#[derive(Debug)]
pub struct V1Manager {
    hierarchies: Vec<V1Hierarchy>,
}

impl V1Manager {
    /// A manager for `path` in every hierarchy mounted on this host.
    pub fn new(path: &Path) -> Result<Self> {
        Self::from_mounts(path, &mountinfo::read()?)
    }

    /// Like [`V1Manager::new`], with mounts already parsed from mountinfo.
    pub fn from_mounts(path: &Path, mounts: &[CgroupMountInfo]) -> Result<Self> {
        let cg = CgroupPath::parse(path)?;
        if !mounts.iter().any(|m| !m.v2) {
            return Err(CgroupError::NoHierarchy);
        }
        // Only relative paths depend on where this process is.
        let own: Vec<ProcCgroup> = if cg.absolute {
            Vec::new()
        } else {
            mountinfo::read_proc_self_cgroup()?
        };
        let mut hierarchies = Vec::with_capacity(mounts.len());
        for m in mounts {
            let own_path = own
                .iter()
                .find(|c| {
                    if m.v2 {
                        c.hierarchy_id == 0
                    } else {
                        c.hierarchy_id != 0
                            && mountinfo::same_subsystems(&c.subsystems, &m.subsystems)
                    }
                })
                .map(|c| c.path.as_str());
            hierarchies.push(V1Hierarchy {
                subsystems: m.subsystems.clone(),
                cgroup2: m.v2,
                mount_point: m.mount_point.clone(),
                path: cg.resolve(&m.mount_point, &m.root, own_path)?,
                created: Vec::new(),
            });
        }
        Ok(V1Manager { hierarchies })
    }

    pub fn from_state(state: &V1State) -> Self {
        V1Manager {
            hierarchies: state.hierarchies.clone(),
        }
    }

    /// v1 hierarchies by self-move to `tasks`; a hybrid host's cgroup2
    /// hierarchy by CLONE_INTO_CGROUP.
    pub fn placement(&self) -> Result<super::Placement> {
        let mut p = super::Placement::default();
        for h in &self.hierarchies {
            if h.cgroup2 {
                p.clone_into = Some(super::open_cgroup_dir(&h.path)?);
                p.fallback.push(h.path.join("cgroup.procs"));
            } else {
                p.tasks.push(h.path.join("tasks"));
            }
        }
        Ok(p)
    }

    pub fn hierarchies(&self) -> &[V1Hierarchy] {
        &self.hierarchies
    }

    /// The container's directory in the hierarchy holding `controller`.
    pub fn path_of(&self, controller: &str) -> Option<&Path> {
        self.hierarchy(controller).map(|h| h.path.as_path())
    }

    fn hierarchy(&self, controller: &str) -> Option<&V1Hierarchy> {
        self.hierarchies.iter().find(|h| h.has(controller))
    }

    /// The directory for `controller`, which the resources need.
    fn need(&self, controller: &str) -> Result<&Path> {
        self.path_of(controller)
            .ok_or_else(|| CgroupError::MissingController(controller.to_owned()))
    }

    /// New cpuset cgroups start with empty cpus and mems, and no task can
    /// join them until both are set: copy them down from the nearest
    /// ancestor that has them.
    fn init_cpuset(&self) -> Result<()> {
        let Some(h) = self.hierarchy("cpuset") else {
            return Ok(());
        };
        let Some(first) = h.created.first() else {
            return Ok(());
        };
        let read_pair = |dir: &Path| -> Result<(String, String)> {
            Ok((
                fs::read(&dir.join("cpuset.cpus"))?.trim().to_owned(),
                fs::read(&dir.join("cpuset.mems"))?.trim().to_owned(),
            ))
        };
        // Pre-existing ancestors can be empty too (made by someone who
        // never ran tasks there); they need filling as well.
        let mut empty = Vec::new();
        let mut dir = first.parent();
        let (cpus, mems) = loop {
            let Some(d) = dir.filter(|d| d.starts_with(&h.mount_point)) else {
                return Err(CgroupError::Read {
                    path: h.mount_point.join("cpuset.cpus"),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "no ancestor has both cpuset.cpus and cpuset.mems set",
                    ),
                });
            };
            let (c, m) = read_pair(d)?;
            if !c.is_empty() && !m.is_empty() {
                break (c, m);
            }
            empty.push(d);
            dir = d.parent();
        };
        for d in empty
            .into_iter()
            .rev()
            .chain(h.created.iter().map(PathBuf::as_path))
        {
            fs::write(&d.join("cpuset.cpus"), &cpus)?;
            fs::write(&d.join("cpuset.mems"), &mems)?;
        }
        Ok(())
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<()> {
        let any = m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || m.kernel().is_some()
            || m.kernel_tcp().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some();
        if !any {
            return Ok(());
        }
        let dir = self.need("memory")?;
        let bytes = |v: i64| {
            if v < 0 {
                "-1".to_owned()
            } else {
                v.to_string()
            }
        };
        let limit_file = dir.join("memory.limit_in_bytes");
        let write_swap = |v: i64| -> Result<()> {
            if !fs::write_optional(&dir.join("memory.memsw.limit_in_bytes"), &bytes(v))? {
                tracing::debug!("swap accounting is off on this host, memory.swap ignored");
            }
            Ok(())
        };
        match (m.limit(), m.swap()) {
            (Some(limit), Some(swap)) => {
                // The kernel keeps limit <= memsw at every step, so the
                // order depends on whether memsw goes above the current
                // limit.
                let cur: u64 = fs::read(&limit_file)?.trim().parse().unwrap_or(u64::MAX);
                let swap_first = swap < 0 || cur < swap as u64;
                if swap_first {
                    write_swap(swap)?;
                    fs::write(&limit_file, &bytes(limit))?;
                } else {
                    fs::write(&limit_file, &bytes(limit))?;
                    write_swap(swap)?;
                }
            }
            (Some(limit), None) => fs::write(&limit_file, &bytes(limit))?,
            (None, Some(swap)) => write_swap(swap)?,
            (None, None) => {}
        }
        if let Some(r) = m.reservation() {
            fs::write(&dir.join("memory.soft_limit_in_bytes"), &bytes(r))?;
        }
        if let Some(k) = m.kernel() {
            fs::write_optional(&dir.join("memory.kmem.limit_in_bytes"), &bytes(k))?;
        }
        if let Some(k) = m.kernel_tcp() {
            fs::write_optional(&dir.join("memory.kmem.tcp.limit_in_bytes"), &bytes(k))?;
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(CgroupError::InvalidResource {
                    field: "memory.swappiness".into(),
                    reason: format!("{s} is not between 0 and 100"),
                });
            }
            fs::write(&dir.join("memory.swappiness"), &s.to_string())?;
        }
        if let Some(d) = m.disable_oom_killer() {
            fs::write(&dir.join("memory.oom_control"), if d { "1" } else { "0" })?;
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu) -> Result<()> {
        let shares = c.shares().filter(|&s| s != 0);
        let period = c.period().filter(|&p| p != 0);
        let any_cpu = shares.is_some()
            || period.is_some()
            || c.quota().is_some()
            || c.burst().is_some()
            || c.idle().is_some()
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some();
        if any_cpu {
            let dir = self.need("cpu")?;
            if let Some(s) = shares {
                fs::write(&dir.join("cpu.shares"), &s.to_string())?;
            }
            let period_file = dir.join("cpu.cfs_period_us");
            let mut period_pending = None;
            if let Some(p) = period {
                let v = p.to_string();
                match fs::write_raw(&period_file, &v) {
                    Ok(()) => {}
                    // A shorter period can push the old quota/period
                    // ratio past the parent's; it fits once the new quota
                    // is in.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) && c.quota().is_some() => {
                        period_pending = Some(v);
                    }
                    Err(e) => return Err(fs::write_err(&period_file, &v, e)),
                }
            }
            if let Some(q) = c.quota() {
                let v = if q <= 0 {
                    "-1".to_owned()
                } else {
                    q.to_string()
                };
                fs::write(&dir.join("cpu.cfs_quota_us"), &v)?;
                if let Some(v) = period_pending {
                    fs::write(&period_file, &v)?;
                }
            }
            if let Some(b) = c.burst() {
                fs::write_optional(&dir.join("cpu.cfs_burst_us"), &b.to_string())?;
            }
            if let Some(i) = c.idle() {
                fs::write_optional(&dir.join("cpu.idle"), &i.to_string())?;
            }
            // The runtime budget is checked against the period, so the
            // period goes first.
            if let Some(p) = c.realtime_period() {
                fs::write_optional(&dir.join("cpu.rt_period_us"), &p.to_string())?;
            }
            if let Some(r) = c.realtime_runtime() {
                fs::write_optional(&dir.join("cpu.rt_runtime_us"), &r.to_string())?;
            }
        }
        let cpus = c.cpus().as_deref().filter(|s| !s.is_empty());
        let mems = c.mems().as_deref().filter(|s| !s.is_empty());
        if cpus.is_some() || mems.is_some() {
            let dir = self.need("cpuset")?;
            if let Some(v) = cpus {
                fs::write(&dir.join("cpuset.cpus"), v)?;
            }
            if let Some(v) = mems {
                fs::write(&dir.join("cpuset.mems"), v)?;
            }
        }
        Ok(())
    }

    fn apply_blkio(&self, b: &LinuxBlockIo) -> Result<()> {
        let throttles = [
            (
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
            ),
            (
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
            ),
            (
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
            ),
            (
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
            ),
        ];
        let any = b.weight().is_some()
            || b.leaf_weight().is_some()
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || throttles
                .iter()
                .any(|(t, _)| t.as_ref().is_some_and(|v| !v.is_empty()));
        if !any {
            return Ok(());
        }
        let dir = self.need("blkio")?;
        // CFQ's blkio.weight is gone from current kernels; BFQ has its
        // own file with the same range.
        let weight = |file: &str, bfq_file: &str, value: String| -> Result<()> {
            if !fs::write_optional(&dir.join(file), &value)?
                && !fs::write_optional(&dir.join(bfq_file), &value)?
            {
                tracing::debug!(file, "no proportional io scheduler, blkio weight ignored");
            }
            Ok(())
        };
        if let Some(w) = b.weight() {
            weight("blkio.weight", "blkio.bfq.weight", w.to_string())?;
        }
        if let Some(w) = b.leaf_weight() {
            fs::write_optional(&dir.join("blkio.leaf_weight"), &w.to_string())?;
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight() {
                let v = format!("{}:{} {w}", d.major(), d.minor());
                weight("blkio.weight_device", "blkio.bfq.weight_device", v)?;
            }
            if let Some(w) = d.leaf_weight() {
                let v = format!("{}:{} {w}", d.major(), d.minor());
                fs::write_optional(&dir.join("blkio.leaf_weight_device"), &v)?;
            }
        }
        for (devs, file) in throttles {
            for d in devs.iter().flatten() {
                let v = format!("{}:{} {}", d.major(), d.minor(), d.rate());
                fs::write(&dir.join(file), &v)?;
            }
        }
        Ok(())
    }

    fn apply_hugetlb(&self, limits: &[LinuxHugepageLimit]) -> Result<()> {
        if limits.is_empty() {
            return Ok(());
        }
        let dir = self.need("hugetlb")?;
        for l in limits {
            let size = l.page_size();
            super::check_hugepage_size(size)?;
            let v = if l.limit() < 0 {
                "-1".to_owned()
            } else {
                l.limit().to_string()
            };
            if !fs::write_optional(&dir.join(format!("hugetlb.{size}.limit_in_bytes")), &v)? {
                return Err(CgroupError::InvalidResource {
                    field: "hugepageLimits.pageSize".into(),
                    reason: format!("this host has no {size} huge pages"),
                });
            }
        }
        Ok(())
    }

    fn apply_network(&self, n: &LinuxNetwork) -> Result<()> {
        if let Some(id) = n.class_id() {
            let dir = self.need("net_cls")?;
            fs::write(&dir.join("net_cls.classid"), &id.to_string())?;
        }
        let prios = n.priorities().as_deref().unwrap_or_default();
        if !prios.is_empty() {
            let dir = self.need("net_prio")?;
            for p in prios {
                let v = format!("{} {}", p.name(), p.priority());
                fs::write(&dir.join("net_prio.ifpriomap"), &v)?;
            }
        }
        Ok(())
    }

    fn apply_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let dir = self.need("devices")?;
        let allow = dir.join("devices.allow");
        let deny = dir.join("devices.deny");
        let mut rest = rules;
        if is_deny_all(&rules[0]) {
            fs::write(&deny, "a")?;
            rest = &rules[1..];
        }
        for r in rest {
            match device_rule_string(r)? {
                Some(line) => fs::write(if r.allow() { &allow } else { &deny }, &line)?,
                None => tracing::debug!(?r, "fifo device rule ignored by the devices cgroup"),
            }
        }
        Ok(())
    }

    fn freezer_state_file(&self) -> Result<PathBuf> {
        Ok(self.need("freezer")?.join("freezer.state"))
    }
}

/// `rdma.max` lines, shared with v2 (same syntax).
pub(super) fn rdma_lines(rdma: &std::collections::HashMap<String, LinuxRdma>) -> Vec<String> {
    let mut lines: Vec<String> = rdma
        .iter()
        .filter_map(|(dev, r)| {
            let mut line = dev.clone();
            if let Some(h) = r.hca_handles() {
                line.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = r.hca_objects() {
                line.push_str(&format!(" hca_object={o}"));
            }
            (line.len() > dev.len()).then_some(line)
        })
        .collect();
    lines.sort();
    lines
}

impl CgroupManager for V1Manager {
    fn create(&mut self, resources: Option<&LinuxResources>) -> Result<()> {
        let mut result = Ok(());
        for h in &mut self.hierarchies {
            if let Err(e) = fs::mkdir_p(&h.mount_point, &h.path, &mut h.created) {
                result = Err(e);
                break;
            }
        }
        let result = result
            .and_then(|()| self.init_cpuset())
            .and_then(|()| resources.map_or(Ok(()), |r| self.apply(r)));
        if let Err(e) = result {
            // Nothing records a cgroup whose creation failed: undo it.
            if let Err(re) = self.remove() {
                tracing::debug!(error = %re, "removing half-created cgroup");
            }
            for h in &mut self.hierarchies {
                h.created.clear();
            }
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
            let dir = self.need("pids")?;
            let v = if p.limit() <= 0 {
                "max".to_owned()
            } else {
                p.limit().to_string()
            };
            fs::write(&dir.join("pids.max"), &v)?;
        }
        if let Some(b) = r.block_io() {
            self.apply_blkio(b)?;
        }
        if let Some(h) = r.hugepage_limits() {
            self.apply_hugetlb(h)?;
        }
        if let Some(n) = r.network() {
            self.apply_network(n)?;
        }
        if let Some(rdma) = r.rdma() {
            let lines = rdma_lines(rdma);
            if !lines.is_empty() {
                let dir = self.need("rdma")?;
                for l in lines {
                    fs::write(&dir.join("rdma.max"), &l)?;
                }
            }
        }
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(CgroupError::InvalidResource {
                field: "unified".into(),
                reason: "needs cgroup v2, this host runs cgroup v1 controllers".into(),
            });
        }
        if let Some(d) = r.devices() {
            self.apply_devices(d)?;
        }
        Ok(())
    }

    fn add_task(&self, pid: Pid) -> Result<()> {
        let v = pid.as_raw().to_string();
        for h in &self.hierarchies {
            fs::write(&h.path.join("cgroup.procs"), &v)?;
        }
        Ok(())
    }

    fn pids(&self) -> Result<Vec<Pid>> {
        let h = self
            .hierarchy("pids")
            .or_else(|| self.hierarchy("memory"))
            .or_else(|| self.hierarchies.iter().find(|h| !h.cgroup2))
            .or_else(|| self.hierarchies.first())
            .ok_or(CgroupError::NoHierarchy)?;
        fs::procs_recursive(&h.path)
    }

    fn freeze(&self, state: FreezerState) -> Result<()> {
        let file = self.freezer_state_file()?;
        if state == FreezerState::Thawed {
            return fs::write(&file, "THAWED");
        }
        let start = Instant::now();
        let mut delay = Duration::from_micros(100);
        loop {
            // Rewriting FROZEN catches tasks that forked in meanwhile.
            fs::write(&file, "FROZEN")?;
            let now = fs::read(&file)?;
            match now.trim() {
                "FROZEN" => return Ok(()),
                "FREEZING" if start.elapsed() < FREEZE_BUDGET => {}
                "FREEZING" => {
                    // Half-frozen is the worst outcome: undo it.
                    let _ = fs::write(&file, "THAWED");
                    return Err(CgroupError::FreezeTimeout {
                        path: file,
                        state: "FROZEN".into(),
                        waited_ms: start.elapsed().as_millis() as u64,
                    });
                }
                other => {
                    return Err(CgroupError::Read {
                        path: file,
                        source: std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("unexpected freezer state {other:?} after writing FROZEN"),
                        ),
                    });
                }
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(10));
        }
    }

    fn frozen(&self) -> Result<bool> {
        let Some(dir) = self.path_of("freezer") else {
            return Ok(false);
        };
        Ok(fs::read(&dir.join("freezer.state"))?.trim() == "FROZEN")
    }

    fn remove(&self) -> Result<()> {
        // Every hierarchy gets its chance even when one fails.
        let mut first_err = None;
        let deadline = Instant::now() + fs::REMOVE_BUDGET;
        for h in &self.hierarchies {
            if let Err(e) = fs::remove_created(&h.created, &h.path, deadline) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn state(&self) -> CgroupState {
        CgroupState::V1(V1State {
            hierarchies: self.hierarchies.clone(),
        })
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if let Some(d) = self.path_of("cpuacct") {
            stats::v1_cpuacct(d, &mut s.cpu)?;
        }
        if let Some(d) = self.path_of("cpu") {
            stats::v1_cpu(d, &mut s.cpu)?;
        }
        if let Some(d) = self.path_of("memory") {
            stats::v1_memory(d, &mut s.memory)?;
        }
        if let Some(d) = self.path_of("pids") {
            stats::pids(d, &mut s.pids)?;
        }
        if let Some(d) = self.path_of("blkio") {
            stats::v1_blkio(d, &mut s.io)?;
        }
        if let Some(d) = self.path_of("hugetlb") {
            stats::v1_hugetlb(d, &mut s.hugetlb)?;
        } else if let Some(h) = self.hierarchies.iter().find(|h| h.cgroup2) {
            // Hybrid hosts may attach hugetlb to the cgroup2 hierarchy.
            stats::v2_hugetlb(&h.path, &mut s.hugetlb)?;
        }
        Ok(s)
    }

    fn oom_notifier(&self) -> Result<OomNotifier> {
        OomNotifier::v1(self.need("memory")?)
    }

    fn container_mounts(&self) -> Vec<CgroupMount> {
        self.hierarchies.iter().map(V1Hierarchy::mount).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 31 0:33 /docker/abc /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
37 31 0:34 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
";

    fn manager(path: &str) -> V1Manager {
        V1Manager::from_mounts(Path::new(path), &mountinfo::parse(MOUNTS)).unwrap()
    }

    #[test]
    fn absolute_paths_in_every_hierarchy() {
        let m = manager("/berth/c1");
        let paths: Vec<&Path> = m.hierarchies().iter().map(|h| h.path.as_path()).collect();
        assert_eq!(
            paths,
            [
                Path::new("/sys/fs/cgroup/cpu,cpuacct/berth/c1"),
                Path::new("/sys/fs/cgroup/memory/berth/c1"),
                Path::new("/sys/fs/cgroup/pids/berth/c1"),
                Path::new("/sys/fs/cgroup/net_cls,net_prio/berth/c1"),
                Path::new("/sys/fs/cgroup/systemd/berth/c1"),
                Path::new("/sys/fs/cgroup/unified/berth/c1"),
            ]
        );
        assert_eq!(
            m.path_of("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/berth/c1"))
        );
        assert_eq!(m.path_of("freezer"), None);
        assert!(matches!(
            m.freeze(FreezerState::Frozen),
            Err(CgroupError::MissingController(c)) if c == "freezer"
        ));
    }

    #[test]
    fn container_mounts_follow_the_subsystems() {
        let got = manager("/c").container_mounts();
        let summary: Vec<(&str, &str, &str, Vec<&str>)> = got
            .iter()
            .map(|m| {
                (
                    m.subdir.as_str(),
                    m.fstype.as_str(),
                    m.data.as_str(),
                    m.symlinks.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "cpu,cpuacct",
                    "cgroup",
                    "cpu,cpuacct",
                    vec!["cpu", "cpuacct"]
                ),
                ("memory", "cgroup", "memory", vec![]),
                ("pids", "cgroup", "pids", vec![]),
                (
                    "net_cls,net_prio",
                    "cgroup",
                    "net_cls,net_prio",
                    vec!["net_cls", "net_prio"]
                ),
                ("systemd", "cgroup", "none,name=systemd", vec![]),
                ("unified", "cgroup2", "", vec![]),
            ]
        );
        assert_eq!(got[1].host_path, Path::new("/sys/fs/cgroup/memory/c"));
    }

    #[test]
    fn resources_for_absent_controllers_are_refused() {
        let m = manager("/c");
        let r: LinuxResources =
            serde_json::from_str(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#).unwrap();
        assert!(matches!(m.apply(&r), Err(CgroupError::MissingController(c)) if c == "hugetlb"));
        let r: LinuxResources =
            serde_json::from_str(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#).unwrap();
        assert!(matches!(m.apply(&r), Err(CgroupError::MissingController(c)) if c == "devices"));
        let r: LinuxResources = serde_json::from_str(r#"{"unified":{"memory.high":"1"}}"#).unwrap();
        assert!(matches!(
            m.apply(&r),
            Err(CgroupError::InvalidResource { .. })
        ));
        // Nothing set: nothing needed.
        let r: LinuxResources = serde_json::from_str(r#"{"memory":{},"blockIO":{}}"#).unwrap();
        m.apply(&r).unwrap();
    }

    #[test]
    fn state_round_trips_through_json() {
        let m = manager("/c");
        let json = serde_json::to_string(&m.state()).unwrap();
        let back: CgroupState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m.state());
        assert!(json.contains("\"kind\":\"v1\""), "{json}");
    }

    #[test]
    fn rdma_lines_skip_empty_entries() {
        let r: std::collections::HashMap<String, LinuxRdma> = serde_json::from_str(
            r#"{"mlx5_1":{"hcaHandles":3},"mlx4_0":{"hcaHandles":2,"hcaObjects":100},"x":{}}"#,
        )
        .unwrap();
        assert_eq!(
            rdma_lines(&r),
            ["mlx4_0 hca_handle=2 hca_object=100", "mlx5_1 hca_handle=3"]
        );
    }
}
