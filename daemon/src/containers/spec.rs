//! The OCI spec a container runs with: runc's defaults with the
//! container's command, environment, user, hostname, network mode and the
//! daemon's /etc files bound in.

use std::path::Path;

use berth_api::containers::{ContainerConfig, HostConfig};
use serde_json::{Value, json};

use crate::error::ApiError;

pub struct Files<'a> {
    pub hostname: &'a Path,
    pub hosts: &'a Path,
    pub resolv_conf: &'a Path,
}

/// The process's arguments: Entrypoint then Cmd.
pub fn command(config: &ContainerConfig) -> Vec<String> {
    let mut args = config.entrypoint.clone().unwrap_or_default();
    args.extend(config.cmd.clone().unwrap_or_default());
    args
}

pub fn build(
    config: &ContainerConfig,
    host: &HostConfig,
    rootfs: &Path,
    files: &Files,
) -> Result<Value, ApiError> {
    let args = command(config);
    if args.is_empty() {
        return Err(ApiError::InvalidParameter("no command specified".into()));
    }
    let mut spec = berth_runtime::spec::default_spec_json(false, 0, 0);
    let mut env = config.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    env.push(format!("HOSTNAME={}", config.hostname));
    if config.tty {
        env.push("TERM=xterm".into());
    }
    let (uid, gid) = numeric_user(&config.user)?;
    spec["process"]["args"] = json!(args);
    spec["process"]["env"] = json!(env);
    spec["process"]["terminal"] = json!(config.tty);
    spec["process"]["cwd"] = json!(if config.working_dir.is_empty() {
        "/"
    } else {
        &config.working_dir
    });
    spec["process"]["user"] = json!({"uid": uid, "gid": gid});
    spec["process"]["noNewPrivileges"] = json!(false);
    spec["root"] = json!({"path": rootfs, "readonly": host.readonly_rootfs});
    spec["hostname"] = json!(config.hostname);
    let mounts = spec["mounts"].as_array_mut().expect("default mounts");
    for (dest, src) in [
        ("/etc/hostname", files.hostname),
        ("/etc/hosts", files.hosts),
        ("/etc/resolv.conf", files.resolv_conf),
    ] {
        mounts.push(json!({
            "destination": dest, "type": "bind", "source": src,
            "options": ["rbind", "rprivate"]
        }));
    }
    if host.network_mode == "host" {
        let ns = spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces");
        ns.retain(|n| n["type"] != "network");
    }
    Ok(spec)
}

fn numeric_user(user: &str) -> Result<(u32, u32), ApiError> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = user.split_once(':').unwrap_or((user, "0"));
    match (u.parse(), g.parse()) {
        (Ok(u), Ok(g)) => Ok((u, g)),
        _ => Err(ApiError::InvalidParameter(format!(
            "unable to find user {user}: no matching entries in passwd file"
        ))),
    }
}
