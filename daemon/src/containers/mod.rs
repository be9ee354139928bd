//! Containers: their records in the state database, the in-memory index
//! over them, and the Engine API routes that create, run and remove them.
//!
//! `record` is what is persisted, `registry` finds containers by id,
//! prefix or name and writes every change through to the database,
//! `lifecycle` starts and stops them through berth-shim, `monitor`
//! follows each shim until its container ends, `logs` reads the json-file
//! log, and `routes` holds the HTTP handlers.

pub mod archive;
pub mod attach;
pub mod exec;
pub mod health;
pub mod lifecycle;
pub mod logs;
pub mod monitor;
pub mod names;
pub mod record;
pub mod registry;
pub mod routes;
pub mod stats;

pub use record::{Record, Status};
pub use registry::{Entry, Registry};
