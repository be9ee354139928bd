//! Device rules on cgroup v2: the OCI `linux.resources.devices` list
//! compiled into a BPF_PROG_TYPE_CGROUP_DEVICE program and attached to
//! the container's cgroup.
//!
//! Semantics, as the v1 devices cgroup reads the same list: rules apply
//! in order and, for each access asked (mknod, read, write), the last
//! rule that matches the device and names that access decides. A
//! type-`a` rule resets everything, whatever its numbers and access (the
//! kernel's devices.allow/deny treat `a` that way): allow-all or
//! deny-all. Before any type-`a` rule, everything is allowed (a fresh v1
//! cgroup inherits the root's allow-all). FIFO rules are ignored: the
//! kernel asks only about block and char devices.
//!
//! One deliberate difference from the v1 kernel: a deny of one device
//! after an allow of a wildcard (`c 136:* rwm` then deny `c 136:3 rwm`)
//! does deny that device here, as "last match wins" says; v1 only
//! removes exact duplicates from its allow list.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::bpf::{self, Cmp, Insn, Reg};
use super::{CgroupError, Result};

/// `struct bpf_cgroup_dev_ctx` access_type: the device type in the low
/// 16 bits, the access in the high 16.
pub const DEV_BLOCK: u32 = 1;
pub const DEV_CHAR: u32 = 2;
pub const ACC_MKNOD: u32 = 1;
pub const ACC_READ: u32 = 2;
pub const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;
/// Not a kernel bit: stands in for a request with no access bit at all
/// (the kernel asks that for exec and access(X_OK) on a device node).
/// Every rule names it, so such a request goes to the last rule that
/// matches the device, as in v1 and runc.
const ACC_ANY: u32 = 8;

// Registers of the program: r1 holds the context on entry.
const R_CTX: Reg = 1;
const R_ACC: Reg = 2;
const R_TYPE: Reg = 3;
const R_MAJOR: Reg = 4;
const R_MINOR: Reg = 5;
const R_TMP: Reg = 1;

/// One rule with a device type (type-`a` rules are folded into the
/// default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    allow: bool,
    typ: u32,
    major: Option<u32>,
    minor: Option<u32>,
    access: u32,
}

/// What the program evaluates: a default, from the last type-`a` rule
/// (allow without one), and the rules after that rule, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFilter {
    default_allow: bool,
    rules: Vec<Rule>,
}

fn invalid(field: &str, reason: String) -> CgroupError {
    CgroupError::InvalidResource {
        field: format!("devices.{field}"),
        reason,
    }
}

/// The access bits of a rule: absent or empty is `rwm`, as on v1.
fn access_bits(rule: &LinuxDeviceCgroup) -> Result<u32> {
    let a = match rule.access().as_deref() {
        None | Some("") => return Ok(ACC_ALL),
        Some(a) => a,
    };
    a.chars().try_fold(0, |bits, c| match c {
        'm' => Ok(bits | ACC_MKNOD),
        'r' => Ok(bits | ACC_READ),
        'w' => Ok(bits | ACC_WRITE),
        _ => Err(invalid(
            "access",
            format!("{a:?} is not a subset of \"rwm\""),
        )),
    })
}

/// A major or minor: absent or negative is the wildcard.
fn number(field: &str, n: Option<i64>) -> Result<Option<u32>> {
    match n {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| invalid(field, format!("{n} is not a device number"))),
    }
}

impl DeviceFilter {
    pub fn from_oci(rules: &[LinuxDeviceCgroup]) -> Result<Self> {
        let mut f = DeviceFilter {
            default_allow: true,
            rules: Vec::new(),
        };
        for r in rules {
            // Validated for every rule, also those a later `a` drops.
            let access = access_bits(r)?;
            let major = number("major", r.major())?;
            let minor = number("minor", r.minor())?;
            let typ = match r.typ() {
                None | Some(LinuxDeviceType::A) => {
                    f.default_allow = r.allow();
                    f.rules.clear();
                    continue;
                }
                Some(LinuxDeviceType::P) => continue,
                Some(LinuxDeviceType::B) => DEV_BLOCK,
                Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => DEV_CHAR,
            };
            f.rules.push(Rule {
                allow: r.allow(),
                typ,
                major,
                minor,
                access,
            });
        }
        Ok(f)
    }

    /// The program: the rules from last to first, so that the first
    /// one to decide is the one that wins. R_ACC holds the access bits
    /// not decided yet; an allow clears its bits (all clear: allowed), a
    /// deny naming any bit still pending denies.
    pub fn program(&self) -> Result<Vec<Insn>> {
        #[derive(Clone, Copy, PartialEq)]
        enum To {
            Allow,
            Deny,
        }
        let mut p = vec![
            Insn::ldx_w(R_ACC, R_CTX, 0),
            Insn::mov_reg(R_TYPE, R_ACC),
            Insn::and_imm(R_TYPE, 0xffff),
            Insn::rsh_imm(R_ACC, 16),
            Insn::jmp_imm(Cmp::Ne, R_ACC, 0, 1),
            Insn::mov_imm(R_ACC, ACC_ANY as i32),
            Insn::ldx_w(R_MAJOR, R_CTX, 4),
            Insn::ldx_w(R_MINOR, R_CTX, 8),
        ];
        let mut exits: Vec<(usize, To)> = Vec::new();
        for r in self.rules.iter().rev() {
            // Each check skips to the next rule when the device differs.
            let mut skips = vec![p.len()];
            p.push(Insn::jmp32_imm(Cmp::Ne, R_TYPE, r.typ, 0));
            for (reg, n) in [(R_MAJOR, r.major), (R_MINOR, r.minor)] {
                if let Some(n) = n {
                    skips.push(p.len());
                    p.push(Insn::jmp32_imm(Cmp::Ne, reg, n, 0));
                }
            }
            let acc = r.access | ACC_ANY;
            if r.access == ACC_ALL {
                // Decides whatever is pending.
                p.push(Insn::mov_imm(0, i32::from(r.allow)));
                p.push(Insn::exit());
            } else if r.allow {
                p.push(Insn::and_imm(R_ACC, !acc as i32));
                exits.push((p.len(), To::Allow));
                p.push(Insn::jmp_imm(Cmp::Eq, R_ACC, 0, 0));
            } else {
                p.push(Insn::mov_reg(R_TMP, R_ACC));
                p.push(Insn::and_imm(R_TMP, acc as i32));
                exits.push((p.len(), To::Deny));
                p.push(Insn::jmp_imm(Cmp::Ne, R_TMP, 0, 0));
            }
            let next = p.len();
            for at in skips {
                p[at] = p[at].with_off(jump(at, next)?);
            }
        }
        p.push(Insn::mov_imm(0, i32::from(self.default_allow)));
        p.push(Insn::exit());
        // The shared exits only when used: the verifier refuses
        // unreachable instructions.
        for to in [To::Allow, To::Deny] {
            if exits.iter().any(|&(_, t)| t == to) {
                let target = p.len();
                p.push(Insn::mov_imm(0, i32::from(to == To::Allow)));
                p.push(Insn::exit());
                for &(at, _) in exits.iter().filter(|&&(_, t)| t == to) {
                    p[at] = p[at].with_off(jump(at, target)?);
                }
            }
        }
        Ok(p)
    }
}

/// The offset of a jump at `from` to `to`.
fn jump(from: usize, to: usize) -> Result<i16> {
    i16::try_from(to - from - 1).map_err(|_| {
        invalid(
            "",
            "too many device rules for one eBPF program (jumps over 32767 instructions)".into(),
        )
    })
}

/// Whether bpf(2) is out of reach by design: not root, or root of a user
/// namespace (rootless containers), where no device filter can be
/// loaded. Such a container cannot reach devices its user could not
/// anyway, so the rules are skipped there, as runc does.
fn unprivileged() -> bool {
    if !nix::unistd::geteuid().is_root() {
        return true;
    }
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

/// Compile `rules`, attach the program to the cgroup v2 directory `dir`
/// and detach the device programs that were there before, so that the
/// cgroup is never without a filter. Programs are queried *before* the
/// attach: two concurrent updates then each detach only what predates
/// both, and can leave two programs (both must allow: stricter), never
/// none.
pub fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let insns = DeviceFilter::from_oci(rules)?.program()?;
    let err = |op: &'static str, source: io::Error| CgroupError::DeviceFilter {
        path: dir.to_path_buf(),
        op,
        source,
        log: String::new(),
    };
    let prog = match bpf::load_cgroup_device(&insns, "berth_devices") {
        Ok(p) => p,
        Err((e, _)) if e.raw_os_error() == Some(libc::EPERM) && unprivileged() => {
            tracing::warn!(path = %dir.display(),
                "device rules not enforced: loading an eBPF program needs privileges this rootless runtime lacks");
            return Ok(());
        }
        Err((source, log)) => {
            return Err(CgroupError::DeviceFilter {
                path: dir.to_path_buf(),
                op: "loading the eBPF program (BPF_PROG_LOAD)",
                source,
                log,
            });
        }
    };
    // O_PATH would not do: the kernel resolves the cgroup through a
    // regular open file.
    let cg = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                CgroupError::Gone {
                    path: dir.to_path_buf(),
                }
            } else {
                CgroupError::Read {
                    path: dir.to_path_buf(),
                    source,
                }
            }
        })?;
    let old = bpf::query_device(cg.as_fd())
        .map_err(|e| err("querying attached programs (BPF_PROG_QUERY)", e))?;
    bpf::attach_device(cg.as_fd(), prog.as_fd())
        .map_err(|e| err("attaching the program (BPF_PROG_ATTACH)", e))?;
    let enoent = |e: &io::Error| e.raw_os_error() == Some(libc::ENOENT);
    for id in &old {
        // Gone meanwhile (a concurrent update detached it): fine.
        let fd = match bpf::prog_fd_by_id(*id) {
            Ok(fd) => fd,
            Err(e) if enoent(&e) => continue,
            Err(e) => return Err(err("opening an old program (BPF_PROG_GET_FD_BY_ID)", e)),
        };
        match bpf::detach_device(cg.as_fd(), fd.as_fd()) {
            Ok(()) => {}
            Err(e) if enoent(&e) => {}
            Err(e) => return Err(err("detaching an old program (BPF_PROG_DETACH)", e)),
        }
    }
    tracing::debug!(path = %dir.display(), rules = rules.len(), insns = insns.len(),
        replaced = old.len(), "device filter attached");
    Ok(())
}

/// The reading of `rules` the program must agree with, written straight
/// from the semantics in the module docs, over the OCI rules themselves.
#[cfg(test)]
pub fn rules_allow(
    rules: &[LinuxDeviceCgroup],
    typ: u32,
    major: u32,
    minor: u32,
    acc: u32,
) -> bool {
    let asked: Vec<u32> = if acc == 0 {
        vec![ACC_ANY]
    } else {
        [ACC_MKNOD, ACC_READ, ACC_WRITE]
            .into_iter()
            .filter(|b| acc & b != 0)
            .collect()
    };
    let mut allowed = vec![true; asked.len()];
    for r in rules {
        let rtyp = match r.typ() {
            None | Some(LinuxDeviceType::A) => {
                allowed.iter_mut().for_each(|a| *a = r.allow());
                continue;
            }
            Some(LinuxDeviceType::P) => continue,
            Some(LinuxDeviceType::B) => DEV_BLOCK,
            Some(_) => DEV_CHAR,
        };
        let num_ok = |n: Option<i64>, v: u32| n.is_none_or(|n| n < 0 || n == i64::from(v));
        if rtyp != typ || !num_ok(r.major(), major) || !num_ok(r.minor(), minor) {
            continue;
        }
        let names = |bit: u32| match r.access().as_deref() {
            None | Some("") => true,
            Some(s) => {
                bit == ACC_ANY
                    || s.contains(match bit {
                        ACC_MKNOD => 'm',
                        ACC_READ => 'r',
                        _ => 'w',
                    })
            }
        };
        for (a, &bit) in allowed.iter_mut().zip(&asked) {
            if names(bit) {
                *a = r.allow();
            }
        }
    }
    allowed.iter().all(|&a| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        typ: Option<LinuxDeviceType>,
        major: Option<i64>,
        minor: Option<i64>,
        access: Option<&str>,
    ) -> LinuxDeviceCgroup {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow)
            .set_typ(typ)
            .set_major(major)
            .set_minor(minor)
            .set_access(access.map(str::to_owned));
        r
    }

    fn deny_all() -> LinuxDeviceCgroup {
        rule(false, None, None, None, Some("rwm"))
    }

    fn ctx(typ: u32, major: u32, minor: u32, acc: u32) -> [u8; 12] {
        let mut c = [0u8; 12];
        c[..4].copy_from_slice(&(typ | acc << 16).to_ne_bytes());
        c[4..8].copy_from_slice(&major.to_ne_bytes());
        c[8..].copy_from_slice(&minor.to_ne_bytes());
        c
    }

    /// Every instruction reachable and every jump inside the program:
    /// what the verifier's CFG check demands.
    fn check_cfg(p: &[Insn]) {
        let mut seen = vec![false; p.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            assert!(
                pc < p.len(),
                "jump to {pc} outside a program of {}",
                p.len()
            );
            if std::mem::replace(&mut seen[pc], true) {
                continue;
            }
            let i = p[pc];
            if i == Insn::exit() {
                continue;
            }
            if i.is_cond_jump() {
                assert!(i.off() >= 0, "backward jump at {pc}");
                todo.push(pc + 1 + i.off() as usize);
            }
            todo.push(pc + 1);
        }
        let dead: Vec<usize> = (0..p.len()).filter(|&i| !seen[i]).collect();
        assert!(
            dead.is_empty(),
            "unreachable instructions {dead:?} in {p:#?}"
        );
    }

    /// The program's answer, after the CFG check.
    fn run(rules: &[LinuxDeviceCgroup], typ: u32, major: u32, minor: u32, acc: u32) -> bool {
        let p = DeviceFilter::from_oci(rules).unwrap().program().unwrap();
        check_cfg(&p);
        match bpf::emulate(&p, &ctx(typ, major, minor, acc)) {
            Ok(1) => true,
            Ok(0) => false,
            other => panic!("program returned {other:?}"),
        }
    }

    /// Both readings agree and give `want`.
    fn expect(rules: &[LinuxDeviceCgroup], typ: u32, major: u32, minor: u32, acc: u32, want: bool) {
        let what = format!("type {typ} {major}:{minor} access {acc:#b}");
        assert_eq!(
            rules_allow(rules, typ, major, minor, acc),
            want,
            "reference, {what}"
        );
        assert_eq!(run(rules, typ, major, minor, acc), want, "program, {what}");
    }

    const R: u32 = ACC_READ;
    const W: u32 = ACC_WRITE;
    const M: u32 = ACC_MKNOD;
    const RW: u32 = ACC_READ | ACC_WRITE;
    use LinuxDeviceType::{A, B, C, P, U};

    #[test]
    fn default_deny_with_dev_null() {
        let rules = [
            deny_all(),
            rule(true, Some(C), Some(1), Some(3), Some("rwm")),
        ];
        for acc in [R, W, M, RW, ACC_ALL, 0] {
            expect(&rules, DEV_CHAR, 1, 3, acc, true);
            expect(&rules, DEV_CHAR, 1, 5, acc, false);
            expect(&rules, DEV_BLOCK, 1, 3, acc, false);
        }
        expect(&rules, DEV_CHAR, 3, 1, R, false);
    }

    #[test]
    fn deny_one_device_after_allow_all() {
        let rules = [
            rule(true, Some(A), None, None, None),
            rule(false, Some(C), Some(1), Some(9), Some("rwm")),
        ];
        expect(&rules, DEV_CHAR, 1, 9, R, false);
        expect(&rules, DEV_CHAR, 1, 9, 0, false);
        expect(&rules, DEV_CHAR, 1, 8, RW, true);
        expect(&rules, DEV_BLOCK, 1, 9, R, true);
        expect(&rules, DEV_BLOCK, 8, 0, ACC_ALL, true);
    }

    #[test]
    fn wildcard_numbers() {
        for wild in [None, Some(-1)] {
            let rules = [deny_all(), rule(true, Some(C), wild, Some(3), Some("r"))];
            expect(&rules, DEV_CHAR, 1, 3, R, true);
            expect(&rules, DEV_CHAR, 200, 3, R, true);
            expect(&rules, DEV_CHAR, u32::MAX, 3, R, true);
            expect(&rules, DEV_CHAR, 1, 3, W, false);
            expect(&rules, DEV_CHAR, 1, 3, RW, false);
            expect(&rules, DEV_CHAR, 1, 4, R, false);
            expect(&rules, DEV_BLOCK, 1, 3, R, false);
            let pts = [
                deny_all(),
                rule(true, Some(C), Some(136), wild, Some("rwm")),
            ];
            expect(&pts, DEV_CHAR, 136, 0, RW, true);
            expect(&pts, DEV_CHAR, 136, 1 << 19, RW, true);
            expect(&pts, DEV_CHAR, 137, 0, RW, false);
        }
        // Numbers past i32::MAX compare as the u32 they are.
        let big = [
            deny_all(),
            rule(true, Some(B), Some(4_000_000_000), Some(1), None),
        ];
        expect(&big, DEV_BLOCK, 4_000_000_000, 1, R, true);
        expect(&big, DEV_BLOCK, 1, 1, R, false);
    }

    #[test]
    fn mknod_only_rules() {
        let rules = [
            deny_all(),
            rule(true, Some(C), None, None, Some("m")),
            rule(true, Some(B), None, None, Some("m")),
        ];
        expect(&rules, DEV_CHAR, 1, 3, M, true);
        expect(&rules, DEV_BLOCK, 8, 0, M, true);
        expect(&rules, DEV_CHAR, 1, 3, R, false);
        expect(&rules, DEV_CHAR, 1, 3, M | R, false);
        // And the reverse: everything but mknod.
        let no_mknod = [
            rule(true, Some(A), None, None, None),
            rule(false, Some(C), None, None, Some("m")),
        ];
        expect(&no_mknod, DEV_CHAR, 1, 3, M, false);
        expect(&no_mknod, DEV_CHAR, 1, 3, RW, true);
        expect(&no_mknod, DEV_BLOCK, 8, 0, M, true);
    }

    #[test]
    fn later_rules_win_per_access() {
        let rules = [
            deny_all(),
            rule(true, Some(C), Some(1), Some(9), Some("rwm")),
            rule(false, Some(C), Some(1), Some(9), Some("w")),
        ];
        expect(&rules, DEV_CHAR, 1, 9, R, true);
        expect(&rules, DEV_CHAR, 1, 9, M, true);
        expect(&rules, DEV_CHAR, 1, 9, W, false);
        expect(&rules, DEV_CHAR, 1, 9, RW, false);
        // A later allow re-opens it; a later deny-all closes everything.
        let mut more = rules.to_vec();
        more.push(rule(true, Some(C), Some(1), None, Some("w")));
        expect(&more, DEV_CHAR, 1, 9, RW, true);
        more.push(rule(false, Some(A), Some(1), Some(9), Some("r")));
        expect(&more, DEV_CHAR, 1, 9, W, false);
        expect(&more, DEV_CHAR, 5, 0, W, false);
        // Punching a hole in a wildcard allow.
        let hole = [
            deny_all(),
            rule(true, Some(C), Some(136), None, Some("rwm")),
            rule(false, Some(C), Some(136), Some(3), None),
        ];
        expect(&hole, DEV_CHAR, 136, 3, R, false);
        expect(&hole, DEV_CHAR, 136, 4, R, true);
    }

    #[test]
    fn type_a_rules_reset_whatever_their_fields() {
        // As devices.allow/deny read "a": numbers and access ignored.
        let rules = [deny_all(), rule(true, Some(A), Some(1), Some(3), Some("r"))];
        expect(&rules, DEV_BLOCK, 8, 0, W, true);
        let rules = [rule(false, Some(A), Some(1), Some(3), Some("r"))];
        expect(&rules, DEV_CHAR, 5, 0, W, false);
        // FIFOs are not the devices cgroup's business; `u` is a char
        // device.
        let rules = [
            deny_all(),
            rule(true, Some(P), None, None, None),
            rule(true, Some(U), Some(4), Some(1), None),
        ];
        expect(&rules, DEV_CHAR, 4, 1, RW, true);
        expect(&rules, DEV_CHAR, 4, 2, RW, false);
        expect(&rules, DEV_BLOCK, 4, 1, RW, false);
    }

    #[test]
    fn no_rules_allow_everything() {
        expect(&[], DEV_BLOCK, 8, 0, ACC_ALL, true);
        let p = DeviceFilter::from_oci(&[]).unwrap().program().unwrap();
        assert_eq!(p.len(), 10, "{p:#?}");
    }

    #[test]
    fn default_rules_after_deny_all() {
        let mut rules = vec![deny_all()];
        rules.extend(super::super::default_device_rules());
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
            (136, 0),
            (136, 77),
        ] {
            expect(&rules, DEV_CHAR, major, minor, RW, true);
            expect(&rules, DEV_CHAR, major, minor, M, true);
        }
        for (typ, major, minor) in [
            (DEV_CHAR, 1, 1),
            (DEV_CHAR, 1, 4),
            (DEV_CHAR, 4, 0),
            (DEV_CHAR, 10, 200),
            (DEV_BLOCK, 8, 0),
            (DEV_BLOCK, 1, 3),
        ] {
            expect(&rules, typ, major, minor, R, false);
        }
        // Small enough to load and run fast: ~5 instructions per rule.
        let p = DeviceFilter::from_oci(&rules).unwrap().program().unwrap();
        assert!(p.len() < 60, "{} instructions", p.len());
    }

    #[test]
    fn bad_rules_are_refused() {
        let e = DeviceFilter::from_oci(&[rule(true, Some(C), Some(1), Some(3), Some("rx"))])
            .unwrap_err();
        assert!(e.to_string().contains("devices.access"), "{e}");
        let e = DeviceFilter::from_oci(&[rule(true, Some(C), Some(1 << 32), Some(3), None)])
            .unwrap_err();
        assert!(e.to_string().contains("devices.major"), "{e}");
        // Even when a later deny-all makes the rule moot.
        assert!(
            DeviceFilter::from_oci(&[
                rule(true, Some(C), Some(1), Some(1 << 40), None),
                deny_all()
            ])
            .is_err()
        );
    }

    #[test]
    fn huge_rule_lists_fail_cleanly() {
        let mut rules = vec![deny_all()];
        for i in 0..8000 {
            rules.push(rule(i % 2 == 0, Some(C), Some(i), Some(i), Some("r")));
        }
        let e = DeviceFilter::from_oci(&rules)
            .unwrap()
            .program()
            .unwrap_err();
        assert!(e.to_string().contains("too many device rules"), "{e}");
    }

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn pick<T: Copy>(&mut self, from: &[T]) -> T {
            from[(self.next() % from.len() as u64) as usize]
        }
    }

    #[test]
    fn program_agrees_with_the_rules_on_random_cases() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let types = [
            None,
            Some(A),
            Some(B),
            Some(C),
            Some(C),
            Some(B),
            Some(U),
            Some(P),
        ];
        let nums = [
            None,
            Some(-1),
            Some(0),
            Some(1),
            Some(3),
            Some(136),
            Some(4_000_000_000),
        ];
        let accesses = [
            None,
            Some(""),
            Some("r"),
            Some("w"),
            Some("m"),
            Some("rw"),
            Some("rm"),
            Some("wm"),
            Some("rwm"),
            Some("mwr"),
        ];
        let query_nums = [0u32, 1, 3, 136, 4_000_000_000, 7];
        let mut checked = 0;
        for _ in 0..2000 {
            let n = rng.next() % 7;
            let rules: Vec<_> = (0..n)
                .map(|_| {
                    rule(
                        rng.next() % 2 == 0,
                        rng.pick(&types),
                        rng.pick(&nums),
                        rng.pick(&nums),
                        rng.pick(&accesses),
                    )
                })
                .collect();
            let p = DeviceFilter::from_oci(&rules).unwrap().program().unwrap();
            check_cfg(&p);
            for _ in 0..40 {
                let typ = rng.pick(&[DEV_BLOCK, DEV_CHAR]);
                let (major, minor) = (rng.pick(&query_nums), rng.pick(&query_nums));
                let acc = (rng.next() % 8) as u32;
                let got = bpf::emulate(&p, &ctx(typ, major, minor, acc)).unwrap();
                let want = rules_allow(&rules, typ, major, minor, acc);
                assert_eq!(
                    got,
                    u64::from(want),
                    "type {typ} {major}:{minor} access {acc:#b} with rules {rules:#?}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 80_000);
    }
}
