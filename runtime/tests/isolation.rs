//! Every namespace, mount kind, masked/readonly path, capability set,
//! seccomp and rlimit really takes effect, seen from inside a container.

mod common;

use common::{Bundle, Rt, unique_id};
use serde_json::json;

fn sh(script: &str) -> Bundle {
    Bundle::new(&["sh", "-c", script])
}

#[test]
fn namespaces_isolate() {
    let rt = Rt::new();
    let b = sh(
        "echo pid=$$; hostname; ls /sys/class/net; readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts; cat /proc/self/uid_map",
    );
    let (code, out, err) = rt.run_bundle(&unique_id("ns"), &b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "pid=1",
        "the process is pid 1 of its own pid namespace: {out}"
    );
    assert_eq!(lines[1], "berth", "{out}");
    assert_eq!(
        lines[2], "lo",
        "only loopback in a new network namespace: {out}"
    );
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let host_uts = std::fs::read_link("/proc/self/ns/uts").unwrap();
    assert_ne!(lines[3], host_ipc.to_str().unwrap());
    assert_ne!(lines[4], host_uts.to_str().unwrap());
    assert_eq!(
        lines[5].split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );
}

#[test]
fn user_namespace_maps_ids() {
    let rt = Rt::new();
    let mut b = sh(
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; touch /tmp/owned && stat -c %u /tmp/owned",
    );
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // The rootfs belongs to host root; let the mapped root write /tmp.
    std::fs::set_permissions(
        b.rootfs().join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let (code, out, err) = rt.run_bundle(&unique_id("userns"), &b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", "100000", "65536"], "{out}");
    assert_eq!(lines[1], ["0", "100000", "65536"], "{out}");
    assert_eq!(lines[2], ["0"]);
    assert_eq!(lines[3], ["0"]);
    assert_eq!(lines[4], ["0"], "root inside owns what it creates: {out}");
    let host_uid = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(b.rootfs().join("tmp/owned")).unwrap(),
    );
    assert_eq!(
        host_uid, 100000,
        "on the host the file belongs to the mapped uid"
    );
}

#[test]
fn readonly_masked_and_root_readonly() {
    let rt = Rt::new();
    let mut b = sh("(echo x > /proc/sys/kernel/domainname) 2>&1; \
         wc -c < /proc/timer_list; ls /sys/firmware | wc -l; ls /proc/acpi | wc -l; \
         touch /newfile 2>&1");
    b.config["root"]["readonly"] = json!(true);
    let (_, out, err) = rt.run_bundle(&unique_id("ro"), &b);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("Read-only file system"),
        "readonly path: {out}{err}"
    );
    assert_eq!(
        lines[1].trim(),
        "0",
        "masked file reads as /dev/null: {out}"
    );
    assert_eq!(
        lines[2].trim(),
        "0",
        "masked directory is an empty tmpfs: {out}"
    );
    assert_eq!(
        lines[3].trim(),
        "0",
        "masked directory is an empty tmpfs: {out}"
    );
    assert!(
        lines[4].contains("Read-only file system"),
        "readonly root: {out}"
    );
    assert!(
        std::fs::metadata("/proc/timer_list").is_ok(),
        "the host has the file masked above"
    );
}

#[test]
fn mounts_bind_tmpfs_and_propagation_flags() {
    let rt = Rt::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("data"), "from-host\n").unwrap();
    let mut b = sh(
        "cat /ro/data; (echo y > /ro/new) 2>&1; echo z > /rw/new && echo rw-ok; \
         stat -c %a /scratch; grep ' /scratch ' /proc/mounts; \
         grep ' /ro ' /proc/mounts; grep -q ' /dev/mqueue mqueue ' /proc/mounts && echo mq-ok; \
         grep -c devpts /proc/mounts",
    );
    let src = host.path().to_str().unwrap();
    b.add_mount(json!({"destination": "/ro", "type": "bind", "source": src, "options": ["rbind", "ro", "nosuid", "nodev", "rprivate"]}));
    b.add_mount(
        json!({"destination": "/rw", "type": "none", "source": src, "options": ["bind", "rw"]}),
    );
    b.add_mount(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=512k", "mode=0710", "noexec"]}));
    let (code, out, err) = rt.run_bundle(&unique_id("mounts"), &b);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "from-host");
    assert!(lines[1].contains("Read-only file system"), "{out}");
    assert_eq!(lines[2], "rw-ok");
    assert_eq!(
        std::fs::read_to_string(host.path().join("new")).unwrap(),
        "z\n"
    );
    assert_eq!(lines[3], "710", "tmpfs mode: {out}");
    assert!(
        lines[4].contains("tmpfs") && lines[4].contains("noexec") && lines[4].contains("size=512k"),
        "{out}"
    );
    assert!(
        lines[5].contains("ro,") && lines[5].contains("nosuid") && lines[5].contains("nodev"),
        "{out}"
    );
    assert_eq!(lines[6], "mq-ok");
    assert_eq!(lines[7], "1");
    assert!(
        common::host_mounts_mentioning(src).is_empty(),
        "no mount leaks to the host"
    );
}

#[test]
fn dev_has_default_devices_and_links() {
    let rt = Rt::new();
    let mut b = sh(
        "for d in null zero full random urandom tty; do stat -c '%n %t:%T %a' /dev/$d; done; \
         for l in fd stdin ptmx; do readlink /dev/$l; done; stat -c '%n %t:%T %a' /dev/mydev; \
         head -c 4 /dev/zero | wc -c; echo ok > /dev/null && echo null-ok",
    );
    b.config["linux"]["devices"] = json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 0}]);
    let (code, out, err) = rt.run_bundle(&unique_id("dev"), &b);
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        "/dev/null 1:3 666",
        "/dev/zero 1:5 666",
        "/dev/full 1:7 666",
        "/dev/random 1:8 666",
        "/dev/urandom 1:9 666",
        "/dev/tty 5:0 666",
        "/proc/self/fd",
        "/proc/self/fd/0",
        "pts/ptmx",
        "/dev/mydev 1:3 640",
        "4",
        "null-ok",
    ] {
        assert!(
            out.lines().any(|l| l.trim() == want),
            "missing {want:?} in:\n{out}"
        );
    }
}

#[test]
fn capabilities_are_exactly_the_configured_sets() {
    let rt = Rt::new();
    let mut b = sh("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status");
    let caps = json!(["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"]);
    b.config["process"]["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps, "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]
    });
    let (code, out, err) = rt.run_bundle(&unique_id("caps"), &b);
    assert_eq!(code, 0, "{err}");
    // CHOWN=0, KILL=5, NET_RAW=13
    let want = (1u64 << 0) | (1 << 5) | (1 << 13);
    let get = |k: &str| {
        let line = out
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("{k} in {out}"));
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!(get("CapEff"), want, "{out}");
    assert_eq!(get("CapPrm"), want, "{out}");
    assert_eq!(get("CapBnd"), want, "{out}");
    assert_eq!(get("CapInh"), 1 << 5, "{out}");
    assert_eq!(get("CapAmb"), 1 << 5, "{out}");
}

#[test]
fn non_root_user_with_groups_and_umask() {
    let rt = Rt::new();
    let mut b = sh("id -u; id -g; id -G; umask; grep CapEff /proc/self/status");
    b.config["process"]["user"] =
        json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 7], "umask": 0o027});
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL", "CAP_CHOWN"],
        "permitted": ["CAP_KILL", "CAP_CHOWN"], "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]
    });
    let (code, out, err) = rt.run_bundle(&unique_id("user"), &b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1001");
    let mut groups: Vec<&str> = lines[2].split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["1001", "5", "7"]);
    assert_eq!(lines[3], "0027");
    // The default config's sets survive the uid change (ambient caps).
    // Ambient capabilities are what a non-root process keeps across exec.
    assert!(
        lines[4].ends_with("0000000000000020"),
        "only CAP_KILL: {out}"
    );
}

#[test]
fn seccomp_errno_denies_mkdir_only() {
    let rt = Rt::new();
    let mut b = sh("mkdir /tmp/x 2>&1; echo rc=$?; echo still-working; ls -d /tmp");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let (code, out, err) = rt.run_bundle(&unique_id("seccomp"), &b);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("rc=1"), "{out}");
    assert!(
        out.contains("still-working") && out.contains("/tmp"),
        "{out}"
    );
    assert!(!b.rootfs().join("tmp/x").exists());
}

#[test]
fn seccomp_kill_process_and_arg_conditions() {
    let rt = Rt::new();
    // uname is killed only when its arg0 is 0 (never for a real call), so
    // `uname` works; `getpid`-heavy busybox still runs; `rmdir` kills.
    let mut b = sh("uname -s; rmdir /tmp");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["rmdir"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}
        ]
    });
    let (code, out, _) = rt.run_bundle(&unique_id("seccomp-kill"), &b);
    assert_eq!(out.trim(), "Linux");
    assert_eq!(code, 128 + libc::SIGSYS, "killed by SIGSYS");
}

#[test]
fn rlimits_are_visible_to_ulimit() {
    let rt = Rt::new();
    let mut b = sh("ulimit -n; ulimit -Hn; ulimit -c");
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 768},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
    ]);
    let (code, out, err) = rt.run_bundle(&unique_id("rlimit"), &b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["512", "768", "0"]);
}

#[test]
fn sysctl_hostname_domainname() {
    let rt = Rt::new();
    let mut b = sh(
        "cat /proc/sys/net/ipv4/ip_forward; hostname; domainname 2>/dev/null || cat /proc/sys/kernel/domainname",
    );
    b.config["hostname"] = json!("bt-host");
    b.config["domainname"] = json!("bt.example");
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    let (code, out, err) = rt.run_bundle(&unique_id("sysctl"), &b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["1", "bt-host", "bt.example"]
    );
}

#[test]
fn time_namespace_offsets_boottime() {
    let rt = Rt::new();
    let mut b = sh("cut -d. -f1 /proc/uptime");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 864000, "nanosecs": 0}});
    let host: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (code, out, err) = rt.run_bundle(&unique_id("timens"), &b);
    assert_eq!(code, 0, "{err}");
    let inside: f64 = out.trim().parse().unwrap();
    assert!(
        inside >= host + 864000.0 - 5.0,
        "inside {inside}, host {host}"
    );
}

#[test]
fn joins_a_network_namespace_by_path() {
    let rt = Rt::new();
    let a = unique_id("netns-a");
    let ba = Bundle::new(&["sleep", "1000"]);
    ba.write();
    rt.ok(&[
        "run",
        "--detach",
        "--bundle",
        ba.path().to_str().unwrap(),
        &a,
    ]);
    let pid = rt.state(&a)["pid"].as_i64().unwrap();
    let want = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let mut b = sh("readlink /proc/self/ns/net");
    for ns in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = json!(format!("/proc/{pid}/ns/net"));
        }
    }
    let (code, out, err) = rt.run_bundle(&unique_id("netns-b"), &b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), want.to_str().unwrap());
}

#[test]
fn no_pivot_and_preserved_fds() {
    let rt = Rt::new();
    let b = sh("ls /bin/busybox && cat <&3");
    b.write();
    let id = unique_id("nopivot");
    let (r, w) = nix::unistd::pipe().unwrap();
    nix::unistd::write(&w, b"fd3-data\n").unwrap();
    drop(w);
    let mut cmd = rt.cmd();
    cmd.args([
        "run",
        "--no-pivot",
        "--preserve-fds",
        "1",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]);
    let raw = std::os::fd::IntoRawFd::into_raw_fd(r);
    // SAFETY: in the forked child, before exec: dup2 is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    // SAFETY: closing our copy of the pipe.
    unsafe { libc::close(raw) };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/bin/busybox\nfd3-data\n"
    );
}

#[test]
fn no_new_privileges_oom_score_and_apparmor_skip() {
    let rt = Rt::new();
    let mut b = sh("grep NoNewPrivs /proc/self/status; cat /proc/self/oom_score_adj");
    b.config["process"]["noNewPrivileges"] = json!(true);
    b.config["process"]["oomScoreAdj"] = json!(500);
    // This host has no AppArmor: the profile is skipped, not an error.
    assert!(
        !berth_runtime::apparmor::is_enabled(),
        "this test expects a host without AppArmor"
    );
    b.config["process"]["apparmorProfile"] = json!("berth-default");
    let (code, out, err) = rt.run_bundle(&unique_id("nnp"), &b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NoNewPrivs:", "1"]
    );
    assert_eq!(lines[1], "500");
}

#[test]
fn negative_oom_score_adj_names_the_missing_capability() {
    let rt = Rt::new();
    let has = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap();
    let mut b = sh("cat /proc/self/oom_score_adj");
    b.config["process"]["oomScoreAdj"] = json!(-500);
    let id = unique_id("oom-neg");
    let (code, out, err) = rt.run_bundle(&id, &b);
    if has {
        assert_eq!((code, out.trim()), (0, "-500"), "{err}");
    } else {
        assert_ne!(code, 0);
        assert!(
            err.contains("process.oomScoreAdj: setting -500 needs CAP_SYS_RESOURCE"),
            "{err}"
        );
        assert!(common::cgroup_dirs(&id).is_empty());
    }
}

#[test]
fn cgroup_filesystem_inside_shows_the_container_cgroup() {
    let rt = Rt::new();
    let mut b = sh(
        "ls /sys/fs/cgroup | sort | tr '\\n' ' '; echo; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
         cat /sys/fs/cgroup/pids/pids.max; touch /sys/fs/cgroup/x 2>&1; true",
    );
    b.config["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
    b.config["linux"]["resources"]["pids"] = json!({"limit": 77});
    let (code, out, err) = rt.run_bundle(&unique_id("cgfs"), &b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    for h in ["memory", "pids", "cpu", "devices", "freezer"] {
        assert!(
            lines[0].split_whitespace().any(|x| x == h),
            "{h} in {}",
            lines[0]
        );
    }
    // Inside its cgroup namespace the container's cgroup is the root.
    assert_eq!(lines[1], "67108864");
    assert_eq!(lines[2], "77");
    assert!(lines[3].contains("Read-only file system"), "{out}");
}

#[test]
fn rslave_bind_sees_host_mounts_made_later() {
    let rt = Rt::new();
    let host = tempfile::tempdir().unwrap();
    let dir = host.path().to_str().unwrap().to_string();
    let mount = |args: &[&str]| {
        assert!(
            std::process::Command::new("mount")
                .args(args)
                .status()
                .unwrap()
                .success()
        )
    };
    // A shared mount in the test's own (private) mount namespace.
    mount(&["--bind", &dir, &dir]);
    mount(&["--make-shared", &dir]);
    std::fs::create_dir(host.path().join("later")).unwrap();
    let mut b = sh("while [ ! -e /shared/later/marker ]; do sleep 0.05; done; echo saw-it");
    b.add_mount(json!({"destination": "/shared", "type": "bind", "source": dir, "options": ["rbind", "rslave"]}));
    b.write();
    let id = unique_id("rslave");
    let child = rt
        .cmd()
        .args(["run", "--bundle", b.path().to_str().unwrap(), &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let later = host.path().join("later");
    mount(&["-t", "tmpfs", "tmpfs", later.to_str().unwrap()]);
    std::fs::write(later.join("marker"), "x").unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = std::process::Command::new("umount")
        .arg("-R")
        .arg(&dir)
        .status();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "saw-it");
}

#[test]
fn seccomp_notify_goes_to_the_listener_with_the_state() {
    use std::os::fd::AsRawFd;
    let rt = Rt::new();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    // The agent answers every notified getppid with 4242.
    listener.set_nonblocking(true).unwrap();
    let agent = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "no listener fd arrived"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("{e}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        let mut buf = [0u8; 8192];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
        let msg = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        let mut fd = -1;
        for c in msg.cmsgs().unwrap() {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(f) = c {
                fd = f[0];
            }
        }
        let n = msg.bytes;
        let state: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert!(fd >= 0, "a listener fd came with the message");
        answer_notifications(fd, 4242);
        state
    });
    let mut b = sh("echo ppid=$PPID; cut -d' ' -f4 /proc/self/stat");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock.to_str().unwrap(),
        "listenerMetadata": "bt-meta",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let id = unique_id("notify");
    let (code, out, err) = rt.run_bundle(&id, &b);
    assert_eq!(code, 0, "{err}");
    let state = agent.join().unwrap();
    assert_eq!(state["metadata"], "bt-meta");
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["state"]["id"], id.as_str());
    assert!(
        out.contains("ppid=4242"),
        "getppid answered by the agent: {out}"
    );
}

/// A seccomp agent: answer each notification on `fd` with `value` until
/// the filter's last user is gone.
fn answer_notifications(fd: std::os::fd::RawFd, value: i64) {
    loop {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one pollfd.
        let n = unsafe { libc::poll(&mut p, 1, 10_000) };
        if n <= 0 || p.revents & libc::POLLHUP != 0 {
            break;
        }
        // SAFETY: the notification structs are plain data filled by the kernel.
        unsafe {
            let mut req: libc::seccomp_notif = std::mem::zeroed();
            if libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) != 0 {
                break;
            }
            let mut resp: libc::seccomp_notif_resp = std::mem::zeroed();
            resp.id = req.id;
            resp.val = value;
            libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp);
        }
    }
    // SAFETY: closing the fd the message gave us.
    unsafe { libc::close(fd) };
}

#[test]
fn cwd_through_proc_self_fd_cannot_leave_the_root() {
    // CVE-2024-21626: a cwd naming an fd the runtime leaked.
    let rt = Rt::new();
    for n in 3..=9 {
        let mut b = sh("pwd; ls /");
        b.config["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        let (code, out, err) = rt.run_bundle(&unique_id(&format!("cwd{n}")), &b);
        assert_ne!(code, 0, "cwd /proc/self/fd/{n} must not work: {out}");
        assert!(
            err.contains(&format!("process.cwd /proc/self/fd/{n}")),
            "{err}"
        );
    }
}

#[test]
fn only_procfs_goes_under_proc() {
    let rt = Rt::new();
    let mut b = sh("true");
    b.add_mount(json!({"destination": "/proc/self", "type": "tmpfs", "source": "tmpfs"}));
    let (code, _, err) = rt.run_bundle(&unique_id("procmnt"), &b);
    assert_ne!(code, 0);
    assert!(err.contains("may be mounted under /proc"), "{err}");
}

#[test]
fn tmpcopyup_seeds_a_tmpfs_with_the_directory() {
    let rt = Rt::new();
    let mut b = sh(
        "grep -c root /etc/passwd; grep ' /etc ' /proc/mounts | cut -d' ' -f3; stat -c %a /etc; echo new > /etc/x && cat /etc/x",
    );
    std::os::unix::fs::symlink("passwd", b.rootfs().join("etc/link")).unwrap();
    b.add_mount(json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "mode=0751"]}));
    std::fs::set_permissions(
        b.rootfs().join("etc"),
        std::os::unix::fs::PermissionsExt::from_mode(0o751),
    )
    .unwrap();
    let (code, out, err) = rt.run_bundle(&unique_id("copyup"), &b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["1", "tmpfs", "751", "new"]
    );
    assert!(
        !b.rootfs().join("etc/x").exists(),
        "writes stay in the tmpfs"
    );
}
