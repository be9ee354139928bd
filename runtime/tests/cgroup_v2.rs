//! cgroup v2 manager against the real kernel. Needs root and a pure
//! cgroup2 hierarchy with the memory controller at /sys/fs/cgroup: run
//! the test binary under /work/shared/vm/run-in-vm (with `--disk 16M`, so
//! there is a block device to throttle). Fails, rather than skips,
//! anywhere else.
//!
//! Every test works below its own `berth-test-<pid>-<n>` cgroup and a
//! [`Guard`] kills its children and removes whatever is left of that
//! cgroup, even when the test fails.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use berth_runtime::cgroups::v2::V2Manager;
use berth_runtime::cgroups::{
    AnyManager, CgroupError, CgroupManager, CgroupSetup, CgroupState, FreezerState, ManagerKind,
    default_device_rules, detect_setup,
};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use oci_spec::runtime::LinuxResources;

const ROOT: &str = "/sys/fs/cgroup";

// ---------------------------------------------------------------- helpers

fn require_v2() {
    let ctrl = fs::read_to_string(Path::new(ROOT).join("cgroup.controllers")).unwrap_or_default();
    assert!(
        ctrl.split_whitespace().any(|c| c == "memory"),
        "cgroup_v2 tests need a cgroup2 hierarchy with the memory controller at {ROOT}: \
         run under /work/shared/vm/run-in-vm"
    );
    assert!(
        nix::unistd::geteuid().is_root(),
        "cgroup_v2 tests must run as root"
    );
    assert_eq!(detect_setup().unwrap(), CgroupSetup::Unified);
}

fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "berth-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn read(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
        .trim()
        .to_owned()
}

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("resources json")
}

/// This process's v2 cgroup.
fn own_cgroup() -> String {
    cgroup_of(Pid::this())
}

fn cgroup_of(pid: Pid) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no 0:: line in /proc/{pid}/cgroup: {text}"))
        .to_owned()
}

/// The cgroup path (as /proc/<pid>/cgroup shows it) of a directory.
fn cgroup_path(dir: &Path) -> String {
    format!("/{}", dir.strip_prefix(ROOT).unwrap().display())
}

/// Kills registered children and removes the test's top cgroup (with its
/// subtree) on drop.
struct Guard {
    top: PathBuf,
    children: Vec<Pid>,
}

impl Guard {
    fn new(m: &V2Manager, top: &str) -> Self {
        let t = m
            .path()
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == top))
            .unwrap_or_else(|| panic!("{} is not below {top}", m.path().display()));
        Guard {
            top: t.to_path_buf(),
            children: Vec::new(),
        }
    }

    fn spawn(&mut self, action: Action) -> Child {
        let c = spawn(action);
        self.children.push(c.pid);
        c
    }

    fn wait(&mut self, pid: Pid) -> WaitStatus {
        let st = waitpid(pid, None).expect("waitpid");
        self.children.retain(|&p| p != pid);
        st
    }

    /// Wait until the child stops itself (see [`Action::Hold`]).
    fn wait_stopped(&mut self, pid: Pid) {
        let st = waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WUNTRACED)).expect("waitpid");
        assert_eq!(st, WaitStatus::Stopped(pid, Signal::SIGSTOP));
    }

    fn kill(&mut self, pid: Pid) {
        let _ = kill(pid, Signal::SIGKILL);
        self.wait(pid);
    }
}

fn rmdir_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    for _ in 0..100 {
        match fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => return,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SIGKILL reaches frozen tasks on v2.
        for &pid in &self.children {
            let _ = kill(pid, Signal::SIGKILL);
        }
        for &pid in &self.children {
            let _ = waitpid(pid, None);
        }
        rmdir_tree(&self.top);
    }
}

#[derive(Clone, Copy)]
enum Action {
    /// Sleep until killed.
    Pause,
    /// Map and touch this many bytes, then exit 0.
    Touch(usize),
    /// Try to fork: exit 42 if fork fails with EAGAIN, 10 if it works.
    Fork,
    /// Map and touch this many bytes, stop (SIGSTOP) to tell the parent,
    /// then sleep until killed.
    Hold(usize),
    /// Busy-loop until killed.
    Spin,
    /// Read this many bytes (a multiple of 4096) from the file at this
    /// path with O_DIRECT, so that they reach the block layer; exit 0.
    ReadDirect(*const libc::c_char, usize),
    /// open(path, flags): exit 0 if it works, else with the errno.
    Open(*const libc::c_char, libc::c_int),
    /// mknod(path, S_IFCHR, dev): exit 0 if it works, else with the errno.
    Mknod(*const libc::c_char, libc::dev_t),
}

/// A child blocked until `release`; it runs only async-signal-safe code
/// (the test harness is multi-threaded).
struct Child {
    pid: Pid,
    go: std::os::fd::OwnedFd,
}

impl Child {
    fn release(&self) {
        nix::unistd::write(&self.go, b"x").expect("release child");
    }
}

/// Runs in a forked child: wait for the parent's go, then act.
unsafe fn child_main(rfd: i32, action: Action) -> ! {
    unsafe {
        let mut b = 0u8;
        if libc::read(rfd, (&raw mut b).cast(), 1) != 1 {
            libc::_exit(3);
        }
        match action {
            Action::Pause => loop {
                libc::pause();
            },
            Action::Touch(n) => {
                touch(n);
                libc::_exit(0)
            }
            Action::Hold(n) => {
                touch(n);
                libc::raise(libc::SIGSTOP);
                loop {
                    libc::pause();
                }
            }
            Action::Spin => loop {
                std::hint::spin_loop();
            },
            Action::ReadDirect(path, n) => {
                let fd = libc::open(path, libc::O_RDONLY | libc::O_DIRECT);
                if fd < 0 {
                    libc::_exit(2);
                }
                let buf = touch(n);
                let mut done = 0;
                while done < n {
                    let r = libc::read(fd, buf.add(done).cast(), n - done);
                    if r <= 0 {
                        libc::_exit(4);
                    }
                    done += r as usize;
                }
                libc::_exit(0)
            }
            Action::Open(path, flags) => {
                if libc::open(path, flags) >= 0 {
                    libc::_exit(0);
                }
                libc::_exit(*libc::__errno_location())
            }
            Action::Mknod(path, dev) => {
                if libc::mknod(path, libc::S_IFCHR | 0o600, dev) == 0 {
                    libc::_exit(0);
                }
                libc::_exit(*libc::__errno_location())
            }
            Action::Fork => {
                let r = libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0);
                if r == 0 {
                    libc::_exit(0);
                }
                if r > 0 {
                    let mut st = 0;
                    libc::waitpid(r as libc::pid_t, &mut st, 0);
                    libc::_exit(10);
                }
                libc::_exit(if *libc::__errno_location() == libc::EAGAIN {
                    42
                } else {
                    11
                })
            }
        }
    }
}

/// Map `n` bytes and write to every page; in a forked child (exits 2 if
/// the mapping fails).
unsafe fn touch(n: usize) -> *mut u8 {
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            n,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            libc::_exit(2);
        }
        let mut i = 0;
        while i < n {
            std::ptr::write_volatile(p.cast::<u8>().add(i), 1);
            i += 4096;
        }
        p.cast()
    }
}

fn spawn(action: Action) -> Child {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
    // SAFETY: the child only calls async-signal-safe functions and _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => unsafe {
            libc::close(wfd);
            child_main(rfd, action)
        },
        ForkResult::Parent { child } => {
            drop(r);
            Child { pid: child, go: w }
        }
    }
}

/// struct clone_args, CLONE_ARGS_SIZE_VER2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Like [`spawn`] (with `Pause`), but born in the cgroup of `cgroup_fd`.
fn spawn_into(cgroup_fd: i32) -> Child {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_fd as u64,
        ..Default::default()
    };
    // SAFETY: without CLONE_VM the child gets a copy of this stack, as with
    // fork; it only calls async-signal-safe functions and _exit.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &raw const args,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        0 => unsafe {
            libc::close(wfd);
            child_main(rfd, Action::Pause)
        },
        pid if pid > 0 => {
            drop(r);
            Child {
                pid: Pid::from_raw(pid as i32),
                go: w,
            }
        }
        _ => panic!("clone3: {}", std::io::Error::last_os_error()),
    }
}

fn block_device() -> (String, String) {
    let mut devs: Vec<_> = fs::read_dir("/sys/block")
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let dev = fs::read_to_string(e.path().join("dev")).ok()?;
                    Some((name, dev.trim().to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    devs.sort_by_key(|(n, _)| (n.starts_with("loop") || n.starts_with("zram"), n.clone()));
    devs.into_iter()
        .next()
        .expect("no block device in /sys/block: pass --disk 16M to run-in-vm")
}

fn controllers_of(dir: &Path, file: &str) -> Vec<String> {
    read(&dir.join(file))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------- tests

#[test]
fn nested_create_enables_controllers_and_removes_only_its_dirs() {
    require_v2();
    let top = unique();
    let mut a = V2Manager::new(Path::new(&format!("/{top}/pod/a"))).unwrap();
    let mut b = V2Manager::new(Path::new(&format!("/{top}/pod/b"))).unwrap();
    let _g = Guard::new(&a, &top);

    a.create(None).unwrap();
    let t = Path::new(ROOT).join(&top);
    let CgroupState::V2(s) = a.state() else {
        panic!("v2 state expected")
    };
    assert_eq!(s.created, [t.clone(), t.join("pod"), t.join("pod/a")]);
    let offered = controllers_of(Path::new(ROOT), "cgroup.controllers");
    for dir in [Path::new(ROOT), &t, &t.join("pod")] {
        let enabled = controllers_of(dir, "cgroup.subtree_control");
        for c in ["cpu", "cpuset", "io", "memory", "pids", "hugetlb"] {
            if offered.iter().any(|o| o == c) {
                assert!(enabled.iter().any(|e| e == c), "{c} in {}", dir.display());
            }
        }
    }
    // So the leaf has the controllers' files.
    let leaf = controllers_of(a.path(), "cgroup.controllers");
    assert!(leaf.iter().any(|c| c == "memory"), "{leaf:?}");
    assert!(a.path().join("pids.max").exists());

    let mounts = a.container_mounts();
    assert_eq!(mounts.len(), 1);
    assert_eq!(
        (
            mounts[0].subdir.as_str(),
            mounts[0].fstype.as_str(),
            mounts[0].data.as_str()
        ),
        ("", "cgroup2", "")
    );
    assert_eq!(mounts[0].host_path, a.path());

    b.create(None).unwrap();
    let CgroupState::V2(sb) = b.state() else {
        panic!("v2 state expected")
    };
    assert_eq!(sb.created, [t.join("pod/b")]);

    a.remove().unwrap();
    assert!(!a.path().exists());
    assert!(b.path().is_dir(), "shared parent kept for b");
    b.remove().unwrap();
    assert!(!b.path().exists());
    assert!(t.join("pod").is_dir(), "b never owned pod");
}

#[test]
fn relative_path_goes_below_own_cgroup_and_add_task_moves_a_child() {
    require_v2();
    let top = unique();
    let mut m = V2Manager::new(Path::new(&format!("{top}/c"))).unwrap();
    let mut g = Guard::new(&m, &top);
    let want = Path::new(ROOT)
        .join(own_cgroup().trim_start_matches('/'))
        .join(&top)
        .join("c");
    assert_eq!(m.path(), want);
    m.create(None).unwrap();

    let child = g.spawn(Action::Pause);
    m.add_task(child.pid).unwrap();
    assert_eq!(cgroup_of(child.pid), cgroup_path(m.path()));
    assert_eq!(m.pids().unwrap(), [child.pid]);

    let e = m.remove().unwrap_err();
    assert!(matches!(e, CgroupError::Remove { .. }), "{e}");
    g.kill(child.pid);
    m.remove().unwrap();
    assert!(!m.path().exists());
    assert!(!m.path().parent().unwrap().exists());
}

#[test]
fn clone_into_cgroup_uses_the_dir_fd() {
    require_v2();
    let top = unique();
    let mut m =
        AnyManager::new(ManagerKind::Auto, Some(Path::new(&format!("/{top}"))), "x").unwrap();
    let AnyManager::V2(v2) = &m else {
        panic!("expected a v2 manager, got {m:?}")
    };
    let mut g = Guard::new(v2, &top);
    m.create(None).unwrap();
    let placement = m.placement().unwrap();
    let fd = placement
        .clone_into
        .as_ref()
        .expect("a v2 placement clones into the cgroup")
        .as_raw_fd();
    let child = spawn_into(fd);
    g.children.push(child.pid);
    assert_eq!(cgroup_of(child.pid), format!("/{top}"));
    assert_eq!(m.pids().unwrap(), [child.pid]);
    g.kill(child.pid);
    m.remove().unwrap();
}

#[test]
fn pids_include_sub_cgroups_and_remove_takes_them() {
    require_v2();
    let top = unique();
    let mut m = V2Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    m.create(None).unwrap();
    let c1 = g.spawn(Action::Pause);
    let c2 = g.spawn(Action::Pause);
    let sub = m.path().join("inner");
    fs::create_dir(&sub).unwrap();
    m.add_task(c1.pid).unwrap();
    fs::write(sub.join("cgroup.procs"), c2.pid.to_string()).unwrap();
    let mut pids = m.pids().unwrap();
    pids.sort();
    let mut want = vec![c1.pid, c2.pid];
    want.sort();
    assert_eq!(pids, want);
    g.kill(c1.pid);
    g.kill(c2.pid);
    m.remove().unwrap();
    assert!(!m.path().exists());
}

#[test]
fn resources_are_written_and_read_back() {
    require_v2();
    let top = unique();
    let mut m = V2Manager::new(Path::new(&top)).unwrap();
    let _g = Guard::new(&m, &top);
    let (dev_name, dev) = block_device();
    let (major, minor) = dev.split_once(':').unwrap();
    let mib = 1i64 << 20;
    let json = format!(
        r#"{{
        "memory": {{"limit": {limit}, "reservation": {res}, "swap": {swap}}},
        "cpu": {{"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0", "idle": 0}},
        "pids": {{"limit": 42}},
        "blockIO": {{"weight": 300,
            "throttleReadBpsDevice": [{{"major": {major}, "minor": {minor}, "rate": 1048576}}],
            "throttleWriteIOPSDevice": [{{"major": {major}, "minor": {minor}, "rate": 77}}]}},
        "hugepageLimits": [{{"pageSize": "2MB", "limit": 4194304}}],
        "unified": {{"memory.high": "{high}"}}
    }}"#,
        limit = 64 * mib,
        res = 32 * mib,
        swap = 128 * mib,
        high = 48 * mib,
    );
    let mut r = resources(&json);
    // Allow rules only: a device filter that lets everything through.
    r.set_devices(Some(default_device_rules()));
    m.create(Some(&r)).unwrap();
    let p = m.path();
    assert_eq!(read(&p.join("memory.max")), (64 * mib).to_string());
    assert_eq!(read(&p.join("memory.low")), (32 * mib).to_string());
    if p.join("memory.swap.max").exists() {
        assert_eq!(read(&p.join("memory.swap.max")), (64 * mib).to_string());
    }
    assert_eq!(read(&p.join("memory.high")), (48 * mib).to_string());
    assert_eq!(read(&p.join("memory.oom.group")), "0", "not set by default");
    assert_eq!(read(&p.join("cpu.weight")), "20");
    assert_eq!(read(&p.join("cpu.max")), "50000 100000");
    assert_eq!(read(&p.join("cpuset.cpus")), "0");
    assert_eq!(read(&p.join("cpuset.mems")), "0");
    assert_eq!(read(&p.join("pids.max")), "42");
    assert_eq!(read(&p.join("hugetlb.2MB.max")), "4194304");
    if p.join("io.weight").exists() {
        assert_eq!(read(&p.join("io.weight")), "default 2930");
    } else if p.join("io.bfq.weight").exists() {
        assert!(read(&p.join("io.bfq.weight")).ends_with("300"));
    }
    assert_eq!(
        read(&p.join("io.max")),
        format!("{dev} rbps=1048576 wbps=max riops=max wiops=77"),
        "io.max on {dev_name}"
    );

    // cpu.max: a lone period keeps the quota, quota <= 0 is "max".
    m.apply(&resources(r#"{"cpu":{"period":200000}}"#)).unwrap();
    assert_eq!(read(&p.join("cpu.max")), "50000 200000");
    m.apply(&resources(
        r#"{"cpu":{"quota":-1},"pids":{"limit":0},"memory":{"limit":-1}}"#,
    ))
    .unwrap();
    assert_eq!(read(&p.join("cpu.max")), "max 200000");
    assert_eq!(read(&p.join("pids.max")), "max");
    assert_eq!(read(&p.join("memory.max")), "max");
    if p.join("memory.swap.max").exists() {
        assert_eq!(read(&p.join("memory.swap.max")), "max");
    }

    // Bad input is named.
    let e = m
        .apply(&resources(r#"{"unified":{"memory.nonexistent":"1"}}"#))
        .unwrap_err();
    assert!(
        matches!(&e, CgroupError::InvalidResource { field, .. } if field == "unified.memory.nonexistent"),
        "{e}"
    );
    let e = m
        .apply(&resources(r#"{"unified":{"../cgroup.procs":"1"}}"#))
        .unwrap_err();
    assert!(matches!(e, CgroupError::InvalidResource { .. }), "{e}");
    let e = m
        .apply(&resources(
            r#"{"hugepageLimits":[{"pageSize":"3MB","limit":1}]}"#,
        ))
        .unwrap_err();
    assert!(matches!(e, CgroupError::InvalidResource { .. }), "{e}");
    let e = m
        .apply(&resources(
            r#"{"memory":{"limit":67108864,"swap":1048576}}"#,
        ))
        .unwrap_err();
    assert!(matches!(e, CgroupError::InvalidResource { .. }), "{e}");

    m.remove().unwrap();
    assert!(!p.exists());
}

#[test]
fn missing_controller_is_named() {
    require_v2();
    let top = unique();
    // pids is not enabled in top's subtree_control, so the leaf has no
    // pids.max.
    let mut parent = V2Manager::new(Path::new(&top)).unwrap();
    let _g = Guard::new(&parent, &top);
    parent.create(None).unwrap();
    let leaf = parent.path().join("c");
    fs::write(parent.path().join("cgroup.subtree_control"), "-pids").unwrap();
    fs::create_dir(&leaf).unwrap();
    let m = V2Manager::from_state(&berth_runtime::cgroups::v2::V2State {
        mount_point: ROOT.into(),
        path: leaf.clone(),
        created: vec![leaf.clone()],
    });
    let e = m.apply(&resources(r#"{"pids":{"limit":5}}"#)).unwrap_err();
    assert!(
        matches!(&e, CgroupError::MissingController(c) if c == "pids"),
        "{e}"
    );
    m.remove().unwrap();
    parent.remove().unwrap();
}

#[test]
fn failed_create_leaves_nothing_behind() {
    require_v2();
    let top = unique();
    let mut m = V2Manager::new(Path::new(&format!("/{top}/c"))).unwrap();
    let _g = Guard::new(&m, &top);
    let e = m
        .create(Some(&resources(r#"{"cpu":{"cpus":"4096-4097"}}"#)))
        .unwrap_err();
    assert!(matches!(e, CgroupError::Write { .. }), "{e}");
    assert!(!Path::new(ROOT).join(&top).exists());
}

#[test]
fn memory_limit_gets_a_hog_oom_killed() {
    require_v2();
    let top = unique();
    let mut m = V2Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    let limit = 32i64 << 20;
    // swap == limit: no swap at all, so the hog cannot page out.
    m.create(Some(&resources(&format!(
        r#"{{"memory":{{"limit":{limit},"swap":{limit}}}}}"#
    ))))
    .unwrap();
    let child = g.spawn(Action::Touch(64 << 20));
    m.add_task(child.pid).unwrap();
    child.release();
    assert_eq!(
        g.wait(child.pid),
        WaitStatus::Signaled(child.pid, Signal::SIGKILL, false)
    );
    let events = read(&m.path().join("memory.events"));
    let kills: u64 = events
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(kills >= 1, "{events}");
    m.remove().unwrap();
}

#[test]
fn pids_limit_makes_fork_fail() {
    require_v2();
    let top = unique();
    let mut m = V2Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    m.create(Some(&resources(r#"{"pids":{"limit":1}}"#)))
        .unwrap();
    let child = g.spawn(Action::Fork);
    m.add_task(child.pid).unwrap();
    child.release();
    assert_eq!(g.wait(child.pid), WaitStatus::Exited(child.pid, 42));

    m.apply(&resources(r#"{"pids":{"limit":-1}}"#)).unwrap();
    let child = g.spawn(Action::Fork);
    m.add_task(child.pid).unwrap();
    child.release();
    assert_eq!(g.wait(child.pid), WaitStatus::Exited(child.pid, 10));
    m.remove().unwrap();
}

#[test]
fn freeze_and_thaw() {
    require_v2();
    let top = unique();
    let mut m = V2Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    m.create(None).unwrap();
    let child = g.spawn(Action::Pause);
    m.add_task(child.pid).unwrap();
    child.release();
    let events = m.path().join("cgroup.events");
    assert!(!m.frozen().unwrap());

    m.freeze(FreezerState::Frozen).unwrap();
    assert!(read(&events).lines().any(|l| l == "frozen 1"));
    assert_eq!(read(&m.path().join("cgroup.freeze")), "1");
    assert!(m.frozen().unwrap());

    m.freeze(FreezerState::Thawed).unwrap();
    assert!(read(&events).lines().any(|l| l == "frozen 0"));
    assert!(!m.frozen().unwrap());

    g.kill(child.pid);
    m.remove().unwrap();
}

#[test]
fn state_round_trip_lets_another_instance_remove() {
    require_v2();
    let top = unique();
    let path = format!("/{top}/x/y");
    let mut m = AnyManager::new(ManagerKind::Auto, Some(Path::new(&path)), "ignored").unwrap();
    let AnyManager::V2(v2) = &m else {
        panic!("expected a v2 manager, got {m:?}")
    };
    let _g = Guard::new(v2, &top);
    m.create(Some(&resources(r#"{"memory":{"limit":67108864}}"#)))
        .unwrap();
    let json = serde_json::to_string(&m.state()).unwrap();
    drop(m);

    let state: CgroupState = serde_json::from_str(&json).unwrap();
    let again = AnyManager::from_state(&state);
    assert!(
        again.placement().unwrap().clone_into.is_some(),
        "placement works from state"
    );
    let leaf = Path::new(ROOT).join(path.trim_start_matches('/'));
    assert_eq!(read(&leaf.join("memory.max")), "67108864");
    again.remove().unwrap();
    assert!(!Path::new(ROOT).join(&top).exists(), "{json}");
}

// ---------------------------------------------------------------- stats

/// Poll `f` every 20 ms until it gives a value; panic with `what` after
/// `secs` seconds (generous: the guest runs under emulation).
fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const MIB: u64 = 1 << 20;

#[test]
fn stats_follow_memory_and_pids() {
    require_v2();
    let top = unique();
    let mut m = V2Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    m.create(Some(&resources(&format!(
        r#"{{"memory":{{"limit":{}}},"pids":{{"limit":100}}}}"#,
        256 * MIB
    ))))
    .unwrap();
    let before = m.stats().unwrap();
    assert_eq!(before.memory.limit, Some(256 * MIB));
    assert_eq!((before.pids.current, before.pids.limit), (0, Some(100)));
    assert_eq!((before.memory.oom_events, before.memory.oom_kills), (0, 0));
    assert_eq!(before.memory.failcnt, None);

    let child = g.spawn(Action::Hold(64 << 20));
    m.add_task(child.pid).unwrap();
    child.release();
    g.wait_stopped(child.pid);
    let after = m.stats().unwrap();
    assert!(
        after.memory.usage >= before.memory.usage + 48 * MIB,
        "{:?} after {:?}",
        after.memory,
        before.memory
    );
    assert_eq!(after.pids.current, 1);
    assert!(after.memory.rss >= 48 * MIB, "{:?}", after.memory);
    assert!(after.memory.raw.contains_key("anon"));
    if m.path().join("memory.peak").exists() {
        assert!(after.memory.max_usage.unwrap() >= after.memory.usage);
    }
    if m.path().join("memory.swap.current").exists() {
        assert!(after.memory.swap_usage.is_some());
    }
    assert!(after.cpu.usage_ns > 0);

    let again = AnyManager::from_state(&m.state());
    let s = again.stats().unwrap();
    assert_eq!(s.pids.current, 1);
    assert!(s.memory.usage >= 48 * MIB);

    g.kill(child.pid);
    m.remove().unwrap();
    let e = m.stats().unwrap_err();
    assert!(
        matches!(&e, CgroupError::Gone { path } if path == m.path()),
        "{e}"
    );
}

#[test]
fn stats_count_block_io() {
    require_v2();
    let (name, dev) = block_device();
    let node = std::ffi::CString::new(format!("/dev/{name}")).unwrap();
    let (major, minor) = dev.split_once(':').unwrap();
    let (major, minor): (u64, u64) = (major.parse().unwrap(), minor.parse().unwrap());
    let top = unique();
    let mut m = V2Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    m.create(None).unwrap();
    let child = g.spawn(Action::ReadDirect(node.as_ptr(), MIB as usize));
    m.add_task(child.pid).unwrap();
    child.release();
    assert_eq!(g.wait(child.pid), WaitStatus::Exited(child.pid, 0));
    let s = m.stats().unwrap();
    let d =
        s.io.devices
            .iter()
            .find(|d| (d.major, d.minor) == (major, minor))
            .unwrap_or_else(|| panic!("no {dev} in {:?}", s.io));
    assert!(d.read_bytes >= MIB, "{d:?}");
    assert!(d.read_ops >= 1, "{d:?}");
    assert_eq!(d.write_bytes, 0, "{d:?}");
    m.remove().unwrap();
}

#[test]
fn cpu_stats_grow_and_show_throttling() {
    require_v2();
    let top = unique();
    let mut m = V2Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    // 10% of one CPU, in 10 ms periods so that throttling shows quickly.
    m.create(Some(&resources(r#"{"cpu":{"quota":1000,"period":10000}}"#)))
        .unwrap();
    assert_eq!(m.stats().unwrap().cpu.usage_ns, 0);
    let child = g.spawn(Action::Spin);
    m.add_task(child.pid).unwrap();
    child.release();
    let s1 = wait_for("throttled periods and time", 60, || {
        let s = m.stats().unwrap();
        let c = &s.cpu;
        (c.throttled_periods > 0 && c.throttled_ns > 0 && c.usage_ns > 0).then_some(s)
    });
    let c = &s1.cpu;
    assert!(c.periods >= c.throttled_periods, "{c:?}");
    assert!(c.user_ns + c.system_ns > 0, "{c:?}");
    let s2 = wait_for("cpu usage to grow by 10 ms", 60, || {
        let s = m.stats().unwrap();
        (s.cpu.usage_ns >= s1.cpu.usage_ns + 10_000_000).then_some(s)
    });
    assert!(s2.cpu.user_ns > s1.cpu.user_ns, "{:?}", s2.cpu);
    let t0 = std::time::Instant::now();
    let u0 = s2.cpu.usage_ns;
    std::thread::sleep(Duration::from_millis(500));
    let used = m.stats().unwrap().cpu.usage_ns - u0;
    let wall = t0.elapsed().as_nanos() as u64;
    assert!(used < wall / 4, "used {used} ns of CPU in {wall} ns");
    g.kill(child.pid);
    m.remove().unwrap();
}

fn poll_readable(fd: std::os::fd::BorrowedFd<'_>, timeout: Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(timeout.as_millis() as i32).unwrap();
    poll(&mut fds, ms).expect("poll") == 1
}

#[test]
fn oom_kill_is_counted_and_notified() {
    use std::os::fd::AsFd;
    require_v2();
    let top = unique();
    let mut m = V2Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    let limit = 32 * MIB;
    m.create(Some(&resources(&format!(
        r#"{{"memory":{{"limit":{limit},"swap":{limit}}}}}"#
    ))))
    .unwrap();
    let mut notifier = m.oom_notifier().unwrap();
    assert!(!poll_readable(notifier.as_fd(), Duration::ZERO));
    assert_eq!(notifier.consume().unwrap(), 0);

    let child = g.spawn(Action::Touch(64 << 20));
    m.add_task(child.pid).unwrap();
    child.release();
    assert_eq!(
        g.wait(child.pid),
        WaitStatus::Signaled(child.pid, Signal::SIGKILL, false)
    );
    assert!(
        poll_readable(notifier.as_fd(), Duration::from_secs(30)),
        "OOM notifier did not fire"
    );
    // memory.events may change more than once around a kill (max, oom,
    // oom_kill): the kills add up to at least one.
    let mut kills = notifier.consume().unwrap();
    while kills == 0 && poll_readable(notifier.as_fd(), Duration::from_secs(5)) {
        kills += notifier.consume().unwrap();
    }
    assert!(kills >= 1);
    let s = m.stats().unwrap();
    assert!(s.memory.oom_kills >= 1, "{:?}", s.memory);
    assert!(s.memory.oom_events >= 1, "{:?}", s.memory);
    assert_eq!(s.memory.limit, Some(limit));
    // Nothing new: nothing reported.
    assert_eq!(notifier.consume().unwrap(), 0);
    m.remove().unwrap();
    assert!(matches!(notifier.consume(), Err(CgroupError::Gone { .. })));
}

/// See the v1 twin; under emulation the bound is looser still.
#[test]
fn stats_call_is_fast() {
    require_v2();
    let top = unique();
    let mut m = V2Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    m.create(Some(&resources(
        r#"{"memory":{"limit":104857600},"pids":{"limit":100}}"#,
    )))
    .unwrap();
    let child = g.spawn(Action::Pause);
    m.add_task(child.pid).unwrap();
    m.stats().unwrap();
    const N: u32 = 100;
    let t = std::time::Instant::now();
    for _ in 0..N {
        std::hint::black_box(m.stats().unwrap());
    }
    let per = t.elapsed() / N;
    eprintln!("v2 stats(): {per:?} per call (in the emulated guest)");
    assert!(per < Duration::from_millis(50), "stats() took {per:?}");
    g.kill(child.pid);
    m.remove().unwrap();
}

// ------------------------------------------------------- device filter

/// Ids of the BPF_CGROUP_DEVICE programs attached to `dir` itself, by a
/// BPF_PROG_QUERY of our own rather than through the library.
fn device_programs(dir: &Path) -> Vec<u32> {
    #[repr(C)]
    struct Query {
        target_fd: u32,
        attach_type: u32,
        query_flags: u32,
        attach_flags: u32,
        prog_ids: u64,
        prog_cnt: u32,
        pad: u32,
    }
    const BPF_PROG_QUERY: libc::c_long = 16;
    const BPF_CGROUP_DEVICE: u32 = 6;
    let f = fs::File::open(dir).unwrap();
    let mut ids = [0u32; 64];
    let mut q = Query {
        target_fd: f.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        pad: 0,
    };
    // SAFETY: the kernel writes at most prog_cnt ids into `ids`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &raw mut q,
            std::mem::size_of::<Query>(),
        )
    };
    assert_eq!(r, 0, "BPF_PROG_QUERY: {}", std::io::Error::last_os_error());
    ids[..q.prog_cnt as usize].to_vec()
}

/// Run `action` in a child inside `m`'s cgroup; its exit code.
fn run_in(m: &impl CgroupManager, g: &mut Guard, action: Action) -> i32 {
    let c = g.spawn(action);
    m.add_task(c.pid).unwrap();
    c.release();
    match g.wait(c.pid) {
        WaitStatus::Exited(_, code) => code,
        other => panic!("child: {other:?}"),
    }
}

#[test]
fn device_rules_are_enforced_and_replaced() {
    require_v2();
    let top = unique();
    let mut m = V2Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    let devices = |rules: &[&str]| {
        let mut all = vec![r#"{"allow":false,"access":"rwm"}"#.to_owned()];
        for r in rules {
            let (major, minor, access) = {
                let mut p = r.split(' ');
                (p.next().unwrap(), p.next().unwrap(), p.next().unwrap())
            };
            all.push(format!(
                r#"{{"allow":true,"type":"c","major":{major},"minor":{minor},"access":"{access}"}}"#
            ));
        }
        resources(&format!(r#"{{"devices":[{}]}}"#, all.join(",")))
    };
    let (null, zero, full) = (c"/dev/null", c"/dev/zero", c"/dev/full");
    let node_path = format!("/tmp/{top}-null");
    let node = std::ffi::CString::new(node_path.clone()).unwrap();
    let _ = fs::remove_file(&node_path);
    let (rd, rdwr) = (libc::O_RDONLY, libc::O_RDWR);

    m.create(Some(&devices(&["1 3 rwm", "1 5 rwm"]))).unwrap();
    assert_eq!(run_in(&m, &mut g, Action::Open(null.as_ptr(), rdwr)), 0);
    assert_eq!(run_in(&m, &mut g, Action::Open(zero.as_ptr(), rd)), 0);
    assert_eq!(
        run_in(&m, &mut g, Action::Open(full.as_ptr(), rdwr)),
        libc::EPERM
    );
    assert_eq!(
        run_in(&m, &mut g, Action::Open(full.as_ptr(), rd)),
        libc::EPERM
    );
    // The test process itself, outside the cgroup, is not restricted.
    fs::File::open("/dev/full").unwrap();
    let first = device_programs(m.path());
    assert_eq!(first.len(), 1, "{first:?}");

    // An update from another process: a manager rebuilt from the state.
    let again = AnyManager::from_state(&m.state());
    again
        .apply(&devices(&["1 3 rwm", "1 5 rwm", "1 7 rwm"]))
        .unwrap();
    assert_eq!(run_in(&again, &mut g, Action::Open(full.as_ptr(), rdwr)), 0);
    let second = device_programs(m.path());
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first, "the program was replaced");

    // Access bits: read-only zero, null without mknod.
    again.apply(&devices(&["1 5 r", "1 3 rw"])).unwrap();
    assert_eq!(run_in(&m, &mut g, Action::Open(zero.as_ptr(), rd)), 0);
    assert_eq!(
        run_in(&m, &mut g, Action::Open(zero.as_ptr(), rdwr)),
        libc::EPERM
    );
    assert_eq!(run_in(&m, &mut g, Action::Open(null.as_ptr(), rdwr)), 0);
    assert_eq!(
        run_in(&m, &mut g, Action::Open(full.as_ptr(), rd)),
        libc::EPERM
    );
    let dev_null = libc::makedev(1, 3);
    assert_eq!(
        run_in(&m, &mut g, Action::Mknod(node.as_ptr(), dev_null)),
        libc::EPERM
    );
    m.apply(&devices(&["1 5 r", "1 3 rw", "1 3 m"])).unwrap();
    assert_eq!(
        run_in(&m, &mut g, Action::Mknod(node.as_ptr(), dev_null)),
        0
    );
    fs::remove_file(&node_path).unwrap();
    assert_eq!(device_programs(m.path()).len(), 1);

    m.remove().unwrap();
    assert!(!m.path().exists());
}
