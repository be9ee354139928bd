//! Reading a container's json-file log for `logs` and for attach: the
//! entries picked by stream, time and tail, optionally followed while the
//! container runs, framed as the Engine API frames them.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::registry::Progress;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    /// Only the last N entries.
    pub tail: Option<usize>,
    /// Nanoseconds since the epoch.
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub timestamps: bool,
    /// Raw bytes (a tty container) instead of 8-byte-header frames.
    pub raw: bool,
    /// Begin at this byte offset: the log's length when an attach without
    /// `logs` came, so it sees what comes after and nothing before.
    pub start_at: Option<u64>,
    /// Follow until the exit after this many exits (attach, which may
    /// come before the start), rather than until the container is not
    /// running (logs).
    pub until_exit: Option<u64>,
}

#[derive(Deserialize)]
struct Entry {
    log: String,
    stream: String,
    time: String,
}

/// One frame: `[stream, 0, 0, 0, len (big endian u32)]` then the bytes.
pub fn frame(stream: u8, data: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(8 + data.len());
    v.extend_from_slice(&[stream, 0, 0, 0]);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    Bytes::from(v)
}

fn nanos(t: &str) -> i64 {
    humantime::parse_rfc3339_weak(t)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Options {
    /// The bytes a log line becomes, or None when it is filtered out.
    fn render(&self, line: &[u8]) -> Option<Bytes> {
        let e: Entry = serde_json::from_slice(line).ok()?;
        let stream = match e.stream.as_str() {
            "stdout" if self.stdout => 1,
            "stderr" if self.stderr => 2,
            _ => return None,
        };
        if self.since.is_some() || self.until.is_some() {
            let t = nanos(&e.time);
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t > u) {
                return None;
            }
        }
        let mut text = Vec::new();
        if self.timestamps {
            text.extend_from_slice(e.time.as_bytes());
            text.push(b' ');
        }
        text.extend_from_slice(e.log.as_bytes());
        Some(if self.raw {
            Bytes::from(text)
        } else {
            frame(stream, &text)
        })
    }
}

/// Stream the log at `path` into a channel, from a blocking thread. With
/// `follow` it keeps reading until `live` says the container stopped and
/// the rest is read.
pub fn spawn_reader(
    path: PathBuf,
    opts: Options,
    mut live: watch::Receiver<Progress>,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(64);
    tokio::task::spawn_blocking(move || {
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && opts.follow => {
                // Not started yet: the shim makes the log; wait for it.
                loop {
                    if let Ok(f) = std::fs::File::open(&path) {
                        break f;
                    }
                    let p = *live.borrow_and_update();
                    if p.removed || tx.is_closed() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Err(_) => return,
        };
        let mut r = BufReader::new(file);
        if let Some(at) = opts.start_at {
            let _ = r.seek(SeekFrom::Start(at));
        } else if let Some(n) = opts.tail {
            let mut keep = std::collections::VecDeque::with_capacity(n.min(4096));
            let mut line = Vec::new();
            while matches!(r.read_until(b'\n', &mut line), Ok(k) if k > 0) {
                if !line.ends_with(b"\n") {
                    // A half-written last line: leave it for follow.
                    let back = line.len() as i64;
                    let _ = r.seek_relative(-back);
                    break;
                }
                if let Some(b) = opts.render(&line) {
                    if keep.len() == n {
                        keep.pop_front();
                    }
                    if n > 0 {
                        keep.push_back(b);
                    }
                }
                line.clear();
            }
            for b in keep {
                if tx.blocking_send(b).is_err() {
                    return;
                }
            }
        }
        let mut line = Vec::new();
        loop {
            let n = r.read_until(b'\n', &mut line).unwrap_or(0);
            if n > 0 && line.ends_with(b"\n") {
                if let Some(b) = opts.render(&line)
                    && tx.blocking_send(b).is_err()
                {
                    return;
                }
                line.clear();
                continue;
            }
            if !opts.follow || tx.is_closed() {
                return;
            }
            // At the end: done once the container stopped and nothing
            // more came after that.
            let p = *live.borrow_and_update();
            let done = match opts.until_exit {
                Some(n) => p.exits > n,
                None => !p.status.is_live(),
            };
            if done || p.removed {
                let n = r.read_until(b'\n', &mut line).unwrap_or(0);
                if n == 0 || !line.ends_with(b"\n") {
                    return;
                }
                continue;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_filters() {
        let o = Options {
            stdout: true,
            stderr: false,
            ..Default::default()
        };
        let out = br#"{"log":"hi\n","stream":"stdout","time":"2024-01-01T00:00:00.5Z"}"#;
        let err = br#"{"log":"oops\n","stream":"stderr","time":"2024-01-01T00:00:01Z"}"#;
        assert_eq!(&o.render(out).unwrap()[..], b"\x01\0\0\0\0\0\0\x03hi\n");
        assert!(o.render(err).is_none());
        let o = Options {
            stdout: true,
            stderr: true,
            timestamps: true,
            raw: true,
            since: Some(nanos("2024-01-01T00:00:00.7Z")),
            ..Default::default()
        };
        assert!(o.render(out).is_none());
        assert_eq!(&o.render(err).unwrap()[..], b"2024-01-01T00:00:01Z oops\n");
    }
}
