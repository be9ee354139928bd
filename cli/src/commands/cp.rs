//! `cp`: files between the host and a container, as tar streams through
//! `/containers/{id}/archive`, with docker's rules for where they land:
//! into an existing directory under their own name, else under the
//! destination's name (`SRC/.` copies a directory's contents).

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use berth_api::containers::{PATH_STAT_HEADER, PathStat};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

use crate::args::CpArgs;
use crate::client::{Body, Client, check, chunks, empty, enc, query, read_all};
use crate::error::{CliError, Result};

/// One side of a copy: a local path, or `container:path`.
#[derive(Debug, PartialEq, Eq)]
enum Side<'a> {
    Local(&'a str),
    Container(&'a str, &'a str),
}

/// docker's `splitCpArg`: a path that starts with `/` or `.` is local
/// even with a colon in it.
fn side(arg: &str) -> Side<'_> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return Side::Local(arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() => Side::Container(c, p),
        _ => Side::Local(arg),
    }
}

/// Where a copy lands: the directory to extract in, and the name the
/// source's top entry takes there (None: it keeps its own).
#[derive(Debug, PartialEq, Eq)]
struct Landing {
    dir: String,
    rename: Option<String>,
}

/// `(dir, base)` of a path as moby's `SplitPathDirEntry`: a path naming
/// the current directory (`a/.`) has `.` as its base.
fn split_dir_entry(path: &str) -> (String, String) {
    let mut cleaned = clean(path);
    if path.ends_with("/.") || path == "." {
        cleaned = if cleaned == "/" {
            "/.".to_string()
        } else {
            format!("{cleaned}/.")
        };
    }
    match cleaned.rfind('/') {
        Some(0) => ("/".to_string(), cleaned[1..].to_string()),
        Some(i) => (cleaned[..i].to_string(), cleaned[i + 1..].to_string()),
        None => (".".to_string(), cleaned),
    }
}

/// Go's `filepath.Clean` for the paths cp sees.
fn clean(path: &str) -> String {
    let abs = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            ".." if abs => {}
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// moby's `PrepareArchiveCopy`: where a source (a directory or not)
/// goes, given what the destination is.
fn landing(src_is_dir: bool, dst: &str, dst_exists: bool, dst_is_dir: bool) -> Result<Landing> {
    if dst_exists && dst_is_dir {
        return Ok(Landing {
            dir: dst.to_string(),
            rename: None,
        });
    }
    if src_is_dir && dst_exists {
        return Err(CliError::Message("cannot copy directory".into()));
    }
    if !src_is_dir && (dst.ends_with('/') || dst.ends_with("/.")) {
        return Err(CliError::Message("no such directory".into()));
    }
    let (dir, base) = split_dir_entry(dst);
    Ok(Landing {
        dir,
        rename: Some(base),
    })
}

/// The name a tar entry takes when its top component `old` becomes `new`
/// (moby's `RebaseArchiveEntries`).
fn rebase(name: &str, old: &str, new: Option<&str>) -> String {
    let name = name.trim_start_matches('/');
    let Some(new) = new else {
        return name.to_string();
    };
    match name.strip_prefix(old) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') || old == "." => {
            let rest = if old == "." {
                name.strip_prefix('.').unwrap_or(name)
            } else {
                rest
            };
            format!("{new}{rest}")
        }
        _ => name.to_string(),
    }
}

pub async fn cp(c: &Client, a: &CpArgs) -> Result<()> {
    let copied = match (side(&a.src), side(&a.dst)) {
        (Side::Local(_), Side::Local(_)) => {
            return Err(CliError::Message(
                "must specify at least one container source".into(),
            ));
        }
        (Side::Container(..), Side::Container(..)) => {
            return Err(CliError::Message(
                "copying between containers is not supported".into(),
            ));
        }
        (Side::Container(id, path), Side::Local(dst)) => {
            from_container(c, a, id, path, dst).await?
        }
        (Side::Local(src), Side::Container(id, path)) => to_container(c, a, src, id, path).await?,
    };
    use std::io::IsTerminal;
    if !a.quiet && std::io::stderr().is_terminal() {
        super::eprint(&format!(
            "Successfully copied {} to {}\n",
            crate::units::human_size(copied as f64),
            a.dst
        ));
    }
    Ok(())
}

fn archive_path(id: &str, path: &str) -> String {
    format!(
        "/containers/{}/archive{}",
        enc(id),
        query(&[("path", path.to_string())])
    )
}

/// The container's stat of `path`; None when it is not there.
async fn stat(c: &Client, id: &str, path: &str) -> Result<Option<PathStat>> {
    let resp = c
        .send(
            Method::HEAD,
            &archive_path(id, path),
            HeaderMap::new(),
            empty(),
            true,
        )
        .await?;
    if resp.status() == http::StatusCode::NOT_FOUND {
        // A missing container is a 404 too: the copy itself then says so.
        return Ok(None);
    }
    let resp = check(resp).await?;
    decode_stat(resp.headers()).map(Some)
}

fn decode_stat(headers: &HeaderMap) -> Result<PathStat> {
    let bad = |why: String| CliError::Decode {
        what: PATH_STAT_HEADER.to_string(),
        message: why,
    };
    let raw = headers
        .get(PATH_STAT_HEADER)
        .ok_or_else(|| bad("missing".into()))?;
    let json = base64::engine::general_purpose::STANDARD
        .decode(raw.as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| bad(e.to_string()))
}

async fn from_container(c: &Client, a: &CpArgs, id: &str, path: &str, dst: &str) -> Result<u64> {
    let mut src = path.to_string();
    let mut rebase_from: Option<String> = None;
    if a.follow_link {
        // The link's target, copied under the link's name.
        if let Some(st) = stat(c, id, path).await? {
            if st.is_symlink() && !st.link_target.is_empty() {
                rebase_from = Some(split_dir_entry(path).1);
                src = st.link_target;
            }
        }
    }
    let resp = c
        .call(
            Method::GET,
            &archive_path(id, &src),
            HeaderMap::new(),
            empty(),
        )
        .await?;
    let st = decode_stat(resp.headers())?;
    let mut body = chunks(resp);
    if dst == "-" {
        let mut out = tokio::io::stdout();
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            tokio::io::AsyncWriteExt::write_all(&mut out, &chunk)
                .await
                .map_err(CliError::io("writing to stdout"))?;
        }
        tokio::io::AsyncWriteExt::flush(&mut out)
            .await
            .map_err(CliError::io("writing to stdout"))?;
        return Ok(n);
    }
    let dst_meta = std::fs::metadata(dst);
    let (exists, is_dir) = match &dst_meta {
        Ok(m) => (true, m.is_dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (false, false),
        Err(e) => return Err(CliError::Message(format!("stat {dst}: {e}"))),
    };
    let land = landing(st.is_dir(), dst, exists, is_dir)?;
    let old_base = split_dir_entry(&src).1;
    let (new_base, old_base) = match (rebase_from, land.rename) {
        (_, Some(r)) => (Some(r), old_base),
        (Some(link_name), None) => (Some(link_name), old_base),
        (None, None) => (None, old_base),
    };
    if !Path::new(&land.dir).is_dir() {
        return Err(CliError::Message(format!(
            "invalid output path: directory {:?} does not exist",
            land.dir
        )));
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes>>(8);
    let pump = tokio::spawn(async move {
        while let Some(chunk) = body.next().await {
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    let preserve = a.archive;
    let dir = PathBuf::from(&land.dir);
    let n = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader::new(rx);
        let r = untar(&mut reader, &dir, &old_base, new_base.as_deref(), preserve);
        r.map(|()| reader.total)
    })
    .await
    .map_err(|e| CliError::Message(format!("copy: {e}")))??;
    let _ = pump.await;
    Ok(n)
}

/// Unpack a tar into `dir`, its top entry `old` renamed to `new`; no
/// entry may land outside `dir`, not even through a symlink it made.
fn untar(
    r: &mut impl Read,
    dir: &Path,
    old: &str,
    new: Option<&str>,
    preserve_owner: bool,
) -> Result<()> {
    let root = dir
        .canonicalize()
        .map_err(|e| CliError::Message(format!("{}: {e}", dir.display())))?;
    let mut archive = tar::Archive::new(r);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(preserve_owner);
    archive.set_overwrite(true);
    let entries = archive
        .entries()
        .map_err(|e| CliError::Message(format!("reading the archive: {e}")))?;
    let bad = |what: String| CliError::Message(format!("copying from the container: {what}"));
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = rebase(&name, old, new);
        let target = contained(&root, &rel).ok_or_else(|| bad(format!("bad path {name:?}")))?;
        if target == root {
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| bad(format!("{}: {e}", parent.display())))?;
            // The parent may have come from the archive as a symlink.
            let real = parent
                .canonicalize()
                .map_err(|e| bad(format!("{}: {e}", parent.display())))?;
            if !real.starts_with(&root) {
                return Err(bad(format!("{name:?} leads out of {}", root.display())));
            }
        }
        if entry.header().entry_type().is_hard_link() {
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            let from = contained(&root, &rebase(&link, old, new))
                .ok_or_else(|| bad(format!("bad link {link:?}")))?;
            let _ = std::fs::remove_file(&target);
            std::fs::hard_link(&from, &target)
                .map_err(|e| bad(format!("{}: {e}", target.display())))?;
            continue;
        }
        if entry.header().entry_type().is_file() || entry.header().entry_type().is_symlink() {
            // Replace rather than write through what is there.
            if target.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                let _ = std::fs::remove_file(&target);
            }
        }
        entry
            .unpack(&target)
            .map_err(|e| bad(format!("{}: {e}", target.display())))?;
    }
    Ok(())
}

/// An OS error as Go words it (`no such file or directory`).
fn go_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s,
            }
        }
    }
}

/// `root/rel` when `rel` is relative and has no `..`.
fn contained(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut out = root.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

async fn to_container(c: &Client, a: &CpArgs, src: &str, id: &str, path: &str) -> Result<u64> {
    let mut dst = path.to_string();
    let mut dst_stat = stat(c, id, path).await?;
    if let Some(st) = &dst_stat {
        if st.is_symlink() {
            let target = if st.link_target.starts_with('/') {
                st.link_target.clone()
            } else {
                format!("{}/{}", split_dir_entry(path).0, st.link_target)
            };
            dst_stat = stat(c, id, &target).await?;
            dst = target;
        }
    }
    let (exists, is_dir) = dst_stat
        .as_ref()
        .map_or((false, false), |s| (true, s.is_dir()));
    let mut q = vec![("noOverwriteDirNonDir", "true".to_string())];
    if a.archive {
        q.push(("copyUIDGID", "true".to_string()));
    }
    if src == "-" {
        if !is_dir {
            return Err(CliError::Message(format!(
                "destination \"{id}:{path}\" must be a directory"
            )));
        }
        q.push(("path", dst));
        let body = crate::client::reader_body(tokio::io::stdin());
        return put(c, id, &q, body).await.map(|()| 0);
    }
    let follow = a.follow_link;
    let meta = if follow {
        std::fs::metadata(src)
    } else {
        std::fs::symlink_metadata(src)
    }
    .map_err(|e| {
        let abs = std::path::absolute(src).unwrap_or_else(|_| PathBuf::from(src));
        CliError::Message(format!("lstat {}: {}", abs.display(), go_error(&e)))
    })?;
    let land = landing(meta.is_dir(), &dst, exists, is_dir)?;
    let (_, src_base) = split_dir_entry(src);
    let top = land.rename.unwrap_or(src_base);
    q.push(("path", land.dir));
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
    let src_path = PathBuf::from(src);
    let maker = tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter { tx: tx.clone() };
        let r = tar_tree(&mut w, &src_path, &top, follow);
        if let Err(e) = &r {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
        r
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item.map(Frame::data), rx))
    });
    let sent = put(c, id, &q, BodyExt::boxed(StreamBody::new(stream))).await;
    let made = maker
        .await
        .map_err(|e| CliError::Message(format!("copy: {e}")))?;
    // A local error (unreadable file) says more than the cut-off upload.
    let n = made?;
    sent.map(|()| n)
}

async fn put(c: &Client, id: &str, q: &[(&str, String)], body: Body) -> Result<()> {
    let path = format!("/containers/{}/archive{}", enc(id), query(q));
    let resp = c.call(Method::PUT, &path, HeaderMap::new(), body).await?;
    read_all(resp).await.map(drop)
}

/// A tar of the local `src` whose top entry is named `top` (`.` for a
/// directory's contents), symlinks kept as links unless `follow`.
fn tar_tree(w: &mut impl Write, src: &Path, top: &str, follow: bool) -> Result<u64> {
    let mut b = tar::Builder::new(CountingWriter { inner: w, n: 0 });
    b.follow_symlinks(false);
    let mut stack = vec![(src.to_path_buf(), top.to_string(), follow)];
    let err = |p: &Path, e: std::io::Error| CliError::Message(format!("{}: {e}", p.display()));
    while let Some((path, name, follow_this)) = stack.pop() {
        let meta = if follow_this {
            std::fs::metadata(&path)
        } else {
            std::fs::symlink_metadata(&path)
        }
        .map_err(|e| err(&path, e))?;
        if name != "." {
            if meta.is_file() {
                let mut f = std::fs::File::open(&path).map_err(|e| err(&path, e))?;
                let mut h = tar::Header::new_gnu();
                h.set_metadata(&meta);
                b.append_data(&mut h, &name, &mut f)
                    .map_err(|e| err(&path, e))?;
            } else {
                b.append_path_with_name(&path, &name)
                    .map_err(|e| err(&path, e))?;
            }
        }
        if meta.is_dir() {
            let mut children: Vec<_> = std::fs::read_dir(&path)
                .map_err(|e| err(&path, e))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect();
            // Reversed: the stack pops them in name order.
            children.sort();
            for child in children.into_iter().rev() {
                let child_name = if name == "." {
                    child.to_string_lossy().into_owned()
                } else {
                    format!("{name}/{}", child.to_string_lossy())
                };
                stack.push((path.join(&child), child_name, false));
            }
        }
    }
    let counted = b.into_inner().map_err(|e| err(src, e))?;
    Ok(counted.n)
}

struct CountingWriter<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A `Write` whose bytes go to an async body, 64 KiB at a time.
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(64 * 1024);
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `Read` over the chunks of an async body.
struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes>>,
    buf: Bytes,
    total: u64,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<Result<Bytes>>) -> ChannelReader {
        ChannelReader {
            rx,
            buf: Bytes::new(),
            total: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(std::io::Error::other(e.to_string())),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf.split_to(n));
        self.total += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_as_docker_splits_them() {
        assert_eq!(side("web:/tmp/x"), Side::Container("web", "/tmp/x"));
        assert_eq!(side("/a:b"), Side::Local("/a:b"));
        assert_eq!(side("./a:b"), Side::Local("./a:b"));
        assert_eq!(side("plain"), Side::Local("plain"));
        assert_eq!(side(":x"), Side::Local(":x"));
    }

    #[test]
    fn split_and_clean_like_go() {
        assert_eq!(split_dir_entry("/tmp/f"), ("/tmp".into(), "f".into()));
        assert_eq!(split_dir_entry("/tmp/d/"), ("/tmp".into(), "d".into()));
        assert_eq!(split_dir_entry("/tmp/."), ("/tmp".into(), ".".into()));
        assert_eq!(split_dir_entry("f"), (".".into(), "f".into()));
        assert_eq!(split_dir_entry("/f"), ("/".into(), "f".into()));
        assert_eq!(clean("a/../../b"), "../b");
        assert_eq!(clean("/../x/./y//"), "/x/y");
    }

    #[test]
    fn landings_follow_docker_rules() {
        // Into an existing directory under its own name.
        assert_eq!(
            landing(false, "/tmp", true, true).unwrap(),
            Landing {
                dir: "/tmp".into(),
                rename: None
            }
        );
        // A new name for a file, or over an existing file.
        for exists in [false, true] {
            assert_eq!(
                landing(false, "/tmp/new", exists, false).unwrap(),
                Landing {
                    dir: "/tmp".into(),
                    rename: Some("new".into())
                }
            );
        }
        assert_eq!(
            landing(true, "out", false, false)
                .unwrap()
                .rename
                .as_deref(),
            Some("out")
        );
        let e = landing(true, "/tmp/file", true, false).unwrap_err();
        assert_eq!(e.to_string(), "cannot copy directory");
        let e = landing(false, "/nowhere/", false, false).unwrap_err();
        assert_eq!(e.to_string(), "no such directory");
    }

    #[test]
    fn entries_rebased() {
        assert_eq!(rebase("f", "f", Some("g")), "g");
        assert_eq!(rebase("dd/y", "dd", Some("nd")), "nd/y");
        assert_eq!(rebase("ddx/y", "dd", Some("nd")), "ddx/y");
        assert_eq!(rebase("./y", ".", Some("got")), "got/y");
        assert_eq!(rebase("dd/y", "dd", None), "dd/y");
    }

    #[test]
    fn untar_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, "top/esc", outside.path()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, "top/esc/owned", &b"bad"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let e = untar(&mut &data[..], dir.path(), "top", None, false).unwrap_err();
        assert!(e.to_string().contains("leads out of"), "{e}");
        assert!(!outside.path().join("owned").exists());
    }

    #[test]
    fn tar_round_trip_renamed() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("d")).unwrap();
        std::fs::write(src.path().join("d/a"), "A").unwrap();
        std::os::unix::fs::symlink("a", src.path().join("d/l")).unwrap();
        let mut tar = Vec::new();
        tar_tree(&mut tar, &src.path().join("d"), "renamed", false).unwrap();
        let dst = tempfile::tempdir().unwrap();
        untar(&mut &tar[..], dst.path(), "renamed", None, false).unwrap();
        assert_eq!(
            std::fs::read_to_string(dst.path().join("renamed/a")).unwrap(),
            "A"
        );
        assert_eq!(
            std::fs::read_link(dst.path().join("renamed/l")).unwrap(),
            Path::new("a")
        );
    }
}
