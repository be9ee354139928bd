//! `ADD <git URL>`: resolve the ref to a commit (for the cache key) and
//! check it out shallowly with the `git` binary into a directory that is
//! removed whatever happens.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What went wrong with a git source; the caller adds the Dockerfile line.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{url}: running git: {source}")]
    Spawn {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: remote unreachable: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{url}: unknown ref {git_ref:?}")]
    UnknownRef { url: String, git_ref: String },
    #[error("{url}: fetching {commit}: {detail}")]
    Fetch {
        url: String,
        commit: String,
        detail: String,
    },
    #[error("{url}: no directory {subdir:?} at {commit}")]
    NoSubdir {
        url: String,
        subdir: String,
        commit: String,
    },
    #[error("{url}: {path}: {source}")]
    Io {
        url: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A git source split into its parts: `url#ref:subdir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    pub url: String,
    /// None: the remote's HEAD.
    pub git_ref: Option<String>,
    pub subdir: Option<String>,
}

impl GitSource {
    pub fn parse(src: &str) -> GitSource {
        let (url, frag) = match src.split_once('#') {
            Some((u, f)) => (u, Some(f)),
            None => (src, None),
        };
        let (r, sub) = match frag {
            Some(f) => match f.split_once(':') {
                Some((r, s)) => (r, Some(s)),
                None => (f, None),
            },
            None => ("", None),
        };
        let sub = sub
            .map(|s| s.trim_matches('/').to_string())
            .filter(|s| !s.is_empty() && s != ".");
        GitSource {
            url: url.to_string(),
            git_ref: Some(r.to_string()).filter(|r| !r.is_empty()),
            subdir: sub,
        }
    }
}

fn git(dir: Option<&Path>) -> Command {
    let mut c = Command::new("git");
    if let Some(d) = dir {
        c.current_dir(d);
    }
    // A build must never stop for a password prompt, nor read the
    // daemon user's own git configuration.
    c.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        // Only the network transports a Dockerfile may name: no file://,
        // ext:: or local paths of the daemon's host, not even by redirect.
        .args([
            "-c",
            "protocol.allow=never",
            "-c",
            "protocol.git.allow=always",
            "-c",
            "protocol.ssh.allow=always",
            "-c",
            "protocol.http.allow=always",
            "-c",
            "protocol.https.allow=always",
        ])
        .stdin(Stdio::null());
    c
}

/// Run `c`; its stdout, or its stderr's last line as the error.
fn run(c: &mut Command, url: &str) -> Result<Result<String, String>, GitError> {
    let o = c.output().map_err(|e| GitError::Spawn {
        url: url.to_string(),
        source: e,
    })?;
    if o.status.success() {
        Ok(Ok(String::from_utf8_lossy(&o.stdout).into_owned()))
    } else {
        let err = String::from_utf8_lossy(&o.stderr);
        let last = err
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("git failed")
            .to_string();
        Ok(Err(last))
    }
}

fn is_commit_id(r: &str) -> bool {
    r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit `src`'s ref names now, by `git ls-remote` (no clone).
pub fn resolve(src: &GitSource) -> Result<String, GitError> {
    let want = src.git_ref.as_deref().unwrap_or("HEAD");
    if is_commit_id(want) {
        return Ok(want.to_ascii_lowercase());
    }
    let out = run(
        git(None).args(["ls-remote", "--", &src.url, want]),
        &src.url,
    )?
    .map_err(|detail| GitError::Unreachable {
        url: src.url.clone(),
        detail,
    })?;
    let refs: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(id, name)| (id.trim(), name.trim()))
        .collect();
    // A branch first, then a tag's commit (peeled), then anything named so.
    let candidates = [
        format!("refs/heads/{want}"),
        format!("refs/tags/{want}^{{}}"),
        format!("refs/tags/{want}"),
        want.to_string(),
    ];
    for c in &candidates {
        if let Some((id, _)) = refs.iter().find(|(_, n)| n == c) {
            return Ok(id.to_string());
        }
    }
    Err(GitError::UnknownRef {
        url: src.url.clone(),
        git_ref: want.to_string(),
    })
}

/// A checked-out tree; the directory goes when this does.
pub struct Checkout {
    dir: PathBuf,
    /// The files to copy: the tree or its subdir.
    pub root: PathBuf,
    /// The commit's time, every copied file's mtime.
    pub time: std::time::SystemTime,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("removing {}: {e}", self.dir.display());
        }
    }
}

/// Check out `commit` of `src` under `parent` (the daemon's state dir),
/// shallowly where the server allows it.
pub fn checkout(
    parent: &Path,
    src: &GitSource,
    commit: &str,
    keep_git_dir: bool,
) -> Result<Checkout, GitError> {
    let io = |p: &Path| {
        let url = src.url.clone();
        let path = p.to_path_buf();
        move |e| GitError::Io {
            url,
            path,
            source: e,
        }
    };
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let dir = tempfile::Builder::new()
        .prefix("git-")
        .tempdir_in(parent)
        .map_err(io(parent))?
        .keep();
    // From here on the guard removes `dir`, whatever fails.
    let mut co = Checkout {
        root: dir.join("tree"),
        dir,
        time: std::time::UNIX_EPOCH,
    };
    let tree = co.dir.join("tree");
    std::fs::create_dir(&tree).map_err(io(&tree))?;
    let fetch_err = |detail| GitError::Fetch {
        url: src.url.clone(),
        commit: commit.to_string(),
        detail,
    };
    let step = |args: &[&str]| -> Result<Result<String, String>, GitError> {
        run(git(Some(&tree)).args(args), &src.url)
    };
    step(&["init", "-q"])?.map_err(fetch_err)?;
    step(&["remote", "add", "--", "origin", &src.url])?.map_err(fetch_err)?;
    // By commit id (protocol v2 servers allow it), else by the ref's name,
    // else everything (dumb HTTP cannot fetch shallowly).
    let mut fetched = step(&["fetch", "-q", "--depth", "1", "origin", commit])?.is_ok();
    if !fetched && let Some(r) = &src.git_ref {
        fetched = step(&["fetch", "-q", "--depth", "1", "origin", r])?.is_ok();
    }
    if !fetched {
        step(&["fetch", "-q", "--tags", "origin"])?.map_err(fetch_err)?;
    }
    step(&["-c", "advice.detachedHead=false", "checkout", "-q", commit])?.map_err(fetch_err)?;
    let ct = step(&["log", "-1", "--format=%ct", commit])?.map_err(fetch_err)?;
    co.time = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(ct.trim().parse::<u64>().unwrap_or(0));
    if !keep_git_dir {
        let g = tree.join(".git");
        std::fs::remove_dir_all(&g).map_err(io(&g))?;
    }
    if let Some(sub) = &src.subdir {
        let root = tree.join(sub);
        // The subdir must be a directory of the tree, not a way out of it.
        let inside = root
            .canonicalize()
            .ok()
            .zip(tree.canonicalize().ok())
            .is_some_and(|(r, t)| r.starts_with(t) && r.is_dir());
        if !inside || sub.split('/').any(|p| p == "..") {
            return Err(GitError::NoSubdir {
                url: src.url.clone(),
                subdir: sub.clone(),
                commit: commit.to_string(),
            });
        }
        co.root = root;
    }
    Ok(co)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ref_and_subdir() {
        let s = GitSource::parse("https://h/r.git#v1.2:docs/");
        assert_eq!(s.url, "https://h/r.git");
        assert_eq!(s.git_ref.as_deref(), Some("v1.2"));
        assert_eq!(s.subdir.as_deref(), Some("docs"));
        let s = GitSource::parse("git@github.com:o/r.git");
        assert_eq!(s.url, "git@github.com:o/r.git");
        assert_eq!(s.git_ref, None);
        assert_eq!(s.subdir, None);
        let s = GitSource::parse("git://h/r#:sub");
        assert_eq!(s.git_ref, None);
        assert_eq!(s.subdir.as_deref(), Some("sub"));
    }
}
