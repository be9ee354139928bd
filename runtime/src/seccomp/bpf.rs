//! Classic BPF encoding: the opcodes a seccomp filter uses, and the checks
//! the kernel makes on a program before it takes it.

use super::sock_filter;

// linux/bpf_common.h; seccompiler keeps its copies crate-private.
pub(crate) const BPF_LD: u16 = 0x00;
pub(crate) const BPF_ALU: u16 = 0x04;
pub(crate) const BPF_JMP: u16 = 0x05;
pub(crate) const BPF_RET: u16 = 0x06;
pub(crate) const BPF_W: u16 = 0x00;
pub(crate) const BPF_ABS: u16 = 0x20;
pub(crate) const BPF_AND: u16 = 0x50;
pub(crate) const BPF_JA: u16 = 0x00;
pub(crate) const BPF_JEQ: u16 = 0x10;
pub(crate) const BPF_JGT: u16 = 0x20;
pub(crate) const BPF_JGE: u16 = 0x30;
pub(crate) const BPF_K: u16 = 0x00;

/// The kernel's BPF_MAXINSNS: longer programs are refused with EINVAL.
pub const MAX_INSNS: usize = 4096;

/// Offsets into `struct seccomp_data`.
pub(crate) const DATA_NR: u32 = 0;
pub(crate) const DATA_ARCH: u32 = 4;
/// Size of `struct seccomp_data`: loads must stay below it.
pub(crate) const DATA_LEN: u32 = 64;

pub(crate) fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

pub(crate) fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

pub(crate) fn ret(action: u32) -> sock_filter {
    stmt(BPF_RET | BPF_K, action)
}

pub(crate) fn load(offset: u32) -> sock_filter {
    stmt(BPF_LD | BPF_W | BPF_ABS, offset)
}

/// Checks `program` the way the kernel's `bpf_check_classic` and
/// `seccomp_check_filter` would for the instructions we emit: every jump
/// lands inside the program, loads are aligned words inside seccomp_data,
/// and the last instruction returns. Used to reject a damaged cache entry
/// before it reaches seccomp(2) and to check our own output in tests.
pub(crate) fn validate(program: &[(u16, u8, u8, u32)]) -> Result<(), String> {
    if program.is_empty() {
        return Err("empty program".into());
    }
    if program.len() > MAX_INSNS {
        return Err(format!("{} instructions", program.len()));
    }
    let len = program.len();
    for (pc, &(code, jt, jf, k)) in program.iter().enumerate() {
        let lands = |off: usize| pc + 1 + off < len;
        let ok = match code {
            c if c == BPF_LD | BPF_W | BPF_ABS => k % 4 == 0 && k < DATA_LEN,
            c if c == BPF_ALU | BPF_AND | BPF_K => true,
            c if c == BPF_RET | BPF_K => true,
            c if c == BPF_JMP | BPF_JA => lands(k as usize),
            c if c == BPF_JMP | BPF_JEQ | BPF_K
                || c == BPF_JMP | BPF_JGT | BPF_K
                || c == BPF_JMP | BPF_JGE | BPF_K =>
            {
                lands(jt.into()) && lands(jf.into())
            }
            _ => false,
        };
        if !ok {
            return Err(format!(
                "bad instruction {pc}: code {code:#x} jt {jt} jf {jf} k {k:#x}"
            ));
        }
    }
    if program[len - 1].0 != BPF_RET | BPF_K {
        return Err("program does not end with a return".into());
    }
    Ok(())
}
