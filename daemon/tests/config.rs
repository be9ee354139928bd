//! berthd's configuration errors, as the binary reports them.

mod support;

use std::process::Command;

fn berthd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_berthd"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_flag_and_the_same_key_in_the_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("daemon.json");
    std::fs::write(&file, r#"{"data-root": "/srv/berth"}"#).unwrap();
    let out = berthd(&[
        "--config-file",
        file.to_str().unwrap(),
        "--data-root",
        dir.path().join("data").to_str().unwrap(),
        "-H",
        &format!("unix://{}/s.sock", dir.path().display()),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("specified both as a flag and in the configuration file: data-root"),
        "{err}"
    );
    assert!(!dir.path().join("data").exists());
}

#[test]
fn unknown_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("daemon.json");
    std::fs::write(&file, r#"{"log-level": "info", "bogus-key": 1}"#).unwrap();
    let out = berthd(&["--config-file", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bogus-key"), "{err}");
}

#[test]
fn tcp_hosts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("daemon.json");
    std::fs::write(&file, "{}").unwrap();
    let out = berthd(&[
        "-H",
        "tcp://127.0.0.1:2375",
        "--config-file",
        file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("tcp://127.0.0.1:2375") && err.contains("unix sockets only"),
        "{err}"
    );
}
