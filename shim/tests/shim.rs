//! berth-shim end to end: real containers from a busybox bundle. As root,
//! inside `unshare -m --propagation private` (as scripts/test runs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

    /// Run the shim; it returns once the container started (or failed).
    fn shim(&self) -> std::process::Output {
        Command::new(BIN)
            .args(self.args())
            .stdin(Stdio::null())
            .output()
            .unwrap()
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

    /// Nothing of the container is left: no runtime state, no cgroup.
    fn assert_nothing_left(&self) {
        self.wait_shim_gone();
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
    /// A test that failed half-way may leave its shim and container
    /// running: kill them by pid, but only while the shim recorded in
    /// shim.pid is still this binary (pids get reused) and the container
    /// has not ended.
    fn drop(&mut self) {
        let Some(shim) = self.pid("shim.pid") else {
            return;
        };
        let ours =
            std::fs::read_link(format!("/proc/{shim}/exe")).is_ok_and(|e| e == Path::new(BIN));
        if !ours {
            return;
        }
        let kill = |pid: i32| {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        };
        if let Some(init) = self.pid("init.pid")
            && self.read("exit.json").is_none()
        {
            kill(init);
        }
        kill(shim);
    }
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
