//! Networks: the `/networks/*` routes over netd, and the hooks the
//! container lifecycle calls — attach at start (sandbox, endpoints,
//! published ports, /etc/hosts and resolv.conf), release at exit and
//! removal, NetworkSettings for inspect.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_api::containers::{
    ContainerSummary, EndpointSettings, NetworkSettings, Port, PortBinding,
};
use berth_api::networks::{
    Ipam, IpamConfig, Network as ApiNetwork, NetworkConnectRequest, NetworkContainer,
    NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest, NetworkPruneResponse,
};
use berth_netd::{EndpointRequest, Netd, NetdError, Network, NetworkRequest, PortRequest, Proto};

use crate::containers::record::Record;
use crate::error::{ApiError, Result};
use crate::images::blocking;
use crate::server::Daemon;

/// netd for this daemon: state under `<data-root>/network`, sandboxes
/// under `<exec-root>/netns`.
pub fn open(config: &crate::Config) -> std::result::Result<Netd, NetdError> {
    let mut cfg = berth_netd::Config::new(
        config.data_root.join("network"),
        config.exec_root.join("netns"),
    );
    cfg.default_bridge = config.bridge.clone();
    Netd::open(cfg)
}

pub fn api_err(e: NetdError) -> ApiError {
    if e.is_not_found() {
        ApiError::NotFound(e.to_string())
    } else if e.is_conflict() {
        ApiError::Conflict(e.to_string())
    } else if e.is_user_error() {
        ApiError::InvalidParameter(e.to_string())
    } else {
        ApiError::Internal(e.to_string())
    }
}

/// The network mode a container gets when it names none.
pub fn default_mode(d: &Daemon) -> &'static str {
    if d.config.bridge.is_some() {
        "bridge"
    } else {
        "none"
    }
}

/// Whether a network mode is one netd attaches (not host, none,
/// container:).
pub fn is_netd_mode(mode: &str) -> bool {
    !matches!(mode, "host" | "none" | "") && !mode.starts_with("container:")
}

fn to_api(d: &Daemon, n: &Network, eps: &[berth_netd::Endpoint]) -> ApiNetwork {
    let containers = eps
        .iter()
        .map(|e| {
            let name = d
                .containers
                .get(&e.container)
                .map(|c| c.record().name)
                .unwrap_or_else(|_| e.name.clone());
            (
                e.container.clone(),
                NetworkContainer {
                    name,
                    endpoint_id: e.id.clone(),
                    mac_address: e.mac.clone(),
                    ipv4_address: format!("{}/{}", e.ip, e.prefix),
                    ipv6_address: String::new(),
                },
            )
        })
        .collect();
    let config = n.subnet.map(|s| {
        vec![IpamConfig {
            subnet: s.to_string(),
            ip_range: n.ip_range.map(|r| r.to_string()).unwrap_or_default(),
            gateway: n.gateway.map(|g| g.to_string()).unwrap_or_default(),
            auxiliary_addresses: None,
        }]
    });
    ApiNetwork {
        name: n.name.clone(),
        id: n.id.clone(),
        created: n.created.clone(),
        scope: "local".into(),
        driver: n.driver.as_str().into(),
        enable_ipv4: true,
        enable_ipv6: false,
        ipam: Ipam {
            driver: "default".into(),
            config: Some(config.unwrap_or_default()),
            options: Some(BTreeMap::new()),
        },
        internal: n.internal,
        containers,
        options: n.options.clone(),
        labels: n.labels.clone(),
        ..Default::default()
    }
}

type Q = axum::extract::Query<std::collections::HashMap<String, String>>;

/// dockerd's network filters: `name` (a substring), `id` (a prefix),
/// `driver`, `scope`, `type` (`builtin`/`custom`), `label`, `dangling`
/// (custom networks without containers).
fn check_network_filters(f: &crate::filters::Filters) -> Result<()> {
    f.allow(&["name", "id", "driver", "scope", "type", "label", "dangling"])?;
    for t in f.get("type") {
        if t != "builtin" && t != "custom" {
            return Err(ApiError::InvalidParameter(format!(
                "invalid filter: 'type'='{t}'"
            )));
        }
    }
    f.bool("dangling")?;
    Ok(())
}

fn network_matches(f: &crate::filters::Filters, n: &Network, in_use: bool) -> bool {
    let any = |key: &str, m: &dyn Fn(&str) -> bool| {
        let want = f.get(key);
        want.is_empty() || want.iter().any(|v| m(v))
    };
    let dangling = f.bool("dangling").ok().flatten();
    any("name", &|v| n.name.contains(v))
        && any("id", &|v| n.id.starts_with(v))
        && any("driver", &|v| v == n.driver.as_str())
        && any("scope", &|v| v == "local")
        && any("type", &|v| (v == "builtin") == n.predefined())
        && f.labels_match(&n.labels)
        && dangling.is_none_or(|want| want == (!n.predefined() && !in_use))
}

pub async fn get_list(State(d): State<Arc<Daemon>>, q: Q) -> Result<Json<Vec<ApiNetwork>>> {
    let filters = crate::filters::Filters::parse(q.0.get("filters").map(String::as_str))?;
    check_network_filters(&filters)?;
    let d2 = d.clone();
    let nets = blocking(move || {
        let mut out = Vec::new();
        for n in d2.net.networks() {
            let (n, eps) = d2.net.network(&n.id).map_err(api_err)?;
            if network_matches(&filters, &n, !eps.is_empty()) {
                out.push(to_api(&d2, &n, &eps));
            }
        }
        Ok(out)
    })
    .await?;
    Ok(Json(nets))
}

pub async fn get_inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<ApiNetwork>> {
    let d2 = d.clone();
    blocking(move || {
        let (n, eps) = d2.net.network(&id).map_err(api_err)?;
        Ok(Json(to_api(&d2, &n, &eps)))
    })
    .await
}

pub async fn post_create(
    State(d): State<Arc<Daemon>>,
    Json(req): Json<NetworkCreateRequest>,
) -> Result<Response> {
    if req.name.is_empty() {
        return Err(ApiError::InvalidParameter("network name is empty".into()));
    }
    if req.enable_ipv6 == Some(true) {
        return Err(ApiError::InvalidParameter(format!(
            "network {}: IPv6 networks are not supported by berthd",
            req.name
        )));
    }
    let ipam = req.ipam.unwrap_or_default();
    if !matches!(ipam.driver.as_str(), "" | "default") {
        return Err(ApiError::InvalidParameter(format!(
            "network {}: IPAM driver {:?} is not supported by berthd (only \"default\")",
            req.name, ipam.driver
        )));
    }
    let configs = ipam.config.unwrap_or_default();
    if configs.len() > 1 {
        return Err(ApiError::InvalidParameter(
            "only one IPv4 subnet per network is supported".into(),
        ));
    }
    let c = configs.into_iter().next().unwrap_or_default();
    let nreq = NetworkRequest {
        name: req.name,
        driver: req.driver,
        subnet: Some(c.subnet),
        gateway: Some(c.gateway),
        ip_range: Some(c.ip_range),
        internal: req.internal,
        options: req.options.unwrap_or_default(),
        labels: req.labels.unwrap_or_default(),
    };
    let d2 = d.clone();
    let n = blocking(move || d2.net.create_network(nreq).map_err(api_err)).await?;
    d.events.network(
        &n.id,
        "create",
        [
            ("name", n.name.clone()),
            ("type", n.driver.as_str().to_string()),
        ],
    );
    Ok((
        StatusCode::CREATED,
        Json(NetworkCreateResponse {
            id: n.id,
            warning: String::new(),
        }),
    )
        .into_response())
}

pub async fn delete(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Result<Response> {
    let d2 = d.clone();
    let n = blocking(move || d2.net.remove_network(&id).map_err(api_err)).await?;
    d.events
        .network(&n.id, "destroy", [("name", n.name.clone())]);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn post_prune(State(d): State<Arc<Daemon>>, q: Q) -> Result<Json<NetworkPruneResponse>> {
    let filters = crate::filters::Filters::parse(q.0.get("filters").map(String::as_str))?;
    filters.allow(&["label"])?;
    let d2 = d.clone();
    let deleted = blocking(move || {
        let mut deleted = Vec::new();
        for n in d2.net.networks() {
            if n.predefined() || !filters.labels_match(&n.labels) {
                continue;
            }
            let used_by_container = d2.containers.all().iter().any(|c| {
                c.record()
                    .networks
                    .keys()
                    .any(|k| *k == n.name || *k == n.id)
            });
            if !used_by_container && d2.net.remove_network(&n.id).is_ok() {
                deleted.push(n.name);
            }
        }
        Ok(deleted)
    })
    .await?;
    Ok(Json(NetworkPruneResponse {
        networks_deleted: deleted,
    }))
}

pub async fn post_connect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Json(req): Json<NetworkConnectRequest>,
) -> Result<Response> {
    let e = d.containers.get(&req.container)?;
    let _op = e.op.lock().await;
    let d2 = d.clone();
    let (net, _) = blocking(move || d2.net.network(&id).map_err(api_err)).await?;
    let rec = e.record();
    if !is_netd_mode(&rec.host_config.network_mode) {
        return Err(ApiError::InvalidParameter(format!(
            "container sharing network namespace with another container or host cannot be connected to any other network (mode {})",
            rec.host_config.network_mode
        )));
    }
    if rec.networks.contains_key(&net.name) {
        return Err(ApiError::Conflict(format!(
            "endpoint with name {} already exists in network {}",
            rec.name, net.name
        )));
    }
    let settings = req.endpoint_config.unwrap_or_default();
    if rec.state.status.is_live() {
        let (d2, id2, name2, s2) = (
            d.clone(),
            rec.id.clone(),
            net.name.clone(),
            settings.clone(),
        );
        let name = rec.name.clone();
        let rec2 = rec.clone();
        blocking(move || {
            d2.net
                .connect(&id2, endpoint_request(&name2, &name, &s2, Vec::new())?)
                .map_err(api_err)?;
            refresh_etc(&d2, &rec2);
            Ok(())
        })
        .await?;
    }
    d.containers.update(&e, |r| {
        r.networks.insert(net.name.clone(), settings);
    })?;
    d.events.network(
        &net.id,
        "connect",
        [("container", rec.id.clone()), ("name", net.name.clone())],
    );
    Ok(StatusCode::OK.into_response())
}

pub async fn post_disconnect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Json(req): Json<NetworkDisconnectRequest>,
) -> Result<Response> {
    let e = d.containers.get(&req.container)?;
    let _op = e.op.lock().await;
    let d2 = d.clone();
    let (net, _) = blocking(move || d2.net.network(&id).map_err(api_err)).await?;
    let rec = e.record();
    if !rec.networks.contains_key(&net.name) && !rec.networks.contains_key(&net.id) {
        return Err(ApiError::Conflict(format!(
            "container {} is not connected to network {}",
            rec.id, net.name
        )));
    }
    if rec.state.status.is_live() {
        let (d2, id2, n2) = (d.clone(), rec.id.clone(), net.id.clone());
        let rec2 = rec.clone();
        blocking(move || {
            d2.net.disconnect(&id2, &n2).map_err(api_err)?;
            refresh_etc(&d2, &rec2);
            Ok(())
        })
        .await?;
    }
    d.containers.update(&e, |r| {
        r.networks.remove(&net.name);
        r.networks.remove(&net.id);
    })?;
    d.events.network(
        &net.id,
        "disconnect",
        [("container", rec.id.clone()), ("name", net.name.clone())],
    );
    Ok(StatusCode::OK.into_response())
}

fn endpoint_request(
    network: &str,
    container_name: &str,
    s: &EndpointSettings,
    ports: Vec<PortRequest>,
) -> Result<EndpointRequest> {
    let ip = match s.ipam_config.as_ref().map(|c| c.ipv4_address.as_str()) {
        None | Some("") => None,
        Some(ip) => Some(
            ip.parse::<Ipv4Addr>()
                .map_err(|_| ApiError::InvalidParameter(format!("invalid IPv4 address: {ip}")))?,
        ),
    };
    Ok(EndpointRequest {
        network: network.to_string(),
        name: container_name.to_string(),
        aliases: s.aliases.clone().unwrap_or_default(),
        ip,
        ports,
    })
}

/// The ports to publish: HostConfig.PortBindings, and with
/// PublishAllPorts every exposed port not bound already.
fn port_requests(rec: &Record) -> Result<Vec<PortRequest>> {
    let parse_key = |k: &str| -> Result<(u16, Proto)> {
        let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        let port = p.parse::<u16>().map_err(|_| {
            ApiError::InvalidParameter(format!("invalid port specification: {k:?}"))
        })?;
        let proto = proto.parse::<Proto>().map_err(|e| {
            ApiError::InvalidParameter(format!("invalid port specification {k:?}: {e}"))
        })?;
        Ok((port, proto))
    };
    let mut out = Vec::new();
    let bindings = rec.host_config.port_bindings.clone().unwrap_or_default();
    for (k, list) in &bindings {
        let (container_port, proto) = parse_key(k)?;
        let list = list.clone().unwrap_or_default();
        let list = if list.is_empty() {
            vec![PortBinding::default()]
        } else {
            list
        };
        for b in list {
            let host_ip = match b.host_ip.as_str() {
                "" => None,
                ip => Some(ip.parse::<Ipv4Addr>().map_err(|_| {
                    ApiError::InvalidParameter(format!("invalid host address {ip:?} for port {k}"))
                })?)
                .filter(|ip| !ip.is_unspecified()),
            };
            let host_ports = match b.host_port.as_str() {
                "" | "0" => None,
                p => {
                    let bad = || {
                        ApiError::InvalidParameter(format!("invalid host port {p:?} for port {k}"))
                    };
                    let (lo, hi) = p.split_once('-').unwrap_or((p, p));
                    Some((
                        lo.parse().map_err(|_| bad())?,
                        hi.parse().map_err(|_| bad())?,
                    ))
                }
            };
            out.push(PortRequest {
                container_port,
                proto,
                host_ip,
                host_ports,
            });
        }
    }
    if rec.host_config.publish_all_ports {
        for k in rec.config.exposed_ports.iter().flatten().map(|(k, _)| k) {
            if bindings.contains_key(k) {
                continue;
            }
            let (container_port, proto) = parse_key(k)?;
            out.push(PortRequest {
                container_port,
                proto,
                host_ip: None,
                host_ports: None,
            });
        }
    }
    Ok(out)
}

/// How a started container joins the network.
pub enum Attached {
    Host,
    /// A fresh namespace the runtime makes (`none`).
    New,
    /// A sandbox file (netd's, or another container's for `container:`).
    Path(PathBuf),
}

/// Write a container's /etc/hosts and /etc/resolv.conf: its `addresses`
/// under its hostname, `--add-host`s, and as nameserver the embedded DNS
/// server (if it is on a network with one) or `--dns` / the host's.
fn write_etc(
    rec: &Record,
    hosts: &std::path::Path,
    resolv: &std::path::Path,
    addresses: &[Ipv4Addr],
    embedded: Option<Ipv4Addr>,
    host_network: bool,
) -> Result<()> {
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let h = &rec.host_config;
    let extra: Vec<String> = h.extra_hosts.clone().unwrap_or_default();
    let host_file = host_network.then(|| std::fs::read_to_string("/etc/hosts").unwrap_or_default());
    let hosts_body = berth_netd::etc::hosts(&berth_netd::etc::HostsInput {
        hostname: &rec.config.hostname,
        domainname: &rec.config.domainname,
        addresses,
        extra_hosts: &extra,
        host_file: host_file.as_deref(),
    });
    let resolv_body = berth_netd::etc::resolv_conf(&berth_netd::etc::ResolvInput {
        host: &host_resolv,
        dns: &h.dns.clone().unwrap_or_default(),
        search: &h.dns_search.clone().unwrap_or_default(),
        options: &h.dns_options.clone().unwrap_or_default(),
        embedded,
        host_network,
    });
    for (p, body) in [(hosts, hosts_body), (resolv, resolv_body)] {
        std::fs::write(p, body)
            .map_err(|e| ApiError::Internal(format!("writing {}: {e}", p.display())))?;
    }
    Ok(())
}

/// After connect or disconnect on a running container: its /etc files
/// follow its endpoints, as dockerd rewrites them (so a container started
/// on the default bridge resolves names once on a user-defined network).
pub fn refresh_etc(d: &Daemon, rec: &Record) {
    let addresses: Vec<Ipv4Addr> = d.net.endpoints(&rec.id).iter().map(|(_, e)| e.ip).collect();
    let (hosts, resolv) = (
        std::path::Path::new(&rec.hosts_path),
        std::path::Path::new(&rec.resolv_conf_path),
    );
    if let Err(e) = write_etc(
        rec,
        hosts,
        resolv,
        &addresses,
        d.net.dns_server(&rec.id),
        false,
    ) {
        tracing::warn!(id = rec.id, "rewriting /etc files: {e}");
    }
}

/// Set up the container's networking before its start: its sandbox, one
/// endpoint per network (ports on the first), and its /etc/hosts and
/// /etc/resolv.conf. On error nothing is left attached.
pub fn attach(
    d: &Daemon,
    rec: &Record,
    hosts: &std::path::Path,
    resolv: &std::path::Path,
) -> Result<Attached> {
    let mode = rec.host_config.network_mode.as_str();
    let write = |addresses: &[Ipv4Addr], embedded: Option<Ipv4Addr>, host_network: bool| {
        write_etc(rec, hosts, resolv, addresses, embedded, host_network)
    };
    if mode == "host" {
        write(&[], None, true)?;
        return Ok(Attached::Host);
    }
    if mode == "none" {
        write(&[], None, false)?;
        return Ok(Attached::New);
    }
    if let Some(other) = mode.strip_prefix("container:") {
        let o = d.containers.get(other)?;
        let orec = o.record();
        if !orec.state.status.is_live() {
            return Err(ApiError::Conflict(format!(
                "cannot join network namespace of a non running container: container {} is {}",
                orec.id,
                orec.state.status.as_str()
            )));
        }
        let ns = match d.net.sandbox(&orec.id) {
            Some(p) => p,
            None => PathBuf::from(format!("/proc/{}/ns/net", orec.state.pid)),
        };
        for (from, to) in [(&orec.hosts_path, hosts), (&orec.resolv_conf_path, resolv)] {
            if let Ok(b) = std::fs::read(from) {
                let _ = std::fs::write(to, b);
            }
        }
        return Ok(Attached::Path(ns));
    }
    let sandbox = d.net.create_sandbox(&rec.id).map_err(api_err)?;
    let attached = (|| {
        let mut ports = port_requests(rec)?;
        let mut addresses = Vec::new();
        let networks: Vec<(String, EndpointSettings)> = if rec.networks.is_empty() {
            vec![(mode.to_string(), EndpointSettings::default())]
        } else {
            rec.networks
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        for (name, s) in &networks {
            let req = endpoint_request(name, &rec.name, s, std::mem::take(&mut ports))?;
            let ep = d.net.connect(&rec.id, req).map_err(api_err)?;
            addresses.push(ep.ip);
        }
        write(&addresses, d.net.dns_server(&rec.id), false)
    })();
    if let Err(e) = attached {
        release(d, &rec.id);
        return Err(e);
    }
    Ok(Attached::Path(sandbox))
}

/// Tear down a container's networking (idempotent).
pub fn release(d: &Daemon, id: &str) {
    if let Err(e) = d.net.release(id) {
        tracing::warn!(id, "releasing the network: {e}");
    }
}

/// The Ports and Networks of a `GET /containers/json` item: what inspect
/// reports, flattened (an exposed port without a binding has no address).
pub fn summarize(d: &Daemon, rec: &Record, out: &mut ContainerSummary) {
    let mut ns = NetworkSettings::default();
    settings(d, rec, &mut ns);
    for (key, bindings) in &ns.ports {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let Ok(private_port) = port.parse::<u16>() else {
            continue;
        };
        match bindings.as_deref() {
            Some(list) if !list.is_empty() => {
                for b in list {
                    out.ports.push(Port {
                        ip: if b.host_ip.is_empty() {
                            "0.0.0.0".into()
                        } else {
                            b.host_ip.clone()
                        },
                        private_port,
                        public_port: b.host_port.parse().ok(),
                        kind: proto.into(),
                    });
                }
            }
            _ => out.ports.push(Port {
                private_port,
                kind: proto.into(),
                ..Default::default()
            }),
        }
    }
    out.network_settings.networks = ns.networks;
}

/// NetworkSettings as Docker fills them.
pub fn settings(d: &Daemon, rec: &Record, out: &mut NetworkSettings) {
    let eps = d.net.endpoints(&rec.id);
    for (k, s) in &rec.networks {
        out.networks
            .entry(k.clone())
            .or_insert_with(|| EndpointSettings {
                aliases: s.aliases.clone(),
                ipam_config: s.ipam_config.clone(),
                ..Default::default()
            });
    }
    if let Some(p) = d.net.sandbox(&rec.id) {
        out.sandbox_key = p.display().to_string();
        out.sandbox_id = rec.id.clone();
    }
    let mut ports: BTreeMap<String, Option<Vec<PortBinding>>> = rec
        .config
        .exposed_ports
        .iter()
        .flatten()
        .map(|(k, _)| (k.clone(), None))
        .collect();
    for (n, e) in &eps {
        let short = &rec.id[..12.min(rec.id.len())];
        let mut dns_names = vec![rec.name.clone(), short.to_string()];
        dns_names.extend(e.aliases.iter().cloned());
        let s = EndpointSettings {
            ipam_config: rec
                .networks
                .get(&n.name)
                .and_then(|s| s.ipam_config.clone()),
            aliases: Some(e.aliases.clone()).filter(|a| !a.is_empty()),
            mac_address: e.mac.clone(),
            network_id: n.id.clone(),
            endpoint_id: e.id.clone(),
            gateway: e.gateway.map(|g| g.to_string()).unwrap_or_default(),
            ip_address: e.ip.to_string(),
            ip_prefix_len: e.prefix.into(),
            dns_names: n.dns.then_some(dns_names),
            ..Default::default()
        };
        if n.name == "bridge" {
            out.ip_address = s.ip_address.clone();
            out.gateway = s.gateway.clone();
            out.mac_address = s.mac_address.clone();
            out.ip_prefix_len = s.ip_prefix_len;
            out.endpoint_id = s.endpoint_id.clone();
        }
        out.networks.insert(n.name.clone(), s);
        for p in &e.ports {
            ports
                .entry(format!("{}/{}", p.container_port, p.proto))
                .or_insert(None)
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: p.host_ip.to_string(),
                    host_port: p.host_port.to_string(),
                });
        }
    }
    out.ports = ports;
}
