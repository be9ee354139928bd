//! `berth build` and `berth builder prune`: the context sent as a tar
//! (`.dockerignore` applied here, as the docker CLI does), the options as
//! `POST /build`'s query, the legacy builder's output as it streams.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use berth_builder::{EntryKind, read_dockerignore, walk_context};
use http::{HeaderMap, HeaderValue, Method};

use crate::args::{BuildArgs, BuilderPruneArgs};
use crate::client::{Client, Lines, full, query};
use crate::error::{CliError, Result};
use crate::jsonmessage::Display;

use super::{stdout_is_terminal, terminal_width};

fn msg(s: impl Into<String>) -> CliError {
    CliError::Message(s.into())
}

/// `NAME=value` (or `NAME`, from the environment) → the JSON map.
fn build_args(args: &[String]) -> BTreeMap<String, Option<String>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a.clone(), std::env::var(a).ok()),
        })
        .collect()
}

fn kv_map(args: &[String]) -> BTreeMap<String, String> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (a.clone(), String::new()),
        })
        .collect()
}

/// `--secret id=…,src=…` → id → absolute path.
fn secrets(args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for s in args {
        let mut id = None;
        let mut src = None;
        for field in s.split(',') {
            match field.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(v.to_string()),
                Some(("type", "file")) => {}
                _ => return Err(msg(format!("invalid secret {s:?}: want id=ID,src=PATH"))),
            }
        }
        let src = src.ok_or_else(|| msg(format!("invalid secret {s:?}: src=PATH is missing")))?;
        let id = id.unwrap_or_else(|| {
            Path::new(&src)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let abs =
            std::fs::canonicalize(&src).map_err(|e| msg(format!("secret {id}: {src}: {e}")))?;
        out.insert(id, abs.to_string_lossy().into_owned());
    }
    Ok(out)
}

/// `--ssh default|ID[=SOCKET]` → id → the agent's socket (for a bare id,
/// `$SSH_AUTH_SOCK`). Only agent sockets: BuildKit also takes key files,
/// which would need an agent of berth's own.
fn ssh_agents(args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for s in args {
        let (id, path) = match s.split_once('=') {
            Some((id, p)) => (id.to_string(), p.to_string()),
            None => (
                s.clone(),
                std::env::var("SSH_AUTH_SOCK").map_err(|_| {
                    msg(format!(
                        "invalid ssh {s:?}: SSH_AUTH_SOCK is not set; want ID=SOCKET"
                    ))
                })?,
            ),
        };
        if id.is_empty() || path.is_empty() || path.contains(',') {
            return Err(msg(format!(
                "invalid ssh {s:?}: want ID=SOCKET (one agent socket)"
            )));
        }
        let abs =
            std::fs::canonicalize(&path).map_err(|e| msg(format!("ssh {id}: {path}: {e}")))?;
        let meta = std::fs::metadata(&abs).map_err(|e| msg(format!("ssh {id}: {path}: {e}")))?;
        if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
            return Err(msg(format!(
                "ssh {id}: {path} is not an agent socket (key files are not supported)"
            )));
        }
        out.insert(id, abs.to_string_lossy().into_owned());
    }
    Ok(out)
}

/// `--output`: `type=local,dest=DIR`, `type=tar,dest=FILE`, or a bare
/// directory.
fn output(spec: &str) -> Result<serde_json::Value> {
    let mut typ = "local".to_string();
    let mut dest = None;
    if !spec.contains('=') {
        dest = Some(spec.to_string());
    } else {
        for field in spec.split(',') {
            match field.split_once('=') {
                Some(("type", v)) => typ = v.to_string(),
                Some(("dest", v)) => dest = Some(v.to_string()),
                _ => return Err(msg(format!("invalid output {spec:?}"))),
            }
        }
    }
    let dest = dest.ok_or_else(|| msg(format!("output {spec:?}: dest=PATH is missing")))?;
    if dest == "-" {
        return Err(msg("output to STDOUT is not supported: give dest=PATH"));
    }
    let abs = std::path::absolute(&dest).map_err(|e| msg(format!("{dest}: {e}")))?;
    Ok(serde_json::json!([{ "Type": typ, "Attrs": { "dest": abs.to_string_lossy() } }]))
}

fn random_name() -> String {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The context directory as a tar, `.dockerignore` applied (the
/// Dockerfile and .dockerignore always go), owners 0:0 as docker sends
/// them. `extra` files are added at the root.
fn context_tar(dir: &Path, dockerfile: &Path, extra: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let ignore = read_dockerignore(dir, dockerfile).map_err(|e| msg(e.to_string()))?;
    let entries = walk_context(dir, &ignore).map_err(|e| msg(e.to_string()))?;
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let add = |rel: &str, b: &mut tar::Builder<Vec<u8>>| -> Result<()> {
        let p = dir.join(rel);
        let md = std::fs::symlink_metadata(&p).map_err(|e| msg(format!("{}: {e}", p.display())))?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata(&md);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let e = |e: std::io::Error| msg(format!("{}: {e}", p.display()));
        if md.file_type().is_symlink() {
            let target = std::fs::read_link(&p).map_err(e)?;
            b.append_link(&mut h, rel, target).map_err(e)?;
        } else if md.is_dir() {
            b.append_data(&mut h, format!("{rel}/"), std::io::empty())
                .map_err(e)?;
        } else if md.is_file() {
            let f = std::fs::File::open(&p).map_err(e)?;
            b.append_data(&mut h, rel, f).map_err(e)?;
        }
        Ok(())
    };
    let mut seen = std::collections::BTreeSet::new();
    for ent in &entries {
        if ent.kind == EntryKind::Other {
            continue;
        }
        add(&ent.path, &mut b)?;
        seen.insert(ent.path.clone());
    }
    for always in [".dockerignore"] {
        if !seen.contains(always) && dir.join(always).is_file() {
            add(always, &mut b)?;
        }
    }
    if let Ok(rel) = dockerfile.strip_prefix(dir) {
        let rel = rel.to_string_lossy().into_owned();
        if !seen.contains(&rel) && dockerfile.is_file() {
            add(&rel, &mut b)?;
        }
    }
    for (name, data) in extra {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, &data[..])
            .map_err(|e| msg(format!("{name}: {e}")))?;
    }
    b.into_inner()
        .map_err(|e| msg(format!("writing the context: {e}")))
}

pub async fn build(c: &Client, a: &BuildArgs) -> Result<()> {
    let quiet = a.quiet || a.progress == "quiet";
    if !["auto", "plain", "tty", "quiet"].contains(&a.progress.as_str()) {
        return Err(msg(format!(
            "invalid --progress {:?}: auto, plain, tty or quiet",
            a.progress
        )));
    }
    let mut q: Vec<(&str, String)> = Vec::new();
    let stdin_df = a.file.as_deref() == Some("-");
    let (body, dockerfile_param) = if a.context == "-" {
        if stdin_df {
            return Err(msg(
                "invalid argument: can't use stdin for both build context and dockerfile",
            ));
        }
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(CliError::io("reading the context from STDIN"))?;
        (data, a.file.clone())
    } else {
        let dir = PathBuf::from(&a.context);
        if !dir.is_dir() {
            return Err(msg(format!(
                "unable to prepare context: path {:?} not found",
                a.context
            )));
        }
        let mut extra = Vec::new();
        let (df_path, param) = if stdin_df {
            let mut text = Vec::new();
            std::io::stdin()
                .read_to_end(&mut text)
                .map_err(CliError::io("reading the Dockerfile from STDIN"))?;
            let name = format!(".dockerfile.{}", random_name());
            extra.push((name.clone(), text));
            (dir.join("Dockerfile"), Some(name))
        } else {
            let f = match &a.file {
                Some(f) => PathBuf::from(f),
                None => dir.join("Dockerfile"),
            };
            let abs_dir =
                std::fs::canonicalize(&dir).map_err(|e| msg(format!("{}: {e}", dir.display())))?;
            let abs_f = std::fs::canonicalize(&f).map_err(|_| {
                msg(format!(
                    "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
                    f.display()
                ))
            })?;
            match abs_f.strip_prefix(&abs_dir) {
                Ok(rel) => (f.clone(), Some(rel.to_string_lossy().into_owned())),
                Err(_) => {
                    // Outside the context: sent along under a name of its own.
                    let text =
                        std::fs::read(&abs_f).map_err(|e| msg(format!("{}: {e}", f.display())))?;
                    let name = format!(".dockerfile.{}", random_name());
                    extra.push((name.clone(), text));
                    (f.clone(), Some(name))
                }
            }
        };
        let tar = context_tar(&dir, &df_path, &extra)?;
        if !quiet {
            eprintln!(
                "Sending build context to berth daemon  {}",
                crate::units::bytes_size(tar.len() as f64)
            );
        }
        (tar, param)
    };
    if let Some(f) = dockerfile_param {
        q.push(("dockerfile", f));
    }
    for t in &a.tags {
        q.push(("t", t.clone()));
    }
    if !a.build_args.is_empty() {
        q.push((
            "buildargs",
            serde_json::to_string(&build_args(&a.build_args)).expect("json"),
        ));
    }
    if !a.label.is_empty() {
        q.push((
            "labels",
            serde_json::to_string(&kv_map(&a.label)).expect("json"),
        ));
    }
    if let Some(t) = &a.target {
        q.push(("target", t.clone()));
    }
    if a.no_cache {
        q.push(("nocache", "1".into()));
    }
    if a.pull {
        q.push(("pull", "1".into()));
    }
    if quiet {
        q.push(("q", "1".into()));
    }
    if let Some(n) = &a.network {
        q.push(("networkmode", n.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    for h in &a.add_host {
        q.push(("extrahosts", h.clone()));
    }
    if !a.secret.is_empty() {
        q.push((
            "secrets",
            serde_json::to_string(&secrets(&a.secret)?).expect("json"),
        ));
    }
    if !a.ssh.is_empty() {
        q.push((
            "ssh",
            serde_json::to_string(&ssh_agents(&a.ssh)?).expect("json"),
        ));
    }
    for e in &a.allow {
        q.push(("allow", e.clone()));
    }
    if let Some(o) = &a.output {
        q.push(("outputs", output(o)?.to_string()));
    }
    q.push(("rm", if a.rm { "1" } else { "0" }.into()));
    let mut h = HeaderMap::new();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/x-tar"),
    );
    let resp = c
        .call(Method::POST, &format!("/build{}", query(&q)), h, full(body))
        .await?;
    let mut lines = Lines::new(resp);
    let mut captured: Vec<u8> = Vec::new();
    let (result, aux) = if quiet {
        let mut d = Display::new(&mut captured, false, terminal_width());
        let r = d.stream(&mut lines).await;
        (r, std::mem::take(&mut d.aux))
    } else {
        let mut d = Display::new(std::io::stdout(), stdout_is_terminal(), terminal_width());
        let r = d.stream(&mut lines).await;
        (r, std::mem::take(&mut d.aux))
    };
    result?;
    let id = aux
        .iter()
        .rev()
        .find_map(|v| v.get("ID").and_then(|i| i.as_str()).map(String::from));
    if quiet {
        let mut out = std::io::stdout();
        let _ = out.write_all(&captured);
        let _ = out.flush();
    }
    if let Some(path) = &a.iidfile {
        let id = id.ok_or_else(|| msg("the daemon sent no image ID"))?;
        std::fs::write(path, &id).map_err(|e| msg(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

pub async fn prune(c: &Client, a: &BuilderPruneArgs) -> Result<()> {
    if !a.force && std::io::stdin().is_terminal() {
        print!(
            "WARNING! This will remove all dangling build cache.\nAre you sure you want to continue? [y/N] "
        );
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        if !line.trim().eq_ignore_ascii_case("y") {
            return Ok(());
        }
    }
    let q = if a.all { "?all=1" } else { "" };
    let v: serde_json::Value = c
        .post(&format!("/build/prune{q}"), crate::client::empty())
        .await?;
    let ids: Vec<&str> = v
        .get("CachesDeleted")
        .and_then(|d| d.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    if !ids.is_empty() {
        println!("Deleted build cache objects:");
        for id in &ids {
            println!("{}", id.trim_start_matches("sha256:"));
        }
        println!();
    }
    let bytes = v
        .get("SpaceReclaimed")
        .and_then(|s| s.as_u64())
        .unwrap_or(0);
    println!(
        "Total reclaimed space: {}",
        crate::units::human_size(bytes as f64)
    );
    Ok(())
}
