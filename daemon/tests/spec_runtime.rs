//! Specs from `berth_daemon::spec` run for real through berth's runtime
//! library, and checked from inside the container: user and groups,
//! capabilities, the memory and pids limits in the container's cgroup,
//! the read-only rootfs, the tmpfs, binds, rlimits, no_new_privs, and the
//! default seccomp profile refusing a user namespace that the same
//! container without seccomp may create.
//!
//! As root, in a private mount namespace:
//! `unshare --mount --propagation private -- cargo test -p berth-daemon --test spec_runtime`
//!
//! No libtest harness (`harness = false`): the runtime clones without
//! exec and refuses to create a container from a multi-threaded process,
//! and libtest runs each test on a thread of its own. So this is a plain
//! `main` that runs the cases in order on the main thread; a failed
//! assertion panics, the guards clean up while unwinding, and the test
//! fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_api::containers::{ContainerConfig, HostConfig, Ulimit};
use berth_daemon::spec::{self, Netns, SpecInput, SystemInfo};
use berth_runtime::{CreateOptions, Runtime};

/// A container's whole life, undone on drop: the runtime's container
/// (process, cgroup, state) and every temporary directory.
struct Case {
    name: &'static str,
    dir: tempfile::TempDir,
    rt: Runtime,
    _rt_root: tempfile::TempDir,
    id: String,
    created: bool,
}

impl Drop for Case {
    fn drop(&mut self) {
        if self.created
            && let Err(e) = self.rt.delete(&self.id, true)
        {
            eprintln!("{}: removing container {}: {e}", self.name, self.id);
        }
    }
}

/// A rootfs holding a static busybox and its applets, and the passwd and
/// group files users are resolved against.
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
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    for d in [
        "proc", "sys", "dev", "etc", "tmp", "root", "run", "data", "out", "mnt",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\naudio:x:29:\nuser:x:1000:\n",
    )
    .unwrap();
}

impl Case {
    fn new(name: &'static str) -> Case {
        let dir = tempfile::Builder::new()
            .prefix("bt-spec-rt-")
            .tempdir()
            .unwrap();
        make_rootfs(&dir.path().join("bundle/rootfs"));
        for (f, content) in [
            ("hostname", "berth-test\n"),
            ("hosts", "127.0.0.1 localhost\n"),
            ("resolv.conf", "nameserver 127.0.0.1\n"),
        ] {
            std::fs::write(dir.path().join(f), content).unwrap();
        }
        // The container writes its findings here, whoever it runs as.
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("file"), "from-the-host\n").unwrap();
        let rt_root = tempfile::Builder::new()
            .prefix("bt-spec-rtroot-")
            .tempdir()
            .unwrap();
        Case {
            name,
            id: format!("bt-spec-{name}-{}", std::process::id()),
            rt: Runtime::new(rt_root.path()),
            _rt_root: rt_root,
            dir,
            created: false,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Build the spec, run the container to its end, return its exit code
    /// and what its script wrote to /out/result.
    fn run(&mut self, config: &ContainerConfig, host: &HostConfig) -> (i32, String) {
        let system = SystemInfo::detect();
        let mut host = host.clone();
        host.binds.get_or_insert_with(Vec::new).extend([
            format!("{}:/data:ro", self.path("data").display()),
            format!("{}:/out", self.path("out").display()),
        ]);
        let mounts: Vec<_> = spec::parse_mounts(config, &host)
            .unwrap()
            .iter()
            .map(|m| m.resolve(None))
            .collect();
        let (rootfs, hostname, hosts, resolv) = (
            self.path("bundle/rootfs"),
            self.path("hostname"),
            self.path("hosts"),
            self.path("resolv.conf"),
        );
        let built = spec::build(&SpecInput {
            id: &self.id,
            config,
            host: &host,
            rootfs: &rootfs,
            mounts: &mounts,
            hostname_path: &hostname,
            hosts_path: &hosts,
            resolv_conf_path: &resolv,
            netns: Netns::New,
            cgroups_path: format!("/{}", self.id),
            init_path: None,
            seccomp_default: true,
            system: &system,
            donors: Default::default(),
            shm_source: None,
        })
        .unwrap_or_else(|e| panic!("{}: building the spec: {e}", self.name));
        std::fs::write(
            self.path("bundle/config.json"),
            serde_json::to_vec_pretty(&built).unwrap(),
        )
        .unwrap();

        let started = self
            .rt
            .create(
                &self.id,
                &CreateOptions {
                    bundle: self.path("bundle"),
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{}: create: {e}", self.name));
        self.created = true;
        self.rt
            .start(&self.id)
            .unwrap_or_else(|e| panic!("{}: start: {e}", self.name));
        let code = berth_runtime::container::foreground::wait(started.pid, None)
            .unwrap_or_else(|e| panic!("{}: wait: {e}", self.name));
        let result = std::fs::read_to_string(self.path("out/result")).unwrap_or_default();
        (code, result)
    }
}

fn script(lines: &[&str]) -> ContainerConfig {
    ContainerConfig {
        hostname: "spec-test".into(),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            format!("exec > /out/result 2>&1\n{}", lines.join("\n")),
        ]),
        env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
        ..Default::default()
    }
}

/// Lines of the script's output that start with `key=`, as values.
fn value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in:\n{out}"))
}

fn status_field<'a>(out: &'a str, field: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {field}: in:\n{out}"))
}

/// Docker's 14 default capabilities as /proc/self/status shows them.
const DEFAULT_CAPS: &str = "00000000a80425fb";
const NET_RAW: u64 = 1 << 13;

const PROBE: &[&str] = &[
    "echo id=$(id)",
    "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status",
    "echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)",
    "echo pids=$(cat /sys/fs/cgroup/pids/pids.max)",
    "touch /rootfs-write 2>/dev/null && echo rootfs=rw || echo rootfs=ro",
    "echo run=$(grep ' /run ' /proc/mounts)",
    "echo nofile=$(ulimit -n):$(ulimit -Hn)",
    "echo pwd=$(pwd) A=$A HOME=$HOME host=$(hostname)",
    "echo data=$(cat /data/file)",
    "touch /data/x 2>/dev/null && echo datawrite=yes || echo datawrite=no",
    "unshare -U true 2>/dev/null && echo userns=allowed || echo userns=denied",
    "mount -t tmpfs none /mnt 2>/dev/null && echo mount=allowed || echo mount=denied",
];

/// `docker run -u 1000:1000 --group-add audio --group-add 1234 -m 64m
/// --pids-limit 50 --cap-drop NET_RAW --read-only --tmpfs /run:size=8m
/// -v data:/data:ro --ulimit nofile=1024:2048 --security-opt
/// no-new-privileges -w /tmp -e A=1`
fn restricted_user() {
    let mut case = Case::new("user");
    let config = ContainerConfig {
        user: "1000:1000".into(),
        working_dir: "/tmp".into(),
        ..script(PROBE)
    };
    let host = HostConfig {
        group_add: Some(vec!["audio".into(), "1234".into()]),
        memory: 64 << 20,
        pids_limit: Some(50),
        cap_drop: Some(vec!["NET_RAW".into()]),
        readonly_rootfs: true,
        tmpfs: Some(BTreeMap::from([("/run".into(), "size=8m".into())])),
        ulimits: Some(vec![Ulimit {
            name: "nofile".into(),
            soft: 1024,
            hard: 2048,
        }]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        ..Default::default()
    };
    let (code, out) = case.run(&config, &host);
    assert_eq!(code, 0, "user: exit code; output:\n{out}");

    let id = value(&out, "id");
    assert!(
        id.contains("uid=1000(user)") && id.contains("gid=1000(user)"),
        "{id}"
    );
    assert!(id.contains("29(audio)") && id.contains("1234"), "{id}");
    // A non-root user keeps the bounding set but no effective caps.
    assert_eq!(status_field(&out, "CapEff"), "0000000000000000", "{out}");
    let bnd = u64::from_str_radix(status_field(&out, "CapBnd"), 16).unwrap();
    assert_eq!(
        bnd,
        u64::from_str_radix(DEFAULT_CAPS, 16).unwrap() & !NET_RAW,
        "{out}"
    );
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    assert_eq!(value(&out, "mem"), (64u64 << 20).to_string(), "{out}");
    assert_eq!(value(&out, "pids"), "50", "{out}");
    assert_eq!(value(&out, "rootfs"), "ro");
    let run = value(&out, "run");
    assert!(
        run.starts_with("tmpfs /run tmpfs") && run.contains("size=8192k"),
        "{run}"
    );
    assert!(
        run.contains("nosuid") && run.contains("nodev") && run.contains("noexec"),
        "{run}"
    );
    assert_eq!(value(&out, "nofile"), "1024:2048");
    assert_eq!(
        value(&out, "pwd"),
        "/tmp A=1 HOME=/home/user host=spec-test"
    );
    assert_eq!(value(&out, "data"), "from-the-host");
    assert_eq!(value(&out, "datawrite"), "no");
    // The kernel lets any user make a user namespace; the default
    // profile does not (see `unconfined_control` for the kernel's say).
    assert_eq!(value(&out, "userns"), "denied", "{out}");
    assert_eq!(value(&out, "mount"), "denied");
}

/// The same user without seccomp: the user namespace the default
/// profile refused is the kernel's to give, so the refusal was seccomp's.
fn unconfined_control() {
    let mut case = Case::new("unconfined");
    let config = ContainerConfig {
        user: "1000:1000".into(),
        ..script(&["unshare -U true && echo userns=allowed || echo userns=denied"])
    };
    let host = HostConfig {
        security_opt: Some(vec!["seccomp=unconfined".into()]),
        ..Default::default()
    };
    let (code, out) = case.run(&config, &host);
    assert_eq!(code, 0, "unconfined: output:\n{out}");
    assert_eq!(value(&out, "userns"), "allowed", "{out}");
}

/// Root with the defaults: Docker's 14 capabilities effective, a
/// writable rootfs, and still no mount or user namespace.
fn default_root() {
    let mut case = Case::new("root");
    let (code, out) = case.run(&script(PROBE), &HostConfig::default());
    assert_eq!(code, 0, "root: output:\n{out}");
    let id = value(&out, "id");
    assert!(id.starts_with("uid=0(root) gid=0(root)"), "{id}");
    assert_eq!(status_field(&out, "CapEff"), DEFAULT_CAPS, "{out}");
    assert_eq!(status_field(&out, "CapBnd"), DEFAULT_CAPS, "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");
    assert_eq!(value(&out, "rootfs"), "rw");
    assert_eq!(value(&out, "pwd"), "/ A=1 HOME=/root host=spec-test");
    assert_eq!(value(&out, "userns"), "denied", "{out}");
    assert_eq!(value(&out, "mount"), "denied", "{out}");
}

fn main() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "spec_runtime creates containers and must run as root: \
         unshare --mount --propagation private -- cargo test -p berth-daemon --test spec_runtime"
    );
    let cases: [(&str, fn()); 3] = [
        ("restricted_user", restricted_user),
        ("unconfined_control", unconfined_control),
        ("default_root", default_root),
    ];
    for (name, case) in cases {
        println!("test {name} ...");
        case();
        println!("test {name} ... ok");
    }
    println!("\ntest result: ok. {} passed", cases.len());
}
