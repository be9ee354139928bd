//! `docker exec` through the real docker CLI (and curl) against berthd:
//! output and exit codes, environment, user, working directory, stdin, a
//! terminal, detached execs, start failures, `GET /exec/{id}/json`, and
//! no exec shim left behind. As root, inside `unshare -m --propagation
//! private` (as scripts/test runs it).

mod support;

use std::path::Path;
use std::time::Duration;

use support::{Berthd, poll_until, text, unix_now};

/// A berthd with one running busybox container named `box`.
fn with_container() -> Berthd {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    d.docker_ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    d
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn exec_runs_commands_in_the_container() {
    let d = with_container();
    assert_eq!(d.docker_ok(&["exec", "box", "echo", "hi"]), "hi\n");

    let (_, err, code) = text(&d.docker(&["exec", "box", "sh", "-c", "exit 7"]));
    assert_eq!(code, 7, "{err}");

    let (out, err, code) = text(&d.docker(&["exec", "box", "sh", "-c", "echo out; echo err >&2"]));
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("out\n", "err\n", 0),
        "stdout and stderr stay apart"
    );

    let out = d.docker_ok(&["exec", "-e", "A=1", "box", "sh", "-c", "echo $A"]);
    assert_eq!(out, "1\n");
    let out = d.docker_ok(&["exec", "-w", "/tmp", "box", "sh", "-c", "pwd"]);
    assert_eq!(out, "/tmp\n");
    let out = d.docker_ok(&["exec", "-u", "1000", "box", "id", "-u"]);
    assert_eq!(out, "1000\n");
    let out = d.docker_ok(&["exec", "box", "id", "-u"]);
    assert_eq!(out, "0\n", "the container's user without -u");

    let o = d.docker_stdin(&["exec", "-i", "box", "cat"], b"piped\nin\n");
    let (out, err, code) = text(&o);
    assert_eq!((out.as_str(), code), ("piped\nin\n", 0), "{err}");

    let (out, err, code) = text(&d.docker(&["exec", "-t", "box", "tty"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("/dev/pts/"), "{out:?}");
    let out = d.docker_ok(&["exec", "-t", "box", "sh", "-c", "echo $TERM"]);
    assert_eq!(out, "xterm\r\n");
}

#[test]
fn detached_exec_runs_on() {
    let d = with_container();
    let out = d.docker_ok(&[
        "exec",
        "-d",
        "box",
        "sh",
        "-c",
        "sleep 0.5; echo done > /tmp/done",
    ]);
    assert_eq!(out, "", "a detached exec prints nothing");
    assert!(
        poll_until(Duration::from_secs(10), || {
            d.docker(&["exec", "box", "cat", "/tmp/done"]).stdout == b"done\n"
        }),
        "the detached exec did not finish; log:\n{}",
        d.log()
    );
}

#[test]
fn exec_failures_are_docker_shaped() {
    let d = with_container();
    let (out, err, code) = text(&d.docker(&["exec", "box", "nope"]));
    assert_eq!(code, 127, "{out}{err}");
    assert!(err.contains("executable file not found"), "{out}|{err}");

    let (_, err, code) = text(&d.docker(&["exec", "missing", "true"]));
    assert_ne!(code, 0);
    assert!(err.contains("No such container: missing"), "{err}");

    d.docker_ok(&["create", "--name", "stopped", "busybox", "true"]);
    let (_, err, code) = text(&d.docker(&["exec", "stopped", "true"]));
    assert_ne!(code, 0);
    assert!(err.contains("is not running"), "{err}");

    d.docker_ok(&["pause", "box"]);
    let (_, err, code) = text(&d.docker(&["exec", "box", "true"]));
    d.docker_ok(&["unpause", "box"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("is paused, unpause the container before exec"),
        "{err}"
    );
}

#[test]
fn exec_inspect_start_twice_and_container_exec_ids() {
    let d = with_container();
    let (status, body) = d.send_json(
        "POST",
        "/containers/box/exec",
        r#"{"Cmd":["sh","-c","sleep 2; exit 3"],"AttachStdout":true,"User":"1000"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let id = json(&body)["Id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");

    let v = json(&d.request("GET", &format!("/exec/{id}/json")).2);
    assert_eq!(v["Running"], false);
    assert!(v["ExitCode"].is_null(), "{v}");
    assert_eq!(v["ProcessConfig"]["entrypoint"], "sh");
    assert_eq!(v["ProcessConfig"]["arguments"][1], "sleep 2; exit 3");
    assert_eq!(v["ProcessConfig"]["user"], "1000");
    assert_eq!(v["OpenStdout"], true);
    assert_eq!(v["OpenStdin"], false);
    assert_eq!(v["CanRemove"], false);
    let cid = d.docker_ok(&["inspect", "-f", "{{.Id}}", "box"]);
    assert_eq!(v["ContainerID"], cid.trim());

    let (status, body) = d.send_json("POST", &format!("/exec/{id}/start"), r#"{"Detach":true}"#);
    assert_eq!(status, 200, "{body}");
    let v = json(&d.request("GET", &format!("/exec/{id}/json")).2);
    assert_eq!(v["Running"], true, "{v}");
    assert!(v["Pid"].as_i64().unwrap() > 0, "{v}");
    let ids = d.docker_ok(&["inspect", "-f", "{{json .ExecIDs}}", "box"]);
    assert_eq!(
        json(&ids),
        serde_json::json!([id]),
        "a running exec is listed"
    );

    let (status, body) = d.send_json("POST", &format!("/exec/{id}/start"), r#"{"Detach":true}"#);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains(&id), "{body}");

    assert!(
        poll_until(Duration::from_secs(10), || {
            json(&d.request("GET", &format!("/exec/{id}/json")).2)["ExitCode"] == 3
        }),
        "no exit code; log:\n{}",
        d.log()
    );
    let v = json(&d.request("GET", &format!("/exec/{id}/json")).2);
    assert_eq!(v["Running"], false, "{v}");
    let ids = d.docker_ok(&["inspect", "-f", "{{json .ExecIDs}}", "box"]);
    assert_eq!(ids.trim(), "null", "an exec that ended is not listed");

    let (status, body) = d.send_json("POST", "/containers/box/exec", r#"{"Cmd":[]}"#);
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = d.request("GET", "/exec/0123abcd/json");
    assert_eq!(status, 404, "{body}");
}

#[test]
fn exec_events() {
    let d = with_container();
    let since = unix_now();
    d.docker_ok(&["exec", "box", "sh", "-c", "exit 0"]);
    // exec_die comes when the follower sees the shim go.
    std::thread::sleep(Duration::from_millis(1100));
    let until = unix_now() + 1;
    std::thread::sleep(Duration::from_millis(1100));
    let out = d.events(
        since,
        until,
        "container=box",
        "{{.Action}} {{index .Actor.Attributes \"exitCode\"}}",
    );
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    for want in [
        "exec_create: sh -c exit 0",
        "exec_start: sh -c exit 0",
        "exec_die 0",
    ] {
        assert!(lines.contains(&want), "{want:?} missing from {out}");
    }
}

#[test]
fn no_exec_shim_outlives_its_container() {
    let d = with_container();
    d.docker_ok(&["exec", "-d", "box", "sleep", "1000"]);
    let mut pids = Vec::new();
    assert!(
        poll_until(Duration::from_secs(10), || {
            pids = d.exec_shim_pids();
            !pids.is_empty()
        }),
        "no exec shim running; log:\n{}",
        d.log()
    );
    d.docker_ok(&["rm", "-f", "box"]);
    assert!(
        poll_until(Duration::from_secs(10), || pids
            .iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists())),
        "exec shims {pids:?} outlived their container"
    );
    let x = d.pidfile.parent().unwrap().join("x");
    assert!(
        poll_until(Duration::from_secs(5), || std::fs::read_dir(&x)
            .map(|r| r.count() == 0)
            .unwrap_or(true)),
        "exec state dirs left in {}",
        x.display()
    );
}

#[test]
fn exec_terminal_takes_the_clients_size() {
    let d = with_container();
    assert!(
        Path::new("/usr/bin/script").exists(),
        "/usr/bin/script (util-linux) is missing: it gives the docker CLI a terminal"
    );
    let config = d.dir.path().join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    // The CLI sends its terminal's size with the create and the start,
    // and (with -i) resizes once the stream is up.
    for flags in ["-t", "-it"] {
        let line = format!(
            "stty rows 33 cols 111; {} -H {} exec {flags} box stty size",
            support::DOCKER,
            d.host()
        );
        let o = std::process::Command::new("/usr/bin/script")
            .args(["-qec", &line, "/dev/null"])
            .env_remove("DOCKER_HOST")
            .env("DOCKER_CONFIG", &config)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run script");
        let (out, err, code) = text(&o);
        assert_eq!(code, 0, "{flags}: {out}{err}");
        assert!(out.contains("33 111"), "{flags}: {out:?}");
    }
}
