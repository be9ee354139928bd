//! The container's root filesystem: mounts, /dev, pivot_root, masked and
//! read-only paths. Runs in the init, inside its new mount namespace.

mod copy;
pub mod device;
mod newmount;
pub mod options;
pub mod path;

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use oci_spec::runtime::{Mount, Spec};

use crate::cgroups::CgroupMount;
use crate::syscall::Syscall;
use options::MountOptions;
use path::{Root, fd_path};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("mounts[{index}] on {dest}: {what}: {source}")]
    Mount {
        index: usize,
        dest: PathBuf,
        what: String,
        source: std::io::Error,
    },
    #[error("mounts[{index}].source {source_path}: {source}")]
    Source {
        index: usize,
        source_path: PathBuf,
        source: std::io::Error,
    },
    #[error("mounts[{index}] on {dest}: {reason}")]
    Unsupported {
        index: usize,
        dest: PathBuf,
        reason: String,
    },
    #[error("device {path}: {source}")]
    Device {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("preparing root {path}: {what}: {source}")]
    Root {
        path: PathBuf,
        what: String,
        source: std::io::Error,
    },
    #[error("linux.maskedPaths {path}: {source}")]
    Masked {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("linux.readonlyPaths {path}: {source}")]
    Readonly {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, RootfsError>;

/// What the init knows when it builds the root filesystem.
#[derive(Debug)]
pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub cgroup_mounts: &'a [CgroupMount],
    /// The container has a cgroup namespace of its own, so cgroupfs can be
    /// mounted fresh (its root is the container's cgroup).
    pub cgroup_ns: bool,
    /// The init is in a user namespace: no mknod, and bind mounts keep
    /// the flags the kernel locked on their source.
    pub user_ns: bool,
    pub terminal: bool,
}

fn errno_io(e: Errno) -> std::io::Error {
    e.into()
}

/// Flags of the mount at `path` that an unprivileged remount must keep.
fn locked_flags(path: &Path) -> MsFlags {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return MsFlags::empty();
    };
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs fills the struct we pass.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return MsFlags::empty();
    }
    let f = st.f_flag;
    let mut out = MsFlags::empty();
    for (st_bit, ms) in [
        (libc::ST_NOSUID, MsFlags::MS_NOSUID),
        (libc::ST_NODEV, MsFlags::MS_NODEV),
        (libc::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (libc::ST_RDONLY, MsFlags::MS_RDONLY),
        (libc::ST_NOATIME, MsFlags::MS_NOATIME),
        (libc::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (libc::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f & st_bit != 0 {
            out |= ms;
        }
    }
    out
}

/// Propagation flags of the mount holding `path`, from mountinfo: pivot_root
/// refuses a new root whose parent mount is shared.
fn mount_point_of(path: &Path) -> Option<(PathBuf, bool)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(PathBuf, bool)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mp) = fields.get(4) else { continue };
        let mp = PathBuf::from(unescape_mountinfo(mp));
        if !path.starts_with(&mp) {
            continue;
        }
        let sep = fields
            .iter()
            .position(|f| *f == "-")
            .unwrap_or(fields.len());
        let shared = fields[6..sep].iter().any(|f| f.starts_with("shared:"));
        if best
            .as_ref()
            .is_none_or(|(b, _)| mp.as_os_str().len() >= b.as_os_str().len())
        {
            best = Some((mp, shared));
        }
    }
    best
}

fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(Ok(n)) = s.get(i + 1..i + 4).map(|o| u8::from_str_radix(o, 8))
        {
            out.push(n as char);
            i += 4;
            continue;
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// Everything before pivot_root: propagation, the rootfs bind, the
/// config's mounts in order, /dev.
pub fn prepare(sys: &dyn Syscall, cfg: &RootfsConfig<'_>) -> Result<()> {
    let root_err = |what: &str| {
        let path = cfg.rootfs.to_path_buf();
        let what = what.to_string();
        move |source: Errno| RootfsError::Root {
            path,
            what,
            source: source.into(),
        }
    };
    let linux = cfg.spec.linux().as_ref();
    let propagation = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(options::propagation_flag)
        .unwrap_or(MsFlags::MS_SLAVE)
        | MsFlags::MS_REC;
    // Nothing we mount may propagate back to the host unless the config
    // asks for shared propagation.
    sys.mount(None, Path::new("/"), None, propagation, None)
        .map_err(root_err("setting / propagation"))?;
    // A recursive slave or private leaves no mount shared; only shared
    // propagation asked for by the config needs the (long, with many
    // containers running) mountinfo read.
    if propagation.contains(MsFlags::MS_SHARED)
        && let Some((mp, true)) = mount_point_of(cfg.rootfs)
    {
        sys.mount(None, &mp, None, MsFlags::MS_PRIVATE, None)
            .map_err(root_err("making the rootfs parent mount private"))?;
    }
    // pivot_root needs the new root to be a mount point.
    sys.mount(
        Some(cfg.rootfs),
        cfg.rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(root_err("binding the rootfs onto itself"))?;

    let root = Root::open(cfg.rootfs).map_err(|source| RootfsError::Root {
        path: cfg.rootfs.to_path_buf(),
        what: "opening".into(),
        source,
    })?;
    let mounts = cfg.spec.mounts().as_deref().unwrap_or_default();
    for (index, m) in mounts.iter().enumerate() {
        mount_one(sys, &root, cfg, index, m)?;
    }

    let dev_is_bind = mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || options::parse(m.options().as_deref().unwrap_or_default()).is_bind())
    });
    if !dev_is_bind {
        let config_devs = linux
            .and_then(|l| l.devices().as_deref())
            .unwrap_or_default();
        for dev in device::devices_for(config_devs) {
            device::create(sys, &root, &dev, cfg.user_ns)?;
        }
        let with_pts = mounts
            .iter()
            .any(|m| m.destination() == Path::new("/dev/pts"));
        device::symlinks(sys, &root, with_pts)?;
        if cfg.terminal {
            root.create_file(Path::new("/dev/console"), 0o600)
                .map_err(|source| RootfsError::Device {
                    path: "/dev/console".into(),
                    source,
                })?;
        }
    }
    Ok(())
}

fn mount_one(
    sys: &dyn Syscall,
    root: &Root,
    cfg: &RootfsConfig<'_>,
    index: usize,
    m: &Mount,
) -> Result<()> {
    let dest = Path::new("/").join(m.destination());
    let typ = m.typ().as_deref().unwrap_or("");
    let mut opts = options::parse(m.options().as_deref().unwrap_or_default());
    if typ == "bind" {
        opts.flags |= MsFlags::MS_BIND;
    }
    let merr = |what: &str| {
        let dest = dest.clone();
        let what = what.to_string();
        move |source: std::io::Error| RootfsError::Mount {
            index,
            dest,
            what,
            source,
        }
    };
    if opts.idmap {
        return Err(RootfsError::Unsupported {
            index,
            dest,
            reason: "id-mapped mounts (idmap) are not supported yet".into(),
        });
    }
    check_proc_mount(&dest, typ).map_err(|reason| RootfsError::Unsupported {
        index,
        dest: dest.clone(),
        reason,
    })?;
    if typ == "cgroup" {
        return mount_cgroup(sys, root, cfg, index, &dest, &opts);
    }
    if opts.is_bind() {
        return mount_bind(sys, root, cfg, index, m, &dest, &opts);
    }

    let target = if typ == "proc" || typ == "sysfs" {
        root.mkdir_all(&dest, 0o755)
            .map_err(merr("creating mount point"))?;
        root.open_no_symlinks(&dest)
            .map_err(merr("a symlink may not stand in for /proc or /sys"))?
    } else {
        root.mkdir_all(&dest, 0o755)
            .map_err(merr("creating mount point"))?
    };
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let fstype = (!typ.is_empty() && typ != "none").then_some(typ);
    let data = opts.data_string();

    if opts.tmpcopyup && typ == "tmpfs" {
        return tmpcopyup(sys, &target, &opts, data.as_deref()).map_err(merr("tmpcopyup"));
    }

    let flags = opts.flags & !MsFlags::MS_REMOUNT;
    match sys.mount(
        Some(&source),
        &fd_path(&target),
        fstype,
        flags,
        data.as_deref(),
    ) {
        Ok(()) => {}
        // sysfs belongs to the network namespace's owner; a user-namespaced
        // container sharing the host's network gets the host's /sys.
        Err(Errno::EPERM) if typ == "sysfs" && cfg.user_ns => {
            sys.mount(
                Some(Path::new("/sys")),
                &fd_path(&target),
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(|e| merr("binding /sys")(errno_io(e)))?;
            let target = root.open_path(&dest).map_err(merr("reopening"))?;
            let flags = MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | opts.remount_flags()
                | locked_flags(&fd_path(&target));
            sys.mount(None, &fd_path(&target), None, flags, None)
                .map_err(|e| merr("remounting /sys")(errno_io(e)))?;
        }
        Err(e) => return Err(merr(&format!("mounting {typ}"))(errno_io(e))),
    }
    finish_mount(sys, root, &dest, &opts).map_err(merr("setting propagation"))
}

/// Propagation and recursive attributes, on the freshly mounted path.
fn finish_mount(
    sys: &dyn Syscall,
    root: &Root,
    dest: &Path,
    opts: &MountOptions,
) -> std::io::Result<()> {
    if opts.propagation.is_empty() && opts.rec_set == 0 && opts.rec_clear == 0 {
        return Ok(());
    }
    // The fd used to mount names the covered directory; reopen to reach
    // the new mount on top of it.
    let target = root.open_path(dest)?;
    for p in &opts.propagation {
        sys.mount(None, &fd_path(&target), None, *p, None)
            .map_err(errno_io)?;
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        sys.mount_setattr_recursive(&fd_path(&target), opts.rec_set, opts.rec_clear)
            .map_err(errno_io)?;
    }
    Ok(())
}

fn mount_bind(
    sys: &dyn Syscall,
    root: &Root,
    cfg: &RootfsConfig<'_>,
    index: usize,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
) -> Result<()> {
    let merr = |what: &str| {
        let dest = dest.to_path_buf();
        let what = what.to_string();
        move |source: std::io::Error| RootfsError::Mount {
            index,
            dest,
            what,
            source,
        }
    };
    let src = m.source().clone().unwrap_or_default();
    let src = if src.is_absolute() {
        src
    } else {
        cfg.bundle.join(src)
    };
    let meta = std::fs::metadata(&src).map_err(|source| RootfsError::Source {
        index,
        source_path: src.clone(),
        source,
    })?;
    let target = if meta.is_dir() {
        root.mkdir_all(dest, 0o755)
            .map_err(merr("creating mount point"))?
    } else {
        root.create_file(dest, 0o644)
            .map_err(merr("creating mount point"))?
    };
    let bind = opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
    sys.mount(Some(&src), &fd_path(&target), None, bind, None)
        .map_err(|e| merr(&format!("binding {}", src.display()))(errno_io(e)))?;
    let remount = opts.remount_flags();
    if !remount.is_empty() {
        let target = root.open_path(dest).map_err(merr("reopening"))?;
        let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | remount;
        if cfg.user_ns {
            flags |= locked_flags(&fd_path(&target)) & !MsFlags::MS_RDONLY;
        }
        sys.mount(None, &fd_path(&target), None, flags, None)
            .map_err(|e| merr("remounting with the requested flags")(errno_io(e)))?;
    }
    finish_mount(sys, root, dest, opts).map_err(merr("setting propagation"))
}

fn mount_cgroup(
    sys: &dyn Syscall,
    root: &Root,
    cfg: &RootfsConfig<'_>,
    index: usize,
    dest: &Path,
    opts: &MountOptions,
) -> Result<()> {
    let merr = |what: String| {
        let dest = dest.to_path_buf();
        move |source: std::io::Error| RootfsError::Mount {
            index,
            dest,
            what,
            source,
        }
    };
    root.mkdir_all(dest, 0o755)
        .map_err(merr("creating mount point".into()))?;
    let flags = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    let ro = flags.contains(MsFlags::MS_RDONLY);

    // Mount one hierarchy at `at`: fresh inside a cgroup namespace, as a
    // bind of the container's own cgroup otherwise.
    let one = |cm: &CgroupMount, at: &Path| -> Result<()> {
        let target = root
            .mkdir_all(at, 0o755)
            .map_err(merr(format!("creating {}", at.display())))?;
        if cfg.cgroup_ns {
            let data = (!cm.data.is_empty()).then_some(cm.data.as_str());
            match sys.mount(
                Some(Path::new(&cm.fstype)),
                &fd_path(&target),
                Some(&cm.fstype),
                flags,
                data,
            ) {
                Ok(()) => return Ok(()),
                // v1 hierarchies cannot be mounted from a user namespace.
                Err(Errno::EPERM) if cfg.user_ns => {}
                Err(e) => {
                    return Err(merr(format!("mounting {} {}", cm.fstype, cm.data))(
                        errno_io(e),
                    ));
                }
            }
        }
        sys.mount(
            Some(&cm.host_path),
            &fd_path(&target),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(|e| merr(format!("binding {}", cm.host_path.display()))(errno_io(e)))?;
        let target = root.open_path(at).map_err(merr("reopening".into()))?;
        let mut rf = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | (flags & !MsFlags::MS_RELATIME);
        if cfg.user_ns {
            rf |= locked_flags(&fd_path(&target)) & !MsFlags::MS_RDONLY;
        }
        sys.mount(None, &fd_path(&target), None, rf, None)
            .map_err(|e| merr("remounting cgroup bind".into())(errno_io(e)))
    };

    if let [single] = cfg.cgroup_mounts
        && single.subdir.is_empty()
    {
        return one(single, dest);
    }
    if cfg.cgroup_mounts.is_empty() {
        return Ok(());
    }
    // v1: a tmpfs holding one directory per hierarchy, made read-only
    // once they are all in place.
    let target = root.open_path(dest).map_err(merr("opening".into()))?;
    sys.mount(
        Some(Path::new("tmpfs")),
        &fd_path(&target),
        Some("tmpfs"),
        flags & !MsFlags::MS_RDONLY,
        Some("mode=755"),
    )
    .map_err(|e| merr("mounting tmpfs".into())(errno_io(e)))?;
    for cm in cfg.cgroup_mounts {
        one(cm, &dest.join(&cm.subdir))?;
        for link in &cm.symlinks {
            if link == &cm.subdir {
                continue;
            }
            let tmpfs = root.open_path(dest).map_err(merr("opening".into()))?;
            sys.symlink(Path::new(&cm.subdir), &fd_path(&tmpfs).join(link))
                .map_err(|e| merr(format!("linking {link}"))(errno_io(e)))?;
        }
    }
    if ro {
        let tmpfs = root.open_path(dest).map_err(merr("opening".into()))?;
        sys.mount(
            None,
            &fd_path(&tmpfs),
            None,
            MsFlags::MS_REMOUNT | flags,
            None,
        )
        .map_err(|e| merr("remounting read-only".into())(errno_io(e)))?;
    }
    Ok(())
}

fn tmpcopyup(
    sys: &dyn Syscall,
    target: &OwnedFd,
    opts: &MountOptions,
    data: Option<&str>,
) -> std::io::Result<()> {
    // A detached tmpfs (new mount API) has no path anyone could race for.
    let mnt = newmount::tmpfs(opts.flags & !MsFlags::MS_RDONLY, data)?;
    copy::copy_tree(&fd_path(target), &fd_path(&mnt))?;
    newmount::move_onto(&mnt, target)?;
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        sys.mount_setattr_recursive(&fd_path(&mnt), options::MOUNT_ATTR_RDONLY, 0)
            .map_err(errno_io)?;
    }
    Ok(())
}

fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    let c =
        CString::new(path.as_os_str().as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    // SAFETY: open of a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: new fd from open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Files runc lets a bind mount cover inside /proc, for lxcfs.
const PROC_OVERRIDES: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// /proc must be procfs, and nothing but procfs or lxcfs's files may
/// cover anything below it: the runtime writes to /proc/self/... and
/// /proc/sys/... and must reach the kernel, not an image's files.
fn check_proc_mount(dest: &Path, typ: &str) -> std::result::Result<(), String> {
    if dest == Path::new("/proc") && typ != "proc" {
        return Err(format!("/proc must be a proc mount, not {typ:?}"));
    }
    if dest.starts_with("/proc") && dest != Path::new("/proc") && typ != "proc" {
        let allowed = PROC_OVERRIDES.iter().any(|p| dest == Path::new(p));
        if !allowed {
            return Err(
                "only procfs, or a bind over a file lxcfs provides, may be mounted under /proc"
                    .into(),
            );
        }
    }
    Ok(())
}

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Fail unless `path` is on procfs.
pub fn ensure_procfs(path: &str) -> std::result::Result<(), String> {
    let c = CString::new(path).map_err(|e| e.to_string())?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs fills the struct.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(format!(
            "{path}: {} (the container needs /proc)",
            std::io::Error::last_os_error()
        ));
    }
    if st.f_type as i64 != PROC_SUPER_MAGIC {
        return Err(format!("{path} is not on procfs"));
    }
    Ok(())
}

/// An O_PATH fd of the container's /dev/null, checked to be the null
/// device: an image could have put anything at that path.
///
/// Opened inside `rootfs` (resolved in it) before the switch: a bind
/// source must be a mount of the container's own mount namespace, which
/// the host's /dev no longer is once the old root is detached.
pub fn open_dev_null(rootfs: &Path) -> Result<OwnedFd> {
    let err = |source| RootfsError::Device {
        path: "/dev/null".into(),
        source,
    };
    let root = Root::open(rootfs).map_err(err)?;
    let f = std::fs::File::from(root.open_path(Path::new("/dev/null")).map_err(err)?);
    let meta = f.metadata().map_err(err)?;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if !meta.file_type().is_char_device() || meta.rdev() != nix::sys::stat::makedev(1, 3) {
        return Err(err(std::io::Error::other("not the null device (1:3)")));
    }
    Ok(f.into())
}

/// Make the rootfs `/`: pivot_root, or with `no_pivot` (for roots on
/// ramfs, where pivot_root is impossible) move it over `/` and chroot.
pub fn switch_root(sys: &dyn Syscall, rootfs: &Path, no_pivot: bool) -> Result<()> {
    let rerr = |what: &str| {
        let path = rootfs.to_path_buf();
        let what = what.to_string();
        move |e: Errno| RootfsError::Root {
            path,
            what,
            source: e.into(),
        }
    };
    if no_pivot {
        sys.chdir(rootfs).map_err(rerr("chdir"))?;
        sys.mount(Some(rootfs), Path::new("/"), None, MsFlags::MS_MOVE, None)
            .map_err(rerr("moving to /"))?;
        sys.chroot(Path::new(".")).map_err(rerr("chroot"))?;
        return sys.chdir(Path::new("/")).map_err(rerr("chdir /"));
    }
    let io = |what: &str| {
        let path = rootfs.to_path_buf();
        let what = what.to_string();
        move |source: std::io::Error| RootfsError::Root { path, what, source }
    };
    let new_root = open_dir(rootfs).map_err(io("opening new root"))?;
    let old_root = open_dir(Path::new("/")).map_err(io("opening old root"))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; no
    // directory for it is needed inside the container's rootfs.
    sys.fchdir(std::os::fd::AsFd::as_fd(&new_root))
        .map_err(rerr("fchdir"))?;
    sys.pivot_root(Path::new("."), Path::new("."))
        .map_err(rerr("pivot_root"))?;
    sys.fchdir(std::os::fd::AsFd::as_fd(&old_root))
        .map_err(rerr("fchdir old root"))?;
    // Detaching must not propagate the unmounts to the host.
    sys.mount(
        None,
        Path::new("."),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
    )
    .map_err(rerr("making old root a slave"))?;
    sys.umount2(Path::new("."), MntFlags::MNT_DETACH)
        .map_err(rerr("detaching old root"))?;
    let _ = old_root.as_raw_fd();
    sys.chdir(Path::new("/")).map_err(rerr("chdir /"))
}

/// After the switch: read-only and masked paths, the read-only root, and
/// the root's final propagation.
pub fn finish(sys: &dyn Syscall, spec: &Spec, user_ns: bool, dev_null: &OwnedFd) -> Result<()> {
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or_default()
    {
        readonly_path(sys, Path::new(p), user_ns).map_err(|source| RootfsError::Readonly {
            path: p.into(),
            source,
        })?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default()
    {
        mask_path(sys, Path::new(p), dev_null).map_err(|source| RootfsError::Masked {
            path: p.into(),
            source,
        })?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | locked_flags(Path::new("/"));
        sys.mount(None, Path::new("/"), None, flags, None)
            .map_err(|e| RootfsError::Root {
                path: "/".into(),
                what: "root.readonly: remounting read-only".into(),
                source: e.into(),
            })?;
    }
    if let Some(flag) = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(options::propagation_flag)
    {
        sys.mount(None, Path::new("/"), None, flag, None)
            .map_err(|e| RootfsError::Root {
                path: "/".into(),
                what: "linux.rootfsPropagation".into(),
                source: e.into(),
            })?;
    }
    Ok(())
}

fn readonly_path(sys: &dyn Syscall, p: &Path, user_ns: bool) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    sys.mount(Some(p), p, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
        .map_err(errno_io)?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    if user_ns {
        flags |= locked_flags(p);
    }
    sys.mount(None, p, None, flags, None).map_err(errno_io)
}

fn mask_path(sys: &dyn Syscall, p: &Path, dev_null: &OwnedFd) -> std::io::Result<()> {
    let meta = match std::fs::metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) => m,
    };
    if meta.is_dir() {
        sys.mount(
            Some(Path::new("tmpfs")),
            p,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0k"),
        )
        .map_err(errno_io)
    } else {
        sys.mount(Some(&fd_path(dev_null)), p, None, MsFlags::MS_BIND, None)
            .map_err(errno_io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::fake::{Call, RecordingSyscall};

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn pivot_sequence() {
        let sys = RecordingSyscall::default();
        let t = tempfile::tempdir().unwrap();
        switch_root(&sys, t.path(), false).unwrap();
        let calls = sys.calls();
        assert!(
            matches!(&calls[1], Call::PivotRoot { new_root, put_old } if new_root == Path::new(".") && put_old == Path::new("."))
        );
        assert!(
            matches!(&calls[3], Call::Mount { flags, .. } if *flags == MsFlags::MS_SLAVE | MsFlags::MS_REC)
        );
        assert!(matches!(&calls[4], Call::Umount2 { flags, .. } if *flags == MntFlags::MNT_DETACH));
    }

    #[test]
    fn masked_dir_gets_ro_tmpfs_and_file_gets_dev_null() {
        let sys = RecordingSyscall::default();
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("d");
        let file = t.path().join("f");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&file, "x").unwrap();
        let null = open_dev_null(Path::new("/")).unwrap();
        mask_path(&sys, &dir, &null).unwrap();
        mask_path(&sys, &file, &null).unwrap();
        mask_path(&sys, &t.path().join("missing"), &null).unwrap();
        let calls = sys.calls();
        assert_eq!(calls.len(), 2);
        assert!(
            matches!(&calls[0], Call::Mount { fstype: Some(t), flags, .. } if t == "tmpfs" && *flags == MsFlags::MS_RDONLY)
        );
        // The checked host /dev/null, by fd, never a path the image controls.
        assert!(
            matches!(&calls[1], Call::Mount { source: Some(s), flags, .. } if *s == fd_path(&null) && *flags == MsFlags::MS_BIND)
        );
    }

    #[test]
    fn proc_mounts_are_restricted() {
        assert!(check_proc_mount(Path::new("/proc"), "proc").is_ok());
        assert!(check_proc_mount(Path::new("/proc"), "tmpfs").is_err());
        assert!(check_proc_mount(Path::new("/proc/self"), "bind").is_err());
        assert!(check_proc_mount(Path::new("/proc/meminfo"), "bind").is_ok());
        assert!(check_proc_mount(Path::new("/procfoo"), "tmpfs").is_ok());
    }

    #[test]
    fn readonly_path_binds_then_remounts() {
        let sys = RecordingSyscall::default();
        let t = tempfile::tempdir().unwrap();
        readonly_path(&sys, t.path(), false).unwrap();
        let calls = sys.calls();
        assert!(
            matches!(&calls[1], Call::Mount { flags, .. } if flags.contains(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_BIND))
        );
    }
}
