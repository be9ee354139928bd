//! docker-py (Debian's python3-docker) as a third client of berthd.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::Berthd;

const SCRIPT: &str = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1], version="auto")
assert c.ping()
out = c.containers.run("busybox:latest", ["sh", "-c", "echo hi; echo err >&2"], remove=True, stderr=True)
assert out == b"hi\nerr\n", out
ctr = c.containers.run("busybox:latest", ["sleep", "100"], detach=True, name="py1",
                       labels={"who": "py"}, mem_limit="64m")
ctr.reload()
assert ctr.status == "running", ctr.status
assert ctr.attrs["HostConfig"]["Memory"] == 64 << 20
assert [x.name for x in c.containers.list(filters={"label": "who=py"})] == ["py1"]
code, out = ctr.exec_run(["sh", "-c", "echo from-exec; exit 3"])
assert (code, out) == (3, b"from-exec\n"), (code, out)
ctr.stop(timeout=1)
ctr.reload()
assert ctr.status == "exited", ctr.status
assert ctr.wait()["StatusCode"] == 137
ctr.remove()
v = c.volumes.create("pyvol")
assert v.name == "pyvol" and "pyvol" in [x.name for x in c.volumes.list()]
v.remove()
tags = [t for i in c.images.list() for t in i.tags]
assert "busybox:latest" in tags, tags
print("docker-py ok")
"#;

#[test]
fn docker_py_drives_berthd() {
    let probe = Command::new("python3")
        .args(["-c", "import docker"])
        .output()
        .expect("python3 is missing: install Debian's python3 and python3-docker");
    assert!(
        probe.status.success(),
        "python3 cannot import docker: install Debian's python3-docker ({})",
        String::from_utf8_lossy(&probe.stderr)
    );
    let (d, _) = Berthd::start(&["busybox:latest"]);
    let mut child = Command::new("python3")
        .args(["-", &d.host()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(SCRIPT.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}\nberthd log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "docker-py ok\n");
}
