//! Unpacking a layer into a directory.
//!
//! The stream is read once, on the calling thread: hashed as read (the
//! layer digest), decompressed, hashed again (the diff id), and handed in
//! chunks to a worker thread that parses the tar and writes the tree. The
//! two halves overlap, which is most of what makes this faster than
//! `gzip -d | tar -x` on a two-core machine.
//!
//! Every path of the layer is resolved inside `dest` by openat2 with
//! RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, and every file is created by a
//! single name relative to the directory fd so resolved: no name, `..`
//! component, absolute or relative symlink (or chain of them) can make a
//! write land outside `dest`. A symlink may point anywhere (it is only
//! followed inside the container's root), but an entry written *through* a
//! symlink that leads out of `dest` (`etc -> /etc` then `etc/passwd`) is
//! refused, as GNU tar refuses it: layer tools never write through
//! symlinks, so such an entry is an attack, not an image.

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use sha2::{Digest as _, Sha256};

use super::sys::{self, cstring};
use super::tarfmt::{Whiteout, clean_path, join, parse_whiteout, split_parent};
use super::tarread::{Header, TarReader};
use super::{
    Applied, ApplyOptions, Compression, ExtractOptions, LayerError, Result, WhiteoutMode, read_full,
};
use crate::digest::from_hasher;

/// Bytes of decompressed tar per chunk handed to the unpacking thread.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the two threads.
const IN_FLIGHT: usize = 8;
/// Directory fds kept open for the entries that follow.
const DIR_CACHE: usize = 512;

const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";
const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";

/// Reads the layer as given, hashing and counting it, and remembering
/// whether an error came from it (rather than from the decompressor).
struct Input<'a> {
    inner: &'a mut dyn Read,
    hasher: Sha256,
    count: u64,
    failed: Option<io::ErrorKind>,
}

impl Read for Input<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    self.hasher.update(&buf[..n]);
                    self.count += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.failed = Some(e.kind());
                    return Err(e);
                }
            }
        }
    }
}

/// The unpacking thread's end of the pipe.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    recycle: Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    fn next_chunk(&mut self) -> bool {
        let old = std::mem::take(&mut self.cur);
        if old.capacity() > 0 {
            let _ = self.recycle.send(old);
        }
        self.pos = 0;
        match self.rx.recv() {
            Ok(v) => {
                self.cur = v;
                true
            }
            Err(_) => false,
        }
    }

    /// Reads to the end of the stream; the number of bytes that were left.
    fn drain(&mut self) -> u64 {
        let mut n = (self.cur.len() - self.pos) as u64;
        while self.next_chunk() {
            n += self.cur.len() as u64;
        }
        self.pos = self.cur.len();
        n
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = buf.len().min(avail.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChannelReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.cur.len() {
            if !self.next_chunk() {
                return Ok(&[]);
            }
        }
        Ok(&self.cur[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
    }
}

/// How entries are written: as a layer, or as files copied into a tree
/// (`docker cp`).
#[derive(Debug, Clone, Copy)]
struct Mode {
    whiteouts: WhiteoutMode,
    /// `.wh.` names are ordinary files, an existing directory keeps its
    /// xattrs, and an entry for the root itself is skipped.
    plain: bool,
    no_overwrite_dir_non_dir: bool,
    chown: Option<(u32, u32)>,
}

pub(super) fn apply(reader: &mut dyn Read, dest: &Path, opts: &ApplyOptions) -> Result<Applied> {
    run(
        reader,
        dest,
        Mode {
            whiteouts: opts.whiteouts,
            plain: false,
            no_overwrite_dir_non_dir: false,
            chown: None,
        },
    )
}

pub(super) fn extract(reader: &mut dyn Read, dest: &Path, opts: &ExtractOptions) -> Result<u64> {
    let mode = Mode {
        whiteouts: WhiteoutMode::Delete,
        plain: true,
        no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
        chown: opts.chown,
    };
    run(reader, dest, mode).map(|a| a.size)
}

fn run(reader: &mut dyn Read, dest: &Path, mode: Mode) -> Result<Applied> {
    let io_err = |source| LayerError::Io {
        path: dest.to_path_buf(),
        source,
    };
    let root = File::open(dest).map_err(io_err)?;
    if !root.metadata().map_err(io_err)?.is_dir() {
        return Err(io_err(io::Error::from_raw_os_error(libc::ENOTDIR)));
    }
    let root = OwnedFd::from(root);

    let mut input = Input {
        inner: reader,
        hasher: Sha256::new(),
        count: 0,
        failed: None,
    };
    let mut head = [0u8; 4];
    let n = read_full(&mut input, &mut head).map_err(LayerError::Read)?;
    let compression = Compression::detect(&head[..n]);
    let head = Cursor::new(head[..n].to_vec());

    let (tx, rx) = sync_channel::<Vec<u8>>(IN_FLIGHT);
    let (recycle_tx, recycle_rx) = channel::<Vec<u8>>();
    let (produced, unpacked) = std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("layer-unpack".into())
            .spawn_scoped(s, move || {
                let rd = ChannelReader {
                    rx,
                    recycle: recycle_tx,
                    cur: Vec::new(),
                    pos: 0,
                };
                unpack(root, mode, rd)
            });
        let worker = match worker {
            Ok(w) => w,
            Err(e) => {
                return Err(LayerError::Io {
                    path: dest.to_path_buf(),
                    source: e,
                });
            }
        };
        let produced = {
            let src = head.chain(&mut input);
            let mut decoder: Box<dyn Read> = match compression {
                Compression::None => Box::new(src),
                Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(
                    BufReader::with_capacity(128 * 1024, src),
                )),
                Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(
                    BufReader::with_capacity(128 * 1024, src),
                ) {
                    Ok(d) => Box::new(d),
                    Err(e) => {
                        drop(tx);
                        let _ = worker.join();
                        return Ok((Err(e), Ok(())));
                    }
                },
            };
            // An uncompressed layer's diff id is its digest: hash it once.
            produce(
                &mut *decoder,
                tx,
                recycle_rx,
                compression != Compression::None,
            )
        };
        let unpacked = match worker.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        };
        Ok((produced, unpacked))
    })?;

    let (diff_id, size) = match produced {
        Ok(v) => v,
        Err(e) if input.failed.is_some() => return Err(LayerError::Read(e)),
        Err(e) if compression == Compression::None => return Err(LayerError::Tar(e)),
        Err(e) => {
            return Err(LayerError::Decompress {
                compression,
                source: e,
            });
        }
    };
    unpacked?;
    let digest = from_hasher(input.hasher);
    Ok(Applied {
        diff_id: diff_id.unwrap_or_else(|| digest.clone()),
        digest,
        compression,
        compressed_size: input.count,
        size,
    })
}

/// Decompresses `decoder` to its end, hashing the tar (if `hash`) and
/// sending it on. Stops early (without error) if the unpacking thread has
/// gone.
fn produce(
    decoder: &mut dyn Read,
    tx: SyncSender<Vec<u8>>,
    recycle: Receiver<Vec<u8>>,
    hash: bool,
) -> io::Result<(Option<crate::digest::Digest>, u64)> {
    let mut hasher = hash.then(Sha256::new);
    let mut size = 0u64;
    loop {
        let mut buf = recycle.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let n = read_full(decoder, &mut buf)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        if let Some(h) = hasher.as_mut() {
            h.update(&buf);
        }
        size += n as u64;
        if tx.send(buf).is_err() {
            break;
        }
    }
    Ok((hasher.map(from_hasher), size))
}

fn unpack(root: OwnedFd, mode: Mode, rd: ChannelReader) -> Result<()> {
    let mut ap = Applier::new(root, mode);
    let mut tr = TarReader::new(rd);
    while let Some(h) = tr.next().map_err(LayerError::Tar)? {
        ap.entry(&h, &mut tr)?;
    }
    // Padding after the end marker is part of the diff id: read it all.
    tr.into_inner().drain();
    ap.finish()
}

/// Metadata of one entry as the tar gives it.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: (i64, u32),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Applier {
    root: Rc<OwnedFd>,
    mode: WhiteoutMode,
    how: Mode,
    /// Resolved directories by cleaned path (as written in the layer).
    cache: HashMap<Vec<u8>, Rc<OwnedFd>>,
    /// Paths this layer created: whiteouts only apply to lower layers.
    created: HashSet<Vec<u8>>,
    /// Directory times, set after everything else.
    dir_times: Vec<(Vec<u8>, (i64, u32))>,
}

fn entry_err(entry: &[u8], reason: impl std::fmt::Display) -> LayerError {
    LayerError::Entry {
        entry: String::from_utf8_lossy(entry).into_owned(),
        reason: reason.to_string(),
    }
}

fn escapes(entry: &[u8], path: &[u8]) -> LayerError {
    entry_err(
        entry,
        format!(
            "{:?} goes through a symlink leading out of the root",
            String::from_utf8_lossy(path)
        ),
    )
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// Parses a PAX time ("1700000000", "1700000000.5", "-1.25").
pub(super) fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sec: i64 = whole.parse().ok()?;
    let mut nsec = 0u32;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nsec += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
    }
    if !neg {
        Some((sec, nsec))
    } else if nsec == 0 {
        Some((-sec, 0))
    } else {
        Some((-sec - 1, 1_000_000_000 - nsec))
    }
}

impl Applier {
    fn new(root: OwnedFd, how: Mode) -> Applier {
        Applier {
            root: Rc::new(root),
            mode: how.whiteouts,
            how,
            cache: HashMap::new(),
            created: HashSet::new(),
            dir_times: Vec::new(),
        }
    }

    fn entry(&mut self, h: &Header, tr: &mut TarReader<ChannelReader>) -> Result<()> {
        let raw = &h.name[..];
        if h.flag == b'V' {
            return Ok(());
        }
        let path = clean_path(raw).map_err(|r| entry_err(raw, r))?;
        let meta = self.meta(h)?;

        let is_dir = h.flag == b'5' || (h.flag == b'0' && raw.ends_with(b"/"));
        if path.is_empty() {
            if self.how.plain {
                // `docker cp` writes into the directory; it does not
                // replace its metadata (nor does dockerd).
                return Ok(());
            }
            if !is_dir {
                return Err(entry_err(raw, "the root can only be a directory"));
            }
            let root = self.root.clone();
            self.dir_meta(&root, raw, &meta, true)?;
            self.dir_times.push((Vec::new(), meta.mtime));
            return Ok(());
        }
        let (parent, base) = split_parent(&path);
        match parse_whiteout(base) {
            _ if self.how.plain => {}
            Whiteout::None => {}
            Whiteout::Delete(name) => return self.whiteout(parent, name, raw),
            Whiteout::Opaque => return self.opaque(parent, raw),
            Whiteout::Meta => {
                tracing::debug!(entry = %String::from_utf8_lossy(raw), "skipping whiteout metadata entry");
                return Ok(());
            }
            Whiteout::Invalid => return Err(entry_err(raw, "invalid whiteout name")),
        }

        let pfd = self.dir(parent, true, raw)?.expect("created");
        let pfd = pfd.as_fd();
        let name = cstring(base).map_err(|e| entry_err(raw, e))?;
        if self.how.no_overwrite_dir_non_dir
            && let Ok(st) = sys::lstatat(pfd, &name)
        {
            if self::is_dir(&st) && !is_dir {
                return Err(entry_err(
                    raw,
                    "cannot overwrite a directory with a non-directory",
                ));
            }
            if !self::is_dir(&st) && is_dir {
                return Err(entry_err(
                    raw,
                    "cannot overwrite a non-directory with a directory",
                ));
            }
        }

        if is_dir {
            self.directory(pfd, &name, &path, raw, &meta)?;
        } else {
            match h.flag {
                b'0' | b'7' => self.file(pfd, &name, tr, raw, &meta)?,
                b'2' => {
                    if h.link.is_empty() {
                        return Err(entry_err(raw, "symlink without a target"));
                    }
                    let target = cstring(&h.link).map_err(|e| entry_err(raw, e))?;
                    self.create(pfd, &name, raw, |fd| sys::symlinkat(&target, fd, &name))?;
                    self.node_meta(pfd, &name, raw, &meta, false)?;
                }
                b'1' => self.hardlink(pfd, &name, &path, &h.link, raw)?,
                b'3' | b'4' | b'6' => {
                    let (kind, dev) = match h.flag {
                        b'3' => (libc::S_IFCHR, sys::makedev(h.devmajor, h.devminor)),
                        b'4' => (libc::S_IFBLK, sys::makedev(h.devmajor, h.devminor)),
                        _ => (libc::S_IFIFO, 0),
                    };
                    let m = kind | (meta.mode & 0o777);
                    self.create(pfd, &name, raw, |fd| sys::mknodat(fd, &name, m, dev))?;
                    self.node_meta(pfd, &name, raw, &meta, true)?;
                }
                b'S' => return Err(entry_err(raw, "sparse files are not supported in layers")),
                other => {
                    return Err(entry_err(
                        raw,
                        format!("unsupported entry type {:?}", other as char),
                    ));
                }
            }
        }
        self.created.insert(path);
        Ok(())
    }

    fn meta(&mut self, h: &Header) -> Result<Meta> {
        let raw = &h.name[..];
        let id = |v: u64, what: &str| {
            u32::try_from(v).map_err(|_| entry_err(raw, format!("{what} {v} out of range")))
        };
        let mut xattrs = Vec::with_capacity(h.xattrs.len());
        for (name, value) in &h.xattrs {
            if name.starts_with(OVERLAY_XATTR_PREFIX) {
                tracing::warn!(
                    entry = %String::from_utf8_lossy(raw),
                    xattr = %String::from_utf8_lossy(name),
                    "not applying an overlayfs xattr from a layer"
                );
                continue;
            }
            xattrs.push((name.clone(), value.clone()));
        }
        let (uid, gid) = match self.how.chown {
            Some(ids) => ids,
            None => (id(h.uid, "uid")?, id(h.gid, "gid")?),
        };
        Ok(Meta {
            uid,
            gid,
            mode: h.mode & 0o7777,
            mtime: h.mtime,
            xattrs,
        })
    }

    /// The directory at `path` (cleaned, relative to the root), resolved in
    /// the root; with `create`, missing components are made (0755, like
    /// `mkdir -p`). `None` if it does not exist (or is not a directory) and
    /// `create` is false.
    fn dir(&mut self, path: &[u8], create: bool, entry: &[u8]) -> Result<Option<Rc<OwnedFd>>> {
        if path.is_empty() {
            return Ok(Some(self.root.clone()));
        }
        if let Some(fd) = self.cache.get(path) {
            return Ok(Some(fd.clone()));
        }
        let fd = match self.resolve(path) {
            Ok(fd) => fd,
            Err(e) if errno(&e) == libc::ENOENT && create => self.make_dirs(path, entry)?,
            Err(e) if matches!(errno(&e), libc::ENOENT | libc::ENOTDIR) => return Ok(None),
            Err(e) if errno(&e) == libc::EXDEV => return Err(escapes(entry, path)),
            Err(e) => {
                return Err(entry_err(
                    entry,
                    format!("resolving {:?}: {e}", String::from_utf8_lossy(path)),
                ));
            }
        };
        let fd = Rc::new(fd);
        self.remember(path, &fd);
        Ok(Some(fd))
    }

    fn remember(&mut self, path: &[u8], fd: &Rc<OwnedFd>) {
        if self.cache.len() >= DIR_CACHE {
            self.cache.clear();
        }
        self.cache.insert(path.to_vec(), fd.clone());
    }

    fn resolve(&self, path: &[u8]) -> io::Result<OwnedFd> {
        let c = cstring(path)?;
        sys::openat2(
            self.root.as_fd(),
            &c,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
        )
    }

    fn make_dirs(&mut self, path: &[u8], entry: &[u8]) -> Result<OwnedFd> {
        let mut cur: Option<OwnedFd> = None;
        let mut end = 0;
        for comp in path.split(|&b| b == b'/') {
            end += comp.len();
            let prefix = &path[..end];
            end += 1;
            let shown = || String::from_utf8_lossy(prefix).into_owned();
            match self.resolve(prefix) {
                Ok(fd) => {
                    cur = Some(fd);
                    continue;
                }
                Err(e) if errno(&e) == libc::ENOENT => {}
                Err(e) if errno(&e) == libc::ENOTDIR => {
                    return Err(entry_err(
                        entry,
                        format!("{:?} is not a directory", shown()),
                    ));
                }
                Err(e) if errno(&e) == libc::EXDEV => return Err(escapes(entry, prefix)),
                Err(e) => return Err(entry_err(entry, format!("resolving {:?}: {e}", shown()))),
            }
            let parent = cur.as_ref().map_or(self.root.as_fd(), |f| f.as_fd());
            let name = cstring(comp).map_err(|e| entry_err(entry, e))?;
            match sys::mkdirat(parent, &name, 0o755) {
                Ok(()) => {}
                Err(e) if errno(&e) == libc::EEXIST => {
                    // It exists, yet does not resolve: a dangling symlink.
                    return Err(entry_err(
                        entry,
                        format!("{:?} is a symlink to nothing inside the root", shown()),
                    ));
                }
                Err(e) => return Err(entry_err(entry, format!("mkdir {:?}: {e}", shown()))),
            }
            self.created.insert(prefix.to_vec());
            let fd = sys::openat(
                parent,
                &name,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .map_err(|e| entry_err(entry, format!("opening {:?}: {e}", shown())))?;
            cur = Some(fd);
        }
        Ok(cur.expect("a non-empty path has a component"))
    }

    /// Removes whatever is at `name` in `dir` so something else can be
    /// created there; a directory is kept (and `true` returned) if
    /// `keep_dir`.
    fn make_room(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        keep_dir: bool,
        entry: &[u8],
    ) -> Result<bool> {
        let st = match sys::lstatat(dir, name) {
            Ok(st) => st,
            Err(e) if errno(&e) == libc::ENOENT => return Ok(false),
            Err(e) => return Err(entry_err(entry, e)),
        };
        if is_dir(&st) {
            if keep_dir {
                return Ok(true);
            }
            remove_all(dir, name).map_err(|e| entry_err(entry, format!("removing: {e}")))?;
            self.cache.clear();
        } else {
            sys::unlinkat(dir, name, false)
                .map_err(|e| entry_err(entry, format!("removing: {e}")))?;
            if is_symlink(&st) {
                self.cache.clear();
            }
        }
        Ok(false)
    }

    /// Runs `make`; if the name is taken, replaces what is there and runs
    /// it again (a later entry replaces an earlier one).
    fn create(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        entry: &[u8],
        mut make: impl FnMut(BorrowedFd<'_>) -> io::Result<()>,
    ) -> Result<()> {
        match make(dir) {
            Ok(()) => return Ok(()),
            Err(e) if errno(&e) == libc::EEXIST => {}
            Err(e) => return Err(entry_err(entry, e)),
        }
        self.make_room(dir, name, false, entry)?;
        make(dir).map_err(|e| entry_err(entry, e))
    }

    fn file(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        tr: &mut TarReader<ChannelReader>,
        raw: &[u8],
        meta: &Meta,
    ) -> Result<()> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let fd = match sys::openat(dir, name, flags, 0o600) {
            Ok(fd) => fd,
            Err(err) if errno(&err) == libc::EEXIST => {
                self.make_room(dir, name, false, raw)?;
                sys::openat(dir, name, flags, 0o600).map_err(|err| entry_err(raw, err))?
            }
            Err(err) => return Err(entry_err(raw, err)),
        };
        let mut f = File::from(fd);
        let want = tr.remaining();
        loop {
            let left = tr.remaining();
            let data = tr.data().map_err(|err| {
                entry_err(
                    raw,
                    format!(
                        "truncated: {} of {want} bytes of content: {err}",
                        want - left
                    ),
                )
            })?;
            if data.is_empty() {
                break;
            }
            f.write_all(data)
                .map_err(|err| entry_err(raw, format!("writing: {err}")))?;
            let n = data.len();
            tr.consume(n);
        }
        let fd = f.as_fd();
        let ctx = |what: &str, err: io::Error| entry_err(raw, format!("{what}: {err}"));
        sys::fchown(fd, meta.uid, meta.gid).map_err(|e| ctx("chown", e))?;
        sys::fchmod(fd, meta.mode).map_err(|e| ctx("chmod", e))?;
        for (k, v) in &meta.xattrs {
            set_xattr(|n| sys::fsetxattr(fd, n, v), k, raw)?;
        }
        sys::futimens(fd, meta.mtime.0, meta.mtime.1).map_err(|e| ctx("setting times", e))?;
        Ok(())
    }

    fn directory(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        path: &[u8],
        raw: &[u8],
        meta: &Meta,
    ) -> Result<()> {
        let merged = match sys::mkdirat(dir, name, 0o700) {
            Ok(()) => false,
            Err(e) if errno(&e) == libc::EEXIST => {
                if self.make_room(dir, name, true, raw)? {
                    true
                } else {
                    sys::mkdirat(dir, name, 0o700).map_err(|e| entry_err(raw, e))?;
                    false
                }
            }
            Err(e) => return Err(entry_err(raw, e)),
        };
        let fd = sys::openat(
            dir,
            name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(|e| entry_err(raw, e))?;
        let fd = Rc::new(fd);
        self.dir_meta(&fd, raw, meta, merged)?;
        self.remember(path, &fd);
        self.dir_times.push((path.to_vec(), meta.mtime));
        Ok(())
    }

    /// Owner, mode and xattrs of a directory; for one that existed, xattrs
    /// not in the entry are removed (the entry describes it whole), except
    /// overlayfs' own.
    fn dir_meta(&mut self, fd: &OwnedFd, raw: &[u8], meta: &Meta, existed: bool) -> Result<()> {
        let fd = fd.as_fd();
        let ctx = |what: &str, err: io::Error| entry_err(raw, format!("{what}: {err}"));
        sys::fchown(fd, meta.uid, meta.gid).map_err(|e| ctx("chown", e))?;
        sys::fchmod(fd, meta.mode).map_err(|e| ctx("chmod", e))?;
        if existed && !self.how.plain {
            for k in sys::flistxattr(fd).map_err(|e| ctx("listing xattrs", e))? {
                let keep = k.starts_with(OVERLAY_XATTR_PREFIX)
                    || k == b"security.selinux"
                    || meta.xattrs.iter().any(|(n, _)| *n == k);
                if !keep {
                    let c = cstring(&k).map_err(|e| ctx("xattr", e))?;
                    match sys::fremovexattr(fd, &c) {
                        Ok(()) => {}
                        Err(e) if errno(&e) == libc::ENODATA => {}
                        Err(e) => return Err(ctx("removing xattr", e)),
                    }
                }
            }
        }
        for (k, v) in &meta.xattrs {
            set_xattr(|n| sys::fsetxattr(fd, n, v), k, raw)?;
        }
        Ok(())
    }

    /// Metadata of a symlink, device or fifo, set by name without
    /// following it.
    fn node_meta(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        raw: &[u8],
        meta: &Meta,
        chmod: bool,
    ) -> Result<()> {
        let ctx = |what: &str, err: io::Error| entry_err(raw, format!("{what}: {err}"));
        sys::lchownat(dir, name, meta.uid, meta.gid).map_err(|e| ctx("chown", e))?;
        if chmod {
            let fd = sys::openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)
                .map_err(|e| ctx("open", e))?;
            let st = sys::fstat(fd.as_fd()).map_err(|e| ctx("stat", e))?;
            if is_symlink(&st) || is_dir(&st) {
                return Err(ctx("chmod", io::Error::other("replaced while applying")));
            }
            sys::chmod_opath(fd.as_fd(), meta.mode).map_err(|e| ctx("chmod", e))?;
        }
        if !meta.xattrs.is_empty() {
            let mut p =
                format!("/proc/self/fd/{}/", std::os::fd::AsRawFd::as_raw_fd(&dir)).into_bytes();
            p.extend_from_slice(name.to_bytes());
            let p = cstring(&p).map_err(|e| ctx("xattr", e))?;
            for (k, v) in &meta.xattrs {
                set_xattr(|n| sys::lsetxattr(&p, n, v), k, raw)?;
            }
        }
        sys::lutimesat(dir, name, meta.mtime.0, meta.mtime.1)
            .map_err(|e| ctx("setting times", e))?;
        Ok(())
    }

    fn hardlink(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        path: &[u8],
        link: &[u8],
        raw: &[u8],
    ) -> Result<()> {
        let target = clean_path(link).map_err(|r| {
            entry_err(
                raw,
                format!(
                    "hardlink target {:?} outside the layer: {r}",
                    String::from_utf8_lossy(link)
                ),
            )
        })?;
        if target.is_empty() || target == path {
            return Err(entry_err(raw, "hardlink to itself or to the root"));
        }
        let (tparent, tbase) = split_parent(&target);
        let tdir = self.dir(tparent, false, raw)?.ok_or_else(|| {
            entry_err(
                raw,
                format!(
                    "hardlink target {:?} does not exist",
                    String::from_utf8_lossy(&target)
                ),
            )
        })?;
        let tname = cstring(tbase).map_err(|e| entry_err(raw, e))?;
        let tst = sys::lstatat(tdir.as_fd(), &tname).map_err(|err| {
            entry_err(
                raw,
                format!(
                    "hardlink target {:?}: {err}",
                    String::from_utf8_lossy(&target)
                ),
            )
        })?;
        if is_dir(&tst) {
            return Err(entry_err(raw, "hardlink to a directory"));
        }
        match sys::linkat(tdir.as_fd(), &tname, dir, name) {
            Ok(()) => Ok(()),
            Err(err) if errno(&err) == libc::EEXIST => {
                if let Ok(st) = sys::lstatat(dir, name)
                    && st.st_dev == tst.st_dev
                    && st.st_ino == tst.st_ino
                {
                    return Ok(());
                }
                self.make_room(dir, name, false, raw)?;
                sys::linkat(tdir.as_fd(), &tname, dir, name).map_err(|err| entry_err(raw, err))
            }
            Err(err) => Err(entry_err(raw, err)),
        }
    }

    fn whiteout(&mut self, parent: &[u8], name: &[u8], raw: &[u8]) -> Result<()> {
        let target = join(parent, name);
        if self.created.contains(&target) {
            // Whiteouts only hide what lower layers hold.
            tracing::debug!(entry = %String::from_utf8_lossy(raw), "whiteout of an entry of the same layer ignored");
            return Ok(());
        }
        let cname = cstring(name).map_err(|e| entry_err(raw, e))?;
        match self.mode {
            WhiteoutMode::Overlay => {
                let dir = self.dir(parent, true, raw)?.expect("created");
                self.create(dir.as_fd(), &cname, raw, |fd| {
                    sys::mknodat(fd, &cname, libc::S_IFCHR, 0)
                })?;
                self.created.insert(target);
            }
            WhiteoutMode::Delete => {
                let Some(dir) = self.dir(parent, false, raw)? else {
                    return Ok(());
                };
                self.make_room(dir.as_fd(), &cname, false, raw)?;
            }
        }
        Ok(())
    }

    fn opaque(&mut self, path: &[u8], raw: &[u8]) -> Result<()> {
        match self.mode {
            WhiteoutMode::Overlay => {
                let fd = self.open_dir_rd(path, true, raw)?.expect("created");
                set_xattr_raw(|n| sys::fsetxattr(fd.as_fd(), n, b"y"), OPAQUE_XATTR)
                    .map_err(|e| entry_err(raw, format!("marking the directory opaque: {e}")))?;
            }
            WhiteoutMode::Delete => {
                let Some(fd) = self.open_dir_rd(path, false, raw)? else {
                    return Ok(());
                };
                let removed = self
                    .clear_lower(fd.as_fd(), path)
                    .map_err(|e| entry_err(raw, format!("emptying opaque directory: {e}")))?;
                if removed {
                    self.cache.clear();
                }
            }
        }
        Ok(())
    }

    /// The directory `path` opened for reading (not through a final
    /// symlink).
    fn open_dir_rd(&mut self, path: &[u8], create: bool, raw: &[u8]) -> Result<Option<OwnedFd>> {
        if path.is_empty() {
            let fd = self.root.try_clone().map_err(|e| entry_err(raw, e))?;
            return Ok(Some(fd));
        }
        let (parent, base) = split_parent(path);
        let Some(pfd) = self.dir(parent, create, raw)? else {
            return Ok(None);
        };
        let name = cstring(base).map_err(|e| entry_err(raw, e))?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        match sys::openat(pfd.as_fd(), &name, flags, 0) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if errno(&e) == libc::ENOENT && create => {
                sys::mkdirat(pfd.as_fd(), &name, 0o755).map_err(|e| entry_err(raw, e))?;
                self.created.insert(path.to_vec());
                let fd =
                    sys::openat(pfd.as_fd(), &name, flags, 0).map_err(|e| entry_err(raw, e))?;
                Ok(Some(fd))
            }
            Err(e)
                if !create && matches!(errno(&e), libc::ENOENT | libc::ENOTDIR | libc::ELOOP) =>
            {
                Ok(None)
            }
            Err(e) => Err(entry_err(raw, e)),
        }
    }

    /// Removes what lower layers left in the directory `fd` (at `path`):
    /// everything this layer did not create, descending into directories it
    /// did. Whether anything was removed.
    fn clear_lower(&self, fd: BorrowedFd<'_>, path: &[u8]) -> io::Result<bool> {
        let mut removed = false;
        for n in sys::read_dir_names(fd)? {
            let child = join(path, &n);
            let c = cstring(&n)?;
            if self.created.contains(&child) {
                let st = sys::lstatat(fd, &c)?;
                if is_dir(&st) {
                    let sub = sys::openat(
                        fd,
                        &c,
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        0,
                    )?;
                    removed |= self.clear_lower(sub.as_fd(), &child)?;
                }
            } else {
                remove_all(fd, &c)?;
                removed = true;
            }
        }
        Ok(removed)
    }

    /// Directory times, now that nothing more is written into them.
    fn finish(&mut self) -> Result<()> {
        let times = std::mem::take(&mut self.dir_times);
        for (path, (sec, nsec)) in times {
            let fd = match self.open_dir_rd(&path, false, &path) {
                Ok(Some(fd)) => fd,
                Ok(None) => continue,
                Err(e) => return Err(e),
            };
            sys::futimens(fd.as_fd(), sec, nsec)
                .map_err(|e| entry_err(&path, format!("setting times: {e}")))?;
        }
        Ok(())
    }
}

fn set_xattr_raw(set: impl FnOnce(&CStr) -> io::Result<()>, name: &CStr) -> io::Result<()> {
    set(name)
}

fn set_xattr(set: impl FnOnce(&CStr) -> io::Result<()>, name: &[u8], raw: &[u8]) -> Result<()> {
    let c = cstring(name).map_err(|e| entry_err(raw, e))?;
    match set(&c) {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == libc::EOPNOTSUPP => {
            tracing::warn!(
                entry = %String::from_utf8_lossy(raw),
                xattr = %String::from_utf8_lossy(name),
                "the filesystem does not support this xattr; skipped"
            );
            Ok(())
        }
        Err(e) => Err(entry_err(
            raw,
            format!("setting xattr {:?}: {e}", String::from_utf8_lossy(name)),
        )),
    }
}

/// Removes `name` in `dir` and, if it is a directory, all it holds; never
/// follows a symlink.
pub(super) fn remove_all(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let st = match sys::lstatat(dir, name) {
        Ok(st) => st,
        Err(e) if errno(&e) == libc::ENOENT => return Ok(()),
        Err(e) => return Err(e),
    };
    if is_dir(&st) {
        let sub = sys::openat(
            dir,
            name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
        for n in sys::read_dir_names(sub.as_fd())? {
            remove_all(sub.as_fd(), &cstring(&n)?)?;
        }
        sys::unlinkat(dir, name, true)
    } else {
        sys::unlinkat(dir, name, false)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_pax_time;

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time(b"1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(parse_pax_time(b"1.5"), Some((1, 500_000_000)));
        assert_eq!(parse_pax_time(b"1.123456789123"), Some((1, 123_456_789)));
        assert_eq!(parse_pax_time(b"-1.25"), Some((-2, 750_000_000)));
        assert_eq!(parse_pax_time(b"-3"), Some((-3, 0)));
        assert_eq!(parse_pax_time(b"x"), None);
        assert_eq!(parse_pax_time(b""), None);
        assert_eq!(parse_pax_time(b"1.x"), None);
    }
}
