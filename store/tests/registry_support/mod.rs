//! Test helpers for the registry tests: Debian's docker-registry on
//! 127.0.0.1 (plain, TLS, htpasswd, token auth), a token server, a proxy
//! that counts requests or breaks blob downloads, an in-memory
//! ContentStore, and random test images. Everything started here is
//! stopped by PID, and its files removed, on drop.

// Shared by several test crates, each using part of it.
#![allow(dead_code, unused_imports)]

pub mod image;
pub mod memstore;
pub mod proxy;
pub mod registry;
pub mod token;

use std::path::Path;
use std::process::Command;

pub use image::*;
pub use memstore::MemStore;
pub use proxy::{Fault, Proxy};
pub use registry::{Registry, RegistryKind};
pub use token::TokenServer;

/// The tools the tests need are installed; a test without them fails
/// (scripts/test installs them), it does not pass unseen.
pub fn have_tools() -> bool {
    for p in [
        "/usr/bin/docker-registry",
        "/usr/bin/openssl",
        "/usr/bin/htpasswd",
    ] {
        assert!(
            Path::new(p).exists(),
            "{p} missing: apt-get install docker-registry openssl apache2-utils"
        );
    }
    true
}

pub fn have_skopeo() -> bool {
    assert!(
        Path::new("/usr/bin/skopeo").exists(),
        "/usr/bin/skopeo missing: apt-get install skopeo"
    );
    true
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Run a command; panic with its output if it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Send a bodiless request to 127.0.0.1:`port`; the response's status.
pub fn http_status(port: u16, method: &str, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    let _ = c.read_to_string(&mut resp);
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// base64, standard or URL-safe without padding.
pub fn base64(data: &[u8], url: bool) -> String {
    let table: &[u8] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(table[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if !url {
            for _ in c.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' | b'-' => 62,
            _ => 63,
        }
    };
    let s: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for c in s.chunks(4) {
        let mut n = 0u32;
        for (i, &b) in c.iter().enumerate() {
            n |= val(b) << (18 - 6 * i);
        }
        for i in 0..c.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn base64_roundtrip() {
    for s in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
        assert_eq!(base64_decode(&base64(s, false)), s);
        assert_eq!(base64_decode(&base64(s, true)), s);
    }
    assert_eq!(base64(b"foobar", false), "Zm9vYmFy");
    assert_eq!(base64(b"fooba", false), "Zm9vYmE=");
}
