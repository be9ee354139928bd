//! berth's image store: content-addressed OCI blobs, layers unpacked into
//! snapshots, image archives, and registries.

pub mod blobs;
pub mod digest;
pub mod layer;
pub mod registry;
