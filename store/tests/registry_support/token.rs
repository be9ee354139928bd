//! A token server for docker-registry's `auth: token` on 127.0.0.1: checks
//! basic credentials and issues RS256 JWTs (signed with `openssl dgst`)
//! whose x5c header carries a self-signed certificate the registry trusts
//! through its rootcertbundle. Stopped (thread joined) on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{base64, base64_decode, run};

pub const SERVICE: &str = "berth-test-registry";
pub const ISSUER: &str = "berth-test-issuer";

pub struct TokenServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The certificate the registry must trust (its rootcertbundle).
    pub cert: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Tokens issued, and requests refused.
    pub issued: Arc<AtomicUsize>,
    pub refused: Arc<AtomicUsize>,
    /// Scopes asked for.
    pub scopes: Arc<Mutex<Vec<String>>>,
}

struct Signer {
    key: PathBuf,
    x5c: String,
    dir: PathBuf,
    user: String,
    password: String,
    seq: AtomicUsize,
}

impl TokenServer {
    pub fn start(user: &str, password: &str) -> TokenServer {
        let dir = tempfile::Builder::new()
            .prefix("berth-token-")
            .tempdir()
            .unwrap();
        let key = dir.path().join("token.key");
        let cert = dir.path().join("token.crt");
        run(Command::new("openssl").args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
            "-days",
            "2",
            "-subj",
            "/CN=berth test token signer",
        ]));
        let pem = std::fs::read_to_string(&cert).unwrap();
        let b64: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("");
        // Check it decodes: x5c is the DER, standard base64.
        assert!(!base64_decode(&b64).is_empty());
        let signer = Arc::new(Signer {
            key,
            x5c: b64,
            dir: dir.path().to_path_buf(),
            user: user.into(),
            password: password.into(),
            seq: AtomicUsize::new(0),
        });

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let scopes = Arc::new(Mutex::new(Vec::new()));
        let (s, i, r, sc) = (
            stop.clone(),
            issued.clone(),
            refused.clone(),
            scopes.clone(),
        );
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                        if let Err(e) = serve(conn, &signer, &i, &r, &sc) {
                            eprintln!("token server: {e}");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(e) => panic!("token server accept: {e}"),
                }
            }
        });
        TokenServer {
            port,
            dir,
            cert,
            stop,
            thread: Some(thread),
            issued,
            refused,
            scopes,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    conn: TcpStream,
    signer: &Signer,
    issued: &AtomicUsize,
    refused: &AtomicUsize,
    scopes: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut authz = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("authorization")
        {
            authz = Some(v.trim().to_string());
        }
    }
    let query = target.split_once('?').map(|x| x.1).unwrap_or("");
    let mut wanted = Vec::new();
    for kv in query.split('&') {
        if let Some(v) = kv.strip_prefix("scope=") {
            wanted.push(url_decode(v));
        }
    }
    scopes.lock().unwrap().extend(wanted.iter().cloned());

    let user = match authz.as_deref().and_then(|a| a.strip_prefix("Basic ")) {
        Some(b) => {
            let creds = String::from_utf8_lossy(&base64_decode(b)).into_owned();
            if creds != format!("{}:{}", signer.user, signer.password) {
                refused.fetch_add(1, Ordering::Relaxed);
                return respond(conn, 401, r#"{"details":"wrong credentials"}"#);
            }
            Some(signer.user.clone())
        }
        None => None,
    };
    // Anonymous: a token granting nothing.
    let mut access = Vec::new();
    if user.is_some() {
        for s in &wanted {
            let mut parts = s.splitn(3, ':');
            let (Some(typ), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let actions: Vec<String> = actions.split(',').map(|a| format!("\"{a}\"")).collect();
            access.push(format!(
                r#"{{"type":"{typ}","name":"{name}","actions":[{}]}}"#,
                actions.join(",")
            ));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let n = signer.seq.fetch_add(1, Ordering::Relaxed);
    let header = format!(r#"{{"typ":"JWT","alg":"RS256","x5c":["{}"]}}"#, signer.x5c);
    let claims = format!(
        r#"{{"iss":"{ISSUER}","sub":"{}","aud":"{SERVICE}","exp":{},"nbf":{},"iat":{},"jti":"t{n}","access":[{}]}}"#,
        user.unwrap_or_default(),
        now + 600,
        now - 10,
        now - 10,
        access.join(",")
    );
    let signing_input = format!(
        "{}.{}",
        base64(header.as_bytes(), true),
        base64(claims.as_bytes(), true)
    );
    let input = signer.dir.join(format!("input-{n}"));
    std::fs::write(&input, &signing_input)?;
    let sig = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary", "-sign"])
        .arg(&signer.key)
        .arg(&input)
        .output()?;
    let _ = std::fs::remove_file(&input);
    if !sig.status.success() {
        return respond(conn, 500, r#"{"details":"signing failed"}"#);
    }
    let token = format!("{signing_input}.{}", base64(&sig.stdout, true));
    issued.fetch_add(1, Ordering::Relaxed);
    respond(
        conn,
        200,
        &format!(r#"{{"token":"{token}","access_token":"{token}","expires_in":600}}"#),
    )
}

fn respond(mut conn: TcpStream, code: u16, body: &str) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        401 => "Unauthorized",
        _ => "Error",
    };
    write!(
        conn,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?');
                out.push(h);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
