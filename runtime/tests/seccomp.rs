//! Filters installed in the real kernel.
//!
//! Each test compiles in the parent, forks, and in the child sets
//! no_new_privs, installs and makes syscalls, reporting through its exit
//! status. The test harness is multi-threaded, so the child does only
//! async-signal-safe work: no allocation, no locks, no printing. A non-zero
//! exit code names the check that failed.

#![cfg(target_os = "linux")]

// Named so that `cargo test -p berth-runtime seccomp` selects these too.
mod seccomp_kernel {

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};

    use berth_runtime::seccomp::{self, CompiledFilter, FLAG_NEW_LISTENER, FLAG_TSYNC_ESRCH};
    use oci_spec::runtime::LinuxSeccomp;
    use serde_json::json;

    /// Counts allocations, to show that `install` makes none.
    struct Counting;

    static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

    // SAFETY: forwards to the system allocator.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
            // SAFETY: same contract as ours.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: same contract as ours.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
            // SAFETY: same contract as ours.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        Exited(i32),
        Signaled(i32),
    }

    fn profile(v: serde_json::Value) -> CompiledFilter {
        let p: LinuxSeccomp = serde_json::from_value(v).expect("profile parses");
        seccomp::compile(&p).expect("profile compiles")
    }

    fn errno() -> i32 {
        // SAFETY: reading the calling thread's errno.
        unsafe { *libc::__errno_location() }
    }

    /// Runs `body` in a forked child under `filter` (None: no filter), with
    /// the listener fd if there is one; returns how the child ended.
    fn in_child(
        filter: Option<&CompiledFilter>,
        body: impl FnOnce(Option<OwnedFd>) -> i32,
    ) -> Outcome {
        // SAFETY: the child only makes raw syscalls until _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: async-signal-safe syscalls in the child.
            unsafe {
                // A SIGSYS death must not leave a core file behind.
                libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
                let none = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &none);
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    libc::_exit(120);
                }
            }
            let fd = match filter.map(seccomp::install) {
                None => None,
                Some(Ok(fd)) => fd,
                Some(Err(_)) => unsafe { libc::_exit(121) },
            };
            let code = body(fd);
            // SAFETY: leaving the child without running the parent's atexit
            // handlers or unwinding.
            unsafe { libc::_exit(code) }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
        if libc::WIFEXITED(status) {
            Outcome::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Outcome::Signaled(libc::WTERMSIG(status))
        } else {
            panic!("child status {status:#x}")
        }
    }

    fn cpath(p: &std::path::Path) -> CString {
        CString::new(p.as_os_str().as_bytes()).unwrap()
    }

    /// `syscall(nr, args...)` → (return value, errno).
    fn sys(nr: libc::c_long, a: [u64; 3]) -> (libc::c_long, i32) {
        // SAFETY: callers pass syscalls and arguments that touch only memory
        // they own.
        let r = unsafe { libc::syscall(nr, a[0], a[1], a[2]) };
        (r, if r < 0 { errno() } else { 0 })
    }

    #[test]
    fn errno_rule_denies_mkdir_and_leaves_the_rest() {
        let f = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        }));
        let dir = tempfile::tempdir().unwrap();
        let a = cpath(&dir.path().join("a"));
        let b = cpath(&dir.path().join("b"));
        let devnull = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        let out = in_child(Some(&f), |_| {
            if sys(libc::SYS_mkdir, [a.as_ptr() as u64, 0o755, 0]) != (-1, libc::EPERM) {
                return 1;
            }
            let at = libc::AT_FDCWD as i64 as u64;
            if sys(libc::SYS_mkdirat, [at, b.as_ptr() as u64, 0o755]) != (-1, libc::EPERM) {
                return 2;
            }
            if sys(libc::SYS_getpid, [0; 3]).0 <= 0 {
                return 3;
            }
            let fd = devnull.as_raw_fd() as u64;
            if sys(libc::SYS_write, [fd, b"abc".as_ptr() as u64, 3]) != (3, 0) {
                return 4;
            }
            0
        });
        assert_eq!(out, Outcome::Exited(0));
        assert!(!dir.path().join("a").exists());
        assert!(!dir.path().join("b").exists());

        // Without the filter the same calls succeed: the child really did try.
        let out = in_child(None, |_| {
            if sys(libc::SYS_mkdir, [a.as_ptr() as u64, 0o755, 0]) != (0, 0) {
                return 1;
            }
            0
        });
        assert_eq!(out, Outcome::Exited(0));
        assert!(dir.path().join("a").is_dir());
    }

    #[test]
    fn install_does_not_allocate() {
        let plain = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]
        }));
        let notify = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        // Refused by the kernel (jump out of range): the error path too.
        let mut broken = plain.clone();
        broken.program[0] = (0x05, 0, 0, 60_000);
        let out = in_child(None, |_| {
            let before = ALLOCATIONS.load(Ordering::SeqCst);
            let results = [
                seccomp::install(&broken).is_err(),
                seccomp::install(&plain).is_ok(),
                matches!(seccomp::install(&notify), Ok(Some(_))),
            ];
            if ALLOCATIONS.load(Ordering::SeqCst) != before {
                return 1;
            }
            if results != [true, true, true] {
                return 2;
            }
            0
        });
        assert_eq!(out, Outcome::Exited(0));
        // The counter does count: a parent-side allocation moves it.
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        drop(std::hint::black_box(vec![1u8; 16]));
        assert!(ALLOCATIONS.load(Ordering::SeqCst) > before);
    }

    #[test]
    fn errno_rule_with_custom_errno() {
        let f = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EOPNOTSUPP}]
        }));
        let dir = tempfile::tempdir().unwrap();
        let a = cpath(&dir.path().join("a"));
        let out = in_child(Some(&f), |_| {
            if sys(libc::SYS_mkdir, [a.as_ptr() as u64, 0o755, 0]) != (-1, libc::EOPNOTSUPP) {
                return 1;
            }
            0
        });
        assert_eq!(out, Outcome::Exited(0));
    }

    #[test]
    fn default_errno_applies_to_unlisted_syscalls() {
        // An allow-list: the child needs nothing after install but these.
        let f = profile(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 77,
            "syscalls": [
                {"names": ["getppid", "exit_group", "exit"], "action": "SCMP_ACT_ALLOW"}
            ]
        }));
        let out = in_child(Some(&f), |_| {
            if sys(libc::SYS_getpid, [0; 3]) != (-1, 77) {
                return 1;
            }
            if sys(libc::SYS_getppid, [0; 3]).0 <= 0 {
                return 2;
            }
            0
        });
        assert_eq!(out, Outcome::Exited(0));
    }

    #[test]
    fn kill_process_kills_with_sigsys() {
        let f = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]
        }));
        let out = in_child(Some(&f), |_| {
            sys(libc::SYS_getppid, [0; 3]);
            0
        });
        assert_eq!(out, Outcome::Signaled(libc::SIGSYS));
    }

    #[test]
    fn kill_and_kill_thread_kill_the_only_thread() {
        for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"] {
            let f = profile(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getppid"], "action": action}]
            }));
            let out = in_child(Some(&f), |_| {
                sys(libc::SYS_getppid, [0; 3]);
                0
            });
            assert_eq!(out, Outcome::Signaled(libc::SIGSYS), "{action}");
        }
    }

    static TRAP_CODE: AtomicI32 = AtomicI32::new(-1);
    static TRAP_SYSCALL: AtomicI32 = AtomicI32::new(-1);
    static TRAP_ARCH: AtomicU32 = AtomicU32::new(0);

    extern "C" fn on_sigsys(
        _sig: libc::c_int,
        info: *mut libc::siginfo_t,
        _ctx: *mut libc::c_void,
    ) {
        // SAFETY: the kernel hands a valid siginfo. For SIGSYS its union holds
        // { void *call_addr; int syscall; unsigned arch; } after the 16-byte
        // header on 64-bit hosts.
        unsafe {
            TRAP_CODE.store((*info).si_code, Ordering::SeqCst);
            let base = info as *const u8;
            let off = 16 + std::mem::size_of::<*const u8>();
            TRAP_SYSCALL.store(*(base.add(off) as *const i32), Ordering::SeqCst);
            TRAP_ARCH.store(*(base.add(off + 4) as *const u32), Ordering::SeqCst);
        }
    }

    #[test]
    fn trap_delivers_sigsys() {
        let f = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_TRAP"}]
        }));
        let out = in_child(None, |_| {
            // SAFETY: installing a handler that only stores to atomics.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_sigsys as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO;
                if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
                    return 1;
                }
                if seccomp::install(&f).is_err() {
                    return 2;
                }
            }
            sys(libc::SYS_getppid, [0; 3]);
            // SYS_SECCOMP
            if TRAP_CODE.load(Ordering::SeqCst) != 1 {
                return 3;
            }
            if TRAP_SYSCALL.load(Ordering::SeqCst) != libc::SYS_getppid as i32 {
                return 4;
            }
            if cfg!(target_arch = "x86_64") && TRAP_ARCH.load(Ordering::SeqCst) != 0xc000_003e {
                return 5;
            }
            0
        });
        assert_eq!(out, Outcome::Exited(0));
        // With no handler the trap kills.
        let out = in_child(Some(&f), |_| {
            sys(libc::SYS_getppid, [0; 3]);
            0
        });
        assert_eq!(out, Outcome::Signaled(libc::SIGSYS));
    }

    #[test]
    fn log_allows() {
        let f = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"}]
        }));
        let dir = tempfile::tempdir().unwrap();
        let a = cpath(&dir.path().join("a"));
        let out = in_child(Some(&f), |_| {
            if sys(libc::SYS_mkdir, [a.as_ptr() as u64, 0o755, 0]) != (0, 0) {
                return 1;
            }
            0
        });
        assert_eq!(out, Outcome::Exited(0));
        assert!(dir.path().join("a").is_dir());
    }

    #[test]
    fn trace_without_tracer_fails_with_enosys() {
        let f = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_TRACE"}]
        }));
        let out = in_child(Some(&f), |_| {
            if sys(libc::SYS_getppid, [0; 3]) != (-1, libc::ENOSYS) {
                return 1;
            }
            0
        });
        assert_eq!(out, Outcome::Exited(0));
    }

    #[test]
    fn flags_are_accepted_by_the_kernel() {
        let f = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]
        }));
        let out = in_child(Some(&f), |fd| {
            if fd.is_some() {
                return 1;
            }
            if sys(libc::SYS_getppid, [0; 3]) != (-1, libc::EPERM) {
                return 2;
            }
            0
        });
        assert_eq!(out, Outcome::Exited(0));
    }

    /// Child: install, fork a grandchild that calls getppid, answer its
    /// notification with `4242`, report whether the grandchild saw it.
    fn answer_one_notification(f: &CompiledFilter) -> Outcome {
        in_child(Some(f), |fd| {
            let Some(listener) = fd else { return 1 };
            // SAFETY: fork from the single-threaded child.
            let pid = unsafe { libc::fork() };
            if pid < 0 {
                return 2;
            }
            if pid == 0 {
                let (r, _) = sys(libc::SYS_getppid, [0; 3]);
                // SAFETY: leaving the grandchild.
                unsafe { libc::_exit(if r == 4242 { 0 } else { 3 }) }
            }
            // SAFETY: the ioctls get zeroed, correctly sized structs.
            unsafe {
                let mut req: libc::seccomp_notif = std::mem::zeroed();
                if libc::ioctl(
                    listener.as_raw_fd(),
                    libc::SECCOMP_IOCTL_NOTIF_RECV,
                    &mut req,
                ) != 0
                {
                    return 4;
                }
                if req.data.nr != libc::SYS_getppid as i32 || req.pid != pid as u32 {
                    return 5;
                }
                if cfg!(target_arch = "x86_64") && req.data.arch != 0xc000_003e {
                    return 6;
                }
                let mut resp: libc::seccomp_notif_resp = std::mem::zeroed();
                resp.id = req.id;
                resp.val = 4242;
                if libc::ioctl(
                    listener.as_raw_fd(),
                    libc::SECCOMP_IOCTL_NOTIF_SEND,
                    &mut resp,
                ) != 0
                {
                    return 7;
                }
                let mut status = 0;
                if libc::waitpid(pid, &mut status, 0) != pid || !libc::WIFEXITED(status) {
                    return 8;
                }
                libc::WEXITSTATUS(status)
            }
        })
    }

    #[test]
    fn notify_returns_a_listener_that_answers_syscalls() {
        let f = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        assert!(f.notify);
        assert_ne!(f.flags & FLAG_NEW_LISTENER, 0);
        assert_eq!(answer_one_notification(&f), Outcome::Exited(0));
    }

    #[test]
    fn notify_with_tsync_needs_and_gets_tsync_esrch() {
        let f = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        assert_ne!(f.flags & FLAG_TSYNC_ESRCH, 0);
        assert_eq!(answer_one_notification(&f), Outcome::Exited(0));
        // The kernel does refuse the pair without TSYNC_ESRCH: the flag matters.
        let mut bare = f.clone();
        bare.flags &= !FLAG_TSYNC_ESRCH;
        let out = in_child(None, |_| match seccomp::install(&bare) {
            Err(seccomp::SeccompError::Install(e)) if e.raw_os_error() == Some(libc::EINVAL) => 0,
            _ => 1,
        });
        assert_eq!(out, Outcome::Exited(0));
    }

    #[test]
    fn argument_conditions_are_honoured() {
        let f = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 0xffff_ffff_u64, "op": "SCMP_CMP_EQ"}]},
                {"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EFBIG,
                 "args": [{"index": 1, "value": 0x1_0000_0000_u64, "op": "SCMP_CMP_GE"}]}
            ]
        }));
        let file = tempfile::tempfile().unwrap();
        let fd = file.as_raw_fd() as u64;
        let set = libc::SEEK_SET as u64;
        let out = in_child(Some(&f), |_| {
            if sys(libc::SYS_personality, [0xffff_ffff, 0, 0]) != (-1, libc::EPERM) {
                return 1;
            }
            // Setting PER_LINUX (0) is allowed and returns the old persona.
            if sys(libc::SYS_personality, [0, 0, 0]).0 < 0 {
                return 2;
            }
            if sys(libc::SYS_lseek, [fd, 5, set]) != (5, 0) {
                return 3;
            }
            // Same low half as an allowed value, high half over the limit.
            if sys(libc::SYS_lseek, [fd, 0x1_0000_0005, set]) != (-1, libc::EFBIG) {
                return 4;
            }
            // Largest low half, high half zero: allowed.
            if sys(libc::SYS_lseek, [fd, 0xffff_ffff, set]) != (0xffff_ffff, 0) {
                return 5;
            }
            0
        });
        assert_eq!(out, Outcome::Exited(0));
    }

    #[test]
    fn podmans_profile_in_the_kernel() {
        let text = std::fs::read_to_string("/usr/share/containers/seccomp.json").expect(
            "podman's profile (Debian package golang-github-containers-common) must be installed",
        );
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["architectures"] = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
        let p: LinuxSeccomp = serde_json::from_value(v).unwrap();
        let f = seccomp::compile(&p).unwrap();
        let devnull = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        let fd = devnull.as_raw_fd() as u64;
        let out = in_child(Some(&f), |_| {
            if sys(libc::SYS_write, [fd, b"x".as_ptr() as u64, 1]) != (1, 0) {
                return 1;
            }
            if sys(libc::SYS_getpid, [0; 3]).0 <= 0 {
                return 2;
            }
            if sys(libc::SYS_userfaultfd, [0; 3]) != (-1, libc::EPERM) {
                return 3;
            }
            // Not listed: the profile's defaultErrnoRet.
            if sys(libc::SYS_add_key, [0; 3]) != (-1, libc::ENOSYS) {
                return 4;
            }
            if sys(libc::SYS_personality, [0x0040_0000, 0, 0]) != (-1, libc::ENOSYS) {
                return 5;
            }
            let (af_netlink, raw, audit) = (libc::AF_NETLINK as u64, libc::SOCK_RAW as u64, 9);
            if sys(libc::SYS_socket, [af_netlink, raw, audit]) != (-1, libc::EINVAL) {
                return 6;
            }
            0
        });
        assert_eq!(out, Outcome::Exited(0));
    }

    #[cfg(target_arch = "x86_64")]
    mod compat {
        //! i386 syscalls through `int 0x80` and x32 ones through the x32 bit,
        //! from this x86_64 process.

        use super::*;

        /// An i386 syscall with no arguments; returns the raw result.
        fn int80(nr: u32) -> i32 {
            let nr = nr as i32;
            let ret: i32;
            // SAFETY: argument-less i386 syscalls; int 0x80 clobbers nothing
            // but eax (r8-r11 are zeroed by the kernel on return).
            unsafe {
                std::arch::asm!(
                    "int 0x80",
                    inlateout("eax") nr => ret,
                    out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                    options(nostack),
                );
            }
            ret
        }

        const I386_GETPID: u32 = 20;
        const I386_GETPPID: u32 = 64;
        const X32_BIT: i64 = 0x4000_0000;

        fn ia32_available() -> bool {
            let out = in_child(None, |_| if int80(I386_GETPID) > 0 { 0 } else { 1 });
            out == Outcome::Exited(0)
        }

        #[test]
        fn i386_syscalls_use_the_i386_chain() {
            if !ia32_available() {
                // Without IA32 emulation there is no i386 ABI to filter.
                eprintln!("skipped: kernel has no IA32 emulation");
                return;
            }
            let rules = json!([{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]);
            let with = profile(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": rules,
            }));
            let out = in_child(Some(&with), |_| {
                if int80(I386_GETPPID) != -libc::EPERM {
                    return 1;
                }
                if int80(I386_GETPID) <= 0 {
                    return 2;
                }
                // 64 is semget on x86_64: the i386 rule does not leak there.
                if sys(libc::SYS_getppid, [0; 3]) != (-1, libc::EPERM) {
                    return 3;
                }
                0
            });
            assert_eq!(out, Outcome::Exited(0));

            let without = profile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}));
            let out = in_child(Some(&without), |_| {
                int80(I386_GETPID);
                0
            });
            assert_eq!(out, Outcome::Signaled(libc::SIGSYS));
        }

        #[test]
        fn x32_syscalls_are_killed_unless_listed() {
            let rules = json!([{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99}]);
            let without = profile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}));
            let out = in_child(Some(&without), |_| {
                sys(X32_BIT | libc::SYS_getpid, [0; 3]);
                0
            });
            assert_eq!(out, Outcome::Signaled(libc::SIGSYS));

            let with = profile(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
                "syscalls": rules,
            }));
            let out = in_child(Some(&with), |_| {
                // seccomp runs before dispatch, so this holds even on kernels
                // built without x32 support.
                if sys(X32_BIT | libc::SYS_getppid, [0; 3]) != (-1, 99) {
                    return 1;
                }
                // Allowed: the pid, or ENOSYS where the kernel lacks x32.
                match sys(X32_BIT | libc::SYS_getpid, [0; 3]) {
                    (r, 0) if r > 0 => {}
                    (-1, libc::ENOSYS) => {}
                    _ => return 2,
                }
                0
            });
            assert_eq!(out, Outcome::Exited(0));
        }
    }
}
