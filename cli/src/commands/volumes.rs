//! `volume create/ls/inspect/rm/prune` and `events`.

use berth_api::containers::{
    EventMessage, Volume, VolumeCreateOptions, VolumeListResponse, VolumePruneResponse,
};
use http::{HeaderMap, Method};

use super::{confirm, eprint, filters_json, print};
use crate::args::{EventsArgs, VolumeCreateArgs, VolumeLsArgs, VolumePruneArgs, VolumeRmArgs};
use crate::client::{Client, Lines, empty, enc, json_body, query};
use crate::error::{CliError, Result};
use crate::formatter::{Format, row};
use crate::template::{Template, Value};
use crate::units::{now_secs, parse_timestamp};

fn pairs(list: &[String]) -> std::collections::BTreeMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

pub async fn create(c: &Client, a: &VolumeCreateArgs) -> Result<()> {
    let body = VolumeCreateOptions {
        name: a.name.clone().unwrap_or_default(),
        driver: a.driver.clone(),
        driver_opts: pairs(&a.opt),
        labels: pairs(&a.label),
    };
    let v: Volume = c.post("/volumes/create", json_body(&body)).await?;
    print(&format!("{}\n", v.name))
}

pub const VOLUME_TABLE: &str = "table {{.Driver}}\t{{.Name}}";
const VOLUME_HEADER: &[(&str, &str)] = &[
    ("Driver", "DRIVER"),
    ("Name", "VOLUME NAME"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Scope", "SCOPE"),
    ("Labels", "LABELS"),
    ("Size", "SIZE"),
    ("Links", "LINKS"),
];

pub fn volume_rows(list: &[Volume]) -> Vec<Value> {
    list.iter()
        .map(|v| {
            let labels: Vec<String> = v.labels.iter().map(|(k, x)| format!("{k}={x}")).collect();
            let u = v.usage_data.as_ref();
            row(vec![
                // Cluster volumes' fields: "N/A" for local ones.
                ("Availability", Value::str("N/A")),
                ("Group", Value::str("N/A")),
                ("Status", Value::str("N/A")),
                ("Driver", Value::str(&v.driver)),
                ("Name", Value::str(&v.name)),
                ("Mountpoint", Value::str(&v.mountpoint)),
                ("Scope", Value::str(&v.scope)),
                ("Labels", Value::Str(labels.join(","))),
                (
                    "Label",
                    Value::Map(
                        v.labels
                            .iter()
                            .map(|(k, x)| (k.clone(), Value::str(x)))
                            .collect(),
                    ),
                ),
                (
                    "Size",
                    Value::Str(u.filter(|u| u.size >= 0).map_or("N/A".into(), |u| {
                        crate::units::human_size_precision(u.size as f64, 3)
                    })),
                ),
                (
                    "Links",
                    Value::Str(
                        u.filter(|u| u.ref_count >= 0)
                            .map_or("N/A".into(), |u| u.ref_count.to_string()),
                    ),
                ),
            ])
        })
        .collect()
}

pub async fn ls(c: &Client, a: &VolumeLsArgs) -> Result<()> {
    let q = filters_json(&a.filter)?.map_or(String::new(), |f| query(&[("filters", f)]));
    let mut r: VolumeListResponse = c.get(&format!("/volumes{q}")).await?;
    r.volumes.sort_by(|x, y| x.name.cmp(&y.name));
    let format = Format::resolve(a.format.as_deref(), a.quiet, VOLUME_TABLE, "{{.Name}}");
    print(&format.render(VOLUME_HEADER, &volume_rows(&r.volumes))?)
}

pub async fn rm(c: &Client, a: &VolumeRmArgs) -> Result<()> {
    let mut failed = false;
    for v in &a.volumes {
        let q = if a.force { "?force=1" } else { "" };
        match c.delete_ok(&format!("/volumes/{}{q}", enc(v))).await {
            Ok(()) => print(&format!("{v}\n"))?,
            Err(e @ CliError::Connect { .. }) => return Err(e),
            Err(e) => {
                eprint(&format!("{e}\n"));
                failed = true;
            }
        }
    }
    if failed {
        Err(CliError::Status(1))
    } else {
        Ok(())
    }
}

pub async fn prune(c: &Client, a: &VolumePruneArgs) -> Result<()> {
    let warning = if a.all {
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !a.force && !confirm(warning)? {
        return Ok(());
    }
    let mut filters = a.filter.clone();
    if a.all {
        filters.push("all=true".into());
    }
    let q = filters_json(&filters)?.map_or(String::new(), |f| query(&[("filters", f)]));
    let r: VolumePruneResponse = c.post(&format!("/volumes/prune{q}"), empty()).await?;
    print(&super::prune_report(
        "Deleted Volumes:",
        r.volumes_deleted,
        r.space_reclaimed,
    ))
}

/// docker's plain event line:
/// `2024-01-02T15:04:05.000000000Z container start 0123… (image=busybox, name=web)`.
pub fn event_line(e: &EventMessage) -> String {
    let secs = if e.time_nano != 0 {
        e.time_nano / 1_000_000_000
    } else {
        e.time
    };
    let nanos = if e.time_nano != 0 {
        e.time_nano % 1_000_000_000
    } else {
        0
    };
    let t = chrono::DateTime::from_timestamp(secs, nanos as u32)
        .map(|t| {
            // Go's RFC3339Nano layout: `Z` for a zero offset.
            let t = t.with_timezone(&chrono::Local);
            let zone = if t.offset().local_minus_utc() == 0 {
                "Z".to_string()
            } else {
                t.format("%:z").to_string()
            };
            format!("{}{zone}", t.format("%Y-%m-%dT%H:%M:%S%.9f"))
        })
        .unwrap_or_default();
    let attrs: Vec<String> = e
        .actor
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut s = format!("{t} {} {} {}", e.kind, e.action, e.actor.id);
    if !attrs.is_empty() {
        s.push_str(&format!(" ({})", attrs.join(", ")));
    }
    s.push('\n');
    s
}

pub async fn events(c: &Client, a: &EventsArgs) -> Result<()> {
    let now = now_secs();
    let mut q = vec![];
    for (k, v) in [("since", &a.since), ("until", &a.until)] {
        if let Some(v) = v {
            let t = parse_timestamp(v, now)
                .ok_or_else(|| CliError::Usage(format!("invalid value for \"--{k}\": {v}")))?;
            q.push((k, t));
        }
    }
    if let Some(f) = filters_json(&a.filter)? {
        q.push(("filters", f));
    }
    let tmpl = match a.format.as_deref() {
        None | Some("") => None,
        Some("json") => Some(Template::parse("{{json .}}")?),
        Some(f) => Some(Template::parse(f)?),
    };
    let resp = c
        .call(
            Method::GET,
            &format!("/events{}", query(&q)),
            HeaderMap::new(),
            empty(),
        )
        .await?;
    let mut lines = Lines::new(resp);
    while let Some(line) = lines.next_line().await? {
        let out = match &tmpl {
            Some(t) => {
                let v: Value = serde_json::from_str(&line).map_err(|e| CliError::Decode {
                    what: "/events".into(),
                    message: e.to_string(),
                })?;
                format!("{}\n", t.execute(&v)?)
            }
            None => {
                let e: EventMessage =
                    serde_json::from_str(&line).map_err(|e| CliError::Decode {
                        what: "/events".into(),
                        message: e.to_string(),
                    })?;
                event_line(&e)
            }
        };
        print(&out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_table_and_event_lines() {
        let v = Volume {
            name: "data".into(),
            driver: "local".into(),
            ..Default::default()
        };
        let f = Format::resolve(None, false, VOLUME_TABLE, "{{.Name}}");
        assert_eq!(
            f.render(VOLUME_HEADER, &volume_rows(&[v])).unwrap(),
            "DRIVER    VOLUME NAME\nlocal     data\n"
        );
        let e: EventMessage = serde_json::from_str(
            r#"{"Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"web","image":"busybox"}},"time":1700000000,"timeNano":1700000000000000001}"#,
        )
        .unwrap();
        let line = event_line(&e);
        assert!(
            line.ends_with(" container start abc (image=busybox, name=web)\n"),
            "{line}"
        );
        assert!(line.contains(":20.000000001"), "{line}");
    }
}
