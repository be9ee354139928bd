//! JSON-lines answers (pull, push, import): the task doing the work sends
//! [`JsonMessage`]s into a channel, and the HTTP body streams them out as
//! they come. Byte counts are throttled per layer, status changes never.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use berth_api::{JsonMessage, ProgressDetail};
use berth_store::digest::Digest;
use berth_store::registry::{Progress, ProgressStatus};
use tokio::sync::mpsc;

/// Byte counts of one layer go out at most this often.
pub const THROTTLE: Duration = Duration::from_millis(100);

/// The sending end of a JSON-lines answer. Sends after the client went
/// away are dropped: the work goes on and finishes.
#[derive(Debug, Clone)]
pub struct Lines {
    tx: mpsc::UnboundedSender<JsonMessage>,
}

impl Lines {
    pub fn send(&self, m: JsonMessage) {
        let _ = self.tx.send(m);
    }

    pub fn status(&self, s: impl Into<String>) {
        self.send(JsonMessage::status(s));
    }

    /// The error line that ends the stream (the CLI prints it, exits 1).
    pub fn error(&self, message: impl Into<String>) {
        self.send(JsonMessage::error(message));
    }
}

/// A channel and the 200 response streaming what it receives; the body
/// ends when every [`Lines`] is dropped.
pub fn channel() -> (Lines, Response) {
    let (tx, rx) = mpsc::unbounded_channel::<JsonMessage>();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let m = rx.recv().await?;
        Some((Ok::<_, Infallible>(bytes::Bytes::from(m.to_line())), rx))
    });
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("a valid response");
    (Lines { tx }, response)
}

/// The 12 hex digits dockerd shows for a layer.
pub fn short(d: &Digest) -> String {
    d.digest().chars().take(12).collect()
}

/// `[=====>      ] 1.2MB/4.5MB`, as dockerd renders a progress bar.
pub fn bar(current: u64, total: Option<u64>) -> String {
    let size = |n: u64| {
        let n = n as f64;
        if n >= 1e9 {
            format!("{:.3}GB", n / 1e9)
        } else if n >= 1e6 {
            format!("{:.3}MB", n / 1e6)
        } else if n >= 1e3 {
            format!("{:.3}kB", n / 1e3)
        } else {
            format!("{n}B")
        }
    };
    match total {
        Some(t) if t > 0 => {
            let width = 50u64;
            let filled = (current.min(t) * width / t) as usize;
            let width = width as usize;
            let s = if filled < width {
                format!("[{}>{}", "=".repeat(filled), " ".repeat(width - filled - 1))
            } else {
                format!("[{}", "=".repeat(width))
            };
            format!("{s}] {}/{}", size(current), size(t))
        }
        _ => size(current),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Pull,
    Push,
}

#[derive(Debug)]
struct Seen {
    last: Option<Instant>,
    moved: bool,
}

/// Turns the store's [`Progress`] events into dockerd's per-layer lines.
#[derive(Debug)]
pub struct LayerProgress {
    lines: Lines,
    direction: Direction,
    seen: Mutex<HashMap<Digest, Seen>>,
    /// Whether a pull fetched anything.
    pub fetched: std::sync::atomic::AtomicBool,
}

impl LayerProgress {
    pub fn new(lines: Lines, direction: Direction) -> LayerProgress {
        LayerProgress {
            lines,
            direction,
            seen: Mutex::new(HashMap::new()),
            fetched: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The line for `p`, if one is due.
    pub fn line(&self, p: &Progress, now: Instant) -> Option<JsonMessage> {
        let id = short(&p.digest);
        let mut seen = self.seen.lock().expect("not poisoned");
        let s = seen.entry(p.digest.clone()).or_insert(Seen {
            last: None,
            moved: false,
        });
        let moving = |word: &str, s: &mut Seen| {
            let done = p.total.is_some_and(|t| p.current >= t);
            if !done && s.last.is_some_and(|l| now.duration_since(l) < THROTTLE) {
                return None;
            }
            s.last = Some(now);
            s.moved = true;
            Some(JsonMessage {
                status: Some(word.into()),
                progress_detail: Some(ProgressDetail {
                    current: Some(p.current),
                    total: p.total,
                }),
                progress: Some(bar(p.current, p.total)),
                id: Some(id.clone()),
                ..JsonMessage::default()
            })
        };
        use ProgressStatus::*;
        match (self.direction, p.status) {
            (Direction::Pull, Waiting) => Some(JsonMessage::layer(id, "Pulling fs layer")),
            (_, Exists) => Some(JsonMessage::layer(
                id,
                match self.direction {
                    Direction::Pull => "Already exists",
                    Direction::Push => "Layer already exists",
                },
            )),
            (Direction::Pull, Downloading) => {
                self.fetched
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                moving("Downloading", s)
            }
            (Direction::Pull, Done) => {
                self.fetched
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Some(JsonMessage::layer(id, "Pull complete"))
            }
            (Direction::Push, Uploading) => moving("Pushing", s),
            (Direction::Push, Pushed | Done) => Some(JsonMessage::layer(
                id,
                if s.moved {
                    "Pushed"
                } else {
                    "Layer already exists"
                },
            )),
            // Not expected in this direction; shown as it is.
            (_, other) => Some(JsonMessage::layer(id, format!("{other:?}"))),
        }
    }

    /// The callback for `Store::pull` and `Store::push`.
    pub fn report(&self, p: Progress) {
        if let Some(m) = self.line(&p, Instant::now()) {
            self.lines.send(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        format!("sha256:{}", "ab".repeat(32)).parse().unwrap()
    }

    fn ev(status: ProgressStatus, current: u64) -> Progress {
        Progress {
            digest: digest(),
            status,
            current,
            total: Some(1000),
        }
    }

    #[test]
    fn byte_counts_are_throttled_but_steps_are_not() {
        let (lines, _resp) = channel();
        let p = LayerProgress::new(lines, Direction::Pull);
        let t0 = Instant::now();
        let first = p.line(&ev(ProgressStatus::Downloading, 10), t0).unwrap();
        assert_eq!(first.status.as_deref(), Some("Downloading"));
        assert_eq!(first.id.as_deref(), Some("abababababab"));
        assert_eq!(first.progress_detail.unwrap().current, Some(10));
        assert!(
            p.line(
                &ev(ProgressStatus::Downloading, 20),
                t0 + Duration::from_millis(10)
            )
            .is_none()
        );
        // The last count always goes out.
        assert!(
            p.line(
                &ev(ProgressStatus::Downloading, 1000),
                t0 + Duration::from_millis(20)
            )
            .is_some()
        );
        assert!(
            p.line(&ev(ProgressStatus::Downloading, 30), t0 + THROTTLE * 2)
                .is_some()
        );
        let done = p.line(&ev(ProgressStatus::Done, 1000), t0).unwrap();
        assert_eq!(done.status.as_deref(), Some("Pull complete"));
        assert!(p.fetched.load(std::sync::atomic::Ordering::Relaxed));
    }

    #[test]
    fn push_tells_sent_from_already_there() {
        let (lines, _resp) = channel();
        let p = LayerProgress::new(lines, Direction::Push);
        let now = Instant::now();
        let m = p.line(&ev(ProgressStatus::Pushed, 1000), now).unwrap();
        assert_eq!(m.status.as_deref(), Some("Layer already exists"));
        let (lines, _resp) = channel();
        let p = LayerProgress::new(lines, Direction::Push);
        let m = p.line(&ev(ProgressStatus::Uploading, 0), now).unwrap();
        assert_eq!(m.status.as_deref(), Some("Pushing"));
        let m = p.line(&ev(ProgressStatus::Pushed, 1000), now).unwrap();
        assert_eq!(m.status.as_deref(), Some("Pushed"));
    }

    #[test]
    fn bars() {
        let bracket = |s: String| s.find(']').unwrap();
        assert_eq!(bracket(bar(0, Some(100))), bracket(bar(100, Some(100))));
        assert_eq!(bracket(bar(0, Some(100))), 51);
        assert!(bar(50, Some(100)).starts_with(&format!("[{}>", "=".repeat(25))));
        assert!(bar(100, Some(100)).starts_with(&format!("[{}]", "=".repeat(50))));
        assert_eq!(bar(1500, None), "1.500kB");
    }
}
