//! ARG scoping: global ARGs, redeclaration, `--build-arg`, automatic
//! platform ARGs, proxy ARGs, ENV over ARG, unconsumed build args.

use berth_builder::*;

fn opts(build_args: &[(&str, &str)]) -> BuildOptions {
    BuildOptions {
        build_args: build_args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..BuildOptions::default()
    }
}

/// Step through stage `stage` and return the scope at its end plus the
/// expanded instructions.
fn run_stage(
    text: &str,
    stage: usize,
    build_args: &[(&str, &str)],
) -> (StageScope, Vec<Instruction>) {
    let df = parse("Dockerfile", text).unwrap_or_else(|e| panic!("{e}"));
    let o = opts(build_args);
    let g = GlobalScope::new(&df, &o).unwrap();
    let mut s = StageScope::new(&g, &o, vec![("PATH".into(), "/usr/bin:/bin".into())]);
    let out = df.stages[stage]
        .instructions
        .iter()
        .map(|i| s.step(i).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    (s, out)
}

fn get(env: &[(String, String)], k: &str) -> Option<String> {
    env.iter()
        .rev()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
}

#[test]
fn arg_is_usable_only_after_its_declaration() {
    let text = "FROM busybox\nUSER ${username:-some_user}\nARG username\nUSER $username\n";
    let (_, e) = run_stage(text, 0, &[("username", "what_user")]);
    assert_eq!(e[0].command, Command::User("some_user".into()));
    assert_eq!(e[2].command, Command::User("what_user".into()));
    let (_, e) = run_stage(text, 0, &[]);
    assert_eq!(e[2].command, Command::User(String::new()));
}

#[test]
fn env_overrides_arg_of_the_same_name() {
    let text = "FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nWORKDIR /$CONT_IMG_VER\n";
    let (s, e) = run_stage(text, 0, &[("CONT_IMG_VER", "v2.0.1")]);
    assert_eq!(e[2].command, Command::Workdir("/v1.0.0".into()));
    assert_eq!(get(&s.run_env(), "CONT_IMG_VER").as_deref(), Some("v1.0.0"));
    // ENV first, ARG later: ENV still wins.
    let text = "FROM ubuntu\nENV V=env\nARG V=arg\nWORKDIR /$V\n";
    let (s, e) = run_stage(text, 0, &[]);
    assert_eq!(e[2].command, Command::Workdir("/env".into()));
    assert_eq!(get(&s.run_env(), "V").as_deref(), Some("env"));
    // The reference's idiom: default through ENV.
    let text = "FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\n";
    let (s, _) = run_stage(text, 0, &[]);
    assert_eq!(get(s.env(), "CONT_IMG_VER").as_deref(), Some("v1.0.0"));
    let (s, _) = run_stage(text, 0, &[("CONT_IMG_VER", "v2")]);
    assert_eq!(get(s.env(), "CONT_IMG_VER").as_deref(), Some("v2"));
}

#[test]
fn build_arg_overrides_default_and_defaults_expand() {
    let text = "FROM x\nARG A=1 B=${A}0\nARG C=\"quoted value\"\n";
    let (s, e) = run_stage(text, 0, &[]);
    assert_eq!(
        s.history_args(),
        vec![
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "10".to_string()),
            ("C".to_string(), "quoted value".to_string())
        ]
    );
    assert_eq!(e[0].to_string(), "ARG A=1 B=10");
    let (s, _) = run_stage(text, 0, &[("A", "7")]);
    assert_eq!(get(&s.history_args(), "B").as_deref(), Some("70"));
    let (s, _) = run_stage(text, 0, &[("B", "given")]);
    assert_eq!(get(&s.history_args(), "B").as_deref(), Some("given"));
}

#[test]
fn global_args_need_redeclaring_and_stages_are_separate() {
    let text = "ARG VERSION=latest\nARG OTHER=o\nFROM busybox:$VERSION\nARG VERSION\nWORKDIR /$VERSION/$OTHER\nARG SETTINGS\nFROM busybox\nWORKDIR /$SETTINGS\n";
    let (_, e) = run_stage(text, 0, &[("SETTINGS", "s")]);
    assert_eq!(e[1].command, Command::Workdir("/latest/".into()));
    let (_, e) = run_stage(text, 1, &[("SETTINGS", "s")]);
    assert_eq!(
        e[0].command,
        Command::Workdir("/".into()),
        "an ARG ends with its stage"
    );
    let (_, e) = run_stage(text, 0, &[("VERSION", "1.36")]);
    assert_eq!(e[1].command, Command::Workdir("/1.36/".into()));
}

#[test]
fn platform_args_have_host_values_when_declared() {
    let text = "FROM alpine\nARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT\nLABEL t=$TARGETPLATFORM b=$BUILDPLATFORM a=$TARGETARCH o=$BUILDOS v=x$TARGETVARIANT\n";
    let (_, e) = run_stage(text, 0, &[]);
    assert_eq!(
        e[1].command,
        Command::Label(
            [
                ("t", "linux/amd64"),
                ("b", "linux/amd64"),
                ("a", "amd64"),
                ("o", "linux"),
                ("v", "x")
            ]
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.to_string(),
                value: v.to_string()
            })
            .collect()
        )
    );
    let mut o = opts(&[]);
    o.target_platform = Platform::parse("linux/arm64/v8").unwrap();
    let df = parse("Dockerfile", text).unwrap();
    let g = GlobalScope::new(&df, &o).unwrap();
    assert_eq!(g.get("TARGETPLATFORM"), Some("linux/arm64/v8"));
    assert_eq!(g.get("TARGETVARIANT"), Some("v8"));
    assert_eq!(g.get("BUILDARCH"), Some("amd64"));
    assert!(Platform::parse("linux").is_err());
}

#[test]
fn proxy_args_reach_run_but_not_history() {
    let text = "FROM x\nARG V=1\nARG HTTPS_PROXY\nRUN echo $V\nWORKDIR /$HTTP_PROXY\n";
    let (s, e) = run_stage(
        text,
        0,
        &[
            ("HTTP_PROXY", "http://proxy:3128"),
            ("HTTPS_PROXY", "http://p:1"),
        ],
    );
    let env = s.run_env();
    assert_eq!(
        get(&env, "HTTP_PROXY").as_deref(),
        Some("http://proxy:3128"),
        "usable without ARG"
    );
    assert_eq!(get(&env, "HTTPS_PROXY").as_deref(), Some("http://p:1"));
    assert_eq!(get(&env, "V").as_deref(), Some("1"));
    assert_eq!(
        get(&env, "PATH").as_deref(),
        Some("/usr/bin:/bin"),
        "base image env kept"
    );
    assert_eq!(s.history_args(), vec![("V".to_string(), "1".to_string())]);
    assert_eq!(s.history_text(&e[2]), "|1 V=1 RUN echo $V");
    assert_eq!(
        s.history_text(&e[3]),
        "WORKDIR /",
        "an undeclared proxy arg does not expand"
    );
}

#[test]
fn unconsumed_build_args_are_reported() {
    let text = "ARG GLOBAL\nFROM x AS a\nARG USED_A\nFROM x AS b\nARG USED_B\nONBUILD ARG LATER\n";
    let df = parse("Dockerfile", text).unwrap();
    let o = opts(&[
        ("GLOBAL", "1"),
        ("USED_A", "1"),
        ("USED_B", "1"),
        ("foo", "1"),
        ("http_proxy", "x"),
        ("LATER", "1"),
    ]);
    assert_eq!(unconsumed_build_args(&df, &[1], &o), vec!["USED_A", "foo"]);
    assert_eq!(unconsumed_build_args(&df, &[0, 1], &o), vec!["foo"]);
    assert_eq!(
        unconsumed_warning(&unconsumed_build_args(&df, &[1], &o)).unwrap(),
        "[Warning] One or more build-args [USED_A foo] were not consumed"
    );
    assert_eq!(unconsumed_warning(&[]), None);
}

#[test]
fn a_stage_on_a_stage_inherits_env_and_args() {
    let text = "FROM x AS base\nARG A=1\nENV E=2\nFROM base\nWORKDIR /$A/$E\n";
    let df = parse("Dockerfile", text).unwrap();
    let o = opts(&[]);
    let g = GlobalScope::new(&df, &o).unwrap();
    let mut base = StageScope::new(&g, &o, vec![]);
    for i in &df.stages[0].instructions {
        base.step(i).unwrap();
    }
    let mut child = StageScope::from_parent(&base);
    let w = child.step(&df.stages[1].instructions[0]).unwrap();
    assert_eq!(w.command, Command::Workdir("/1/2".into()));
}

#[test]
fn expose_splits_a_variable_into_ports() {
    let (_, e) = run_stage(
        "FROM x\nARG PORTS=\"80 443/udp\"\nEXPOSE $PORTS \"8080\"\n",
        0,
        &[],
    );
    assert_eq!(
        e[1].command,
        Command::Expose(vec!["80/tcp".into(), "443/udp".into(), "8080/tcp".into()])
    );
}
