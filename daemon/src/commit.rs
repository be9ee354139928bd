//! `POST /commit` (`docker commit`): a container's changes as a new layer
//! on its image, its config as the image's, with `--change` instructions
//! applied; and the same `--change` instructions for `docker import`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use berth_api::EmptyObject;
use berth_api::containers::{ContainerConfig, HealthConfig, IdResponse};
use berth_builder::{Command, CommandLine, GlobalScope, Healthcheck, StageScope};
use berth_store::NewImage;
use berth_store::layer::{Compression, CreateOptions};
use berth_store::refs::ImageName;
use bytes::Bytes;

use crate::containers::lifecycle;
use crate::containers::record::Status;
use crate::error::{ApiError, Result};
use crate::images::blocking;
use crate::server::Daemon;

/// The instructions `--change` takes, as dockerd's `validCommitCommands`.
const CHANGEABLE: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Apply Dockerfile instructions to a config, variables expanded with its
/// environment as a build would. Errors name the change.
pub fn apply_changes(config: &mut ContainerConfig, changes: &[String]) -> Result<()> {
    let globals = GlobalScope {
        file: "--change".into(),
        escape: '\\',
        values: Vec::new(),
        unset: Default::default(),
    };
    let env: Vec<(String, String)> = config
        .env
        .iter()
        .flatten()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect();
    let mut scope = StageScope::new(&globals, &Default::default(), env);
    let bad = |c: &str, why: String| ApiError::InvalidParameter(format!("change {c:?}: {why}"));
    for (i, change) in changes.iter().enumerate() {
        let change = change.trim();
        if change.is_empty() {
            continue;
        }
        let ins = berth_builder::parse_line("--change", i + 1, change, '\\')
            .map_err(|e| bad(change, e.message.clone()))?;
        let keyword = ins.command.keyword();
        if !CHANGEABLE.contains(&keyword) {
            return Err(bad(
                change,
                format!("{keyword} is not a valid change command"),
            ));
        }
        let ins = scope
            .step(&ins)
            .map_err(|e| bad(change, e.message.clone()))?;
        let shell = config
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
        match ins.command {
            Command::Cmd(c) => config.cmd = Some(c.argv(&shell)),
            Command::Entrypoint(c) => {
                config.entrypoint = Some(c.argv(&shell));
                // As in a Dockerfile: a new entrypoint drops the old Cmd.
                config.cmd = None;
                if let CommandLine::Exec(v) = &c
                    && v.is_empty()
                {
                    config.entrypoint = None;
                }
            }
            Command::Env(kvs) => {
                let env = config.env.get_or_insert_with(Vec::new);
                for kv in kvs {
                    env.retain(|e| e.split('=').next() != Some(kv.key.as_str()));
                    env.push(format!("{}={}", kv.key, kv.value));
                }
            }
            Command::Expose(ports) => {
                let set = config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in ports {
                    let p = if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    };
                    set.insert(p, EmptyObject {});
                }
            }
            Command::Label(kvs) => {
                let labels = config.labels.get_or_insert_with(BTreeMap::new);
                for kv in kvs {
                    labels.insert(kv.key, kv.value);
                }
            }
            Command::Onbuild(trigger) => {
                config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(trigger.original.clone());
            }
            Command::StopSignal(s) => config.stop_signal = Some(s),
            Command::User(u) => config.user = u,
            Command::Volume(vols) => {
                let set = config.volumes.get_or_insert_with(BTreeMap::new);
                for v in vols {
                    set.insert(v, EmptyObject {});
                }
            }
            Command::Workdir(w) => {
                config.working_dir = if w.starts_with('/') || config.working_dir.is_empty() {
                    w
                } else {
                    format!("{}/{w}", config.working_dir.trim_end_matches('/'))
                };
            }
            Command::Healthcheck(h) => config.healthcheck = Some(health(&h)),
            _ => unreachable!("only CHANGEABLE instructions get here"),
        }
    }
    Ok(())
}

fn health(h: &Healthcheck) -> HealthConfig {
    let ns = |d: Option<std::time::Duration>| d.map_or(0, |d| d.as_nanos() as i64);
    match h {
        Healthcheck::None => HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..HealthConfig::default()
        },
        Healthcheck::Check {
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
            ..
        } => HealthConfig {
            test: Some(h.test()),
            interval: ns(*interval),
            timeout: ns(*timeout),
            start_period: ns(*start_period),
            start_interval: ns(*start_interval),
            retries: retries.map_or(0, i64::from),
        },
    }
}

/// `POST /commit?container=…&repo=…&tag=…&comment=…&author=…&pause=…&changes=…`
pub async fn post_commit(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Result<Json<IdResponse>> {
    let get = |k: &str| {
        q.iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let changes: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "changes")
        .map(|(_, v)| v.clone())
        .collect();
    let container = get("container");
    if container.is_empty() {
        return Err(ApiError::InvalidParameter(
            "no container given to commit".into(),
        ));
    }
    let pause = !matches!(get("pause").as_str(), "0" | "false" | "False");
    let (repo, tag) = (get("repo"), get("tag"));
    let name = match (repo.is_empty(), tag.is_empty()) {
        (true, true) => None,
        (true, false) => {
            return Err(ApiError::InvalidParameter(
                "tag is not allowed without a repository".into(),
            ));
        }
        (false, true) => Some(repo),
        (false, false) => Some(format!("{repo}:{tag}")),
    }
    .map(|n| ImageName::parse(&n).map_err(|e| ApiError::InvalidParameter(e.to_string())))
    .transpose()?;
    let e = d.containers.get(&container)?;
    let _op = e.op.lock().await;
    let rec = e.record();
    // The body, when given, is the config to start from.
    let mut config = match body.iter().any(|b| !b.is_ascii_whitespace()) {
        true if &body[..] != b"null" => serde_json::from_slice::<ContainerConfig>(&body)
            .map_err(|err| ApiError::InvalidParameter(format!("invalid JSON: {err}")))?,
        _ => ContainerConfig::default(),
    };
    fill_from(&mut config, &rec.config);
    apply_changes(&mut config, &changes)?;
    let paused_here = pause && rec.state.status == Status::Running;
    if paused_here {
        lifecycle::runtime(&d)
            .pause(&e.id)
            .map_err(|err| ApiError::Internal(format!("pausing {}: {err}", e.id)))?;
    }
    let _content = d.content.clone().write_owned().await;
    let d2 = d.clone();
    let id = e.id.clone();
    let (comment, author) = (get("comment"), get("author"));
    let created_by = rec.config.cmd.clone().unwrap_or_default().join(" ");
    let image_ref = rec.image_id.clone();
    let made = blocking(move || {
        let parent = d2.store.image(&image_ref).map_err(ApiError::Store)?;
        let layer = d2
            .store
            .commit_container_layer(
                &id,
                &CreateOptions {
                    compression: Compression::Gzip,
                    level: None,
                    threads: 0,
                },
            )
            .map_err(ApiError::Store)?;
        let mut history = serde_json::json!({"created_by": created_by});
        if !comment.is_empty() {
            history["comment"] = comment.into();
        }
        if !author.is_empty() {
            history["author"] = author.clone().into();
        }
        let new = NewImage {
            layers: vec![layer.digest],
            history: vec![history],
            config: Some(serde_json::to_value(&config).expect("config serializes")),
            author: (!author.is_empty()).then_some(author),
        };
        let manifest = d2
            .store
            .commit_image(Some(&parent), &new, name.as_ref())
            .map_err(ApiError::Store)?;
        let image = d2
            .store
            .image_by_manifest(&manifest)
            .map_err(ApiError::Store)?;
        Ok((image.id.to_string(), name.map(|n| n.familiar())))
    })
    .await;
    if paused_here {
        let _ = lifecycle::runtime(&d).resume(&e.id);
    }
    let (image_id, name) = made?;
    d.events.container_with(
        &rec,
        "commit",
        [("comment", get("comment")), ("imageID", image_id.clone())],
    );
    if let Some(n) = name {
        d.events.image(&image_id, &n, "tag");
    }
    Ok(Json(IdResponse { id: image_id }))
}

/// What the request's config leaves empty comes from the container's, as
/// dockerd's commit merges them.
fn fill_from(c: &mut ContainerConfig, from: &ContainerConfig) {
    let mut base = from.clone();
    // The runtime's view of the container is not the image's.
    base.hostname = String::new();
    base.domainname = String::new();
    base.attach_stdin = false;
    base.attach_stdout = false;
    base.attach_stderr = false;
    base.tty = false;
    base.open_stdin = false;
    base.stdin_once = false;
    if c.user.is_empty() {
        c.user = base.user;
    }
    if c.env.as_ref().is_none_or(|e| e.is_empty()) {
        c.env = base.env;
    }
    if c.cmd.as_ref().is_none_or(|e| e.is_empty()) {
        c.cmd = base.cmd;
    }
    if c.entrypoint.is_none() {
        c.entrypoint = base.entrypoint;
    }
    if c.working_dir.is_empty() {
        c.working_dir = base.working_dir;
    }
    if c.exposed_ports.is_none() {
        c.exposed_ports = base.exposed_ports;
    }
    if c.volumes.is_none() {
        c.volumes = base.volumes;
    }
    if c.labels.is_none() {
        c.labels = base.labels;
    }
    if c.healthcheck.is_none() {
        c.healthcheck = base.healthcheck;
    }
    if c.stop_signal.is_none() {
        c.stop_signal = base.stop_signal;
    }
    if c.on_build.is_none() {
        c.on_build = base.on_build;
    }
    if c.shell.is_none() {
        c.shell = base.shell;
    }
    if c.image.is_empty() {
        c.image = base.image;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(changes: &[&str]) -> Result<ContainerConfig> {
        let mut c = ContainerConfig {
            env: Some(vec!["PATH=/bin".into()]),
            cmd: Some(vec!["sh".into()]),
            working_dir: "/app".into(),
            ..Default::default()
        };
        let changes: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply_changes(&mut c, &changes).map(|()| c)
    }

    #[test]
    fn changes_as_dockerfile_instructions() {
        let c = changed(&[
            r#"CMD ["run", "it"]"#,
            "ENV PATH=$PATH:/opt/bin MODE=prod",
            "EXPOSE 80 53/udp",
            r#"LABEL a=1 "b c"=2"#,
            "USER app:app",
            "WORKDIR sub",
            "VOLUME /data",
            "STOPSIGNAL SIGINT",
            "ONBUILD RUN echo hi",
            "HEALTHCHECK --interval=5s --retries=2 CMD check",
        ])
        .unwrap();
        assert_eq!(c.cmd.unwrap(), ["run", "it"]);
        assert_eq!(c.env.unwrap(), ["PATH=/bin:/opt/bin", "MODE=prod"]);
        let ports: Vec<String> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
        let labels = c.labels.unwrap();
        assert_eq!((labels["a"].as_str(), labels["b c"].as_str()), ("1", "2"));
        assert_eq!(c.user, "app:app");
        assert_eq!(c.working_dir, "/app/sub");
        assert!(c.volumes.unwrap().contains_key("/data"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(c.on_build.unwrap(), ["RUN echo hi"]);
        let h = c.healthcheck.unwrap();
        assert_eq!(h.test.unwrap(), ["CMD-SHELL", "check"]);
        assert_eq!((h.interval, h.retries), (5_000_000_000, 2));
    }

    #[test]
    fn shell_form_and_entrypoint() {
        let c = changed(&["ENTRYPOINT exec app"]).unwrap();
        assert_eq!(c.entrypoint.unwrap(), ["/bin/sh", "-c", "exec app"]);
        assert_eq!(c.cmd, None);
    }

    #[test]
    fn bad_changes_are_named() {
        let e = changed(&["RUN rm -rf /"]).unwrap_err().to_string();
        assert!(e.contains("RUN is not a valid change command"), "{e}");
        let e = changed(&["FROB x"]).unwrap_err().to_string();
        assert!(e.contains("FROB x"), "{e}");
    }
}
