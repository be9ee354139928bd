//! cgroup v2 backend (to be written).

use std::path::Path;

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use super::{CgroupManager, CgroupMount, CgroupState, FreezerState, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V2State {}

#[derive(Debug)]
pub struct V2Manager {}

impl V2Manager {
    pub fn new(path: &Path) -> Result<Self> {
        let _ = path;
        todo!()
    }
    pub fn from_state(state: &V2State) -> Self {
        let _ = state;
        todo!()
    }
    pub fn dir_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        todo!()
    }
}

impl CgroupManager for V2Manager {
    fn create(&mut self, resources: Option<&LinuxResources>) -> Result<()> {
        let _ = resources;
        todo!()
    }
    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        let _ = resources;
        todo!()
    }
    fn add_task(&self, pid: Pid) -> Result<()> {
        let _ = pid;
        todo!()
    }
    fn pids(&self) -> Result<Vec<Pid>> {
        todo!()
    }
    fn freeze(&self, state: FreezerState) -> Result<()> {
        let _ = state;
        todo!()
    }
    fn frozen(&self) -> Result<bool> {
        todo!()
    }
    fn remove(&self) -> Result<()> {
        todo!()
    }
    fn state(&self) -> CgroupState {
        CgroupState::V2(V2State {})
    }
    fn container_mounts(&self) -> Vec<CgroupMount> {
        todo!()
    }
}
