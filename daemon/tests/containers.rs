//! Containers through the real docker CLI against berthd: run, logs,
//! stop, restart policies, crashes of berthd and of a shim. As root,
//! inside `unshare -m --propagation private` (as scripts/test runs it).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{Berthd, poll_until as eventually, text};

fn inspect(d: &Berthd, name: &str, tmpl: &str) -> String {
    d.docker_ok(&["inspect", "-f", tmpl, name])
        .trim()
        .to_string()
}

#[test]
fn run_prints_output_and_passes_exit_codes() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    let (out, _, code) = text(&d.docker(&["run", "--rm", "busybox", "echo", "hello", "world"]));
    assert_eq!((out.as_str(), code), ("hello world\n", 0), "{}", d.log());

    let o = d.docker(&[
        "run",
        "--name",
        "x3",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    let (out, err, code) = text(&o);
    assert_eq!(code, 3, "{err}");
    assert_eq!(out, "out\n");
    assert!(err.contains("err"), "{err}");
    assert_eq!(
        inspect(&d, "x3", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 3"
    );

    let (_, err, code) = text(&d.docker(&["run", "--rm", "busybox", "no-such-command"]));
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("executable file not found"), "{err}");

    // A --rm container's root is a volatile overlay (nothing of it is
    // kept, so nothing of it is synced); a kept container's is not.
    let root_options = |args: &[&str]| {
        let info = d.docker_ok(args);
        info.lines()
            .find(|l| l.split(' ').nth(4) == Some("/"))
            .unwrap_or_else(|| panic!("no root mount in {info}"))
            .to_string()
    };
    let rm = root_options(&["run", "--rm", "busybox", "cat", "/proc/self/mountinfo"]);
    assert!(rm.contains(" overlay ") && rm.contains("volatile"), "{rm}");
    let kept = root_options(&[
        "run",
        "--name",
        "x4",
        "busybox",
        "cat",
        "/proc/self/mountinfo",
    ]);
    assert!(
        kept.contains(" overlay ") && !kept.contains("volatile"),
        "{kept}"
    );
    d.docker_ok(&["rm", "x4"]);

    // --rm removed its containers; the named one stays.
    let all = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(all.lines().collect::<Vec<_>>(), ["x3"], "{all}");
}

#[test]
fn pid_and_ipc_namespaces_of_another_container() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "donor",
        "--ipc",
        "shareable",
        "busybox",
        "sh",
        "-c",
        "echo shared > /dev/shm/x; exec sleep 1000",
    ]);
    let donor_id = inspect(&d, "donor", "{{.Id}}");
    let shm_mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.contains(&format!("/c/{donor_id}/shm ")))
    };
    assert!(shm_mounted(), "a shareable /dev/shm lives on the host");
    let donor_pid: i32 = inspect(&d, "donor", "{{.State.Pid}}").parse().unwrap();
    let ns = |pid: i32, typ: &str| std::fs::read_link(format!("/proc/{pid}/ns/{typ}")).unwrap();

    // --pid: the donor's processes are there, its sleep is pid 1.
    let ps = d.docker_ok(&[
        "run",
        "--rm",
        "--pid",
        "container:donor",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/cmdline; echo; readlink /proc/self/ns/pid",
    ]);
    let mut lines = ps.lines();
    assert_eq!(lines.next(), Some("sleep\u{0}1000\u{0}"), "{ps}");
    assert_eq!(
        lines.next().map(std::path::PathBuf::from),
        Some(ns(donor_pid, "pid")),
        "{ps}"
    );

    // --ipc: the same IPC namespace and the same /dev/shm.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--ipc",
        "container:donor",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/ipc; cat /dev/shm/x",
    ]);
    let ipc = ns(donor_pid, "ipc");
    assert_eq!(out, format!("{}\nshared\n", ipc.display()));
    assert_ne!(ipc, ns(std::process::id() as i32, "ipc"), "not the host's");
    // As in Docker, a private IPC namespace is not for sharing.
    d.docker_ok(&["run", "-d", "--name", "private", "busybox", "sleep", "1000"]);
    let (_, err, code) = text(&d.docker(&[
        "run",
        "--rm",
        "--ipc",
        "container:private",
        "busybox",
        "true",
    ]));
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("non-shareable IPC"), "{err}");
    d.docker_ok(&["rm", "-f", "private"]);

    // A donor that is not running, or not there: clear errors, nothing left.
    d.docker_ok(&["stop", "-t", "0", "donor"]);
    assert!(
        eventually(Duration::from_secs(5), || !shm_mounted()),
        "the shareable /dev/shm goes with the container"
    );
    let (_, err, code) = text(&d.docker(&[
        "run",
        "--name",
        "joiner",
        "--pid",
        "container:donor",
        "busybox",
        "true",
    ]));
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("cannot join PID of a non running container"),
        "{err}"
    );
    let (_, err, code) =
        text(&d.docker(&["run", "--rm", "--ipc", "container:nope", "busybox", "true"]));
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("No such container: nope"), "{err}");
    let all = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = all.lines().collect();
    names.sort();
    assert_eq!(names, ["donor", "joiner"], "{all}");
}

#[test]
fn detached_container_lifecycle() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    let id = d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 100",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    let ps = d.docker_ok(&["ps", "--format", "{{.ID}} {{.Names}} {{.Status}}"]);
    assert!(ps.starts_with(&format!("{} web Up", &id[..12])), "{ps}");
    let pid: i32 = inspect(&d, "web", "{{.State.Pid}}").parse().unwrap();
    assert!(pid > 0 && Path::new(&format!("/proc/{pid}")).exists());
    assert!(eventually(Duration::from_secs(5), || d
        .docker_ok(&["logs", "web"])
        == "started\n"));
    let top = d.docker_ok(&["top", "web"]);
    assert!(top.contains("sleep 100"), "{top}");

    // A second start is a no-op; removing a running container is refused.
    d.docker_ok(&["start", "web"]);
    let (_, err, code) = text(&d.docker(&["rm", "web"]));
    assert_ne!(code, 0);
    assert!(
        err.contains("stop the container before removing or force remove"),
        "{err}"
    );

    // sleep as pid 1 ignores SIGTERM: stop falls back to SIGKILL.
    let t0 = Instant::now();
    d.docker_ok(&["stop", "-t", "1", "web"]);
    assert!(t0.elapsed() < Duration::from_secs(8));
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists() || {
            std::thread::sleep(Duration::from_millis(200));
            !Path::new(&format!("/proc/{pid}/cmdline")).exists()
        }
    );
    assert_eq!(
        inspect(&d, "web", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 137"
    );
    let ps = d.docker_ok(&[
        "ps",
        "-a",
        "--filter",
        "status=exited",
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    assert!(ps.starts_with("web Exited (137)"), "{ps}");

    // Start again: a new process, the same log.
    d.docker_ok(&["start", "web"]);
    let pid2: i32 = inspect(&d, "web", "{{.State.Pid}}").parse().unwrap();
    assert!(pid2 > 0 && pid2 != pid);
    assert!(eventually(Duration::from_secs(5), || d
        .docker_ok(&["logs", "web"])
        == "started\nstarted\n"));
    d.docker_ok(&["restart", "-t", "0", "web"]);
    assert_eq!(inspect(&d, "web", "{{.State.Running}}"), "true");
    d.docker_ok(&["kill", "web"]);
    assert!(eventually(Duration::from_secs(5), || inspect(
        &d,
        "web",
        "{{.State.Status}}"
    ) == "exited"));
    d.docker_ok(&["rename", "web", "web2"]);
    d.docker_ok(&["rm", "web2"]);
    let (_, err, _) = text(&d.docker(&["inspect", "web2"]));
    assert!(err.contains("No such object: web2"), "{err}");
    // The name is free again; rm -f takes a running one down.
    d.docker_ok(&["run", "-d", "--name", "web", "busybox", "sleep", "100"]);
    d.docker_ok(&["rm", "-f", "web"]);
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
    assert!(d.shim_pids().is_empty(), "shims left behind");
}

#[test]
fn logs_tail_timestamps_and_follow() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "lg",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; echo err$i >&2; sleep 0.3; done",
    ]);
    // Follow returns once the container ends, with everything.
    let o = d.docker(&["logs", "-f", "lg"]);
    let (out, err, code) = text(&o);
    assert_eq!(code, 0);
    assert_eq!(out, "line1\nline2\nline3\n");
    assert_eq!(err, "err1\nerr2\nerr3\n");
    // The tail counts lines of both streams, as Docker's does.
    let (out, err, _) = text(&d.docker(&["logs", "--tail", "2", "lg"]));
    assert_eq!((out.as_str(), err.as_str()), ("line3\n", "err3\n"));
    let ts = d.docker_ok(&["logs", "-t", "--tail", "2", "lg"]);
    let (stamp, rest) = ts.split_once(' ').unwrap();
    assert_eq!(rest, "line3\n");
    assert!(stamp.starts_with("20") && stamp.ends_with('Z'), "{ts}");
    assert_eq!(d.docker_ok(&["wait", "lg"]).trim(), "0");
}

#[test]
fn restart_policy_on_failure_counts() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:3",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    assert!(
        eventually(Duration::from_secs(20), || {
            inspect(&d, "flaky", "{{.RestartCount}} {{.State.Status}}") == "3 exited"
        }),
        "{}",
        inspect(&d, "flaky", "{{.RestartCount}} {{.State.Status}}")
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(inspect(&d, "flaky", "{{.RestartCount}}"), "3");
}

#[test]
fn containers_outlive_a_berthd_crash() {
    let (mut d, _) = Berthd::start(&["busybox:latest"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "100",
    ]);
    // Started last: berthd records a start without waiting for the disk,
    // so the crash loses it, and restore must find it from its shim.
    d.docker_ok(&["run", "-d", "--name", "latest", "busybox", "sleep", "100"]);
    let latest_pid = inspect(&d, "latest", "{{.State.Pid}}");
    let pid = inspect(&d, "ticker", "{{.State.Pid}}");
    let always_pid: i32 = inspect(&d, "always", "{{.State.Pid}}").parse().unwrap();
    // Ends while berthd is down, or soon after: either way it goes.
    d.docker_ok(&[
        "run", "-d", "--rm", "--name", "gone", "busybox", "sleep", "0.5",
    ]);
    d.crash();
    let before = std::fs::read_to_string(
        d.data_root
            .join("containers")
            .join(inspect_id(&d, "ticker"))
            .join(format!("{}-json.log", inspect_id(&d, "ticker"))),
    )
    .unwrap_or_default()
    .lines()
    .count();
    // While berthd is down the ticker keeps logging, and `always` dies.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(always_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    d.restart();
    assert_eq!(
        inspect(&d, "ticker", "{{.State.Status}} {{.State.Pid}}"),
        format!("running {pid}")
    );
    assert_eq!(
        inspect(&d, "latest", "{{.State.Status}} {{.State.Pid}}"),
        format!("running {latest_pid}")
    );
    let logs = d.docker_ok(&["logs", "ticker"]);
    let n = logs.lines().count();
    assert!(
        n > before + 3,
        "logging went on while berthd was down: {before} then {n}"
    );
    // Nothing lost: the ticks are consecutive.
    for (i, l) in logs.lines().enumerate() {
        assert_eq!(l, format!("tick {i}"));
    }
    // `always` came back with a new process.
    assert!(eventually(Duration::from_secs(10), || {
        let s = inspect(&d, "always", "{{.State.Status}} {{.State.Pid}}");
        s.starts_with("running ") && s != format!("running {always_pid}")
    }));
    // The restored container can still be stopped and waited for.
    d.docker_ok(&["stop", "-t", "0", "ticker"]);
    assert_eq!(inspect(&d, "ticker", "{{.State.Status}}"), "exited");
    assert!(eventually(Duration::from_secs(10), || {
        d.docker_ok(&["ps", "-aq", "--filter", "name=gone"])
            .trim()
            .is_empty()
    }));
    d.docker_ok(&["stop", "-t", "0", "latest"]);
    assert_eq!(inspect(&d, "latest", "{{.State.Status}}"), "exited");
}

fn inspect_id(d: &Berthd, name: &str) -> String {
    // berthd may be down: find the id from the state the test knows.
    let exec = d.pidfile.parent().unwrap().join("c");
    for e in std::fs::read_dir(exec).unwrap().flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        let cfg = std::fs::read_to_string(e.path().join("config.json")).unwrap_or_default();
        if cfg.contains("tick") && name == "ticker" {
            return id;
        }
    }
    panic!("no container {name}");
}

#[test]
fn a_killed_shim_leaves_an_exited_container() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    d.docker_ok(&["run", "-d", "--name", "sx", "busybox", "sleep", "100"]);
    let pid: i32 = inspect(&d, "sx", "{{.State.Pid}}").parse().unwrap();
    let shims = d.shim_pids();
    assert_eq!(shims.len(), 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shims[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(eventually(Duration::from_secs(10), || inspect(
        &d,
        "sx",
        "{{.State.Status}}"
    ) == "exited"));
    let err = inspect(&d, "sx", "{{.State.Error}}");
    assert!(err.contains("berth-shim") && err.contains("died"), "{err}");
    assert!(
        eventually(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{pid}/cmdline"
        ))
        .exists()
            || std::fs::read(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .is_empty()),
        "the container's process outlived its shim"
    );
    d.docker_ok(&["rm", "sx"]);
}

#[test]
fn bad_input_gets_docker_shaped_errors() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    let (_, err, code) = text(&d.docker(&["create", "nosuchimage:1"]));
    assert_ne!(code, 0);
    assert!(err.contains("nosuchimage"), "{err}");
    d.docker_ok(&["create", "--name", "taken", "busybox", "true"]);
    let (_, err, code) = text(&d.docker(&["run", "--name", "taken", "busybox", "true"]));
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("The container name \"/taken\" is already in use"),
        "{err}"
    );
    let (_, err, _) = text(&d.docker(&["create", "-m", "1k", "busybox", "true"]));
    assert!(err.contains("Minimum memory limit allowed is 6MB"), "{err}");
    let (_, err, _) = text(&d.docker(&["create", "--name", "bad name", "busybox", "true"]));
    assert!(err.contains("Invalid container name"), "{err}");
    let (status, _, body) = d.request("POST", "/containers/create");
    assert_eq!(status, 400, "{body}");
    let o = d.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{\"Image\": 5}",
        "-w",
        "\n%{http_code}",
        "http://d/containers/create",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.ends_with("\n400"), "{out}");
    assert!(
        out.contains("Image") && out.contains("expected a string"),
        "{out}"
    );
    // Nothing half-made: only the one good container exists.
    assert_eq!(
        d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]),
        "taken\n"
    );
}

#[test]
fn events_report_the_container_lifecycle() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    d.docker_ok(&["run", "--name", "ev", "busybox", "true"]);
    d.docker_ok(&["tag", "busybox", "bb2:x"]);
    d.docker_ok(&["rmi", "bb2:x"]);
    d.docker_ok(&["volume", "create", "evvol"]);
    d.docker_ok(&["volume", "rm", "evvol"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    std::thread::sleep(Duration::from_millis(1100));
    let out = d.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &now.to_string(),
        "--filter",
        "container=ev",
        "--format",
        "{{.Type}} {{.Action}}",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    for want in ["container create", "container start", "container die"] {
        assert!(lines.contains(&want), "{want} missing from {out}");
    }
    let out = d.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &now.to_string(),
        "--filter",
        "type=image",
        "--filter",
        "type=volume",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "image tag bb2:x",
        "image untag bb2:x",
        "volume create ",
        "volume destroy ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(want.trim_end())),
            "{want} missing from {out}"
        );
    }
    assert!(!out.contains("container"), "{out}");
}

#[test]
fn stdin_tty_and_start_attach() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    // stdin reaches the container and its end ends `cat`.
    let o = d.docker_stdin(&["run", "-i", "--rm", "busybox", "cat"], b"hello\nworld\n");
    let (out, err, code) = text(&o);
    assert_eq!((out.as_str(), code), ("hello\nworld\n", 0), "{err}");
    let o = d.docker_stdin(
        &[
            "run",
            "-i",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "read a; echo got $a; exit 4",
        ],
        b"x\n",
    );
    assert_eq!(text(&o).0, "got x\n");
    assert_eq!(text(&o).2, 4);
    // A terminal: output raw, stdout and stderr together, a pty inside.
    let o = d.docker(&[
        "run",
        "-t",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "tty; echo to-stderr >&2",
    ]);
    let (out, _, code) = text(&o);
    assert_eq!(code, 0);
    assert!(out.starts_with("/dev/pts/"), "{out:?}");
    assert!(
        out.contains("to-stderr\r\n"),
        "the pty turns \\n into \\r\\n: {out:?}"
    );
    // start -a attaches before the start: all the output, and the code.
    d.docker_ok(&[
        "create",
        "--name",
        "later",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two",
    ]);
    let o = d.docker(&["start", "-a", "later"]);
    assert_eq!(text(&o).0, "one\ntwo\n");
    let o = d.docker(&["start", "-a", "later"]);
    assert_eq!(text(&o).0, "one\ntwo\n", "a second start attaches again");
    for _ in 0..5 {
        let (out, _, _) = text(&d.docker(&["run", "--rm", "busybox", "echo", "quick"]));
        assert_eq!(out, "quick\n", "no output lost to a race with --rm");
    }
}

#[test]
fn volumes_binds_and_host_config() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    // A named volume keeps data across containers.
    d.docker_ok(&["volume", "create", "data"]);
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "data:/d",
        "busybox",
        "sh",
        "-c",
        "echo kept > /d/f",
    ]);
    assert_eq!(
        d.docker_ok(&["run", "--rm", "-v", "data:/d:ro", "busybox", "cat", "/d/f"]),
        "kept\n"
    );
    let mp = d.docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "data"]);
    assert_eq!(
        std::fs::read_to_string(Path::new(mp.trim()).join("f")).unwrap(),
        "kept\n"
    );
    let (_, err, code) = text(&d.docker(&[
        "run",
        "--rm",
        "-v",
        "data:/d:ro",
        "busybox",
        "sh",
        "-c",
        "echo x > /d/g",
    ]));
    assert_ne!(code, 0, "a read-only volume took a write");
    assert!(err.contains("Read-only file system"), "{err}");
    d.docker_ok(&[
        "create", "--name", "user", "-v", "data:/d", "busybox", "true",
    ]);
    let (_, err, _) = text(&d.docker(&["volume", "rm", "data"]));
    assert!(err.contains("volume is in use"), "{err}");
    d.docker_ok(&["rm", "user"]);
    d.docker_ok(&["volume", "rm", "data"]);
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]), "");

    // An anonymous volume goes with `rm -v`.
    d.docker_ok(&[
        "run",
        "--name",
        "anon",
        "-v",
        "/scratch",
        "busybox",
        "sh",
        "-c",
        "echo > /scratch/x",
    ]);
    let vols = d.docker_ok(&["volume", "ls", "-q"]);
    assert_eq!(vols.lines().count(), 1, "{vols}");
    d.docker_ok(&["rm", "-v", "anon"]);
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]), "");

    // A host directory, read-only, and a read-only root with a tmpfs.
    let host = tempfile::Builder::new()
        .prefix("bt-bind")
        .tempdir()
        .unwrap();
    std::fs::write(host.path().join("in"), "from host\n").unwrap();
    let bind = format!("{}:/h:ro", host.path().display());
    assert_eq!(
        d.docker_ok(&["run", "--rm", "-v", &bind, "busybox", "cat", "/h/in"]),
        "from host\n"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/run",
        "busybox",
        "sh",
        "-c",
        "echo > /run/ok && echo tmpfs-ok; (echo > /nope) 2>&1; true",
    ]);
    let out = text(&o).0;
    assert!(
        out.contains("tmpfs-ok") && out.contains("Read-only file system"),
        "{out}"
    );

    // User, capabilities, hostname, environment, workdir.
    assert_eq!(
        d.docker_ok(&["run", "--rm", "-u", "1000:1000", "busybox", "id", "-u"]),
        "1000\n"
    );
    let caps = d.docker_ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "busybox",
        "sh",
        "-c",
        "grep CapEff /proc/self/status",
    ]);
    assert!(caps.trim().ends_with("0000000000000000"), "{caps}");
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--hostname",
            "box1",
            "-e",
            "A=1",
            "-w",
            "/tmp",
            "busybox",
            "sh",
            "-c",
            "echo $(hostname) $A $(pwd)"
        ]),
        "box1 1 /tmp\n"
    );
    // A memory limit lands in the container's cgroup (v1 on this host).
    let id = d.docker_ok(&[
        "run",
        "-d",
        "-m",
        "64m",
        "--pids-limit",
        "20",
        "busybox",
        "sleep",
        "30",
    ]);
    let id = id.trim();
    let mem = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/berth/{id}/memory.limit_in_bytes"
    ))
    .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/berth/{id}/memory.max")))
    .expect("the container's memory cgroup");
    assert_eq!(mem.trim(), "67108864");
    d.docker_ok(&["rm", "-f", id]);
}

#[test]
fn stats_come_from_the_cgroup() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "st",
        "-m",
        "64m",
        "busybox",
        "sh",
        "-c",
        "while true; do :; done",
    ]);
    let out = d.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}",
        "st",
    ]);
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f[0], "st", "{out}");
    let cpu: f64 = f[1].trim_end_matches('%').parse().unwrap();
    assert!(cpu > 20.0, "a busy loop shows CPU use: {out}");
    assert!(out.contains("/ 64MiB"), "the limit shows: {out}");
    assert_eq!(f.last().copied(), Some("1"), "{out}");
    d.docker_ok(&["rm", "-f", "st"]);
}

#[test]
fn json_file_logs_rotate() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    // 300 lines of ~60 bytes of JSON each, 2 KiB files, 3 kept.
    let id = d.docker_ok(&[
        "run",
        "-d",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done",
    ]);
    let id = id.trim();
    assert_eq!(d.docker_ok(&["wait", id]).trim(), "0");
    let log = d
        .data_root
        .join("containers")
        .join(id)
        .join(format!("{id}-json.log"));
    let rotated: Vec<_> = (1..=3)
        .map(|n| log.with_file_name(format!("{id}-json.log.{n}")))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(
        rotated.len(),
        2,
        "max-file=3 keeps the log and two rotated files"
    );
    for f in rotated.iter().chain([&log]) {
        assert!(std::fs::metadata(f).unwrap().len() <= 2048);
    }
    // `logs` reads across the files: the newest lines, in order, ending
    // with the last one.
    let out = d.docker_ok(&["logs", id]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() > 40 && lines.len() < 300, "{}", lines.len());
    let first: usize = lines[0].strip_prefix("line ").unwrap().parse().unwrap();
    for (k, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("line {}", first + k));
    }
    assert_eq!(lines.last(), Some(&"line 299"));
    assert_eq!(
        d.docker_ok(&["logs", "--tail", "2", id]),
        "line 298\nline 299\n"
    );
    // Bad options are refused at create; `none` keeps no log.
    let (_, err, _) = text(&d.docker(&["create", "--log-opt", "max-size=lots", "busybox", "true"]));
    assert!(err.contains("invalid value for max-size"), "{err}");
    let id = d.docker_ok(&[
        "run",
        "-d",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "gone",
    ]);
    let (_, err, _) = text(&d.docker(&["logs", id.trim()]));
    assert!(err.contains("does not support reading"), "{err}");
}

#[test]
fn healthchecks_go_healthy_then_unhealthy() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    // Healthy while /tmp/ok exists; the container removes it after 3 s.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "cat /tmp/ok",
        "--health-interval",
        "300ms",
        "--health-retries",
        "2",
        "--health-timeout",
        "2s",
        "busybox",
        "sh",
        "-c",
        "echo fine > /tmp/ok; sleep 3; rm /tmp/ok; sleep 100",
    ]);
    assert_eq!(inspect(&d, "hc", "{{.State.Health.Status}}"), "starting");
    assert!(
        eventually(Duration::from_secs(3), || inspect(
            &d,
            "hc",
            "{{.State.Health.Status}}"
        ) == "healthy"),
        "{}",
        inspect(&d, "hc", "{{json .State.Health}}")
    );
    let out = inspect(&d, "hc", "{{(index .State.Health.Log 0).Output}}");
    assert_eq!(out, "fine");
    let ps = d.docker_ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.contains("(healthy)"), "{ps}");
    assert!(eventually(Duration::from_secs(10), || {
        inspect(
            &d,
            "hc",
            "{{.State.Health.Status}} {{.State.Health.FailingStreak}}",
        )
        .starts_with("unhealthy")
    }));
    let code = inspect(&d, "hc", "{{range .State.Health.Log}}{{.ExitCode}} {{end}}");
    assert!(code.trim().ends_with('1'), "{code}");
    let ev = d.docker_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 1)
        .to_string(),
        "--filter",
        "container=hc",
        "--format",
        "{{.Action}}",
    ]);
    assert!(
        ev.contains("health_status: healthy") && ev.contains("health_status: unhealthy"),
        "{ev}"
    );
    d.docker_ok(&["rm", "-f", "hc"]);
}

#[test]
fn init_reaps_and_forwards_signals() {
    assert!(
        Path::new("/usr/bin/tini-static").exists(),
        "/usr/bin/tini-static is missing: install Debian's tini"
    );
    let (d, _) = Berthd::start(&["busybox:latest"]);
    // With --init, pid 1 is the init and the command runs under it.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
    ]);
    let mut lines = out.lines();
    assert!(
        lines.next().unwrap().starts_with("/sbin/docker-init -- sh"),
        "{out}"
    );
    assert_ne!(lines.next(), Some("1"), "{out}");
    // The init passes SIGTERM on: `sleep` dies at once, not after the timeout.
    d.docker_ok(&[
        "run", "-d", "--name", "in", "--init", "busybox", "sleep", "100",
    ]);
    let t0 = Instant::now();
    d.docker_ok(&["stop", "-t", "10", "in"]);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(inspect(&d, "in", "{{.State.ExitCode}}"), "143");
}

#[test]
fn update_changes_limits_of_a_running_container() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    let id = d.docker_ok(&["run", "-d", "-m", "64m", "busybox", "sleep", "100"]);
    let id = id.trim();
    let limit = || {
        std::fs::read_to_string(format!(
            "/sys/fs/cgroup/memory/berth/{id}/memory.limit_in_bytes"
        ))
        .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/berth/{id}/memory.max")))
        .unwrap()
        .trim()
        .to_string()
    };
    assert_eq!(limit(), "67108864");
    d.docker_ok(&[
        "update",
        "-m",
        "128m",
        "--memory-swap",
        "256m",
        "--restart",
        "on-failure:2",
        id,
    ]);
    assert_eq!(limit(), "134217728");
    assert_eq!(
        inspect(
            &d,
            id,
            "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}"
        ),
        "134217728 on-failure"
    );
    let (_, err, code) = text(&d.docker(&["update", "-m", "1k", id]));
    assert_ne!(code, 0);
    assert!(err.contains("Minimum memory limit"), "{err}");
    assert_eq!(limit(), "134217728", "a refused update changes nothing");
    d.docker_ok(&["rm", "-f", id]);
}

#[test]
fn sizes_of_a_container() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    d.docker_ok(&[
        "run",
        "--name",
        "big",
        "busybox",
        "sh",
        "-c",
        "busybox dd if=/dev/zero of=/big bs=1000000 count=3 2>/dev/null",
    ]);
    let rw: i64 = inspect_size(&d, "{{.SizeRw}}");
    let root: i64 = inspect_size(&d, "{{.SizeRootFs}}");
    assert!((2_900_000..4_000_000).contains(&rw), "{rw}");
    assert!(
        root > rw + 1_000_000,
        "the image's layers count in SizeRootFs: {root}"
    );
    let ps = d.docker_ok(&["ps", "-a", "-s", "--format", "{{.Size}}"]);
    assert!(
        ps.trim().starts_with("3.0") && ps.contains("MB (virtual "),
        "{ps}"
    );
}

fn inspect_size(d: &Berthd, tmpl: &str) -> i64 {
    d.docker_ok(&["inspect", "-s", "-f", tmpl, "big"])
        .trim()
        .parse()
        .unwrap()
}

/// An image's own HEALTHCHECK (a Docker extension of the OCI config)
/// shows in `image inspect`, runs in its containers, and a container's
/// `--health-*` flags override it field by field.
#[test]
fn image_healthcheck_is_honoured() {
    let (d, _) = Berthd::start(&[]);
    let layer = support::busybox_tar();
    let diff_id = berth_store::digest::sha256(&layer).to_string();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {
            "Cmd": ["sleep", "100"],
            "Healthcheck": {
                "Test": ["CMD-SHELL", "cat /tmp/ok"],
                "Interval": 200_000_000u64, "Retries": 1
            },
            "OnBuild": ["RUN echo child"]
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    });
    let manifest = r#"[{"Config":"config.json","RepoTags":["hc:1"],"Layers":["layer.tar"]}]"#;
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("layer.tar", layer),
        ("config.json", config.to_string().into_bytes()),
        ("manifest.json", manifest.as_bytes().to_vec()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    let archive = b.into_inner().unwrap();
    let out = d.docker_stdin(&["load"], &archive);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hc = d.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Healthcheck}} {{json .Config.OnBuild}}",
        "hc:1",
    ]);
    assert_eq!(
        hc.trim(),
        r#"{"Test":["CMD-SHELL","cat /tmp/ok"],"Interval":200000000,"Retries":1} ["RUN echo child"]"#
    );
    // The image's check: unhealthy, as /tmp/ok is missing.
    d.docker_ok(&["run", "-d", "--name", "sick", "hc:1"]);
    assert!(eventually(Duration::from_secs(10), || inspect(
        &d,
        "sick",
        "{{.State.Health.Status}}"
    ) == "unhealthy"));
    // Only the command overridden: the image's interval still applies.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "well",
        "--health-cmd",
        "true",
        "hc:1",
    ]);
    assert!(eventually(Duration::from_secs(10), || inspect(
        &d,
        "well",
        "{{.State.Health.Status}}"
    ) == "healthy"));
    assert_eq!(
        inspect(&d, "well", "{{.Config.Healthcheck.Interval}}"),
        "200ms"
    );
    // --no-healthcheck turns it off.
    d.docker_ok(&["run", "-d", "--name", "off", "--no-healthcheck", "hc:1"]);
    assert_eq!(
        inspect(&d, "off", "{{if .State.Health}}on{{else}}off{{end}}"),
        "off"
    );
    d.docker_ok(&["rm", "-f", "sick", "well", "off"]);
}
