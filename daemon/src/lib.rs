//! berthd: the Docker Engine API server.
//!
//! `config` reads dockerd's flags and daemon.json, `server` owns the sockets
//! and the router, `version` strips and checks the `/vX.Y/` prefix, and
//! each API area has its module of handlers (`system`, `images`), which
//! answer with the wire types of `berth-api` and fail with `error::ApiError`.

pub mod config;
pub mod error;
pub mod filters;
pub mod host;
pub mod images;
pub mod server;
pub mod system;
pub mod version;

pub use config::Config;
pub use server::{Daemon, run};
