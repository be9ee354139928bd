//! `berth build` and `docker build` (the docker CLI 28, legacy builder)
//! against berthd: the Dockerfile.examples built and run, the cache, the
//! flags, and failures that leave nothing behind.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{Daemon, require_docker, require_shim};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../Dockerfile.examples")
        .canonicalize()
        .unwrap()
}

/// A busybox image as Docker Hub's: every applet linked, /etc/passwd and
/// /etc/group with root and nobody.
fn full_busybox_tar(dir: &Path) -> PathBuf {
    let root = dir.join("full-bb");
    for d in ["bin", "etc", "tmp", "root"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("/bin/busybox: install busybox-static");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for a in String::from_utf8_lossy(&list.stdout).lines() {
        if a != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(a));
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    let tar = dir.join("full-busybox.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    tar
}

fn daemon() -> Daemon {
    require_shim();
    let d = Daemon::start();
    let tar = full_busybox_tar(d.dir.path());
    d.ok(&["import", tar.to_str().unwrap(), "busybox:latest"]);
    d
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `docker build` with the legacy builder, as the docker CLI 28 does it
/// without buildx.
fn docker_build(d: &Daemon, args: &[&str], stdin: Option<&[u8]>) -> Output {
    require_docker();
    let mut c = d.command("docker");
    c.env("DOCKER_BUILDKIT", "0")
        .arg("build")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = c.spawn().unwrap();
    if let Some(data) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(o: Output, what: &str, d: &Daemon) -> String {
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout:\n{out}\nstderr:\n{err}\nberthd log tail:\n{}",
        o.status,
        d.log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    out
}

/// What each example prints when run, and how to build it.
struct Example {
    name: &'static str,
    build_args: &'static [&'static str],
    expect: &'static str,
}

const EXAMPLES: &[Example] = &[
    Example {
        name: "multistage-scratch",
        build_args: &[],
        expect: "app 1.4.2 says hello, world\nmotd: built with berth\n",
    },
    Example {
        name: "heredocs",
        build_args: &["--build-arg", "NAME=demo"],
        expect: "setup ran for demo\nname=demo\nmode=production\nscript args: one two\n",
    },
    Example {
        name: "arg-scoping",
        build_args: &["--build-arg", "VERSION=3.1", "--build-arg", "COMMIT=abc123"],
        expect: "versioned sees VERSION=3.1\nplain sees VERSION=unset\nfinal APP_VERSION=3.1 APP_COMMIT=abc123\n",
    },
    Example {
        name: "service",
        build_args: &[],
        expect: "=== greeter ===\ngreeter --once as app in /opt/greeter on port 8080 for berth\n-rwxr-xr-x app\n",
    },
    Example {
        name: "dockerignore",
        build_args: &[],
        expect: "./.dockerignore\n./Dockerfile\n./logs/keep.log\n./src/main.txt\n",
    },
    Example {
        name: "copy-from-image",
        build_args: &[],
        expect: "tools: /bin: busybox /usr/local/bin: busybox\n",
    },
    Example {
        name: "cache-mount",
        build_args: &[],
        expect: "libfoo-2.1 contents\nbuild 1\n0\n",
    },
];

#[test]
fn examples_build_and_run_with_berth_and_the_docker_cli() {
    let d = daemon();
    let ex = examples();
    for e in EXAMPLES {
        let dir = ex.join(e.name);
        let tag = format!("ex-{}", e.name);
        let mut args = vec!["build", "-t", tag.as_str()];
        args.extend(e.build_args);
        args.push(dir.to_str().unwrap());
        let out = ok(d.berth(&args), &format!("berth build {}", e.name), &d);
        assert!(out.contains("Successfully built "), "{out}");
        assert!(
            out.contains(&format!("Successfully tagged {tag}:latest")),
            "{out}"
        );
        let run = d.ok(&["run", "--rm", &tag]);
        assert_eq!(run, e.expect, "berth-built {}", e.name);

        let dtag = format!("ex-{}-docker", e.name);
        let mut args = vec!["--no-cache", "-t", dtag.as_str()];
        args.extend(e.build_args);
        args.push(dir.to_str().unwrap());
        let out = ok(
            docker_build(&d, &args, None),
            &format!("docker build {}", e.name),
            &d,
        );
        assert!(out.contains("Step 1/"), "{out}");
        assert!(!out.contains("Using cache"), "--no-cache: {out}");
        let run = d.docker_ok(&["run", "--rm", &dtag]);
        assert_eq!(run, e.expect, "docker-built {}", e.name);
    }
}

#[test]
fn onbuild_parent_and_child() {
    let d = daemon();
    let dir = examples().join("onbuild");
    let parent = dir.join("Dockerfile.parent");
    ok(
        d.berth(&[
            "build",
            "-q",
            "-t",
            "onbuild-parent",
            "-f",
            parent.to_str().unwrap(),
            dir.to_str().unwrap(),
        ]),
        "parent",
        &d,
    );
    let out = ok(
        d.berth(&["build", "-t", "child", dir.to_str().unwrap()]),
        "child",
        &d,
    );
    assert!(out.contains("# Executing 2 build triggers"), "{out}");
    assert!(out.contains("bundled 2 lines"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", "child"]), "line one\nline two\n");
    // The triggers ran in the child and are not passed on.
    let onbuild = d.ok(&["inspect", "--format", "{{json .Config.OnBuild}}", "child"]);
    assert!(matches!(onbuild.trim(), "null" | "[]"), "{onbuild}");
    let parent_triggers = d.ok(&[
        "inspect",
        "--format",
        "{{json .Config.OnBuild}}",
        "onbuild-parent",
    ]);
    assert!(
        parent_triggers.contains("ONBUILD").not()
            && parent_triggers.contains("COPY app/ /srv/app/"),
        "{parent_triggers}"
    );
    // The docker CLI builds the same child.
    let out = ok(
        docker_build(
            &d,
            &["--no-cache", "-t", "child-docker", dir.to_str().unwrap()],
            None,
        ),
        "docker child",
        &d,
    );
    assert!(out.contains("bundled 2 lines"), "{out}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "child-docker"]),
        "line one\nline two\n"
    );
}

trait Not {
    fn not(self) -> bool;
}
impl Not for bool {
    fn not(self) -> bool {
        !self
    }
}

#[test]
fn cache_mount_makes_the_second_build_skip_the_fetch() {
    let d = daemon();
    let dir = examples().join("cache-mount");
    let first = ok(
        d.berth(&["build", "-t", "cm", dir.to_str().unwrap()]),
        "first",
        &d,
    );
    let has_line = |out: &str, l: &str| out.lines().any(|x| x == l);
    assert!(has_line(&first, "cache miss: fetching libfoo"), "{first}");
    // BUILD_ID changes the step's key: it runs again, and finds the cache.
    let second = ok(
        d.berth(&[
            "build",
            "--build-arg",
            "BUILD_ID=2",
            "-t",
            "cm",
            dir.to_str().unwrap(),
        ]),
        "second",
        &d,
    );
    assert!(
        has_line(&second, "cache hit: libfoo from the cache mount"),
        "{second}"
    );
    assert!(
        !has_line(&second, "cache miss: fetching libfoo"),
        "{second}"
    );
    assert_eq!(
        d.ok(&["run", "--rm", "cm"]),
        "libfoo-2.1 contents\nbuild 2\n0\n"
    );
}

#[test]
fn secrets_reach_run_and_never_a_layer() {
    let d = daemon();
    let dir = examples().join("secret");
    let token = d.dir.path().join("token");
    std::fs::write(&token, "s3cr3t").unwrap();
    let spec = format!("id=token,src={}", token.display());
    let out = ok(
        d.berth(&[
            "build",
            "-t",
            "sec",
            "--secret",
            &spec,
            dir.to_str().unwrap(),
        ]),
        "build",
        &d,
    );
    assert!(out.contains("secret ok"), "{out}");
    assert_eq!(
        d.ok(&["run", "--rm", "sec"]),
        "token length: 6\nls: /run/secrets: No such file or directory\n"
    );
    // No layer blob holds the secret.
    let blobs = d.data_root.join("image/blobs/sha256");
    for e in std::fs::read_dir(&blobs).unwrap().flatten() {
        let data = std::fs::read(e.path()).unwrap();
        assert!(
            !data.windows(6).any(|w| w == b"s3cr3t"),
            "blob {} holds the secret",
            e.path().display()
        );
    }
    // Without the secret, the required mount is an error naming the line.
    let o = d.berth(&["build", "--no-cache", dir.to_str().unwrap()]);
    assert!(!o.status.success());
    let (out, err) = text(&o);
    assert!(
        out.contains("Dockerfile:3") || err.contains("Dockerfile:3"),
        "{out}{err}"
    );
}

#[test]
fn dockerfile_specific_dockerignore_wins() {
    let d = daemon();
    let ctx = d.dir.path().join("ctx-ignore");
    write_ctx(
        &ctx,
        &[
            ("a.txt", "a"),
            ("b.txt", "b"),
            ("keep/c.txt", "c"),
            (".dockerignore", "a.txt\n"),
            (
                "Dockerfile",
                "FROM busybox\nCOPY . /ctx/\nCMD find /ctx -type f | sort\n",
            ),
            (
                "build/app.Dockerfile",
                "FROM busybox\nCOPY . /ctx/\nCMD find /ctx -type f | sort\n",
            ),
            ("build/app.Dockerfile.dockerignore", "b.txt\n"),
        ],
    );
    let c = ctx.to_str().unwrap();
    ok(d.berth(&["build", "-q", "-t", "ign-plain", c]), "plain", &d);
    assert_eq!(
        d.ok(&["run", "--rm", "ign-plain"]),
        "/ctx/.dockerignore\n/ctx/Dockerfile\n/ctx/b.txt\n/ctx/build/app.Dockerfile\n\
         /ctx/build/app.Dockerfile.dockerignore\n/ctx/keep/c.txt\n"
    );
    let f = ctx.join("build/app.Dockerfile");
    for client in ["berth", "docker"] {
        let tag = format!("ign-{client}");
        let o = if client == "berth" {
            d.berth(&["build", "-q", "-t", &tag, "-f", f.to_str().unwrap(), c])
        } else {
            docker_build(&d, &["-q", "-t", &tag, "-f", f.to_str().unwrap(), c], None)
        };
        ok(o, client, &d);
        // The Dockerfile's own ignore file replaces .dockerignore: b.txt
        // never comes. a.txt does with berth; the docker CLI's legacy
        // path knows only .dockerignore and leaves it out of the context
        // it sends, so berthd cannot bring it back.
        let a = if client == "berth" {
            "/ctx/a.txt\n"
        } else {
            ""
        };
        assert_eq!(
            d.ok(&["run", "--rm", &tag]),
            format!(
                "/ctx/.dockerignore\n/ctx/Dockerfile\n{a}/ctx/build/app.Dockerfile\n\
                 /ctx/build/app.Dockerfile.dockerignore\n/ctx/keep/c.txt\n"
            ),
            "{client}"
        );
    }
}

#[test]
fn run_mounts_and_networks() {
    let d = daemon();
    let ctx = d.dir.path().join("ctx-mounts");
    write_ctx(
        &ctx,
        &[
            ("in.txt", "ctx-in\n"),
            ("sub/in2.txt", "orig\n"),
            (
                "Dockerfile",
                "FROM busybox AS data\n\
                 RUN mkdir /d && echo from-stage > /d/f\n\
                 FROM busybox\n\
                 RUN --mount=type=bind,target=/ctx cat /ctx/in.txt > /bind1 && (touch /ctx/x 2>/dev/null && echo rw || echo ro) >> /bind1\n\
                 RUN --mount=type=bind,source=sub,target=/s,rw echo changed > /s/in2.txt && cat /s/in2.txt > /bind2\n\
                 RUN --mount=type=bind,from=data,source=/d,target=/fromstage cat /fromstage/f > /bind3\n\
                 RUN --mount=type=tmpfs,target=/scratch,size=1m echo t > /scratch/t && grep ' /scratch ' /proc/mounts | cut -d' ' -f3 > /tmpfs1\n\
                 RUN --mount=type=cache,target=/c,id=locked-c,sharing=locked --mount=type=cache,target=/p,sharing=private echo one >> /c/log && cat /c/log > /cache1 && touch /p/x\n\
                 RUN --network=none tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /net-none\n\
                 RUN --network=host tail -n +3 /proc/net/dev | wc -l > /net-host\n\
                 CMD cat /bind1 /bind2 /bind3 /tmpfs1 /cache1 /net-none /net-host; ls /ctx /s /fromstage /scratch /c /p 2>&1; true\n",
            ),
        ],
    );
    ok(
        d.berth(&["build", "-q", "-t", "mounts", ctx.to_str().unwrap()]),
        "build",
        &d,
    );
    let shown = d.ok(&["run", "--rm", "mounts"]);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(
        lines[..8],
        [
            "ctx-in",
            "ro",
            "changed",
            "from-stage",
            "tmpfs",
            "one",
            "lo",
            lines[7]
        ],
        "{shown}"
    );
    let host_ifaces = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .count()
        - 2;
    assert_eq!(lines[7], host_ifaces.to_string(), "{shown}");
    // No mount point, and nothing written under one, is in the image.
    for (i, p) in ["/ctx", "/s", "/fromstage", "/scratch", "/c", "/p"]
        .iter()
        .enumerate()
    {
        assert!(
            lines[8 + i].contains(p) && lines[8 + i].contains("No such file"),
            "{p}: {shown}"
        );
    }
    // A rw bind changed a copy, never the context.
    assert_eq!(
        std::fs::read_to_string(ctx.join("sub/in2.txt")).unwrap(),
        "orig\n"
    );
    // The locked cache mount kept its content for the next build.
    ok(
        d.berth(&[
            "build",
            "-q",
            "--no-cache",
            "-t",
            "mounts2",
            ctx.to_str().unwrap(),
        ]),
        "rebuild",
        &d,
    );
    let again = d.ok(&["run", "--rm", "--entrypoint", "cat", "mounts2", "/cache1"]);
    assert_eq!(again, "one\none\n");
}

#[test]
fn security_insecure_runs_privileged_when_allowed() {
    let d = daemon();
    let ctx = d.dir.path().join("ctx-insecure");
    write_ctx(
        &ctx,
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN --security=insecure grep -E 'CapEff|Seccomp:' /proc/self/status > /insecure\n\
             RUN grep -E 'CapEff|Seccomp:' /proc/self/status > /sandbox\n\
             CMD cat /insecure /sandbox\n",
        )],
    );
    ok(
        d.berth(&[
            "build",
            "-q",
            "--allow",
            "security.insecure",
            "-t",
            "insecure",
            ctx.to_str().unwrap(),
        ]),
        "build",
        &d,
    );
    let shown = d.ok(&["run", "--rm", "insecure"]);
    let field = |text: &str, k: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(k))
            .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_string())
            .collect()
    };
    // Ours (root, the test's) is every capability there is.
    let all = field(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "CapEff:",
    );
    let caps = field(&shown, "CapEff:");
    let seccomp = field(&shown, "Seccomp:");
    assert_eq!(caps[0], all[0], "insecure: every capability: {shown}");
    assert_ne!(caps[1], all[0], "sandboxed: docker's default set: {shown}");
    assert_eq!(
        seccomp,
        ["0", "2"],
        "no filter, then the default one: {shown}"
    );
}

#[test]
fn bad_security_insecure_not_allowed() {
    fails_cleanly(
        "FROM busybox\nRUN --security=insecure true\n",
        &[],
        2,
        &["--security=insecure is not allowed", "security.insecure"],
    );
}

#[test]
fn the_cache_survives_a_restart_and_a_kill() {
    let mut d = daemon();
    let dir = examples().join("multistage-scratch");
    let dir = dir.to_str().unwrap();
    let first = ok(d.berth(&["build", "-t", "persist", dir]), "first", &d);
    assert!(first.contains("Running in"), "{first}");
    let id = d.ok(&["images", "-q", "persist"]);
    // Stopped, and killed (what a power loss would take, the flush at
    // each build's end guards; that is beyond a test here).
    for kill in [false, true] {
        d.restart(kill);
        let again = ok(d.berth(&["build", "-t", "persist", dir]), "again", &d);
        // Every step but the FROMs is a hit; nothing runs.
        let steps = again
            .lines()
            .filter(|l| l.starts_with("Step ") && !l.contains(" : FROM "))
            .count();
        assert_eq!(
            again.matches("Using cache").count(),
            steps,
            "kill={kill}: {again}"
        );
        assert!(!again.contains("Running in"), "kill={kill}: {again}");
        assert_eq!(d.ok(&["images", "-q", "persist"]), id);
    }
}

/// A foreground ssh-agent, killed by its pid on drop.
struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `bin` and the shared objects `ldd` says it needs, under `root` at
/// their own paths, so it runs in a busybox image.
fn with_libraries(bin: &str, root: &Path) {
    let mut files = vec![PathBuf::from(bin)];
    let ldd = Command::new("ldd").arg(bin).output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            files.push(PathBuf::from(p));
        }
    }
    for f in files {
        let to = root.join(f.strip_prefix("/").unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&f, &to).unwrap();
    }
}

#[test]
fn ssh_agent_reaches_run_through_a_socket_of_its_own() {
    for tool in [
        "/usr/bin/ssh-agent",
        "/usr/bin/ssh-add",
        "/usr/bin/ssh-keygen",
    ] {
        if !Path::new(tool).exists() {
            eprintln!("skipping: {tool} is missing (apt-get install openssh-client)");
            return;
        }
    }
    let d = daemon();
    let base = d.dir.path();
    let sock = base.join("agent.sock");
    let agent = Agent(
        Command::new("/usr/bin/ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "ssh-agent did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let key = base.join("id_test");
    let o = Command::new("/usr/bin/ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "berth-test", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let o = Command::new("/usr/bin/ssh-add")
        .env("SSH_AUTH_SOCK", &sock)
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let fp = Command::new("/usr/bin/ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&fp.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(fp.starts_with("SHA256:"), "{fp}");

    let ctx = base.join("ctx-ssh");
    with_libraries("/usr/bin/ssh-add", &ctx.join("root"));
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         COPY root/ /\n\
         RUN --mount=type=ssh ssh-add -l > /keys && stat -c '%a %u %F' $SSH_AUTH_SOCK > /sock && echo $SSH_AUTH_SOCK >> /sock\n\
         RUN --mount=type=ssh,id=work,target=/agent,mode=0660,uid=1000,gid=1000 stat -c '%a %u:%g' /agent > /sock2 && SSH_AUTH_SOCK=/agent ssh-add -l >> /sock2\n\
         RUN --mount=type=ssh,id=absent echo optional and missing: $SSH_AUTH_SOCK.\n\
         CMD cat /keys /sock /sock2; ls /run/buildkit /agent 2>&1; true\n",
    )
    .unwrap();
    let default = format!("default={}", sock.display());
    let work = format!("work={}", sock.display());
    let out = ok(
        d.berth(&[
            "build",
            "-t",
            "ssh",
            "--ssh",
            &default,
            "--ssh",
            &work,
            ctx.to_str().unwrap(),
        ]),
        "build",
        &d,
    );
    assert!(out.contains("optional and missing: ."), "{out}");
    let shown = d.ok(&["run", "--rm", "ssh"]);
    let lines: Vec<&str> = shown.lines().collect();
    assert!(
        lines[0].contains(&fp) && lines[0].contains("berth-test"),
        "{shown}"
    );
    assert_eq!(lines[1], "600 0 socket", "{shown}");
    assert_eq!(lines[2], "/run/buildkit/ssh_agent.0", "{shown}");
    assert_eq!(lines[3], "660 1000:1000", "{shown}");
    assert!(lines[4].contains(&fp), "{shown}");
    // Nothing of the agent stays in the image.
    assert!(
        lines[5].contains("/run/buildkit") && lines[5].contains("No such file"),
        "{shown}"
    );
    assert!(
        lines[6].contains("/agent") && lines[6].contains("No such file"),
        "{shown}"
    );
    // The host's socket is as it was.
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // A required agent not given: an error on its line.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=ssh,id=deploy,required=true true\n",
    )
    .unwrap();
    let o = d.berth(&["build", "--ssh", &default, ctx.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(!o.status.success(), "{out}{err}");
    assert!(
        format!("{out}{err}").contains("Dockerfile:2") && format!("{out}{err}").contains("deploy"),
        "{out}{err}"
    );
    // An agent that is gone: an error on its line, not a RUN that hangs.
    drop(agent);
    let _ = std::fs::remove_file(&sock);
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=ssh true\n",
    )
    .unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    drop(listener);
    let o = d.berth(&["build", "--ssh", &default, ctx.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(!o.status.success(), "{out}{err}");
    assert!(format!("{out}{err}").contains("Dockerfile:2"), "{out}{err}");
}

/// `name: value` of the config fields the issue compares.
fn config_fields(inspect_json: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(inspect_json).unwrap();
    let c = &v[0]["Config"];
    let mut out = serde_json::Map::new();
    for k in [
        "Env",
        "Cmd",
        "Entrypoint",
        "User",
        "WorkingDir",
        "ExposedPorts",
        "Healthcheck",
        "Labels",
        "Volumes",
        "StopSignal",
        "OnBuild",
    ] {
        let mut val = c.get(k).cloned().unwrap_or(serde_json::Value::Null);
        // Empty and absent are the same to a client.
        if val == serde_json::json!([])
            || val == serde_json::json!({})
            || val == serde_json::json!("")
        {
            val = serde_json::Value::Null;
        }
        out.insert(k.to_string(), val);
    }
    serde_json::Value::Object(out)
}

/// Debian's dockerd 20.10 in a directory of its own (no bridge, no
/// iptables), as bench/benchlib.py runs it.
struct Dockerd {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

const DOCKERD: &str = "/usr/sbin/dockerd";
const DOCKER20: &str = "/usr/bin/docker";

impl Dockerd {
    fn start() -> Dockerd {
        assert!(
            Path::new(DOCKERD).exists() && Path::new(DOCKER20).exists(),
            "{DOCKERD} and {DOCKER20} are missing: install Debian's docker.io (scripts/test does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("bt-dockerd")
            .tempdir()
            .unwrap();
        let p = dir.path();
        for s in ["data", "exec"] {
            std::fs::create_dir(p.join(s)).unwrap();
        }
        let cfg = p.join("daemon.json");
        std::fs::write(
            &cfg,
            format!(
                "{{\"deprecated-key-path\": \"{}\"}}",
                p.join("key.json").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(p.join("dockerd.log")).unwrap();
        let child = Command::new(DOCKERD)
            .arg("--config-file")
            .arg(&cfg)
            .arg("--data-root")
            .arg(p.join("data"))
            .arg("--exec-root")
            .arg(p.join("exec"))
            .arg("--host")
            .arg(format!("unix://{}", p.join("docker.sock").display()))
            .arg("--pidfile")
            .arg(p.join("docker.pid"))
            .args([
                "--storage-driver",
                "overlay2",
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--ip-forward=false",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Dockerd { dir, child };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !d.docker(&["version"]).status.success() {
            assert!(
                std::time::Instant::now() < deadline,
                "dockerd did not come up: {}",
                std::fs::read_to_string(d.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        d
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER20)
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CONFIG", self.dir.path().join("cfg"))
            .arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("docker.sock").display()
            ))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
        // Whatever dockerd left mounted under its own directory.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let base = self.dir.path().to_string_lossy().into_owned();
        let mut targets: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|t| t.starts_with(&base))
            .collect();
        targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for t in targets {
            let _ = nix::mount::umount2(t, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

#[test]
fn image_configs_match_dockerd_20_10_legacy_builder() {
    let d = daemon();
    let dk = Dockerd::start();
    let saved = d.dir.path().join("bb-save.tar");
    d.ok(&["save", "-o", saved.to_str().unwrap(), "busybox:latest"]);
    let o = dk.docker(&["load", "-i", saved.to_str().unwrap()]);
    assert!(o.status.success(), "load into dockerd: {:?}", text(&o));
    let ex = examples();
    // What the legacy builder of 20.10 supports (no heredocs, no RUN
    // --mount, no COPY --chmod).
    let parent = ex.join("onbuild/Dockerfile.parent");
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("service", vec![]),
        (
            "arg-scoping",
            vec!["--build-arg".into(), "VERSION=3.1".into()],
        ),
        ("multistage-scratch", vec![]),
        ("dockerignore", vec![]),
        (
            "onbuild-parent",
            vec!["-f".into(), parent.to_string_lossy().into_owned()],
        ),
    ];
    for (name, extra) in cases {
        let dir = if name == "onbuild-parent" {
            ex.join("onbuild")
        } else {
            ex.join(name)
        };
        // The child's FROM names the parent.
        let tag = if name == "onbuild-parent" {
            name.to_string()
        } else {
            format!("cmp-{name}")
        };
        let mut args: Vec<&str> = vec!["build", "-q", "-t", &tag];
        args.extend(extra.iter().map(String::as_str));
        args.push(dir.to_str().unwrap());
        let o = dk.docker(&args);
        assert!(o.status.success(), "dockerd build {name}: {:?}", text(&o));
        ok(d.berth(&args), &format!("berth build {name}"), &d);
        let theirs = dk.docker(&["inspect", &tag]);
        let ours = d.berth(&["inspect", &tag]);
        let (t, o) = (
            config_fields(&text(&theirs).0),
            config_fields(&text(&ours).0),
        );
        assert_eq!(
            o, t,
            "{name}: berth's config (left) vs dockerd 20.10's (right)"
        );
        if name == "onbuild-parent" {
            // The child of that parent, on both.
            let o1 = dk.docker(&["build", "-q", "-t", "cmp-child", dir.to_str().unwrap()]);
            assert!(o1.status.success(), "{:?}", text(&o1));
            ok(
                d.berth(&["build", "-q", "-t", "cmp-child", dir.to_str().unwrap()]),
                "child",
                &d,
            );
            let (t, o) = (
                config_fields(&text(&dk.docker(&["inspect", "cmp-child"])).0),
                config_fields(&text(&d.berth(&["inspect", "cmp-child"])).0),
            );
            assert_eq!(o, t, "onbuild child");
        }
    }
}

fn write_ctx(dir: &Path, files: &[(&str, &str)]) {
    for (name, body) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

fn step_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with("Step ") || l.contains("Using cache") || l.contains("Running in"))
        .map(|l| {
            if l.contains("Running in") {
                " ---> Running".to_string()
            } else {
                l.to_string()
            }
        })
        .collect()
}

#[test]
fn cache_hits_until_the_changed_copy() {
    let d = daemon();
    let ctx = d.dir.path().join("ctx-cache");
    write_ctx(
        &ctx,
        &[
            (
                "Dockerfile",
                "FROM busybox\nRUN echo one > /one\nCOPY a.txt /\nCOPY b.txt /\nRUN cat /a.txt /b.txt > /both\nCMD [\"cat\", \"/both\"]\n",
            ),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
        ],
    );
    let c = ctx.to_str().unwrap();
    let first = ok(d.berth(&["build", "-t", "cached", c]), "first", &d);
    assert_eq!(first.matches("Using cache").count(), 0, "{first}");
    // Nothing changed: every step after FROM is a hit.
    let second = ok(d.berth(&["build", "-t", "cached", c]), "second", &d);
    assert_eq!(second.matches("Using cache").count(), 5, "{second}");
    assert!(!second.contains("Running in"), "{second}");
    // New times, same content: still hits (content, never mtimes).
    let f = std::fs::File::options()
        .write(true)
        .open(ctx.join("a.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    let third = ok(d.berth(&["build", "-t", "cached", c]), "third", &d);
    assert_eq!(third.matches("Using cache").count(), 5, "{third}");
    // b.txt changes: steps 2-3 hit, 4 onward run again.
    std::fs::write(ctx.join("b.txt"), "B\n").unwrap();
    let fourth = ok(d.berth(&["build", "-t", "cached", c]), "fourth", &d);
    assert_eq!(
        step_lines(&fourth),
        [
            "Step 1/6 : FROM busybox",
            "Step 2/6 : RUN echo one > /one",
            " ---> Using cache",
            "Step 3/6 : COPY a.txt /",
            " ---> Using cache",
            "Step 4/6 : COPY b.txt /",
            "Step 5/6 : RUN cat /a.txt /b.txt > /both",
            " ---> Running",
            "Step 6/6 : CMD [\"cat\", \"/both\"]",
        ],
        "{fourth}"
    );
    assert_eq!(d.ok(&["run", "--rm", "cached"]), "a\nB\n");
    // The docker CLI gets the same hits.
    let out = ok(docker_build(&d, &["-t", "cached", c], None), "docker", &d);
    assert_eq!(out.matches("Using cache").count(), 5, "{out}");
    // builder prune drops it all: the next build runs every step.
    let pruned = d.ok(&["builder", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space:"), "{pruned}");
    let after = ok(d.berth(&["build", "-t", "cached", c]), "after prune", &d);
    assert_eq!(after.matches("Using cache").count(), 0, "{after}");
    // The tagged image survived the prune and still runs.
    assert_eq!(d.ok(&["run", "--rm", "cached"]), "a\nB\n");
}

#[test]
fn build_flags_and_contexts() {
    let d = daemon();
    let ctx = d.dir.path().join("ctx-flags");
    write_ctx(
        &ctx,
        &[
            (
                "Dockerfile",
                "FROM busybox AS base\nARG WHO=nobody\nRUN echo \"hi $WHO\" > /greeting\n\nFROM base AS final\nCOPY data/ /data/\nCMD [\"cat\", \"/greeting\"]\n",
            ),
            ("data/x.txt", "x\n"),
        ],
    );
    let c = ctx.to_str().unwrap();
    // -q prints the id alone; --iidfile writes it; several -t; labels.
    let iid = d.dir.path().join("iid");
    let out = ok(
        d.berth(&[
            "build",
            "-q",
            "--iidfile",
            iid.to_str().unwrap(),
            "-t",
            "flags:one",
            "-t",
            "flags:two",
            "--label",
            "team=infra",
            "--build-arg",
            "WHO=berth",
            c,
        ]),
        "build -q",
        &d,
    );
    let id = std::fs::read_to_string(&iid).unwrap();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(out.trim(), id.trim());
    assert_eq!(d.ok(&["run", "--rm", "flags:two"]), "hi berth\n");
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.Id}}", "flags:one"])
            .trim(),
        id
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "--format",
            "{{.Config.Labels.team}}",
            "flags:one"
        ])
        .trim(),
        "infra"
    );
    // The untagged result of a build is found by its id.
    let out = ok(
        d.berth(&["build", "-q", "--build-arg", "WHO=id", c]),
        "untagged",
        &d,
    );
    assert_eq!(d.ok(&["run", "--rm", out.trim()]), "hi id\n");
    // --target builds only what the target needs.
    let out = ok(
        d.berth(&["build", "--target", "base", "-t", "flags:base", c]),
        "target",
        &d,
    );
    assert!(out.contains("Step 3/3"), "{out}");
    // -f outside the context, and the Dockerfile from stdin.
    let outside = d.dir.path().join("Outside.Dockerfile");
    std::fs::write(
        &outside,
        "FROM busybox\nCOPY data/x.txt /x\nCMD [\"cat\", \"/x\"]\n",
    )
    .unwrap();
    ok(
        d.berth(&["build", "-t", "outside", "-f", outside.to_str().unwrap(), c]),
        "-f outside",
        &d,
    );
    assert_eq!(d.ok(&["run", "--rm", "outside"]), "x\n");
    let o = d.berth_with(
        &["build", "-t", "stdin-df", "-f", "-", c],
        Some(b"FROM busybox\nCMD [\"echo\", \"from stdin\"]\n"),
    );
    ok(o, "-f -", &d);
    assert_eq!(d.ok(&["run", "--rm", "stdin-df"]), "from stdin\n");
    // A tar on stdin as the context.
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&ctx)
        .arg("-cf")
        .arg("-")
        .arg(".")
        .output()
        .unwrap();
    let o = d.berth_with(&["build", "-t", "stdin-ctx", "-"], Some(&tar.stdout));
    ok(o, "- context", &d);
    assert_eq!(d.ok(&["run", "--rm", "stdin-ctx"]), "hi nobody\n");
    // --output: the final stage's files, no image.
    let dest = d.dir.path().join("out-local");
    ok(
        d.berth(&[
            "build",
            "--output",
            &format!("type=local,dest={}", dest.display()),
            c,
        ]),
        "output local",
        &d,
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("greeting")).unwrap(),
        "hi nobody\n"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("data/x.txt")).unwrap(),
        "x\n"
    );
    let tarf = d.dir.path().join("out.tar");
    ok(
        d.berth(&[
            "build",
            "-o",
            &format!("type=tar,dest={}", tarf.display()),
            c,
        ]),
        "output tar",
        &d,
    );
    let list = Command::new("tar").arg("-tf").arg(&tarf).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.lines()
            .any(|l| l.trim_start_matches("./") == "greeting"),
        "{list}"
    );

    // The docker CLI: -q, --iidfile, -f outside the context, `-`.
    let iid2 = d.dir.path().join("iid2");
    let out = ok(
        docker_build(
            &d,
            &[
                "-q",
                "--iidfile",
                iid2.to_str().unwrap(),
                "-t",
                "dflags",
                "--build-arg",
                "WHO=docker",
                c,
            ],
            None,
        ),
        "docker -q",
        &d,
    );
    let id2 = std::fs::read_to_string(&iid2).unwrap();
    assert_eq!(out.trim(), id2.trim());
    assert_eq!(d.docker_ok(&["run", "--rm", "dflags"]), "hi docker\n");
    ok(
        docker_build(
            &d,
            &["-t", "doutside", "-f", outside.to_str().unwrap(), c],
            None,
        ),
        "docker -f outside",
        &d,
    );
    assert_eq!(d.docker_ok(&["run", "--rm", "doutside"]), "x\n");
    ok(
        docker_build(
            &d,
            &["-t", "dstdin", "-"],
            Some(b"FROM busybox\nCMD [\"echo\", \"bare dockerfile\"]\n"),
        ),
        "docker -",
        &d,
    );
    assert_eq!(d.docker_ok(&["run", "--rm", "dstdin"]), "bare dockerfile\n");
    ok(
        docker_build(
            &d,
            &["-t", "dtarget", "--target", "base", "--label", "a=b", c],
            None,
        ),
        "docker target",
        &d,
    );
    assert_eq!(
        d.docker_ok(&["inspect", "--format", "{{.Config.Labels.a}}", "dtarget"])
            .trim(),
        "b"
    );
}

#[test]
fn copy_and_add_options() {
    let d = daemon();
    let ctx = d.dir.path().join("ctx-add");
    write_ctx(
        &ctx,
        &[
            ("files/a.sh", "echo a\n"),
            ("files/b.txt", "b\n"),
            ("files/skip.md", "no\n"),
        ],
    );
    // A local tar for ADD to unpack.
    let src = d.dir.path().join("tar-src");
    write_ctx(&src, &[("pkg/lib.txt", "lib\n")]);
    let st = Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-czf")
        .arg(ctx.join("pkg.tar.gz"))
        .arg("pkg")
        .status()
        .unwrap();
    assert!(st.success());
    // A local HTTP server for ADD <url> --checksum.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        // Bounded: at most twenty connections, then it stops by itself.
        for _ in 0..20 {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            if req.starts_with(b"GET /stop") {
                return;
            }
            let body = "remote file\n";
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let sum = {
        use std::io::Write;
        let mut c = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(b"remote file\n").unwrap();
        let o = c.wait_with_output().unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let df = format!(
        "FROM busybox\n\
         RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group\n\
         COPY --chown=app:app --chmod=750 --exclude=*.md files/ /opt/files/\n\
         ADD pkg.tar.gz /opt/\n\
         ADD --checksum=sha256:{sum} http://127.0.0.1:{port}/dl/remote.txt /opt/\n\
         COPY <<EOF /opt/inline.txt\nhello $HOSTNAME_UNSET-heredoc\nEOF\n\
         CMD [\"sh\", \"-c\", \"ls -ln /opt/files | awk 'NR>1 {{print $1, $3, $4, $9}}'; cat /opt/pkg/lib.txt /opt/remote.txt /opt/inline.txt; stat -c '%a' /opt/remote.txt\"]\n"
    );
    std::fs::write(ctx.join("Dockerfile"), &df).unwrap();
    ok(
        d.berth(&["build", "-t", "adds", ctx.to_str().unwrap()]),
        "build",
        &d,
    );
    assert_eq!(
        d.ok(&["run", "--rm", "adds"]),
        "-rwxr-x--- 1000 1000 a.sh\n-rwxr-x--- 1000 1000 b.txt\nlib\nremote file\nhello -heredoc\n600\n"
    );
    // A wrong checksum fails on its line.
    let bad = df.replace(&sum, &"0".repeat(64));
    std::fs::write(ctx.join("Dockerfile"), bad).unwrap();
    let o = d.berth(&["build", "--no-cache", ctx.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        format!("{out}{err}").contains("Dockerfile:5")
            && format!("{out}{err}").contains("digest mismatch"),
        "{out}{err}"
    );
    let _ = std::net::TcpStream::connect(("127.0.0.1", port)).map(|mut s| {
        use std::io::Write;
        let _ = s.write_all(b"GET /stop HTTP/1.0\r\n\r\n");
    });
    let _ = server.join();
}

/// What a failed build must not leave: container snapshots, layer
/// snapshots, blobs, images, mounts.
fn leftovers(d: &Daemon) -> (Vec<String>, String) {
    let root = d.data_root.join("image");
    // A removed container's snapshot is renamed aside and deleted after the
    // reply, so wait for those deletions rather than count them as state.
    let containers = root.join("snapshots/containers");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && std::fs::read_dir(&containers).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".discarded-"))
        })
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut v = Vec::new();
    for sub in [
        "snapshots/containers",
        "snapshots/layers",
        "blobs/sha256",
        "pins",
    ] {
        if let Ok(rd) = std::fs::read_dir(root.join(sub)) {
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // An image's init layer (its containers' mount points) is
                // made from its layers the first time one of its containers
                // is mounted, and goes with them: derived, not state.
                .filter(|n| !n.ends_with("-init"))
                .map(|n| format!("{sub}/{n}"))
                .collect();
            names.sort();
            v.extend(names);
        }
    }
    v.push(d.ok(&["images", "-aq"]));
    v.push(d.ok(&["ps", "-aq"]));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let base = d.dir.path().to_string_lossy().into_owned();
    let ours: Vec<&str> = mounts.lines().filter(|l| l.contains(&base)).collect();
    (v, ours.join("\n"))
}

fn fails_cleanly(dockerfile: &str, files: &[(&str, &str)], line: usize, needles: &[&str]) {
    let d = daemon();
    let ctx = d.dir.path().join("ctx-bad");
    std::fs::create_dir_all(&ctx).unwrap();
    write_ctx(&ctx, files);
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let before = leftovers(&d);
    for client in ["berth", "docker"] {
        let o = if client == "berth" {
            d.berth(&["build", "-t", "bad", ctx.to_str().unwrap()])
        } else {
            docker_build(&d, &["-t", "bad", ctx.to_str().unwrap()], None)
        };
        let (out, err) = text(&o);
        let all = format!("{out}{err}");
        assert!(!o.status.success(), "{client}: {all}");
        assert!(
            all.contains(&format!("Dockerfile:{line}")),
            "{client}: want line {line}: {all}"
        );
        for n in needles {
            assert!(all.contains(n), "{client}: want {n:?}: {all}");
        }
        assert_eq!(
            leftovers(&d),
            before,
            "{client}: a failed build left something behind"
        );
        // A RUN that ran: its cgroup, its bundle and its shim go too (the
        // bundle once the shim has exited, which may be just after).
        let ran: Vec<&str> = all
            .lines()
            .filter_map(|l| l.trim().strip_prefix("---> Running in "))
            .map(str::trim)
            .collect();
        assert_eq!(
            ran.is_empty(),
            !needles.iter().any(|n| n.contains("non-zero code")),
            "{client}: {all}"
        );
        for short in ran {
            // v2 at the root, v1 under each controller.
            let roots = std::fs::read_dir("/sys/fs/cgroup")
                .map(|rd| rd.flatten().map(|e| e.path().join("berth")).collect())
                .unwrap_or_else(|_| Vec::new());
            let cgroups: Vec<PathBuf> = roots
                .iter()
                .chain(std::iter::once(&PathBuf::from("/sys/fs/cgroup/berth")))
                .filter_map(|c| std::fs::read_dir(c).ok())
                .flat_map(|rd| rd.flatten())
                .filter(|e| e.file_name().to_string_lossy().starts_with(short))
                .map(|e| e.path())
                .collect();
            assert!(cgroups.is_empty(), "{client}: cgroups left: {cgroups:?}");
        }
        let bundles = d.dir.path().join("exec/b");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left: Vec<_> = std::fs::read_dir(&bundles)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            if left.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{client}: RUN bundles left: {left:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let shims: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("berth-shim") && c.contains(&*bundles.to_string_lossy()))
            .collect();
        assert!(shims.is_empty(), "{client}: RUN shims left: {shims:?}");
    }
}

#[test]
fn bad_unknown_instruction() {
    fails_cleanly("FROM busybox\nFETCH http://x\n", &[], 2, &["FETCH"]);
}

#[test]
fn bad_unterminated_heredoc() {
    fails_cleanly("FROM busybox\nRUN <<EOF\necho hi\n", &[], 2, &["EOF"]);
}

#[test]
fn bad_json_form() {
    fails_cleanly(
        "FROM busybox\nSHELL [\"/bin/sh\", -c]\n",
        &[],
        2,
        &["SHELL"],
    );
}

#[test]
fn bad_unknown_flag() {
    fails_cleanly(
        "FROM busybox\nCOPY --frobnicate=1 a /a\n",
        &[("a", "a")],
        2,
        &["frobnicate"],
    );
}

#[test]
fn bad_from_names_nothing() {
    // A name on a loopback port nothing listens on: the pull it leads to
    // fails at once and never leaves the machine.
    fails_cleanly(
        "FROM busybox\nCOPY --from=127.0.0.1:1/nosuchstage /x /x\n",
        &[],
        2,
        &["nosuchstage"],
    );
}

#[test]
fn bad_copy_of_a_missing_file() {
    fails_cleanly(
        "FROM busybox\nCOPY missing.txt /\n",
        &[],
        2,
        &["missing.txt"],
    );
}

#[test]
fn bad_failing_run() {
    fails_cleanly(
        "FROM busybox\nRUN echo first line; echo 'went wrong' >&2; exit 3\n",
        &[],
        2,
        &[
            "The command '/bin/sh -c echo first line; echo 'went wrong' >&2; exit 3' returned a non-zero code: 3",
            "went wrong",
        ],
    );
}

/// A free port on 127.0.0.1 (bound, then let go for a server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `git` with no user or system configuration of the host.
fn git_in(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("git: apt-get install -y git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A server process stopped by its own PID when the test ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait until something listens on `port`.
fn wait_listening(port: u16, s: &mut Server) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(s.0.try_wait().unwrap().is_none(), "server on {port} exited");
        assert!(std::time::Instant::now() < deadline, "nothing on {port}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A repository served by `git daemon` (git://) and, for the dumb HTTP
/// protocol, by python's http.server, both on 127.0.0.1 only.
struct GitRepo {
    base: PathBuf,
    git_port: u16,
    http_port: u16,
    _servers: Vec<Server>,
}

impl GitRepo {
    fn new(dir: &Path) -> GitRepo {
        let base = dir.join("git-base");
        let repo = base.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        git_in(&repo, &["init", "-q"]);
        let git_port = free_port();
        // git-daemon itself, not `git daemon`: the wrapper would run it as
        // a child that outlives the wrapper's PID being stopped.
        let exec_path = git_in(&repo, &["--exec-path"]);
        let mut daemon = Server(
            Command::new(Path::new(&exec_path).join("git-daemon"))
                .args([
                    "--export-all",
                    "--reuseaddr",
                    &format!("--base-path={}", base.display()),
                    "--listen=127.0.0.1",
                    &format!("--port={git_port}"),
                ])
                .arg(&base)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_listening(git_port, &mut daemon);
        let http_port = free_port();
        let mut http = Server(
            Command::new("python3")
                .args(["-m", "http.server", "--bind", "127.0.0.1"])
                .arg(http_port.to_string())
                .current_dir(&base)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3"),
        );
        wait_listening(http_port, &mut http);
        GitRepo {
            base,
            git_port,
            http_port,
            _servers: vec![daemon, http],
        }
    }

    fn repo(&self) -> PathBuf {
        self.base.join("repo")
    }

    /// Write `files`, commit them on the current branch; the commit id.
    fn commit(&self, files: &[(&str, &str)], msg: &str) -> String {
        write_ctx(&self.repo(), files);
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", msg]);
        // What the dumb HTTP protocol reads instead of asking a server.
        self.git(&["update-server-info"]);
        self.git(&["rev-parse", "HEAD"])
    }

    fn git(&self, args: &[&str]) -> String {
        git_in(&self.repo(), args)
    }

    fn url(&self) -> String {
        format!("git://127.0.0.1:{}/repo", self.git_port)
    }

    fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/repo/.git", self.http_port)
    }
}

/// What ADD's git checkouts leave in the builder's own directory.
fn git_checkouts_left(d: &Daemon) -> Vec<String> {
    std::fs::read_dir(d.data_root.join("builder/tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("git-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn git_add_refs_subdirs_keep_git_dir_and_the_cache() {
    let d = daemon();
    let g = GitRepo::new(d.dir.path());
    let first = g.commit(
        &[
            ("README", "v1\n"),
            ("docs/guide.txt", "guide\n"),
            ("bin/run.sh", "echo run\n"),
        ],
        "one",
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            g.repo().join("bin/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    let first = {
        g.git(&["add", "-A"]);
        g.git(&["commit", "-q", "--amend", "--no-edit"]);
        g.git(&["update-server-info"]);
        assert_ne!(g.git(&["rev-parse", "HEAD"]), first);
        g.git(&["rev-parse", "HEAD"])
    };
    g.git(&["tag", "-a", "v1", "-m", "v1"]);
    g.git(&["checkout", "-q", "-b", "feature"]);
    g.commit(
        &[("feature.txt", "feature\n"), ("docs/more.txt", "more\n")],
        "feat",
    );
    g.git(&["checkout", "-q", "main"]);
    g.commit(&[("README", "v2\n")], "two");
    let (u, h) = (g.url(), g.http_url());
    let ctx = d.dir.path().join("ctx-git");
    let dockerfile = format!(
        "FROM busybox\n\
         ADD {u}#v1 /src/tag\n\
         ADD {u}#{first} /src/commit/\n\
         ADD {u}#feature:docs /src/docs\n\
         ADD --keep-git-dir=true --chown=65534:65534 {u}#feature /src/kept\n\
         ADD {h}#v1 /src/http\n\
         ADD {u} /src/main\n\
         CMD [\"cat\", \"/src/main/README\"]\n"
    );
    write_ctx(&ctx, &[("Dockerfile", &dockerfile)]);
    let c = ctx.to_str().unwrap();
    let out = ok(
        d.berth(&["build", "-t", "gitimg", c]),
        "first git build",
        &d,
    );
    assert_eq!(out.matches("Using cache").count(), 0, "{out}");
    assert!(
        git_checkouts_left(&d).is_empty(),
        "{:?}",
        git_checkouts_left(&d)
    );
    let sh = |script: &str| d.ok(&["run", "--rm", "gitimg", "sh", "-c", script]);
    assert_eq!(d.ok(&["run", "--rm", "gitimg"]), "v2\n");
    // A tag, a commit id, a branch with a subdir, over git:// and HTTP.
    assert_eq!(
        sh(
            "cat /src/tag/README /src/commit/README /src/http/README /src/docs/guide.txt /src/docs/more.txt"
        ),
        "v1\nv1\nv1\nguide\nmore\n"
    );
    // The subdir's contents only; the tag's tree has no feature files.
    assert_eq!(
        sh("ls -A /src/docs; ls -A /src/tag; ls -A /src/main"),
        "guide.txt\nmore.txt\nREADME\nbin\ndocs\nREADME\nbin\ndocs\n"
    );
    // Modes survive; .git only with --keep-git-dir, and a usable one.
    assert_eq!(
        sh(
            "test -x /src/tag/bin/run.sh && echo x; test -d /src/kept/.git && echo git; \
            test -e /src/main/.git || echo none; stat -c %u:%g /src/kept/feature.txt /src/kept/.git"
        ),
        "x\ngit\nnone\n65534:65534\n65534:65534\n"
    );
    // Every file's mtime is its commit's time.
    let main_time = g.git(&["log", "-1", "--format=%ct", "main"]);
    let tag_time = g.git(&["log", "-1", "--format=%ct", "v1"]);
    assert_eq!(
        sh("stat -c %Y /src/main/README /src/main/docs /src/tag/docs/guide.txt"),
        format!("{main_time}\n{main_time}\n{tag_time}\n")
    );
    // Nothing changed: every step is a hit and nothing is cloned.
    let second = ok(
        d.berth(&["build", "-t", "gitimg", c]),
        "second git build",
        &d,
    );
    assert_eq!(second.matches("Using cache").count(), 7, "{second}");
    // A new commit on main: only its ADD (and what follows) runs again.
    g.commit(&[("README", "v3\n")], "three");
    let third = ok(
        d.berth(&["build", "-t", "gitimg", c]),
        "third git build",
        &d,
    );
    assert_eq!(third.matches("Using cache").count(), 5, "{third}");
    let after_main = third.split("Step 7/8").nth(1).unwrap();
    assert!(!after_main.contains("Using cache"), "{third}");
    assert_eq!(d.ok(&["run", "--rm", "gitimg"]), "v3\n");
    assert!(
        git_checkouts_left(&d).is_empty(),
        "{:?}",
        git_checkouts_left(&d)
    );
    // A checkout that fails after cloning (no such subdir): the line, the
    // reason, and no checkout, image, snapshot or mount left.
    let bad = d.dir.path().join("ctx-git-bad");
    write_ctx(
        &bad,
        &[(
            "Dockerfile",
            &format!("FROM busybox\nADD {u}#main:nosuch /x\n"),
        )],
    );
    let before = leftovers(&d);
    let o = d.berth(&["build", "-t", "gitbad", bad.to_str().unwrap()]);
    let (o1, e1) = text(&o);
    assert!(!o.status.success(), "{o1}{e1}");
    let all = format!("{o1}{e1}");
    assert!(
        all.contains("Dockerfile:2") && all.contains("no directory \"nosuch\""),
        "{all}"
    );
    assert!(
        git_checkouts_left(&d).is_empty(),
        "{:?}",
        git_checkouts_left(&d)
    );
    assert_eq!(leftovers(&d), before, "a failed git ADD left something");
}

#[test]
fn git_bad_ref_fails_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let g = GitRepo::new(dir.path());
    g.commit(&[("README", "v1\n")], "one");
    let u = g.url();
    fails_cleanly(
        &format!("FROM busybox\n# the ref is not there\nADD {u}#nosuch /src\n"),
        &[],
        3,
        &["unknown ref \"nosuch\""],
    );
}

#[test]
fn git_unreachable_remote_fails_with_its_line() {
    // Nothing listens on this port.
    let port = free_port();
    fails_cleanly(
        &format!("FROM busybox\nADD git://127.0.0.1:{port}/repo /src\n"),
        &[],
        2,
        &["remote unreachable"],
    );
}
