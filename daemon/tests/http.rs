//! berthd's HTTP surface: ping headers, version prefixes, error bodies,
//! shutdown.

mod support;

use support::Berthd;

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn ping_get_and_head_carry_dockers_headers() {
    let (d, _) = Berthd::start(&[]);
    for path in ["/_ping", "/v1.47/_ping", "/v1.24/_ping"] {
        let (status, head, body) = d.request("GET", path);
        assert_eq!(status, 200, "{path}: {head}");
        assert_eq!(body, "OK");
        // curl -I prints the headers as the output; the body is empty.
        let (status, head, _) = d.request("HEAD", path);
        assert_eq!(status, 200, "{head}");
        assert_eq!(header(&head, "Content-Length"), Some("0"), "{head}");
        for (k, v) in [
            ("Api-Version", "1.47"),
            ("Ostype", "linux"),
            ("Builder-Version", "1"),
            ("Docker-Experimental", "false"),
            ("Cache-Control", "no-cache, no-store, must-revalidate"),
            ("Pragma", "no-cache"),
        ] {
            assert_eq!(header(&head, k), Some(v), "{k} in {head}");
        }
    }
}

#[test]
fn versions_outside_the_range_are_refused() {
    let (d, _) = Berthd::start(&[]);
    let (status, head, body) = d.request("GET", "/v1.12/version");
    assert_eq!(status, 400);
    assert_eq!(header(&head, "Content-Type"), Some("application/json"));
    assert_eq!(
        body,
        r#"{"message":"client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"}"#
    );
    let (status, _, body) = d.request("GET", "/v1.99/version");
    assert_eq!(status, 400);
    assert!(body.contains("client version 1.99 is too new"), "{body}");
}

#[test]
fn version_answers_with_and_without_prefix() {
    let (d, _) = Berthd::start(&[]);
    for path in ["/version", "/v1.47/version", "/v1.40/version"] {
        let (status, _, body) = d.request("GET", path);
        assert_eq!(status, 200, "{path}");
        let v: berth_api::SystemVersion = serde_json::from_str(&body).unwrap();
        assert_eq!(v.api_version, "1.47");
        assert_eq!(v.min_api_version, "1.24");
        assert_eq!(v.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(v.os, "linux");
        assert_eq!(v.components[0].name, "Engine");
        assert!(!v.kernel_version.is_empty());
    }
}

#[test]
fn unknown_routes_and_images_are_404_json() {
    let (d, _) = Berthd::start(&["busybox"]);
    for path in ["/nope", "/v1.47/nope", "/images/busybox/nope"] {
        let (status, _, body) = d.request("GET", path);
        assert_eq!(status, 404, "{path}");
        assert_eq!(body, r#"{"message":"page not found"}"#, "{path}");
    }
    let (status, _, body) = d.request("GET", "/v1.47/images/foo/json");
    assert_eq!(status, 404);
    assert_eq!(body, r#"{"message":"No such image: foo:latest"}"#);
    let (status, _, body) = d.request(
        "GET",
        "/images/json?filters=%7B%22colour%22%3A%5B%22x%22%5D%7D",
    );
    assert_eq!(status, 400);
    assert_eq!(body, r#"{"message":"invalid filter 'colour'"}"#);
    // A name with slashes and a port.
    let (status, _, body) = d.request("GET", "/images/docker.io/library/busybox:latest/json");
    assert_eq!(status, 200, "{body}");
    let i: berth_api::ImageInspect = serde_json::from_str(&body).unwrap();
    assert_eq!(i.repo_tags, ["busybox:latest"]);
}

#[test]
fn sigterm_removes_socket_and_pidfile() {
    let (mut d, _) = Berthd::start(&[]);
    let pid: u32 = std::fs::read_to_string(&d.pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, d.child.as_ref().unwrap().id());
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let status = d.stop().expect("berthd stops on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", d.log());
    assert!(!d.socket.exists());
    assert!(!d.pidfile.exists());
}
