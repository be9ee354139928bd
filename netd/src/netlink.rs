//! A blocking face on rtnetlink. A netlink socket belongs to the network
//! namespace it was opened in, so [`Nl::open_in`] opens it on a short-lived
//! thread that joined the sandbox's namespace; the socket then works from
//! any thread, and no thread of the caller ever changes namespace.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures_util::TryStreamExt;
use netlink_packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{
    Handle, LinkBridge, LinkDummy, LinkMacVlan, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::error::{NetdError, Result};
use crate::ipam::Ipv4Net;
use crate::sandbox;

/// What netd needs to know of a link.
#[derive(Clone, Debug)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub master: Option<u32>,
    pub up: bool,
    pub mac: Option<[u8; 6]>,
    pub alias: Option<String>,
}

/// A route's destination and outgoing link.
#[derive(Clone, Debug)]
pub struct Route {
    pub dest: Ipv4Net,
    pub oif: Option<u32>,
}

/// A random locally administered unicast MAC address.
pub fn random_mac() -> [u8; 6] {
    let r = crate::ports::random_u64().to_ne_bytes();
    [0x02, 0x42, r[0], r[1], r[2], r[3]]
}

pub struct Nl {
    rt: tokio::runtime::Runtime,
    handle: Handle,
}

fn nl_err(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetdError {
    let op = op.into();
    move |source| NetdError::Netlink { op, source }
}

/// The errno of a netlink error, if it is one.
pub fn errno(e: &NetdError) -> Option<i32> {
    match e {
        NetdError::Netlink {
            source: rtnetlink::Error::NetlinkError(m),
            ..
        } => m.code.map(|c| -c.get()),
        _ => None,
    }
}

fn kind_name(k: &InfoKind) -> String {
    format!("{k:?}").to_ascii_lowercase()
}

fn to_link(m: LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        kind: None,
        master: None,
        up: m.header.flags.contains(LinkFlags::Up),
        mac: None,
        alias: None,
    };
    for a in m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n,
            LinkAttribute::Controller(c) => l.master = Some(c),
            LinkAttribute::IfAlias(a) => l.alias = Some(a),
            LinkAttribute::Address(a) if a.len() == 6 => {
                l.mac = Some(a.try_into().expect("six bytes"));
            }
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        l.kind = Some(kind_name(&k));
                    }
                }
            }
            _ => {}
        }
    }
    l
}

impl Nl {
    /// A netlink socket in the calling thread's network namespace.
    pub fn open() -> Result<Nl> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(NetdError::io("starting", "netlink runtime"))?;
        let handle = rt.block_on(async {
            let (conn, handle, _) =
                rtnetlink::new_connection().map_err(NetdError::io("opening", "netlink socket"))?;
            tokio::spawn(conn);
            Ok::<_, NetdError>(handle)
        })?;
        Ok(Nl { rt, handle })
    }

    /// A netlink socket in the network namespace `netns` (a file).
    pub fn open_in(netns: &Path) -> Result<Nl> {
        sandbox::in_netns(netns, Nl::open)
    }

    fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn links(&self) -> Result<Vec<Link>> {
        self.run(async {
            let msgs: Vec<LinkMessage> = self
                .handle
                .link()
                .get()
                .execute()
                .try_collect()
                .await
                .map_err(nl_err("listing links"))?;
            Ok(msgs.into_iter().map(to_link).collect())
        })
    }

    /// The link named `name`, if there is one.
    pub fn link(&self, name: &str) -> Result<Option<Link>> {
        let r = self.run(async {
            self.handle
                .link()
                .get()
                .match_name(name.to_string())
                .execute()
                .try_next()
                .await
        });
        match r {
            Ok(m) => Ok(m.map(to_link)),
            Err(e) => {
                let e = nl_err(format!("looking up link {name}"))(e);
                if errno(&e) == Some(libc::ENODEV) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    pub fn index(&self, name: &str) -> Result<u32> {
        self.link(name)?
            .map(|l| l.index)
            .ok_or_else(|| NetdError::NoSuchLink(name.to_string()))
    }

    fn add(&self, what: String, msg: LinkMessage) -> Result<()> {
        self.run(async { self.handle.link().add(msg).execute().await })
            .map_err(nl_err(what))
    }

    fn set(&self, what: String, msg: LinkMessage) -> Result<()> {
        self.run(async { self.handle.link().set(msg).execute().await })
            .map_err(nl_err(what))
    }

    /// A bridge, marked with `alias` so that a cleanup after a crash can
    /// tell berth's bridges from anybody else's.
    pub fn add_bridge(&self, name: &str, mtu: u32, alias: &str) -> Result<()> {
        self.add(
            format!("creating bridge {name}"),
            // A MAC of its own: otherwise the bridge takes its lowest
            // port's, and changes it when that port goes, which leaves
            // the containers' ARP entries for the gateway stale.
            LinkBridge::new(name)
                .mtu(mtu)
                .address(random_mac().to_vec())
                .build(),
        )?;
        // The kernel ignores IFLA_IFALIAS when it creates a link.
        let index = self.index(name)?;
        self.set(
            format!("marking bridge {name}"),
            LinkUnspec::new_with_index(index).alias(alias).build(),
        )
    }

    pub fn add_dummy(&self, name: &str) -> Result<()> {
        self.add(
            format!("creating dummy {name}"),
            LinkDummy::new(name).build(),
        )
    }

    pub fn add_veth(&self, name: &str, peer: &str, mtu: u32) -> Result<()> {
        self.add(
            format!("creating veth pair {name}/{peer}"),
            LinkVeth::new(name, peer).mtu(mtu).build(),
        )
    }

    pub fn add_macvlan(&self, name: &str, parent: u32, mtu: Option<u32>) -> Result<()> {
        let mut b = LinkMacVlan::new(name, parent, MacVlanMode::Bridge);
        if let Some(mtu) = mtu {
            b = b.mtu(mtu);
        }
        self.add(format!("creating macvlan {name}"), b.build())
    }

    pub fn set_up(&self, index: u32) -> Result<()> {
        self.set(
            format!("bringing up link {index}"),
            LinkUnspec::new_with_index(index).up().build(),
        )
    }

    pub fn set_master(&self, index: u32, master: u32) -> Result<()> {
        self.set(
            format!("attaching link {index} to {master}"),
            LinkUnspec::new_with_index(index).controller(master).build(),
        )
    }

    pub fn set_mtu(&self, index: u32, mtu: u32) -> Result<()> {
        self.set(
            format!("setting mtu of link {index}"),
            LinkUnspec::new_with_index(index).mtu(mtu).build(),
        )
    }

    /// Move the link into the network namespace `netns`.
    pub fn set_netns(&self, index: u32, netns: &Path) -> Result<()> {
        let f = std::fs::File::open(netns).map_err(NetdError::io("opening", netns))?;
        self.set(
            format!("moving link {index} into {}", netns.display()),
            LinkUnspec::new_with_index(index)
                .setns_by_fd(f.as_raw_fd())
                .build(),
        )
    }

    /// Rename a link (it must be down) and give it a MAC address.
    pub fn rename(&self, index: u32, name: &str, mac: Option<[u8; 6]>) -> Result<()> {
        let mut b = LinkUnspec::new_with_index(index).name(name.to_string());
        if let Some(mac) = mac {
            b = b.address(mac.to_vec());
        }
        self.set(format!("renaming link {index} to {name}"), b.build())
    }

    pub fn del_link(&self, index: u32) -> Result<()> {
        self.run(async { self.handle.link().del(index).execute().await })
            .map_err(nl_err(format!("deleting link {index}")))
    }

    pub fn add_addr(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        let r = self.run(async {
            self.handle
                .address()
                .add(index, IpAddr::V4(ip), prefix)
                .execute()
                .await
        });
        match r.map_err(nl_err(format!("adding {ip}/{prefix} to link {index}"))) {
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// The IPv4 addresses on a link.
    pub fn addrs(&self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>> {
        use netlink_packet_route::address::{AddressAttribute, AddressMessage};
        self.run(async {
            let msgs: Vec<AddressMessage> = self
                .handle
                .address()
                .get()
                .set_link_index_filter(index)
                .execute()
                .try_collect()
                .await
                .map_err(nl_err(format!("listing addresses of link {index}")))?;
            Ok(msgs
                .into_iter()
                .filter_map(|m| {
                    let p = m.header.prefix_len;
                    m.attributes.into_iter().find_map(|a| match a {
                        AddressAttribute::Address(IpAddr::V4(ip)) => Some((ip, p)),
                        _ => None,
                    })
                })
                .collect())
        })
    }

    pub fn add_default_route(&self, gateway: Ipv4Addr) -> Result<()> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .build();
        self.run(async { self.handle.route().add(msg).execute().await })
            .map_err(nl_err(format!("adding default route via {gateway}")))
    }

    /// The IPv4 routes of every table.
    pub fn routes(&self) -> Result<Vec<Route>> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
        self.run(async {
            let msgs: Vec<_> = self
                .handle
                .route()
                .get(msg)
                .execute()
                .try_collect()
                .await
                .map_err(nl_err("listing routes"))?;
            Ok(msgs
                .into_iter()
                .filter_map(|m| {
                    let plen = m.header.destination_prefix_length;
                    let mut dest = Ipv4Addr::UNSPECIFIED;
                    let mut oif = None;
                    for a in &m.attributes {
                        match a {
                            RouteAttribute::Destination(RouteAddress::Inet(ip)) => dest = *ip,
                            RouteAttribute::Oif(i) => oif = Some(*i),
                            _ => {}
                        }
                    }
                    Some(Route {
                        dest: Ipv4Net::new(dest, plen).ok()?,
                        oif,
                    })
                })
                .collect())
        })
    }
}
