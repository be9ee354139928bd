//! What a container process becomes right before exec: user, groups,
//! capabilities, rlimits, seccomp, no_new_privs. Shared by the container
//! init and by processes `exec` adds.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{PosixRlimit, Process};

use crate::capabilities::{self, CapSets};
use crate::seccomp::{self, CompiledFilter};
use crate::syscall::Syscall;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A container process, resolved from the config before cloning so the
/// children only execute a plan.
#[derive(Debug, Clone)]
pub struct ProcessPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub path_var: String,
    pub cwd: PathBuf,
    pub uid: Uid,
    pub gid: Gid,
    pub additional_gids: Vec<Gid>,
    pub umask: Option<u32>,
    pub caps: CapSets,
    pub rlimits: Vec<PosixRlimit>,
    pub no_new_privileges: bool,
    pub apparmor_profile: Option<String>,
    pub oom_score_adj: Option<i32>,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub seccomp: Option<CompiledFilter>,
}

fn cstring(field: &str, s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{field}: {s:?} contains a NUL byte"))
}

impl ProcessPlan {
    pub fn from_process(
        p: &Process,
        seccomp: Option<CompiledFilter>,
    ) -> Result<ProcessPlan, String> {
        let args = p
            .args()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|a| cstring("process.args", a))
            .collect::<Result<Vec<_>, _>>()?;
        let env_list = p.env().as_deref().unwrap_or_default();
        let env = env_list
            .iter()
            .map(|e| cstring("process.env", e))
            .collect::<Result<Vec<_>, _>>()?;
        let path_var = env_list
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        let user = p.user();
        Ok(ProcessPlan {
            args,
            env,
            path_var,
            cwd: p.cwd().clone(),
            uid: Uid::from_raw(user.uid()),
            gid: Gid::from_raw(user.gid()),
            additional_gids: user
                .additional_gids()
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|g| Gid::from_raw(*g))
                .collect(),
            umask: user.umask(),
            caps: CapSets::from_oci(p.capabilities().as_ref()),
            rlimits: p.rlimits().clone().unwrap_or_default(),
            no_new_privileges: p.no_new_privileges().unwrap_or(false),
            apparmor_profile: p.apparmor_profile().clone().filter(|s| !s.is_empty()),
            oom_score_adj: p.oom_score_adj(),
            terminal: p.terminal().unwrap_or(false),
            console_size: p
                .console_size()
                .as_ref()
                .map(|b| (b.height() as u16, b.width() as u16)),
            seccomp,
        })
    }
}

/// Find the program to exec the way execvp would, but with the
/// container's PATH, so "not found" is reported before `start`.
pub fn resolve_program(plan: &ProcessPlan) -> Result<CString, String> {
    let arg0 = plan.args.first().ok_or("process.args is empty")?;
    let name = Path::new(std::ffi::OsStr::from_bytes(arg0.as_bytes()));
    let executable = |p: &Path| {
        std::fs::metadata(p).map(|m| m.is_file()).unwrap_or(false)
            && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
    };
    if name.as_os_str().as_bytes().contains(&b'/') {
        if !name.exists() {
            return Err(format!(
                "exec: {:?}: no such file or directory",
                name.display().to_string()
            ));
        }
        if !executable(name) {
            return Err(format!(
                "exec: {:?}: permission denied",
                name.display().to_string()
            ));
        }
        return Ok(arg0.clone());
    }
    for dir in plan.path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if executable(&candidate) {
            return CString::new(candidate.as_os_str().as_bytes()).map_err(|e| e.to_string());
        }
    }
    Err(format!(
        "exec: {:?}: executable file not found in $PATH",
        name.display().to_string()
    ))
}

/// Join a fresh session keyring named after the container, so containers
/// do not share the keys of whoever started them.
pub fn join_session_keyring(id: &str) {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    let Ok(name) = CString::new(format!("_ses.{id}")) else {
        return;
    };
    // SAFETY: keyctl with a NUL-terminated name.
    let rc = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if rc < 0 {
        // Kernels without keyrings, or quota limits in user namespaces,
        // must not stop a container.
        tracing::debug!(
            "joining session keyring: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Everything from rlimits to no_new_privs, in the order the kernel's
/// permission rules require. Returns the seccomp listener fd when the
/// profile uses notifications (installed early in that case).
///
/// Seccomp goes in before capabilities are dropped unless no_new_privs is
/// set: without it, installing a filter needs CAP_SYS_ADMIN.
pub fn apply(
    sys: &dyn Syscall,
    plan: &ProcessPlan,
    apparmor_enabled: bool,
    preserve_fds: u32,
) -> Result<Option<OwnedFd>, String> {
    // Before any seccomp filter, which could refuse close_range: nothing of
    // the runtime's may reach the container's process.
    cloexec_from(3 + preserve_fds)?;
    sys.chdir(&plan.cwd)
        .map_err(|e| format!("process.cwd {}: {e}", plan.cwd.display()))?;
    // A cwd like /proc/self/fd/N names whatever fd N is; if that is a
    // directory of the host's, the process would start outside its root
    // (CVE-2024-21626). The kernel reports such a cwd as unreachable.
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => {}
        _ => {
            return Err(format!(
                "process.cwd {}: resolves outside the container's root",
                plan.cwd.display()
            ));
        }
    }
    if let Some(profile) = &plan.apparmor_profile {
        if apparmor_enabled {
            crate::apparmor::apply_on_exec(profile)
                .map_err(|e| format!("process.apparmorProfile {profile}: {e}"))?;
        } else {
            tracing::debug!("AppArmor is not enabled on this host; profile {profile} skipped");
        }
    }
    crate::rlimit::apply(&plan.rlimits).map_err(|e| e.to_string())?;

    let mut listener = None;
    let early_seccomp = plan
        .seccomp
        .as_ref()
        .filter(|f| !plan.no_new_privileges || f.notify);
    if let Some(filter) = early_seccomp {
        listener = seccomp::install(filter).map_err(|e| e.to_string())?;
    }

    capabilities::drop_bounding(&plan.caps).map_err(|e| e.to_string())?;
    // Keep the permitted set across the uid change; apply() trims it.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    match sys.setgroups(&plan.additional_gids) {
        Ok(()) => {}
        // A user namespace whose setgroups is denied cannot set groups; only
        // an explicit request for additional groups makes that an error.
        Err(nix::errno::Errno::EPERM) if plan.additional_gids.is_empty() => {}
        Err(e) => return Err(format!("process.user.additionalGids: {e}")),
    }
    sys.setresgid(plan.gid)
        .map_err(|e| format!("process.user.gid {}: {e}", plan.gid))?;
    sys.setresuid(plan.uid)
        .map_err(|e| format!("process.user.uid {}: {e}", plan.uid))?;
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    capabilities::apply(&plan.caps).map_err(|e| e.to_string())?;
    if plan.no_new_privileges {
        // SAFETY: as above.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(format!(
                "process.noNewPrivileges: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    if let Some(mask) = plan.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    } else {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    }
    Ok(listener)
}

/// Mark every fd from `first` on close-on-exec.
fn cloexec_from(first: u32) -> Result<(), String> {
    // SAFETY: close_range marking fds close-on-exec; nothing is closed now.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // Kernels before 5.11: walk the open fds instead.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| format!("listing open fds: {e}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first as i32)
        .collect();
    for fd in fds {
        // SAFETY: fcntl on an integer fd; one that is gone by now fails harmlessly.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Keep other processes of the container, which may share our uid and
/// capabilities, from reading our memory or /proc/<pid>/fd while we still
/// hold the runtime's fds. exec makes the process dumpable again.
pub fn make_undumpable() {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

/// The last steps: the late seccomp filter, a clean signal state, and
/// exec. Returns only on failure.
pub fn exec(plan: &ProcessPlan, program: &CString) -> String {
    if plan.no_new_privileges
        && let Some(filter) = plan.seccomp.as_ref().filter(|f| !f.notify)
        && let Err(e) = seccomp::install(filter)
    {
        return e.to_string();
    }
    // Rust ignores SIGPIPE, and ignored signals survive exec: `yes | head`
    // would misbehave in the container. Blocked signals survive it too.
    // SAFETY: resetting a disposition and the mask before exec.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
    match nix::unistd::execve(program, &plan.args, &plan.env) {
        Err(e) => format!("exec {}: {e}", program.to_string_lossy()),
        Ok(never) => match never {},
    }
}

/// Undo the close-on-exec a preserved fd may carry, so it survives exec.
pub fn clear_cloexec(fds: impl Iterator<Item = i32>) {
    for fd in fds {
        // SAFETY: fcntl on an integer fd; errors (fd not open) are ignored.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            }
        }
    }
}

pub fn raw(fd: &OwnedFd) -> i32 {
    fd.as_raw_fd()
}
