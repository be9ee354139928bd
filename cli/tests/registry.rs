//! `push` and `pull` through a real docker-registry on 127.0.0.1.

mod support;

#[path = "../../daemon/tests/support/registry.rs"]
mod registry;

use support::Daemon;

#[test]
fn push_then_pull_show_dockers_lines() {
    let reg = registry::Registry::start();
    let d = Daemon::start_with(&["--insecure-registry", &reg.host()]);
    let id = d.import_busybox("busybox:latest");
    let name = format!("{}/bb:1", reg.host());
    d.ok(&["tag", "busybox", &name]);

    let out = d.ok(&["push", &name]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("The push refers to repository [{}/bb]", reg.host()),
        "{out}"
    );
    assert!(lines.iter().any(|l| l.ends_with(": Pushed")), "{out}");
    assert!(
        lines.last().unwrap().starts_with("1: digest: sha256:"),
        "{out}"
    );

    d.ok(&["rmi", "busybox", &name]);
    let out = d.ok(&["pull", &name]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1: Pulling from bb", "{out}");
    assert!(
        lines.iter().any(|l| l.ends_with(": Pull complete")),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("Digest: sha256:")),
        "{out}"
    );
    assert_eq!(
        lines[lines.len() - 2],
        format!("Status: Downloaded newer image for {name}")
    );
    assert_eq!(lines[lines.len() - 1], name);
    assert_eq!(d.ok(&["images", "-q", "--no-trunc"]).trim(), id);

    // -q: only the reference; without a tag, docker's "Using default tag".
    assert_eq!(d.ok(&["pull", "-q", &name]), format!("{name}\n"));
    let err = d.berth(&["pull", &format!("{}/nosuch", reg.host())]);
    assert_eq!(err.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&err.stdout);
    assert!(
        stdout.starts_with("Using default tag: latest\n"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&err.stderr);
    // berthd ends the stream with the error (dockerd answers 404 first):
    // its message, on one line.
    assert!(stderr.contains("not found"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
