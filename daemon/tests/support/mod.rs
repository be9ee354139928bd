//! A berthd for tests: a seeded store in a temp dir, the daemon on its own
//! socket, the real docker CLI and curl to talk to it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_store::Store;
use berth_store::refs::ImageName;

pub mod registry;

pub const DOCKER: &str = "/usr/local/bin/docker";

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "berthd's tests open an image store that unpacks layers: run as root"
    );
}

pub fn require_docker() {
    assert!(
        Path::new(DOCKER).exists(),
        "{DOCKER} is missing: these tests drive berthd with the real docker CLI (28.x)"
    );
}

/// A busybox root filesystem as a tar: the static binary and a few links.
pub fn busybox_tar() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox: install busybox-static");
    let mut b = tar::Builder::new(Vec::new());
    for (d, m) in [("bin/", 0o755), ("etc/", 0o755), ("tmp/", 0o1777)] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(m);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, d, std::io::empty()).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, "bin/busybox", &busybox[..]).unwrap();
    for link in [
        "sh", "ls", "cat", "true", "echo", "sleep", "id", "env", "hostname", "stty", "tty", "false",
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        b.append_link(&mut h, format!("bin/{link}"), "busybox")
            .unwrap();
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\n";
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(passwd.len() as u64);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, "etc/passwd", &passwd[..]).unwrap();
    b.into_inner().unwrap()
}

/// Import busybox as `names[0]` into the store at `<data_root>/image`,
/// tagged also as the other `names`; returns the image id.
pub fn seed(data_root: &Path, names: &[&str]) -> String {
    let store = Store::open(&data_root.join("image"), None).expect("open store");
    let tar = busybox_tar();
    // One import, then more names: two imports a second apart would be
    // two images (the config records when it was made).
    store
        .import(&mut &tar[..], &ImageName::parse(names[0]).unwrap(), None)
        .expect("import busybox");
    for n in &names[1..] {
        store
            .retag(names[0], &ImageName::parse(n).unwrap())
            .expect("tag busybox");
    }
    store.image(names[0]).unwrap().id.to_string()
}

/// A running berthd, stopped (SIGTERM, then SIGKILL) and its files removed
/// on drop.
pub struct Berthd {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub socket: PathBuf,
    pub pidfile: PathBuf,
    pub data_root: PathBuf,
    /// The network namespace berthd runs in (a file bound to it), when
    /// started with [`Berthd::start_in_netns`].
    pub netns: Option<PathBuf>,
    /// The berthd flags it was started with, for [`Berthd::restart`].
    extra: Vec<String>,
}

impl Berthd {
    /// A temp dir with `data/` seeded by `seed_names` (none: empty store).
    pub fn start(seed_names: &[&str]) -> (Berthd, Option<String>) {
        Berthd::start_with(seed_names, &[])
    }

    /// [`Berthd::start`] with more berthd flags. berthd runs in the host's
    /// network namespace here, so it gets no default bridge (containers
    /// default to `--network none`): see [`Berthd::start_in_netns`].
    pub fn start_with(seed_names: &[&str], extra: &[&str]) -> (Berthd, Option<String>) {
        let mut args = extra.to_vec();
        if !args.contains(&"--bridge") {
            args.extend(["--bridge", "none"]);
        }
        Berthd::spawn(seed_names, &args, false)
    }

    /// berthd (and so its containers, bridges and nftables rules) in a
    /// network namespace the test makes (`unshare --net=<file>`, its
    /// loopback up), entered with `nsenter`: the network tests' stand-in
    /// for a host. The namespace outlives berthd, so a restarted berthd
    /// finds what the first one left there. Run the tests under
    /// `unshare -m --propagation private`: the namespace's file and
    /// berthd's sandbox files are mounts.
    pub fn start_in_netns(seed_names: &[&str], extra: &[&str]) -> (Berthd, Option<String>) {
        Berthd::spawn(seed_names, extra, true)
    }

    /// Run `cmd` in berthd's network namespace (its "host side").
    pub fn host_side(&self, cmd: &[&str]) -> Output {
        let ns = self.netns.as_ref().expect("berthd was started in a netns");
        Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(cmd)
            .output()
            .expect("run nsenter")
    }

    /// The pid of berthd (for `nsenter --net=/proc/<pid>/ns/net`).
    pub fn pid(&self) -> u32 {
        let pid: i32 = std::fs::read_to_string(&self.pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        pid as u32
    }

    fn spawn(seed_names: &[&str], extra: &[&str], in_netns: bool) -> (Berthd, Option<String>) {
        require_root();
        let shim = Path::new(env!("CARGO_BIN_EXE_berthd")).with_file_name("berth-shim");
        assert!(
            shim.exists(),
            "{} is missing: build it first (cargo build -p berth-shim; scripts/test does)",
            shim.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("berthd-test")
            .tempdir()
            .unwrap();
        let data_root = dir.path().join("data");
        let id = (!seed_names.is_empty()).then(|| seed(&data_root, seed_names));
        let exec_root = dir.path().join("exec");
        let socket = dir.path().join("berth.sock");
        let config_file = dir.path().join("daemon.json");
        std::fs::write(&config_file, "{}\n").unwrap();
        let netns = in_netns.then(|| {
            let ns = dir.path().join("netns");
            // unshare binds the namespace onto a file that must exist.
            std::fs::write(&ns, "").unwrap();
            let ok = Command::new("unshare")
                .arg(format!("--net={}", ns.display()))
                .arg("true")
                .status()
                .expect("run unshare");
            assert!(ok.success(), "unshare --net={}: {ok}", ns.display());
            let ok = Command::new("nsenter")
                .arg(format!("--net={}", ns.display()))
                .args(["ip", "link", "set", "lo", "up"])
                .status()
                .expect("run nsenter");
            assert!(ok.success(), "loopback up in {}: {ok}", ns.display());
            ns
        });
        let child = berthd_command(netns.as_deref())
            .arg("--data-root")
            .arg(&data_root)
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .arg("--config-file")
            .arg(&config_file)
            .args(["--log-level", "debug"])
            .args(extra)
            .stderr(std::fs::File::create(dir.path().join("berthd.log")).unwrap())
            .spawn()
            .expect("spawn berthd");
        let mut d = Berthd {
            pidfile: exec_root.join("berthd.pid"),
            dir,
            child: Some(child),
            socket,
            data_root,
            netns,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        d.wait_ready();
        (d, id)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("berthd exited ({st}); log:\n{}", self.log());
            }
            if self.socket.exists() && self.curl(&["http://d/_ping"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("berthd did not come up; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The real docker CLI, with a config dir of its own.
    pub fn docker(&self, args: &[&str]) -> Output {
        require_docker();
        let config = self.dir.path().join("docker-config");
        std::fs::create_dir_all(&config).unwrap();
        Command::new(DOCKER)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CONFIG", &config)
            .arg("-H")
            .arg(self.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// The docker CLI with `input` on its stdin.
    pub fn docker_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        require_docker();
        let config = self.dir.path().join("docker-config");
        std::fs::create_dir_all(&config).unwrap();
        let mut child = Command::new(DOCKER)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CONFIG", &config)
            .arg("-H")
            .arg(self.host())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run docker");
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().expect("docker output")
    }

    /// `docker args` that must succeed; its stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\nberthd log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// curl over the socket; `-s` is always given.
    pub fn curl(&self, args: &[&str]) -> Output {
        Command::new("curl")
            .arg("-s")
            .arg("--unix-socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run curl")
    }

    /// (status, headers, body) of a request.
    pub fn request(&self, method: &str, path: &str) -> (u16, String, String) {
        let headers = self.dir.path().join("headers");
        let mut args = vec!["-D", headers.to_str().unwrap(), "-X", method];
        if method == "HEAD" {
            args = vec!["-D", headers.to_str().unwrap(), "-I"];
        }
        let url = format!("http://d{path}");
        args.push(&url);
        let out = self.curl(&args);
        let head = std::fs::read_to_string(&headers).unwrap_or_default();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (
            status,
            head,
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// SIGTERM, wait up to 10 s; the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Berthd {
    /// SIGKILL berthd: what a crash looks like to its containers.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start berthd again on the same roots (in the same namespace, with
    /// the same flags).
    pub fn restart(&mut self) {
        self.stop();
        let exec_root = self.pidfile.parent().unwrap().to_path_buf();
        let config_file = self.dir.path().join("daemon.json");
        let mut extra = self.extra.clone();
        if self.netns.is_none() && !extra.iter().any(|a| a == "--bridge") {
            extra.extend(["--bridge".to_string(), "none".to_string()]);
        }
        let child = berthd_command(self.netns.as_deref())
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .arg("--config-file")
            .arg(&config_file)
            .args(["--log-level", "debug"])
            .args(&extra)
            .stderr(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(self.dir.path().join("berthd.log"))
                    .unwrap(),
            )
            .spawn()
            .expect("spawn berthd");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Pids of the shims of this daemon's containers that are alive.
    pub fn shim_pids(&self) -> Vec<i32> {
        let exec_root = self.pidfile.parent().unwrap();
        let mut out = Vec::new();
        for e in std::fs::read_dir(exec_root.join("c"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(p) = std::fs::read_to_string(e.path().join("shim/shim.pid"))
                && let Ok(pid) = p.trim().parse::<i32>()
                && Path::new(&format!("/proc/{pid}")).exists()
            {
                out.push(pid);
            }
        }
        out
    }

    /// Kill whatever containers are still running (their init processes,
    /// by pid), so their shims clean up and leave.
    fn kill_containers(&self) {
        let exec_root = self.pidfile.parent().unwrap();
        for e in std::fs::read_dir(exec_root.join("c"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(p) = std::fs::read_to_string(e.path().join("shim/init.pid"))
                && let Ok(pid) = p.trim().parse::<i32>()
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.shim_pids().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for e in std::fs::read_dir(exec_root.join("c"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = nix::mount::umount2(&e.path().join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

impl Berthd {
    /// Pids of the exec shims (`<exec-root>/x/<exec id>/shim.pid`) alive.
    pub fn exec_shim_pids(&self) -> Vec<i32> {
        let exec_root = self.pidfile.parent().unwrap();
        std::fs::read_dir(exec_root.join("x"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("shim.pid")).ok())
            .filter_map(|p| p.trim().parse::<i32>().ok())
            .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
            .collect()
    }

    /// `docker events` from `since` to `until` (epoch seconds) through
    /// `filter`, each event as `format` puts it.
    pub fn events(&self, since: u64, until: u64, filter: &str, format: &str) -> String {
        let (since, until) = (since.to_string(), until.to_string());
        self.docker_ok(&[
            "events", "--since", &since, "--until", &until, "--filter", filter, "--format", format,
        ])
    }

    /// curl a JSON `body` to `path` with `method`; (status, body).
    pub fn send_json(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let url = format!("http://d{path}");
        let out = self.curl(&[
            "-w",
            "\n%{http_code}",
            "-X",
            method,
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            &url,
        ]);
        let all = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = all.rsplit_once('\n').unwrap_or(("", &all));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

/// stdout, stderr and the exit code (-1: killed by a signal).
pub fn text(o: &Output) -> (String, String, i32) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

/// Seconds since the epoch, for `events --since/--until`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// Poll `f` every 100 ms until it is true or `limit` passes.
pub fn poll_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Berthd {
    fn drop(&mut self) {
        self.stop();
        self.kill_containers();
        if self.netns.is_some() {
            unmount_under(self.dir.path());
        }
    }
}

/// berthd, in the namespace bound to `netns` if given.
fn berthd_command(netns: Option<&Path>) -> Command {
    match netns {
        None => Command::new(env!("CARGO_BIN_EXE_berthd")),
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.display()))
                .arg(env!("CARGO_BIN_EXE_berthd"));
            c
        }
    }
}

/// Detach every mount at or below `dir` (the netns file, sandboxes berthd
/// left bound), deepest first, so the temp dir can go.
pub fn unmount_under(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
}
