//! Which namespaces a container gets: new ones (created by unshare in the
//! first cloned process) and existing ones joined by path (pods and
//! `--network container:` share namespaces this way).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use crate::syscall::Syscall;

pub const CLONE_NEWTIME: i32 = 0x80;

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("linux.namespaces[{index}].path {path}: {source}")]
    Open {
        index: usize,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("linux.namespaces[{index}].path {path}: is a {found} namespace, not {want}")]
    WrongType {
        index: usize,
        path: PathBuf,
        found: String,
        want: String,
    },
    #[error("joining {typ} namespace {path}: {source}")]
    Join {
        typ: String,
        path: PathBuf,
        source: nix::errno::Errno,
    },
    #[error("creating namespaces ({what}): {source}")]
    Unshare {
        what: String,
        source: nix::errno::Errno,
    },
}

pub type Result<T> = std::result::Result<T, NamespaceError>;

pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_retain(match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => CLONE_NEWTIME,
    })
}

/// The name /proc/<pid>/ns uses for a namespace type.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

fn name_of_flag(flag: i32) -> &'static str {
    match flag {
        libc::CLONE_NEWNS => "mnt",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWNET => "net",
        CLONE_NEWTIME => "time",
        _ => "unknown",
    }
}

/// The kernel's answer to "what namespace is this fd" (NS_GET_NSTYPE).
fn ns_type_of(fd: &OwnedFd) -> Option<i32> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: ioctl without argument on an fd we own.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    (rc >= 0).then_some(rc)
}

/// A namespace to enter with setns.
#[derive(Debug)]
pub struct Join {
    pub typ: LinuxNamespaceType,
    pub path: PathBuf,
    pub fd: OwnedFd,
}

/// The namespace plan of one process.
#[derive(Debug)]
pub struct Namespaces {
    /// Existing namespaces, user first: joining it first gives the
    /// capabilities needed to join the others it owns.
    pub joins: Vec<Join>,
    /// A new user namespace is created before the others, so they are
    /// owned by it.
    pub new_user: bool,
    /// Every other new namespace, created in one unshare.
    pub new: CloneFlags,
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces {
            joins: Vec::new(),
            new_user: false,
            new: CloneFlags::empty(),
        }
    }
}

/// Order of joins: user first (privilege), mnt last (it changes the root
/// the later opens would resolve in, although all fds are open already).
fn join_rank(t: LinuxNamespaceType) -> u8 {
    match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Ipc => 1,
        LinuxNamespaceType::Uts => 2,
        LinuxNamespaceType::Network => 3,
        LinuxNamespaceType::Pid => 4,
        LinuxNamespaceType::Cgroup => 5,
        LinuxNamespaceType::Time => 6,
        LinuxNamespaceType::Mount => 7,
    }
}

fn open_ns(index: usize, typ: LinuxNamespaceType, path: &Path) -> Result<Join> {
    let fd: OwnedFd = std::fs::File::open(path)
        .map_err(|source| NamespaceError::Open {
            index,
            path: path.to_path_buf(),
            source,
        })?
        .into();
    let want = clone_flag(typ).bits();
    if let Some(found) = ns_type_of(&fd)
        && found != want
    {
        return Err(NamespaceError::WrongType {
            index,
            path: path.to_path_buf(),
            found: name_of_flag(found).to_string(),
            want: proc_name(typ).to_string(),
        });
    }
    Ok(Join {
        typ,
        path: path.to_path_buf(),
        fd,
    })
}

impl Namespaces {
    /// The plan for a new container: open every `path` now, in the
    /// runtime's own mount namespace, so a bad path fails early.
    pub fn for_create(list: &[LinuxNamespace]) -> Result<Namespaces> {
        let mut ns = Namespaces::default();
        for (index, n) in list.iter().enumerate() {
            match n.path() {
                Some(path) => ns.joins.push(open_ns(index, n.typ(), path)?),
                None if n.typ() == LinuxNamespaceType::User => ns.new_user = true,
                None => ns.new |= clone_flag(n.typ()),
            }
        }
        ns.joins.sort_by_key(|j| join_rank(j.typ));
        Ok(ns)
    }

    /// The plan for a process joining a running container: every
    /// namespace type the container's config lists, through its init.
    pub fn for_exec(list: &[LinuxNamespace], init_pid: i32) -> Result<Namespaces> {
        let mut ns = Namespaces::default();
        for (index, n) in list.iter().enumerate() {
            let path = PathBuf::from(format!("/proc/{init_pid}/ns/{}", proc_name(n.typ())));
            ns.joins.push(open_ns(index, n.typ(), &path)?);
        }
        ns.joins.sort_by_key(|j| join_rank(j.typ));
        Ok(ns)
    }

    pub fn joins_user(&self) -> bool {
        self.joins.iter().any(|j| j.typ == LinuxNamespaceType::User)
    }

    /// Whether the container's processes live in a pid namespace other
    /// than the runtime's (a new one or a joined one).
    pub fn has_pid_ns(&self) -> bool {
        self.new.contains(CloneFlags::CLONE_NEWPID)
            || self.joins.iter().any(|j| j.typ == LinuxNamespaceType::Pid)
    }

    /// setns into every joined namespace, in order.
    pub fn join_all(&self, sys: &dyn Syscall) -> Result<()> {
        for j in &self.joins {
            sys.setns(j.fd.as_fd(), clone_flag(j.typ))
                .map_err(|source| NamespaceError::Join {
                    typ: proc_name(j.typ).to_string(),
                    path: j.path.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Create the new namespaces other than user.
    pub fn unshare_rest(&self, sys: &dyn Syscall) -> Result<()> {
        if self.new.is_empty() {
            return Ok(());
        }
        sys.unshare(self.new)
            .map_err(|source| NamespaceError::Unshare {
                what: describe(self.new),
                source,
            })
    }
}

/// "mnt,pid,net" for a set of clone flags.
pub fn describe(flags: CloneFlags) -> String {
    let all = [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWCGROUP,
        CLONE_NEWTIME,
    ];
    all.iter()
        .filter(|f| flags.bits() & **f != 0)
        .map(|f| name_of_flag(*f))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::fake::{Call, RecordingSyscall};

    fn ns(t: &str, path: Option<&str>) -> LinuxNamespace {
        let mut v = serde_json::json!({ "type": t });
        if let Some(p) = path {
            v["path"] = p.into();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn plan_splits_new_and_joined_and_orders_user_first() {
        let list = [
            ns("mount", None),
            ns("network", Some("/proc/self/ns/net")),
            ns("user", Some("/proc/self/ns/user")),
            ns("pid", None),
            ns("time", None),
        ];
        let plan = Namespaces::for_create(&list).unwrap();
        assert_eq!(plan.joins[0].typ, LinuxNamespaceType::User);
        assert_eq!(plan.joins[1].typ, LinuxNamespaceType::Network);
        assert!(!plan.new_user);
        assert_eq!(describe(plan.new), "mnt,pid,time");
        let sys = RecordingSyscall::default();
        plan.join_all(&sys).unwrap();
        plan.unshare_rest(&sys).unwrap();
        let calls = sys.calls();
        assert!(
            matches!(calls[0], Call::Setns { nstype, .. } if nstype.bits() == libc::CLONE_NEWUSER)
        );
        assert!(matches!(calls[2], Call::Unshare(f) if f == plan.new));
    }

    #[test]
    fn wrong_namespace_type_is_named() {
        let err = Namespaces::for_create(&[ns("network", Some("/proc/self/ns/ipc"))]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.namespaces[0].path /proc/self/ns/ipc: is a ipc namespace, not net"
        );
        let err = Namespaces::for_create(&[ns("ipc", Some("/nonexistent/ns"))]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("linux.namespaces[0].path /nonexistent/ns:"),
            "{err}"
        );
    }
}
