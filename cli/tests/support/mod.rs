//! A berthd of its own for each test (temp data root, its own socket),
//! and the `berth` binary pointed at it.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// berthd: `$BERTHD`, else beside `berth` in the target directory.
pub fn berthd_path() -> PathBuf {
    let p = std::env::var_os("BERTHD")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(BERTH).with_file_name("berthd"));
    assert!(
        p.exists(),
        "{} is missing: these tests drive a real berthd; build it first \
         (`cargo build -p berth-daemon`, or run `cargo test --workspace`) or set BERTHD",
        p.display()
    );
    p
}

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the berth CLI's integration tests start berthd, whose image store unpacks layers: run as root"
    );
}

pub const DOCKER: &str = "/usr/local/bin/docker";

pub fn require_docker() {
    assert!(
        Path::new(DOCKER).exists(),
        "{DOCKER} is missing: these tests compare berth with the real docker CLI (28.x) \
         against the same berthd; install it"
    );
}

/// berth-shim beside berthd: berthd runs each container under one.
pub fn require_shim() {
    let shim = berthd_path().with_file_name("berth-shim");
    assert!(
        shim.exists(),
        "{} is missing: containers run under it; build it first (cargo build -p berth-shim)",
        shim.display()
    );
}

/// A running berthd, stopped (SIGTERM, then SIGKILL) by its pid on drop.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub socket: PathBuf,
    pub data_root: PathBuf,
    /// berthd's flags beyond the paths, for a restart.
    extra: Vec<String>,
    /// The network namespace berthd runs in, for [`Daemon::start_in_netns`].
    pub netns: Option<PathBuf>,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    /// [`Daemon::start`] with more berthd flags. berthd runs in the host's
    /// network namespace here, so it is always given `--bridge none`: no
    /// test of the CLI may make berth0 or nftables rules on the host.
    pub fn start_with(extra: &[&str]) -> Daemon {
        let mut extra = extra.to_vec();
        if !extra.contains(&"--bridge") {
            extra.extend(["--bridge", "none"]);
        }
        Daemon::spawn(&extra, false)
    }

    /// berthd with its default bridge, in a network namespace the test
    /// makes (bound to `<dir>/netns`, loopback up), for the commands that
    /// touch the network. Run under `unshare -m --propagation private`.
    pub fn start_in_netns() -> Daemon {
        Daemon::spawn(&[], true)
    }

    fn spawn(extra: &[&str], in_netns: bool) -> Daemon {
        require_root();
        let dir = tempfile::Builder::new().prefix("bt-cli").tempdir().unwrap();
        let netns = in_netns.then(|| {
            let ns = dir.path().join("netns");
            // unshare binds the namespace onto a file that must exist.
            std::fs::write(&ns, "").unwrap();
            for cmd in [
                vec![
                    "unshare".to_string(),
                    format!("--net={}", ns.display()),
                    "true".into(),
                ],
                vec![
                    "nsenter".to_string(),
                    format!("--net={}", ns.display()),
                    "ip".into(),
                    "link".into(),
                    "set".into(),
                    "lo".into(),
                    "up".into(),
                ],
            ] {
                let st = Command::new(&cmd[0]).args(&cmd[1..]).status().unwrap();
                assert!(st.success(), "{cmd:?}: {st}");
            }
            ns
        });
        let socket = dir.path().join("berth.sock");
        let data_root = dir.path().join("data");
        let config = dir.path().join("daemon.json");
        std::fs::write(&config, "{}\n").unwrap();
        let mut d = Daemon {
            dir,
            child: None,
            socket,
            data_root,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            netns,
        };
        d.launch();
        d
    }

    /// berthd stopped (SIGKILL when `kill`, else SIGTERM) and started
    /// again on the same data root.
    pub fn restart(&mut self, kill: bool) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let sig = if kill {
                nix::sys::signal::Signal::SIGKILL
            } else {
                nix::sys::signal::Signal::SIGTERM
            };
            let _ = nix::sys::signal::kill(pid, sig);
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
        self.launch();
    }

    /// Start berthd (in its network namespace, if it has one).
    fn launch(&mut self) {
        let config = self.dir.path().join("daemon.json");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("berthd.log"))
            .unwrap();
        let mut cmd = match &self.netns {
            None => Command::new(berthd_path()),
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg(berthd_path());
                c
            }
        };
        let child = cmd
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(self.dir.path().join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .arg("--config-file")
            .arg(&config)
            .args(&self.extra)
            .stderr(log)
            .spawn()
            .expect("spawn berthd");
        self.child = Some(child);
        let d = self;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(Ok(Some(st))) = d.child.as_mut().map(|c| c.try_wait()) {
                panic!("berthd exited ({st}); log:\n{}", d.log());
            }
            if std::os::unix::net::UnixStream::connect(&d.socket).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "berthd did not come up; log:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// `berth -H <ours> args`, stdin from `input`.
    pub fn berth_with(&self, args: &[&str], input: Option<&[u8]>) -> Output {
        let args_text = format!("{args:?}");
        let mut cmd = Command::new(BERTH);
        cmd.env_remove("DOCKER_HOST")
            .env_remove("BERTH_HOST")
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env("TZ", "UTC")
            .arg("-H")
            .arg(self.host())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd.spawn().expect("run berth");
        if let Some(data) = input {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(data).unwrap();
        }
        // A berth that hangs is killed (by its pid) after a minute, and
        // the test fails on its status rather than waiting forever.
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let (done, watch) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if watch.recv_timeout(Duration::from_secs(60))
                == Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                eprintln!("berth {args_text} hung for a minute: killed");
            }
        });
        let out = child.wait_with_output().unwrap();
        let _ = done.send(());
        let _ = watchdog.join();
        out
    }

    /// `tool` (`berth` or the docker CLI) pointed at this berthd, its
    /// output and stdin left to the caller.
    pub fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(if tool == "docker" { DOCKER } else { BERTH });
        cmd.env_remove("DOCKER_HOST")
            .env_remove("BERTH_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env("TZ", "UTC")
            .arg("-H")
            .arg(self.host());
        cmd
    }

    /// The real docker CLI against the same berthd, for comparisons.
    pub fn docker(&self, args: &[&str]) -> Output {
        require_docker();
        Command::new(DOCKER)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env("TZ", "UTC")
            .arg("-H")
            .arg(self.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// `docker args` that must succeed: its stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        self.stdout_of("docker", args, self.docker(args))
    }

    /// The stdout of a command that must have succeeded.
    fn stdout_of(&self, tool: &str, args: &[&str], out: Output) -> String {
        assert!(
            out.status.success(),
            "{tool} {args:?} failed ({}): {}\nberthd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.berth_with(args, None)
    }

    /// `berth args` that must succeed: its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.stdout_of("berth", args, self.berth(args))
    }

    /// A busybox rootfs tarball (the static binary and a few links),
    /// imported as `name`; returns the image id.
    pub fn import_busybox(&self, name: &str) -> String {
        let tar = busybox_tar(self.dir.path());
        let out = self.ok(&["import", tar.to_str().unwrap(), name]);
        out.trim().to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        self.kill_containers();
        if self.netns.is_some() {
            // The namespace's file and the sandboxes berthd left bound.
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let mut points: Vec<&str> = info
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|p| Path::new(p).starts_with(self.dir.path()))
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

impl Daemon {
    /// Run `cmd` in berthd's network namespace; its stdout.
    pub fn host_side(&self, cmd: &[&str]) -> String {
        let ns = self.netns.as_ref().expect("berthd was started in a netns");
        let out = Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(cmd)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGKILL what containers a failed test left running (their init
    /// processes, by pid), and wait for their shims to record it and go.
    fn kill_containers(&self) {
        let c = self.dir.path().join("exec/c");
        let read_pid = |p: std::path::PathBuf| -> Option<i32> {
            std::fs::read_to_string(p).ok()?.trim().parse().ok()
        };
        let dirs: Vec<PathBuf> = std::fs::read_dir(&c)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        for d in &dirs {
            if let Some(pid) = read_pid(d.join("shim/init.pid")) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && dirs.iter().any(|d| {
                read_pid(d.join("shim/shim.pid"))
                    .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists())
            })
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM berthd (by pid), SIGKILL after 10 s.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `<dir>/busybox.tar`, made with tar(1) from a tree of links.
pub fn busybox_tar(dir: &Path) -> PathBuf {
    let root = dir.join("bb-root");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("/bin/busybox: install busybox-static");
    for l in [
        "sh", "ls", "cat", "echo", "true", "sleep", "id", "env", "hostname", "tty",
    ] {
        let _ = std::os::unix::fs::symlink("busybox", bin.join(l));
    }
    let tar = dir.join("busybox.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("run tar(1): install tar");
    assert!(st.success(), "tar failed");
    tar
}
