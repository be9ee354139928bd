//! RUN steps through berth-shim: the builder's [`StepRunner`], run the
//! way berthd runs a container (a spec from `spec::build`, a shim started
//! with `--no-start`, an attach for the output, then `start`), but with
//! no record, no log and no network unless the build asks for the host's.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_api::containers::{ContainerConfig, HostConfig};
use berth_builder::exec::{RunMountKind, RunSpec, StepRunner};
use berth_shim::proto::{AttachRequest, Request};

use crate::containers::lifecycle;
use crate::server::Daemon;
use crate::spec::{self as ocispec, MountKind, Netns, ResolvedMount, SpecInput};

pub struct ShimRunner {
    pub daemon: Arc<Daemon>,
}

/// Removes a step's bundle directory, however the run ended; once the
/// shim (which may linger for its clients after the exit is recorded and
/// the container removed) is gone, in the background, so the build does
/// not wait for it.
struct Bundle {
    dir: PathBuf,
    shim: Option<i32>,
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let dir = std::mem::take(&mut self.dir);
        let Some(pid) = self
            .shim
            .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        else {
            let _ = std::fs::remove_dir_all(&dir);
            return;
        };
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = std::fs::remove_dir_all(&dir);
        });
    }
}

/// At start: the bundles of RUN steps whose shim is gone (a daemon that
/// stopped before the background removal ran, or was killed mid-build).
pub fn sweep_bundles(exec_root: &Path) {
    let Ok(rd) = std::fs::read_dir(exec_root.join("b")) else {
        return;
    };
    for e in rd.flatten() {
        let pid = std::fs::read_to_string(e.path().join("shim").join(berth_shim::files::SHIM_PID))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        if pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists()) {
            continue;
        }
        let _ = std::fs::remove_dir_all(e.path());
    }
}

fn io(what: &str, p: &Path) -> impl FnOnce(std::io::Error) -> String {
    let m = format!("{what} {}", p.display());
    move |e| format!("{m}: {e}")
}

impl StepRunner for ShimRunner {
    fn run(&self, spec: &RunSpec, output: &mut dyn FnMut(&[u8])) -> Result<i32, String> {
        let d = &self.daemon;
        let t0 = Instant::now();
        let dir = d.config.exec_root.join("b").join(&spec.id[..16]);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let mut bundle = Bundle {
            dir: dir.clone(),
            shim: None,
        };
        let hostname: String = spec.id.chars().take(12).collect();
        let (hn, hosts, resolv) = (
            dir.join("hostname"),
            dir.join("hosts"),
            dir.join("resolv.conf"),
        );
        std::fs::write(&hn, format!("{hostname}\n")).map_err(io("writing", &hn))?;
        let mut h = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
        );
        for e in &spec.extra_hosts {
            if let Some((name, ip)) = e.split_once(':') {
                h.push_str(&format!("{ip}\t{name}\n"));
            }
        }
        std::fs::write(&hosts, h).map_err(io("writing", &hosts))?;
        let rc = std::fs::read("/etc/resolv.conf").unwrap_or_default();
        std::fs::write(&resolv, rc).map_err(io("writing", &resolv))?;
        let config = ContainerConfig {
            hostname: hostname.clone(),
            user: spec.user.clone(),
            env: Some(spec.env.clone()),
            cmd: Some(spec.argv.clone()),
            working_dir: spec.workdir.clone(),
            ..Default::default()
        };
        let host = HostConfig {
            network_mode: if spec.network_host { "host" } else { "none" }.into(),
            privileged: spec.privileged,
            ..Default::default()
        };
        let mounts: Vec<ResolvedMount> = spec
            .mounts
            .iter()
            .map(|m| ResolvedMount {
                source: m.source.clone(),
                destination: m.target.clone(),
                kind: match m.kind {
                    RunMountKind::Bind => MountKind::Bind,
                    RunMountKind::Tmpfs => MountKind::Tmpfs,
                },
                read_only: m.read_only,
                options: m.options.clone(),
            })
            .collect();
        let rt = lifecycle::runtime(d);
        let oci = ocispec::build(&SpecInput {
            id: &spec.id,
            config: &config,
            host: &host,
            rootfs: &spec.rootfs,
            mounts: &mounts,
            hostname_path: &hn,
            hosts_path: &hosts,
            resolv_conf_path: &resolv,
            netns: if spec.network_host {
                Netns::Host
            } else {
                Netns::New
            },
            cgroups_path: lifecycle::cgroups_path(&spec.id),
            init_path: None,
            seccomp_default: true,
            system: &d.system,
            donors: Default::default(),
            shm_source: None,
        })
        .map_err(|e| e.to_string())?;
        let cfg = dir.join("config.json");
        std::fs::write(&cfg, serde_json::to_vec(&oci).expect("spec json"))
            .map_err(io("writing", &cfg))?;
        let shim_dir = dir.join("shim");
        std::fs::create_dir_all(&shim_dir).map_err(io("creating", &shim_dir))?;
        let sockets = d.config.exec_root.join("s");
        std::fs::create_dir_all(&sockets).map_err(io("creating", &sockets))?;
        let sock = sockets.join(format!("b-{}", &spec.id[..32]));
        let out = std::process::Command::new(&d.shim)
            .arg("--id")
            .arg(&spec.id)
            .arg("--bundle")
            .arg(&dir)
            .arg("--state-dir")
            .arg(&shim_dir)
            .arg("--runtime-root")
            .arg(&rt.root)
            .arg("--socket")
            .arg(&sock)
            .arg("--no-start")
            .arg("--no-log")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(io("running", &d.shim))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            return Err(msg.trim().trim_start_matches("berth-shim: ").to_string());
        }
        tracing::debug!(id = %spec.id, ms = t0.elapsed().as_millis() as u64, "build step: shim created");
        let shim_pid: Option<i32> =
            std::fs::read_to_string(shim_dir.join(berth_shim::files::SHIM_PID))
                .ok()
                .and_then(|p| p.trim().parse().ok());
        bundle.shim = shim_pid;
        let kill_shim = || {
            let _ = berth_shim::client::request(&sock, &Request::Kill { signal: 9 });
        };
        let (_, mut stream) = berth_shim::client::attach(
            &sock,
            AttachRequest {
                stdin: false,
                stdout: true,
                stderr: true,
            },
        )
        .map_err(|e| {
            kill_shim();
            format!("attaching to the RUN: {e}")
        })?;
        if let Err(e) = berth_shim::client::request(&sock, &Request::Start) {
            let msg = match e {
                berth_shim::Error::Refused { msg, .. } => msg,
                other => other.to_string(),
            };
            return Err(msg);
        }
        loop {
            match berth_shim::proto::read_frame(&mut stream) {
                Ok(Some(f)) => output(&f.data),
                Ok(None) => break,
                Err(_) => {
                    // A broken stream still ends in exit.json below.
                    let mut sink = Vec::new();
                    let _ = stream.read_to_end(&mut sink);
                    break;
                }
            }
        }
        drop(stream);
        tracing::debug!(id = %spec.id, ms = t0.elapsed().as_millis() as u64, "build step: output ended");
        let exit_path = shim_dir.join(berth_shim::files::EXIT);
        let deadline = Instant::now() + Duration::from_secs(30);
        let record = loop {
            if let Ok(raw) = std::fs::read(&exit_path)
                && let Ok(r) = serde_json::from_slice::<berth_shim::ExitRecord>(&raw)
            {
                break Some(r);
            }
            if Instant::now() > deadline
                || shim_pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists())
            {
                break std::fs::read(&exit_path)
                    .ok()
                    .and_then(|raw| serde_json::from_slice(&raw).ok());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        tracing::debug!(id = %spec.id, ms = t0.elapsed().as_millis() as u64, "build step: exit recorded");
        // The exit record is written after the shim removed the container
        // from the runtime: the snapshot is free to commit.
        match record {
            Some(r) => Ok(r.exit_code),
            None => {
                let start_err =
                    std::fs::read_to_string(shim_dir.join(berth_shim::files::START_ERROR))
                        .unwrap_or_default();
                Err(if start_err.trim().is_empty() {
                    "the RUN's shim ended without an exit record".into()
                } else {
                    start_err.trim().to_string()
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_keeps_only_bundles_with_a_live_shim() {
        let t = tempfile::tempdir().unwrap();
        let bundle = |name: &str, pid: Option<u32>| {
            let shim = t.path().join("b").join(name).join("shim");
            std::fs::create_dir_all(&shim).unwrap();
            if let Some(p) = pid {
                std::fs::write(shim.join(berth_shim::files::SHIM_PID), p.to_string()).unwrap();
            }
        };
        // A pid that was ours and is reaped: nobody's now (for a while).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        bundle("dead", Some(dead));
        bundle("nopid", None);
        bundle("live", Some(std::process::id()));
        sweep_bundles(t.path());
        let left: Vec<String> = std::fs::read_dir(t.path().join("b"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["live"]);
    }
}
