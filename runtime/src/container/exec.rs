//! `exec`: another process in a running container's namespaces and cgroup.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use super::create::{forward_listener, set_oom_score_adj};
use super::{Console, Runtime, Started};
use crate::cgroups::AnyManager;
use crate::error::{Error, Result, io, sys};
use crate::namespaces::Namespaces;
use crate::process::channel::{self, Msg};
use crate::process::clone::{Forked, clone_process, ensure_single_threaded};
use crate::process::init::{self, TenantPlan};
use crate::process::setup::ProcessPlan;
use crate::state::Status;

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub console: Console,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
}

impl Runtime {
    /// The container's own process, the base that `exec` arguments
    /// override.
    pub fn container_process(&self, id: &str) -> Result<Process> {
        let (dir, _) = self.open(id)?;
        let spec = self.config_of_dir(&dir)?;
        spec.process()
            .clone()
            .ok_or_else(|| Error::Invalid("the container's config has no process".into()))
    }

    fn config_of_dir(&self, dir: &crate::state::StateDir) -> Result<oci_spec::runtime::Spec> {
        let path = dir.config_path();
        let raw = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
        Ok(crate::config::parse_spec(&raw, &path)?)
    }

    /// Start `process` inside container `id`. Returns once it has exec'd
    /// (or failed to, with the reason).
    pub fn exec(&self, id: &str, process: &Process, opts: &ExecOptions) -> Result<Started> {
        ensure_single_threaded().map_err(Error::Threads)?;
        super::create::check_preserved_fds(opts.preserve_fds)?;
        let (dir, state) = self.open(id)?;
        match state.status(&dir) {
            Status::Created | Status::Running => {}
            s => {
                return Err(Self::wrong_state(
                    id,
                    format!("cannot exec in a container that is {s}"),
                ));
            }
        }
        crate::config::validate_process(process, "process")?;
        let spec = self.config_of_dir(&dir)?;
        let linux = spec
            .linux()
            .as_ref()
            .ok_or_else(|| Error::Invalid("config has no linux section".into()))?;
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
        // Pin the init while opening /proc/<pid>/ns: if it exits and its pid
        // is reused meanwhile, the pidfd tells.
        let init = crate::process::pidfd::PidFd::open(state.pid)
            .map_err(sys("opening the init's pidfd"))?;
        let namespaces =
            Namespaces::for_exec(linux.namespaces().as_deref().unwrap_or_default(), state.pid)?;
        if !state.init_alive() || init.wait_exit(Some(std::time::Duration::ZERO)) {
            return Err(Self::wrong_state(
                id,
                "cannot exec in a container that is stopped",
            ));
        }
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
                    "a terminal needs --console-socket or a foreground exec".into(),
                ));
            }
        };
        let manager = AnyManager::from_state(&state.cgroup);
        let tenant_plan = TenantPlan {
            namespaces: &namespaces,
            placement: manager.placement()?,
            process: plan,
            console,
            preserve_fds: opts.preserve_fds,
            apparmor_enabled: crate::apparmor::is_enabled(),
        };
        let (chan, child_chan) = channel::pair().map_err(io("creating sync socket"))?;
        let cgroup_fd = tenant_plan
            .placement
            .clone_into
            .as_ref()
            .map(|fd| fd.as_raw_fd());
        // SAFETY: exec() checked that this process is single-threaded.
        let stage1 =
            match unsafe { clone_process(0, cgroup_fd) }.map_err(sys("cloning exec process"))? {
                Forked::Child { in_cgroup } => {
                    // SAFETY: the child's copy of our end; tenant_stage1 never returns.
                    unsafe { libc::close(chan.raw()) };
                    init::tenant_stage1(&tenant_plan, &child_chan, in_cgroup)
                }
                Forked::Parent { pid, .. } => pid,
            };
        drop(child_chan);
        drop(tenant_plan.console);
        let mut procs = Procs {
            stage1: Some(stage1),
            started: None,
        };
        chan.send(&Msg::Go).map_err(io("sync socket"))?;
        loop {
            let (msg, fds) = match chan.recv().map_err(io("sync socket"))? {
                Some(m) => m,
                None => {
                    return Err(Error::Child(
                        "exec process exited before it was ready".into(),
                    ));
                }
            };
            match msg {
                Msg::InitPid(pid) => {
                    let _ = waitpid(stage1, None);
                    procs.stage1 = None;
                    procs.started = Some(Pid::from_raw(pid));
                    set_oom_score_adj(pid, process.oom_score_adj())?;
                    chan.send(&Msg::Go).map_err(io("sync socket"))?;
                }
                Msg::SeccompListener => {
                    let (Some(fd), Some((path, meta)), Some(pid)) =
                        (fds.first(), &listener_target, procs.started)
                    else {
                        return Err(Error::Invalid(
                            "linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"
                                .into(),
                        ));
                    };
                    forward_listener(
                        fd,
                        path,
                        meta.as_deref(),
                        pid.as_raw(),
                        &state.oci(Status::Running),
                    )?;
                }
                Msg::Ready => break,
                Msg::Error(e) => return Err(Error::Child(e)),
                other => return Err(Error::Child(format!("sync protocol: unexpected {other:?}"))),
            }
        }
        let pid = procs.started.expect("Ready follows InitPid");
        // The channel closes on exec; an error before that is an exec failure.
        if let Ok(Some((Msg::Error(e), _))) = chan.recv() {
            return Err(Error::Child(e));
        }
        let console = match console_back {
            Some(sock) => Some(crate::tty::recv_fd(sock.as_raw_fd())?),
            None => None,
        };
        if let Some(p) = &opts.pid_file {
            crate::state::write_pid_file(p, pid.as_raw())?;
        }
        procs.started = None;
        Ok(Started {
            pid: pid.as_raw(),
            console,
        })
    }
}

/// The processes of an exec that failed half-way, killed and reaped on
/// drop. A reaped stage 1 is forgotten: its pid may be someone else's now.
struct Procs {
    stage1: Option<Pid>,
    started: Option<Pid>,
}

impl Drop for Procs {
    fn drop(&mut self) {
        for pid in [self.stage1, self.started].into_iter().flatten() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}
