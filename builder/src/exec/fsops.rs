//! Filesystem work of COPY and ADD inside a mounted root: paths resolved
//! within the root (an image's symlink never leads out to the host),
//! owners from the image's passwd and group, `--chmod`, tar extraction
//! and plain-HTTP downloads.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use crate::instruction::Chmod;

/// `rel` (absolute inside the root, or relative to it) resolved inside
/// `root`: symlinks on the way are followed as the image would see them,
/// never above `root`. The last component is followed only with
/// `follow_last`.
pub fn scoped(root: &Path, rel: &str, follow_last: bool) -> io::Result<PathBuf> {
    let mut parts: Vec<String> = Vec::new();
    let mut todo: Vec<String> = split(rel);
    todo.reverse();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "." | "" => continue,
            ".." => {
                parts.pop();
                continue;
            }
            _ => {}
        }
        let last = todo.is_empty();
        let here = root.join(parts.join("/")).join(&part);
        if (!last || follow_last)
            && let Ok(md) = fs::symlink_metadata(&here)
            && md.file_type().is_symlink()
        {
            hops += 1;
            if hops > 40 {
                return Err(io::Error::other(format!(
                    "{rel}: too many levels of symbolic links"
                )));
            }
            let target = fs::read_link(&here)?.to_string_lossy().into_owned();
            if target.starts_with('/') {
                parts.clear();
            }
            let mut more = split(&target);
            more.reverse();
            todo.extend(more);
            continue;
        }
        parts.push(part);
    }
    Ok(root.join(parts.join("/")))
}

fn split(p: &str) -> Vec<String> {
    Path::new(p)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Owners as COPY sets them: `--chown` resolved, or none (keep/0:0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// `user[:group]` by name or number, names looked up in the root's
/// /etc/passwd and /etc/group (a user alone takes their primary group).
pub fn resolve_chown(root: &Path, spec: &str) -> Result<Owner, String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let read = |f: &str| -> Vec<Vec<String>> {
        let path = scoped(root, f, true).unwrap_or_else(|_| root.join(f));
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(':').map(String::from).collect())
            .collect()
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (n, None),
        Err(_) => {
            let passwd = read("/etc/passwd");
            let row = passwd
                .iter()
                .find(|r| r.first().map(String::as_str) == Some(user))
                .ok_or_else(|| {
                    format!("unable to find user {user}: no matching entries in passwd file")
                })?;
            let uid = row.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
            let gid = row.get(3).and_then(|s| s.parse().ok());
            (uid, gid)
        }
    };
    let gid = match group {
        None => primary.unwrap_or(uid),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let groups = read("/etc/group");
                groups
                    .iter()
                    .find(|r| r.first().map(String::as_str) == Some(g))
                    .and_then(|r| r.get(2))
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        format!("unable to find group {g}: no matching entries in group file")
                    })?
            }
        },
    };
    Ok(Owner { uid, gid })
}

/// The mode `chmod` gives an entry that had `mode`.
pub fn apply_chmod(chmod: &Chmod, mode: u32, is_dir: bool) -> u32 {
    match chmod {
        Chmod::Octal(bits) => *bits,
        Chmod::Symbolic(s) => {
            let mut m = mode & 0o7777;
            for clause in s.split(',') {
                let who_end = clause
                    .find(|c: char| "+-=".contains(c))
                    .unwrap_or(clause.len());
                let who = &clause[..who_end];
                let mut mask = 0u32;
                for c in who.chars() {
                    mask |= match c {
                        'u' => 0o4700,
                        'g' => 0o2070,
                        'o' => 0o1007,
                        _ => 0o7777,
                    };
                }
                if who.is_empty() {
                    mask = 0o7777;
                }
                let mut rest = &clause[who_end..];
                while let Some(op) = rest.chars().next() {
                    let perm_end = rest[1..]
                        .find(|c: char| "+-=".contains(c))
                        .map_or(rest.len(), |i| i + 1);
                    let perms = &rest[1..perm_end];
                    let mut bits = 0u32;
                    for p in perms.chars() {
                        bits |= match p {
                            'r' => 0o444,
                            'w' => 0o222,
                            'x' => 0o111,
                            'X' if is_dir || m & 0o111 != 0 => 0o111,
                            's' => 0o6000,
                            't' => 0o1000,
                            _ => 0,
                        };
                    }
                    let bits = bits & mask;
                    m = match op {
                        '+' => m | bits,
                        '-' => m & !bits,
                        _ => (m & !(mask & 0o777)) | bits,
                    };
                    rest = &rest[perm_end..];
                }
            }
            m
        }
    }
}

/// Create `dir` (inside the root, resolved) and its missing parents,
/// owned by `owner` (root when None), mode 0755.
pub fn mkdir_all(root: &Path, dir: &str, owner: Option<Owner>) -> io::Result<PathBuf> {
    let mut cur = String::new();
    for part in split(dir) {
        cur.push('/');
        cur.push_str(&part);
        let p = scoped(root, &cur, true)?;
        match fs::symlink_metadata(&p) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{cur}: exists and is not a directory"
                )));
            }
            Err(_) => {
                fs::create_dir(&p)?;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755))?;
                let o = owner.unwrap_or(Owner { uid: 0, gid: 0 });
                std::os::unix::fs::lchown(&p, Some(o.uid), Some(o.gid))?;
            }
        }
    }
    scoped(root, dir, true)
}

/// What to write at one destination.
pub enum Item<'a> {
    Dir,
    File(&'a Path),
    Bytes(&'a [u8]),
    Symlink(&'a str),
}

/// Put `item` at `target` (a path inside `root`), with `mode` and owner.
pub fn put(root: &Path, target: &str, item: Item<'_>, mode: u32, owner: Owner) -> io::Result<()> {
    let parent = Path::new(target)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into());
    mkdir_all(root, &parent, Some(owner))?;
    let dest = scoped(root, target, false)?;
    let existing = fs::symlink_metadata(&dest).ok();
    match item {
        Item::Dir => {
            match existing {
                Some(md) if md.is_dir() => {}
                Some(_) => {
                    fs::remove_file(&dest)?;
                    fs::create_dir(&dest)?;
                }
                None => fs::create_dir(&dest)?,
            }
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode))?;
        }
        Item::File(_) | Item::Bytes(_) => {
            if let Some(md) = existing {
                if md.is_dir() {
                    fs::remove_dir_all(&dest)?;
                } else {
                    fs::remove_file(&dest)?;
                }
            }
            let mut out = fs::File::create(&dest)?;
            match item {
                Item::File(src) => {
                    let mut f = fs::File::open(src)?;
                    io::copy(&mut f, &mut out)?;
                }
                Item::Bytes(b) => out.write_all(b)?,
                _ => unreachable!(),
            }
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode))?;
        }
        Item::Symlink(to) => {
            if let Some(md) = existing {
                if md.is_dir() {
                    fs::remove_dir_all(&dest)?;
                } else {
                    fs::remove_file(&dest)?;
                }
            }
            symlink(to, &dest)?;
        }
    }
    std::os::unix::fs::lchown(&dest, Some(owner.uid), Some(owner.gid))
}

/// Whether `data` starts like a tar archive, plain or gzip-compressed.
pub fn tar_kind(path: &Path) -> io::Result<Option<bool>> {
    let mut head = [0u8; 512];
    let mut f = fs::File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        let got = f.read(&mut head[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    if n >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        // Gzip: look inside for the tar header.
        let f = fs::File::open(path)?;
        let mut gz = flate2::read::GzDecoder::new(f);
        let mut inner = [0u8; 512];
        let mut m = 0;
        while m < inner.len() {
            match gz.read(&mut inner[m..]) {
                Ok(0) => break,
                Ok(got) => m += got,
                Err(_) => return Ok(None),
            }
        }
        return Ok((m == 512 && &inner[257..262] == b"ustar").then_some(true));
    }
    Ok((n == 512 && &head[257..262] == b"ustar").then_some(false))
}

/// Unpack the tar at `path` into `dest_dir` inside `root`, owners and
/// modes as the archive has them (as ADD does).
pub fn extract_tar(root: &Path, path: &Path, gzip: bool, dest_dir: &str) -> io::Result<()> {
    let f = fs::File::open(path)?;
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut ar = tar::Archive::new(reader);
    mkdir_all(root, dest_dir, None)?;
    for e in ar.entries()? {
        let mut e = e?;
        let name = e.path()?.to_string_lossy().into_owned();
        let target = format!("{}/{}", dest_dir.trim_end_matches('/'), name);
        let h = e.header().clone();
        let owner = Owner {
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
        };
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        match h.entry_type() {
            tar::EntryType::Directory => put(root, &target, Item::Dir, mode, owner)?,
            tar::EntryType::Symlink => {
                let to = e
                    .link_name()?
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default();
                put(root, &target, Item::Symlink(&to), mode, owner)?;
            }
            tar::EntryType::Link => {
                let to = e
                    .link_name()?
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let from = scoped(root, &format!("{dest_dir}/{to}"), false)?;
                let dest = scoped(root, &target, false)?;
                let _ = fs::remove_file(&dest);
                fs::hard_link(from, dest)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut data = Vec::new();
                e.read_to_end(&mut data)?;
                put(root, &target, Item::Bytes(&data), mode, owner)?;
            }
            // Devices and fifos in an ADDed archive are rare; skipped.
            _ => {}
        }
    }
    Ok(())
}

/// GET an `http://` URL (no TLS: berth reaches no network but the
/// build's own). Returns the body.
pub fn http_get(url: &str) -> Result<Vec<u8>, String> {
    use std::net::TcpStream;
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs can be fetched"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let mut s = TcpStream::connect(&addr).map_err(|e| format!("{url}: connecting: {e}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .map_err(|e| format!("{url}: {e}"))?;
    // One write: a server may answer (and close) after the first packet.
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nUser-Agent: berth-builder\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{url}: sending: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("{url}: reading: {e}"))?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{url}: no HTTP header in the answer"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.lines().next().unwrap_or_default();
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if !(200..300).contains(&code) {
        return Err(format!("{url}: {status}"));
    }
    let mut body = raw[end + 4..].to_vec();
    if head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    }) {
        body = dechunk(&body).ok_or_else(|| format!("{url}: bad chunked body"))?;
    }
    Ok(body)
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_txt = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_txt.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Remove what a RUN's mount targets added to the root (a secret's
/// empty file, `/run/secrets`): `created` are the paths that did not exist
/// before the run, outermost first.
pub fn remove_created(root: &Path, created: &[String]) {
    for p in created {
        if let Ok(path) = scoped(root, p, false) {
            match fs::symlink_metadata(&path) {
                Ok(md) if md.is_dir() => {
                    let _ = fs::remove_dir_all(&path);
                }
                Ok(_) => {
                    let _ = fs::remove_file(&path);
                }
                Err(_) => {}
            }
        }
    }
}

/// The first path from `/` down to `target` that does not exist in the
/// root, if any (what a mount on `target` will create).
pub fn first_missing(root: &Path, target: &str) -> Option<String> {
    let mut cur = String::new();
    for part in split(target) {
        cur.push('/');
        cur.push_str(&part);
        let p = scoped(root, &cur, true).ok()?;
        if fs::symlink_metadata(&p).is_err() {
            return Some(cur);
        }
    }
    None
}

/// Set `target`'s (inside `root`, not following a last symlink) mtime and
/// atime to `t`.
pub fn set_mtime(root: &Path, target: &str, t: std::time::SystemTime) -> io::Result<()> {
    let p = scoped(root, target, false)?;
    // Opening read-only works for directories too; futimens needs no write.
    let f = fs::File::open(&p)?;
    f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_paths_stay_inside() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("real/dir")).unwrap();
        symlink("/real", root.join("abs")).unwrap();
        symlink("../../..", root.join("real/up")).unwrap();
        assert_eq!(
            scoped(root, "/abs/dir", true).unwrap(),
            root.join("real/dir")
        );
        assert_eq!(
            scoped(root, "/real/up/etc", true).unwrap(),
            root.join("etc")
        );
        assert_eq!(scoped(root, "/abs", false).unwrap(), root.join("abs"));
        assert_eq!(scoped(root, "../../x", true).unwrap(), root.join("x"));
    }

    #[test]
    fn chmod_symbolic_and_octal() {
        assert_eq!(apply_chmod(&Chmod::Octal(0o640), 0o755, false), 0o640);
        let s = |x: &str| Chmod::Symbolic(x.into());
        assert_eq!(apply_chmod(&s("u+x"), 0o644, false), 0o744);
        assert_eq!(apply_chmod(&s("go-w"), 0o666, false), 0o644);
        assert_eq!(apply_chmod(&s("a=r"), 0o755, false), 0o444);
        assert_eq!(apply_chmod(&s("u=rwx,go=rx"), 0o600, false), 0o755);
        assert_eq!(apply_chmod(&s("a+X"), 0o644, true), 0o755);
        assert_eq!(apply_chmod(&s("a+X"), 0o644, false), 0o644);
    }

    #[test]
    fn chown_by_name_and_number() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("etc")).unwrap();
        fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(t.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let r = |s| resolve_chown(t.path(), s);
        assert_eq!(
            r("app").unwrap(),
            Owner {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(r("app:staff").unwrap(), Owner { uid: 1000, gid: 50 });
        assert_eq!(r("7:8").unwrap(), Owner { uid: 7, gid: 8 });
        assert_eq!(r("7").unwrap(), Owner { uid: 7, gid: 7 });
        assert!(
            r("nobody")
                .unwrap_err()
                .contains("unable to find user nobody")
        );
        assert!(
            r("app:nogroup")
                .unwrap_err()
                .contains("unable to find group nogroup")
        );
    }
}
