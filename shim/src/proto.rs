//! The shim's socket protocol, as types both ends share.
//!
//! One request per connection: the client sends one JSON line, the shim
//! answers with one JSON line; after an `attach` reply the connection
//! carries the container's streams (and, from the client, its stdin).
//! Without a terminal the streams are Docker's multiplexed frames: an
//! 8-byte header `[stream, 0, 0, 0, len as u32 big-endian]`, then `len`
//! bytes; stream 1 is stdout, 2 stderr. With a terminal, raw bytes.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::exit::ExitRecord;

/// A request: `{"op":"attach",...}`, `{"op":"start"}`, ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Attach(AttachRequest),
    Start,
    /// The terminal's size in columns (`width`) and rows (`height`).
    Resize {
        width: u16,
        height: u16,
    },
    Kill {
        signal: i32,
    },
    State,
}

/// Which streams an attach client wants; a missing field is false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRequest {
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub stdout: bool,
    #[serde(default)]
    pub stderr: bool,
}

/// Where the process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created (or, for an exec, prepared) and waiting for `start`.
    Created,
    Running,
    Exited,
}

/// Any reply: `ok`, and whichever fields the request's reply carries
/// (`attach`: `tty`; `start`: `pid`; `state`: see [`StateReply`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<bool>,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply {
            ok: true,
            ..Default::default()
        }
    }

    pub fn error(msg: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(msg.into()),
            ..Default::default()
        }
    }
}

/// The exact shape of the `state` reply: `pid` and `exit` are always
/// there, `null` when there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReply {
    pub ok: bool,
    pub status: Status,
    /// The process's host pid once it exists (kept after it exited).
    pub pid: Option<i32>,
    pub exit: Option<ExitRecord>,
    pub tty: bool,
    pub stdin: bool,
}

pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// The header of a multiplexed frame carrying `len` bytes of `stream`.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let n = u32::try_from(len).expect("frames are cut below 4 GiB");
    let b = n.to_be_bytes();
    [stream, 0, 0, 0, b[0], b[1], b[2], b[3]]
}

/// One frame of a multiplexed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// [`STDOUT`] or [`STDERR`] (Docker also has 0, stdin, and 3, system).
    pub stream: u8,
    pub data: Vec<u8>,
}

/// Read the next frame; `None` at a clean end of stream (between frames).
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Option<Frame>> {
    let mut header = [0u8; 8];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let mut data = vec![0u8; len];
    r.read_exact(&mut data)?;
    Ok(Some(Frame {
        stream: header[0],
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_on_the_wire() {
        let cases = [
            (
                json!({"op":"attach","stdin":true,"stdout":true,"stderr":false}),
                Request::Attach(AttachRequest {
                    stdin: true,
                    stdout: true,
                    stderr: false,
                }),
            ),
            (json!({"op":"start"}), Request::Start),
            (
                json!({"op":"resize","width":100,"height":40}),
                Request::Resize {
                    width: 100,
                    height: 40,
                },
            ),
            (
                json!({"op":"kill","signal":15}),
                Request::Kill { signal: 15 },
            ),
            (json!({"op":"state"}), Request::State),
        ];
        for (wire, req) in cases {
            assert_eq!(
                serde_json::from_value::<Request>(wire.clone()).unwrap(),
                req
            );
            assert_eq!(serde_json::to_value(&req).unwrap(), wire);
        }
        assert_eq!(
            serde_json::from_value::<Request>(json!({"op":"attach","stdout":true})).unwrap(),
            Request::Attach(AttachRequest {
                stdout: true,
                ..Default::default()
            })
        );
        let e = serde_json::from_value::<Request>(json!({"op":"dance"})).unwrap_err();
        assert!(e.to_string().contains("dance"), "{e}");
    }

    #[test]
    fn replies_on_the_wire() {
        assert_eq!(
            serde_json::to_value(Reply::error("no")).unwrap(),
            json!({"ok":false,"error":"no"})
        );
        let st = StateReply {
            ok: true,
            status: Status::Created,
            pid: None,
            exit: None,
            tty: false,
            stdin: true,
        };
        let wire = serde_json::to_value(&st).unwrap();
        assert_eq!(
            wire,
            json!({"ok":true,"status":"created","pid":null,"exit":null,"tty":false,"stdin":true})
        );
        let r: Reply = serde_json::from_value(wire).unwrap();
        assert_eq!(
            (r.status, r.pid, r.stdin),
            (Some(Status::Created), None, Some(true))
        );
    }

    #[test]
    fn frames() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&frame_header(STDOUT, 3));
        wire.extend_from_slice(b"hi\n");
        wire.extend_from_slice(&frame_header(STDERR, 0));
        assert_eq!(&wire[..8], &[1, 0, 0, 0, 0, 0, 0, 3]);
        let mut r = &wire[..];
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some(Frame {
                stream: STDOUT,
                data: b"hi\n".to_vec()
            })
        );
        assert_eq!(read_frame(&mut r).unwrap().unwrap().stream, STDERR);
        assert_eq!(read_frame(&mut r).unwrap(), None);
        let mut cut = &wire[..5];
        assert!(read_frame(&mut cut).is_err());
    }
}
