//! berthd's networking through the real docker CLI, with berthd in a
//! network namespace of its own (see `Berthd::start_in_netns`): the
//! default bridge, user-defined networks with DNS, published ports.

mod support;

use support::Berthd;

/// A command's stdout in berthd's network namespace (its "host side").
fn host_side(d: &Berthd, cmd: &[&str]) -> String {
    String::from_utf8_lossy(&d.host_side(cmd).stdout).into_owned()
}

/// Interfaces in berthd's namespace, sorted.
fn links(d: &Berthd) -> Vec<String> {
    let mut l: Vec<String> = host_side(d, &["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap().to_string())
        .collect();
    l.sort();
    l
}

/// The links once no veth teardown is pending: berthd deletes a released
/// container's veths on a thread of its own, after its API call returns.
fn settled_links(d: &Berthd, want: &[String]) -> Vec<String> {
    for _ in 0..100 {
        let l = links(d);
        if l == want {
            return l;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    links(d)
}

/// The links once they stop changing (veths of `run --rm` containers that
/// just ended may still be going).
fn stable_links(d: &Berthd) -> Vec<String> {
    let mut last = links(d);
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = links(d);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// berth's nftables table in berthd's namespace.
fn nft_table(d: &Berthd) -> String {
    host_side(d, &["nft", "list", "table", "ip", "berth"])
}

/// The sandbox files under `<exec-root>/netns`.
fn sandboxes(d: &Berthd) -> Vec<String> {
    std::fs::read_dir(d.pidfile.parent().unwrap().join("netns"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// A one-shot TFTP responder on UDP `port` in the network namespace at
/// `netns`: it answers the first read request with one data block,
/// `over udp: <file name>`, and waits for the client's ack.
fn udp_responder(netns: &str, port: u16) -> std::process::Child {
    use std::io::BufRead;
    let script = format!(
        r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", {port}))
s.settimeout(30)
print("ready", flush=True)
data, peer = s.recvfrom(1024)
assert data[:2] == b"\x00\x01", data
name = data[2:].split(b"\x00")[0]
s.sendto(b"\x00\x03\x00\x01over udp: " + name + b"\n", peer)
ack, _ = s.recvfrom(1024)
assert ack[:2] == b"\x00\x04", ack
"#
    );
    let mut child = std::process::Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .args(["python3", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

/// `docker args`' stderr, asserting it failed.
fn docker_err(d: &Berthd, args: &[&str]) -> String {
    let out = d.docker(args);
    assert!(!out.status.success(), "docker {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The containers a network lists (name → IPv4 address).
fn members(d: &Berthd, net: &str) -> String {
    d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}}={{.IPv4Address}} {{end}}",
        net,
    ])
    .trim()
    .to_string()
}

fn ip_of(d: &Berthd, name: &str) -> String {
    d.docker_ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        name,
    ])
    .trim()
    .to_string()
}

/// Wait until a TCP server answers from berthd's namespace.
fn fetch(d: &Berthd, ip: &str, port: &str) -> String {
    for _ in 0..50 {
        let out = host_side(d, &["busybox", "nc", "-w", "2", ip, port]);
        if !out.is_empty() {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    String::new()
}

#[test]
fn default_bridge_containers_talk_and_publish_ports() {
    let (d, _) = Berthd::start_in_netns(&["busybox:latest"], &[]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "-p",
        "8080:80",
        "busybox",
        "busybox",
        "nc",
        "-ll",
        "-p",
        "80",
        "-e",
        "echo",
        "hello from srv",
    ]);
    let ip = ip_of(&d, "srv");
    assert!(ip.starts_with("172.17.0."), "{ip}");
    // Another container on the default bridge, over TCP.
    let out = d.docker_ok(&[
        "run", "--rm", "busybox", "busybox", "nc", "-w", "5", &ip, "80",
    ]);
    assert_eq!(out.trim(), "hello from srv");
    // And over UDP: busybox's tftp client fetches a file from a TFTP
    // responder in another container's namespace (this busybox's nc has
    // no -u), one datagram each way.
    d.docker_ok(&["run", "-d", "--name", "usrv", "busybox", "sleep", "300"]);
    let uip = ip_of(&d, "usrv");
    let sandbox = d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "usrv"]);
    let server = udp_responder(sandbox.trim(), 5000);
    let out = d.docker_ok(&[
        "run", "--rm", "busybox", "busybox", "tftp", "-g", "-r", "greeting", "-l", "-", &uip,
        "5000",
    ]);
    assert_eq!(out, "over udp: greeting\n");
    let status = server.wait_with_output().unwrap();
    assert!(status.status.success(), "{status:?}");
    // The published port from berthd's host side: loopback and the gateway.
    assert_eq!(fetch(&d, "127.0.0.1", "8080").trim(), "hello from srv");
    assert_eq!(fetch(&d, "172.17.0.1", "8080").trim(), "hello from srv");
    // And from another container, through the host's address.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "busybox",
        "busybox",
        "nc",
        "-w",
        "5",
        "172.17.0.1",
        "8080",
    ]);
    assert_eq!(out.trim(), "hello from srv");
    let port = d.docker_ok(&["port", "srv"]);
    assert!(port.contains("80/tcp -> 0.0.0.0:8080"), "{port}");
    // -P: a random free port, reported by inspect and docker port.
    d.docker_ok(&[
        "run", "-d", "--name", "rnd", "-P", "--expose", "90", "busybox", "busybox", "nc", "-ll",
        "-p", "90", "-e", "echo", "random",
    ]);
    let hp = d.docker_ok(&[
        "inspect",
        "-f",
        "{{(index (index .NetworkSettings.Ports \"90/tcp\") 0).HostPort}}",
        "rnd",
    ]);
    let hp = hp.trim();
    assert!(hp.parse::<u16>().unwrap() > 1024, "{hp}");
    assert!(
        d.docker_ok(&["port", "rnd", "90"])
            .contains(&format!(":{hp}"))
    );
    assert_eq!(fetch(&d, "127.0.0.1", hp).trim(), "random");
    // A port already published: a clear error; the container is made but
    // does not run, and nothing of its network is left.
    let (links_before, rules_before, members_before) =
        (stable_links(&d), nft_table(&d), members(&d, "bridge"));
    let err = docker_err(
        &d,
        &[
            "run", "-d", "--name", "dup", "-p", "8080:80", "busybox", "sleep", "60",
        ],
    );
    // (The docker CLI adds its `Run 'docker run --help'` lines.)
    assert!(
        err.lines()
            .next()
            .unwrap()
            .ends_with("bind for 0.0.0.0:8080/tcp failed: port is already allocated"),
        "{err}"
    );
    let state = d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "dup"]);
    assert_ne!(state.trim(), "running");
    assert_eq!(settled_links(&d, &links_before), links_before);
    assert_eq!(nft_table(&d), rules_before);
    assert_eq!(members(&d, "bridge"), members_before);
    // ps shows the ports as docker does.
    let ps = d.docker_ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    assert!(ps.lines().any(|l| l == "srv 0.0.0.0:8080->80/tcp"), "{ps}");
    d.docker_ok(&["rm", "-f", "srv", "rnd", "dup", "usrv"]);
    assert!(sandboxes(&d).is_empty(), "{:?}", sandboxes(&d));
    assert_eq!(members(&d, "bridge"), "");
    assert_eq!(fetch(&d, "127.0.0.1", "8080"), "");
    let rules = host_side(&d, &["nft", "list", "ruleset"]);
    assert!(!rules.contains("dnat to"), "{rules}");
}

#[test]
fn user_networks_resolve_names_and_stay_apart() {
    let (d, _) = Berthd::start_in_netns(&["busybox:latest"], &[]);
    let id = d.docker_ok(&["network", "create", "--subnet", "10.31.0.0/24", "appnet"]);
    d.docker_ok(&["network", "create", "other"]);
    let ls = d.docker_ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    for n in [
        "bridge bridge",
        "host host",
        "none null",
        "appnet bridge",
        "other bridge",
    ] {
        assert!(ls.lines().any(|l| l == n), "{n} in {ls}");
    }
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "appnet",
        "--network-alias",
        "www",
        "--ip",
        "10.31.0.50",
        "busybox",
        "busybox",
        "nc",
        "-ll",
        "-p",
        "80",
        "-e",
        "echo",
        "web",
    ]);
    for name in ["web", "www"] {
        let out = d.docker_ok(&[
            "run",
            "--rm",
            "--network",
            "appnet",
            "busybox",
            "busybox",
            "nslookup",
            name,
        ]);
        assert!(out.contains("10.31.0.50"), "{name}: {out}");
        let out = d.docker_ok(&[
            "run",
            "--rm",
            "--network",
            "appnet",
            "busybox",
            "busybox",
            "nc",
            "-w",
            "5",
            name,
            "80",
        ]);
        assert_eq!(out.trim(), "web");
    }
    // Not from another network.
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "other",
        "busybox",
        "busybox",
        "nslookup",
        "web",
    ]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("10.31.0.50"));
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "other",
        "busybox",
        "busybox",
        "nc",
        "-w",
        "2",
        "10.31.0.50",
        "80",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty());
    // connect lets a running container on `other` in, by name and alias;
    // disconnect shuts it out again.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "roamer",
        "--network",
        "other",
        "busybox",
        "sleep",
        "300",
    ]);
    let reach = |target: &str| {
        let out = d.docker(&["exec", "roamer", "busybox", "nc", "-w", "2", target, "80"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(reach("10.31.0.50"), "");
    d.docker_ok(&["network", "connect", "--alias", "rover", "appnet", "roamer"]);
    assert_eq!(reach("web"), "web");
    assert_eq!(reach("10.31.0.50"), "web");
    let nets = d.docker_ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "roamer",
    ]);
    assert_eq!(nets.trim(), "appnet other");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "busybox",
        "nslookup",
        "rover",
    ]);
    assert!(out.contains("10.31.0."), "{out}");
    d.docker_ok(&["network", "disconnect", "appnet", "roamer"]);
    assert_eq!(reach("10.31.0.50"), "");
    let err = docker_err(&d, &["network", "disconnect", "appnet", "roamer"]);
    assert!(err.contains("is not connected to network appnet"), "{err}");
    d.docker_ok(&["rm", "-f", "roamer"]);
    // Two --network at run: an interface on each, names of both resolve.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "other",
        "--network",
        "appnet",
        "busybox",
        "sh",
        "-c",
        "busybox ip -o -4 addr show | busybox grep -c eth; busybox nc -w 3 web 80",
    ]);
    assert_eq!(out, "2\nweb\n");
    let inspect = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{.Id}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
        "appnet",
    ]);
    assert_eq!(
        inspect.trim(),
        format!("{} 10.31.0.0/24 10.31.0.1", id.trim())
    );
    let err = d.docker(&["network", "rm", "appnet"]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("has active endpoints"));
    let err = d.docker(&["network", "create", "--subnet", "10.31.0.0/16", "clash"]);
    assert!(
        String::from_utf8_lossy(&err.stderr)
            .contains("overlaps subnet 10.31.0.0/24 of network appnet")
    );
    d.docker_ok(&["rm", "-f", "web"]);
    d.docker_ok(&["network", "rm", "appnet"]);
    let pruned = d.docker_ok(&["network", "prune", "-f"]);
    assert!(pruned.contains("other"), "{pruned}");
    // Each change was an event, as dockerd sends them.
    let until = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 1
    );
    let events = d.docker_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "type=network",
        "--filter",
        "network=appnet",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    let actions: Vec<&str> = events.lines().collect();
    for want in [
        "create appnet",
        "connect appnet",
        "disconnect appnet",
        "destroy appnet",
    ] {
        assert!(actions.contains(&want), "{want} missing: {events}");
    }
}

#[test]
fn host_none_and_container_modes_behave_as_in_docker() {
    let (d, _) = Berthd::start_in_netns(&["busybox:latest"], &[]);
    // host: the namespace's own interfaces, berth0 among them.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert!(out.contains("berth0"), "{out}");
    // none: loopback only.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains(": lo:"), "{out}");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "none1",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    let nets = d.docker_ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}} [{{.NetworkSettings.IPAddress}}]",
        "none1",
    ]);
    assert_eq!(nets.trim(), "none []");
    // container:<name>: the other's interfaces, its loopback included.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "base",
        "busybox",
        "busybox",
        "nc",
        "-ll",
        "-p",
        "80",
        "-e",
        "echo",
        "from base",
    ]);
    let ip = ip_of(&d, "base");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "container:base",
        "busybox",
        "sh",
        "-c",
        "busybox ip -o addr show eth0; busybox nc -w 3 127.0.0.1 80",
    ]);
    assert!(out.contains(&format!("inet {ip}/16")), "{out}");
    assert!(out.contains("from base"), "{out}");
    let err = docker_err(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "container:none1",
            "-p",
            "80:80",
            "busybox",
            "true",
        ],
    );
    assert!(
        err.contains("conflicting options: port publishing and the container type network mode"),
        "{err}"
    );
    d.docker_ok(&["rm", "-f", "base", "none1"]);
    assert!(sandboxes(&d).is_empty(), "{:?}", sandboxes(&d));
}

#[test]
fn macvlan_containers_on_a_parent_interface_reach_each_other() {
    let (d, _) = Berthd::start_in_netns(&["busybox:latest"], &[]);
    // The parent: one end of a veth pair (this kernel may lack the dummy
    // driver); macvlan's bridge mode joins its children whatever the parent.
    for cmd in [
        &[
            "ip", "link", "add", "btpar0", "type", "veth", "peer", "name", "btpar1",
        ][..],
        &["ip", "link", "set", "btpar0", "up"],
        &["ip", "link", "set", "btpar1", "up"],
    ] {
        assert!(d.host_side(cmd).status.success(), "{cmd:?}");
    }
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.77.0.0/24",
        "--gateway",
        "10.77.0.1",
        "-o",
        "parent=btpar0",
        "mv",
    ]);
    let driver = d.docker_ok(&["network", "inspect", "-f", "{{.Driver}} {{.Options}}", "mv"]);
    assert_eq!(driver.trim(), "macvlan map[parent:btpar0]");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "m1",
        "--network",
        "mv",
        "--ip",
        "10.77.0.10",
        "busybox",
        "busybox",
        "nc",
        "-ll",
        "-p",
        "80",
        "-e",
        "echo",
        "over macvlan",
    ]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "mv",
        "busybox",
        "sh",
        "-c",
        "busybox ip -o addr show eth0; busybox nc -w 3 10.77.0.10 80",
    ]);
    assert!(out.contains("inet 10.77.0.2/24"), "{out}");
    assert!(out.contains("over macvlan"), "{out}");
    assert_eq!(members(&d, "mv"), "m1=10.77.0.10/24");
    let err = docker_err(
        &d,
        &[
            "run",
            "-d",
            "--network",
            "mv",
            "-p",
            "81:80",
            "busybox",
            "true",
        ],
    );
    assert!(err.contains("bridge networks only"), "{err}");
    d.docker_ok(&["rm", "-f", "m1"]);
    d.docker_ok(&["network", "rm", "mv"]);
    assert!(
        !links(&d)
            .iter()
            .any(|l| l.starts_with("mv") || l.starts_with("macv"))
    );
}

#[test]
fn bad_input_gives_clear_errors_and_leaves_nothing_half_made() {
    let (d, _) = Berthd::start_in_netns(&["busybox:latest"], &[]);
    d.docker_ok(&[
        "network",
        "create",
        "--subnet",
        "10.88.0.0/24",
        "--ip-range",
        "10.88.0.128/25",
        "good",
    ]);
    let before = (
        links(&d),
        nft_table(&d),
        d.docker_ok(&["network", "ls", "-q"]),
        d.docker_ok(&["ps", "-aq"]),
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["network", "create", "--subnet", "10.88.0.0/16", "clash"],
            "overlaps subnet 10.88.0.0/24 of network good",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.89.0.0/24",
                "--gateway",
                "10.90.0.1",
                "gw",
            ],
            "10.90.0.1",
        ),
        (
            &["network", "create", "--subnet", "10.89.0.0/24", "good"],
            "already exists",
        ),
        (&["network", "create", "-d", "nosuch", "drv"], "nosuch"),
        (
            &[
                "create",
                "--name",
                "out",
                "--network",
                "good",
                "--ip",
                "10.88.0.5",
                "busybox",
                "true",
            ],
            "address 10.88.0.5 is outside the range 10.88.0.128/25 of network good",
        ),
        (
            &[
                "create",
                "--name",
                "def",
                "--ip",
                "172.17.0.50",
                "busybox",
                "true",
            ],
            "user specified IP address is supported on user defined networks only",
        ),
        (
            &["network", "create", "--ipam-driver", "nosuch", "ip"],
            "IPAM driver \"nosuch\" is not supported by berthd",
        ),
        (
            &["network", "create", "--ipv6", "v6"],
            "IPv6 networks are not supported by berthd",
        ),
        (
            &[
                "create",
                "--name",
                "six",
                "--network",
                "good",
                "--ip6",
                "fd00::5",
                "busybox",
                "true",
            ],
            "network good: IPv6 addresses are not supported by berthd",
        ),
        (
            &[
                "create",
                "--name",
                "nonet",
                "--network",
                "nosuch",
                "busybox",
                "true",
            ],
            "nosuch",
        ),
    ];
    for (args, want) in cases {
        let err = docker_err(&d, args);
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    let after = (
        settled_links(&d, &before.0),
        nft_table(&d),
        d.docker_ok(&["network", "ls", "-q"]),
        d.docker_ok(&["ps", "-aq"]),
    );
    assert_eq!(before, after);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "holder",
        "--network",
        "good",
        "busybox",
        "sleep",
        "300",
    ]);
    let err = docker_err(&d, &["network", "rm", "good"]);
    assert!(
        err.contains("network good has active endpoints (holder)"),
        "{err}"
    );
    let err = docker_err(&d, &["network", "rm", "bridge"]);
    assert!(err.contains("bridge"), "{err}");
    d.docker_ok(&["rm", "-f", "holder"]);
    d.docker_ok(&["network", "rm", "good"]);
    assert!(sandboxes(&d).is_empty());
}

#[test]
fn a_berthd_crash_leaves_nothing_dangling_and_networks_survive() {
    let (mut d, _) = Berthd::start_in_netns(&["busybox:latest"], &[]);
    d.docker_ok(&["network", "create", "--subnet", "10.66.0.0/24", "keep"]);
    let base_links = links(&d);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "stays",
        "--network",
        "keep",
        "--network-alias",
        "st",
        "-p",
        "8081:80",
        "busybox",
        "busybox",
        "nc",
        "-ll",
        "-p",
        "80",
        "-e",
        "echo",
        "still here",
    ]);
    d.docker_ok(&[
        "run", "-d", "--name", "dies", "-p", "8082:80", "busybox", "busybox", "nc", "-ll", "-p",
        "80", "-e", "echo", "gone",
    ]);
    assert_eq!(fetch(&d, "127.0.0.1", "8082").trim(), "gone");
    let dies_pid: i32 = d
        .docker_ok(&["inspect", "-f", "{{.State.Pid}}", "dies"])
        .trim()
        .parse()
        .unwrap();
    // berthd dies; while it is gone, so does one of its containers.
    d.crash();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dies_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    d.restart();
    // The dead one's endpoint, veth, rules and sandbox are gone...
    assert_eq!(members(&d, "bridge"), "");
    assert_eq!(fetch(&d, "127.0.0.1", "8082"), "");
    let rules = nft_table(&d);
    assert!(!rules.contains("8082"), "{rules}");
    // ...the live one keeps its address, port and name.
    assert_eq!(members(&d, "keep"), "stays=10.66.0.2/24");
    assert_eq!(fetch(&d, "127.0.0.1", "8081").trim(), "still here");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "keep",
        "busybox",
        "busybox",
        "nc",
        "-w",
        "3",
        "st",
        "80",
    ]);
    assert_eq!(out.trim(), "still here");
    // Its address stays allocated: the next one gets another.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "next",
        "--network",
        "keep",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(ip_of(&d, "next"), "10.66.0.3");
    d.docker_ok(&["rm", "-f", "stays", "dies", "next"]);
    assert_eq!(settled_links(&d, &base_links), base_links);
    assert!(sandboxes(&d).is_empty(), "{:?}", sandboxes(&d));
    assert!(!nft_table(&d).contains("dnat to"));
    // A plain restart: the network is still there, and usable.
    d.restart();
    assert!(
        d.docker_ok(&["network", "ls", "--format", "{{.Name}}"])
            .lines()
            .any(|l| l == "keep")
    );
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "keep",
        "busybox",
        "busybox",
        "ip",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(out.contains("inet 10.66.0.2/24"), "{out}");
    assert_eq!(settled_links(&d, &base_links), base_links);
}
