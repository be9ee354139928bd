//! `version`, `info`, `system df`, `system prune`.

use berth_api::{SystemDataUsageResponse, SystemInfo, SystemVersion};

use super::print;
use crate::args::{DfArgs, FormatOnly, SystemPruneArgs};
use crate::client::{CLIENT_API_VERSION, Client};
use crate::error::{CliError, Result};
use crate::formatter::{Format, row};
use crate::tabwriter::TabWriter;
use crate::template::{Template, Value};
use crate::units::{bytes_size, human_size};

/// docker's `version` template (its `getDetailsOrder` is a sorted range here).
const VERSION_TEMPLATE: &str = "Client:{{if ne .Client.Platform.Name \"\"}} {{.Client.Platform.Name}}{{end}}
 Version:\t{{.Client.Version}}
 API version:\t{{.Client.APIVersion}}{{if ne .Client.APIVersion .Client.DefaultAPIVersion}} (downgraded from {{.Client.DefaultAPIVersion}}){{end}}
 Built:\t{{.Client.BuildTime}}
 OS/Arch:\t{{.Client.Os}}/{{.Client.Arch}}
 Context:\t{{.Client.Context}}
{{- if .Server}}{{with .Server}}

Server:{{if ne .Platform.Name \"\"}} {{.Platform.Name}}{{end}}
 {{- range $component := .Components}}
 {{$component.Name}}:
  {{- if eq $component.Name \"Engine\" }}
  Version:\t{{.Version}}
  API version:\t{{index .Details \"ApiVersion\"}} (minimum version {{index .Details \"MinAPIVersion\"}})
  Go version:\t{{index .Details \"GoVersion\"}}
  Git commit:\t{{index .Details \"GitCommit\"}}
  Built:\t{{index .Details \"BuildTime\"}}
  OS/Arch:\t{{index .Details \"Os\"}}/{{index .Details \"Arch\"}}
  Experimental:\t{{index .Details \"Experimental\"}}
  {{- else }}
  Version:\t{{$component.Version}}
  {{- range $key, $value := $component.Details}}
  {{$key}}:\t{{$value}}
  {{- end}}
  {{- end}}
 {{- end}}
{{- end}}{{- end}}
";

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `{Client, Server}` as `docker version` formats it; Go field names
/// (`APIVersion`) that differ from the JSON ones are added alongside.
pub fn version_value(client_version: &str, server: Option<&SystemVersion>) -> Value {
    let client = Value::Map(vec![
        (
            "Platform".into(),
            Value::Map(vec![("Name".into(), Value::str("berth"))]),
        ),
        ("Version".into(), Value::str(env!("CARGO_PKG_VERSION"))),
        ("ApiVersion".into(), Value::str(client_version)),
        ("APIVersion".into(), Value::str(client_version)),
        ("DefaultAPIVersion".into(), Value::str(CLIENT_API_VERSION)),
        ("BuildTime".into(), Value::str("")),
        ("Os".into(), Value::str(std::env::consts::OS)),
        ("Arch".into(), Value::str(arch())),
        ("Context".into(), Value::str("default")),
    ]);
    let server = match server {
        Some(s) => {
            let mut v = Value::from_serialize(s);
            if let Value::Map(m) = &mut v {
                m.push(("APIVersion".into(), Value::str(&s.api_version)));
                m.push(("MinAPIVersion".into(), Value::str(&s.min_api_version)));
            }
            v
        }
        None => Value::Null,
    };
    Value::Map(vec![("Client".into(), client), ("Server".into(), server)])
}

pub async fn version(host: &str, a: &FormatOnly) -> Result<()> {
    let conn = Client::connect(host).await;
    let (cv, server, err) = match &conn {
        Ok(c) => match c.get::<SystemVersion>("/version").await {
            Ok(v) => (c.version.clone(), Some(v), None),
            Err(e) => (c.version.clone(), None, Some(e)),
        },
        Err(_) => (CLIENT_API_VERSION.to_string(), None, None),
    };
    let v = version_value(&cv, server.as_ref());
    let out = match a.format.as_deref() {
        Some("json") => format!("{}\n", v.to_json()),
        Some(f) => format!("{}\n", Template::parse(f)?.execute(&v)?),
        None => TabWriter {
            min_width: 20,
            padding: 1,
        }
        .format(&format!(
            "{}\n",
            Template::parse(VERSION_TEMPLATE)?.execute(&v)?
        )),
    };
    print(&out)?;
    match (conn, err) {
        (Err(e), _) | (_, Some(e)) => Err(e),
        _ => Ok(()),
    }
}

pub async fn info(c: &Client, a: &FormatOnly) -> Result<()> {
    let raw = c.get_raw("/info").await?;
    let info: SystemInfo = serde_json::from_slice(&raw).map_err(|e| CliError::Decode {
        what: "/info".into(),
        message: e.to_string(),
    })?;
    if let Some(f) = a.format.as_deref() {
        let mut v: Value = serde_json::from_slice(&raw).map_err(|e| CliError::Decode {
            what: "/info".into(),
            message: e.to_string(),
        })?;
        if let Value::Map(m) = &mut v {
            m.push((
                "ClientInfo".into(),
                Value::Map(vec![
                    ("Debug".into(), Value::Bool(false)),
                    ("Version".into(), Value::str(env!("CARGO_PKG_VERSION"))),
                    ("Context".into(), Value::str("default")),
                ]),
            ));
        }
        let text = if f == "json" {
            v.to_json()
        } else {
            Template::parse(f)?.execute(&v)?
        };
        return print(&format!("{text}\n"));
    }
    print(&info_text(&info))?;
    for w in &info.warnings {
        super::eprint(&format!("{w}\n"));
    }
    Ok(())
}

/// docker's `info` layout, for what berthd reports.
pub fn info_text(i: &SystemInfo) -> String {
    let mut s = String::new();
    let mut line = |t: String| {
        s.push_str(&t);
        s.push('\n');
    };
    line("Client:".into());
    line(format!(" Version:    {}", env!("CARGO_PKG_VERSION")));
    line(" Context:    default".into());
    line(" Debug Mode: false".into());
    line(String::new());
    line("Server:".into());
    line(format!(" Containers: {}", i.containers));
    line(format!("  Running: {}", i.containers_running));
    line(format!("  Paused: {}", i.containers_paused));
    line(format!("  Stopped: {}", i.containers_stopped));
    line(format!(" Images: {}", i.images));
    line(format!(" Server Version: {}", i.server_version));
    line(format!(" Storage Driver: {}", i.driver));
    for [k, v] in &i.driver_status {
        line(format!("  {k}: {v}"));
    }
    line(format!(" Logging Driver: {}", i.logging_driver));
    line(format!(" Cgroup Driver: {}", i.cgroup_driver));
    line(format!(" Cgroup Version: {}", i.cgroup_version));
    line(" Plugins:".into());
    line(format!("  Volume: {}", i.plugins.volume.join(" ")));
    line(format!("  Network: {}", i.plugins.network.join(" ")));
    line(format!("  Log: {}", i.plugins.log.join(" ")));
    line(format!(" Swarm: {}", i.swarm.local_node_state));
    line(format!(
        " Runtimes: {}",
        i.runtimes.keys().cloned().collect::<Vec<_>>().join(" ")
    ));
    line(format!(" Default Runtime: {}", i.default_runtime));
    line(format!(" Init Binary: {}", i.init_binary));
    if !i.security_options.is_empty() {
        line(" Security Options:".into());
        for o in &i.security_options {
            let mut parts = o.split(',');
            if let Some(name) = parts.next() {
                line(format!("  {}", name.trim_start_matches("name=")));
            }
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    let mut k = k.to_string();
                    if let Some(first) = k.get_mut(0..1) {
                        first.make_ascii_uppercase();
                    }
                    line(format!("   {k}: {v}"));
                }
            }
        }
    }
    line(format!(" Kernel Version: {}", i.kernel_version));
    line(format!(" Operating System: {}", i.operating_system));
    line(format!(" OSType: {}", i.os_type));
    line(format!(" Architecture: {}", i.architecture));
    line(format!(" CPUs: {}", i.ncpu));
    line(format!(" Total Memory: {}", bytes_size(i.mem_total as f64)));
    line(format!(" Name: {}", i.name));
    line(format!(" ID: {}", i.id));
    line(format!(" Docker Root Dir: {}", i.docker_root_dir));
    line(format!(" Debug Mode: {}", i.debug));
    line(format!(" Experimental: {}", i.experimental_build));
    if let Some(r) = &i.registry_config {
        let insecure: Vec<&String> = r
            .index_configs
            .values()
            .filter(|c| !c.secure)
            .map(|c| &c.name)
            .chain(r.insecure_registry_cidrs.iter())
            .collect();
        if !insecure.is_empty() {
            line(" Insecure Registries:".into());
            for n in insecure {
                line(format!("  {n}"));
            }
        }
        if !r.mirrors.is_empty() {
            line(" Registry Mirrors:".into());
            for m in &r.mirrors {
                line(format!("  {m}"));
            }
        }
    }
    line(format!(" Live Restore Enabled: {}", i.live_restore_enabled));
    s
}

pub const DF_TABLE: &str =
    "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";
const DF_HEADER: &[(&str, &str)] = &[
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
];

fn num(v: &serde_json::Value, k: &str) -> i64 {
    v.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0)
}

fn reclaimable(reclaimable: i64, total: i64) -> String {
    if total > 0 {
        format!(
            "{} ({}%)",
            human_size(reclaimable as f64),
            reclaimable * 100 / total
        )
    } else {
        human_size(reclaimable as f64)
    }
}

/// The four rows of `docker system df`.
pub fn df_rows(d: &SystemDataUsageResponse) -> Vec<Value> {
    let mk = |t: &str, total: usize, active: usize, size: i64, recl: String| {
        row(vec![
            ("Type", Value::str(t)),
            ("TotalCount", Value::Str(total.to_string())),
            ("Active", Value::Str(active.to_string())),
            ("Size", Value::Str(human_size(size as f64))),
            ("Reclaimable", Value::Str(recl)),
        ])
    };
    let used: i64 = d
        .images
        .iter()
        .filter(|i| i.containers > 0 && i.size != -1 && i.shared_size != -1)
        .map(|i| i.size - i.shared_size)
        .sum();
    let images = mk(
        "Images",
        d.images.len(),
        d.images.iter().filter(|i| i.containers > 0).count(),
        d.layers_size,
        reclaimable(d.layers_size - used, d.layers_size),
    );
    let running =
        |c: &serde_json::Value| c.get("State").and_then(|s| s.as_str()) == Some("running");
    let csize: i64 = d.containers.iter().map(|c| num(c, "SizeRw")).sum();
    let crecl: i64 = d
        .containers
        .iter()
        .filter(|c| !running(c))
        .map(|c| num(c, "SizeRw"))
        .sum();
    let containers = mk(
        "Containers",
        d.containers.len(),
        d.containers.iter().filter(|c| running(c)).count(),
        csize,
        reclaimable(crecl, csize),
    );
    let usage = |v: &serde_json::Value, k: &str| {
        v.get("UsageData")
            .map(|u| num(u, k))
            .unwrap_or(if k == "Size" { -1 } else { 0 })
    };
    let vsize: i64 = d
        .volumes
        .iter()
        .map(|v| usage(v, "Size"))
        .filter(|s| *s > 0)
        .sum();
    let vrecl: i64 = d
        .volumes
        .iter()
        .filter(|v| usage(v, "RefCount") == 0)
        .map(|v| usage(v, "Size"))
        .filter(|s| *s > 0)
        .sum();
    let volumes = mk(
        "Local Volumes",
        d.volumes.len(),
        d.volumes
            .iter()
            .filter(|v| usage(v, "RefCount") > 0)
            .count(),
        vsize,
        reclaimable(vrecl, vsize),
    );
    let bsize: i64 = d.build_cache.iter().map(|b| num(b, "Size")).sum();
    let cache = mk(
        "Build Cache",
        d.build_cache.len(),
        d.build_cache
            .iter()
            .filter(|b| b.get("InUse").and_then(|x| x.as_bool()) == Some(true))
            .count(),
        bsize,
        human_size(bsize as f64),
    );
    vec![images, containers, volumes, cache]
}

pub async fn df(c: &Client, a: &DfArgs) -> Result<()> {
    let d: SystemDataUsageResponse = c.get("/system/df").await?;
    if a.verbose && a.format.is_none() {
        return print(&df_verbose(&d));
    }
    let format = Format::resolve(a.format.as_deref(), false, DF_TABLE, "");
    print(&format.render(DF_HEADER, &df_rows(&d))?)
}

/// `docker system df -v`: a table per kind.
pub fn df_verbose(d: &SystemDataUsageResponse) -> String {
    use crate::commands::images::{IMAGES_HEADER, image_rows};
    let now = crate::units::now_secs();
    let mut out = String::from("Images space usage:\n\n");
    let f = Format::resolve(
        Some(
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        ),
        false,
        "",
        "",
    );
    out.push_str(
        &f.render(IMAGES_HEADER, &image_rows(&d.images, false, true, now))
            .unwrap_or_default(),
    );
    out.push_str("\nContainers space usage:\n\n");
    let crow: Vec<Value> = d
        .containers
        .iter()
        .map(|c| {
            let s =
                |k: &str| Value::Str(c.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string());
            let names = c
                .get("Names")
                .and_then(|n| n.as_array())
                .map(|n| {
                    n.iter()
                        .filter_map(|x| x.as_str())
                        .map(|x| x.trim_start_matches('/').to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            row(vec![
                (
                    "ID",
                    Value::Str(crate::formatter::short_id(
                        c.get("Id").and_then(|v| v.as_str()).unwrap_or(""),
                    )),
                ),
                ("Image", s("Image")),
                (
                    "Command",
                    Value::Str(format!(
                        "\"{}\"",
                        crate::formatter::ellipsis(
                            c.get("Command").and_then(|v| v.as_str()).unwrap_or(""),
                            20
                        )
                    )),
                ),
                (
                    "LocalVolumes",
                    Value::Str(
                        c.get("Mounts")
                            .and_then(|m| m.as_array())
                            .map_or(0, |m| m.len())
                            .to_string(),
                    ),
                ),
                ("Size", Value::Str(human_size(num(c, "SizeRw") as f64))),
                (
                    "RunningFor",
                    Value::Str(crate::units::ago(num(c, "Created"), now)),
                ),
                ("Status", s("Status")),
                ("Names", Value::Str(names)),
            ])
        })
        .collect();
    let f = Format::resolve(
        Some(
            "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
        ),
        false,
        "",
        "",
    );
    let ch: &[(&str, &str)] = &[
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("LocalVolumes", "LOCAL VOLUMES"),
        ("Size", "SIZE"),
        ("RunningFor", "CREATED"),
        ("Status", "STATUS"),
        ("Names", "NAMES"),
    ];
    out.push_str(&f.render(ch, &crow).unwrap_or_default());
    out.push_str("\nLocal Volumes space usage:\n\n");
    let vrow: Vec<Value> = d
        .volumes
        .iter()
        .map(|v| {
            let u = v.get("UsageData");
            let size = u.map(|u| num(u, "Size")).unwrap_or(-1);
            row(vec![
                (
                    "Name",
                    Value::Str(
                        v.get("Name")
                            .and_then(|n| n.as_str())
                            .unwrap_or("")
                            .to_string(),
                    ),
                ),
                (
                    "Links",
                    Value::Str(u.map(|u| num(u, "RefCount")).unwrap_or(0).to_string()),
                ),
                (
                    "Size",
                    Value::Str(if size < 0 {
                        "N/A".into()
                    } else {
                        human_size(size as f64)
                    }),
                ),
            ])
        })
        .collect();
    let f = Format::resolve(
        Some("table {{.Name}}\t{{.Links}}\t{{.Size}}"),
        false,
        "",
        "",
    );
    out.push_str(
        &f.render(
            &[
                ("Name", "VOLUME NAME"),
                ("Links", "LINKS"),
                ("Size", "SIZE"),
            ],
            &vrow,
        )
        .unwrap_or_default(),
    );
    let bsize: i64 = d.build_cache.iter().map(|b| num(b, "Size")).sum();
    out.push_str(&format!(
        "\nBuild cache usage: {}\n\n",
        human_size(bsize as f64)
    ));
    out.push_str(&crate::tabwriter::docker_table(
        "CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED\n",
    ));
    out
}

/// `system prune`: stopped containers, unused networks, with `--volumes`
/// anonymous volumes, dangling (`-a`: unused) images and build cache, each
/// reported as docker reports it, then the space reclaimed in all.
pub async fn prune(c: &Client, a: &SystemPruneArgs) -> Result<()> {
    use crate::client::{empty, query};
    use berth_api::containers::{ContainerPruneResponse, VolumePruneResponse};
    use berth_api::images::ImagePruneResponse;
    if a.volumes && a.filter.iter().any(|f| f.starts_with("until")) {
        return Err(CliError::Message(
            "ERROR: The \"until\" filter is not supported with \"--volumes\"".into(),
        ));
    }
    if !a.force {
        let mut warning = String::from(
            "WARNING! This will remove:\n  - all stopped containers\n  \
             - all networks not used by at least one container\n",
        );
        if a.volumes {
            warning.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        warning.push_str(if a.all {
            "  - all images without at least one container associated to them\n"
        } else {
            "  - all dangling images\n"
        });
        warning.push_str(if a.all {
            "  - all build cache\n"
        } else {
            "  - unused build cache\n"
        });
        if !a.filter.is_empty() {
            warning.push_str("\n  Items to be pruned will be filtered with:\n");
            for f in &a.filter {
                warning.push_str(&format!("  - {f}\n"));
            }
        }
        if !super::confirm(&warning)? {
            return Ok(());
        }
    }
    let filters = |extra: Option<String>| -> Result<String> {
        let mut f = a.filter.clone();
        f.extend(extra);
        Ok(super::filters_json(&f)?.map_or(String::new(), |f| query(&[("filters", f)])))
    };
    let listed = |title: &str, items: Vec<String>| -> String {
        if items.is_empty() {
            return String::new();
        }
        format!("{title}\n{}\n\n", items.join("\n"))
    };
    let mut out = String::new();
    let mut space: i64 = 0;
    let r: ContainerPruneResponse = c
        .post(&format!("/containers/prune{}", filters(None)?), empty())
        .await?;
    space += r.space_reclaimed;
    out.push_str(&listed(
        "Deleted Containers:",
        r.containers_deleted.unwrap_or_default(),
    ));
    // Networks and the build cache come with their own parts of berthd;
    // a daemon without them has nothing of theirs to prune.
    match c
        .post::<serde_json::Value>(&format!("/networks/prune{}", filters(None)?), empty())
        .await
    {
        Ok(v) => out.push_str(&listed("Deleted Networks:", strings(&v["NetworksDeleted"]))),
        Err(CliError::Daemon { status: 404, .. }) => {}
        Err(e) => return Err(e),
    }
    if a.volumes {
        let r: VolumePruneResponse = c
            .post(&format!("/volumes/prune{}", filters(None)?), empty())
            .await?;
        space += r.space_reclaimed;
        out.push_str(&listed(
            "Deleted Volumes:",
            r.volumes_deleted.unwrap_or_default(),
        ));
    }
    let r: ImagePruneResponse = c
        .post(
            &format!(
                "/images/prune{}",
                filters(Some(format!("dangling={}", !a.all)))?
            ),
            empty(),
        )
        .await?;
    space += r.space_reclaimed as i64;
    if let Some(items) = r.images_deleted.as_ref().filter(|i| !i.is_empty()) {
        out.push_str("Deleted Images:\n");
        out.push_str(&super::images::delete_lines(
            items,
            "untagged: ",
            "deleted: ",
        ));
        out.push('\n');
    }
    let q = if a.all { "?all=1" } else { "" };
    match c
        .post::<serde_json::Value>(&format!("/build/prune{q}"), empty())
        .await
    {
        Ok(v) => {
            space += v["SpaceReclaimed"].as_i64().unwrap_or(0);
            out.push_str(&listed(
                "Deleted build cache objects:",
                strings(&v["CachesDeleted"]),
            ));
        }
        Err(CliError::Daemon { status: 404, .. }) => {}
        Err(e) => return Err(e),
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(space as f64)
    ));
    print(&out)
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ImageSummary;

    #[test]
    fn df_table_like_docker() {
        let d = SystemDataUsageResponse {
            layers_size: 4_261_355,
            images: vec![ImageSummary {
                size: 4_261_355,
                shared_size: 0,
                containers: 0,
                ..Default::default()
            }],
            ..Default::default()
        };
        let f = Format::resolve(None, false, DF_TABLE, "");
        assert_eq!(
            f.render(DF_HEADER, &df_rows(&d)).unwrap(),
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n\
             Images          1         0         4.261MB   4.261MB (100%)\n\
             Containers      0         0         0B        0B\n\
             Local Volumes   0         0         0B        0B\n\
             Build Cache     0         0         0B        0B\n"
        );
    }

    #[test]
    fn version_template_runs() {
        let s = SystemVersion {
            version: "0.1.0".into(),
            api_version: "1.47".into(),
            min_api_version: "1.24".into(),
            platform: berth_api::Platform {
                name: "berth 0.1.0".into(),
            },
            components: vec![berth_api::ComponentVersion {
                name: "Engine".into(),
                version: "0.1.0".into(),
                details: Some(
                    [
                        ("ApiVersion", "1.47"),
                        ("MinAPIVersion", "1.24"),
                        ("Os", "linux"),
                        ("Arch", "amd64"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ),
            }],
            ..Default::default()
        };
        let v = version_value("1.47", Some(&s));
        let text = Template::parse(VERSION_TEMPLATE)
            .unwrap()
            .execute(&v)
            .unwrap();
        let out = TabWriter {
            min_width: 20,
            padding: 1,
        }
        .format(&text);
        assert!(
            out.starts_with("Client: berth\n Version:           "),
            "{out}"
        );
        assert!(out.contains("\nServer: berth 0.1.0\n Engine:\n  Version:          0.1.0\n  API version:      1.47 (minimum version 1.24)\n"), "{out}");
        let f = Template::parse("{{.Server.APIVersion}} {{.Client.APIVersion}}").unwrap();
        assert_eq!(f.execute(&v).unwrap(), "1.47 1.47");
    }
}
