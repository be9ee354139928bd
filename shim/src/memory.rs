//! Keeping a shim small. Most of a fresh shim's resident memory is code
//! and read-only data it needed once: argument parsing, JSON, the
//! runtime's create path, each mapped in 64 KiB runs by the kernel's
//! fault-around. Those pages are the page cache's, shared with every
//! other shim; dropping them from this process's page tables costs
//! nothing, and what the loop needs comes back on first use.

/// Unmap clean, read-only pages of files (they reload from the file) and
/// return free heap to the kernel.
pub fn shed() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::malloc_trim(0)
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        if let Some(range) = sheddable(line) {
            current = range;
            continue;
        }
        // A page of the file that this process changed (relocations)
        // exists nowhere else: such a mapping is left whole.
        if let Some(kb) = line.strip_prefix("Anonymous:")
            && let Some((start, end)) = current.take()
            && kb.trim().trim_end_matches("kB").trim() == "0"
        {
            // SAFETY: a private, read-only file mapping without private
            // copies: its pages read back the same from the file.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        }
    }
}

/// For an smaps mapping header: `Some(Some(range))` for a private,
/// non-writable mapping of a file, `Some(None)` for any other mapping,
/// `None` for a line that is not a header.
fn sheddable(line: &str) -> Option<Option<(usize, usize)>> {
    let mut f = line.split_ascii_whitespace();
    let (range, perms, _offset, _dev, inode) =
        (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    if perms.len() != 4 {
        return None;
    }
    let path = f.next().unwrap_or("");
    let p = perms.as_bytes();
    let ok = p[1] == b'-' && p[3] == b'p' && inode != "0" && path.starts_with('/');
    Some(ok.then_some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(
            sheddable("55e0-55f0 r-xp 00121000 fe:00 5498609   /usr/bin/x"),
            Some(Some((0x55e0, 0x55f0)))
        );
        assert_eq!(
            sheddable("55e0-55f0 rw-p 00121000 fe:00 5498609   /usr/bin/x"),
            Some(None)
        );
        assert_eq!(
            sheddable("7ff0-7ff1 r--p 00000000 00:00 0   [vvar]"),
            Some(None)
        );
        assert_eq!(sheddable("55e0-55f0 rw-p 00000000 00:00 0 "), Some(None));
        assert_eq!(sheddable("Rss:                 4 kB"), None);
        assert_eq!(sheddable("VmFlags: rd ex mr mw me sd"), None);
        // Still runs after shedding its own code.
        shed();
        shed();
    }
}
