//! AppArmor, where the host has it. Elsewhere a profile in the config is
//! skipped with a debug log: there is nothing to confine with.

use std::path::Path;

pub fn is_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.trim() == "Y")
        .unwrap_or(false)
        && Path::new("/sys/kernel/security/apparmor").exists()
}

/// Ask the kernel to switch to `profile` at the next exec.
pub fn apply_on_exec(profile: &str) -> std::io::Result<()> {
    // An image's fake /proc would swallow the write and leave us unconfined.
    crate::rootfs::ensure_procfs("/proc/self/attr").map_err(std::io::Error::other)?;
    let data = format!("exec {profile}");
    let modern = Path::new("/proc/self/attr/apparmor/exec");
    if modern.exists() {
        return std::fs::write(modern, &data);
    }
    std::fs::write("/proc/self/attr/exec", data)
}
