//! On-disk cache of compiled filters, so `create` and every `exec` into a
//! container reuse one compilation.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};
use tracing::debug;

use super::{CompiledFilter, Result, SeccompError, bpf, compile};

/// Bumped when the file format changes without a crate version bump.
const FORMAT: &str = "berth-seccomp-cache-1";

pub(crate) fn compile_cached(profile: &LinuxSeccomp, cache_dir: &Path) -> Result<CompiledFilter> {
    let path = cache_dir.join(format!("{}.json", key(profile)?));
    if let Some(filter) = load(&path) {
        return Ok(filter);
    }
    let filter = compile(profile)?;
    store(cache_dir, &path, &filter)?;
    Ok(filter)
}

/// sha256 over the profile, the compiler's version and the host arch: the
/// same profile compiles differently on another host or another berth.
pub(crate) fn key(profile: &LinuxSeccomp) -> Result<String> {
    let json = serde_json::to_vec(profile)
        .map_err(|e| SeccompError::Invalid(format!("serializing profile for cache key: {e}")))?;
    let mut h = Sha256::new();
    for part in [
        &json[..],
        env!("CARGO_PKG_VERSION").as_bytes(),
        std::env::consts::ARCH.as_bytes(),
        FORMAT.as_bytes(),
    ] {
        // Length-prefixed so parts cannot run into each other.
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let digest = h.finalize();
    let mut hex = String::with_capacity(digest.len() * 2);
    for b in digest.iter() {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        hex.push(DIGITS[usize::from(b >> 4)].into());
        hex.push(DIGITS[usize::from(b & 0xf)].into());
    }
    Ok(hex)
}

/// A usable cached filter, or `None` to recompile: a cache that cannot be
/// read is a cache miss, not a failure.
fn load(path: &Path) -> Option<CompiledFilter> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            debug!(path = %path.display(), error = %e, "seccomp cache unreadable, recompiling");
            return None;
        }
    };
    let filter: CompiledFilter = match serde_json::from_slice(&bytes) {
        Ok(f) => f,
        Err(e) => {
            debug!(path = %path.display(), error = %e, "seccomp cache corrupt, recompiling");
            return None;
        }
    };
    // JSON that parses can still be a truncated or edited program; the
    // kernel would refuse it at install time, far from the cause.
    if let Err(e) = bpf::validate(&filter.program) {
        debug!(path = %path.display(), error = %e, "seccomp cache holds an invalid program, recompiling");
        return None;
    }
    Some(filter)
}

/// Writes through a temporary file and a rename so a concurrent reader
/// sees either no entry or a whole one. No fsync: after a crash a torn
/// entry reads as corrupt and is recompiled.
fn store(cache_dir: &Path, path: &Path, filter: &CompiledFilter) -> Result<()> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SeccompError::Cache { path, source }
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(cache_dir)
        .map_err(err(cache_dir))?;

    let json = serde_json::to_vec(filter).map_err(|e| SeccompError::Cache {
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    let tmp = temp_path(path);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&json))
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(err(path)(e));
    }
    Ok(())
}

fn temp_path(path: &Path) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(
        ".{}.{}.{}.tmp",
        name.unwrap_or_default(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}
