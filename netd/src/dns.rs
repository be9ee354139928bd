//! The embedded DNS server of user-defined networks. It listens on the
//! network's gateway address, port 53 (Docker listens on 127.0.0.11 inside
//! each container and NATs it; the gateway needs no per-container rules),
//! answers A queries for the containers' names, short ids and
//! `--network-alias`es on that network, forwards other dotted names to the
//! host's resolvers, and answers NXDOMAIN otherwise.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

use crate::error::{NetdError, Result};

/// Name (lower case, no trailing dot) → addresses.
pub type Records = HashMap<String, Vec<Ipv4Addr>>;

/// What the server answers: the network's names, and for a client also
/// on other networks, a view with those networks' names too (as Docker's
/// resolver answers for every network its container is on).
#[derive(Debug, Default)]
struct Views {
    common: Records,
    per_client: HashMap<Ipv4Addr, Records>,
}

impl Views {
    fn for_peer(&self, peer: SocketAddr) -> &Records {
        match peer {
            SocketAddr::V4(a) => self.per_client.get(a.ip()).unwrap_or(&self.common),
            SocketAddr::V6(_) => &self.common,
        }
    }
}

/// A running server; dropping it stops it.
pub struct DnsServer {
    addr: SocketAddr,
    records: Arc<RwLock<Views>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const TTL: u32 = 600;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

impl DnsServer {
    /// Serve on `ip`:`port` (53 for containers). `upstreams` receive the
    /// queries for names not on the network.
    pub fn start(ip: Ipv4Addr, port: u16, upstreams: Vec<SocketAddr>) -> Result<DnsServer> {
        let sock = UdpSocket::bind((ip, port)).map_err(NetdError::io(
            "binding dns server to",
            format!("{ip}:{port}"),
        ))?;
        let addr = sock
            .local_addr()
            .map_err(NetdError::io("reading", "dns socket"))?;
        // Short read timeouts let the thread notice it should stop.
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(NetdError::io("configuring", "dns socket"))?;
        let records = Arc::new(RwLock::new(Views::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (records, stop) = (records.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("dns-{ip}"))
                .spawn(move || serve(sock, records, stop, Arc::new(upstreams)))
                .map_err(NetdError::io("spawning", "dns thread"))?
        };
        tracing::debug!("dns server on {addr}");
        Ok(DnsServer {
            addr,
            records,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_records(&self, r: Records) {
        self.set_views(r, HashMap::new());
    }

    /// The network's names, and for some clients (by address) the names
    /// they see instead.
    pub fn set_views(&self, common: Records, per_client: HashMap<Ipv4Addr, Records>) {
        *self.records.write().expect("dns records lock") = Views { common, per_client };
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    sock: UdpSocket,
    records: Arc<RwLock<Views>>,
    stop: Arc<AtomicBool>,
    upstreams: Arc<Vec<SocketAddr>>,
) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::warn!("dns server: {e}");
                continue;
            }
        };
        let query = &buf[..n];
        let Ok(msg) = Message::from_vec(query) else {
            continue;
        };
        let reply = answer(
            &msg,
            records.read().expect("dns records lock").for_peer(peer),
        );
        match reply {
            Some(reply) => {
                if let Ok(b) = reply.to_vec() {
                    let _ = sock.send_to(&b, peer);
                }
            }
            None => {
                // Forwarding waits on the network; do it aside so one slow
                // upstream does not hold up the names served here.
                let (query, upstreams) = (query.to_vec(), upstreams.clone());
                let Ok(reply_sock) = sock.try_clone() else {
                    continue;
                };
                std::thread::spawn(move || {
                    let reply = forward(&query, &upstreams)
                        .or_else(|| error_reply(&msg, ResponseCode::ServFail));
                    if let Some(b) = reply {
                        let _ = reply_sock.send_to(&b, peer);
                    }
                });
            }
        }
    }
}

fn reply_to(q: &Message) -> Message {
    let mut r = Message::new();
    r.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_op_code(q.op_code())
        .set_recursion_desired(q.recursion_desired())
        .set_recursion_available(true);
    for query in q.queries() {
        r.add_query(query.clone());
    }
    r
}

fn error_reply(q: &Message, code: ResponseCode) -> Option<Vec<u8>> {
    let mut r = reply_to(q);
    r.set_response_code(code);
    r.to_vec().ok()
}

/// The reply for names this network knows, or `None` to forward.
fn answer(q: &Message, records: &Records) -> Option<Message> {
    let query = q.queries().first()?;
    let name = query.name().to_lowercase().to_ascii();
    let name = name.trim_end_matches('.');
    let mut r = reply_to(q);
    match records.get(name) {
        Some(ips) => {
            r.set_authoritative(true);
            if matches!(query.query_type(), RecordType::A | RecordType::ANY) {
                for ip in ips {
                    r.add_answer(Record::from_rdata(
                        query.name().clone(),
                        TTL,
                        RData::A(A(*ip)),
                    ));
                }
            }
            Some(r)
        }
        // A bare name that is no container here is nobody's: the host's
        // resolvers would only add a delay (and leak the query).
        None if !name.contains('.') => {
            r.set_response_code(ResponseCode::NXDomain);
            Some(r)
        }
        None => None,
    }
}

fn forward(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let bind: SocketAddr = match up {
            SocketAddr::V4(_) => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => "[::]:0".parse().expect("v6 any"),
        };
        let Ok(s) = UdpSocket::bind(bind) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(UPSTREAM_TIMEOUT));
        if s.send_to(query, up).is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok((n, from)) = s.recv_from(&mut buf)
            && from == *up
            && n >= 2
            && buf[..2] == query[..2]
        {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

/// The resolvers named in a resolv.conf text, as socket addresses.
pub fn upstreams(resolv_conf: &str) -> Vec<SocketAddr> {
    crate::etc::nameservers(resolv_conf)
        .iter()
        .filter_map(|n| n.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}
