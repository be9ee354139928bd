//! Profile → classic BPF.
//!
//! # Program layout
//!
//! ```text
//! prologue:  LD arch
//!            JEQ <audit arch of block 1>, 0, 1 ; JA block 1
//!            ...                               (one pair per ABI block)
//!            RET KILL_PROCESS                  (an arch the profile lacks)
//! block:     LD nr
//!            [x86_64 only] JGE 0x40000000, 0, 1 ; JA x32 block | RET KILL_PROCESS
//!            conditional chains  (syscalls with argument rules)
//!            search tree  (every other syscall: JGE over runs of numbers
//!                          that share an action, RET per run)
//! ```
//!
//! # Why per-rule actions are safe with seccompiler's rule encoding
//!
//! seccompiler's `SeccompFilter` has one match action for the whole filter,
//! so we do not use it. We use its public `SeccompRule` → `BpfProgram`
//! conversion, which encodes a rule's conditions assuming the layout of
//! seccompiler's `append_syscall_chain`:
//!
//! ```text
//! JEQ nr, 0, 1
//! rule 1 BPF ; RET <match>
//! rule 2 BPF ; RET <match>
//! ...
//! RET <mismatch>
//! ```
//!
//! A rule's BPF starts with `JA 1` (enter) and `JA len+1` (leave), and a
//! failing condition jumps to the instruction just past the rule's RET. All
//! these offsets count the RET after the rule as exactly one instruction
//! and never look at its value. So we keep the layout instruction for
//! instruction and only change the values: each rule's RET carries that
//! rule's own action, and the chain's closing RET carries the action of the
//! syscall's unconditional rule if it has one, else the profile's default.
//! The tests in `tests.rs` check the offsets through the emulator.
//!
//! seccompiler spends five instructions on an argument-less syscall
//! (`JEQ; JA 1; JA 2; RET; RET`), which puts podman's profile over the
//! kernel's 4096 instruction limit once three x86 ABIs are listed. Those
//! syscalls need no rule BPF, so we emit them in our own compact form: a
//! binary search over the runs of consecutive numbers that share an
//! action. Every chain ends in a RET, so the numbers that have one never
//! reach the tree and may join any run.

use std::collections::HashMap;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator as Op,
};
use seccompiler::{BpfProgram, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};
use tracing::debug;

use super::arch::{Abi, Host, X32_SYSCALL_BIT, known_anywhere};
use super::bpf::{
    self, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, DATA_ARCH, DATA_NR, MAX_INSNS, jump, load, ret,
};
use super::{CompiledFilter, Result, SeccompError, sock_filter};

/// `SECCOMP_RET_*` actions from linux/seccomp.h.
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_KILL_THREAD: u32 = 0x0000_0000;
pub const RET_TRAP: u32 = 0x0003_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const RET_TRACE: u32 = 0x7ff0_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;
/// The low 16 bits of a return value: errno for ERRNO, message for TRACE.
const RET_DATA: u32 = 0xffff;

/// `SECCOMP_FILTER_FLAG_*` from linux/seccomp.h.
pub const FLAG_TSYNC: u32 = 1;
pub const FLAG_LOG: u32 = 2;
pub const FLAG_SPEC_ALLOW: u32 = 4;
pub const FLAG_NEW_LISTENER: u32 = 8;
pub const FLAG_TSYNC_ESRCH: u32 = 16;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

/// Largest number of rules one entry may expand into when it repeats an
/// argument index (see `conditions`). Each rule costs at least four
/// instructions, so more could never fit in a filter anyway.
const MAX_ALTERNATIVES: usize = MAX_INSNS / 4;

/// What an entry's `args` match.
enum Match {
    /// No args: every call of the syscall.
    Always,
    /// A MASKED_EQ whose valueTwo has bits outside the mask: no call.
    Never,
    /// Any of these AND-ed condition lists.
    AnyOf(Vec<Vec<SeccompCondition>>),
}

struct Entry {
    action: u32,
    matcher: Match,
}

/// Everything the profile says about one syscall number under one ABI.
struct Slot {
    nr: u32,
    /// Conditional rules in profile order: (entry, action).
    rules: Vec<(usize, u32)>,
    /// Action of the first unconditional rule; later rules are unreachable.
    terminal: Option<u32>,
    /// Last entry that touched this slot, so an entry naming a syscall
    /// twice adds it once.
    last_entry: usize,
}

pub(crate) fn compile_for(profile: &LinuxSeccomp, host: Host) -> Result<CompiledFilter> {
    let default_action = profile.default_action();
    if default_action == Action::ScmpActNotify {
        // As runc: the runtime's own syscalls between install and exec
        // would wait on a listener nobody has received yet.
        return Err(SeccompError::Invalid(
            "defaultAction: SCMP_ACT_NOTIFY cannot be the default action".into(),
        ));
    }
    let default = action_value(default_action, profile.default_errno_ret(), || {
        "defaultErrnoRet".into()
    })?;

    let abis = abis(profile, host);
    let syscalls = profile.syscalls().as_deref().unwrap_or_default();

    let mut entries = Vec::with_capacity(syscalls.len());
    let mut slots: Vec<Vec<Slot>> = abis.iter().map(|_| Vec::new()).collect();
    let mut by_nr: Vec<HashMap<u32, usize>> = abis.iter().map(|_| HashMap::new()).collect();
    let mut notify = false;

    for (index, call) in syscalls.iter().enumerate() {
        notify |= call.action() == Action::ScmpActNotify;
        let action = action_value(call.action(), call.errno_ret(), || {
            format!("syscalls[{index}].errnoRet")
        })?;
        let matcher = conditions(index, call.args().as_deref().unwrap_or_default())?;
        entries.push(Entry { action, matcher });
        let entry = &entries[index];

        for name in call.names() {
            let mut resolved = false;
            for (a, abi) in abis.iter().enumerate() {
                let Some(nr) = abi.resolve(name) else {
                    continue;
                };
                resolved = true;
                let slot = *by_nr[a].entry(nr).or_insert_with(|| {
                    slots[a].push(Slot {
                        nr,
                        rules: Vec::new(),
                        terminal: None,
                        last_entry: usize::MAX,
                    });
                    slots[a].len() - 1
                });
                let slot = &mut slots[a][slot];
                if slot.terminal.is_some() || slot.last_entry == index {
                    continue;
                }
                slot.last_entry = index;
                match entry.matcher {
                    Match::Always => slot.terminal = Some(entry.action),
                    Match::Never => {}
                    Match::AnyOf(_) => slot.rules.push((index, entry.action)),
                }
            }
            if !resolved {
                if !known_anywhere(name) {
                    return Err(SeccompError::UnknownSyscall {
                        index,
                        name: name.clone(),
                    });
                }
                debug!(syscall = %name, "seccomp: syscall does not exist on this host's architectures, skipped");
            }
        }
    }

    let blocks = abis
        .iter()
        .zip(&slots)
        .map(|(&abi, slots)| block(abi, slots, &entries, default))
        .collect::<Result<Vec<_>>>()?;
    let program = link(&abis, blocks);
    if program.len() > MAX_INSNS {
        return Err(SeccompError::TooLarge(program.len()));
    }

    let program: Vec<(u16, u8, u8, u32)> = program
        .into_iter()
        .map(|i| (i.code, i.jt, i.jf, i.k))
        .collect();
    debug_assert_eq!(bpf::validate(&program), Ok(()));

    Ok(CompiledFilter {
        program,
        flags: flags(profile, notify),
        notify,
        listener_path: profile.listener_path().clone(),
        listener_metadata: profile.listener_metadata().clone(),
    })
}

/// The ABIs to emit chains for: the host's own first (libseccomp always
/// includes the native arch), then each listed one that can run here.
fn abis(profile: &LinuxSeccomp, host: Host) -> Vec<Abi> {
    let mut abis = vec![host.native];
    for &arch in profile.architectures().iter().flatten() {
        match host.abi_for(arch) {
            Some(abi) if !abis.contains(&abi) => abis.push(abi),
            Some(_) => {}
            None => debug!(
                ?arch,
                "seccomp: architecture cannot run on this host, ignored"
            ),
        }
    }
    abis
}

fn action_value(
    action: Action,
    errno_ret: Option<u32>,
    field: impl FnOnce() -> String,
) -> Result<u32> {
    let with_data = |base: u32| {
        // runc's default for both: EPERM.
        let data = errno_ret.unwrap_or(libc::EPERM as u32);
        if data > RET_DATA {
            // It would spill into the action bits and change the action.
            return Err(SeccompError::Invalid(format!(
                "{}: {data} does not fit in seccomp's 16-bit return data",
                field()
            )));
        }
        Ok(base | data)
    };
    Ok(match action {
        Action::ScmpActKill | Action::ScmpActKillThread => RET_KILL_THREAD,
        Action::ScmpActKillProcess => RET_KILL_PROCESS,
        Action::ScmpActTrap => RET_TRAP,
        Action::ScmpActErrno => with_data(RET_ERRNO)?,
        Action::ScmpActTrace => with_data(RET_TRACE)?,
        Action::ScmpActNotify => RET_USER_NOTIF,
        Action::ScmpActLog => RET_LOG,
        Action::ScmpActAllow => RET_ALLOW,
    })
}

/// An entry's `args` as OR-ed AND-lists.
///
/// Conditions on distinct argument indexes are AND-ed. Several conditions
/// on the same index could never all hold for EQ and are meant as
/// alternatives, so, like runc, we split them into separate rules; each
/// rule keeps the conditions on the other indexes (the cross product when
/// several indexes repeat).
fn conditions(index: usize, args: &[LinuxSeccompArg]) -> Result<Match> {
    if args.is_empty() {
        return Ok(Match::Always);
    }
    // (arg index, possible conditions), in order of first appearance.
    let mut groups: Vec<(usize, Vec<SeccompCondition>)> = Vec::new();
    for (pos, arg) in args.iter().enumerate() {
        let invalid = |reason: String| SeccompError::InvalidArg {
            index,
            arg: pos,
            reason,
        };
        let arg_index = arg.index();
        if arg_index > 5 {
            return Err(invalid(format!(
                "index {arg_index} is out of range, syscalls have arguments 0 to 5"
            )));
        }
        let (op, value) = match arg.op() {
            Op::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
            Op::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
            Op::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
            Op::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
            Op::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
            Op::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
            Op::ScmpCmpMaskedEq => {
                let (mask, want) = (arg.value(), arg.value_two().unwrap_or(0));
                (SeccompCmpOp::MaskedEq(mask), want)
            }
        };
        let pos_in_groups = match groups.iter().position(|(i, _)| *i == arg_index) {
            Some(p) => p,
            None => {
                groups.push((arg_index, Vec::new()));
                groups.len() - 1
            }
        };
        if let SeccompCmpOp::MaskedEq(mask) = op
            && value & !mask != 0
        {
            // (arg & mask) can never equal a value with bits outside the
            // mask; seccompiler would mask the value and match anyway.
            continue;
        }
        // Qword: OCI values are 64-bit and the kernel passes full registers.
        let cond = SeccompCondition::new(arg_index as u8, SeccompCmpArgLen::Qword, op, value)
            .map_err(|e| invalid(e.to_string()))?;
        groups[pos_in_groups].1.push(cond);
    }

    if groups.iter().any(|(_, g)| g.is_empty()) {
        return Ok(Match::Never);
    }
    let count = groups
        .iter()
        .try_fold(1usize, |n, (_, g)| n.checked_mul(g.len()))
        .filter(|&n| n <= MAX_ALTERNATIVES)
        .ok_or_else(|| {
            SeccompError::Invalid(format!(
                "syscalls[{index}].args: conditions on repeated argument indexes expand to more than {MAX_ALTERNATIVES} rules"
            ))
        })?;
    let mut alternatives: Vec<Vec<SeccompCondition>> = Vec::with_capacity(count);
    alternatives.push(Vec::with_capacity(groups.len()));
    for (_, group) in &groups {
        alternatives = alternatives
            .iter()
            .flat_map(|alt| {
                group.iter().map(move |c| {
                    let mut a = alt.clone();
                    a.push(c.clone());
                    a
                })
            })
            .collect();
    }
    Ok(Match::AnyOf(alternatives))
}

/// The chains of one ABI, starting with `LD nr` and ending with
/// `RET default`.
fn block(abi: Abi, slots: &[Slot], entries: &[Entry], default: u32) -> Result<Vec<sock_filter>> {
    let mut out = Vec::with_capacity(2 + slots.len() * 2);
    out.push(load(DATA_NR));
    if abi == Abi::X86_64 {
        // Target patched by `link`: the x32 block, or KILL_PROCESS when the
        // profile does not list x32 (libseccomp's bad-arch action).
        out.push(jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1));
        out.push(ret(RET_KILL_PROCESS));
    }

    // Syscall numbers with no conditional rule and a non-default action,
    // and those whose chain (emitted below) always returns, so the search
    // tree may give them anything.
    let mut assigned: Vec<(u32, Option<u32>)> = Vec::new();
    for slot in slots {
        let fallthrough = slot.terminal.unwrap_or(default);
        // A trailing rule whose action is what the chain falls through to
        // anyway changes nothing.
        let mut rules = &slot.rules[..];
        while let [rest @ .., (_, action)] = rules
            && *action == fallthrough
        {
            rules = rest;
        }
        if rules.is_empty() {
            if fallthrough != default {
                assigned.push((slot.nr, Some(fallthrough)));
            }
            continue;
        }
        assigned.push((slot.nr, None));

        // seccompiler's chain layout; see the module comment.
        out.push(jump(BPF_JMP | BPF_JEQ | BPF_K, slot.nr, 0, 1));
        for &(entry, action) in rules {
            let Match::AnyOf(alternatives) = &entries[entry].matcher else {
                unreachable!("only conditional entries are queued as rules");
            };
            for conds in alternatives {
                let rule = SeccompRule::new(conds.clone())
                    .map_err(|e| SeccompError::Invalid(format!("syscalls[{entry}].args: {e}")))?;
                let rule: BpfProgram = rule.into();
                out.extend(rule);
                out.push(ret(action));
            }
        }
        out.push(ret(fallthrough));
    }
    assigned.sort_unstable();
    search_tree(&segments(&assigned, default), &mut out);
    Ok(out)
}

/// The syscall number space cut into runs that share an action: each
/// `(start, action)` holds up to the next start. `None` marks a number the
/// tree never sees, which joins whichever run it falls in.
fn segments(assigned: &[(u32, Option<u32>)], default: u32) -> Vec<(u32, u32)> {
    fn begin(segs: &mut Vec<(u32, u32)>, start: u32, action: u32) {
        if segs.last().is_some_and(|&(s, _)| s == start) {
            segs.pop();
        }
        if segs.last().is_none_or(|&(_, a)| a != action) {
            segs.push((start, action));
        }
    }
    let mut segs = vec![(0, default)];
    let mut next = 0u32;
    for &(nr, action) in assigned {
        if nr > next {
            begin(&mut segs, next, default);
        }
        if let Some(action) = action {
            begin(&mut segs, nr, action);
        }
        next = nr.saturating_add(1);
    }
    begin(&mut segs, next, default);
    segs
}

/// A balanced tree of `JGE` over the runs' starts with a `RET` per run, so
/// any syscall is decided in about log2(runs) jumps. A linear list of
/// `JEQ` made every syscall the filter allows walk hundreds of
/// instructions, and the kernel walks them once per syscall number when it
/// installs the filter (its action cache), which made the install cost a
/// millisecond or more of every container start.
fn search_tree(segs: &[(u32, u32)], out: &mut Vec<sock_filter>) {
    if let [(_, action)] = segs {
        out.push(ret(*action));
        return;
    }
    let mid = segs.len() / 2;
    let mut below = Vec::new();
    search_tree(&segs[..mid], &mut below);
    match u8::try_from(below.len()) {
        Ok(skip) => out.push(jump(BPF_JMP | BPF_JGE | BPF_K, segs[mid].0, skip, 0)),
        Err(_) => {
            out.push(jump(BPF_JMP | BPF_JGE | BPF_K, segs[mid].0, 0, 1));
            out.push(jump(BPF_JMP | BPF_JA, below.len() as u32, 0, 0));
        }
    }
    out.extend(below);
    search_tree(&segs[mid..], out);
}

/// Puts the arch dispatch in front of the blocks and resolves the long
/// jumps (BPF_JA takes a 32-bit offset; JEQ's 8-bit ones would not reach).
fn link(abis: &[Abi], blocks: Vec<Vec<sock_filter>>) -> Vec<sock_filter> {
    // x32 shares the x86_64 audit arch and is reached from the x86_64 block.
    let dispatched: Vec<usize> = (0..abis.len()).filter(|&i| abis[i] != Abi::X32).collect();
    let prologue_len = 2 + 2 * dispatched.len();
    let mut starts = Vec::with_capacity(blocks.len());
    let mut at = prologue_len;
    for b in &blocks {
        starts.push(at);
        at += b.len();
    }

    let mut out = Vec::with_capacity(at);
    out.push(load(DATA_ARCH));
    for &i in &dispatched {
        out.push(jump(BPF_JMP | BPF_JEQ | BPF_K, abis[i].audit_arch(), 0, 1));
        let from = out.len() + 1;
        out.push(jump(BPF_JMP | BPF_JA, (starts[i] - from) as u32, 0, 0));
    }
    out.push(ret(RET_KILL_PROCESS));
    for b in blocks {
        out.extend(b);
    }

    if let Some(native) = abis.iter().position(|&a| a == Abi::X86_64) {
        if let Some(x32) = abis.iter().position(|&a| a == Abi::X32) {
            // Replace `RET KILL_PROCESS` after the x32 test with a jump.
            let at = starts[native] + 2;
            out[at] = jump(BPF_JMP | BPF_JA, (starts[x32] - (at + 1)) as u32, 0, 0);
        }
    }
    out
}

fn flags(profile: &LinuxSeccomp, notify: bool) -> u32 {
    let mut flags = 0;
    for flag in profile.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        };
    }
    if notify {
        flags |= FLAG_NEW_LISTENER;
        if flags & FLAG_TSYNC != 0 {
            // The kernel refuses TSYNC with NEW_LISTENER otherwise: a TSYNC
            // failure would return a thread id where the fd should be.
            flags |= FLAG_TSYNC_ESRCH;
        }
    } else if flags & FLAG_WAIT_KILLABLE_RECV != 0 {
        // Only meaningful with a listener, and EINVAL without one; libseccomp
        // drops it the same way.
        debug!("seccomp: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV without a notify rule, dropped");
        flags &= !FLAG_WAIT_KILLABLE_RECV;
    }
    flags
}
