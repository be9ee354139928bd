//! The /etc/hosts and /etc/resolv.conf a container sees, written as
//! Docker writes them.

use std::net::Ipv4Addr;

/// What goes into a container's /etc/hosts.
#[derive(Debug, Default)]
pub struct HostsInput<'a> {
    pub hostname: &'a str,
    pub domainname: &'a str,
    /// The container's own addresses, one line each for its hostname.
    pub addresses: &'a [Ipv4Addr],
    /// `--add-host name:ip` (or `name=ip`) entries.
    pub extra_hosts: &'a [String],
    /// With `--network host` the host's own file is the base.
    pub host_file: Option<&'a str>,
}

const LOCAL_HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// The container's /etc/hosts.
pub fn hosts(input: &HostsInput) -> String {
    let mut out = match input.host_file {
        Some(f) => {
            let mut s = f.to_string();
            if !s.is_empty() && !s.ends_with('\n') {
                s.push('\n');
            }
            s
        }
        None => LOCAL_HOSTS.to_string(),
    };
    for h in input.extra_hosts {
        // name:ip, where ip may itself hold colons (IPv6).
        if let Some((name, ip)) = h.split_once('=').or_else(|| h.split_once(':')) {
            let ip = ip.trim_matches(['[', ']']);
            out.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    if input.host_file.is_none() && !input.hostname.is_empty() {
        let names = if input.domainname.is_empty() {
            input.hostname.to_string()
        } else {
            format!("{0}.{1} {0}", input.hostname, input.domainname)
        };
        for ip in input.addresses {
            out.push_str(&format!("{ip}\t{names}\n"));
        }
    }
    out
}

/// What goes into a container's /etc/resolv.conf.
#[derive(Debug, Default)]
pub struct ResolvInput<'a> {
    /// The host's /etc/resolv.conf.
    pub host: &'a str,
    /// `--dns`, `--dns-search`, `--dns-option`.
    pub dns: &'a [String],
    pub search: &'a [String],
    pub options: &'a [String],
    /// The embedded DNS server of a user-defined network, if the
    /// container is on one.
    pub embedded: Option<Ipv4Addr>,
    /// `--network host`: the host's file as it is.
    pub host_network: bool,
}

/// Docker's fallback when the host names only loopback resolvers, which a
/// container in its own network namespace cannot reach.
const FALLBACK: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

fn lines<'a>(conf: &'a str, key: &str) -> Vec<&'a str> {
    conf.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some(key)).then(|| it.collect::<Vec<_>>())
        })
        .flatten()
        .collect()
}

/// The nameservers of a resolv.conf text.
pub fn nameservers(conf: &str) -> Vec<String> {
    lines(conf, "nameserver")
        .into_iter()
        .map(str::to_string)
        .collect()
}

fn is_loopback(ns: &str) -> bool {
    ns.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The container's /etc/resolv.conf.
pub fn resolv_conf(input: &ResolvInput) -> String {
    if input.host_network
        && input.dns.is_empty()
        && input.search.is_empty()
        && input.options.is_empty()
    {
        return input.host.to_string();
    }
    let search: Vec<String> = if input.search.is_empty() {
        lines(input.host, "search")
            .into_iter()
            .map(str::to_string)
            .collect()
    } else {
        // "." alone means no search domains at all.
        input.search.iter().filter(|s| *s != ".").cloned().collect()
    };
    let options: Vec<String> = if input.options.is_empty() {
        lines(input.host, "options")
            .into_iter()
            .map(str::to_string)
            .collect()
    } else {
        input.options.to_vec()
    };
    let mut servers: Vec<String> = if input.dns.is_empty() {
        nameservers(input.host)
            .into_iter()
            .filter(|n| input.host_network || !is_loopback(n))
            .collect()
    } else {
        input.dns.to_vec()
    };
    if servers.is_empty() {
        servers = FALLBACK.iter().map(|s| s.to_string()).collect();
    }
    let mut out = String::new();
    match input.embedded {
        Some(ip) => {
            out.push_str(&format!(
                "# berth embedded DNS server on {ip}\nnameserver {ip}\n"
            ));
            out.push_str(&format!("# ExtServers: [{}]\n", servers.join(" ")));
        }
        None => {
            for s in &servers {
                out.push_str(&format!("nameserver {s}\n"));
            }
        }
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_has_localhost_extra_hosts_then_the_container() {
        let extra = ["db:10.9.8.7".to_string(), "v6=fe80::1".to_string()];
        let ips = [Ipv4Addr::new(172, 17, 0, 2)];
        let h = hosts(&HostsInput {
            hostname: "abc123",
            addresses: &ips,
            extra_hosts: &extra,
            ..Default::default()
        });
        assert!(h.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"));
        assert!(
            h.ends_with("10.9.8.7\tdb\nfe80::1\tv6\n172.17.0.2\tabc123\n"),
            "{h}"
        );
        let h = hosts(&HostsInput {
            hostname: "web",
            domainname: "example.org",
            addresses: &ips,
            ..Default::default()
        });
        assert!(h.ends_with("172.17.0.2\tweb.example.org web\n"), "{h}");
    }

    #[test]
    fn hosts_on_the_host_network_keeps_the_hosts_file() {
        let extra = ["db:10.9.8.7".to_string()];
        let h = hosts(&HostsInput {
            hostname: "box",
            extra_hosts: &extra,
            host_file: Some("127.0.0.1 localhost\n10.0.0.1 box"),
            ..Default::default()
        });
        assert_eq!(h, "127.0.0.1 localhost\n10.0.0.1 box\n10.9.8.7\tdb\n");
    }

    const HOST: &str = "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0 trust-ad\n";

    #[test]
    fn resolv_drops_loopback_servers_and_keeps_search_and_options() {
        let r = resolv_conf(&ResolvInput {
            host: HOST,
            ..Default::default()
        });
        assert_eq!(
            r,
            "nameserver 10.0.0.2\nsearch corp.example\noptions edns0 trust-ad\n"
        );
        let r = resolv_conf(&ResolvInput {
            host: "nameserver 127.0.0.53\n",
            ..Default::default()
        });
        assert_eq!(r, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }

    #[test]
    fn resolv_overrides_replace_the_hosts_lines() {
        let dns = ["1.1.1.1".to_string()];
        let search = [".".to_string()];
        let options = ["ndots:2".to_string()];
        let r = resolv_conf(&ResolvInput {
            host: HOST,
            dns: &dns,
            search: &search,
            options: &options,
            ..Default::default()
        });
        assert_eq!(r, "nameserver 1.1.1.1\noptions ndots:2\n");
    }

    #[test]
    fn resolv_on_a_user_network_names_the_embedded_server() {
        let r = resolv_conf(&ResolvInput {
            host: HOST,
            embedded: Some(Ipv4Addr::new(172, 18, 0, 1)),
            ..Default::default()
        });
        assert!(
            r.contains("\nnameserver 172.18.0.1\n# ExtServers: [10.0.0.2]\nsearch corp.example\n"),
            "{r}"
        );
        assert_eq!(nameservers(&r), ["172.18.0.1"]);
    }

    #[test]
    fn resolv_on_the_host_network_is_the_hosts_file() {
        let r = resolv_conf(&ResolvInput {
            host: HOST,
            host_network: true,
            ..Default::default()
        });
        assert_eq!(r, HOST);
    }
}
