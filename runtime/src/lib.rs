//! berth's OCI runtime: turns an OCI bundle into a running, isolated
//! process. `berth-runtime` is a thin runc-compatible CLI over it.

pub mod cgroups;
pub mod seccomp;
