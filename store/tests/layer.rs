//! Layers on the real kernel: trees made on disk go through `create` and
//! come back identical through `apply`; whiteouts land as deletions or as
//! overlayfs whiteouts that a real overlay mount honours; hostile layers
//! are refused without touching anything outside the destination. As root
//! (mknod, chown, trusted xattrs, overlayfs), in a private mount namespace:
//! `unshare -m --propagation private cargo test -p berth-store --test layer`.

mod fixtures;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_store::layer::{
    self, Applied, ApplyOptions, Changes, Compression, CreateOptions, Created, LayerError,
    WhiteoutMode,
};
use fixtures::{Mounted, gzip, raw_tar, tree_with_times, xattr_get};
use sha2::{Digest as _, Sha256};
use tar::EntryType;

// ---------------------------------------------------------------- helpers

fn tempdir() -> tempfile::TempDir {
    fixtures::require_root();
    tempfile::Builder::new()
        .prefix("bt-layer-")
        .tempdir()
        .unwrap()
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// Sets atime and mtime of `p` (not following a symlink).
fn set_mtime(p: &Path, sec: i64) {
    let ts = libc::timespec {
        tv_sec: sec,
        tv_nsec: 0,
    };
    let c = cpath(p);
    // SAFETY: C string and two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            [ts, ts].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", p.display());
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let (c, n) = (cpath(p), CString::new(name).unwrap());
    // SAFETY: C strings and a value slice.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn mknod(p: &Path, mode: u32, dev: libc::dev_t) {
    let c = cpath(p);
    // SAFETY: C string.
    let r = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(p: &Path, id: u32) {
    std::os::unix::fs::lchown(p, Some(id), Some(id)).unwrap();
}

fn mkdir(p: &Path, mode: u32) {
    std::fs::create_dir(p).unwrap();
    chmod(p, mode);
}

fn write(p: &Path, data: &[u8], mode: u32) {
    std::fs::write(p, data).unwrap();
    chmod(p, mode);
}

/// Rewrites a file in place (same inode: its hardlinks see the change).
fn rewrite(p: &Path, data: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(p)
        .unwrap();
    f.write_all(data).unwrap();
}

fn cp_a(src: &Path, dst: &Path) {
    let st = Command::new("cp").arg("-a").arg(src).arg(dst).status();
    assert!(st.unwrap().success(), "cp -a {}", src.display());
}

/// Every path below `root` (not the root), sorted.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Fixed, distinct mtimes on everything below `root`: files, symlinks and
/// nodes first, then directories, children before parents (writing into a
/// directory would change its mtime again).
fn fix_mtimes(root: &Path, base: i64) {
    let all = walk(root);
    let (dirs, others): (Vec<_>, Vec<_>) = all
        .iter()
        .partition(|p| std::fs::symlink_metadata(p).unwrap().is_dir());
    for (i, p) in others.iter().enumerate() {
        set_mtime(p, base + 1000 * i as i64);
    }
    for (i, p) in dirs.iter().enumerate().rev() {
        set_mtime(p, base + 7 + 1000 * i as i64);
    }
}

fn sha256(data: &[u8]) -> String {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The tar inside `data`, decompressed by the reference decoders.
fn decompress(data: &[u8], compression: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    match compression {
        Compression::None => out.extend_from_slice(data),
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(data)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
        }
    }
    out
}

fn create(changes: &Changes, compression: Compression, threads: usize) -> (Vec<u8>, Created) {
    let mut out = Vec::new();
    let opts = CreateOptions {
        compression,
        level: None,
        threads,
    };
    let created = layer::create(changes, &mut out, &opts).unwrap_or_else(|e| panic!("create: {e}"));
    (out, created)
}

fn apply(bytes: &[u8], dest: &Path, whiteouts: WhiteoutMode) -> Result<Applied, LayerError> {
    layer::apply(&mut &bytes[..], dest, &ApplyOptions { whiteouts })
}

/// Asserts two trees are equal, listing only the paths that differ.
fn assert_same_tree(got: &BTreeMap<String, String>, want: &BTreeMap<String, String>, ctx: &str) {
    let mut diffs = Vec::new();
    for (k, w) in want {
        match got.get(k) {
            Some(g) if g == w => {}
            Some(g) => diffs.push(format!("  {k}:\n    want {w}\n    got  {g}")),
            None => diffs.push(format!("  {k}: missing (want {w})")),
        }
    }
    for (k, g) in got {
        if !want.contains_key(k) {
            diffs.push(format!("  {k}: unexpected ({g})"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{ctx}: trees differ:\n{}",
        diffs.join("\n")
    );
}

fn mount_overlay(opts: &str, target: &Path) -> Mounted {
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts),
    )
    .unwrap_or_else(|e| panic!("mount overlay {opts}: {e}"));
    Mounted(target.to_path_buf())
}

fn is_whiteout_dev(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .is_ok_and(|m| m.mode() & libc::S_IFMT == libc::S_IFCHR && m.rdev() == 0)
}

// ------------------------------------------------------------ round trip

/// Pseudo-random bytes that compress about as well as a binary does.
fn compressible(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|i| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if i % 5 == 0 {
                (x >> 24) as u8
            } else {
                b"\x7fELF layer text "[i % 16]
            }
        })
        .collect()
}

const LONG_NAME: &str = "a-name-longer-than-the-hundred-bytes-of-a-ustar-header-so-that-it-needs-a-pax-path-record-to-be-kept-whole.txt";

/// A tree with every kind of thing a layer carries.
fn build_tree(root: &Path) {
    mkdir(root, 0o755);
    let p = |s: &str| root.join(s);

    mkdir(&p("dirs"), 0o755);
    mkdir(&p("dirs/private"), 0o700);
    set_xattr(&p("dirs/private"), "user.dir", b"private\0dir");
    mkdir(&p("dirs/sticky"), 0o1777);
    write(&p("dirs/sticky/inside"), b"in a sticky dir\n", 0o644);

    mkdir(&p("files"), 0o755);
    write(&p("files/plain"), b"plain file\n", 0o644);
    set_xattr(
        &p("files/plain"),
        "user.plain",
        b"value with\nnewline and \xff bytes",
    );
    write(&p("files/empty"), b"", 0o644);
    write(&p("files/suid"), b"#!/bin/sh\necho suid\n", 0o755);
    chown(&p("files/suid"), 0);
    chmod(&p("files/suid"), 0o4755);
    // Several gzip blocks (1 MiB each), not a multiple of 512.
    write(
        &p("files/big"),
        &compressible(3 * 1024 * 1024 + 123, 7),
        0o644,
    );
    write(&p("files").join(LONG_NAME), b"long\n", 0o600);

    mkdir(&p("owned"), 0o755);
    chown(&p("owned"), 65534);
    write(&p("owned/u1000"), b"owned by 1000\n", 0o640);
    chown(&p("owned/u1000"), 1000);
    std::os::unix::fs::symlink("u1000", p("owned/link")).unwrap();
    chown(&p("owned/link"), 1000);

    mkdir(&p("links"), 0o755);
    write(&p("links/one"), b"three names, one inode\n", 0o644);
    std::fs::hard_link(p("links/one"), p("links/two")).unwrap();
    std::fs::hard_link(p("links/one"), p("files/three-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p("links/abs")).unwrap();
    std::os::unix::fs::symlink("../files/plain", p("links/rel")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", p("links/dangling")).unwrap();

    mkdir(&p("dev"), 0o755);
    mknod(&p("dev/null"), libc::S_IFCHR | 0o666, libc::makedev(1, 3));
    chmod(&p("dev/null"), 0o666);
    mknod(&p("dev/fifo"), libc::S_IFIFO | 0o640, 0);
    chmod(&p("dev/fifo"), 0o640);

    fix_mtimes(root, 1_600_000_000);
}

/// The tree holds what the round trip is meant to check, so an equal
/// result is not vacuous.
fn check_tree_has_everything(t: &BTreeMap<String, String>) {
    let has = |k: &str, what: &str| {
        let d = t.get(k).unwrap_or_else(|| panic!("{k} missing"));
        assert!(d.contains(what), "{k}: {d} lacks {what}");
    };
    has("dirs/private", "mode=40700");
    has("dirs/private", "user.dir=7072697661746500646972");
    has("dirs/sticky", "mode=41777");
    has("files/suid", "mode=104755");
    has("files/plain", "user.plain=");
    has("owned", "uid=65534 gid=65534");
    has("owned/u1000", "uid=1000 gid=1000");
    has("owned/link", "uid=1000 gid=1000 -> u1000");
    has("links/two", "hardlink-of=files/three-link");
    has("links/one", "hardlink-of=files/three-link");
    has("links/abs", "-> /etc/passwd");
    has("links/rel", "-> ../files/plain");
    has("dev/null", &format!("rdev={}", libc::makedev(1, 3)));
    has("dev/fifo", "mode=10640");
    has("dirs", "mtime=1600");
    has("files/big", "size=3145851");
}

#[test]
fn round_trip_keeps_everything() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    build_tree(&src);
    let want = tree_with_times(&src);
    check_tree_has_everything(&want);
    let changes = Changes::Diff {
        lower: None,
        upper: src.clone(),
    };

    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let ctx = format!("{compression:?}");
        let (bytes, created) = create(&changes, compression, 2);
        assert_eq!(Compression::detect(&bytes), compression, "{ctx}");
        assert_eq!(created.media_type, compression.media_type(), "{ctx}");
        assert_eq!(created.size, bytes.len() as u64, "{ctx}");
        // The digests, computed independently of the store's own hashing.
        let tar = decompress(&bytes, compression);
        assert_eq!(created.digest.to_string(), sha256(&bytes), "{ctx} digest");
        assert_eq!(created.diff_id.to_string(), sha256(&tar), "{ctx} diff_id");
        if compression != Compression::None {
            assert!(bytes.len() < tar.len() / 2, "{ctx}: barely compressed");
        }

        let dest = tmp.path().join(format!("dest-{ctx}"));
        std::fs::create_dir(&dest).unwrap();
        let applied = apply(&bytes, &dest, WhiteoutMode::Delete)
            .unwrap_or_else(|e| panic!("{ctx}: apply: {e}"));
        assert_eq!(
            applied,
            Applied {
                diff_id: created.diff_id.clone(),
                digest: created.digest.clone(),
                compression,
                compressed_size: bytes.len() as u64,
                size: tar.len() as u64,
            },
            "{ctx}"
        );
        assert_same_tree(&tree_with_times(&dest), &want, &ctx);
    }

    // The comparison sees a directory's mtime and an xattr's value.
    let dest = tmp.path().join("dest-Gzip");
    set_mtime(&dest.join("dirs/private"), 1);
    assert_ne!(tree_with_times(&dest), want);
    set_mtime(
        &dest.join("dirs/private"),
        std::fs::symlink_metadata(src.join("dirs/private"))
            .unwrap()
            .mtime(),
    );
    assert_eq!(tree_with_times(&dest), want);
    set_xattr(&dest.join("files/plain"), "user.plain", b"other");
    assert_ne!(tree_with_times(&dest), want);
}

#[test]
fn gnu_tar_reads_a_created_layer() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    build_tree(&src);
    let (bytes, _) = create(
        &Changes::Diff {
            lower: None,
            upper: src.clone(),
        },
        Compression::Gzip,
        2,
    );
    let file = tmp.path().join("layer.tar.gz");
    std::fs::write(&file, &bytes).unwrap();
    let out = Command::new("tar").arg("-tzf").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "tar -tzf: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .collect();
    let want: Vec<String> = walk(&src)
        .iter()
        .map(|p| p.strip_prefix(&src).unwrap().to_string_lossy().into_owned())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, want);
    assert!(names.iter().any(|n| n.ends_with(LONG_NAME)));
}

#[test]
fn create_is_reproducible() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    build_tree(&src);
    // A copy: other inodes, other directory order on disk, same tree.
    let copy = tmp.path().join("copy");
    cp_a(&src, &copy);
    let of = |p: &Path| Changes::Diff {
        lower: None,
        upper: p.to_path_buf(),
    };
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let (one, c1) = create(&of(&src), compression, 1);
        let (two, c2) = create(&of(&src), compression, 2);
        let (all, c0) = create(&of(&copy), compression, 0);
        assert!(one == two, "{compression:?}: threads=1 and 2 differ");
        assert!(one == all, "{compression:?}: the copy's layer differs");
        assert_eq!(c1, c2, "{compression:?}");
        assert_eq!(c1, c0, "{compression:?}");
        assert_eq!(c1.digest.to_string(), sha256(&one));
    }
}

// ------------------------------------------------------------- whiteouts

/// A tree the changes below are made to.
fn build_lower(root: &Path) {
    mkdir(root, 0o755);
    let p = |s: &str| root.join(s);
    mkdir(&p("etc"), 0o755);
    write(&p("etc/keep.conf"), b"keep\n", 0o644);
    write(&p("etc/old.conf"), b"old\n", 0o644);
    mkdir(&p("etc/private"), 0o700);
    set_xattr(&p("etc/private"), "user.note", b"private dir");
    write(&p("etc/private/config"), b"v1\n", 0o600);
    chown(&p("etc/private/config"), 1000);
    chown(&p("etc/private"), 1000);
    mkdir(&p("var"), 0o755);
    mkdir(&p("var/cache"), 0o755);
    write(&p("var/cache/a"), b"a\n", 0o644);
    mkdir(&p("var/cache/sub"), 0o755);
    write(&p("var/cache/sub/deep"), b"deep\n", 0o644);
    mkdir(&p("var/log"), 0o755);
    write(&p("var/log/kept"), b"kept\n", 0o644);
    mkdir(&p("opt"), 0o755);
    mkdir(&p("opt/app"), 0o755);
    write(&p("opt/app/bin"), b"old bin\n", 0o755);
    mkdir(&p("opt/app/lib"), 0o755);
    write(&p("opt/app/lib/x.so"), b"x\n", 0o644);
    write(&p("opt/app/lib/y.so"), b"y\n", 0o644);
    mkdir(&p("hl"), 0o750);
    write(&p("hl/a"), b"link v1\n", 0o644);
    std::fs::hard_link(p("hl/a"), p("hl/b")).unwrap();
    std::fs::hard_link(p("hl/a"), p("hl/c")).unwrap();
    write(&p("top.txt"), b"top\n", 0o644);
    fix_mtimes(root, 1_500_000_000);
}

/// The changes of the whiteout tests: a file deleted, a directory deleted,
/// a directory replaced by a fresh one (opaque, through overlayfs), files
/// modified in place (one in a directory whose own metadata do not change,
/// one of a hardlink group), files and a directory added.
fn make_changes(root: &Path) {
    let p = |s: &str| root.join(s);
    std::fs::remove_file(p("etc/old.conf")).unwrap();
    std::fs::remove_dir_all(p("var/cache")).unwrap();
    std::fs::remove_dir_all(p("opt/app")).unwrap();
    mkdir(&p("opt/app"), 0o750);
    write(&p("opt/app/new"), b"new\n", 0o644);
    mkdir(&p("opt/app/lib"), 0o755);
    write(&p("opt/app/lib/z.so"), b"z\n", 0o644);
    rewrite(&p("etc/private/config"), b"v2, longer\n");
    rewrite(&p("hl/a"), b"link v2\n");
    write(&p("etc/new.conf"), b"new conf\n", 0o644);
    mkdir(&p("newdir"), 0o755);
    write(&p("newdir/file"), b"added\n", 0o644);
}

/// Applies `bytes` in Overlay mode into an empty directory, checks its
/// whiteouts, mounts it over `lower` read-only and returns the merged tree.
fn overlay_merge(
    tmp: &Path,
    tag: &str,
    bytes: &[u8],
    lower: &Path,
    opaque_app: bool,
) -> BTreeMap<String, String> {
    let applied = tmp.join(format!("applied-{tag}"));
    std::fs::create_dir(&applied).unwrap();
    apply(bytes, &applied, WhiteoutMode::Overlay)
        .unwrap_or_else(|e| panic!("{tag}: apply (overlay): {e}"));
    let a = |s: &str| applied.join(s);
    assert!(is_whiteout_dev(&a("etc/old.conf")), "{tag}: etc/old.conf");
    assert!(is_whiteout_dev(&a("var/cache")), "{tag}: var/cache");
    assert!(!a("etc/keep.conf").exists(), "{tag}: unchanged file copied");
    assert_eq!(
        xattr_get(&a("etc"), "trusted.overlay.opaque"),
        None,
        "{tag}"
    );
    if opaque_app {
        assert_eq!(
            xattr_get(&a("opt/app"), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..]),
            "{tag}: opt/app is not opaque"
        );
        assert!(!a("opt/app/bin").exists(), "{tag}");
    } else {
        // Compared file by file: the old names are whited out one by one.
        assert_eq!(xattr_get(&a("opt/app"), "trusted.overlay.opaque"), None);
        assert!(is_whiteout_dev(&a("opt/app/bin")), "{tag}: opt/app/bin");
        assert!(is_whiteout_dev(&a("opt/app/lib/x.so")), "{tag}");
    }

    let merged = tmp.join(format!("merged-{tag}"));
    std::fs::create_dir(&merged).unwrap();
    let opts = format!("lowerdir={}:{}", applied.display(), lower.display());
    let _m = mount_overlay(&opts, &merged);
    tree_with_times(&merged)
}

#[test]
fn whiteouts_from_a_diff() {
    let tmp = tempdir();
    let t = tmp.path();
    let lower = t.join("lower");
    build_lower(&lower);
    let upper = t.join("upper");
    cp_a(&lower, &upper);
    make_changes(&upper);
    let want = tree_with_times(&upper);
    assert_ne!(tree_with_times(&lower), want);

    let (bytes, created) = create(
        &Changes::Diff {
            lower: Some(lower.clone()),
            upper: upper.clone(),
        },
        Compression::Gzip,
        2,
    );

    // As the copying snapshotter: onto a copy of the lower tree.
    let copy = t.join("copy");
    cp_a(&lower, &copy);
    let applied = apply(&bytes, &copy, WhiteoutMode::Delete).unwrap();
    assert_eq!(applied.diff_id, created.diff_id);
    assert_same_tree(&tree_with_times(&copy), &want, "delete mode");

    // As the overlay snapshotter: alone, then mounted over the lower tree.
    let merged = overlay_merge(t, "diff", &bytes, &lower, false);
    assert_same_tree(&merged, &want, "overlay mode, merged");
}

#[test]
fn whiteouts_from_an_overlay_upper() {
    let tmp = tempdir();
    let t = tmp.path();
    let lower = t.join("lower");
    build_lower(&lower);
    let (upper, work, mnt) = (t.join("upper"), t.join("work"), t.join("mnt"));
    for d in [&upper, &work, &mnt] {
        std::fs::create_dir(d).unwrap();
    }
    let want = {
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},index=off,redirect_dir=off,metacopy=off",
            lower.display(),
            upper.display(),
            work.display()
        );
        let m = mount_overlay(&opts, &mnt);
        make_changes(&mnt);
        let want = tree_with_times(&mnt);
        drop(m);
        want
    };
    assert!(is_whiteout_dev(&upper.join("etc/old.conf")));
    assert_eq!(
        xattr_get(&upper.join("opt/app"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );

    let (bytes, _) = create(&Changes::OverlayUpper(upper.clone()), Compression::Gzip, 2);

    let copy = t.join("copy");
    cp_a(&lower, &copy);
    apply(&bytes, &copy, WhiteoutMode::Delete).unwrap();
    assert_same_tree(&tree_with_times(&copy), &want, "delete mode");

    let merged = overlay_merge(t, "upper", &bytes, &lower, true);
    assert_same_tree(&merged, &want, "overlay mode, merged");
}

// --------------------------------------------------------- hostile input

#[derive(Clone)]
struct Case {
    what: &'static str,
    layer: Vec<u8>,
    /// Each of these appears in the error.
    expect: Vec<String>,
    /// Harmless either way (checked: nothing outside changes).
    may_succeed: bool,
}

fn case(what: &'static str, layer: Vec<u8>, expect: &[&str]) -> Case {
    Case {
        what,
        layer,
        expect: expect.iter().map(|s| s.to_string()).collect(),
        may_succeed: false,
    }
}

const ESCAPES: &str = "goes through a symlink leading out of the root";

/// Layers whose names or links aim outside `dest` (a sibling of `outside`).
fn path_cases(outside: &str) -> Vec<Case> {
    use EntryType::{Directory, Link, Regular, Symlink};
    let abs = format!("{outside}/pwned");
    vec![
        case(
            "dot-dot",
            raw_tar(&[(Regular, "../outside/pwned", "", b"x")]),
            &["\"../outside/pwned\"", "'..'"],
        ),
        case(
            "absolute",
            raw_tar(&[(Regular, &abs, "", b"x")]),
            &[&format!("{abs:?}"), "absolute"],
        ),
        case(
            "absolute symlink then through it",
            raw_tar(&[
                (Symlink, "evil", outside, b""),
                (Regular, "evil/pwned", "", b"x"),
            ]),
            &["\"evil/pwned\"", ESCAPES],
        ),
        case(
            "relative symlink up then through it",
            raw_tar(&[
                (Symlink, "up", "../../..", b""),
                (Regular, "up/pwned", "", b"x"),
            ]),
            &["\"up/pwned\"", ESCAPES],
        ),
        case(
            "chained symlinks",
            raw_tar(&[
                (Symlink, "a", "b", b""),
                (Symlink, "b", "../outside", b""),
                (Regular, "a/pwned", "", b"x"),
            ]),
            &["\"a/pwned\"", ESCAPES],
        ),
        case(
            "directory through a symlink",
            raw_tar(&[
                (Symlink, "evil", outside, b""),
                (Directory, "evil/newdir/", "", b""),
            ]),
            &["\"evil/newdir/\"", ESCAPES],
        ),
        case(
            "hardlink to /etc/shadow",
            raw_tar(&[(Link, "shadow", "/etc/shadow", b"")]),
            &["\"shadow\"", "/etc/shadow"],
        ),
        case(
            "hardlink out through ..",
            raw_tar(&[(Link, "s", "../outside/secret", b"")]),
            &["\"s\"", "../outside/secret"],
        ),
        case(
            "hardlink through a symlink",
            raw_tar(&[
                (Symlink, "evil", outside, b""),
                (Link, "h", "evil/secret", b""),
            ]),
            &["\"h\"", ESCAPES],
        ),
        case(
            "whiteout through a symlink",
            raw_tar(&[
                (Symlink, "evil", outside, b""),
                (Regular, "evil/.wh.secret", "", b""),
            ]),
            &["\"evil/.wh.secret\"", ESCAPES],
        ),
        // In Delete mode an opaque marker under a symlink finds no
        // directory to empty and does nothing; in Overlay mode it is an
        // error. Either way `outside` keeps its file.
        Case {
            may_succeed: true,
            ..case(
                "opaque marker through a symlink",
                raw_tar(&[
                    (Symlink, "evil", outside, b""),
                    (Regular, "evil/.wh..wh..opq", "", b""),
                ]),
                &["\"evil/.wh..wh..opq\""],
            )
        },
    ]
}

/// Streams cut short or corrupt.
fn stream_cases() -> Vec<Case> {
    use EntryType::Regular;
    let big = compressible(128 * 1024, 3);
    let files = raw_tar(&[
        (Regular, "one", "", &big),
        (Regular, "two", "", &big),
        (Regular, "three", "", &big),
    ]);
    let gz = gzip(&files);
    let mut no_end = raw_tar(&[(Regular, "file", "", b"data")]);
    no_end.truncate(no_end.len() - 1024);
    let mut cut = files.clone();
    cut.truncate(512 + big.len() / 2);
    let mut bad = raw_tar(&[(Regular, "file", "", b"data"), (Regular, "next", "", b"x")]);
    bad[1024] ^= 0x01; // the second header's name, checksum unchanged
    vec![
        case(
            "gzip cut in the middle",
            gz[..gz.len() / 2].to_vec(),
            &["layer stream (Gzip)", "incomplete"],
        ),
        case(
            "tar without its end-of-archive blocks",
            no_end.clone(),
            &["end-of-archive", "truncated"],
        ),
        case(
            "gzipped tar without its end-of-archive blocks",
            gzip(&no_end),
            &["end-of-archive", "truncated"],
        ),
        case("tar cut inside a file", cut, &["\"one\"", "truncated"]),
        case("corrupt header checksum", bad, &["checksum", "corrupt"]),
    ]
}

/// What must not change: the sibling directory (names, content, modes,
/// mtimes), /etc/shadow's link count, and no file at /pwned.
fn outside_state(outside: &Path) -> (BTreeMap<String, String>, u64, bool) {
    (
        tree_with_times(outside),
        std::fs::metadata("/etc/shadow")
            .expect("/etc/shadow")
            .nlink(),
        Path::new("/pwned").exists(),
    )
}

#[test]
fn hostile_layers_are_refused() {
    fixtures::require_root();
    let streams = stream_cases();
    let n = path_cases("/x").len() + streams.len();
    let mut failures = Vec::new();
    for mode in [WhiteoutMode::Delete, WhiteoutMode::Overlay] {
        for i in 0..n {
            let tmp = tempdir();
            let (dest, outside) = (tmp.path().join("dest"), tmp.path().join("outside"));
            std::fs::create_dir(&dest).unwrap();
            std::fs::create_dir(&outside).unwrap();
            std::fs::write(outside.join("secret"), b"secret\n").unwrap();
            set_mtime(&outside.join("secret"), 1_400_000_000);
            let before = outside_state(&outside);
            assert!(!before.2, "/pwned exists before the test");

            let mut paths = path_cases(outside.to_str().unwrap());
            let c = match paths.len() {
                len if i < len => paths.swap_remove(i),
                len => streams[i - len].clone(),
            };
            let ctx = format!("{} ({mode:?})", c.what);
            let r = apply(&c.layer, &dest, mode);
            match &r {
                Err(e) => {
                    let msg = e.to_string();
                    for want in &c.expect {
                        if !msg.contains(want.as_str()) {
                            failures.push(format!("{ctx}: error {msg:?} lacks {want:?}"));
                        }
                    }
                }
                Ok(_) if c.may_succeed => {}
                Ok(a) => failures.push(format!("{ctx}: applied: {a:?}")),
            }
            let after = outside_state(&outside);
            assert_eq!(before, after, "{ctx}: something outside changed ({r:?})");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_final_symlink_is_replaced_not_followed() {
    use EntryType::{Directory, Regular, Symlink};
    let tmp = tempdir();
    let (dest, outside) = (tmp.path().join("dest"), tmp.path().join("outside"));
    std::fs::create_dir(&dest).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"secret\n").unwrap();
    let before = outside_state(&outside);
    let o = outside.to_str().unwrap();
    let secret = format!("{o}/secret");
    let layer = raw_tar(&[
        (Symlink, "file", &secret, b""),
        (Regular, "file", "", b"replaced\n"),
        (Symlink, "dir", o, b""),
        (Directory, "dir/", "", b""),
        (Regular, "dir/inside", "", b"in\n"),
    ]);
    apply(&layer, &dest, WhiteoutMode::Delete).unwrap();
    assert_eq!(std::fs::read(dest.join("file")).unwrap(), b"replaced\n");
    assert!(
        std::fs::symlink_metadata(dest.join("dir"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(std::fs::read(dest.join("dir/inside")).unwrap(), b"in\n");
    assert_eq!(outside_state(&outside), before);
}

// ------------------------------------------------ docker cp: extract, tar_tree

#[test]
fn extract_copies_files_in_as_docker_cp_does() {
    let t = tempdir();
    let dest = t.path().join("dest");
    mkdir(&dest, 0o1777);
    mkdir(&dest.join("dir"), 0o755);
    write(&dest.join("file"), b"old\n", 0o644);
    write(&dest.join("gone"), b"x\n", 0o644);
    let tar = raw_tar(&[
        (EntryType::Directory, "./", "", b""),
        (EntryType::Regular, "a/.wh.gone", "", b"plain\n"),
        (EntryType::Regular, ".wh..wh..opq", "", b"plain too\n"),
        (EntryType::Regular, "file", "", b"new\n"),
    ]);
    let opts = layer::ExtractOptions {
        no_overwrite_dir_non_dir: true,
        chown: Some((1000, 1001)),
    };
    layer::extract(&mut &tar[..], &dest, &opts).unwrap();
    // The root entry leaves the destination's mode alone; `.wh.` names are
    // files, not whiteouts; the owner is the one asked for.
    assert_eq!(std::fs::metadata(&dest).unwrap().mode() & 0o7777, 0o1777);
    assert_eq!(std::fs::read(dest.join("a/.wh.gone")).unwrap(), b"plain\n");
    assert!(dest.join("gone").exists());
    assert!(dest.join(".wh..wh..opq").exists());
    assert_eq!(std::fs::read(dest.join("file")).unwrap(), b"new\n");
    let md = std::fs::metadata(dest.join("file")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1000, 1001));

    // noOverwriteDirNonDir, both ways; without it, what is there goes.
    for (kind, name) in [(EntryType::Regular, "dir"), (EntryType::Directory, "file/")] {
        let tar = raw_tar(&[(kind, name, "", b"")]);
        let err = layer::extract(&mut &tar[..], &dest, &opts).unwrap_err();
        assert!(err.to_string().contains("cannot overwrite"), "{err}");
        layer::extract(&mut &tar[..], &dest, &layer::ExtractOptions::default()).unwrap();
    }
    assert!(dest.join("dir").is_file() && dest.join("file").is_dir());

    // Names leaving the destination are refused.
    for bad in ["../escape", "/escape", "a/../../escape"] {
        let tar = raw_tar(&[(EntryType::Regular, bad, "", b"x")]);
        assert!(
            layer::extract(&mut &tar[..], &dest, &opts).is_err(),
            "{bad}"
        );
    }
    assert!(!t.path().join("escape").exists());
}

#[test]
fn tar_tree_names_entries_under_the_given_name() {
    let t = tempdir();
    let src = t.path().join("src");
    mkdir(&src, 0o750);
    write(&src.join("f"), b"f\n", 0o600);
    std::os::unix::fs::symlink("f", src.join("l")).unwrap();
    let names = |name: &[u8], p: &Path| {
        let mut out = Vec::new();
        layer::tar_tree(p, name, &mut out).unwrap();
        let mut a = tar::Archive::new(&out[..]);
        a.entries()
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(b"top", &src), ["top/", "top/f", "top/l"]);
    assert_eq!(names(b".", &src), ["./", "./f", "./l"]);
    assert_eq!(names(b"", &src), ["f", "l"]);
    assert_eq!(names(b"one", &src.join("f")), ["one"]);
    assert_eq!(names(b"l", &src.join("l")), ["l"]);
}
