//! Run a command in a throwaway qemu guest that boots Debian's kernel with
//! a pure cgroup2 hierarchy, the way berth's cgroup v2 tests need a host
//! to be. The guest's root is the host's (read-only over 9p, under a
//! tmpfs overlay), so the host's binaries and the test binaries built on
//! it run unchanged; directories given as shares are writable at the same
//! path.
//!
//! Where /dev/kvm is a real KVM (VT-x or AMD-V) the guest runs on it;
//! otherwise under TCG, qemu's software CPU: about 3 s to boot and 5–40×
//! slower inside, so callers run one suite per boot.

mod cpio;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const INIT: &str = include_str!("init.sh");
const STAGE2: &str = include_str!("stage2.sh");
/// What stage 1 loads to reach the 9p root and build the overlay.
const BOOT_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_blk"];

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(
        "no kernel with 9p support found in /boot and /lib/modules (install linux-image-amd64)"
    )]
    NoKernel,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("module {module} of kernel {kver}: not in modules.dep")]
    Module { module: String, kver: String },
    #[error("running {what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error(
        "the guest ended without reporting a status (qemu {status}); its console said:\n{tail}"
    )]
    NoStatus { status: String, tail: String },
}

pub type Result<T> = std::result::Result<T, VmError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> VmError + '_ {
    move |source| VmError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What to run, and in what guest.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Host directories mounted read-write at the same path.
    pub shares: Vec<PathBuf>,
    /// Working directory in the guest.
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub command: Vec<String>,
    pub memory_mib: u32,
    pub cpus: u32,
    /// A scratch virtio disk of this many MiB (/dev/vda), for io limits.
    pub disk_mib: Option<u32>,
    pub timeout: Duration,
    /// Where kernel images and initramfs are cached between runs.
    pub cache: PathBuf,
}

/// Exit status of a run: the command's, or 124 when the timeout fired.
pub const TIMEOUT_STATUS: i32 = 124;

/// The newest kernel in /boot whose modules include 9p.
pub fn find_kernel() -> Result<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir("/boot")
        .map_err(io_err(Path::new("/boot")))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kver = name.strip_prefix("vmlinuz-")?.to_string();
            let dep = std::fs::read_to_string(format!("/lib/modules/{kver}/modules.dep")).ok()?;
            dep.contains("/9p.ko").then_some((kver, e.path()))
        })
        .collect();
    found.sort();
    found.pop().ok_or(VmError::NoKernel)
}

/// `modules`, and what they depend on, in load order (dependencies first),
/// as paths relative to /lib/modules/<kver>.
pub fn module_closure(modules_dep: &str, modules: &[&str], kver: &str) -> Result<Vec<String>> {
    let deps: Vec<(String, Vec<String>)> = modules_dep
        .lines()
        .filter_map(|l| {
            let (m, rest) = l.split_once(':')?;
            Some((
                m.to_string(),
                rest.split_whitespace().map(str::to_string).collect(),
            ))
        })
        .collect();
    let find = |name: &str| {
        deps.iter().find(|(m, _)| {
            let base = m.rsplit('/').next().unwrap_or(m);
            let stem = base.split(".ko").next().unwrap_or(base);
            stem == name || stem.replace('-', "_") == name
        })
    };
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for name in modules {
        let (path, its) = find(name).ok_or_else(|| VmError::Module {
            module: name.to_string(),
            kver: kver.to_string(),
        })?;
        // modules.dep lists a module's dependencies deepest last.
        for dep in its.iter().rev().chain(std::iter::once(path)) {
            if seen.insert(dep.clone()) {
                order.push(dep.clone());
            }
        }
    }
    Ok(order)
}

/// An uncompressed vmlinux from a bzImage: booted through its PVH entry
/// point, it skips the in-guest decompression (about 2 s under TCG).
fn extract_vmlinux(bzimage: &Path, out: &Path) -> bool {
    let Ok(data) = std::fs::read(bzimage) else {
        return false;
    };
    const XZ: &[u8] = b"\xfd7zXZ\x00";
    let Some(off) = data.windows(XZ.len()).position(|w| w == XZ) else {
        return false;
    };
    let Ok(mut child) = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let mut stdin = child.stdin.take().expect("piped");
    let payload = data[off..].to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&payload);
    });
    let Ok(result) = child.wait_with_output() else {
        return false;
    };
    let _ = writer.join();
    result.stdout.starts_with(b"\x7fELF") && std::fs::write(out, &result.stdout).is_ok()
}

/// Kernel and initramfs for `kver`, built once and cached under `cache`.
fn images(cache: &Path, kver: &str, bzimage: &Path) -> Result<(PathBuf, PathBuf)> {
    let dep_path = PathBuf::from(format!("/lib/modules/{kver}/modules.dep"));
    let dep = std::fs::read_to_string(&dep_path).map_err(io_err(&dep_path))?;
    let modules = module_closure(&dep, BOOT_MODULES, kver)?;
    let mut h = Sha256::new();
    for part in [kver, INIT, &modules.join(" ")] {
        h.update(part.as_bytes());
    }
    let key: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cache.join(format!("{kver}-{key}"));
    let (kernel, initrd) = (dir.join("vmlinux"), dir.join("initrd.cpio"));
    if kernel.exists() && initrd.exists() {
        return Ok((kernel, initrd));
    }
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    if !extract_vmlinux(bzimage, &kernel) {
        std::fs::copy(bzimage, &kernel).map_err(io_err(&kernel))?;
    }
    let mut w = cpio::Writer::new(Vec::new());
    let map = |e: std::io::Error| VmError::Io {
        path: initrd.clone(),
        source: e,
    };
    for d in [
        "bin", "proc", "sys", "dev", "ctl", "lower", "rw", "newroot", "modules",
    ] {
        w.dir(d).map_err(map)?;
    }
    let busybox = Path::new("/bin/busybox");
    w.file(
        "bin/busybox",
        0o755,
        &std::fs::read(busybox).map_err(io_err(busybox))?,
    )
    .map_err(map)?;
    w.file("init", 0o755, INIT.as_bytes()).map_err(map)?;
    let mut order = String::new();
    for m in &modules {
        let src = PathBuf::from(format!("/lib/modules/{kver}/{m}"));
        let name = m.rsplit('/').next().unwrap_or(m);
        w.file(
            &format!("modules/{name}"),
            0o644,
            &std::fs::read(&src).map_err(io_err(&src))?,
        )
        .map_err(map)?;
        order.push_str(name);
        order.push('\n');
    }
    w.file("modules/order", 0o644, order.as_bytes())
        .map_err(map)?;
    let data = w.finish().map_err(map)?;
    let tmp = dir.join("initrd.cpio.tmp");
    std::fs::write(&tmp, data).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &initrd).map_err(io_err(&initrd))?;
    Ok((kernel, initrd))
}

/// Real KVM only: this project's build machines expose a paravirtual
/// /dev/kvm (kvm_pvm) that cannot boot a stock kernel.
fn kvm_usable() -> bool {
    let rw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let pvm = std::fs::read_to_string("/proc/modules").is_ok_and(|m| m.contains("kvm_pvm"));
    let hw = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| {
        c.lines()
            .any(|l| l.starts_with("flags") && (l.contains(" vmx") || l.contains(" svm")))
    });
    rw && !pvm && hw
}

/// Quote for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Boot a guest, run the command, return its exit status.
pub fn run(cfg: &VmConfig) -> Result<i32> {
    let (kver, bzimage) = find_kernel()?;
    let (kernel, initrd) = images(&cfg.cache, &kver, &bzimage)?;
    let ctl = tempfile::Builder::new()
        .prefix("berth-vm-")
        .tempdir()
        .map_err(io_err(Path::new("/tmp")))?;
    let write = |name: &str, data: String| {
        let p = ctl.path().join(name);
        std::fs::write(&p, data).map_err(io_err(&p))
    };
    write("stage2", STAGE2.to_string())?;
    let mut env = String::new();
    for (k, v) in &cfg.env {
        env.push_str(&format!("export {k}={}\n", sh_quote(v)));
    }
    env.push_str(&format!(
        "export BERTH_VM_CWD={}\n",
        sh_quote(&cfg.cwd.to_string_lossy())
    ));
    write("env", env)?;
    let cmd: Vec<String> = cfg.command.iter().map(|a| sh_quote(a)).collect();
    write("cmd", format!("exec {}\n", cmd.join(" ")))?;
    let mut shares = String::new();
    for (i, s) in cfg.shares.iter().enumerate() {
        shares.push_str(&format!("share{i} rw {}\n", s.display()));
    }
    write("shares", shares)?;

    let kvm = kvm_usable();
    let mut append = String::from(
        "console=ttyS0 loglevel=2 panic=-1 oops=panic rdinit=/init cgroup_no_v1=all \
         systemd.unified_cgroup_hierarchy=1 cryptomgr.notests rodata=off",
    );
    if !kvm {
        // Skip the second vCPU's delay-loop calibration under TCG.
        append.push_str(" mitigations=off lpj=10000000");
    }
    let mut q = Command::new("qemu-system-x86_64");
    q.args([
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-nic",
        "none",
        "-serial",
        "stdio",
    ]);
    q.args(["-machine", "pc"]);
    if Path::new("/usr/share/qemu/qboot.rom").exists() {
        q.args(["-bios", "/usr/share/qemu/qboot.rom"]);
    }
    if kvm {
        q.args(["-accel", "kvm", "-cpu", "host"]);
    } else {
        // One host thread for all vCPUs: exec-heavy guests otherwise pay
        // cross-vCPU TLB flushes on every fork and exit.
        q.args(["-accel", "tcg,thread=single", "-cpu", "max"]);
    }
    q.args([
        "-m",
        &cfg.memory_mib.to_string(),
        "-smp",
        &cfg.cpus.to_string(),
    ]);
    q.arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", &append]);
    let fsdev = |q: &mut Command, id: &str, path: &Path, extra: &str, tag: &str| {
        q.arg("-fsdev")
            .arg(format!("local,id={id},path={},{extra}", path.display()));
        q.arg("-device")
            .arg(format!("virtio-9p-pci,fsdev={id},mount_tag={tag}"));
    };
    fsdev(
        &mut q,
        "root",
        Path::new("/"),
        "readonly=on,security_model=none,multidevs=remap",
        "hostroot",
    );
    fsdev(&mut q, "ctl", ctl.path(), "security_model=none", "berthctl");
    for (i, s) in cfg.shares.iter().enumerate() {
        fsdev(
            &mut q,
            &format!("s{i}"),
            s,
            "security_model=passthrough,multidevs=remap",
            &format!("share{i}"),
        );
    }
    let disk = cfg.disk_mib.map(|_| ctl.path().join("disk.img"));
    if let (Some(path), Some(mib)) = (&disk, cfg.disk_mib) {
        let f = std::fs::File::create(path).map_err(io_err(path))?;
        f.set_len(u64::from(mib) << 20).map_err(io_err(path))?;
        q.arg("-drive")
            .arg(format!("file={},if=none,id=d0,format=raw", path.display()));
        q.args(["-device", "virtio-blk-pci,drive=d0"]);
    }
    q.stdin(Stdio::null());
    let mut child = q.spawn().map_err(|source| VmError::Spawn {
        what: "qemu-system-x86_64".into(),
        source,
    })?;
    let deadline = Instant::now() + cfg.timeout;
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|source| VmError::Spawn {
            what: "qemu".into(),
            source,
        })? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("berth-vm: timed out after {}s", cfg.timeout.as_secs());
            return Ok(TIMEOUT_STATUS);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let rc_path = ctl.path().join("rc");
    match std::fs::read_to_string(&rc_path) {
        Ok(rc) => Ok(rc.trim().parse().unwrap_or(1)),
        Err(_) => Err(VmError::NoStatus {
            status: status.to_string(),
            tail: String::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko\n\
kernel/net/9p/9pnet.ko:\n\
kernel/fs/netfs/netfs.ko:\n\
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko\n\
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n\
kernel/drivers/virtio/virtio.ko:\n\
kernel/drivers/virtio/virtio_ring.ko:\n";

    #[test]
    fn dependencies_load_first_and_once() {
        let order = module_closure(DEP, &["9pnet_virtio", "9p"], "k").unwrap();
        let pos = |m: &str| order.iter().position(|o| o.ends_with(m)).unwrap();
        assert!(pos("/virtio.ko") < pos("/9pnet_virtio.ko"));
        assert!(pos("/netfs.ko") < pos("/fscache.ko"));
        assert!(pos("/fscache.ko") < pos("/9p.ko"));
        assert_eq!(order.iter().filter(|o| o.ends_with("/9pnet.ko")).count(), 1);
        assert!(matches!(
            module_closure(DEP, &["nope"], "k"),
            Err(VmError::Module { .. })
        ));
    }

    #[test]
    fn quoting_survives_the_shell() {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", sh_quote("it's $HOME \"x\"")))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $HOME \"x\"");
    }
}
