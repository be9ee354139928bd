//! start, state, kill, delete, list, pids.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::Runtime;
use crate::cgroups::{AnyManager, CgroupManager, FreezerState};
use crate::config::parse_spec;
use crate::error::{Error, Result, io, sys};
use crate::process::pidfd::PidFd;
use crate::state::{ContainerState, OciState, StateDir, StateError, Status, list_ids};

/// How long delete waits for killed processes to go.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Runtime {
    fn config_of(&self, dir: &StateDir) -> Result<oci_spec::runtime::Spec> {
        let path = dir.config_path();
        let raw = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
        Ok(parse_spec(&raw, &path)?)
    }

    /// Let a created container's process exec: open the other end of
    /// exec.fifo, which the init is blocked on.
    pub fn start(&self, id: &str) -> Result<()> {
        let (dir, state) = self.open(id)?;
        let _lock = dir.lock()?;
        let status = state.status(&dir);
        if status != Status::Created {
            return Err(Self::wrong_state(
                id,
                format!("cannot start a container that is {status}"),
            ));
        }
        let pidfd = PidFd::open(state.pid).map_err(sys("opening the init's pidfd"))?;
        // The pidfd pins the process: re-check it is the init we recorded.
        if !state.init_alive() {
            return Err(Self::wrong_state(
                id,
                "cannot start a container that is stopped",
            ));
        }
        let fifo_path = dir.fifo_path();
        let c = std::ffi::CString::new(fifo_path.as_os_str().as_encoded_bytes()).expect("no NUL");
        // A non-blocking reader never hangs on a dead init. The init writes
        // one byte, then keeps its close-on-exec write end open until it
        // execs the user's process: the hang-up that follows tells us the
        // process runs, which poststart hooks and callers rely on.
        // SAFETY: open of a NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io("opening exec.fifo")(std::io::Error::last_os_error()));
        }
        // SAFETY: new fd from open.
        let fifo = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut got = false;
        loop {
            let mut fds = [
                PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
                PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(sys("waiting on exec.fifo")(e)),
                Ok(_) => {}
            }
            let fifo_ev = fds[0].revents().unwrap_or(PollFlags::empty());
            let exited = fds[1].revents().is_some_and(|r| !r.is_empty());
            if fifo_ev.contains(PollFlags::POLLIN) {
                let mut b = [0u8; 1];
                match nix::unistd::read(&fifo, &mut b) {
                    Ok(1) => got = true,
                    Ok(_) | Err(Errno::EAGAIN) => {}
                    Err(e) => return Err(sys("reading exec.fifo")(e)),
                }
            }
            if got && (fifo_ev.contains(PollFlags::POLLHUP) || exited) {
                break;
            }
            if !got && (exited || fifo_ev.contains(PollFlags::POLLHUP)) {
                return Err(Error::Child(format!(
                    "container {id}: init exited before it was started"
                )));
            }
        }
        std::fs::remove_file(&fifo_path).map_err(io("removing exec.fifo"))?;
        tracing::debug!(id, pid = state.pid, "container started");

        let spec = self.config_of(&dir)?;
        if let Some(list) = spec.hooks().as_ref().and_then(|h| h.poststart().as_deref()) {
            // The spec makes poststart failures warnings: the process runs.
            if let Err(e) = crate::hooks::run("poststart", list, &state.oci(Status::Running)) {
                tracing::warn!("{e}");
            }
        }
        Ok(())
    }

    /// The OCI state of a container.
    pub fn state(&self, id: &str) -> Result<OciState> {
        let (dir, state) = self.open(id)?;
        Ok(state.oci(state.status(&dir)))
    }

    /// Send `signal` to the init, or with `all` to every process in the
    /// container's cgroup.
    pub fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<()> {
        let (dir, state) = self.open(id)?;
        if state.status(&dir) == Status::Stopped {
            return Err(Self::wrong_state(id, "container is not running"));
        }
        if all {
            let manager = AnyManager::from_state(&state.cgroup);
            // Frozen, no process can fork a child the snapshot misses.
            let froze =
                !manager.frozen().unwrap_or(true) && manager.freeze(FreezerState::Frozen).is_ok();
            let result = manager.pids().map_err(Error::from).and_then(|pids| {
                for pid in pids {
                    match kill(pid, signal) {
                        Ok(()) | Err(Errno::ESRCH) => {}
                        Err(e) => return Err(sys(format!("signalling pid {pid}"))(e)),
                    }
                }
                Ok(())
            });
            if froze {
                manager.freeze(FreezerState::Thawed)?;
            }
            result?;
            if !matches!(state.cgroup, crate::cgroups::CgroupState::None) {
                return Ok(());
            }
        }
        let pidfd = PidFd::open(state.pid).map_err(sys("opening the init's pidfd"))?;
        if !state.init_alive() {
            return Err(Self::wrong_state(id, "container is not running"));
        }
        pidfd
            .signal(signal)
            .map_err(sys(format!("signalling init {}", state.pid)))
    }

    /// Remove a container. A created or stopped one goes at once; a
    /// running or paused one only with `force`, which kills it first.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let dir = StateDir::open(&self.root, id)?;
        let _lock = dir.lock()?;
        let state = match dir.load() {
            Ok(s) => s,
            // A create that crashed before writing its state leaves only the
            // directory; --force clears it.
            Err(StateError::NotFound(_) | StateError::Corrupt { .. }) if force => {
                dir.remove()?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let manager = AnyManager::from_state(&state.cgroup);
        let status = state.status(&dir);
        match status {
            // Without a pid namespace, processes can outlive the init; they
            // are the container's, and its cgroup cannot go while they live.
            Status::Stopped => {
                if !manager.pids().unwrap_or_default().is_empty() {
                    kill_all(&state, &manager)?;
                }
            }
            Status::Created => kill_all(&state, &manager)?,
            Status::Creating | Status::Running | Status::Paused if force => {
                kill_all(&state, &manager)?
            }
            _ => {
                return Err(Self::wrong_state(
                    id,
                    format!(
                        "cannot delete a container that is {status}: stop it first or use --force"
                    ),
                ));
            }
        }
        manager.remove()?;
        if let Ok(spec) = self.config_of(&dir)
            && let Some(list) = spec.hooks().as_ref().and_then(|h| h.poststop().as_deref())
            && let Err(e) = crate::hooks::run("poststop", list, &state.oci(Status::Stopped))
        {
            tracing::warn!("{e}");
        }
        dir.remove()?;
        tracing::debug!(id, "container deleted");
        Ok(())
    }

    /// Every container under the root, with its current status.
    pub fn list(&self) -> Result<Vec<OciState>> {
        let mut out = Vec::new();
        for id in list_ids(&self.root)? {
            let Ok(dir) = StateDir::open(&self.root, &id) else {
                continue;
            };
            match dir.load() {
                Ok(state) => out.push(state.oci(state.status(&dir))),
                Err(StateError::NotFound(_)) => {}
                Err(e) => tracing::warn!("{e}"),
            }
        }
        Ok(out)
    }

    /// The host pids of the container's processes.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let (dir, state) = self.open(id)?;
        if state.status(&dir) == Status::Stopped {
            return Ok(Vec::new());
        }
        let mut pids: Vec<i32> = AnyManager::from_state(&state.cgroup)
            .pids()?
            .into_iter()
            .map(Pid::as_raw)
            .collect();
        if pids.is_empty() {
            pids.push(state.pid);
        }
        pids.sort_unstable();
        Ok(pids)
    }
}

/// SIGKILL every process of the container and wait until they are gone,
/// so the cgroup can be removed.
fn kill_all(state: &ContainerState, manager: &AnyManager) -> Result<()> {
    let init = PidFd::open(state.pid).ok().filter(|_| state.init_alive());
    if let Some(p) = &init {
        let _ = p.signal(Signal::SIGKILL);
    }
    for pid in manager.pids().unwrap_or_default() {
        let _ = kill(pid, Signal::SIGKILL);
    }
    // cgroup v1 holds frozen tasks' SIGKILL until they thaw.
    if manager.frozen().unwrap_or(false) {
        manager.freeze(FreezerState::Thawed)?;
    }
    if let Some(p) = &init
        && !p.wait_exit(Some(KILL_WAIT))
    {
        return Err(Error::Child(format!(
            "init {} did not exit after SIGKILL{}",
            state.pid,
            unreaped_in_pid_ns(state.pid)
        )));
    }
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        let left = manager.pids().unwrap_or_default();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Child(format!(
                "processes {left:?} did not exit after SIGKILL"
            )));
        }
        for pid in left {
            let _ = kill(pid, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A dying pid-namespace init waits until every process of its namespace
/// is reaped. Exec'd processes belong to whoever ran `exec`; name the
/// zombies still waiting for their parent.
fn unreaped_in_pid_ns(init: i32) -> String {
    let Ok(ns) = std::fs::read_link(format!("/proc/{init}/ns/pid")) else {
        return String::new();
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let same_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid"))
            .ok()
            .as_ref()
            == Some(&ns);
        if pid == init || !same_ns {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
        let mut f = rest.split_whitespace();
        if f.next() == Some("Z") {
            found.push(format!("{pid} (parent {})", f.next().unwrap_or("?")));
        }
    }
    if found.is_empty() {
        String::new()
    } else {
        format!(
            ": it waits for zombies of its pid namespace to be reaped by their parents: {}",
            found.join(", ")
        )
    }
}
