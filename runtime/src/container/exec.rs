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
        let namespaces =
            Namespaces::for_exec(linux.namespaces().as_deref().unwrap_or_default(), state.pid)?;
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
        let mut started: Option<Pid> = None;
        let fail = |e: Error, started: Option<Pid>| {
            let _ = nix::sys::signal::kill(stage1, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(stage1, None);
            if let Some(p) = started {
                let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(p, None);
            }
            e
        };
        if let Err(e) = chan.send(&Msg::Go) {
            return Err(fail(io("sync socket")(e), None));
        }
        loop {
            let (msg, fds) = match chan.recv() {
                Ok(Some(m)) => m,
                Ok(None) => {
                    return Err(fail(
                        Error::Child("exec process exited before it was ready".into()),
                        started,
                    ));
                }
                Err(e) => return Err(fail(io("sync socket")(e), started)),
            };
            match msg {
                Msg::InitPid(pid) => {
                    let _ = waitpid(stage1, None);
                    started = Some(Pid::from_raw(pid));
                    if let Err(e) = set_oom_score_adj(pid, process.oom_score_adj()) {
                        return Err(fail(e, started));
                    }
                    if let Err(e) = chan.send(&Msg::Go) {
                        return Err(fail(io("sync socket")(e), started));
                    }
                }
                Msg::SeccompListener => {
                    let (Some(fd), Some((path, meta)), Some(pid)) =
                        (fds.first(), &listener_target, started)
                    else {
                        return Err(fail(
                            Error::Invalid(
                                "linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"
                                    .into(),
                            ),
                            started,
                        ));
                    };
                    if let Err(e) = forward_listener(
                        fd,
                        path,
                        meta.as_deref(),
                        pid.as_raw(),
                        &state.oci(Status::Running),
                    ) {
                        return Err(fail(e, started));
                    }
                }
                Msg::Ready => break,
                Msg::Error(e) => return Err(fail(Error::Child(e), started)),
                other => {
                    return Err(fail(
                        Error::Child(format!("sync protocol: unexpected {other:?}")),
                        started,
                    ));
                }
            }
        }
        let pid = started.expect("Ready follows InitPid");
        // The channel closes on exec; an error before that is an exec failure.
        if let Ok(Some((Msg::Error(e), _))) = chan.recv() {
            let _ = waitpid(pid, None);
            return Err(Error::Child(e));
        }
        let console = match console_back {
            Some(sock) => Some(crate::tty::recv_fd(sock.as_raw_fd())?),
            None => None,
        };
        if let Some(p) = &opts.pid_file {
            crate::state::write_pid_file(p, pid.as_raw())?;
        }
        Ok(Started {
            pid: pid.as_raw(),
            console,
        })
    }
}
