//! netd's errors: one line each, naming the network, address, port or path
//! involved, so the Engine API can hand them to the user as they are.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::ipam::Ipv4Net;
use crate::ports::Proto;

pub type Result<T, E = NetdError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum NetdError {
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    #[error("network with name {0} already exists")]
    NetworkExists(String),
    #[error("invalid network name {0:?}")]
    BadName(String),
    #[error("invalid subnet {value:?}: {reason}")]
    BadSubnet { value: String, reason: String },
    #[error("invalid address {value:?}: {reason}")]
    BadAddress { value: String, reason: String },
    #[error("subnet {subnet} overlaps subnet {other} of network {network}")]
    SubnetOverlap {
        subnet: Ipv4Net,
        other: Ipv4Net,
        network: String,
    },
    #[error("subnet {subnet} overlaps the host's route to {route}")]
    RouteOverlap { subnet: Ipv4Net, route: Ipv4Net },
    #[error("gateway {gateway} is outside subnet {subnet}")]
    GatewayOutside { gateway: Ipv4Addr, subnet: Ipv4Net },
    #[error("gateway {gateway} is not a usable host address of subnet {subnet}")]
    GatewayReserved { gateway: Ipv4Addr, subnet: Ipv4Net },
    #[error("ip range {range} is outside subnet {subnet}")]
    RangeOutside { range: Ipv4Net, subnet: Ipv4Net },
    #[error("address {ip} is outside the range {range} of network {network}")]
    AddressOutside {
        ip: Ipv4Addr,
        range: Ipv4Net,
        network: String,
    },
    #[error("user specified IP address is supported on user defined networks only (not {network})")]
    StaticIpOnDefault { network: String },
    #[error("address {ip} is already in use on network {network}")]
    AddressInUse { ip: Ipv4Addr, network: String },
    #[error("no free address left on network {0}")]
    PoolExhausted(String),
    #[error("no free subnet left in the default address pools")]
    NoFreeSubnet,
    #[error("network {network} has active endpoints ({containers})")]
    NetworkInUse { network: String, containers: String },
    #[error("{0} is a pre-defined network and cannot be removed")]
    Predefined(String),
    #[error("network {0} has no subnet, a static address needs one")]
    NoSubnet(String),
    #[error("invalid port specification {spec:?}: {reason}")]
    BadPort { spec: String, reason: String },
    #[error("bind for {ip}:{port}/{proto} failed: port is already allocated")]
    PortInUse {
        ip: Ipv4Addr,
        port: u16,
        proto: Proto,
    },
    #[error("no free host port in {low}-{high} for {proto}")]
    NoFreePort { low: u16, high: u16, proto: Proto },
    #[error("invalid option {key}={value:?}: {reason}")]
    BadOption {
        key: String,
        value: String,
        reason: String,
    },
    #[error("driver {0:?} is not supported (bridge, macvlan, host, null)")]
    UnknownDriver(String),
    #[error("{driver} network {network} cannot have endpoints")]
    NoEndpoints { driver: String, network: String },
    #[error("container {container} is already connected to network {network}")]
    AlreadyConnected { container: String, network: String },
    #[error("container {container} is not connected to network {network}")]
    NotConnected { container: String, network: String },
    #[error("container {0} has no network sandbox")]
    NoSandbox(String),
    #[error("interface {0} not found")]
    NoSuchLink(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("network namespace {path}: {op}: {source}")]
    Namespace {
        op: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("netlink: {op}: {source}")]
    Netlink {
        op: String,
        source: rtnetlink::Error,
    },
    #[error("nftables: {0}")]
    Firewall(String),
    #[error("state file {path}: {source}")]
    State {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl NetdError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| NetdError::Io { op, path, source }
    }

    /// Whether the error is the user's (bad input, conflicts), as opposed
    /// to the host failing; the daemon maps the first kind to 4xx.
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            NetdError::Io { .. }
                | NetdError::Namespace { .. }
                | NetdError::Netlink { .. }
                | NetdError::Firewall(_)
                | NetdError::State { .. }
        )
    }

    /// Whether the error names something missing (404 in the API).
    pub fn is_not_found(&self) -> bool {
        matches!(self, NetdError::NoSuchNetwork(_))
    }

    /// Whether the error is a conflict with existing state (409 in the API).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            NetdError::NetworkExists(_)
                | NetdError::NetworkInUse { .. }
                | NetdError::AlreadyConnected { .. }
                | NetdError::AddressInUse { .. }
                | NetdError::PortInUse { .. }
                | NetdError::SubnetOverlap { .. }
                | NetdError::RouteOverlap { .. }
        )
    }
}
