//! `create`: from a bundle to an init blocked on exec.fifo.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{Linux, LinuxDeviceCgroup, LinuxResources};

use super::{CGROUP_MOUNTS_CACHE, Console, CreateOptions, Runtime, Started};
use crate::cgroups::{self, AnyManager, CgroupManager};
use crate::config::Bundle;
use crate::error::{Error, Result, io, sys};
use crate::namespaces::Namespaces;
use crate::process::channel::{self, Msg};
use crate::process::clone::{Forked, clone_process, ensure_single_threaded};
use crate::process::idmap::write_id_maps;
use crate::process::init::{self, InitPlan};
use crate::process::setup::ProcessPlan;
use crate::state::{CONFIG_FILE, ContainerState, OCI_VERSION, OciState, StateDir, Status};

/// Undoes a half-made container: processes, cgroup, state directory.
struct Undo {
    dir: StateDir,
    children: Vec<Pid>,
    manager: Option<AnyManager>,
    armed: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for pid in self.children.iter().rev() {
            let _ = kill(*pid, Signal::SIGKILL);
            let _ = waitpid(*pid, None);
        }
        // Hooks or a process without a pid namespace may have left more in
        // the cgroup; it cannot be removed while they live.
        if let Some(m) = &self.manager {
            for _ in 0..100 {
                let left = m.pids().unwrap_or_default();
                if left.is_empty() {
                    break;
                }
                for p in left {
                    let _ = kill(p, Signal::SIGKILL);
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        if let Some(m) = &self.manager
            && let Err(e) = m.remove()
        {
            tracing::warn!("cleaning up after failed create: {e}");
        }
        if let Err(e) = self.dir.remove() {
            tracing::warn!("cleaning up after failed create: {e}");
        }
    }
}

/// The cgroup resources to apply. A config that restricts devices must
/// still allow the devices every container gets, and the ones it asks
/// the runtime to create, as runc does.
fn cgroup_resources(linux: &Linux) -> Option<LinuxResources> {
    let mut res = linux.resources().clone()?;
    if let Some(rules) = res.devices().as_ref().filter(|r| !r.is_empty()) {
        let mut all = rules.clone();
        all.extend(cgroups::default_device_rules());
        for d in linux.devices().as_deref().unwrap_or_default() {
            let rule: LinuxDeviceCgroup = serde_json::from_value(serde_json::json!({
                "allow": true,
                "type": d.typ().as_str(),
                "major": d.major(),
                "minor": d.minor(),
                "access": "rwm",
            }))
            .expect("device rule");
            all.push(rule);
        }
        res.set_devices(Some(all));
    }
    Some(res)
}

/// The fds `--preserve-fds` passes must be open: otherwise the runtime's
/// own fds would take their numbers and reach the container.
pub(super) fn check_preserved_fds(n: u32) -> Result<()> {
    if n > 1 << 20 {
        return Err(Error::Invalid(format!("--preserve-fds {n}: too many")));
    }
    for fd in 3..3 + n as i32 {
        // SAFETY: F_GETFD only queries.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(Error::Invalid(format!(
                "--preserve-fds {n}: fd {fd} is not open"
            )));
        }
    }
    Ok(())
}

pub(super) fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

/// Set a process's oom_score_adj from the runtime: lowering it needs
/// CAP_SYS_RESOURCE, which is worth saying plainly.
pub(super) fn set_oom_score_adj(pid: i32, value: Option<i32>) -> Result<()> {
    let Some(v) = value else { return Ok(()) };
    let path = format!("/proc/{pid}/oom_score_adj");
    std::fs::write(&path, v.to_string()).map_err(|e| {
        if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) && v < 0 {
            Error::Invalid(format!(
                "process.oomScoreAdj: setting {v} needs CAP_SYS_RESOURCE, which this process lacks"
            ))
        } else {
            Error::Invalid(format!("process.oomScoreAdj: writing {v} to {path}: {e}"))
        }
    })
}

fn open_path(p: &Path) -> Result<OwnedFd> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: open of a NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io(format!("opening {}", p.display()))(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: new fd from open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Hand a seccomp notification fd to the agent at `listenerPath`, with
/// the container's state, as runc's seccomp agent protocol does.
pub(super) fn forward_listener(
    fd: &OwnedFd,
    path: &Path,
    metadata: Option<&str>,
    pid: i32,
    state: &OciState,
) -> Result<()> {
    let sock = std::os::unix::net::UnixStream::connect(path)
        .map_err(io(format!("linux.seccomp.listenerPath {}", path.display())))?;
    let msg = serde_json::json!({
        "ociVersion": OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata.unwrap_or_default(),
        "state": state,
    });
    let data = serde_json::to_vec(&msg).expect("json");
    crate::tty::send_fd(sock.as_raw_fd(), &data, fd.as_raw_fd()).map_err(sys(format!(
        "sending seccomp listener to {}",
        path.display()
    )))
}

impl Runtime {
    /// Create a container from the bundle in `opts`: everything up to the
    /// exec of its process, which waits for [`Runtime::start`]. On error
    /// nothing is left behind.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<Started> {
        ensure_single_threaded().map_err(Error::Threads)?;
        check_preserved_fds(opts.preserve_fds)?;
        let bundle = Bundle::load(&opts.bundle)?;
        tracing::debug!(id, bundle = %bundle.path.display(), "config loaded");
        let dir = StateDir::create(&self.root, id)?;
        let mut undo = Undo {
            dir: dir.clone(),
            children: Vec::new(),
            manager: None,
            armed: true,
        };
        let started = self.create_in(id, opts, &bundle, &dir, &mut undo)?;
        undo.armed = false;
        Ok(started)
    }

    fn create_in(
        &self,
        id: &str,
        opts: &CreateOptions,
        bundle: &Bundle,
        dir: &StateDir,
        undo: &mut Undo,
    ) -> Result<Started> {
        let spec = &bundle.spec;
        let process = spec.process().as_ref().expect("validated");
        let linux = spec.linux().as_ref().expect("validated");

        dir.write_atomic(CONFIG_FILE, &bundle.raw)?;
        nix::unistd::mkfifo(&dir.fifo_path(), Mode::from_bits_truncate(0o622))
            .map_err(sys("creating exec.fifo"))?;
        // The init may run as any uid by the time it opens the fifo, and
        // mkfifo's mode went through our umask.
        std::fs::set_permissions(
            dir.fifo_path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o622),
        )
        .map_err(io("setting exec.fifo permissions"))?;
        let fifo = open_path(&dir.fifo_path())?;

        let seccomp = match linux.seccomp() {
            Some(profile) => Some(crate::seccomp::compile_cached(
                profile,
                &self.seccomp_cache(),
            )?),
            None => None,
        };
        let listener_target = seccomp.as_ref().and_then(|f| {
            f.listener_path
                .clone()
                .map(|p| (p, f.listener_metadata.clone()))
        });
        let plan = ProcessPlan::from_process(process, seccomp).map_err(Error::Invalid)?;
        let namespaces = Namespaces::for_create(linux.namespaces().as_deref().unwrap_or_default())?;

        let (console, console_back) = match (&opts.console, plan.terminal) {
            (_, false) => (None, None),
            (Console::Socket(p), true) => (Some(crate::tty::connect_console_socket(p)?), None),
            (Console::Receive, true) => {
                let (a, b) = std::os::unix::net::UnixStream::pair()
                    .map_err(io("creating console socket pair"))?;
                (Some(OwnedFd::from(b)), Some(OwnedFd::from(a)))
            }
            (Console::Inherit, true) => {
                return Err(Error::Invalid(
                    "process.terminal is true: pass --console-socket, or set process.terminal to false"
                        .into(),
                ));
            }
        };

        let mut manager = AnyManager::with_cache(
            self.cgroup_manager,
            linux.cgroups_path().as_deref(),
            id,
            Some(&self.root.join(CGROUP_MOUNTS_CACHE)),
        )?;
        let resources = cgroup_resources(linux);
        let created = manager.create(resources.as_ref());
        undo.manager = Some(manager);
        if let Err(e) = created {
            let denied = matches!(&e, crate::cgroups::CgroupError::Create { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied);
            if denied && !nix::unistd::geteuid().is_root() {
                return Err(Error::Invalid(format!(
                    "{e}: without root, run with a delegated cgroup or pass --cgroup-manager none"
                )));
            }
            return Err(e.into());
        }
        let manager = undo.manager.as_ref().expect("just set");
        tracing::debug!(id, "cgroup ready");
        let cgroup_mounts = manager.container_mounts();
        let placement = manager.placement()?;

        let mut state = ContainerState {
            id: id.to_string(),
            pid: 0,
            start_time: 0,
            bundle: bundle.path.clone(),
            rootfs: bundle.rootfs.clone(),
            created: now_rfc3339(),
            owner: String::new(),
            annotations: spec
                .annotations()
                .as_ref()
                .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            cgroup: manager.state(),
            rootless: !nix::unistd::geteuid().is_root(),
            ready: false,
        };
        dir.save(&state)?;

        let hooks = spec.hooks().as_ref();
        #[allow(deprecated)]
        let prestart = hooks.and_then(|h| h.prestart().clone()).unwrap_or_default();
        let create_runtime = hooks
            .and_then(|h| h.create_runtime().clone())
            .unwrap_or_default();
        let init_plan = InitPlan {
            id,
            bundle,
            namespaces: &namespaces,
            placement,
            cgroup_mounts,
            process: plan,
            console,
            fifo: Some(fifo),
            no_pivot: opts.no_pivot,
            no_new_keyring: opts.no_new_keyring,
            preserve_fds: opts.preserve_fds,
            apparmor_enabled: crate::apparmor::is_enabled(),
            runtime_hooks: !prestart.is_empty() || !create_runtime.is_empty(),
            state_file: dir.path.join(crate::state::STATE_FILE),
        };

        let (chan, child_chan) = channel::pair().map_err(io("creating sync socket"))?;
        let cgroup_fd = init_plan
            .placement
            .clone_into
            .as_ref()
            .map(|fd| fd.as_raw_fd());
        // SAFETY: create() checked that this process is single-threaded.
        let forked = unsafe { clone_process(0, cgroup_fd) }
            .map_err(sys("cloning the container's first process"))?;
        let stage1 = match forked {
            Forked::Child { in_cgroup } => {
                // SAFETY: the child's copy of the runtime's end; stage1 never
                // returns, so no destructor will close it again.
                unsafe { libc::close(chan.raw()) };
                init::stage1(&init_plan, &child_chan, in_cgroup)
            }
            Forked::Parent { pid, .. } => {
                undo.children.push(pid);
                pid
            }
        };
        drop(child_chan);
        // The child has its own copies; ours would keep the pty open.
        drop(init_plan.console);
        chan.send(&Msg::Go).map_err(io("sync socket"))?;

        let uid_maps = linux.uid_mappings().as_deref().unwrap_or_default();
        let gid_maps = linux.gid_mappings().as_deref().unwrap_or_default();
        loop {
            let (msg, fds) = match chan.recv().map_err(io("sync socket"))? {
                Some(m) => m,
                None => {
                    return Err(Error::Child(
                        "container init exited before it was ready (see its stderr)".into(),
                    ));
                }
            };
            match msg {
                Msg::MapIds => {
                    write_id_maps(stage1, uid_maps, gid_maps)?;
                    chan.send(&Msg::IdsMapped).map_err(io("sync socket"))?;
                }
                Msg::InitPid(pid) => {
                    tracing::debug!(id, pid, "init cloned");
                    let _ = waitpid(stage1, None);
                    undo.children.retain(|p| *p != stage1);
                    undo.children.push(Pid::from_raw(pid));
                    let st = crate::state::proc_stat(pid)
                        .ok_or_else(|| Error::Child("container init exited at once".into()))?;
                    state.pid = pid;
                    state.start_time = st.start_time;
                    dir.save(&state)?;
                    set_oom_score_adj(pid, process.oom_score_adj())?;
                    chan.send(&Msg::Go).map_err(io("sync socket"))?;
                }
                Msg::RunCreateRuntimeHooks => {
                    let oci = state.oci(Status::Creating);
                    crate::hooks::run("prestart", &prestart, &oci)?;
                    crate::hooks::run("createRuntime", &create_runtime, &oci)?;
                    chan.send(&Msg::HooksDone).map_err(io("sync socket"))?;
                }
                Msg::SeccompListener => {
                    let fd = fds
                        .first()
                        .ok_or_else(|| Error::Child("seccomp listener fd missing".into()))?;
                    match &listener_target {
                        Some((path, meta)) => forward_listener(
                            fd,
                            path,
                            meta.as_deref(),
                            state.pid,
                            &state.oci(Status::Creating),
                        )?,
                        None => {
                            return Err(Error::Invalid(
                                "linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"
                                    .into(),
                            ));
                        }
                    }
                }
                Msg::Ready => {
                    tracing::debug!(id, "init ready");
                    state.ready = true;
                    dir.save(&state)?;
                    break;
                }
                Msg::Error(e) => return Err(Error::Child(e)),
                other => return Err(Error::Child(format!("sync protocol: unexpected {other:?}"))),
            }
        }
        let console = match console_back {
            Some(sock) => Some(crate::tty::recv_fd(sock.as_raw_fd())?),
            None => None,
        };
        if let Some(p) = &opts.pid_file {
            crate::state::write_pid_file(p, state.pid)?;
        }
        tracing::debug!(id, pid = state.pid, "container created");
        Ok(Started {
            pid: state.pid,
            console,
        })
    }
}
