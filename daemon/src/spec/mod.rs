//! A Docker container's configuration → the OCI runtime spec berth's
//! runtime runs, made as dockerd makes it.
//!
//! A pure library: [`build`] reads only what it is given, the rootfs's
//! /etc/passwd and /etc/group, and the host's device nodes (for
//! `Devices` and `--privileged`). Host facts that change the result
//! (cgroup version, CPUs, kernel) come in as a [`SystemInfo`] the daemon
//! detects once. The daemon resolves volumes and writes /etc/hostname,
//! /etc/hosts and /etc/resolv.conf before calling it.
//!
//! The parts: `mounts` ([`parse_mounts`] and the mount list), `user`
//! ([`resolve_user`]), `caps`, `resources` (limits, devices, rlimits),
//! `security` (`SecurityOpt`), `seccomp` (Docker's profile format and
//! berth's default profile).

pub mod caps;
mod error;
pub mod mounts;
mod resources;
pub mod seccomp;
pub mod security;
#[cfg(test)]
mod tests;
pub mod user;

use std::path::Path;

use berth_api::containers::{ContainerConfig, HostConfig};
use oci_spec::runtime::Spec;
use serde_json::{Value, json};

pub use error::{Result, SpecError};
pub use mounts::{
    MountKind, MountRequest, MountSource, ResolvedMount, parse_api_mount, parse_bind, parse_mounts,
    parse_tmpfs,
};
pub use security::{SeccompOpt, SecurityOpts, parse_security_opts};
pub use user::{ResolvedUser, resolve_user};

use mounts::{MountPlan, Shm};
use resources::SysctlNs;

/// Where `--init` puts its binary in the container. dockerd's path, so
/// that scripts and health checks written for Docker (`pgrep
/// docker-init`, `/proc/1/exe`) see the same thing under berth.
pub const INIT_PATH: &str = "/sbin/docker-init";

/// `PATH` when neither the image nor the container sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// dockerd's /dev/shm size when `ShmSize` is 0.
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

/// dockerd's defaults for `linux.maskedPaths`.
pub const DEFAULT_MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// dockerd's defaults for `linux.readonlyPaths`.
pub const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The container's network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Netns<'a> {
    /// A new, empty one (`--network none`, or one the daemon configures
    /// after create).
    New,
    /// The host's (`--network host`).
    Host,
    /// Join this one (`/proc/<pid>/ns/net`, a bind-mounted netns file).
    Path(&'a Path),
}

/// What the host is, as far as the spec depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemInfo {
    /// A pure cgroup2 hierarchy (private cgroupns by default; no
    /// swappiness or OOM-killer switch).
    pub cgroup_v2: bool,
    /// The kernel accounts swap (memory.memsw / memory.swap.max exist).
    pub swap_limit: bool,
    /// CPUs this daemon may use: the bound of `NanoCpus`.
    pub ncpu: u32,
    /// `0-3`: the CPUs and memory nodes `CpusetCpus` and `CpusetMems`
    /// may name; empty checks nothing.
    pub cpus_online: String,
    pub mems_online: String,
    /// (major, minor), for seccomp rules with `minKernel`.
    pub kernel: (u32, u32),
    /// Go's name for the architecture (`amd64`), for seccomp rules with
    /// `arches`.
    pub arch: String,
}

impl SystemInfo {
    /// Look at the running host.
    pub fn detect() -> SystemInfo {
        let cgroup_v2 = matches!(
            berth_runtime::cgroups::detect_setup(),
            Ok(berth_runtime::cgroups::CgroupSetup::Unified)
        );
        let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_owned()).ok();
        let (swap_limit, cpus, mems) = if cgroup_v2 {
            (
                // The root cgroup has no memory.swap.max; the kernel
                // accounts swap whenever the memory controller is on.
                read("/sys/fs/cgroup/cgroup.controllers").is_some_and(|c| c.contains("memory")),
                read("/sys/fs/cgroup/cpuset.cpus.effective"),
                read("/sys/fs/cgroup/cpuset.mems.effective"),
            )
        } else {
            (
                Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists(),
                read("/sys/fs/cgroup/cpuset/cpuset.cpus"),
                read("/sys/fs/cgroup/cpuset/cpuset.mems"),
            )
        };
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut nums = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse::<u32>().unwrap_or(0));
        SystemInfo {
            cgroup_v2,
            swap_limit,
            ncpu: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            cpus_online: cpus
                .or_else(|| read("/sys/devices/system/cpu/online"))
                .unwrap_or_default(),
            mems_online: mems
                .or_else(|| read("/sys/devices/system/node/online"))
                .unwrap_or_default(),
            kernel: (nums.next().unwrap_or(0), nums.next().unwrap_or(0)),
            arch: seccomp::go_arch().to_owned(),
        }
    }

    /// A fixed host for unit tests: hybrid cgroups with swap accounting,
    /// 4 CPUs, one memory node, kernel 6.1.
    #[cfg(test)]
    pub(crate) fn fixed() -> SystemInfo {
        SystemInfo {
            cgroup_v2: false,
            swap_limit: true,
            ncpu: 4,
            cpus_online: "0-3".into(),
            mems_online: "0".into(),
            kernel: (6, 1),
            arch: seccomp::go_arch().to_owned(),
        }
    }
}

/// Everything [`build`] needs.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub id: &'a str,
    /// Already merged with the image's config (Env, Cmd, Entrypoint,
    /// WorkingDir, User, Volumes...), Hostname filled in.
    pub config: &'a ContainerConfig,
    pub host: &'a HostConfig,
    /// The mounted container rootfs on the host.
    pub rootfs: &'a Path,
    /// The user's mounts with host sources resolved ([`parse_mounts`],
    /// then [`MountRequest::resolve`]).
    pub mounts: &'a [ResolvedMount],
    pub hostname_path: &'a Path,
    pub hosts_path: &'a Path,
    pub resolv_conf_path: &'a Path,
    pub netns: Netns<'a>,
    /// `linux.cgroupsPath`, e.g. `/berth/<id>`.
    pub cgroups_path: String,
    /// The host's init binary for `--init`, bind-mounted at [`INIT_PATH`].
    pub init_path: Option<&'a Path>,
    /// Whether containers without a seccomp security option get berth's
    /// default profile (dockerd's `--seccomp-profile unconfined` turns
    /// it off).
    pub seccomp_default: bool,
    pub system: &'a SystemInfo,
    pub donors: Donors,
    /// The host directory to bind as /dev/shm: a tmpfs the daemon mounted
    /// for `--ipc shareable`, or the donor's for `--ipc container:`.
    pub shm_source: Option<&'a Path>,
}

/// The init pids of the containers `--pid` and `--ipc container:<name>`
/// name, resolved by the daemon (they must be running).
#[derive(Debug, Clone, Copy, Default)]
pub struct Donors {
    pub pid: Option<i32>,
    pub ipc: Option<i32>,
}

fn mode_err(field: &'static str, value: &str, reason: &str) -> SpecError {
    SpecError::Mode {
        field,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Should the container get a namespace of its own for `mode`
/// (`""`/`private` → yes, `host` → no)?
fn private_ns(field: &'static str, mode: &str, extra_private: &[&str]) -> Result<bool> {
    match ns_mode(field, mode, extra_private, None)? {
        NsMode::Private => Ok(true),
        NsMode::Host => Ok(false),
        NsMode::Join(_) => Err(mode_err(
            field,
            mode,
            "joining another container's namespace is not supported here",
        )),
    }
}

/// Where a container's namespace of one kind comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NsMode {
    Private,
    Host,
    /// That of the process with this pid (another container's init).
    Join(i32),
}

/// `mode` as `PidMode`/`IpcMode` take it: `""`, `private`, `host`,
/// `container:<name|id>` (whose init is `donor`), or one of
/// `extra_private`.
fn ns_mode(
    field: &'static str,
    mode: &str,
    extra_private: &[&str],
    donor: Option<i32>,
) -> Result<NsMode> {
    match mode {
        "" | "private" => Ok(NsMode::Private),
        "host" => Ok(NsMode::Host),
        m if extra_private.contains(&m) => Ok(NsMode::Private),
        m if m.strip_prefix("container:").is_some_and(|n| !n.is_empty()) => match donor {
            Some(pid) => Ok(NsMode::Join(pid)),
            None => Err(mode_err(field, m, "that container is not running")),
        },
        m => Err(mode_err(
            field,
            m,
            "expected \"\", \"private\", \"host\" or \"container:<name|id>\"",
        )),
    }
}

fn ns_entry(mode: NsMode, typ: &str) -> Option<Value> {
    match mode {
        NsMode::Private => Some(json!({ "type": typ })),
        NsMode::Host => None,
        NsMode::Join(pid) => Some(json!({ "type": typ, "path": format!("/proc/{pid}/ns/{typ}") })),
    }
}

/// The process environment: dockerd's PATH, HOSTNAME and (with a tty)
/// TERM, then the container's variables replacing or adding (a bare
/// `NAME` removes one), then HOME from passwd if still unset.
fn environment(config: &ContainerConfig, hostname: &str, home: &str) -> Vec<String> {
    let mut env = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    if config.tty {
        env.push("TERM=xterm".into());
    }
    for e in config.env.iter().flatten() {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        let pos = env
            .iter()
            .position(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) == key);
        match (pos, e.contains('=')) {
            (Some(i), true) => env[i] = e.clone(),
            (None, true) => env.push(e.clone()),
            (Some(i), false) => {
                env.remove(i);
            }
            (None, false) => {}
        }
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

/// Build the runtime spec for a container.
/// The cgroup limits of `host` alone, for `update` of a running
/// container (devices are left as they are).
pub fn update_resources(
    host: &HostConfig,
    system: &SystemInfo,
) -> Result<oci_spec::runtime::LinuxResources> {
    let res = resources::resources(host, system)?;
    serde_json::from_value(Value::Object(res))
        .map_err(|e| SpecError::Internal(format!("resources: {e}")))
}

pub fn build(input: &SpecInput) -> Result<Spec> {
    let (config, host, sys) = (input.config, input.host, input.system);
    let security = parse_security_opts(host.security_opt.as_deref().unwrap_or_default())?;
    let privileged = host.privileged;

    // Process.
    let mut args: Vec<String> = config
        .entrypoint
        .iter()
        .chain(config.cmd.iter())
        .flatten()
        .cloned()
        .collect();
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    let init = match (host.init, input.init_path) {
        (Some(true), Some(p)) => Some(p),
        (Some(true), None) => {
            return Err(mode_err(
                "Init",
                "true",
                "the daemon has no init binary to run",
            ));
        }
        _ => None,
    };
    if init.is_some() {
        args.splice(0..0, [INIT_PATH.to_owned(), "--".to_owned()]);
    }
    let cwd = if config.working_dir.is_empty() {
        "/".to_owned()
    } else if config.working_dir.starts_with('/') {
        mounts::clean(&config.working_dir)
    } else {
        return Err(mode_err(
            "WorkingDir",
            &config.working_dir,
            "the working directory is invalid, it needs to be an absolute path",
        ));
    };
    let user = resolve_user(
        input.rootfs,
        &config.user,
        host.group_add.as_deref().unwrap_or_default(),
    )?;
    let hostname = if config.hostname.is_empty() {
        input.id.chars().take(12).collect()
    } else {
        config.hostname.clone()
    };
    let caps = caps::capabilities(
        privileged,
        host.cap_add.as_deref().unwrap_or_default(),
        host.cap_drop.as_deref().unwrap_or_default(),
    )?;
    if !(-1000..=1000).contains(&host.oom_score_adj) {
        return Err(SpecError::resource(
            "OomScoreAdj",
            format!(
                "Invalid value {}, range for oom score adj is [-1000, 1000]",
                host.oom_score_adj
            ),
        ));
    }
    let mut process = json!({
        "terminal": config.tty,
        "args": args,
        "env": environment(config, &hostname, &user.home),
        "cwd": cwd,
        "user": serde_json::to_value(user.oci_user()).map_err(|e| SpecError::Internal(e.to_string()))?,
        "capabilities": serde_json::to_value(caps::oci_capabilities(&caps)?)
            .map_err(|e| SpecError::Internal(e.to_string()))?,
        "noNewPrivileges": security.no_new_privileges,
        "oomScoreAdj": host.oom_score_adj,
        "rlimits": resources::rlimits(host.ulimits.as_deref().unwrap_or_default())?,
    });
    if let Some(p) = security
        .apparmor
        .as_deref()
        .filter(|p| *p != "unconfined" && !privileged)
    {
        process["apparmorProfile"] = p.into();
    }

    // Namespaces.
    let pid = ns_mode("PidMode", &host.pid_mode, &[], input.donors.pid)?;
    let ipc = ns_mode(
        "IpcMode",
        &host.ipc_mode,
        &["shareable", "none"],
        input.donors.ipc,
    )?;
    let uts_private = private_ns("UTSMode", &host.uts_mode, &[])?;
    let cgroupns_private = match host.cgroupns_mode.as_str() {
        "" => sys.cgroup_v2,
        "private" => true,
        "host" => false,
        m => {
            return Err(mode_err(
                "CgroupnsMode",
                m,
                "expected \"private\" or \"host\"",
            ));
        }
    };
    if !matches!(host.userns_mode.as_str(), "" | "host") {
        return Err(mode_err(
            "UsernsMode",
            &host.userns_mode,
            "user namespaces are not supported yet",
        ));
    }
    let mut namespaces = vec![json!({ "type": "mount" })];
    namespaces.extend(ns_entry(pid, "pid"));
    namespaces.extend(ns_entry(ipc, "ipc"));
    for (private, typ) in [(uts_private, "uts"), (cgroupns_private, "cgroup")] {
        if private {
            namespaces.push(json!({ "type": typ }));
        }
    }
    match input.netns {
        Netns::New => namespaces.push(json!({ "type": "network" })),
        Netns::Host => {}
        Netns::Path(p) => namespaces.push(json!({ "type": "network", "path": p })),
    }

    // Sysctls: only what lives in a namespace the container owns.
    let mut sysctl = serde_json::Map::new();
    for (key, value) in host.sysctls.iter().flatten() {
        let err = |reason: &str| SpecError::Sysctl {
            key: key.clone(),
            reason: reason.to_owned(),
        };
        match resources::sysctl_namespace(key) {
            None => {
                return Err(err(
                    "is not in a separate kernel namespace: setting it would change the host",
                ));
            }
            Some(SysctlNs::Ipc) if ipc == NsMode::Host => {
                return Err(err("is not allowed in the host's IPC namespace"));
            }
            Some(SysctlNs::Ipc) if ipc != NsMode::Private => {
                return Err(err("is not allowed in another container's IPC namespace"));
            }
            Some(SysctlNs::Net) if input.netns == Netns::Host => {
                return Err(err("is not allowed in the host's network namespace"));
            }
            Some(SysctlNs::Uts) if !uts_private => {
                return Err(err("is not allowed in the host's UTS namespace"));
            }
            Some(SysctlNs::Uts) if key == "kernel.hostname" => {
                return Err(err(
                    "conflicts with the container's hostname: set Config.Hostname instead",
                ));
            }
            _ => {}
        }
        sysctl.insert(key.clone(), value.clone().into());
    }

    // Mounts.
    let shm = if let Some(source) = input.shm_source {
        Shm::Bind(source.to_path_buf())
    } else if ipc == NsMode::Host {
        Shm::Host
    } else if host.ipc_mode == "none" {
        Shm::None
    } else if host.shm_size < 0 {
        return Err(SpecError::resource(
            "ShmSize",
            format!("SHM size can not be less than 0: {}", host.shm_size),
        ));
    } else if host.shm_size == 0 {
        Shm::Tmpfs(DEFAULT_SHM_SIZE)
    } else {
        Shm::Tmpfs(host.shm_size as u64)
    };
    let mount_list = mounts::mount_list(&MountPlan {
        privileged,
        writable_cgroups: security.writable_cgroups,
        shm,
        read_only_rootfs: host.readonly_rootfs,
        etc_files: [
            ("/etc/resolv.conf", input.resolv_conf_path),
            ("/etc/hostname", input.hostname_path),
            ("/etc/hosts", input.hosts_path),
        ],
        init: init.map(|p| (INIT_PATH, p)),
        user: input.mounts,
    });
    // A bind that propagates mounts needs the rootfs to propagate too.
    let propagation = |modes: &[&str]| {
        input.mounts.iter().any(|m| {
            m.kind == MountKind::Bind && m.options.iter().any(|o| modes.contains(&o.as_str()))
        })
    };
    let rootfs_propagation = if propagation(&["shared", "rshared"]) {
        Some("rshared")
    } else if propagation(&["slave", "rslave"]) {
        Some("rslave")
    } else {
        None
    };

    // Resources and devices.
    let mut res = resources::resources(host, sys)?;
    let (devices, device_rules) = resources::devices(host, privileged)?;
    res.insert("devices".into(), Value::Array(device_rules));

    let (masked, readonly): (Vec<String>, Vec<String>) =
        if privileged || security.systempaths_unconfined {
            (Vec::new(), Vec::new())
        } else {
            (
                host.masked_paths
                    .clone()
                    .unwrap_or_else(|| DEFAULT_MASKED_PATHS.map(String::from).to_vec()),
                host.readonly_paths
                    .clone()
                    .unwrap_or_else(|| DEFAULT_READONLY_PATHS.map(String::from).to_vec()),
            )
        };

    let seccomp = match (&security.seccomp, privileged) {
        (_, true) | (SeccompOpt::Unconfined, _) => None,
        (SeccompOpt::Profile(json), false) => Some(seccomp::to_oci(
            &seccomp::parse_profile(json)?,
            &caps,
            &sys.arch,
            sys,
        )?),
        (SeccompOpt::Default, false) if input.seccomp_default => Some(seccomp::to_oci(
            &seccomp::default_profile(),
            &caps,
            &sys.arch,
            sys,
        )?),
        (SeccompOpt::Default, false) => None,
    };

    let mut linux = json!({
        "namespaces": namespaces,
        "resources": res,
        "devices": devices,
        "cgroupsPath": input.cgroups_path,
        "maskedPaths": masked,
        "readonlyPaths": readonly,
        "sysctl": sysctl,
    });
    if let Some(p) = rootfs_propagation {
        linux["rootfsPropagation"] = p.into();
    }
    if let Some(s) = seccomp {
        linux["seccomp"] =
            serde_json::to_value(s).map_err(|e| SpecError::Internal(e.to_string()))?;
    }

    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": { "path": input.rootfs, "readonly": host.readonly_rootfs },
        "mounts": mount_list,
        "linux": linux,
    });
    if uts_private {
        spec["hostname"] = hostname.into();
        if !config.domainname.is_empty() {
            spec["domainname"] = config.domainname.clone().into();
        }
    }
    serde_json::from_value(spec).map_err(|e| SpecError::Internal(e.to_string()))
}
