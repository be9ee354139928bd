//! A classic BPF interpreter for the instructions our filters use, running
//! over `struct seccomp_data` laid out as the kernel lays it out, so tests
//! can check what a program returns without installing it.

use super::bpf::*;

/// `struct seccomp_data` from linux/seccomp.h.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    pub(crate) fn new(arch: u32, nr: u32, args: [u64; 6]) -> Self {
        SeccompData {
            nr: nr as i32,
            arch,
            ip: 0x7f00_dead_beef,
            args,
        }
    }

    /// The bytes the filter sees: nr at 0, arch at 4, ip at 8, args at 16,
    /// each little endian (the hosts we support).
    fn bytes(&self) -> [u8; DATA_LEN as usize] {
        let mut b = [0u8; DATA_LEN as usize];
        b[0..4].copy_from_slice(&self.nr.to_le_bytes());
        b[4..8].copy_from_slice(&self.arch.to_le_bytes());
        b[8..16].copy_from_slice(&self.ip.to_le_bytes());
        for (i, a) in self.args.iter().enumerate() {
            b[16 + i * 8..24 + i * 8].copy_from_slice(&a.to_le_bytes());
        }
        b
    }
}

/// Runs `program` and returns its RET value. Panics on anything the kernel
/// would refuse or we do not emit: unknown opcodes, misaligned or
/// out-of-range loads, jumps out of the program, running off its end.
pub(crate) fn run(program: &[(u16, u8, u8, u32)], data: &SeccompData) -> u32 {
    let bytes = data.bytes();
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let &(code, jt, jf, k) = program
            .get(pc)
            .unwrap_or_else(|| panic!("pc {pc} ran off a {}-instruction program", program.len()));
        pc += 1;
        let cond = |taken: bool| usize::from(if taken { jt } else { jf });
        match code {
            c if c == BPF_LD | BPF_W | BPF_ABS => {
                assert!(
                    k % 4 == 0 && k < DATA_LEN,
                    "bad load offset {k} at {}",
                    pc - 1
                );
                let k = k as usize;
                acc = u32::from_le_bytes(bytes[k..k + 4].try_into().unwrap());
            }
            c if c == BPF_ALU | BPF_AND | BPF_K => acc &= k,
            c if c == BPF_JMP | BPF_JA => pc += k as usize,
            c if c == BPF_JMP | BPF_JEQ | BPF_K => pc += cond(acc == k),
            c if c == BPF_JMP | BPF_JGT | BPF_K => pc += cond(acc > k),
            c if c == BPF_JMP | BPF_JGE | BPF_K => pc += cond(acc >= k),
            c if c == BPF_RET | BPF_K => return k,
            _ => panic!("unsupported opcode {code:#x} at {}", pc - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_kernel() {
        let d = SeccompData::new(0xc000_003e, 83, [1, 2, 3, 0x1122_3344_5566_7788, 5, 6]);
        let prog = |off| {
            vec![
                (BPF_LD | BPF_W | BPF_ABS, 0, 0, off),
                (BPF_RET | BPF_K, 0, 0, 0),
            ]
        };
        // RET K returns K, so read the accumulator through a JEQ ladder.
        let read = |off: u32, want: u32| {
            let mut p = prog(off);
            p.pop();
            p.push((BPF_JMP | BPF_JEQ | BPF_K, 0, 1, want));
            p.push((BPF_RET | BPF_K, 0, 0, 1));
            p.push((BPF_RET | BPF_K, 0, 0, 0));
            run(&p, &d)
        };
        assert_eq!(read(0, 83), 1);
        assert_eq!(read(4, 0xc000_003e), 1);
        assert_eq!(read(16, 1), 1);
        assert_eq!(read(16 + 3 * 8, 0x5566_7788), 1);
        assert_eq!(read(16 + 3 * 8 + 4, 0x1122_3344), 1);
        assert_eq!(read(16 + 3 * 8 + 4, 0x5566_7788), 0);
    }

    #[test]
    fn jumps_and_alu() {
        let d = SeccompData::new(0, 10, [0xf0; 6]);
        let p = [
            (BPF_LD | BPF_W | BPF_ABS, 0, 0, 16),
            (BPF_ALU | BPF_AND | BPF_K, 0, 0, 0x30),
            (BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 0x30),
            (BPF_RET | BPF_K, 0, 0, 1),
            (BPF_JMP | BPF_JGT | BPF_K, 0, 2, 0x30),
            (BPF_JMP | BPF_JA, 0, 0, 2),
            (BPF_RET | BPF_K, 0, 0, 2),
            (BPF_JMP | BPF_JGE | BPF_K, 0, 1, 0x30),
            (BPF_RET | BPF_K, 0, 0, 3),
            (BPF_RET | BPF_K, 0, 0, 4),
        ];
        // 0xf0 & 0x30 = 0x30: JEQ taken → JGT false → JGE true → RET 3.
        assert_eq!(run(&p, &d), 3);
    }

    #[test]
    #[should_panic(expected = "ran off")]
    fn running_off_the_end_panics() {
        run(&[(BPF_JMP | BPF_JA, 0, 0, 5)], &SeccompData::default());
    }
}
