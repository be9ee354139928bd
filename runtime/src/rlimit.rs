//! process.rlimits.

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    #[error(
        "process.rlimits: {name} hard limit {hard} is above the current hard limit {current}, and raising it needs CAP_SYS_RESOURCE, which this process lacks"
    )]
    Raise {
        name: String,
        hard: u64,
        current: u64,
    },
    #[error("process.rlimits: setting {name} to soft={soft} hard={hard}: {source}")]
    Set {
        name: String,
        soft: u64,
        hard: u64,
        source: nix::errno::Errno,
    },
}

fn resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

fn get(res: libc::__rlimit_resource_t) -> libc::rlimit {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct.
    unsafe { libc::getrlimit(res, &mut cur) };
    cur
}

/// Apply every rlimit; a hard limit the process may not raise is
/// reported with the current one, the usual cause being a host whose root
/// lacks CAP_SYS_RESOURCE.
pub fn apply(rlimits: &[PosixRlimit]) -> Result<(), RlimitError> {
    for r in rlimits {
        let res = resource(r.typ());
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads the struct.
        if unsafe { libc::setrlimit(res, &lim) } == 0 {
            continue;
        }
        let errno = nix::errno::Errno::last();
        let name = r.typ().to_string();
        let current = get(res).rlim_max;
        if errno == nix::errno::Errno::EPERM && r.hard() > current {
            return Err(RlimitError::Raise {
                name,
                hard: r.hard(),
                current,
            });
        }
        return Err(RlimitError::Set {
            name,
            soft: r.soft(),
            hard: r.hard(),
            source: errno,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_render_like_the_spec() {
        assert_eq!(PosixRlimitType::RlimitNofile.to_string(), "RLIMIT_NOFILE");
    }
}
