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
    /// Rotation: the size a file may reach, and how many files (the
    /// current one included) are kept, as Docker's `max-size` and
    /// `max-file`.
    rotate: Option<(u64, u32)>,
    size: u64,
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
        let size = file.metadata().map_or(0, |m| m.len());
        Ok(JsonLog {
            path: path.to_path_buf(),
            file,
            rotate: None,
            size,
            partial: Default::default(),
        })
    }

    /// Rotate once a file would grow past `max_size`, keeping `max_files`
    /// files: `<log>`, `<log>.1`, ... (older last).
    pub fn with_rotation(mut self, max_size: u64, max_files: u32) -> JsonLog {
        self.rotate = Some((max_size.max(1), max_files.max(1)));
        self
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self, max_files: u32) -> Result<()> {
        for n in (1..max_files.saturating_sub(1)).rev() {
            let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
        }
        if max_files > 1 {
            std::fs::rename(&self.path, self.rotated(1))
                .map_err(io("rotating the container log", &self.path))?;
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)
            .map_err(io("opening the container log", &self.path))?;
        self.size = 0;
        Ok(())
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
        if let Some((max_size, max_files)) = self.rotate
            && self.size > 0
            && self.size + line.len() as u64 > max_size
        {
            self.rotate(max_files)?;
        }
        self.file
            .write_all(&line)
            .map_err(io("writing the container log", &self.path))?;
        self.size += line.len() as u64;
        Ok(())
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
    fn rotates_by_size_keeping_max_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l.json");
        let mut log = JsonLog::open(&p).unwrap().with_rotation(200, 3);
        for i in 0..20 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let all: Vec<String> = [
            p.with_extension("json.2"),
            p.with_extension("json.1"),
            p.clone(),
        ]
        .iter()
        .flat_map(|f| entries(f))
        .map(|v| v["log"].as_str().unwrap().to_string())
        .collect();
        assert!(!p.with_extension("json.3").exists());
        for f in [p.with_extension("json.1"), p.clone()] {
            assert!(std::fs::metadata(&f).unwrap().len() <= 200);
        }
        // The newest lines are kept, in order.
        let n = all.len();
        assert!(n < 20 && n > 3, "{n}");
        for (k, l) in all.iter().enumerate() {
            assert_eq!(l, &format!("line {}\n", 20 - n + k));
        }
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
