//! Parser tests: the examples of Docker's Dockerfile reference, and the
//! corner cases of BuildKit's syntax, asserting instructions, flags and
//! expanded words.

use std::time::Duration;

use berth_builder::*;

fn ins(text: &str) -> Vec<Instruction> {
    parse_instructions("Dockerfile", text)
        .unwrap_or_else(|e| panic!("{e}"))
        .1
}

fn one(text: &str) -> Command {
    let v = ins(text);
    assert_eq!(v.len(), 1, "{v:#?}");
    v.into_iter().next().unwrap().command
}

fn err(text: &str) -> String {
    parse("Dockerfile", text).unwrap_err().to_string()
}

/// Run every instruction of the last stage through a scope and return
/// the expanded instructions.
fn expanded(text: &str, build_args: &[(&str, &str)]) -> Vec<Instruction> {
    let df = parse("Dockerfile", text).unwrap_or_else(|e| panic!("{e}"));
    let opts = opts(build_args);
    let globals = GlobalScope::new(&df, &opts).unwrap();
    let mut scope = StageScope::new(&globals, &opts, Vec::new());
    let stage = df.stages.last().unwrap();
    let mut out = vec![Instruction {
        command: Command::From(globals.expand_from(&stage.from).unwrap()),
        ..stage.from.clone()
    }];
    for i in &stage.instructions {
        out.push(scope.step(i).unwrap_or_else(|e| panic!("{e}")));
    }
    out
}

fn opts(build_args: &[(&str, &str)]) -> BuildOptions {
    BuildOptions {
        build_args: build_args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..BuildOptions::default()
    }
}

fn shell(s: &str) -> CommandLine {
    CommandLine::Shell(s.into())
}

fn exec(v: &[&str]) -> CommandLine {
    CommandLine::Exec(v.iter().map(|s| s.to_string()).collect())
}

fn kv(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.to_string(),
            value: v.to_string(),
        })
        .collect()
}

fn copy_of(c: &Command) -> &Copy {
    match c {
        Command::Copy(c) | Command::Add(c) => c,
        other => panic!("not COPY/ADD: {other:?}"),
    }
}

fn run1(c: Command) -> Run {
    match c {
        Command::Run(r) => r,
        other => panic!("not RUN: {other:?}"),
    }
}

fn run_of(c: &Command) -> &Run {
    match c {
        Command::Run(r) => r,
        other => panic!("not RUN: {other:?}"),
    }
}

// ---- format, comments, whitespace ----

#[test]
fn comments_and_hash_inside_arguments() {
    let v = ins("# Comment\nRUN echo 'we are running some # of cool things'\n");
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].line, 2);
    assert_eq!(
        run_of(&v[0].command).command,
        shell("echo 'we are running some # of cool things'")
    );
}

#[test]
fn leading_whitespace_is_ignored_but_kept_inside_continuations() {
    let v = ins("        # this is a comment-line\n    RUN echo hello\nRUN echo world\n");
    assert_eq!(v.len(), 2);
    assert_eq!(run_of(&v[0].command).command, shell("echo hello"));
    let c = one("RUN echo \"\\\n     hello\\\n     world\"\n");
    assert_eq!(run_of(&c).command, shell("echo \"     hello     world\""));
}

#[test]
fn keywords_are_case_insensitive() {
    let v = ins("from alpine as Build\nrun echo hi\nCopy a b\n");
    assert_eq!(
        v[0].command,
        Command::From(From {
            image: "alpine".into(),
            platform: None,
            name: Some("build".into()),
        })
    );
    assert!(matches!(v[1].command, Command::Run(_)));
    assert!(matches!(v[2].command, Command::Copy(_)));
}

// ---- parser directives ----

#[test]
fn directives_at_the_top() {
    let (d, v, _) = parse_instructions(
        "Dockerfile",
        "# syntax=docker/dockerfile:1\n# ESCAPE = `\n#check=skip=JSONArgsRecommended,StageNameCasing;error=true\nFROM x\n",
    )
    .unwrap();
    assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(d.escape, '`');
    assert_eq!(
        d.check,
        Some(Check {
            skip: vec!["JSONArgsRecommended".into(), "StageNameCasing".into()],
            skip_all: false,
            error: true,
        })
    );
    assert_eq!(v.len(), 1);
}

#[test]
fn directives_stop_at_the_first_non_directive() {
    // After an instruction, a plain comment, an empty line or an unknown
    // directive, `# escape=` is only a comment.
    for text in [
        "FROM x\n# escape=`\nRUN a \\\n b\n",
        "# About my dockerfile\n# escape=`\nFROM x\nRUN a \\\n b\n",
        "# unknowndirective=value\n# escape=`\nFROM x\nRUN a \\\n b\n",
        "\n# escape=`\nFROM x\nRUN a \\\n b\n",
        "# esc \\\n# ape=`\nFROM x\nRUN a \\\n b\n",
    ] {
        let (d, v, _) = parse_instructions("Dockerfile", text).unwrap();
        assert_eq!(d.escape, '\\', "{text:?}");
        assert_eq!(run_of(&v[1].command).command, shell("a  b"), "{text:?}");
    }
    // Blanks around the `=` and after `#` are allowed.
    for text in [
        "#escape=`\nFROM x\n",
        "# escape =`\nFROM x\n",
        "#\tescape=\t`\nFROM x\n",
    ] {
        let (d, _, _) = parse_instructions("Dockerfile", text).unwrap();
        assert_eq!(d.escape, '`', "{text:?}");
    }
}

#[test]
fn directive_errors() {
    assert_eq!(
        err("# escape=`\n# escape=\\\nFROM x\n"),
        "Dockerfile:2: only one escape parser directive can be used"
    );
    assert!(err("# escape=x\nFROM x\n").starts_with("Dockerfile:1: invalid escape token 'x'"));
    assert!(
        err("# check=skip=A;error=maybe\nFROM x\n")
            .starts_with("Dockerfile:1: invalid check directive")
    );
}

#[test]
fn escape_backtick_on_windows_paths() {
    let text = "# escape=`\n\nFROM microsoft/nanoserver\nCOPY testfile.txt c:\\\nRUN dir c:\\\n";
    let v = ins(text);
    assert_eq!(v.len(), 3, "the backslash no longer continues lines");
    assert_eq!(copy_of(&v[1].command).dest, "c:\\");
    assert_eq!(run_of(&v[2].command).command, shell("dir c:\\"));

    // With the default escape the same file joins COPY and RUN.
    let v = ins("FROM microsoft/nanoserver\nCOPY testfile.txt c:\\\\\nRUN dir c:\\\n");
    assert_eq!(v.len(), 2);
    assert_eq!(
        copy_of(&v[1].command).sources,
        vec!["testfile.txt", "c:\\RUN", "dir"]
    );
    assert_eq!(copy_of(&v[1].command).dest, "c:");

    // Backtick continuation and expansion that keeps backslashes.
    let text = "# escape=`\nFROM x\nENV P=c:\\Program` Files\nWORKDIR $P\\app\nRUN [\"powershell\", `\n  \"cat c:\\template.html\"]\n";
    let e = expanded(text, &[]);
    assert_eq!(
        e[1].command,
        Command::Env(kv(&[("P", "c:\\Program Files")]))
    );
    assert_eq!(
        e[2].command,
        Command::Workdir("c:\\Program Files\\app".into())
    );
    // JSON is JSON whatever the escape directive: `\t` is a tab there
    // (the reason such Windows Dockerfiles fail in Docker too).
    assert_eq!(
        run_of(&e[3].command).command,
        exec(&["powershell", "cat c:\template.html"])
    );
}

// ---- continuations ----

#[test]
fn continuation_with_comments_and_empty_lines() {
    let text = "FROM x\nRUN apt-get update && \\\n# a comment inside\n\n    # another one\n    apt-get install -y \\\n\n  curl\nCMD done\n";
    let (_, v, warnings) = parse_instructions("Dockerfile", text).unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(
        run_of(&v[1].command).command,
        shell("apt-get update &&     apt-get install -y   curl")
    );
    assert_eq!((v[1].line, v[1].end_line), (2, 8));
    assert_eq!(v[2].line, 9);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("Dockerfile:2: empty continuation line"));
}

#[test]
fn continuation_with_trailing_blanks_and_crlf() {
    let v = ins("FROM x\r\nRUN a \\  \r\n b\r\n");
    assert_eq!(run_of(&v[1].command).command, shell("a  b"));
}

// ---- JSON and shell forms ----

#[test]
fn exec_and_shell_forms() {
    assert_eq!(
        one("ENTRYPOINT [\"/bin/bash\", \"-c\", \"echo hello\"]"),
        Command::Entrypoint(exec(&["/bin/bash", "-c", "echo hello"]))
    );
    assert_eq!(
        run_of(&one("RUN [\"c:\\\\windows\\\\system32\\\\tasklist.exe\"]")).command,
        exec(&["c:\\windows\\system32\\tasklist.exe"])
    );
    assert_eq!(
        run_of(&one("RUN source $HOME/.bashrc && \\\necho $HOME")).command,
        shell("source $HOME/.bashrc && echo $HOME")
    );
    assert_eq!(
        one("CMD [\"/usr/bin/wc\",\"--help\"]"),
        Command::Cmd(exec(&["/usr/bin/wc", "--help"]))
    );
    assert_eq!(
        one("CMD echo \"This is a test.\" | wc -"),
        Command::Cmd(shell("echo \"This is a test.\" | wc -"))
    );
    assert_eq!(
        one("ENTRYPOINT [\"top\", \"-b\"]"),
        Command::Entrypoint(exec(&["top", "-b"]))
    );
    assert_eq!(
        one("ENTRYPOINT exec top -b"),
        Command::Entrypoint(shell("exec top -b"))
    );
    assert_eq!(one("CMD []"), Command::Cmd(CommandLine::Exec(vec![])));
}

#[test]
fn json_with_escaped_quotes_and_unicode() {
    assert_eq!(
        one(r#"CMD ["echo", "say \"hi\"", "tab\there", "\u00e9"]"#),
        Command::Cmd(exec(&["echo", "say \"hi\"", "tab\there", "é"]))
    );
}

#[test]
fn json_that_does_not_parse_is_shell_form() {
    // Single quotes are not JSON: the whole text is a shell command.
    assert_eq!(
        one("CMD ['echo', 'hi']"),
        Command::Cmd(shell("['echo', 'hi']"))
    );
    assert_eq!(
        one("CMD [\"a\" \"b\"]"),
        Command::Cmd(shell("[\"a\" \"b\"]"))
    );
    assert_eq!(one("RUN [ -f x ] && echo y").keyword(), "RUN");
    // JSON that parses but holds a non-string is an error.
    assert_eq!(
        err("FROM x\nCMD [\"a\", 1]\n"),
        "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only"
    );
}

// ---- FROM ----

#[test]
fn from_forms() {
    assert_eq!(
        one("FROM --platform=linux/arm64 golang:1.22 AS build-env"),
        Command::From(From {
            image: "golang:1.22".into(),
            platform: Some("linux/arm64".into()),
            name: Some("build-env".into()),
        })
    );
    assert_eq!(
        err("FROM\n"),
        "Dockerfile:1: FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM a b\n"),
        "Dockerfile:1: FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM a TO b\n"),
        "Dockerfile:1: FROM requires either one or three arguments"
    );
    assert!(err("FROM a AS 1st\n").contains("invalid name for build stage"));
    assert_eq!(
        err("FROM a AS x\nFROM b AS X\n"),
        "Dockerfile:2: duplicate stage name \"x\""
    );
}

#[test]
fn arg_before_from_used_in_from() {
    let text = "ARG  CODE_VERSION=latest\nFROM base:${CODE_VERSION}\nCMD  /code/run-app\n\nFROM extras:${CODE_VERSION}\nCMD  /code/run-extras\n";
    let df = parse("Dockerfile", text).unwrap();
    assert_eq!(df.global_args.len(), 1);
    let g = GlobalScope::new(&df, &opts(&[])).unwrap();
    assert_eq!(
        g.expand_from(&df.stages[0].from).unwrap().image,
        "base:latest"
    );
    assert_eq!(
        g.expand_from(&df.stages[1].from).unwrap().image,
        "extras:latest"
    );
    let g = GlobalScope::new(&df, &opts(&[("CODE_VERSION", "1.2")])).unwrap();
    assert_eq!(
        g.expand_from(&df.stages[1].from).unwrap().image,
        "extras:1.2"
    );
}

#[test]
fn global_arg_visible_in_stage_only_when_redeclared() {
    let text = "ARG VERSION=latest\nFROM busybox:$VERSION\nRUN --mount=type=cache,target=/c/$VERSION true\nARG VERSION\nWORKDIR /v/$VERSION\n";
    let e = expanded(text, &[]);
    assert_eq!(
        e[0].command,
        Command::From(From {
            image: "busybox:latest".into(),
            platform: None,
            name: None
        })
    );
    assert_eq!(
        run_of(&e[1].command).mounts[0].target.as_deref(),
        Some("/c/")
    );
    assert_eq!(e[3].command, Command::Workdir("/v/latest".into()));
}

#[test]
fn from_platform_with_automatic_args() {
    let text = "FROM --platform=$BUILDPLATFORM golang AS build\nARG TARGETOS TARGETARCH\nRUN GOOS=$TARGETOS go build\nWORKDIR /out/$TARGETOS/$TARGETARCH\nWORKDIR /$BUILDARCH\n";
    let e = expanded(text, &[]);
    let host = Platform::host();
    match &e[0].command {
        Command::From(f) => assert_eq!(f.platform.as_deref(), Some(host.to_string().as_str())),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e[3].command,
        Command::Workdir(format!("/out/{}/{}", host.os, host.arch))
    );
    assert_eq!(
        e[4].command,
        Command::Workdir("/".into()),
        "BUILDARCH undeclared in the stage"
    );
    assert_eq!(
        Platform::host().to_string(),
        "linux/amd64",
        "this machine's platform"
    );
}

#[test]
fn empty_from_after_expansion() {
    let df = parse("Dockerfile", "ARG IMG\nFROM $IMG\n").unwrap();
    let g = GlobalScope::new(&df, &opts(&[])).unwrap();
    assert_eq!(
        g.expand_from(&df.stages[0].from).unwrap_err().to_string(),
        "Dockerfile:2: base name ($IMG) should not be blank"
    );
}

// ---- RUN ----

#[test]
fn run_mounts_from_the_reference() {
    let c = one(
        "RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \\\n  --mount=type=cache,target=/var/lib/apt,sharing=locked \\\n  apt update && apt-get --no-install-recommends install -y gcc",
    );
    let r = run_of(&c);
    assert_eq!(r.mounts.len(), 2);
    assert!(
        r.mounts
            .iter()
            .all(|m| m.kind == MountType::Cache && m.sharing == Some(Sharing::Locked))
    );
    assert_eq!(r.mounts[1].target.as_deref(), Some("/var/lib/apt"));
    assert_eq!(
        r.command,
        shell("apt update && apt-get --no-install-recommends install -y gcc")
    );

    let r = run1(one(
        "RUN --mount=type=secret,id=aws,target=/root/.aws/credentials \\\n  aws s3 cp s3://x .",
    ));
    assert_eq!(r.mounts[0].kind, MountType::Secret);
    assert_eq!(r.mounts[0].id.as_deref(), Some("aws"));

    let r = run1(one(
        "RUN --mount=type=secret,id=API_KEY,env=API_KEY \\\n  some-command --token-from-env $API_KEY",
    ));
    assert_eq!(r.mounts[0].env.as_deref(), Some("API_KEY"));

    let r = run1(one(
        "RUN --mount=type=ssh ssh -q -T git@gitlab.com 2>&1 | tee /hello",
    ));
    assert_eq!(r.mounts[0].kind, MountType::Ssh);

    let r = run1(one(
        "RUN --mount=type=bind,from=build,source=/out,target=/in cp -r /in /app",
    ));
    assert_eq!(r.mounts[0].from.as_deref(), Some("build"));
    assert!(r.mounts[0].read_only);

    let r = run1(one("RUN --mount=type=tmpfs,target=/tmp,size=1g make"));
    assert_eq!(r.mounts[0].size, Some(1 << 30));

    let r = run1(one(
        "RUN --network=none pip install --find-links wheels mypackage",
    ));
    assert_eq!(r.network, Some(Network::None));
    let r = run1(one(
        "RUN --network=host --security=insecure cat /proc/self/status",
    ));
    assert_eq!(
        (r.network, r.security),
        (Some(Network::Host), Some(Security::Insecure))
    );
    assert_eq!(
        run_of(&one("RUN --security=sandbox x")).security,
        Some(Security::Sandbox)
    );
}

#[test]
fn run_flag_errors() {
    assert_eq!(
        err("FROM x\nRUN --network=bridge true\n"),
        "Dockerfile:2: unsupported network mode \"bridge\": want default, none or host"
    );
    assert!(
        err("FROM x\nRUN --security=lax true\n")
            .starts_with("Dockerfile:2: unsupported security mode")
    );
    assert!(err("FROM x\nRUN --mount=type=cache true\n").contains("requires a target"));
    assert_eq!(
        err("FROM x\nRUN --mount true\n"),
        "Dockerfile:2: missing a value on flag: --mount"
    );
    assert_eq!(
        err("FROM x\nRUN\n"),
        "Dockerfile:2: RUN requires at least one argument"
    );
}

#[test]
fn mount_options_are_expanded() {
    let text = "FROM x\nARG CACHE=/root/.cache ID=pip UID=1000\nRUN --mount=type=cache,id=$ID-${TARGETARCH:-none},target=$CACHE,uid=$UID echo $CACHE\n";
    let e = expanded(text, &[("UID", "42")]);
    let r = run_of(&e[2].command);
    assert_eq!(r.mounts[0].target.as_deref(), Some("/root/.cache"));
    assert_eq!(r.mounts[0].id.as_deref(), Some("pip-none"));
    assert_eq!(r.mounts[0].uid, Some(42));
    // The command itself is the shell's to expand.
    assert_eq!(r.command, shell("echo $CACHE"));
}

// ---- heredocs ----

#[test]
fn heredoc_run_script_with_interpreter() {
    let text = "FROM debian\nRUN <<EOT bash\n  set -ex\n  apt-get update\n  apt-get install -y vim\nEOT\nCMD x\n";
    let v = ins(text);
    let r = run_of(&v[1].command);
    assert_eq!(r.command, shell("<<EOT bash"));
    assert_eq!(
        r.heredocs[0].content,
        "  set -ex\n  apt-get update\n  apt-get install -y vim\n"
    );
    assert_eq!((v[1].line, v[1].end_line), (2, 6));
    assert_eq!(v[2].line, 7);
    assert_eq!(
        r.script(),
        RunScript::Shell(
            "<<EOT bash\n  set -ex\n  apt-get update\n  apt-get install -y vim\nEOT".into()
        )
    );
}

#[test]
fn heredoc_as_the_whole_run_script() {
    let r = run1(one(
        "RUN <<EOF\nsource $HOME/.bashrc && \\\necho $HOME\nEOF",
    ));
    assert_eq!(
        r.script(),
        RunScript::Shell("source $HOME/.bashrc && \\\necho $HOME\n".into())
    );
    let r = run1(one(
        "RUN <<EOT\n#!/usr/bin/env python\nprint(\"hello world\")\nEOT",
    ));
    assert_eq!(
        r.script(),
        RunScript::File {
            name: "EOT".into(),
            content: "#!/usr/bin/env python\nprint(\"hello world\")\n".into()
        }
    );
}

#[test]
fn heredoc_chomp_strips_tabs() {
    let r = run1(one(
        "RUN <<-EOF\n\techo one\n\t\techo two\n  echo spaces\n\tEOF",
    ));
    let d = &r.heredocs[0];
    assert!(d.chomp);
    assert_eq!(d.content, "\techo one\n\t\techo two\n  echo spaces\n");
    assert_eq!(d.data(), "echo one\necho two\n  echo spaces\n");
    assert_eq!(
        r.script(),
        RunScript::Shell("echo one\necho two\n  echo spaces\n".into())
    );
    // Without `-`, a tab-indented delimiter does not end the heredoc.
    assert!(err("FROM x\nRUN <<EOF\n\tEOF\n").contains("unterminated heredoc"));
}

#[test]
fn two_heredocs_in_one_run() {
    let text = "FROM x\nRUN <<FILE1 cat > file1 && <<FILE2 cat > file2\nI am\nfirst\nFILE1\nI am\nsecond\nFILE2\nRUN ls\n";
    let v = ins(text);
    let r = run_of(&v[1].command);
    assert_eq!(r.heredocs.len(), 2);
    assert_eq!(r.heredocs[0].name, "FILE1");
    assert_eq!(r.heredocs[0].content, "I am\nfirst\n");
    assert_eq!(r.heredocs[1].content, "I am\nsecond\n");
    assert_eq!(v[2].line, 9);
    assert_eq!(
        r.script(),
        RunScript::Shell(
            "<<FILE1 cat > file1 && <<FILE2 cat > file2\nI am\nfirst\nFILE1\nI am\nsecond\nFILE2"
                .into()
        )
    );
}

#[test]
fn heredoc_copy_creates_files() {
    let text = "FROM alpine\nARG FOO=bar\nCOPY <<-EOT /script.sh\n\techo \"hello ${FOO}\"\n\tEOT\nCOPY <<-\"EOT\" /literal.sh\n\techo \"hello ${FOO}\"\nEOT\nENTRYPOINT ash /script.sh\n";
    let e = expanded(text, &[]);
    let c = copy_of(&e[2].command);
    assert!(c.sources.is_empty());
    assert_eq!(c.dest, "/script.sh");
    assert_eq!(c.inline[0].name, "EOT");
    assert_eq!(
        c.inline[0].content, "echo \"hello bar\"\n",
        "expanded, quotes kept, tabs chomped"
    );
    let c = copy_of(&e[3].command);
    assert!(!c.inline[0].expand);
    assert_eq!(
        c.inline[0].content, "echo \"hello ${FOO}\"\n",
        "quoted delimiter: no expansion"
    );
    assert_eq!(e[4].command, Command::Entrypoint(shell("ash /script.sh")));

    let v = ins("FROM x\nCOPY <<FILE1 <<FILE2 /dest\nLine 1\nFILE1\nLine 2\nFILE2\n");
    let c = copy_of(&v[1].command);
    assert_eq!(
        c.inline
            .iter()
            .map(|d| d.content.as_str())
            .collect::<Vec<_>>(),
        ["Line 1\n", "Line 2\n"]
    );
    assert_eq!(c.dest, "/dest");

    let v = ins(
        "FROM x\nCOPY <<EOF /usr/share/nginx/html/index.html\n(your index page goes here)\nEOF\n",
    );
    assert_eq!(
        copy_of(&v[1].command).inline[0].content,
        "(your index page goes here)\n"
    );
}

#[test]
fn heredoc_quoted_delimiters_and_fds() {
    let r = run1(one("RUN cat <<'EOF' 3<<\"X\"\n$A\nEOF\n$B\nX"));
    assert_eq!(r.heredocs[0].name, "EOF");
    assert!(!r.heredocs[0].expand);
    assert_eq!(r.heredocs[1].fd, Some(3));
    assert!(!r.heredocs[1].expand);
    // A heredoc marker inside quotes is just text.
    let r = run1(one("RUN echo \"<<EOF\""));
    assert!(r.heredocs.is_empty());
    // Exec form never has heredocs.
    let r = run1(one("RUN [\"cat\", \"<<EOF\"]"));
    assert!(r.heredocs.is_empty());
}

#[test]
fn heredoc_errors() {
    assert_eq!(
        err("FROM x\nRUN <<EOF\necho hi\n"),
        "Dockerfile:2: unterminated heredoc \"EOF\": no line \"EOF\" before the end of the file"
    );
    assert_eq!(
        err("FROM x\nCOPY a <<EOF\nx\nEOF\n"),
        "Dockerfile:2: COPY cannot accept a heredoc as a destination"
    );
}

// ---- LABEL, ENV ----

#[test]
fn labels_from_the_reference() {
    let text = "FROM x\nLABEL \"com.example.vendor\"=\"ACME Incorporated\"\nLABEL com.example.label-with-value=\"foo\"\nLABEL version=\"1.0\"\nLABEL description=\"This text illustrates \\\nthat label-values can span multiple lines.\"\nLABEL multi.label1=\"value1\" multi.label2=\"value2\" other=\"value3\"\nLABEL multi.label1=\"value1\" \\\n      multi.label2=\"value2\" \\\n      other=\"value3\"\nLABEL old value with spaces\n";
    let e = expanded(text, &[]);
    assert_eq!(
        e[1].command,
        Command::Label(kv(&[("com.example.vendor", "ACME Incorporated")]))
    );
    assert_eq!(
        e[2].command,
        Command::Label(kv(&[("com.example.label-with-value", "foo")]))
    );
    assert_eq!(e[3].command, Command::Label(kv(&[("version", "1.0")])));
    assert_eq!(
        e[4].command,
        Command::Label(kv(&[(
            "description",
            "This text illustrates that label-values can span multiple lines."
        )]))
    );
    let three = Command::Label(kv(&[
        ("multi.label1", "value1"),
        ("multi.label2", "value2"),
        ("other", "value3"),
    ]));
    assert_eq!(e[5].command, three);
    assert_eq!(e[6].command, three);
    assert_eq!(
        e[7].command,
        Command::Label(kv(&[("old", "value with spaces")]))
    );
}

#[test]
fn env_forms() {
    let text = "FROM x\nENV MY_NAME=\"John Doe\"\nENV MY_DOG=Rex\\ The\\ Dog\nENV MY_CAT=fluffy\nENV MY_NAME2=\"John Doe\" MY_DOG2=Rex\\ The\\ Dog \\\n    MY_CAT2=fluffy\nENV MY_VAR my-value  with  spaces\nENV Q='$MY_CAT' R=\"$MY_CAT\"\n";
    let e = expanded(text, &[]);
    assert_eq!(e[1].command, Command::Env(kv(&[("MY_NAME", "John Doe")])));
    assert_eq!(e[2].command, Command::Env(kv(&[("MY_DOG", "Rex The Dog")])));
    assert_eq!(e[3].command, Command::Env(kv(&[("MY_CAT", "fluffy")])));
    assert_eq!(
        e[4].command,
        Command::Env(kv(&[
            ("MY_NAME2", "John Doe"),
            ("MY_DOG2", "Rex The Dog"),
            ("MY_CAT2", "fluffy")
        ]))
    );
    assert_eq!(
        e[5].command,
        Command::Env(kv(&[("MY_VAR", "my-value  with  spaces")]))
    );
    assert_eq!(
        e[6].command,
        Command::Env(kv(&[("Q", "$MY_CAT"), ("R", "fluffy")]))
    );
}

#[test]
fn env_same_line_uses_the_old_value() {
    let text = "FROM x\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n";
    let e = expanded(text, &[]);
    assert_eq!(
        e[2].command,
        Command::Env(kv(&[("abc", "bye"), ("def", "hello")]))
    );
    assert_eq!(e[3].command, Command::Env(kv(&[("ghi", "bye")])));
}

#[test]
fn env_and_label_errors() {
    assert_eq!(
        err("FROM x\nENV ONLYKEY\n"),
        "Dockerfile:2: ENV must have two arguments"
    );
    assert!(
        err("FROM x\nENV a=b c\n")
            .starts_with("Dockerfile:2: syntax error - can't find = in \"c\"")
    );
    assert_eq!(
        err("FROM x\nLABEL\n"),
        "Dockerfile:2: LABEL requires at least one argument"
    );
    assert_eq!(
        err("FROM x\nENV =x\n"),
        "Dockerfile:2: ENV names can not be blank"
    );
}

// ---- environment replacement ----

#[test]
fn environment_replacement_example() {
    let text = "FROM busybox\nENV FOO=/bar\nWORKDIR ${FOO}   # WORKDIR /bar\nADD . $FOO       # ADD . /bar\nCOPY \\$FOO /quux # COPY $FOO /quux\n";
    let e = expanded(text, &[]);
    assert_eq!(
        e[2].command,
        Command::Workdir("/bar   # WORKDIR /bar".into())
    );
    let add = copy_of(&e[3].command);
    assert_eq!(add.sources, vec![".", "/bar", "#", "ADD", "."]);
    let cp = copy_of(&e[4].command);
    assert_eq!(cp.sources[0], "$FOO");
}

#[test]
fn positions_that_expand_and_that_do_not() {
    let text = "FROM x\nARG U=app G=staff SIG=TERM PORT=8080 DIR=/srv NAME=world SRC=src STAGE=build\nUSER $U:$G\nWORKDIR $DIR\nSTOPSIGNAL SIG$SIG\nEXPOSE $PORT ${PORT}/udp 9000-9001\nVOLUME $DIR/data [\"$DIR\"]\nVOLUME [\"$DIR/a\", \"/b\"]\nCOPY --from=$STAGE --chown=$U:$G --chmod=0644 --exclude=$SRC/*.md $SRC/ $DIR/\nADD --chown=${U} https://example.com/$NAME.tgz /tmp/\nLABEL greeting=\"hello $NAME\"\nRUN echo $NAME\nCMD echo $NAME\nENTRYPOINT [\"echo\", \"$NAME\"]\nHEALTHCHECK CMD curl $NAME\nSHELL [\"/bin/sh\", \"-c\", \"$NAME\"]\nONBUILD RUN echo $NAME\n";
    let e = expanded(text, &[]);
    assert_eq!(e[2].command, Command::User("app:staff".into()));
    assert_eq!(e[3].command, Command::Workdir("/srv".into()));
    assert_eq!(e[4].command, Command::StopSignal("SIGTERM".into()));
    assert_eq!(
        e[5].command,
        Command::Expose(vec![
            "8080/tcp".into(),
            "8080/udp".into(),
            "9000/tcp".into(),
            "9001/tcp".into()
        ])
    );
    assert_eq!(
        e[6].command,
        Command::Volume(vec!["/srv/data".into(), "[/srv]".into()])
    );
    assert_eq!(
        e[7].command,
        Command::Volume(vec!["/srv/a".into(), "/b".into()])
    );
    let c = copy_of(&e[8].command);
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.chown.as_deref(), Some("app:staff"));
    assert_eq!(c.chmod_bits().unwrap(), Some(Chmod::Octal(0o644)));
    assert_eq!(c.exclude, vec!["src/*.md"]);
    assert_eq!(
        (c.sources.as_slice(), c.dest.as_str()),
        (&["src/".to_string()][..], "/srv/")
    );
    let a = copy_of(&e[9].command);
    assert_eq!(a.sources, vec!["https://example.com/world.tgz"]);
    assert_eq!(a.chown.as_deref(), Some("app"));
    assert_eq!(
        e[10].command,
        Command::Label(kv(&[("greeting", "hello world")]))
    );
    assert_eq!(run_of(&e[11].command).command, shell("echo $NAME"));
    assert_eq!(e[12].command, Command::Cmd(shell("echo $NAME")));
    assert_eq!(e[13].command, Command::Entrypoint(exec(&["echo", "$NAME"])));
    assert_eq!(e[14].command.to_string(), "HEALTHCHECK CMD curl $NAME");
    assert_eq!(
        e[15].command,
        Command::Shell(vec!["/bin/sh".into(), "-c".into(), "$NAME".into()])
    );
    assert_eq!(e[16].command.to_string(), "ONBUILD RUN echo $NAME");
}

#[test]
fn required_variable_error_names_the_line() {
    let df = parse(
        "app.Dockerfile",
        "FROM x\n\nWORKDIR ${APP_DIR:?set APP_DIR}\n",
    )
    .unwrap();
    let o = opts(&[]);
    let g = GlobalScope::new(&df, &o).unwrap();
    let mut s = StageScope::new(&g, &o, Vec::new());
    assert_eq!(
        s.step(&df.stages[0].instructions[0])
            .unwrap_err()
            .to_string(),
        "app.Dockerfile:3: APP_DIR: set APP_DIR"
    );
}

#[test]
fn expansion_errors_name_the_line() {
    let df = parse(
        "Dockerfile",
        "FROM x\nUSER \"unterminated\nEXPOSE 99999\nCOPY --chmod=$M a b\n",
    )
    .unwrap();
    let o = opts(&[]);
    let g = GlobalScope::new(&df, &o).unwrap();
    let mut s = StageScope::new(&g, &o, Vec::new());
    let i = &df.stages[0].instructions;
    assert_eq!(
        s.step(&i[0]).unwrap_err().to_string(),
        "Dockerfile:2: unexpected end of statement while looking for matching double-quote"
    );
    assert_eq!(
        s.step(&i[1]).unwrap_err().to_string(),
        "Dockerfile:3: invalid containerPort: 99999"
    );
    assert!(
        s.step(&i[2])
            .unwrap_err()
            .to_string()
            .starts_with("Dockerfile:4: invalid chmod \"\"")
    );
}

// ---- ADD and COPY ----

#[test]
fn add_from_the_reference() {
    let c = one("ADD file1.txt file2.txt /usr/src/things/");
    assert_eq!(copy_of(&c).sources, vec!["file1.txt", "file2.txt"]);
    assert_eq!(copy_of(&c).dest, "/usr/src/things/");
    let c = one("ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.10.1 /buildkit");
    assert!(copy_of(&c).keep_git_dir);
    assert!(is_git(&copy_of(&c).sources[0]));
    assert!(is_git("git@github.com:user/repo.git"));
    assert!(is_git("ssh://git@host/repo#v1:sub"));
    assert!(is_git("git://127.0.0.1:9418/repo"));
    // A context file named like a repository is a context file.
    assert!(!is_git("vendor/lib.git"));
    assert!(!is_git("https://example.com/archive.tar.gz"));
    let c = one(
        "ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://mirrors.edge.kernel.org/pub/linux/kernel/Historic/linux-0.01.tar.gz /",
    );
    assert_eq!(
        copy_of(&c).checksum.as_deref(),
        Some("sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d")
    );
    for (line, chown) in [
        ("ADD --chown=55:mygroup files* /somedir/", "55:mygroup"),
        ("ADD --chown=bin files* /somedir/", "bin"),
        ("ADD --chown=1 files* /somedir/", "1"),
        ("ADD --chown=10:11 files* /somedir/", "10:11"),
    ] {
        assert_eq!(copy_of(&one(line)).chown.as_deref(), Some(chown));
    }
    let c = one("ADD --chown=myuser:mygroup --chmod=655 files* /somedir/");
    assert_eq!(copy_of(&c).chmod_bits().unwrap(), Some(Chmod::Octal(0o655)));
    assert!(copy_of(&one("ADD --link foo /bar")).link);
    assert_eq!(
        copy_of(&one("ADD arr[[]0].txt /dest/")).sources,
        vec!["arr[[]0].txt"]
    );
}

#[test]
fn add_checksum_only_for_remote_sources() {
    let df = parse("Dockerfile", "FROM x\nADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d local.tgz /\nADD --checksum=md5:abc https://x/y /\n").unwrap();
    let o = opts(&[]);
    let g = GlobalScope::new(&df, &o).unwrap();
    let mut s = StageScope::new(&g, &o, Vec::new());
    assert!(
        s.step(&df.stages[0].instructions[0])
            .unwrap_err()
            .to_string()
            .contains("local source: local.tgz")
    );
    assert!(
        s.step(&df.stages[0].instructions[1])
            .unwrap_err()
            .to_string()
            .contains("unsupported digest algorithm")
    );
}

#[test]
fn copy_from_the_reference() {
    let c = one("COPY --from=nginx:latest /etc/nginx/nginx.conf /nginx.conf");
    assert_eq!(copy_of(&c).from.as_deref(), Some("nginx:latest"));
    let c = one("COPY --chmod=644 files* /somedir/");
    assert_eq!(copy_of(&c).chmod.as_deref(), Some("644"));
    let c = one("COPY --chmod=u=rwx,go=rx files* /somedir/");
    assert_eq!(
        copy_of(&c).chmod_bits().unwrap(),
        Some(Chmod::Symbolic("u=rwx,go=rx".into()))
    );
    let c = one("COPY --parents ./x/a.txt ./y/a.txt /parents/");
    assert!(copy_of(&c).parents);
    let c = one("COPY --exclude=*.txt --exclude=*.md hom* /mydir/");
    assert_eq!(copy_of(&c).exclude, vec!["*.txt", "*.md"]);
    let c = one("COPY --link=false [\"a b.txt\", \"/dest dir/\"]");
    assert_eq!(copy_of(&c).sources, vec!["a b.txt"]);
    assert_eq!(copy_of(&c).dest, "/dest dir/");
    assert!(!copy_of(&c).link);
    assert!(err("FROM x\nCOPY --chmod=999 a b\n").contains("invalid chmod"));
    assert!(
        err("FROM x\nCOPY onlyone\n")
            .starts_with("Dockerfile:2: COPY requires at least two arguments")
    );
}

#[test]
fn unknown_and_misplaced_flags() {
    assert_eq!(
        err("FROM x\n\n\n\n\n\nCOPY --foo a b\n"),
        "Dockerfile:7: unknown flag --foo for COPY"
    );
    assert_eq!(
        err("FROM x\nCOPY --checksum=sha256:aa a b\n"),
        "Dockerfile:2: unknown flag --checksum for COPY"
    );
    assert_eq!(
        err("FROM x\nADD --from=y a b\n"),
        "Dockerfile:2: unknown flag --from for ADD"
    );
    assert_eq!(
        err("FROM x\nWORKDIR --mount=x /a\n"),
        "Dockerfile:2: unknown flag --mount for WORKDIR"
    );
    assert_eq!(
        err("FROM --mount=x y\n"),
        "Dockerfile:1: unknown flag --mount for FROM"
    );
    assert_eq!(
        err("FROM x\nCOPY --from=a --from=b c d\n"),
        "Dockerfile:2: duplicate flag specified: --from"
    );
    assert_eq!(
        err("FROM x\nCOPY --link=maybe c d\n"),
        "Dockerfile:2: expecting boolean value for flag --link, not: maybe"
    );
    assert_eq!(
        err("FROM x\nCOPY --from c d\n"),
        "Dockerfile:2: missing a value on flag: --from"
    );
}

// ---- other instructions ----

#[test]
fn expose_volume_user_workdir_stopsignal_maintainer() {
    assert_eq!(one("EXPOSE 80/udp"), Command::Expose(vec!["80/udp".into()]));
    let e = expanded(
        "FROM x\nEXPOSE 80/tcp\nEXPOSE 80/udp 8000-8002/tcp 53/UDP 5000/sctp\n",
        &[],
    );
    assert_eq!(e[1].command, Command::Expose(vec!["80/tcp".into()]));
    assert_eq!(
        e[2].command,
        Command::Expose(
            [
                "80/udp",
                "8000/tcp",
                "8001/tcp",
                "8002/tcp",
                "53/udp",
                "5000/sctp"
            ]
            .map(String::from)
            .to_vec()
        )
    );
    assert_eq!(
        PortRange::parse("80/icmp").unwrap_err(),
        "invalid proto: icmp"
    );
    assert_eq!(
        one("VOLUME [\"/data\"]"),
        Command::Volume(vec!["/data".into()])
    );
    assert_eq!(
        one("VOLUME /var/log /var/db"),
        Command::Volume(vec!["/var/log".into(), "/var/db".into()])
    );
    assert_eq!(one("USER patrick"), Command::User("patrick".into()));
    assert_eq!(one("USER 1000:1000"), Command::User("1000:1000".into()));
    assert_eq!(
        one("STOPSIGNAL SIGKILL"),
        Command::StopSignal("SIGKILL".into())
    );
    assert_eq!(
        one("MAINTAINER Jane Doe <jane@example.com>"),
        Command::Maintainer("Jane Doe <jane@example.com>".into())
    );
    let e = expanded(
        "FROM x\nWORKDIR /a\nWORKDIR b\nENV DIRPATH=/path\nWORKDIR $DIRPATH/$DIRNAME\n",
        &[],
    );
    assert_eq!(e[2].command, Command::Workdir("b".into()));
    assert_eq!(e[4].command, Command::Workdir("/path/".into()));
    assert_eq!(
        err("FROM x\nWORKDIR\n"),
        "Dockerfile:2: WORKDIR requires exactly one argument"
    );
    assert_eq!(
        err("FROM x\nVOLUME [\"\"]\n"),
        "Dockerfile:2: VOLUME specified can not be an empty string"
    );
    assert_eq!(
        err("FROM x\nEXPOSE\n"),
        "Dockerfile:2: EXPOSE requires at least one argument"
    );
}

#[test]
fn arg_forms() {
    assert_eq!(
        one("ARG user1 buildno=1 msg=\"hi there\""),
        Command::Arg(vec![
            ArgDecl {
                name: "user1".into(),
                default: None
            },
            ArgDecl {
                name: "buildno".into(),
                default: Some("1".into())
            },
            ArgDecl {
                name: "msg".into(),
                default: Some("\"hi there\"".into())
            },
        ])
    );
    assert_eq!(
        err("FROM x\nARG =v\n"),
        "Dockerfile:2: ARG names can not be blank"
    );
    assert_eq!(
        err("FROM x\nARG\n"),
        "Dockerfile:2: ARG requires at least one argument"
    );
}

#[test]
fn onbuild_triggers() {
    let v = ins(
        "FROM x\nONBUILD ADD . /app/src\nONBUILD RUN /usr/local/bin/python-build --dir /app/src\nONBUILD COPY --from=builder /a /b\n",
    );
    match &v[1].command {
        Command::Onbuild(t) => {
            assert_eq!(t.original, "ADD . /app/src");
            assert_eq!(copy_of(&t.command).sources, vec!["."]);
        }
        other => panic!("{other:?}"),
    }
    match &v[3].command {
        Command::Onbuild(t) => assert_eq!(copy_of(&t.command).from.as_deref(), Some("builder")),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err("FROM x\nONBUILD ONBUILD RUN x\n"),
        "Dockerfile:2: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        err("FROM x\nONBUILD FROM y\n"),
        "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        err("FROM x\nONBUILD MAINTAINER me\n"),
        "Dockerfile:2: MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        err("FROM x\nONBUILD COPY --bad a b\n"),
        "Dockerfile:2: unknown flag --bad for COPY"
    );
    // A trigger read back from an image config parses on its own.
    let t = parse_line(
        "Dockerfile",
        1,
        "RUN --mount=type=cache,target=/c make",
        '\\',
    )
    .unwrap();
    assert_eq!(run_of(&t.command).mounts[0].kind, MountType::Cache);
}

#[test]
fn healthcheck_forms() {
    let c =
        one("HEALTHCHECK --interval=5m --timeout=3s \\\n  CMD curl -f http://localhost/ || exit 1");
    let Command::Healthcheck(h) = &c else {
        panic!("{c:?}")
    };
    assert_eq!(
        *h,
        Healthcheck::Check {
            test: shell("curl -f http://localhost/ || exit 1"),
            interval: Some(Duration::from_secs(300)),
            timeout: Some(Duration::from_secs(3)),
            start_period: None,
            start_interval: None,
            retries: None,
        }
    );
    assert_eq!(
        h.test(),
        vec!["CMD-SHELL", "curl -f http://localhost/ || exit 1"]
    );
    let c = one(
        "HEALTHCHECK --start-period=1m30s --start-interval=500ms --retries=5 CMD [\"/bin/check\", \"-q\"]",
    );
    let Command::Healthcheck(h) = &c else {
        panic!("{c:?}")
    };
    assert_eq!(h.test(), vec!["CMD", "/bin/check", "-q"]);
    match h {
        Healthcheck::Check {
            start_period,
            start_interval,
            retries,
            ..
        } => {
            assert_eq!(*start_period, Some(Duration::from_secs(90)));
            assert_eq!(*start_interval, Some(Duration::from_millis(500)));
            assert_eq!(*retries, Some(5));
        }
        Healthcheck::None => panic!("want a check"),
    }
    assert_eq!(
        one("HEALTHCHECK NONE"),
        Command::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        one("healthcheck none"),
        Command::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        err("FROM x\nHEALTHCHECK NONE x\n"),
        "Dockerfile:2: HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        err("FROM x\nHEALTHCHECK CMD\n"),
        "Dockerfile:2: missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        err("FROM x\nHEALTHCHECK RUN x\n"),
        "Dockerfile:2: unknown type \"RUN\" in HEALTHCHECK (try CMD)"
    );
    assert!(err("FROM x\nHEALTHCHECK --interval=5 CMD x\n").contains("missing unit"));
    assert!(err("FROM x\nHEALTHCHECK --interval=10us CMD x\n").contains("cannot be less than 1ms"));
    assert!(err("FROM x\nHEALTHCHECK --retries=-1 CMD x\n").contains("cannot be negative"));
    assert_eq!(
        err("FROM x\nHEALTHCHECK --foo=1 CMD x\n"),
        "Dockerfile:2: unknown flag --foo for HEALTHCHECK"
    );
}

#[test]
fn shell_instruction() {
    assert_eq!(
        one("SHELL [\"powershell\", \"-command\"]"),
        Command::Shell(vec!["powershell".into(), "-command".into()])
    );
    assert_eq!(
        one("SHELL [\"cmd\", \"/S\", \"/C\"]"),
        Command::Shell(vec!["cmd".into(), "/S".into(), "/C".into()])
    );
    assert_eq!(
        err("FROM x\nSHELL /bin/bash -c\n"),
        "Dockerfile:2: SHELL requires the arguments to be in JSON form, not \"/bin/bash -c\""
    );
    assert_eq!(
        err("FROM x\nSHELL [\"/bin/bash\", \"-c\"\n"),
        "Dockerfile:2: SHELL requires the arguments to be in JSON form, not \"[\\\"/bin/bash\\\", \\\"-c\\\"\""
    );
    assert_eq!(
        err("FROM x\nSHELL []\n"),
        "Dockerfile:2: SHELL requires at least one argument"
    );
    assert_eq!(
        shell("echo hi").argv(&["/bin/sh".into(), "-c".into()]),
        vec!["/bin/sh", "-c", "echo hi"]
    );
}

// ---- malformed input ----

#[test]
fn malformed_inputs_have_clear_errors() {
    assert_eq!(
        err("FROM x\nFOO bar\n"),
        "Dockerfile:2: unknown instruction: FOO"
    );
    assert_eq!(
        err("FROM x\nrunn echo\n"),
        "Dockerfile:2: unknown instruction: runn"
    );
    assert_eq!(err(""), "Dockerfile: file with no instructions");
    assert_eq!(
        err("# only a comment\n\n"),
        "Dockerfile: file with no instructions"
    );
    assert_eq!(
        err("ARG A\n"),
        "Dockerfile: no FROM instruction: a Dockerfile needs at least one stage"
    );
    assert_eq!(
        err("RUN echo\nFROM x\n"),
        "Dockerfile:1: RUN before the first FROM: only ARG may come first"
    );
}

#[test]
fn canonical_text_for_history_and_cache() {
    let e = expanded(
        "FROM x\nARG V=1\nRUN --mount=type=cache,target=/c --network=none echo $V\nCOPY --chown=1:2 --link a b /d/\n",
        &[],
    );
    assert_eq!(
        e[2].to_string(),
        "RUN --mount=type=cache,target=/c,rw --network=none echo $V"
    );
    assert_eq!(e[3].to_string(), "COPY --chown=1:2 --link a b /d/");
}
