//! Shared by the runtime's integration tests: busybox bundles, a
//! per-test runtime root, and guards that leave nothing behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// These tests create real containers; without root they cannot, and
/// must say so rather than pass.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test creates containers and must run as root"
    );
    static SUBREAPER: Once = Once::new();
    SUBREAPER.call_once(|| {
        // Detached containers outlive the berth-runtime that created them;
        // their inits come back to us instead of to a pid 1 that may not
        // reap, and each guard reaps its own.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    });
}

pub fn busybox() -> &'static Path {
    let p = Path::new("/bin/busybox");
    assert!(
        p.exists(),
        "/bin/busybox missing: install Debian's busybox-static"
    );
    p
}

/// A rootfs holding a static busybox and its applets.
pub fn make_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox(), bin.join("busybox")).unwrap();
    let out = Command::new(busybox()).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        if applet == "busybox" || applet.is_empty() {
            continue;
        }
        let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
    }
    for d in ["proc", "sys", "dev", "etc", "tmp", "root"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )
    .unwrap();
}

/// A bundle in a temporary directory with berth-runtime's default config,
/// made non-interactive, running `args`.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("bt-bundle-")
            .tempdir()
            .unwrap();
        make_rootfs(&dir.path().join("rootfs"));
        let mut config = berth_runtime::spec::default_spec_json(false, 0, 0);
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        // Tests write in the rootfs unless they ask for read-only.
        config["root"]["readonly"] = json!(false);
        Bundle { dir, config }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn write(&self) {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    pub fn add_mount(&mut self, m: Value) {
        self.config["mounts"].as_array_mut().unwrap().push(m);
    }
}

/// A runtime root of its own per test, and the ids created in it.
pub struct Rt {
    pub root: tempfile::TempDir,
    ids: std::cell::RefCell<Vec<String>>,
}

pub fn unique_id(name: &str) -> String {
    format!("bt-{name}-{}", std::process::id())
}

impl Rt {
    pub fn new() -> Rt {
        require_root();
        Rt {
            root: tempfile::Builder::new()
                .prefix("bt-root-")
                .tempdir()
                .unwrap(),
            ids: Default::default(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Run berth-runtime with `args`, stdin closed, output captured in
    /// files: a detached container inherits them, and pipes would keep
    /// the caller waiting for its exit.
    pub fn run(&self, args: &[&str]) -> Output {
        self.track(args);
        let out = tempfile::tempfile().unwrap();
        let err = tempfile::tempfile().unwrap();
        let status = self
            .cmd()
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap())
            .status()
            .unwrap();
        let read = |mut f: std::fs::File| {
            use std::io::{Read, Seek};
            let mut v = Vec::new();
            f.seek(std::io::SeekFrom::Start(0)).unwrap();
            f.read_to_end(&mut v).unwrap();
            v
        };
        Output {
            status,
            stdout: read(out),
            stderr: read(err),
        }
    }

    fn track(&self, args: &[&str]) {
        if let Some(pos) = args.iter().position(|a| *a == "create" || *a == "run") {
            // The id is the last positional argument of create/run.
            if let Some(id) = args[pos + 1..].iter().rev().find(|a| !a.starts_with('-')) {
                self.ids.borrow_mut().push(id.to_string());
            }
        }
    }

    /// Like `run`, but the command must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth-runtime {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// Poll until the container reports `status`.
    pub fn wait_status(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.status(id) != status {
            assert!(Instant::now() < deadline, "{id} never became {status}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `run` a bundle in the foreground; returns (exit code, stdout, stderr).
    pub fn run_bundle(&self, id: &str, bundle: &Bundle) -> (i32, String, String) {
        bundle.write();
        let out = self.run(&["run", "--bundle", bundle.path().to_str().unwrap(), id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let pid = self
                .cmd()
                .args(["state", id])
                .output()
                .ok()
                .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
                .and_then(|v| v["pid"].as_i64());
            let _ = self.cmd().args(["delete", "--force", id]).output();
            if let Some(pid) = pid.filter(|p| *p > 0) {
                reap(pid as i32);
            }
        }
    }
}

/// Collect a process that came to us as a subreaper, if it is ours.
pub fn reap(pid: i32) {
    let _ = nix::sys::wait::waitpid(
        nix::unistd::Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        ) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            _ => return,
        }
    }
}

/// Every directory of cgroup `name` in the host's hierarchies.
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            let p = e.path().join(name);
            if p.exists() {
                out.push(p);
            }
        }
    }
    let v2 = Path::new("/sys/fs/cgroup").join(name);
    if v2.exists() && !out.contains(&v2) {
        out.push(v2);
    }
    out
}

/// Remove cgroup `name` and everything below it, in every hierarchy.
pub fn remove_cgroup_tree(name: &str) {
    fn rm(dir: &Path) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    rm(&e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    for dir in cgroup_dirs(name) {
        rm(&dir);
    }
}

/// Lines of /proc/self/mountinfo that mention `needle`.
pub fn host_mounts_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}
