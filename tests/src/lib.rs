//! Tools for berth's tests that need more than the host offers.

pub mod vm;
