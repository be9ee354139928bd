//! Each test runs in a process of its own under `unshare --net --mount`:
//! a fresh network namespace (its own links, routes and nftables) and a
//! private mount namespace (sandbox bind mounts vanish with it), so
//! nothing a test does reaches the host.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_netd::{Config, Netd, sandbox};

const INNER: &str = "BERTH_NETD_TEST_ISOLATED";

fn host_snapshot() -> (Vec<String>, bool) {
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    let names: Vec<String> = String::from_utf8_lossy(&links.stdout)
        .lines()
        .filter_map(|l| {
            l.split(':')
                .nth(1)
                .map(|n| n.trim().split('@').next().unwrap().to_string())
        })
        .filter(|n| {
            n == "berth0" || n.starts_with("bt-") || n.starts_with("vp") || n.starts_with("mv")
        })
        .collect();
    let nft = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .expect("nft");
    let ours = String::from_utf8_lossy(&nft.stdout).contains("table ip berth");
    (names, ours)
}

/// Run the calling test in its own network and mount namespaces. Returns
/// true inside them (run the test body), false in the outer process, which
/// has checked that the inner run passed and left nothing on the host.
pub fn isolate(test: &str) -> bool {
    if std::env::var_os(INNER).is_some() {
        return true;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "netd tests need root (network namespaces, links, nftables)"
    );
    for tool in ["unshare", "nft", "ip"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success()),
            "netd tests need {tool} (Debian packages util-linux, nftables, iproute2)"
        );
    }
    let before = host_snapshot();
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .output()
        .expect("running unshare");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "isolated run of {test} failed:\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "isolated run of {test} ran no test:\n{text}"
    );
    assert_eq!(
        before,
        host_snapshot(),
        "{test} left links or rules on the host"
    );
    false
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub netd: Netd,
}

impl Env {
    /// A netd over a fresh state dir, restored (default networks made).
    pub fn new() -> Env {
        Env::with(|_| {})
    }

    pub fn with(f: impl FnOnce(&mut Config)) -> Env {
        let dir = tempfile::tempdir().unwrap();
        up("lo");
        let mut cfg = Config::new(dir.path().join("state"), dir.path().join("netns"));
        f(&mut cfg);
        let netd = Netd::open(cfg).unwrap();
        netd.restore(&[]).unwrap();
        Env { dir, netd }
    }

    pub fn state_file(&self) -> PathBuf {
        self.dir.path().join("state/netd.json")
    }

    pub fn netns_dir(&self) -> PathBuf {
        self.dir.path().join("netns")
    }
}

pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn up(link: &str) {
    sh(&format!("ip link set {link} up"));
}

/// `ip -o link` names in this namespace (or in a sandbox).
pub fn links(netns: Option<&Path>) -> Vec<String> {
    let cmd = match netns {
        Some(p) => format!("nsenter --net={} ip -o link show", p.display()),
        None => "ip -o link show".into(),
    };
    let mut names: Vec<String> = sh(&cmd)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap().to_string())
        .collect();
    names.sort();
    names
}

pub fn ruleset() -> String {
    sh("nft list ruleset")
}

/// A TCP server in the sandbox answering every connection with `reply`.
pub fn serve_tcp(netns: &Path, port: u16, reply: &'static str) {
    let l = sandbox::in_netns(netns, || {
        Ok(TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap())
    })
    .unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.write_all(reply.as_bytes());
        }
    });
}

/// A UDP server in the sandbox answering every datagram with `reply` and
/// the datagram.
pub fn serve_udp(netns: &Path, port: u16, reply: &'static str) {
    let s = sandbox::in_netns(netns, || {
        Ok(UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap())
    })
    .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = s.recv_from(&mut buf) {
            let mut out = reply.as_bytes().to_vec();
            out.extend_from_slice(&buf[..n]);
            let _ = s.send_to(&out, peer);
        }
    });
}

/// Connect to `addr` (from the sandbox, or from here) and read what the
/// server says.
pub fn tcp_get(netns: Option<&Path>, addr: SocketAddr) -> std::io::Result<String> {
    let connect = || TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    let mut s = match netns {
        Some(p) => sandbox::in_netns(p, || Ok(connect())).unwrap()?,
        None => connect()?,
    };
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Send `msg` over UDP to `addr` and return the reply.
pub fn udp_ask(netns: Option<&Path>, addr: SocketAddr, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    let bind = || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0));
    let s = match netns {
        Some(p) => sandbox::in_netns(p, || Ok(bind())).unwrap()?,
        None => bind()?,
    };
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.send_to(msg, addr)?;
    let mut buf = vec![0u8; 4096];
    let (n, _) = s.recv_from(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}
