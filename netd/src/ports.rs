//! Published ports: `-p [ip:][host:]container[/tcp|udp]` with ranges, the
//! mappings they turn into, and picking host ports for `-P` and for
//! ports published without a host port.

use std::fmt;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{NetdError, Result};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

impl FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            other => Err(format!("protocol {other:?} is not tcp or udp")),
        }
    }
}

/// One container port to publish, as asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRequest {
    pub container_port: u16,
    pub proto: Proto,
    /// `None` publishes on every local address.
    pub host_ip: Option<Ipv4Addr>,
    /// The host ports to pick from (one port is `(p, p)`); `None` picks a
    /// free one from the ephemeral range.
    pub host_ports: Option<(u16, u16)>,
}

/// A published port as set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl PortMapping {
    /// Whether two mappings claim the same host port.
    pub fn clashes(&self, other: &PortMapping) -> bool {
        self.proto == other.proto
            && self.host_port == other.host_port
            && (self.host_ip == other.host_ip
                || self.host_ip.is_unspecified()
                || other.host_ip.is_unspecified())
    }
}

fn range(s: &str, spec: &str) -> Result<(u16, u16)> {
    let bad = |reason: String| NetdError::BadPort {
        spec: spec.to_string(),
        reason,
    };
    let port = |p: &str| -> Result<u16> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad(format!("{p:?} is not a port number (1-65535)"))),
            Ok(n) => Ok(n),
        }
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(s)?, port(s)?),
    };
    if lo > hi {
        return Err(bad(format!("range {s} runs backwards")));
    }
    Ok((lo, hi))
}

/// Parse one `-p` argument into the ports it publishes.
pub fn parse_publish(spec: &str) -> Result<Vec<PortRequest>> {
    let bad = |reason: &str| NetdError::BadPort {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.parse::<Proto>().map_err(|e| bad(&e))?),
        None => (spec, Proto::Tcp),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => (None, None, *c),
        [h, c] => (None, Some(*h), *c),
        [ip, h, c] => (Some(*ip), Some(*h).filter(|h| !h.is_empty()), *c),
        _ => {
            return Err(bad(
                "too many colons (IPv6 host addresses are not supported)",
            ));
        }
    };
    let host_ip = match ip {
        None | Some("") => None,
        Some(ip) => {
            let ip: Ipv4Addr = ip
                .trim_matches(['[', ']'])
                .parse()
                .map_err(|_| bad("host address is not IPv4"))?;
            Some(ip).filter(|ip| !ip.is_unspecified())
        }
    };
    let (clo, chi) = range(container, spec)?;
    let host = host.map(|h| range(h, spec)).transpose()?;
    let n = chi - clo;
    let mut out = Vec::new();
    for (i, cport) in (clo..=chi).enumerate() {
        let host_ports = match host {
            None => None,
            // A host range for one container port: any free port of it.
            Some((hlo, hhi)) if n == 0 => Some((hlo, hhi)),
            Some((hlo, hhi)) if hhi - hlo == n => {
                let p = hlo + i as u16;
                Some((p, p))
            }
            Some(_) => return Err(bad("host and container port ranges differ in size")),
        };
        out.push(PortRequest {
            container_port: cport,
            proto,
            host_ip,
            host_ports,
        });
    }
    Ok(out)
}

/// The ephemeral port range of the calling thread's network namespace.
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// Whether nothing on the host holds `ip:port` for `proto`. The socket is
/// closed again at once; the DNAT rule that follows takes the port over.
pub fn host_port_free(ip: Ipv4Addr, port: u16, proto: Proto) -> bool {
    match proto {
        Proto::Tcp => TcpListener::bind((ip, port)).is_ok(),
        Proto::Udp => UdpSocket::bind((ip, port)).is_ok(),
    }
}

/// A random starting point, so `-P` ports differ from run to run as
/// Docker's do.
pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    u64::from_ne_bytes(b)
}

/// Pick the host port for `req` that clashes with none of `taken` and is
/// free on the host.
pub fn pick(req: &PortRequest, taken: &[PortMapping]) -> Result<PortMapping> {
    let host_ip = req.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let make = |p| PortMapping {
        host_ip,
        host_port: p,
        container_port: req.container_port,
        proto: req.proto,
    };
    match req.host_ports {
        Some((lo, hi)) if lo == hi => {
            let m = make(lo);
            if taken.iter().any(|t| t.clashes(&m)) {
                return Err(NetdError::PortInUse {
                    ip: host_ip,
                    port: lo,
                    proto: req.proto,
                });
            }
            Ok(m)
        }
        explicit => {
            let (lo, hi) = explicit.unwrap_or_else(ephemeral_range);
            let span = u64::from(hi - lo) + 1;
            let start = random_u64() % span;
            for i in 0..span {
                let p = lo + ((start + i) % span) as u16;
                let m = make(p);
                if !taken.iter().any(|t| t.clashes(&m)) && host_port_free(host_ip, p, req.proto) {
                    return Ok(m);
                }
            }
            Err(NetdError::NoFreePort {
                low: lo,
                high: hi,
                proto: req.proto,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(c: u16, proto: Proto, ip: Option<[u8; 4]>, h: Option<(u16, u16)>) -> PortRequest {
        PortRequest {
            container_port: c,
            proto,
            host_ip: ip.map(Ipv4Addr::from),
            host_ports: h,
        }
    }

    #[test]
    fn parses_docker_publish_forms() {
        assert_eq!(
            parse_publish("80").unwrap(),
            [req(80, Proto::Tcp, None, None)]
        );
        assert_eq!(
            parse_publish("8080:80").unwrap(),
            [req(80, Proto::Tcp, None, Some((8080, 8080)))]
        );
        assert_eq!(
            parse_publish("127.0.0.1:8080:80/udp").unwrap(),
            [req(
                80,
                Proto::Udp,
                Some([127, 0, 0, 1]),
                Some((8080, 8080))
            )]
        );
        assert_eq!(
            parse_publish("127.0.0.1::80").unwrap(),
            [req(80, Proto::Tcp, Some([127, 0, 0, 1]), None)]
        );
        assert_eq!(
            parse_publish("0.0.0.0:9000-9001:90-91").unwrap(),
            [
                req(90, Proto::Tcp, None, Some((9000, 9000))),
                req(91, Proto::Tcp, None, Some((9001, 9001)))
            ]
        );
        assert_eq!(
            parse_publish("9000-9010:90").unwrap(),
            [req(90, Proto::Tcp, None, Some((9000, 9010)))]
        );
    }

    #[test]
    fn rejects_bad_publish_forms() {
        for (spec, why) in [
            ("8080:0", "not a port number"),
            ("x:80", "not a port number"),
            ("80/sctp", "not tcp or udp"),
            ("9000-9002:90-91", "differ in size"),
            ("91-90", "runs backwards"),
            ("1.2.3:80:80", "not IPv4"),
            ("a:b:c:d", "too many colons"),
        ] {
            let e = parse_publish(spec).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(spec), "{spec}: {e}");
        }
    }

    #[test]
    fn clashes_consider_address_and_protocol() {
        let m = |ip: [u8; 4], p, proto| PortMapping {
            host_ip: ip.into(),
            host_port: p,
            container_port: 80,
            proto,
        };
        assert!(m([0; 4], 80, Proto::Tcp).clashes(&m([127, 0, 0, 1], 80, Proto::Tcp)));
        assert!(!m([0; 4], 80, Proto::Tcp).clashes(&m([0; 4], 80, Proto::Udp)));
        assert!(!m([10, 0, 0, 1], 80, Proto::Tcp).clashes(&m([127, 0, 0, 1], 80, Proto::Tcp)));
        let taken = [m([0; 4], 8080, Proto::Tcp)];
        let e = pick(&req(80, Proto::Tcp, None, Some((8080, 8080))), &taken).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bind for 0.0.0.0:8080/tcp failed: port is already allocated"
        );
        let got = pick(&req(80, Proto::Tcp, None, Some((8080, 8081))), &taken).unwrap();
        assert_eq!(got.host_port, 8081);
    }
}
