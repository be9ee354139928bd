//! create/start/state/kill/delete/exec/ps/list, hooks, limits, terminals,
//! and bad input: through the berth-runtime binary, as clients use it.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Bundle, Rt, cgroup_dirs, unique_id};
use serde_json::json;

fn bundle_path(b: &Bundle) -> &str {
    b.path().to_str().unwrap()
}

#[test]
fn create_start_kill_delete_leave_nothing() {
    let rt = Rt::new();
    let id = unique_id("life");
    let b = Bundle::new(&["sleep", "1000"]);
    b.write();
    rt.ok(&["create", "--bundle", bundle_path(&b), &id]);
    let st = rt.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], bundle_path(&b));
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(!cgroup_dirs(&id).is_empty(), "the container has a cgroup");
    let in_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(in_cgroup.contains(&format!("/{id}")), "{in_cgroup}");

    rt.ok(&["start", &id]);
    assert_eq!(rt.status(&id), "running");
    let err = rt.run(&["start", &id]);
    assert!(!err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("cannot start a container that is running")
    );

    let list: serde_json::Value =
        serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(rt.ok(&["list", "-q"]).trim(), id);

    let del = rt.run(&["delete", &id]);
    assert!(
        !del.status.success(),
        "a running container is not deleted without --force"
    );
    assert!(
        String::from_utf8_lossy(&del.stderr).contains("cannot delete a container that is running")
    );

    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    assert_eq!(rt.state(&id)["pid"], 0);
    common::reap(pid);
    rt.ok(&["delete", &id]);
    assert!(!rt.root.path().join(&id).exists(), "state removed");
    assert!(
        cgroup_dirs(&id).is_empty(),
        "cgroups removed: {:?}",
        cgroup_dirs(&id)
    );
    assert!(
        common::host_mounts_mentioning(bundle_path(&b)).is_empty(),
        "no mounts left"
    );
    assert!(rt.ok(&["list", "-q"]).trim().is_empty());
    let gone = rt.run(&["state", &id]);
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains(&format!("container {id} does not exist"))
    );
}

#[test]
fn delete_force_kills_every_process() {
    let rt = Rt::new();
    let id = unique_id("force");
    let b = Bundle::new(&["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    b.write();
    rt.ok(&["run", "-d", "--bundle", bundle_path(&b), &id]);
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids.len(), 3, "sh and two sleeps: {pids:?}");
    let table = rt.ok(&["ps", &id]);
    assert!(table.lines().next().unwrap().contains("PID"));
    assert_eq!(
        table.lines().filter(|l| l.ends_with(" sleep 1000")).count(),
        2,
        "{table}"
    );
    rt.ok(&["delete", "--force", &id]);
    for p in &pids {
        common::reap(*p);
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "pid {p} survived"
        );
    }
    assert!(cgroup_dirs(&id).is_empty());
}

#[test]
fn kill_all_reaches_every_process_and_signals_by_name_and_number() {
    let rt = Rt::new();
    let id = unique_id("killall");
    // A shell that ignores TERM keeps running; its children do not.
    let b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'true' TERM; sleep 1000 & sleep 1000 & while true; do sleep 1; done",
    ]);
    b.write();
    rt.ok(&["run", "-d", "--bundle", bundle_path(&b), &id]);
    let before: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "-f", "json", &id])).unwrap();
    assert!(before.len() >= 3);
    rt.ok(&["kill", "--all", &id, "15"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "-f", "json", &id])).unwrap();
        if now.len() <= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "TERM did not reach the sleeps: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(rt.status(&id), "running", "the shell ignores TERM");
    rt.ok(&["kill", &id, "SIGKILL"]);
    rt.wait_status(&id, "stopped");
    let bad = rt.run(&["kill", &id, "KILL"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not running"));
    let bad = rt.run(&["kill", &id, "NOTASIGNAL"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown signal"));
}

#[test]
fn exec_joins_namespaces_and_cgroup() {
    let rt = Rt::new();
    let id = unique_id("exec");
    let b = Bundle::new(&["sleep", "1000"]);
    b.write();
    rt.ok(&["run", "-d", "--bundle", bundle_path(&b), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let out = rt.ok(&[
        "exec", "-e", "FOO=bar", "--cwd", "/tmp", &id, "sh", "-c",
        "for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done; cat /proc/self/cgroup; echo $FOO; pwd; ps -o pid,comm | grep -c sleep",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    for (i, n) in ["pid", "net", "ipc", "uts", "mnt", "cgroup"]
        .iter()
        .enumerate()
    {
        let want = std::fs::read_link(format!("/proc/{pid}/ns/{n}")).unwrap();
        assert_eq!(lines[i], want.to_str().unwrap(), "{n} namespace");
    }
    let init_cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    // Inside a cgroup namespace both show the namespace root.
    let exec_cg: Vec<&str> = lines[6..]
        .iter()
        .take_while(|l| l.contains(':'))
        .copied()
        .collect();
    assert!(!exec_cg.is_empty());
    assert!(init_cg.lines().count() >= exec_cg.len());
    let rest: Vec<&str> = lines[6 + exec_cg.len()..].to_vec();
    assert_eq!(rest, ["bar", "/tmp", "1"], "{out}");

    // Exit codes come back; a missing program is a clear error.
    let out = rt.run(&["exec", &id, "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    let out = rt.run(&["exec", &id, "no-such-program"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("executable file not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // --process and --detach with a pid file.
    let dir = tempfile::tempdir().unwrap();
    let process = json!({"cwd": "/", "args": ["sleep", "1000"], "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]});
    let pfile = dir.path().join("process.json");
    std::fs::write(&pfile, process.to_string()).unwrap();
    let pidfile = dir.path().join("exec.pid");
    rt.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        "--process",
        pfile.to_str().unwrap(),
        &id,
    ]);
    let epid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "-f", "json", &id])).unwrap();
    assert!(
        pids.contains(&epid),
        "exec'd process is in the container's cgroup: {pids:?} {epid}"
    );
    // A dying pid-namespace init waits until every process in its
    // namespace is reaped; the exec'd one is ours to reap, as it would be
    // a shim's.
    let reaper = std::thread::spawn(move || {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(epid), None);
    });
    rt.ok(&["delete", "--force", &id]);
    reaper.join().unwrap();
}

#[test]
fn exec_into_stopped_container_is_refused() {
    let rt = Rt::new();
    let id = unique_id("exec-stopped");
    let b = Bundle::new(&["true"]);
    b.write();
    rt.ok(&["run", "--keep", "--bundle", bundle_path(&b), &id]);
    assert_eq!(rt.status(&id), "stopped");
    let out = rt.run(&["exec", &id, "true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot exec in a container that is stopped"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    rt.ok(&["delete", &id]);
}

#[test]
fn exit_codes_and_signals_propagate() {
    let rt = Rt::new();
    let (code, _, _) = rt.run_bundle(&unique_id("exit3"), &Bundle::new(&["sh", "-c", "exit 3"]));
    assert_eq!(code, 3);
    // Without a pid namespace the shell is not an init the kernel shields
    // from its own signals.
    let mut b = Bundle::new(&["sh", "-c", "kill -9 $$"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    let (code, _, err) = rt.run_bundle(&unique_id("sigkill"), &b);
    assert_eq!(code, 137, "{err}");
}

#[test]
fn memory_limit_oom_kills_a_hog() {
    let rt = Rt::new();
    let id = unique_id("oom");
    // tail buffers its whole input when it sees no newline.
    let mut b = Bundle::new(&["sh", "-c", "head -c 200000000 /dev/zero | tail > /dev/null"]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 32 * 1024 * 1024});
    b.config["linux"]["resources"]["pids"] = json!({"limit": 20});
    let (code, _, err) = rt.run_bundle(&id, &b);
    assert_ne!(code, 0, "{err}");
    // The pipeline's status is tail's: killed by the OOM killer.
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "head -c 200000000 /dev/zero | tail > /dev/null; echo tail=$?",
    ]);
    b.config["linux"]["resources"]["memory"] =
        json!({"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024});
    let (code, out, err) = rt.run_bundle(&unique_id("oom2"), &b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "tail=137", "the hog was SIGKILLed");
    let mut b = Bundle::new(&["sh", "-c", "head -c 200000000 /dev/zero | tail"]);
    b.config["linux"]["resources"]["memory"] =
        json!({"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024});
    b.config["process"]["args"] = json!(["tail", "/dev/zero"]);
    let (code, _, _) = rt.run_bundle(&unique_id("oom3"), &b);
    assert_eq!(code, 137, "the init itself OOM-killed exits 137");
}

#[test]
fn pids_limit_makes_fork_fail() {
    let rt = Rt::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done 2>&1; echo done",
    ]);
    b.config["linux"]["resources"]["pids"] = json!({"limit": 5});
    let (_, out, err) = rt.run_bundle(&unique_id("pids"), &b);
    assert!(
        out.contains("can't fork")
            || err.contains("can't fork")
            || out.contains("Resource temporarily unavailable"),
        "{out}{err}"
    );
}

#[test]
fn hooks_run_in_order_with_the_state() {
    let rt = Rt::new();
    let id = unique_id("hooks");
    let log = tempfile::tempdir().unwrap();
    let logp = log.path().to_str().unwrap().to_string();
    let mut b = Bundle::new(&["true"]);
    let host_hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {logp}/{name}.json; echo {name} >> {logp}/order")]});
    // startContainer runs inside the container, after pivot_root: it sees
    // the log directory through a bind mount, and the container's sh.
    b.add_mount(
        json!({"destination": "/hooklog", "type": "bind", "source": logp, "options": ["rbind"]}),
    );
    b.config["hooks"] = json!({
        "prestart": [host_hook("prestart")],
        "createRuntime": [host_hook("createRuntime")],
        "createContainer": [host_hook("createContainer")],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /hooklog/startContainer.json; echo startContainer >> /hooklog/order"]}],
        "poststart": [host_hook("poststart")],
        "poststop": [host_hook("poststop")],
    });
    let (code, _, err) = rt.run_bundle(&id, &b);
    assert_eq!(code, 0, "{err}");
    let order = std::fs::read_to_string(log.path().join("order")).unwrap();
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
    for name in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        let st: serde_json::Value = serde_json::from_slice(
            &std::fs::read(log.path().join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(st["id"], id.as_str(), "{name}");
        assert_eq!(st["bundle"], bundle_path(&b), "{name}");
        if name != "poststop" {
            assert!(st["pid"].as_i64().unwrap() > 0, "{name} gets the pid");
        }
    }
}

#[test]
fn failing_prestart_hook_aborts_and_cleans_up() {
    let rt = Rt::new();
    let id = unique_id("badhook");
    let mut b = Bundle::new(&["true"]);
    b.config["hooks"] =
        json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 2"]}]});
    b.write();
    let out = rt.run(&["create", "--bundle", bundle_path(&b), &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hooks.prestart[0] /bin/sh: exit status: 2: nope"),
        "{err}"
    );
    assert!(!rt.root.path().join(&id).exists());
    assert!(cgroup_dirs(&id).is_empty());
}

#[test]
fn terminal_through_console_socket() {
    let rt = Rt::new();
    let id = unique_id("tty");
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let mut b = Bundle::new(&["sh"]);
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 33, "width": 111});
    b.write();
    rt.ok(&[
        "create",
        "--console-socket",
        sock_path.to_str().unwrap(),
        "--bundle",
        bundle_path(&b),
        &id,
    ]);
    let (conn, _) = listener.accept().unwrap();
    let master = berth_runtime::tty::recv_fd(conn.as_raw_fd()).unwrap();
    rt.ok(&["start", &id]);
    let mut m = std::fs::File::from(master);
    m.write_all(b"tty; stty size; readlink /proc/self/fd/0; exit 5\n")
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = m.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("33 111"), "console size applied: {text}");
    rt.wait_status(&id, "stopped");
}

#[test]
fn interactive_run_through_a_pty() {
    // `run` without --detach proxies the container's terminal to ours.
    require_pty_run();
}

fn require_pty_run() {
    let rt = Rt::new();
    let id = unique_id("runtty");
    let mut b = Bundle::new(&["sh"]);
    b.config["process"]["terminal"] = json!(true);
    b.write();
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = rt
        .cmd()
        .args(["run", "--bundle", bundle_path(&b), &id])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut m = std::fs::File::from(pty.master);
    m.write_all(b"echo in-$((6*7)); exit 4\n").unwrap();
    let status = child.wait().unwrap();
    let mut buf = [0u8; 8192];
    let mut text = String::new();
    // SAFETY: fcntl on our master fd.
    unsafe { libc::fcntl(m.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    while let Ok(n) = m.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.contains("in-42"), "{text}");
    assert_eq!(status.code(), Some(4));
}

#[test]
fn spec_default_config_runs_here() {
    let rt = Rt::new();
    let dir = tempfile::tempdir().unwrap();
    common::make_rootfs(&dir.path().join("rootfs"));
    rt.ok(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    let again = rt.run(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["sh", "-c", "ulimit -n; echo ok"]);
    std::fs::write(&path, config.to_string()).unwrap();
    let id = unique_id("spec");
    let out = rt.ok(&["run", "--bundle", dir.path().to_str().unwrap(), &id]);
    assert_eq!(out, "1024\nok\n");
    let rootless: serde_json::Value = {
        let d = tempfile::tempdir().unwrap();
        rt.ok(&["spec", "--rootless", "--bundle", d.path().to_str().unwrap()]);
        serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap()).unwrap()
    };
    assert!(
        rootless["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "user")
    );
}

#[test]
fn features_and_version() {
    let rt = Rt::new();
    let f: serde_json::Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert!(
        f["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!("time"))
    );
    assert!(
        f["linux"]["seccomp"]["actions"]
            .as_array()
            .unwrap()
            .contains(&json!("SCMP_ACT_NOTIFY"))
    );
    assert!(rt.ok(&["--version"]).starts_with("berth-runtime version "));
}

#[test]
fn json_log_format_for_conmon() {
    let rt = Rt::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let out = rt.run(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "nope",
    ]);
    assert!(!out.status.success());
    let line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["level"], "error");
    assert!(
        line["msg"]
            .as_str()
            .unwrap()
            .contains("container nope does not exist")
    );
    assert!(line["time"].is_string());
}

/// Bad input: a clear error naming the field, a non-zero exit, nothing left.
mod bad_input {
    use super::*;

    fn create_fails(rt: &Rt, id: &str, b: &Bundle, want: &str) {
        let out = rt.run(&["create", "--bundle", bundle_path(b), id]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "expected {want:?} in: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!rt.root.path().join(id).exists(), "no state left for {id}");
        assert!(cgroup_dirs(id).is_empty(), "no cgroup left for {id}");
    }

    #[test]
    fn malformed_config() {
        let rt = Rt::new();
        let b = Bundle::new(&["true"]);
        std::fs::write(
            b.path().join("config.json"),
            "{\"ociVersion\": \"1.0.2\", \"process\": ",
        )
        .unwrap();
        create_fails(
            &rt,
            &unique_id("malformed"),
            &b,
            "config.json: invalid JSON",
        );
    }

    #[test]
    fn missing_rootfs() {
        let rt = Rt::new();
        let b = Bundle::new(&["true"]);
        b.write();
        std::fs::remove_dir_all(b.rootfs()).unwrap();
        create_fails(&rt, &unique_id("norootfs"), &b, "root.path:");
    }

    #[test]
    fn unknown_namespace_type() {
        let rt = Rt::new();
        let mut b = Bundle::new(&["true"]);
        b.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "bogus"}));
        b.write();
        create_fails(
            &rt,
            &unique_id("badns"),
            &b,
            "linux.namespaces[6].type: unknown variant `bogus`",
        );
    }

    #[test]
    fn seccomp_unknown_syscall() {
        let rt = Rt::new();
        let mut b = Bundle::new(&["true"]);
        b.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["mkdirx"], "action": "SCMP_ACT_ERRNO"}]
        });
        b.write();
        create_fails(
            &rt,
            &unique_id("badsc"),
            &b,
            "linux.seccomp.syscalls[1].names: unknown syscall name \"mkdirx\"",
        );
    }

    #[test]
    fn rlimit_above_hard_limit_names_it() {
        let rt = Rt::new();
        let mut b = Bundle::new(&["true"]);
        let (_, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        if hard == libc::RLIM_INFINITY {
            panic!("this host has no finite RLIMIT_NOFILE hard limit to exceed");
        }
        b.config["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}]);
        b.write();
        let has_sys_resource = caps::has_cap(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_SYS_RESOURCE,
        )
        .unwrap();
        let id = unique_id("rlimit-hard");
        if has_sys_resource {
            // A host whose root can raise it: the container must start.
            rt.ok(&["run", "--bundle", bundle_path(&b), &id]);
        } else {
            create_fails(&rt, &id, &b, "process.rlimits: RLIMIT_NOFILE hard limit");
            let out = rt.run(&["create", "--bundle", bundle_path(&b), &id]);
            assert!(String::from_utf8_lossy(&out.stderr).contains("CAP_SYS_RESOURCE"));
        }
    }

    #[test]
    fn missing_program() {
        let rt = Rt::new();
        let b = Bundle::new(&["/no/such/program"]);
        b.write();
        create_fails(
            &rt,
            &unique_id("noprog"),
            &b,
            "exec: \"/no/such/program\": no such file or directory",
        );
    }

    #[test]
    fn duplicate_id_and_bad_id() {
        let rt = Rt::new();
        let id = unique_id("dup");
        let b = Bundle::new(&["sleep", "100"]);
        b.write();
        rt.ok(&["create", "--bundle", bundle_path(&b), &id]);
        let out = rt.run(&["create", "--bundle", bundle_path(&b), &id]);
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains(&format!("container {id} already exists"))
        );
        assert_eq!(rt.status(&id), "created", "the first one is untouched");
        rt.ok(&["delete", &id]);
        let out = rt.run(&["create", "--bundle", bundle_path(&b), "../etc"]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("invalid container id"));
    }

    #[test]
    fn terminal_without_console_socket() {
        let rt = Rt::new();
        let mut b = Bundle::new(&["sh"]);
        b.config["process"]["terminal"] = json!(true);
        b.write();
        create_fails(
            &rt,
            &unique_id("notty"),
            &b,
            "process.terminal is true: pass --console-socket",
        );
    }
}

#[test]
fn exec_user_cap_and_tty_through_console_socket() {
    let rt = Rt::new();
    let id = unique_id("exec-opts");
    let b = Bundle::new(&["sleep", "1000"]);
    b.write();
    rt.ok(&["run", "-d", "--bundle", bundle_path(&b), &id]);
    let out = rt.ok(&[
        "exec",
        "--user",
        "1000:1001",
        "-g",
        "7",
        &id,
        "sh",
        "-c",
        "id -u; id -g; id -G",
    ]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["1000", "1001", "1001 7"]);
    // --cap adds to bounding, effective and permitted (CAP_SYS_ADMIN = 21).
    let out = rt.ok(&[
        "exec",
        "--cap",
        "CAP_SYS_ADMIN",
        &id,
        "sh",
        "-c",
        "grep CapEff /proc/self/status",
    ]);
    let eff = u64::from_str_radix(out.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert!(eff & (1 << 21) != 0, "{out}");
    let out = rt.run(&["exec", "--cap", "CAP_NOPE", &id, "true"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cap CAP_NOPE: unknown capability"));

    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("exec.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let sock = sock_path.to_str().unwrap().to_string();
    let id2 = id.clone();
    let root = rt.root.path().to_path_buf();
    let pidfile = dir.path().join("tty.pid");
    let pidfile2 = pidfile.to_str().unwrap().to_string();
    let exec = std::thread::spawn(move || {
        std::process::Command::new(common::BIN)
            .arg("--root")
            .arg(&root)
            .args([
                "exec",
                "-t",
                "-d",
                "--console-socket",
                &sock,
                "--pid-file",
                &pidfile2,
                &id2,
                "sh",
            ])
            .output()
            .unwrap()
    });
    let (conn, _) = listener.accept().unwrap();
    let master = berth_runtime::tty::recv_fd(conn.as_raw_fd()).unwrap();
    let out = exec.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m = std::fs::File::from(master);
    m.write_all(b"tty; exit\n").unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = m.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.contains("/dev/pts/"), "{text}");
    // Ours to reap, or the container's init could not finish dying.
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
}

#[test]
fn terminal_container_gets_dev_console() {
    let rt = Rt::new();
    let id = unique_id("console");
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("c.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "stat -c '%t:%T' /dev/console; grep -c ' /dev/console ' /proc/mounts",
    ]);
    b.config["process"]["terminal"] = json!(true);
    b.write();
    rt.ok(&[
        "create",
        "--console-socket",
        sock_path.to_str().unwrap(),
        "--bundle",
        bundle_path(&b),
        &id,
    ]);
    let (conn, _) = listener.accept().unwrap();
    let master = berth_runtime::tty::recv_fd(conn.as_raw_fd()).unwrap();
    rt.ok(&["start", &id]);
    let mut m = std::fs::File::from(master);
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = m.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // A pty slave is major 136; /dev/console is a bind of it.
    assert!(
        text.contains("88:0") || text.contains("88:"),
        "pty major 136 = 0x88: {text}"
    );
    assert!(text.lines().any(|l| l.trim() == "1"), "{text}");
}

#[test]
fn init_is_not_readable_by_container_processes_while_it_waits() {
    let rt = Rt::new();
    let id = unique_id("undumpable");
    let b = Bundle::new(&["sleep", "1000"]);
    b.write();
    rt.ok(&["create", "--bundle", bundle_path(&b), &id]);
    // The init still holds the runtime's fds while it waits for `start`.
    let out = rt.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "ls -l /proc/1/fd/ 2>&1; readlink /proc/1/exe; echo exe=$?; cat /proc/1/environ; echo environ=$?; true",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Listing fd numbers is allowed; following them, or reading the
    // binary or the environment, needs ptrace access the init refuses.
    assert!(text.contains("Permission denied"), "{text}");
    assert!(
        text.contains("exe=1") && text.contains("environ=1"),
        "{text}"
    );
    assert!(
        !text.contains("berth-runtime") && !text.contains("/sys/fs/cgroup"),
        "{text}"
    );
    rt.ok(&["delete", &id]);
}

#[test]
fn delete_kills_processes_that_outlived_the_init() {
    let rt = Rt::new();
    let id = unique_id("orphans");
    // Without a pid namespace, a background process survives its shell.
    let mut b = Bundle::new(&["sh", "-c", "sleep 1000 & echo $!"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    b.write();
    let out = rt.ok(&["run", "--keep", "--bundle", bundle_path(&b), &id]);
    let orphan: i32 = out.trim().parse().unwrap();
    assert_eq!(rt.status(&id), "stopped");
    assert!(
        Path::new(&format!("/proc/{orphan}")).exists(),
        "the orphan lives on"
    );
    rt.ok(&["delete", &id]);
    common::reap(orphan);
    assert!(
        !Path::new(&format!("/proc/{orphan}/exe")).exists(),
        "delete killed it"
    );
    assert!(cgroup_dirs(&id).is_empty());
}
