//! .dockerignore rules, walking a context, matching COPY sources and
//! hashing them for the cache.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

use berth_builder::*;

fn ignore(text: &str) -> IgnoreMatcher {
    IgnoreMatcher::parse(".dockerignore", text).unwrap()
}

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

fn paths(entries: &[ContextEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.path.as_str()).collect()
}

#[test]
fn reference_example_patterns() {
    let m = ignore("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
    assert!(m.matches("somedir/temporary.txt"));
    assert!(m.matches("somedir/temp"));
    assert!(m.matches("somedir/subdir/temporary.txt"));
    assert!(m.matches("tempa"));
    assert!(
        !m.matches("temporary.txt"),
        "*/temp* needs one directory level"
    );
    assert!(!m.matches("tempab"));
    assert!(!m.matches("a/b/c/temp"));
    assert!(!m.matches("# comment"));
}

#[test]
fn double_star_matches_any_depth() {
    let m = ignore("**/*.go\n");
    assert!(m.matches("main.go"));
    assert!(m.matches("a/b/c/x.go"));
    assert!(!m.matches("a/b/c/x.gox"));
    let m = ignore("docs/**/*.png\n");
    assert!(m.matches("docs/a.png"));
    assert!(m.matches("docs/x/y/a.png"));
    assert!(!m.matches("img/a.png"));
    let m = ignore("build/**\n");
    assert!(m.matches("build/x/y"));
    assert!(!m.matches("builder"));
    let m = ignore("**/node_modules\n");
    assert!(m.matches("node_modules"));
    assert!(
        m.matches("web/node_modules/x/y.js"),
        "a match on a parent directory excludes below it"
    );
}

#[test]
fn exceptions_and_last_match_wins() {
    let m = ignore("*.md\n!README.md\n");
    assert!(m.matches("CHANGES.md"));
    assert!(!m.matches("README.md"));
    let m = ignore("*.md\n!README*.md\nREADME-secret.md\n");
    assert!(m.matches("CHANGES.md"));
    assert!(!m.matches("README-public.md"));
    assert!(m.matches("README-secret.md"));
    let m = ignore("*.md\nREADME-secret.md\n!README*.md\n");
    assert!(!m.matches("README-secret.md"));
    assert!(m.matches("other.md"));
}

#[test]
fn patterns_are_cleaned_and_leading_slash_ignored() {
    let m = ignore("/secret.txt\n./build/../out//\n  spaced  \n");
    assert!(m.matches("secret.txt"));
    assert!(m.matches("out/x"));
    assert!(m.matches("spaced"));
    assert!(!m.matches("build"));
    let e = IgnoreMatcher::parse(".dockerignore", "ok\n!  \n").unwrap_err();
    assert_eq!(
        e.to_string(),
        ".dockerignore:2: illegal exclusion pattern: \"!\""
    );
    let e = IgnoreMatcher::parse(".dockerignore", "ok\n[bad\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        ".dockerignore:2: syntax error in pattern \"[bad\": unterminated character class"
    );
    let m = ignore("file[0-9].txt\nx[^a].y\n?\n");
    assert!(m.matches("file3.txt"));
    assert!(!m.matches("filex.txt"));
    assert!(m.matches("xb.y"));
    assert!(!m.matches("xa.y"));
    assert!(m.matches("q"));
}

#[test]
fn walk_applies_ignore_and_reenters_for_exceptions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for f in [
        "Dockerfile",
        "README.md",
        "CHANGES.md",
        "src/main.rs",
        "src/notes.md",
        "vendor/a/lib.rs",
        "vendor/keep.txt",
        "target/debug/x",
        "a-b",
        "a/b",
    ] {
        write(root, f, f);
    }
    fs::write(
        root.join(".dockerignore"),
        "*.md\n!README.md\nvendor\n!vendor/keep.txt\ntarget\n",
    )
    .unwrap();
    let m = read_dockerignore(root, &root.join("Dockerfile")).unwrap();
    let e = walk_context(root, &m).unwrap();
    assert_eq!(
        paths(&e),
        vec![
            ".dockerignore",
            "Dockerfile",
            "README.md",
            "a",
            "a-b",
            "a/b",
            "src",
            "src/main.rs",
            "src/notes.md",
            "vendor/keep.txt",
        ]
    );
    assert_eq!(
        e.iter().find(|x| x.path == "src").unwrap().kind,
        EntryKind::Dir
    );
}

#[test]
fn dockerfile_specific_ignore_takes_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a.txt", "a");
    write(root, "b.txt", "b");
    write(root, "build/app.Dockerfile", "FROM x");
    fs::write(root.join(".dockerignore"), "a.txt\n").unwrap();
    let plain = read_dockerignore(root, &root.join("Dockerfile")).unwrap();
    assert!(plain.matches("a.txt") && !plain.matches("b.txt"));
    fs::write(root.join("build/app.Dockerfile.dockerignore"), "b.txt\n").unwrap();
    let specific = read_dockerignore(root, &root.join("build/app.Dockerfile")).unwrap();
    assert!(!specific.matches("a.txt") && specific.matches("b.txt"));
    let none = read_dockerignore(&root.join("build"), &root.join("build/Dockerfile")).unwrap();
    assert!(none.is_empty());
}

fn context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "home.txt", "home");
    write(root, "homework.md", "hw");
    write(root, "other.txt", "o");
    write(root, "src/main.rs", "fn main() {}");
    write(root, "src/lib/mod.rs", "// mod");
    write(root, "src/README.md", "readme");
    write(root, "x/a.txt", "xa");
    write(root, "x/y/a.txt", "xya");
    symlink("main.rs", root.join("src/link.rs")).unwrap();
    dir
}

fn sources(root: &Path, srcs: &[&str], excludes: &[&str], parents: bool) -> SourceSet {
    let entries = walk_context(root, &IgnoreMatcher::default()).unwrap();
    let srcs: Vec<String> = srcs.iter().map(|s| s.to_string()).collect();
    let ex: Vec<String> = excludes.iter().map(|s| s.to_string()).collect();
    match_sources(root, &entries, &srcs, &ex, parents).unwrap_or_else(|e| panic!("{e}"))
}

fn dests(s: &SourceSet) -> Vec<&str> {
    s.entries.iter().map(|e| e.dest.as_str()).collect()
}

#[test]
fn sources_files_dirs_and_globs() {
    let dir = context();
    let root = dir.path();
    assert_eq!(
        dests(&sources(root, &["home.txt"], &[], false)),
        vec!["home.txt"]
    );
    assert_eq!(
        dests(&sources(root, &["/home.txt"], &[], false)),
        vec!["home.txt"]
    );
    assert_eq!(
        dests(&sources(root, &["src"], &[], false)),
        vec!["README.md", "lib", "lib/mod.rs", "link.rs", "main.rs"]
    );
    assert_eq!(
        dests(&sources(root, &["hom*"], &[], false)),
        vec!["home.txt", "homework.md"]
    );
    assert_eq!(
        dests(&sources(root, &["hom?.txt"], &[], false)),
        vec!["home.txt"]
    );
    assert_eq!(
        dests(&sources(root, &["*/a.txt"], &[], false)),
        vec!["a.txt"]
    );
    let link = sources(root, &["src/link.rs"], &[], false);
    assert_eq!(link.entries[0].entry.kind, EntryKind::Symlink);
    assert_eq!(
        link.entries[0].entry.link_target.as_deref(),
        Some("main.rs")
    );
    let all = sources(root, &["."], &[], false);
    assert!(dests(&all).contains(&"src/lib/mod.rs"));
}

#[test]
fn sources_exclude_and_parents() {
    let dir = context();
    let root = dir.path();
    assert_eq!(
        dests(&sources(root, &["hom*"], &["*.md"], false)),
        vec!["home.txt"]
    );
    assert_eq!(
        dests(&sources(root, &["src"], &["*.md", "lib"], false)),
        vec!["link.rs", "main.rs"]
    );
    assert_eq!(
        dests(&sources(root, &["./x/a.txt", "./x/y/a.txt"], &[], true)),
        vec!["x/a.txt", "x/y/a.txt"]
    );
    assert_eq!(
        dests(&sources(root, &["./x/./y/a.txt"], &[], true)),
        vec!["y/a.txt"]
    );
    assert_eq!(
        dests(&sources(root, &["x/*/a.txt"], &[], true)),
        vec!["x/y/a.txt"]
    );
}

#[test]
fn missing_sources_are_errors() {
    let dir = context();
    let root = dir.path();
    let entries = walk_context(root, &ignore("other.txt\n")).unwrap();
    let m = |s: &str| {
        match_sources(root, &entries, &[s.to_string()], &[], false)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        m("nope.txt"),
        "nope.txt: not found in the build context (or excluded by .dockerignore)"
    );
    assert_eq!(
        m("other.txt"),
        "other.txt: not found in the build context (or excluded by .dockerignore)"
    );
    assert_eq!(m("*.none"), "*.none: no file in the build context matches");
    assert_eq!(
        m("../etc/passwd"),
        "../etc/passwd: outside the build context"
    );
}

#[test]
fn content_hash_ignores_mtime() {
    let dir = context();
    let root = dir.path();
    let before = sources(root, &["src", "home.txt"], &[], false);
    let f = fs::File::options()
        .write(true)
        .open(root.join("src/main.rs"))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(86_400 * 30))
        .unwrap();
    drop(f);
    let after = sources(root, &["src", "home.txt"], &[], false);
    assert_eq!(before.digest, after.digest);
    let parent = "sha256:aaaa";
    assert_eq!(
        cache_key(parent, "COPY src /app", Some(&before.digest)),
        cache_key(parent, "COPY src /app", Some(&after.digest))
    );
}

#[test]
fn content_hash_changes_with_content_mode_owner_and_link() {
    let dir = context();
    let root = dir.path();
    let base = sources(root, &["src"], &[], false).digest;

    fs::write(root.join("src/main.rs"), "fn main() { changed() }").unwrap();
    let content = sources(root, &["src"], &[], false).digest;
    assert_ne!(base, content);

    fs::set_permissions(root.join("src/main.rs"), fs::Permissions::from_mode(0o755)).unwrap();
    let mode = sources(root, &["src"], &[], false).digest;
    assert_ne!(content, mode);

    fs::remove_file(root.join("src/link.rs")).unwrap();
    symlink("lib/mod.rs", root.join("src/link.rs")).unwrap();
    let link = sources(root, &["src"], &[], false).digest;
    assert_ne!(mode, link);

    // Ownership as the walk reads it (the uid of a file in the context):
    // the same tree with another owner hashes differently.
    let mut entries = walk_context(root, &IgnoreMatcher::default()).unwrap();
    let src = vec!["src".to_string()];
    let same = match_sources(root, &entries, &src, &[], false)
        .unwrap()
        .digest;
    assert_eq!(same, link);
    entries
        .iter_mut()
        .find(|e| e.path == "src/main.rs")
        .unwrap()
        .uid += 1000;
    let owner = match_sources(root, &entries, &src, &[], false)
        .unwrap()
        .digest;
    assert_ne!(link, owner);
    entries
        .iter_mut()
        .find(|e| e.path == "src/main.rs")
        .unwrap()
        .gid += 1000;
    let group = match_sources(root, &entries, &src, &[], false)
        .unwrap()
        .digest;
    assert_ne!(owner, group);

    // Where a file lands is part of it too.
    let a = sources(root, &["x/a.txt"], &[], false).digest;
    let b = sources(root, &["x/a.txt"], &[], true).digest;
    assert_ne!(a, b);
}

#[test]
fn cache_key_chains_parent_instruction_and_content() {
    let k = cache_key("sha256:p", "RUN make", None);
    assert!(k.starts_with("sha256:") && k.len() == 71);
    assert_ne!(k, cache_key("sha256:q", "RUN make", None));
    assert_ne!(k, cache_key("sha256:p", "RUN make all", None));
    assert_ne!(k, cache_key("sha256:p", "RUN make", Some("sha256:c")));
    assert_eq!(k, cache_key("sha256:p", "RUN make", None));
}
