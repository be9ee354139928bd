//! `berth network …` and the networking flags of `run`, against a berthd
//! in a network namespace the test makes (as root, inside
//! `unshare -m --propagation private`), compared with the real docker CLI
//! against the same daemon.

mod support;

use support::Daemon;

fn daemon() -> Daemon {
    support::require_root();
    support::require_shim();
    support::require_docker();
    let d = Daemon::start_in_netns();
    d.import_busybox("busybox:latest");
    d
}

/// (stdout, stderr, status) of berth and of docker for the same `args`.
fn both(d: &Daemon, args: &[&str]) -> [(String, String, i32); 2] {
    [d.berth(args), d.docker(args)].map(|o| {
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
            o.status.code().unwrap_or(-1),
        )
    })
}

/// berth prints what docker prints for `args`.
fn same(d: &Daemon, args: &[&str]) -> String {
    let [b, k] = both(d, args);
    assert_eq!(b, k, "berth vs docker for {args:?}");
    b.0
}

#[test]
fn network_commands_print_what_docker_prints() {
    let d = daemon();
    let id = d.ok(&[
        "network",
        "create",
        "--subnet",
        "10.44.0.0/24",
        "--ip-range",
        "10.44.0.16/28",
        "--gateway",
        "10.44.0.254",
        "--label",
        "team=a",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "appnet",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    d.ok(&["network", "create", "--internal", "spare"]);
    let ls = same(&d, &["network", "ls"]);
    assert!(
        ls.starts_with("NETWORK ID     NAME      DRIVER    SCOPE\n"),
        "{ls}"
    );
    assert!(
        ls.contains(&format!("{}   appnet    bridge    local\n", &id[..12])),
        "{ls}"
    );
    same(&d, &["network", "ls", "-q"]);
    same(&d, &["network", "ls", "--no-trunc"]);
    same(
        &d,
        &[
            "network",
            "ls",
            "--format",
            "{{.Name}} {{.Labels}} {{.Internal}} {{.IPv6}}",
        ],
    );
    let only = same(
        &d,
        &[
            "network",
            "ls",
            "-f",
            "label=team=a",
            "--format",
            "{{.Name}}",
        ],
    );
    assert_eq!(only, "appnet\n");
    let custom = same(
        &d,
        &[
            "network",
            "ls",
            "-f",
            "type=custom",
            "--format",
            "{{.Name}}",
        ],
    );
    assert_eq!(custom, "appnet\nspare\n");
    same(&d, &["network", "inspect", "appnet", "bridge"]);
    let ipam = same(
        &d,
        &[
            "network",
            "inspect",
            "-f",
            "{{json .IPAM.Config}}",
            "appnet",
        ],
    );
    assert_eq!(
        ipam.trim(),
        r#"[{"Subnet":"10.44.0.0/24","IPRange":"10.44.0.16/28","Gateway":"10.44.0.254"}]"#
    );

    // run: a static address, an alias, published ports (ps folds ranges).
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "appnet",
        "--network-alias",
        "www",
        "--ip",
        "10.44.0.20",
        "-p",
        "8080:80",
        "-p",
        "7000-7001:7000-7001/udp",
        "--expose",
        "9000",
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
    let ps = same(
        &d,
        &["ps", "--format", "{{.Names}}|{{.Ports}}|{{.Networks}}"],
    );
    assert_eq!(
        ps,
        "web|0.0.0.0:7000-7001->7000-7001/udp, 9000/tcp, 0.0.0.0:8080->80/tcp|appnet\n"
    );
    let dangling = same(
        &d,
        &[
            "network",
            "ls",
            "-f",
            "dangling=true",
            "--format",
            "{{.Name}}",
        ],
    );
    assert_eq!(dangling, "spare\n");
    let ip = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.appnet.IPAddress}}",
        "web",
    ]);
    assert_eq!(ip.trim(), "10.44.0.20");
    same(&d, &["port", "web"]);
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "busybox",
        "nc",
        "-w",
        "3",
        "www",
        "80",
    ]);
    assert_eq!(out.trim(), "web");
    // From the namespace's host side, through the published port.
    let mut got = String::new();
    for _ in 0..30 {
        got = d.host_side(&["busybox", "nc", "-w", "2", "127.0.0.1", "8080"]);
        if !got.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(got.trim(), "web");

    // --dns, --dns-search, --add-host in the /etc files.
    let out = d.ok(&[
        "run",
        "--rm",
        "--dns",
        "10.9.9.9",
        "--dns-search",
        "example.org",
        "--dns-option",
        "ndots:2",
        "--add-host",
        "db:10.1.2.3",
        "busybox",
        "cat",
        "/etc/resolv.conf",
        "/etc/hosts",
    ]);
    for want in [
        "nameserver 10.9.9.9",
        "search example.org",
        "options ndots:2",
        "10.1.2.3\tdb",
    ] {
        assert!(out.contains(want), "{want} in {out}");
    }

    // connect / disconnect a running container on the default bridge.
    d.ok(&["run", "-d", "--name", "roamer", "busybox", "sleep", "300"]);
    d.ok(&["network", "connect", "--alias", "rover", "appnet", "roamer"]);
    let out = d.ok(&["exec", "roamer", "busybox", "nc", "-w", "3", "web", "80"]);
    assert_eq!(out.trim(), "web");
    let nets = d.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "roamer",
    ]);
    assert_eq!(nets.trim(), "appnet bridge");
    d.ok(&["network", "disconnect", "appnet", "roamer"]);
    let out = d.berth(&[
        "exec",
        "roamer",
        "busybox",
        "nc",
        "-w",
        "2",
        "10.44.0.20",
        "80",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty());
    let [b, k] = both(&d, &["network", "disconnect", "appnet", "roamer"]);
    assert_eq!((b.1.as_str(), b.2), (k.1.as_str(), k.2));

    // Errors, as docker words them.
    let [b, k] = both(&d, &["network", "rm", "appnet"]);
    assert_eq!(b, k);
    assert_eq!(
        b.1,
        "Error response from daemon: network appnet has active endpoints (web)\nexit status 1\n"
    );
    assert_eq!(b.2, 1);
    let [b, k] = both(&d, &["network", "rm", "nosuch"]);
    assert_eq!(b, k);
    let [b, _] = both(&d, &["network", "rm", "-f", "nosuch"]);
    assert_eq!(b.2, 0);
    let out = d.berth(&["network", "create", "--gateway", "10.0.0.1", "x"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("every ip-range or gateway must have a corresponding subnet")
    );
    let out = d.berth(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "--ip",
        "10.44.0.2",
        "busybox",
        "true",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("address 10.44.0.2 is outside the range 10.44.0.16/28 of network appnet"),
        "{out:?}"
    );

    d.ok(&["rm", "-f", "web", "roamer"]);
    let pruned = d.ok(&["network", "prune", "-f"]);
    assert_eq!(pruned, "Deleted Networks:\nappnet\nspare\n\n");
    assert_eq!(d.ok(&["network", "prune", "-f"]), "");
    same(&d, &["network", "ls"]);
}
