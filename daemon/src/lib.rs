//! berthd: the Docker Engine API server.
//!
//! `config` reads dockerd's flags and daemon.json, `server` owns the sockets
//! and the router, `version` strips and checks the `/vX.Y/` prefix, and
//! each API area has its module of handlers (`system`, `images` to read
//! images, `manage` to tag, delete and prune them, `archives` for save,
//! load and import, `distribution` for pull and push, `commit`), which answer with
//! the wire types of `berth-api` and fail with `error::ApiError`.
//! `progress` streams the JSON lines of pull and push.

pub mod archives;
pub mod build;
pub mod commit;
pub mod config;
pub mod containers;
pub mod db;
pub mod distribution;
pub mod error;
pub mod events;
pub mod filters;
pub mod host;
pub mod images;
pub mod manage;
pub mod networks;
pub mod progress;
pub mod server;
pub mod spec;
pub mod system;
pub mod version;
pub mod volumes;

pub use config::Config;
pub use server::{Daemon, run};
