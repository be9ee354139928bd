//! Sandboxes: a container's network namespace kept alive as a file, so the
//! daemon can name it in the OCI spec before the container starts and the
//! interfaces can be set up in it from outside.
//!
//! Namespace switching happens on a dedicated short-lived thread (setns
//! acts on the calling thread only); no thread of the caller ever leaves
//! its own namespace.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::error::{NetdError, Result};
use crate::netlink::Nl;

fn ns_err(op: &'static str, path: &Path) -> impl FnOnce(nix::Error) -> NetdError {
    let path = path.to_path_buf();
    move |source| NetdError::Namespace { op, path, source }
}

/// Run `f` on a thread that joined the network namespace `netns`.
pub fn in_netns<T: Send>(netns: &Path, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let file = File::open(netns).map_err(NetdError::io("opening", netns))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(ns_err("setns", netns))?;
            f()
        })
        .join()
        .expect("netns thread panicked")
    })
}

/// Create a new network namespace and bind it onto `path`, with its
/// loopback up as a container expects.
pub fn create(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(NetdError::io("creating", dir))?;
    }
    File::create(path).map_err(NetdError::io("creating", path))?;
    let made = std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(ns_err("unshare", path))?;
            let tid = nix::unistd::gettid();
            let src = PathBuf::from(format!("/proc/self/task/{tid}/ns/net"));
            nix::mount::mount(
                Some(&src),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(ns_err("bind mount", path))?;
            let nl = Nl::open()?;
            let lo = nl.index("lo")?;
            nl.set_up(lo)
        })
        .join()
        .expect("netns thread panicked")
    });
    if made.is_err() {
        let _ = remove(path);
    }
    made
}

/// Whether `path` is a network namespace file (a bind mount of nsfs).
pub fn is_netns(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Unmount and unlink a sandbox file. The namespace itself goes when its
/// last process and mount are gone.
pub fn remove(path: &Path) -> Result<()> {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(ns_err("unmount", path)(e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetdError::io("removing", path)(e)),
    }
}
