//! berthd's networking through the real docker CLI, with berthd in a
//! network namespace of its own (see `Berthd::start_in_netns`): the
//! default bridge, user-defined networks with DNS, published ports.

mod support;

use std::process::Command;

use support::Berthd;

/// Run a command in berthd's network namespace (its "host side").
fn host_side(d: &Berthd, cmd: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", d.pid()))
        .args(cmd)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    host_side(&d, &["ip", "link", "set", "lo", "up"]);
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
    // The published port from berthd's host side: loopback and the gateway.
    assert_eq!(fetch(&d, "127.0.0.1", "8080").trim(), "hello from srv");
    assert_eq!(fetch(&d, "172.17.0.1", "8080").trim(), "hello from srv");
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
    // A port already published: a clear error, no container running.
    let out = d.docker(&[
        "run", "-d", "--name", "dup", "-p", "8080:80", "busybox", "sleep", "60",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port is already allocated"), "{err}");
    d.docker_ok(&["rm", "-f", "srv", "rnd", "dup"]);
    assert_eq!(fetch(&d, "127.0.0.1", "8080"), "");
    let rules = host_side(&d, &["nft", "list", "ruleset"]);
    assert!(!rules.contains("dnat to"), "{rules}");
}

#[test]
fn user_networks_resolve_names_and_stay_apart() {
    let (d, _) = Berthd::start_in_netns(&["busybox:latest"], &[]);
    host_side(&d, &["ip", "link", "set", "lo", "up"]);
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
}
