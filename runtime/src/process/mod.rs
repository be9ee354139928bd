//! The processes a container is made of: how they are cloned, how they
//! talk to the runtime while being set up, and what each one does.

pub mod channel;
pub mod clone;
pub mod idmap;
pub mod init;
pub mod pidfd;
pub mod setup;
