//! The config `berth-runtime spec` writes: runc's default, so bundles made
//! for runc work unchanged, plus the rootless variant.

use oci_spec::runtime::Spec;
use serde_json::{Value, json};

/// A default config that runs `sh` in a busybox-like rootfs. Its only
/// rlimit lowers RLIMIT_NOFILE, which needs no privilege, so it works on
/// hosts where root lacks CAP_SYS_RESOURCE.
pub const DEFAULT_SPEC: &str = r#"{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": true,
    "user": { "uid": 0, "gid": 0 },
    "args": ["sh"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    },
    "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
    "noNewPrivileges": true
  },
  "root": { "path": "rootfs", "readonly": true },
  "hostname": "berth",
  "mounts": [
    { "destination": "/proc", "type": "proc", "source": "proc" },
    { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
      "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
      "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
    { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
      "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
      "options": ["nosuid", "noexec", "nodev"] },
    { "destination": "/sys", "type": "sysfs", "source": "sysfs",
      "options": ["nosuid", "noexec", "nodev", "ro"] },
    { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
      "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
  ],
  "linux": {
    "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
    "namespaces": [
      { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
      { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }
    ],
    "maskedPaths": [
      "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
      "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
      "/proc/scsi", "/sys/devices/virtual/powercap"
    ],
    "readonlyPaths": [
      "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
    ]
  }
}"#;

/// The default config as JSON; `rootless` maps the caller's uid and gid
/// to root in a new user namespace, drops the network namespace (an
/// unprivileged user cannot configure one usefully), replaces the sysfs
/// and cgroup mounts with a read-only bind of the host's /sys, and sets
/// no cgroup resources.
pub fn default_spec_json(rootless: bool, uid: u32, gid: u32) -> Value {
    let mut v: Value = serde_json::from_str(DEFAULT_SPEC).expect("built-in spec is valid JSON");
    if rootless {
        let linux = &mut v["linux"];
        let ns = linux["namespaces"].as_array_mut().expect("namespaces");
        ns.retain(|n| n["type"] != "network" && n["type"] != "user");
        ns.push(json!({ "type": "user" }));
        linux["uidMappings"] = json!([{ "containerID": 0, "hostID": uid, "size": 1 }]);
        linux["gidMappings"] = json!([{ "containerID": 0, "hostID": gid, "size": 1 }]);
        linux.as_object_mut().expect("linux").remove("resources");
        let mounts = v["mounts"].as_array_mut().expect("mounts");
        mounts.retain(|m| {
            !m["destination"]
                .as_str()
                .unwrap_or_default()
                .starts_with("/sys")
        });
        for m in mounts.iter_mut() {
            if let Some(opts) = m["options"].as_array_mut() {
                // devpts gid=5 names a group the caller cannot map.
                opts.retain(|o| {
                    let o = o.as_str().unwrap_or_default();
                    !o.starts_with("gid=") && !o.starts_with("uid=")
                });
            }
        }
        mounts.push(json!({
            "destination": "/sys", "type": "none", "source": "/sys",
            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]
        }));
    }
    v
}

/// The default config as a typed spec.
pub fn default_spec(rootless: bool, uid: u32, gid: u32) -> Spec {
    serde_json::from_value(default_spec_json(rootless, uid, gid)).expect("built-in spec parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_spec_is_valid_and_mapped() {
        let spec = default_spec(true, 1000, 1000);
        crate::config::validate(&spec).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].host_id(), 1000);
        assert!(linux.resources().is_none());
        let ns: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ().to_string())
            .collect();
        assert!(
            ns.contains(&"user".to_string()) && !ns.contains(&"net".to_string()),
            "{ns:?}"
        );
    }
}
