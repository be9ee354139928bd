//! The raw streams of attach and exec: docker's multiplexed frames
//! (8-byte header: stream 1 stdout, 2 stderr, then a big-endian length)
//! without a tty, the bytes as they are with one; stdin copied up and
//! half-closed at its end; the local terminal in raw mode with its size
//! forwarded; ctrl-p ctrl-q detaches.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::client::Hijacked;
use crate::error::{CliError, Result};

/// The local terminal in raw mode until dropped.
pub struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    /// Raw mode on stdin, when it is a terminal.
    pub fn stdin() -> Option<RawTerminal> {
        let fd = std::io::stdin();
        let saved = termios::tcgetattr(fd.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        let fd: BorrowedFd<'_> = stdin.as_fd();
        let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &self.saved);
    }
}

/// Read docker's frames from `r`, writing each payload to `out` or `err`.
pub async fn demux<R, O, E>(r: &mut R, out: &mut O, err: &mut E) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let mut header = [0u8; 8];
    loop {
        match r.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await?;
        match header[0] {
            2 => {
                err.write_all(&payload).await?;
                err.flush().await?;
            }
            _ => {
                out.write_all(&payload).await?;
                out.flush().await?;
            }
        }
    }
}

/// docker's default detach keys: ctrl-p, ctrl-q.
pub const DETACH_KEYS: [u8; 2] = [0x10, 0x11];

/// How a stream session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The container's output ended.
    Closed,
    /// The user typed the detach keys.
    Detached,
}

/// Copy stdin up (if `stdin`), the output down, until the output ends
/// or the detach keys are typed (with a tty).
pub async fn pump(h: Hijacked, tty: bool, stdin: bool) -> Result<Ended> {
    let (mut rd, mut wr) = tokio::io::split(h.io);
    let (detach_tx, mut detach_rx) = tokio::sync::oneshot::channel::<()>();
    if stdin {
        tokio::spawn(async move {
            let mut input = tokio::io::stdin();
            let mut buf = vec![0u8; 32 * 1024];
            let mut matched = 0;
            loop {
                let n = match input.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if tty {
                    for &b in &buf[..n] {
                        if b == DETACH_KEYS[matched] {
                            matched += 1;
                            if matched == DETACH_KEYS.len() {
                                let _ = detach_tx.send(());
                                return;
                            }
                        } else {
                            matched = usize::from(b == DETACH_KEYS[0]);
                        }
                    }
                }
                if wr.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                let _ = wr.flush().await;
            }
            // Half-close: the container sees the end of its stdin.
            let _ = wr.shutdown().await;
            // Keep the sender alive (dropping it is no detach).
            std::future::pending::<()>().await;
            drop(detach_tx);
        });
    }
    let output = async {
        let mut out = tokio::io::stdout();
        if tty {
            tokio::io::copy(&mut rd, &mut out).await.map(drop)
        } else {
            let mut err = tokio::io::stderr();
            demux(&mut rd, &mut out, &mut err).await
        }
    };
    tokio::select! {
        r = output => {
            r.map_err(CliError::io("reading the container's output"))?;
            Ok(Ended::Closed)
        }
        Ok(()) = &mut detach_rx => Ok(Ended::Detached),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_split_into_stdout_and_stderr() {
        let mut data = Vec::new();
        for (s, p) in [(1u8, &b"out1 "[..]), (2, b"err"), (1, b"out2")] {
            data.extend_from_slice(&[s, 0, 0, 0]);
            data.extend_from_slice(&(p.len() as u32).to_be_bytes());
            data.extend_from_slice(p);
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        demux(&mut &data[..], &mut out, &mut err).await.unwrap();
        assert_eq!(out, b"out1 out2");
        assert_eq!(err, b"err");
    }
}
