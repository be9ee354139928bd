//! berth's OCI runtime: turns an OCI bundle into a running, isolated
//! process. `berth-runtime` is a thin runc-compatible CLI over it.
//!
//! Containers are created from a single-threaded process: the runtime
//! clones without exec, which is only sound when no other thread can hold
//! a lock the child would need.

pub mod apparmor;
pub mod capabilities;
pub mod cgroups;
pub mod config;
pub mod container;
pub mod error;
pub mod hooks;
pub mod namespaces;
pub mod process;
pub mod rlimit;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod syscall;
pub mod tty;

pub use container::{Console, CreateOptions, ExecOptions, Runtime, Started};
pub use error::{Error, Result};
