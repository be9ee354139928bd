//! One long session at a terminal, every step asserted: the real docker
//! CLI 28 drives berthd through it, and then berth's own CLI does the
//! same (each against a berthd of its own). Interactive steps (`run -it`,
//! `exec -it`) go through a real pty, with a window resize and Ctrl-D.

mod support;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{Winsize, openpty};

use support::Daemon;

/// The client under test, against its berthd.
struct Cli<'a> {
    d: &'a Daemon,
    tool: &'static str,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.d.command(self.tool);
        cmd.args(args).stdin(Stdio::null());
        kill_after(cmd, Duration::from_secs(60))
    }

    /// stdout, stderr and the exit code of `args`.
    fn out(&self, args: &[&str]) -> (String, String, i32) {
        let o = self.run(args);
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
            o.status.code().unwrap_or(-1),
        )
    }

    /// The stdout of `args`, which must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let (out, err, code) = self.out(args);
        assert_eq!(
            code,
            0,
            "{} {args:?} failed: {err}\nberthd log:\n{}",
            self.tool,
            self.d.log()
        );
        out
    }

    fn inspect(&self, name: &str, tmpl: &str) -> String {
        self.ok(&["inspect", "-f", tmpl, name]).trim().to_string()
    }

    /// `args` running in the background, stdout piped.
    fn spawn(&self, args: &[&str]) -> Child {
        let mut cmd = self.d.command(self.tool);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().expect("spawn client")
    }

    /// `args` with a pty of `rows`x`cols` as its controlling terminal.
    fn pty(&self, args: &[&str], rows: u16, cols: u16) -> Pty {
        let mut cmd = self.d.command(self.tool);
        cmd.args(args);
        Pty::spawn(cmd, rows, cols)
    }
}

/// Run `cmd` to its end, killing it (by pid) if it takes longer than
/// `limit`, so that a hung client fails the test instead of stalling it.
fn kill_after(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, watch) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if watch.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    let _ = watchdog.join();
    out
}

/// A client on a pty: what it printed so far, and its master side.
struct Pty {
    master: std::fs::File,
    child: Child,
    seen: String,
    /// Where the next `expect` starts looking in `seen`.
    mark: usize,
}

impl Pty {
    fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Pty {
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&size), None).expect("openpty");
        let slave: OwnedFd = pty.slave;
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // The client leads a session of its own with the pty as its
        // controlling terminal, as in a terminal emulator, so it gets
        // SIGWINCH when the size changes.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn client on a pty");
        // The slave's copies in `cmd` close here: the master then sees
        // EIO once the client and its children are gone.
        drop(cmd);
        Pty {
            master: std::fs::File::from(pty.master),
            child,
            seen: String::new(),
            mark: 0,
        }
    }

    /// Read what is there within `limit`; false at the end of output.
    fn read_some(&mut self, limit: Duration) -> bool {
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&self.master),
            PollFlags::POLLIN,
        )];
        let ms = u16::try_from(limit.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => panic!("poll pty: {e}"),
        }
        let mut buf = [0u8; 4096];
        match self.master.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                true
            }
            // EIO: the slave side is closed everywhere.
            Err(_) => false,
        }
    }

    /// Wait for `needle` in the output after the last match.
    fn expect(&mut self, needle: &str) -> &mut Pty {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(at) = self.seen[self.mark..].find(needle) {
                self.mark += at + needle.len();
                return self;
            }
            assert!(
                Instant::now() < deadline && self.read_some(Duration::from_millis(200)),
                "{needle:?} never came; the terminal showed: {:?}",
                self.seen
            );
        }
    }

    /// The text between the mark and the next `end` (both consumed).
    fn until(&mut self, end: &str) -> String {
        let start = self.mark;
        self.expect(end);
        self.seen[start..self.mark - end.len()].to_string()
    }

    fn send(&mut self, text: &str) -> &mut Pty {
        self.master.write_all(text.as_bytes()).unwrap();
        self
    }

    /// A new window size: the kernel sends the client SIGWINCH.
    fn resize(&mut self, rows: u16, cols: u16) {
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// The container's terminal size as `stty` reports it, asked with a
    /// numbered marker so that the typed command's echo never matches.
    fn stty_size(&mut self, n: u32) -> String {
        self.send(&format!("echo size$(({n}+1000))=$(busybox stty size)=\r"));
        self.expect(&format!("size{}=", n + 1000));
        self.until("=").trim().to_string()
    }

    /// Drain the output and wait for the client to exit.
    fn wait(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.read_some(Duration::from_millis(200)) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the client did not exit; it showed: {:?}", self.seen);
            }
        }
        (self.child.wait().unwrap(), self.seen)
    }
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

/// Read lines from a spawned client's stdout until `n` of them contain
/// `needle`.
fn read_lines_until(r: &mut impl std::io::BufRead, needle: &str, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    while lines
        .iter()
        .filter(|l: &&String| l.contains(needle))
        .count()
        < n
    {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            panic!("output ended before {n} lines with {needle:?}: {lines:?}");
        }
        lines.push(line);
    }
    lines
}

fn stop_by_pid(child: &mut Child) -> String {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.wait();
    out
}

fn scenario(tool: &'static str) {
    support::require_root();
    support::require_shim();
    support::require_docker();
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let c = Cli { d: &d, tool };
    let work = d.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();

    // Everything below is seen by one `events` that follows along.
    let mut events = c.spawn(&["events", "--format", "{{.Type}} {{.Action}}"]);

    // run --rm: output on the right streams, the exit code passed on.
    let (out, err, code) = c.out(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; exit 3",
    ]);
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("to-out\n", "to-err\n", 3)
    );
    let (_, err, code) = c.out(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(code, 127, "{err}");
    let (_, err, code) = c.out(&["run", "--rm", "busybox", "/etc"]);
    assert_eq!(code, 126, "{err}");
    let (_, err, code) = c.out(&["run", "--rm", "--memory", "lots", "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("lots"), "{err}");

    // A volume outlives the container that wrote it.
    assert_eq!(c.ok(&["volume", "create", "data"]), "data\n");
    c.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        c.ok(&[
            "run",
            "--rm",
            "-v",
            "data:/data",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "kept\n"
    );

    // A detached container that logs until it is told to stop.
    let id = c.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; while true; do echo tick; sleep 0.2; done",
    ]);
    let id = id.trim();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let ps = c.ok(&["ps", "--format", "{{.Names}} {{.Status}} {{.ID}}"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with("web Up") && l.ends_with(&id[..12])),
        "{ps}"
    );
    let mut follow = c.spawn(&["logs", "-f", "web"]);
    let mut follow_out = std::io::BufReader::new(follow.stdout.take().unwrap());
    read_lines_until(&mut follow_out, "tick", 2);

    // exec: output, exit codes, and a shell through a pty.
    assert_eq!(c.ok(&["exec", "web", "cat", "/data/f"]), "kept\n");
    let (_, _, code) = c.out(&["exec", "web", "sh", "-c", "exit 4"]);
    assert_eq!(code, 4);
    let mut sh = c.pty(&["exec", "-it", "web", "sh"], 24, 80);
    sh.expect("# ").send("echo $((6*7))\r").expect("42");
    sh.send("exit 7\r");
    let (st, _) = sh.wait();
    assert_eq!(st.code(), Some(7));

    // top and stats from the kernel's view of the container.
    let top = c.ok(&["top", "web"]);
    assert!(top.starts_with("UID") && top.contains("sleep"), "{top}");
    let stats = c.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}} {{.PIDs}}",
        "web",
    ]);
    let cells: Vec<&str> = stats.split_whitespace().collect();
    assert_eq!(cells[0], "web", "{stats}");
    assert!(
        cells[1].ends_with("iB") || cells[1].ends_with('B'),
        "{stats}"
    );
    assert!(
        cells.last().unwrap().parse::<u32>().unwrap() >= 1,
        "{stats}"
    );

    // cp both ways.
    let host_file = work.join("in.txt");
    std::fs::write(&host_file, "from the host\n").unwrap();
    c.ok(&["cp", host_file.to_str().unwrap(), "web:/tmp/in.txt"]);
    assert_eq!(
        c.ok(&["exec", "web", "cat", "/tmp/in.txt"]),
        "from the host\n"
    );
    let back = work.join("back");
    c.ok(&["cp", "web:/data/f", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "kept\n");

    // inspect templates.
    assert_eq!(
        c.inspect("web", "{{.State.Running}} {{.Name}}"),
        "true /web"
    );
    assert_eq!(c.inspect("web", "{{.Id}}"), id);
    assert_eq!(
        c.inspect("web", "{{json .Config.Cmd}}").chars().next(),
        Some('[')
    );
    assert_eq!(
        c.inspect("web", "{{range .Mounts}}{{.Name}}:{{.Destination}}{{end}}"),
        "data:/data"
    );
    let pid: u32 = c.inspect("web", "{{.State.Pid}}").parse().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

    // stop: the trap runs, logs -f ends with the container.
    assert_eq!(c.ok(&["stop", "web"]), "web\n");
    let mut rest = String::new();
    follow_out.read_to_string(&mut rest).unwrap();
    assert!(follow.wait().unwrap().success());
    assert!(rest.contains("bye"), "{rest}");
    assert_eq!(
        c.inspect("web", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 0"
    );
    // start and restart bring it back with a new process.
    let started = c.inspect("web", "{{.State.StartedAt}}");
    assert_eq!(c.ok(&["start", "web"]), "web\n");
    assert_eq!(c.inspect("web", "{{.State.Running}}"), "true");
    assert_ne!(c.inspect("web", "{{.State.StartedAt}}"), started);
    let pid_before = c.inspect("web", "{{.State.Pid}}");
    assert_eq!(c.ok(&["restart", "-t", "1", "web"]), "web\n");
    assert_eq!(c.inspect("web", "{{.State.Running}}"), "true");
    assert_ne!(c.inspect("web", "{{.State.Pid}}"), pid_before);
    assert_eq!(c.ok(&["rm", "-f", "web"]), "web\n");
    let (_, err, code) = c.out(&["inspect", "web"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such object: web"), "{err}");

    // run -it: a shell on a pty, the window resized, Ctrl-D to leave.
    let mut sh = c.pty(
        &["run", "-it", "--rm", "--name", "tty", "busybox", "sh"],
        24,
        80,
    );
    sh.expect("# ");
    assert_eq!(sh.stty_size(1), "24 80");
    sh.resize(30, 100);
    let mut n = 1;
    assert!(
        eventually(Duration::from_secs(5), || {
            n += 1;
            sh.stty_size(n) == "30 100"
        }),
        "the resize never reached the container: {:?}",
        sh.seen
    );
    sh.send("echo typed-in\r").expect("\r\ntyped-in\r\n");
    sh.send("\x04");
    let (st, _) = sh.wait();
    assert_eq!(st.code(), Some(0));
    assert!(eventually(Duration::from_secs(5), || c
        .out(&["inspect", "tty"])
        .2
        == 1));

    // restart=on-failure:3 restarts it three times, then leaves it.
    c.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:3",
        "busybox",
        "sh",
        "-c",
        "echo try; exit 1",
    ]);
    assert!(
        eventually(Duration::from_secs(15), || c.inspect(
            "flaky",
            "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}"
        ) == "exited 3 1"),
        "{}",
        c.inspect("flaky", "{{json .State}} {{.RestartCount}}")
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        c.inspect("flaky", "{{.RestartCount}}"),
        "3",
        "no fourth restart"
    );
    assert_eq!(c.ok(&["logs", "flaky"]), "try\n".repeat(4));

    // A healthcheck goes healthy, then unhealthy when its file goes.
    c.ok(&[
        "run",
        "-d",
        "--name",
        "doc",
        "--health-cmd",
        "cat /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        "busybox",
        "sh",
        "-c",
        "echo fine > /tmp/ok; sleep 1000",
    ]);
    assert!(
        eventually(Duration::from_secs(10), || c
            .inspect("doc", "{{.State.Health.Status}}")
            == "healthy"),
        "{}",
        c.inspect("doc", "{{json .State.Health}}")
    );
    c.ok(&["exec", "doc", "busybox", "rm", "/tmp/ok"]);
    assert!(
        eventually(Duration::from_secs(10), || c
            .inspect("doc", "{{.State.Health.Status}}")
            == "unhealthy"),
        "{}",
        c.inspect("doc", "{{json .State.Health}}")
    );
    let ps = c.ok(&[
        "ps",
        "--filter",
        "health=unhealthy",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(ps, "doc\n");
    c.ok(&["rm", "-f", "doc", "flaky"]);

    // Images: save, tag, rmi, load, export and import.
    let saved = work.join("busybox.tar");
    c.ok(&["save", "-o", saved.to_str().unwrap(), "busybox"]);
    c.ok(&["tag", "busybox", "mybox:1"]);
    let images = c.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let ids: Vec<&str> = images
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    assert!(images.contains("mybox:1 "), "{images}");
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one image, two names: {images}"
    );
    assert_eq!(c.ok(&["rmi", "mybox:1"]), "Untagged: mybox:1\n");
    let (out, _, _) = c.out(&["rmi", "busybox"]);
    assert!(
        out.starts_with("Untagged: busybox:latest\nDeleted: sha256:"),
        "{out}"
    );
    assert_eq!(c.ok(&["images", "-q"]), "");
    let loaded = c.ok(&["load", "-i", saved.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: busybox:latest"), "{loaded}");
    assert_eq!(c.ok(&["run", "--rm", "busybox", "echo", "back"]), "back\n");
    let cid = c.ok(&["create", "busybox", "true"]);
    let exported = work.join("fs.tar");
    c.ok(&["export", "-o", exported.to_str().unwrap(), cid.trim()]);
    let imported = c.ok(&["import", exported.to_str().unwrap(), "flat:1"]);
    assert!(imported.starts_with("sha256:"), "{imported}");
    assert_eq!(
        c.ok(&["run", "--rm", "flat:1", "/bin/busybox", "echo", "flat"]),
        "flat\n"
    );
    c.ok(&["rm", cid.trim()]);

    // The follower saw it all happen.
    std::thread::sleep(Duration::from_millis(300));
    let seen = stop_by_pid(&mut events);
    for want in [
        "container create",
        "container attach",
        "container start",
        "container die",
        "container destroy",
        "container exec_create: sh ",
        "container exec_start: sh ",
        "container exec_die",
        "container kill",
        "container stop",
        "container restart",
        "container health_status: healthy",
        "container health_status: unhealthy",
        "container resize",
        "volume create",
        "volume mount",
        "volume unmount",
        "image save",
        "image tag",
        "image untag",
        "image delete",
        "image load",
        "image import",
        "container export",
    ] {
        assert!(
            seen.lines().any(|l| l.starts_with(want)),
            "no {want:?} event; the events were:\n{seen}"
        );
    }
    assert_eq!(c.ok(&["ps", "-aq"]), "");
}

#[test]
fn docker_cli_scenario() {
    scenario("docker");
}

#[test]
fn berth_cli_scenario() {
    scenario("berth");
}
