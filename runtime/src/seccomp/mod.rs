//! OCI seccomp profiles compiled to classic BPF with seccompiler.
//!
//! seccompiler gives one match action per filter; OCI profiles give one per
//! syscall rule. We keep seccompiler's rule encoding (conditions, jump
//! layout) and put each rule's own action in the `RET` that follows it, and
//! dispatch on the audit architecture ourselves so a profile's compat
//! architectures (x86 and x32 on x86_64) get their own syscall numbers.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Arch, LinuxSeccomp};
use serde::{Deserialize, Serialize};

mod arch;
mod bpf;
mod cache;
mod compile;
#[cfg(test)]
mod emulator;
mod install;
#[cfg(test)]
mod tests;

pub use bpf::MAX_INSNS;
pub use compile::{
    FLAG_LOG, FLAG_NEW_LISTENER, FLAG_SPEC_ALLOW, FLAG_TSYNC, FLAG_TSYNC_ESRCH,
    FLAG_WAIT_KILLABLE_RECV, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, RET_KILL_THREAD, RET_LOG,
    RET_TRACE, RET_TRAP, RET_USER_NOTIF,
};

/// One instruction of a classic BPF program, as the kernel takes it.
pub use seccompiler::sock_filter;

/// Errors naming the profile field at fault.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("linux.seccomp.syscalls[{index}].names: unknown syscall name {name:?}")]
    UnknownSyscall { index: usize, name: String },
    #[error("linux.seccomp.architectures: unknown architecture {0:?}")]
    UnknownArch(String),
    #[error("linux.seccomp.syscalls[{index}].args[{arg}]: {reason}")]
    InvalidArg {
        index: usize,
        arg: usize,
        reason: String,
    },
    #[error("linux.seccomp: {0}")]
    Invalid(String),
    #[error(
        "linux.seccomp: compiled filter has {0} instructions, more than the kernel's limit of 4096"
    )]
    TooLarge(usize),
    #[error("installing seccomp filter: {0}")]
    Install(std::io::Error),
    #[error("seccomp filter cache {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, SeccompError>;

/// A compiled profile: the BPF program plus what installing it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledFilter {
    /// Instructions as (code, jt, jf, k).
    pub program: Vec<(u16, u8, u8, u32)>,
    /// SECCOMP_FILTER_FLAG_* bits from `linux.seccomp.flags`.
    pub flags: u32,
    /// Whether any rule uses SCMP_ACT_NOTIFY (install returns a listener fd).
    pub notify: bool,
    /// `linux.seccomp.listenerPath`, where the listener fd is sent.
    pub listener_path: Option<PathBuf>,
    /// `linux.seccomp.listenerMetadata`.
    pub listener_metadata: Option<String>,
}

/// Compile a profile for the architecture this binary runs on.
///
/// The filter covers the host's own ABI and those of the profile's
/// `architectures` that can run here (x86 and x32 on x86_64, arm on
/// aarch64); other listed architectures are ignored and any syscall made
/// through an ABI the filter does not cover kills the process.
pub fn compile(profile: &LinuxSeccomp) -> Result<CompiledFilter> {
    let host = arch::Host::current().ok_or_else(|| {
        SeccompError::Invalid(format!(
            "no seccomp support for host architecture {}",
            std::env::consts::ARCH
        ))
    })?;
    compile::compile_for(profile, host)
}

/// Compile through an on-disk cache in `cache_dir`, keyed by a hash of the
/// profile, so a profile is compiled once and reused by later containers
/// and by `exec`.
///
/// A missing, unreadable or corrupt entry is recompiled and rewritten; only
/// failing to write the cache is an error.
pub fn compile_cached(profile: &LinuxSeccomp, cache_dir: &Path) -> Result<CompiledFilter> {
    cache::compile_cached(profile, cache_dir)
}

/// Install the filter on the calling thread. Returns the user-notification
/// listener fd when the profile uses SCMP_ACT_NOTIFY.
///
/// Without no_new_privs this needs CAP_SYS_ADMIN, so the init installs it
/// before dropping capabilities in that case.
///
/// Does not allocate, lock or log, so it may run in a child forked from a
/// multi-threaded process. The filter applies to the calling thread (to
/// all threads with SECCOMP_FILTER_FLAG_TSYNC) and everything it execs.
pub fn install(filter: &CompiledFilter) -> Result<Option<OwnedFd>> {
    install::install(filter)
}

/// Parses a seccomp architecture name such as `SCMP_ARCH_X86_64`.
pub fn arch_from_name(name: &str) -> Result<Arch> {
    name.parse()
        .map_err(|_| SeccompError::UnknownArch(name.to_owned()))
}

/// Parses a `linux.seccomp` object, reporting an unknown architecture name
/// as [`SeccompError::UnknownArch`] rather than as a generic serde error
/// (oci-spec's `Arch` enum cannot hold one, so [`compile`] never sees it).
pub fn parse_profile(json: &str) -> Result<LinuxSeccomp> {
    #[derive(Deserialize)]
    struct Arches {
        #[serde(default)]
        architectures: Option<Vec<serde_json::Value>>,
    }
    if let Ok(Arches {
        architectures: Some(arches),
    }) = serde_json::from_str::<Arches>(json)
    {
        for a in arches {
            if let serde_json::Value::String(name) = a {
                arch_from_name(&name)?;
            }
        }
    }
    serde_json::from_str(json).map_err(|e| SeccompError::Invalid(e.to_string()))
}
