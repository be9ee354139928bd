//! `run` and `create` flags, and how they become the body of
//! `POST /containers/create` (docker's `parse` of its container options).

use std::collections::BTreeMap;

use berth_api::EmptyObject;
use berth_api::containers::{
    BindOptions, ContainerConfig, ContainerCreateRequest, DeviceMapping, EndpointIpamConfig,
    EndpointSettings, HealthConfig, HostConfig, LogConfig, Mount, NetworkingConfig, PortBinding,
    RestartPolicy, TmpfsOptions, Ulimit, VolumeOptions,
};
use clap::Args;

use crate::error::{CliError, Result};
use crate::units::{parse_go_duration, ram_in_bytes};

#[derive(Debug, Clone, Default, Args)]
pub struct CreateOpts {
    /// Print help (`-h` is --hostname, as in docker)
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach")]
    pub attach: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long)]
    pub mount: Vec<String>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Restart policy to apply when a container exits
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Add a host device to the container
    #[arg(long)]
    pub device: Vec<String>,
    /// Ulimit options
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Add additional groups to join
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Run an init inside the container
    #[arg(long)]
    pub init: bool,
    /// PID namespace to use (host, container:<name|id>)
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC mode to use (none, private, shareable, host, container:<name|id>)
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace to use (host)
    #[arg(long)]
    pub uts: Option<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Connect a container to a network
    #[arg(long = "network", alias = "net")]
    pub network: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Mount a tmpfs directory
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Print container ID only... (docker's `-q` for the pull output)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The image
    pub image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn usage(msg: impl Into<String>) -> CliError {
    CliError::Usage(msg.into())
}

/// docker's `-e NAME` (no `=`): the local value, or nothing.
fn env_entry(e: &str) -> Option<String> {
    if e.contains('=') {
        Some(e.to_string())
    } else {
        std::env::var(e).ok().map(|v| format!("{e}={v}"))
    }
}

fn duration_ns(flag: &str, v: &Option<String>) -> Result<i64> {
    match v {
        None => Ok(0),
        Some(s) => parse_go_duration(s)
            .map(|d| d.as_nanos() as i64)
            .ok_or_else(|| {
                usage(format!(
                    "invalid argument {s:?} for \"{flag}\" flag: time: invalid duration {s:?}"
                ))
            }),
    }
}

pub(crate) fn memory(flag: &str, v: &Option<String>) -> Result<i64> {
    match v.as_deref() {
        None => Ok(0),
        Some("-1") => Ok(-1),
        Some(s) => ram_in_bytes(s).ok_or_else(|| {
            usage(format!(
                "invalid argument {s:?} for \"{flag}\" flag: invalid size: '{s}'"
            ))
        }),
    }
}

/// `-p [ip:][hostPort:]containerPort[/proto]`: (`"80/tcp"`, binding).
pub fn parse_port(spec: &str) -> Result<Vec<(String, PortBinding)>> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(usage(format!("invalid proto: {proto}")));
    }
    // An IPv6 address is bracketed: [::1]:80:80.
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, r) = r
            .split_once("]:")
            .ok_or_else(|| usage(format!("invalid IP address in {spec}")))?;
        (ip.to_string(), r.to_string())
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (String::new(), rest.to_string()),
            3 => (parts[0].to_string(), format!("{}:{}", parts[1], parts[2])),
            _ => return Err(usage(format!("invalid port format {spec}"))),
        }
    };
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(usage(format!("invalid IP address: {ip}")));
    }
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (h.to_string(), c.to_string()),
        None => (String::new(), rest.clone()),
    };
    let range = |s: &str, what: &str| -> Result<(u16, u16)> {
        let bad = || usage(format!("invalid {what}: {s}"));
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let a: u16 = a.parse().map_err(|_| bad())?;
        let b: u16 = b.parse().map_err(|_| bad())?;
        if b < a || (what == "containerPort" && a == 0) {
            return Err(bad());
        }
        Ok((a, b))
    };
    if container.is_empty() {
        return Err(usage(format!("no port specified: {spec}<empty>")));
    }
    let (c0, c1) = range(&container, "containerPort")?;
    let hr = if host.is_empty() {
        None
    } else {
        Some(range(&host, "hostPort")?)
    };
    if let Some((h0, h1)) = hr
        && h1 - h0 != c1 - c0
        && h0 != h1
    {
        return Err(usage(format!(
            "invalid ranges specified for container and host Ports: {container} and {host}"
        )));
    }
    let mut out = Vec::new();
    for (i, cp) in (c0..=c1).enumerate() {
        let host_port = match hr {
            None => String::new(),
            Some((h0, h1)) if h0 == h1 && c0 != c1 => h0.to_string(),
            Some((h0, _)) => (h0 as usize + i).to_string(),
        };
        out.push((
            format!("{cp}/{proto}"),
            PortBinding {
                host_ip: ip.clone(),
                host_port,
            },
        ));
    }
    Ok(out)
}

/// `--mount type=bind,source=/a,target=/b,readonly`.
pub fn parse_mount(spec: &str) -> Result<Mount> {
    let mut m = Mount {
        kind: "volume".into(),
        ..Mount::default()
    };
    let mut bind = BindOptions::default();
    let mut vol = VolumeOptions::default();
    let mut tmpfs = TmpfsOptions::default();
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        let truth = |v: &str| -> Result<bool> {
            match v {
                "" | "1" | "true" => Ok(true),
                "0" | "false" => Ok(false),
                other => Err(usage(format!("invalid value for {k}: {other}"))),
            }
        };
        match k.to_lowercase().as_str() {
            "type" => m.kind = v.to_string(),
            "source" | "src" => m.source = v.to_string(),
            "target" | "destination" | "dst" => m.target = v.to_string(),
            "readonly" | "ro" => m.read_only = truth(v)?,
            "consistency" => m.consistency = v.to_string(),
            "bind-propagation" => bind.propagation = Some(v.to_string()),
            "bind-nonrecursive" => bind.non_recursive = Some(truth(v)?),
            "bind-create-src" => bind.create_mountpoint = Some(truth(v)?),
            "volume-nocopy" => vol.no_copy = Some(truth(v)?),
            "volume-subpath" => vol.subpath = Some(v.to_string()),
            "volume-label" => {
                let (a, b) = v.split_once('=').unwrap_or((v, ""));
                vol.labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(a.to_string(), b.to_string());
            }
            "tmpfs-size" => {
                tmpfs.size_bytes =
                    Some(ram_in_bytes(v).ok_or_else(|| usage(format!("invalid tmpfs-size: {v}")))?)
            }
            "tmpfs-mode" => {
                tmpfs.mode = Some(
                    u32::from_str_radix(v, 8)
                        .map_err(|_| usage(format!("invalid tmpfs-mode: {v}")))?,
                )
            }
            other => {
                return Err(usage(format!(
                    "invalid field '{other}' must be a key=value pair"
                )));
            }
        }
    }
    if m.target.is_empty() {
        return Err(usage("invalid argument for --mount: target is required"));
    }
    match m.kind.as_str() {
        "bind" if bind != BindOptions::default() => m.bind_options = Some(bind),
        "volume" if vol != VolumeOptions::default() => m.volume_options = Some(vol),
        "tmpfs" if tmpfs != TmpfsOptions::default() => m.tmpfs_options = Some(tmpfs),
        "bind" | "volume" | "tmpfs" | "image" => {}
        other => return Err(usage(format!("invalid mount type {other:?}"))),
    }
    Ok(m)
}

pub(crate) fn restart_policy(s: &str) -> Result<RestartPolicy> {
    let (name, count) = s.split_once(':').unwrap_or((s, ""));
    let maximum_retry_count = if count.is_empty() {
        0
    } else {
        count.parse().map_err(|_| {
            usage(format!(
                "invalid restart policy format: maximum retry count must be an integer: {s}"
            ))
        })?
    };
    match name {
        "" | "no" | "always" | "unless-stopped" if count.is_empty() => {}
        "on-failure" => {}
        "always" | "unless-stopped" | "no" => {
            return Err(usage(format!(
                "invalid restart policy format: maximum retry count cannot be used with restart policy '{name}'"
            )));
        }
        other => {
            return Err(usage(format!(
                "invalid restart policy format: unknown policy '{other}'"
            )));
        }
    }
    Ok(RestartPolicy {
        name: name.to_string(),
        maximum_retry_count,
    })
}

fn some_vec(v: &[String]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// Which of the container's streams a run attaches to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl Streams {
    /// The query of `POST /containers/{id}/attach` for these streams.
    pub fn attach_query(self) -> String {
        let mut q = String::from("/attach?stream=1");
        for (on, name) in [
            (self.stdin, "stdin"),
            (self.stdout, "stdout"),
            (self.stderr, "stderr"),
        ] {
            if on {
                q.push_str(&format!("&{name}=1"));
            }
        }
        q
    }
}

impl CreateOpts {
    /// The streams attached, as docker's `parse` decides them: `-a` as
    /// given (stdout and stderr without it), stdin with `-i`; none with
    /// `-d`.
    pub fn streams(&self, detach: bool) -> Result<Streams> {
        let mut s = Streams {
            stdin: self.interactive,
            stdout: self.attach.is_empty(),
            stderr: self.attach.is_empty(),
        };
        for a in &self.attach {
            match a.to_lowercase().as_str() {
                "stdin" => s.stdin = true,
                "stdout" => s.stdout = true,
                "stderr" => s.stderr = true,
                _ => {
                    return Err(CliError::Usage(format!(
                        "invalid argument \"{a}\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"
                    )));
                }
            }
        }
        if detach {
            if !self.attach.is_empty() {
                return Err(CliError::Usage("Conflicting options: -a and -d".into()));
            }
            s = Streams::default();
        }
        Ok(s)
    }

    /// The create body; nothing is attached with `-d` (`detach`).
    pub fn to_request(&self, detach: bool) -> Result<ContainerCreateRequest> {
        let streams = self.streams(detach)?;
        let mut env: Vec<String> = Vec::new();
        for f in &self.env_file {
            let text = std::fs::read_to_string(f)
                .map_err(CliError::io(format!("open {}", f.display())))?;
            for line in text.lines() {
                let line = line.trim_start();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                env.extend(env_entry(line));
            }
        }
        env.extend(self.env.iter().filter_map(|e| env_entry(e)));

        let mut binds = Vec::new();
        let mut volumes = BTreeMap::new();
        for v in &self.volume {
            let parts: Vec<&str> = v.split(':').collect();
            match parts.len() {
                1 if v.starts_with('/') => {
                    volumes.insert(v.clone(), EmptyObject {});
                }
                2 | 3 => binds.push(v.clone()),
                _ => return Err(usage(format!("invalid volume specification: '{v}'"))),
            }
        }
        let mounts = self
            .mount
            .iter()
            .map(|m| parse_mount(m))
            .collect::<Result<Vec<_>>>()?;

        let mut exposed = BTreeMap::new();
        let mut bindings: BTreeMap<String, Option<Vec<PortBinding>>> = BTreeMap::new();
        for p in &self.publish {
            for (port, b) in parse_port(p)? {
                exposed.insert(port.clone(), EmptyObject {});
                bindings
                    .entry(port)
                    .or_default()
                    .get_or_insert_with(Vec::new)
                    .push(b);
            }
        }
        for e in &self.expose {
            for (port, _) in parse_port(e)? {
                exposed.insert(port, EmptyObject {});
            }
        }

        let mut labels = BTreeMap::new();
        for l in &self.label {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            labels.insert(k.to_string(), v.to_string());
        }
        let mut log_config = LogConfig {
            kind: self.log_driver.clone().unwrap_or_default(),
            config: BTreeMap::new(),
        };
        for o in &self.log_opt {
            let (k, v) = o.split_once('=').ok_or_else(|| {
                usage(format!(
                    "invalid key value pair format in logging opts: {o}"
                ))
            })?;
            log_config.config.insert(k.to_string(), v.to_string());
        }
        let mut tmpfs = BTreeMap::new();
        for t in &self.tmpfs {
            let (path, opts) = t.split_once(':').unwrap_or((t, ""));
            tmpfs.insert(path.to_string(), opts.to_string());
        }
        let devices = self
            .device
            .iter()
            .map(|d| {
                let p: Vec<&str> = d.split(':').collect();
                let perms = |s: &str| s.chars().all(|c| "rwm".contains(c)) && !s.is_empty();
                let (host, cont, perm) = match p.as_slice() {
                    [h] => (*h, *h, "rwm"),
                    [h, x] if perms(x) => (*h, *h, *x),
                    [h, c] => (*h, *c, "rwm"),
                    [h, c, x] if perms(x) => (*h, *c, *x),
                    _ => return Err(usage(format!("invalid device specification: {d}"))),
                };
                Ok(DeviceMapping {
                    path_on_host: host.to_string(),
                    path_in_container: cont.to_string(),
                    cgroup_permissions: perm.to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ulimits = self
            .ulimit
            .iter()
            .map(|u| {
                let bad = || usage(format!("invalid ulimit argument: {u}"));
                let (name, vals) = u.split_once('=').ok_or_else(bad)?;
                let (s, h) = vals.split_once(':').unwrap_or((vals, vals));
                Ok(Ulimit {
                    name: name.to_string(),
                    soft: s.parse().map_err(|_| bad())?,
                    hard: h.parse().map_err(|_| bad())?,
                })
            })
            .collect::<Result<Vec<_>>>()?;

        let healthcheck = if self.no_healthcheck {
            if self.health_cmd.is_some() {
                return Err(usage("--no-healthcheck conflicts with --health-* options"));
            }
            Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..HealthConfig::default()
            })
        } else {
            let h = HealthConfig {
                test: self
                    .health_cmd
                    .as_ref()
                    .map(|c| vec!["CMD-SHELL".to_string(), c.clone()]),
                interval: duration_ns("--health-interval", &self.health_interval)?,
                timeout: duration_ns("--health-timeout", &self.health_timeout)?,
                retries: self.health_retries.unwrap_or(0),
                start_period: duration_ns("--health-start-period", &self.health_start_period)?,
                start_interval: 0,
            };
            (h != HealthConfig::default()).then_some(h)
        };
        let entrypoint = self.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                vec![String::new()]
            } else {
                vec![e.clone()]
            }
        });
        let config = ContainerConfig {
            hostname: self.hostname.clone().unwrap_or_default(),
            user: self.user.clone().unwrap_or_default(),
            attach_stdin: streams.stdin,
            attach_stdout: streams.stdout,
            attach_stderr: streams.stderr,
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            tty: self.tty,
            open_stdin: self.interactive,
            stdin_once: self.interactive && streams.stdin,
            env: Some(env),
            cmd: some_vec(&self.command),
            healthcheck,
            image: self.image.clone(),
            volumes: (!volumes.is_empty()).then_some(volumes),
            working_dir: self.workdir.clone().unwrap_or_default(),
            entrypoint,
            labels: Some(labels),
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            ..ContainerConfig::default()
        };
        let host_config = HostConfig {
            binds: some_vec(&binds),
            log_config,
            network_mode: self
                .network
                .first()
                .cloned()
                .unwrap_or_else(|| "default".into()),
            dns: some_vec(&self.dns),
            dns_search: some_vec(&self.dns_search),
            dns_options: some_vec(&self.dns_option),
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            restart_policy: restart_policy(&self.restart)?,
            auto_remove: self.rm,
            mounts: (!mounts.is_empty()).then_some(mounts),
            cap_add: some_vec(&self.cap_add),
            cap_drop: some_vec(&self.cap_drop),
            extra_hosts: some_vec(&self.add_host),
            group_add: some_vec(&self.group_add),
            privileged: self.privileged,
            publish_all_ports: self.publish_all,
            readonly_rootfs: self.read_only,
            security_opt: some_vec(&self.security_opt),
            tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
            cpu_shares: self.cpu_shares.unwrap_or(0),
            memory: memory("--memory", &self.memory)?,
            memory_swap: memory("--memory-swap", &self.memory_swap)?,
            memory_reservation: memory("--memory-reservation", &self.memory_reservation)?,
            nano_cpus: self.cpus.map_or(0, |c| (c * 1e9).round() as i64),
            cpuset_cpus: self.cpuset_cpus.clone().unwrap_or_default(),
            devices: (!devices.is_empty()).then_some(devices),
            init: self.init.then_some(true),
            pid_mode: self.pid.clone().unwrap_or_default(),
            ipc_mode: self.ipc.clone().unwrap_or_default(),
            uts_mode: self.uts.clone().unwrap_or_default(),
            shm_size: memory("--shm-size", &self.shm_size)?,
            pids_limit: self.pids_limit,
            ulimits: (!ulimits.is_empty()).then_some(ulimits),
            ..HostConfig::default()
        };
        if self.rm && self.restart != "no" && !self.restart.is_empty() {
            return Err(usage("Conflicting options: --restart and --rm"));
        }
        Ok(ContainerCreateRequest {
            config,
            host_config: Some(host_config),
            networking_config: self.endpoints(),
        })
    }
}

impl CreateOpts {
    /// One endpoint per `--network`; `--ip` and `--network-alias` go to
    /// the first (to "default", which the daemon reads as its default
    /// network, when none is named).
    fn endpoints(&self) -> Option<NetworkingConfig> {
        let mut names = self.network.clone();
        let per_endpoint =
            self.ip.is_some() || self.ip6.is_some() || !self.network_alias.is_empty();
        if names.is_empty() {
            if !per_endpoint {
                return None;
            }
            names.push("default".into());
        }
        let mut config = BTreeMap::new();
        for (i, n) in names.into_iter().enumerate() {
            let mut s = EndpointSettings::default();
            if i == 0 {
                if self.ip.is_some() || self.ip6.is_some() {
                    s.ipam_config = Some(EndpointIpamConfig {
                        ipv4_address: self.ip.clone().unwrap_or_default(),
                        ipv6_address: self.ip6.clone().unwrap_or_default(),
                    });
                }
                s.aliases = some_vec(&self.network_alias);
            }
            config.insert(n, s);
        }
        Some(NetworkingConfig {
            endpoints_config: Some(config),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct T {
        #[command(flatten)]
        o: CreateOpts,
    }

    fn opts(args: &[&str]) -> CreateOpts {
        T::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
            .unwrap()
            .o
    }

    #[test]
    fn run_flags_become_the_create_body() {
        let o = opts(&[
            "-m", "512m", "--cpus", "1.5", "-e", "A=1", "-v", "/a:/b:ro", "--rm", "busybox",
            "echo", "-n", "hi",
        ]);
        let body = serde_json::to_value(o.to_request(false).unwrap()).unwrap();
        assert_eq!(body["Image"], "busybox");
        assert_eq!(body["Cmd"], serde_json::json!(["echo", "-n", "hi"]));
        assert_eq!(body["Env"], serde_json::json!(["A=1"]));
        assert_eq!(body["AttachStdout"], true);
        assert_eq!(body["AttachStdin"], false);
        let hc = &body["HostConfig"];
        assert_eq!(hc["Memory"], 512 * 1024 * 1024);
        assert_eq!(hc["NanoCpus"], 1_500_000_000i64);
        assert_eq!(hc["Binds"], serde_json::json!(["/a:/b:ro"]));
        assert_eq!(hc["AutoRemove"], true);
        assert_eq!(hc["RestartPolicy"]["Name"], "no");
        assert_eq!(hc["NetworkMode"], "default");
    }

    #[test]
    fn more_flags() {
        let o = opts(&[
            "-it",
            "--name",
            "c1",
            "-w",
            "/w",
            "-u",
            "1:2",
            "--entrypoint",
            "/bin/sh",
            "--restart",
            "on-failure:3",
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "ALL",
            "--read-only",
            "--security-opt",
            "no-new-privileges",
            "--device",
            "/dev/fuse",
            "--ulimit",
            "nofile=1024:2048",
            "-h",
            "box",
            "--add-host",
            "db:10.0.0.2",
            "--init",
            "--health-cmd",
            "true",
            "--health-interval",
            "5s",
            "-l",
            "a=b",
            "--log-opt",
            "max-size=1m",
            "--stop-signal",
            "SIGINT",
            "--stop-timeout",
            "3",
            "--tmpfs",
            "/run:size=64m",
            "-p",
            "127.0.0.1:8080:80/udp",
            "-v",
            "/data",
            "--pids-limit",
            "100",
            "--mount",
            "type=bind,src=/x,dst=/y,readonly",
            "busybox",
        ]);
        let r = o.to_request(false).unwrap();
        let c = &r.config;
        assert!(c.tty && c.open_stdin && c.attach_stdin && c.stdin_once);
        assert_eq!(c.working_dir, "/w");
        assert_eq!(c.user, "1:2");
        assert_eq!(c.entrypoint, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(c.hostname, "box");
        assert_eq!(c.healthcheck.as_ref().unwrap().interval, 5_000_000_000);
        assert_eq!(c.labels.as_ref().unwrap()["a"], "b");
        assert_eq!(c.stop_timeout, Some(3));
        assert!(c.volumes.as_ref().unwrap().contains_key("/data"));
        assert!(c.exposed_ports.as_ref().unwrap().contains_key("80/udp"));
        let h = r.host_config.unwrap();
        assert_eq!(h.restart_policy.maximum_retry_count, 3);
        assert_eq!(h.devices.unwrap()[0].path_in_container, "/dev/fuse");
        assert_eq!(h.ulimits.unwrap()[0].hard, 2048);
        assert_eq!(h.init, Some(true));
        assert_eq!(h.tmpfs.unwrap()["/run"], "size=64m");
        let b = &h.port_bindings.unwrap()["80/udp"].clone().unwrap()[0];
        assert_eq!(
            (b.host_ip.as_str(), b.host_port.as_str()),
            ("127.0.0.1", "8080")
        );
        assert_eq!(h.pids_limit, Some(100));
        let m = &h.mounts.unwrap()[0];
        assert_eq!(
            (
                m.kind.as_str(),
                m.source.as_str(),
                m.target.as_str(),
                m.read_only
            ),
            ("bind", "/x", "/y", true)
        );
        assert_eq!(h.log_config.config["max-size"], "1m");
        // -d attaches nothing.
        let d = opts(&["-i", "busybox"]).to_request(true).unwrap();
        assert!(!d.config.attach_stdout && !d.config.attach_stdin && d.config.open_stdin);
        // -a picks the streams (stdin also with -i), as docker's parse.
        let a = opts(&["-a", "STDOUT", "-i", "busybox"])
            .to_request(false)
            .unwrap();
        let c = &a.config;
        assert!(c.attach_stdout && !c.attach_stderr && c.attach_stdin && c.stdin_once);
        assert_eq!(
            opts(&["-a", "stderr", "busybox"])
                .streams(false)
                .unwrap()
                .attach_query(),
            "/attach?stream=1&stderr=1"
        );
        assert!(opts(&["-a", "stdout", "busybox"]).streams(true).is_err());
        assert!(opts(&["-a", "tty", "busybox"]).streams(false).is_err());
    }

    #[test]
    fn port_specs_and_their_errors() {
        let p = parse_port("8080:80").unwrap();
        assert_eq!(p[0].0, "80/tcp");
        assert_eq!(p[0].1.host_port, "8080");
        assert_eq!(parse_port("80").unwrap()[0].1.host_port, "");
        let r = parse_port("9000-9001:80-81/tcp").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[1].0.as_str(), r[1].1.host_port.as_str()),
            ("81/tcp", "9001")
        );
        assert_eq!(parse_port("[::1]:53:53/udp").unwrap()[0].1.host_ip, "::1");
        let err = |s: &str| parse_port(s).unwrap_err().to_string();
        assert_eq!(err("abc"), "invalid containerPort: abc");
        assert_eq!(err("80/xyz"), "invalid proto: xyz");
        assert_eq!(err("x:80"), "invalid hostPort: x");
        assert_eq!(err("1.2.3:80:80"), "invalid IP address: 1.2.3");
        assert_eq!(err("1:2:3:4"), "invalid port format 1:2:3:4");
        assert!(err("9000-9002:80-81").starts_with("invalid ranges"));
        assert!(
            opts(&["--restart", "sometimes", "busybox"])
                .to_request(false)
                .is_err()
        );
        assert!(
            opts(&["--rm", "--restart", "always", "busybox"])
                .to_request(false)
                .is_err()
        );
        assert!(opts(&["-m", "lots", "busybox"]).to_request(false).is_err());
    }
}
