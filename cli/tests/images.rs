//! The image commands end to end against a real berthd.

mod support;

use support::Daemon;

/// The cells of a table line (separated by three spaces or more).
fn cols(line: &str) -> Vec<&str> {
    line.split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

fn short(id: &str) -> &str {
    &id["sha256:".len().."sha256:".len() + 12]
}

#[test]
fn import_list_format_tag_and_remove() {
    let d = Daemon::start();
    let id = d.import_busybox("busybox:latest");
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let table = d.ok(&["images"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert_eq!(
        cols(header),
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    );
    assert!(
        header.starts_with("REPOSITORY   TAG       IMAGE ID       CREATED   "),
        "{table}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&format!("busybox      latest    {}   ", short(&id))),
        "{table}"
    );
    // The columns line up under their titles.
    assert_eq!(
        row.find("ago").unwrap() + 3 + 3,
        header.find("SIZE").unwrap(),
        "{table}"
    );
    assert!(row.ends_with("MB"), "{table}");
    assert_eq!(d.ok(&["images", "-q"]).trim(), short(&id));
    assert_eq!(d.ok(&["images", "-q", "--no-trunc"]).trim(), id);

    d.ok(&["tag", "busybox", "example.com/tools/bb:1"]);
    assert_eq!(
        d.ok(&[
            "image",
            "ls",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}"
        ]),
        format!(
            "busybox:latest {0}\nexample.com/tools/bb:1 {0}\n",
            short(&id)
        )
    );
    assert_eq!(
        d.ok(&["images", "--format", "table {{.Repository}}\\t{{.Tag}}"]),
        "REPOSITORY             TAG\nbusybox                latest\nexample.com/tools/bb   1\n"
    );
    // Filters go to the daemon: a reference argument and --filter.
    assert_eq!(
        d.ok(&["images", "-q", "example.com/*/*"]).trim(),
        short(&id)
    );
    assert_eq!(d.ok(&["images", "-q", "alpine"]), "");
    assert_eq!(d.ok(&["images", "-q", "--filter", "dangling=true"]), "");
    let json = d.ok(&["images", "--format", "json", "busybox"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["Repository"], "busybox");
    assert_eq!(v["ID"], short(&id));

    assert_eq!(d.ok(&["inspect", "-f", "{{.Id}}", "busybox"]).trim(), id);
    assert_eq!(
        d.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Os}} {{index .RepoTags 0}}",
            "busybox"
        ])
        .trim(),
        "linux busybox:latest"
    );
    let raw = d.ok(&["image", "inspect", "busybox"]);
    assert!(
        raw.starts_with("[\n    {\n        \"Id\": \"sha256:"),
        "{raw}"
    );
    let parsed: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(parsed[0]["Id"], id.as_str());

    let hist = d.ok(&["history", "busybox"]);
    let header = cols(hist.lines().next().unwrap());
    assert_eq!(
        header,
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        "{hist}"
    );
    assert!(
        hist.lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{}   ", short(&id))),
        "{hist}"
    );
    assert_eq!(d.ok(&["history", "-q", "busybox"]).trim(), short(&id));

    let out = d.ok(&["rmi", "example.com/tools/bb:1"]);
    assert_eq!(out, "Untagged: example.com/tools/bb:1\n");
    let out = d.ok(&["image", "rm", "busybox"]);
    assert!(
        out.starts_with("Untagged: busybox:latest\nDeleted: sha256:"),
        "{out}"
    );
    assert_eq!(d.ok(&["images", "-q"]), "");
}

#[test]
fn save_then_load_round_trips() {
    let d = Daemon::start();
    let id = d.import_busybox("busybox:latest");
    let archive = d.dir.path().join("bb-saved.tar");
    d.ok(&["save", "-o", archive.to_str().unwrap(), "busybox"]);
    assert!(std::fs::metadata(&archive).unwrap().len() > 1_000_000);
    d.ok(&["rmi", "busybox"]);
    assert_eq!(d.ok(&["images", "-q"]), "");
    let out = d.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: busybox:latest\n");
    assert_eq!(d.ok(&["images", "-q", "--no-trunc"]).trim(), id);

    // Through pipes: save to stdout, load from stdin.
    let saved = d.berth(&["save", "busybox"]);
    assert!(saved.status.success());
    d.ok(&["rmi", "busybox"]);
    let out = d.berth_with(&["load"], Some(&saved.stdout));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Loaded image: busybox:latest\n"
    );
    assert_eq!(d.ok(&["images", "-q", "--no-trunc"]).trim(), id);
}

#[test]
fn system_df_prune_and_info() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let df = d.ok(&["system", "df"]);
    let lines: Vec<&str> = df.lines().collect();
    assert_eq!(
        lines[0],
        "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE"
    );
    assert!(
        lines[1].starts_with("Images          1         0         "),
        "{df}"
    );
    assert!(lines[1].ends_with("(100%)"), "{df}");
    assert_eq!(lines[2], "Containers      0         0         0B        0B");
    let v = d.ok(&["system", "df", "-v"]);
    assert!(
        v.starts_with("Images space usage:\n\nREPOSITORY   TAG "),
        "{v}"
    );
    assert_eq!(
        d.ok(&["system", "df", "--format", "{{.Type}}={{.TotalCount}}"]),
        "Images=1\nContainers=0\nLocal Volumes=0\nBuild Cache=0\n"
    );

    assert_eq!(d.ok(&["info", "--format", "{{.Images}}"]).trim(), "1");
    let info = d.ok(&["info"]);
    assert!(info.contains("\n Images: 1\n"), "{info}");
    assert!(
        info.contains(&format!(" Docker Root Dir: {}\n", d.data_root.display())),
        "{info}"
    );
    let v = d.ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Client.APIVersion}}",
    ]);
    assert_eq!(v.trim(), "1.47 1.47");

    // berthd keeps no untagged images: nothing dangles; -a takes every
    // image no container uses.
    assert_eq!(
        d.ok(&["image", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );
    let id = d.ok(&["images", "-q", "--no-trunc"]).trim().to_string();
    let out = d.ok(&["image", "prune", "-a", "-f"]);
    assert!(
        out.starts_with(&format!(
            "Deleted Images:\nuntagged: busybox:latest\ndeleted: {id}\n"
        )),
        "{out}"
    );
    assert!(out.contains("\n\nTotal reclaimed space: "), "{out}");
    assert!(!out.ends_with("space: 0B\n"), "{out}");
    assert_eq!(d.ok(&["images", "-q"]), "");
}

#[test]
fn errors_read_like_dockers() {
    let d = Daemon::start();
    let out = d.berth(&["rmi", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error response from daemon: No such image: nosuch:latest\n"
    );
    let out = d.berth(&["image", "inspect", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error response from daemon: No such image: nosuch:latest\n"
    );
    let out = d.berth(&["inspect", "nosuch"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: No such object: nosuch\n"
    );
    let out = d.berth(&["images", "--format", "{{.Nope}}"]);
    assert_eq!(out.status.code(), Some(0), "no rows, no error");
    d.import_busybox("busybox:latest");
    let out = d.berth(&["images", "--format", "{{.Nope}}"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("can't evaluate field Nope"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let gone = d.dir.path().join("gone.sock");
    let out = std::process::Command::new(support::BERTH)
        .arg("-H")
        .arg(format!("unix://{}", gone.display()))
        .arg("images")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "Cannot connect to the berth daemon at unix://{}. Is berthd running?\n",
            gone.display()
        )
    );
    let out = std::process::Command::new(support::BERTH)
        .args(["-H", "tcp://127.0.0.1:2375", "images"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unix socket"));
}
