//! Address management: IPv4 subnets, gateways, ranges, the default pools
//! new networks draw from, and picking a free address for an endpoint.
//!
//! Allocations are not kept here: they are the endpoints recorded in
//! netd's state ([`crate::state`]), so an address is in use exactly while
//! an endpoint holds it, and releasing an endpoint releases its address.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{NetdError, Result};

/// An IPv4 network: its first address and prefix length. The address is
/// always the network address (host bits clear).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl Ipv4Net {
    /// The network `addr/prefix`, with `addr`'s host bits cleared.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Net> {
        if prefix > 32 {
            return Err(NetdError::BadSubnet {
                value: format!("{addr}/{prefix}"),
                reason: "prefix length above 32".into(),
            });
        }
        Ok(Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// Parse `a.b.c.d/n`, refusing host bits set (as Docker does: a
    /// subnet written `10.0.0.5/24` is most likely a typo).
    pub fn parse(s: &str) -> Result<Ipv4Net> {
        let bad = |reason: &str| NetdError::BadSubnet {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let (a, p) = s.split_once('/').ok_or_else(|| bad("no /prefix length"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = p.parse().map_err(|_| bad("bad prefix length"))?;
        let net = Ipv4Net::new(addr, prefix).map_err(|_| bad("prefix length above 32"))?;
        if net.addr != addr {
            return Err(bad(&format!("host bits set, did you mean {net}")));
        }
        Ok(net)
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether `other` lies entirely inside this network.
    pub fn contains_net(&self, other: &Ipv4Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix))
    }

    /// The addresses an endpoint may hold: all but the network and
    /// broadcast addresses (all of them for /31 and /32).
    fn hosts(&self) -> (u32, u32) {
        let (first, last) = (u32::from(self.addr), u32::from(self.broadcast()));
        if self.prefix >= 31 {
            (first, last)
        } else {
            (first + 1, last - 1)
        }
    }

    /// Whether `ip` is a usable host address of this network.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        let (first, last) = self.hosts();
        (first..=last).contains(&u32::from(ip))
    }

    /// The first host address: Docker's default gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.hosts().0)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = NetdError;
    fn from_str(s: &str) -> Result<Self> {
        Ipv4Net::parse(s)
    }
}

impl From<Ipv4Net> for String {
    fn from(n: Ipv4Net) -> String {
        n.to_string()
    }
}

impl TryFrom<String> for Ipv4Net {
    type Error = NetdError;
    fn try_from(s: String) -> Result<Self> {
        Ipv4Net::parse(&s)
    }
}

/// Parse an address given by the user, naming it on error.
pub fn parse_addr(s: &str) -> Result<Ipv4Addr> {
    s.parse().map_err(|_| NetdError::BadAddress {
        value: s.to_string(),
        reason: "not an IPv4 address".into(),
    })
}

/// A block of address space cut into subnets of one size.
#[derive(Clone, Copy, Debug)]
pub struct Pool {
    pub base: Ipv4Net,
    pub size: u8,
}

/// Docker's default pools: 172.17.0.0/16 … 172.31.0.0/16, then
/// 192.168.0.0/16 in /20s.
pub fn default_pools() -> Vec<Pool> {
    vec![
        Pool {
            base: Ipv4Net::new(Ipv4Addr::new(172, 17, 0, 0), 16).expect("pool"),
            size: 16,
        },
        Pool {
            base: Ipv4Net::new(Ipv4Addr::new(172, 18, 0, 0), 15).expect("pool"),
            size: 16,
        },
        Pool {
            base: Ipv4Net::new(Ipv4Addr::new(172, 20, 0, 0), 14).expect("pool"),
            size: 16,
        },
        Pool {
            base: Ipv4Net::new(Ipv4Addr::new(172, 24, 0, 0), 13).expect("pool"),
            size: 16,
        },
        Pool {
            base: Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16).expect("pool"),
            size: 20,
        },
    ]
}

/// The first subnet from `pools` that overlaps none of `used` (other
/// networks' subnets and the host's routes).
pub fn free_subnet(pools: &[Pool], used: &[Ipv4Net]) -> Option<Ipv4Net> {
    for pool in pools {
        if pool.size < pool.base.prefix || pool.size > 30 {
            continue;
        }
        let step = 1u64 << (32 - u32::from(pool.size));
        let count = 1u64 << (u32::from(pool.size) - u32::from(pool.base.prefix));
        for i in 0..count {
            let addr = u64::from(u32::from(pool.base.addr)) + i * step;
            let cand = Ipv4Net::new(Ipv4Addr::from(addr as u32), pool.size).expect("subnet");
            if !used.iter().any(|u| u.overlaps(&cand)) {
                return Some(cand);
            }
        }
    }
    None
}

/// The first free host address of `range` (the network's `--ip-range`,
/// or its whole subnet) inside `subnet`, skipping `taken`.
pub fn free_address(
    subnet: &Ipv4Net,
    range: Option<&Ipv4Net>,
    taken: &HashSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let r = range.unwrap_or(subnet);
    let (first, last) = r.hosts();
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|ip| subnet.is_host(*ip) && !taken.contains(ip))
}

/// Check a network's address configuration: the gateway and range inside
/// the subnet.
pub fn validate(
    subnet: &Ipv4Net,
    gateway: Option<Ipv4Addr>,
    range: Option<&Ipv4Net>,
) -> Result<()> {
    if let Some(gw) = gateway {
        if !subnet.contains(gw) {
            return Err(NetdError::GatewayOutside {
                gateway: gw,
                subnet: *subnet,
            });
        }
        if !subnet.is_host(gw) {
            return Err(NetdError::GatewayReserved {
                gateway: gw,
                subnet: *subnet,
            });
        }
    }
    if let Some(r) = range
        && !subnet.contains_net(r)
    {
        return Err(NetdError::RangeOutside {
            range: *r,
            subnet: *subnet,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        Ipv4Net::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints_subnets() {
        assert_eq!(net("10.1.0.0/16").to_string(), "10.1.0.0/16");
        assert_eq!(
            net("10.1.0.0/16").broadcast(),
            Ipv4Addr::new(10, 1, 255, 255)
        );
        let e = Ipv4Net::parse("10.1.0.5/16").unwrap_err().to_string();
        assert!(e.contains("host bits set, did you mean 10.1.0.0/16"), "{e}");
        assert!(Ipv4Net::parse("10.1.0.0").is_err());
        assert!(Ipv4Net::parse("10.1.0.0/33").is_err());
        assert!(Ipv4Net::parse("fe80::/64").is_err());
    }

    #[test]
    fn overlap_and_containment() {
        assert!(net("10.0.0.0/8").overlaps(&net("10.2.0.0/16")));
        assert!(net("10.2.0.0/16").overlaps(&net("10.0.0.0/8")));
        assert!(!net("10.2.0.0/16").overlaps(&net("10.3.0.0/16")));
        assert!(net("10.2.0.0/16").contains_net(&net("10.2.1.0/24")));
        assert!(!net("10.2.1.0/24").contains_net(&net("10.2.0.0/16")));
        assert!(net("0.0.0.0/0").overlaps(&net("1.2.3.0/24")));
    }

    #[test]
    fn free_subnet_skips_used_and_routes() {
        let pools = default_pools();
        assert_eq!(free_subnet(&pools, &[]), Some(net("172.17.0.0/16")));
        let used = [net("172.17.0.0/16"), net("172.18.5.0/24")];
        assert_eq!(free_subnet(&pools, &used), Some(net("172.19.0.0/16")));
        let used = [net("172.16.0.0/12")];
        assert_eq!(free_subnet(&pools, &used), Some(net("192.168.0.0/20")));
        let used = [net("172.16.0.0/12"), net("192.168.0.0/16")];
        assert_eq!(free_subnet(&pools, &used), None);
    }

    #[test]
    fn free_address_respects_range_and_taken() {
        let s = net("10.5.0.0/24");
        let mut taken = HashSet::from([Ipv4Addr::new(10, 5, 0, 1)]);
        assert_eq!(
            free_address(&s, None, &taken),
            Some(Ipv4Addr::new(10, 5, 0, 2))
        );
        let r = net("10.5.0.128/25");
        assert_eq!(
            free_address(&s, Some(&r), &taken),
            Some(Ipv4Addr::new(10, 5, 0, 129))
        );
        let s30 = net("10.6.0.0/30");
        taken.insert(Ipv4Addr::new(10, 6, 0, 1));
        taken.insert(Ipv4Addr::new(10, 6, 0, 2));
        assert_eq!(free_address(&s30, None, &taken), None);
    }

    #[test]
    fn validate_names_the_bad_part() {
        let s = net("10.5.0.0/24");
        let e = validate(&s, Some(Ipv4Addr::new(10, 6, 0, 1)), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "gateway 10.6.0.1 is outside subnet 10.5.0.0/24"
        );
        let e = validate(&s, Some(Ipv4Addr::new(10, 5, 0, 255)), None).unwrap_err();
        assert!(e.to_string().contains("not a usable host address"), "{e}");
        let e = validate(&s, None, Some(&net("10.5.1.0/25"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ip range 10.5.1.0/25 is outside subnet 10.5.0.0/24"
        );
        validate(
            &s,
            Some(Ipv4Addr::new(10, 5, 0, 254)),
            Some(&net("10.5.0.64/26")),
        )
        .unwrap();
    }
}
