//! The bridge driver: a Linux bridge per network (`berth0` for the default
//! network, `br-<id12>` for user-defined ones) holding the gateway
//! address, and a veth pair per endpoint whose peer becomes the
//! container's ethN.

use std::path::Path;

use super::{NetworkDriver, configure_in_sandbox, short};
use crate::error::{NetdError, Result};
use crate::netlink::{Nl, errno};
use crate::state::{Endpoint, Network};

pub struct Bridge;

fn name(net: &Network) -> &str {
    net.interface
        .as_deref()
        .expect("bridge network has a bridge name")
}

fn sysctl(path: &str, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(NetdError::io("writing", path))
}

impl NetworkDriver for Bridge {
    fn validate(&self, nl: &Nl, net: &Network) -> Result<()> {
        let br = name(net);
        if br.is_empty() || br.len() > 15 || br.contains(['/', ' ']) {
            return Err(NetdError::BadOption {
                key: "com.docker.network.bridge.name".into(),
                value: br.into(),
                reason: "not a valid interface name (1-15 characters)".into(),
            });
        }
        if let Some(l) = nl.link(br)?
            && l.kind.as_deref() != Some("bridge")
        {
            return Err(NetdError::BadOption {
                key: "com.docker.network.bridge.name".into(),
                value: br.into(),
                reason: "an interface of that name exists and is no bridge".into(),
            });
        }
        Ok(())
    }

    fn create(&self, nl: &Nl, net: &Network) -> Result<()> {
        let br = name(net);
        let link = match nl.link(br)? {
            Some(l) => l,
            None => {
                nl.add_bridge(br, net.mtu, crate::LINK_ALIAS)?;
                nl.link(br)?
                    .ok_or_else(|| NetdError::NoSuchLink(br.into()))?
            }
        };
        let made = (|| {
            if let (Some(subnet), Some(gw)) = (net.subnet, net.gateway) {
                nl.add_addr(link.index, gw, subnet.prefix())?;
            }
            nl.set_up(link.index)?;
            // Published ports reached from the host at 127.0.0.1 leave
            // through the bridge with a loopback source.
            sysctl(&format!("/proc/sys/net/ipv4/conf/{br}/route_localnet"), "1")?;
            if !net.internal {
                sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
            }
            Ok(())
        })();
        if made.is_err() {
            let _ = nl.del_link(link.index);
        }
        made
    }

    fn remove(&self, nl: &Nl, net: &Network) -> Result<()> {
        if let Some(l) = nl.link(name(net))? {
            nl.del_link(l.index)?;
        }
        Ok(())
    }

    fn setup(&self, nl: &Nl, net: &Network, ep: &Endpoint, sandbox: &Path) -> Result<()> {
        let host = ep
            .host_ifname
            .as_deref()
            .expect("bridge endpoint has a veth");
        let peer = format!("vp{}", short(&ep.id));
        let br = nl.index(name(net))?;
        nl.add_veth(host, &peer, net.mtu)?;
        let made = (|| {
            let h = nl.index(host)?;
            nl.set_master(h, br)?;
            nl.set_up(h)?;
            nl.set_netns(nl.index(&peer)?, sandbox)?;
            configure_in_sandbox(sandbox, &peer, ep, !net.internal)
        })();
        if made.is_err()
            && let Ok(Some(l)) = nl.link(host)
        {
            // Deleting one end of a veth pair deletes both.
            let _ = nl.del_link(l.index);
        }
        made
    }

    fn teardown(&self, nl: &Nl, _: &Network, ep: &Endpoint, _: Option<&Path>) -> Result<()> {
        let Some(host) = ep.host_ifname.as_deref() else {
            return Ok(());
        };
        match nl.link(host)? {
            Some(l) => match nl.del_link(l.index) {
                Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
                r => r,
            },
            None => Ok(()),
        }
    }
}
