//! Docker's json-file log format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"<RFC 3339 nanos>"}`.
//! Output is cut into lines; a line longer than [`MAX_LINE`] is written in
//! pieces without the newline, as Docker does, and so is a last line that
//! never got one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Result, io};

/// Docker's buffer size for one log entry.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[derive(Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    time: String,
}

pub struct JsonLog {
    path: PathBuf,
    file: std::fs::File,
    /// Per stream: bytes of a line not yet ended.
    partial: [Vec<u8>; 2],
}

impl JsonLog {
    /// Open (appending to) the log at `path`.
    pub fn open(path: &Path) -> Result<JsonLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)
            .map_err(io("opening the container log", path))?;
        Ok(JsonLog {
            path: path.to_path_buf(),
            file,
            partial: Default::default(),
        })
    }

    /// Add output of `stream`: every completed line becomes an entry.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Result<()> {
        let i = stream as usize;
        let mut rest = data;
        while !rest.is_empty() {
            let room = MAX_LINE - self.partial[i].len();
            let window = &rest[..rest.len().min(room)];
            match window.iter().position(|b| *b == b'\n') {
                Some(n) => {
                    self.partial[i].extend_from_slice(&window[..=n]);
                    rest = &rest[n + 1..];
                    self.emit(stream)?;
                }
                None => {
                    self.partial[i].extend_from_slice(window);
                    rest = &rest[window.len()..];
                    if self.partial[i].len() >= MAX_LINE {
                        self.emit(stream)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Write out what is left of an unfinished line of `stream`.
    pub fn finish(&mut self, stream: Stream) -> Result<()> {
        if self.partial[stream as usize].is_empty() {
            return Ok(());
        }
        self.emit(stream)
    }

    fn emit(&mut self, stream: Stream) -> Result<()> {
        let bytes = std::mem::take(&mut self.partial[stream as usize]);
        let text = String::from_utf8_lossy(&bytes);
        let mut line = serde_json::to_vec(&Entry {
            log: &text,
            stream: stream.as_str(),
            time: crate::exit::now_rfc3339(),
        })
        .expect("json of strings");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(io("writing the container log", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn entries(p: &Path) -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_and_streams() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l.json");
        let mut log = JsonLog::open(&p).unwrap();
        log.write(Stream::Stdout, b"a\nb").unwrap();
        log.write(Stream::Stderr, b"e\n").unwrap();
        log.write(Stream::Stdout, b"c\n\"q\"").unwrap();
        log.finish(Stream::Stdout).unwrap();
        log.finish(Stream::Stderr).unwrap();
        let e = entries(&p);
        let got: Vec<_> = e
            .iter()
            .map(|v| (v["log"].as_str().unwrap(), v["stream"].as_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("a\n", "stdout"),
                ("e\n", "stderr"),
                ("bc\n", "stdout"),
                ("\"q\"", "stdout")
            ]
        );
        let t = e[0]["time"].as_str().unwrap();
        assert!(t.ends_with('Z') && t.contains('T'), "{t}");
        humantime::parse_rfc3339(t).unwrap();
    }

    #[test]
    fn long_lines_split() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l.json");
        let mut log = JsonLog::open(&p).unwrap();
        let mut big = vec![b'x'; MAX_LINE + 10];
        big.push(b'\n');
        log.write(Stream::Stdout, &big).unwrap();
        let e = entries(&p);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0]["log"].as_str().unwrap().len(), MAX_LINE);
        assert_eq!(e[1]["log"].as_str().unwrap(), "x".repeat(10) + "\n");
    }
}
