//! The shim's side of one socket connection: the request line coming in,
//! then (for attach) output going out through a bounded buffer, so that a
//! client that does not read costs memory up to a limit and never time.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use crate::proto::AttachRequest;

/// The longest request line.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Output an attach client may leave unread before it is dropped.
pub const MAX_UNREAD: usize = 1024 * 1024;

pub enum Kind {
    /// Reading the request line.
    Request(Vec<u8>),
    Attached(AttachRequest),
    /// Replied; closes once the reply is out.
    Replied,
}

/// A request line without its newline, and what the client sent after
/// it (the start of an attach client's stdin).
pub struct RequestLine {
    pub line: Vec<u8>,
    pub rest: Vec<u8>,
}

pub struct Conn {
    pub id: u64,
    pub sock: UnixStream,
    pub kind: Kind,
    out: Vec<u8>,
    /// Bytes of `out` already sent.
    sent: usize,
    /// The client's write side is still open.
    pub reading: bool,
    /// Close once `out` is sent.
    pub closing: bool,
    /// Gone: peer closed, write failed, or dropped for not reading.
    pub dead: bool,
}

/// What one read of a connection gave.
pub enum Input {
    /// Nothing now (EAGAIN).
    None,
    Data(usize),
    /// The client shut its write side (or closed).
    Eof,
}

impl Conn {
    pub fn new(id: u64, sock: UnixStream) -> Conn {
        Conn {
            id,
            sock,
            kind: Kind::Request(Vec::new()),
            out: Vec::new(),
            sent: 0,
            reading: true,
            closing: false,
            dead: false,
        }
    }

    pub fn unsent(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Queue `parts` to go out as one piece and try to send; false (and
    /// dead) if the client already has more than [`MAX_UNREAD`] waiting.
    pub fn send(&mut self, parts: &[&[u8]]) -> bool {
        if self.dead {
            return false;
        }
        let n: usize = parts.iter().map(|p| p.len()).sum();
        if self.unsent() + n > MAX_UNREAD {
            self.dead = true;
            return false;
        }
        if self.sent > 0 && self.sent * 2 >= self.out.len() {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        for p in parts {
            self.out.extend_from_slice(p);
        }
        self.flush();
        true
    }

    /// Send what the socket takes now.
    pub fn flush(&mut self) {
        while self.sent < self.out.len() && !self.dead {
            match self.sock.write(&self.out[self.sent..]) {
                Ok(0) => self.dead = true,
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.dead = true,
            }
        }
        if self.sent == self.out.len() {
            self.sent = 0;
            self.out.clear();
            // A burst to a slow client must not keep its peak forever.
            if self.out.capacity() > 64 * 1024 {
                self.out = Vec::new();
            }
        }
    }

    /// Read once into `buf`.
    pub fn read(&mut self, buf: &mut [u8]) -> Input {
        loop {
            match self.sock.read(buf) {
                Ok(0) => {
                    self.reading = false;
                    return Input::Eof;
                }
                Ok(n) => return Input::Data(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Input::None,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.reading = false;
                    self.dead = true;
                    return Input::Eof;
                }
            }
        }
    }

    /// The request line, once complete. `Err` for a line over
    /// [`MAX_REQUEST`].
    pub fn take_request(&mut self) -> Result<Option<RequestLine>, String> {
        let Kind::Request(buf) = &mut self.kind else {
            return Ok(None);
        };
        match buf.iter().position(|b| *b == b'\n') {
            Some(n) => {
                let rest = buf.split_off(n + 1);
                buf.pop();
                let line = std::mem::take(buf);
                Ok(Some(RequestLine { line, rest }))
            }
            None if buf.len() > MAX_REQUEST => {
                Err(format!("request longer than {MAX_REQUEST} bytes"))
            }
            None => Ok(None),
        }
    }
}
