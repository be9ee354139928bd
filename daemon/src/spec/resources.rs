//! `HostConfig`'s resources → `linux.resources`, devices, rlimits and
//! sysctls, checked as dockerd's `verifyPlatformContainerResources`
//! checks them and with its messages.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use berth_api::containers::{DeviceMapping, HostConfig, Ulimit};
use serde_json::{Map, Value, json};

use super::SystemInfo;
use super::error::{Result, SpecError};

/// dockerd's floor for memory limits and reservations: below it the
/// container cannot even start.
const MIN_MEMORY: i64 = 6 << 20;

/// The CFS period NanoCpus is expressed in (100ms), as dockerd uses.
const CFS_PERIOD: i64 = 100_000;

/// A cpuset list (`0-2,4`) → the ids it names; `None` when malformed.
fn parse_cpuset(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?);
                if a > b || b - a > 1 << 16 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

fn check_cpuset(field: &'static str, what: &str, requested: &str, available: &str) -> Result<()> {
    let req = parse_cpuset(requested).ok_or_else(|| {
        SpecError::resource(field, format!("Invalid value {requested} for {what}"))
    })?;
    // An unknown availability (no cpuset info on the host) checks nothing.
    if let Some(avail) = parse_cpuset(available)
        && !req.iter().all(|c| avail.contains(c))
    {
        return Err(SpecError::resource(
            field,
            format!(
                "Requested {what} are not available - requested {requested}, available: {available}"
            ),
        ));
    }
    Ok(())
}

/// `linux.resources` without `devices` (see [`devices`]).
pub(crate) fn resources(h: &HostConfig, sys: &SystemInfo) -> Result<Map<String, Value>> {
    let mut res = Map::new();

    // Memory.
    let mut mem = Map::new();
    if h.memory < 0 {
        return Err(SpecError::resource(
            "Memory",
            format!("invalid memory limit: {}", h.memory),
        ));
    }
    if h.memory > 0 && h.memory < MIN_MEMORY {
        return Err(SpecError::resource(
            "Memory",
            "Minimum memory limit allowed is 6MB",
        ));
    }
    if h.memory > 0 {
        mem.insert("limit".into(), h.memory.into());
    }
    if h.memory_swap > 0 && h.memory == 0 {
        return Err(SpecError::resource(
            "MemorySwap",
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if h.memory_swap > 0 && h.memory_swap < h.memory {
        return Err(SpecError::resource(
            "MemorySwap",
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if h.memory_swap < -1 {
        return Err(SpecError::resource(
            "MemorySwap",
            format!(
                "invalid memory swap limit: {}, use -1 for unlimited",
                h.memory_swap
            ),
        ));
    }
    // Without swap accounting the kernel has no file to write it to;
    // dockerd drops it with a warning, and so do we.
    if sys.swap_limit {
        let swap = match (h.memory, h.memory_swap) {
            // dockerd's default: as much swap as memory.
            (m, 0) if m > 0 => Some(m * 2),
            (_, 0) => None,
            (_, s) => Some(s),
        };
        if let Some(s) = swap {
            mem.insert("swap".into(), s.into());
        }
    }
    if h.memory_reservation < 0 || (h.memory_reservation > 0 && h.memory_reservation < MIN_MEMORY) {
        return Err(SpecError::resource(
            "MemoryReservation",
            "Minimum memory reservation allowed is 6MB",
        ));
    }
    if h.memory > 0 && h.memory_reservation > 0 && h.memory < h.memory_reservation {
        return Err(SpecError::resource(
            "MemoryReservation",
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    if h.memory_reservation > 0 {
        mem.insert("reservation".into(), h.memory_reservation.into());
    }
    match h.memory_swappiness {
        None | Some(-1) => {}
        Some(s) if !(0..=100).contains(&s) => {
            return Err(SpecError::resource(
                "MemorySwappiness",
                format!("Invalid value: {s}, valid memory swappiness range is 0-100"),
            ));
        }
        // cgroup v2 has no swappiness; dockerd ignores it there.
        Some(s) if !sys.cgroup_v2 => {
            mem.insert("swappiness".into(), s.into());
        }
        Some(_) => {}
    }
    if h.oom_kill_disable == Some(true) && !sys.cgroup_v2 {
        mem.insert("disableOOMKiller".into(), true.into());
    }
    if !mem.is_empty() {
        res.insert("memory".into(), Value::Object(mem));
    }

    // CPU.
    let mut cpu = Map::new();
    if h.nano_cpus != 0 {
        if h.cpu_period != 0 {
            return Err(SpecError::resource(
                "NanoCpus",
                "Conflicting options: Nano CPUs and CPU Period cannot both be set",
            ));
        }
        if h.cpu_quota != 0 {
            return Err(SpecError::resource(
                "NanoCpus",
                "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
            ));
        }
        let n = sys.ncpu as i64;
        // Below 0.01 CPU the quota would fall under the kernel's 1ms floor.
        if h.nano_cpus < 10_000_000 || h.nano_cpus > n * 1_000_000_000 {
            return Err(SpecError::resource(
                "NanoCpus",
                format!(
                    "Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available"
                ),
            ));
        }
        cpu.insert("period".into(), CFS_PERIOD.into());
        cpu.insert(
            "quota".into(),
            (h.nano_cpus * CFS_PERIOD / 1_000_000_000).into(),
        );
    }
    if h.cpu_period != 0 {
        if !(1000..=1_000_000).contains(&h.cpu_period) {
            return Err(SpecError::resource(
                "CpuPeriod",
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
            ));
        }
        cpu.insert("period".into(), h.cpu_period.into());
    }
    if h.cpu_quota != 0 {
        if h.cpu_quota > 0 && h.cpu_quota < 1000 {
            return Err(SpecError::resource(
                "CpuQuota",
                "CPU cfs quota can not be less than 1ms (i.e. 1000)",
            ));
        }
        // -1: unlimited, as the kernel takes it.
        if h.cpu_quota < -1 {
            return Err(SpecError::resource(
                "CpuQuota",
                format!("invalid CPU quota: {}", h.cpu_quota),
            ));
        }
        cpu.insert("quota".into(), h.cpu_quota.into());
    }
    if h.cpu_shares < 0 {
        return Err(SpecError::resource(
            "CpuShares",
            format!("invalid CPU shares: {}, must not be negative", h.cpu_shares),
        ));
    }
    if h.cpu_shares > 0 {
        cpu.insert("shares".into(), h.cpu_shares.into());
    }
    if !h.cpuset_cpus.is_empty() {
        check_cpuset("CpusetCpus", "CPUs", &h.cpuset_cpus, &sys.cpus_online)?;
        cpu.insert("cpus".into(), h.cpuset_cpus.clone().into());
    }
    if !h.cpuset_mems.is_empty() {
        check_cpuset(
            "CpusetMems",
            "memory nodes",
            &h.cpuset_mems,
            &sys.mems_online,
        )?;
        cpu.insert("mems".into(), h.cpuset_mems.clone().into());
    }
    if h.cpu_realtime_period != 0 || h.cpu_realtime_runtime != 0 {
        if h.cpu_realtime_period < 0 || h.cpu_realtime_runtime < 0 {
            return Err(SpecError::resource(
                "CpuRealtimeRuntime",
                "cpu real-time period and runtime must not be negative",
            ));
        }
        if h.cpu_realtime_period != 0 && h.cpu_realtime_runtime > h.cpu_realtime_period {
            return Err(SpecError::resource(
                "CpuRealtimeRuntime",
                "cpu real-time runtime cannot be higher than cpu real-time period",
            ));
        }
        if h.cpu_realtime_period != 0 {
            cpu.insert("realtimePeriod".into(), h.cpu_realtime_period.into());
        }
        if h.cpu_realtime_runtime != 0 {
            cpu.insert("realtimeRuntime".into(), h.cpu_realtime_runtime.into());
        }
    }
    if !cpu.is_empty() {
        res.insert("cpu".into(), Value::Object(cpu));
    }

    // 0 and negative mean unlimited, which is what no limit is.
    if let Some(p) = h.pids_limit.filter(|p| *p > 0) {
        res.insert("pids".into(), json!({ "limit": p }));
    }
    if h.blkio_weight != 0 {
        if !(10..=1000).contains(&h.blkio_weight) {
            return Err(SpecError::resource(
                "BlkioWeight",
                "Range of blkio weight is from 10 to 1000",
            ));
        }
        res.insert("blockIO".into(), json!({ "weight": h.blkio_weight }));
    }
    Ok(res)
}

/// The cgroup rules a non-privileged container starts from: deny
/// everything, allow mknod of any node (as runc does: the node is
/// useless without the access rules), then the devices every container
/// gets (the runtime's list: null, zero, full, random, urandom, tty,
/// console, ptmx, the pts slaves). Written out although the runtime would
/// add the last ones itself, so the spec says what the container may use.
fn default_device_rules() -> Vec<Value> {
    let mut rules = vec![
        json!({ "allow": false, "access": "rwm" }),
        json!({ "allow": true, "type": "c", "access": "m" }),
        json!({ "allow": true, "type": "b", "access": "m" }),
    ];
    rules.extend(
        berth_runtime::cgroups::default_device_rules()
            .iter()
            .map(|r| serde_json::to_value(r).expect("a device rule serializes")),
    );
    rules
}

/// The device node at `host` for the container's `dest`, and its
/// cgroup rule with `perms`. `None` when `host` is not a device.
fn device(host: &Path, dest: &str, perms: &str) -> std::io::Result<Option<(Value, Value)>> {
    let md = std::fs::metadata(host)?;
    let ft = md.file_type();
    let typ = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return Ok(None);
    };
    let rdev = md.rdev();
    let (major, minor) = (libc::major(rdev) as i64, libc::minor(rdev) as i64);
    let node = json!({
        "path": dest, "type": typ, "major": major, "minor": minor,
        "fileMode": md.permissions().mode() & 0o777, "uid": md.uid(), "gid": md.gid(),
    });
    let rule =
        json!({ "allow": true, "type": typ, "major": major, "minor": minor, "access": perms });
    Ok(Some((node, rule)))
}

/// Every device below the directory `dir`, mapped under `dest` (as
/// `--device /dev/snd` maps the whole tree).
fn devices_in(
    dir: &Path,
    dest: &str,
    perms: &str,
    out: &mut Vec<(Value, Value)>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let child_dest = format!("{}/{name}", dest.trim_end_matches('/'));
        let ft = entry.file_type()?;
        // Symlinks are not followed: /dev/snd/by-path links back into
        // the tree and would map devices twice.
        if ft.is_dir() {
            devices_in(&entry.path(), &child_dest, perms, out)?;
        } else if !ft.is_symlink()
            && let Some(d) = device(&entry.path(), &child_dest, perms)?
        {
            out.push(d);
        }
    }
    Ok(())
}

fn host_device(d: &DeviceMapping) -> Result<Vec<(Value, Value)>> {
    let perms = if d.cgroup_permissions.is_empty() {
        "rwm"
    } else {
        d.cgroup_permissions.as_str()
    };
    if !perms.chars().all(|c| "rwm".contains(c)) {
        return Err(SpecError::DeviceMode {
            path: d.path_on_host.clone(),
            mode: perms.to_owned(),
        });
    }
    let dest = if d.path_in_container.is_empty() {
        d.path_on_host.as_str()
    } else {
        d.path_in_container.as_str()
    };
    let err = |reason: String| SpecError::Device {
        path: d.path_on_host.clone(),
        reason,
    };
    if !dest.starts_with('/') {
        return Err(err(format!("container path {dest:?} must be absolute")));
    }
    let host = Path::new(&d.path_on_host);
    let md = std::fs::metadata(host).map_err(|e| err(e.to_string()))?;
    if md.is_dir() {
        let mut out = Vec::new();
        devices_in(host, dest, perms, &mut out).map_err(|e| err(e.to_string()))?;
        return Ok(out);
    }
    match device(host, dest, perms).map_err(|e| err(e.to_string()))? {
        Some(d) => Ok(vec![d]),
        None => Err(err("not a device node".into())),
    }
}

/// `c 1:3 rwm`, `b *:* m`, `a` (all).
fn cgroup_rule(rule: &str) -> Result<Value> {
    let bad = || SpecError::DeviceCgroupRule(rule.to_owned());
    let fields: Vec<&str> = rule.split_whitespace().collect();
    let (typ, numbers, access) = match fields.as_slice() {
        ["a"] => return Ok(json!({ "allow": true, "type": "a", "access": "rwm" })),
        [t, n, a] => (*t, *n, *a),
        _ => return Err(bad()),
    };
    if !["a", "b", "c"].contains(&typ)
        || access.is_empty()
        || access.len() > 3
        || !access.chars().all(|c| "rwm".contains(c))
    {
        return Err(bad());
    }
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let num = |s: &str| -> Result<Option<i64>> {
        match s {
            "*" => Ok(None),
            n => n.parse::<i64>().map(Some).map_err(|_| bad()),
        }
    };
    let mut r = json!({ "allow": true, "type": typ, "access": access });
    if let Some(m) = num(major)? {
        r["major"] = m.into();
    }
    if let Some(m) = num(minor)? {
        r["minor"] = m.into();
    }
    Ok(r)
}

/// Every device node on the host for a privileged container, as dockerd
/// gives it: /dev's char and block devices, without the ptys and the
/// directories that are mounts of their own.
fn host_devices() -> Vec<Value> {
    fn walk(dir: &Path, out: &mut Vec<Value>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            let name = entry.file_name();
            if ft.is_dir() {
                if !["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"]
                    .contains(&name.to_string_lossy().as_ref())
                {
                    walk(&path, out);
                }
            } else if !ft.is_symlink() && path != Path::new("/dev/console") {
                let dest = path.to_string_lossy().into_owned();
                if let Ok(Some((node, _))) = device(&path, &dest, "rwm") {
                    out.push(node);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out);
    out
}

/// `linux.devices` and `linux.resources.devices`.
pub(crate) fn devices(h: &HostConfig, privileged: bool) -> Result<(Vec<Value>, Vec<Value>)> {
    if privileged {
        return Ok((
            host_devices(),
            vec![json!({ "allow": true, "access": "rwm" })],
        ));
    }
    let mut nodes = Vec::new();
    let mut rules = default_device_rules();
    for d in h.devices.iter().flatten() {
        for (node, rule) in host_device(d)? {
            nodes.push(node);
            rules.push(rule);
        }
    }
    for r in h.device_cgroup_rules.iter().flatten() {
        rules.push(cgroup_rule(r)?);
    }
    Ok((nodes, rules))
}

/// `process.rlimits` from `Ulimits` (`nofile` → RLIMIT_NOFILE; -1 is
/// unlimited).
pub(crate) fn rlimits(ulimits: &[Ulimit]) -> Result<Vec<Value>> {
    const NAMES: [&str; 16] = [
        "as",
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    let mut out: Vec<Value> = Vec::new();
    for u in ulimits {
        let name = u.name.to_ascii_lowercase();
        let err = |reason: String| SpecError::Ulimit {
            name: u.name.clone(),
            reason,
        };
        if !NAMES.contains(&name.as_str()) {
            return Err(err(format!("invalid ulimit type: {}", u.name)));
        }
        let value = |v: i64| -> Result<u64> {
            match v {
                -1 => Ok(u64::MAX),
                v if v >= 0 => Ok(v as u64),
                v => Err(err(format!("invalid value {v}, use -1 for unlimited"))),
            }
        };
        let (soft, hard) = (value(u.soft)?, value(u.hard)?);
        if soft > hard {
            return Err(err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                u.soft, u.hard
            )));
        }
        let typ = format!("RLIMIT_{}", name.to_ascii_uppercase());
        // A later entry for the same limit replaces the earlier, as
        // dockerd's map of ulimits does.
        out.retain(|r| r["type"] != typ.as_str());
        out.push(json!({ "type": typ, "soft": soft, "hard": hard }));
    }
    Ok(out)
}

/// Which namespace a sysctl lives in, if any: only those may be set, as
/// everything else would reconfigure the host.
pub(crate) enum SysctlNs {
    Ipc,
    Net,
    Uts,
}

pub(crate) fn sysctl_namespace(key: &str) -> Option<SysctlNs> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(SysctlNs::Ipc)
    } else if key.starts_with("net.") {
        Some(SysctlNs::Net)
    } else if key == "kernel.domainname" || key == "kernel.hostname" {
        Some(SysctlNs::Uts)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys() -> SystemInfo {
        SystemInfo::fixed()
    }

    fn err(h: HostConfig) -> String {
        resources(&h, &sys()).unwrap_err().to_string()
    }

    #[test]
    fn memory_limits_and_defaults() {
        let r = resources(
            &HostConfig {
                memory: 512 << 20,
                ..Default::default()
            },
            &sys(),
        )
        .unwrap();
        assert_eq!(
            r["memory"],
            json!({ "limit": 512 << 20, "swap": 1024 << 20 })
        );
        let r = resources(
            &HostConfig {
                memory: 64 << 20,
                memory_swap: -1,
                memory_swappiness: Some(10),
                ..Default::default()
            },
            &sys(),
        )
        .unwrap();
        assert_eq!(
            r["memory"],
            json!({ "limit": 64 << 20, "swap": -1, "swappiness": 10 })
        );
        let no_swap = SystemInfo {
            swap_limit: false,
            ..sys()
        };
        let r = resources(
            &HostConfig {
                memory: 64 << 20,
                ..Default::default()
            },
            &no_swap,
        )
        .unwrap();
        assert_eq!(r["memory"], json!({ "limit": 64 << 20 }));
    }

    #[test]
    fn memory_errors_read_as_docker() {
        assert_eq!(
            err(HostConfig {
                memory: 1 << 20,
                ..Default::default()
            }),
            "Minimum memory limit allowed is 6MB"
        );
        assert!(
            err(HostConfig {
                memory_swap: 1 << 30,
                ..Default::default()
            })
            .contains("always set the Memory limit")
        );
        assert!(
            err(HostConfig {
                memory: 1 << 30,
                memory_swap: 512 << 20,
                ..Default::default()
            })
            .contains("larger than memory limit")
        );
        assert_eq!(
            err(HostConfig {
                memory_reservation: 1,
                ..Default::default()
            }),
            "Minimum memory reservation allowed is 6MB"
        );
        assert!(
            err(HostConfig {
                memory: 64 << 20,
                memory_reservation: 128 << 20,
                ..Default::default()
            })
            .contains("less than memory reservation")
        );
        assert!(
            err(HostConfig {
                memory_swappiness: Some(101),
                ..Default::default()
            })
            .contains("valid memory swappiness range is 0-100")
        );
    }

    #[test]
    fn cpus() {
        let r = resources(
            &HostConfig {
                nano_cpus: 1_500_000_000,
                ..Default::default()
            },
            &sys(),
        )
        .unwrap();
        assert_eq!(r["cpu"], json!({ "period": 100000, "quota": 150000 }));
        let r = resources(
            &HostConfig {
                cpu_period: 50000,
                cpu_quota: 25000,
                cpu_shares: 512,
                cpuset_cpus: "0-1".into(),
                cpuset_mems: "0".into(),
                ..Default::default()
            },
            &sys(),
        )
        .unwrap();
        assert_eq!(
            r["cpu"],
            json!({ "period": 50000, "quota": 25000, "shares": 512, "cpus": "0-1", "mems": "0" })
        );
        assert_eq!(
            err(HostConfig {
                nano_cpus: 9_000_000_000,
                ..Default::default()
            }),
            "Range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available"
        );
        assert!(
            err(HostConfig {
                nano_cpus: 1_000_000_000,
                cpu_period: 1000,
                ..Default::default()
            })
            .contains("Conflicting options")
        );
        assert!(
            err(HostConfig {
                cpu_period: 10,
                ..Default::default()
            })
            .contains("CPU cfs period")
        );
        assert!(
            err(HostConfig {
                cpu_quota: 10,
                ..Default::default()
            })
            .contains("CPU cfs quota")
        );
        assert_eq!(
            err(HostConfig {
                cpuset_cpus: "0-7".into(),
                ..Default::default()
            }),
            "Requested CPUs are not available - requested 0-7, available: 0-3"
        );
        assert_eq!(
            err(HostConfig {
                cpuset_cpus: "a".into(),
                ..Default::default()
            }),
            "Invalid value a for CPUs"
        );
    }

    #[test]
    fn pids_and_blkio() {
        for unlimited in [0, -1] {
            let r = resources(
                &HostConfig {
                    pids_limit: Some(unlimited),
                    ..Default::default()
                },
                &sys(),
            )
            .unwrap();
            assert!(r.get("pids").is_none());
        }
        let r = resources(
            &HostConfig {
                pids_limit: Some(50),
                blkio_weight: 300,
                ..Default::default()
            },
            &sys(),
        )
        .unwrap();
        assert_eq!(r["pids"], json!({ "limit": 50 }));
        assert_eq!(r["blockIO"], json!({ "weight": 300 }));
        assert_eq!(
            err(HostConfig {
                blkio_weight: 5,
                ..Default::default()
            }),
            "Range of blkio weight is from 10 to 1000"
        );
    }

    #[test]
    fn ulimits() {
        let u = |name: &str, soft, hard| Ulimit {
            name: name.into(),
            soft,
            hard,
        };
        let r = rlimits(&[u("nofile", 1024, 2048), u("core", -1, -1)]).unwrap();
        assert_eq!(
            r[0],
            json!({ "type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048 })
        );
        assert_eq!(
            r[1],
            json!({ "type": "RLIMIT_CORE", "soft": u64::MAX, "hard": u64::MAX })
        );
        let e = rlimits(&[u("nofile", 4096, 1024)]).unwrap_err().to_string();
        assert!(
            e.contains("soft limit must be less than or equal to hard limit: 4096 > 1024"),
            "{e}"
        );
        let e = rlimits(&[u("bogus", 1, 1)]).unwrap_err().to_string();
        assert!(e.contains("invalid ulimit type: bogus"), "{e}");
    }

    #[test]
    fn devices_from_host_and_rules() {
        let h = HostConfig {
            devices: Some(vec![DeviceMapping {
                path_on_host: "/dev/null".into(),
                path_in_container: "/dev/mynull".into(),
                cgroup_permissions: "r".into(),
            }]),
            device_cgroup_rules: Some(vec!["c 42:* rmw".into(), "a".into()]),
            ..Default::default()
        };
        let (nodes, rules) = devices(&h, false).unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(
            (
                nodes[0]["path"].as_str(),
                nodes[0]["major"].as_i64(),
                nodes[0]["minor"].as_i64()
            ),
            (Some("/dev/mynull"), Some(1), Some(3))
        );
        assert_eq!(rules[0], json!({ "allow": false, "access": "rwm" }));
        assert!(rules.contains(
            &json!({ "allow": true, "type": "c", "major": 1, "minor": 3, "access": "r" })
        ));
        assert!(
            rules.contains(&json!({ "allow": true, "type": "c", "major": 42, "access": "rmw" }))
        );
        assert!(rules.contains(&json!({ "allow": true, "type": "a", "access": "rwm" })));
    }

    #[test]
    fn device_errors_name_the_path() {
        let dev = |p: &str, perms: &str| HostConfig {
            devices: Some(vec![DeviceMapping {
                path_on_host: p.into(),
                path_in_container: String::new(),
                cgroup_permissions: perms.into(),
            }]),
            ..Default::default()
        };
        let e = devices(&dev("/dev/bt-nope", ""), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "error gathering device information while adding custom device \"/dev/bt-nope\""
            ),
            "{e}"
        );
        let e = devices(&dev("/etc/hostname", ""), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a device node"), "{e}");
        let e = devices(&dev("/dev/null", "rwx"), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"rwx\""), "{e}");
        let h = HostConfig {
            device_cgroup_rules: Some(vec!["c 1:x rwm".into()]),
            ..Default::default()
        };
        assert_eq!(
            devices(&h, false).unwrap_err().to_string(),
            "invalid device cgroup format 'c 1:x rwm'"
        );
    }

    #[test]
    fn privileged_allows_every_device() {
        let (nodes, rules) = devices(&HostConfig::default(), true).unwrap();
        assert_eq!(rules, vec![json!({ "allow": true, "access": "rwm" })]);
        assert!(nodes.iter().any(|n| n["path"] == "/dev/null"));
    }
}
