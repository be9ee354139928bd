//! The tar format as berth writes it (reproducible ustar headers, PAX
//! records where ustar cannot hold a value), and the names OCI layers give
//! meaning to (whiteouts).

/// Prefix of a whiteout entry: `.wh.<name>` deletes `<name>`.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Prefix of whiteout "meta" names (AUFS bookkeeping and the opaque marker).
pub const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// The opaque marker: its directory hides the lower layers' content.
pub const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";

/// What a layer entry's base name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteout<'a> {
    /// An ordinary entry.
    None,
    /// `.wh.<name>`: delete `<name>` from the lower layers.
    Delete(&'a [u8]),
    /// `.wh..wh..opq`: the parent directory is opaque.
    Opaque,
    /// Another `.wh..wh.` name (AUFS bookkeeping such as `.wh..wh.plnk`):
    /// ignored.
    Meta,
    /// `.wh.` followed by nothing usable ("", ".", ".." or a name with '/').
    Invalid,
}

/// What the base name `base` of a layer entry means.
pub fn parse_whiteout(base: &[u8]) -> Whiteout<'_> {
    if base == WHITEOUT_OPAQUE {
        Whiteout::Opaque
    } else if base.starts_with(WHITEOUT_META_PREFIX) {
        Whiteout::Meta
    } else if let Some(name) = base.strip_prefix(WHITEOUT_PREFIX) {
        if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
            Whiteout::Invalid
        } else {
            Whiteout::Delete(name)
        }
    } else {
        Whiteout::None
    }
}

/// A layer entry's name reduced to its components ("." and empty ones
/// dropped, joined by '/'); refused if it is absolute or has a ".."
/// component, which no well-formed layer holds. An empty result is the
/// root itself.
pub fn clean_path(raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    if raw.first() == Some(&b'/') {
        return Err("absolute path");
    }
    let mut out = Vec::with_capacity(raw.len());
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path has a '..' component"),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

/// (parent, base name) of a cleaned, non-empty path.
pub fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(parent.len() + 1 + name.len());
    v.extend_from_slice(parent);
    if !parent.is_empty() {
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}

/// Entry types berth writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Regular,
    HardLink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

impl Kind {
    fn flag(self) -> u8 {
        match self {
            Kind::Regular => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::Char => b'3',
            Kind::Block => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        }
    }
}

/// One entry's header fields. Only what is here goes into the tar: no
/// atime/ctime, no user or group names.
#[derive(Debug, Clone)]
pub struct EntryHeader<'a> {
    /// Cleaned path (no trailing '/'; one is added for directories).
    pub path: &'a [u8],
    pub kind: Kind,
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    /// Seconds since the epoch (sub-second precision is not kept).
    pub mtime: i64,
    pub link: &'a [u8],
    pub devmajor: u32,
    pub devminor: u32,
    /// Sorted by name; written as `SCHILY.xattr.<name>` PAX records.
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

const BLOCK: usize = 512;
/// Largest value of an octal field of `width` bytes (width-1 digits + NUL).
fn octal_max(width: usize) -> u64 {
    (1u64 << (3 * (width as u32 - 1))) - 1
}

fn put_octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    // "<len> <key>=<value>\n", where <len> counts itself.
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    loop {
        let total = rest + len.to_string().len();
        if total == len {
            break;
        }
        len = total;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Splits `path` into a ustar (prefix, name) if it fits.
fn ustar_split(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= 100 {
        return Some((&[], path));
    }
    if path.len() > 256 {
        return None;
    }
    // The prefix must hold at most 155 bytes, the name at most 100, and the
    // split is at a '/'.
    let start = path.len() - 101;
    path.iter()
        .enumerate()
        .skip(start)
        .take_while(|(i, _)| *i <= 155)
        .find(|(i, b)| **b == b'/' && *i > 0 && *i + 1 < path.len())
        .map(|(i, _)| (&path[..i], &path[i + 1..]))
}

#[allow(clippy::too_many_arguments)]
fn raw_header(
    out: &mut Vec<u8>,
    prefix: &[u8],
    name: &[u8],
    flag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: &[u8],
    dev: (u32, u32),
) {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name);
    put_octal(&mut h[100..108], u64::from(mode));
    put_octal(&mut h[108..116], uid);
    put_octal(&mut h[116..124], gid);
    put_octal(&mut h[124..136], size);
    put_octal(&mut h[136..148], mtime);
    h[156] = flag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    if matches!(flag, b'3' | b'4') {
        put_octal(&mut h[329..337], u64::from(dev.0));
        put_octal(&mut h[337..345], u64::from(dev.1));
    }
    h[345..345 + prefix.len()].copy_from_slice(prefix);
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    out.extend_from_slice(&h);
}

/// Appends the header block(s) of `e` (a PAX extended header first when
/// needed) to `out`. The entry's data, padded to 512 bytes, follows.
pub fn write_header(out: &mut Vec<u8>, e: &EntryHeader<'_>) {
    let mut path = e.path.to_vec();
    if e.kind == Kind::Dir && !path.is_empty() {
        path.push(b'/');
    }
    let mut pax = Vec::new();
    let split = ustar_split(&path);
    if split.is_none() {
        pax_record(&mut pax, b"path", &path);
    }
    let link_fits = e.link.len() <= 100;
    if !link_fits {
        pax_record(&mut pax, b"linkpath", e.link);
    }
    let id_max = octal_max(8);
    if e.uid > id_max {
        pax_record(&mut pax, b"uid", e.uid.to_string().as_bytes());
    }
    if e.gid > id_max {
        pax_record(&mut pax, b"gid", e.gid.to_string().as_bytes());
    }
    if e.size > octal_max(12) {
        pax_record(&mut pax, b"size", e.size.to_string().as_bytes());
    }
    let mtime_fits = e.mtime >= 0 && (e.mtime as u64) <= octal_max(12);
    if !mtime_fits {
        pax_record(&mut pax, b"mtime", e.mtime.to_string().as_bytes());
    }
    for (k, v) in e.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(k);
        pax_record(&mut pax, &key, v);
    }
    if !pax.is_empty() {
        raw_header(
            out,
            &[],
            b"././@PaxHeader",
            b'x',
            0,
            0,
            0,
            pax.len() as u64,
            0,
            &[],
            (0, 0),
        );
        out.extend_from_slice(&pax);
        pad(out, pax.len() as u64);
    }
    let (prefix, name) = match split {
        Some(s) => s,
        // The PAX path rules; ustar gets a truncated stand-in.
        None => (&[][..], &path[path.len().saturating_sub(100)..]),
    };
    let link = if link_fits { e.link } else { &e.link[..100] };
    raw_header(
        out,
        prefix,
        name,
        e.kind.flag(),
        e.mode & 0o7777,
        if e.uid > id_max { 0 } else { e.uid },
        if e.gid > id_max { 0 } else { e.gid },
        if e.size > octal_max(12) { 0 } else { e.size },
        if mtime_fits { e.mtime as u64 } else { 0 },
        link,
        (e.devmajor, e.devminor),
    );
}

/// Zero bytes that pad `len` bytes of data to a 512-byte boundary.
pub fn pad(out: &mut Vec<u8>, len: u64) {
    let rem = (len % BLOCK as u64) as usize;
    if rem != 0 {
        out.resize(out.len() + BLOCK - rem, 0);
    }
}

/// The end-of-archive marker: two zero blocks.
pub fn trailer(out: &mut Vec<u8>) {
    out.resize(out.len() + 2 * BLOCK, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteout_names() {
        assert_eq!(parse_whiteout(b"file"), Whiteout::None);
        assert_eq!(parse_whiteout(b".wh.file"), Whiteout::Delete(b"file"));
        assert_eq!(parse_whiteout(b".wh..hidden"), Whiteout::Delete(b".hidden"));
        assert_eq!(parse_whiteout(b".wh..wh..opq"), Whiteout::Opaque);
        assert_eq!(parse_whiteout(b".wh..wh.plnk"), Whiteout::Meta);
        assert_eq!(parse_whiteout(b".wh..wh.aufs"), Whiteout::Meta);
        assert_eq!(parse_whiteout(b".wh."), Whiteout::Invalid);
        assert_eq!(parse_whiteout(b".wh.."), Whiteout::Invalid);
        assert_eq!(parse_whiteout(b".wh...."), Whiteout::Delete(b"..."));
        assert_eq!(parse_whiteout(b".wh"), Whiteout::None);
        assert_eq!(parse_whiteout(b"x.wh.y"), Whiteout::None);
    }

    #[test]
    fn cleaning_paths() {
        assert_eq!(clean_path(b"./a//b/./c/").unwrap(), b"a/b/c");
        assert_eq!(clean_path(b"./").unwrap(), b"");
        assert_eq!(clean_path(b"a").unwrap(), b"a");
        assert!(clean_path(b"/etc/passwd").is_err());
        assert!(clean_path(b"../x").is_err());
        assert!(clean_path(b"a/../../x").is_err());
        assert!(clean_path(b"a/..").is_err());
        assert_eq!(clean_path(b"a/..b").unwrap(), b"a/..b");
        assert_eq!(split_parent(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_parent(b"c"), (&b""[..], &b"c"[..]));
    }

    fn header(path: &[u8], xattrs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(
            &mut out,
            &EntryHeader {
                path,
                kind: Kind::Regular,
                mode: 0o104755,
                uid: 1000,
                gid: 1000,
                size: 5,
                mtime: 1_700_000_000,
                link: b"",
                devmajor: 0,
                devminor: 0,
                xattrs,
            },
        );
        out
    }

    #[test]
    fn headers_are_reproducible_and_readable() {
        let xattrs = vec![
            (
                b"security.capability".to_vec(),
                vec![1, 0, 0, 2, 0x0a, 0xff],
            ),
            (b"user.a".to_vec(), b"x y=z\n".to_vec()),
        ];
        let long = [b"d/".repeat(80), b"file".to_vec()].concat();
        for path in [&b"short"[..], &long[..]] {
            let a = header(path, &xattrs);
            let b = header(path, &xattrs);
            assert_eq!(a, b);
            assert_eq!(a.len() % 512, 0);
            let mut data = a.clone();
            data.extend_from_slice(b"hello");
            pad(&mut data, 5);
            trailer(&mut data);

            // berth's reader: every field, newlines in values included.
            let mut tr = crate::layer::tarread::TarReader::new(&data[..]);
            let h = tr.next().unwrap().unwrap();
            assert_eq!(h.name, path);
            assert_eq!((h.mode, h.uid, h.gid, h.size), (0o4755, 1000, 1000, 5));
            assert_eq!(h.mtime, (1_700_000_000, 0));
            assert_eq!(h.xattrs, xattrs);
            assert_eq!(tr.data().unwrap(), b"hello");
            tr.consume(5);
            assert!(tr.next().unwrap().is_none());

            // The tar crate agrees on the header (its PAX parser splits
            // records at newlines, so the xattrs are not checked with it);
            // no user or group name.
            let mut ar = tar::Archive::new(&data[..]);
            let mut entries = ar.entries().unwrap();
            let mut e = entries.next().unwrap().unwrap();
            assert_eq!(&*e.path_bytes(), path);
            assert_eq!(e.header().mode().unwrap(), 0o4755);
            assert_eq!(e.header().uid().unwrap(), 1000);
            assert_eq!(e.header().mtime().unwrap(), 1_700_000_000);
            assert_eq!(e.header().username_bytes(), Some(&b""[..]));
            assert_eq!(e.header().groupname_bytes(), Some(&b""[..]));
            let mut body = String::new();
            std::io::Read::read_to_string(&mut e, &mut body).unwrap();
            assert_eq!(body, "hello");
            assert!(entries.next().is_none());
        }
    }

    #[test]
    fn long_names_use_ustar_prefix_then_pax() {
        // Fits prefix (155) + name (100): no PAX header.
        let p = [b"p".repeat(150), b"/".to_vec(), b"n".repeat(99)].concat();
        assert_eq!(header(&p, &[]).len(), 512);
        // Does not fit: a PAX header comes first.
        let q = b"x".repeat(300);
        let h = header(&q, &[]);
        assert!(h.len() > 512);
        assert_eq!(h[156], b'x');
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        for n in [0, 1, 5, 80, 89, 90, 91, 995, 996, 1000] {
            let mut out = Vec::new();
            pax_record(&mut out, b"k", &vec![b'v'; n]);
            let sp = out.iter().position(|&b| b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&out[..sp]).unwrap().parse().unwrap();
            assert_eq!(len, out.len(), "value of {n} bytes");
        }
    }
}
