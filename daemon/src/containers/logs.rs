//! Reading a container's json-file log for `logs` and for attach: the
//! entries picked by stream, time and tail, optionally followed while the
//! container runs, framed as the Engine API frames them.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
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

/// The rotated files of the log at `path`, oldest first (`<log>.2`,
/// `<log>.1`), then `path` itself.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut rotated = Vec::new();
    for n in 1.. {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        let p = PathBuf::from(p);
        if !p.exists() {
            break;
        }
        rotated.push(p);
    }
    rotated.reverse();
    rotated.push(path.to_path_buf());
    rotated
}

/// Stream the log at `path` (and its rotated files) into a channel, from
/// a blocking thread. With `follow` it keeps reading until `live` says
/// the container stopped and the rest is read, across rotations.
pub fn spawn_reader(
    path: PathBuf,
    opts: Options,
    mut live: watch::Receiver<Progress>,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(64);
    tokio::task::spawn_blocking(move || {
        let send = |b: Bytes| tx.blocking_send(b).is_ok();
        let mut keep = opts.tail.map(|n| (n, VecDeque::with_capacity(n.min(4096))));
        let mut line = Vec::new();
        let all = files(&path);
        let (older, current) = all.split_at(all.len() - 1);
        for f in older {
            let Ok(file) = std::fs::File::open(f) else {
                continue;
            };
            let mut r = BufReader::new(file);
            while matches!(r.read_until(b'\n', &mut line), Ok(k) if k > 0) {
                if let Some(b) = opts.render(&line)
                    && !emit(&mut keep, b, &send)
                {
                    return;
                }
                line.clear();
            }
            line.clear();
        }
        let file = loop {
            match std::fs::File::open(&current[0]) {
                Ok(f) => break f,
                // Not started yet: the shim makes the log; wait for it.
                Err(_) if opts.follow => {
                    let p = *live.borrow_and_update();
                    if p.removed || tx.is_closed() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(_) => return,
            }
        };
        let mut r = BufReader::new(file);
        loop {
            let n = r.read_until(b'\n', &mut line).unwrap_or(0);
            if n > 0 && line.ends_with(b"\n") {
                if let Some(b) = opts.render(&line)
                    && !emit(&mut keep, b, &send)
                {
                    return;
                }
                line.clear();
                continue;
            }
            // At the end of what is there: the tail is complete.
            if let Some((_, k)) = keep.take() {
                for b in k {
                    if !send(b) {
                        return;
                    }
                }
            }
            if !opts.follow || tx.is_closed() {
                return;
            }
            // Rotated under us: go on in the new file.
            let ino = |m: std::io::Result<std::fs::Metadata>| m.ok().map(|m| m.ino());
            if ino(std::fs::metadata(&path)) != ino(r.get_ref().metadata())
                && let Ok(f) = std::fs::File::open(&path)
            {
                r = BufReader::new(f);
                continue;
            }
            let p = *live.borrow_and_update();
            if !p.status.is_live() || p.removed {
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

/// Send `b`, or hold it among the last N when a tail is asked for.
fn emit(
    keep: &mut Option<(usize, VecDeque<Bytes>)>,
    b: Bytes,
    send: &impl Fn(Bytes) -> bool,
) -> bool {
    match keep {
        Some((n, k)) => {
            if *n > 0 {
                if k.len() == *n {
                    k.pop_front();
                }
                k.push_back(b);
            }
            true
        }
        None => send(b),
    }
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
