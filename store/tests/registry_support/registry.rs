//! /usr/bin/docker-registry on a free 127.0.0.1 port, with its config and
//! storage in a temp dir; stopped by PID and removed on drop.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, run};

pub enum RegistryKind {
    /// Plain HTTP, no auth.
    Plain,
    /// HTTPS with a certificate for 127.0.0.1 from a CA of the test's own.
    Tls,
    /// Plain HTTP, htpasswd (bcrypt) basic auth.
    Basic { user: String, password: String },
    /// Plain HTTP, token auth: the token server's realm, service, issuer,
    /// and the PEM file of the certificate its tokens are signed with.
    Token {
        realm: String,
        service: String,
        issuer: String,
        cert: PathBuf,
    },
}

pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The CA certificate, for `Tls`.
    pub ca: Option<PathBuf>,
}

impl Registry {
    pub fn start(kind: RegistryKind) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let root = dir.path();
        let storage = root.join("storage");
        fs::create_dir(&storage).unwrap();
        let mut tls = String::new();
        let mut auth = String::new();
        let mut ca = None;
        match &kind {
            RegistryKind::Plain => {}
            RegistryKind::Tls => {
                let (ca_crt, crt, key) = make_tls(root);
                tls = format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    crt.display(),
                    key.display()
                );
                ca = Some(ca_crt);
            }
            RegistryKind::Basic { user, password } => {
                let line = run(Command::new("htpasswd").args(["-Bbn", user, password]));
                let path = root.join("htpasswd");
                fs::write(&path, line.trim()).unwrap();
                auth = format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    path.display()
                );
            }
            RegistryKind::Token {
                realm,
                service,
                issuer,
                cert,
            } => {
                auth = format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    \
                     issuer: {issuer}\n    rootcertbundle: {}\n",
                    cert.display()
                );
            }
        }
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: berth-test-secret\n{tls}{auth}",
            storage.display()
        );
        let cfg = root.join("config.yml");
        fs::write(&cfg, config).unwrap();
        let log = fs::File::create(root.join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        let mut reg = Registry {
            child,
            port,
            dir,
            ca,
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited ({status}):\n{}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!("docker-registry not ready:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stop it now (by PID); the files stay until drop.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CA, and a server certificate for 127.0.0.1 (IP SAN) it signed: (CA
/// cert, server cert, server key).
fn make_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let s = |n: &str| dir.join(n).to_str().unwrap().to_string();
    run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &s("ca.key"),
        "-out",
        &s("ca.crt"),
        "-days",
        "2",
        "-subj",
        "/CN=berth test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]));
    run(Command::new("openssl").args([
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &s("server.key"),
        "-out",
        &s("server.csr"),
        "-subj",
        "/CN=127.0.0.1",
    ]));
    fs::write(
        p("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl").args([
        "x509",
        "-req",
        "-in",
        &s("server.csr"),
        "-CA",
        &s("ca.crt"),
        "-CAkey",
        &s("ca.key"),
        "-CAcreateserial",
        "-out",
        &s("server.crt"),
        "-days",
        "2",
        "-extfile",
        &s("server.ext"),
    ]));
    (p("ca.crt"), p("server.crt"), p("server.key"))
}
