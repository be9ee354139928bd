//! cgroup v1 manager against the real kernel. Needs root on a host with v1
//! controllers (legacy or hybrid layout); fails, rather than skips,
//! anywhere else.
//!
//! Every test works below its own `berth-test-<pid>-<n>` cgroup and a
//! [`Guard`] kills its children and removes whatever is left of that
//! cgroup, even when the test fails. Processes under test run below this
//! process's own cgroups (relative paths) where possible.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth_runtime::cgroups::v1::{V1Hierarchy, V1Manager};
use berth_runtime::cgroups::{
    AnyManager, CgroupError, CgroupManager, CgroupSetup, CgroupState, FreezerState, ManagerKind,
    default_device_rules, detect_setup,
};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use oci_spec::runtime::LinuxResources;

// ---------------------------------------------------------------- helpers

fn require_v1() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "cgroup_v1 tests must run as root"
    );
    let setup = detect_setup().expect("detect cgroup setup");
    assert!(
        matches!(setup, CgroupSetup::Legacy | CgroupSetup::Hybrid),
        "cgroup_v1 tests need a host with cgroup v1 controllers, this one is {setup:?}"
    );
}

/// A fresh top-level name for one test.
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

/// Kills registered children and removes every `top` cgroup directory
/// (with its subtree) on drop.
struct Guard {
    tops: Vec<PathBuf>,
    children: Vec<Pid>,
}

impl Guard {
    /// `top` is the test's first path component; its directory in every
    /// hierarchy of `m` is cleaned up.
    fn new(m: &V1Manager, top: &str) -> Self {
        let mut tops = Vec::new();
        for h in m.hierarchies() {
            let t = h
                .path
                .ancestors()
                .find(|a| a.file_name().is_some_and(|n| n == top))
                .unwrap_or_else(|| panic!("{} is not below {top}", h.path.display()));
            tops.push(t.to_path_buf());
        }
        Guard {
            tops,
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
    for _ in 0..50 {
        match fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => return,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for &pid in &self.children {
            let _ = kill(pid, Signal::SIGKILL);
        }
        // A frozen child cannot die; thaw whatever we froze.
        for t in &self.tops {
            let f = t.join("freezer.state");
            if f.exists() {
                let _ = fs::write(&f, "THAWED");
            }
        }
        for &pid in &self.children {
            let _ = waitpid(pid, None);
        }
        for t in &self.tops {
            rmdir_tree(t);
        }
    }
}

/// What a forked child does once released.
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

fn spawn(action: Action) -> Child {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    use std::os::fd::AsRawFd;
    let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
    // SAFETY: the child only calls async-signal-safe functions and _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => unsafe {
            libc::close(wfd);
            let mut b = 0u8;
            if libc::read(rfd, (&raw mut b).cast(), 1) != 1 {
                libc::_exit(3);
            }
            child_main(action)
        },
        ForkResult::Parent { child } => {
            drop(r);
            Child { pid: child, go: w }
        }
    }
}

unsafe fn child_main(action: Action) -> ! {
    unsafe {
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

fn hier<'a>(m: &'a V1Manager, controller: &str) -> &'a V1Hierarchy {
    m.hierarchies()
        .iter()
        .find(|h| h.subsystems.iter().any(|s| s == controller))
        .unwrap_or_else(|| panic!("host has no {controller} hierarchy"))
}

/// This process's cgroup in the hierarchy of `controller`.
fn own_cgroup(controller: &str) -> String {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap();
    for line in text.lines() {
        let mut p = line.splitn(3, ':');
        let (_, ctrls, path) = (p.next(), p.next().unwrap(), p.next().unwrap());
        if ctrls.split(',').any(|c| c == controller) {
            return path.to_owned();
        }
    }
    panic!("no {controller} line in /proc/self/cgroup");
}

/// The cgroup of `pid` in the hierarchy of `controller`.
fn cgroup_of(pid: Pid, controller: &str) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in text.lines() {
        let mut p = line.splitn(3, ':');
        let (_, ctrls, path) = (p.next(), p.next().unwrap(), p.next().unwrap());
        if ctrls.split(',').any(|c| c == controller) {
            return path.to_owned();
        }
    }
    panic!("no {controller} line in /proc/{pid}/cgroup");
}

/// The cgroup path (as /proc/<pid>/cgroup shows it) of a directory.
fn cgroup_path(h: &V1Hierarchy) -> String {
    format!(
        "/{}",
        h.path.strip_prefix(&h.mount_point).unwrap().display()
    )
}

// ---------------------------------------------------------------- tests

#[test]
fn host_layout_and_container_mounts() {
    require_v1();
    let m = V1Manager::new(Path::new("/berth-test-never-created")).unwrap();
    let mounts = m.container_mounts();
    assert_eq!(mounts.len(), m.hierarchies().len());
    for (cm, h) in mounts.iter().zip(m.hierarchies()) {
        // The subdir is the name the host mounts the hierarchy under.
        assert_eq!(
            Some(std::ffi::OsStr::new(&cm.subdir)),
            h.mount_point.file_name(),
            "{cm:?}"
        );
        assert_eq!(cm.host_path, h.path);
    }
    let by_subdir = |s: &str| mounts.iter().find(|m| m.subdir == s);
    let mem = by_subdir("memory").expect("memory mount");
    assert_eq!(
        (mem.fstype.as_str(), mem.data.as_str()),
        ("cgroup", "memory")
    );
    assert!(mem.symlinks.is_empty());
    if let Some(sd) = by_subdir("systemd") {
        assert_eq!(sd.data, "none,name=systemd");
    }
    if let Some(cc) = by_subdir("cpu,cpuacct") {
        assert_eq!(cc.symlinks, ["cpu", "cpuacct"]);
    }
    if detect_setup().unwrap() == CgroupSetup::Hybrid {
        let u = by_subdir("unified").expect("hybrid host has a unified mount");
        assert_eq!((u.fstype.as_str(), u.data.as_str()), ("cgroup2", ""));
    }
    // Nothing was created by merely building a manager.
    assert!(m.hierarchies().iter().all(|h| !h.path.exists()));
}

#[test]
fn nested_absolute_path_creates_and_removes_only_its_own_dirs() {
    require_v1();
    let top = unique();
    let mut a = V1Manager::new(Path::new(&format!("/{top}/pod/a"))).unwrap();
    let mut b = V1Manager::new(Path::new(&format!("/{top}/pod/b"))).unwrap();
    let _g = Guard::new(&a, &top);

    a.create(None).unwrap();
    for h in a.hierarchies() {
        let t = h.mount_point.join(&top);
        assert_eq!(h.created, [t.clone(), t.join("pod"), t.join("pod/a")]);
        assert!(h.path.is_dir(), "{}", h.path.display());
    }
    // New cpuset cgroups got cpus and mems copied down, at every level.
    let cs = hier(&a, "cpuset");
    let root_cpus = read(&cs.mount_point.join("cpuset.cpus"));
    for d in &cs.created {
        assert_eq!(read(&d.join("cpuset.cpus")), root_cpus, "{}", d.display());
        assert!(!read(&d.join("cpuset.mems")).is_empty());
    }

    b.create(None).unwrap();
    for h in b.hierarchies() {
        assert_eq!(
            h.created,
            std::slice::from_ref(&h.path),
            "only the leaf is b's"
        );
    }

    // a's parents still hold b: they stay.
    a.remove().unwrap();
    for (ha, hb) in a.hierarchies().iter().zip(b.hierarchies()) {
        assert!(!ha.path.exists(), "{}", ha.path.display());
        assert!(hb.path.is_dir());
    }
    b.remove().unwrap();
    for h in b.hierarchies() {
        assert!(!h.path.exists());
        // b never created pod: it is left for its creator (here the guard).
        assert!(h.path.parent().unwrap().is_dir());
    }
}

#[test]
fn preexisting_parent_is_kept() {
    require_v1();
    let top = unique();
    let mut m = V1Manager::new(Path::new(&format!("/{top}/c"))).unwrap();
    let _g = Guard::new(&m, &top);
    for h in m.hierarchies() {
        fs::create_dir(h.mount_point.join(&top)).unwrap();
    }
    m.create(None).unwrap();
    for h in m.hierarchies() {
        assert_eq!(h.created, std::slice::from_ref(&h.path));
    }
    m.remove().unwrap();
    for h in m.hierarchies() {
        assert!(!h.path.exists());
        assert!(h.mount_point.join(&top).is_dir());
    }
}

#[test]
fn relative_path_goes_below_own_cgroup_and_add_task_moves_a_child() {
    require_v1();
    let top = unique();
    let mut m = V1Manager::new(Path::new(&format!("{top}/c"))).unwrap();
    let mut g = Guard::new(&m, &top);
    for ctrl in ["memory", "pids", "cpuset"] {
        let h = hier(&m, ctrl);
        let own = own_cgroup(ctrl);
        let want = h
            .mount_point
            .join(own.trim_start_matches('/'))
            .join(&top)
            .join("c");
        assert_eq!(h.path, want, "{ctrl}");
    }
    m.create(None).unwrap();

    let child = g.spawn(Action::Pause);
    m.add_task(child.pid).unwrap();
    for h in m.hierarchies() {
        if h.cgroup2 {
            let text = fs::read_to_string(format!("/proc/{}/cgroup", child.pid)).unwrap();
            let line = text.lines().find(|l| l.starts_with("0::")).unwrap();
            assert_eq!(&line[3..], cgroup_path(h));
        } else {
            assert_eq!(cgroup_of(child.pid, &h.subsystems[0]), cgroup_path(h));
        }
        let procs = read(&h.path.join("cgroup.procs"));
        assert_eq!(procs, child.pid.to_string(), "{}", h.path.display());
    }
    assert_eq!(m.pids().unwrap(), [child.pid]);

    // The manager refuses to remove a cgroup that still has a task...
    let e = m.remove().unwrap_err();
    assert!(matches!(e, CgroupError::Remove { .. }), "{e}");
    // ...and succeeds once it is gone.
    g.kill(child.pid);
    m.remove().unwrap();
    for h in m.hierarchies() {
        assert!(!h.path.exists(), "{}", h.path.display());
        assert!(!h.path.parent().unwrap().exists());
    }
}

#[test]
fn pids_include_sub_cgroups_and_remove_takes_them() {
    require_v1();
    let top = unique();
    let mut m = V1Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    m.create(None).unwrap();
    let c1 = g.spawn(Action::Pause);
    let c2 = g.spawn(Action::Pause);
    m.add_task(c1.pid).unwrap();
    m.add_task(c2.pid).unwrap();
    // The container makes a sub-cgroup of its own and moves c2 there.
    for h in m.hierarchies() {
        let sub = h.path.join("inner");
        fs::create_dir(&sub).unwrap();
        if h.subsystems.iter().any(|s| s == "cpuset") {
            let cpus = read(&h.path.join("cpuset.cpus"));
            let mems = read(&h.path.join("cpuset.mems"));
            fs::write(sub.join("cpuset.cpus"), cpus).unwrap();
            fs::write(sub.join("cpuset.mems"), mems).unwrap();
        }
        fs::write(sub.join("cgroup.procs"), c2.pid.to_string()).unwrap();
    }
    let mut pids = m.pids().unwrap();
    pids.sort();
    let mut want = vec![c1.pid, c2.pid];
    want.sort();
    assert_eq!(pids, want);

    g.kill(c1.pid);
    g.kill(c2.pid);
    m.remove().unwrap();
    for h in m.hierarchies() {
        assert!(!h.path.exists(), "{}", h.path.display());
    }
}

fn block_device() -> Option<(String, String)> {
    let mut devs: Vec<_> = fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let dev = fs::read_to_string(e.path().join("dev")).ok()?;
            Some((name, dev.trim().to_owned()))
        })
        .collect();
    // A real disk if there is one, loop devices otherwise.
    devs.sort_by_key(|(n, _)| (n.starts_with("loop") || n.starts_with("zram"), n.clone()));
    devs.into_iter().next()
}

#[test]
fn resources_are_written_and_read_back() {
    require_v1();
    let top = unique();
    let mut m = V1Manager::new(Path::new(&top)).unwrap();
    let _g = Guard::new(&m, &top);
    let mem = hier(&m, "memory").path.clone();
    let memsw = mem.join("memory.memsw.limit_in_bytes");
    let has_memsw = hier(&m, "memory")
        .mount_point
        .join("memory.memsw.limit_in_bytes")
        .exists();
    let mib = 1i64 << 20;
    let swap = if has_memsw {
        format!(r#","swap":{}"#, 128 * mib)
    } else {
        String::new()
    };
    let (dev_name, dev) = block_device().expect("a block device in /sys/block");
    let (major, minor) = dev.split_once(':').unwrap();
    let json = format!(
        r#"{{
        "memory": {{"limit": {limit}, "reservation": {res}{swap}, "swappiness": 10}},
        "cpu": {{"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}},
        "pids": {{"limit": 42}},
        "blockIO": {{"weight": 300,
            "throttleReadBpsDevice": [{{"major": {major}, "minor": {minor}, "rate": 1048576}}],
            "throttleWriteIOPSDevice": [{{"major": {major}, "minor": {minor}, "rate": 77}}]}},
        "devices": [
            {{"allow": false, "access": "rwm"}},
            {{"allow": true, "type": "b", "major": {major}, "minor": {minor}, "access": "r"}},
            {{"allow": false, "type": "c", "major": 1, "minor": 9, "access": "w"}}
        ]
    }}"#,
        limit = 64 * mib,
        res = 32 * mib,
    );
    let mut r = resources(&json);
    // The caller appends the defaults after the config's own rules; the
    // deny of 1:9 "w" must then be applied after them to take effect.
    let mut devices = r.devices().clone().unwrap();
    let deny_w = devices.pop().unwrap();
    devices.extend(default_device_rules());
    devices.push(deny_w);
    r.set_devices(Some(devices));
    m.create(Some(&r)).unwrap();

    assert_eq!(
        read(&mem.join("memory.limit_in_bytes")),
        (64 * mib).to_string()
    );
    assert_eq!(
        read(&mem.join("memory.soft_limit_in_bytes")),
        (32 * mib).to_string()
    );
    assert_eq!(read(&mem.join("memory.swappiness")), "10");
    if has_memsw {
        assert_eq!(read(&memsw), (128 * mib).to_string());
    }
    let cpu = &hier(&m, "cpu").path;
    assert_eq!(read(&cpu.join("cpu.shares")), "512");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
    let cpuset = &hier(&m, "cpuset").path;
    assert_eq!(read(&cpuset.join("cpuset.cpus")), "0");
    assert_eq!(read(&cpuset.join("cpuset.mems")), "0");
    assert_eq!(read(&hier(&m, "pids").path.join("pids.max")), "42");
    let blkio = &hier(&m, "blkio").path;
    let weight = ["blkio.weight", "blkio.bfq.weight"]
        .iter()
        .map(|f| blkio.join(f))
        .find(|f| f.exists());
    match weight {
        // bfq prints "default 300" on some kernels.
        Some(f) => assert!(read(&f).ends_with("300"), "{}: {}", f.display(), read(&f)),
        None => eprintln!("no blkio weight file on this host, weight not checked"),
    }
    assert_eq!(
        read(&blkio.join("blkio.throttle.read_bps_device")),
        format!("{dev} 1048576"),
        "throttle on {dev_name}"
    );
    assert_eq!(
        read(&blkio.join("blkio.throttle.write_iops_device")),
        format!("{dev} 77")
    );
    let list = read(&hier(&m, "devices").path.join("devices.list"));
    let mut got: Vec<&str> = list.lines().collect();
    got.sort();
    let mut want = vec![
        format!("b {dev} r"),
        "c 1:3 rwm".into(),
        "c 1:5 rwm".into(),
        "c 1:7 rwm".into(),
        "c 1:8 rwm".into(),
        "c 1:9 rm".into(),
        "c 5:0 rwm".into(),
        "c 5:1 rwm".into(),
        "c 5:2 rwm".into(),
        "c 136:* rwm".into(),
    ];
    want.sort();
    assert_eq!(got, want);

    // Updates in both directions: raising needs memsw first, lowering
    // needs the limit first; either order fails for one of them.
    for (limit, swap) in [(256 * mib, 512 * mib), (16 * mib, 32 * mib)] {
        let swap_json = if has_memsw {
            format!(r#","swap":{swap}"#)
        } else {
            String::new()
        };
        m.apply(&resources(&format!(
            r#"{{"memory":{{"limit":{limit}{swap_json}}}}}"#
        )))
        .unwrap();
        assert_eq!(read(&mem.join("memory.limit_in_bytes")), limit.to_string());
        if has_memsw {
            assert_eq!(read(&memsw), swap.to_string());
        }
    }
    // Unlimited again, and pids back to max.
    let swap_json = if has_memsw { r#","swap":-1"# } else { "" };
    m.apply(&resources(&format!(
        r#"{{"memory":{{"limit":-1{swap_json}}},"pids":{{"limit":0}},"cpu":{{"quota":-1}}}}"#
    )))
    .unwrap();
    let unlimited = read(&hier(&m, "memory").mount_point.join("memory.limit_in_bytes"));
    assert_eq!(read(&mem.join("memory.limit_in_bytes")), unlimited);
    assert_eq!(read(&hier(&m, "pids").path.join("pids.max")), "max");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "-1");

    // Controllers this host lacks are named.
    if !m
        .hierarchies()
        .iter()
        .any(|h| h.subsystems.iter().any(|s| s == "hugetlb"))
    {
        let e = m
            .apply(&resources(
                r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#,
            ))
            .unwrap_err();
        assert!(
            matches!(&e, CgroupError::MissingController(c) if c == "hugetlb"),
            "{e}"
        );
    } else {
        m.apply(&resources(
            r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#,
        ))
        .unwrap();
        let h = &hier(&m, "hugetlb").path;
        assert_eq!(read(&h.join("hugetlb.2MB.limit_in_bytes")), "4194304");
    }
    let e = m
        .apply(&resources(r#"{"memory":{"swappiness":101}}"#))
        .unwrap_err();
    assert!(matches!(e, CgroupError::InvalidResource { .. }), "{e}");

    m.remove().unwrap();
    assert!(m.hierarchies().iter().all(|h| !h.path.exists()));
}

#[test]
fn failed_create_leaves_nothing_behind() {
    require_v1();
    let top = unique();
    let mut m = V1Manager::new(Path::new(&format!("/{top}/c"))).unwrap();
    let _g = Guard::new(&m, &top);
    let e = m
        .create(Some(&resources(r#"{"cpu":{"cpus":"4096-4097"}}"#)))
        .unwrap_err();
    assert!(matches!(e, CgroupError::Write { .. }), "{e}");
    assert!(e.to_string().contains("cpuset.cpus"), "{e}");
    for h in m.hierarchies() {
        assert!(!h.mount_point.join(&top).exists(), "{}", h.path.display());
        assert!(h.created.is_empty());
    }
}

#[test]
fn memory_limit_gets_a_hog_oom_killed() {
    require_v1();
    let top = unique();
    let mut m = V1Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    let mem = hier(&m, "memory").path.clone();
    let has_memsw = hier(&m, "memory")
        .mount_point
        .join("memory.memsw.limit_in_bytes")
        .exists();
    let limit = 32i64 << 20;
    // With swap the hog would page out instead of dying.
    let json = if has_memsw {
        format!(r#"{{"memory":{{"limit":{limit},"swap":{limit}}}}}"#)
    } else {
        format!(r#"{{"memory":{{"limit":{limit}}}}}"#)
    };
    m.create(Some(&resources(&json))).unwrap();
    let child = g.spawn(Action::Touch(64 << 20));
    m.add_task(child.pid).unwrap();
    child.release();
    let st = g.wait(child.pid);
    assert_eq!(st, WaitStatus::Signaled(child.pid, Signal::SIGKILL, false));
    let oom = read(&mem.join("memory.oom_control"));
    let kills: u64 = oom
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .map_or(1, |n| n.parse().unwrap());
    assert!(kills >= 1, "{oom}");
    m.remove().unwrap();
}

#[test]
fn memory_below_the_limit_is_fine() {
    require_v1();
    let top = unique();
    let mut m = V1Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    m.create(Some(&resources(r#"{"memory":{"limit":67108864}}"#)))
        .unwrap();
    let child = g.spawn(Action::Touch(8 << 20));
    m.add_task(child.pid).unwrap();
    child.release();
    assert_eq!(g.wait(child.pid), WaitStatus::Exited(child.pid, 0));
    m.remove().unwrap();
}

#[test]
fn pids_limit_makes_fork_fail() {
    require_v1();
    let top = unique();
    let mut m = V1Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    m.create(Some(&resources(r#"{"pids":{"limit":1}}"#)))
        .unwrap();
    let child = g.spawn(Action::Fork);
    m.add_task(child.pid).unwrap();
    child.release();
    assert_eq!(g.wait(child.pid), WaitStatus::Exited(child.pid, 42));

    // Same child program with the limit lifted: fork works.
    m.apply(&resources(r#"{"pids":{"limit":-1}}"#)).unwrap();
    let child = g.spawn(Action::Fork);
    m.add_task(child.pid).unwrap();
    child.release();
    assert_eq!(g.wait(child.pid), WaitStatus::Exited(child.pid, 10));
    m.remove().unwrap();
}

#[test]
fn freeze_and_thaw() {
    require_v1();
    let top = unique();
    let mut m = V1Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    m.create(None).unwrap();
    let child = g.spawn(Action::Pause);
    m.add_task(child.pid).unwrap();
    child.release();
    let state = hier(&m, "freezer").path.join("freezer.state");
    assert!(!m.frozen().unwrap());

    m.freeze(FreezerState::Frozen).unwrap();
    assert_eq!(read(&state), "FROZEN");
    assert!(m.frozen().unwrap());
    assert_eq!(m.pids().unwrap(), [child.pid]);

    m.freeze(FreezerState::Thawed).unwrap();
    assert_eq!(read(&state), "THAWED");
    assert!(!m.frozen().unwrap());

    g.kill(child.pid);
    m.remove().unwrap();
}

#[test]
fn state_round_trip_lets_another_instance_remove() {
    require_v1();
    let top = unique();
    let path = format!("/{top}/x/y");
    let mut m = AnyManager::new(ManagerKind::Auto, Some(Path::new(&path)), "ignored").unwrap();
    let AnyManager::V1(v1) = &m else {
        panic!("expected a v1 manager on this host, got {m:?}");
    };
    let _g = Guard::new(v1, &top);
    m.create(None).unwrap();
    let json = serde_json::to_string(&m.state()).unwrap();
    drop(m);

    let state: CgroupState = serde_json::from_str(&json).unwrap();
    let again = AnyManager::from_state(&state);
    let placement = again.placement().unwrap();
    assert!(placement.tasks.iter().all(|t| t.ends_with("tasks")) && !placement.tasks.is_empty());
    let CgroupState::V1(s) = again.state() else {
        panic!("v1 state expected: {json}");
    };
    for h in &s.hierarchies {
        assert!(h.path.is_dir());
        assert_eq!(h.created.len(), 3);
    }
    again.remove().unwrap();
    for h in &s.hierarchies {
        assert!(!h.mount_point.join(&top).exists(), "{}", h.path.display());
    }
}

#[test]
fn invalid_paths_are_rejected() {
    require_v1();
    for bad in ["/berth-test/../etc", "../x", "/"] {
        let e = AnyManager::new(ManagerKind::Auto, Some(Path::new(bad)), "id").unwrap_err();
        assert!(matches!(e, CgroupError::InvalidPath { .. }), "{bad}: {e}");
    }
    assert!(matches!(
        AnyManager::new(ManagerKind::None, None, "id").unwrap(),
        AnyManager::None
    ));
}

/// create + add_task + remove must stay in the ~10 ms budget of a
/// container's create+delete; the bound here is loose on purpose (shared
/// 2-core machines), it catches sleeps and rescans, not noise.
#[test]
fn create_add_task_remove_cycle_is_fast() {
    require_v1();
    let top = unique();
    let m0 = V1Manager::new(Path::new(&format!("{top}/probe"))).unwrap();
    let mut g = Guard::new(&m0, &top);
    const N: u32 = 20;
    let (mut t_new, mut t_create, mut t_add, mut t_remove) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    for i in 0..N {
        let child = g.spawn(Action::Pause);
        let path = format!("{top}/c{i}");
        let t0 = Instant::now();
        let mut m = AnyManager::new(ManagerKind::Auto, Some(Path::new(&path)), "x").unwrap();
        let t1 = Instant::now();
        m.create(Some(&resources(
            r#"{"memory":{"limit":104857600},"pids":{"limit":100}}"#,
        )))
        .unwrap();
        let t2 = Instant::now();
        m.add_task(child.pid).unwrap();
        let t3 = Instant::now();
        g.kill(child.pid);
        let t4 = Instant::now();
        m.remove().unwrap();
        let t5 = Instant::now();
        t_new += t1 - t0;
        t_create += t2 - t1;
        t_add += t3 - t2;
        t_remove += t5 - t4;
    }
    let per = |d: Duration| d / N;
    let total = per(t_new + t_create + t_add + t_remove);
    eprintln!(
        "v1 cycle: new {:?} + create {:?} + add_task {:?} + remove {:?} = {:?} per container",
        per(t_new),
        per(t_create),
        per(t_add),
        per(t_remove),
        total
    );
    assert!(total < Duration::from_millis(50), "cycle took {total:?}");
}

// ---------------------------------------------------------------- stats

/// Poll `f` every 20 ms until it gives a value; panic with `what` after
/// `secs` seconds.
fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const MIB: u64 = 1 << 20;

#[test]
fn stats_follow_memory_and_pids() {
    require_v1();
    let top = unique();
    let mut m = V1Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    m.create(Some(&resources(&format!(
        r#"{{"memory":{{"limit":{}}},"pids":{{"limit":100}}}}"#,
        256 * MIB
    ))))
    .unwrap();
    let before = m.stats().unwrap();
    assert_eq!(before.memory.limit, Some(256 * MIB));
    assert_eq!((before.pids.current, before.pids.limit), (0, Some(100)));
    assert_eq!(before.memory.oom_kills, 0);

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
    // The child's pages are anonymous: they show up as rss.
    assert!(after.memory.rss >= 48 * MIB, "{:?}", after.memory);
    assert!(after.memory.max_usage.unwrap() >= after.memory.usage);
    assert!(after.memory.raw.contains_key("total_rss"));
    assert!(after.memory.raw.contains_key("rss"));
    if hier(&m, "memory")
        .path
        .join("memory.memsw.usage_in_bytes")
        .exists()
    {
        assert!(after.memory.swap_usage.is_some());
    }

    // A manager rebuilt from the state reads the same cgroup.
    let again = AnyManager::from_state(&m.state());
    let s = again.stats().unwrap();
    assert_eq!(s.pids.current, 1);
    assert!(s.memory.usage >= 48 * MIB);

    g.kill(child.pid);
    m.remove().unwrap();
    // Gone: an error naming a directory of the cgroup, not zeros.
    let e = m.stats().unwrap_err();
    match &e {
        CgroupError::Gone { path } => assert!(path.ends_with(&top), "{e}"),
        other => panic!("expected Gone, got {other}"),
    }
}

/// The whole disk (`major:minor`) under the filesystem holding `path`:
/// blkio counts per disk, not per partition.
fn disk_of(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::metadata(path).unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let sys = Path::new("/sys/dev/block").join(format!("{major}:{minor}"));
    assert!(
        sys.exists(),
        "{} is not on a block device ({major}:{minor})",
        path.display()
    );
    let disk = if sys.join("partition").exists() {
        fs::canonicalize(&sys)
            .unwrap()
            .parent()
            .unwrap()
            .join("dev")
    } else {
        sys.join("dev")
    };
    let text = read(&disk);
    let (a, b) = text.split_once(':').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

#[test]
fn stats_count_block_io() {
    require_v1();
    // O_DIRECT reads of a file on a disk-backed filesystem reach the
    // block layer in the reader's cgroup (the host's raw disks are not
    // open to tests).
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let file = tmp.path().join("data");
    fs::write(&file, vec![7u8; MIB as usize]).unwrap();
    fs::File::open(&file).unwrap().sync_all().unwrap();
    let (major, minor) = disk_of(&file);
    let cpath = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
    let top = unique();
    let mut m = V1Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    m.create(None).unwrap();
    let child = g.spawn(Action::ReadDirect(cpath.as_ptr(), MIB as usize));
    m.add_task(child.pid).unwrap();
    child.release();
    assert_eq!(g.wait(child.pid), WaitStatus::Exited(child.pid, 0));
    let s = m.stats().unwrap();
    let d =
        s.io.devices
            .iter()
            .find(|d| (d.major, d.minor) == (major, minor))
            .unwrap_or_else(|| panic!("no {major}:{minor} in {:?}", s.io));
    assert!(d.read_bytes >= MIB, "{d:?}");
    assert!(d.read_ops >= 1, "{d:?}");
    m.remove().unwrap();
}

#[test]
fn cpu_stats_grow_and_show_throttling() {
    require_v1();
    let top = unique();
    let mut m = V1Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    // 10% of one CPU, in 10 ms periods so that throttling shows quickly.
    m.create(Some(&resources(r#"{"cpu":{"quota":1000,"period":10000}}"#)))
        .unwrap();
    assert_eq!(m.stats().unwrap().cpu.usage_ns, 0);
    let child = g.spawn(Action::Spin);
    m.add_task(child.pid).unwrap();
    child.release();
    // throttled_time grows when a throttled period ends, after
    // nr_throttled.
    let s1 = wait_for("throttled periods and time", 20, || {
        let s = m.stats().unwrap();
        let c = &s.cpu;
        (c.throttled_periods > 0 && c.throttled_ns > 0 && c.usage_ns > 0).then_some(s)
    });
    let c = &s1.cpu;
    assert!(c.periods >= c.throttled_periods, "{c:?}");
    assert_eq!(c.per_cpu_ns.iter().sum::<u64>(), c.usage_ns, "{c:?}");
    let s2 = wait_for("cpu usage to grow by 10 ms", 20, || {
        let s = m.stats().unwrap();
        (s.cpu.usage_ns >= s1.cpu.usage_ns + 10_000_000).then_some(s)
    });
    // A busy loop runs in user mode.
    assert!(s2.cpu.user_ns > s1.cpu.user_ns, "{:?}", s2.cpu);
    // The quota holds: well under a full CPU.
    let t0 = Instant::now();
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
    require_v1();
    let top = unique();
    let mut m = V1Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    let has_memsw = hier(&m, "memory")
        .mount_point
        .join("memory.memsw.limit_in_bytes")
        .exists();
    let limit = 32 * MIB;
    let json = if has_memsw {
        format!(r#"{{"memory":{{"limit":{limit},"swap":{limit}}}}}"#)
    } else {
        format!(r#"{{"memory":{{"limit":{limit}}}}}"#)
    };
    m.create(Some(&resources(&json))).unwrap();
    let mut notifier = m.oom_notifier().unwrap();
    assert!(!poll_readable(notifier.as_fd(), Duration::ZERO));
    assert_eq!(m.stats().unwrap().memory.oom_kills, 0);

    let child = g.spawn(Action::Touch(64 << 20));
    m.add_task(child.pid).unwrap();
    child.release();
    assert_eq!(
        g.wait(child.pid),
        WaitStatus::Signaled(child.pid, Signal::SIGKILL, false)
    );
    assert!(
        poll_readable(notifier.as_fd(), Duration::from_secs(10)),
        "OOM notifier did not fire"
    );
    assert!(notifier.consume().unwrap() >= 1);
    let s = m.stats().unwrap();
    assert!(s.memory.oom_kills >= 1, "{:?}", s.memory);
    assert_eq!(s.memory.oom_events, s.memory.oom_kills);
    // memory.failcnt, not memsw.failcnt: with swap accounting the memsw
    // counter may be the one that hit the limit.
    assert!(s.memory.failcnt.is_some(), "{:?}", s.memory);
    assert_eq!(s.memory.limit, Some(limit));

    // Removing the cgroup wakes the notifier too; that is no OOM.
    m.remove().unwrap();
    assert!(poll_readable(notifier.as_fd(), Duration::from_secs(5)));
    let e = notifier.consume().unwrap_err();
    assert!(matches!(e, CgroupError::Gone { .. }), "{e}");
}

/// `docker stats` polls every container every second: one call must stay
/// far below a millisecond's worth of budget per container. The bound is
/// loose (shared machines); the figure is printed.
#[test]
fn stats_call_is_fast() {
    require_v1();
    let top = unique();
    let mut m = V1Manager::new(Path::new(&top)).unwrap();
    let mut g = Guard::new(&m, &top);
    m.create(Some(&resources(
        r#"{"memory":{"limit":104857600},"pids":{"limit":100}}"#,
    )))
    .unwrap();
    let child = g.spawn(Action::Pause);
    m.add_task(child.pid).unwrap();
    m.stats().unwrap();
    const N: u32 = 200;
    let t = Instant::now();
    for _ in 0..N {
        std::hint::black_box(m.stats().unwrap());
    }
    let per = t.elapsed() / N;
    eprintln!("v1 stats(): {per:?} per call");
    assert!(per < Duration::from_millis(5), "stats() took {per:?}");
    g.kill(child.pid);
    m.remove().unwrap();
}
