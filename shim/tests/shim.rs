//! berth-shim end to end: real containers from a busybox bundle. As root,
//! inside `unshare -m --propagation private` (as scripts/test runs them).

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_shim::client;
use berth_shim::proto::{AttachRequest, Reply, Request, STDERR, STDOUT, Status, read_frame};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_berth-shim");

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test creates containers and must run as root"
    );
}

fn make_rootfs(dir: &Path) {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox missing: install Debian's busybox-static"
    );
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    let out = Command::new(busybox).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    for d in ["proc", "sys", "dev", "etc", "tmp", "root"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
}

/// A bundle, a state directory and a runtime root, all temporary; the
/// shim's processes are killed by pid on drop if a test left them.
struct Setup {
    id: String,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(name: &str, args: &[&str]) -> Setup {
        Setup::with(name, args, |_| {})
    }

    /// A setup whose config.json `edit` changes first.
    fn with(name: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> Setup {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("bt-shim-")
            .tempdir()
            .unwrap();
        let bundle = dir.path().join("bundle");
        make_rootfs(&bundle.join("rootfs"));
        let mut config = berth_runtime::spec::default_spec_json(false, 0, 0);
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        config["root"]["readonly"] = json!(false);
        edit(&mut config);
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec(&config).unwrap(),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        Setup {
            id: format!("bt-shim-{name}-{}", std::process::id()),
            dir,
        }
    }

    fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn args(&self) -> Vec<String> {
        [
            "--id",
            &self.id,
            "--bundle",
            self.bundle().to_str().unwrap(),
            "--state-dir",
            self.state().to_str().unwrap(),
            "--runtime-root",
            self.root().to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn sock(&self) -> PathBuf {
        self.state().join("shim.sock")
    }

    /// Run the shim; it returns once the container started (or failed).
    fn shim(&self) -> std::process::Output {
        self.shim_with(&[])
    }

    fn shim_with(&self, extra: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(self.args())
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Run the shim with `extra` flags and insist that it reports ok.
    fn shim_ok(&self, extra: &[&str]) {
        let out = self.shim_with(extra);
        assert!(
            out.status.success(),
            "shim {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.state().join(name)).ok()
    }

    fn wait_for(&self, name: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.read(name) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not appear; shim.log: {}",
                self.read("shim.log").unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn exit(&self) -> Value {
        serde_json::from_str(&self.wait_for("exit.json", 30)).unwrap()
    }

    fn pid(&self, name: &str) -> Option<i32> {
        self.read(name).and_then(|s| s.trim().parse().ok())
    }

    /// Wait for the shim process to be gone.
    fn wait_shim_gone(&self) {
        let Some(pid) = self.pid("shim.pid") else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            // A zombie under a reaper that is not us is gone enough.
            if std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            }) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> Vec<Value> {
        let p = self.state().join(format!("{}-json.log", self.id));
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Nothing of the container is left: no runtime state, no cgroup,
    /// no socket.
    fn assert_nothing_left(&self) {
        self.wait_shim_gone();
        assert!(
            !self.sock().exists(),
            "socket {} left",
            self.sock().display()
        );
        let left: Vec<_> = std::fs::read_dir(self.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "runtime root still holds {left:?}");
        for ctrl in std::fs::read_dir("/sys/fs/cgroup").unwrap() {
            let p = ctrl.unwrap().path();
            assert!(
                !p.join(&self.id).exists(),
                "cgroup {} left",
                p.join(&self.id).display()
            );
        }
        assert!(!Path::new("/sys/fs/cgroup").join(&self.id).exists());
    }
}

impl Drop for Setup {
    /// A test that failed half-way may leave shims and processes
    /// running (the container's, and those of exec shims in `exec*`
    /// state dirs): kill them by pid.
    fn drop(&mut self) {
        let mut states = vec![self.state()];
        if let Ok(rd) = std::fs::read_dir(self.dir.path()) {
            states.extend(
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("exec"))
                    .map(|e| e.path()),
            );
        }
        for st in states.iter().rev() {
            kill_left(st);
        }
    }
}

/// Kill the shim recorded in `state`/shim.pid and its process, by pid,
/// but only while that pid is still this binary (pids get reused) and
/// the process has not ended.
fn kill_left(state: &Path) {
    let pid = |name: &str| {
        std::fs::read_to_string(state.join(name))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
    };
    let Some(shim) = pid("shim.pid") else {
        return;
    };
    let ours = std::fs::read_link(format!("/proc/{shim}/exe")).is_ok_and(|e| e == Path::new(BIN));
    if !ours {
        return;
    }
    let kill = |pid: i32| {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    };
    if let Some(init) = pid("init.pid")
        && !state.join("exit.json").exists()
    {
        kill(init);
    }
    kill(shim);
}

#[test]
fn logs_both_streams_and_exit_code() {
    let s = Setup::new("log", &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let out = s.shim();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.pid("init.pid").is_some());
    let exit = s.exit();
    assert_eq!(exit["exit_code"], 3);
    assert_eq!(exit["signal"], Value::Null);
    humantime::parse_rfc3339(exit["finished_at"].as_str().unwrap()).unwrap();
    let log = s.log();
    let mut got: Vec<_> = log
        .iter()
        .map(|v| (v["log"].as_str().unwrap(), v["stream"].as_str().unwrap()))
        .collect();
    got.sort();
    assert_eq!(got, [("err\n", "stderr"), ("out\n", "stdout")]);
    for v in &log {
        humantime::parse_rfc3339(v["time"].as_str().unwrap()).unwrap();
    }
    assert!(s.read("start-error").is_none());
    s.assert_nothing_left();
}

#[test]
fn outlives_its_parent() {
    let s = Setup::new("orphan", &["sh", "-c", "sleep 2; echo done"]);
    let cmd = format!("'{BIN}' {} >/dev/null 2>&1 &", s.args().join(" "));
    let st = Command::new("sh").arg("-c").arg(&cmd).status().unwrap();
    assert!(st.success());
    // The intermediate shell is gone; the container runs on.
    s.wait_for("init.pid", 20);
    assert!(s.read("exit.json").is_none(), "exited too early");
    let exit = s.exit();
    assert_eq!(exit["exit_code"], 0);
    let log = s.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["log"], "done\n");
    assert_eq!(log[0]["stream"], "stdout");
    s.assert_nothing_left();
}

#[test]
fn sigkill_of_init_is_recorded() {
    let s = Setup::new("kill", &["sleep", "60"]);
    let out = s.shim();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = s.pid("init.pid").expect("init.pid after the shim returned");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let exit = s.exit();
    assert_eq!(exit["signal"], "SIGKILL");
    assert_eq!(exit["exit_code"], 137);
    s.assert_nothing_left();
}

#[test]
fn bad_bundle_is_a_start_error() {
    let s = Setup::new("bad", &["true"]);
    std::fs::remove_dir_all(s.bundle().join("rootfs")).unwrap();
    let out = s.shim();
    assert!(!out.status.success());
    let err = s.read("start-error").expect("start-error written");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    let rootfs = s.bundle().join("rootfs");
    assert!(err.contains(rootfs.to_str().unwrap()), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(rootfs.to_str().unwrap()),
        "the caller says why: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.read("init.pid").is_none());
    assert!(s.read("exit.json").is_none());
    s.assert_nothing_left();
}

// ---- the socket ----

const TIMEOUT: Duration = Duration::from_secs(30);

fn ask(sock: &Path, req: Request) -> Reply {
    client::request(sock, &req).unwrap_or_else(|e| panic!("{req:?}: {e}"))
}

fn refused(sock: &Path, req: Request) -> String {
    match client::request(sock, &req) {
        Err(berth_shim::Error::Refused { msg, .. }) => msg,
        other => panic!("{req:?}: expected a refusal, got {other:?}"),
    }
}

fn attach(sock: &Path, stdin: bool, stdout: bool, stderr: bool) -> (Reply, UnixStream) {
    let (reply, s) = client::attach(
        sock,
        AttachRequest {
            stdin,
            stdout,
            stderr,
        },
    )
    .unwrap_or_else(|e| panic!("attach: {e}"));
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    (reply, s)
}

/// Size the terminal of a `--no-start` shim, attach to it (with stdin if
/// `stdin`) and start it.
fn tty_start(sock: &Path, (width, height): (u16, u16), stdin: bool) -> UnixStream {
    ask(sock, Request::Resize { width, height });
    let (r, c) = attach(sock, stdin, true, false);
    assert_eq!(r.tty, Some(true));
    ask(sock, Request::Start);
    c
}

/// Every frame until the shim closes the connection: (stdout, stderr).
fn frames(s: &mut UnixStream) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(f) = read_frame(s).expect("frames until EOF") {
        match f.stream {
            STDOUT => out.extend_from_slice(&f.data),
            STDERR => err.extend_from_slice(&f.data),
            n => panic!("frame of stream {n}"),
        }
    }
    (out, err)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The whole log as (stream, text) in order.
fn log_text(s: &Setup) -> Vec<(String, String)> {
    s.log()
        .iter()
        .map(|v| {
            (
                v["stream"].as_str().unwrap().to_string(),
                v["log"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn attach_before_start_sees_everything() {
    let s = Setup::new(
        "attach",
        &["sh", "-c", "echo hi; echo err >&2; read x; echo \"bye $x\""],
    );
    s.shim_ok(&["--no-start", "--stdin"]);
    let sock = s.sock();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    let st = client::state(&sock).unwrap();
    assert_eq!(st.status, Status::Created);
    assert_eq!(st.pid, s.pid("init.pid"));
    assert!(st.pid.is_some() && st.exit.is_none() && st.stdin && !st.tty);
    assert!(s.log().is_empty(), "nothing runs before start");

    // Bad requests are refused, one line each.
    let mut raw = UnixStream::connect(&sock).unwrap();
    raw.write_all(b"{not json\n").unwrap();
    let mut got = String::new();
    raw.read_to_string(&mut got).unwrap();
    let r: Value = serde_json::from_str(got.trim()).unwrap();
    assert_eq!(r["ok"], false, "{got}");
    assert!(
        r["error"].as_str().unwrap().contains("bad request"),
        "{got}"
    );
    let mut raw = UnixStream::connect(&sock).unwrap();
    raw.write_all(b"{\"op\":\"dance\"}\n").unwrap();
    let mut got = String::new();
    raw.read_to_string(&mut got).unwrap();
    assert!(
        got.contains("\"ok\":false") && got.contains("dance"),
        "{got}"
    );
    let e = refused(
        &sock,
        Request::Resize {
            width: 80,
            height: 24,
        },
    );
    assert!(e.contains("terminal"), "{e}");
    let e = refused(&sock, Request::Kill { signal: 1000 });
    assert!(e.contains("signal"), "{e}");

    let (r, mut both) = attach(&sock, false, true, true);
    assert_eq!(r.tty, Some(false));
    let (_, mut out_only) = attach(&sock, false, true, false);

    let started = ask(&sock, Request::Start);
    assert_eq!(started.pid, st.pid);
    // It waits for a line on stdin now.
    let st = client::state(&sock).unwrap();
    assert_eq!(st.status, Status::Running);
    let e = refused(&sock, Request::Start);
    assert!(e.contains("already started"), "{e}");

    let (_, mut input) = attach(&sock, true, false, false);
    input.write_all(b"x1\n").unwrap();
    drop(input);

    let (out, err) = frames(&mut both);
    // The client that saw the end can read the record at once.
    let exit: Value =
        serde_json::from_str(&s.read("exit.json").expect("exit.json before EOF")).unwrap();
    assert_eq!(exit["exit_code"], 0);
    assert_eq!(text(&out), "hi\nbye x1\n");
    assert_eq!(text(&err), "err\n");
    let (out, err) = frames(&mut out_only);
    assert_eq!(text(&out), "hi\nbye x1\n");
    assert!(err.is_empty(), "stderr not asked for: {}", text(&err));

    let mut log = log_text(&s);
    log.sort();
    assert_eq!(
        log,
        [
            ("stderr".into(), "err\n".into()),
            ("stdout".into(), "bye x1\n".into()),
            ("stdout".into(), "hi\n".into())
        ]
    );
    s.assert_nothing_left();
}

#[test]
fn stdin_once_ends_input() {
    let s = Setup::new("once", &["cat"]);
    s.shim_ok(&["--no-start", "--stdin", "--stdin-once"]);
    let (_, mut c) = attach(&s.sock(), true, true, true);
    ask(&s.sock(), Request::Start);
    c.write_all(b"hello\n").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let (out, err) = frames(&mut c);
    assert_eq!(text(&out), "hello\n");
    assert!(err.is_empty(), "{}", text(&err));
    assert_eq!(s.exit()["exit_code"], 0);
    assert_eq!(log_text(&s), [("stdout".into(), "hello\n".into())]);
    s.assert_nothing_left();
}

#[test]
fn tty_resize_input_and_eot() {
    let s = Setup::with("tty", &["sh", "-c", "stty size; tty; cat"], |c| {
        c["process"]["terminal"] = json!(true);
    });
    // Flags that disagree with the config are a start error.
    let out = s.shim();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--tty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(s.state().join("start-error")).unwrap();

    s.shim_ok(&["--no-start", "--tty", "--stdin", "--stdin-once"]);
    let sock = s.sock();
    let st = client::state(&sock).unwrap();
    assert!(st.tty && st.stdin);
    let mut c = tty_start(&sock, (100, 40), true);
    // Wait for the shell's lines before typing, like a user.
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while !text(&got).contains("/dev/pts/") {
        let n = c.read(&mut b).expect("tty output");
        assert!(n > 0, "EOF before tty: {:?}", text(&got));
        got.extend_from_slice(&b[..n]);
    }
    c.write_all(b"typed\n").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    c.read_to_end(&mut got).unwrap();
    let all = text(&got);
    assert!(all.contains("40 100"), "{all:?}");
    // Once echoed by the terminal, once by cat; then ^D ended cat.
    assert_eq!(all.matches("typed").count(), 2, "{all:?}");
    assert_eq!(s.exit()["exit_code"], 0);
    let log = log_text(&s);
    assert!(log.iter().all(|(st, _)| st == "stdout"), "{log:?}");
    let logged: String = log.iter().map(|(_, t)| t.as_str()).collect();
    assert!(
        logged.contains("40 100") && logged.contains("/dev/pts/"),
        "{logged:?}"
    );
    s.assert_nothing_left();
}

#[test]
fn kill_op_signals_the_init() {
    // In its own pid namespace the init ignores a SIGTERM it has no
    // handler for; Docker's busybox `sleep` behaves the same. Share the
    // host's to see the signal do its work.
    let s = Setup::with("sigterm", &["sleep", "60"], |c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    });
    s.shim_ok(&[]);
    let st = client::state(&s.sock()).unwrap();
    assert_eq!(st.status, Status::Running);
    ask(&s.sock(), Request::Kill { signal: 15 });
    let exit = s.exit();
    assert_eq!(exit["exit_code"], 143);
    assert_eq!(exit["signal"], "SIGTERM");
    s.assert_nothing_left();
}

/// A `--no-start` shim of a container that writes `bytes` of 100-byte
/// lines to stdout, then runs `then`.
fn flood(name: &str, bytes: usize, then: &str) -> Setup {
    let line = "x".repeat(99);
    let cmd = format!("yes {line} | head -c {bytes}; {then}");
    let s = Setup::new(name, &["sh", "-c", &cmd]);
    s.shim_ok(&["--no-start"]);
    s
}

#[test]
fn exited_state_while_a_client_catches_up() {
    let s = flood("linger", 800_000, "exit 4");
    let (_, mut c) = attach(&s.sock(), false, true, false);
    ask(&s.sock(), Request::Start);
    // The client has not read: the shim waits for it past the exit.
    s.wait_for("exit.json", 30);
    let st = client::state(&s.sock()).unwrap();
    assert_eq!(st.status, Status::Exited);
    assert_eq!(st.exit.expect("exit record").exit_code, 4);
    let (out, _) = frames(&mut c);
    assert_eq!(out.len(), 800_000);
    s.assert_nothing_left();
}

#[test]
fn a_client_that_never_reads_holds_up_nothing() {
    let s = flood("stuck", 4_000_000, "true");
    let (_, stuck) = attach(&s.sock(), false, true, true);
    ask(&s.sock(), Request::Start);
    assert_eq!(s.exit()["exit_code"], 0);
    let logged: usize = log_text(&s).iter().map(|(_, t)| t.len()).sum();
    assert_eq!(logged, 4_000_000);
    s.assert_nothing_left();
    let shim_log = s.read("shim.log").unwrap_or_default();
    assert!(shim_log.contains("dropped"), "{shim_log}");
    drop(stuck);
}

/// Exec shims of `s`'s container: their own state dirs in the test's
/// temporary directory.
fn exec_shim(s: &Setup, name: &str, args: &[&str], extra: &[&str]) -> (PathBuf, Output) {
    exec_shim_with(s, name, args, false, extra)
}

fn exec_shim_with(
    s: &Setup,
    name: &str,
    args: &[&str],
    terminal: bool,
    extra: &[&str],
) -> (PathBuf, Output) {
    let state = s.dir.path().join(format!("exec-{name}"));
    std::fs::create_dir_all(&state).unwrap();
    let mut process = berth_runtime::spec::default_spec_json(false, 0, 0)["process"].clone();
    process["terminal"] = json!(terminal);
    process["args"] = json!(args);
    let file = state.join("process.json");
    std::fs::write(&file, serde_json::to_vec(&process).unwrap()).unwrap();
    let out = Command::new(BIN)
        .args(["--exec", "--process", file.to_str().unwrap(), "--id", &s.id])
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["--runtime-root", s.root().to_str().unwrap()])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (state, out)
}

#[test]
fn exec_runs_in_the_container() {
    let s = Setup::new("exec", &["sleep", "60"]);
    s.shim_ok(&[]);

    let (state, out) = exec_shim(&s, "one", &["sh", "-c", "echo $$; exit 3"], &["--no-start"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sock = state.join("shim.sock");
    let st = client::state(&sock).unwrap();
    assert_eq!((st.status, st.pid), (Status::Created, None));
    let (_, mut c) = attach(&sock, false, true, true);
    let started = ask(&sock, Request::Start);
    assert!(started.pid.is_some());
    let (out, err) = frames(&mut c);
    // Its own pid in the container's pid namespace: a small number.
    let pid: u32 = text(&out)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{out:?}"));
    assert!(pid > 1 && pid < 100, "pid {pid}");
    assert!(err.is_empty(), "{}", text(&err));
    let exit: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("exit.json")).unwrap()).unwrap();
    assert_eq!(exit["exit_code"], 3);
    let names: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with("json.log")), "{names:?}");

    // A missing program is the start request's error, on one line.
    let (state2, out) = exec_shim(&s, "missing", &["no-such-program"], &["--no-start"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = refused(&state2.join("shim.sock"), Request::Start);
    assert!(
        e.contains("no-such-program") && e.contains("not found"),
        "{e}"
    );
    let recorded = std::fs::read_to_string(state2.join("start-error")).unwrap();
    assert_eq!(recorded.trim(), e);

    // With a terminal: the size asked for before start is there at once.
    let (state3, out) = exec_shim_with(
        &s,
        "tty",
        &["sh", "-c", "stty size; tty"],
        true,
        &["--no-start", "--tty"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sock3 = state3.join("shim.sock");
    let mut c = tty_start(&sock3, (90, 30), false);
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    let all = text(&got);
    assert!(
        all.contains("30 90") && all.contains("/dev/pts/"),
        "{all:?}"
    );
    let exit: Value =
        serde_json::from_str(&std::fs::read_to_string(state3.join("exit.json")).unwrap()).unwrap();
    assert_eq!(exit["exit_code"], 0);

    // The container runs on.
    let st = client::state(&s.sock()).unwrap();
    assert_eq!(st.status, Status::Running);
    ask(&s.sock(), Request::Kill { signal: 9 });
    assert_eq!(s.exit()["exit_code"], 137);
    s.assert_nothing_left();
    for st in [&state, &state2, &state3] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while st.join("shim.sock").exists() {
            assert!(
                Instant::now() < deadline,
                "{} left",
                st.join("shim.sock").display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
