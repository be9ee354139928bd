//! The build context: walking it with `.dockerignore` applied, matching
//! COPY/ADD sources (globs, `--exclude`, `--parents`), and hashing what
//! they copy for the build cache: path, content, mode, owner and symlink
//! target, never times.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::glob::Glob;
use crate::ignore::{IgnoreMatcher, clean};

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{name}: not found in the build context (or excluded by .dockerignore)")]
    NotFound { name: String },
    #[error("{pattern}: no file in the build context matches")]
    NoMatch { pattern: String },
    #[error("{pattern}: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("{name}: outside the build context")]
    Outside { name: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
    /// Devices, fifos, sockets: copied as they are.
    Other,
}

/// One file, directory or link of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    /// Relative to the context root, `/`-separated.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits with setuid, setgid and sticky (`st_mode & 07777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub link_target: Option<String>,
}

fn entry(root: &Path, rel: &str) -> Result<ContextEntry, ContextError> {
    let abs = root.join(rel);
    let md = fs::symlink_metadata(&abs).map_err(io_err(&abs))?;
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File
    } else if ft.is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::Other
    };
    let link_target = if kind == EntryKind::Symlink {
        Some(
            fs::read_link(&abs)
                .map_err(io_err(&abs))?
                .to_string_lossy()
                .into_owned(),
        )
    } else {
        None
    };
    Ok(ContextEntry {
        path: rel.to_string(),
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        size: if kind == EntryKind::File {
            md.size()
        } else {
            0
        },
        link_target,
    })
}

/// Every entry of the context that `.dockerignore` keeps, sorted by path.
/// An excluded directory is still entered when an exception could bring
/// back something below it; it is then not listed itself.
pub fn walk_context(
    root: &Path,
    ignore: &IgnoreMatcher,
) -> Result<Vec<ContextEntry>, ContextError> {
    let mut out = Vec::new();
    walk(root, "", ignore, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    tracing::debug!(root = %root.display(), entries = out.len(), "walked build context");
    Ok(out)
}

fn walk(
    root: &Path,
    rel: &str,
    ignore: &IgnoreMatcher,
    out: &mut Vec<ContextEntry>,
) -> Result<(), ContextError> {
    let dir = root.join(rel);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map_err(io_err(&dir))?
        .map(|e| {
            e.map(|e| e.file_name().to_string_lossy().into_owned())
                .map_err(io_err(&dir))
        })
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let e = entry(root, &path)?;
        let excluded = ignore.matches(&path);
        if e.kind == EntryKind::Dir {
            if !excluded {
                out.push(e);
                walk(root, &path, ignore, out)?;
            } else if ignore.may_include_below(&path) {
                walk(root, &path, ignore, out)?;
            }
        } else if !excluded {
            out.push(e);
        }
    }
    Ok(())
}

/// One entry a COPY/ADD copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyEntry {
    /// Its path in the context.
    pub source: String,
    /// Its path under the destination: within the copied directory, the
    /// file's name, or (with `--parents`) its path from the context root
    /// or from a `/./` pivot in the source.
    pub dest: String,
    pub entry: ContextEntry,
}

/// What a COPY/ADD copies from the context, and its content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSet {
    pub entries: Vec<CopyEntry>,
    /// `sha256:…` over every entry's dest path, kind, mode, uid, gid,
    /// symlink target and content.
    pub digest: String,
}

/// Match COPY/ADD `sources` (expanded; globs allowed) against the context
/// `entries` (from [`walk_context`]) under `root`, drop what `excludes`
/// (`--exclude`, relative to each source) names, and hash the rest.
pub fn match_sources(
    root: &Path,
    entries: &[ContextEntry],
    sources: &[String],
    excludes: &[String],
    parents: bool,
) -> Result<SourceSet, ContextError> {
    let exclude = IgnoreMatcher::new(excludes).map_err(|reason| ContextError::BadPattern {
        pattern: excludes.join(","),
        reason,
    })?;
    let mut out: Vec<CopyEntry> = Vec::new();
    for raw in sources {
        // `--parents` keeps paths from a `/./` pivot, else from the root.
        let (pivot, rest) = match raw.split_once("/./") {
            Some((p, r)) if parents => (clean(p.trim_start_matches('/')), format!("{p}/{r}")),
            _ => (String::new(), raw.clone()),
        };
        let pivot = if pivot == "." { String::new() } else { pivot };
        let src = clean(rest.trim_start_matches('/'));
        if src == ".." || src.starts_with("../") {
            return Err(ContextError::Outside { name: raw.clone() });
        }
        let matched: Vec<&ContextEntry> = if src == "." {
            Vec::new()
        } else {
            let glob = Glob::new(&src, '\\', false).map_err(|reason| ContextError::BadPattern {
                pattern: raw.clone(),
                reason,
            })?;
            if glob.is_literal() {
                let found = entries.iter().find(|e| e.path == src);
                vec![found.ok_or_else(|| ContextError::NotFound { name: raw.clone() })?]
            } else {
                let m: Vec<&ContextEntry> = entries
                    .iter()
                    .filter(|e| glob.matches(&e.path, true))
                    .collect();
                if m.is_empty() {
                    return Err(ContextError::NoMatch {
                        pattern: raw.clone(),
                    });
                }
                m
            }
        };
        let dest_of = |path: &str, within: &str| -> String {
            if !parents {
                return within.to_string();
            }
            match path.strip_prefix(&format!("{pivot}/")) {
                Some(p) if !pivot.is_empty() => p.to_string(),
                _ => path.to_string(),
            }
        };
        let mut add = |e: &ContextEntry, within: String| {
            if exclude.matches(&within) {
                return;
            }
            out.push(CopyEntry {
                source: e.path.clone(),
                dest: dest_of(&e.path, &within),
                entry: e.clone(),
            });
        };
        if src == "." {
            for e in entries {
                add(e, e.path.clone());
            }
            continue;
        }
        for m in matched {
            if m.kind == EntryKind::Dir {
                let prefix = format!("{}/", m.path);
                if parents {
                    add(m, m.path.rsplit('/').next().unwrap_or_default().to_string());
                }
                for e in entries.iter().filter(|e| e.path.starts_with(&prefix)) {
                    add(e, e.path[prefix.len()..].to_string());
                }
            } else {
                add(m, m.path.rsplit('/').next().unwrap_or_default().to_string());
            }
        }
    }
    out.sort_by(|a, b| a.dest.cmp(&b.dest).then(a.source.cmp(&b.source)));
    out.dedup_by(|a, b| a.dest == b.dest && a.source == b.source);
    let digest = hash_entries(root, &out)?;
    Ok(SourceSet {
        entries: out,
        digest,
    })
}

fn hash_entries(root: &Path, entries: &[CopyEntry]) -> Result<String, ContextError> {
    let mut h = Sha256::new();
    for ce in entries {
        let e = &ce.entry;
        let kind = match e.kind {
            EntryKind::Dir => "dir",
            EntryKind::File => "file",
            EntryKind::Symlink => "symlink",
            EntryKind::Other => "other",
        };
        h.update(
            format!(
                "{}\0{kind}\0{:o}\0{}\0{}\0{}\0",
                ce.dest,
                e.mode,
                e.uid,
                e.gid,
                e.link_target.as_deref().unwrap_or("")
            )
            .as_bytes(),
        );
        if e.kind == EntryKind::File {
            let path = root.join(&e.path);
            h.update(file_digest(&path)?.as_bytes());
        }
        h.update(b"\n");
    }
    Ok(hex_digest(h))
}

fn file_digest(path: &Path) -> Result<String, ContextError> {
    let mut f = fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex_digest(h))
}

fn hex_digest(h: Sha256) -> String {
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A build step's cache key: its parent's key (the base image's digest
/// for a stage's first step), the expanded instruction text (with the
/// ARGs a RUN sees, [`crate::StageScope::history_text`]) and, for
/// COPY/ADD, the [`SourceSet::digest`] of what it copies.
pub fn cache_key(parent: &str, instruction: &str, content: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(b"berth-build-cache-v1\0");
    h.update(parent.as_bytes());
    h.update(b"\0");
    h.update(instruction.as_bytes());
    h.update(b"\0");
    h.update(content.unwrap_or("").as_bytes());
    hex_digest(h)
}

/// `rel` (relative to `root`) and everything below it, as
/// [`walk_context`] lists them, with no ignore file: the entries a
/// `COPY --from` of `rel` needs without walking a whole image. Empty when
/// `rel` does not exist.
pub fn walk_under(root: &Path, rel: &str) -> Result<Vec<ContextEntry>, ContextError> {
    let rel = clean(rel.trim_start_matches('/'));
    if rel == "." || rel.is_empty() {
        return walk_context(root, &IgnoreMatcher::default());
    }
    if fs::symlink_metadata(root.join(&rel)).is_err() {
        return Ok(Vec::new());
    }
    let top = entry(root, &rel)?;
    let mut out = Vec::new();
    let is_dir = top.kind == EntryKind::Dir;
    out.push(top);
    if is_dir {
        walk(root, &rel, &IgnoreMatcher::default(), &mut out)?;
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
