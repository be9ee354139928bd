//! Specs built from the bodies the docker CLI 28 sends for
//! `POST /containers/create` (captured from `docker run ...` against a
//! recording socket; the command lines are in each test), merged with a
//! busybox image's config as the daemon would.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use berth_api::containers::{ContainerCreateRequest, HostConfig};
use oci_spec::runtime::{Capability, LinuxNamespaceType, LinuxSeccompAction, Mount, Spec};

use super::*;

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn fixture(name: &str) -> ContainerCreateRequest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/spec/testdata")
        .join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// Temp rootfs, daemon files and everything `build` takes.
struct Env {
    dir: tempfile::TempDir,
    system: SystemInfo,
    init_path: Option<PathBuf>,
    seccomp_default: bool,
    donors: Donors,
    shm_source: Option<PathBuf>,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("bt-spec-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/group"),
            "root:x:0:\naudio:x:29:user\nuser:x:1000:\n",
        )
        .unwrap();
        Env {
            dir,
            system: SystemInfo::fixed(),
            init_path: Some("/usr/libexec/berth-init".into()),
            seccomp_default: true,
            donors: Donors::default(),
            shm_source: None,
        }
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The daemon's part: merge the image (busybox: `Cmd ["sh"]`, a
    /// PATH), default the hostname, resolve volumes, then build.
    fn build(&self, req: &ContainerCreateRequest, netns: Netns) -> Result<Spec> {
        let mut config = req.config.clone();
        if config.cmd.is_none() && config.entrypoint.is_none() {
            config.cmd = Some(vec!["sh".into()]);
        }
        let mut env =
            vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
        env.extend(config.env.clone().unwrap_or_default());
        config.env = Some(env);
        if config.hostname.is_empty() {
            config.hostname = ID[..12].into();
        }
        let host = req.host_config.clone().unwrap_or_default();
        let mounts: Vec<ResolvedMount> = parse_mounts(&config, &host)?
            .iter()
            .map(|m| {
                let vol = match &m.source {
                    MountSource::Volume { name, .. } => Some(PathBuf::from(format!(
                        "/var/lib/berth/volumes/{}/_data",
                        name.clone().unwrap_or_else(|| "anon".into())
                    ))),
                    _ => None,
                };
                m.resolve(vol)
            })
            .collect();
        let (rootfs, hostname, hosts, resolv) = (
            self.rootfs(),
            self.file("hostname"),
            self.file("hosts"),
            self.file("resolv.conf"),
        );
        let spec = build(&SpecInput {
            id: ID,
            config: &config,
            host: &host,
            rootfs: &rootfs,
            mounts: &mounts,
            hostname_path: &hostname,
            hosts_path: &hosts,
            resolv_conf_path: &resolv,
            netns,
            cgroups_path: format!("/berth/{ID}"),
            init_path: self.init_path.as_deref(),
            seccomp_default: self.seccomp_default,
            system: &self.system,
            donors: self.donors,
            shm_source: self.shm_source.as_deref(),
        })?;
        // Whatever we build, the runtime must accept.
        berth_runtime::config::validate(&spec)
            .unwrap_or_else(|e| panic!("runtime rejects the spec: {e}"));
        Ok(spec)
    }
}

fn build_fixture(name: &str) -> Spec {
    Env::new().build(&fixture(name), Netns::New).unwrap()
}

fn mount<'a>(spec: &'a Spec, dest: &str) -> &'a Mount {
    let found: Vec<&Mount> = spec
        .mounts()
        .iter()
        .flatten()
        .filter(|m| m.destination() == Path::new(dest))
        .collect();
    assert_eq!(found.len(), 1, "mounts at {dest}: {found:?}");
    found[0]
}

/// Mount destinations in spec order.
fn destinations(spec: &Spec) -> Vec<String> {
    spec.mounts()
        .iter()
        .flatten()
        .map(|m| m.destination().display().to_string())
        .collect()
}

fn options(m: &Mount) -> Vec<&str> {
    m.options().iter().flatten().map(String::as_str).collect()
}

fn namespaces(spec: &Spec) -> HashSet<LinuxNamespaceType> {
    spec.linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .iter()
        .flatten()
        .map(|n| n.typ())
        .collect()
}

fn caps(spec: &Spec) -> HashSet<Capability> {
    spec.process()
        .as_ref()
        .unwrap()
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .clone()
        .unwrap()
}

fn env(spec: &Spec) -> Vec<String> {
    spec.process().as_ref().unwrap().env().clone().unwrap()
}

fn syscall_allowed(spec: &Spec, name: &str) -> bool {
    let s = spec.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
    s.syscalls().iter().flatten().any(|c| {
        c.action() == LinuxSeccompAction::ScmpActAllow && c.names().iter().any(|n| n == name)
    })
}

/// `docker run -m 512m --cpus 1.5 --pids-limit 50 --cap-drop NET_RAW
/// --cap-add SYS_ADMIN -u 1000:1000 --read-only --tmpfs /run:size=64m
/// -v /host:/data:ro --ulimit nofile=1024:2048 --security-opt
/// no-new-privileges -w /tmp -e A=1 busybox sh`
#[test]
fn run_with_limits() {
    let spec = build_fixture("run_limits");
    let p = spec.process().as_ref().unwrap();
    assert_eq!(p.args().as_deref(), Some(&["sh".to_string()][..]));
    assert_eq!(p.cwd(), Path::new("/tmp"));
    assert!(!p.terminal().unwrap());
    assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
    assert!(p.user().additional_gids().is_none());
    assert_eq!(p.no_new_privileges(), Some(true));
    assert_eq!(p.oom_score_adj(), Some(0));
    let e = env(&spec);
    assert_eq!(
        e,
        vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME=0123456789ab",
            "A=1",
            "HOME=/home/user"
        ]
    );
    let rl = &p.rlimits().as_ref().unwrap()[0];
    assert_eq!(
        (rl.typ().to_string(), rl.soft(), rl.hard()),
        ("RLIMIT_NOFILE".into(), 1024, 2048)
    );

    let c = caps(&spec);
    assert!(c.contains(&Capability::SysAdmin) && !c.contains(&Capability::NetRaw));
    assert_eq!(c.len(), 14);
    assert_eq!(
        p.capabilities()
            .as_ref()
            .unwrap()
            .effective()
            .as_ref()
            .unwrap()
            .len(),
        14
    );

    assert!(spec.root().as_ref().unwrap().readonly().unwrap());
    assert_eq!(spec.hostname().as_deref(), Some("0123456789ab"));

    let run = mount(&spec, "/run");
    assert_eq!(run.typ().as_deref(), Some("tmpfs"));
    assert_eq!(
        options(run),
        vec!["noexec", "nosuid", "nodev", "rprivate", "size=64m"]
    );
    let data = mount(&spec, "/data");
    assert_eq!(
        (data.typ().as_deref(), data.source().as_deref()),
        (Some("bind"), Some(Path::new("/host")))
    );
    assert_eq!(options(data), vec!["rbind", "rprivate", "ro"]);
    // The daemon's files follow the read-only rootfs.
    assert!(options(mount(&spec, "/etc/hosts")).contains(&"ro"));
    assert!(
        mount(&spec, "/etc/resolv.conf")
            .source()
            .as_ref()
            .unwrap()
            .ends_with("resolv.conf")
    );
    assert!(options(mount(&spec, "/dev/shm")).contains(&"size=67108864"));
    assert!(options(mount(&spec, "/sys")).contains(&"ro"));

    let linux = spec.linux().as_ref().unwrap();
    let r = linux.resources().as_ref().unwrap();
    let mem = r.memory().as_ref().unwrap();
    assert_eq!(
        (mem.limit(), mem.swap()),
        (Some(512 << 20), Some(1024 << 20))
    );
    let cpu = r.cpu().as_ref().unwrap();
    assert_eq!((cpu.quota(), cpu.period()), (Some(150_000), Some(100_000)));
    assert_eq!(r.pids().as_ref().unwrap().limit(), 50);
    assert_eq!(
        linux.cgroups_path().as_deref(),
        Some(Path::new(&format!("/berth/{ID}")))
    );
    assert_eq!(
        namespaces(&spec),
        [
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Network
        ]
        .into_iter()
        .collect(),
        "cgroup v1 host: cgroupns stays the host's"
    );
    assert_eq!(
        linux.masked_paths().as_ref().unwrap().len(),
        DEFAULT_MASKED_PATHS.len()
    );
    assert_eq!(
        linux.readonly_paths().as_ref().unwrap().len(),
        DEFAULT_READONLY_PATHS.len()
    );
    // CAP_SYS_ADMIN was added: its syscalls are too.
    assert!(syscall_allowed(&spec, "mount") && syscall_allowed(&spec, "unshare"));
    assert!(!syscall_allowed(&spec, "kexec_load"));
}

/// How many of the 41 capabilities the bounding set here holds: "all"
/// (41 where nothing is withheld from us).
fn bounding_caps() -> usize {
    let bnd = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .map(|v| u64::from_str_radix(&v, 16).unwrap())
        .unwrap();
    (bnd & ((1u64 << 41) - 1)).count_ones() as usize
}

/// `docker run --privileged -t busybox`
#[test]
fn privileged_tty() {
    let spec = build_fixture("privileged_tty");
    let p = spec.process().as_ref().unwrap();
    assert!(p.terminal().unwrap());
    assert!(env(&spec).contains(&"TERM=xterm".to_string()));
    assert_eq!(caps(&spec).len(), bounding_caps());
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_none());
    assert!(linux.masked_paths().as_ref().unwrap().is_empty());
    assert!(linux.readonly_paths().as_ref().unwrap().is_empty());
    assert!(!options(mount(&spec, "/sys")).contains(&"ro"));
    assert!(!options(mount(&spec, "/sys/fs/cgroup")).contains(&"ro"));
    let rules = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .clone()
        .unwrap();
    assert_eq!(rules.len(), 1);
    assert!(rules[0].allow() && rules[0].typ().is_none());
    assert!(
        linux
            .devices()
            .iter()
            .flatten()
            .any(|d| d.path() == Path::new("/dev/null"))
    );
}

/// `docker run --mount type=bind,src=/srv,dst=/srv,readonly,bind-propagation=rslave
/// --mount type=volume,src=vol1,dst=/vol --mount type=tmpfs,dst=/scratch,tmpfs-size=1m,tmpfs-mode=1700
/// -v named:/named -v /a:/b:z,rw --entrypoint /bin/sh busybox -c 'echo x'`
#[test]
fn mounts_of_every_kind() {
    let spec = build_fixture("mounts");
    let p = spec.process().as_ref().unwrap();
    assert_eq!(p.args().clone().unwrap(), vec!["/bin/sh", "-c", "echo x"]);
    let srv = mount(&spec, "/srv");
    assert_eq!(options(srv), vec!["rbind", "rslave", "ro"]);
    let vol = mount(&spec, "/vol");
    assert_eq!(
        vol.source().as_deref(),
        Some(Path::new("/var/lib/berth/volumes/vol1/_data"))
    );
    assert_eq!(options(vol), vec!["rbind", "rprivate"]);
    assert_eq!(
        mount(&spec, "/named").source().as_deref(),
        Some(Path::new("/var/lib/berth/volumes/named/_data"))
    );
    assert_eq!(options(mount(&spec, "/b")), vec!["rbind", "rprivate"]);
    assert_eq!(
        options(mount(&spec, "/scratch")),
        vec![
            "noexec",
            "nosuid",
            "nodev",
            "rprivate",
            "size=1m",
            "mode=1700"
        ]
    );
    // The slave bind needs a propagating rootfs.
    assert_eq!(
        spec.linux()
            .as_ref()
            .unwrap()
            .rootfs_propagation()
            .as_deref(),
        Some("rslave")
    );
    // The /etc files stay writable on a writable rootfs.
    assert!(!options(mount(&spec, "/etc/hostname")).contains(&"ro"));
}

/// `docker run --security-opt seccomp=unconfined --security-opt
/// systempaths=unconfined --cgroupns private --cpu-period 50000
/// --cpu-quota 25000 busybox`
#[test]
fn unconfined_and_private_cgroupns() {
    let spec = build_fixture("seccomp_unconfined");
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_none());
    assert!(linux.masked_paths().as_ref().unwrap().is_empty());
    assert!(linux.readonly_paths().as_ref().unwrap().is_empty());
    assert!(namespaces(&spec).contains(&LinuxNamespaceType::Cgroup));
    let cpu = linux.resources().as_ref().unwrap().cpu().clone().unwrap();
    assert_eq!((cpu.quota(), cpu.period()), (Some(25_000), Some(50_000)));
}

/// `docker run --security-opt seccomp=prof.json busybox` with a profile
/// allowing all but mkdir.
#[test]
fn seccomp_profile_from_the_cli() {
    let spec = build_fixture("seccomp_file");
    let s = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
    assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActAllow);
    let calls = s.syscalls().clone().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].names()[0].as_str(), calls[0].action()),
        ("mkdir", LinuxSeccompAction::ScmpActErrno)
    );
    berth_runtime::seccomp::compile(&s).unwrap();
}

/// `--pid container:a --ipc container:b`: their namespaces, by their
/// inits' pids, and the /dev/shm the daemon mounted for b.
#[test]
fn namespaces_of_other_containers() {
    let mut env = Env::new();
    env.donors = Donors {
        pid: Some(42),
        ipc: Some(43),
    };
    env.shm_source = Some("/run/berth/c/b/shm".into());
    let mut req = fixture("network_none");
    host(&mut req).pid_mode = "container:a".into();
    host(&mut req).ipc_mode = "container:b".into();
    let spec = env.build(&req, Netns::New).unwrap();
    let joined: Vec<(LinuxNamespaceType, Option<PathBuf>)> = spec
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .iter()
        .flatten()
        .filter(|n| matches!(n.typ(), LinuxNamespaceType::Pid | LinuxNamespaceType::Ipc))
        .map(|n| (n.typ(), n.path().clone()))
        .collect();
    assert_eq!(
        joined,
        vec![
            (LinuxNamespaceType::Pid, Some("/proc/42/ns/pid".into())),
            (LinuxNamespaceType::Ipc, Some("/proc/43/ns/ipc".into())),
        ]
    );
    let shm = mount(&spec, "/dev/shm");
    assert_eq!(
        (shm.typ().as_deref(), shm.source().as_deref()),
        (Some("bind"), Some(Path::new("/run/berth/c/b/shm")))
    );
    host(&mut req).sysctls = Some([("kernel.shmmax".to_string(), "1".to_string())].into());
    let e = env.build(&req, Netns::New).unwrap_err().to_string();
    assert!(e.contains("another container's IPC namespace"), "{e}");
    // Unresolved (the daemon found it not running): an error, not a new
    // namespace.
    env.donors = Donors::default();
    host(&mut req).sysctls = None;
    let e = env.build(&req, Netns::New).unwrap_err().to_string();
    assert!(e.contains("not running"), "{e}");
}

/// `docker run --init --pid host --ipc host --uts host busybox echo hi`
#[test]
fn init_and_host_namespaces() {
    let spec = build_fixture("init_host_ns");
    let p = spec.process().as_ref().unwrap();
    assert_eq!(
        p.args().clone().unwrap(),
        vec![INIT_PATH, "--", "echo", "hi"]
    );
    let init = mount(&spec, INIT_PATH);
    assert_eq!(
        init.source().as_deref(),
        Some(Path::new("/usr/libexec/berth-init"))
    );
    assert_eq!(options(init), vec!["bind", "ro"]);
    assert_eq!(
        namespaces(&spec),
        [LinuxNamespaceType::Mount, LinuxNamespaceType::Network]
            .into_iter()
            .collect()
    );
    assert!(
        spec.hostname().is_none(),
        "the host's UTS namespace keeps its name"
    );
    let shm = mount(&spec, "/dev/shm");
    assert_eq!(
        (shm.typ().as_deref(), shm.source().as_deref()),
        (Some("bind"), Some(Path::new("/dev/shm")))
    );

    // Without an init binary the daemon cannot honour --init.
    let mut env = Env::new();
    env.init_path = None;
    let e = env
        .build(&fixture("init_host_ns"), Netns::Host)
        .unwrap_err();
    assert!(e.to_string().contains("Init"), "{e}");
}

/// `docker run --init --pid host --ipc host --uts host --shm-size 128m
/// --memory-reservation 100m --memory-swap 1g --memory-swappiness 10
/// --cpu-shares 512 --cpuset-cpus 0-1 --cpuset-mems 0 --blkio-weight 300
/// --oom-score-adj 100 --device /dev/fuse --device /dev/null:/dev/mynull:r
/// --device-cgroup-rule 'c 42:* rmw' --sysctl net.ipv4.ip_forward=1
/// --sysctl kernel.shm_rmid_forced=1 --hostname myhost --domainname
/// example.com --group-add audio --group-add 1234 busybox echo hi`
#[test]
fn resources_devices_sysctls() {
    let env = Env::new();
    let mut req = fixture("init_host_ns_devices");
    // An IPC sysctl in the host's IPC namespace would change the host.
    let e = env.build(&req, Netns::New).unwrap_err();
    assert_eq!(
        e.to_string(),
        "sysctl \"kernel.shm_rmid_forced\" is not allowed in the host's IPC namespace"
    );

    let h = req.host_config.as_mut().unwrap();
    h.ipc_mode = String::new();
    // dockerd refuses this command line too: swap without memory.
    let e = env.build(&req, Netns::New).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("You should always set the Memory limit"),
        "{e}"
    );
    let h = req.host_config.as_mut().unwrap();
    h.memory = 512 << 20;
    h.uts_mode = String::new();
    // /dev/fuse is not on every test host; /dev/full is.
    h.devices.as_mut().unwrap()[0].path_on_host = "/dev/full".into();
    h.devices.as_mut().unwrap()[0].path_in_container = "/dev/full".into();
    let spec = env.build(&req, Netns::New).unwrap();

    let p = spec.process().as_ref().unwrap();
    assert_eq!(p.oom_score_adj(), Some(100));
    assert_eq!(p.user().additional_gids().clone().unwrap(), vec![29, 1234]);
    assert_eq!(spec.hostname().as_deref(), Some("myhost"));
    assert_eq!(spec.domainname().as_deref(), Some("example.com"));
    assert!(env_has(&spec, "HOSTNAME=myhost"));
    assert!(options(mount(&spec, "/dev/shm")).contains(&"size=134217728"));

    let linux = spec.linux().as_ref().unwrap();
    let r = linux.resources().as_ref().unwrap();
    let mem = r.memory().as_ref().unwrap();
    assert_eq!(
        (mem.reservation(), mem.swap(), mem.swappiness()),
        (Some(100 << 20), Some(1 << 30), Some(10))
    );
    let cpu = r.cpu().as_ref().unwrap();
    assert_eq!(
        (cpu.shares(), cpu.cpus().as_deref(), cpu.mems().as_deref()),
        (Some(512), Some("0-1"), Some("0"))
    );
    assert_eq!(r.block_io().as_ref().unwrap().weight(), Some(300));

    let devs = linux.devices().clone().unwrap();
    let paths: Vec<&Path> = devs.iter().map(|d| d.path().as_path()).collect();
    assert_eq!(
        paths,
        vec![Path::new("/dev/full"), Path::new("/dev/mynull")]
    );
    assert_eq!((devs[1].major(), devs[1].minor()), (1, 3));
    let rules = r.devices().clone().unwrap();
    assert!(!rules[0].allow(), "deny all first");
    let has_rule = |major: i64, minor: Option<i64>, access: &str| {
        rules.iter().any(|r| {
            r.allow()
                && r.major() == Some(major)
                && r.minor() == minor
                && r.access().as_deref() == Some(access)
        })
    };
    assert!(has_rule(1, Some(3), "r") && has_rule(1, Some(7), "rwm") && has_rule(42, None, "rmw"));

    let sysctl = linux.sysctl().clone().unwrap();
    assert_eq!(sysctl["net.ipv4.ip_forward"], "1");
    assert_eq!(sysctl["kernel.shm_rmid_forced"], "1");
    // A net sysctl in the host's network namespace is refused.
    let e = env.build(&req, Netns::Host).unwrap_err();
    assert!(e.to_string().contains("host's network namespace"), "{e}");
}

fn env_has(spec: &Spec, var: &str) -> bool {
    env(spec).iter().any(|e| e == var)
}

/// `docker run -t --security-opt apparmor=unconfined --security-opt
/// label=disable --ulimit core=-1 --cap-add ALL --cap-drop chown busybox`
#[test]
fn all_caps_but_one() {
    let spec = build_fixture("all_caps_tty");
    let c = caps(&spec);
    assert_eq!(c.len(), bounding_caps() - 1);
    assert!(!c.contains(&Capability::Chown));
    let p = spec.process().as_ref().unwrap();
    assert!(p.apparmor_profile().is_none());
    let core = &p.rlimits().as_ref().unwrap()[0];
    assert_eq!((core.soft(), core.hard()), (u64::MAX, u64::MAX));
    // Every capability-gated block of the default profile is in.
    for s in [
        "mount",
        "reboot",
        "init_module",
        "ptrace",
        "bpf",
        "perf_event_open",
        "settimeofday",
    ] {
        assert!(syscall_allowed(&spec, s), "{s}");
    }
}

/// `docker run --rm --network none --memory-swap -1 -m 64m
/// --pids-limit -1 busybox`
#[test]
fn unlimited_swap_and_pids() {
    let spec = build_fixture("network_none");
    let r = spec.linux().as_ref().unwrap().resources().clone().unwrap();
    let mem = r.memory().as_ref().unwrap();
    assert_eq!((mem.limit(), mem.swap()), (Some(64 << 20), Some(-1)));
    assert!(r.pids().is_none());
    assert!(namespaces(&spec).contains(&LinuxNamespaceType::Network));
    // Joining a namespace by path.
    let spec = Env::new()
        .build(
            &fixture("network_none"),
            Netns::Path(Path::new("/run/netns/x")),
        )
        .unwrap();
    let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
    let net = ns
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::Network)
        .unwrap();
    assert_eq!(net.path().as_deref(), Some(Path::new("/run/netns/x")));
}

fn build_err(patch: impl FnOnce(&mut ContainerCreateRequest)) -> String {
    let mut req = fixture("network_none");
    patch(&mut req);
    Env::new().build(&req, Netns::New).unwrap_err().to_string()
}

fn host(req: &mut ContainerCreateRequest) -> &mut HostConfig {
    req.host_config.as_mut().unwrap()
}

#[test]
fn errors_name_what_is_wrong() {
    assert_eq!(
        build_err(|r| {
            r.config.entrypoint = Some(vec![]);
            r.config.cmd = Some(vec![]);
        }),
        "no command specified"
    );
    assert_eq!(
        build_err(|r| host(r).memory = 4 << 20),
        "Minimum memory limit allowed is 6MB"
    );
    assert_eq!(
        build_err(|r| host(r).cap_add = Some(vec!["FOO".into()])),
        "unknown capability: \"CAP_FOO\""
    );
    assert!(
        build_err(|r| host(r).security_opt = Some(vec!["bogus=1".into()])).contains("\"bogus=1\"")
    );
    assert_eq!(
        build_err(|r| r.config.user = "nobody".into()),
        "unable to find user nobody: no matching entries in passwd file"
    );
    assert!(
        build_err(|r| r.config.working_dir = "tmp".into()).contains("needs to be an absolute path")
    );
    assert_eq!(
        build_err(
            |r| host(r).sysctls = Some([("kernel.panic".to_string(), "1".to_string())].into())
        ),
        "sysctl \"kernel.panic\" is not in a separate kernel namespace: setting it would change the host"
    );
    assert!(
        build_err(|r| host(r).oom_score_adj = 1001)
            .contains("range for oom score adj is [-1000, 1000]")
    );
    assert!(build_err(|r| host(r).pid_mode = "container:abc".into()).contains("PidMode"));
    assert!(build_err(|r| host(r).userns_mode = "private".into()).contains("UsernsMode"));
    assert_eq!(
        build_err(|r| host(r).binds = Some(vec!["/host:data".into()])),
        "invalid volume specification: '/host:data': invalid mount path: 'data' mount path must be absolute"
    );
    assert!(
        build_err(
            |r| host(r).ulimits = Some(vec![berth_api::containers::Ulimit {
                name: "nofile".into(),
                soft: 10,
                hard: 5
            }])
        )
        .contains("10 > 5")
    );
    assert!(
        build_err(
            |r| host(r).security_opt = Some(vec!["seccomp={\"defaultAction\":\"NOPE\"}".into()])
        )
        .contains("NOPE")
    );
}

#[test]
fn user_mounts_replace_defaults_and_sort_by_depth() {
    let mut req = fixture("network_none");
    let h = host(&mut req);
    h.binds = Some(vec![
        "/h/deep:/data/a/b".into(),
        "/h/data:/data".into(),
        "/h/shm:/dev/shm".into(),
        "/h/hosts:/etc/hosts:ro".into(),
    ]);
    let spec = Env::new().build(&req, Netns::New).unwrap();
    let dests = destinations(&spec);
    let pos = |d: &str| {
        dests
            .iter()
            .position(|x| x == d)
            .unwrap_or_else(|| panic!("{d} in {dests:?}"))
    };
    assert!(pos("/data") < pos("/data/a/b"));
    assert!(pos("/dev") < pos("/dev/shm"));
    assert_eq!(
        mount(&spec, "/dev/shm").source().as_deref(),
        Some(Path::new("/h/shm"))
    );
    assert_eq!(
        mount(&spec, "/etc/hosts").source().as_deref(),
        Some(Path::new("/h/hosts"))
    );
    assert!(options(mount(&spec, "/etc/hosts")).contains(&"ro"));
}

#[test]
fn cgroup_v2_gets_a_private_cgroupns_and_no_swappiness() {
    let mut env = Env::new();
    env.system.cgroup_v2 = true;
    let mut req = fixture("network_none");
    host(&mut req).memory_swappiness = Some(10);
    let spec = env.build(&req, Netns::New).unwrap();
    assert!(namespaces(&spec).contains(&LinuxNamespaceType::Cgroup));
    let mem = spec
        .linux()
        .as_ref()
        .unwrap()
        .resources()
        .clone()
        .unwrap()
        .memory()
        .unwrap();
    assert_eq!(mem.swappiness(), None);
    host(&mut req).cgroupns_mode = "host".into();
    assert!(
        !namespaces(&env.build(&req, Netns::New).unwrap()).contains(&LinuxNamespaceType::Cgroup)
    );
}

#[test]
fn env_overrides_and_unsets() {
    let mut req = fixture("network_none");
    req.config.env = Some(vec![
        "PATH=/bin".into(),
        "HOSTNAME".into(),
        "HOME=/custom".into(),
        "X=1".into(),
    ]);
    let spec = Env::new().build(&req, Netns::New).unwrap();
    assert_eq!(env(&spec), vec!["PATH=/bin", "HOME=/custom", "X=1"]);
}

#[test]
fn seccomp_default_off_leaves_no_filter() {
    let mut env = Env::new();
    env.seccomp_default = false;
    let spec = env.build(&fixture("network_none"), Netns::New).unwrap();
    assert!(spec.linux().as_ref().unwrap().seccomp().is_none());
}

#[test]
fn a_user_mount_over_a_parent_takes_the_defaults_beneath_but_not_the_etc_files() {
    let mut req = fixture("network_none");
    host(&mut req).binds = Some(vec!["/h/dev:/dev".into(), "/h/etc:/etc".into()]);
    let spec = Env::new().build(&req, Netns::New).unwrap();
    let dests = destinations(&spec);
    for gone in ["/dev/pts", "/dev/shm", "/dev/mqueue"] {
        assert!(!dests.contains(&gone.to_string()), "{gone} in {dests:?}");
    }
    assert_eq!(
        mount(&spec, "/dev").source().as_deref(),
        Some(Path::new("/h/dev"))
    );
    let pos = |d: &str| dests.iter().position(|x| x == d).unwrap();
    assert!(pos("/etc") < pos("/etc/hosts") && pos("/etc") < pos("/etc/resolv.conf"));
}
