"""What the benchmarks share: a throwaway dockerd, and clean-up helpers."""
import json, os, shutil, signal, subprocess, sys, time

DOCKERD = "/usr/sbin/dockerd"
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


class Dockerd:
    """dockerd with everything of its own under `base`."""

    def __init__(self, base, networking=False, exec_root=None):
        """networking: dockerd's default bridge (docker0), iptables and its
        userland proxy, as installed; only ever inside a network namespace
        the caller made. Otherwise no bridge, no iptables, no forwarding.
        exec_root: where its runtime state goes (default: under base)."""
        self.base = base
        self.data = os.path.join(base, "data")
        self.exec_root = exec_root or os.path.join(base, "exec")
        self.sock = os.path.join(base, "docker.sock")
        self.pidfile = os.path.join(base, "docker.pid")
        for d in (base, self.data, self.exec_root):
            os.mkdir(d)
        config = os.path.join(base, "daemon.json")
        with open(config, "w") as f:
            # Its trust key, /etc/docker/key.json by default, stays here too.
            json.dump({"deprecated-key-path": os.path.join(base, "key.json")}, f)
        self.log = open(os.path.join(base, "dockerd.log"), "w")
        self.proc = subprocess.Popen([
            DOCKERD,
            "--config-file", config,
            "--data-root", self.data,
            "--exec-root", self.exec_root,
            "--host", f"unix://{self.sock}",
            "--pidfile", self.pidfile,
            "--storage-driver", "overlay2",
            "--exec-opt", "native.cgroupdriver=cgroupfs",
            *([] if networking else [
                "--bridge=none", "--iptables=false", "--ip6tables=false",
                "--ip-masq=false", "--ip-forward=false",
            ]),
        ], stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while self.docker("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.flush()
                sys.exit("dockerd did not come up:\n" + open(self.log.name).read()[-3000:])
            time.sleep(0.2)

    def docker(self, *args, check=True):
        return subprocess.run([DOCKER, "-H", f"unix://{self.sock}", *args], check=check,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def images(self):
        return self.docker("images", "-aq").stdout.split()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def unmount_under(path):
    """Unmounts whatever is mounted at or below path, deepest first."""
    r = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], stdout=subprocess.PIPE, text=True)
    targets = [t for t in r.stdout.split() if t == path or t.startswith(path + "/")]
    for t in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", t], check=False)


def docker_cgroups():
    found = set()
    for ctl in os.listdir("/sys/fs/cgroup"):
        p = os.path.join("/sys/fs/cgroup", ctl, "docker")
        if os.path.isdir(p):
            found.add(p)
    return found


