//! Snapshots: a directory per unpacked layer, read-only once committed, and
//! a writable one per container.
//!
//! With overlayfs each layer directory holds only that layer's changes (in
//! overlayfs's whiteout format) and a container's root is an overlay of its
//! layers under its own upper directory. Where overlayfs cannot be used,
//! the copying driver keeps a full tree per layer and per container.
//!
//! Layout under `snapshots/`:
//!   layers/<n>            the layer's tree (n: a short number, to keep
//!                         overlay mount options short)
//!   layers/<n>.json       chain id, parent chain id, diff id
//!   by-chain/<hex>        symlink to layers/<n>: the lookup by chain id
//!   layers/<n>-init       the init layer of the image whose top is layer n
//!                         (see `init`)
//!   containers/<id>/      upper/ and work/ (overlay) or rootfs/ (copy)
//!   tmp/                  layers being unpacked

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::layer::WhiteoutMode;

mod init;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Overlay,
    Copy,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("layer {0} is not unpacked")]
    NoLayer(Digest),
    #[error("container snapshot {0} does not exist")]
    NoContainer(String),
    #[error("container snapshot {0} already exists")]
    ContainerExists(String),
    #[error("mounting {target}: {reason}")]
    Mount { target: PathBuf, reason: String },
    #[error("copying {from} to {to}: {reason}")]
    Copy {
        from: PathBuf,
        to: PathBuf,
        reason: String,
    },
}

pub type Result<T> = std::result::Result<T, SnapshotError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the store knows about an unpacked layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerMeta {
    pub chain_id: Digest,
    pub parent: Option<Digest>,
    pub diff_id: Digest,
    /// Bytes of the uncompressed layer tar.
    pub size: u64,
    /// The directory's number under layers/.
    pub number: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMeta {
    pub id: String,
    pub parent: Option<Digest>,
    pub driver: Driver,
}

#[derive(Debug)]
pub struct Snapshots {
    root: PathBuf,
    driver: Driver,
    /// Serializes numbering and the by-chain links within this process.
    lock: Mutex<()>,
}

fn chain_hex(d: &Digest) -> &str {
    d.digest()
}

impl Snapshots {
    pub fn open(root: &Path, driver: Driver) -> Result<Snapshots> {
        for d in ["layers", "by-chain", "containers", "tmp"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        // Half-unpacked layers of a crashed writer.
        let tmp = root.join("tmp");
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        Ok(Snapshots {
            root: root.to_path_buf(),
            driver,
            lock: Mutex::new(()),
        })
    }

    pub fn driver(&self) -> Driver {
        self.driver
    }

    pub fn whiteout_mode(&self) -> WhiteoutMode {
        match self.driver {
            Driver::Overlay => WhiteoutMode::Overlay,
            Driver::Copy => WhiteoutMode::Delete,
        }
    }

    fn link(&self, chain: &Digest) -> PathBuf {
        self.root.join("by-chain").join(chain_hex(chain))
    }

    /// The directory of an unpacked layer.
    pub fn layer_dir(&self, chain: &Digest) -> Option<PathBuf> {
        let link = self.link(chain);
        let target = std::fs::read_link(&link).ok()?;
        let dir = self.root.join("by-chain").join(target);
        dir.is_dir().then_some(dir)
    }

    pub fn has_layer(&self, chain: &Digest) -> bool {
        self.layer_dir(chain).is_some()
    }

    pub fn layer_meta(&self, chain: &Digest) -> Result<LayerMeta> {
        let dir = self
            .layer_dir(chain)
            .ok_or_else(|| SnapshotError::NoLayer(chain.clone()))?;
        let meta = dir.with_extension("json");
        let raw = std::fs::read(&meta).map_err(io_err(&meta))?;
        serde_json::from_slice(&raw).map_err(|e| SnapshotError::Io {
            path: meta,
            source: std::io::Error::other(e),
        })
    }

    /// Every unpacked layer.
    pub fn layers(&self) -> Result<Vec<LayerMeta>> {
        let dir = self.root.join("by-chain");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
            let Some(hex) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(chain) = format!("sha256:{hex}").parse::<Digest>() else {
                continue;
            };
            if let Ok(m) = self.layer_meta(&chain) {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// The layer directories of a stack, top first.
    pub fn chain_dirs(&self, top: &Digest) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut next = Some(top.clone());
        while let Some(chain) = next {
            let meta = self.layer_meta(&chain)?;
            out.push(
                self.layer_dir(&chain)
                    .ok_or(SnapshotError::NoLayer(chain))?,
            );
            next = meta.parent;
        }
        Ok(out)
    }

    /// Start unpacking a layer on top of `parent`: an empty directory for
    /// overlay, a copy of the parent's tree for the copying driver.
    pub fn begin_layer(&self, parent: Option<&Digest>) -> Result<LayerTxn<'_>> {
        let tmp = self.tmp_path();
        match (self.driver, parent) {
            (Driver::Copy, Some(p)) => {
                let from = self
                    .layer_dir(p)
                    .ok_or_else(|| SnapshotError::NoLayer(p.clone()))?;
                copy_tree(&from, &tmp)?;
            }
            _ => std::fs::create_dir(&tmp).map_err(io_err(&tmp))?,
        }
        if let Some(p) = parent
            && !self.has_layer(p)
        {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(SnapshotError::NoLayer(p.clone()));
        }
        Ok(LayerTxn {
            snaps: self,
            dir: tmp,
            parent: parent.cloned(),
            done: false,
        })
    }

    /// A fresh name under tmp/, which `open` empties.
    fn tmp_path(&self) -> PathBuf {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        self.root.join("tmp").join(format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ))
    }

    /// The init layer of the image whose layers are `lowers` (top first):
    /// made the first time one of its containers is mounted, then shared.
    fn init_dir(&self, lowers: &[PathBuf]) -> Result<PathBuf> {
        let dir = init_path(&lowers[0]);
        if dir.is_dir() {
            return Ok(dir);
        }
        let tmp = self.tmp_path();
        std::fs::create_dir(&tmp).map_err(io_err(&tmp))?;
        if let Err(e) = init::build(lowers, &tmp) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(io_err(&tmp)(e));
        }
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => Ok(dir),
            // Another start made it meanwhile.
            Err(_) if dir.is_dir() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(dir)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(io_err(&dir)(e))
            }
        }
    }

    /// Remove an unpacked layer (garbage collection). Its children must be
    /// gone first.
    pub fn remove_layer(&self, chain: &Digest) -> Result<()> {
        let _g = self.lock.lock().expect("not poisoned");
        let Some(dir) = self.layer_dir(chain) else {
            return Ok(());
        };
        let link = self.link(chain);
        std::fs::remove_file(&link).map_err(io_err(&link))?;
        let _ = std::fs::remove_file(dir.with_extension("json"));
        remove_tree(&init_path(&dir))?;
        remove_tree(&dir)
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// A writable snapshot for container `id` on top of layer `parent`.
    pub fn create_container(&self, id: &str, parent: Option<&Digest>) -> Result<ContainerMeta> {
        let dir = self.container_dir(id);
        if dir.exists() {
            return Err(SnapshotError::ContainerExists(id.to_string()));
        }
        if let Some(p) = parent
            && !self.has_layer(p)
        {
            return Err(SnapshotError::NoLayer(p.clone()));
        }
        std::fs::create_dir(&dir).map_err(io_err(&dir))?;
        let made = (|| {
            match self.driver {
                Driver::Overlay => {
                    for d in ["upper", "work"] {
                        let p = dir.join(d);
                        std::fs::create_dir(&p).map_err(io_err(&p))?;
                    }
                }
                Driver::Copy => match parent {
                    Some(p) => {
                        copy_tree(&self.layer_dir(p).expect("checked"), &dir.join("rootfs"))?
                    }
                    None => std::fs::create_dir(dir.join("rootfs")).map_err(io_err(&dir))?,
                },
            }
            let meta = ContainerMeta {
                id: id.to_string(),
                parent: parent.cloned(),
                driver: self.driver,
            };
            let path = dir.join("meta.json");
            std::fs::write(&path, serde_json::to_vec(&meta).expect("meta serializes"))
                .map_err(io_err(&path))?;
            Ok(meta)
        })();
        if made.is_err() {
            let _ = remove_tree(&dir);
        }
        made
    }

    pub fn container(&self, id: &str) -> Result<ContainerMeta> {
        let path = self.container_dir(id).join("meta.json");
        let raw = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SnapshotError::NoContainer(id.to_string())
            } else {
                io_err(&path)(e)
            }
        })?;
        serde_json::from_slice(&raw).map_err(|e| SnapshotError::Io {
            path,
            source: std::io::Error::other(e),
        })
    }

    pub fn containers(&self) -> Result<Vec<ContainerMeta>> {
        let dir = self.root.join("containers");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
            if let Some(id) = e.file_name().to_str()
                && !id.starts_with(DISCARDED)
                && let Ok(m) = self.container(id)
            {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// The container's writable directory: overlay's upper, or the full tree.
    pub fn container_changes_dir(&self, id: &str) -> Result<PathBuf> {
        let meta = self.container(id)?;
        Ok(match meta.driver {
            Driver::Overlay => self.container_dir(id).join("upper"),
            Driver::Copy => self.container_dir(id).join("rootfs"),
        })
    }

    /// Make the container's root filesystem appear at `target`.
    pub fn mount_container(&self, id: &str, target: &Path) -> Result<()> {
        self.mount_container_with(id, target, false)
    }

    /// Mount container `id` at `target`; with `volatile` (overlay only),
    /// overlayfs skips syncing the upper directory, above all the sync of
    /// the whole host filesystem it does at unmount. For containers whose
    /// changes are thrown away when they exit (`--rm`): after a host crash
    /// such an upper directory may be torn, and it is removed anyway.
    pub fn mount_container_with(&self, id: &str, target: &Path, volatile: bool) -> Result<()> {
        let meta = self.container(id)?;
        let dir = self.container_dir(id);
        match meta.driver {
            Driver::Copy => bind(&dir.join("rootfs"), target),
            Driver::Overlay => {
                let mut lowers = match &meta.parent {
                    Some(p) => self.chain_dirs(p)?,
                    None => Vec::new(),
                };
                if lowers.is_empty() {
                    // overlayfs needs a lower layer; an empty image is just its upper.
                    return bind(&dir.join("upper"), target);
                }
                match self.init_dir(&lowers) {
                    Ok(init) => lowers.insert(0, init),
                    // The runtime makes the mount points in the upper then.
                    Err(e) => tracing::warn!("container {id}: no init layer: {e}"),
                }
                let work = dir.join("work");
                // A volatile mount leaves this mark; overlayfs refuses the
                // work directory again until it is gone.
                let mark = work.join("work/incompat");
                if mark.join("volatile").exists() {
                    let _ = std::fs::remove_dir_all(&mark);
                }
                mount_overlay(&lowers, &dir.join("upper"), &work, target, volatile)
            }
        }
    }

    pub fn remove_container(&self, id: &str) -> Result<()> {
        let dir = self.container_dir(id);
        if !dir.exists() {
            return Ok(());
        }
        remove_tree(&dir)
    }

    /// Take container `id`'s snapshot out of the store at once, by a
    /// rename: the caller deletes the returned directory when it suits
    /// it, and [`Snapshots::sweep_discarded`] whatever a crash left.
    pub fn discard_container(&self, id: &str) -> Result<Option<PathBuf>> {
        let dir = self.container_dir(id);
        let to = self
            .root
            .join("containers")
            .join(format!("{DISCARDED}{id}"));
        match std::fs::rename(&dir, &to) {
            Ok(()) => Ok(Some(to)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(_) => remove_tree(&dir).map(|()| None),
        }
    }

    /// Delete the snapshots [`Snapshots::discard_container`] left.
    pub fn sweep_discarded(&self) {
        let dir = self.root.join("containers");
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(DISCARDED) {
                let _ = remove_tree(&e.path());
            }
        }
    }

    /// Bytes a directory tree holds on disk (du -s semantics, hardlinks
    /// counted once).
    pub fn disk_usage(dir: &Path) -> u64 {
        let mut seen = std::collections::HashSet::new();
        fn walk(p: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
            use std::os::unix::fs::MetadataExt;
            let Ok(m) = std::fs::symlink_metadata(p) else {
                return 0;
            };
            let mut total = 0;
            if seen.insert((m.dev(), m.ino())) {
                total += m.blocks() * 512;
            }
            if m.is_dir()
                && let Ok(entries) = std::fs::read_dir(p)
            {
                for e in entries.flatten() {
                    total += walk(&e.path(), seen);
                }
            }
            total
        }
        walk(dir, &mut seen)
    }

    pub fn layer_disk_usage(&self, chain: &Digest) -> u64 {
        self.layer_dir(chain)
            .map(|d| Self::disk_usage(&d))
            .unwrap_or(0)
    }
}

/// The name prefix of a discarded container snapshot awaiting deletion.
pub const DISCARDED: &str = ".discarded-";

/// An unpack in progress; `commit` makes it a layer, dropping discards it.
pub struct LayerTxn<'a> {
    snaps: &'a Snapshots,
    pub dir: PathBuf,
    parent: Option<Digest>,
    done: bool,
}

impl LayerTxn<'_> {
    pub fn parent(&self) -> Option<&Digest> {
        self.parent.as_ref()
    }

    /// Make the unpacked tree the layer `chain` (whose content is
    /// `diff_id`, `size` bytes of tar).
    pub fn commit(mut self, chain: &Digest, diff_id: &Digest, size: u64) -> Result<()> {
        let s = self.snaps;
        let _g = s.lock.lock().expect("not poisoned");
        if s.has_layer(chain) {
            // Someone unpacked the same layer meanwhile: keep theirs.
            return Ok(());
        }
        let layers = s.root.join("layers");
        let number = next_number(&layers)?;
        let dir = layers.join(number.to_string());
        let meta = LayerMeta {
            chain_id: chain.clone(),
            parent: self.parent.clone(),
            diff_id: diff_id.clone(),
            size,
            number,
        };
        let meta_path = dir.with_extension("json");
        std::fs::write(
            &meta_path,
            serde_json::to_vec(&meta).expect("meta serializes"),
        )
        .map_err(io_err(&meta_path))?;
        std::fs::rename(&self.dir, &dir).map_err(io_err(&dir))?;
        self.done = true;
        // The link is what makes the layer exist: created last, by rename.
        let link = s.link(chain);
        let tmp_link = link.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp_link);
        std::os::unix::fs::symlink(format!("../layers/{number}"), &tmp_link)
            .map_err(io_err(&tmp_link))?;
        std::fs::rename(&tmp_link, &link).map_err(io_err(&link))?;
        if let Ok(d) = std::fs::File::open(s.root.join("by-chain")) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl LayerTxn<'_> {
    /// Commit a layer unpacked before its place in a stack was known (an
    /// archive's layers stream by before its manifest says how they stack):
    /// with overlay a layer's directory holds only its own changes, so one
    /// begun without a parent can go on any `parent` that exists.
    pub fn commit_onto(
        mut self,
        parent: Option<&Digest>,
        chain: &Digest,
        diff_id: &Digest,
        size: u64,
    ) -> Result<()> {
        if self.parent.as_ref() != parent {
            if self.snaps.driver != Driver::Overlay {
                return Err(SnapshotError::Io {
                    path: self.dir.clone(),
                    source: std::io::Error::other(
                        "a copied layer holds its parent's tree: it cannot change parent",
                    ),
                });
            }
            if let Some(p) = parent
                && !self.snaps.has_layer(p)
            {
                return Err(SnapshotError::NoLayer(p.clone()));
            }
            self.parent = parent.cloned();
        }
        self.commit(chain, diff_id, size)
    }
}

impl Drop for LayerTxn<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = remove_tree(&self.dir);
        }
    }
}

impl LayerTxn<'_> {
    /// Keep the unpacked directory beyond this transaction, for
    /// [`Snapshots::adopt`] to take up again; its path.
    pub fn detach(mut self) -> PathBuf {
        self.done = true;
        self.dir.clone()
    }
}

impl Snapshots {
    /// The transaction of a directory [`LayerTxn::detach`] kept (begun
    /// without a parent). Anything but such a directory is refused.
    pub fn adopt(&self, dir: &Path) -> Result<LayerTxn<'_>> {
        let tmp = self.root.join("tmp");
        if dir.parent() != Some(tmp.as_path()) || !dir.is_dir() {
            return Err(SnapshotError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::other("not a detached layer of this store"),
            });
        }
        Ok(LayerTxn {
            snaps: self,
            dir: dir.to_path_buf(),
            parent: None,
            done: false,
        })
    }
}

/// Where the init layer above layer directory `layer` lives.
fn init_path(layer: &Path) -> PathBuf {
    let n = layer.file_name().expect("numbered").to_string_lossy();
    layer.with_file_name(format!("{n}-init"))
}

fn next_number(layers: &Path) -> Result<u64> {
    let mut max = 0;
    for e in std::fs::read_dir(layers).map_err(io_err(layers))?.flatten() {
        if let Some(n) = e
            .file_name()
            .to_str()
            .and_then(|s| s.split('.').next()?.parse::<u64>().ok())
        {
            max = max.max(n);
        }
    }
    Ok(max + 1)
}

/// Remove a tree that may hold overlay whiteouts and immutable-looking
/// modes (a layer may chmod its directories 0).
fn remove_tree(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// A full-fidelity copy (owners, modes, xattrs, hardlinks, devices, times)
/// with reflinks where the filesystem has them: GNU cp does all of it.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let out = Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg("--")
        .arg(from)
        .arg(to)
        .output()
        .map_err(|e| SnapshotError::Copy {
            from: from.into(),
            to: to.into(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(to);
        return Err(SnapshotError::Copy {
            from: from.into(),
            to: to.into(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("paths have no NUL")
}

fn bind(src: &Path, target: &Path) -> Result<()> {
    nix::mount::mount(
        Some(src),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| SnapshotError::Mount {
        target: target.into(),
        reason: format!("binding {}: {e}", src.display()),
    })
}

const FSOPEN_CLOEXEC: u32 = 1;
const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
const FSMOUNT_CLOEXEC: u32 = 1;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 4;

fn fd_result(rc: libc::c_long) -> std::io::Result<OwnedFd> {
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

fn fsconfig_string(fs: &OwnedFd, key: &str, value: &Path) -> std::io::Result<()> {
    let k = CString::new(key).expect("no NUL");
    let v = cstr(value);
    // SAFETY: fsconfig with NUL-terminated key and value.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            k.as_ptr(),
            v.as_ptr(),
            0,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn fsconfig_flag(fs: &OwnedFd, key: &str) -> std::io::Result<()> {
    let k = CString::new(key).expect("no NUL");
    // SAFETY: fsconfig setting a flag: a NUL-terminated key, no value.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_FLAG,
            k.as_ptr(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Through the new mount API with one `lowerdir+` per layer (Linux 6.8):
/// no limit on the option string, so any stack overlayfs takes mounts.
fn overlay_lowerdir_plus(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    volatile: bool,
) -> std::io::Result<()> {
    let name = CString::new("overlay").expect("no NUL");
    // SAFETY: fsopen with a NUL-terminated name.
    let fs = fd_result(unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) })?;
    for l in lowers {
        fsconfig_string(&fs, "lowerdir+", l)?;
    }
    fsconfig_string(&fs, "upperdir", upper)?;
    fsconfig_string(&fs, "workdir", work)?;
    if volatile {
        fsconfig_flag(&fs, "volatile")?;
    }
    // SAFETY: fsconfig command without key or value.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fsmount of the configured context.
    let mnt =
        fd_result(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) })?;
    let empty = CString::new("").expect("no NUL");
    let t = cstr(target);
    // SAFETY: move_mount from the detached mount to the target path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The largest option string mount(2) accepts: one page.
const MOUNT_DATA_MAX: usize = 4095;

fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    volatile: bool,
) -> Result<()> {
    let err = |reason: String| SnapshotError::Mount {
        target: target.to_path_buf(),
        reason,
    };
    let plus = match overlay_lowerdir_plus(lowers, upper, work, target, volatile) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    // Older kernels: one option string. Naming every layer through an fd of
    // the layers directory keeps it short (…/fd/N/12) and needs no chdir,
    // which a multi-threaded daemon cannot afford.
    let parent = lowers[0].parent().expect("layers have a parent dir");
    let dir = std::fs::File::open(parent)
        .map_err(|e| err(format!("opening {}: {e}", parent.display())))?;
    let base = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let names: Vec<String> = lowers
        .iter()
        .map(|l| {
            format!(
                "{base}/{}",
                l.file_name().expect("numbered").to_string_lossy()
            )
        })
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}{}",
        names.join(":"),
        upper.display(),
        work.display(),
        if volatile { ",volatile" } else { "" }
    );
    if data.len() > MOUNT_DATA_MAX {
        return Err(err(format!(
            "{} layers need {} bytes of overlay options, more than one page, and this kernel lacks lowerdir+ ({plus})",
            lowers.len(),
            data.len()
        )));
    }
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| err(format!("overlay of {} layers: {e}", lowers.len())))
}

/// Undo `mount_container`.
pub fn unmount(target: &Path) -> Result<()> {
    match nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(SnapshotError::Mount {
            target: target.into(),
            reason: format!("unmounting: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discarded_container_leaves_the_store_at_once_and_is_swept() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshots::open(dir.path(), Driver::Copy).unwrap();
        s.create_container("keep", None).unwrap();
        s.create_container("gone", None).unwrap();
        let moved = s.discard_container("gone").unwrap().expect("renamed");
        assert!(moved.exists());
        let ids: Vec<String> = s.containers().unwrap().into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["keep"]);
        assert!(s.container("gone").is_err());
        assert!(s.discard_container("gone").unwrap().is_none());
        s.sweep_discarded();
        assert!(!moved.exists());
        assert!(s.container("keep").is_ok());
    }
}
