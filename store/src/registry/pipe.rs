//! A bounded pipe from an async producer (a download task) to a blocking
//! reader (`ContentStore::write_layer` on the unpacking thread).
//!
//! The bound is in bytes, not in chunks: hyper yields chunks of any size,
//! so a chunk-counting channel would bound nothing. The producer takes
//! permits from a semaphore for each chunk's bytes before queueing it; the
//! reader gives them back once the chunk is consumed. The reader waits on a
//! condvar, with no runtime involved, so it works on any thread.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::sync::Semaphore;

struct State {
    /// Queued chunks and the permits each holds.
    chunks: VecDeque<(Bytes, u32)>,
    /// Set by the producer when it is done: `Ok` for end of data.
    end: Option<io::Result<()>>,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    budget: Semaphore,
    cap: u32,
}

/// The producing half. Dropping it without [`PipeWriter::finish`] ends the
/// stream with an error, so a download task that panics or is aborted never
/// looks like a complete layer.
pub(crate) struct PipeWriter {
    shared: Arc<Shared>,
    done: bool,
}

/// The consuming half: a blocking [`Read`].
pub(crate) struct PipeReader {
    shared: Arc<Shared>,
}

/// How long a waiting reader sleeps before calling its tick function.
pub(super) const TICK: Duration = Duration::from_millis(100);

/// The reader is gone: the consumer failed or stopped reading.
#[derive(Debug)]
pub(crate) struct ReaderGone;

pub(crate) fn pipe(capacity_bytes: usize) -> (PipeWriter, PipeReader) {
    let cap = capacity_bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32;
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            chunks: VecDeque::new(),
            end: None,
        }),
        ready: Condvar::new(),
        budget: Semaphore::new(cap as usize),
        cap,
    });
    (
        PipeWriter {
            shared: shared.clone(),
            done: false,
        },
        PipeReader { shared },
    )
}

impl PipeWriter {
    /// Queue `chunk`, waiting while the pipe holds its capacity.
    pub(crate) async fn send(&mut self, chunk: Bytes) -> Result<(), ReaderGone> {
        if chunk.is_empty() {
            return Ok(());
        }
        // A chunk larger than the whole budget takes all of it.
        let n = u32::try_from(chunk.len())
            .unwrap_or(u32::MAX)
            .min(self.shared.cap);
        let permit = self
            .shared
            .budget
            .acquire_many(n)
            .await
            .map_err(|_| ReaderGone)?;
        permit.forget();
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.chunks.push_back((chunk, n));
        drop(st);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// End the stream: `Ok(())` for end of data, or the error the reader
    /// gets once it has read what was queued.
    pub(crate) fn finish(mut self, result: io::Result<()>) {
        self.end(result);
    }

    fn end(&mut self, result: io::Result<()>) {
        if self.done {
            return;
        }
        self.done = true;
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.end = Some(result);
        drop(st);
        self.shared.ready.notify_one();
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.end(Err(io::Error::other("download stopped before the end")));
    }
}

impl PipeReader {
    /// Read like [`Read::read`]; while waiting for data, call `tick` every
    /// 100 ms (the reading thread delivers progress events from there). An
    /// error from `tick` ends the wait and is returned.
    pub(crate) fn read_ticking(
        &mut self,
        buf: &mut [u8],
        tick: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((chunk, permits)) = st.chunks.front_mut() {
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                chunk.advance(n);
                if chunk.is_empty() {
                    let permits = *permits as usize;
                    st.chunks.pop_front();
                    drop(st);
                    self.shared.budget.add_permits(permits);
                } else {
                    drop(st);
                }
                return Ok(n);
            }
            match st.end.take() {
                Some(Ok(())) => {
                    st.end = Some(Ok(()));
                    return Ok(0);
                }
                Some(Err(e)) => {
                    // Later reads keep failing.
                    st.end = Some(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
                None => {}
            }
            let (st, _) = self
                .shared
                .ready
                .wait_timeout(st, TICK)
                .unwrap_or_else(|e| e.into_inner());
            drop(st);
            tick()?;
        }
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_ticking(buf, &mut || Ok(()))
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        // Wake a producer waiting for room: its send fails.
        self.shared.budget.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bounded_and_ordered() {
        let (mut w, mut r) = pipe(64);
        let producer = tokio::spawn(async move {
            for i in 0..100u8 {
                w.send(Bytes::from(vec![i; 50])).await.unwrap();
            }
            w.finish(Ok(()));
        });
        let out = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            out
        })
        .await
        .unwrap();
        producer.await.unwrap();
        assert_eq!(out.len(), 5000);
        assert!(
            out.chunks(50)
                .enumerate()
                .all(|(i, c)| c == vec![i as u8; 50])
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errors_and_drops() {
        let (mut w, mut r) = pipe(1024);
        w.send(Bytes::from_static(b"abc")).await.unwrap();
        drop(w);
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 3);
        assert!(r.read(&mut buf).is_err());
        assert!(r.read(&mut buf).is_err());

        let (mut w, r) = pipe(4);
        w.send(Bytes::from_static(b"abcd")).await.unwrap();
        drop(r);
        assert!(w.send(Bytes::from_static(b"e")).await.is_err());
    }
}
