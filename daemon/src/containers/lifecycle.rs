//! Creating, starting, stopping and removing containers. A container runs
//! under its own berth-shim; berthd only starts the shim, then follows it
//! (`monitor`), so containers outlive the daemon.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_api::containers::{ContainerConfig, ContainerCreateRequest, HostConfig, MountPoint};
use berth_runtime::Runtime;
use nix::sys::signal::Signal;

use super::record::{Record, State, Status, now_rfc3339};
use super::registry::Entry;
use super::{monitor, names};
use crate::error::{ApiError, Result};
use crate::server::Daemon;
use crate::spec::{self as ocispec, Donors, MountSource, Netns, SpecInput};

/// Where one container's files live.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<data-root>/containers/<id>`: the log and the /etc files.
    pub data: PathBuf,
    /// `<exec-root>/c/<id>`: the bundle, the rootfs mount point and the
    /// shim's state directory.
    pub run: PathBuf,
    /// `<exec-root>/s`: the shims' sockets.
    pub sockets: PathBuf,
    pub id: String,
}

impl Paths {
    pub fn new(d: &Daemon, id: &str) -> Paths {
        Paths {
            data: d.config.data_root.join("containers").join(id),
            run: d.config.exec_root.join("c").join(id),
            sockets: d.config.exec_root.join("s"),
            id: id.to_string(),
        }
    }
    pub fn rootfs(&self) -> PathBuf {
        self.run.join("rootfs")
    }
    pub fn shim_dir(&self) -> PathBuf {
        self.run.join("shim")
    }
    /// Short, so it fits a unix socket address (108 bytes) even under a
    /// long exec root.
    pub fn socket(&self) -> PathBuf {
        self.sockets
            .join(format!("c-{}", &self.id[..self.id.len().min(32)]))
    }
    pub fn log(&self) -> PathBuf {
        self.data.join(format!("{}-json.log", self.id))
    }
    pub fn hostname(&self) -> PathBuf {
        self.data.join("hostname")
    }
    pub fn hosts(&self) -> PathBuf {
        self.data.join("hosts")
    }
    pub fn resolv_conf(&self) -> PathBuf {
        self.data.join("resolv.conf")
    }
    /// The tmpfs of an `--ipc shareable` container, mounted on the host so
    /// that containers joining its IPC namespace can bind it too.
    pub fn shm(&self) -> PathBuf {
        self.run.join("shm")
    }
}

/// The process's arguments: Entrypoint then Cmd.
pub fn command(config: &ContainerConfig) -> Vec<String> {
    let mut args = config.entrypoint.clone().unwrap_or_default();
    args.extend(config.cmd.clone().unwrap_or_default());
    args
}

fn spec_err(e: ocispec::SpecError) -> ApiError {
    ApiError::InvalidParameter(e.to_string())
}

fn internal(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> ApiError {
    let msg = format!("{what} {}", path.display());
    move |e| ApiError::Internal(format!("{msg}: {e}"))
}

pub fn runtime(d: &Daemon) -> Runtime {
    Runtime::new(d.config.exec_root.join("runtime"))
}

/// The image's configuration under the container's: the container's
/// values win, environment variables merge by name, and an Entrypoint
/// given without a Cmd drops the image's Cmd.
pub fn merge_image_config(c: &mut ContainerConfig, image: &berth_api::ImageConfig) {
    let mut env = image.env.clone().unwrap_or_default();
    for e in c.env.take().unwrap_or_default() {
        let key = e.split('=').next().unwrap_or_default().to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(e);
    }
    c.env = Some(env);
    let cmd_given = c.cmd.as_ref().is_some_and(|v| !v.is_empty());
    let ep_given = c.entrypoint.is_some();
    if !ep_given {
        c.entrypoint = image.entrypoint.clone();
    }
    if !cmd_given && !ep_given {
        c.cmd = image.cmd.clone();
    }
    // `--entrypoint ""` clears the entrypoint: it arrives as `[""]`.
    if c.entrypoint
        .as_ref()
        .is_some_and(|e| e.len() == 1 && e[0].is_empty())
    {
        c.entrypoint = None;
    }
    if c.working_dir.is_empty() {
        c.working_dir = image.working_dir.clone();
    }
    if c.user.is_empty() {
        c.user = image.user.clone();
    }
    if c.stop_signal.is_none() {
        c.stop_signal = image.stop_signal.clone();
    }
    // As dockerd: the image's healthcheck fills in what the container's
    // leaves unset, field by field.
    if let Some(ih) = &image.healthcheck {
        match &mut c.healthcheck {
            None => c.healthcheck = Some(ih.clone()),
            Some(h) => {
                if h.test.as_ref().is_none_or(|t| t.is_empty()) {
                    h.test = ih.test.clone();
                }
                for (mine, theirs) in [
                    (&mut h.interval, ih.interval),
                    (&mut h.timeout, ih.timeout),
                    (&mut h.retries, ih.retries),
                    (&mut h.start_period, ih.start_period),
                    (&mut h.start_interval, ih.start_interval),
                ] {
                    if *mine == 0 {
                        *mine = theirs;
                    }
                }
            }
        }
    }
    let mut ports = image.exposed_ports.clone().unwrap_or_default();
    ports.extend(c.exposed_ports.take().unwrap_or_default());
    c.exposed_ports = (!ports.is_empty()).then_some(ports);
    let mut vols = image.volumes.clone().unwrap_or_default();
    vols.extend(c.volumes.take().unwrap_or_default());
    c.volumes = (!vols.is_empty()).then_some(vols);
    let mut labels = image.labels.clone().unwrap_or_default();
    labels.extend(c.labels.take().unwrap_or_default());
    c.labels = Some(labels);
}

/// `10m`, `1g`, `512k`, `100` (bytes), as Docker's max-size takes them.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mul) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n > 0.0).then_some((n * mul as f64) as u64)
}

/// The log driver's settings: (max size, max files), or None for `none`.
pub fn log_settings(h: &HostConfig) -> Result<Option<(Option<u64>, u32)>> {
    let lc = &h.log_config;
    match lc.kind.as_str() {
        "" | "json-file" => {}
        "none" => return Ok(None),
        other => {
            return Err(ApiError::InvalidParameter(format!(
                "logging driver \"{other}\" is not supported (berth has json-file and none)"
            )));
        }
    }
    let mut size = None;
    let mut files = 1;
    for (k, v) in &lc.config {
        match k.as_str() {
            "max-size" if v == "-1" => {}
            "max-size" => {
                size = Some(parse_size(v).ok_or_else(|| {
                    ApiError::InvalidParameter(format!("invalid value for max-size: {v}"))
                })?);
            }
            "max-file" => {
                files = v.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::InvalidParameter(format!(
                        "max-file must be a positive number, not {v}"
                    ))
                })?;
            }
            // Accepted as dockerd accepts them; they change no output.
            "compress" | "labels" | "labels-regex" | "env" | "env-regex" | "tag" => {}
            other => {
                return Err(ApiError::InvalidParameter(format!(
                    "unknown log opt '{other}' for json-file log driver"
                )));
            }
        }
    }
    if files > 1 && size.is_none() {
        return Err(ApiError::InvalidParameter(
            "max-file cannot be set without max-size".into(),
        ));
    }
    Ok(Some((size, files)))
}

/// Checks dockerd makes before it creates anything.
fn validate_host(h: &HostConfig) -> Result<()> {
    log_settings(h)?;
    if h.memory != 0 && h.memory < 6 * 1024 * 1024 {
        return Err(ApiError::InvalidParameter(
            "Minimum memory limit allowed is 6MB".into(),
        ));
    }
    match h.restart_policy.name.as_str() {
        "" | "no" | "always" | "unless-stopped" | "on-failure" => {}
        other => {
            return Err(ApiError::InvalidParameter(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', \
                 'on-failure', or 'unless-stopped'"
            )));
        }
    }
    if h.restart_policy.maximum_retry_count != 0 && h.restart_policy.name != "on-failure" {
        return Err(ApiError::InvalidParameter(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'".into(),
        ));
    }
    if h.auto_remove && !matches!(h.restart_policy.name.as_str(), "" | "no") {
        return Err(ApiError::InvalidParameter(
            "can't create 'AutoRemove' container with restart policy".into(),
        ));
    }
    // Named networks are looked up in netd by create.
    if let Some(other) = h.network_mode.strip_prefix("container:") {
        if other.is_empty() {
            return Err(ApiError::InvalidParameter(
                "invalid network mode container: (no container named)".into(),
            ));
        }
        // The other container's namespace is its own: nothing of it can be
        // set from here, as dockerd refuses.
        let conflict = |what: &str| {
            Err(ApiError::InvalidParameter(format!(
                "conflicting options: {what} and the container type network mode"
            )))
        };
        if h.publish_all_ports || h.port_bindings.as_ref().is_some_and(|p| !p.is_empty()) {
            return conflict("port publishing");
        }
        if h.dns.as_ref().is_some_and(|d| !d.is_empty()) {
            return conflict("dns");
        }
        if h.extra_hosts.as_ref().is_some_and(|e| !e.is_empty()) {
            return conflict("custom host-to-IP mapping");
        }
    }
    Ok(())
}

/// A network named at create that does not exist: a bad request, not a
/// 404, which the docker CLI would take for a missing image and pull.
fn missing_network(e: berth_netd::NetdError) -> ApiError {
    if e.is_not_found() {
        ApiError::InvalidParameter(e.to_string())
    } else {
        crate::networks::api_err(e)
    }
}

/// `POST /containers/create`: the record, the writable snapshot and the
/// /etc files; all or nothing.
pub fn create(d: &Daemon, name: Option<&str>, req: ContainerCreateRequest) -> Result<Record> {
    let ContainerCreateRequest {
        mut config,
        host_config,
        networking_config,
    } = req;
    let req_networks = networking_config
        .and_then(|n| n.endpoints_config)
        .unwrap_or_default();
    let mut host = host_config.unwrap_or_default();
    validate_host(&host)?;
    if host.log_config.kind.is_empty() {
        // dockerd fills in its default driver; clients (docker-py) read it
        // back to decide whether they can read the logs.
        host.log_config.kind = "json-file".into();
    }
    if host.network_mode.is_empty() || host.network_mode == "default" {
        host.network_mode = crate::networks::default_mode(d).into();
    }
    let mut networks = std::collections::BTreeMap::new();
    if crate::networks::is_netd_mode(&host.network_mode) {
        // The networks must exist now, as with dockerd; the CLI names the
        // default one "default".
        for (k, v) in req_networks {
            let k = if k == "default" {
                host.network_mode.clone()
            } else {
                k
            };
            let (n, _) = d.net.network(&k).map_err(missing_network)?;
            if v.ipam_config
                .as_ref()
                .is_some_and(|c| !c.ipv6_address.is_empty())
            {
                return Err(ApiError::InvalidParameter(format!(
                    "network {}: IPv6 addresses are not supported by berthd",
                    n.name
                )));
            }
            if let Some(ip) = v
                .ipam_config
                .as_ref()
                .map(|c| c.ipv4_address.as_str())
                .filter(|ip| !ip.is_empty())
            {
                let ip = ip.parse().map_err(|_| {
                    ApiError::InvalidParameter(format!("invalid IPv4 address: {ip}"))
                })?;
                n.check_static_ip(ip).map_err(crate::networks::api_err)?;
            }
            networks.insert(n.name, v);
        }
        let (n, _) = d.net.network(&host.network_mode).map_err(missing_network)?;
        networks.entry(n.name).or_default();
    }
    if config.image.is_empty() {
        return Err(ApiError::InvalidParameter(
            "Config cannot be empty in order to create a container".into(),
        ));
    }
    let image = d
        .store
        .image(&config.image)
        .map_err(|e| ApiError::from_image_lookup(&config.image, e))?;
    merge_image_config(&mut config, &crate::images::image_config(&image));
    if command(&config).is_empty() {
        return Err(ApiError::InvalidParameter("no command specified".into()));
    }
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) => names::validate(n)?,
        None => names::generate(|n| d.containers.name_taken(n).is_some()),
    };
    if let Some(other) = d.containers.name_taken(&name) {
        return Err(ApiError::Conflict(format!(
            "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". \
             You have to remove (or rename) that container to be able to reuse that name."
        )));
    }
    let id = names::new_id();
    if config.hostname.is_empty() {
        config.hostname = id[..12].to_string();
    }
    let paths = Paths::new(d, &id);
    let mut args = command(&config);
    let path = args.remove(0);
    let requests = ocispec::parse_mounts(&config, &host).map_err(spec_err)?;
    // Everything the spec checks (resources, capabilities, seccomp,
    // devices, ulimits), checked now so a bad value fails the create.
    {
        let dry = ContainerConfig {
            user: String::new(),
            ..config.clone()
        };
        let empty = empty_dir(d)?;
        let init = match host.init {
            Some(true) => Some(init_binary(d)?),
            _ => None,
        };
        ocispec::build(&SpecInput {
            id: &id,
            config: &dry,
            host: &host,
            rootfs: &empty,
            mounts: &[],
            hostname_path: Path::new("/etc/hostname"),
            hosts_path: Path::new("/etc/hosts"),
            resolv_conf_path: Path::new("/etc/resolv.conf"),
            netns: Netns::New,
            cgroups_path: cgroups_path(&id),
            init_path: init.as_deref(),
            seccomp_default: true,
            system: &d.system,
            donors: placeholder_donors(&host),
            shm_source: None,
        })
        .map_err(spec_err)?;
    }
    let mut created_volumes: Vec<String> = Vec::new();
    let mut mounts = Vec::new();
    for m in &requests {
        let mp = match &m.source {
            MountSource::HostPath(p) => MountPoint {
                kind: "bind".into(),
                source: p.display().to_string(),
                destination: m.destination.clone(),
                rw: !m.read_only,
                propagation: m.propagation.clone().unwrap_or_else(|| "rprivate".into()),
                ..Default::default()
            },
            MountSource::Volume { name, .. } => {
                let made = d.volumes.create(
                    name.as_deref(),
                    Default::default(),
                    Default::default(),
                    name.is_none(),
                );
                let (v, new) = match made {
                    Ok(v) => v,
                    Err(e) => {
                        for n in &created_volumes {
                            let _ = d.volumes.remove(n, &[]);
                        }
                        return Err(e);
                    }
                };
                if new {
                    created_volumes.push(v.name.clone());
                    d.events.volume(&v.name, "create", "local");
                }
                MountPoint {
                    kind: "volume".into(),
                    name: v.name.clone(),
                    source: d.volumes.data_dir(&v.name).display().to_string(),
                    destination: m.destination.clone(),
                    driver: "local".into(),
                    mode: if m.read_only { "ro".into() } else { "z".into() },
                    rw: !m.read_only,
                    ..Default::default()
                }
            }
            MountSource::Tmpfs => MountPoint {
                kind: "tmpfs".into(),
                destination: m.destination.clone(),
                rw: !m.read_only,
                ..Default::default()
            },
        };
        mounts.push(mp);
    }
    let rec = Record {
        id: id.clone(),
        name,
        created: now_rfc3339(),
        image: config.image.clone(),
        image_id: image.id.to_string(),
        path,
        args,
        host_config: host,
        mounts,
        log_path: paths.log().display().to_string(),
        hostname_path: paths.hostname().display().to_string(),
        hosts_path: paths.hosts().display().to_string(),
        resolv_conf_path: paths.resolv_conf().display().to_string(),
        networks,
        config,
        state: State::default(),
        ..Default::default()
    };
    let made = (|| {
        std::fs::create_dir_all(&paths.data).map_err(internal("creating", &paths.data))?;
        write_etc_files(&rec, &paths)?;
        d.store
            .prepare_container(&id, &image)
            .map_err(ApiError::Store)?;
        d.containers.insert(rec.clone())
    })();
    if let Err(e) = made {
        let _ = d.store.remove_container(&id);
        let _ = std::fs::remove_dir_all(&paths.data);
        for n in &created_volumes {
            let _ = d.volumes.remove(n, &[]);
        }
        return Err(e);
    }
    d.events.container(&rec, "create");
    Ok(rec)
}

/// A pid the shim left in `dir` (`shim.pid`, `init.pid`).
pub(super) fn read_pid(dir: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(dir.join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The name prefix of a removed container's directory awaiting deletion.
const DISCARDED: &str = ".discarded-";

/// Rename a removed container's directory out of the way, for deletion
/// off the request's path; [`sweep_discarded`] finds what a crash left.
fn discard(dir: &Path) -> Result<Option<PathBuf>> {
    let Some(name) = dir.file_name() else {
        return Ok(None);
    };
    let to = dir.with_file_name(format!("{DISCARDED}{}", name.to_string_lossy()));
    match std::fs::rename(dir, &to) {
        Ok(()) => Ok(Some(to)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(_) => match std::fs::remove_dir_all(dir) {
            Ok(()) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(internal("removing", dir)(e)),
        },
    }
}

/// At start: delete the directories of containers removed before a crash
/// could delete them.
pub fn sweep_discarded(d: &Daemon) {
    d.store.sweep_discarded_containers();
    for parent in [
        d.config.exec_root.join("c"),
        d.config.data_root.join("containers"),
    ] {
        for e in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(DISCARDED) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// An empty directory that stands in for a rootfs when a spec is built
/// only to check a request. Made once: a temporary one per create cost
/// an inode allocated and freed on the host's filesystem every time.
fn empty_dir(d: &Daemon) -> Result<PathBuf> {
    let dir = d.config.exec_root.join("empty");
    match std::fs::read_dir(&dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => return Ok(dir),
        // Something was put in it.
        Ok(false) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(_) => {}
    }
    std::fs::create_dir_all(&dir).map_err(internal("creating", &dir))?;
    Ok(dir)
}

/// The init `--init` runs: `--init-path`, else docker-init or Debian's
/// tini-static on PATH (a static binary, so it runs in any image).
fn init_binary(d: &Daemon) -> Result<PathBuf> {
    if let Some(p) = &d.config.init_path {
        return Ok(p.clone());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    for name in ["docker-init", "tini-static"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(ApiError::InvalidParameter(
        "--init: no init found (docker-init or tini-static on PATH); install Debian's tini or \
         give berthd --init-path"
            .into(),
    ))
}

/// Each container's cgroup, under one berth parent.
pub fn cgroups_path(id: &str) -> String {
    format!("/berth/{id}")
}

/// The mounts as the spec wants them: host paths resolved, volumes at
/// their directories (filled from the image the first time, as Docker
/// does unless `nocopy`).
fn resolve_mounts(d: &Daemon, rec: &Record, rootfs: &Path) -> Result<Vec<ocispec::ResolvedMount>> {
    let requests = ocispec::parse_mounts(&rec.config, &rec.host_config).map_err(spec_err)?;
    let mut out = Vec::new();
    for m in &requests {
        let dir = match &m.source {
            MountSource::Volume { no_copy, .. } => {
                let name = rec
                    .mounts
                    .iter()
                    .find(|p| p.kind == "volume" && p.destination == m.destination)
                    .map(|p| p.name.clone())
                    .ok_or_else(|| {
                        ApiError::Internal(format!("no volume recorded for {}", m.destination))
                    })?;
                let v = d.volumes.get(&name)?;
                let dir = d.volumes.data_dir(&v.name);
                if !no_copy {
                    copy_up(&rootfs.join(m.destination.trim_start_matches('/')), &dir);
                }
                Some(dir)
            }
            MountSource::HostPath(p) => {
                if m.create_host_path && !p.exists() {
                    std::fs::create_dir_all(p).map_err(internal("creating", p))?;
                }
                if !p.exists() {
                    return Err(ApiError::InvalidParameter(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {}",
                        p.display()
                    )));
                }
                None
            }
            MountSource::Tmpfs => None,
        };
        out.push(m.resolve(dir));
    }
    Ok(out)
}

/// Fill an empty volume with what the image has at its mount point.
fn copy_up(from: &Path, volume: &Path) {
    let empty = std::fs::read_dir(volume).is_ok_and(|mut r| r.next().is_none());
    if !empty || !from.is_dir() {
        return;
    }
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(volume)
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        tracing::warn!(
            "copying {} into {}: {status:?}",
            from.display(),
            volume.display()
        );
    }
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf for the container.
fn write_etc_files(rec: &Record, paths: &Paths) -> Result<()> {
    let c = &rec.config;
    let host = &rec.host_config;
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for h in host.extra_hosts.iter().flatten() {
        if let Some((name, ip)) = h.split_once(':').or_else(|| h.split_once('=')) {
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    let resolv = if host.network_mode == "host" {
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
    } else {
        let mut r = String::new();
        for s in host.dns_search.iter().flatten() {
            r.push_str(&format!("search {s}\n"));
        }
        for s in host.dns.iter().flatten() {
            r.push_str(&format!("nameserver {s}\n"));
        }
        for s in host.dns_options.iter().flatten() {
            r.push_str(&format!("options {s}\n"));
        }
        r
    };
    for (p, body) in [
        (paths.hostname(), format!("{}\n", c.hostname)),
        (paths.hosts(), hosts),
        (paths.resolv_conf(), resolv),
    ] {
        std::fs::write(&p, body).map_err(internal("writing", &p))?;
    }
    Ok(())
}

/// Undo a rootfs mount, if there is one.
fn unmount(path: &Path) {
    if let Err(e) = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH)
        && e != nix::errno::Errno::EINVAL
        && e != nix::errno::Errno::ENOENT
    {
        tracing::warn!("unmounting {}: {e}", path.display());
    }
}

/// How a failed start maps to Docker's exit codes: 127 when the command
/// is not there, 126 when it cannot be run.
fn start_error_code(msg: &str) -> i64 {
    let m = msg.to_ascii_lowercase();
    if m.contains("not found") || m.contains("no such file") {
        127
    } else if m.contains("permission denied") || m.contains("is a directory") {
        126
    } else {
        128
    }
}

/// The containers whose namespaces `--pid`/`--ipc container:<name>` join,
/// which must be running; with them, the /dev/shm to bind: the IPC
/// donor's.
fn donors(d: &Daemon, host: &HostConfig) -> Result<(Donors, Option<PathBuf>)> {
    let donor = |what: &str, mode: &str| -> Result<Option<Record>> {
        let Some(name) = mode.strip_prefix("container:").filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let rec = d.containers.get(name)?.record();
        if rec.state.status.is_live() && rec.state.pid > 0 {
            return Ok(Some(rec));
        }
        Err(ApiError::Conflict(format!(
            "cannot join {what} of a non running container: {}",
            rec.id
        )))
    };
    let pid = donor("PID", &host.pid_mode)?;
    let ipc = donor("IPC", &host.ipc_mode)?;
    if let Some(r) = &ipc
        && r.host_config.ipc_mode != "shareable"
    {
        // As in Docker: only a shareable donor has a /dev/shm on the host
        // to share.
        return Err(ApiError::Conflict(format!(
            "cannot join IPC of container {}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)",
            r.id
        )));
    }
    let donors = Donors {
        pid: pid.as_ref().map(|r| r.state.pid as i32),
        ipc: ipc.as_ref().map(|r| r.state.pid as i32),
    };
    Ok((donors, ipc.map(|r| Paths::new(d, &r.id).shm())))
}

/// At create the containers to join need not run yet (as in Docker, they
/// are looked up at start): any pid gives the spec its shape.
fn placeholder_donors(host: &HostConfig) -> Donors {
    let joins = |mode: &str| mode.starts_with("container:").then_some(1);
    Donors {
        pid: joins(&host.pid_mode),
        ipc: joins(&host.ipc_mode),
    }
}

/// For `--ipc shareable`: a tmpfs on the host for the container's
/// /dev/shm, which containers joining its IPC namespace bind too.
fn mount_shareable_shm(paths: &Paths, host: &HostConfig) -> Result<PathBuf> {
    let dir = paths.shm();
    std::fs::create_dir_all(&dir).map_err(internal("creating", &dir))?;
    unmount(&dir);
    let size = if host.shm_size > 0 {
        host.shm_size as u64
    } else {
        ocispec::DEFAULT_SHM_SIZE
    };
    nix::mount::mount(
        Some("shm"),
        &dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        Some(format!("mode=1777,size={size}").as_str()),
    )
    .map_err(|e| ApiError::Internal(format!("mounting /dev/shm at {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Start the container under a new shim. The caller holds `e.op`.
pub fn start(d: &Arc<Daemon>, e: &Arc<Entry>) -> Result<()> {
    let rec = e.record();
    let paths = Paths::new(d, &rec.id);
    let shim_dir = paths.shim_dir();
    let _ = std::fs::remove_dir_all(&shim_dir);
    std::fs::create_dir_all(&shim_dir).map_err(internal("creating", &shim_dir))?;
    let rootfs = paths.rootfs();
    std::fs::create_dir_all(&rootfs).map_err(internal("creating", &rootfs))?;
    unmount(&rootfs);
    d.store
        .mount_container_with(&rec.id, &rootfs, rec.host_config.auto_remove)
        .map_err(ApiError::Store)?;
    let attached = crate::networks::attach(d, &rec, &paths.hosts(), &paths.resolv_conf());
    let launched = (|| {
        let (donors, donor_shm) = donors(d, &rec.host_config)?;
        let shm_source = if rec.host_config.ipc_mode == "shareable" {
            Some(mount_shareable_shm(&paths, &rec.host_config)?)
        } else {
            donor_shm
        };
        let attached = attached?;
        let mounts = resolve_mounts(d, &rec, &rootfs)?;
        let init = match rec.host_config.init {
            Some(true) => Some(init_binary(d)?),
            _ => None,
        };
        let spec = ocispec::build(&SpecInput {
            id: &rec.id,
            config: &rec.config,
            host: &rec.host_config,
            rootfs: &rootfs,
            mounts: &mounts,
            hostname_path: &paths.hostname(),
            hosts_path: &paths.hosts(),
            resolv_conf_path: &paths.resolv_conf(),
            netns: match &attached {
                crate::networks::Attached::Host => Netns::Host,
                crate::networks::Attached::New => Netns::New,
                crate::networks::Attached::Path(p) => Netns::Path(p),
            },
            cgroups_path: cgroups_path(&rec.id),
            init_path: init.as_deref(),
            seccomp_default: true,
            system: &d.system,
            donors,
            shm_source: shm_source.as_deref(),
        })
        .map_err(spec_err)?;
        let cfg = paths.run.join("config.json");
        std::fs::write(&cfg, serde_json::to_vec_pretty(&spec).expect("spec json"))
            .map_err(internal("writing", &cfg))?;
        std::fs::create_dir_all(&paths.sockets).map_err(internal("creating", &paths.sockets))?;
        let mut cmd = std::process::Command::new(&d.shim);
        cmd.arg("--id")
            .arg(&rec.id)
            .arg("--bundle")
            .arg(&paths.run)
            .arg("--state-dir")
            .arg(&shim_dir)
            .arg("--runtime-root")
            .arg(runtime(d).root)
            .arg("--socket")
            .arg(paths.socket());
        // With no client waiting to attach and no terminal size to set
        // first, the shim starts the process itself: one round trip less
        // for every detached run.
        let sized_tty = rec.config.tty && rec.host_config.console_size.is_some();
        let at_once = !sized_tty && !e.has_pending_attaches();
        if !at_once {
            cmd.arg("--no-start");
        }
        match log_settings(&rec.host_config)? {
            None => {
                cmd.arg("--no-log");
            }
            Some((size, files)) => {
                cmd.arg("--log").arg(paths.log());
                if let Some(size) = size {
                    cmd.arg("--log-max-size")
                        .arg(size.to_string())
                        .arg("--log-max-files")
                        .arg(files.to_string());
                }
            }
        }
        if rec.config.open_stdin {
            cmd.arg("--stdin");
            if rec.config.stdin_once {
                cmd.arg("--stdin-once");
            }
        }
        if rec.config.tty {
            cmd.arg("--tty");
        }
        let out = cmd
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(internal("running", &d.shim))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            let msg = msg.trim().trim_start_matches("berth-shim: ");
            return Err(ApiError::Start(msg.to_string()));
        }
        let Some(shim_pid) = read_pid(&shim_dir, berth_shim::files::SHIM_PID) else {
            return Err(ApiError::Internal(format!(
                "berth-shim for {} left no pid file in {}",
                rec.id,
                shim_dir.display()
            )));
        };
        let sock = paths.socket();
        if at_once {
            // An attach that came while the shim started gets the stream
            // from here on, as an attach to a running container does.
            for (req, tx) in e.take_pending_attaches() {
                if let Ok((_, stream)) = berth_shim::client::attach(&sock, req) {
                    let _ = tx.send(stream);
                }
            }
            return match read_pid(&shim_dir, berth_shim::files::INIT_PID) {
                Some(pid) => Ok((shim_pid, pid)),
                None => Err(ApiError::Internal(format!(
                    "berth-shim for {} left no init pid in {}",
                    rec.id,
                    shim_dir.display()
                ))),
            };
        }
        // Attaches that came before the start get their streams now, so
        // not one byte of output is missed.
        for (req, tx) in e.take_pending_attaches() {
            match berth_shim::client::attach(&sock, req) {
                Ok((_, stream)) => {
                    let _ = tx.send(stream);
                }
                Err(err) => tracing::warn!(id = rec.id, "attaching before the start: {err}"),
            }
        }
        if let Some([h, w]) = rec.host_config.console_size
            && rec.config.tty
            && h > 0
            && w > 0
        {
            let _ = berth_shim::client::request(
                &sock,
                &berth_shim::proto::Request::Resize {
                    width: w as u16,
                    height: h as u16,
                },
            );
        }
        match berth_shim::client::request(&sock, &berth_shim::proto::Request::Start) {
            Ok(reply) => Ok((shim_pid, reply.pid.unwrap_or_default())),
            Err(err) => {
                let msg = match err {
                    berth_shim::Error::Refused { msg, .. } => msg,
                    other => other.to_string(),
                };
                Err(ApiError::Start(msg))
            }
        }
    })();
    let (shim_pid, init_pid) = match launched {
        Ok(p) => p,
        Err(err) => {
            unmount(&rootfs);
            unmount(&paths.shm());
            crate::networks::release(d, &rec.id);
            let msg = err.to_string();
            d.containers.update(e, |r| {
                r.state.error = msg.clone();
                r.state.exit_code = start_error_code(&msg);
                if r.state.status != Status::Created {
                    r.state.status = Status::Exited;
                }
            })?;
            return Err(err);
        }
    };
    // Restore reads a start it finds no record of from the shim's files,
    // so this need not wait for the disk.
    d.containers.update_volatile(e, |r| {
        r.state = State {
            status: Status::Running,
            pid: init_pid as i64,
            started_at: now_rfc3339(),
            shim_pid: Some(shim_pid),
            health: r.state.health.clone(),
            ..State::default()
        };
        r.has_been_started = true;
        r.manually_stopped = false;
    })?;
    let rec = e.record();
    d.events.volume_mounts(&rec, "mount");
    d.events.container(&rec, "start");
    monitor::follow(d.clone(), e.clone(), shim_pid);
    super::health::spawn(d.clone(), e.clone());
    Ok(())
}

pub fn parse_signal(s: &str) -> Result<Signal> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n)
            .map_err(|_| ApiError::InvalidParameter(format!("Invalid signal: {s}")));
    }
    let up = t.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>()
        .map_err(|_| ApiError::InvalidParameter(format!("Invalid signal: {s}")))
}

/// Send `sig` to the container's init (`all`: to every process in it).
pub fn signal(d: &Daemon, e: &Entry, sig: Signal, all: bool) -> Result<()> {
    let rec = e.record();
    if !rec.state.status.is_live() {
        return Err(ApiError::Conflict(format!(
            "Container {} is not running",
            rec.id
        )));
    }
    let rt = runtime(d);
    if let Err(err) = rt.kill(&rec.id, sig, all) {
        // It may have ended between our look and the signal.
        if e.status().is_live() {
            return Err(ApiError::Internal(format!(
                "Cannot kill container: {}: {err}",
                rec.id
            )));
        }
    }
    if rec.state.status == Status::Paused && sig == Signal::SIGKILL {
        let _ = rt.resume(&rec.id);
    }
    // As dockerd: every signal sent is a `kill` event, stop's too.
    d.events
        .container_with(&rec, "kill", [("signal", (sig as i32).to_string())]);
    Ok(())
}

/// Wait until the container is no longer live, up to `limit`.
pub async fn wait_stopped(e: &Entry, limit: Duration) -> bool {
    let mut w = e.watch();
    tokio::time::timeout(limit, w.wait_for(|p| !p.status.is_live() || p.removed))
        .await
        .is_ok()
}

/// `stop`: the stop signal, then SIGKILL after the timeout. The caller
/// holds `e.op`. Returns false when it was not running.
pub async fn stop(
    d: &Arc<Daemon>,
    e: &Arc<Entry>,
    timeout: Option<i64>,
    sig: Option<&str>,
) -> Result<bool> {
    let rec = e.record();
    if !rec.state.status.is_live() {
        return Ok(false);
    }
    d.containers.update(e, |r| r.manually_stopped = true)?;
    let sig = match sig.or(rec.config.stop_signal.as_deref()) {
        Some(s) if !s.is_empty() => parse_signal(s)?,
        _ => Signal::SIGTERM,
    };
    let timeout = timeout.or(rec.config.stop_timeout).unwrap_or(10);
    if timeout != 0 {
        let _ = signal(d, e, sig, false);
    }
    let limit = if timeout < 0 {
        Duration::MAX
    } else {
        Duration::from_secs(timeout as u64)
    };
    if !wait_stopped(e, limit).await {
        tracing::info!(id = rec.id, "did not stop in {timeout}s: SIGKILL");
    }
    if e.status().is_live() {
        let _ = signal(d, e, Signal::SIGKILL, true);
        if !wait_stopped(e, Duration::from_secs(30)).await {
            return Err(ApiError::Internal(format!(
                "container {} did not die after SIGKILL",
                rec.id
            )));
        }
    }
    Ok(true)
}

/// `rm`: refuse a live container unless `force`, which kills it; then
/// the snapshot, the files and the record go.
pub async fn remove(d: &Arc<Daemon>, e: &Arc<Entry>, force: bool, volumes: bool) -> Result<()> {
    let _op = e.op.lock().await;
    let rec = e.record();
    if rec.state.status.is_live() {
        if !force {
            return Err(ApiError::Conflict(format!(
                "cannot remove container \"/{}\": container is {}: stop the container before \
                 removing or force remove",
                rec.name,
                rec.state.status.as_str()
            )));
        }
        d.containers.update(e, |r| r.manually_stopped = true)?;
        signal(d, e, Signal::SIGKILL, true).ok();
        if !wait_stopped(e, Duration::from_secs(30)).await {
            return Err(ApiError::Internal(format!(
                "could not kill running container {}, cannot remove",
                rec.id
            )));
        }
    }
    remove_stopped(d, e, volumes).await
}

/// Remove a container that is not running, and with `volumes` its
/// anonymous volumes. The caller holds `e.op`.
pub async fn remove_stopped(d: &Arc<Daemon>, e: &Arc<Entry>, volumes: bool) -> Result<()> {
    // Restore finishes a removal it finds `Removing`, and removes an
    // exited auto-remove container anyway, so for those the state need
    // not wait for the disk.
    let set_removing = |r: &mut Record| r.state.status = Status::Removing;
    if e.record().host_config.auto_remove {
        d.containers.update_volatile(e, set_removing)?;
    } else {
        d.containers.update(e, set_removing)?;
    }
    let d2 = d.clone();
    let id = e.id.clone();
    let discarded = crate::images::blocking(move || {
        let paths = Paths::new(&d2, &id);
        unmount(&paths.rootfs());
        unmount(&paths.shm());
        crate::networks::release(&d2, &id);
        let _ = runtime(&d2).delete(&id, true);
        let mut discarded: Vec<PathBuf> = d2
            .store
            .discard_container(&id)
            .map_err(ApiError::Store)?
            .into_iter()
            .collect();
        for dir in [&paths.run, &paths.data] {
            discarded.extend(discard(dir)?);
        }
        Ok(discarded)
    })
    .await?;
    let rec = e.record();
    d.containers.remove(e)?;
    tracing::debug!(id = e.id, "removed");
    d.events.container(&rec, "destroy");
    // The files go after the record: a `wait --condition removed` (every
    // `docker run --rm`) need not wait for a few dozen unlinks.
    tokio::task::spawn_blocking(move || {
        for dir in discarded {
            if let Err(err) = std::fs::remove_dir_all(&dir) {
                tracing::warn!("removing {}: {err}", dir.display());
            }
        }
    });
    if volumes {
        for m in rec.mounts.iter().filter(|m| m.kind == "volume") {
            let anonymous = d.volumes.get(&m.name).is_ok_and(|v| v.anonymous);
            if anonymous && crate::volumes::users(d, &m.name).is_empty() {
                match d.volumes.remove(&m.name, &[]) {
                    Ok(()) => d.events.volume(&m.name, "destroy", "local"),
                    Err(err) => tracing::warn!("removing volume {}: {err}", m.name),
                }
            }
        }
    }
    Ok(())
}

/// After an exit: unmount, then what the restart policy or AutoRemove
/// asks for.
pub async fn after_exit(d: Arc<Daemon>, e: Arc<Entry>) {
    let rec = e.record();
    let paths = Paths::new(&d, &rec.id);
    unmount(&paths.rootfs());
    unmount(&paths.shm());
    let (d2, id) = (d.clone(), rec.id.clone());
    let _ = tokio::task::spawn_blocking(move || crate::networks::release(&d2, &id)).await;
    if rec.host_config.auto_remove {
        let _op = e.op.lock().await;
        if let Err(err) = remove_stopped(&d, &e, true).await {
            tracing::warn!(id = rec.id, "auto-remove: {err}");
        }
        return;
    }
    if !should_restart(&rec) {
        return;
    }
    // Docker's backoff: 100 ms doubling, reset after a run of 10 s.
    let delay = Duration::from_millis(100 << rec.restart_count.clamp(0, 8));
    let _ = d
        .containers
        .update(&e, |r| r.state.status = Status::Restarting);
    tokio::time::sleep(delay).await;
    let _op = e.op.lock().await;
    let now = e.record();
    if now.state.status != Status::Restarting || now.manually_stopped {
        return;
    }
    let _ = d.containers.update(&e, |r| r.restart_count += 1);
    let (d2, e2) = (d.clone(), e.clone());
    let r = tokio::task::spawn_blocking(move || start(&d2, &e2)).await;
    match r {
        Ok(Ok(())) => d.events.container(&e.record(), "restart"),
        Ok(Err(err)) => {
            tracing::warn!(id = rec.id, "restart: {err}");
            let _ = d.containers.update(&e, |r| r.state.status = Status::Exited);
        }
        Err(err) => tracing::warn!(id = rec.id, "restart: {err}"),
    }
}

fn should_restart(rec: &Record) -> bool {
    if rec.manually_stopped {
        return false;
    }
    let p = &rec.host_config.restart_policy;
    match p.name.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => {
            rec.state.exit_code != 0
                && (p.maximum_retry_count == 0 || rec.restart_count < p.maximum_retry_count)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ImageConfig;

    #[test]
    fn image_config_merges_under_the_container() {
        let image = ImageConfig {
            env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
            cmd: Some(vec!["sh".into()]),
            working_dir: "/w".into(),
            labels: Some([("x".to_string(), "1".to_string())].into()),
            ..Default::default()
        };
        let mut c = ContainerConfig {
            env: Some(vec!["A=2".into()]),
            ..Default::default()
        };
        merge_image_config(&mut c, &image);
        assert_eq!(c.env.unwrap(), ["PATH=/bin", "A=2"]);
        assert_eq!(c.cmd.unwrap(), ["sh"]);
        assert_eq!(c.working_dir, "/w");
        let mut c = ContainerConfig {
            entrypoint: Some(vec!["echo".into()]),
            ..Default::default()
        };
        merge_image_config(&mut c, &image);
        assert_eq!(
            c.cmd, None,
            "an entrypoint without cmd drops the image's cmd"
        );
    }

    #[test]
    fn image_healthcheck_fills_in_field_by_field() {
        use berth_api::containers::HealthConfig;
        let image = ImageConfig {
            healthcheck: Some(HealthConfig {
                test: Some(vec!["CMD".into(), "check".into()]),
                interval: 5,
                retries: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut c = ContainerConfig::default();
        merge_image_config(&mut c, &image);
        assert_eq!(c.healthcheck, image.healthcheck);
        let mut c = ContainerConfig {
            healthcheck: Some(HealthConfig {
                test: Some(vec!["CMD-SHELL".into(), "mine".into()]),
                retries: 7,
                ..Default::default()
            }),
            ..Default::default()
        };
        merge_image_config(&mut c, &image);
        let h = c.healthcheck.unwrap();
        assert_eq!(h.test.unwrap()[1], "mine");
        assert_eq!((h.interval, h.retries), (5, 7));
    }

    #[test]
    fn log_options() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("2KB"), Some(2048));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
        let mut h = HostConfig::default();
        h.log_config.config.insert("max-size".into(), "1k".into());
        h.log_config.config.insert("max-file".into(), "3".into());
        assert_eq!(log_settings(&h).unwrap(), Some((Some(1024), 3)));
        h.log_config.config.insert("bogus".into(), "1".into());
        assert!(
            log_settings(&h)
                .unwrap_err()
                .to_string()
                .contains("unknown log opt 'bogus'")
        );
        h.log_config.kind = "none".into();
        assert_eq!(log_settings(&h).unwrap(), None);
        h.log_config.kind = "syslog".into();
        assert!(log_settings(&h).is_err());
    }

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
    }

    #[test]
    fn restart_policies() {
        let mut r = Record::default();
        r.host_config.restart_policy.name = "on-failure".into();
        r.host_config.restart_policy.maximum_retry_count = 2;
        r.state.exit_code = 1;
        assert!(should_restart(&r));
        r.restart_count = 2;
        assert!(!should_restart(&r));
        r.state.exit_code = 0;
        r.restart_count = 0;
        assert!(!should_restart(&r));
        r.host_config.restart_policy.name = "always".into();
        assert!(should_restart(&r));
        r.manually_stopped = true;
        assert!(!should_restart(&r));
    }

    #[test]
    fn start_errors_map_to_docker_codes() {
        assert_eq!(
            start_error_code("exec: \"nope\": executable file not found"),
            127
        );
        assert_eq!(start_error_code("exec /x: permission denied"), 126);
    }
}
