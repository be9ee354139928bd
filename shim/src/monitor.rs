//! Launching the process and staying with it: its output into the log
//! and to attach clients, client input into its stdin, the socket's
//! requests, reaping, the exit record, and the runtime's clean-up.
//!
//! One thread and one poll loop: the runtime creates containers only from
//! a single-threaded process, and a thread per client would cost the
//! memory a shim per container cannot spend.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_runtime::{Console, CreateOptions, ExecOptions, Runtime, Started};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, pipe2};
use oci_spec::runtime::Process;

use crate::conn::{Conn, Input, Kind, MAX_UNREAD, RequestLine};
use crate::daemon::Reporter;
use crate::error::{Error, Result, io, runtime, sys};
use crate::exit::{ExitRecord, now_rfc3339};
use crate::files::{self, write_atomic};
use crate::jsonlog::{JsonLog, Stream};
use crate::proto::{self, AttachRequest, Reply, Request, StateReply, Status};
use crate::{Config, Launch};

/// How long output may still come after the process is gone (from
/// processes that escaped it, before the runtime kills them).
const DRAIN: Duration = Duration::from_secs(2);
/// How long attach clients get to take the last output once the exit is
/// recorded.
const LINGER: Duration = Duration::from_secs(5);
/// How long the shim must have nothing to do before it sheds memory.
const SHED_AFTER_MS: u8 = 50;
/// Client input waiting for the process to read it; beyond this the
/// shim stops reading from stdin clients.
const STDIN_MAX: usize = 64 * 1024;
/// Connections at once; more are closed at once.
const MAX_CONNS: usize = 128;
/// What one read of the process's output takes (and so one frame's
/// largest payload).
const CHUNK: usize = 32 * 1024;
/// ^D: the terminal's end of input, what stdin-once sends to a tty.
const EOT: u8 = 0x04;

/// Run the process to its end. Reports its start (or the error) to
/// `report`; an error here is a start error, already recorded. `None`:
/// the process never started (a `start` request failed; recorded too).
pub fn run(cfg: &Config, mut report: Reporter) -> Result<Option<ExitRecord>> {
    std::fs::create_dir_all(&cfg.state_dir).map_err(io("creating", &cfg.state_dir))?;
    let pid = std::process::id().to_string();
    write_atomic(&cfg.state_dir, files::SHIM_PID, pid.as_bytes())?;
    // Orphans of the process come to us, not to a pid 1 that may not reap.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    // Blocked before any child exists, so no exit goes unnoticed; the
    // runtime clears the mask in the process before it execs.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(sys("blocking SIGCHLD"))?;
    let launched = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(sys("creating signalfd"))
        .and_then(|sfd| Shim::new(cfg, sfd))
        .and_then(|mut shim| shim.launch().map(|()| shim));
    let shim = match launched {
        Ok(s) => s,
        Err(e) => {
            let msg = e.one_line();
            tracing::error!(id = cfg.id, "start failed: {msg}");
            record_start_error(cfg, &msg);
            report.failed(&msg);
            return Err(e);
        }
    };
    report.started();
    drop(report);
    let mut shim = shim;
    shim.shed_pending = true;
    shim.serve()
}

fn record_start_error(cfg: &Config, msg: &str) {
    let _ = write_atomic(
        &cfg.state_dir,
        files::START_ERROR,
        format!("{msg}\n").as_bytes(),
    );
}

enum Phase {
    /// An exec waiting for `start`: nothing exists yet.
    Prepared,
    Created(Pid),
    Running(Pid),
    /// Ended; its output may still be draining.
    Exited(Pid, ExitRecord, Instant),
    /// A `start` request failed after the caller heard "ok".
    Failed,
}

/// One of the process's outputs: a pipe, or the pty master.
struct Source {
    stream: Stream,
    file: File,
    closed: bool,
}

/// What the process got: the shim's ends of its stdio.
struct Stdio {
    sources: Vec<Source>,
    stdin: Option<File>,
    tty: Option<OwnedFd>,
}

/// Which fd a poll entry is.
#[derive(Clone, Copy)]
enum Slot {
    Signal,
    Listener,
    Source(usize),
    Stdin,
    Conn(usize),
}

struct Shim<'a> {
    cfg: &'a Config,
    rt: Runtime,
    sfd: SignalFd,
    listener: UnixListener,
    sock_path: PathBuf,
    conns: Vec<Conn>,
    next_conn: u64,
    phase: Phase,
    /// The exec's process, read at launch, used at start.
    process: Option<Process>,
    sources: Vec<Source>,
    /// Where client input goes: the stdin pipe or the pty master.
    stdin: Option<File>,
    stdin_buf: Vec<u8>,
    /// Close the stdin pipe once `stdin_buf` is written.
    stdin_closing: bool,
    /// No more client input is taken (stdin closed or ^D sent).
    stdin_done: bool,
    /// The first client that attached with stdin: stdin-once follows it.
    stdin_owner: Option<u64>,
    tty: Option<OwnedFd>,
    /// The last size asked for, applied when the pty comes.
    size: Option<(u16, u16)>,
    log: Option<JsonLog>,
    log_failed: bool,
    deleted: bool,
    /// When the end was recorded: attach clients get their last output
    /// from here on, for up to [`LINGER`].
    finished: Option<Instant>,
    /// Memory to give back once nothing waits on the shim (see
    /// [`crate::memory::shed`]): reading its smaps costs a client that
    /// waits for a reply a millisecond.
    shed_pending: bool,
}

impl Drop for Shim<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sock_path);
    }
}

impl<'a> Shim<'a> {
    fn new(cfg: &'a Config, sfd: SignalFd) -> Result<Shim<'a>> {
        let sock_path = cfg.socket_path();
        let listener = listen(&sock_path)?;
        let log = match cfg.log_path() {
            Some(p) => {
                let log = JsonLog::open(&p)?;
                Some(match cfg.log_max_size {
                    Some(size) => log.with_rotation(size, cfg.log_max_files),
                    None => log,
                })
            }
            None => None,
        };
        Ok(Shim {
            cfg,
            rt: Runtime::new(&cfg.runtime_root),
            sfd,
            listener,
            sock_path,
            conns: Vec::new(),
            next_conn: 0,
            phase: Phase::Prepared,
            process: None,
            sources: Vec::new(),
            stdin: None,
            stdin_buf: Vec::new(),
            stdin_closing: false,
            stdin_done: false,
            stdin_owner: None,
            tty: None,
            size: None,
            log,
            log_failed: false,
            shed_pending: false,
            deleted: false,
            finished: None,
        })
    }

    fn exec_mode(&self) -> bool {
        matches!(self.cfg.launch, Launch::Exec { .. })
    }

    /// Create (and unless `--no-start`, start) the process.
    fn launch(&mut self) -> Result<()> {
        let cfg = self.cfg;
        match &cfg.launch {
            Launch::Create { bundle } => {
                check_terminal_in_bundle(bundle, cfg.tty)?;
                let opts = |console| CreateOptions {
                    bundle: bundle.clone(),
                    console,
                    ..Default::default()
                };
                let pid = self.spawn(|rt, console| rt.create(&cfg.id, &opts(console)))?;
                self.phase = Phase::Created(pid);
                tracing::info!(id = cfg.id, pid = pid.as_raw(), "container created");
            }
            Launch::Exec { process } => {
                let raw = std::fs::read(process).map_err(io("reading", process))?;
                let p = berth_runtime::config::parse_process(&raw, process)
                    .map_err(|e| runtime(&cfg.id)(e.into()))?;
                if p.terminal().unwrap_or(false) != cfg.tty {
                    return Err(terminal_mismatch(cfg.tty, process));
                }
                self.process = Some(p);
            }
        }
        if !cfg.no_start {
            self.start()?;
        }
        Ok(())
    }

    /// Let the process run: start the created container, or exec. On
    /// error nothing of the process is left.
    fn start(&mut self) -> Result<Pid> {
        let cfg = self.cfg;
        let pid = match self.phase {
            Phase::Created(pid) => {
                if let Err(e) = self.rt.start(&cfg.id) {
                    self.undo(pid);
                    return Err(runtime(&cfg.id)(e));
                }
                pid
            }
            Phase::Prepared => {
                let mut process = self.process.take().expect("an exec has its process");
                // The size asked for before start is the terminal's from
                // its first moment: resizing after the exec would race the
                // process's first look.
                if let Some((rows, cols)) = self.size {
                    let b = oci_spec::runtime::BoxBuilder::default()
                        .height(u64::from(rows))
                        .width(u64::from(cols))
                        .build()
                        .expect("both dimensions set");
                    process.set_console_size(Some(b));
                }
                self.spawn(|rt, console| {
                    let opts = ExecOptions {
                        console,
                        ..Default::default()
                    };
                    rt.exec(&cfg.id, &process, &opts)
                })?
            }
            Phase::Running(_) => return Err(Error::Invalid("already started".into())),
            Phase::Exited(..) | Phase::Failed => {
                return Err(Error::Invalid("the process has exited".into()));
            }
        };
        self.phase = Phase::Running(pid);
        tracing::info!(id = cfg.id, pid = pid.as_raw(), "process started");
        if cfg.no_start {
            self.shed_pending = true;
        }
        Ok(pid)
    }

    /// Make the process through `f` with the stdio `--stdin` / `--tty`
    /// ask for, take the shim's ends and record its pid.
    fn spawn(
        &mut self,
        f: impl FnOnce(&Runtime, Console) -> berth_runtime::Result<Started>,
    ) -> Result<Pid> {
        let cfg = self.cfg;
        let (pid, stdio) = if cfg.tty {
            let started = f(&self.rt, Console::Receive).map_err(runtime(&cfg.id))?;
            let pid = Pid::from_raw(started.pid);
            let Some(master) = started.console else {
                self.undo(pid);
                return Err(Error::Invalid(
                    "--tty: the process got no terminal (process.terminal is false)".into(),
                ));
            };
            match tty_stdio(master, cfg.stdin) {
                Ok(s) => (pid, s),
                Err(e) => {
                    self.undo(pid);
                    return Err(e);
                }
            }
        } else {
            pipe_stdio(cfg.stdin, |console| {
                f(&self.rt, console).map_err(runtime(&cfg.id))
            })?
        };
        if let Err(e) = write_atomic(
            &cfg.state_dir,
            files::INIT_PID,
            pid.as_raw().to_string().as_bytes(),
        ) {
            self.undo(pid);
            return Err(e);
        }
        self.sources = stdio.sources;
        self.stdin = stdio.stdin;
        self.tty = stdio.tty;
        if let (Some(t), Some((rows, cols))) = (&self.tty, self.size) {
            berth_runtime::tty::set_winsize(t.as_raw_fd(), rows, cols);
        }
        Ok(pid)
    }

    /// Remove a process that was made but cannot be kept, and reap it.
    fn undo(&self, pid: Pid) {
        if !self.exec_mode()
            && let Err(e) = self.rt.delete(&self.cfg.id, true)
        {
            tracing::warn!(id = self.cfg.id, "removing the container: {e}");
        }
        // Our child, not yet reaped: the pid is still its own, and the
        // wait below must not hang on a process the delete missed.
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
    }

    /// The loop, until the end is recorded and told to every client.
    fn serve(mut self) -> Result<Option<ExitRecord>> {
        let mut buf = vec![0u8; CHUNK];
        self.reap();
        loop {
            self.advance()?;
            // Clients told of the end with nothing left to send go now,
            // not after another poll's timeout.
            for c in &mut self.conns {
                if c.closing && c.unsent() == 0 {
                    c.dead = true;
                }
            }
            self.conns.retain(|c| !c.dead);
            if let Some(at) = self.finished
                && (self.conns.is_empty() || at.elapsed() > LINGER)
            {
                break;
            }
            let ready = self.wait()?;
            if ready.is_empty() && std::mem::take(&mut self.shed_pending) {
                crate::memory::shed();
            }
            for (slot, _) in &ready {
                match *slot {
                    Slot::Signal => {
                        while let Ok(Some(_)) = self.sfd.read_signal() {}
                        self.reap();
                    }
                    Slot::Source(i) => self.read_source(i, &mut buf),
                    Slot::Stdin => self.flush_stdin(),
                    Slot::Listener => self.accept(),
                    Slot::Conn(_) => {}
                }
            }
            self.sources.retain(|s| !s.closed);
            let mut conns = std::mem::take(&mut self.conns);
            for (slot, ev) in &ready {
                if let Slot::Conn(i) = *slot {
                    self.service(&mut conns[i], *ev, &mut buf);
                }
            }
            // Clients accepted in this round were added meanwhile.
            conns.append(&mut self.conns);
            for c in &mut conns {
                if c.closing && c.unsent() == 0 {
                    c.dead = true;
                }
            }
            conns.retain(|c| !c.dead);
            self.conns = conns;
            self.flush_stdin();
        }
        self.conns.clear();
        match std::mem::replace(&mut self.phase, Phase::Failed) {
            Phase::Exited(_, record, _) => Ok(Some(record)),
            _ => Ok(None),
        }
    }

    /// Poll for whatever can happen now.
    fn wait(&self) -> Result<Vec<(Slot, PollFlags)>> {
        let mut slots = vec![Slot::Signal, Slot::Listener];
        let mut fds = vec![
            PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
        ];
        for (i, s) in self.sources.iter().enumerate() {
            slots.push(Slot::Source(i));
            fds.push(PollFd::new(s.file.as_fd(), PollFlags::POLLIN));
        }
        if let Some(f) = &self.stdin
            && !self.stdin_buf.is_empty()
        {
            slots.push(Slot::Stdin);
            fds.push(PollFd::new(f.as_fd(), PollFlags::POLLOUT));
        }
        for (i, c) in self.conns.iter().enumerate() {
            let mut ev = PollFlags::empty();
            if self.wants_input(c) {
                ev |= PollFlags::POLLIN;
            }
            if c.unsent() > 0 {
                ev |= PollFlags::POLLOUT;
            }
            slots.push(Slot::Conn(i));
            fds.push(PollFd::new(c.sock.as_fd(), ev));
        }
        let timeout = if self.shed_pending {
            PollTimeout::from(SHED_AFTER_MS)
        } else if matches!(self.phase, Phase::Exited(..)) || self.finished.is_some() {
            PollTimeout::from(100u8)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(sys("poll")(e)),
        }
        Ok(slots
            .into_iter()
            .zip(
                fds.iter()
                    .map(|f| f.revents().unwrap_or(PollFlags::empty())),
            )
            .filter(|(_, r)| !r.is_empty())
            .collect())
    }

    /// Whether to read from `c` now: a request line, or attach input,
    /// unless input waits for a process that cannot take it yet.
    fn wants_input(&self, c: &Conn) -> bool {
        if !c.reading || c.dead || c.closing {
            return false;
        }
        match &c.kind {
            Kind::Request(_) => true,
            Kind::Replied => false,
            Kind::Attached(a) if a.stdin && self.cfg.stdin && !self.stdin_done => {
                self.stdin.is_some() && self.stdin_buf.len() < STDIN_MAX
            }
            // Read and dropped, to see the client's end.
            Kind::Attached(_) => true,
        }
    }

    /// Move on from the process's end: remove the container, and once
    /// its output is in, record the exit and let the clients go.
    fn advance(&mut self) -> Result<()> {
        if self.finished.is_some() {
            return Ok(());
        }
        let exit = match &self.phase {
            Phase::Exited(_, record, at) => (record.clone(), *at),
            Phase::Failed => {
                self.finish();
                return Ok(());
            }
            _ => return Ok(()),
        };
        if !self.deleted && !self.exec_mode() {
            // Whatever else is in the container goes with it.
            if let Err(e) = self.rt.delete(&self.cfg.id, true) {
                tracing::warn!(id = self.cfg.id, "removing the container: {e}");
            }
            self.deleted = true;
        }
        if !self.sources.is_empty() && exit.1.elapsed() < DRAIN {
            return Ok(());
        }
        self.sources.clear();
        if let Some(log) = &mut self.log {
            for stream in [Stream::Stdout, Stream::Stderr] {
                if let Err(e) = log.finish(stream) {
                    tracing::error!(id = self.cfg.id, "{e}");
                }
            }
        }
        let record = exit.0;
        write_atomic(
            &self.cfg.state_dir,
            files::EXIT,
            &serde_json::to_vec(&record).expect("json"),
        )?;
        tracing::info!(
            id = self.cfg.id,
            exit_code = record.exit_code,
            "process exited"
        );
        self.finish();
        Ok(())
    }

    /// Nothing more comes: attached clients close once their output is
    /// out.
    fn finish(&mut self) {
        self.stdin = None;
        self.stdin_buf = Vec::new();
        self.stdin_done = true;
        for c in &mut self.conns {
            if matches!(c.kind, Kind::Attached(_)) {
                c.closing = true;
                c.reading = false;
            }
        }
        self.finished = Some(Instant::now());
    }

    /// Collect every exited child; note the process's end.
    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(ws) => {
                    let (Phase::Created(pid) | Phase::Running(pid)) = self.phase else {
                        continue;
                    };
                    if ws.pid() == Some(pid)
                        && let Some(r) = ExitRecord::from_wait(ws, now_rfc3339())
                    {
                        tracing::debug!(id = self.cfg.id, code = r.exit_code, "reaped");
                        self.phase = Phase::Exited(pid, r, Instant::now());
                    }
                }
            }
        }
    }

    fn read_source(&mut self, i: usize, buf: &mut [u8]) {
        let s = &mut self.sources[i];
        let stream = s.stream;
        let got = match s.file.read(buf) {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return,
            // EIO: a pty whose other side is closed everywhere.
            Err(_) => None,
        };
        let written = match got {
            None => {
                s.closed = true;
                match &mut self.log {
                    Some(log) => log.finish(stream),
                    None => Ok(()),
                }
            }
            Some(n) => {
                self.broadcast(stream, &buf[..n]);
                match &mut self.log {
                    Some(log) => log.write(stream, &buf[..n]),
                    None => Ok(()),
                }
            }
        };
        // A full disk must not cost the process its exit record or
        // leave it behind: keep reading, say it once.
        if let Err(e) = written
            && !self.log_failed
        {
            tracing::error!(id = self.cfg.id, "{e}");
            self.log_failed = true;
        }
    }

    /// Give output to every attached client that asked for its stream.
    fn broadcast(&mut self, stream: Stream, data: &[u8]) {
        let tty = self.cfg.tty;
        let header = proto::frame_header(
            match stream {
                Stream::Stdout => proto::STDOUT,
                Stream::Stderr => proto::STDERR,
            },
            data.len(),
        );
        for c in &mut self.conns {
            let Kind::Attached(a) = &c.kind else { continue };
            // A terminal has one stream, which Docker calls stdout.
            let wanted = match stream {
                Stream::Stdout => a.stdout,
                Stream::Stderr => a.stderr,
            };
            if !wanted || c.dead {
                continue;
            }
            let parts: &[&[u8]] = if tty { &[data] } else { &[&header, data] };
            if !c.send(parts) {
                tracing::warn!(
                    id = self.cfg.id,
                    client = c.id,
                    "attach client dropped: it left more than {MAX_UNREAD} bytes unread"
                );
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    if self.conns.len() >= MAX_CONNS {
                        tracing::warn!(id = self.cfg.id, "too many connections: one refused");
                        continue;
                    }
                    if let Err(e) = s.set_nonblocking(true) {
                        tracing::warn!(id = self.cfg.id, "socket connection: {e}");
                        continue;
                    }
                    self.next_conn += 1;
                    self.conns.push(Conn::new(self.next_conn, s));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(
                        id = self.cfg.id,
                        "accepting on {}: {e}",
                        self.sock_path.display()
                    );
                    return;
                }
            }
        }
    }

    /// One connection's events: output out, input in, requests answered.
    fn service(&mut self, c: &mut Conn, ev: PollFlags, buf: &mut [u8]) {
        if ev.contains(PollFlags::POLLOUT) {
            c.flush();
        }
        let hangup = ev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR);
        // After a hang-up the rest of the input is bounded by the socket
        // buffer: take it even past the stdin limit.
        if c.reading && (ev.contains(PollFlags::POLLIN) || hangup) {
            match c.read(buf) {
                Input::None => {}
                Input::Data(n) => match &mut c.kind {
                    Kind::Request(line) => {
                        line.extend_from_slice(&buf[..n]);
                        self.request(c);
                    }
                    Kind::Attached(a) => {
                        let a = *a;
                        self.stdin_input(a, &buf[..n]);
                    }
                    Kind::Replied => {}
                },
                Input::Eof => match &mut c.kind {
                    Kind::Request(line) if line.is_empty() => c.dead = true,
                    // A last line without its newline is taken as it is.
                    Kind::Request(line) => {
                        line.push(b'\n');
                        self.request(c);
                    }
                    Kind::Attached(a) => {
                        let a = *a;
                        self.stdin_eof(c.id, a);
                    }
                    Kind::Replied => {}
                },
            }
        }
        if hangup && !c.reading {
            c.dead = true;
        }
    }

    /// Answer the request line of `c` if it is complete.
    fn request(&mut self, c: &mut Conn) {
        let RequestLine { line, rest } = match c.take_request() {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => return refuse(c, &e),
        };
        let req: Request = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => return refuse(c, &format!("bad request: {e}")),
        };
        tracing::debug!(id = self.cfg.id, client = c.id, "request {req:?}");
        match req {
            Request::Attach(a) => self.attach(c, a, &rest),
            Request::State => {
                let reply = self.state();
                c.send(&[&line_of(&reply)]);
                c.kind = Kind::Replied;
                c.closing = true;
            }
            other => {
                let reply = match self.op(other) {
                    Ok(r) => r,
                    Err(msg) => Reply::error(msg),
                };
                c.send(&[&line_of(&reply)]);
                c.kind = Kind::Replied;
                c.closing = true;
            }
        }
    }

    fn attach(&mut self, c: &mut Conn, a: AttachRequest, rest: &[u8]) {
        let reply = Reply {
            tty: Some(self.cfg.tty),
            ..Reply::ok()
        };
        c.send(&[&line_of(&reply)]);
        if self.finished.is_some() {
            // Nothing more will come: the client sees the end at once.
            c.kind = Kind::Replied;
            c.closing = true;
            return;
        }
        c.kind = Kind::Attached(a);
        if a.stdin && self.cfg.stdin && self.stdin_owner.is_none() {
            self.stdin_owner = Some(c.id);
        }
        if !rest.is_empty() {
            self.stdin_input(a, rest);
        }
    }

    /// start, resize and kill.
    fn op(&mut self, req: Request) -> Result<Reply, String> {
        match req {
            Request::Start => match self.phase {
                Phase::Running(_) => Err("already started".into()),
                Phase::Exited(..) | Phase::Failed => Err("the process has exited".into()),
                Phase::Prepared | Phase::Created(_) => self.start_request(),
            },
            Request::Resize { width, height } => {
                if !self.cfg.tty {
                    return Err("the process has no terminal to resize".into());
                }
                self.size = Some((height, width));
                if let Some(t) = &self.tty {
                    berth_runtime::tty::set_winsize(t.as_raw_fd(), height, width);
                }
                Ok(Reply::ok())
            }
            Request::Kill { signal } => {
                let sig = Signal::try_from(signal).map_err(|_| format!("bad signal {signal}"))?;
                let pid = match self.phase {
                    Phase::Created(pid) | Phase::Running(pid) => pid,
                    Phase::Prepared => return Err("the process has not started".into()),
                    Phase::Exited(..) | Phase::Failed => {
                        return Err("the process has exited".into());
                    }
                };
                // The process is our child and not reaped: its pid is
                // still its own.
                let sent = if self.exec_mode() {
                    nix::sys::signal::kill(pid, sig).map_err(|e| format!("kill {pid}: {e}"))
                } else {
                    self.rt
                        .kill(&self.cfg.id, sig, false)
                        .map_err(|e| runtime(&self.cfg.id)(e).one_line())
                };
                sent.map(|()| Reply::ok())
            }
            Request::Attach(_) | Request::State => unreachable!("answered by request()"),
        }
    }

    /// A start by request: its failure is the shim's end, recorded as a
    /// start error.
    fn start_request(&mut self) -> Result<Reply, String> {
        match self.start() {
            Ok(pid) => Ok(Reply {
                pid: Some(pid.as_raw()),
                ..Reply::ok()
            }),
            Err(e) => {
                let msg = e.one_line();
                tracing::error!(id = self.cfg.id, "start failed: {msg}");
                record_start_error(self.cfg, &msg);
                self.phase = Phase::Failed;
                Err(msg)
            }
        }
    }

    fn state(&self) -> StateReply {
        let (status, pid, exit) = match &self.phase {
            Phase::Prepared => (Status::Created, None, None),
            Phase::Created(p) => (Status::Created, Some(p.as_raw()), None),
            Phase::Running(p) => (Status::Running, Some(p.as_raw()), None),
            Phase::Exited(p, r, _) => (Status::Exited, Some(p.as_raw()), Some(r.clone())),
            Phase::Failed => (Status::Exited, None, None),
        };
        StateReply {
            ok: true,
            status,
            pid,
            exit,
            tty: self.cfg.tty,
            stdin: self.cfg.stdin,
        }
    }

    fn stdin_input(&mut self, a: AttachRequest, data: &[u8]) {
        if !a.stdin || !self.cfg.stdin || self.stdin_done {
            return;
        }
        self.stdin_buf.extend_from_slice(data);
        self.flush_stdin();
    }

    /// A client's input ended: with stdin-once, the first stdin client's
    /// end is the process's. A pipe is closed; a terminal, which cannot
    /// be closed for input only, gets ^D, which ends a read at a shell or
    /// `cat` as a user's would.
    fn stdin_eof(&mut self, client: u64, a: AttachRequest) {
        if !a.stdin
            || !self.cfg.stdin
            || !self.cfg.stdin_once
            || self.stdin_done
            || self.stdin_owner != Some(client)
        {
            return;
        }
        self.stdin_done = true;
        if self.cfg.tty {
            self.stdin_buf.push(EOT);
        } else {
            self.stdin_closing = true;
        }
        self.flush_stdin();
    }

    fn flush_stdin(&mut self) {
        let Some(f) = &mut self.stdin else {
            self.stdin_buf.clear();
            return;
        };
        let mut sent = 0;
        while sent < self.stdin_buf.len() {
            match f.write(&self.stdin_buf[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The process closed its stdin or is gone.
                    tracing::debug!(id = self.cfg.id, "stdin: {e}");
                    self.stdin = None;
                    self.stdin_done = true;
                    self.stdin_buf.clear();
                    return;
                }
            }
        }
        self.stdin_buf.drain(..sent);
        if self.stdin_buf.is_empty() && self.stdin_closing {
            self.stdin = None;
            self.stdin_closing = false;
        }
    }
}

fn line_of(reply: &impl serde::Serialize) -> Vec<u8> {
    let mut v = serde_json::to_vec(reply).expect("json of a reply");
    v.push(b'\n');
    v
}

fn refuse(c: &mut Conn, msg: &str) {
    c.send(&[&line_of(&Reply::error(msg))]);
    c.kind = Kind::Replied;
    c.reading = false;
    c.closing = true;
}

/// Bind the socket, mode 0600 from the start. A live shim's socket is
/// left alone; a dead one's is replaced.
fn listen(path: &Path) -> Result<UnixListener> {
    if std::fs::symlink_metadata(path).is_ok() {
        if UnixStream::connect(path).is_ok() {
            return Err(Error::Invalid(format!(
                "socket {} is in use by another shim",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(io("removing the stale socket", path))?;
    }
    let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let l = bound.map_err(io("binding the socket", path))?;
    l.set_nonblocking(true)
        .map_err(io("setting the socket non-blocking", path))?;
    Ok(l)
}

fn set_nonblocking(fd: &impl AsFd, what: &'static str) -> Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(sys(what))?;
    fcntl(
        fd,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(sys(what))?;
    Ok(())
}

/// The shim's ends of a terminal: the master, for output, input (with
/// `--stdin`) and resizing.
fn tty_stdio(master: OwnedFd, stdin: bool) -> Result<Stdio> {
    set_nonblocking(&master, "making the pty master non-blocking")?;
    let dup = |m: &OwnedFd| {
        m.try_clone()
            .map(File::from)
            .map_err(io("duplicating", "the pty master"))
    };
    Ok(Stdio {
        sources: vec![Source {
            stream: Stream::Stdout,
            file: dup(&master)?,
            closed: false,
        }],
        stdin: if stdin { Some(dup(&master)?) } else { None },
        tty: Some(master),
    })
}

/// Puts /dev/null back on the standard descriptors when dropped.
struct StdioBack(OwnedFd);

impl Drop for StdioBack {
    fn drop(&mut self) {
        for fd in [0, 1, 2] {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(self.0.as_raw_fd(), fd) };
        }
    }
}

fn dup_onto(from: &impl AsRawFd, to: i32) -> Result<()> {
    // SAFETY: dup2 onto a standard descriptor.
    if unsafe { libc::dup2(from.as_raw_fd(), to) } < 0 {
        return Err(sys("redirecting the process's stdio")(Errno::last()));
    }
    Ok(())
}

/// Pipes for stdout and stderr, and for stdin with `stdin` (else
/// /dev/null). The runtime gives the process our stdio: make it the
/// pipes for the call to `f`, and only then; our copies of the process's
/// ends go, so that its exit is the pipes' end.
fn pipe_stdio(stdin: bool, f: impl FnOnce(Console) -> Result<Started>) -> Result<(Pid, Stdio)> {
    let null: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(io("opening", "/dev/null"))?
        .into();
    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("creating the stdout pipe"))?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("creating the stderr pipe"))?;
    let (in_r, in_w) = if stdin {
        let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("creating the stdin pipe"))?;
        (r, Some(w))
    } else {
        (
            null.try_clone().map_err(io("duplicating", "/dev/null"))?,
            None,
        )
    };
    for fd in [&out_r, &err_r] {
        set_nonblocking(fd, "making an output pipe non-blocking")?;
    }
    if let Some(w) = &in_w {
        set_nonblocking(w, "making the stdin pipe non-blocking")?;
    }
    let started = {
        let _back = StdioBack(null);
        dup_onto(&in_r, 0)?;
        dup_onto(&out_w, 1)?;
        dup_onto(&err_w, 2)?;
        drop((in_r, out_w, err_w));
        f(Console::Inherit)?
    };
    let source = |stream, fd: OwnedFd| Source {
        stream,
        file: fd.into(),
        closed: false,
    };
    Ok((
        Pid::from_raw(started.pid),
        Stdio {
            sources: vec![source(Stream::Stdout, out_r), source(Stream::Stderr, err_r)],
            stdin: in_w.map(File::from),
            tty: None,
        },
    ))
}

fn terminal_mismatch(tty: bool, file: &Path) -> Error {
    Error::Invalid(if tty {
        format!("--tty, but process.terminal is false in {}", file.display())
    } else {
        format!(
            "process.terminal is true in {}: the shim needs --tty",
            file.display()
        )
    })
}

/// Say plainly when `--tty` and the bundle's process.terminal disagree;
/// an unreadable config is left for the runtime to report.
fn check_terminal_in_bundle(bundle: &Path, tty: bool) -> Result<()> {
    let path = bundle.join("config.json");
    let Ok(raw) = std::fs::read(&path) else {
        return Ok(());
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&raw) else {
        return Ok(());
    };
    let terminal = v["process"]["terminal"].as_bool().unwrap_or(false);
    if terminal != tty {
        return Err(terminal_mismatch(tty, &path));
    }
    Ok(())
}
