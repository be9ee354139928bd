//! The firewall: NAT and isolation for berth's networks and DNAT for
//! published ports, in berth's own nftables table (`table ip berth`) and
//! never in anybody else's chains.
//!
//! The backend is declarative: it is handed the whole desired rule set and
//! replaces the table in one nft transaction. That keeps every change
//! atomic, makes teardown a matter of describing less, and makes
//! reconciling after a crash the same call as any other change. Published
//! ports cost one rule each, no process.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::error::{NetdError, Result};
use crate::ipam::Ipv4Net;
use crate::ports::{PortMapping, Proto};

pub const TABLE: &str = "berth";

/// A bridge network, as the firewall sees it.
#[derive(Clone, Debug)]
pub struct BridgeRules {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub internal: bool,
    pub masquerade: bool,
}

/// One published port, forwarded to a container.
#[derive(Clone, Debug)]
pub struct Forward {
    pub mapping: PortMapping,
    pub container_ip: Ipv4Addr,
}

#[derive(Clone, Debug, Default)]
pub struct Ruleset {
    pub bridges: Vec<BridgeRules>,
    pub forwards: Vec<Forward>,
}

pub trait FirewallDriver: Send {
    /// Make berth's rules exactly `rules`.
    fn apply(&self, rules: &Ruleset) -> Result<()>;
    /// Remove all of berth's rules.
    fn clear(&self) -> Result<()>;
}

/// The nftables backend, driving `nft -j -f -`.
pub struct Nftables;

/// No firewall at all (hosts where another tool owns the rules).
pub struct NoFirewall;

impl FirewallDriver for NoFirewall {
    fn apply(&self, _: &Ruleset) -> Result<()> {
        Ok(())
    }
    fn clear(&self) -> Result<()> {
        Ok(())
    }
}

fn m(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn payload(proto: &str, field: &str) -> Value {
    json!({"payload": {"protocol": proto, "field": field}})
}

fn prefix(n: &Ipv4Net) -> Value {
    json!({"prefix": {"addr": n.addr().to_string(), "len": n.prefix()}})
}

fn local_daddr() -> Value {
    m(
        "==",
        json!({"fib": {"result": "type", "flags": ["daddr"]}}),
        json!("local"),
    )
}

fn table() -> Value {
    json!({"family": "ip", "name": TABLE})
}

fn chain(name: &str, hook: Option<(&str, &str, i32)>) -> Value {
    let mut c = json!({"family": "ip", "table": TABLE, "name": name});
    if let Some((ty, hook, prio)) = hook {
        c["type"] = json!(ty);
        c["hook"] = json!(hook);
        c["prio"] = json!(prio);
        c["policy"] = json!("accept");
    }
    json!({"add": {"chain": c}})
}

fn rule(chain: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": "ip", "table": TABLE, "chain": chain, "expr": expr}}})
}

/// The nft JSON commands that replace berth's table with `rules`.
pub fn commands(rules: &Ruleset) -> Value {
    let mut cmds = vec![
        // Adding first makes the delete succeed whether the table exists.
        json!({"add": {"table": table()}}),
        json!({"delete": {"table": table()}}),
        json!({"add": {"table": table()}}),
        chain("prerouting", Some(("nat", "prerouting", -100))),
        chain("output", Some(("nat", "output", -100))),
        chain("postrouting", Some(("nat", "postrouting", 100))),
        chain("forward", Some(("filter", "forward", 0))),
        chain("ports", None),
        rule(
            "prerouting",
            vec![local_daddr(), json!({"jump": {"target": "ports"}})],
        ),
        rule(
            "output",
            vec![local_daddr(), json!({"jump": {"target": "ports"}})],
        ),
    ];
    for f in &rules.forwards {
        let p = f.mapping;
        let proto = match p.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        let mut expr = Vec::new();
        if !p.host_ip.is_unspecified() {
            expr.push(m(
                "==",
                payload("ip", "daddr"),
                json!(p.host_ip.to_string()),
            ));
        }
        expr.push(m("==", payload(proto, "dport"), json!(p.host_port)));
        expr.push(json!({"dnat": {"addr": f.container_ip.to_string(), "port": p.container_port}}));
        cmds.push(rule("ports", expr));
    }
    let all: Vec<&str> = rules.bridges.iter().map(|b| b.bridge.as_str()).collect();
    for b in &rules.bridges {
        let br = json!(b.bridge);
        if b.masquerade && !b.internal {
            cmds.push(rule(
                "postrouting",
                vec![
                    m("==", payload("ip", "saddr"), prefix(&b.subnet)),
                    m("!=", meta("oifname"), br.clone()),
                    json!({"masquerade": null}),
                ],
            ));
        }
        // The host reaching a published port on 127.0.0.1: the packet
        // leaves with a loopback source (allowed by route_localnet on the
        // bridge), which the container could not answer.
        cmds.push(rule(
            "postrouting",
            vec![
                m("==", meta("oifname"), br.clone()),
                m(
                    "==",
                    payload("ip", "saddr"),
                    prefix(&Ipv4Net::new(Ipv4Addr::LOCALHOST, 8).expect("lo")),
                ),
                json!({"masquerade": null}),
            ],
        ));
        // Hairpin: a container reaching another one on its own bridge
        // through a published port would get the reply straight from the
        // other container's address.
        cmds.push(rule(
            "postrouting",
            vec![
                m("==", meta("oifname"), br.clone()),
                m("in", json!({"ct": {"key": "status"}}), json!("dnat")),
                m("==", payload("ip", "saddr"), prefix(&b.subnet)),
                json!({"masquerade": null}),
            ],
        ));
        let others: Vec<&str> = all.iter().copied().filter(|o| *o != b.bridge).collect();
        if !others.is_empty() {
            cmds.push(rule(
                "forward",
                vec![
                    m("==", meta("iifname"), br.clone()),
                    m("==", meta("oifname"), json!({"set": others})),
                    json!({"drop": null}),
                ],
            ));
        }
        if b.internal {
            for (a, z) in [("iifname", "oifname"), ("oifname", "iifname")] {
                cmds.push(rule(
                    "forward",
                    vec![
                        m("==", meta(a), br.clone()),
                        m("!=", meta(z), br.clone()),
                        json!({"drop": null}),
                    ],
                ));
            }
        }
    }
    json!({"nftables": cmds})
}

fn nft(input: &Value) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            NetdError::Firewall(format!("running nft (Debian's nftables package): {e}"))
        })?;
    let body = serde_json::to_vec(input).expect("nft json");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let written = stdin.write_all(&body);
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| NetdError::Firewall(format!("waiting for nft: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("").trim().to_string();
        return Err(NetdError::Firewall(format!(
            "nft failed ({}): {first}",
            out.status
        )));
    }
    written.map_err(|e| NetdError::Firewall(format!("writing to nft: {e}")))
}

impl Ruleset {
    pub fn is_empty(&self) -> bool {
        self.bridges.is_empty() && self.forwards.is_empty()
    }
}

/// Whether berth's table exists (a read, which changes nothing).
fn table_exists() -> bool {
    Command::new("nft")
        .args(["list", "table", "ip", TABLE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl FirewallDriver for Nftables {
    fn apply(&self, rules: &Ruleset) -> Result<()> {
        // With nothing to say, berth has no business in the host's
        // ruleset, not even an empty table.
        if rules.is_empty() {
            return if table_exists() { self.clear() } else { Ok(()) };
        }
        nft(&commands(rules))
    }

    fn clear(&self) -> Result<()> {
        nft(&json!({"nftables": [
            {"add": {"table": table()}},
            {"delete": {"table": table()}},
        ]}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_stay_in_berths_table_and_cover_each_network() {
        let rules = Ruleset {
            bridges: vec![
                BridgeRules {
                    bridge: "berth0".into(),
                    subnet: "172.17.0.0/16".parse().unwrap(),
                    internal: false,
                    masquerade: true,
                },
                BridgeRules {
                    bridge: "br-0123456789ab".into(),
                    subnet: "172.18.0.0/16".parse().unwrap(),
                    internal: true,
                    masquerade: true,
                },
            ],
            forwards: vec![Forward {
                mapping: PortMapping {
                    host_ip: Ipv4Addr::new(127, 0, 0, 1),
                    host_port: 8080,
                    container_port: 80,
                    proto: Proto::Udp,
                },
                container_ip: Ipv4Addr::new(172, 17, 0, 2),
            }],
        };
        let v = commands(&rules);
        let cmds = v["nftables"].as_array().unwrap();
        for c in cmds {
            let obj = c.as_object().unwrap().values().next().unwrap();
            let inner = obj.as_object().unwrap().values().next().unwrap();
            let t = inner.get("table").or(inner.get("name")).unwrap();
            assert_eq!(t, "berth", "{c}");
            assert_eq!(inner["family"], "ip", "{c}");
        }
        let text = v.to_string();
        assert!(
            text.contains(r#"{"dnat":{"addr":"172.17.0.2","port":80}}"#),
            "{text}"
        );
        assert!(text.contains(r#""right":"127.0.0.1""#));
        // One masquerade for outbound from the non-internal network only.
        let outbound = cmds
            .iter()
            .filter_map(|c| c.get("add")?.get("rule"))
            .filter(|r| r["chain"] == "postrouting")
            .filter(|r| {
                r["expr"].as_array().unwrap().iter().any(|e| {
                    e["match"]["op"] == "!=" && e["match"]["left"]["meta"]["key"] == "oifname"
                })
            })
            .count();
        assert_eq!(outbound, 1);
        // Isolation both ways, and the internal network closed off.
        assert!(text.contains(r#"{"set":["br-0123456789ab"]}"#));
        assert!(text.contains(r#"{"set":["berth0"]}"#));
    }
}
