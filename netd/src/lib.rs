//! berth's networking: IPAM, network drivers (bridge, macvlan, host,
//! none), the nftables firewall with published ports, the embedded DNS
//! server, and container sandboxes (network namespaces kept as files).
//!
//! [`Netd`] is the face the daemon uses. Every operation runs on one
//! worker thread that stays in the network namespace `Netd::open` was
//! called from: netlink sockets, nft, sysctls and port probes all act on
//! the calling thread's namespace, so pinning them to one thread keeps a
//! caller on another thread from ever touching the wrong namespace, and
//! serialises the operations.

pub mod dns;
pub mod driver;
pub mod error;
pub mod etc;
pub mod firewall;
pub mod ipam;
pub mod netlink;
pub mod ports;
pub mod sandbox;
pub mod state;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

pub use error::{NetdError, Result};
pub use ipam::Ipv4Net;
pub use ports::{PortMapping, PortRequest, Proto};
pub use state::{DriverKind, Endpoint, Network};

use driver::{driver, short};
use firewall::{BridgeRules, FirewallDriver, Forward, Ruleset};
use netlink::Nl;
use state::State;

/// The alias berth puts on the bridges it creates.
pub const LINK_ALIAS: &str = "berth";

#[derive(Clone, Debug)]
pub struct Config {
    /// Where netd.json lives.
    pub state_dir: PathBuf,
    /// Where sandbox files are made.
    pub netns_dir: PathBuf,
    /// The bridge of the default `bridge` network; `None`: no default
    /// bridge network at all.
    pub default_bridge: Option<String>,
    /// The host's resolv.conf, for the embedded DNS server's upstreams.
    pub resolv_conf: PathBuf,
    pub pools: Vec<ipam::Pool>,
    pub mtu: u32,
    /// Set up nftables rules (off: no NAT, no published ports).
    pub firewall: bool,
}

impl Config {
    pub fn new(state_dir: impl Into<PathBuf>, netns_dir: impl Into<PathBuf>) -> Config {
        Config {
            state_dir: state_dir.into(),
            netns_dir: netns_dir.into(),
            default_bridge: Some("berth0".into()),
            resolv_conf: "/etc/resolv.conf".into(),
            pools: ipam::default_pools(),
            mtu: 1500,
            firewall: true,
        }
    }
}

/// A network to create, as `POST /networks/create` gives it.
#[derive(Clone, Debug, Default)]
pub struct NetworkRequest {
    pub name: String,
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    pub internal: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// A container's attachment to a network.
#[derive(Clone, Debug, Default)]
pub struct EndpointRequest {
    pub network: String,
    /// The container's name, which other containers resolve.
    pub name: String,
    pub aliases: Vec<String>,
    pub ip: Option<Ipv4Addr>,
    pub ports: Vec<PortRequest>,
}

type Job = Box<dyn FnOnce(&mut Inner) + Send>;

pub struct Netd {
    tx: Option<mpsc::Sender<Job>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

struct Inner {
    cfg: Config,
    state: State,
    nl: Nl,
    fw: Box<dyn FirewallDriver>,
    dns: HashMap<String, dns::DnsServer>,
}

fn random_id() -> String {
    (0..4)
        .map(|_| format!("{:016x}", ports::random_u64()))
        .collect()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl Netd {
    /// Load netd's state and start its worker in the calling thread's
    /// network namespace. Nothing in the kernel changes until
    /// [`Netd::restore`].
    pub fn open(cfg: Config) -> Result<Netd> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let worker = std::thread::Builder::new()
            .name("netd".into())
            .spawn(move || {
                let inner = (|| {
                    std::fs::create_dir_all(&cfg.state_dir)
                        .map_err(NetdError::io("creating", &cfg.state_dir))?;
                    let state = State::load(&cfg.state_dir.join("netd.json"))?;
                    let fw: Box<dyn FirewallDriver> = if cfg.firewall {
                        Box::new(firewall::Nftables)
                    } else {
                        Box::new(firewall::NoFirewall)
                    };
                    Ok(Inner {
                        nl: Nl::open()?,
                        cfg,
                        state,
                        fw,
                        dns: HashMap::new(),
                    })
                })();
                let mut inner = match inner {
                    Ok(i) => {
                        let _ = ready_tx.send(Ok(()));
                        i
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                for job in rx {
                    job(&mut inner);
                }
            })
            .map_err(NetdError::io("spawning", "netd worker"))?;
        ready_rx.recv().expect("netd worker starts")?;
        Ok(Netd {
            tx: Some(tx),
            worker: Some(worker),
        })
    }

    fn call<T: Send + 'static>(&self, f: impl FnOnce(&mut Inner) -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::sync_channel(1);
        self.tx
            .as_ref()
            .expect("netd open")
            .send(Box::new(move |inner| {
                let _ = tx.send(f(inner));
            }))
            .expect("netd worker alive");
        rx.recv().expect("netd worker answers")
    }

    /// Bring the kernel in line with the state after a start or a crash:
    /// the predefined networks exist, every network's host side is there,
    /// the endpoints and sandboxes of containers not in `live` are torn
    /// down, links berth made that no network or endpoint owns are
    /// deleted, and the firewall and DNS servers match the state.
    pub fn restore(&self, live: &[String]) -> Result<()> {
        let live: HashSet<String> = live.iter().cloned().collect();
        self.call(move |i| i.restore(&live))
    }

    pub fn create_network(&self, req: NetworkRequest) -> Result<Network> {
        self.call(move |i| i.create_network(req, false))
    }

    /// Remove a network without endpoints.
    pub fn remove_network(&self, key: &str) -> Result<Network> {
        let key = key.to_string();
        self.call(move |i| i.remove_network(&key))
    }

    pub fn network(&self, key: &str) -> Result<(Network, Vec<Endpoint>)> {
        let key = key.to_string();
        self.call(move |i| {
            let n = i.state.network(&key)?.clone();
            let eps = i.state.endpoints_of(&n.id).cloned().collect();
            Ok((n, eps))
        })
    }

    pub fn networks(&self) -> Vec<Network> {
        self.call(|i| i.state.networks.clone())
    }

    /// Make the container's sandbox (idempotent) and return its file.
    pub fn create_sandbox(&self, container: &str) -> Result<PathBuf> {
        let c = container.to_string();
        self.call(move |i| i.create_sandbox(&c))
    }

    pub fn sandbox(&self, container: &str) -> Option<PathBuf> {
        let c = container.to_string();
        self.call(move |i| i.state.sandboxes.get(&c).cloned())
    }

    pub fn connect(&self, container: &str, req: EndpointRequest) -> Result<Endpoint> {
        let c = container.to_string();
        self.call(move |i| i.connect(&c, req))
    }

    pub fn disconnect(&self, container: &str, network: &str) -> Result<()> {
        let (c, n) = (container.to_string(), network.to_string());
        self.call(move |i| i.disconnect(&c, &n))
    }

    /// Tear down all of a container's endpoints and its sandbox.
    pub fn release(&self, container: &str) -> Result<()> {
        let c = container.to_string();
        self.call(move |i| i.release(&c))
    }

    /// A container's endpoints with their networks, in attach order.
    pub fn endpoints(&self, container: &str) -> Vec<(Network, Endpoint)> {
        let c = container.to_string();
        self.call(move |i| {
            i.state
                .endpoints
                .iter()
                .filter(|e| e.container == c)
                .filter_map(|e| Some((i.state.network(&e.network).ok()?.clone(), e.clone())))
                .collect()
        })
    }

    /// The embedded DNS server a container should use: the one of its
    /// first network that has one.
    pub fn dns_server(&self, container: &str) -> Option<Ipv4Addr> {
        self.endpoints(container)
            .into_iter()
            .find(|(n, _)| n.dns)
            .and_then(|(n, _)| n.gateway)
    }

    /// Remove everything netd made: sandboxes, endpoints, links of
    /// non-default and default networks, the firewall table. The state
    /// keeps only the network definitions' absence.
    pub fn cleanup(&self) -> Result<()> {
        self.call(|i| i.cleanup())
    }
}

impl std::fmt::Debug for Netd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Netd")
    }
}

impl Drop for Netd {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Inner {
    fn save(&self) -> Result<()> {
        self.state.save(&self.cfg.state_dir.join("netd.json"))
    }

    fn ruleset(&self) -> Ruleset {
        let mut r = Ruleset::default();
        for n in &self.state.networks {
            if let (DriverKind::Bridge, Some(subnet), Some(br)) = (n.driver, n.subnet, &n.interface)
            {
                r.bridges.push(BridgeRules {
                    bridge: br.clone(),
                    subnet,
                    internal: n.internal,
                    masquerade: n.masquerade,
                });
            }
        }
        for e in &self.state.endpoints {
            for p in &e.ports {
                r.forwards.push(Forward {
                    mapping: *p,
                    container_ip: e.ip,
                });
            }
        }
        r
    }

    fn apply_firewall(&self) -> Result<()> {
        self.fw.apply(&self.ruleset())
    }

    fn records(&self, net: &str) -> dns::Records {
        let mut r = dns::Records::new();
        for e in self.state.endpoints_of(net) {
            let short_id = &e.container[..12.min(e.container.len())];
            let names = std::iter::once(e.name.as_str())
                .chain(e.aliases.iter().map(String::as_str))
                .chain(std::iter::once(short_id));
            for n in names.filter(|n| !n.is_empty()) {
                r.entry(n.to_ascii_lowercase()).or_default().push(e.ip);
            }
        }
        r
    }

    /// Every DNS server's names: a container's endpoint on one network
    /// resolves the names of all its networks, so one container joining
    /// or leaving changes what the servers of its other networks answer.
    fn refresh_dns(&self, _changed: &str) {
        let all: HashMap<&str, dns::Records> = self
            .dns
            .keys()
            .map(|n| (n.as_str(), self.records(n)))
            .collect();
        for (net, server) in &self.dns {
            let mut per_client = HashMap::new();
            for e in self.state.endpoints_of(net) {
                let others: Vec<&dns::Records> = self
                    .state
                    .endpoints
                    .iter()
                    .filter(|o| o.container == e.container && o.network != *net)
                    .filter_map(|o| all.get(o.network.as_str()))
                    .collect();
                if others.is_empty() {
                    continue;
                }
                let mut view = all[net.as_str()].clone();
                for r in others {
                    for (name, ips) in r {
                        view.entry(name.clone()).or_default().extend(ips);
                    }
                }
                per_client.insert(e.ip, view);
            }
            server.set_views(all[net.as_str()].clone(), per_client);
        }
    }

    fn start_dns(&mut self, net: &Network) -> Result<()> {
        let (true, Some(gw)) = (net.dns, net.gateway) else {
            return Ok(());
        };
        if self.dns.contains_key(&net.id) {
            return Ok(());
        }
        let conf = std::fs::read_to_string(&self.cfg.resolv_conf).unwrap_or_default();
        let server = dns::DnsServer::start(gw, 53, dns::upstreams(&conf))?;
        self.dns.insert(net.id.clone(), server);
        self.refresh_dns(&net.id);
        Ok(())
    }

    /// The host's routes that are not berth's own bridges'.
    fn host_routes(&self) -> Result<Vec<Ipv4Net>> {
        let ours: HashSet<u32> = self
            .state
            .networks
            .iter()
            .filter(|n| n.driver == DriverKind::Bridge)
            .filter_map(|n| n.interface.as_deref())
            .filter_map(|b| self.nl.link(b).ok().flatten())
            .map(|l| l.index)
            .collect();
        Ok(self
            .nl
            .routes()?
            .into_iter()
            .filter(|r| r.dest.prefix() > 0 && !r.oif.is_some_and(|o| ours.contains(&o)))
            .map(|r| r.dest)
            .collect())
    }

    fn ensure_predefined(&mut self) -> Result<()> {
        for (name, driver) in [("host", DriverKind::Host), ("none", DriverKind::Null)] {
            if self.state.networks.iter().all(|n| n.name != name) {
                self.state.networks.push(Network {
                    id: random_id(),
                    name: name.into(),
                    driver,
                    created: now(),
                    subnet: None,
                    gateway: None,
                    ip_range: None,
                    internal: false,
                    masquerade: false,
                    interface: None,
                    mtu: self.cfg.mtu,
                    dns: false,
                    options: BTreeMap::new(),
                    labels: BTreeMap::new(),
                });
            }
        }
        if let Some(bridge) = self.cfg.default_bridge.clone()
            && self.state.networks.iter().all(|n| n.name != "bridge")
        {
            let options = BTreeMap::from([
                (
                    "com.docker.network.bridge.default_bridge".into(),
                    "true".into(),
                ),
                ("com.docker.network.bridge.enable_icc".into(), "true".into()),
                (
                    "com.docker.network.bridge.enable_ip_masquerade".into(),
                    "true".into(),
                ),
                (
                    "com.docker.network.bridge.host_binding_ipv4".into(),
                    "0.0.0.0".into(),
                ),
                ("com.docker.network.bridge.name".into(), bridge),
                (
                    "com.docker.network.driver.mtu".into(),
                    self.cfg.mtu.to_string(),
                ),
            ]);
            self.create_network(
                NetworkRequest {
                    name: "bridge".into(),
                    driver: "bridge".into(),
                    options,
                    ..Default::default()
                },
                true,
            )?;
        }
        Ok(())
    }

    fn restore(&mut self, live: &HashSet<String>) -> Result<()> {
        self.ensure_predefined()?;
        for n in self.state.networks.clone() {
            if let Err(e) = driver(n.driver).create(&self.nl, &n) {
                tracing::warn!("restoring network {}: {e}", n.name);
            }
        }
        let dead: Vec<String> = self
            .state
            .endpoints
            .iter()
            .map(|e| e.container.clone())
            .chain(self.state.sandboxes.keys().cloned())
            .filter(|c| !live.contains(c))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for c in dead {
            tracing::info!("releasing the network of gone container {c}");
            self.release_quiet(&c, true);
        }
        // Sandbox files nobody knows of (a crash between making and
        // recording one).
        let known: HashSet<PathBuf> = self.state.sandboxes.values().cloned().collect();
        if let Ok(dir) = std::fs::read_dir(&self.cfg.netns_dir) {
            for f in dir.flatten() {
                if !known.contains(&f.path()) {
                    tracing::info!("removing stray sandbox {}", f.path().display());
                    let _ = sandbox::remove(&f.path());
                }
            }
        }
        self.remove_stray_links()?;
        self.apply_firewall()?;
        for n in self.state.networks.clone() {
            if let Err(e) = self.start_dns(&n) {
                tracing::warn!("dns server of network {}: {e}", n.name);
            }
        }
        self.save()
    }

    /// Delete bridges marked as berth's that no network owns, and veths on
    /// berth's bridges that no endpoint owns.
    fn remove_stray_links(&self) -> Result<()> {
        let links = self.nl.links()?;
        let bridges: HashSet<&str> = self
            .state
            .networks
            .iter()
            .filter(|n| n.driver == DriverKind::Bridge)
            .filter_map(|n| n.interface.as_deref())
            .collect();
        let veths: HashSet<&str> = self
            .state
            .endpoints
            .iter()
            .filter_map(|e| e.host_ifname.as_deref())
            .collect();
        let ours: HashSet<u32> = links
            .iter()
            .filter(|l| {
                l.kind.as_deref() == Some("bridge") && l.alias.as_deref() == Some(LINK_ALIAS)
            })
            .map(|l| l.index)
            .collect();
        for l in &links {
            let stray_bridge = ours.contains(&l.index) && !bridges.contains(l.name.as_str());
            let stray_veth = l.master.is_some_and(|m| ours.contains(&m))
                && l.kind.as_deref() == Some("veth")
                && !veths.contains(l.name.as_str());
            if stray_bridge || stray_veth {
                tracing::info!("removing stray link {}", l.name);
                if let Err(e) = self.nl.del_link(l.index)
                    && netlink::errno(&e) != Some(libc::ENODEV)
                {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn create_network(&mut self, req: NetworkRequest, predefined: bool) -> Result<Network> {
        if !valid_name(&req.name) {
            return Err(NetdError::BadName(req.name));
        }
        if self.state.networks.iter().any(|n| n.name == req.name) {
            return Err(NetdError::NetworkExists(req.name));
        }
        let kind = DriverKind::parse(&req.driver)?;
        if matches!(kind, DriverKind::Host | DriverKind::Null) {
            return Err(NetdError::BadOption {
                key: "driver".into(),
                value: req.driver,
                reason: "only one instance of the host and null networks is allowed".into(),
            });
        }
        let opt_bool = |key: &str, default: bool| -> Result<bool> {
            match req.options.get(key).map(String::as_str) {
                None => Ok(default),
                Some("true") => Ok(true),
                Some("false") => Ok(false),
                Some(v) => Err(NetdError::BadOption {
                    key: key.into(),
                    value: v.into(),
                    reason: "not true or false".into(),
                }),
            }
        };
        let masquerade = opt_bool("com.docker.network.bridge.enable_ip_masquerade", true)?;
        let mtu = match req.options.get("com.docker.network.driver.mtu") {
            None => self.cfg.mtu,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| NetdError::BadOption {
                    key: "com.docker.network.driver.mtu".into(),
                    value: v.clone(),
                    reason: "not an MTU (68-65535)".into(),
                })?,
        };
        let subnet = req
            .subnet
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(Ipv4Net::parse)
            .transpose()?;
        let gateway = req
            .gateway
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(ipam::parse_addr)
            .transpose()?;
        let ip_range = req
            .ip_range
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(Ipv4Net::parse)
            .transpose()?;
        if subnet.is_none() && (gateway.is_some() || ip_range.is_some()) {
            return Err(NetdError::BadSubnet {
                value: String::new(),
                reason: "a gateway or ip range needs a subnet".into(),
            });
        }
        let others: Vec<(Ipv4Net, &str)> = self
            .state
            .networks
            .iter()
            .filter_map(|n| Some((n.subnet?, n.name.as_str())))
            .collect();
        let routes = if kind == DriverKind::Bridge {
            self.host_routes()?
        } else {
            // A macvlan network shares its parent's LAN, routes and all.
            Vec::new()
        };
        let subnet = match subnet {
            Some(s) => {
                if let Some((o, name)) = others.iter().find(|(o, _)| o.overlaps(&s)) {
                    return Err(NetdError::SubnetOverlap {
                        subnet: s,
                        other: *o,
                        network: name.to_string(),
                    });
                }
                if let Some(r) = routes.iter().find(|r| r.overlaps(&s)) {
                    return Err(NetdError::RouteOverlap {
                        subnet: s,
                        route: *r,
                    });
                }
                s
            }
            None => {
                let used: Vec<Ipv4Net> = others.iter().map(|(o, _)| *o).chain(routes).collect();
                ipam::free_subnet(&self.cfg.pools, &used).ok_or(NetdError::NoFreeSubnet)?
            }
        };
        ipam::validate(&subnet, gateway, ip_range.as_ref())?;
        let gateway = gateway.unwrap_or_else(|| subnet.first_host());
        let id = random_id();
        let interface = match kind {
            DriverKind::Bridge => Some(
                req.options
                    .get("com.docker.network.bridge.name")
                    .cloned()
                    .unwrap_or_else(|| format!("br-{}", &id[..12])),
            ),
            _ => req.options.get("parent").cloned(),
        };
        if let Some(i) = &interface
            && kind == DriverKind::Bridge
            && self
                .state
                .networks
                .iter()
                .any(|n| n.interface.as_deref() == Some(i))
        {
            return Err(NetdError::BadOption {
                key: "com.docker.network.bridge.name".into(),
                value: i.clone(),
                reason: "another network uses that bridge".into(),
            });
        }
        let net = Network {
            id,
            name: req.name,
            driver: kind,
            created: now(),
            subnet: Some(subnet),
            gateway: Some(gateway),
            ip_range,
            internal: req.internal,
            masquerade,
            interface,
            mtu,
            dns: kind == DriverKind::Bridge && !predefined,
            options: req.options,
            labels: req.labels,
        };
        let d = driver(kind);
        d.validate(&self.nl, &net)?;
        d.create(&self.nl, &net)?;
        self.state.networks.push(net.clone());
        let done = self
            .apply_firewall()
            .and_then(|_| self.start_dns(&net))
            .and_then(|_| self.save());
        if let Err(e) = done {
            self.state.networks.retain(|n| n.id != net.id);
            self.dns.remove(&net.id);
            let _ = d.remove(&self.nl, &net);
            let _ = self.apply_firewall();
            return Err(e);
        }
        tracing::info!("created network {} ({subnet})", net.name);
        Ok(net)
    }

    fn remove_network(&mut self, key: &str) -> Result<Network> {
        let net = self.state.network(key)?.clone();
        if net.predefined() {
            return Err(NetdError::Predefined(net.name));
        }
        let users: Vec<&str> = self
            .state
            .endpoints_of(&net.id)
            .map(|e| {
                if e.name.is_empty() {
                    e.container.as_str()
                } else {
                    e.name.as_str()
                }
            })
            .collect();
        if !users.is_empty() {
            return Err(NetdError::NetworkInUse {
                network: net.name.clone(),
                containers: users.join(", "),
            });
        }
        self.dns.remove(&net.id);
        driver(net.driver).remove(&self.nl, &net)?;
        self.state.networks.retain(|n| n.id != net.id);
        self.apply_firewall()?;
        self.save()?;
        Ok(net)
    }

    fn create_sandbox(&mut self, container: &str) -> Result<PathBuf> {
        if let Some(p) = self.state.sandboxes.get(container)
            && sandbox::is_netns(p)
        {
            return Ok(p.clone());
        }
        let path = self.cfg.netns_dir.join(container);
        sandbox::create(&path)?;
        self.state
            .sandboxes
            .insert(container.to_string(), path.clone());
        if let Err(e) = self.save() {
            self.state.sandboxes.remove(container);
            let _ = sandbox::remove(&path);
            return Err(e);
        }
        Ok(path)
    }

    fn connect(&mut self, container: &str, req: EndpointRequest) -> Result<Endpoint> {
        let sandbox = self
            .state
            .sandboxes
            .get(container)
            .cloned()
            .ok_or_else(|| NetdError::NoSandbox(container.to_string()))?;
        let net = self.state.network(&req.network)?.clone();
        let d = driver(net.driver);
        let (Some(subnet), true) = (
            net.subnet,
            matches!(net.driver, DriverKind::Bridge | DriverKind::Macvlan),
        ) else {
            return Err(NetdError::NoEndpoints {
                driver: net.driver.as_str().into(),
                network: net.name,
            });
        };
        if self
            .state
            .endpoints
            .iter()
            .any(|e| e.container == container && e.network == net.id)
        {
            return Err(NetdError::AlreadyConnected {
                container: container.into(),
                network: net.name,
            });
        }
        let taken: HashSet<Ipv4Addr> = self
            .state
            .endpoints_of(&net.id)
            .map(|e| e.ip)
            .chain(net.gateway)
            .collect();
        let ip = match req.ip {
            Some(ip) => {
                let range = net.ip_range.unwrap_or(subnet);
                if !range.contains(ip) || !subnet.is_host(ip) {
                    return Err(NetdError::AddressOutside {
                        ip,
                        range,
                        network: net.name,
                    });
                }
                if taken.contains(&ip) {
                    return Err(NetdError::AddressInUse {
                        ip,
                        network: net.name,
                    });
                }
                ip
            }
            None => ipam::free_address(&subnet, net.ip_range.as_ref(), &taken)
                .ok_or_else(|| NetdError::PoolExhausted(net.name.clone()))?,
        };
        if !req.ports.is_empty() && net.driver != DriverKind::Bridge {
            return Err(NetdError::BadPort {
                spec: format!("{:?}", req.ports.first().map(|p| p.container_port)),
                reason: format!(
                    "ports are published on bridge networks only, {} is {}",
                    net.name,
                    net.driver.as_str()
                ),
            });
        }
        let mut taken_ports: Vec<PortMapping> = self
            .state
            .endpoints
            .iter()
            .flat_map(|e| e.ports.iter().copied())
            .collect();
        let mut ports = Vec::new();
        for p in &req.ports {
            let m = ports::pick(p, &taken_ports)?;
            taken_ports.push(m);
            ports.push(m);
        }
        let id = random_id();
        let n = self
            .state
            .endpoints
            .iter()
            .filter(|e| e.container == container)
            .count();
        let ep = Endpoint {
            host_ifname: (net.driver == DriverKind::Bridge).then(|| format!("veth{}", short(&id))),
            id,
            container: container.into(),
            network: net.id.clone(),
            name: req.name,
            aliases: req.aliases,
            ip,
            prefix: subnet.prefix(),
            gateway: net.gateway,
            mac: driver::mac_string(driver::mac_for(ip)),
            ifname: format!("eth{n}"),
            ports,
            static_ip: req.ip.is_some(),
        };
        d.setup(&self.nl, &net, &ep, &sandbox)?;
        self.state.endpoints.push(ep.clone());
        let done = if ep.ports.is_empty() {
            Ok(())
        } else {
            self.apply_firewall()
        }
        .and_then(|_| self.save());
        if let Err(e) = done {
            self.state.endpoints.retain(|x| x.id != ep.id);
            let _ = d.teardown(&self.nl, &net, &ep, Some(&sandbox));
            let _ = self.apply_firewall();
            return Err(e);
        }
        self.refresh_dns(&net.id);
        Ok(ep)
    }

    fn disconnect(&mut self, container: &str, network: &str) -> Result<()> {
        let net = self.state.network(network)?.clone();
        let Some(ep) = self
            .state
            .endpoints
            .iter()
            .find(|e| e.container == container && e.network == net.id)
            .cloned()
        else {
            return Err(NetdError::NotConnected {
                container: container.into(),
                network: net.name,
            });
        };
        let sandbox = self.state.sandboxes.get(container).cloned();
        driver(net.driver).teardown(&self.nl, &net, &ep, sandbox.as_deref())?;
        self.state.endpoints.retain(|e| e.id != ep.id);
        if !ep.ports.is_empty() {
            self.apply_firewall()?;
        }
        self.refresh_dns(&net.id);
        self.save()
    }

    /// Tear down a container's endpoints and sandbox, logging what fails:
    /// whatever is left is retried by the next restore.
    fn release_quiet(&mut self, container: &str, wait: bool) -> bool {
        let sandbox = self.state.sandboxes.get(container).cloned();
        let eps: Vec<Endpoint> = self
            .state
            .endpoints
            .iter()
            .filter(|e| e.container == container)
            .cloned()
            .collect();
        let mut ports = false;
        let mut veths = Vec::new();
        for ep in &eps {
            ports |= !ep.ports.is_empty();
            let Ok(net) = self.state.network(&ep.network).cloned() else {
                continue;
            };
            if net.driver == DriverKind::Bridge
                && let Some(host) = &ep.host_ifname
            {
                veths.push(host.clone());
                continue;
            }
            if let Err(e) = driver(net.driver).teardown(&self.nl, &net, ep, sandbox.as_deref()) {
                tracing::warn!("tearing down endpoint {} of {container}: {e}", ep.ifname);
            }
        }
        // Deleting a veth waits out the kernel's RCU grace periods (tens of
        // ms), and `run --rm` waits for a container's release: unless the
        // caller waits (restore, cleanup), the veths go on a thread of their
        // own. It starts in this thread's namespace (a new
        // thread inherits it); the endpoints are gone from the state now,
        // so a veth this misses is a stray the next restore deletes.
        if wait {
            delete_links(&veths);
        } else if !veths.is_empty() {
            let spawned = std::thread::Builder::new()
                .name("veth-teardown".into())
                .spawn(move || delete_links(&veths));
            if let Err(e) = spawned {
                tracing::warn!("tearing down the veths of {container}: {e}");
            }
        }
        self.state.endpoints.retain(|e| e.container != container);
        for ep in &eps {
            self.refresh_dns(&ep.network);
        }
        if let Some(p) = &sandbox {
            if let Err(e) = sandbox::remove(p) {
                tracing::warn!("removing sandbox of {container}: {e}");
            }
            self.state.sandboxes.remove(container);
        }
        ports
    }

    fn release(&mut self, container: &str) -> Result<()> {
        // A container with no network of netd's (none, host, container:,
        // or released already) changes nothing, and an fsync of the state
        // would cost every `run --rm` a disk flush.
        if !self.state.sandboxes.contains_key(container)
            && !self
                .state
                .endpoints
                .iter()
                .any(|e| e.container == container)
        {
            return Ok(());
        }
        if self.release_quiet(container, false) {
            self.apply_firewall()?;
        }
        self.save()
    }

    fn cleanup(&mut self) -> Result<()> {
        let containers: HashSet<String> = self
            .state
            .endpoints
            .iter()
            .map(|e| e.container.clone())
            .chain(self.state.sandboxes.keys().cloned())
            .collect();
        for c in containers {
            self.release_quiet(&c, true);
        }
        self.dns.clear();
        for n in std::mem::take(&mut self.state.networks) {
            driver(n.driver).remove(&self.nl, &n)?;
        }
        self.fw.clear()?;
        self.save()
    }
}

/// The path of a sandbox file for `container` under `dir`.
/// Delete host-side links by name (each takes its veth peer with it);
/// one already gone is no error.
fn delete_links(names: &[String]) {
    let nl = match Nl::open() {
        Ok(nl) => nl,
        Err(e) => {
            tracing::warn!("deleting {names:?}: {e}");
            return;
        }
    };
    for name in names {
        let deleted = nl.link(name).and_then(|l| match l {
            Some(l) => match nl.del_link(l.index) {
                Err(e) if netlink::errno(&e) == Some(libc::ENODEV) => Ok(()),
                r => r,
            },
            None => Ok(()),
        });
        if let Err(e) = deleted {
            tracing::warn!("deleting {name}: {e}");
        }
    }
}

pub fn sandbox_path(dir: &Path, container: &str) -> PathBuf {
    dir.join(container)
}
