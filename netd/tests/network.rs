//! netd against the kernel: sandboxes, bridge and macvlan networks,
//! isolation, published ports, DNS, bad input, restore. Each test runs in
//! namespaces of its own (see support).

mod support;

use std::net::{Ipv4Addr, SocketAddr};

use berth_netd::{EndpointRequest, NetworkRequest, ports::parse_publish, sandbox};
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use support::*;

fn ep(network: &str, name: &str) -> EndpointRequest {
    EndpointRequest {
        network: network.into(),
        name: name.into(),
        ..Default::default()
    }
}

fn addr(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

#[test]
fn bridge_sandboxes_exchange_tcp_and_udp() {
    if !isolate("bridge_sandboxes_exchange_tcp_and_udp") {
        return;
    }
    let env = Env::new();
    let (bridge, _) = env.netd.network("bridge").unwrap();
    assert_eq!(bridge.subnet.unwrap().to_string(), "172.17.0.0/16");
    assert_eq!(bridge.interface.as_deref(), Some("berth0"));
    let a = env.netd.create_sandbox("aaaa").unwrap();
    let b = env.netd.create_sandbox("bbbb").unwrap();
    assert!(sandbox::is_netns(&a));
    let ea = env.netd.connect("aaaa", ep("bridge", "a")).unwrap();
    let eb = env.netd.connect("bbbb", ep("bridge", "b")).unwrap();
    assert_eq!(ea.ip, Ipv4Addr::new(172, 17, 0, 2));
    assert_eq!(eb.ip, Ipv4Addr::new(172, 17, 0, 3));
    assert_eq!(ea.mac, "02:42:ac:11:00:02");
    assert_eq!(links(Some(&a)), ["eth0", "lo"]);
    let inside = sh(&format!(
        "nsenter --net={} ip -o addr show eth0",
        a.display()
    ));
    assert!(inside.contains("inet 172.17.0.2/16"), "{inside}");
    let routes = sh(&format!("nsenter --net={} ip route", a.display()));
    assert!(
        routes.contains("default via 172.17.0.1 dev eth0"),
        "{routes}"
    );
    let host = sh("ip -o addr show berth0");
    assert!(host.contains("inet 172.17.0.1/16"), "{host}");

    serve_tcp(&b, 7000, "from b over tcp");
    assert_eq!(
        tcp_get(Some(&a), addr(eb.ip, 7000)).unwrap(),
        "from b over tcp"
    );
    serve_udp(&a, 7001, "a got ");
    assert_eq!(
        udp_ask(Some(&b), addr(ea.ip, 7001), b"ping").unwrap(),
        b"a got ping"
    );

    env.netd.release("aaaa").unwrap();
    env.netd.release("bbbb").unwrap();
    assert!(!a.exists() && !b.exists());
    // The veths go on a thread of their own, off release's path.
    let veths = || -> Vec<String> {
        links(None)
            .into_iter()
            .filter(|l| l.starts_with("veth"))
            .collect()
    };
    for _ in 0..100 {
        if veths().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(veths().is_empty(), "{:?}", veths());
    env.netd.cleanup().unwrap();
    assert!(!links(None).contains(&"berth0".to_string()));
    assert!(!ruleset().contains("table ip berth"));
}

#[test]
fn networks_are_isolated_until_connected() {
    if !isolate("networks_are_isolated_until_connected") {
        return;
    }
    let env = Env::new();
    let red = env
        .netd
        .create_network(NetworkRequest {
            name: "red".into(),
            ..Default::default()
        })
        .unwrap();
    env.netd
        .create_network(NetworkRequest {
            name: "blue".into(),
            subnet: Some("10.20.0.0/24".into()),
            ..Default::default()
        })
        .unwrap();
    // The default pools skip the default network's subnet.
    assert_eq!(red.subnet.unwrap().to_string(), "172.18.0.0/16");
    assert_eq!(
        red.interface.as_deref(),
        Some(&*format!("br-{}", &red.id[..12]))
    );
    let a = env.netd.create_sandbox("aaaa").unwrap();
    let b = env.netd.create_sandbox("bbbb").unwrap();
    env.netd.connect("aaaa", ep("red", "a")).unwrap();
    let eb = env.netd.connect("bbbb", ep("blue", "b")).unwrap();
    assert_eq!(eb.ip, Ipv4Addr::new(10, 20, 0, 2));
    serve_tcp(&b, 7000, "blue side");
    // Routed through the host, but dropped by the isolation rules.
    assert!(tcp_get(Some(&a), addr(eb.ip, 7000)).is_err());
    env.netd.connect("aaaa", ep("blue", "a")).unwrap();
    assert_eq!(links(Some(&a)), ["eth0", "eth1", "lo"]);
    assert_eq!(tcp_get(Some(&a), addr(eb.ip, 7000)).unwrap(), "blue side");
    env.netd.disconnect("aaaa", "blue").unwrap();
    assert_eq!(links(Some(&a)), ["eth0", "lo"]);
    assert!(tcp_get(Some(&a), addr(eb.ip, 7000)).is_err());
    env.netd.cleanup().unwrap();
}

fn publish(specs: &[&str]) -> Vec<berth_netd::PortRequest> {
    specs
        .iter()
        .flat_map(|s| parse_publish(s).unwrap())
        .collect()
}

#[test]
fn published_ports_reach_the_container_from_the_host_and_other_containers() {
    if !isolate("published_ports_reach_the_container_from_the_host_and_other_containers") {
        return;
    }
    let env = Env::new();
    // The namespace's "host side" address, as eth0 would be on a host.
    // (A veth pair: this kernel may lack the dummy driver.)
    sh(
        "ip link add bt-uplink type veth peer name bt-far && ip addr add 10.99.0.1/24 dev bt-uplink \
        && ip link set bt-far up && ip link set bt-uplink up",
    );
    let web = env.netd.create_sandbox("web0").unwrap();
    let mut req = ep("bridge", "web");
    req.ports = publish(&[
        "8080:80",
        "127.0.0.1:8081:80",
        "5353:53/udp",
        "9000-9001:90-91",
    ]);
    let e = env.netd.connect("web0", req).unwrap();
    assert_eq!(e.ports.len(), 5);
    serve_tcp(&web, 80, "served by web");
    serve_tcp(&web, 91, "port 91");
    serve_udp(&web, 53, "udp: ");
    let uplink = Ipv4Addr::new(10, 99, 0, 1);
    assert_eq!(tcp_get(None, addr(uplink, 8080)).unwrap(), "served by web");
    assert_eq!(
        tcp_get(None, addr(Ipv4Addr::LOCALHOST, 8080)).unwrap(),
        "served by web"
    );
    assert_eq!(
        tcp_get(None, addr(Ipv4Addr::LOCALHOST, 8081)).unwrap(),
        "served by web"
    );
    assert_eq!(tcp_get(None, addr(uplink, 9001)).unwrap(), "port 91");
    // Published on 127.0.0.1 only: not on the uplink address.
    assert!(tcp_get(None, addr(uplink, 8081)).is_err());
    assert_eq!(udp_ask(None, addr(uplink, 5353), b"q").unwrap(), b"udp: q");
    // Hairpin: another container through the host's address and the gateway.
    let other = env.netd.create_sandbox("other").unwrap();
    env.netd.connect("other", ep("bridge", "other")).unwrap();
    assert_eq!(
        tcp_get(Some(&other), addr(uplink, 8080)).unwrap(),
        "served by web"
    );
    assert_eq!(
        tcp_get(Some(&other), addr(Ipv4Addr::new(172, 17, 0, 1), 8080)).unwrap(),
        "served by web"
    );
    // No proxy process: the port is a rule in berth's table.
    let rules = ruleset();
    assert!(
        rules.contains("tcp dport 8080 dnat to 172.17.0.2:80"),
        "{rules}"
    );
    env.netd.release("web0").unwrap();
    assert!(!ruleset().contains("dnat to"));
    assert!(tcp_get(None, addr(uplink, 8080)).is_err());
    env.netd.cleanup().unwrap();
}

#[test]
fn publish_all_picks_free_ports() {
    if !isolate("publish_all_picks_free_ports") {
        return;
    }
    sh("echo '40000 40002' > /proc/sys/net/ipv4/ip_local_port_range");
    let env = Env::new();
    // Something on the host holds 40000 and 40001.
    let _held = [
        std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 40000)).unwrap(),
        std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 40001)).unwrap(),
    ];
    let s = env.netd.create_sandbox("pub0").unwrap();
    let mut req = ep("bridge", "p");
    req.ports = publish(&["80"]);
    let e = env.netd.connect("pub0", req).unwrap();
    assert_eq!(e.ports[0].host_port, 40002);
    // Nothing free is left for another one.
    env.netd.create_sandbox("pub1").unwrap();
    let mut req = ep("bridge", "q");
    req.ports = publish(&["80"]);
    let err = env.netd.connect("pub1", req).unwrap_err();
    assert_eq!(err.to_string(), "no free host port in 40000-40002 for tcp");
    assert_eq!(
        links(None).iter().filter(|l| l.starts_with("veth")).count(),
        1
    );
    // Our own connection needs a source port from a wider range.
    sh("echo '32768 60999' > /proc/sys/net/ipv4/ip_local_port_range");
    serve_tcp(&s, 80, "random port");
    assert_eq!(
        tcp_get(None, addr(Ipv4Addr::LOCALHOST, 40002)).unwrap(),
        "random port"
    );
    env.netd.cleanup().unwrap();
}

/// Ask the DNS server at `server` for the A records of `name`.
fn resolve(netns: &std::path::Path, server: Ipv4Addr, name: &str) -> (ResponseCode, Vec<Ipv4Addr>) {
    let mut q = Message::new();
    q.set_id(0x4242)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let reply = udp_ask(Some(netns), addr(server, 53), &q.to_vec().unwrap())
        .unwrap_or_else(|e| panic!("asking {server} for {name}: {e}"));
    let r = Message::from_vec(&reply).unwrap();
    assert_eq!(r.id(), 0x4242);
    let ips = r
        .answers()
        .iter()
        .filter_map(|a| match a.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    (r.response_code(), ips)
}

/// A stand-in for the host's resolver: answers every A query with 192.0.2.7.
fn fake_upstream(ip: Ipv4Addr) {
    let s = std::net::UdpSocket::bind((ip, 53)).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = s.recv_from(&mut buf) {
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut r = Message::new();
            r.set_id(q.id()).set_message_type(MessageType::Response);
            for query in q.queries() {
                r.add_query(query.clone());
                r.add_answer(Record::from_rdata(
                    query.name().clone(),
                    60,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
                ));
            }
            let _ = s.send_to(&r.to_vec().unwrap(), peer);
        }
    });
}

#[test]
fn dns_answers_names_and_aliases_within_a_network_only() {
    if !isolate("dns_answers_names_and_aliases_within_a_network_only") {
        return;
    }
    let resolv = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(resolv.path(), "nameserver 127.0.0.1\n").unwrap();
    let env = Env::with(|c| c.resolv_conf = resolv.path().to_path_buf());
    fake_upstream(Ipv4Addr::LOCALHOST);
    let front = env
        .netd
        .create_network(NetworkRequest {
            name: "front".into(),
            ..Default::default()
        })
        .unwrap();
    env.netd
        .create_network(NetworkRequest {
            name: "back".into(),
            ..Default::default()
        })
        .unwrap();
    let web = env.netd.create_sandbox("0123456789abcdef").unwrap();
    let client = env.netd.create_sandbox("client").unwrap();
    let db = env.netd.create_sandbox("db").unwrap();
    let mut req = ep("front", "web");
    req.aliases = vec!["www".into(), "Api".into()];
    let eweb = env.netd.connect("0123456789abcdef", req).unwrap();
    env.netd.connect("client", ep("front", "client")).unwrap();
    let edb = env.netd.connect("db", ep("back", "db")).unwrap();
    let gw = front.gateway.unwrap();
    assert_eq!(env.netd.dns_server("client"), Some(gw));
    for name in ["web", "www", "api", "WEB.", "0123456789ab"] {
        assert_eq!(
            resolve(&client, gw, name),
            (ResponseCode::NoError, vec![eweb.ip]),
            "{name}"
        );
    }
    // db lives on another network.
    assert_eq!(resolve(&client, gw, "db"), (ResponseCode::NXDomain, vec![]));
    let (_, back_eps) = env.netd.network("back").unwrap();
    assert_eq!(back_eps[0].ip, edb.ip);
    // Other names go to the host's resolvers.
    assert_eq!(
        resolve(&client, gw, "example.org"),
        (ResponseCode::NoError, vec![Ipv4Addr::new(192, 0, 2, 7)])
    );
    // Leaving the network takes the name away.
    env.netd.disconnect("0123456789abcdef", "front").unwrap();
    assert_eq!(
        resolve(&client, gw, "www"),
        (ResponseCode::NXDomain, vec![])
    );
    // The default bridge has no embedded DNS, as in Docker.
    env.netd.create_sandbox("plain").unwrap();
    env.netd.connect("plain", ep("bridge", "plain")).unwrap();
    assert_eq!(env.netd.dns_server("plain"), None);
    drop(web);
    drop(db);
    env.netd.cleanup().unwrap();
}

#[test]
fn macvlan_sandboxes_on_one_parent_reach_each_other() {
    if !isolate("macvlan_sandboxes_on_one_parent_reach_each_other") {
        return;
    }
    let env = Env::new();
    // A veth end as the parent: this kernel may lack the dummy driver.
    sh("ip link add bt-parent type veth peer name bt-parent-peer && ip link set bt-parent-peer up");
    let net = env
        .netd
        .create_network(NetworkRequest {
            name: "lan".into(),
            driver: "macvlan".into(),
            subnet: Some("10.77.0.0/24".into()),
            gateway: Some("10.77.0.254".into()),
            options: [("parent".to_string(), "bt-parent".to_string())].into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(net.gateway, Some(Ipv4Addr::new(10, 77, 0, 254)));
    let a = env.netd.create_sandbox("mva").unwrap();
    let b = env.netd.create_sandbox("mvb").unwrap();
    let ea = env.netd.connect("mva", ep("lan", "a")).unwrap();
    let mut rb = ep("lan", "b");
    rb.ip = Some(Ipv4Addr::new(10, 77, 0, 50));
    let eb = env.netd.connect("mvb", rb).unwrap();
    assert_eq!(ea.ip, Ipv4Addr::new(10, 77, 0, 1));
    assert_eq!(eb.ip, Ipv4Addr::new(10, 77, 0, 50));
    let kind = sh(&format!(
        "nsenter --net={} ip -d -o link show eth0",
        a.display()
    ));
    assert!(kind.contains("macvlan mode bridge"), "{kind}");
    serve_tcp(&b, 7000, "over macvlan");
    assert_eq!(
        tcp_get(Some(&a), addr(eb.ip, 7000)).unwrap(),
        "over macvlan"
    );
    serve_udp(&a, 7001, "mv ");
    assert_eq!(udp_ask(Some(&b), addr(ea.ip, 7001), b"u").unwrap(), b"mv u");
    env.netd.disconnect("mva", "lan").unwrap();
    assert_eq!(links(Some(&a)), ["lo"]);
    env.netd.cleanup().unwrap();
    // The parent is the host's, and stays.
    assert!(links(None).contains(&"bt-parent".to_string()));
}

/// A request that must fail.
type Attempt<'a> = Box<dyn Fn() -> berth_netd::NetdError + 'a>;

#[test]
fn bad_input_gives_clear_errors_and_changes_nothing() {
    if !isolate("bad_input_gives_clear_errors_and_changes_nothing") {
        return;
    }
    let env = Env::new();
    sh(
        "ip link add bt-uplink type veth peer name bt-far && ip addr add 10.99.0.1/24 dev bt-uplink \
        && ip link set bt-far up && ip link set bt-uplink up",
    );
    let net =
        |name: &str, subnet: &str, gateway: Option<&str>, range: Option<&str>| NetworkRequest {
            name: name.into(),
            subnet: Some(subnet.into()),
            gateway: gateway.map(Into::into),
            ip_range: range.map(Into::into),
            ..Default::default()
        };
    env.netd
        .create_network(net("red", "10.30.0.0/16", None, None))
        .unwrap();
    env.netd
        .create_network(net("ranged", "10.50.0.0/24", None, Some("10.50.0.128/25")))
        .unwrap();
    env.netd.create_sandbox("c1").unwrap();
    env.netd.create_sandbox("c2").unwrap();
    let mut r1 = ep("ranged", "one");
    r1.ports = publish(&["8080:80"]);
    let e1 = env.netd.connect("c1", r1).unwrap();
    assert_eq!(e1.ip, Ipv4Addr::new(10, 50, 0, 129));

    let snapshot = || {
        (
            links(None),
            ruleset(),
            std::fs::read_to_string(env.state_file()).unwrap(),
            links(Some(&env.netns_dir().join("c2"))),
        )
    };
    let before = snapshot();
    let cases: Vec<(Attempt, &str)> = vec![
        (
            Box::new(|| {
                env.netd
                    .create_network(net("x", "10.30.1.0/24", None, None))
                    .unwrap_err()
            }),
            "subnet 10.30.1.0/24 overlaps subnet 10.30.0.0/16 of network red",
        ),
        (
            Box::new(|| {
                env.netd
                    .create_network(net("x", "10.40.0.0/24", Some("10.40.1.1"), None))
                    .unwrap_err()
            }),
            "gateway 10.40.1.1 is outside subnet 10.40.0.0/24",
        ),
        (
            Box::new(|| {
                env.netd
                    .create_network(net("x", "10.40.0.0/24", None, Some("10.41.0.0/25")))
                    .unwrap_err()
            }),
            "ip range 10.41.0.0/25 is outside subnet 10.40.0.0/24",
        ),
        (
            Box::new(|| {
                env.netd
                    .create_network(net("x", "10.99.0.0/16", None, None))
                    .unwrap_err()
            }),
            "subnet 10.99.0.0/16 overlaps the host's route to 10.99.0.0/24",
        ),
        (
            Box::new(|| {
                env.netd
                    .create_network(net("x", "10.40.0.5/24", None, None))
                    .unwrap_err()
            }),
            "invalid subnet \"10.40.0.5/24\": host bits set, did you mean 10.40.0.0/24",
        ),
        (
            Box::new(|| {
                env.netd
                    .create_network(net("red", "10.60.0.0/24", None, None))
                    .unwrap_err()
            }),
            "network with name red already exists",
        ),
        (
            Box::new(|| {
                env.netd
                    .create_network(NetworkRequest {
                        name: "x".into(),
                        driver: "overlay2".into(),
                        ..Default::default()
                    })
                    .unwrap_err()
            }),
            "driver \"overlay2\" is not supported (bridge, macvlan, host, null)",
        ),
        (
            Box::new(|| {
                env.netd
                    .create_network(NetworkRequest {
                        name: "x".into(),
                        driver: "macvlan".into(),
                        ..Default::default()
                    })
                    .unwrap_err()
            }),
            "invalid option parent=\"\": a macvlan network needs -o parent=<interface>",
        ),
        (
            Box::new(|| {
                let mut r = ep("ranged", "two");
                r.ip = Some(Ipv4Addr::new(10, 50, 0, 5));
                env.netd.connect("c2", r).unwrap_err()
            }),
            "address 10.50.0.5 is outside the range 10.50.0.128/25 of network ranged",
        ),
        (
            Box::new(|| {
                let mut r = ep("ranged", "two");
                r.ip = Some(e1.ip);
                env.netd.connect("c2", r).unwrap_err()
            }),
            "address 10.50.0.129 is already in use on network ranged",
        ),
        (
            Box::new(|| {
                let mut r = ep("red", "two");
                r.ports = publish(&["9090:90", "8080:80"]);
                env.netd.connect("c2", r).unwrap_err()
            }),
            "bind for 0.0.0.0:8080/tcp failed: port is already allocated",
        ),
        (
            Box::new(|| env.netd.connect("c1", ep("ranged", "again")).unwrap_err()),
            "container c1 is already connected to network ranged",
        ),
        (
            Box::new(|| env.netd.connect("c2", ep("host", "h")).unwrap_err()),
            "host network host cannot have endpoints",
        ),
        (
            Box::new(|| env.netd.connect("nosuch", ep("red", "h")).unwrap_err()),
            "container nosuch has no network sandbox",
        ),
        (
            Box::new(|| env.netd.remove_network("ranged").unwrap_err()),
            "network ranged has active endpoints (one)",
        ),
        (
            Box::new(|| env.netd.remove_network("bridge").unwrap_err()),
            "bridge is a pre-defined network and cannot be removed",
        ),
        (
            Box::new(|| env.netd.remove_network("nope").unwrap_err()),
            "network nope not found",
        ),
    ];
    for (f, want) in cases {
        assert_eq!(f().to_string(), want);
        assert_eq!(snapshot(), before, "after: {want}");
    }
    env.netd.cleanup().unwrap();
}

#[test]
fn restore_keeps_live_containers_and_removes_whatever_dangles() {
    if !isolate("restore_keeps_live_containers_and_removes_whatever_dangles") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    up("lo");
    let cfg = berth_netd::Config::new(dir.path().join("state"), dir.path().join("netns"));
    let netd = berth_netd::Netd::open(cfg.clone()).unwrap();
    netd.restore(&[]).unwrap();
    let keep = netd
        .create_network(NetworkRequest {
            name: "keep".into(),
            ..Default::default()
        })
        .unwrap();
    let live = netd.create_sandbox("live1").unwrap();
    netd.create_sandbox("dead1").unwrap();
    let mut r = ep("keep", "alive");
    r.ports = publish(&["8080:80"]);
    let elive = netd.connect("live1", r).unwrap();
    let mut r = ep("bridge", "dead");
    r.ports = publish(&["8081:80"]);
    let edead = netd.connect("dead1", r).unwrap();
    // berthd dies: nothing is torn down.
    drop(netd);
    // Leftovers of a crash at a bad moment, and a bridge that is not ours.
    sh(
        "ip link add bt-stray type bridge && ip link set bt-stray alias berth \
        && ip link add bt-sv type veth peer name bt-sw && ip link set bt-sv master berth0 \
        && ip link add bt-other type bridge",
    );
    sandbox::create(&cfg.netns_dir.join("ghost")).unwrap();

    let netd = berth_netd::Netd::open(cfg.clone()).unwrap();
    netd.restore(&["live1".to_string()]).unwrap();
    let l = links(None);
    for gone in [
        "bt-stray",
        "bt-sv",
        "bt-sw",
        edead.host_ifname.as_deref().unwrap(),
    ] {
        assert!(!l.contains(&gone.to_string()), "{gone} in {l:?}");
    }
    for kept in ["bt-other", "berth0", elive.host_ifname.as_deref().unwrap()] {
        assert!(l.contains(&kept.to_string()), "{kept} not in {l:?}");
    }
    let names: Vec<String> = std::fs::read_dir(&cfg.netns_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["live1"]);
    let rules = ruleset();
    assert!(rules.contains("dport 8080 dnat to"), "{rules}");
    assert!(!rules.contains("dport 8081"), "{rules}");
    serve_tcp(&live, 80, "still here");
    assert_eq!(
        tcp_get(None, addr(Ipv4Addr::LOCALHOST, 8080)).unwrap(),
        "still here"
    );
    let client = netd.create_sandbox("client").unwrap();
    netd.connect("client", ep("keep", "client")).unwrap();
    assert_eq!(
        resolve(&client, keep.gateway.unwrap(), "alive"),
        (ResponseCode::NoError, vec![elive.ip])
    );
    // The dead endpoint's address is free again.
    netd.create_sandbox("next").unwrap();
    assert_eq!(
        netd.connect("next", ep("bridge", "n")).unwrap().ip,
        edead.ip
    );
    netd.cleanup().unwrap();
}
