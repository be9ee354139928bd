//! The container, volume and event commands end to end against a real
//! berthd (as root, inside `unshare -m --propagation private`, as
//! scripts/test runs it), compared with the real docker CLI against the
//! same daemon where the output can be compared.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use support::Daemon;

/// A berthd with busybox imported as `busybox:latest`.
fn daemon() -> Daemon {
    support::require_root();
    support::require_shim();
    support::require_docker();
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    d
}

fn text(o: &Output) -> (String, String, i32) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

/// Poll `f` until it is true or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

fn inspect(d: &Daemon, name: &str, tmpl: &str) -> String {
    d.ok(&["inspect", "-f", tmpl, name]).trim().to_string()
}

/// The cells of a table line (separated by three spaces or more).
fn cols(line: &str) -> Vec<&str> {
    line.split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// `berth args` and `docker args` print the same (stdout, stderr with
/// `docker` read as `berth`, exit status).
fn same_as_docker(d: &Daemon, args: &[&str]) -> String {
    let (bo, be, bc) = text(&d.berth(args));
    let (o, e, c) = text(&d.docker(args));
    assert_eq!(
        (bo.as_str(), be.as_str(), bc),
        (o.as_str(), e.replace("docker", "berth").as_str(), c),
        "berth {args:?} (left) differs from docker (right)"
    );
    bo
}

#[test]
fn run_output_exit_codes_and_streams() {
    let d = daemon();
    let (out, err, code) = text(&d.berth(&["run", "--rm", "busybox", "echo", "hello"]));
    assert_eq!((out.as_str(), code), ("hello\n", 0), "{err}\n{}", d.log());

    let (out, err, code) = text(&d.berth(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]));
    assert_eq!((out.as_str(), code), ("", 3), "{err}");

    // stdout and stderr stay apart without a tty.
    let (out, err, code) = text(&d.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2",
    ]));
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("to-out\n", "to-err\n", 0)
    );

    // A command that is not there: docker's 127 and its words.
    let (out, err, code) = text(&d.berth(&["run", "--rm", "busybox", "nope-cmd"]));
    assert_eq!((out.as_str(), code), ("", 127), "{err}");
    assert!(
        err.starts_with("berth: Error response from daemon: ")
            && err.contains("exec: \"nope-cmd\": executable file not found in $PATH")
            && err.ends_with("\n\nRun 'berth run --help' for more information\n"),
        "{err}"
    );
    let (_, derr, dcode) = text(&d.docker(&["run", "--rm", "busybox", "nope-cmd"]));
    assert_eq!(dcode, 127, "{derr}");
    let last = |s: &str| {
        s.lines()
            .last()
            .unwrap_or_default()
            .replace("docker", "berth")
    };
    assert_eq!(last(&err), last(&derr));

    // A name in use: 125, the daemon's message.
    d.ok(&["create", "--name", "taken", "busybox", "true"]);
    let (_, err, code) = text(&d.berth(&["run", "--name", "taken", "busybox", "true"]));
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("The container name \"/taken\" is already in use"),
        "{err}"
    );
    // create says it plainly and exits 1, as docker's create does.
    same_as_docker(&d, &["create", "--name", "taken", "busybox", "true"]);

    // stdin copied in with -i, half-closed at its end.
    let o = d.berth_with(
        &["run", "-i", "--rm", "busybox", "cat"],
        Some(b"hi\nthere\n"),
    );
    assert_eq!(text(&o), ("hi\nthere\n".into(), String::new(), 0));

    // -t without -i: no local terminal needed; the tty's line endings.
    let (out, err, code) =
        text(&d.berth(&["run", "-t", "--rm", "busybox", "sh", "-c", "tty; exit 4"]));
    assert!(
        out.starts_with("/dev/pts/") && out.ends_with("\r\n") && code == 4,
        "{out:?} {code} {err}"
    );

    // --rm took its containers away.
    assert_eq!(d.ok(&["ps", "-a", "--format", "{{.Names}}"]), "taken\n");
}

#[test]
fn namespace_flags_join_another_container() {
    let d = daemon();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "donor",
        "--ipc",
        "shareable",
        "--shm-size",
        "8m",
        "busybox",
        "sh",
        "-c",
        "echo shm > /dev/shm/f; exec sleep 1000",
    ]);
    // The same answers from both clients: the donor's sleep as pid 1, its
    // shared memory, the size given.
    let args = [
        "run",
        "--rm",
        "--pid",
        "container:donor",
        "--ipc",
        "container:donor",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/cmdline; echo; cat /dev/shm/f; df -k /dev/shm | tail -1",
    ];
    let out = same_as_docker(&d, &args);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["sleep\u{0}1000\u{0}", "shm"], "{out}");
    assert_eq!(cols(lines[2])[1], "8192", "{out}");
    let uts = same_as_docker(&d, &["run", "--rm", "--uts", "host", "busybox", "hostname"]);
    assert_eq!(
        uts.trim(),
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
    );
    d.ok(&["rm", "-f", "donor"]);
}

#[test]
fn detached_container_lifecycle() {
    let d = daemon();
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 100",
    ]);
    let id = id.trim().to_string();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let short = &id[..12];

    // ps: docker's header, spacing and cells.
    let table = d.ok(&["ps"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("CONTAINER ID   IMAGE     COMMAND   ")
            && cols(header)
                == [
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "PORTS",
                    "NAMES"
                ],
        "{table}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&format!("{short}   busybox   \"sh -c echo started;…\"   ")),
        "{table}"
    );
    assert!(row.ends_with("   web"), "{table}");
    // The names line up under NAMES.
    let at = |line: &str, cell: &str| line[..line.rfind(cell).unwrap()].chars().count();
    assert_eq!(at(row, "web"), at(header, "NAMES"), "{table}");
    // docker's table over the same daemon: the same cells, timings aside.
    let docker_table = d.docker_ok(&["ps"]);
    let cells = |t: &str| -> Vec<Vec<String>> {
        t.lines()
            .map(|l| {
                let c = cols(l);
                [c[0], c[1], c[2], c[c.len() - 1]]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            })
            .collect()
    };
    assert_eq!(cells(&table), cells(&docker_table), "{table}{docker_table}");
    assert_eq!(d.ok(&["ps", "-a", "-q"]), format!("{short}\n"));
    assert_eq!(d.ok(&["ps", "-q", "--no-trunc"]), format!("{id}\n"));
    let st = d.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(st.starts_with("web Up "), "{st}");
    same_as_docker(
        &d,
        &[
            "ps",
            "--format",
            "{{.ID}} {{.Image}} {{.Command}} {{.Names}} {{.State}} {{.Ports}} {{.Mounts}}",
        ],
    );

    // inspect -f: the daemon's pid, the same as docker's.
    let pid: i32 = inspect(&d, "web", "{{.State.Pid}}").parse().unwrap();
    assert!(pid > 0 && Path::new(&format!("/proc/{pid}")).exists());
    for t in [
        "{{.State.Pid}}",
        "{{.State.Status}} {{.State.Running}}",
        "{{.Name}} {{.Config.Image}} {{json .Config.Cmd}}",
        "{{.Id}}",
    ] {
        same_as_docker(&d, &["inspect", "-f", t, "web"]);
    }

    // logs, --tail, -t.
    assert!(
        eventually(Duration::from_secs(5), || d.ok(&["logs", "web"])
            == "started\n"),
        "{}",
        d.ok(&["logs", "web"])
    );
    assert_eq!(d.ok(&["logs", "--tail", "0", "web"]), "");
    assert_eq!(d.ok(&["logs", "--tail", "1", "web"]), "started\n");
    let ts = d.ok(&["logs", "-t", "web"]);
    assert!(
        ts.len() > 30 && ts.as_bytes()[4] == b'-' && ts.contains("Z started\n"),
        "{ts}"
    );
    same_as_docker(&d, &["logs", "-t", "web"]);

    // top: ps's columns, sleep among the processes.
    let top = d.ok(&["top", "web"]);
    assert!(top.starts_with("UID "), "{top}");
    assert!(top.contains("sleep 100"), "{top}");
    same_as_docker(&d, &["top", "web"]);

    // pause and unpause.
    assert_eq!(d.ok(&["pause", "web"]), "web\n");
    assert_eq!(
        inspect(&d, "web", "{{.State.Status}} {{.State.Paused}}"),
        "paused true"
    );
    let st = d.ok(&["ps", "--format", "{{.Status}}"]);
    assert!(st.trim_end().ends_with("(Paused)"), "{st}");
    same_as_docker(&d, &["pause", "web"]);
    assert_eq!(d.ok(&["unpause", "web"]), "web\n");
    assert_eq!(
        inspect(&d, "web", "{{.State.Status}} {{.State.Paused}}"),
        "running false"
    );
    same_as_docker(&d, &["unpause", "web"]);

    // A running container is not removed without -f.
    let (_, err, code) = text(&d.berth(&["rm", "web"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("stop the container before removing or force remove"),
        "{err}"
    );

    // sleep as pid 1 ignores SIGTERM: stop -t 1 falls back to SIGKILL.
    let t0 = Instant::now();
    assert_eq!(d.ok(&["stop", "-t", "1", "web"]), "web\n");
    assert!(t0.elapsed() < Duration::from_secs(8));
    assert_eq!(
        inspect(&d, "web", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 137"
    );
    let ps = d.ok(&[
        "ps",
        "-a",
        "--filter",
        "status=exited",
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    assert!(ps.starts_with("web Exited (137) "), "{ps}");
    assert_eq!(d.ok(&["ps", "-q"]), "");
    assert_eq!(d.ok(&["wait", "web"]), "137\n");

    // start again: a new process, the same log.
    assert_eq!(d.ok(&["start", "web"]), "web\n");
    let pid2: i32 = inspect(&d, "web", "{{.State.Pid}}").parse().unwrap();
    assert!(pid2 > 0 && pid2 != pid);
    assert!(eventually(Duration::from_secs(5), || d
        .ok(&["logs", "web"])
        == "started\nstarted\n"));
    assert_eq!(d.ok(&["restart", "-t", "0", "web"]), "web\n");
    let pid3: i32 = inspect(&d, "web", "{{.State.Pid}}").parse().unwrap();
    assert!(pid3 > 0 && pid3 != pid2);
    assert_eq!(inspect(&d, "web", "{{.State.Running}}"), "true");

    // kill: SIGKILL, then wait has the status.
    assert_eq!(d.ok(&["kill", "web"]), "web\n");
    assert_eq!(d.ok(&["wait", "web"]), "137\n");
    assert_eq!(inspect(&d, "web", "{{.State.Status}}"), "exited");

    // rename; errors name the container as docker does.
    assert_eq!(d.ok(&["rename", "web", "web2"]), "");
    assert_eq!(inspect(&d, "web2", "{{.Name}}"), "/web2");
    same_as_docker(&d, &["rename", "nope", "x"]);
    same_as_docker(&d, &["start", "nope1", "nope2"]);
    same_as_docker(&d, &["stop", "nope1", "nope2"]);
    same_as_docker(&d, &["kill", "nope1"]);
    same_as_docker(&d, &["inspect", "nope"]);
    assert_eq!(d.ok(&["rm", "web2"]), "web2\n");
    same_as_docker(&d, &["rm", "web2"]);

    // rm -f takes a running one down.
    d.ok(&["run", "-d", "--name", "web", "busybox", "sleep", "100"]);
    let pid: i32 = inspect(&d, "web", "{{.State.Pid}}").parse().unwrap();
    assert_eq!(d.ok(&["rm", "-f", "web"]), "web\n");
    assert!(eventually(Duration::from_secs(5), || !Path::new(&format!(
        "/proc/{pid}"
    ))
    .exists()));
    assert_eq!(d.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn create_start_attach_wait_and_follow() {
    let d = daemon();
    let id = d.ok(&[
        "create",
        "--name",
        "job",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 5",
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
    assert_eq!(inspect(&d, "job", "{{.State.Status}}"), "created");
    let st = d.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert_eq!(st, "job Created\n");
    let (out, err, code) = text(&d.berth(&["start", "-a", "job"]));
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("out\n", "err\n", 5),
        "{}",
        d.log()
    );
    assert_eq!(d.ok(&["wait", "job"]), "5\n");
    assert_eq!(
        inspect(&d, "job", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 5"
    );
    // The log has both streams, apart.
    let (out, err, _) = text(&d.berth(&["logs", "job"]));
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));

    // start -a -i: stdin to a created container's process.
    d.ok(&["create", "-i", "--name", "cat", "busybox", "cat"]);
    let o = d.berth_with(&["start", "-a", "-i", "cat"], Some(b"piped\n"));
    assert_eq!(text(&o), ("piped\n".into(), String::new(), 0));

    // A start that fails: the daemon's error, exit 1.
    d.ok(&["create", "--name", "bad", "busybox", "nope-cmd"]);
    let (_, err, code) = text(&d.berth(&["start", "-a", "bad"]));
    assert_eq!(code, 1);
    assert!(err.contains("executable file not found"), "{err}");

    // logs -f follows until the container ends.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 1; echo two",
    ]);
    let t0 = Instant::now();
    let (out, err, code) = text(&d.berth(&["logs", "-f", "ticker"]));
    assert_eq!((out.as_str(), code), ("one\ntwo\n", 0), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(10));

    // wait blocks until the exit.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "later",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 7",
    ]);
    assert_eq!(d.ok(&["wait", "later"]), "7\n");

    // container prune: the stopped ones, the running one stays.
    d.ok(&["run", "-d", "--name", "up", "busybox", "sleep", "100"]);
    let pruned = d.ok(&["container", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Containers:\n"), "{pruned}");
    assert!(
        pruned.ends_with("\nTotal reclaimed space: 0B\n"),
        "{pruned}"
    );
    assert_eq!(
        pruned.lines().filter(|l| l.len() == 64).count(),
        5,
        "{pruned}"
    );
    assert_eq!(d.ok(&["ps", "-a", "--format", "{{.Names}}"]), "up\n");
    d.ok(&["rm", "-f", "up"]);
}

#[test]
fn volumes() {
    let d = daemon();
    assert_eq!(d.ok(&["volume", "create", "data"]), "data\n");
    let anon = d.ok(&["volume", "create"]);
    let anon = anon.trim();
    assert_eq!(anon.len(), 64, "{anon}");
    let ls = d.ok(&["volume", "ls"]);
    // Sorted by name, as docker sorts them.
    let mut names = [anon, "data"];
    names.sort();
    assert_eq!(
        ls,
        format!(
            "DRIVER    VOLUME NAME\nlocal     {}\nlocal     {}\n",
            names[0], names[1]
        )
    );
    same_as_docker(&d, &["volume", "ls"]);
    same_as_docker(&d, &["volume", "ls", "--format", "json"]);
    assert_eq!(d.ok(&["volume", "ls", "-q", "-f", "name=data"]), "data\n");
    let raw = d.ok(&["volume", "inspect", "data"]);
    assert!(
        raw.starts_with("[\n    {\n        \"CreatedAt\": \""),
        "{raw}"
    );
    same_as_docker(&d, &["volume", "inspect", "data"]);
    same_as_docker(&d, &["inspect", "data"]);
    assert_eq!(
        d.ok(&["volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "data"]),
        "data local\n"
    );
    same_as_docker(
        &d,
        &[
            "volume",
            "inspect",
            "-f",
            "{{.Mountpoint}} {{.Scope}}",
            "data",
        ],
    );

    // run -v: the volume outlives the container.
    d.ok(&[
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
        d.ok(&["run", "--rm", "-v", "data:/d", "busybox", "cat", "/d/f"]),
        "kept\n"
    );
    d.ok(&[
        "run", "-d", "--name", "user", "-v", "data:/d", "busybox", "sleep", "100",
    ]);
    let m = inspect(
        &d,
        "user",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}",
    );
    assert_eq!(m, "volume data /d");
    let (_, err, code) = text(&d.berth(&["volume", "rm", "data"]));
    assert_eq!(code, 1);
    assert!(err.contains("volume is in use"), "{err}");
    d.ok(&["rm", "-f", "user"]);

    // prune: anonymous ones only (a container's, not `volume create`'s
    // unnamed one), then (-a) every unused one.
    d.ok(&["run", "--name", "anon", "-v", "/scratch", "busybox", "true"]);
    let scratch = inspect(&d, "anon", "{{range .Mounts}}{{.Name}}{{end}}");
    assert_eq!(scratch.len(), 64, "{scratch}");
    d.ok(&["rm", "anon"]);
    let pruned = d.ok(&["volume", "prune", "-f"]);
    assert!(
        pruned.starts_with(&format!(
            "Deleted Volumes:\n{scratch}\n\nTotal reclaimed space: "
        )),
        "{pruned}"
    );
    let pruned = d.ok(&["volume", "prune", "-a", "-f"]);
    assert!(pruned.starts_with("Deleted Volumes:\n"), "{pruned}");
    assert!(pruned.contains(&format!("\n{anon}\n")), "{pruned}");
    assert!(pruned.contains("\ndata\n"), "{pruned}");
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "");

    d.ok(&["volume", "create", "gone"]);
    assert_eq!(d.ok(&["volume", "rm", "gone"]), "gone\n");
    same_as_docker(&d, &["volume", "rm", "gone"]);
}

#[test]
fn events_between_since_and_until() {
    let d = daemon();
    let since = chrono_now_secs();
    d.ok(&["run", "--name", "ev", "busybox", "true"]);
    let id = inspect(&d, "ev", "{{.Id}}");
    d.ok(&["rename", "ev", "ev2"]);
    d.ok(&["rm", "ev2"]);
    d.ok(&["volume", "create", "evv"]);
    d.ok(&["volume", "rm", "evv"]);
    // --until a second ahead: the stream ends by itself.
    let until = chrono_now_secs() + 1;
    let (s, u) = (since.to_string(), until.to_string());
    let actions = d.ok(&[
        "events",
        "--since",
        &s,
        "--until",
        &u,
        "--filter",
        &format!("container={id}"),
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = actions.lines().collect();
    assert_eq!(actions.first(), Some(&"create"), "{actions:?}");
    for a in ["start", "die", "rename", "destroy"] {
        assert!(actions.contains(&a), "{a} missing: {actions:?}");
    }
    let plain = events_both(&d, &s, &["--filter", "type=volume"]);
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(lines.len(), 2, "{plain}");
    assert!(
        lines[0].ends_with("Z volume create evv (driver=local)"),
        "{plain}"
    );
    let named = events_both(
        &d,
        &s,
        &[
            "--filter",
            "container=ev2",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ],
    );
    assert_eq!(named, "container rename ev2\ncontainer destroy ev2\n");
}

/// `events --since since --until <a second ahead> args` through berth and
/// docker: the same lines; berth's.
///
/// Each gets an `--until` still ahead when it asks: berthd may cut a
/// stream whose `until` has passed before it replays the past (the
/// deadline is polled first), so a past `until` would make this flaky.
fn events_both(d: &Daemon, since: &str, args: &[&str]) -> String {
    let run = |docker: bool| {
        let until = (chrono_now_secs() + 1).to_string();
        let mut all = vec!["events", "--since", since, "--until", &until];
        all.extend_from_slice(args);
        let o = if docker {
            d.docker(&all)
        } else {
            d.berth(&all)
        };
        let (out, err, code) = text(&o);
        assert_eq!(
            (err.as_str(), code),
            ("", 0),
            "{} {all:?}",
            if docker { "docker" } else { "berth" }
        );
        out
    };
    let ours = run(false);
    assert_eq!(
        ours,
        run(true),
        "berth events {args:?} differs from docker's"
    );
    ours
}

fn chrono_now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `cp` both ways with docker's rules for where things land, `update`
/// and `stats --no-stream`, each next to the docker CLI's answer.
#[test]
fn cp_update_and_stats_like_docker() {
    let d = daemon();
    d.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "100"]);
    let host = d.dir.path().join("host");
    std::fs::create_dir_all(host.join("dir/sub")).unwrap();
    std::fs::write(host.join("file"), "one\n").unwrap();
    std::fs::write(host.join("dir/sub/deep"), "two\n").unwrap();
    std::os::unix::fs::symlink("file", host.join("link")).unwrap();
    let h = |p: &str| host.join(p).to_str().unwrap().to_string();
    let cat = |tool: &str, path: &str| {
        let args = ["exec", "box", "cat", path];
        let o = if tool == "docker" {
            d.docker(&args)
        } else {
            d.berth(&args)
        };
        text(&o)
    };
    for (tool, n) in [("docker", "1"), ("berth", "2")] {
        let run = |args: &[&str]| {
            if tool == "docker" {
                text(&d.docker(args))
            } else {
                text(&d.berth(args))
            }
        };
        d.ok(&["exec", "box", "busybox", "mkdir", "-p", &format!("/in{n}")]);
        let dir = format!("box:/in{n}");
        // A file into a directory, under a new name, a directory, its
        // contents, a link kept and a link followed.
        assert_eq!(run(&["cp", &h("file"), &dir]).2, 0);
        assert_eq!(run(&["cp", &h("file"), &format!("{dir}/renamed")]).2, 0);
        assert_eq!(run(&["cp", &h("dir"), &dir]).2, 0);
        assert_eq!(
            run(&["cp", &format!("{}/.", h("dir")), &format!("{dir}/flat")]).2,
            0
        );
        assert_eq!(run(&["cp", &h("link"), &format!("{dir}/l")]).2, 0);
        assert_eq!(run(&["cp", "-L", &h("link"), &format!("{dir}/lf")]).2, 0);
        for (path, want) in [
            ("file", "one\n"),
            ("renamed", "one\n"),
            ("dir/sub/deep", "two\n"),
            ("flat/sub/deep", "two\n"),
            ("lf", "one\n"),
        ] {
            assert_eq!(
                cat(tool, &format!("/in{n}/{path}")).0,
                want,
                "{tool} {path}"
            );
        }
        let link = d.ok(&["exec", "box", "busybox", "readlink", &format!("/in{n}/l")]);
        assert_eq!(link, "file\n");
        // And back out.
        let out = host.join(format!("out{n}"));
        assert_eq!(
            run(&["cp", &format!("{dir}/dir"), out.to_str().unwrap()]).2,
            0
        );
        assert_eq!(
            std::fs::read_to_string(out.join("sub/deep")).unwrap(),
            "two\n"
        );
        assert_eq!(
            run(&["cp", &format!("{dir}/file"), out.to_str().unwrap()]).2,
            0
        );
        assert_eq!(std::fs::read_to_string(out.join("file")).unwrap(), "one\n");
    }
    // Refusals word for word.
    for args in [
        vec!["cp", "a", "b"],
        vec!["cp", "box:/a", "box:/b"],
        vec!["cp", "box:/nope", "x"],
        vec!["cp", &h("dir"), "box:/in1/file"],
        vec!["cp", &h("file"), "box:/nowhere/"],
        vec!["cp", "box:/in1/dir", &h("file")],
        vec!["cp", "box:/in1/file", "/nonexistent-bt/x"],
        vec!["cp", "nobox:/x", &h("file")],
        vec!["update", "box"],
        vec!["update", "--memory", "lots", "box"],
    ] {
        // docker's cp also logs its own tar writer's broken pipe.
        let last = |(o, e, c): (String, String, i32)| {
            let e: Vec<&str> = e.lines().filter(|l| !l.contains("level=error")).collect();
            (o, e.join("\n").replace("docker", "berth"), c)
        };
        assert_eq!(
            last(text(&d.berth(&args))),
            last(text(&d.docker(&args))),
            "{args:?}"
        );
    }
    // update changes the limits the kernel enforces.
    assert_eq!(
        same_as_docker(
            &d,
            &["update", "--memory", "64m", "--pids-limit", "40", "box"]
        ),
        "box\n"
    );
    assert_eq!(
        inspect(
            &d,
            "box",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}"
        ),
        "67108864 40"
    );
    let id = inspect(&d, "box", "{{.Id}}");
    let limit = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/berth/{id}/pids.max"))
        .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/berth/{id}/pids.max")))
        .unwrap();
    assert_eq!(limit.trim(), "40");
    // stats: the same columns and the limit just set.
    let fmt = "{{.Name}} {{.ID}} {{.PIDs}} {{.MemUsage}}";
    let (b, _, _) = text(&d.berth(&["stats", "--no-stream", "--format", fmt, "box"]));
    let (k, _, _) = text(&d.docker(&["stats", "--no-stream", "--format", fmt, "box"]));
    let cells = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let (b, k) = (cells(&b), cells(&k));
    assert_eq!(b[..3], k[..3]);
    assert_eq!(b[0], "box");
    assert_eq!(b.last().unwrap(), "64MiB");
    let table = d.ok(&["stats", "--no-stream"]);
    let header = table.lines().next().unwrap();
    assert_eq!(
        cols(header),
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS"
        ]
    );
    d.ok(&["rm", "-f", "box"]);
}

/// `system prune`: asks first, then removes stopped containers, unused
/// images (`-a`) and, with `--volumes`, anonymous volumes; keeps what a
/// running container uses.
#[test]
fn system_prune() {
    let d = daemon();
    // A second after busybox's import, or it is the same image (its config
    // records when it was made) and in use by `keep`.
    std::thread::sleep(Duration::from_millis(1100));
    d.import_busybox("spare:1");
    let stopped = d.ok(&["create", "-v", "/anon", "busybox", "true"]);
    d.ok(&["run", "-d", "--name", "keep", "busybox", "sleep", "100"]);
    let (out, _, code) = text(&d.berth_with(&["system", "prune", "-a", "--volumes"], Some(b"n\n")));
    assert_eq!(code, 0);
    assert!(
        out.starts_with("WARNING! This will remove:\n  - all stopped containers\n"),
        "{out}"
    );
    assert!(out.contains("  - all anonymous volumes not used by at least one container\n"));
    assert!(
        out.ends_with("\nAre you sure you want to continue? [y/N] "),
        "{out}"
    );
    assert_eq!(
        d.ok(&["ps", "-aq"]).lines().count(),
        2,
        "nothing pruned on no"
    );
    let anon = d.ok(&["volume", "ls", "-q"]);
    let out = d.ok(&["system", "prune", "-af", "--volumes"]);
    let want = format!(
        "Deleted Containers:\n{}\n\nDeleted Volumes:\n{}\n",
        stopped.trim(),
        anon.trim()
    );
    assert!(out.starts_with(&want), "{out}");
    assert!(
        out.contains("Deleted Images:\nuntagged: spare:1\ndeleted: sha256:"),
        "{out}"
    );
    assert!(
        out.ends_with("B\n") && out.contains("Total reclaimed space: "),
        "{out}"
    );
    assert_eq!(d.ok(&["ps", "-a", "--format", "{{.Names}}"]), "keep\n");
    assert_eq!(
        d.ok(&["images", "--format", "{{.Repository}}"]),
        "busybox\n"
    );
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "");
    d.ok(&["rm", "-f", "keep"]);
}

/// `commit` with author, message and `--change`, and `import --change`:
/// the new images run with what was committed, through both clients.
#[test]
fn commit_and_import_with_changes() {
    let d = daemon();
    let tar = support::busybox_tar(d.dir.path());
    for tool in ["docker", "berth"] {
        let run = |args: &[&str]| {
            let o = if tool == "docker" {
                d.docker(args)
            } else {
                d.berth(args)
            };
            let (out, err, code) = text(&o);
            assert_eq!(code, 0, "{tool} {args:?}: {err}");
            out
        };
        let name = format!("{tool}-made");
        run(&[
            "run",
            "--name",
            &name,
            "busybox",
            "sh",
            "-c",
            "echo made > /made",
        ]);
        let id = run(&[
            "commit",
            "-a",
            "Me <me@example.com>",
            "-m",
            "first",
            "-c",
            r#"CMD ["cat", "/made"]"#,
            "-c",
            "ENV MODE=$HOME-x",
            "-c",
            "WORKDIR /new/dir",
            &name,
            &format!("{tool}-snap:1"),
        ]);
        assert!(id.starts_with("sha256:") && id.trim().len() == 71, "{id}");
        let image = format!("{tool}-snap:1");
        assert_eq!(run(&["run", "--rm", &image]), "made\n");
        // The working directory is made when the container starts.
        assert_eq!(
            run(&["run", "--rm", &image, "sh", "-c", "pwd; echo $MODE"]),
            "/new/dir\n-x\n"
        );
        assert_eq!(
            run(&[
                "image",
                "inspect",
                "-f",
                "{{.Author}}|{{.Comment}}|{{.Id}}",
                &image
            ])
            .trim(),
            format!("Me <me@example.com>|first|{}", id.trim())
        );
        let history = run(&["history", "--format", "{{.CreatedBy}}|{{.Comment}}", &image]);
        assert_eq!(
            history.lines().next(),
            Some("sh -c echo made > /made|first"),
            "{history}"
        );
        let bad = if tool == "docker" {
            d.docker(&["commit", "-c", "RUN x", &name])
        } else {
            d.berth(&["commit", "-c", "RUN x", &name])
        };
        let (_, err, code) = text(&bad);
        assert_eq!(code, 1);
        assert!(err.contains("RUN is not a valid change command"), "{err}");
        run(&["rm", &name]);
        let imported = format!("{tool}-imp:1");
        run(&[
            "import",
            "-c",
            r#"ENTRYPOINT ["echo", "from"]"#,
            "-c",
            "LABEL kind=imported",
            tar.to_str().unwrap(),
            &imported,
        ]);
        assert_eq!(run(&["run", "--rm", &imported, "import"]), "from import\n");
        assert_eq!(
            run(&[
                "image",
                "inspect",
                "-f",
                "{{.Config.Labels.kind}}",
                &imported
            ]),
            "imported\n"
        );
    }
    // The container's commit happened where events say it did.
    let ev = d.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &(chrono_now_secs() + 1).to_string(),
        "--filter",
        "event=commit",
        "--format",
        "{{.Actor.Attributes.comment}}",
    ]);
    assert_eq!(ev, "first\nfirst\n");
}
