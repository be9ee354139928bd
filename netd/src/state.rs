//! netd's persistent state: networks, endpoints (which are also the IPAM
//! allocations and the published ports) and sandboxes, in one JSON file
//! written atomically (temp file, fsync, rename) after every change.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{NetdError, Result};
use crate::ipam::Ipv4Net;
use crate::ports::PortMapping;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    Bridge,
    Macvlan,
    Host,
    Null,
}

impl DriverKind {
    pub fn parse(s: &str) -> Result<DriverKind> {
        match s {
            "" | "bridge" => Ok(DriverKind::Bridge),
            "macvlan" => Ok(DriverKind::Macvlan),
            "host" => Ok(DriverKind::Host),
            "null" => Ok(DriverKind::Null),
            other => Err(NetdError::UnknownDriver(other.to_string())),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            DriverKind::Bridge => "bridge",
            DriverKind::Macvlan => "macvlan",
            DriverKind::Host => "host",
            DriverKind::Null => "null",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub driver: DriverKind,
    /// RFC 3339 creation time.
    pub created: String,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
    pub internal: bool,
    /// Masquerade outbound traffic (bridge networks, not internal).
    pub masquerade: bool,
    /// The bridge (bridge driver) or parent interface (macvlan).
    pub interface: Option<String>,
    pub mtu: u32,
    /// Whether the embedded DNS server serves this network (user-defined
    /// bridge networks, as in Docker).
    pub dns: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

impl Network {
    /// The predefined networks (`bridge`, `host`, `none`) cannot be removed.
    pub fn predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }

    /// Whether `ip` may be asked for with `--ip`: checked at create, as
    /// dockerd does, so a container that could never start is not made.
    pub fn check_static_ip(&self, ip: std::net::Ipv4Addr) -> crate::Result<()> {
        let Some(subnet) = self.subnet.filter(|_| !self.predefined()) else {
            return Err(crate::NetdError::StaticIpOnDefault {
                network: self.name.clone(),
            });
        };
        let range = self.ip_range.unwrap_or(subnet);
        if !range.contains(ip) || !subnet.is_host(ip) {
            return Err(crate::NetdError::AddressOutside {
                ip,
                range,
                network: self.name.clone(),
            });
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub container: String,
    pub network: String,
    /// The container's name and `--network-alias`es, for DNS.
    pub name: String,
    pub aliases: Vec<String>,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac: String,
    /// The interface in the sandbox (eth0, eth1, …).
    pub ifname: String,
    /// The host end of the veth pair (bridge driver).
    pub host_ifname: Option<String>,
    pub ports: Vec<PortMapping>,
    /// Whether the static address was asked for (`--ip`).
    pub static_ip: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub networks: Vec<Network>,
    pub endpoints: Vec<Endpoint>,
    /// Container id → its sandbox file.
    pub sandboxes: BTreeMap<String, PathBuf>,
}

impl State {
    pub fn load(path: &Path) -> Result<State> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| NetdError::State {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(NetdError::io("reading", path)(e)),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec_pretty(self).expect("state serializes");
        let mut f = std::fs::File::create(&tmp).map_err(NetdError::io("creating", &tmp))?;
        f.write_all(&body).map_err(NetdError::io("writing", &tmp))?;
        f.sync_all().map_err(NetdError::io("syncing", &tmp))?;
        std::fs::rename(&tmp, path).map_err(NetdError::io("renaming", path))
    }

    /// A network by full id, unique id prefix, or name (Docker's order:
    /// full id, then name, then prefix).
    pub fn network(&self, key: &str) -> Result<&Network> {
        if let Some(n) = self.networks.iter().find(|n| n.id == key) {
            return Ok(n);
        }
        if let Some(n) = self.networks.iter().find(|n| n.name == key) {
            return Ok(n);
        }
        let mut by_prefix = self.networks.iter().filter(|n| n.id.starts_with(key));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(n), None) if !key.is_empty() => Ok(n),
            _ => Err(NetdError::NoSuchNetwork(key.to_string())),
        }
    }

    pub fn endpoints_of(&self, network: &str) -> impl Iterator<Item = &Endpoint> {
        let network = network.to_string();
        self.endpoints.iter().filter(move |e| e.network == network)
    }
}
