//! docker's `jsonmessage.DisplayJSONMessagesStream`: the JSON lines of
//! pull, push, load and import shown as docker shows them. On a terminal
//! each layer keeps its own line, redrawn in place with a progress bar;
//! elsewhere progress updates are left out and every other line printed.

use std::collections::HashMap;
use std::io::Write;

use berth_api::JsonMessage;

use crate::client::Lines;
use crate::error::{CliError, Result};
use crate::units::human_size;

/// docker's `JSONProgress.String()` for a bar `width` columns wide.
pub fn progress_bar(current: u64, total: u64, width: usize) -> String {
    if current == 0 && total == 0 {
        return String::new();
    }
    if total == 0 {
        return format!("{:>8}", human_size(current as f64));
    }
    let percentage = ((current as f64 / total as f64 * 100.0) as usize / 2).min(50);
    let mut out = String::new();
    if width > 110 {
        out.push_str(&format!(
            "[{}>{}] ",
            "=".repeat(percentage),
            " ".repeat(50 - percentage)
        ));
    }
    let cur = human_size(current as f64);
    if current > total {
        out.push_str(&format!("{cur:>8}"));
    } else {
        out.push_str(&format!("{cur:>8}/{}", human_size(total as f64)));
    }
    out
}

/// Renders messages as they arrive.
pub struct Display<W: Write> {
    out: W,
    terminal: bool,
    width: usize,
    ids: HashMap<String, usize>,
    /// `aux` payloads (push's digest, build's image id), for the caller.
    pub aux: Vec<serde_json::Value>,
}

impl<W: Write> Display<W> {
    pub fn new(out: W, terminal: bool, width: usize) -> Display<W> {
        Display {
            out,
            terminal,
            width,
            ids: HashMap::new(),
            aux: Vec::new(),
        }
    }

    /// Show one message; a message carrying an error ends the stream
    /// with it (docker prints it and exits 1).
    pub fn show(&mut self, m: &JsonMessage) -> Result<()> {
        if let Some(aux) = &m.aux {
            self.aux.push(aux.clone());
            return Ok(());
        }
        if let Some(e) = m
            .error_detail
            .as_ref()
            .map(|d| d.message.clone())
            .or(m.error.clone())
        {
            return Err(CliError::Message(e));
        }
        let w = |e| CliError::io("writing the output")(e);
        let progress = m
            .progress_detail
            .as_ref()
            .filter(|p| p.current.is_some() || p.total.is_some());
        let has_progress = m.progress_detail.is_some() || m.progress.is_some();
        let mut diff = 0;
        let id = m.id.clone().unwrap_or_default();
        if !id.is_empty() && has_progress {
            let n = self.ids.len();
            let line = *self.ids.entry(id.clone()).or_insert_with(|| n);
            if line == n && self.terminal {
                writeln!(self.out).map_err(w)?;
            }
            diff = self.ids.len() - line;
            if self.terminal {
                write!(self.out, "\x1b[{diff}A").map_err(w)?;
            }
        } else {
            self.ids.clear();
        }
        let bar = progress
            .map(|p| progress_bar(p.current.unwrap_or(0), p.total.unwrap_or(0), self.width))
            .unwrap_or_default();
        let mut endl = "";
        let detail = m.progress_detail.is_some();
        if self.terminal && m.stream.is_none() && detail {
            write!(self.out, "\x1b[2K\r").map_err(w)?;
            endl = "\r";
        } else if !bar.is_empty() {
            // Progress updates are for terminals.
            return Ok(());
        }
        if !id.is_empty() {
            write!(self.out, "{id}: ").map_err(w)?;
        }
        let status = m.status.clone().unwrap_or_default();
        if detail && self.terminal {
            write!(self.out, "{status} {bar}{endl}").map_err(w)?;
        } else if let Some(p) = m.progress.as_deref().filter(|p| !p.is_empty()) {
            write!(self.out, "{status} {p}{endl}").map_err(w)?;
        } else if let Some(s) = &m.stream {
            write!(self.out, "{s}{endl}").map_err(w)?;
        } else {
            writeln!(self.out, "{status}{endl}").map_err(w)?;
        }
        if !id.is_empty() && self.terminal && diff > 0 {
            write!(self.out, "\x1b[{diff}B").map_err(w)?;
        }
        self.out.flush().map_err(w)
    }

    /// Show every message of a JSON-lines answer.
    pub async fn stream(&mut self, lines: &mut Lines) -> Result<()> {
        while let Some(line) = lines.next_line().await? {
            let m: JsonMessage = serde_json::from_str(&line).map_err(|e| CliError::Decode {
                what: "a progress stream".into(),
                message: e.to_string(),
            })?;
            self.show(&m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(json: &str) -> JsonMessage {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn plain_output_skips_progress() {
        let mut out = Vec::new();
        let mut d = Display::new(&mut out, false, 80);
        for l in [
            r#"{"status":"Pulling from library/busybox","id":"latest"}"#,
            r#"{"status":"Pulling fs layer","progressDetail":{},"id":"0123456789ab"}"#,
            r#"{"status":"Downloading","progressDetail":{"current":100,"total":1000},"progress":"[=>  ] 100B/1kB","id":"0123456789ab"}"#,
            r#"{"status":"Pull complete","progressDetail":{},"id":"0123456789ab"}"#,
            r#"{"status":"Digest: sha256:ff"}"#,
            r#"{"stream":"Loaded image: busybox:latest\n"}"#,
        ] {
            d.show(&msg(l)).unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "latest: Pulling from library/busybox\n\
             0123456789ab: Pulling fs layer\n\
             0123456789ab: Pull complete\n\
             Digest: sha256:ff\n\
             Loaded image: busybox:latest\n"
        );
    }

    #[test]
    fn errors_end_the_stream() {
        let mut d = Display::new(Vec::new(), false, 80);
        let e = d
            .show(&msg(
                r#"{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}"#,
            ))
            .unwrap_err();
        assert_eq!(e.to_string(), "manifest unknown");
    }

    #[test]
    fn terminal_redraws_layers_in_place() {
        let mut out = Vec::new();
        let mut d = Display::new(&mut out, true, 120);
        d.show(&msg(
            r#"{"status":"Downloading","progressDetail":{"current":500,"total":1000},"id":"aa"}"#,
        ))
        .unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            format!(
                "\n\x1b[1A\x1b[2K\raa: Downloading [{}>{}]     500B/1kB\r\x1b[1B",
                "=".repeat(25),
                " ".repeat(25)
            )
        );
        assert_eq!(progress_bar(2_000_000, 4_000_000, 80), "     2MB/4MB");
    }
}
