//! The five capability sets of a container process.

use std::collections::HashSet;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::LinuxCapabilities;

#[derive(Debug, thiserror::Error)]
pub enum CapError {
    #[error("process.capabilities.{set}: {source}")]
    Set {
        set: &'static str,
        source: caps::errors::CapsError,
    },
    #[error("process.capabilities.bounding: dropping {cap}: {source}")]
    Bounding {
        cap: Capability,
        source: caps::errors::CapsError,
    },
}

/// The sets to give the process, restricted to what the running kernel
/// knows (a config may name capabilities newer than the kernel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
}

fn convert(
    set: Option<&HashSet<oci_spec::runtime::Capability>>,
    known: &CapsHashSet,
) -> CapsHashSet {
    set.into_iter()
        .flatten()
        .filter_map(|c| {
            let name = format!("CAP_{c}");
            match name.parse::<Capability>() {
                Ok(cap) if known.contains(&cap) => Some(cap),
                _ => {
                    tracing::warn!(
                        "capability {name} is not supported by this kernel; ignoring it"
                    );
                    None
                }
            }
        })
        .collect()
}

impl CapSets {
    pub fn from_oci(c: Option<&LinuxCapabilities>) -> CapSets {
        let known = caps::runtime::thread_all_supported();
        let Some(c) = c else {
            return CapSets::default();
        };
        CapSets {
            bounding: convert(c.bounding().as_ref(), &known),
            effective: convert(c.effective().as_ref(), &known),
            permitted: convert(c.permitted().as_ref(), &known),
            inheritable: convert(c.inheritable().as_ref(), &known),
            ambient: convert(c.ambient().as_ref(), &known),
        }
    }

    /// Add `cap` to the bounding, effective and permitted sets, as
    /// `exec --cap` does.
    pub fn add(&mut self, cap: Capability) {
        self.bounding.insert(cap);
        self.effective.insert(cap);
        self.permitted.insert(cap);
    }
}

/// Shrink the bounding set. Done while still privileged, before the user
/// switch, because dropping needs CAP_SETPCAP.
pub fn drop_bounding(sets: &CapSets) -> Result<(), CapError> {
    for cap in caps::runtime::thread_all_supported() {
        if !sets.bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|source| CapError::Bounding { cap, source })?;
        }
    }
    Ok(())
}

/// Set effective, inheritable, permitted, then ambient. Effective shrinks
/// first so that it never exceeds permitted while permitted shrinks.
pub fn apply(sets: &CapSets) -> Result<(), CapError> {
    let err = |set| move |source| CapError::Set { set, source };
    caps::set(None, CapSet::Effective, &sets.effective).map_err(err("effective"))?;
    caps::set(None, CapSet::Inheritable, &sets.inheritable).map_err(err("inheritable"))?;
    caps::set(None, CapSet::Permitted, &sets.permitted).map_err(err("permitted"))?;
    caps::set(None, CapSet::Effective, &sets.effective).map_err(err("effective"))?;
    if !sets.ambient.is_empty() || caps::runtime::ambient_set_supported().is_ok() {
        caps::clear(None, CapSet::Ambient).map_err(err("ambient"))?;
        for cap in &sets.ambient {
            // The kernel only allows ambient caps that are both permitted and
            // inheritable; runc skips the others rather than failing.
            if sets.permitted.contains(cap) && sets.inheritable.contains(cap) {
                caps::raise(None, CapSet::Ambient, *cap).map_err(err("ambient"))?;
            } else {
                tracing::debug!("ambient {cap} skipped: not in permitted and inheritable");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_names_and_add() {
        let oci: LinuxCapabilities = serde_json::from_value(serde_json::json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_KILL"]
        }))
        .unwrap();
        let mut s = CapSets::from_oci(Some(&oci));
        assert!(s.bounding.contains(&Capability::CAP_CHOWN));
        assert_eq!(s.effective.len(), 1);
        s.add(Capability::CAP_NET_RAW);
        assert!(s.permitted.contains(&Capability::CAP_NET_RAW));
        assert!(s.bounding.contains(&Capability::CAP_NET_RAW));
    }
}
