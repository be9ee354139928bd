//! Architectures a filter can carry a chain for, and syscall name lookup.
//!
//! The kernel tells a filter which ABI a syscall came in through with
//! `seccomp_data.arch` (an AUDIT_ARCH_* value). A filter must check it,
//! because the same number means different syscalls under different ABIs
//! (mkdir is 83 on x86_64 and 39 on i386).

use std::str::FromStr;

use oci_spec::runtime::Arch;

/// `AUDIT_ARCH_*` values from linux/audit.h.
pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub(crate) const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub(crate) const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
pub(crate) const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
pub(crate) const AUDIT_ARCH_RISCV64: u32 = 0xc000_00f3;

/// x32 shares AUDIT_ARCH_X86_64 with x86_64 and tells itself apart by this
/// bit in the syscall number.
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// An ABI whose syscalls a filter can match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Abi {
    X86_64,
    X86,
    X32,
    Aarch64,
    Arm,
    Riscv64,
}

impl Abi {
    pub(crate) fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::X86 => AUDIT_ARCH_I386,
            Abi::Aarch64 => AUDIT_ARCH_AARCH64,
            Abi::Arm => AUDIT_ARCH_ARM,
            Abi::Riscv64 => AUDIT_ARCH_RISCV64,
        }
    }

    /// The number `name` has under this ABI, as seccomp_data.nr shows it.
    pub(crate) fn resolve(self, name: &str) -> Option<u32> {
        match self {
            Abi::X86_64 => id(syscalls::x86_64::Sysno::from_str(name).map(|s| s.id())),
            Abi::X86 => id(syscalls::x86::Sysno::from_str(name).map(|s| s.id())),
            // libseccomp has a table of its own for x32; we approximate it
            // with the x86_64 numbers plus the x32 bit, corrected for the
            // syscalls that x32 moved to 512..=547 (their x86_64 numbers are
            // 64-bit-only entry points that an x32 task cannot use). A
            // x86_64-only syscall thus gets an x32 number the kernel answers
            // with ENOSYS, which makes an allow rule for it harmless.
            Abi::X32 => x32_only(name)
                .or_else(|| Abi::X86_64.resolve(name))
                .map(|nr| nr | X32_SYSCALL_BIT),
            Abi::Aarch64 => id(syscalls::aarch64::Sysno::from_str(name).map(|s| s.id())),
            Abi::Arm => id(syscalls::arm::Sysno::from_str(name).map(|s| s.id()))
                .or_else(|| arm_private(name)),
            Abi::Riscv64 => id(syscalls::riscv64::Sysno::from_str(name).map(|s| s.id())),
        }
    }
}

fn id(r: std::result::Result<i32, ()>) -> Option<u32> {
    r.ok().and_then(|n| u32::try_from(n).ok())
}

/// The ABIs that can make syscalls on a host: its own and its compat ones.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Host {
    pub(crate) native: Abi,
    pub(crate) compat: &'static [Abi],
}

impl Host {
    pub(crate) const X86_64: Host = Host {
        native: Abi::X86_64,
        compat: &[Abi::X86, Abi::X32],
    };
    pub(crate) const AARCH64: Host = Host {
        native: Abi::Aarch64,
        compat: &[Abi::Arm],
    };
    pub(crate) const RISCV64: Host = Host {
        native: Abi::Riscv64,
        compat: &[],
    };

    /// The host this binary was built for, if the compiler supports it.
    /// Only little-endian hosts: seccompiler's argument offsets assume it.
    pub(crate) fn current() -> Option<Host> {
        if cfg!(target_arch = "x86_64") {
            Some(Host::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Host::AARCH64)
        } else if cfg!(target_arch = "riscv64") {
            Some(Host::RISCV64)
        } else {
            None
        }
    }

    /// The ABI a profile's architecture names on this host, or `None` when
    /// that architecture cannot run here (a ppc64le entry on x86_64): a
    /// profile written for many hosts lists them all.
    pub(crate) fn abi_for(&self, arch: Arch) -> Option<Abi> {
        let abi = match arch {
            Arch::ScmpArchNative => return Some(self.native),
            Arch::ScmpArchX86_64 => Abi::X86_64,
            Arch::ScmpArchX86 => Abi::X86,
            Arch::ScmpArchX32 => Abi::X32,
            Arch::ScmpArchAarch64 => Abi::Aarch64,
            Arch::ScmpArchArm => Abi::Arm,
            Arch::ScmpArchRiscv64 => Abi::Riscv64,
            _ => return None,
        };
        (abi == self.native || self.compat.contains(&abi)).then_some(abi)
    }
}

/// Whether any architecture the syscalls crate knows (plus ARM's private
/// syscalls) has a syscall called `name`. Profiles are shared across hosts,
/// so a name missing on this host is skipped but a name missing everywhere
/// is a typo worth an error.
pub(crate) fn known_anywhere(name: &str) -> bool {
    use syscalls::*;
    x86_64::Sysno::from_str(name).is_ok()
        || x86::Sysno::from_str(name).is_ok()
        || aarch64::Sysno::from_str(name).is_ok()
        || arm::Sysno::from_str(name).is_ok()
        || arm_private(name).is_some()
        || riscv64::Sysno::from_str(name).is_ok()
        || riscv32::Sysno::from_str(name).is_ok()
        || loongarch64::Sysno::from_str(name).is_ok()
        || mips::Sysno::from_str(name).is_ok()
        || mips64::Sysno::from_str(name).is_ok()
        || powerpc::Sysno::from_str(name).is_ok()
        || powerpc64::Sysno::from_str(name).is_ok()
        || s390x::Sysno::from_str(name).is_ok()
        || sparc::Sysno::from_str(name).is_ok()
        || sparc64::Sysno::from_str(name).is_ok()
}

/// ARM's private syscalls (`__ARM_NR_*` in arch/arm/include/uapi/asm/unistd.h),
/// which the syscalls crate lacks but Docker's and podman's profiles list.
fn arm_private(name: &str) -> Option<u32> {
    const BASE: u32 = 0x000f_0000;
    let off = match name {
        "breakpoint" => 1,
        "cacheflush" => 2,
        "usr26" => 3,
        "usr32" => 4,
        "set_tls" => 5,
        "get_tls" => 6,
        _ => return None,
    };
    Some(BASE + off)
}

/// x32's own entry points (arch/x86/entry/syscalls/syscall_64.tbl, "x32"
/// rows), before the x32 bit is added.
fn x32_only(name: &str) -> Option<u32> {
    Some(match name {
        "rt_sigaction" => 512,
        "rt_sigreturn" => 513,
        "ioctl" => 514,
        "readv" => 515,
        "writev" => 516,
        "recvfrom" => 517,
        "sendmsg" => 518,
        "recvmsg" => 519,
        "execve" => 520,
        "ptrace" => 521,
        "rt_sigpending" => 522,
        "rt_sigtimedwait" => 523,
        "rt_sigqueueinfo" => 524,
        "sigaltstack" => 525,
        "timer_create" => 526,
        "mq_notify" => 527,
        "kexec_load" => 528,
        "waitid" => 529,
        "set_robust_list" => 530,
        "get_robust_list" => 531,
        "vmsplice" => 532,
        "move_pages" => 533,
        "preadv" => 534,
        "pwritev" => 535,
        "rt_tgsigqueueinfo" => 536,
        "recvmmsg" => 537,
        "sendmmsg" => 538,
        "process_vm_readv" => 539,
        "process_vm_writev" => 540,
        "setsockopt" => 541,
        "getsockopt" => 542,
        "io_setup" => 543,
        "io_submit" => 544,
        "execveat" => 545,
        "preadv2" => 546,
        "pwritev2" => 547,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_per_abi() {
        assert_eq!(Abi::X86_64.resolve("mkdir"), Some(83));
        assert_eq!(Abi::X86.resolve("mkdir"), Some(39));
        assert_eq!(Abi::X32.resolve("mkdir"), Some(83 | X32_SYSCALL_BIT));
        assert_eq!(Abi::X32.resolve("ioctl"), Some(514 | X32_SYSCALL_BIT));
        assert_eq!(Abi::X86_64.resolve("ioctl"), Some(16));
        assert_eq!(Abi::Aarch64.resolve("mkdirat"), Some(34));
        assert_eq!(Abi::Aarch64.resolve("mkdir"), None);
        assert_eq!(Abi::Arm.resolve("set_tls"), Some(0xf0005));
        assert_eq!(Abi::X86_64.resolve("socketcall"), None);
        assert_eq!(Abi::X86.resolve("socketcall"), Some(102));
    }

    #[test]
    fn known_anywhere_covers_foreign_and_private_names() {
        assert!(known_anywhere("arm_fadvise64_64"));
        assert!(known_anywhere("breakpoint"));
        assert!(known_anywhere("s390_pci_mmio_read"));
        assert!(!known_anywhere("mkdri"));
    }

    #[test]
    fn host_accepts_only_runnable_abis() {
        let h = Host::X86_64;
        assert_eq!(h.abi_for(Arch::ScmpArchNative), Some(Abi::X86_64));
        assert_eq!(h.abi_for(Arch::ScmpArchX32), Some(Abi::X32));
        assert_eq!(h.abi_for(Arch::ScmpArchPpc64le), None);
        assert_eq!(h.abi_for(Arch::ScmpArchArm), None);
        assert_eq!(Host::AARCH64.abi_for(Arch::ScmpArchArm), Some(Abi::Arm));
        assert_eq!(Host::AARCH64.abi_for(Arch::ScmpArchX86), None);
    }
}
