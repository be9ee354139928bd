//! Cgroup limits, stats and control on real containers, through the
//! berth-runtime binary. The same tests run on this host (cgroup v1
//! controllers, hybrid) and in the qemu guest with a pure cgroup2
//! hierarchy (scripts/test runs them there with berth-vm).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Bundle, Rt, unique_id};
use serde_json::{Value, json};

fn is_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn bundle_path(b: &Bundle) -> &str {
    b.path().to_str().unwrap()
}

/// A cgroup file of container `id` (default cgroupsPath `/<id>`): the v1
/// file in its controller's hierarchy, or the v2 one.
fn cg_file(id: &str, controller: &str, v1: &str, v2: &str) -> PathBuf {
    if is_v2() {
        Path::new("/sys/fs/cgroup").join(id).join(v2)
    } else {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(id)
            .join(v1)
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

fn stats(rt: &Rt, id: &str) -> Value {
    let line: Value = serde_json::from_str(&rt.ok(&["events", "--stats", id])).unwrap();
    assert_eq!(line["type"], "stats");
    line["data"].clone()
}

fn run_detached(rt: &Rt, id: &str, b: &Bundle) {
    b.write();
    rt.ok(&["run", "--detach", "--bundle", bundle_path(b), id]);
}

/// The first real block device, for io limits.
fn block_device() -> String {
    let mut devs: Vec<(String, String)> = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let dev = std::fs::read_to_string(e.path().join("dev")).ok()?;
            (!name.starts_with("loop") && !name.starts_with("zram"))
                .then(|| (name, dev.trim().to_string()))
        })
        .collect();
    devs.sort();
    devs.into_iter()
        .next()
        .expect("no block device (in the VM: berth-vm --disk)")
        .1
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn memory_hog_is_oom_killed_and_counted() {
    let rt = Rt::new();
    // The init itself: exit 137.
    let mut b = Bundle::new(&["tail", "/dev/zero"]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 32 << 20, "swap": 32 << 20});
    let (code, _, err) = rt.run_bundle(&unique_id("oom-init"), &b);
    assert_eq!(code, 137, "{err}");

    // A hog under a shell that survives it: the counter rises and
    // `events` reports the kill.
    let id = unique_id("oom-child");
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "read x < /dev/fifo-go; tail /dev/zero; sleep 1000",
    ]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 32 << 20, "swap": 32 << 20});
    nix::unistd::mkfifo(
        &b.rootfs().join("dev-fifo-go"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    b.add_mount(json!({"destination": "/dev/fifo-go", "type": "bind", "source": b.rootfs().join("dev-fifo-go"), "options": ["bind"]}));
    run_detached(&rt, &id, &b);
    assert_eq!(stats(&rt, &id)["memory"]["oom_kills"], 0);
    let mut events = rt
        .cmd()
        .args(["events", "--interval", "60s", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Let the hog go once `events` is watching.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(events.stdout.take().unwrap()));
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["type"], "stats");
    std::fs::write(b.rootfs().join("dev-fifo-go"), "go\n").unwrap();
    let oom: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(oom["type"], "oom", "{oom}");
    assert!(oom["data"]["kills"].as_u64().unwrap() >= 1);
    let _ = events.kill();
    let _ = events.wait();
    let s = stats(&rt, &id);
    assert!(s["memory"]["oom_kills"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(rt.status(&id), "running", "the shell survived its child");
}

#[test]
fn pids_limit_makes_fork_fail() {
    let rt = Rt::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>&1; echo done",
    ]);
    b.config["linux"]["resources"]["pids"] = json!({"limit": 4});
    let (_, out, err) = rt.run_bundle(&unique_id("pids"), &b);
    assert!(
        out.contains("can't fork") || err.contains("can't fork"),
        "{out}{err}"
    );
}

#[test]
fn cpu_quota_throttles_a_busy_loop() {
    let rt = Rt::new();
    let id = unique_id("cpu");
    let mut b = Bundle::new(&["sh", "-c", "while :; do :; done"]);
    b.config["linux"]["resources"]["cpu"] = json!({"quota": 20000, "period": 100000});
    run_detached(&rt, &id, &b);
    let start = stats(&rt, &id);
    let t = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let end = stats(&rt, &id);
    let wall = t.elapsed().as_nanos() as f64;
    let used = (end["cpu"]["usage_ns"].as_u64().unwrap()
        - start["cpu"]["usage_ns"].as_u64().unwrap()) as f64;
    assert!(
        end["cpu"]["throttled_periods"].as_u64().unwrap() > 0,
        "{end}"
    );
    assert!(
        used / wall < 0.35,
        "a 20% quota held the loop to {:.0}% of a CPU",
        100.0 * used / wall
    );
    assert!(
        used / wall > 0.05,
        "the loop ran: {:.0}%",
        100.0 * used / wall
    );
}

#[test]
fn device_rules_deny_what_the_defaults_do_not_allow() {
    let rt = Rt::new();
    // Writing to /dev/kmsg (1:11) needs no capability, only the device
    // rule; the host's node is bind-mounted, so no rule comes with it.
    let script = "echo berth-test > /dev/kmsg 2>/dev/null && echo kmsg-open || echo kmsg-denied; \
                  head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null-ok";
    let bundle = |allow_kmsg: bool| {
        let mut b = Bundle::new(&["sh", "-c", script]);
        b.add_mount(json!({"destination": "/dev/kmsg", "type": "bind", "source": "/dev/kmsg", "options": ["bind"]}));
        assert_eq!(
            b.config["linux"]["resources"]["devices"][0]["allow"], false,
            "deny-all first"
        );
        if allow_kmsg {
            b.config["linux"]["resources"]["devices"]
                .as_array_mut()
                .unwrap()
                .push(json!({"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}));
        }
        b
    };
    let (code, out, err) = rt.run_bundle(&unique_id("devices"), &bundle(false));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["kmsg-denied", "4", "null-ok"],
        "{err}"
    );
    // The same container with a rule for it: the rule, nothing else, decided.
    let (code, out, err) = rt.run_bundle(&unique_id("devices-allowed"), &bundle(true));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["kmsg-open", "4", "null-ok"],
        "{err}"
    );
}

#[test]
fn io_throttles_and_hugetlb_limits_are_written() {
    let rt = Rt::new();
    let dev = block_device();
    let (major, minor) = dev.split_once(':').unwrap();
    let (major, minor): (i64, i64) = (major.parse().unwrap(), minor.parse().unwrap());
    let id = unique_id("io");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.config["linux"]["resources"]["blockIO"] = json!({
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 300}]
    });
    run_detached(&rt, &id, &b);
    if is_v2() {
        let max = read(&cg_file(&id, "", "", "io.max"));
        assert!(
            max.contains(&format!("{dev} rbps=1048576")) && max.contains("wiops=300"),
            "{max}"
        );
    } else {
        assert_eq!(
            read(&cg_file(&id, "blkio", "blkio.throttle.read_bps_device", "")),
            format!("{dev} 1048576")
        );
        assert_eq!(
            read(&cg_file(
                &id,
                "blkio",
                "blkio.throttle.write_iops_device",
                ""
            )),
            format!("{dev} 300")
        );
    }

    let id = unique_id("hugetlb");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.config["linux"]["resources"]["hugepageLimits"] =
        json!([{"pageSize": "2MB", "limit": 8 << 20}]);
    b.write();
    let out = rt.run(&["run", "--detach", "--bundle", bundle_path(&b), &id]);
    if is_v2() {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            read(&cg_file(&id, "", "", "hugetlb.2MB.max")),
            (8 << 20).to_string()
        );
    } else if Path::new("/sys/fs/cgroup/hugetlb").exists() {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            read(&cg_file(&id, "hugetlb", "hugetlb.2MB.limit_in_bytes", "")),
            (8 << 20).to_string()
        );
    } else {
        // Here hugetlb lives only on the hybrid cgroup2 mount, which does
        // not delegate it, and berth does not reconfigure the host.
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("hugetlb") && err.contains("not available"),
            "{err}"
        );
        assert!(common::cgroup_dirs(&id).is_empty());
    }
}

#[test]
fn update_changes_the_memory_limit_live() {
    let rt = Rt::new();
    let id = unique_id("update");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 256 << 20, "swap": 256 << 20});
    run_detached(&rt, &id, &b);
    // 100 MiB fit under 256 MiB...
    let hog = [
        "exec",
        &id,
        "sh",
        "-c",
        "head -c 104857600 /dev/zero | tail > /dev/null; echo rc=$?",
    ];
    assert_eq!(rt.ok(&hog).trim(), "rc=0");
    rt.ok(&["update", "--memory", "48m", "--memory-swap", "48m", &id]);
    let limit = if is_v2() {
        read(&cg_file(&id, "", "", "memory.max"))
    } else {
        read(&cg_file(&id, "memory", "memory.limit_in_bytes", ""))
    };
    assert_eq!(limit, (48 << 20).to_string());
    // ...and no longer under 48 MiB.
    assert_eq!(rt.ok(&hog).trim(), "rc=137");
    assert_eq!(stats(&rt, &id)["memory"]["limit"], 48 << 20);
    // The config copy records it: a later update of something else keeps it.
    rt.ok(&["update", "--pids-limit", "50", &id]);
    let config: Value = serde_json::from_slice(
        &std::fs::read(rt.root.path().join(&id).join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["linux"]["resources"]["memory"]["limit"], 48 << 20);
    assert_eq!(config["linux"]["resources"]["pids"]["limit"], 50);
    let bad = rt.run(&["update", "--memory", "12x", &id]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--memory 12x: unknown unit"));
}

#[test]
fn pause_freezes_every_process_and_resume_thaws() {
    let rt = Rt::new();
    let id = unique_id("pause");
    let b = Bundle::new(&[
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; done & sleep 1000 & wait",
    ]);
    run_detached(&rt, &id, &b);
    let count = b.rootfs().join("tmp/count");
    let value = || {
        std::fs::read_to_string(&count)
            .unwrap_or_default()
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    wait_until("the counter to count", Duration::from_secs(20), || {
        value() > 10
    });
    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    let frozen = if is_v2() {
        read(&cg_file(&id, "", "", "cgroup.events")).contains("frozen 1")
    } else {
        read(&cg_file(&id, "freezer", "freezer.state", "")) == "FROZEN"
    };
    assert!(frozen, "the cgroup reads frozen");
    let at_pause = value();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(value(), at_pause, "nothing runs while paused");
    let err = rt.run(&["exec", &id, "true"]);
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("cannot exec in a container that is paused")
    );
    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "running");
    wait_until("the counter to move again", Duration::from_secs(20), || {
        value() > at_pause
    });
    let err = rt.run(&["resume", &id]);
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("cannot resume a container that is running")
    );
    // delete --force of a paused container works too.
    rt.ok(&["pause", &id]);
    rt.ok(&["delete", "--force", &id]);
    assert!(common::cgroup_dirs(&id).is_empty());
}

#[test]
fn stats_move_with_the_workload() {
    let rt = Rt::new();
    let id = unique_id("stats");
    let b = Bundle::new(&["sleep", "1000"]);
    run_detached(&rt, &id, &b);
    let before = stats(&rt, &id);
    assert_eq!(before["pids"]["current"], 1);
    // dd holds its 64 MiB buffer, filled, while sleep never reads the pipe.
    rt.ok(&[
        "exec",
        "--detach",
        &id,
        "sh",
        "-c",
        "dd if=/dev/zero bs=64M count=1 2>/dev/null | sleep 1000",
    ]);
    wait_until(
        "memory usage to rise by 60 MiB",
        Duration::from_secs(30),
        || {
            let now = stats(&rt, &id);
            now["memory"]["usage"].as_u64().unwrap()
                >= before["memory"]["usage"].as_u64().unwrap() + (60 << 20)
        },
    );
    let after = stats(&rt, &id);
    assert!(after["pids"]["current"].as_u64().unwrap() >= 3, "{after}");
    assert!(
        after["cpu"]["usage_ns"].as_u64().unwrap() > before["cpu"]["usage_ns"].as_u64().unwrap()
    );
    // exec'd processes are ours (the test's) to reap once delete kills them.
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    let reaper = std::thread::spawn(move || {
        for p in pids {
            common::reap(p);
        }
    });
    rt.ok(&["delete", "--force", &id]);
    reaper.join().unwrap();
}

#[test]
fn nested_cgroups_path_is_created_and_removed() {
    let rt = Rt::new();
    let parent = format!("bt-parent-{}", std::process::id());
    let id = unique_id("nested");
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["cgroupsPath"] = json!(format!("/{parent}/{id}"));
    let (code, _, err) = rt.run_bundle(&id, &b);
    assert_eq!(code, 0, "{err}");
    assert!(
        common::cgroup_dirs(&parent).is_empty(),
        "the parent it created is gone too"
    );
}

#[test]
fn stats_of_a_stopped_container_are_refused() {
    let rt = Rt::new();
    let id = unique_id("nostats");
    let b = Bundle::new(&["true"]);
    b.write();
    rt.ok(&["run", "--keep", "--bundle", bundle_path(&b), &id]);
    let out = rt.run(&["events", "--stats", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a stopped container has no stats"));
    rt.ok(&["delete", &id]);
}
