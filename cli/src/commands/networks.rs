//! `network create/ls/inspect/rm/connect/disconnect/prune`.

use berth_api::containers::{EndpointIpamConfig, EndpointSettings};
use berth_api::networks::{
    Ipam, IpamConfig, Network, NetworkConnectRequest, NetworkCreateRequest, NetworkCreateResponse,
    NetworkDisconnectRequest, NetworkPruneResponse,
};

use super::{confirm, eprint, filters_json, print};
use crate::args::{
    NetworkConnectArgs, NetworkCreateArgs, NetworkDisconnectArgs, NetworkLsArgs, NetworkPruneArgs,
    NetworkRmArgs,
};
use crate::client::{Client, empty, enc, json_body, query};
use crate::error::{CliError, Result};
use crate::formatter::{Format, row, short_id};
use crate::template::Value;
use crate::units::{go_time_string, parse_rfc3339};

fn pairs(list: &[String]) -> std::collections::BTreeMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The IPAM configs of `--subnet`/`--ip-range`/`--gateway`: each range
/// and gateway goes with the subnet that holds it, as docker pairs them.
pub fn ipam_configs(a: &NetworkCreateArgs) -> Result<Vec<IpamConfig>> {
    let mut configs: Vec<IpamConfig> = a
        .subnet
        .iter()
        .map(|s| IpamConfig {
            subnet: s.clone(),
            ..Default::default()
        })
        .collect();
    let orphan =
        || CliError::Usage("every ip-range or gateway must have a corresponding subnet".into());
    let place = |configs: &mut Vec<IpamConfig>,
                 value: &str,
                 what: &str,
                 get: fn(&mut IpamConfig) -> &mut String|
     -> Result<()> {
        if configs.is_empty() {
            return Err(orphan());
        }
        let holder = if configs.len() == 1 {
            Some(0)
        } else {
            configs.iter().position(|c| contains(&c.subnet, value))
        };
        let Some(i) = holder else {
            return Err(CliError::Usage(format!(
                "no matching subnet for {what} {value}"
            )));
        };
        let slot = get(&mut configs[i]);
        if !slot.is_empty() {
            return Err(CliError::Usage(format!(
                "cannot configure multiple {what}s for the same subnet"
            )));
        }
        *slot = value.to_string();
        Ok(())
    };
    for r in &a.ip_range {
        place(&mut configs, r, "range", |c| &mut c.ip_range)?;
    }
    for g in &a.gateway {
        place(&mut configs, g, "gateway", |c| &mut c.gateway)?;
    }
    Ok(configs)
}

/// Whether IPv4 `addr` (an address or the first of a CIDR) lies in
/// `subnet`; anything unparsable is left for the daemon to judge.
fn contains(subnet: &str, addr: &str) -> bool {
    let parse = |s: &str| -> Option<(u32, u32)> {
        let (ip, len) = s.split_once('/').unwrap_or((s, "32"));
        let ip: std::net::Ipv4Addr = ip.parse().ok()?;
        let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
        Some((u32::from(ip), len))
    };
    match (parse(subnet), parse(addr)) {
        (Some((net, len)), Some((ip, _))) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            net & mask == ip & mask
        }
        _ => false,
    }
}

pub async fn create(c: &Client, a: &NetworkCreateArgs) -> Result<()> {
    let body = NetworkCreateRequest {
        name: a.name.clone(),
        driver: a.driver.clone(),
        internal: a.internal,
        attachable: a.attachable,
        ipam: Some(Ipam {
            driver: a.ipam_driver.clone(),
            config: Some(ipam_configs(a)?),
            options: Some(pairs(&a.ipam_opt)),
        }),
        enable_ipv6: a.ipv6.then_some(true),
        options: Some(pairs(&a.opt)),
        labels: Some(pairs(&a.label)),
        ..Default::default()
    };
    let r: NetworkCreateResponse = c.post("/networks/create", json_body(&body)).await?;
    print(&format!("{}\n", r.id))
}

pub const NETWORK_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";
const NETWORK_HEADER: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv4", "IPV4"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

pub fn network_rows(list: &[Network], trunc: bool) -> Vec<Value> {
    list.iter()
        .map(|n| {
            let labels: Vec<String> = n.labels.iter().map(|(k, x)| format!("{k}={x}")).collect();
            let id = if trunc { short_id(&n.id) } else { n.id.clone() };
            row(vec![
                ("ID", Value::Str(id)),
                ("Name", Value::str(&n.name)),
                ("Driver", Value::str(&n.driver)),
                ("Scope", Value::str(&n.scope)),
                ("IPv4", Value::Str(n.enable_ipv4.to_string())),
                ("IPv6", Value::Str(n.enable_ipv6.to_string())),
                ("Internal", Value::Str(n.internal.to_string())),
                ("Labels", Value::Str(labels.join(","))),
                (
                    "Label",
                    Value::Map(
                        n.labels
                            .iter()
                            .map(|(k, x)| (k.clone(), Value::str(x)))
                            .collect(),
                    ),
                ),
                (
                    "CreatedAt",
                    Value::Str(
                        parse_rfc3339(&n.created)
                            .map(go_time_string)
                            .unwrap_or_default(),
                    ),
                ),
            ])
        })
        .collect()
}

pub async fn ls(c: &Client, a: &NetworkLsArgs) -> Result<()> {
    let q = filters_json(&a.filter)?.map_or(String::new(), |f| query(&[("filters", f)]));
    let mut list: Vec<Network> = c.get(&format!("/networks{q}")).await?;
    list.sort_by(|x, y| x.name.cmp(&y.name));
    let format = Format::resolve(a.format.as_deref(), a.quiet, NETWORK_TABLE, "{{.ID}}");
    print(&format.render(NETWORK_HEADER, &network_rows(&list, !a.no_trunc))?)
}

pub async fn rm(c: &Client, a: &NetworkRmArgs) -> Result<()> {
    let mut failed = false;
    for n in &a.networks {
        match c.delete_ok(&format!("/networks/{}", enc(n))).await {
            Ok(()) => print(&format!("{n}\n"))?,
            Err(e @ CliError::Connect { .. }) => return Err(e),
            Err(e) if a.force && e.is_not_found() => {}
            Err(e) => {
                eprint(&format!("{e}\n"));
                failed = true;
            }
        }
    }
    if failed {
        // docker 28's `network rm` ends with a bare status error, which
        // its main prints as such.
        Err(CliError::Message("exit status 1".into()))
    } else {
        Ok(())
    }
}

pub async fn connect(c: &Client, a: &NetworkConnectArgs) -> Result<()> {
    let ipam = (a.ip.is_some() || a.ip6.is_some()).then(|| EndpointIpamConfig {
        ipv4_address: a.ip.clone().unwrap_or_default(),
        ipv6_address: a.ip6.clone().unwrap_or_default(),
    });
    let body = NetworkConnectRequest {
        container: a.container.clone(),
        endpoint_config: Some(EndpointSettings {
            ipam_config: ipam,
            aliases: (!a.alias.is_empty()).then(|| a.alias.clone()),
            links: (!a.link.is_empty()).then(|| a.link.clone()),
            driver_opts: (!a.driver_opt.is_empty()).then(|| pairs(&a.driver_opt)),
            ..Default::default()
        }),
    };
    c.post_ok(
        &format!("/networks/{}/connect", enc(&a.network)),
        json_body(&body),
    )
    .await
}

pub async fn disconnect(c: &Client, a: &NetworkDisconnectArgs) -> Result<()> {
    let body = NetworkDisconnectRequest {
        container: a.container.clone(),
        force: a.force,
    };
    c.post_ok(
        &format!("/networks/{}/disconnect", enc(&a.network)),
        json_body(&body),
    )
    .await
}

pub async fn prune(c: &Client, a: &NetworkPruneArgs) -> Result<()> {
    if !a.force
        && !confirm(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )?
    {
        return Ok(());
    }
    let q = filters_json(&a.filter)?.map_or(String::new(), |f| query(&[("filters", f)]));
    let r: NetworkPruneResponse = c.post(&format!("/networks/prune{q}"), empty()).await?;
    print(&prune_report(&r.networks_deleted))
}

/// docker's report: no space line, the names then an empty line.
fn prune_report(deleted: &[String]) -> String {
    if deleted.is_empty() {
        return String::new();
    }
    let mut out = String::from("Deleted Networks:\n");
    for n in deleted {
        out.push_str(n);
        out.push('\n');
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn create_args(args: &[&str]) -> NetworkCreateArgs {
        let mut argv = vec!["berth", "network", "create"];
        argv.extend(args);
        match crate::args::Cli::parse_from(argv).command {
            crate::args::Cmd::Network(crate::args::NetworkCmd::Create(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn subnets_take_their_ranges_and_gateways() {
        let a = create_args(&[
            "--subnet",
            "10.1.0.0/24",
            "--subnet",
            "10.2.0.0/24",
            "--gateway",
            "10.2.0.254",
            "--ip-range",
            "10.1.0.128/25",
            "n",
        ]);
        let c = ipam_configs(&a).unwrap();
        assert_eq!(c[0].ip_range, "10.1.0.128/25");
        assert_eq!(c[0].gateway, "");
        assert_eq!(c[1].gateway, "10.2.0.254");
        let a = create_args(&["--gateway", "10.1.0.1", "n"]);
        assert_eq!(
            ipam_configs(&a).unwrap_err().to_string(),
            "every ip-range or gateway must have a corresponding subnet"
        );
        let a = create_args(&[
            "--subnet",
            "10.1.0.0/24",
            "--subnet",
            "10.2.0.0/24",
            "--gateway",
            "10.3.0.1",
            "n",
        ]);
        assert_eq!(
            ipam_configs(&a).unwrap_err().to_string(),
            "no matching subnet for gateway 10.3.0.1"
        );
    }

    #[test]
    fn ls_table_like_docker() {
        let n = Network {
            name: "bridge".into(),
            id: "0123456789abcdef0123".into(),
            driver: "bridge".into(),
            scope: "local".into(),
            ..Default::default()
        };
        let f = Format::resolve(None, false, NETWORK_TABLE, "{{.ID}}");
        assert_eq!(
            f.render(
                NETWORK_HEADER,
                &network_rows(std::slice::from_ref(&n), true)
            )
            .unwrap(),
            "NETWORK ID     NAME      DRIVER    SCOPE\n0123456789ab   bridge    bridge    local\n"
        );
        let f = Format::resolve(None, true, NETWORK_TABLE, "{{.ID}}");
        assert_eq!(
            f.render(NETWORK_HEADER, &network_rows(&[n], false))
                .unwrap(),
            "0123456789abcdef0123\n"
        );
        assert_eq!(prune_report(&[]), "");
        assert_eq!(prune_report(&["a".into()]), "Deleted Networks:\na\n\n");
    }
}
