//! Seccomp: Docker's profile format (what `--security-opt seccomp=FILE`
//! sends), its conversion to the OCI `linux.seccomp` the runtime compiles,
//! and berth's default profile.
//!
//! Docker's format is OCI's plus three things resolved here rather than
//! by the runtime: `archMap` (which compat ABIs go with the native one),
//! and per-rule `includes`/`excludes` on the container's capabilities,
//! the CPU architecture and the kernel version. So one profile can allow
//! `mount` exactly when CAP_SYS_ADMIN was added.

use oci_spec::runtime::LinuxSeccomp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::SystemInfo;
use super::error::{Result, SpecError};

/// A Docker seccomp profile (moby's `profiles/seccomp.Seccomp`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    #[serde(default)]
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch_map: Option<Vec<ArchMap>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscalls: Option<Vec<Syscall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

/// One rule. `name` is the older single-name form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Syscall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// OCI's `{index, value, valueTwo, op}`, passed through unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub includes: Filter,
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub excludes: Filter,
}

/// When a rule applies: Go architecture names (`amd64`, `arm64`, ...),
/// capability names, and a `major.minor` kernel version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arches: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

impl Filter {
    fn is_empty(&self) -> bool {
        *self == Filter::default()
    }
}

/// Go's name for the architecture berth was built for: Docker profiles
/// filter rules by it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        other => other,
    }
}

/// The libseccomp name of the native architecture, for `archMap`.
fn native_seccomp_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "x86" => "SCMP_ARCH_X86",
        "aarch64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "powerpc64" if cfg!(target_endian = "little") => "SCMP_ARCH_PPC64LE",
        "powerpc64" => "SCMP_ARCH_PPC64",
        "s390x" => "SCMP_ARCH_S390X",
        "riscv64" => "SCMP_ARCH_RISCV64",
        _ => "",
    }
}

fn cap_name(c: &str) -> String {
    let c = c.to_ascii_uppercase();
    if c.starts_with("CAP_") {
        c
    } else {
        format!("CAP_{c}")
    }
}

fn parse_kernel(v: &str) -> Result<(u32, u32)> {
    let mut parts = v.split('.');
    let mut next = || parts.next().and_then(|p| p.parse::<u32>().ok());
    match (next(), next()) {
        (Some(major), Some(minor)) => Ok((major, minor)),
        _ => Err(SpecError::Seccomp(format!(
            "invalid kernel version {v:?} in minKernel, expected MAJOR.MINOR"
        ))),
    }
}

/// Does `filter` (as `includes`) hold for this container?
fn included(f: &Filter, arch: &str, caps: &[String], sys: &SystemInfo) -> Result<bool> {
    if let Some(arches) = &f.arches
        && !arches.is_empty()
        && !arches.iter().any(|a| a == arch)
    {
        return Ok(false);
    }
    if let Some(need) = &f.caps
        && !need.iter().all(|c| caps.contains(&cap_name(c)))
    {
        return Ok(false);
    }
    if let Some(k) = &f.min_kernel
        && sys.kernel < parse_kernel(k)?
    {
        return Ok(false);
    }
    Ok(true)
}

/// Does `filter` (as `excludes`) rule the rule out?
fn excluded(f: &Filter, arch: &str, caps: &[String], sys: &SystemInfo) -> Result<bool> {
    if f.arches
        .as_ref()
        .is_some_and(|a| a.iter().any(|a| a == arch))
    {
        return Ok(true);
    }
    if f.caps
        .as_ref()
        .is_some_and(|c| c.iter().any(|c| caps.contains(&cap_name(c))))
    {
        return Ok(true);
    }
    if let Some(k) = &f.min_kernel
        && sys.kernel >= parse_kernel(k)?
    {
        return Ok(true);
    }
    Ok(false)
}

/// Parse the JSON the docker CLI puts after `seccomp=`.
pub fn parse_profile(json: &str) -> Result<Profile> {
    serde_json::from_str(json)
        .map_err(|e| SpecError::Seccomp(format!("decoding seccomp profile failed: {e}")))
}

/// A Docker profile → OCI `linux.seccomp` for a container holding `caps`
/// (`CAP_…` names), on `arch` (Go's name) and the kernel in `sys`.
pub fn to_oci(
    profile: &Profile,
    caps: &[String],
    arch: &str,
    sys: &SystemInfo,
) -> Result<LinuxSeccomp> {
    if profile.default_action.is_empty() {
        return Err(SpecError::Seccomp("defaultAction is missing".into()));
    }
    let listed = profile.architectures.as_deref().unwrap_or_default();
    let map = profile.arch_map.as_deref().unwrap_or_default();
    if !listed.is_empty() && !map.is_empty() {
        return Err(SpecError::Seccomp(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'".into(),
        ));
    }
    let mut architectures: Vec<String> = listed.to_vec();
    let native = native_seccomp_arch();
    for m in map.iter().filter(|m| m.architecture == native) {
        architectures.push(m.architecture.clone());
        architectures.extend(m.sub_architectures.iter().flatten().cloned());
    }
    for a in &architectures {
        berth_runtime::seccomp::arch_from_name(a).map_err(|e| SpecError::Seccomp(e.to_string()))?;
    }

    let mut syscalls = Vec::new();
    for (i, call) in profile.syscalls.iter().flatten().enumerate() {
        let mut names = call.names.clone().unwrap_or_default();
        if let Some(n) = &call.name {
            if !names.is_empty() {
                return Err(SpecError::Seccomp(format!(
                    "syscalls[{i}]: use either 'name' or 'names'"
                )));
            }
            names.push(n.clone());
        }
        if excluded(&call.excludes, arch, caps, sys)? || !included(&call.includes, arch, caps, sys)?
        {
            continue;
        }
        let mut s = json!({ "names": names, "action": call.action });
        if let Some(e) = call.errno_ret {
            s["errnoRet"] = e.into();
        }
        if let Some(args) = &call.args {
            s["args"] = Value::Array(args.clone());
        }
        syscalls.push(s);
    }

    let mut v = json!({ "defaultAction": profile.default_action, "syscalls": syscalls });
    if let Some(e) = profile.default_errno_ret {
        v["defaultErrnoRet"] = e.into();
    }
    if !architectures.is_empty() {
        v["architectures"] = json!(architectures);
    }
    if let Some(f) = &profile.flags {
        v["flags"] = json!(f);
    }
    if let Some(p) = &profile.listener_path {
        v["listenerPath"] = json!(p);
    }
    if let Some(m) = &profile.listener_metadata {
        v["listenerMetadata"] = json!(m);
    }
    // Through the runtime's parser so an unknown action, operator or
    // architecture is reported the way `berth-runtime` reports it.
    berth_runtime::seccomp::parse_profile(&v.to_string())
        .map_err(|e| SpecError::Seccomp(e.to_string()))
}

/// Syscalls every container may make. Written for berth in the spirit of
/// Docker's default: what ordinary programs need, nothing that reaches
/// past the container (modules, kexec, mounts, namespaces, keyrings,
/// clocks, swap, reboot, bpf, perf, io_uring, userfaultfd, ...). Names
/// that do not exist on the host's architecture are skipped by the
/// runtime.
const ALLOWED: &[&str] = &[
    // Files and directories.
    "access",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "close",
    "close_range",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "flock",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futimesat",
    "getcwd",
    "getdents",
    "getdents64",
    "lchown",
    "lchown32",
    "link",
    "linkat",
    "_llseek",
    "lseek",
    "lstat",
    "lstat64",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pread64",
    "preadv",
    "preadv2",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "rename",
    "renameat",
    "renameat2",
    "rmdir",
    "sendfile",
    "sendfile64",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "sync_file_range2",
    "arm_sync_file_range",
    "syncfs",
    "tee",
    "truncate",
    "truncate64",
    "umask",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vmsplice",
    "write",
    "writev",
    "arm_fadvise64_64",
    // Extended attributes.
    "fgetxattr",
    "flistxattr",
    "fremovexattr",
    "fsetxattr",
    "getxattr",
    "lgetxattr",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lsetxattr",
    "removexattr",
    "setxattr",
    // Polling, events, pipes.
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "fanotify_mark",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "ppoll_time64",
    "pselect6",
    "pselect6_time64",
    "select",
    "_newselect",
    "signalfd",
    "signalfd4",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    // Asynchronous I/O (not io_uring, a large attack surface).
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "io_setup",
    "io_submit",
    "ioctl",
    "ioprio_get",
    "ioprio_set",
    // Memory.
    "brk",
    "madvise",
    "membarrier",
    "memfd_create",
    "mincore",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mremap",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "remap_file_pages",
    // Processes, threads, signals.
    "arch_prctl",
    "capget",
    "capset",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "futex",
    "futex_time64",
    "futex_waitv",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrlimit",
    "getrusage",
    "getsid",
    "gettid",
    "kill",
    "modify_ldt",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "prctl",
    "prlimit64",
    "restart_syscall",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setpgid",
    "setpriority",
    "setrlimit",
    "setsid",
    "sigaltstack",
    "sigprocmask",
    "sigreturn",
    "tgkill",
    "tkill",
    "ugetrlimit",
    "vfork",
    "wait4",
    "waitid",
    "waitpid",
    "process_mrelease",
    "breakpoint",
    "cacheflush",
    "set_tls",
    "riscv_flush_icache",
    // Credentials (the kernel checks CAP_SETUID / CAP_SETGID itself).
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getuid",
    "getuid32",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setuid",
    "setuid32",
    // Time (reading; setting is CAP_SYS_TIME's, below).
    "adjtimex",
    "alarm",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "getitimer",
    "gettimeofday",
    "nanosleep",
    "setitimer",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "times",
    // Sockets (socket itself is below: AF_VSOCK reaches the hypervisor).
    "accept",
    "accept4",
    "bind",
    "connect",
    "getpeername",
    "getsockname",
    "getsockopt",
    "listen",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "send",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setsockopt",
    "shutdown",
    "socketcall",
    "socketpair",
    // System V and POSIX IPC (in the container's IPC namespace).
    "ipc",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    // Information and sandboxing.
    "getrandom",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "sysinfo",
    "uname",
];

/// Allowed only when the container holds the capability, as the kernel
/// would then allow what they do anyway.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    (
        "CAP_DAC_READ_SEARCH",
        &["name_to_handle_at", "open_by_handle_at"],
    ),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "finit_module", "init_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["ioperm", "iopl"]),
    (
        "CAP_SYS_TIME",
        &["clock_settime", "clock_settime64", "settimeofday", "stime"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// The namespace bits of clone's flags: CLONE_NEWNS, NEWCGROUP, NEWUTS,
/// NEWIPC, NEWUSER, NEWPID, NEWNET.
const CLONE_NAMESPACES: u64 = 0x7E02_0000;

/// personality(2) values that change nothing dangerous: PER_LINUX,
/// PER_LINUX32, UNAME26 alone and with PER_LINUX32, and the query.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

const AF_VSOCK: u64 = 40;

fn allow(names: &[&str]) -> Syscall {
    Syscall {
        names: Some(names.iter().map(|s| s.to_string()).collect()),
        action: "SCMP_ACT_ALLOW".into(),
        ..Default::default()
    }
}

fn arg(index: u32, value: u64, value_two: Option<u64>, op: &str) -> Value {
    let mut a = json!({ "index": index, "value": value, "op": op });
    if let Some(v2) = value_two {
        a["valueTwo"] = v2.into();
    }
    a
}

fn filter(arches: &[&str], caps: &[&str], min_kernel: Option<&str>) -> Filter {
    let list = |l: &[&str]| (!l.is_empty()).then(|| l.iter().map(|s| s.to_string()).collect());
    Filter {
        arches: list(arches),
        caps: list(caps),
        min_kernel: min_kernel.map(str::to_owned),
    }
}

/// berth's default profile, in Docker's format so it goes through the
/// same conversion as a user's profile (capability conditions included).
pub fn default_profile() -> Profile {
    let mut calls = vec![allow(ALLOWED)];
    calls.push(Syscall {
        // Before 4.8 a ptrace'd process could use ptrace to escape
        // seccomp, so these need CAP_SYS_PTRACE there.
        includes: filter(&[], &[], Some("4.8")),
        ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    });
    calls.push(Syscall {
        args: Some(vec![arg(0, AF_VSOCK, None, "SCMP_CMP_NE")]),
        ..allow(&["socket"])
    });
    for &p in PERSONALITIES {
        calls.push(Syscall {
            args: Some(vec![arg(0, p, None, "SCMP_CMP_EQ")]),
            ..allow(&["personality"])
        });
    }
    // Threads and forks, but no new namespaces, without CAP_SYS_ADMIN
    // (s390 swaps clone's first two arguments).
    calls.push(Syscall {
        args: Some(vec![arg(
            0,
            CLONE_NAMESPACES,
            Some(0),
            "SCMP_CMP_MASKED_EQ",
        )]),
        excludes: filter(&["s390", "s390x"], &["CAP_SYS_ADMIN"], None),
        ..allow(&["clone"])
    });
    calls.push(Syscall {
        args: Some(vec![arg(
            1,
            CLONE_NAMESPACES,
            Some(0),
            "SCMP_CMP_MASKED_EQ",
        )]),
        includes: filter(&["s390", "s390x"], &[], None),
        excludes: filter(&[], &["CAP_SYS_ADMIN"], None),
        ..allow(&["clone"])
    });
    // clone3 passes its flags in memory seccomp cannot read: ENOSYS makes
    // libc fall back to clone, which the rules above can check.
    calls.push(Syscall {
        names: Some(vec!["clone3".into()]),
        action: "SCMP_ACT_ERRNO".into(),
        errno_ret: Some(libc::ENOSYS as u32),
        excludes: filter(&[], &["CAP_SYS_ADMIN"], None),
        ..Default::default()
    });
    for (cap, names) in BY_CAPABILITY {
        calls.push(Syscall {
            includes: filter(&[], &[cap], None),
            ..allow(names)
        });
    }
    let map = |a: &str, subs: &[&str]| ArchMap {
        architecture: a.into(),
        sub_architectures: Some(subs.iter().map(|s| s.to_string()).collect()),
    };
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(libc::EPERM as u32),
        arch_map: Some(vec![
            map("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
            map("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"]),
            map("SCMP_ARCH_PPC64LE", &[]),
            map("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"]),
            map("SCMP_ARCH_RISCV64", &[]),
        ]),
        syscalls: Some(calls),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::{LinuxSeccompAction, LinuxSyscall};

    use super::*;
    use crate::spec::caps::DEFAULT_CAPS;

    fn sys(kernel: (u32, u32)) -> SystemInfo {
        SystemInfo {
            kernel,
            ..SystemInfo::fixed()
        }
    }

    fn default_caps() -> Vec<String> {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    }

    fn rules_for<'a>(s: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|c| c.names().iter().any(|n| n == name))
            .collect()
    }

    #[test]
    fn default_profile_compiles_for_this_host() {
        let s = to_oci(&default_profile(), &default_caps(), go_arch(), &sys((6, 1))).unwrap();
        let f = berth_runtime::seccomp::compile(&s).unwrap();
        assert!(f.program.len() < berth_runtime::seccomp::MAX_INSNS);
        // And with every capability, when every conditional block is in.
        let all: Vec<String> = crate::spec::caps::ALL_CAPS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = to_oci(&default_profile(), &all, go_arch(), &sys((6, 1))).unwrap();
        berth_runtime::seccomp::compile(&s).unwrap();
    }

    #[test]
    fn default_denies_with_eperm_and_maps_compat_arches() {
        let s = to_oci(&default_profile(), &default_caps(), "amd64", &sys((6, 1))).unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(s.default_errno_ret(), Some(1));
        if std::env::consts::ARCH == "x86_64" {
            let arches: Vec<String> = s
                .architectures()
                .iter()
                .flatten()
                .map(|a| format!("{a:?}"))
                .collect();
            assert_eq!(arches.len(), 3, "{arches:?}");
        }
        for denied in [
            "mount",
            "unshare",
            "kexec_load",
            "init_module",
            "bpf",
            "reboot",
            "keyctl",
            "add_key",
            "swapon",
            "pivot_root",
            "perf_event_open",
            "umount2",
            "setns",
            "io_uring_setup",
            "userfaultfd",
        ] {
            assert!(
                rules_for(&s, denied).is_empty(),
                "{denied} must not be allowed"
            );
        }
        assert!(!rules_for(&s, "read").is_empty());
        assert!(
            !rules_for(&s, "chroot").is_empty(),
            "CAP_SYS_CHROOT is a default cap"
        );
    }

    #[test]
    fn capability_blocks_follow_the_container_caps() {
        let mut caps = default_caps();
        caps.push("CAP_SYS_ADMIN".into());
        let s = to_oci(&default_profile(), &caps, "amd64", &sys((6, 1))).unwrap();
        assert!(!rules_for(&s, "mount").is_empty());
        assert!(!rules_for(&s, "unshare").is_empty());
        // clone is then allowed outright, not only without namespace flags.
        let clone = rules_for(&s, "clone");
        assert_eq!(clone.len(), 1);
        assert!(clone[0].args().is_none());
        assert!(
            rules_for(&s, "clone3")
                .iter()
                .all(|c| c.action() == LinuxSeccompAction::ScmpActAllow)
        );

        let caps: Vec<String> = default_caps()
            .into_iter()
            .filter(|c| c != "CAP_SYS_CHROOT")
            .collect();
        let s = to_oci(&default_profile(), &caps, "amd64", &sys((6, 1))).unwrap();
        assert!(rules_for(&s, "chroot").is_empty());
        let clone = rules_for(&s, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(
            clone[0].args().as_ref().unwrap()[0].value(),
            CLONE_NAMESPACES
        );
        let clone3 = rules_for(&s, "clone3");
        assert_eq!(clone3[0].errno_ret(), Some(38));
    }

    #[test]
    fn min_kernel_and_arch_filters() {
        let old = to_oci(&default_profile(), &default_caps(), "amd64", &sys((4, 4))).unwrap();
        assert!(rules_for(&old, "ptrace").is_empty());
        let new = to_oci(&default_profile(), &default_caps(), "amd64", &sys((4, 8))).unwrap();
        assert_eq!(rules_for(&new, "ptrace").len(), 1);
        let s390 = to_oci(&default_profile(), &default_caps(), "s390x", &sys((6, 1))).unwrap();
        let clone = rules_for(&s390, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0].args().as_ref().unwrap()[0].index(), 1);
    }

    #[test]
    fn docker_profile_json_converts() {
        let p = parse_profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":1,
                "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]},
                           {"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]}],
                "syscalls":[
                  {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                  {"name":"rmdir","action":"SCMP_ACT_ERRNO"},
                  {"names":["chmod"],"action":"SCMP_ACT_ERRNO","excludes":{"caps":["CAP_FOWNER"]}},
                  {"names":["personality"],"action":"SCMP_ACT_ERRNO",
                   "args":[{"index":0,"value":8,"valueTwo":0,"op":"SCMP_CMP_EQ"}]},
                  {"names":["sethostname"],"action":"SCMP_ACT_LOG","includes":{"arches":["riscv64"]}}
                ]}"#,
        )
        .unwrap();
        let s = to_oci(&p, &default_caps(), "amd64", &sys((6, 1))).unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(rules_for(&s, "mkdir")[0].errno_ret(), Some(13));
        assert_eq!(rules_for(&s, "rmdir").len(), 1);
        assert!(rules_for(&s, "chmod").is_empty(), "CAP_FOWNER is held");
        assert_eq!(
            rules_for(&s, "personality")[0].args().as_ref().unwrap()[0].value(),
            8
        );
        assert!(rules_for(&s, "sethostname").is_empty());
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(s.architectures().as_ref().unwrap().len(), 2);
        }
        berth_runtime::seccomp::compile(&s).unwrap();
    }

    #[test]
    fn bad_profiles_say_why() {
        let e = parse_profile("{not json").unwrap_err();
        assert!(
            e.to_string().contains("decoding seccomp profile failed"),
            "{e}"
        );
        let p = parse_profile(r#"{"defaultAction":"SCMP_ACT_BOGUS"}"#).unwrap();
        let e = to_oci(&p, &[], "amd64", &sys((6, 1))).unwrap_err();
        assert!(e.to_string().contains("SCMP_ACT_BOGUS"), "{e}");
        let p = parse_profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#,
        )
        .unwrap();
        assert!(
            to_oci(&p, &[], "amd64", &sys((6, 1)))
                .unwrap_err()
                .to_string()
                .contains("archMap")
        );
        let p = parse_profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_VAX"]}"#,
        )
        .unwrap();
        assert!(
            to_oci(&p, &[], "amd64", &sys((6, 1)))
                .unwrap_err()
                .to_string()
                .contains("SCMP_ARCH_VAX")
        );
        let p = parse_profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ERRNO"}]}"#).unwrap();
        assert!(
            to_oci(&p, &[], "amd64", &sys((6, 1)))
                .unwrap_err()
                .to_string()
                .contains("either")
        );
        let p = parse_profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["b"],"action":"SCMP_ACT_ERRNO","includes":{"minKernel":"x"}}]}"#).unwrap();
        assert!(
            to_oci(&p, &[], "amd64", &sys((6, 1)))
                .unwrap_err()
                .to_string()
                .contains("minKernel")
        );
    }
}
