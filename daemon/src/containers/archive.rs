//! Files in and out of containers: `GET`/`HEAD`/`PUT
//! /containers/{id}/archive` (`docker cp`), `GET /containers/{id}/export`
//! and `GET /containers/{id}/changes` (`docker diff`).
//!
//! A running container is reached through `/proc/<pid>/root`, so its
//! volumes, binds and tmpfs mounts are seen as its process sees them (as
//! dockerd does); the root found there must be the container's own rootfs
//! (same device and inode as its mount), so a pid reused by another
//! process is never taken for it. A container that is not running has
//! its snapshot mounted on a temporary directory while its `op` lock is
//! held (no start can share the upper dir meanwhile), then unmounted.
//!
//! The container's files are untrusted: a symlink may point at `/` or
//! `../../..`, and a running container can swap a directory for a symlink
//! while we walk it. So every job runs on a thread of its own that has
//! unshared its filesystem attributes and chrooted into the container's
//! root: paths are resolved with openat2(RESOLVE_IN_ROOT) from the root's
//! fd, and even the path-based tree walk below can only ever see the
//! container's files. Extraction goes through the store's layer code
//! (`layer::extract`: every entry resolved beneath the destination's fd,
//! `..` and absolute names refused) and tars are written by
//! `layer::tar_tree`, streamed through a bounded channel.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use berth_api::containers::FilesystemChange;
use berth_runtime::rootfs::path::{Root, fd_path};
use berth_store::layer::{self, ExtractOptions, LayerError};
use berth_store::snapshot::Driver;
use bytes::Bytes;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FileStat, Mode};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use super::lifecycle::Paths;
use super::record::Record;
use super::registry::Entry;
use crate::archives::{BodyReader, ChannelWriter};
use crate::error::{ApiError, Result};
use crate::server::Daemon;

pub use berth_api::containers::{PATH_STAT_HEADER as STAT_HEADER, PathStat};

/// Go's `os.FileMode` for a `st_mode`.
pub fn go_mode(st_mode: u32) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let mut m = st_mode & 0o777;
    m |= match st_mode & libc::S_IFMT {
        libc::S_IFDIR => DIR,
        libc::S_IFLNK => SYMLINK,
        libc::S_IFBLK => DEVICE,
        libc::S_IFCHR => DEVICE | CHAR,
        libc::S_IFIFO => PIPE,
        libc::S_IFSOCK => SOCKET,
        _ => 0,
    };
    for (bit, go) in [
        (libc::S_ISUID, SETUID),
        (libc::S_ISGID, SETGID),
        (libc::S_ISVTX, STICKY),
    ] {
        if st_mode & bit != 0 {
            m |= go;
        }
    }
    m
}

/// A time as Go's RFC3339Nano writes it (trailing zeros of the fraction
/// dropped).
fn rfc3339(sec: i64, nsec: i64) -> String {
    let t = if sec >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::new(sec as u64, nsec as u32)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_secs(sec.unsigned_abs())
    };
    let s = humantime::format_rfc3339_nanos(t).to_string();
    match s.split_once('.') {
        Some((whole, frac)) => {
            let frac = frac.trim_end_matches('Z').trim_end_matches('0');
            if frac.is_empty() {
                format!("{whole}Z")
            } else {
                format!("{whole}.{frac}Z")
            }
        }
        None => s,
    }
}

/// The request's path as dockerd reads it: joined to `/` and cleaned
/// lexically (`..` before any symlink is followed), remembering whether
/// it ended in `/.` (the directory's content) or `/` (follow the last
/// component).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// `/`, `/etc`, `/etc/passwd`.
    pub clean: String,
    pub dot: bool,
    pub slash: bool,
}

impl Wanted {
    pub fn parse(p: &str) -> Wanted {
        let dot = p == "." || p.ends_with("/.");
        let slash = p.ends_with('/');
        let mut parts: Vec<&str> = Vec::new();
        for c in p.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                c => parts.push(c),
            }
        }
        Wanted {
            clean: format!("/{}", parts.join("/")),
            dot,
            slash,
        }
    }

    fn is_root(&self) -> bool {
        self.clean == "/"
    }

    /// Whether the last component is followed if it is a symlink.
    fn follows(&self) -> bool {
        self.dot || self.slash || self.is_root()
    }

    /// Go's `filepath.Base` of the path with its trailing `/.` kept: the
    /// stat's name, and the name the tar's entries start with.
    pub fn base(&self) -> &str {
        if self.dot {
            "."
        } else if self.is_root() {
            "/"
        } else {
            self.clean.rsplit('/').next().unwrap_or_default()
        }
    }

    /// (parent, last component) of a path that is not the root.
    fn split(&self) -> (&str, &str) {
        let i = self.clean.rfind('/').unwrap_or(0);
        let parent = if i == 0 { "/" } else { &self.clean[..i] };
        (parent, &self.clean[i + 1..])
    }
}

/// What a job in the container's root gets: the root (openat2
/// RESOLVE_IN_ROOT) and the host's /proc, opened before the chroot, to
/// name what an fd resolved to.
pub struct Ctx {
    root: Root,
    proc: OwnedFd,
}

/// A path located in the container.
struct Target {
    stat: PathStat,
    /// The path to read, in the chroot (its last component not followed).
    src: PathBuf,
    /// The name of the tar's first entry (empty: the content of `/`).
    name: Vec<u8>,
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

impl Ctx {
    /// Where `fd` is, as a path inside the root.
    fn path_of(&self, fd: &OwnedFd) -> io::Result<PathBuf> {
        let p = nix::fcntl::readlinkat(&self.proc, format!("self/fd/{}", fd.as_raw_fd()).as_str())
            .map_err(io::Error::from)?;
        let p = PathBuf::from(p);
        if !p.is_absolute() {
            return Err(io::Error::other(format!(
                "{} is not reachable from the container's root",
                p.display()
            )));
        }
        Ok(p)
    }

    fn stat_of(&self, w: &Wanted, st: &FileStat, link_target: String) -> PathStat {
        PathStat {
            name: w.base().to_string(),
            size: st.st_size,
            mode: go_mode(st.st_mode),
            mtime: rfc3339(st.st_mtime, st.st_mtime_nsec),
            link_target,
        }
    }

    /// Find the path: symlinks in its parents followed inside the root,
    /// the last one only with `/` or `/.` at the end (as dockerd).
    fn locate(&self, w: &Wanted) -> io::Result<Target> {
        if w.follows() {
            let fd = self.root.open_path(Path::new(&w.clean))?;
            let st = nix::sys::stat::fstat(&fd).map_err(io::Error::from)?;
            if (w.dot || w.slash) && st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            let name = match w.base() {
                "/" => Vec::new(),
                b => b.as_bytes().to_vec(),
            };
            return Ok(Target {
                stat: self.stat_of(w, &st, String::new()),
                src: self.path_of(&fd)?,
                name,
            });
        }
        let (parent, base) = w.split();
        let pfd = self.root.open_path(Path::new(parent))?;
        let st = nix::sys::stat::fstatat(&pfd, base, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(io::Error::from)?;
        let mut link_target = String::new();
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            link_target = match self.root.open_path(Path::new(&w.clean)) {
                Ok(fd) => self.path_of(&fd)?.display().to_string(),
                // Dangling: its target as written.
                Err(_) => nix::fcntl::readlinkat(&pfd, base)
                    .map(|t| t.to_string_lossy().into_owned())
                    .map_err(io::Error::from)?,
            };
        }
        Ok(Target {
            stat: self.stat_of(w, &st, link_target),
            src: self.path_of(&pfd)?.join(base),
            name: base.as_bytes().to_vec(),
        })
    }
}

/// The error for a path that could not be found or opened.
fn path_error(e: io::Error, path: &str, container: &str) -> ApiError {
    match errno(&e) {
        libc::ENOENT | libc::ENOTDIR | libc::ELOOP => ApiError::NotFound(format!(
            "Could not find the file {path} in container {container}"
        )),
        _ => ApiError::Internal(format!("{path} in container {container}: {e}")),
    }
}

type Job = Box<dyn FnOnce(Result<&Ctx>) + Send>;

/// Which view of the container a job needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// What its process sees, mounts included (`docker cp`).
    Process,
    /// Its root filesystem alone (`docker export`).
    Rootfs,
}

/// Run `job` in the container's root, on a thread of its own; returns at
/// once. A root that cannot be had is passed to the job as its error.
fn spawn_in_root(d: Arc<Daemon>, e: Arc<Entry>, view: View, job: Job) {
    tokio::spawn(async move {
        let op = e.op.lock().await;
        let rec = e.record();
        let live = rec.state.status.is_live() && rec.state.pid > 0;
        // A running container is left to its lifecycle; a stopped one is
        // kept from starting while its snapshot is mounted here.
        let op = (!live).then_some(op);
        let done = tokio::task::spawn_blocking(move || {
            let paths = Paths::new(&d, &rec.id);
            if live {
                let root = match view {
                    View::Process => process_root(&rec, &paths.rootfs()),
                    View::Rootfs => open_dir(&paths.rootfs()).map_err(|err| {
                        ApiError::Internal(format!("{}: {err}", paths.rootfs().display()))
                    }),
                };
                match root {
                    Ok(fd) => in_chroot(fd, job),
                    Err(err) => job(Err(err)),
                }
                return;
            }
            let mount = match SnapshotMount::new(&d, &rec.id) {
                Ok(m) => m,
                Err(err) => return job(Err(err)),
            };
            match open_dir(&mount.dir) {
                Ok(fd) => in_chroot(fd, job),
                Err(err) => job(Err(ApiError::Internal(format!(
                    "{}: {err}",
                    mount.dir.display()
                )))),
            }
            drop(mount);
        })
        .await;
        if let Err(err) = done {
            tracing::error!(id = e.id, "archive job: {err}");
        }
        drop(op);
    });
}

/// [`spawn_in_root`], waiting for the job's answer.
async fn in_root<T: Send + 'static>(
    d: Arc<Daemon>,
    e: Arc<Entry>,
    view: View,
    job: impl FnOnce(&Ctx) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = oneshot::channel();
    spawn_in_root(
        d,
        e,
        view,
        Box::new(move |ctx| {
            let _ = tx.send(ctx.and_then(job));
        }),
    );
    rx.await
        .map_err(|_| ApiError::Internal("the job in the container's root failed".into()))?
}

fn open_dir(p: &Path) -> io::Result<OwnedFd> {
    nix::fcntl::open(
        p,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// The root of the container's process, checked to be the container's
/// own rootfs (so a reused pid is never mistaken for it).
fn process_root(rec: &Record, rootfs: &Path) -> Result<OwnedFd> {
    let gone = || ApiError::Conflict(format!("Container {} is not running", rec.id));
    let fd = open_dir(Path::new(&format!("/proc/{}/root", rec.state.pid))).map_err(|_| gone())?;
    let st = nix::sys::stat::fstat(&fd).map_err(|_| gone())?;
    let want = std::fs::metadata(rootfs).map_err(|_| gone())?;
    if st.st_dev != want.dev() || st.st_ino != want.ino() {
        return Err(gone());
    }
    Ok(fd)
}

/// Run `job` on a new thread whose root is `root` (its own filesystem
/// attributes, unshared, so no other thread is affected). The thread ends
/// with the job: nothing else ever runs chrooted.
fn in_chroot(root: OwnedFd, job: Job) {
    let proc = match open_dir(Path::new("/proc")) {
        Ok(p) => p,
        Err(err) => return job(Err(ApiError::Internal(format!("/proc: {err}")))),
    };
    let spawned = std::thread::Builder::new()
        .name("berth-archive".into())
        .spawn(move || {
            let entered = (|| -> io::Result<Ctx> {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)?;
                nix::unistd::fchdir(&root)?;
                nix::unistd::chroot(".")?;
                nix::unistd::chdir("/")?;
                Ok(Ctx {
                    root: Root::open(Path::new("/"))?,
                    proc,
                })
            })();
            match entered {
                Ok(ctx) => job(Ok(&ctx)),
                Err(err) => job(Err(ApiError::Internal(format!(
                    "entering the container's root: {err}"
                )))),
            }
        });
    match spawned {
        Ok(t) => {
            if t.join().is_err() {
                tracing::error!("an archive thread panicked");
            }
        }
        Err(err) => tracing::error!("starting an archive thread: {err}"),
    }
}

/// A stopped container's snapshot, mounted on a temporary directory
/// until dropped.
struct SnapshotMount {
    dir: PathBuf,
}

impl SnapshotMount {
    fn new(d: &Daemon, id: &str) -> Result<SnapshotMount> {
        let base = d.config.exec_root.join("archive");
        std::fs::create_dir_all(&base)
            .map_err(|e| ApiError::Internal(format!("creating {}: {e}", base.display())))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", &id[..id.len().min(12)]))
            .tempdir_in(&base)
            .map_err(|e| ApiError::Internal(format!("a directory in {}: {e}", base.display())))?
            .keep();
        if let Err(e) = d.store.mount_container(id, &dir) {
            let _ = std::fs::remove_dir(&dir);
            return Err(ApiError::Store(e));
        }
        Ok(SnapshotMount { dir })
    }
}

impl Drop for SnapshotMount {
    fn drop(&mut self) {
        // Never a recursive removal: if the unmount failed, the
        // directory still holds the container's files.
        if let Err(e) = berth_store::snapshot::unmount(&self.dir) {
            tracing::warn!("{e}");
            return;
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            tracing::warn!("removing {}: {e}", self.dir.display());
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveQuery {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub no_overwrite_dir_non_dir: Option<String>,
    #[serde(default, rename = "copyUIDGID")]
    pub copy_uid_gid: Option<String>,
}

impl ArchiveQuery {
    fn path(&self) -> Result<&str> {
        if self.path.is_empty() {
            return Err(ApiError::InvalidParameter(
                "bad parameter: 'path' cannot be empty".into(),
            ));
        }
        Ok(&self.path)
    }
}

/// A form value as dockerd's `BoolValue` reads it.
fn truthy(v: Option<&str>) -> bool {
    let v = v.unwrap_or_default().trim().to_ascii_lowercase();
    !matches!(v.as_str(), "" | "0" | "no" | "false" | "none")
}

fn stat_header(stat: &PathStat) -> HeaderValue {
    let json = serde_json::to_vec(stat).expect("a stat serializes");
    let b64 = base64::engine::general_purpose::STANDARD.encode(json);
    HeaderValue::from_str(&b64).expect("base64 is a valid header value")
}

fn stream_body(rx: mpsc::Receiver<io::Result<Bytes>>) -> Body {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    });
    Body::from_stream(stream)
}

/// Write `src`'s tree as a tar into `tx`; an error ends the stream with
/// it (the client sees a cut-off tar).
fn send_tar(src: &Path, name: &[u8], tx: mpsc::Sender<io::Result<Bytes>>) {
    let mut w = ChannelWriter::new(tx.clone());
    let r = layer::tar_tree(src, name, &mut w)
        .map_err(|e| io::Error::other(e.to_string()))
        .and_then(|_| io::Write::flush(&mut w));
    if let Err(e) = r {
        tracing::warn!("archive of {}: {e}", src.display());
        let _ = tx.blocking_send(Err(e));
    }
}

/// `GET /containers/{id}/archive?path=`: a tar of the path, its stat in
/// the header. A missing path is a 404 before anything is sent. `HEAD`:
/// the stat header alone.
pub async fn get_archive(
    method: Method,
    State(d): State<Arc<Daemon>>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<ArchiveQuery>,
) -> Result<Response> {
    let path = q.path()?.to_string();
    let e = d.containers.get(&id)?;
    if method == Method::HEAD {
        let stat = in_root(d, e, View::Process, move |ctx| {
            ctx.locate(&Wanted::parse(&path))
                .map(|t| t.stat)
                .map_err(|err| path_error(err, &path, &id))
        })
        .await?;
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .header(STAT_HEADER, stat_header(&stat))
            .header(header::CONTENT_TYPE, "application/x-tar")
            .body(Body::empty())
            .expect("a valid response"));
    }
    let (stat_tx, stat_rx) = oneshot::channel::<Result<PathStat>>();
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    spawn_in_root(
        d,
        e,
        View::Process,
        Box::new(move |ctx| {
            let target = ctx.and_then(|ctx| {
                ctx.locate(&Wanted::parse(&path))
                    .map_err(|err| path_error(err, &path, &id))
            });
            match target {
                Ok(t) => {
                    if stat_tx.send(Ok(t.stat)).is_ok() {
                        send_tar(&t.src, &t.name, tx);
                    }
                }
                Err(err) => {
                    let _ = stat_tx.send(Err(err));
                }
            }
        }),
    );
    let stat = stat_rx
        .await
        .map_err(|_| ApiError::Internal("the archive job failed".into()))??;
    Ok(tar_response(rx, Some(&stat)))
}

/// A 200 streaming the tar `rx` gets.
fn tar_response(rx: mpsc::Receiver<io::Result<Bytes>>, stat: Option<&PathStat>) -> Response {
    let mut r = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-tar");
    if let Some(stat) = stat {
        r = r.header(STAT_HEADER, stat_header(stat));
    }
    r.body(stream_body(rx)).expect("a valid response")
}

/// The mount (volume, bind, tmpfs) `path` is in, if any: the one with
/// the longest destination.
fn mount_of<'a>(rec: &'a Record, path: &str) -> Option<&'a berth_api::containers::MountPoint> {
    rec.mounts
        .iter()
        .filter(|m| {
            let dest = m.destination.trim_end_matches('/');
            path == dest || path.starts_with(&format!("{dest}/"))
        })
        .max_by_key(|m| m.destination.len())
}

/// `PUT /containers/{id}/archive?path=`: the body (a tar, possibly
/// compressed) extracted into the directory `path`.
pub async fn put_archive(
    State(d): State<Arc<Daemon>>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<ArchiveQuery>,
    body: Body,
) -> Result<StatusCode> {
    let found = q
        .path()
        .map(str::to_string)
        .and_then(|path| Ok((path, d.containers.get(&id)?)));
    let (path, e) = match found {
        Ok(found) => found,
        Err(err) => return Err(drain(body, err).await),
    };
    let rec = e.record();
    let w = Wanted::parse(&path);
    // As dockerd: a path inside a writable mount may be written even when
    // the rootfs is read-only; a read-only mount never.
    let refused = match mount_of(&rec, &w.clean) {
        Some(m) if !m.rw => Some("mounted volume is marked read-only"),
        Some(_) => None,
        None if rec.host_config.readonly_rootfs => Some("container rootfs is marked read-only"),
        None => None,
    };
    if let Some(why) = refused {
        return Err(drain(body, ApiError::InvalidParameter(why.into())).await);
    }
    let mut opts = ExtractOptions {
        no_overwrite_dir_non_dir: truthy(q.no_overwrite_dir_non_dir.as_deref()),
        chown: None,
    };
    let copy_ids = truthy(q.copy_uid_gid.as_deref()) && !rec.config.user.is_empty();
    let user = rec.config.user.clone();
    let mut reader = BodyReader::new(body);
    in_root(d, e, View::Process, move |ctx| {
        let fd = ctx
            .root
            .open_path(Path::new(&w.clean))
            .map_err(|err| path_error(err, &path, &id))?;
        let st = nix::sys::stat::fstat(&fd).map_err(|err| path_error(err.into(), &path, &id))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(ApiError::InvalidParameter(
                "extraction point is not a directory".into(),
            ));
        }
        if copy_ids {
            // The container's user, from its own passwd and group files.
            let u = crate::spec::resolve_user(Path::new("/"), &user, &[])
                .map_err(|err| ApiError::InvalidParameter(err.to_string()))?;
            opts.chown = Some((u.uid, u.gid));
        }
        let dest = ctx
            .path_of(&fd)
            .map_err(|err| ApiError::Internal(format!("{path}: {err}")))?;
        layer::extract(&mut reader, &dest, &opts).map_err(|err| match err {
            LayerError::Io { .. } | LayerError::Write(_) => {
                ApiError::Internal(format!("extracting into {path}: {err}"))
            }
            _ => ApiError::InvalidParameter(format!("extracting into {path}: {err}")),
        })?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::OK)
}

/// Read what the client sends before refusing it: answering while it
/// still writes would cost it the answer (a broken pipe instead).
async fn drain(body: Body, err: ApiError) -> ApiError {
    let _ = axum::body::to_bytes(body, 1 << 30).await;
    err
}

/// `GET /containers/{id}/export`: a tar of the container's root
/// filesystem (its mounts left out), streamed.
pub async fn get_export(
    State(d): State<Arc<Daemon>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response> {
    let e = d.containers.get(&id)?;
    let rec = e.record();
    let (ready_tx, ready_rx) = oneshot::channel::<Result<()>>();
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    spawn_in_root(
        d.clone(),
        e,
        View::Rootfs,
        Box::new(move |ctx| match ctx {
            Ok(_) => {
                if ready_tx.send(Ok(())).is_ok() {
                    send_tar(Path::new("/"), b"", tx);
                }
            }
            Err(err) => {
                let _ = ready_tx.send(Err(err));
            }
        }),
    );
    ready_rx
        .await
        .map_err(|_| ApiError::Internal("the export job failed".into()))??;
    d.events.container(&rec, "export");
    Ok(tar_response(rx, None))
}

/// What `docker diff` lists: Kind 0 modified, 1 added, 2 deleted.
const MODIFIED: u8 = 0;
const ADDED: u8 = 1;
const DELETED: u8 = 2;

/// Paths the runtime makes as mount points (dockerd keeps them in an
/// init layer, so `docker diff` never shows them).
const MOUNT_POINTS: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/.dockerenv",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/mtab",
];

/// `GET /containers/{id}/changes`: the container's writable layer against
/// its image, sorted by path.
pub async fn get_changes(
    State(d): State<Arc<Daemon>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Vec<FilesystemChange>>> {
    let e = d.containers.get(&id)?;
    let id = e.id.clone();
    let changes = crate::images::blocking(move || {
        let snaps = &d.store.snapshots;
        let meta = snaps
            .container(&id)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let upper = snaps
            .container_changes_dir(&id)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let lowers = match &meta.parent {
            Some(p) => snaps
                .chain_dirs(p)
                .map_err(|e| ApiError::Internal(e.to_string()))?,
            None => Vec::new(),
        };
        let mut out = Vec::new();
        let r = match meta.driver {
            Driver::Overlay => {
                let lowers = lowers
                    .iter()
                    .map(|l| open_dir(l))
                    .collect::<io::Result<Vec<_>>>();
                lowers.and_then(|lowers| {
                    let up = open_read_dir(None, &upper)?;
                    overlay_changes(&up, "", &lowers, &mut out).map(|_| ())
                })
            }
            // The copying driver keeps full trees: the container's
            // against its image's top layer.
            Driver::Copy => (|| {
                let lower = match lowers.first() {
                    Some(l) => Some(open_read_dir(None, l)?),
                    None => None,
                };
                let up = open_read_dir(None, &upper)?;
                copy_changes(lower.as_ref(), &up, "", &mut out).map(|_| ())
            })(),
        };
        r.map_err(|e| ApiError::Internal(format!("changes of {id}: {e}")))?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    })
    .await?;
    Ok(Json(changes))
}

fn open_read_dir(at: Option<&OwnedFd>, name: &Path) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match at {
        Some(dir) => nix::fcntl::openat(dir, name, flags, Mode::empty()),
        None => nix::fcntl::open(name, flags, Mode::empty()),
    }
    .map_err(io::Error::from)
}

/// Names in the directory `dir` (through /proc/self/fd: exactly the
/// directory opened), sorted.
fn names(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let mut out = std::fs::read_dir(fd_path(dir))?
        .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
        .collect::<io::Result<Vec<_>>>()?;
    out.sort();
    Ok(out)
}

fn lstat_at(dir: &OwnedFd, name: &[u8]) -> io::Result<FileStat> {
    nix::sys::stat::fstatat(
        dir,
        OsStr::from_bytes(name),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

fn is_whiteout(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

fn fmt(st: &FileStat) -> u32 {
    st.st_mode & libc::S_IFMT
}

/// Whether the directory `fd` is an opaque overlayfs directory.
fn is_opaque(fd: &OwnedFd) -> bool {
    let mut v = [0u8; 1];
    // SAFETY: fgetxattr writes at most v.len() bytes into v.
    let n = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            c"trusted.overlay.opaque".as_ptr(),
            v.as_mut_ptr().cast(),
            v.len(),
        )
    };
    n == 1 && v[0] == b'y'
}

/// `path` (relative, `a/b`) in the image's layers (top first): its stat in
/// the topmost layer holding it, unless a whiteout or an opaque directory
/// above hides it. Never follows a symlink out of a layer.
fn in_lowers(lowers: &[OwnedFd], path: &str) -> Option<FileStat> {
    let (parent, base) = match path.rsplit_once('/') {
        Some((p, b)) => (p, b),
        None => ("", path),
    };
    for layer in lowers {
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
        let dir = if parent.is_empty() {
            layer.try_clone().ok()?
        } else {
            match nix::fcntl::openat2(layer.as_fd(), parent, how) {
                Ok(fd) => fd,
                Err(nix::errno::Errno::ENOENT) => continue,
                Err(_) => return None,
            }
        };
        match lstat_at(&dir, base.as_bytes()) {
            Ok(st) if is_whiteout(&st) => return None,
            Ok(st) => return Some(st),
            Err(_) if !parent.is_empty() && is_opaque(&dir) => return None,
            Err(_) => {}
        }
    }
    None
}

fn excluded(path: &str) -> bool {
    MOUNT_POINTS
        .iter()
        .any(|m| path == *m || path.starts_with(&format!("{m}/")))
}

fn push(out: &mut Vec<FilesystemChange>, path: String, kind: u8) {
    out.push(FilesystemChange { path, kind });
}

/// The changes below the overlay upper directory `dir` (at `rel`, `""`
/// for the root). Returns (anything listed, anything left out as a
/// mount point).
fn overlay_changes(
    dir: &OwnedFd,
    rel: &str,
    lowers: &[OwnedFd],
    out: &mut Vec<FilesystemChange>,
) -> io::Result<(bool, bool)> {
    let (mut listed, mut skipped) = (false, false);
    for name in names(dir)? {
        let name_s = String::from_utf8_lossy(&name).into_owned();
        let rel_child = if rel.is_empty() {
            name_s.clone()
        } else {
            format!("{rel}/{name_s}")
        };
        let path = format!("/{rel_child}");
        if excluded(&path) {
            skipped = true;
            continue;
        }
        let st = lstat_at(dir, &name)?;
        if is_whiteout(&st) {
            if in_lowers(lowers, &rel_child).is_some() {
                push(out, path, DELETED);
                listed = true;
            }
            continue;
        }
        let below = in_lowers(lowers, &rel_child);
        if fmt(&st) == libc::S_IFDIR {
            let sub = open_read_dir(Some(dir), Path::new(OsStr::from_bytes(&name)))?;
            let at = out.len();
            let (child_listed, child_skipped) = overlay_changes(&sub, &rel_child, lowers, out)?;
            let kind = match below {
                // Copied up: a change if something below it is, or its
                // own owner or mode (not its times: the runtime's mount
                // points touch those).
                Some(l) if fmt(&l) == libc::S_IFDIR => {
                    let meta =
                        l.st_mode != st.st_mode || l.st_uid != st.st_uid || l.st_gid != st.st_gid;
                    (child_listed || meta).then_some(MODIFIED)
                }
                Some(_) => Some(MODIFIED),
                // A new directory, unless all it holds are mount points
                // the runtime made.
                None if child_skipped && !child_listed => {
                    skipped = true;
                    None
                }
                None => Some(ADDED),
            };
            if let Some(kind) = kind {
                out.insert(at, FilesystemChange { path, kind });
                listed = true;
            }
        } else {
            push(out, path, if below.is_some() { MODIFIED } else { ADDED });
            listed = true;
        }
    }
    Ok((listed, skipped))
}

/// Every path under `dir` as added.
fn all_added(dir: &OwnedFd, rel: &str, out: &mut Vec<FilesystemChange>) -> io::Result<()> {
    for name in names(dir)? {
        let rel_child = format!("{rel}/{}", String::from_utf8_lossy(&name));
        if excluded(&rel_child) {
            continue;
        }
        push(out, rel_child.clone(), ADDED);
        if fmt(&lstat_at(dir, &name)?) == libc::S_IFDIR {
            let sub = open_read_dir(Some(dir), Path::new(OsStr::from_bytes(&name)))?;
            all_added(&sub, &rel_child, out)?;
        }
    }
    Ok(())
}

/// The copying driver: the container's full tree (`upper`) against the
/// image's (`lower`). Whether anything was listed.
fn copy_changes(
    lower: Option<&OwnedFd>,
    upper: &OwnedFd,
    rel: &str,
    out: &mut Vec<FilesystemChange>,
) -> io::Result<bool> {
    let Some(lower) = lower else {
        all_added(upper, rel, out)?;
        return Ok(!out.is_empty());
    };
    let un = names(upper)?;
    let ln = names(lower)?;
    let mut listed = false;
    for name in ln.iter().filter(|n| un.binary_search(n).is_err()) {
        let path = format!("{rel}/{}", String::from_utf8_lossy(name));
        if !excluded(&path) {
            push(out, path, DELETED);
            listed = true;
        }
    }
    for name in &un {
        let path = format!("{rel}/{}", String::from_utf8_lossy(name));
        if excluded(&path) {
            continue;
        }
        let u = lstat_at(upper, name)?;
        let l = if ln.binary_search(name).is_ok() {
            Some(lstat_at(lower, name)?)
        } else {
            None
        };
        let sub = || open_read_dir(Some(upper), Path::new(OsStr::from_bytes(name)));
        match l {
            None => {
                push(out, path.clone(), ADDED);
                listed = true;
                if fmt(&u) == libc::S_IFDIR {
                    all_added(&sub()?, &path, out)?;
                }
            }
            Some(l) if fmt(&l) == libc::S_IFDIR && fmt(&u) == libc::S_IFDIR => {
                let at = out.len();
                let lsub = open_read_dir(Some(lower), Path::new(OsStr::from_bytes(name)))?;
                let child = copy_changes(Some(&lsub), &sub()?, &path, out)?;
                let meta = l.st_mode != u.st_mode || l.st_uid != u.st_uid || l.st_gid != u.st_gid;
                if child || meta {
                    out.insert(
                        at,
                        FilesystemChange {
                            path,
                            kind: MODIFIED,
                        },
                    );
                    listed = true;
                }
            }
            Some(l) => {
                let changed = fmt(&l) != fmt(&u)
                    || l.st_mode != u.st_mode
                    || l.st_uid != u.st_uid
                    || l.st_gid != u.st_gid
                    || l.st_size != u.st_size
                    || l.st_mtime != u.st_mtime
                    || l.st_mtime_nsec != u.st_mtime_nsec
                    || l.st_rdev != u.st_rdev;
                if changed {
                    push(out, path, MODIFIED);
                    listed = true;
                }
            }
        }
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_as_dockerd_cleans_them() {
        let w = Wanted::parse("/etc/.");
        assert_eq!((w.clean.as_str(), w.dot, w.base()), ("/etc", true, "."));
        let w = Wanted::parse("etc/");
        assert_eq!((w.clean.as_str(), w.slash, w.base()), ("/etc", true, "etc"));
        let w = Wanted::parse("/a/../../b/./c");
        assert_eq!(
            (w.clean.as_str(), w.follows(), w.base()),
            ("/b/c", false, "c")
        );
        assert_eq!(w.split(), ("/b", "c"));
        assert_eq!(Wanted::parse("/x").split(), ("/", "x"));
        let w = Wanted::parse("/");
        assert_eq!((w.clean.as_str(), w.follows(), w.base()), ("/", true, "/"));
    }

    #[test]
    fn modes_are_go_file_modes() {
        assert_eq!(go_mode(libc::S_IFREG | 0o644), 0o644);
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(
            go_mode(libc::S_IFDIR | libc::S_ISVTX | 0o777),
            (1 << 31) | (1 << 20) | 0o777
        );
        assert_eq!(
            go_mode(libc::S_IFCHR | 0o600),
            (1 << 26) | (1 << 21) | 0o600
        );
    }

    #[test]
    fn times_are_rfc3339_nano() {
        assert_eq!(rfc3339(1_700_000_000, 0), "2023-11-14T22:13:20Z");
        assert_eq!(
            rfc3339(1_700_000_000, 500_000_000),
            "2023-11-14T22:13:20.5Z"
        );
    }

    #[test]
    fn stat_header_is_base64_json() {
        let s = PathStat {
            name: "passwd".into(),
            size: 3,
            mode: 0o644,
            mtime: "2023-11-14T22:13:20Z".into(),
            link_target: String::new(),
        };
        let h = stat_header(&s);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(h.to_str().unwrap())
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v["name"], "passwd");
        assert_eq!(v["linkTarget"], "");
        assert_eq!(v["mode"], 0o644);
    }
}
