//! cgroupfs file and directory primitives shared by both backends.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::{CgroupError, Result};

/// How long one `remove` keeps retrying busy leaves (all hierarchies
/// together): processes that were just killed may still be leaving.
pub const REMOVE_BUDGET: Duration = Duration::from_secs(1);

/// Write `value` with a single write(2): cgroupfs parses each write on its
/// own, so a split write would be two (broken) values.
pub fn write_raw(path: &Path, value: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    let n = f.write(value.as_bytes())?;
    if n != value.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {n} of {} bytes", value.len()),
        ));
    }
    Ok(())
}

pub fn write_err(path: &Path, value: &str, source: io::Error) -> CgroupError {
    CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_owned(),
        source,
    }
}

pub fn write(path: &Path, value: &str) -> Result<()> {
    write_raw(path, value).map_err(|e| write_err(path, value, e))
}

/// Like [`write`], but a file that does not exist is not an error: it
/// returns `Ok(false)` (the kernel lacks that optional knob).
pub fn write_optional(path: &Path, value: &str) -> Result<bool> {
    let mut f = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::debug!(path = %path.display(), value, "cgroup file absent, skipped");
            return Ok(false);
        }
        Err(e) => return Err(write_err(path, value, e)),
    };
    match f.write(value.as_bytes()) {
        Ok(n) if n == value.len() => Ok(true),
        Ok(n) => Err(write_err(
            path,
            value,
            io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write: {n} of {} bytes", value.len()),
            ),
        )),
        Err(e) => Err(write_err(path, value, e)),
    }
}

pub fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// `fs::read_to_string` without the size probe (statx and lseek) std
/// makes first: cgroup files report no useful size, and stats reads a
/// dozen files per call, where each syscall shows.
fn read_lean(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The contents of `dir/file`; `None` if the file does not exist (its
/// controller is not there), [`CgroupError::Gone`] if `dir` itself does
/// not. The directory is looked at only when the file is missing.
pub fn read_opt(dir: &Path, file: &str) -> Result<Option<String>> {
    let path = dir.join(file);
    match read_lean(&path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if dir.is_dir() {
                Ok(None)
            } else {
                Err(CgroupError::Gone {
                    path: dir.to_path_buf(),
                })
            }
        }
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

/// Create `leaf` and any missing parents below `mount_point`, appending
/// the directories this call created to `created`, shallowest first.
pub fn mkdir_p(mount_point: &Path, leaf: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    // Try the leaf first: its parents usually exist, and then this is one
    // syscall.
    match fs::create_dir(leaf) {
        Ok(()) => {
            created.push(leaf.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound && leaf != mount_point => {
            match leaf.parent() {
                Some(parent) if parent.starts_with(mount_point) && parent != mount_point => {
                    mkdir_p(mount_point, parent, created)?;
                    match fs::create_dir(leaf) {
                        Ok(()) => {
                            created.push(leaf.to_path_buf());
                            Ok(())
                        }
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                        Err(source) => Err(CgroupError::Create {
                            path: leaf.to_path_buf(),
                            source,
                        }),
                    }
                }
                _ => Err(CgroupError::Create {
                    path: leaf.to_path_buf(),
                    source: e,
                }),
            }
        }
        Err(source) => Err(CgroupError::Create {
            path: leaf.to_path_buf(),
            source,
        }),
    }
}

fn is_busy(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EBUSY)
}

/// Remove the directories in `created` (shallowest first, as [`mkdir_p`]
/// records them), deepest first. The leaf's own sub-cgroups (made by the
/// container) go with it, and a busy leaf is retried until `deadline`. A
/// parent that is still busy holds other cgroups and is left alone.
pub fn remove_created(created: &[PathBuf], leaf: &Path, deadline: Instant) -> Result<()> {
    for dir in created.iter().rev() {
        if dir == leaf {
            remove_leaf(dir, deadline)?;
            continue;
        }
        match fs::remove_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if is_busy(&e) => {
                tracing::debug!(path = %dir.display(), "cgroup parent still in use, kept");
                // Its own parents are busy too, by this very directory.
                break;
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.clone(),
                    source,
                });
            }
        }
    }
    Ok(())
}

fn remove_leaf(dir: &Path, deadline: Instant) -> Result<()> {
    let mut delay = Duration::from_millis(1);
    loop {
        let err = match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => e,
        };
        if !is_busy(&err) || Instant::now() >= deadline {
            return Err(CgroupError::Remove {
                path: dir.to_path_buf(),
                source: err,
            });
        }
        // Busy: sub-cgroups the container made, or tasks still exiting.
        remove_subtree(dir);
        if fs::remove_dir(dir).is_ok() {
            return Ok(());
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// Best effort: rmdir every cgroup below `dir`, deepest first. Failures
/// surface when the caller's rmdir of `dir` fails.
fn remove_subtree(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let sub = entry.path();
            remove_subtree(&sub);
            let _ = fs::remove_dir(&sub);
        }
    }
}

fn parse_pids(path: &Path, text: &str, out: &mut Vec<Pid>) -> Result<()> {
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let pid: i32 = line.parse().map_err(|_| CgroupError::Read {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidData, format!("bad pid {line:?}")),
        })?;
        out.push(Pid::from_raw(pid));
    }
    Ok(())
}

/// Pids in `dir`'s cgroup.procs and in those of all its descendants.
pub fn procs_recursive(dir: &Path) -> Result<Vec<Pid>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let procs = d.join("cgroup.procs");
        match fs::read_to_string(&procs) {
            Ok(text) => parse_pids(&procs, &text, &mut out)?,
            // A sub-cgroup removed while we walk is simply empty.
            Err(e) if e.kind() == io::ErrorKind::NotFound && d != dir => continue,
            Err(source) => {
                return Err(CgroupError::Read {
                    path: procs,
                    source,
                });
            }
        }
        let entries = fs::read_dir(&d).map_err(|source| CgroupError::Read {
            path: d.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkdir_p_records_only_new_dirs_and_remove_deletes_them() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir(root.join("a")).unwrap();
        let leaf = root.join("a/b/c");
        let mut created = Vec::new();
        mkdir_p(root, &leaf, &mut created).unwrap();
        assert_eq!(created, [root.join("a/b"), root.join("a/b/c")]);
        // Again: nothing new.
        let mut again = Vec::new();
        mkdir_p(root, &leaf, &mut again).unwrap();
        assert!(again.is_empty());
        let deadline = Instant::now() + REMOVE_BUDGET;
        remove_created(&created, &leaf, deadline).unwrap();
        assert!(!root.join("a/b").exists());
        assert!(root.join("a").exists());
        // Already gone is fine.
        remove_created(&created, &leaf, deadline).unwrap();
    }

    #[test]
    fn write_optional_skips_missing_files() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!write_optional(&tmp.path().join("nope"), "1").unwrap());
        let f = tmp.path().join("knob");
        fs::write(&f, "").unwrap();
        assert!(write_optional(&f, "42").unwrap());
        assert_eq!(fs::read_to_string(&f).unwrap(), "42");
        let e = write(&tmp.path().join("nope"), "7").unwrap_err();
        assert!(e.to_string().contains("\"7\""), "{e}");
    }

    #[test]
    fn parses_pid_lists() {
        let mut out = Vec::new();
        parse_pids(Path::new("x"), "1\n22\n\n", &mut out).unwrap();
        assert_eq!(out, [Pid::from_raw(1), Pid::from_raw(22)]);
        assert!(parse_pids(Path::new("x"), "abc\n", &mut out).is_err());
    }
}
