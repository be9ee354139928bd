//! berth's image store: content-addressed OCI blobs, layers unpacked into
//! snapshots, image archives, and registries.

pub mod archive;
pub mod blobs;
pub mod digest;
pub mod gc;
pub mod image;
pub mod layer;
mod pins;
pub mod refs;
pub mod registry;
pub mod snapshot;
pub mod store;
mod transfer;

pub use store::{Image, ImageInfo, NewImage, Store, StoreError};
