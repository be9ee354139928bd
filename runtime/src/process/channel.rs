//! The sync channel between the runtime and the processes it clones: a
//! SOCK_SEQPACKET socketpair carrying one JSON message per packet, with
//! file descriptors (SCM_RIGHTS) where a step hands one over.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use serde::{Deserialize, Serialize};

/// The steps of container creation and exec, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Runtime → stage 1: the cgroup is in place, go on.
    Go,
    /// Stage 1 → runtime: a user namespace exists, write its id maps.
    MapIds,
    /// Runtime → stage 1: maps written.
    IdsMapped,
    /// Stage 1 → runtime: the init's pid, in the runtime's pid namespace.
    InitPid(i32),
    /// Init → runtime: mounts are done, run prestart and createRuntime
    /// hooks (they run in the runtime's namespaces).
    RunCreateRuntimeHooks,
    /// Runtime → init: the hooks succeeded.
    HooksDone,
    /// Init → runtime: a seccomp listener fd accompanies this message.
    SeccompListener,
    /// Init → runtime: a terminal master fd accompanies this message.
    Console,
    /// Init → runtime: everything up to exec is done.
    Ready,
    /// Child → runtime: a step failed; the child exits after sending it.
    Error(String),
}

#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// A connected pair; both ends close on exec.
pub fn pair() -> std::io::Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

const MAX_MSG: usize = 64 * 1024;
const MAX_FDS: usize = 4;

impl Channel {
    pub fn send(&self, msg: &Msg) -> std::io::Result<()> {
        self.send_with_fds(msg, &[])
    }

    pub fn send_with_fds(&self, msg: &Msg, fds: &[RawFd]) -> std::io::Result<()> {
        let data = serde_json::to_vec(msg).expect("messages serialize");
        let iov = [IoSlice::new(&data)];
        let cmsg = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        Ok(())
    }

    /// The next message and any fds with it; `None` when the other side
    /// has closed (it exited or exec'd).
    pub fn recv(&self) -> std::io::Result<Option<(Msg, Vec<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MSG];
        let mut cmsg_buf = nix::cmsg_space!([RawFd; MAX_FDS]);
        let (n, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg_buf),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(r) => {
                    let mut fds = Vec::new();
                    for c in r.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(raw) = c {
                            // SAFETY: the kernel just installed these fds for us.
                            fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
                        }
                    }
                    if r.flags.contains(MsgFlags::MSG_TRUNC) {
                        return Err(std::io::Error::other(format!(
                            "sync message larger than {MAX_MSG} bytes"
                        )));
                    }
                    break (r.bytes, fds);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&buf[..n]).map_err(std::io::Error::other)?;
        Ok(Some((msg, fds)))
    }

    /// Receive and require `want`; a child's `Error` becomes the error.
    pub fn expect(&self, want: &Msg) -> Result<Vec<OwnedFd>, ChildError> {
        match self.recv() {
            Ok(Some((Msg::Error(e), _))) => Err(ChildError::Failed(e)),
            Ok(Some((m, fds))) if &m == want => Ok(fds),
            Ok(Some((m, _))) => Err(ChildError::Protocol(format!(
                "expected {want:?}, got {m:?}"
            ))),
            Ok(None) => Err(ChildError::Died(format!("{want:?}"))),
            Err(e) => Err(ChildError::Io(e)),
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("{0}")]
    Failed(String),
    #[error("container process exited while the runtime waited for {0}")]
    Died(String),
    #[error("sync protocol: {0}")]
    Protocol(String),
    #[error("sync channel: {0}")]
    Io(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_fd_and_eof() {
        let (a, b) = pair().unwrap();
        let (r, _w) = nix::unistd::pipe().unwrap();
        a.send_with_fds(&Msg::Console, &[r.as_raw_fd()]).unwrap();
        let (m, fds) = b.recv().unwrap().unwrap();
        assert_eq!(m, Msg::Console);
        assert_eq!(fds.len(), 1);
        a.send(&Msg::Error("mounting /proc: EPERM".into())).unwrap();
        assert_eq!(
            b.expect(&Msg::Ready).unwrap_err().to_string(),
            "mounting /proc: EPERM"
        );
        drop(a);
        assert!(b.recv().unwrap().is_none());
    }
}
