//! OCI seccomp profiles compiled to classic BPF with seccompiler.
//!
//! seccompiler gives one match action per filter; OCI profiles give one per
//! syscall rule. We keep seccompiler's rule encoding (conditions, jump
//! layout) and put each rule's own action in the `RET` that follows it, and
//! dispatch on the audit architecture ourselves so a profile's compat
//! architectures (x86 and x32 on x86_64) get their own syscall numbers.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxSeccomp;
use serde::{Deserialize, Serialize};

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
pub fn compile(profile: &LinuxSeccomp) -> Result<CompiledFilter> {
    let _ = profile;
    todo!("seccomp helper")
}

/// Compile through an on-disk cache in `cache_dir`, keyed by a hash of the
/// profile, so a profile is compiled once and reused by later containers
/// and by `exec`.
pub fn compile_cached(profile: &LinuxSeccomp, cache_dir: &Path) -> Result<CompiledFilter> {
    let _ = (profile, cache_dir);
    todo!("seccomp helper")
}

/// Install the filter on the calling thread. Returns the user-notification
/// listener fd when the profile uses SCMP_ACT_NOTIFY.
///
/// Without no_new_privs this needs CAP_SYS_ADMIN, so the init installs it
/// before dropping capabilities in that case.
pub fn install(filter: &CompiledFilter) -> Result<Option<OwnedFd>> {
    let _ = filter;
    todo!("seccomp helper")
}
