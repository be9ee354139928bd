//! Code that runs in the processes the runtime clones.
//!
//! Creation takes two clones. Stage 1 joins namespaces given by path,
//! creates the user namespace (the runtime writes its id maps), then the
//! other namespaces; a pid or time namespace only applies to children, so
//! stage 1 clones the init into them with CLONE_PARENT, reports its pid
//! and exits. The init builds the root filesystem, sets up the process,
//! reports ready and blocks on exec.fifo until `start`.
//!
//! Both run in a fork of the (single-threaded) runtime, so they read the
//! plan built before the clone directly. Failures go to the runtime as an
//! `Error` message naming what failed, then the process exits.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::channel::{Channel, Msg};
use super::clone::{Forked, clone_process, exit_child};
use super::setup::{self, ProcessPlan};
use crate::cgroups::{CgroupMount, Placement};
use crate::config::Bundle;
use crate::namespaces::Namespaces;
use crate::rootfs::{self, RootfsConfig};
use crate::syscall::{LinuxSyscall, Syscall};

/// Everything the init needs, prepared by the runtime before cloning.
#[derive(Debug)]
pub struct InitPlan<'a> {
    pub id: &'a str,
    pub bundle: &'a Bundle,
    pub namespaces: &'a Namespaces,
    pub placement: Placement,
    pub cgroup_mounts: Vec<CgroupMount>,
    pub process: ProcessPlan,
    /// Connection to the console socket (terminal containers).
    pub console: Option<OwnedFd>,
    /// O_PATH fd of exec.fifo.
    pub fifo: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub apparmor_enabled: bool,
    /// Whether the runtime runs prestart/createRuntime hooks, so the init
    /// must stop and wait for them.
    pub runtime_hooks: bool,
    /// The container's state.json, which the runtime writes before `Go`
    /// and createContainer/startContainer hooks receive.
    pub state_file: PathBuf,
}

/// Close an fd the plan owns. Safe only in a cloned child, which never runs
/// the plan's destructors (it execs or `_exit`s), so nothing closes it twice.
fn close_borrowed(fd: Option<&OwnedFd>) {
    if let Some(fd) = fd {
        // SAFETY: see above.
        unsafe { libc::close(fd.as_raw_fd()) };
    }
}

fn report(chan: &Channel, err: String) -> ! {
    let _ = chan.send(&Msg::Error(err));
    exit_child(1)
}

fn recv_go(chan: &Channel) -> Result<(), String> {
    chan.expect(&Msg::Go).map(drop).map_err(|e| e.to_string())
}

/// Stage 1 of creation. Never returns.
pub fn stage1(plan: &InitPlan<'_>, chan: &Channel, in_cgroup: bool) -> ! {
    // First of all, and before a cgroup namespace is made: the cgroup.
    if let Err(e) = plan.placement.join_self(in_cgroup) {
        report(chan, format!("joining the container's cgroup: {e}"));
    }
    // A host directory fd must not live on into the container, where a
    // cwd of /proc/self/fd/N would reach the host through it.
    close_borrowed(plan.placement.clone_into.as_ref());
    match stage1_inner(plan, chan) {
        Ok(()) => exit_child(0),
        Err(e) => report(chan, e),
    }
}

fn stage1_inner(plan: &InitPlan<'_>, chan: &Channel) -> Result<(), String> {
    let sys = LinuxSyscall;
    recv_go(chan)?;
    plan.namespaces.join_all(&sys).map_err(|e| e.to_string())?;
    for j in &plan.namespaces.joins {
        close_borrowed(Some(&j.fd));
    }
    if plan.namespaces.new_user {
        sys.unshare(CloneFlags::CLONE_NEWUSER)
            .map_err(|e| format!("creating user namespace: {e}"))?;
        chan.send(&Msg::MapIds).map_err(|e| e.to_string())?;
        chan.expect(&Msg::IdsMapped).map_err(|e| e.to_string())?;
    }
    if plan.namespaces.new_user || plan.namespaces.joins_user() {
        become_ns_root(&sys)?;
    }
    plan.namespaces
        .unshare_rest(&sys)
        .map_err(|e| e.to_string())?;
    if plan.namespaces.new.bits() & crate::namespaces::CLONE_NEWTIME != 0 {
        write_time_offsets(plan.bundle.spec.linux().as_ref())?;
    }
    // SAFETY: this process is a single-threaded fork of the runtime.
    match unsafe { clone_process(libc::CLONE_PARENT as u64, None) } {
        Ok(Forked::Child { .. }) => init(plan, chan),
        Ok(Forked::Parent { pid, .. }) => chan
            .send(&Msg::InitPid(pid.as_raw()))
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("cloning container init: {e}")),
    }
}

/// In a user namespace, act as its root: the namespace's capabilities
/// are ours already, but files we create should belong to its root.
fn become_ns_root(sys: &dyn Syscall) -> Result<(), String> {
    // A namespace that does not map 0 leaves us as the overflow id; the
    // capabilities still suffice to set up the container.
    if sys.setresgid(Gid::from_raw(0)).is_ok() {
        let _ = sys.setresuid(Uid::from_raw(0));
    }
    Ok(())
}

fn write_time_offsets(linux: Option<&oci_spec::runtime::Linux>) -> Result<(), String> {
    let Some(offsets) = linux.and_then(|l| l.time_offsets().as_ref()) else {
        return Ok(());
    };
    let mut data = String::new();
    for (clock, off) in offsets {
        data.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    std::fs::write("/proc/self/timens_offsets", data)
        .map_err(|e| format!("linux.timeOffsets: writing /proc/self/timens_offsets: {e}"))
}

fn has_ns(spec: &Spec, t: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == t))
}

/// The container init. Never returns: it execs the user's process or exits.
fn init(plan: &InitPlan<'_>, chan: &Channel) -> ! {
    let err = match init_inner(plan, chan) {
        Ok(e) => e,
        Err(e) => report(chan, e),
    };
    // Past the point where the runtime listens: the process's own stderr
    // is the only place left to say why.
    eprintln!("berth-runtime: container {}: {err}", plan.id);
    exit_child(127)
}

fn init_inner(plan: &InitPlan<'_>, chan: &Channel) -> Result<String, String> {
    let sys = LinuxSyscall;
    recv_go(chan)?;
    // The runtime is done writing our /proc entries (oom_score_adj).
    setup::make_undumpable();
    let spec = &plan.bundle.spec;
    let hooks = spec.hooks().as_ref();
    let wants_state = hooks.is_some_and(|h| {
        h.create_container().as_ref().is_some_and(|l| !l.is_empty())
            || h.start_container().as_ref().is_some_and(|l| !l.is_empty())
    });
    // Hooks get the state the runtime saved before sending Go; read while
    // the host's filesystem is still in view.
    let hook_state = if wants_state {
        let raw = std::fs::read(&plan.state_file)
            .map_err(|e| format!("reading {}: {e}", plan.state_file.display()))?;
        let st: crate::state::ContainerState = serde_json::from_slice(&raw)
            .map_err(|e| format!("reading {}: {e}", plan.state_file.display()))?;
        Some(st.oci(crate::state::Status::Creating))
    } else {
        None
    };
    // Mode bits in the config are exact; the runtime's umask must not
    // trim them.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let user_ns = has_ns(spec, LinuxNamespaceType::User);
    let cfg = RootfsConfig {
        spec,
        rootfs: &plan.bundle.rootfs,
        bundle: &plan.bundle.path,
        cgroup_mounts: &plan.cgroup_mounts,
        cgroup_ns: has_ns(spec, LinuxNamespaceType::Cgroup),
        user_ns,
        terminal: plan.process.terminal,
    };
    rootfs::prepare(&sys, &cfg).map_err(|e| e.to_string())?;
    tracing::debug!(id = plan.id, "mounts done");

    if plan.runtime_hooks {
        chan.send(&Msg::RunCreateRuntimeHooks)
            .map_err(|e| e.to_string())?;
        chan.expect(&Msg::HooksDone).map_err(|e| e.to_string())?;
    }
    if let Some(list) = hooks.and_then(|h| h.create_container().as_deref())
        && let Some(state) = &hook_state
    {
        crate::hooks::run("createContainer", list, state).map_err(|e| e.to_string())?;
    }

    // Checked and held for masking files after the switch, when the path
    // /dev/null would be the image's to define.
    let dev_null = rootfs::open_dev_null(&plan.bundle.rootfs).map_err(|e| e.to_string())?;
    rootfs::switch_root(&sys, &plan.bundle.rootfs, plan.no_pivot).map_err(|e| e.to_string())?;
    if plan.process.terminal {
        let socket = plan
            .console
            .as_ref()
            .ok_or("process.terminal is set but there is no console socket")?;
        crate::tty::setup_console(&sys, socket.as_raw_fd(), plan.process.console_size, true)
            .map_err(|e| e.to_string())?;
        close_borrowed(Some(socket));
    }
    let sysctls = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref());
    if sysctls.is_some_and(|s| !s.is_empty()) {
        rootfs::ensure_procfs("/proc/sys").map_err(|e| format!("linux.sysctl: {e}"))?;
    }
    if let Some(sysctls) = sysctls {
        for (key, value) in sysctls {
            let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
            std::fs::write(&path, value).map_err(|e| format!("linux.sysctl.{key}: {e}"))?;
        }
    }
    rootfs::finish(&sys, spec, user_ns, &dev_null).map_err(|e| e.to_string())?;
    tracing::debug!(id = plan.id, "root switched, paths masked");
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        sys.sethostname(h)
            .map_err(|e| format!("hostname {h}: {e}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        sys.setdomainname(d)
            .map_err(|e| format!("domainname {d}: {e}"))?;
    }
    if !plan.no_new_keyring {
        setup::join_session_keyring(plan.id);
    }
    // A missing cwd is made, as runc and dockerd make it: inside the new
    // root already, so no path can lead out of it. A failure (a read-only
    // root) is for chdir to report.
    if let Err(e) = std::fs::create_dir_all(&plan.process.cwd) {
        tracing::debug!("creating process.cwd {}: {e}", plan.process.cwd.display());
    }

    let listener = setup::apply(
        &sys,
        &plan.process,
        plan.apparmor_enabled,
        plan.preserve_fds,
    )?;
    if let Some(fd) = listener {
        chan.send_with_fds(&Msg::SeccompListener, &[fd.as_raw_fd()])
            .map_err(|e| e.to_string())?;
    }
    let program = setup::resolve_program(&plan.process)?;
    setup::clear_cloexec(3..3 + plan.preserve_fds as RawFd);
    // A /proc of the image's making would turn the reopen below into a
    // write to some file, and an exec before `start`.
    rootfs::ensure_procfs("/proc/self/fd").map_err(|e| format!("exec.fifo: {e}"))?;
    chan.send(&Msg::Ready).map_err(|e| e.to_string())?;

    // Block until `start` opens the other end of exec.fifo.
    let fifo = plan.fifo.as_ref().ok_or("no exec.fifo")?;
    let path = CString::new(format!("/proc/self/fd/{}", fifo.as_raw_fd())).expect("no NUL");
    // SAFETY: open of a NUL-terminated path.
    let w = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if w < 0 {
        return Ok(format!(
            "opening exec.fifo through /proc/self/fd: {} (does the container mount /proc?)",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: one byte from a static buffer to the fd we just opened. The
    // fd stays open: exec closes it, which tells `start` we got that far.
    unsafe { libc::write(w, b"0".as_ptr().cast(), 1) };

    if let Some(list) = hooks.and_then(|h| h.start_container().as_deref())
        && let Some(state) = &hook_state
        && let Err(e) = crate::hooks::run("startContainer", list, state)
    {
        return Ok(e.to_string());
    }
    Ok(setup::exec(&plan.process, &program))
}

/// A process `exec` adds to a running container: what stage 1 and the
/// init do for creation, minus everything the container has already.
#[derive(Debug)]
pub struct TenantPlan<'a> {
    pub namespaces: &'a Namespaces,
    pub placement: Placement,
    pub process: ProcessPlan,
    pub console: Option<OwnedFd>,
    pub preserve_fds: u32,
    pub apparmor_enabled: bool,
}

/// First process of an exec: join, clone the tenant into the pid
/// namespace, report its pid. Never returns.
pub fn tenant_stage1(plan: &TenantPlan<'_>, chan: &Channel, in_cgroup: bool) -> ! {
    let result = (|| -> Result<(), String> {
        let sys = LinuxSyscall;
        plan.placement
            .join_self(in_cgroup)
            .map_err(|e| format!("joining the container's cgroup: {e}"))?;
        recv_go(chan)?;
        plan.namespaces.join_all(&sys).map_err(|e| e.to_string())?;
        // SAFETY: single-threaded fork of the runtime.
        match unsafe { clone_process(libc::CLONE_PARENT as u64, None) } {
            Ok(Forked::Child { .. }) => tenant(plan, chan),
            Ok(Forked::Parent { pid, .. }) => chan
                .send(&Msg::InitPid(pid.as_raw()))
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("cloning process: {e}")),
        }
    })();
    match result {
        Ok(()) => exit_child(0),
        Err(e) => report(chan, e),
    }
}

fn tenant(plan: &TenantPlan<'_>, chan: &Channel) -> ! {
    let result = (|| -> Result<String, String> {
        let sys = LinuxSyscall;
        recv_go(chan)?;
        setup::make_undumpable();
        if plan.process.terminal {
            let socket = plan
                .console
                .as_ref()
                .ok_or("terminal requested without a console socket")?;
            crate::tty::setup_console(&sys, socket.as_raw_fd(), plan.process.console_size, false)
                .map_err(|e| e.to_string())?;
            close_borrowed(Some(socket));
        }
        let listener = setup::apply(
            &sys,
            &plan.process,
            plan.apparmor_enabled,
            plan.preserve_fds,
        )?;
        if let Some(fd) = listener {
            chan.send_with_fds(&Msg::SeccompListener, &[fd.as_raw_fd()])
                .map_err(|e| e.to_string())?;
        }
        let program = setup::resolve_program(&plan.process)?;
        setup::clear_cloexec(3..3 + plan.preserve_fds as RawFd);
        chan.send(&Msg::Ready).map_err(|e| e.to_string())?;
        Ok(setup::exec(&plan.process, &program))
    })();
    match result {
        // exec failed after Ready: the runtime still listens until the
        // channel closes, so it learns why.
        Ok(e) | Err(e) => report(chan, e),
    }
}
