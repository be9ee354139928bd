//! Mount options as OCI configs spell them, split into what mount(2)
//! takes as flags, what it takes as data, propagation changes made after
//! the mount, and recursive attributes for mount_setattr(2).

use nix::mount::MsFlags;

// mount_setattr(2) attribute bits (linux/mount.h).
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for mount(2) (and for the remount of a bind mount).
    pub flags: MsFlags,
    /// Propagation changes, applied one by one after the mount.
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes (`rro`, `rnosuid`, ...): bits to set and clear.
    pub rec_set: u64,
    pub rec_clear: u64,
    /// Filesystem-specific options, joined with commas.
    pub data: Vec<String>,
    /// `tmpcopyup`: a tmpfs starts with the contents of the directory it
    /// covers.
    pub tmpcopyup: bool,
    /// `idmap`/`ridmap`: an id-mapped mount.
    pub idmap: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            rec_set: 0,
            rec_clear: 0,
            data: Vec::new(),
            tmpcopyup: false,
            idmap: false,
        }
    }
}

/// MS_NOSYMFOLLOW (Linux 5.10), which nix does not name.
pub const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    pub fn data_string(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }

    /// The flags a bind mount must be remounted with for them to apply:
    /// mount(2) ignores all but MS_REC on the initial bind.
    pub fn remount_flags(&self) -> MsFlags {
        self.flags
            & (MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC
                | MsFlags::MS_NOATIME
                | MsFlags::MS_NODIRATIME
                | MsFlags::MS_RELATIME
                | MsFlags::MS_STRICTATIME
                | MS_NOSYMFOLLOW)
    }
}

enum Opt {
    Set(MsFlags),
    Clear(MsFlags),
    Propagation(MsFlags),
    RecSet(u64),
    RecClear(u64),
    /// Recursive atime mode: clears the atime field, then sets the mode.
    RecAtime(u64),
    TmpCopyUp,
    IdMap,
}

fn lookup(name: &str) -> Option<Opt> {
    use MsFlags as F;
    use Opt::*;
    Some(match name {
        "defaults" => Set(F::empty()),
        "ro" => Set(F::MS_RDONLY),
        "rw" => Clear(F::MS_RDONLY),
        "suid" => Clear(F::MS_NOSUID),
        "nosuid" => Set(F::MS_NOSUID),
        "dev" => Clear(F::MS_NODEV),
        "nodev" => Set(F::MS_NODEV),
        "exec" => Clear(F::MS_NOEXEC),
        "noexec" => Set(F::MS_NOEXEC),
        "sync" => Set(F::MS_SYNCHRONOUS),
        "async" => Clear(F::MS_SYNCHRONOUS),
        "dirsync" => Set(F::MS_DIRSYNC),
        "remount" => Set(F::MS_REMOUNT),
        "mand" => Set(F::MS_MANDLOCK),
        "nomand" => Clear(F::MS_MANDLOCK),
        "atime" => Clear(F::MS_NOATIME),
        "noatime" => Set(F::MS_NOATIME),
        "diratime" => Clear(F::MS_NODIRATIME),
        "nodiratime" => Set(F::MS_NODIRATIME),
        "bind" => Set(F::MS_BIND),
        "rbind" => Set(F::MS_BIND | F::MS_REC),
        "relatime" => Set(F::MS_RELATIME),
        "norelatime" => Clear(F::MS_RELATIME),
        "strictatime" => Set(F::MS_STRICTATIME),
        "nostrictatime" => Clear(F::MS_STRICTATIME),
        "lazytime" => Set(F::MS_LAZYTIME),
        "nolazytime" => Clear(F::MS_LAZYTIME),
        "iversion" => Set(F::MS_I_VERSION),
        "noiversion" => Clear(F::MS_I_VERSION),
        "silent" => Set(F::MS_SILENT),
        "loud" => Clear(F::MS_SILENT),
        "acl" => Set(F::MS_POSIXACL),
        "noacl" => Clear(F::MS_POSIXACL),
        "symfollow" => Clear(MS_NOSYMFOLLOW),
        "nosymfollow" => Set(MS_NOSYMFOLLOW),
        "private" => Propagation(F::MS_PRIVATE),
        "rprivate" => Propagation(F::MS_PRIVATE | F::MS_REC),
        "shared" => Propagation(F::MS_SHARED),
        "rshared" => Propagation(F::MS_SHARED | F::MS_REC),
        "slave" => Propagation(F::MS_SLAVE),
        "rslave" => Propagation(F::MS_SLAVE | F::MS_REC),
        "unbindable" => Propagation(F::MS_UNBINDABLE),
        "runbindable" => Propagation(F::MS_UNBINDABLE | F::MS_REC),
        "rro" => RecSet(MOUNT_ATTR_RDONLY),
        "rrw" => RecClear(MOUNT_ATTR_RDONLY),
        "rnosuid" => RecSet(MOUNT_ATTR_NOSUID),
        "rsuid" => RecClear(MOUNT_ATTR_NOSUID),
        "rnodev" => RecSet(MOUNT_ATTR_NODEV),
        "rdev" => RecClear(MOUNT_ATTR_NODEV),
        "rnoexec" => RecSet(MOUNT_ATTR_NOEXEC),
        "rexec" => RecClear(MOUNT_ATTR_NOEXEC),
        "rnodiratime" => RecSet(MOUNT_ATTR_NODIRATIME),
        "rdiratime" => RecClear(MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => RecSet(MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => RecClear(MOUNT_ATTR_NOSYMFOLLOW),
        "rrelatime" => RecAtime(MOUNT_ATTR_RELATIME),
        "rnorelatime" => RecAtime(MOUNT_ATTR_STRICTATIME),
        "rnoatime" => RecAtime(MOUNT_ATTR_NOATIME),
        "ratime" | "rstrictatime" => RecAtime(MOUNT_ATTR_STRICTATIME),
        "rnostrictatime" => RecAtime(MOUNT_ATTR_RELATIME),
        "tmpcopyup" => TmpCopyUp,
        "idmap" | "ridmap" => IdMap,
        _ => return None,
    })
}

/// Parse a mount's option list. Unknown names are filesystem data
/// (`mode=755`, `size=64k`, `newinstance`), as runc treats them.
pub fn parse(options: &[String]) -> MountOptions {
    let mut out = MountOptions::default();
    for o in options {
        match lookup(o) {
            Some(Opt::Set(f)) => out.flags |= f,
            Some(Opt::Clear(f)) => out.flags &= !f,
            Some(Opt::Propagation(f)) => out.propagation.push(f),
            Some(Opt::RecSet(a)) => {
                out.rec_set |= a;
                out.rec_clear &= !a;
            }
            Some(Opt::RecClear(a)) => {
                out.rec_clear |= a;
                out.rec_set &= !a;
            }
            Some(Opt::RecAtime(a)) => {
                out.rec_clear |= MOUNT_ATTR__ATIME;
                out.rec_set = (out.rec_set & !MOUNT_ATTR__ATIME) | a;
            }
            Some(Opt::TmpCopyUp) => out.tmpcopyup = true,
            Some(Opt::IdMap) => out.idmap = true,
            None => out.data.push(o.clone()),
        }
    }
    out
}

/// The propagation flag for `linux.rootfsPropagation`.
pub fn propagation_flag(name: &str) -> Option<MsFlags> {
    match lookup(name) {
        Some(Opt::Propagation(f)) => Some(f),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_and_propagation_are_split() {
        let o = p(&[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "rslave",
        ]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC);
        assert_eq!(
            o.data_string().as_deref(),
            Some("newinstance,ptmxmode=0666,mode=0620")
        );
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
    }

    #[test]
    fn later_options_override_earlier_ones() {
        assert_eq!(p(&["ro", "rw"]).flags, MsFlags::empty());
        assert_eq!(p(&["rw", "ro"]).flags, MsFlags::MS_RDONLY);
        assert_eq!(p(&["nodev", "dev"]).flags, MsFlags::empty());
    }

    #[test]
    fn bind_and_remount_flags() {
        let o = p(&["rbind", "ro", "nosuid"]);
        assert!(o.is_bind());
        assert!(o.flags.contains(MsFlags::MS_REC));
        assert_eq!(o.remount_flags(), MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
    }

    #[test]
    fn recursive_attributes() {
        let o = p(&["rbind", "rro", "rnosuid", "rnoatime"]);
        assert_eq!(
            o.rec_set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(o.rec_clear, MOUNT_ATTR__ATIME);
        assert!(o.flags.is_empty() || o.flags == MsFlags::MS_BIND | MsFlags::MS_REC);
    }

    #[test]
    fn extensions() {
        assert!(p(&["tmpcopyup"]).tmpcopyup);
        assert!(p(&["idmap"]).idmap);
        assert_eq!(
            propagation_flag("rshared"),
            Some(MsFlags::MS_SHARED | MsFlags::MS_REC)
        );
        assert_eq!(propagation_flag("ro"), None);
    }
}
