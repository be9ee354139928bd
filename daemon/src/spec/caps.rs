//! The container's capabilities: Docker's default set adjusted by
//! `CapAdd` / `CapDrop`, or every capability when privileged.

use std::collections::HashSet;

use oci_spec::runtime::{Capability, LinuxCapabilities};

use super::error::{Result, SpecError};

/// Every capability Linux defines, in bit order (0 to 40), so that lists
/// built from it are ordered like /proc/self/status's bitmasks.
pub const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default set (moby's `oci/caps.DefaultCapabilities`).
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// `sys_admin`, `SYS_ADMIN`, `CAP_SYS_ADMIN` → `CAP_SYS_ADMIN`; `ALL`
/// stays `ALL`; anything else is an error naming it as given.
fn normalize(name: &str) -> Result<String> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(SpecError::UnknownCapability(full))
    }
}

/// "Every capability", as moby means it: those in berthd's own bounding
/// set. One outside it cannot be granted (capset fails), and a daemon in a
/// container, or under a restricted service, has fewer than the kernel.
fn available() -> impl Iterator<Item = &'static str> {
    static BOUNDING: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let bnd = *BOUNDING.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapBnd:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .unwrap_or(u64::MAX)
    });
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(move |(bit, _)| bnd & (1u64 << bit) != 0)
        .map(|(_, c)| *c)
}

/// The capability names (`CAP_…`) the container gets, in bit order, as
/// moby's `TweakCapabilities`: privileged gets all; `CapAdd: ALL` is all
/// but `CapDrop`; `CapDrop: ALL` is just `CapAdd`; otherwise the defaults
/// minus `CapDrop` plus `CapAdd`.
pub fn capabilities(privileged: bool, add: &[String], drop: &[String]) -> Result<Vec<String>> {
    let add = add
        .iter()
        .map(|c| normalize(c))
        .collect::<Result<Vec<_>>>()?;
    let drop = drop
        .iter()
        .map(|c| normalize(c))
        .collect::<Result<Vec<_>>>()?;
    let has = |list: &[String], c: &str| list.iter().any(|x| x == c);
    let chosen: HashSet<&str> = if privileged {
        available().collect()
    } else if has(&add, "ALL") {
        available().filter(|c| !has(&drop, c)).collect()
    } else if has(&drop, "ALL") {
        add.iter().map(String::as_str).collect()
    } else {
        DEFAULT_CAPS
            .iter()
            .copied()
            .filter(|c| !has(&drop, c))
            .chain(add.iter().map(String::as_str))
            .collect()
    };
    Ok(ALL_CAPS
        .iter()
        .filter(|c| chosen.contains(**c))
        .map(|c| c.to_string())
        .collect())
}

/// The OCI form: bounding, effective and permitted hold the set (as
/// dockerd sets them); inheritable and ambient stay empty, so a non-root
/// user's process keeps only the bounding set across exec.
pub fn oci_capabilities(names: &[String]) -> Result<LinuxCapabilities> {
    let set = names
        .iter()
        .map(|n| {
            n.trim_start_matches("CAP_")
                .parse::<Capability>()
                .map_err(|_| SpecError::UnknownCapability(n.clone()))
        })
        .collect::<Result<HashSet<Capability>>>()?;
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()))
        .set_effective(Some(set.clone()))
        .set_permitted(Some(set))
        .set_inheritable(None)
        .set_ambient(None);
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(privileged: bool, add: &[&str], drop: &[&str]) -> Result<Vec<String>> {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        capabilities(privileged, &v(add), &v(drop))
    }

    #[test]
    fn every_name_is_an_oci_capability() {
        let all: Vec<String> = ALL_CAPS.iter().map(|s| s.to_string()).collect();
        let c = oci_capabilities(&all).unwrap();
        assert_eq!(c.bounding().as_ref().unwrap().len(), 41);
    }

    #[test]
    fn defaults_are_dockers_fourteen() {
        let c = caps(false, &[], &[]).unwrap();
        assert_eq!(c.len(), 14);
        for d in DEFAULT_CAPS {
            assert!(c.contains(&d.to_string()), "{d}");
        }
    }

    #[test]
    fn add_and_drop_with_or_without_prefix_any_case() {
        let c = caps(
            false,
            &["sys_admin", "CAP_NET_ADMIN"],
            &["NET_RAW", "cap_mknod"],
        )
        .unwrap();
        assert!(c.contains(&"CAP_SYS_ADMIN".into()) && c.contains(&"CAP_NET_ADMIN".into()));
        assert!(!c.contains(&"CAP_NET_RAW".into()) && !c.contains(&"CAP_MKNOD".into()));
        assert_eq!(c.len(), 14);
    }

    #[test]
    fn all_in_add_or_drop() {
        // "All" is all of ours: a bounding set here may lack some.
        let ours: Vec<String> = available().map(String::from).collect();
        let c = caps(false, &["ALL"], &["CAP_CHOWN"]).unwrap();
        assert_eq!(c.len(), ours.len() - 1);
        assert!(!c.contains(&"CAP_CHOWN".into()));
        let c = caps(false, &["NET_BIND_SERVICE"], &["all"]).unwrap();
        assert_eq!(c, vec!["CAP_NET_BIND_SERVICE".to_string()]);
        assert_eq!(caps(true, &[], &["ALL"]).unwrap(), ours);
    }

    #[test]
    fn all_is_what_the_bounding_set_holds() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let bnd = status
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        let all = caps(true, &[], &[]).unwrap();
        for (bit, name) in ALL_CAPS.iter().enumerate() {
            assert_eq!(
                all.contains(&name.to_string()),
                bnd & (1 << bit) != 0,
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_name_is_named() {
        let e = caps(false, &["NET_FOO"], &[]).unwrap_err();
        assert_eq!(e.to_string(), "unknown capability: \"CAP_NET_FOO\"");
        assert!(caps(false, &[], &["bogus"]).is_err());
    }
}
