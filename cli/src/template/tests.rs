use super::*;

fn inspect_doc() -> Value {
    serde_json::from_str(
        r#"{
        "Id": "sha256:abc",
        "State": {"Status": "running", "Running": true, "Pid": 4242, "ExitCode": 0},
        "Config": {
            "Env": ["PATH=/bin", "A=1"],
            "Labels": {"b": "2", "a": "x y"},
            "Cmd": null,
            "Entrypoint": ["/bin/sh", "-c"]
        },
        "Mounts": [
            {"Source": "/src1", "Destination": "/d1"},
            {"Source": "/src2", "Destination": "/d2"}
        ],
        "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}},
        "Size": 1.5
    }"#,
    )
    .unwrap()
}

fn run(t: &str, v: &Value) -> String {
    Template::parse(t)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .execute(v)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
}

#[test]
fn fields_and_go_printing() {
    let d = inspect_doc();
    assert_eq!(run("{{.State.Pid}}", &d), "4242");
    assert_eq!(run("{{.State.Running}}", &d), "true");
    assert_eq!(run("{{.Config.Env}}", &d), "[PATH=/bin A=1]");
    assert_eq!(run("{{.Config.Labels}}", &d), "map[a:x y b:2]");
    assert_eq!(run("{{.Config.Cmd}}", &d), "<nil>");
    assert_eq!(run("{{.Missing}}", &d), "<no value>");
    assert_eq!(run("{{.Size}}", &d), "1.5");
    assert_eq!(run("id={{.Id}}\n", &d), "id=sha256:abc\n");
}

#[test]
fn docker_inspect_examples() {
    let d = inspect_doc();
    assert_eq!(run(r#"{{index .Config.Labels "a"}}"#, &d), "x y");
    assert_eq!(run(r#"{{index .Config.Labels "zz"}}"#, &d), "");
    assert_eq!(
        run("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", &d),
        "/src1:/d1 /src2:/d2 "
    );
    assert_eq!(
        run(
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &d
        ),
        "172.17.0.2"
    );
    assert_eq!(
        run(
            "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
            &d
        ),
        "a=x y;b=2;"
    );
    assert_eq!(
        run("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", &d),
        "0:PATH=/bin 1:A=1 "
    );
    assert_eq!(
        run("{{json .Config.Entrypoint}}", &d),
        r#"["/bin/sh","-c"]"#
    );
    assert_eq!(
        run("{{json .State}}", &d),
        r#"{"Status":"running","Running":true,"Pid":4242,"ExitCode":0}"#
    );
    assert_eq!(run("{{(index .Mounts 1).Source}}", &d), "/src2");
    assert_eq!(run("{{len .Mounts}}", &d), "2");
}

#[test]
fn control_flow() {
    let d = inspect_doc();
    assert_eq!(run("{{if .State.Running}}up{{else}}down{{end}}", &d), "up");
    assert_eq!(
        run(
            r#"{{if eq .State.Status "exited"}}x{{else if eq .State.Status "running"}}r{{else}}?{{end}}"#,
            &d
        ),
        "r"
    );
    assert_eq!(
        run("{{with .Config.Cmd}}has{{else}}none{{end}}", &d),
        "none"
    );
    assert_eq!(run("{{with .State}}{{.Pid}}{{end}}", &d), "4242");
    assert_eq!(
        run("{{range .Config.Cmd}}x{{else}}empty{{end}}", &d),
        "empty"
    );
    assert_eq!(run("{{$x := .State.Pid}}{{$x}}", &d), "4242");
    assert_eq!(
        run("{{if and .State.Running (gt .State.Pid 1)}}ok{{end}}", &d),
        "ok"
    );
    assert_eq!(run("{{if not .State.ExitCode}}zero{{end}}", &d), "zero");
    assert_eq!(run("a  {{- /* comment */ -}}  b", &d), "ab");
    assert_eq!(run("{{- .Id -}}\n", &d), "sha256:abc");
    assert_eq!(
        run("{{range .Mounts}}{{$.Id}} {{end}}", &d),
        "sha256:abc sha256:abc "
    );
}

#[test]
fn docker_functions() {
    let d = inspect_doc();
    assert_eq!(run(r#"{{join .Config.Env ","}}"#, &d), "PATH=/bin,A=1");
    assert_eq!(run(r#"{{split "a:b:c" ":"}}"#, &d), "[a b c]");
    assert_eq!(run(r#"{{upper "abc"}} {{lower "ABC"}}"#, &d), "ABC abc");
    assert_eq!(run(r#"{{title "hello world"}}"#, &d), "Hello World");
    assert_eq!(run(r#"{{truncate .Id 6}}"#, &d), "sha256");
    assert_eq!(run(r#"{{truncate "ab" 6}}"#, &d), "ab");
    assert_eq!(run(r#"[{{pad "x" 2 1}}]"#, &d), "[  x ]");
    assert_eq!(run(r#"{{.State.Status | upper}}"#, &d), "RUNNING");
    assert_eq!(run(r#"{{println "a" 1}}"#, &d), "a 1\n");
    assert_eq!(
        run(r#"{{printf "%-6s|%05d|%q" "ab" 42 "x"}}"#, &d),
        "ab    |00042|\"x\""
    );
    assert_eq!(run(r#"{{print "a" 1 2 "b"}}"#, &d), "a1 2b");
    assert_eq!(run(r#"{{slice .Id 0 6}}"#, &d), "sha256");
}

#[test]
fn errors_read_like_go() {
    let e = Template::parse("{{nope .}}").unwrap_err();
    assert_eq!(e.to_string(), "template: :1: function \"nope\" not defined");
    let e = Template::parse("{{if .A}}x").unwrap_err();
    assert!(e.to_string().contains("unexpected EOF"), "{e}");
    let e = Template::parse("{{.A").unwrap_err();
    assert!(e.to_string().contains("unclosed action"), "{e}");
    let row = Value::Struct(vec![("ID".into(), Value::str("x"))]);
    let e = Template::parse("{{.Nope}}")
        .unwrap()
        .execute(&row)
        .unwrap_err();
    assert!(e.to_string().contains("can't evaluate field Nope"), "{e}");
    let e = Template::parse("{{.Config.Nope.X}}")
        .unwrap()
        .execute(&inspect_doc())
        .unwrap_err();
    assert!(e.to_string().contains("nil pointer evaluating"), "{e}");
}

#[test]
fn header_mode_returns_titles() {
    let t = Template::parse(r#"{{.ID}}\t{{upper .Names}}\t{{truncate .Image 3}}"#).unwrap();
    let header = Value::Map(vec![
        ("ID".into(), Value::str("CONTAINER ID")),
        ("Names".into(), Value::str("NAMES")),
        ("Image".into(), Value::str("IMAGE")),
    ]);
    assert_eq!(
        t.for_header().execute(&header).unwrap(),
        r"CONTAINER ID\tNAMES\tIMAGE"
    );
}

#[test]
fn labels_method_reads_a_map() {
    let row = Value::Struct(vec![(
        "Label".into(),
        Value::Map(vec![("com.x".into(), Value::str("1"))]),
    )]);
    assert_eq!(run(r#"{{.Label "com.x"}}|{{.Label "no"}}"#, &row), "1|");
}

#[test]
fn separate_fields_are_separate_arguments() {
    let d = inspect_doc();
    assert_eq!(
        run("{{if ne .State.Status .Id}}differ{{end}}", &d),
        "differ"
    );
    assert_eq!(
        run("{{$s := .State}}{{$s.Pid}} {{$s.Status}}", &d),
        "4242 running"
    );
    assert_eq!(run("{{(index .Mounts 0).Destination}}", &d), "/d1");
}
