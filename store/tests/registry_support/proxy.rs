//! An HTTP proxy on 127.0.0.1 in front of a plain-HTTP registry: it logs
//! every request line, and can break the download of one blob (close the
//! connection mid-body, flip a byte, or stall). One request per
//! connection (it asks the registry to close after each). Stopped on drop:
//! the accept thread is joined and every open connection shut down.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub enum Fault {
    None,
    /// Close the connection after `after` body bytes of `GET
    /// .../blobs/<digest>`, the first `times` times.
    Drop {
        digest: String,
        after: usize,
        times: usize,
    },
    /// Flip the body byte at offset `at` of `GET .../blobs/<digest>`.
    Corrupt {
        digest: String,
        at: usize,
    },
    /// Stop sending (the connection stays open) after `after` body bytes.
    Stall {
        digest: String,
        after: usize,
    },
}

impl Fault {
    fn digest(&self) -> Option<&str> {
        match self {
            Fault::None => None,
            Fault::Drop { digest, .. }
            | Fault::Corrupt { digest, .. }
            | Fault::Stall { digest, .. } => Some(digest),
        }
    }
}

struct Shared {
    upstream: u16,
    stop: AtomicBool,
    log: Mutex<Vec<String>>,
    fault: Mutex<Fault>,
    /// Faults applied so far.
    applied: AtomicUsize,
    conns: Mutex<Vec<TcpStream>>,
}

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream: u16, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream,
            stop: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
            fault: Mutex::new(fault),
            applied: AtomicUsize::new(0),
            conns: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        if let Ok(c) = conn.try_clone() {
                            s.conns.lock().unwrap().push(c);
                        }
                        let s = s.clone();
                        std::thread::spawn(move || {
                            let _ = handle(conn, &s);
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
        });
        Proxy {
            port,
            shared,
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Request lines ("GET /v2/...") seen so far.
    pub fn log(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.shared.log.lock().unwrap().clear();
    }

    pub fn set_fault(&self, f: Fault) {
        *self.shared.fault.lock().unwrap() = f;
        self.shared.applied.store(0, Ordering::Relaxed);
    }

    pub fn faults_applied(&self) -> usize {
        self.shared.applied.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn handle(client: TcpStream, s: &Shared) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(());
    }
    let mut head = request_line.clone();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Ok(());
        }
        if h == "\r\n" {
            break;
        }
        let name = h
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if name == "connection" || name == "keep-alive" {
            continue;
        }
        head.push_str(&h);
    }
    head.push_str("Connection: close\r\n\r\n");
    let line = request_line.trim().to_string();
    s.log.lock().unwrap().push(line.clone());

    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let fault = {
        let f = s.fault.lock().unwrap().clone();
        let hit = method == "GET"
            && f.digest().is_some_and(|d| {
                path.split('?')
                    .next()
                    .unwrap_or("")
                    .ends_with(&format!("/blobs/{d}"))
            });
        let allowed = match &f {
            Fault::Drop { times, .. } => s.applied.load(Ordering::Relaxed) < *times,
            _ => true,
        };
        if hit && allowed {
            s.applied.fetch_add(1, Ordering::Relaxed);
            f
        } else {
            Fault::None
        }
    };

    let mut upstream = TcpStream::connect(("127.0.0.1", s.upstream))?;
    upstream.set_read_timeout(Some(Duration::from_secs(30)))?;
    upstream.write_all(head.as_bytes())?;
    let buffered = reader.buffer().to_vec();
    upstream.write_all(&buffered)?;
    // The request body, if any.
    let mut up_w = upstream.try_clone()?;
    let mut client_r = reader.into_inner();
    let body_thread = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_r, &mut up_w);
        let _ = up_w.shutdown(Shutdown::Write);
    });

    let mut client_w = client;
    let mut buf = vec![0u8; 64 << 10];
    let mut header = Vec::new();
    let mut body_seen: Option<usize> = None;
    loop {
        let n = match upstream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = buf[..n].to_vec();
        // Where the body starts in this chunk.
        let body_start = match body_seen {
            Some(_) => 0,
            None => {
                header.extend_from_slice(&chunk);
                match find(&header, b"\r\n\r\n") {
                    Some(i) => {
                        let start = chunk.len() - (header.len() - (i + 4));
                        body_seen = Some(0);
                        start
                    }
                    None => chunk.len(),
                }
            }
        };
        let Some(before) = body_seen else {
            client_w.write_all(&chunk)?;
            continue;
        };
        let body_len = chunk.len() - body_start;
        match &fault {
            Fault::Drop { after, .. } | Fault::Stall { after, .. }
                if before + body_len > *after =>
            {
                let keep = body_start + (*after - before.min(*after));
                client_w.write_all(&chunk[..keep])?;
                client_w.flush()?;
                if let Fault::Stall { .. } = fault {
                    let until = Instant::now() + Duration::from_secs(120);
                    while !s.stop.load(Ordering::Relaxed) && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                let _ = client_w.shutdown(Shutdown::Both);
                let _ = upstream.shutdown(Shutdown::Both);
                let _ = body_thread.join();
                return Ok(());
            }
            Fault::Corrupt { at, .. } if before <= *at && *at < before + body_len => {
                chunk[body_start + (*at - before)] ^= 0xff;
            }
            _ => {}
        }
        body_seen = Some(before + body_len);
        client_w.write_all(&chunk)?;
    }
    let _ = client_w.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = body_thread.join();
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
