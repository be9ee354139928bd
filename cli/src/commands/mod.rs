//! The commands: each reads its arguments, calls the API and prints what
//! docker prints.

pub mod build;
pub mod containers;
pub mod cp;
pub mod create_opts;
pub mod images;
pub mod inspect;
pub mod networks;
pub mod stats;
pub mod system;
pub mod volumes;

use std::io::{IsTerminal, Write};

use crate::error::{CliError, Result};

/// docker's `--filter k=v` list as the API's `filters` JSON
/// (`{"k":{"v":true}}`); empty: None.
pub fn filters_json(filters: &[String]) -> Result<Option<String>> {
    let mut map: std::collections::BTreeMap<String, std::collections::BTreeMap<String, bool>> =
        Default::default();
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            return Err(CliError::Usage(format!(
                "invalid argument \"{f}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)"
            )));
        };
        map.entry(k.trim().to_lowercase())
            .or_default()
            .insert(v.to_string(), true);
    }
    Ok((!map.is_empty()).then(|| serde_json::to_string(&map).expect("filters serialize")))
}

/// Write to stdout; a closed pipe ends quietly.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::Status(0)),
        r => r.map_err(CliError::io("writing to stdout")),
    }
}

pub fn eprint(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// docker's prune report: the deleted names under `title`, then the space.
pub fn prune_report(title: &str, deleted: Option<Vec<String>>, space: i64) -> String {
    let mut out = String::new();
    if let Some(names) = deleted.filter(|d| !d.is_empty()) {
        out.push_str(title);
        out.push('\n');
        for n in names {
            out.push_str(&n);
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        crate::units::human_size(space as f64)
    ));
    out
}

/// docker's prune prompt: `Are you sure you want to continue? [y/N] `.
pub fn confirm(warning: &str) -> Result<bool> {
    print(&format!(
        "{warning}\nAre you sure you want to continue? [y/N] "
    ))?;
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(CliError::io("reading the answer"))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// The terminal's width, 80 when unknown.
pub fn terminal_width() -> usize {
    terminal_size(libc::STDOUT_FILENO).map_or(80, |(_, w)| w as usize)
}

/// (rows, columns) of the terminal on `fd`.
pub fn terminal_size(fd: i32) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// docker's familiar form of a reference: without `docker.io/library/`.
pub fn familiar(name: &str) -> String {
    let n = name.strip_prefix("docker.io/").unwrap_or(name);
    n.strip_prefix("library/").unwrap_or(n).to_string()
}

/// Split `name[:tag]` (a port in the registry part is no tag).
pub fn split_tag(name: &str) -> (&str, Option<&str>) {
    if name.contains('@') {
        return (name, None);
    }
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_docker_json() {
        assert_eq!(filters_json(&[]).unwrap(), None);
        assert_eq!(
            filters_json(&["dangling=true".into(), "label=a=b".into(), "label=c".into()])
                .unwrap()
                .unwrap(),
            r#"{"dangling":{"true":true},"label":{"a=b":true,"c":true}}"#
        );
        let e = filters_json(&["nope".into()]).unwrap_err();
        assert!(e.to_string().contains("expected name=value"), "{e}");
    }

    #[test]
    fn names() {
        assert_eq!(familiar("docker.io/library/busybox"), "busybox");
        assert_eq!(familiar("docker.io/me/x"), "me/x");
        assert_eq!(familiar("localhost:5000/x"), "localhost:5000/x");
        assert_eq!(split_tag("localhost:5000/x"), ("localhost:5000/x", None));
        assert_eq!(
            split_tag("localhost:5000/x:1"),
            ("localhost:5000/x", Some("1"))
        );
        assert_eq!(split_tag("busybox"), ("busybox", None));
        assert_eq!(split_tag("a@sha256:ff"), ("a@sha256:ff", None));
    }
}
