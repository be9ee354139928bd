//! Writing a new user namespace's uid and gid maps: directly as root,
//! through the setuid newuidmap/newgidmap helpers otherwise.

use std::path::PathBuf;
use std::process::Command;

use nix::unistd::{Pid, getegid, geteuid};
use oci_spec::runtime::LinuxIdMapping;

#[derive(Debug, thiserror::Error)]
pub enum IdMapError {
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("running {tool}: {source} (install the uidmap package)")]
    Spawn {
        tool: &'static str,
        source: std::io::Error,
    },
    #[error("{tool} failed: {stderr}")]
    Tool { tool: &'static str, stderr: String },
}

fn format_map(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

fn write(pid: Pid, file: &str, data: &str) -> Result<(), IdMapError> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::write(&path, data).map_err(|source| IdMapError::Write { path, source })
}

/// An unprivileged process may map exactly its own id, once.
fn only_self(maps: &[LinuxIdMapping], own: u32) -> bool {
    maps.len() == 1 && maps[0].size() == 1 && maps[0].host_id() == own
}

fn run_tool(tool: &'static str, pid: Pid, maps: &[LinuxIdMapping]) -> Result<(), IdMapError> {
    let mut cmd = Command::new(tool);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd
        .output()
        .map_err(|source| IdMapError::Spawn { tool, source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(IdMapError::Tool { tool, stderr });
    }
    Ok(())
}

/// Write the maps of the user namespace `pid` is in.
pub fn write_id_maps(
    pid: Pid,
    uid_maps: &[LinuxIdMapping],
    gid_maps: &[LinuxIdMapping],
) -> Result<(), IdMapError> {
    if geteuid().is_root() {
        write(pid, "uid_map", &format_map(uid_maps))?;
        return write(pid, "gid_map", &format_map(gid_maps));
    }
    if only_self(uid_maps, geteuid().as_raw()) {
        write(pid, "uid_map", &format_map(uid_maps))?;
    } else {
        run_tool("newuidmap", pid, uid_maps)?;
    }
    if only_self(gid_maps, getegid().as_raw()) {
        // The kernel lets an unprivileged process write gid_map only once
        // setgroups is denied, or it could drop supplementary groups that
        // deny it access.
        write(pid, "setgroups", "deny")?;
        write(pid, "gid_map", &format_map(gid_maps))
    } else {
        run_tool("newgidmap", pid, gid_maps)
    }
}
