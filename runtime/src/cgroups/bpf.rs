//! The few eBPF pieces the v2 device filter needs: an assembler for a
//! handful of instructions, the bpf(2) commands to load, attach, query
//! and detach a cgroup program, and (for tests) an emulator.
//!
//! Hand-rolled rather than through `aya`: the program is ~10
//! instructions per rule, built at run time from the OCI rules, and the
//! syscalls are five fixed-size attribute structs. aya would bring an
//! object loader, BTF and maps that this does not use, for more
//! dependency than code.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

// Instruction classes, operations and sources (linux/bpf_common.h,
// linux/bpf.h).
const BPF_LDX: u8 = 0x01;
const BPF_JMP: u8 = 0x05;
const BPF_JMP32: u8 = 0x06;
const BPF_ALU64: u8 = 0x07;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JEQ: u8 = 0x10;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;

/// A register number, r0..r10.
pub type Reg = u8;

/// A conditional jump's comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
}

/// One `struct bpf_insn`, as a u64: opcode in bits 0..8, dst register in
/// 8..12, src register in 12..16, offset in 16..32, immediate in 32..64
/// (the little-endian memory layout; [`Insn::to_kernel`] handles others).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Insn(pub u64);

impl std::fmt::Debug for Insn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Insn(code={:#04x} dst=r{} src=r{} off={} imm={})",
            self.code(),
            self.dst(),
            self.src(),
            self.off(),
            self.imm()
        )
    }
}

impl Insn {
    fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Self {
        Insn(
            u64::from(code)
                | u64::from(dst & 0xf) << 8
                | u64::from(src & 0xf) << 12
                | u64::from(off as u16) << 16
                | u64::from(imm as u32) << 32,
        )
    }

    pub fn code(self) -> u8 {
        self.0 as u8
    }
    pub fn dst(self) -> Reg {
        (self.0 >> 8) as u8 & 0xf
    }
    pub fn src(self) -> Reg {
        (self.0 >> 12) as u8 & 0xf
    }
    pub fn off(self) -> i16 {
        (self.0 >> 16) as u16 as i16
    }
    pub fn imm(self) -> i32 {
        (self.0 >> 32) as u32 as i32
    }

    /// `dst = *(u32 *)(src + off)`
    pub fn ldx_w(dst: Reg, src: Reg, off: i16) -> Self {
        Self::new(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
    }
    /// `dst = src` (64 bit)
    pub fn mov_reg(dst: Reg, src: Reg) -> Self {
        Self::new(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0)
    }
    /// `dst = imm` (sign-extended to 64 bit)
    pub fn mov_imm(dst: Reg, imm: i32) -> Self {
        Self::new(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
    }
    /// `dst &= imm` (imm sign-extended to 64 bit)
    pub fn and_imm(dst: Reg, imm: i32) -> Self {
        Self::new(BPF_ALU64 | BPF_AND | BPF_K, dst, 0, 0, imm)
    }
    /// `dst >>= imm` (logical, 64 bit)
    pub fn rsh_imm(dst: Reg, imm: i32) -> Self {
        Self::new(BPF_ALU64 | BPF_RSH | BPF_K, dst, 0, 0, imm)
    }
    /// `if dst <cmp> imm goto pc + 1 + off`, on all 64 bits.
    pub fn jmp_imm(cmp: Cmp, dst: Reg, imm: i32, off: i16) -> Self {
        Self::new(BPF_JMP | cmp.op() | BPF_K, dst, 0, off, imm)
    }
    /// Like [`Insn::jmp_imm`] on the low 32 bits (kernel 5.1+), so that
    /// u32 values above i32::MAX compare as the u32 they are.
    pub fn jmp32_imm(cmp: Cmp, dst: Reg, imm: u32, off: i16) -> Self {
        Self::new(BPF_JMP32 | cmp.op() | BPF_K, dst, 0, off, imm as i32)
    }
    pub fn exit() -> Self {
        Self::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
    }

    /// Whether this is a conditional jump.
    #[cfg(test)]
    pub fn is_cond_jump(self) -> bool {
        let class = self.code() & 0x07;
        let op = self.code() & 0xf0;
        (class == BPF_JMP || class == BPF_JMP32) && (op == BPF_JEQ || op == BPF_JNE)
    }

    /// This instruction with another jump offset.
    pub fn with_off(self, off: i16) -> Self {
        Self::new(self.code(), self.dst(), self.src(), off, self.imm())
    }

    /// The bytes of `struct bpf_insn` in this machine's layout: the
    /// register nibbles are a C bitfield, whose order follows endianness.
    pub fn to_kernel(self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            self.dst() | self.src() << 4
        } else {
            self.dst() << 4 | self.src()
        };
        let off = self.off().to_ne_bytes();
        let imm = self.imm().to_ne_bytes();
        [
            self.code(),
            regs,
            off[0],
            off[1],
            imm[0],
            imm[1],
            imm[2],
            imm[3],
        ]
    }
}

impl Cmp {
    fn op(self) -> u8 {
        match self {
            Cmp::Eq => BPF_JEQ,
            Cmp::Ne => BPF_JNE,
        }
    }
}

// ------------------------------------------------------------- syscalls

const BPF_PROG_LOAD: u32 = 5;
const BPF_PROG_ATTACH: u32 = 8;
const BPF_PROG_DETACH: u32 = 9;
const BPF_PROG_GET_FD_BY_ID: u32 = 13;
const BPF_PROG_QUERY: u32 = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

// Prefixes of `union bpf_attr`, one per command. The kernel accepts a
// shorter attr than its own and zero-fills the rest; every byte here is
// a named field so that no uninitialised padding reaches it.

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// bpf(cmd, attr, sizeof attr).
///
/// # Safety
/// Every pointer stored in `attr` must be valid for what `cmd` does with
/// it (read the program and license, write the log or the id array).
unsafe fn sys_bpf<T>(cmd: u32, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed repr(C) struct of
    // the size passed; the caller vouches for the pointers inside.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            (attr as *mut T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// How much verifier output to keep when a load fails.
const LOG_SIZE: usize = 64 * 1024;

/// Load a BPF_PROG_TYPE_CGROUP_DEVICE program. On failure, the error and
/// the verifier's log (from a second, logging attempt: logging slows
/// every load down and an undersized buffer fails good programs on old
/// kernels, so the first attempt does without).
pub fn load_cgroup_device(insns: &[Insn], name: &str) -> Result<OwnedFd, (io::Error, String)> {
    let code: Vec<[u8; 8]> = insns.iter().map(|i| i.to_kernel()).collect();
    // Device programs call no GPL-only helper; berth's own license will do.
    let license = c"Apache-2.0";
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    let attr = |log: &mut Vec<u8>| ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: code.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name,
        ..Default::default()
    };
    let load = |log: &mut Vec<u8>| {
        let mut a = attr(log);
        // SAFETY: `code`, `license` and `log` outlive the call; the
        // kernel reads insn_cnt instructions and writes at most
        // log_size bytes.
        unsafe { sys_bpf(BPF_PROG_LOAD, &mut a) }
    };
    let first = match load(&mut Vec::new()) {
        // SAFETY: a successful BPF_PROG_LOAD returns a new fd we own.
        Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => e,
    };
    let mut log = vec![0u8; LOG_SIZE];
    match load(&mut log) {
        Ok(fd) => {
            // Loaded the second time round (a transient failure such as
            // EAGAIN): keep it.
            tracing::debug!(error = %first, "device filter loaded on the second attempt");
            // SAFETY: as above.
            Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
        }
        Err(_) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err((first, String::from_utf8_lossy(&log[..end]).into_owned()))
        }
    }
}

/// Attach `prog` to the cgroup `cgroup` next to any other device
/// programs (BPF_F_ALLOW_MULTI).
pub fn attach_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut a = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    // SAFETY: no pointers in the attr.
    unsafe { sys_bpf(BPF_PROG_ATTACH, &mut a) }.map(drop)
}

/// Detach `prog` from the device programs of `cgroup`.
pub fn detach_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut a = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    // SAFETY: no pointers in the attr.
    unsafe { sys_bpf(BPF_PROG_DETACH, &mut a) }.map(drop)
}

/// The ids of the device programs attached to `cgroup` itself (not the
/// ones it inherits).
pub fn query_device(cgroup: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 16];
    loop {
        let mut a = QueryAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        // SAFETY: the kernel writes at most prog_cnt ids into `ids`.
        match unsafe { sys_bpf(BPF_PROG_QUERY, &mut a) } {
            Ok(_) => {
                ids.truncate(a.prog_cnt as usize);
                return Ok(ids);
            }
            // prog_cnt now holds the real count; more may come meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                ids = vec![0; a.prog_cnt as usize + 16];
            }
            Err(e) => return Err(e),
        }
    }
}

/// An fd of the loaded program with this id.
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut a = GetFdByIdAttr {
        prog_id: id,
        ..Default::default()
    };
    // SAFETY: no pointers in the attr.
    let fd = unsafe { sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut a) }?;
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

// ------------------------------------------------------------- emulator

/// Runs a program over a context the way the kernel would, for the
/// instructions the assembler emits. It also refuses what the verifier
/// would: backward jumps, jumps out of the program, reads of registers
/// never written, reads outside the context.
#[cfg(test)]
pub fn emulate(prog: &[Insn], ctx: &[u8]) -> Result<u64, String> {
    const CTX: u64 = 0x4000_0000_0000;
    let mut regs = [0u64; 11];
    let mut init = [false; 11];
    regs[1] = CTX;
    init[1] = true;
    let mut pc = 0usize;
    for _ in 0..=prog.len() {
        let insn = *prog
            .get(pc)
            .ok_or_else(|| format!("pc {pc} outside the program"))?;
        let (code, d, s) = (insn.code(), insn.dst() as usize, insn.src() as usize);
        if d > 10 || s > 10 {
            return Err(format!("{insn:?}: bad register"));
        }
        let at = pc;
        let read = |r: usize| -> Result<u64, String> {
            if init[r] {
                Ok(regs[r])
            } else {
                Err(format!("{insn:?} at {at}: r{r} is not initialised"))
            }
        };
        let class = code & 0x07;
        let op = code & 0xf0;
        let src_val = |regs_ok: &dyn Fn(usize) -> Result<u64, String>| {
            if code & BPF_X != 0 {
                regs_ok(s)
            } else {
                Ok(insn.imm() as i64 as u64)
            }
        };
        pc += 1;
        match class {
            BPF_LDX => {
                if code != BPF_LDX | BPF_MEM | BPF_W {
                    return Err(format!("{insn:?}: unsupported load"));
                }
                let addr = read(s)?.wrapping_add(insn.off() as i64 as u64);
                let at = addr
                    .checked_sub(CTX)
                    .map(|a| a as usize)
                    .filter(|&a| a + 4 <= ctx.len() && a % 4 == 0)
                    .ok_or_else(|| format!("{insn:?}: load outside the context"))?;
                let b = &ctx[at..at + 4];
                regs[d] = u64::from(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                init[d] = true;
            }
            BPF_ALU64 => {
                let v = src_val(&read)?;
                regs[d] = match op {
                    BPF_MOV => v,
                    BPF_AND => read(d)? & v,
                    BPF_RSH if v < 64 => read(d)? >> v,
                    _ => return Err(format!("{insn:?}: unsupported alu op")),
                };
                init[d] = true;
            }
            BPF_JMP | BPF_JMP32 => {
                if class == BPF_JMP && op == BPF_EXIT {
                    return read(0);
                }
                let (a, b) = (read(d)?, src_val(&read)?);
                let (a, b) = if class == BPF_JMP32 {
                    (a & 0xffff_ffff, b & 0xffff_ffff)
                } else {
                    (a, b)
                };
                let taken = match op {
                    BPF_JEQ => a == b,
                    BPF_JNE => a != b,
                    _ => return Err(format!("{insn:?}: unsupported jump")),
                };
                if insn.off() < 0 {
                    return Err(format!("{insn:?}: backward jump"));
                }
                if taken {
                    pc += insn.off() as usize;
                }
            }
            _ => return Err(format!("{insn:?}: unsupported class")),
        }
    }
    Err("no exit reached".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_kernel_headers() {
        // Byte patterns as `bpftool prog dump xlated opcodes` prints them.
        assert_eq!(
            Insn::ldx_w(2, 1, 4).to_kernel(),
            [0x61, 0x12, 4, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Insn::mov_reg(3, 2).to_kernel(),
            [0xbf, 0x23, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(Insn::mov_imm(0, 1).to_kernel(), [0xb7, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(
            Insn::and_imm(3, 0xffff).to_kernel(),
            [0x57, 3, 0, 0, 0xff, 0xff, 0, 0]
        );
        assert_eq!(
            Insn::rsh_imm(2, 16).to_kernel(),
            [0x77, 2, 0, 0, 16, 0, 0, 0]
        );
        assert_eq!(
            Insn::jmp_imm(Cmp::Ne, 2, 0, 1).to_kernel(),
            [0x55, 2, 1, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Insn::jmp32_imm(Cmp::Eq, 4, u32::MAX, -2).to_kernel(),
            [0x16, 4, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(Insn::exit().to_kernel(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        let i = Insn::jmp32_imm(Cmp::Ne, 5, 4_000_000_000, 300);
        assert_eq!((i.dst(), i.off(), i.imm() as u32), (5, 300, 4_000_000_000));
        assert!(i.is_cond_jump() && !Insn::exit().is_cond_jump());
        assert_eq!(i.with_off(7).off(), 7);
    }

    #[test]
    fn emulator_runs_and_refuses_what_the_verifier_would() {
        let mut ctx = [0u8; 12];
        ctx[..4].copy_from_slice(&0x0006_0002u32.to_ne_bytes());
        ctx[4..8].copy_from_slice(&1u32.to_ne_bytes());
        ctx[8..].copy_from_slice(&3u32.to_ne_bytes());
        let prog = [
            Insn::ldx_w(2, 1, 0),
            Insn::rsh_imm(2, 16),
            Insn::jmp_imm(Cmp::Eq, 2, 6, 2),
            Insn::mov_imm(0, 0),
            Insn::exit(),
            Insn::mov_imm(0, 1),
            Insn::exit(),
        ];
        assert_eq!(emulate(&prog, &ctx), Ok(1));
        // Reading r0 before writing it.
        assert!(emulate(&[Insn::exit()], &ctx).is_err());
        // Loading past the context.
        assert!(emulate(&[Insn::ldx_w(0, 1, 12), Insn::exit()], &ctx).is_err());
        // Falling off the end.
        assert!(emulate(&[Insn::mov_imm(0, 1)], &ctx).is_err());
        // Jumping backwards.
        let back = [
            Insn::mov_imm(0, 1),
            Insn::jmp_imm(Cmp::Eq, 0, 1, -2),
            Insn::exit(),
        ];
        assert!(emulate(&back, &ctx).is_err());
        // 32-bit compares look at the low half only.
        let p32 = [
            Insn::mov_imm(0, -1),
            Insn::jmp32_imm(Cmp::Eq, 0, u32::MAX, 1),
            Insn::mov_imm(0, 7),
            Insn::exit(),
        ];
        assert_eq!(emulate(&p32, &ctx), Ok(u64::MAX));
    }
}
