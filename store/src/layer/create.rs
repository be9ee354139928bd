//! Making a layer: the list of changes (from an overlay upper dir, or a
//! comparison of two trees), written as a reproducible tar that is hashed
//! and compressed as it is produced.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::pgzip::{BLOCK, ParGz};
use super::sys::{self, cstring};
use super::tarfmt::{
    self, EntryHeader, Kind, WHITEOUT_OPAQUE, WHITEOUT_PREFIX, join, split_parent,
};
use super::{Changes, Compression, CreateOptions, Created, LayerError, Result, read_full};
use crate::digest::{Digest, HashingWriter, from_hasher};

/// xattrs that are not part of a layer: overlayfs' bookkeeping, and the
/// host's SELinux labels.
fn layer_xattr(name: &[u8]) -> bool {
    !name.starts_with(b"trusted.overlay.") && name != b"security.selinux"
}

/// One file as found on disk.
#[derive(Debug, Clone)]
struct Node {
    src: PathBuf,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    rdev: u64,
    nlink: u64,
    dev: u64,
    ino: u64,
    /// Every xattr, sorted by name (filtered when written).
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// A symlink's target.
    link: Vec<u8>,
}

impl Node {
    fn fmt(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    fn is_dir(&self) -> bool {
        self.fmt() == libc::S_IFDIR
    }
    fn xattr(&self, name: &[u8]) -> Option<&[u8]> {
        self.xattrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
    fn layer_xattrs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.xattrs
            .iter()
            .filter(|(k, _)| layer_xattr(k))
            .cloned()
            .collect()
    }
}

enum Change {
    Entry(Vec<u8>, Node),
    /// A deleted path.
    Whiteout(Vec<u8>),
    /// A directory hiding its lower content.
    Opaque(Vec<u8>),
}

impl Change {
    /// Order of the walk: depth first, names in byte order, a directory's
    /// opaque marker right after it.
    fn key(&self) -> Vec<u8> {
        let k =
            |p: &[u8]| -> Vec<u8> { p.iter().map(|&b| if b == b'/' { 0 } else { b }).collect() };
        match self {
            Change::Entry(p, _) | Change::Whiteout(p) => k(p),
            Change::Opaque(p) if p.is_empty() => Vec::new(),
            Change::Opaque(p) => {
                let mut v = k(p);
                v.push(0);
                v
            }
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> LayerError + '_ {
    move |source| LayerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Names in `dir`, sorted by bytes.
fn sorted_names(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let e = e.map_err(io_at(dir))?;
        names.push(e.file_name().as_bytes().to_vec());
    }
    names.sort_unstable();
    Ok(names)
}

/// The node at `src`; `None` for a socket (not part of a layer).
fn read_node(src: PathBuf) -> Result<Option<Node>> {
    let md = std::fs::symlink_metadata(&src).map_err(io_at(&src))?;
    let mode = md.mode();
    if mode & libc::S_IFMT == libc::S_IFSOCK {
        tracing::debug!(path = %src.display(), "sockets are not put in layers");
        return Ok(None);
    }
    let c = cstring(src.as_os_str().as_bytes()).map_err(io_at(&src))?;
    let mut xattrs = Vec::new();
    for name in sys::llistxattr(&c).map_err(io_at(&src))? {
        let cn = cstring(&name).map_err(io_at(&src))?;
        if let Some(v) = sys::lgetxattr(&c, &cn).map_err(io_at(&src))? {
            xattrs.push((name, v));
        }
    }
    xattrs.sort();
    let link = if mode & libc::S_IFMT == libc::S_IFLNK {
        std::fs::read_link(&src)
            .map_err(io_at(&src))?
            .into_os_string()
            .into_vec()
    } else {
        Vec::new()
    };
    Ok(Some(Node {
        mode,
        uid: md.uid(),
        gid: md.gid(),
        size: md.size(),
        mtime: md.mtime(),
        mtime_nsec: md.mtime_nsec(),
        rdev: md.rdev(),
        nlink: md.nlink(),
        dev: md.dev(),
        ino: md.ino(),
        xattrs,
        link,
        src,
    }))
}

use std::os::unix::ffi::OsStringExt;

fn overlay_upper(upper: &Path) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    walk_upper(upper, &[], &mut out)?;
    Ok(out)
}

fn walk_upper(dir: &Path, rel: &[u8], out: &mut Vec<Change>) -> Result<()> {
    for name in sorted_names(dir)? {
        let path = join(rel, &name);
        let Some(node) = read_node(dir.join(OsStr::from_bytes(&name)))? else {
            continue;
        };
        let fmt = node.fmt();
        if (fmt == libc::S_IFCHR && node.rdev == 0)
            || (fmt == libc::S_IFREG && node.xattr(b"trusted.overlay.whiteout").is_some())
        {
            out.push(Change::Whiteout(path));
            continue;
        }
        for needs_lower in [
            &b"trusted.overlay.redirect"[..],
            b"trusted.overlay.metacopy",
        ] {
            if node.xattr(needs_lower).is_some() {
                return Err(LayerError::Io {
                    path: node.src.clone(),
                    source: io::Error::other(format!(
                        "{} is set: this upper dir needs its lower dirs (mount the overlay \
                         with redirect_dir=off,metacopy=off)",
                        String::from_utf8_lossy(needs_lower)
                    )),
                });
            }
        }
        if node.is_dir() {
            let opaque = node.xattr(b"trusted.overlay.opaque") == Some(b"y");
            let src = node.src.clone();
            out.push(Change::Entry(path.clone(), node));
            if opaque {
                out.push(Change::Opaque(path.clone()));
            }
            walk_upper(&src, &path, out)?;
        } else {
            out.push(Change::Entry(path, node));
        }
    }
    Ok(())
}

/// Whether the content of two regular files differs.
fn content_differs(a: &Path, b: &Path) -> Result<bool> {
    let mut fa = File::open(a).map_err(io_at(a))?;
    let mut fb = File::open(b).map_err(io_at(b))?;
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(io_at(a))?;
        let nb = read_full(&mut fb, &mut bb).map_err(io_at(b))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(true);
        }
        if na == 0 {
            return Ok(false);
        }
    }
}

/// Whether `upper` differs from `lower` (same path, both present).
fn changed(lower: &Node, upper: &Node) -> Result<bool> {
    let meta = lower.mode != upper.mode
        || lower.uid != upper.uid
        || lower.gid != upper.gid
        || lower.layer_xattrs() != upper.layer_xattrs();
    if meta || upper.is_dir() {
        return Ok(meta || lower.mtime != upper.mtime || lower.mtime_nsec != upper.mtime_nsec);
    }
    if lower.size != upper.size
        || lower.mtime != upper.mtime
        || lower.mtime_nsec != upper.mtime_nsec
        || lower.link != upper.link
        || lower.rdev != upper.rdev
    {
        return Ok(true);
    }
    // Same size, same mtime: if that mtime has no sub-second part it may
    // have come from a tar (whole seconds), and a change made within the
    // same second would not show; compare the content then.
    if upper.fmt() == libc::S_IFREG && upper.mtime_nsec == 0 {
        return content_differs(&lower.src, &upper.src);
    }
    Ok(false)
}

/// Hardlinked files of the upper tree: (dev, ino) -> the group's members.
type LinkGroups = HashMap<(u64, u64), Vec<(Vec<u8>, Node)>>;

struct DiffWalk {
    out: Vec<Change>,
    groups: LinkGroups,
}

impl DiffWalk {
    fn note(&mut self, path: &[u8], node: &Node) {
        if !node.is_dir() && node.nlink > 1 {
            self.groups
                .entry((node.dev, node.ino))
                .or_default()
                .push((path.to_vec(), node.clone()));
        }
    }

    /// Everything under (and including) an added path.
    fn added(&mut self, path: Vec<u8>, node: Node) -> Result<()> {
        self.note(&path, &node);
        if node.is_dir() {
            let src = node.src.clone();
            self.out.push(Change::Entry(path.clone(), node));
            for name in sorted_names(&src)? {
                if let Some(n) = read_node(src.join(OsStr::from_bytes(&name)))? {
                    self.added(join(&path, &name), n)?;
                }
            }
        } else {
            self.out.push(Change::Entry(path, node));
        }
        Ok(())
    }

    fn walk(&mut self, lower: &Path, upper: &Path, rel: &[u8]) -> Result<()> {
        let ln = sorted_names(lower)?;
        let un = sorted_names(upper)?;
        let (mut i, mut j) = (0, 0);
        while i < ln.len() || j < un.len() {
            let ord = match (ln.get(i), un.get(j)) {
                (Some(a), Some(b)) => a.cmp(b),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match ord {
                std::cmp::Ordering::Less => {
                    let name = &ln[i];
                    if read_node(lower.join(OsStr::from_bytes(name)))?.is_some() {
                        self.out.push(Change::Whiteout(join(rel, name)));
                    }
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    let name = &un[j];
                    if let Some(n) = read_node(upper.join(OsStr::from_bytes(name)))? {
                        self.added(join(rel, name), n)?;
                    }
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let name = &un[j];
                    let path = join(rel, name);
                    let l = read_node(lower.join(OsStr::from_bytes(name)))?;
                    let u = read_node(upper.join(OsStr::from_bytes(name)))?;
                    match (l, u) {
                        (_, None) => {}
                        (None, Some(u)) => self.added(path, u)?,
                        (Some(l), Some(u)) if l.fmt() != u.fmt() => self.added(path, u)?,
                        (Some(l), Some(u)) if u.is_dir() => {
                            let (ls, us) = (l.src.clone(), u.src.clone());
                            if changed(&l, &u)? {
                                self.out.push(Change::Entry(path.clone(), u));
                            }
                            self.walk(&ls, &us, &path)?;
                        }
                        (Some(l), Some(u)) => {
                            self.note(&path, &u);
                            if changed(&l, &u)? {
                                self.out.push(Change::Entry(path, u));
                            }
                        }
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }
}

fn diff(lower: Option<&Path>, upper: &Path) -> Result<Vec<Change>> {
    let mut w = DiffWalk {
        out: Vec::new(),
        groups: HashMap::new(),
    };
    match lower {
        Some(lower) => w.walk(lower, upper, &[])?,
        None => {
            for name in sorted_names(upper)? {
                if let Some(n) = read_node(upper.join(OsStr::from_bytes(&name)))? {
                    w.added(name, n)?;
                }
            }
        }
    }
    // A hardlink group goes in whole if any member does, so the links are
    // kept when the layer is applied.
    let emitted: std::collections::HashSet<Vec<u8>> = w
        .out
        .iter()
        .filter_map(|c| match c {
            Change::Entry(p, _) => Some(p.clone()),
            _ => None,
        })
        .collect();
    let mut extra = Vec::new();
    for members in w.groups.values() {
        if members.iter().any(|(p, _)| emitted.contains(p)) {
            for (p, n) in members {
                if !emitted.contains(p) {
                    extra.push(Change::Entry(p.clone(), n.clone()));
                }
            }
        }
    }
    // Every entry's parent directories go in too, unchanged or not (as
    // containerd's writer does). Without them, a file modified in place
    // in `d` (whose own mtime does not change) is written as `d/file`
    // alone: applied alone as an overlayfs layer, `d` is then made as a
    // 0755 root-owned directory, which hides the lower `d`'s mode, owner,
    // xattrs and mtime in the merged tree; applied onto a copy, `d` keeps
    // the mtime of the write.
    let mut dirs = emitted;
    let mut parents = Vec::new();
    for c in w.out.iter().chain(extra.iter()) {
        let (Change::Entry(p, _) | Change::Whiteout(p) | Change::Opaque(p)) = c;
        let mut parent = split_parent(p).0;
        while !parent.is_empty() && dirs.insert(parent.to_vec()) {
            let src = upper.join(OsStr::from_bytes(parent));
            if let Some(node) = read_node(src)? {
                parents.push(Change::Entry(parent.to_vec(), node));
            }
            parent = split_parent(parent).0;
        }
    }
    extra.append(&mut parents);
    let mut out = w.out;
    if !extra.is_empty() {
        out.extend(extra);
        out.sort_by_cached_key(Change::key);
    }
    Ok(out)
}

enum Backend<'a> {
    Plain(&'a mut dyn Write),
    Gzip(ParGz<'a>),
    Zstd(zstd::stream::write::Encoder<'static, &'a mut dyn Write>),
}

/// The tar stream: cut into blocks, each hashed and handed on to be
/// compressed and written.
struct TarOut<'a> {
    block: Vec<u8>,
    hasher: Sha256,
    size: u64,
    backend: Backend<'a>,
    hdr: Vec<u8>,
}

impl TarOut<'_> {
    fn submit(&mut self, last: bool) -> io::Result<()> {
        self.hasher.update(&self.block);
        self.size += self.block.len() as u64;
        match &mut self.backend {
            Backend::Plain(w) => {
                w.write_all(&self.block)?;
                self.block.clear();
            }
            Backend::Zstd(z) => {
                z.write_all(&self.block)?;
                self.block.clear();
            }
            Backend::Gzip(gz) => {
                let next = if last { Vec::new() } else { gz.buffer() };
                let full = std::mem::replace(&mut self.block, next);
                gz.block(full, last)?;
            }
        }
        Ok(())
    }

    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.block.len() == BLOCK {
                self.submit(false)?;
            }
            let n = data.len().min(BLOCK - self.block.len());
            self.block.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        Ok(())
    }

    /// Exactly `len` bytes of `f`, then padding.
    fn content(&mut self, f: &mut File, len: u64, src: &Path) -> Result<()> {
        let mut left = len;
        while left > 0 {
            if self.block.len() == BLOCK {
                self.submit(false).map_err(LayerError::Write)?;
            }
            let start = self.block.len();
            let n = ((BLOCK - start) as u64).min(left) as usize;
            self.block.resize(start + n, 0);
            let got = read_full(f, &mut self.block[start..]).map_err(io_at(src))?;
            self.block.truncate(start + got);
            if got < n {
                return Err(LayerError::Io {
                    path: src.to_path_buf(),
                    source: io::Error::other("file shrank while it was read"),
                });
            }
            left -= n as u64;
        }
        let rem = (len % 512) as usize;
        if rem != 0 {
            self.write(&[0u8; 512][..512 - rem])
                .map_err(LayerError::Write)?;
        }
        Ok(())
    }

    fn header(&mut self, h: &EntryHeader<'_>) -> Result<()> {
        let mut buf = std::mem::take(&mut self.hdr);
        buf.clear();
        tarfmt::write_header(&mut buf, h);
        let r = self.write(&buf).map_err(LayerError::Write);
        self.hdr = buf;
        r
    }

    fn finish(mut self) -> Result<(Digest, u64)> {
        let mut t = Vec::new();
        tarfmt::trailer(&mut t);
        self.write(&t).map_err(LayerError::Write)?;
        self.submit(true).map_err(LayerError::Write)?;
        match self.backend {
            Backend::Plain(w) => w.flush().map_err(LayerError::Write)?,
            Backend::Gzip(gz) => gz.finish().map_err(LayerError::Write)?,
            Backend::Zstd(z) => {
                z.finish()
                    .map_err(LayerError::Write)?
                    .flush()
                    .map_err(LayerError::Write)?;
            }
        }
        Ok((from_hasher(self.hasher), self.size))
    }
}

fn whiteout_header(path: &[u8]) -> EntryHeader<'_> {
    EntryHeader {
        path,
        kind: Kind::Regular,
        mode: 0,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: 0,
        link: b"",
        devmajor: 0,
        devminor: 0,
        xattrs: &[],
    }
}

fn emit(changes: Vec<Change>, tar: &mut TarOut<'_>) -> Result<()> {
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    for c in changes {
        match c {
            Change::Whiteout(p) => {
                let (parent, name) = split_parent(&p);
                let wh = join(parent, &[WHITEOUT_PREFIX, name].concat());
                tar.header(&whiteout_header(&wh))?;
            }
            Change::Opaque(p) => {
                let wh = join(&p, WHITEOUT_OPAQUE);
                tar.header(&whiteout_header(&wh))?;
            }
            Change::Entry(p, n) => {
                let xattrs = n.layer_xattrs();
                let mut h = EntryHeader {
                    path: &p,
                    kind: Kind::Regular,
                    mode: n.mode & 0o7777,
                    uid: u64::from(n.uid),
                    gid: u64::from(n.gid),
                    size: 0,
                    mtime: n.mtime,
                    link: b"",
                    devmajor: 0,
                    devminor: 0,
                    xattrs: &xattrs,
                };
                let first;
                if !n.is_dir() && n.nlink > 1 {
                    match links.get(&(n.dev, n.ino)) {
                        Some(f) => {
                            first = f.clone();
                            h.kind = Kind::HardLink;
                            h.link = &first;
                            h.xattrs = &[];
                            tar.header(&h)?;
                            continue;
                        }
                        None => {
                            links.insert((n.dev, n.ino), p.clone());
                        }
                    }
                }
                match n.fmt() {
                    libc::S_IFREG => {
                        let mut f = File::open(&n.src).map_err(io_at(&n.src))?;
                        h.size = n.size;
                        tar.header(&h)?;
                        tar.content(&mut f, n.size, &n.src)?;
                    }
                    libc::S_IFDIR => {
                        h.kind = Kind::Dir;
                        tar.header(&h)?;
                    }
                    libc::S_IFLNK => {
                        h.kind = Kind::Symlink;
                        h.link = &n.link;
                        tar.header(&h)?;
                    }
                    libc::S_IFCHR | libc::S_IFBLK => {
                        h.kind = if n.fmt() == libc::S_IFCHR {
                            Kind::Char
                        } else {
                            Kind::Block
                        };
                        h.devmajor = sys::major(n.rdev);
                        h.devminor = sys::minor(n.rdev);
                        tar.header(&h)?;
                    }
                    libc::S_IFIFO => {
                        h.kind = Kind::Fifo;
                        tar.header(&h)?;
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

pub(super) fn create(
    changes: &Changes,
    out: &mut dyn Write,
    opts: &CreateOptions,
) -> Result<Created> {
    let list = match changes {
        Changes::OverlayUpper(upper) => overlay_upper(upper)?,
        Changes::Diff { lower, upper } => diff(lower.as_deref(), upper)?,
    };
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut hw = HashingWriter::new(out);
    let backend = match opts.compression {
        Compression::None => Backend::Plain(&mut hw),
        Compression::Gzip => {
            let level = opts.level.unwrap_or(6).clamp(0, 9) as u32;
            Backend::Gzip(ParGz::new(&mut hw, level, threads).map_err(LayerError::Write)?)
        }
        Compression::Zstd => {
            let level = opts.level.unwrap_or(3);
            let mut z = zstd::stream::write::Encoder::new(&mut hw as &mut dyn Write, level)
                .map_err(LayerError::Write)?;
            // Always the multithreaded mode (even with one worker): its
            // output does not depend on the number of workers.
            z.multithread(threads as u32).map_err(LayerError::Write)?;
            z.include_checksum(true).map_err(LayerError::Write)?;
            Backend::Zstd(z)
        }
    };
    let mut tar = TarOut {
        block: Vec::with_capacity(BLOCK),
        hasher: Sha256::new(),
        size: 0,
        backend,
        hdr: Vec::new(),
    };
    emit(list, &mut tar)?;
    let (diff_id, _) = tar.finish()?;
    let (_, digest, size) = hw.finish();
    Ok(Created {
        diff_id,
        digest,
        size,
        media_type: opts.compression.media_type().to_string(),
    })
}

pub(super) fn tar_tree(src: &Path, name: &[u8], out: &mut dyn Write) -> Result<u64> {
    let Some(top) = read_node(src.to_path_buf())? else {
        return Err(LayerError::Io {
            path: src.to_path_buf(),
            source: io::Error::other("a socket cannot be archived"),
        });
    };
    let mut w = DiffWalk {
        out: Vec::new(),
        groups: HashMap::new(),
    };
    if name.is_empty() {
        if !top.is_dir() {
            return Err(LayerError::Io {
                path: src.to_path_buf(),
                source: io::Error::from_raw_os_error(libc::ENOTDIR),
            });
        }
        for n in sorted_names(src)? {
            if let Some(node) = read_node(src.join(OsStr::from_bytes(&n)))? {
                w.added(n, node)?;
            }
        }
    } else {
        w.added(name.to_vec(), top)?;
    }
    let mut tar = TarOut {
        block: Vec::with_capacity(BLOCK),
        hasher: Sha256::new(),
        size: 0,
        backend: Backend::Plain(out),
        hdr: Vec::new(),
    };
    emit(w.out, &mut tar)?;
    let (_, size) = tar.finish()?;
    Ok(size)
}
