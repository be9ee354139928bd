//! `RUN --mount=type=ssh`: a socket of the RUN's own in front of an ssh
//! agent's socket on this host (`berth build --ssh id=SOCKET`).
//!
//! The RUN does not get the agent's socket itself: the mount asks for its
//! own owner and mode (`uid`, `gid`, `mode`, 0600 root by default), which
//! must not change the host's socket. Every connection to the proxy is
//! joined to a fresh connection to the agent until either side closes.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

pub struct AgentProxy {
    _dir: tempfile::TempDir,
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl AgentProxy {
    /// Listens at a new socket (owned `uid:gid`, `mode`) for `agent`.
    pub fn start(agent: &Path, uid: u32, gid: u32, mode: u32) -> io::Result<AgentProxy> {
        // Fail here, on the RUN's line, rather than on the RUN's first use.
        UnixStream::connect(agent)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", agent.display())))?;
        let dir = tempfile::Builder::new().prefix("berth-ssh").tempdir()?;
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let stop = stop.clone();
            let agent = agent.to_path_buf();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = conn else {
                        // Out of descriptors, say: do not spin on it.
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        continue;
                    };
                    match UnixStream::connect(&agent) {
                        Ok(upstream) => join(client, upstream),
                        Err(e) => tracing::warn!("ssh agent {}: {e}", agent.display()),
                    }
                }
            })
        };
        Ok(AgentProxy {
            _dir: dir,
            path,
            stop,
            accept: Some(accept),
        })
    }

    /// The socket to bind into the RUN.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AgentProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // accept() only returns for a connection: make one.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Copies both ways on threads of their own; each direction's end is
/// passed on as a half close, so a request-reply protocol finishes.
fn join(a: UnixStream, b: UnixStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    std::thread::spawn(move || pipe(a, b2));
    std::thread::spawn(move || pipe(b, a2));
}

fn pipe(mut from: UnixStream, mut to: UnixStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
