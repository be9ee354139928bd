//! Network drivers behind one trait: how a network's host side is made
//! and how an endpoint is plugged into a sandbox.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::error::{NetdError, Result};
use crate::netlink::Nl;
use crate::state::{DriverKind, Endpoint, Network};

mod bridge;
mod macvlan;

pub use bridge::Bridge;
pub use macvlan::Macvlan;

pub trait NetworkDriver {
    /// Check a network's configuration before anything is made.
    fn validate(&self, nl: &Nl, net: &Network) -> Result<()>;
    /// Make the network's host side (idempotent: also used to restore).
    fn create(&self, nl: &Nl, net: &Network) -> Result<()>;
    /// Remove the network's host side.
    fn remove(&self, nl: &Nl, net: &Network) -> Result<()>;
    /// Plug `ep` into the sandbox at `sandbox`. On error nothing of it is
    /// left behind.
    fn setup(&self, nl: &Nl, net: &Network, ep: &Endpoint, sandbox: &Path) -> Result<()>;
    /// Unplug `ep`; `sandbox` is gone already when `None`.
    fn teardown(&self, nl: &Nl, net: &Network, ep: &Endpoint, sandbox: Option<&Path>)
    -> Result<()>;
}

/// The drivers without endpoints: `host` and `null` networks stand for
/// the host's namespace and for a sandbox with only loopback, which the
/// daemon arranges itself.
pub struct NoEndpoints;

impl NetworkDriver for NoEndpoints {
    fn validate(&self, _: &Nl, net: &Network) -> Result<()> {
        if net.subnet.is_some() {
            return Err(NetdError::BadOption {
                key: "subnet".into(),
                value: net.subnet.map(|s| s.to_string()).unwrap_or_default(),
                reason: format!("{} networks have no addresses", net.driver.as_str()),
            });
        }
        Ok(())
    }
    fn create(&self, _: &Nl, _: &Network) -> Result<()> {
        Ok(())
    }
    fn remove(&self, _: &Nl, _: &Network) -> Result<()> {
        Ok(())
    }
    fn setup(&self, _: &Nl, net: &Network, _: &Endpoint, _: &Path) -> Result<()> {
        Err(NetdError::NoEndpoints {
            driver: net.driver.as_str().into(),
            network: net.name.clone(),
        })
    }
    fn teardown(&self, _: &Nl, _: &Network, _: &Endpoint, _: Option<&Path>) -> Result<()> {
        Ok(())
    }
}

/// The driver of a network kind.
pub fn driver(kind: DriverKind) -> &'static dyn NetworkDriver {
    match kind {
        DriverKind::Bridge => &Bridge,
        DriverKind::Macvlan => &Macvlan,
        DriverKind::Host | DriverKind::Null => &NoEndpoints,
    }
}

/// Docker's MAC for an address: 02:42 and the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Inside the sandbox: give the freshly moved link its name, MAC and
/// address, bring it up and route through the gateway.
pub(crate) fn configure_in_sandbox(
    sandbox: &Path,
    tmp_name: &str,
    ep: &Endpoint,
    default_route: bool,
) -> Result<()> {
    let nl = Nl::open_in(sandbox)?;
    let idx = nl.index(tmp_name)?;
    nl.rename(idx, &ep.ifname, Some(mac_for(ep.ip)))?;
    nl.add_addr(idx, ep.ip, ep.prefix)?;
    nl.set_up(idx)?;
    if default_route
        && let Some(gw) = ep.gateway
        && !nl
            .routes()?
            .iter()
            .any(|r| r.dest.prefix() == 0 && r.oif.is_some())
    {
        nl.add_default_route(gw)?;
    }
    Ok(())
}

/// A short stable suffix for link names from an endpoint id.
pub(crate) fn short(id: &str) -> &str {
    &id[..7.min(id.len())]
}
