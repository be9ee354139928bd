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

/// Bumped when the file format or the compiled program changes without a
/// crate version bump.
const FORMAT: &str = "berth-seccomp-cache-2";

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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    fn profile(deny: &str) -> LinuxSeccomp {
        serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": [deny], "action": "SCMP_ACT_ERRNO"}]
        }))
        .unwrap()
    }

    fn entry(dir: &Path, p: &LinuxSeccomp) -> PathBuf {
        dir.join(format!("{}.json", key(p).unwrap()))
    }

    #[test]
    fn first_call_compiles_and_stores_second_call_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("missing/cache");
        let p = profile("mkdir");
        let f = compile_cached(&p, &dir).unwrap();
        assert_eq!(f, compile(&p).unwrap());

        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let path = entry(&dir, &p);
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let stored: CompiledFilter = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(stored, f);
        // Nothing but the entry: the temporary file was renamed away.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);

        // A hit neither rewrites the file (the rename would give a new
        // inode) nor recompiles: an entry we planted comes back as is.
        assert_eq!(compile_cached(&p, &dir).unwrap(), f);
        let again = fs::metadata(&path).unwrap();
        assert_eq!(
            (again.ino(), again.mtime_nsec()),
            (meta.ino(), meta.mtime_nsec())
        );
        let mut planted = f.clone();
        planted.listener_metadata = Some("from the cache".into());
        fs::write(&path, serde_json::to_vec(&planted).unwrap()).unwrap();
        assert_eq!(compile_cached(&p, &dir).unwrap(), planted);
    }

    #[test]
    fn keys_differ_per_profile_and_are_stable() {
        let (a, b) = (profile("mkdir"), profile("rmdir"));
        assert_eq!(key(&a).unwrap(), key(&a.clone()).unwrap());
        assert_ne!(key(&a).unwrap(), key(&b).unwrap());
        assert_eq!(key(&a).unwrap().len(), 64);
        let tmp = tempfile::tempdir().unwrap();
        let fa = compile_cached(&a, tmp.path()).unwrap();
        let fb = compile_cached(&b, tmp.path()).unwrap();
        assert_ne!(fa.program, fb.program);
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 2);
    }

    #[test]
    fn corrupt_entries_are_recompiled_and_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let p = profile("mkdir");
        let good = compile(&p).unwrap();
        let path = entry(tmp.path(), &p);
        // Parses, but the kernel would refuse it.
        let mut bad_jump = good.clone();
        assert_eq!(bad_jump.program[2].0, bpf::BPF_JMP | bpf::BPF_JA);
        bad_jump.program[2].3 = 100_000;
        let mut truncated = good.clone();
        truncated.program.truncate(good.program.len() - 2);
        let corruptions: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\x00\xff garbage".to_vec(),
            serde_json::to_vec(&good).unwrap()[..40].to_vec(),
            br#"{"program": "nope"}"#.to_vec(),
            serde_json::to_vec(&bad_jump).unwrap(),
            serde_json::to_vec(&truncated).unwrap(),
        ];
        for bytes in corruptions {
            fs::write(&path, &bytes).unwrap();
            assert_eq!(compile_cached(&p, tmp.path()).unwrap(), good);
            let stored: CompiledFilter = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            assert_eq!(stored, good);
        }
    }

    #[test]
    fn unwritable_cache_is_an_error_naming_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let not_a_dir = tmp.path().join("file");
        fs::write(&not_a_dir, b"").unwrap();
        let err = compile_cached(&profile("mkdir"), &not_a_dir).unwrap_err();
        match &err {
            SeccompError::Cache { path, .. } => assert_eq!(path, &not_a_dir),
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string().starts_with("seccomp filter cache "),
            "{err}"
        );
    }

    #[test]
    fn compile_errors_pass_through() {
        let tmp = tempfile::tempdir().unwrap();
        let p: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["nosuchcall"], "action": "SCMP_ACT_ERRNO"}]
        }))
        .unwrap();
        assert!(matches!(
            compile_cached(&p, tmp.path()),
            Err(SeccompError::UnknownSyscall { index: 0, .. })
        ));
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
