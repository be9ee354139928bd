//! A real client: Debian's podman with berth-runtime as its OCI runtime
//! (conmon in between, as in production). The same scenarios run with
//! runc, which shows the test asks nothing runc would not do.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PODMAN: &str = "/usr/bin/podman";
const RUNC: &str = "/usr/sbin/runc";
const IMAGE: &str = "localhost/bt-busybox:latest";
/// podman asks for RLIMIT_NOFILE 1048576 by default; root here cannot
/// raise its hard limit above the current one (no CAP_SYS_RESOURCE), so
/// both runtimes would refuse. Ask for limits the host can give.
const ULIMITS: &[&str] = &[
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

struct Podman {
    dir: tempfile::TempDir,
    runtime: PathBuf,
}

impl Podman {
    fn new(runtime: &Path) -> Podman {
        common::require_root();
        assert!(
            Path::new(PODMAN).exists(),
            "{PODMAN} missing: install Debian's podman"
        );
        assert!(runtime.exists(), "{} missing", runtime.display());
        let dir = tempfile::Builder::new()
            .prefix("bt-podman-")
            .tempdir()
            .unwrap();
        let p = Podman {
            dir,
            runtime: runtime.to_path_buf(),
        };
        let rootfs = p.dir.path().join("rootfs");
        common::make_rootfs(&rootfs);
        let tar = p.dir.path().join("busybox.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        p.ok(&["import", tar.to_str().unwrap(), IMAGE]);
        p
    }

    fn cmd(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("timeout");
        c.args(["120", PODMAN, "--root"])
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .arg("--runtime")
            .arg(&self.runtime);
        c
    }

    /// A cgroup parent of the test's own, removed afterwards; podman's
    /// default (/libpod_parent) would outlive the test.
    fn cgroup_parent(&self) -> String {
        format!(
            "/bt-podman-{}-{}",
            std::process::id(),
            self.runtime.file_name().unwrap().to_string_lossy()
        )
    }

    fn run(&self, args: &[&str]) -> Output {
        let parent = self.cgroup_parent();
        let args: Vec<&str> = match args.first() {
            Some(&"run") => {
                let mut v = vec!["run", "--cgroup-parent", &parent];
                v.extend(&args[1..]);
                v
            }
            _ => args.to_vec(),
        };
        self.cmd()
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?} with {} failed ({}): {}",
            self.runtime.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "--all", "--force", "--time", "0"]);
        // conmon leaves its own cgroup (<parent>/conmon) below it.
        common::remove_cgroup_tree(self.cgroup_parent().trim_start_matches('/'));
    }
}

fn run_rm(p: &Podman) {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend(ULIMITS);
    args.extend([IMAGE, "sh", "-c", "echo hello $(hostname | wc -c); exit 0"]);
    assert!(p.ok(&args).starts_with("hello "));
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend(ULIMITS);
    args.extend([IMAGE, "sh", "-c", "exit 42"]);
    assert_eq!(
        p.run(&args).status.code(),
        Some(42),
        "exit codes reach podman"
    );
    assert!(p.ok(&["ps", "-aq"]).trim().is_empty(), "--rm removed it");
}

fn detached_exec_stop_rm(p: &Podman, name: &str) {
    let mut args = vec!["run", "-d", "--name", name, "--network", "none"];
    args.extend(ULIMITS);
    // A handler for TERM so `stop` ends it gracefully.
    args.extend([
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    p.ok(&args);
    let out = p.ok(&[
        "exec",
        name,
        "sh",
        "-c",
        "echo exec-ok; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert!(out.starts_with("exec-ok\nsh -c trap"), "{out}");
    let status = p.ok(&["inspect", "--format", "{{.State.Status}}", name]);
    assert_eq!(status.trim(), "running");
    let t = Instant::now();
    p.ok(&["stop", "--time", "10", name]);
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "TERM reached the container"
    );
    let code = p.ok(&["inspect", "--format", "{{.State.ExitCode}}", name]);
    assert_eq!(code.trim(), "0");
    p.ok(&["rm", name]);
    assert!(p.ok(&["ps", "-aq"]).trim().is_empty());
}

fn interactive_through_pty(p: &Podman) {
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut cmd = p.cmd();
    let parent = p.cgroup_parent();
    cmd.args([
        "run",
        "--cgroup-parent",
        &parent,
        "-it",
        "--rm",
        "--network",
        "none",
    ])
    .args(ULIMITS)
    .args([IMAGE, "sh"]);
    cmd.stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave);
    let mut child = cmd.spawn().unwrap();
    let mut m = std::fs::File::from(pty.master);
    m.write_all(b"tty; echo in-$((6*7)); exit 4\n").unwrap();
    // SAFETY: fcntl on our master fd.
    unsafe { libc::fcntl(m.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut text = String::new();
    let status = loop {
        let mut buf = [0u8; 4096];
        if let Ok(n) = m.read(&mut buf) {
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "podman run -it hung: {text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    while let Ok(n) = m.read(&mut [0u8; 4096]) {
        if n == 0 {
            break;
        }
    }
    assert!(text.contains("/dev/pts/0"), "a terminal inside: {text}");
    assert!(text.contains("in-42"), "{text}");
    assert_eq!(status.code(), Some(4), "{text}");
}

fn scenarios(runtime: &Path, tag: &str) {
    let p = Podman::new(runtime);
    run_rm(&p);
    detached_exec_stop_rm(&p, &format!("bt-{tag}-{}", std::process::id()));
    interactive_through_pty(&p);
}

#[test]
fn podman_with_berth_runtime() {
    scenarios(Path::new(common::BIN), "berth");
}

#[test]
fn podman_with_runc() {
    scenarios(Path::new(RUNC), "runc");
}

#[test]
fn podman_defaults_fail_clearly_on_this_host() {
    let has = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap();
    let p = Podman::new(Path::new(common::BIN));
    let out = p.run(&["run", "--rm", "--network", "none", IMAGE, "true"]);
    if has {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("RLIMIT_NOFILE hard limit 1048576") && err.contains("CAP_SYS_RESOURCE"),
        "{err}"
    );
}
