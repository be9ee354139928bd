//! The real docker CLI against berthd: version, info, images, inspect,
//! history, and its errors.

mod support;

use support::Berthd;

#[test]
fn docker_version_shows_berth() {
    let (d, _) = Berthd::start(&[]);
    let out = d.docker_ok(&["version"]);
    assert!(out.contains("Server: berth 0.1.0"), "{out}");
    assert!(
        out.contains("API version:      1.47 (minimum version 1.24)"),
        "{out}"
    );
    let server = d.docker_ok(&[
        "version",
        "-f",
        "{{.Server.Version}} {{.Server.APIVersion}} {{.Server.Os}}",
    ]);
    assert_eq!(
        server.trim(),
        format!("{} 1.47 linux", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn docker_info_counts_images() {
    let (d, _) = Berthd::start(&["busybox:latest", "example.com/tools/bb:1"]);
    let out = d.docker_ok(&["info", "--format", "{{.Images}} {{.Driver}}"]);
    let (images, driver) = out.trim().split_once(' ').unwrap();
    // Two names, one image.
    assert_eq!(images, "1");
    assert!(["overlay", "copy"].contains(&driver), "{out}");
    let out = d.docker_ok(&[
        "info",
        "--format",
        "{{.OSType}}|{{.DockerRootDir}}|{{.CgroupDriver}}|{{.NCPU}}|{{.ServerVersion}}",
    ]);
    let fields: Vec<&str> = out.trim().split('|').collect();
    assert_eq!(fields[0], "linux");
    assert_eq!(fields[1], d.data_root.display().to_string());
    assert_eq!(fields[2], "cgroupfs");
    assert!(fields[3].parse::<u32>().unwrap() >= 1);
    assert_eq!(fields[4], env!("CARGO_PKG_VERSION"));
    // The plain table prints without a warning about missing fields.
    let table = d.docker_ok(&["info"]);
    assert!(table.contains("Storage Driver: "), "{table}");
    assert!(table.contains("Operating System: "), "{table}");
}

#[test]
fn docker_images_lists_busybox() {
    let (d, id) = Berthd::start(&["busybox:latest"]);
    let id = id.unwrap();
    let short = &id["sha256:".len().."sha256:".len() + 12];
    let table = d.docker_ok(&["images"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("busybox "))
        .unwrap_or_else(|| panic!("no busybox row:\n{table}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..3], ["busybox", "latest", short], "{table}");
    assert_eq!(d.docker_ok(&["images", "-q"]).trim(), short);
    assert_eq!(
        d.docker_ok(&["images", "--no-trunc", "-q"]).trim(),
        id.as_str()
    );
    // Filters go through to the daemon.
    assert_eq!(d.docker_ok(&["images", "-q", "busybox"]).trim(), short);
    assert_eq!(d.docker_ok(&["images", "-q", "alpine"]).trim(), "");
    assert_eq!(
        d.docker_ok(&["images", "-q", "--filter", "dangling=true"])
            .trim(),
        ""
    );
    assert_eq!(
        d.docker_ok(&["images", "-q", "--filter", "reference=busy*"])
            .trim(),
        short
    );
    let bad = d.docker(&["images", "--filter", "colour=red"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid filter 'colour'"),
        "{bad:?}"
    );
}

#[test]
fn docker_image_inspect_and_history() {
    let (d, id) = Berthd::start(&["busybox:latest"]);
    let id = id.unwrap();
    let out = d.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Id}} {{index .RepoTags 0}} {{.Os}}",
        "busybox",
    ]);
    assert_eq!(out.trim(), format!("{id} busybox:latest linux"));
    let out = d.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.RootFS.Type}} {{len .RootFS.Layers}} {{.Architecture}}",
        &id,
    ]);
    assert_eq!(
        out.trim(),
        format!(
            "layers 1 {}",
            berth_daemon::system::go_arch(std::env::consts::ARCH)
        )
    );
    let size: i64 = d
        .docker_ok(&["image", "inspect", "-f", "{{.Size}}", "busybox:latest"])
        .trim()
        .parse()
        .unwrap();
    let busybox = std::fs::metadata("/bin/busybox").unwrap().len() as i64;
    assert!(size >= busybox, "size {size} < busybox {busybox}");

    let hist = d.docker_ok(&["history", "busybox"]);
    let lines: Vec<&str> = hist.lines().collect();
    assert!(lines[0].starts_with("IMAGE"), "{hist}");
    assert_eq!(lines.len(), 2, "{hist}");
    assert!(
        lines[1].starts_with(&id["sha256:".len().."sha256:".len() + 12]),
        "{hist}"
    );
    assert!(lines[1].contains("berth import"), "{hist}");
    let out = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.Comment}}",
        "busybox",
    ]);
    assert_eq!(out.trim(), format!("{id}|imported from tarball"));
}

#[test]
fn docker_reports_missing_images() {
    let (d, _) = Berthd::start(&["busybox:latest"]);
    let out = d.docker(&["image", "inspect", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No such image"), "{err}");
    let out = d.docker(&["history", "nosuch:2"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No such image: nosuch:2"), "{err}");
}
