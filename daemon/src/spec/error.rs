//! Why a container's configuration cannot become a runtime spec.
//!
//! Messages follow dockerd's wording where it has one (scripts and users
//! grep for them) and always carry the value at fault; the variant says
//! which part of the configuration it came from.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Neither Entrypoint nor Cmd, in the container nor its image.
    #[error("no command specified")]
    NoCommand,

    /// A resource limit out of range or in conflict with another
    /// (`Memory`, `NanoCpus`, `BlkioWeight`, ...). `field` is the
    /// HostConfig field; the message is dockerd's.
    #[error("{message}")]
    Resource {
        field: &'static str,
        message: String,
    },

    /// A `CapAdd` or `CapDrop` entry the kernel has no name for.
    #[error("unknown capability: {0:?}")]
    UnknownCapability(String),

    /// A `SecurityOpt` entry berth does not know or cannot parse.
    #[error("invalid --security-opt {opt:?}: {reason}")]
    SecurityOpt { opt: String, reason: String },

    /// A seccomp profile given in `SecurityOpt` that cannot be used.
    #[error("seccomp profile: {0}")]
    Seccomp(String),

    /// A `Binds` entry that does not parse.
    #[error("invalid volume specification: '{spec}'{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    VolumeSpec {
        spec: String,
        reason: Option<String>,
    },

    /// A `Mounts` entry (or what a `Binds` entry amounts to) that is
    /// inconsistent: missing or extra fields, relative paths.
    #[error("invalid mount config for type {kind:?}: {reason}")]
    MountConfig { kind: String, reason: String },

    /// Two mounts for one destination.
    #[error("Duplicate mount point: {0}")]
    DuplicateMount(String),

    /// A `Tmpfs` entry with a bad destination or option.
    #[error("invalid tmpfs mount {destination:?}: {reason}")]
    Tmpfs { destination: String, reason: String },

    /// `User` names a user the rootfs's /etc/passwd lacks.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),

    /// `User`'s group or a `GroupAdd` entry names a group the rootfs's
    /// /etc/group lacks.
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),

    /// A numeric uid or gid outside what the kernel accepts.
    #[error("uids and gids must be in range 0-2147483647: {0}")]
    IdRange(String),

    /// Reading the rootfs (its /etc/passwd or /etc/group) failed.
    #[error("reading {path} in the container's rootfs {rootfs}: {source}")]
    Rootfs {
        rootfs: PathBuf,
        path: &'static str,
        source: std::io::Error,
    },

    /// A `Devices` entry whose host path is missing or not a device.
    #[error("error gathering device information while adding custom device {path:?}: {reason}")]
    Device { path: String, reason: String },

    /// A `Devices` entry's `CgroupPermissions` other than letters of "rwm".
    #[error("invalid device mode {mode:?} for device {path:?}: only r, w and m are allowed")]
    DeviceMode { path: String, mode: String },

    /// A `DeviceCgroupRules` entry not of the form `c 1:3 rwm`.
    #[error("invalid device cgroup format '{0}'")]
    DeviceCgroupRule(String),

    /// A `Ulimits` entry with an unknown name or soft above hard.
    #[error("invalid ulimit {name:?}: {reason}")]
    Ulimit { name: String, reason: String },

    /// A `Sysctls` key the container may not set.
    #[error("sysctl {key:?} {reason}")]
    Sysctl { key: String, reason: String },

    /// `PidMode`, `IpcMode`, `UTSMode`, `CgroupnsMode`, `UsernsMode`
    /// with a value berth does not (yet) accept.
    #[error("invalid {field} {value:?}: {reason}")]
    Mode {
        field: &'static str,
        value: String,
        reason: String,
    },

    /// The built spec did not deserialize: a bug in this module.
    #[error("building the runtime spec: {0}")]
    Internal(String),
}

impl SpecError {
    pub(crate) fn resource(field: &'static str, message: impl Into<String>) -> SpecError {
        SpecError::Resource {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn mount_config(kind: &str, reason: impl Into<String>) -> SpecError {
        SpecError::MountConfig {
            kind: kind.to_owned(),
            reason: reason.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, SpecError>;
