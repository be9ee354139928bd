//! A blocking client of the shim's socket, for berthd and tests.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::error::{Error, Result, io};
use crate::proto::{AttachRequest, Reply, Request, StateReply};

/// The longest reply line a client accepts.
const MAX_REPLY: usize = 64 * 1024;

/// Send `req` on a new connection and read the reply line, leaving the
/// stream right after it. An `{"ok":false}` reply is [`Error::Refused`].
fn exchange(sock: &Path, req: &Request) -> Result<(String, UnixStream)> {
    let mut s = UnixStream::connect(sock).map_err(io("connecting to", sock))?;
    let mut line = serde_json::to_vec(req).expect("json of a request");
    line.push(b'\n');
    s.write_all(&line).map_err(io("writing to", sock))?;
    // Byte by byte: what follows the line is the attach stream, which a
    // buffered reader would swallow.
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => {
                return Err(Error::Protocol {
                    path: sock.to_path_buf(),
                    msg: "connection closed before a reply".into(),
                });
            }
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) => got.push(b[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io("reading from", sock)(e)),
        }
        if got.len() > MAX_REPLY {
            return Err(Error::Protocol {
                path: sock.to_path_buf(),
                msg: format!("reply longer than {MAX_REPLY} bytes"),
            });
        }
    }
    let text = String::from_utf8(got).map_err(|_| Error::Protocol {
        path: sock.to_path_buf(),
        msg: "reply is not UTF-8".into(),
    })?;
    let check: Reply = parse(sock, &text)?;
    if !check.ok {
        return Err(Error::Refused {
            path: sock.to_path_buf(),
            msg: check
                .error
                .unwrap_or_else(|| "refused without a reason".into()),
        });
    }
    Ok((text, s))
}

fn parse<T: serde::de::DeserializeOwned>(sock: &Path, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Protocol {
        path: sock.to_path_buf(),
        msg: format!("bad reply {text:?}: {e}"),
    })
}

/// One request, one reply (`start`, `resize`, `kill`, `state`).
pub fn request(sock: &Path, req: &Request) -> Result<Reply> {
    let (text, _) = exchange(sock, req)?;
    parse(sock, &text)
}

/// The `state` reply in its exact shape.
pub fn state(sock: &Path) -> Result<StateReply> {
    let (text, _) = exchange(sock, &Request::State)?;
    parse(sock, &text)
}

/// Attach: the reply and the connection, which then carries the streams
/// (multiplexed frames, see [`crate::proto::read_frame`], unless the
/// reply says `tty`) and takes stdin if asked for.
pub fn attach(sock: &Path, req: AttachRequest) -> Result<(Reply, UnixStream)> {
    let (text, s) = exchange(sock, &Request::Attach(req))?;
    Ok((parse(sock, &text)?, s))
}
