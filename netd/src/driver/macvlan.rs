//! The macvlan driver, bridge mode: each endpoint is a macvlan link on the
//! network's parent interface, moved into the sandbox. Endpoints on one
//! parent reach each other directly; there is no NAT and no host bridge.

use std::path::Path;

use super::{NetworkDriver, configure_in_sandbox, short};
use crate::error::{NetdError, Result};
use crate::netlink::Nl;
use crate::state::{Endpoint, Network};

pub struct Macvlan;

fn parent(net: &Network) -> Result<&str> {
    net.interface
        .as_deref()
        .ok_or_else(|| NetdError::BadOption {
            key: "parent".into(),
            value: String::new(),
            reason: "a macvlan network needs -o parent=<interface>".into(),
        })
}

impl NetworkDriver for Macvlan {
    fn validate(&self, nl: &Nl, net: &Network) -> Result<()> {
        let p = parent(net)?;
        if nl.link(p)?.is_none() {
            return Err(NetdError::BadOption {
                key: "parent".into(),
                value: p.into(),
                reason: "no such interface".into(),
            });
        }
        if let Some(mode) = net.options.get("macvlan_mode")
            && mode != "bridge"
        {
            return Err(NetdError::BadOption {
                key: "macvlan_mode".into(),
                value: mode.clone(),
                reason: "only bridge mode is supported".into(),
            });
        }
        Ok(())
    }

    fn create(&self, nl: &Nl, net: &Network) -> Result<()> {
        let p = parent(net)?;
        let idx = nl.index(p)?;
        nl.set_up(idx)
    }

    fn remove(&self, _: &Nl, _: &Network) -> Result<()> {
        Ok(())
    }

    fn setup(&self, nl: &Nl, net: &Network, ep: &Endpoint, sandbox: &Path) -> Result<()> {
        let tmp = format!("mv{}", short(&ep.id));
        let parent = nl.index(parent(net)?)?;
        let mtu = net
            .options
            .get("com.docker.network.driver.mtu")
            .map(|_| net.mtu);
        nl.add_macvlan(&tmp, parent, mtu)?;
        let made = (|| {
            nl.set_netns(nl.index(&tmp)?, sandbox)?;
            configure_in_sandbox(sandbox, &tmp, ep, !net.internal)
        })();
        if made.is_err() {
            if let Ok(Some(l)) = nl.link(&tmp) {
                let _ = nl.del_link(l.index);
            } else if let Ok(snl) = Nl::open_in(sandbox) {
                for name in [tmp.as_str(), ep.ifname.as_str()] {
                    if let Ok(Some(l)) = snl.link(name) {
                        let _ = snl.del_link(l.index);
                    }
                }
            }
        }
        made
    }

    fn teardown(&self, _: &Nl, _: &Network, ep: &Endpoint, sandbox: Option<&Path>) -> Result<()> {
        // The link lives in the sandbox and dies with it.
        let Some(sandbox) = sandbox else {
            return Ok(());
        };
        let snl = Nl::open_in(sandbox)?;
        if let Some(l) = snl.link(&ep.ifname)? {
            snl.del_link(l.index)?;
        }
        Ok(())
    }
}
