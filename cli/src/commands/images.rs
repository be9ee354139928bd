//! `images`, `pull`, `push`, `tag`, `rmi`, `history`, `save`, `load`,
//! `import`, `image inspect`, `image prune`.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use berth_api::{HistoryResponseItem, ImageDeleteResponseItem, ImagePruneResponse, ImageSummary};
use http::{HeaderMap, HeaderValue, Method};
use tokio::io::AsyncWriteExt;

use super::{
    confirm, familiar, filters_json, print, split_tag, stdout_is_terminal, terminal_width,
};
use crate::args::{
    HistoryArgs, ImagePruneArgs, ImagesArgs, ImportArgs, LoadArgs, PullArgs, PushArgs, RmiArgs,
    SaveArgs, TagArgs,
};
use crate::client::{Client, Lines, chunks, empty, enc, query, reader_body};
use crate::error::{CliError, Result};
use crate::formatter::{Format, ellipsis, row, short_id};
use crate::jsonmessage::Display;
use crate::template::Value;
use crate::units::{ago, go_time_string, human_size, human_size_precision, now_secs};

pub const IMAGES_TABLE: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
pub const IMAGES_TABLE_DIGESTS: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
pub const IMAGES_HEADER: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("VirtualSize", "SIZE"),
];

/// The rows of `docker images`: one per repository and tag (and digest
/// with `--digests`), `<none>` for untagged images.
pub fn image_rows(images: &[ImageSummary], digests: bool, trunc: bool, now: i64) -> Vec<Value> {
    let mut out = Vec::new();
    for img in images {
        let dangling = (img.repo_tags.is_empty() && img.repo_digests.is_empty())
            || (img.repo_tags == ["<none>:<none>"] && img.repo_digests == ["<none>@<none>"]);
        let mut pairs: Vec<(String, String, String)> = Vec::new();
        if dangling {
            pairs.push(("<none>".into(), "<none>".into(), "<none>".into()));
        } else {
            let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut dig: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for t in img.repo_tags.iter().filter(|t| *t != "<none>:<none>") {
                let (repo, tag) = split_tag(t);
                tags.entry(familiar(repo))
                    .or_default()
                    .push(tag.unwrap_or("latest").to_string());
            }
            for d in &img.repo_digests {
                if let Some((repo, digest)) = d.split_once('@')
                    && repo != "<none>"
                {
                    dig.entry(familiar(repo))
                        .or_default()
                        .push(digest.to_string());
                }
            }
            for (repo, ts) in &tags {
                let ds = dig.remove(repo).unwrap_or_default();
                for t in ts {
                    if !digests || ds.is_empty() {
                        pairs.push((repo.clone(), t.clone(), "<none>".into()));
                    } else {
                        for d in &ds {
                            pairs.push((repo.clone(), t.clone(), d.clone()));
                        }
                    }
                }
            }
            for (repo, ds) in dig {
                if digests {
                    for d in ds {
                        pairs.push((repo.clone(), "<none>".into(), d));
                    }
                } else {
                    pairs.push((repo, "<none>".into(), String::new()));
                }
            }
        }
        for (repo, tag, digest) in pairs {
            out.push(image_row(img, repo, tag, digest, trunc, now));
        }
    }
    out
}

fn image_row(
    img: &ImageSummary,
    repo: String,
    tag: String,
    digest: String,
    trunc: bool,
    now: i64,
) -> Value {
    let id = if trunc {
        short_id(&img.id)
    } else {
        img.id.clone()
    };
    let na = |n: i64, f: &dyn Fn(i64) -> String| if n == -1 { "N/A".to_string() } else { f(n) };
    let size = |n: i64| human_size_precision(n as f64, 3);
    let unique = if img.size == -1 || img.shared_size == -1 {
        "N/A".to_string()
    } else {
        size(img.size - img.shared_size)
    };
    let labels: Vec<String> = img.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    row(vec![
        ("ID", Value::Str(id)),
        ("Repository", Value::Str(repo)),
        ("Tag", Value::Str(tag)),
        ("Digest", Value::Str(digest)),
        ("CreatedSince", Value::Str(ago(img.created, now))),
        ("CreatedAt", Value::Str(go_time_string(img.created))),
        ("Size", Value::Str(size(img.size))),
        ("VirtualSize", Value::Str(size(img.size))),
        ("SharedSize", Value::Str(na(img.shared_size, &size))),
        ("UniqueSize", Value::Str(unique)),
        (
            "Containers",
            Value::Str(na(img.containers, &|n| n.to_string())),
        ),
        (
            "Label",
            Value::Map(
                img.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::str(v)))
                    .collect(),
            ),
        ),
        ("Labels", Value::Str(labels.join(","))),
    ])
}

pub async fn images(c: &Client, a: &ImagesArgs) -> Result<()> {
    let mut filters = a.filter.clone();
    if let Some(r) = &a.repository {
        filters.push(format!("reference={r}"));
    }
    let mut q = vec![];
    if a.all {
        q.push(("all", "1".to_string()));
    }
    if let Some(f) = filters_json(&filters)? {
        q.push(("filters", f));
    }
    let list: Vec<ImageSummary> = c.get(&format!("/images/json{}", query(&q))).await?;
    let default = if a.digests {
        IMAGES_TABLE_DIGESTS
    } else {
        IMAGES_TABLE
    };
    let format = Format::resolve(a.format.as_deref(), a.quiet, default, "{{.ID}}");
    let rows = image_rows(&list, a.digests, !a.no_trunc, now_secs());
    print(&format.render(IMAGES_HEADER, &rows)?)
}

pub async fn pull(c: &Client, a: &PullArgs) -> Result<()> {
    let (repo, tag) = split_tag(&a.name);
    let digest = repo.contains('@');
    if tag.is_none() && !digest && !a.quiet {
        print("Using default tag: latest\n")?;
    }
    let tag = tag.unwrap_or(if digest { "" } else { "latest" });
    let mut q = vec![("fromImage", repo.to_string())];
    if !tag.is_empty() {
        q.push(("tag", tag.to_string()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    let resp = c
        .call(
            Method::POST,
            &format!("/images/create{}", query(&q)),
            auth_headers(repo),
            empty(),
        )
        .await?;
    let mut lines = Lines::new(resp);
    if a.quiet {
        let mut d = Display::new(std::io::sink(), false, 80);
        d.stream(&mut lines).await?;
    } else {
        let mut d = Display::new(std::io::stdout(), stdout_is_terminal(), terminal_width());
        d.stream(&mut lines).await?;
    }
    print(&format!("{}\n", full_reference(repo, tag)))
}

/// docker's normalized reference: `docker.io/library/busybox:latest`.
pub fn full_reference(repo: &str, tag: &str) -> String {
    let first = repo.split('/').next().unwrap_or("");
    let domain =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let name = if domain {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    if tag.is_empty() {
        name
    } else {
        format!("{name}:{tag}")
    }
}

fn auth_headers(reference: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&crate::auth::for_reference(reference)) {
        h.insert("x-registry-auth", v);
    }
    h
}

pub async fn push(c: &Client, a: &PushArgs) -> Result<()> {
    let (repo, tag) = split_tag(&a.name);
    let q = match tag {
        Some(t) => query(&[("tag", t.to_string())]),
        None => String::new(),
    };
    if tag.is_none() && !a.quiet {
        print("Using default tag: latest\n")?;
    }
    let resp = c
        .call(
            Method::POST,
            &format!("/images/{}/push{q}", repo),
            auth_headers(repo),
            empty(),
        )
        .await?;
    let mut lines = Lines::new(resp);
    if a.quiet {
        Display::new(std::io::sink(), false, 80)
            .stream(&mut lines)
            .await?;
        print(&format!("{}\n", a.name))
    } else {
        Display::new(std::io::stdout(), stdout_is_terminal(), terminal_width())
            .stream(&mut lines)
            .await
    }
}

pub async fn tag(c: &Client, a: &TagArgs) -> Result<()> {
    let (repo, tag) = split_tag(&a.target);
    let q = query(&[
        ("repo", repo.to_string()),
        ("tag", tag.unwrap_or("latest").to_string()),
    ]);
    c.post_ok(&format!("/images/{}/tag{q}", a.source), empty())
        .await
}

pub async fn rmi(c: &Client, a: &RmiArgs) -> Result<()> {
    let mut q = vec![];
    if a.force {
        q.push(("force", "1".to_string()));
    }
    if a.no_prune {
        q.push(("noprune", "1".to_string()));
    }
    let mut failed = false;
    for name in &a.images {
        match c
            .delete::<Vec<ImageDeleteResponseItem>>(&format!("/images/{name}{}", query(&q)))
            .await
        {
            Ok(items) => print(&delete_lines(&items, "Untagged: ", "Deleted: "))?,
            Err(e @ CliError::Connect { .. }) => return Err(e),
            Err(e) => {
                super::eprint(&format!("{e}\n"));
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

pub(crate) fn delete_lines(
    items: &[ImageDeleteResponseItem],
    untagged: &str,
    deleted: &str,
) -> String {
    let mut out = String::new();
    for i in items {
        if let Some(u) = &i.untagged {
            out.push_str(&format!("{untagged}{u}\n"));
        } else if let Some(d) = &i.deleted {
            out.push_str(&format!("{deleted}{d}\n"));
        }
    }
    out
}

pub const HISTORY_TABLE: &str =
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
pub const HISTORY_HEADER: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

pub fn history_rows(
    items: &[HistoryResponseItem],
    human: bool,
    trunc: bool,
    now: i64,
) -> Vec<Value> {
    items
        .iter()
        .map(|h| {
            let created_at = chrono::DateTime::from_timestamp(h.created, 0)
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                })
                .unwrap_or_default();
            let by = h.created_by.replace('\t', " ");
            row(vec![
                (
                    "ID",
                    Value::Str(if trunc { short_id(&h.id) } else { h.id.clone() }),
                ),
                (
                    "CreatedSince",
                    Value::Str(if human {
                        ago(h.created, now)
                    } else {
                        created_at.clone()
                    }),
                ),
                ("CreatedAt", Value::Str(created_at)),
                (
                    "CreatedBy",
                    Value::Str(if trunc { ellipsis(&by, 45) } else { by }),
                ),
                (
                    "Size",
                    Value::Str(if human {
                        human_size_precision(h.size as f64, 3)
                    } else {
                        h.size.to_string()
                    }),
                ),
                ("Comment", Value::str(&h.comment)),
            ])
        })
        .collect()
}

pub async fn history(c: &Client, a: &HistoryArgs) -> Result<()> {
    let items: Vec<HistoryResponseItem> = c.get(&format!("/images/{}/history", a.image)).await?;
    let format = Format::resolve(a.format.as_deref(), a.quiet, HISTORY_TABLE, "{{.ID}}");
    let rows = history_rows(&items, a.human, !a.no_trunc, now_secs());
    print(&format.render(HISTORY_HEADER, &rows)?)
}

pub async fn save(c: &Client, a: &SaveArgs) -> Result<()> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        return Err(CliError::Message(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
        ));
    }
    let q: Vec<(&str, String)> = a.images.iter().map(|n| ("names", n.clone())).collect();
    let resp = c
        .call(
            Method::GET,
            &format!("/images/get{}", query(&q)),
            HeaderMap::new(),
            empty(),
        )
        .await?;
    let mut body = chunks(resp);
    use futures_util::StreamExt;
    match &a.output {
        Some(path) => {
            // Written beside, renamed into place: a failed save leaves no
            // half an archive under the name.
            let tmp = path.with_file_name(format!(
                ".{}.berth-save",
                path.file_name().and_then(|n| n.to_str()).unwrap_or("out")
            ));
            let what = || format!("failed to save image: {}", path.display());
            let mut f = tokio::fs::File::create(&tmp)
                .await
                .map_err(CliError::io(what()))?;
            let r: Result<()> = async {
                while let Some(chunk) = body.next().await {
                    f.write_all(&chunk?).await.map_err(CliError::io(what()))?;
                }
                f.sync_all().await.map_err(CliError::io(what()))?;
                Ok(())
            }
            .await;
            if let Err(e) = r {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            tokio::fs::rename(&tmp, path)
                .await
                .map_err(CliError::io(what()))
        }
        None => {
            let mut out = tokio::io::stdout();
            while let Some(chunk) = body.next().await {
                out.write_all(&chunk?)
                    .await
                    .map_err(CliError::io("writing to stdout"))?;
            }
            out.flush().await.map_err(CliError::io("writing to stdout"))
        }
    }
}

pub async fn load(c: &Client, a: &LoadArgs) -> Result<()> {
    let body = match &a.input {
        Some(p) => reader_body(
            tokio::fs::File::open(p)
                .await
                .map_err(CliError::io(format!("open {}", p.display())))?,
        ),
        None => {
            if std::io::stdin().is_terminal() {
                return Err(CliError::Message(
                    "requested load from stdin, but stdin is empty".into(),
                ));
            }
            reader_body(tokio::io::stdin())
        }
    };
    let q = if a.quiet { "?quiet=1" } else { "?quiet=0" };
    let mut h = HeaderMap::new();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/x-tar"),
    );
    let resp = c
        .call(Method::POST, &format!("/images/load{q}"), h, body)
        .await?;
    let mut lines = Lines::new(resp);
    Display::new(std::io::stdout(), stdout_is_terminal(), terminal_width())
        .stream(&mut lines)
        .await
}

pub async fn import(c: &Client, a: &ImportArgs) -> Result<()> {
    let mut q = vec![];
    let body = if a.file == "-" {
        q.push(("fromSrc", "-".to_string()));
        reader_body(tokio::io::stdin())
    } else if a.file.starts_with("http://") || a.file.starts_with("https://") {
        q.push(("fromSrc", a.file.clone()));
        empty()
    } else {
        q.push(("fromSrc", "-".to_string()));
        reader_body(
            tokio::fs::File::open(&a.file)
                .await
                .map_err(CliError::io(format!("open {}", a.file)))?,
        )
    };
    if let Some(r) = &a.repository {
        let (repo, tag) = split_tag(r);
        q.push(("repo", repo.to_string()));
        if let Some(t) = tag {
            q.push(("tag", t.to_string()));
        }
    }
    if let Some(m) = &a.message {
        q.push(("message", m.clone()));
    }
    for ch in &a.change {
        q.push(("changes", ch.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    let mut h = HeaderMap::new();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/x-tar"),
    );
    let resp = c
        .call(
            Method::POST,
            &format!("/images/create{}", query(&q)),
            h,
            body,
        )
        .await?;
    let mut lines = Lines::new(resp);
    Display::new(std::io::stdout(), false, 80)
        .stream(&mut lines)
        .await
}

pub async fn prune(c: &Client, a: &ImagePruneArgs) -> Result<()> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !a.force && !confirm(warning)? {
        return Ok(());
    }
    let mut filters = a.filter.clone();
    filters.push(format!("dangling={}", !a.all));
    let q = match filters_json(&filters)? {
        Some(f) => query(&[("filters", f)]),
        None => String::new(),
    };
    let r: ImagePruneResponse = c.post(&format!("/images/prune{q}"), empty()).await?;
    print(&prune_report(&r))
}

pub fn prune_report(r: &ImagePruneResponse) -> String {
    let mut out = String::new();
    if let Some(items) = r.images_deleted.as_ref().filter(|i| !i.is_empty()) {
        out.push_str("Deleted Images:\n");
        out.push_str(&delete_lines(items, "untagged: ", "deleted: "));
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(r.space_reclaimed as f64)
    ));
    out
}

/// `GET /images/{name}/json`, raw.
pub async fn inspect_raw(c: &Client, name: &str) -> Result<bytes::Bytes> {
    c.get_raw(&format!("/images/{}/json", enc_path(name))).await
}

/// A name in a path: `/` stays (repositories have them), the rest encoded.
pub fn enc_path(name: &str) -> String {
    name.split('/').map(enc).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> ImageSummary {
        ImageSummary {
            id: "sha256:0123456789abcdef0123".into(),
            repo_tags: vec!["busybox:latest".into(), "example.com/tools/bb:1".into()],
            repo_digests: vec!["busybox@sha256:feed".into()],
            created: 1000,
            size: 4_261_355,
            shared_size: -1,
            containers: -1,
            ..Default::default()
        }
    }

    #[test]
    fn images_table_like_docker() {
        let rows = image_rows(&[summary()], false, true, 1000 + 7200);
        let f = Format::resolve(None, false, IMAGES_TABLE, "{{.ID}}");
        assert_eq!(
            f.render(IMAGES_HEADER, &rows).unwrap(),
            "REPOSITORY             TAG       IMAGE ID       CREATED       SIZE\n\
             busybox                latest    0123456789ab   2 hours ago   4.26MB\n\
             example.com/tools/bb   1         0123456789ab   2 hours ago   4.26MB\n"
        );
        let rows = image_rows(&[summary()], true, false, 1000 + 7200);
        let f = Format::resolve(Some("{{.Repository}} {{.Digest}} {{.ID}}"), false, "", "");
        assert_eq!(
            f.render(IMAGES_HEADER, &rows).unwrap(),
            "busybox sha256:feed sha256:0123456789abcdef0123\n\
             example.com/tools/bb <none> sha256:0123456789abcdef0123\n"
        );
        let dangling = ImageSummary {
            repo_tags: vec![],
            repo_digests: vec![],
            ..summary()
        };
        let rows = image_rows(&[dangling], false, true, 2000);
        let f = Format::resolve(
            Some("{{.Repository}}:{{.Tag}} {{.SharedSize}} {{.Containers}}"),
            false,
            "",
            "",
        );
        assert_eq!(
            f.render(IMAGES_HEADER, &rows).unwrap(),
            "<none>:<none> N/A N/A\n"
        );
    }

    #[test]
    fn json_rows_hold_docker_keys() {
        let rows = image_rows(&[summary()], false, true, 1007);
        let v: serde_json::Value = serde_json::from_str(&rows[0].to_json()).unwrap();
        for k in [
            "Containers",
            "CreatedAt",
            "CreatedSince",
            "Digest",
            "ID",
            "Repository",
            "SharedSize",
            "Size",
            "Tag",
            "UniqueSize",
            "VirtualSize",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        assert!(v.get("Label").is_none());
        assert_eq!(v["CreatedSince"], "7 seconds ago");
    }

    #[test]
    fn history_truncates_created_by() {
        let items = vec![HistoryResponseItem {
            id: "sha256:0123456789abcdef".into(),
            created: 0,
            created_by: "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef in / ".into(),
            size: 1_234_567,
            comment: "imported".into(),
            ..Default::default()
        }];
        let rows = history_rows(&items, true, true, 3 * 3600);
        let f = Format::resolve(None, false, HISTORY_TABLE, "{{.ID}}");
        assert_eq!(
            f.render(HISTORY_HEADER, &rows).unwrap(),
            "IMAGE          CREATED       CREATED BY                                      SIZE      COMMENT\n\
             0123456789ab   3 hours ago   /bin/sh -c #(nop) ADD file:0123456789abcdef0…   1.23MB    imported\n"
        );
        let rows = history_rows(&items, false, true, 0);
        assert_eq!(rows[0].field("Size"), Some(&Value::str("1234567")));
    }

    #[test]
    fn prune_reports_like_docker() {
        let r = ImagePruneResponse {
            images_deleted: Some(vec![
                ImageDeleteResponseItem {
                    untagged: Some("bb:1".into()),
                    deleted: None,
                },
                ImageDeleteResponseItem {
                    untagged: None,
                    deleted: Some("sha256:ab".into()),
                },
            ]),
            space_reclaimed: 4_261_355,
        };
        assert_eq!(
            prune_report(&r),
            "Deleted Images:\nuntagged: bb:1\ndeleted: sha256:ab\n\nTotal reclaimed space: 4.261MB\n"
        );
        assert_eq!(
            prune_report(&ImagePruneResponse::default()),
            "Total reclaimed space: 0B\n"
        );
        assert_eq!(
            full_reference("busybox", "latest"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            full_reference("127.0.0.1:5000/bb", "1"),
            "127.0.0.1:5000/bb:1"
        );
    }
}
