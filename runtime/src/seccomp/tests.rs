//! Compiler tests: every program is run through the emulator, so these
//! check what a syscall gets, not what instructions were emitted.

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompOperator as Op};
use serde_json::json;

use super::arch::{
    AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, Abi, Host, X32_SYSCALL_BIT,
};
use super::compile::*;
use super::emulator::{SeccompData, run};
use super::{CompiledFilter, SeccompError, bpf};

const EPERM: u32 = libc::EPERM as u32;

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("test profile parses")
}

fn build(p: &LinuxSeccomp) -> CompiledFilter {
    let f = compile_for(p, Host::X86_64).expect("profile compiles");
    bpf::validate(&f.program).expect("program is valid");
    f
}

fn build_json(v: serde_json::Value) -> CompiledFilter {
    build(&profile(v))
}

fn eval(f: &CompiledFilter, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    run(&f.program, &SeccompData::new(arch, nr, args))
}

/// What `name` gets when called through `abi` with `args`.
fn call(f: &CompiledFilter, abi: Abi, name: &str, args: [u64; 6]) -> u32 {
    let nr = abi
        .resolve(name)
        .unwrap_or_else(|| panic!("{name} on {abi:?}"));
    eval(f, abi.audit_arch(), nr, args)
}

fn x64(f: &CompiledFilter, name: &str) -> u32 {
    call(f, Abi::X86_64, name, [0; 6])
}

fn arg0(f: &CompiledFilter, name: &str, a0: u64) -> u32 {
    call(f, Abi::X86_64, name, [a0, 0, 0, 0, 0, 0])
}

#[test]
fn every_action_returns_its_value() {
    let cases = [
        (json!({"action": "SCMP_ACT_KILL"}), RET_KILL_THREAD),
        (json!({"action": "SCMP_ACT_KILL_THREAD"}), RET_KILL_THREAD),
        (json!({"action": "SCMP_ACT_KILL_PROCESS"}), RET_KILL_PROCESS),
        (json!({"action": "SCMP_ACT_TRAP"}), RET_TRAP),
        (json!({"action": "SCMP_ACT_ERRNO"}), RET_ERRNO | EPERM),
        (
            json!({"action": "SCMP_ACT_ERRNO", "errnoRet": 95}),
            RET_ERRNO | 95,
        ),
        (
            json!({"action": "SCMP_ACT_ERRNO", "errnoRet": 0}),
            RET_ERRNO,
        ),
        (json!({"action": "SCMP_ACT_TRACE"}), RET_TRACE | EPERM),
        (
            json!({"action": "SCMP_ACT_TRACE", "errnoRet": 4242}),
            RET_TRACE | 4242,
        ),
        (json!({"action": "SCMP_ACT_LOG"}), RET_LOG),
        (json!({"action": "SCMP_ACT_NOTIFY"}), RET_USER_NOTIF),
    ];
    for (rule, want) in cases {
        let mut rule = rule;
        rule["names"] = json!(["mkdir"]);
        let f = build_json(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}));
        assert_eq!(x64(&f, "mkdir"), want, "{rule}");
        assert_eq!(x64(&f, "getpid"), RET_ALLOW, "{rule}");
        let notify = rule["action"] == "SCMP_ACT_NOTIFY";
        assert_eq!(f.notify, notify);
        assert_eq!(f.flags & FLAG_NEW_LISTENER != 0, notify);
    }
}

#[test]
fn every_default_action_and_default_errno() {
    let cases = [
        (json!({"defaultAction": "SCMP_ACT_KILL"}), RET_KILL_THREAD),
        (
            json!({"defaultAction": "SCMP_ACT_KILL_PROCESS"}),
            RET_KILL_PROCESS,
        ),
        (json!({"defaultAction": "SCMP_ACT_TRAP"}), RET_TRAP),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO"}),
            RET_ERRNO | EPERM,
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38}),
            RET_ERRNO | 38,
        ),
        (
            json!({"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 7}),
            RET_TRACE | 7,
        ),
        (json!({"defaultAction": "SCMP_ACT_LOG"}), RET_LOG),
        (json!({"defaultAction": "SCMP_ACT_ALLOW"}), RET_ALLOW),
    ];
    for (p, want) in cases {
        // Once with no rules at all, once with a rule for another syscall.
        let f = build_json(p.clone());
        assert_eq!(x64(&f, "mkdir"), want, "{p}");
        let mut p = p;
        p["syscalls"] = json!([{"names": ["getpid"], "action": "SCMP_ACT_KILL_PROCESS"}]);
        if want == RET_KILL_PROCESS {
            p["syscalls"][0]["action"] = json!("SCMP_ACT_ALLOW");
        }
        let f = build_json(p.clone());
        assert_eq!(x64(&f, "mkdir"), want, "{p}");
        assert_ne!(x64(&f, "getpid"), want, "{p}");
    }
}

#[test]
fn notify_cannot_be_the_default() {
    let err = compile_for(
        &profile(json!({"defaultAction": "SCMP_ACT_NOTIFY"})),
        Host::X86_64,
    )
    .unwrap_err();
    assert!(matches!(err, SeccompError::Invalid(_)));
    assert!(err.to_string().contains("defaultAction"), "{err}");
}

#[test]
fn errno_ret_must_fit_sixteen_bits() {
    let p = profile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0x10000}
    ]}));
    let err = compile_for(&p, Host::X86_64).unwrap_err();
    assert_eq!(
        err.to_string(),
        "linux.seccomp: syscalls[1].errnoRet: 65536 does not fit in seccomp's 16-bit return data"
    );
    let p = profile(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}));
    let err = compile_for(&p, Host::X86_64).unwrap_err();
    assert!(err.to_string().contains("defaultErrnoRet"), "{err}");
}

#[test]
fn rules_for_one_syscall_apply_in_profile_order_with_their_own_actions() {
    let f = build_json(json!({
        "defaultAction": "SCMP_ACT_KILL_PROCESS",
        "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 11,
             "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_GT"}]},
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_LOG",
             "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_GT"}]},
            {"names": ["personality"], "action": "SCMP_ACT_TRAP",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    // 20 matches the first and the second rule: the first wins.
    assert_eq!(arg0(&f, "personality", 20), RET_ERRNO | 11);
    assert_eq!(arg0(&f, "personality", 7), RET_LOG);
    assert_eq!(arg0(&f, "personality", 1), RET_TRAP);
    assert_eq!(arg0(&f, "personality", 0), RET_KILL_PROCESS);
    assert_eq!(x64(&f, "read"), RET_ALLOW);
    assert_eq!(x64(&f, "write"), RET_KILL_PROCESS);
}

#[test]
fn an_unconditional_rule_ends_the_chain() {
    let with_tail = build_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_TRAP",
             "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["mkdir"], "action": "SCMP_ACT_LOG",
             "args": [{"index": 1, "value": 0o755, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"}
        ]
    }));
    let without_tail = build_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_TRAP",
             "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}
        ]
    }));
    assert_eq!(with_tail.program, without_tail.program);
    let mkdir = |mode| call(&with_tail, Abi::X86_64, "mkdir", [0, mode, 0, 0, 0, 0]);
    assert_eq!(mkdir(0o700), RET_TRAP);
    assert_eq!(mkdir(0o755), RET_ERRNO | EPERM);
    assert_eq!(mkdir(0), RET_ERRNO | EPERM);
}

#[test]
fn rules_that_change_nothing_are_dropped() {
    // A trailing rule with the action the chain falls through to, and an
    // unconditional rule with the default action, emit no code.
    let bare = build_json(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}
    ]}));
    let padded = build_json(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getpid", "read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}
    ]}));
    assert_eq!(bare.program, padded.program);
    // Not dropped when it shadows a later rule.
    let f = build_json(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}
    ]}));
    assert_eq!(arg0(&f, "mkdir", 2), RET_ALLOW);
    assert_eq!(arg0(&f, "mkdir", 3), RET_ERRNO | EPERM);
}

#[test]
fn default_action_for_unlisted_syscalls() {
    let f = build_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "syscalls": [{"names": ["read", "write", "mkdirat"], "action": "SCMP_ACT_ALLOW"}]
    }));
    for name in ["read", "write", "mkdirat"] {
        assert_eq!(x64(&f, name), RET_ALLOW, "{name}");
    }
    for name in ["mkdir", "getpid", "ptrace", "open"] {
        assert_eq!(x64(&f, name), RET_ERRNO | 38, "{name}");
    }
    // Numbers no syscall has, including ones that look like no JEQ's k.
    for nr in [999, 0x3fff_ffff] {
        assert_eq!(eval(&f, AUDIT_ARCH_X86_64, nr, [0; 6]), RET_ERRNO | 38);
    }
}

/// Reference semantics of one comparison, as the kernel-side libseccomp
/// filter would decide it on a 64-bit argument.
fn holds(op: Op, arg: u64, value: u64, value_two: u64) -> bool {
    match op {
        Op::ScmpCmpNe => arg != value,
        Op::ScmpCmpLt => arg < value,
        Op::ScmpCmpLe => arg <= value,
        Op::ScmpCmpEq => arg == value,
        Op::ScmpCmpGe => arg >= value,
        Op::ScmpCmpGt => arg > value,
        Op::ScmpCmpMaskedEq => arg & value == value_two,
    }
}

const OPS: [Op; 7] = [
    Op::ScmpCmpNe,
    Op::ScmpCmpLt,
    Op::ScmpCmpLe,
    Op::ScmpCmpEq,
    Op::ScmpCmpGe,
    Op::ScmpCmpGt,
    Op::ScmpCmpMaskedEq,
];

/// Values around `v` whose high or low halves differ in every direction.
fn probes(v: u64) -> Vec<u64> {
    let (hi, lo) = (v >> 32, v & 0xffff_ffff);
    let mut out = vec![0, 1, u64::MAX, v, v.wrapping_add(1), v.wrapping_sub(1)];
    for h in [hi.wrapping_sub(1), hi, hi + 1] {
        for l in [lo.wrapping_sub(1), lo, lo + 1] {
            out.push(((h & 0xffff_ffff) << 32) | (l & 0xffff_ffff));
        }
    }
    out
}

#[test]
fn every_operator_compares_all_64_bits() {
    let values = [
        0,
        5,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0005,
        0x8000_0000_0000_0000,
        0xffff_fffe_0000_0001,
    ];
    for op in OPS {
        for value in values {
            let value_two = value & 0x0000_0fff_0000_0f0f;
            let arg_json = json!({"index": 3, "value": value, "valueTwo": value_two, "op": op});
            let f = build_json(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "args": [arg_json]}
            ]}));
            for arg in probes(value).into_iter().chain(probes(value_two)) {
                let got = call(&f, Abi::X86_64, "lseek", [9, 9, 9, arg, 9, 9]);
                let want = if holds(op, arg, value, value_two) {
                    RET_ERRNO | EPERM
                } else {
                    RET_ALLOW
                };
                assert_eq!(
                    got, want,
                    "{op:?} arg {arg:#x} value {value:#x}/{value_two:#x}"
                );
            }
        }
    }
}

#[test]
fn masked_eq_is_arg_and_value_equals_value_two() {
    let f = build_json(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mmap"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 2, "value": 0x0000_00ff_0000_0f00_u64, "valueTwo": 0x0000_0012_0000_0300_u64,
                   "op": "SCMP_CMP_MASKED_EQ"}]},
        // Bits outside the mask in valueTwo: can never hold.
        {"names": ["munmap"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 0xf0, "valueTwo": 0x0f, "op": "SCMP_CMP_MASKED_EQ"}]},
        // No valueTwo: compares with 0.
        {"names": ["mprotect"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 2, "value": 0x4, "op": "SCMP_CMP_MASKED_EQ"}]}
    ]}));
    let mmap = |a2| call(&f, Abi::X86_64, "mmap", [0, 0, a2, 0, 0, 0]);
    assert_eq!(mmap(0x0000_0012_0000_0300), RET_ERRNO | EPERM);
    assert_eq!(mmap(0xabcd_ff12_1234_f3ff), RET_ERRNO | EPERM);
    assert_eq!(mmap(0x0000_0013_0000_0300), RET_ALLOW);
    assert_eq!(mmap(0x0000_0012_0000_0200), RET_ALLOW);
    assert_eq!(mmap(0x0000_0000_0000_0300), RET_ALLOW);
    for a0 in [0, 0x0f, 0xff, 0xf0, u64::MAX] {
        assert_eq!(arg0(&f, "munmap", a0), RET_ALLOW, "{a0:#x}");
    }
    let mprotect = |a2| call(&f, Abi::X86_64, "mprotect", [0, 0, a2, 0, 0, 0]);
    assert_eq!(mprotect(0x3), RET_ERRNO | EPERM);
    assert_eq!(mprotect(0x7), RET_ALLOW);
}

#[test]
fn conditions_on_distinct_args_are_anded() {
    let f = build_json(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
         "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                  {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]}
    ]}));
    let socket = |a0, a2| call(&f, Abi::X86_64, "socket", [a0, 3, a2, 0, 0, 0]);
    assert_eq!(socket(16, 9), RET_ERRNO | 22);
    assert_eq!(socket(16, 0), RET_ALLOW);
    assert_eq!(socket(2, 9), RET_ALLOW);
    assert_eq!(socket(16 | 1 << 32, 9), RET_ALLOW);
}

#[test]
fn conditions_on_one_arg_index_are_split_into_alternatives() {
    let f = build_json(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                  {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                  {"index": 2, "value": 5, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_TRAP",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                  {"index": 1, "value": 7, "op": "SCMP_CMP_EQ"},
                  {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                  {"index": 1, "value": 8, "op": "SCMP_CMP_EQ"}]}
    ]}));
    let socket = |a0, a2| call(&f, Abi::X86_64, "socket", [a0, 0, a2, 0, 0, 0]);
    assert_eq!(socket(1, 5), RET_ERRNO | EPERM);
    assert_eq!(socket(2, 5), RET_ERRNO | EPERM);
    // The condition on the other index stays in each alternative.
    assert_eq!(socket(1, 6), RET_ALLOW);
    assert_eq!(socket(2, 6), RET_ALLOW);
    assert_eq!(socket(3, 5), RET_ALLOW);
    let clone = |a0, a1| call(&f, Abi::X86_64, "clone", [a0, a1, 0, 0, 0, 0]);
    for (a0, a1) in [(1, 7), (1, 8), (2, 7), (2, 8)] {
        assert_eq!(clone(a0, a1), RET_TRAP, "{a0} {a1}");
    }
    for (a0, a1) in [(1, 9), (3, 7), (0, 0), (7, 1)] {
        assert_eq!(clone(a0, a1), RET_ALLOW, "{a0} {a1}");
    }
}

#[test]
fn arg_index_out_of_range_is_invalid_arg() {
    let p = profile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                  {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}
    ]}));
    let err = compile_for(&p, Host::X86_64).unwrap_err();
    assert!(
        matches!(
            err,
            SeccompError::InvalidArg {
                index: 1,
                arg: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "linux.seccomp.syscalls[1].args[1]: index 6 is out of range, syscalls have arguments 0 to 5"
    );
}

#[test]
fn unknown_syscall_names_its_entry() {
    let p = profile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mkdir", "mkdri"], "action": "SCMP_ACT_ERRNO"}
    ]}));
    let err = compile_for(&p, Host::X86_64).unwrap_err();
    assert!(
        matches!(&err, SeccompError::UnknownSyscall { index: 2, name } if name == "mkdri"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "linux.seccomp.syscalls[2].names: unknown syscall name \"mkdri\""
    );
}

#[test]
fn names_of_other_architectures_are_skipped() {
    let p = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["arm_fadvise64_64", "socketcall", "breakpoint", "s390_runtime_instr", "mkdir"],
         "action": "SCMP_ACT_ERRNO"}
    ]});
    let f = build_json(p.clone());
    assert_eq!(x64(&f, "mkdir"), RET_ERRNO | EPERM);
    assert_eq!(x64(&f, "getpid"), RET_ALLOW);
    // socketcall exists on i386 and is matched there.
    let mut p = p;
    p["architectures"] = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]);
    let f = build_json(p);
    assert_eq!(call(&f, Abi::X86, "socketcall", [0; 6]), RET_ERRNO | EPERM);
    assert_eq!(call(&f, Abi::X86, "mkdir", [0; 6]), RET_ERRNO | EPERM);
}

#[test]
fn x86_uses_i386_numbers() {
    let f = build_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30}]
    }));
    assert_eq!(Abi::X86.resolve("mkdir"), Some(39));
    assert_eq!(eval(&f, AUDIT_ARCH_I386, 39, [0; 6]), RET_ERRNO | 30);
    assert_eq!(eval(&f, AUDIT_ARCH_X86_64, 83, [0; 6]), RET_ERRNO | 30);
    // i386 83 is symlink, x86_64 39 is getpid.
    assert_eq!(eval(&f, AUDIT_ARCH_I386, 83, [0; 6]), RET_ALLOW);
    assert_eq!(eval(&f, AUDIT_ARCH_X86_64, 39, [0; 6]), RET_ALLOW);

    // Not listed: any i386 syscall kills.
    let f = build_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert_eq!(eval(&f, AUDIT_ARCH_I386, 39, [0; 6]), RET_KILL_PROCESS);
    assert_eq!(eval(&f, AUDIT_ARCH_I386, 20, [0; 6]), RET_KILL_PROCESS);
    assert_eq!(eval(&f, AUDIT_ARCH_X86_64, 83, [0; 6]), RET_ERRNO | EPERM);
}

#[test]
fn x32_with_and_without_its_architecture() {
    let rules = json!([
        {"names": ["mkdir", "ioctl"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["getppid"], "action": "SCMP_ACT_TRAP",
         "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}]}
    ]);
    let without = build_json(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}));
    let with = build_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
        "syscalls": rules
    }));
    let x32 = |f: &CompiledFilter, nr: u32, a0: u64| {
        eval(
            f,
            AUDIT_ARCH_X86_64,
            nr | X32_SYSCALL_BIT,
            [a0, 0, 0, 0, 0, 0],
        )
    };
    for nr in [83, 39, 514, 0] {
        assert_eq!(x32(&without, nr, 0), RET_KILL_PROCESS, "x32 {nr}");
    }
    assert_eq!(x32(&with, 83, 0), RET_ERRNO | EPERM);
    assert_eq!(x32(&with, 39, 0), RET_ALLOW);
    // x32's ioctl is 514; 16 is x86_64's 64-bit-only entry point.
    assert_eq!(x32(&with, 514, 0), RET_ERRNO | EPERM);
    assert_eq!(x32(&with, 16, 0), RET_ALLOW);
    assert_eq!(x32(&with, 110, 3), RET_TRAP);
    assert_eq!(x32(&with, 110, 4), RET_ALLOW);
    for f in [&with, &without] {
        assert_eq!(eval(f, AUDIT_ARCH_X86_64, 83, [0; 6]), RET_ERRNO | EPERM);
        assert_eq!(eval(f, AUDIT_ARCH_X86_64, 16, [0; 6]), RET_ERRNO | EPERM);
        assert_eq!(
            eval(f, AUDIT_ARCH_X86_64, 110, [3, 0, 0, 0, 0, 0]),
            RET_TRAP
        );
        assert_eq!(eval(f, AUDIT_ARCH_X86_64, 39, [0; 6]), RET_ALLOW);
    }
}

#[test]
fn unknown_or_foreign_arch_kills_the_process() {
    let f = build_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        // Foreign architectures are accepted and ignored.
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO"}]
    }));
    for arch in [
        AUDIT_ARCH_AARCH64,
        AUDIT_ARCH_I386,
        0x4000_0028,
        0xc000_0015,
        0,
        0x1234_5678,
    ] {
        for nr in [0, 34, 258] {
            assert_eq!(
                eval(&f, arch, nr, [0; 6]),
                RET_KILL_PROCESS,
                "{arch:#x} {nr}"
            );
        }
    }
    assert_eq!(x64(&f, "mkdirat"), RET_ERRNO | EPERM);
}

#[test]
fn native_is_always_included() {
    let f = build_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert_eq!(x64(&f, "mkdir"), RET_ERRNO | EPERM);
    assert_eq!(call(&f, Abi::X86, "mkdir", [0; 6]), RET_ERRNO | EPERM);
}

#[test]
fn aarch64_host_with_arm_compat() {
    let p = profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "syscalls": [{"names": ["read", "mkdirat", "mkdir", "set_tls"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let f = compile_for(&p, Host::AARCH64).unwrap();
    bpf::validate(&f.program).unwrap();
    assert_eq!(call(&f, Abi::Aarch64, "mkdirat", [0; 6]), RET_ALLOW);
    assert_eq!(call(&f, Abi::Arm, "mkdir", [0; 6]), RET_ALLOW);
    assert_eq!(call(&f, Abi::Arm, "set_tls", [0; 6]), RET_ALLOW);
    assert_eq!(call(&f, Abi::Aarch64, "getpid", [0; 6]), RET_ERRNO | EPERM);
    // No x32 test on aarch64: bit 30 numbers are just unknown syscalls.
    assert_eq!(
        eval(&f, AUDIT_ARCH_AARCH64, X32_SYSCALL_BIT | 63, [0; 6]),
        RET_ERRNO | EPERM
    );
    assert_eq!(eval(&f, AUDIT_ARCH_X86_64, 0, [0; 6]), RET_KILL_PROCESS);
}

#[test]
fn flags() {
    let with = |flags: serde_json::Value, notify: bool| {
        let action = if notify {
            "SCMP_ACT_NOTIFY"
        } else {
            "SCMP_ACT_ERRNO"
        };
        build_json(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": flags,
            "syscalls": [{"names": ["mkdir"], "action": action}]}))
        .flags
    };
    assert_eq!(with(json!([]), false), 0);
    assert_eq!(
        with(json!(["SECCOMP_FILTER_FLAG_TSYNC"]), false),
        FLAG_TSYNC
    );
    assert_eq!(
        with(
            json!(["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]),
            false
        ),
        FLAG_LOG | FLAG_SPEC_ALLOW
    );
    assert_eq!(with(json!([]), true), FLAG_NEW_LISTENER);
    assert_eq!(
        with(json!(["SECCOMP_FILTER_FLAG_TSYNC"]), true),
        FLAG_TSYNC | FLAG_NEW_LISTENER | FLAG_TSYNC_ESRCH
    );
    assert_eq!(
        with(json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]), true),
        FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV
    );
    assert_eq!(
        with(json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]), false),
        0
    );
}

#[test]
fn listener_fields_are_carried() {
    let f = build_json(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock", "listenerMetadata": "pod=a",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}));
    assert!(f.notify);
    assert_eq!(
        f.listener_path.as_deref(),
        Some(std::path::Path::new("/run/agent.sock"))
    );
    assert_eq!(f.listener_metadata.as_deref(), Some("pod=a"));
}

#[test]
fn unknown_arch_names() {
    let err = super::parse_profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]}"#,
    )
    .unwrap_err();
    assert!(
        matches!(&err, SeccompError::UnknownArch(a) if a == "SCMP_ARCH_Z80"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "linux.seccomp.architectures: unknown architecture \"SCMP_ARCH_Z80\""
    );
    for name in [
        "SCMP_ARCH_NATIVE",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_RISCV64",
        "SCMP_ARCH_LOONGARCH64",
    ] {
        super::arch_from_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let p = super::parse_profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_PPC64LE"]}"#,
    )
    .unwrap();
    build(&p);
    assert!(matches!(
        super::parse_profile(r#"{"defaultAction": "SCMP_ACT_NOPE"}"#),
        Err(SeccompError::Invalid(_))
    ));
}

#[test]
fn too_large_is_refused() {
    // 700 conditional rules of ~9 instructions each.
    let rules: Vec<_> = (0..700)
        .map(|i| {
            json!({"names": ["ioctl"], "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 1, "value": i, "op": "SCMP_CMP_EQ"}]})
        })
        .collect();
    let p = profile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}));
    match compile_for(&p, Host::X86_64) {
        Err(SeccompError::TooLarge(n)) => assert!(n > 4096, "{n}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn many_syscalls_sharing_an_action_span_several_groups() {
    // More x86 names than one 256-entry group holds.
    let names: Vec<&str> = syscalls::x86::Sysno::iter().map(|s| s.name()).collect();
    assert!(names.len() > 300);
    let f = build_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    }));
    for s in syscalls::x86::Sysno::iter() {
        assert_eq!(
            eval(&f, AUDIT_ARCH_I386, s.id() as u32, [0; 6]),
            RET_ALLOW,
            "{s}"
        );
    }
    assert_eq!(eval(&f, AUDIT_ARCH_I386, 5000, [0; 6]), RET_ERRNO | EPERM);
}

// ---- podman's profile -------------------------------------------------

const PODMAN_PROFILE: &str = "/usr/share/containers/seccomp.json";

fn podman_json() -> serde_json::Value {
    let text = std::fs::read_to_string(PODMAN_PROFILE).unwrap_or_else(|e| {
        panic!(
            "{PODMAN_PROFILE}: {e} (install Debian's golang-github-containers-common to get podman's profile)"
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// podman's profile as podman hands it to the runtime on x86_64 with its
/// default capabilities: entries filtered by includes/excludes, and the
/// archMap entry for x86_64 as architectures.
pub(crate) fn podman_profile_for_amd64() -> LinuxSeccomp {
    let caps = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETFCAP",
        "CAP_SETGID",
        "CAP_SETPCAP",
        "CAP_SETUID",
        "CAP_SYS_CHROOT",
    ];
    let v = podman_json();
    let strs = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    let mut syscalls = Vec::new();
    for s in v["syscalls"].as_array().unwrap() {
        let inc_arches = strs(&s["includes"]["arches"]);
        let inc_caps = strs(&s["includes"]["caps"]);
        let exc_arches = strs(&s["excludes"]["arches"]);
        let exc_caps = strs(&s["excludes"]["caps"]);
        if !inc_arches.is_empty() && !inc_arches.iter().any(|a| a == "amd64") {
            continue;
        }
        if !inc_caps.iter().all(|c| caps.contains(&c.as_str())) {
            continue;
        }
        if exc_arches.iter().any(|a| a == "amd64")
            || exc_caps.iter().any(|c| caps.contains(&c.as_str()))
        {
            continue;
        }
        let mut s = s.clone();
        for k in ["includes", "excludes", "comment", "errno"] {
            s.as_object_mut().unwrap().remove(k);
        }
        syscalls.push(s);
    }
    let arch_map = v["archMap"].as_array().unwrap();
    let amd64 = arch_map
        .iter()
        .find(|m| m["architecture"] == "SCMP_ARCH_X86_64")
        .unwrap();
    let mut arches = vec![amd64["architecture"].clone()];
    arches.extend(
        amd64["subArchitectures"]
            .as_array()
            .unwrap()
            .iter()
            .cloned(),
    );
    profile(json!({
        "defaultAction": v["defaultAction"],
        "defaultErrnoRet": v["defaultErrnoRet"],
        "architectures": arches,
        "syscalls": syscalls,
    }))
}

#[test]
fn podman_profile_compiles_fits_and_behaves() {
    let p = podman_profile_for_amd64();
    assert_eq!(
        p.architectures().as_deref().unwrap().len(),
        3,
        "x86_64, x86 and x32"
    );
    let f = build(&p);
    assert!(f.program.len() <= 4096, "{}", f.program.len());
    eprintln!("podman profile: {} instructions", f.program.len());
    assert_eq!(f.flags, 0);
    assert!(!f.notify);

    let enosys = RET_ERRNO | 38;
    for abi in [Abi::X86_64, Abi::X86, Abi::X32] {
        for name in [
            "read",
            "write",
            "mkdirat",
            "openat",
            "execve",
            "exit_group",
            "clone",
        ] {
            assert_eq!(call(&f, abi, name, [0; 6]), RET_ALLOW, "{abi:?} {name}");
        }
        // Listed with EPERM, and unlisted (ENOSYS, the default).
        assert_eq!(
            call(&f, abi, "userfaultfd", [0; 6]),
            RET_ERRNO | EPERM,
            "{abi:?}"
        );
        assert_eq!(
            call(&f, abi, "kexec_load", [0; 6]),
            RET_ERRNO | EPERM,
            "{abi:?}"
        );
        assert_eq!(call(&f, abi, "add_key", [0; 6]), enosys, "{abi:?}");
        // CAP_SYS_ADMIN is not granted.
        assert_eq!(call(&f, abi, "bpf", [0; 6]), RET_ERRNO | EPERM, "{abi:?}");
        // personality: only the listed personas.
        let pers = |a0| call(&f, abi, "personality", [a0, 0, 0, 0, 0, 0]);
        assert_eq!(pers(0), RET_ALLOW);
        assert_eq!(pers(0xffff_ffff), RET_ALLOW);
        assert_eq!(pers(0x0040_0000), enosys);
    }
    assert_eq!(call(&f, Abi::X86_64, "arch_prctl", [0; 6]), RET_ALLOW);
    assert_eq!(call(&f, Abi::X86, "modify_ldt", [0; 6]), RET_ALLOW);
    // Without CAP_AUDIT_WRITE: no audit netlink sockets.
    let socket = |a0, a2| call(&f, Abi::X86_64, "socket", [a0, 3, a2, 0, 0, 0]);
    assert_eq!(socket(16, 9), RET_ERRNO | 22);
    assert_eq!(socket(16, 0), RET_ALLOW);
    assert_eq!(socket(2, 0), RET_ALLOW);
    assert_eq!(eval(&f, AUDIT_ARCH_AARCH64, 63, [0; 6]), RET_KILL_PROCESS);
}

#[test]
fn podman_profile_file_as_is_compiles() {
    // Read straight into LinuxSeccomp, podman's extra keys are ignored and
    // every entry is kept, whatever its includes: the largest form.
    let mut v = podman_json();
    v["architectures"] = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    let p: LinuxSeccomp = serde_json::from_value(v).unwrap();
    let f = build(&p);
    assert!(f.program.len() <= 4096);
    assert_eq!(x64(&f, "read"), RET_ALLOW);
    // First match wins: CAP_SYS_ADMIN's allow entry comes before its deny.
    assert_eq!(x64(&f, "bpf"), RET_ALLOW);
}

// ---- differential test against a direct reading of the profile --------

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// What the profile says `(arch, nr, args)` gets, read rule by rule.
fn reference(p: &LinuxSeccomp, host: Host, d: &SeccompData) -> u32 {
    let listed: Vec<Abi> = std::iter::once(host.native)
        .chain(
            p.architectures()
                .iter()
                .flatten()
                .filter_map(|&a| host.abi_for(a)),
        )
        .collect();
    let nr = d.nr as u32;
    let abi = if d.arch == Abi::X86_64.audit_arch() && host.native == Abi::X86_64 {
        if nr >= X32_SYSCALL_BIT {
            if !listed.contains(&Abi::X32) {
                return RET_KILL_PROCESS;
            }
            Abi::X32
        } else {
            Abi::X86_64
        }
    } else {
        match listed
            .iter()
            .find(|a| a.audit_arch() == d.arch && **a != Abi::X32)
        {
            Some(&a) => a,
            None => return RET_KILL_PROCESS,
        }
    };
    let value = |action: Action, errno: Option<u32>| match action {
        Action::ScmpActKill | Action::ScmpActKillThread => RET_KILL_THREAD,
        Action::ScmpActKillProcess => RET_KILL_PROCESS,
        Action::ScmpActTrap => RET_TRAP,
        Action::ScmpActErrno => RET_ERRNO | errno.unwrap_or(EPERM),
        Action::ScmpActTrace => RET_TRACE | errno.unwrap_or(EPERM),
        Action::ScmpActNotify => RET_USER_NOTIF,
        Action::ScmpActLog => RET_LOG,
        Action::ScmpActAllow => RET_ALLOW,
    };
    for s in p.syscalls().iter().flatten() {
        if !s.names().iter().any(|n| abi.resolve(n) == Some(nr)) {
            continue;
        }
        let args = s.args().as_deref().unwrap_or_default();
        // AND over argument indexes of OR within one index.
        let matches = (0..6).all(|i| {
            let on_i: Vec<_> = args.iter().filter(|a| a.index() == i).collect();
            on_i.is_empty()
                || on_i
                    .iter()
                    .any(|a| holds(a.op(), d.args[i], a.value(), a.value_two().unwrap_or(0)))
        });
        if matches {
            return value(s.action(), s.errno_ret());
        }
    }
    value(p.default_action(), p.default_errno_ret())
}

const POOL: [&str; 9] = [
    "read",
    "write",
    "mkdir",
    "personality",
    "socket",
    "ioctl",
    "socketcall",
    "getpid",
    "mmap",
];
const VALUES: [u64; 10] = [
    0,
    1,
    5,
    9,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0005,
    0x8000_0000_0000_0001,
    u64::MAX,
    0xdead_0000_beef,
];
const ACTIONS: [&str; 8] = [
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_LOG",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_NOTIFY",
];

fn random_profile(rng: &mut Rng) -> serde_json::Value {
    let arches = [
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_X86_64",
    ];
    let mut listed = vec![];
    for a in arches {
        if rng.below(2) == 0 {
            listed.push(a);
        }
    }
    let mut syscalls = vec![];
    for _ in 0..rng.below(8) {
        let names: Vec<&str> = (0..1 + rng.below(3)).map(|_| *rng.pick(&POOL)).collect();
        let args: Vec<_> = (0..rng.below(4))
            .map(|_| {
                let op = *rng.pick(&OPS);
                let value = if rng.below(3) == 0 {
                    rng.next()
                } else {
                    *rng.pick(&VALUES)
                };
                let two = if rng.below(2) == 0 {
                    value & rng.next()
                } else {
                    *rng.pick(&VALUES)
                };
                json!({"index": rng.below(4), "value": value, "valueTwo": two, "op": op})
            })
            .collect();
        let mut e = json!({"names": names, "action": rng.pick(&ACTIONS)});
        if !args.is_empty() {
            e["args"] = json!(args);
        }
        if rng.below(2) == 0 {
            e["errnoRet"] = json!(rng.below(200));
        }
        syscalls.push(e);
    }
    let mut p = json!({
        "defaultAction": rng.pick(&ACTIONS[..7]),
        "architectures": listed,
        "syscalls": syscalls,
    });
    if rng.below(2) == 0 {
        p["defaultErrnoRet"] = json!(rng.below(200));
    }
    p
}

fn random_call(rng: &mut Rng) -> SeccompData {
    let abi = *rng.pick(&[Abi::X86_64, Abi::X86, Abi::X32, Abi::Aarch64, Abi::Arm]);
    let nr = match rng.below(8) {
        0 => rng.below(600) as u32,
        1 => rng.next() as u32,
        _ => abi.resolve(POOL[rng.below(POOL.len())]).unwrap_or(1),
    };
    let mut args = [0; 6];
    for a in &mut args {
        *a = match rng.below(4) {
            0 => rng.next(),
            1 => rng.next() & 0xffff_ffff,
            _ => *rng.pick(&VALUES),
        };
    }
    SeccompData::new(abi.audit_arch(), nr, args)
}

#[test]
fn compiled_programs_agree_with_the_profile() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    for round in 0..600 {
        let json = random_profile(&mut rng);
        let p = profile(json.clone());
        let host = if round % 4 == 3 {
            Host::AARCH64
        } else {
            Host::X86_64
        };
        let f = compile_for(&p, host).unwrap_or_else(|e| panic!("{json}: {e}"));
        bpf::validate(&f.program).unwrap();
        for _ in 0..100 {
            let d = random_call(&mut rng);
            let got = run(&f.program, &d);
            let want = reference(&p, host, &d);
            assert_eq!(got, want, "profile {json}\ncall {d:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 60_000);
}

#[test]
fn podman_profile_agrees_with_a_direct_reading() {
    let p = podman_profile_for_amd64();
    let f = build(&p);
    let mut rng = Rng(42);
    for abi in [Abi::X86_64, Abi::X86, Abi::X32] {
        for s in syscalls::x86_64::Sysno::iter()
            .map(|s| s.name())
            .chain(syscalls::x86::Sysno::iter().map(|s| s.name()))
        {
            let Some(nr) = abi.resolve(s) else { continue };
            for _ in 0..4 {
                let mut args = [0; 6];
                for a in &mut args {
                    *a = if rng.below(2) == 0 {
                        *rng.pick(&[0, 8, 9, 16, 0x20000, 0xffff_ffff])
                    } else {
                        rng.next()
                    };
                }
                let d = SeccompData::new(abi.audit_arch(), nr, args);
                assert_eq!(
                    run(&f.program, &d),
                    reference(&p, Host::X86_64, &d),
                    "{abi:?} {s} {d:?}"
                );
            }
        }
    }
}

/// Timings for the report; run with
/// `cargo test --release -p berth-runtime --lib seccomp::tests::timings -- --ignored --nocapture`.
#[test]
#[ignore = "timing report, not a check"]
fn timings() {
    use std::time::{Duration, Instant};
    fn median(mut f: impl FnMut(), n: usize) -> Duration {
        let mut t: Vec<Duration> = (0..n)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed()
            })
            .collect();
        t.sort();
        t[n / 2]
    }
    let p = podman_profile_for_amd64();
    let mut raw = podman_json();
    raw["architectures"] = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    let raw: LinuxSeccomp = serde_json::from_value(raw).unwrap();
    let dir = tempfile::tempdir().unwrap();
    super::compile_cached(&p, dir.path()).unwrap();
    let n = 500;
    eprintln!(
        "podman (amd64, 3 ABIs): {} insns; compile {:?}; cache key {:?}; cache hit {:?}",
        build(&p).program.len(),
        median(|| drop(super::compile(&p).unwrap()), n),
        median(|| drop(super::cache::key(&p).unwrap()), n),
        median(|| drop(super::compile_cached(&p, dir.path()).unwrap()), n),
    );
    let miss_dir = tempfile::tempdir().unwrap();
    let mut i = 0;
    eprintln!(
        "cache miss (compile + write): {:?}",
        median(
            || {
                i += 1;
                drop(super::compile_cached(&p, &miss_dir.path().join(i.to_string())).unwrap())
            },
            100
        )
    );
    eprintln!(
        "podman file as-is (all entries): {} insns; compile {:?}",
        build(&raw).program.len(),
        median(|| drop(super::compile(&raw).unwrap()), n),
    );
}

/// What installing podman's profile costs the kernel; run with
/// `cargo test --release -p berth-runtime --lib seccomp::tests::install_timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing report, not a check"]
fn install_timing() {
    let f = build(&podman_profile_for_amd64());
    let mut times = Vec::new();
    for _ in 0..51 {
        let (mut r, mut w) = std::io::pipe().unwrap();
        match unsafe { libc::fork() } {
            0 => {
                unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
                let t = std::time::Instant::now();
                super::install::install(&f).unwrap();
                let ns = t.elapsed().as_nanos() as u64;
                use std::io::Write;
                let _ = w.write_all(&ns.to_ne_bytes());
                unsafe { libc::_exit(0) };
            }
            pid => {
                drop(w);
                let mut b = [0u8; 8];
                use std::io::Read;
                r.read_exact(&mut b).unwrap();
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                times.push(u64::from_ne_bytes(b));
            }
        }
    }
    times.sort();
    eprintln!(
        "podman (amd64, 3 ABIs): {} insns; install median {} us",
        f.program.len(),
        times[times.len() / 2] / 1000
    );
}
