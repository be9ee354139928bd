//! Terminals: the init opens a pty inside the container, makes the slave
//! its controlling terminal and stdio, and sends the master over the
//! console socket (SCM_RIGHTS, with the pty's name as payload), as runc
//! does, so conmon, containerd's shim or berth's own `run -t` get it.

use std::ffi::CStr;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

use crate::syscall::Syscall;

#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    #[error("creating terminal: {what}: {source}")]
    Pty { what: &'static str, source: Errno },
    #[error("sending terminal to console socket: {0}")]
    Send(Errno),
    #[error("receiving terminal from the container: {0}")]
    Recv(String),
    #[error("connecting to console socket {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Connect to a `--console-socket`, in the runtime (the path is on the
/// host; the init inherits the connection).
pub fn connect_console_socket(path: &Path) -> Result<OwnedFd, TtyError> {
    std::os::unix::net::UnixStream::connect(path)
        .map(OwnedFd::from)
        .map_err(|source| TtyError::Connect {
            path: path.to_path_buf(),
            source,
        })
}

pub fn send_fd(socket: RawFd, name: &[u8], fd: RawFd) -> Result<(), Errno> {
    let iov = [IoSlice::new(name)];
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None).map(drop)
}

/// Receive a pty master from a console socket connection.
pub fn recv_fd(socket: RawFd) -> Result<OwnedFd, TtyError> {
    use nix::sys::socket::{ControlMessageOwned, recvmsg};
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| TtyError::Recv(e.to_string()))?;
    for c in msg.cmsgs().map_err(|e| TtyError::Recv(e.to_string()))? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel installed this fd for us.
            return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    Err(TtyError::Recv("no file descriptor in message".into()))
}

pub fn set_winsize(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

pub fn get_winsize(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills a winsize.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0).then_some((ws.ws_row, ws.ws_col))
}

/// In the init, after the container's /dev is in place: create the pty,
/// send its master to `socket`, and make the slave the process's
/// controlling terminal and stdin/stdout/stderr. The init also binds the
/// slave over /dev/console; an exec'd process must leave the init's alone.
pub fn setup_console(
    sys: &dyn Syscall,
    socket: RawFd,
    size: Option<(u16, u16)>,
    bind_console: bool,
) -> Result<(), TtyError> {
    let pty = |what| move |source| TtyError::Pty { what, source };
    // SAFETY: posix_openpt returns a new fd or -1.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    let master = Errno::result(master).map_err(pty("opening /dev/ptmx"))?;
    // SAFETY: fresh fd from posix_openpt.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    // SAFETY: plain calls on the master fd; ptsname_r writes into buf.
    let mut buf = [0 as libc::c_char; 128];
    unsafe {
        Errno::result(libc::grantpt(master.as_raw_fd())).map_err(pty("grantpt"))?;
        Errno::result(libc::unlockpt(master.as_raw_fd())).map_err(pty("unlockpt"))?;
        let rc = libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len());
        if rc != 0 {
            return Err(TtyError::Pty {
                what: "ptsname",
                source: Errno::from_raw(rc),
            });
        }
    }
    // SAFETY: ptsname_r NUL-terminated buf.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_owned();
    if let Some((rows, cols)) = size {
        set_winsize(master.as_raw_fd(), rows, cols);
    }
    // SAFETY: open of the NUL-terminated slave path.
    let slave = unsafe {
        libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    let slave = Errno::result(slave).map_err(pty("opening the pty slave"))?;
    // SAFETY: fresh fd from open.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    let name_path = Path::new(std::ffi::OsStr::from_bytes(name.to_bytes()));
    if bind_console && Path::new("/dev/console").exists() {
        sys.mount(
            Some(name_path),
            Path::new("/dev/console"),
            None,
            MsFlags::MS_BIND,
            None,
        )
        .map_err(pty("binding /dev/console"))?;
    }
    send_fd(socket, name.to_bytes(), master.as_raw_fd()).map_err(TtyError::Send)?;
    drop(master);
    nix::unistd::setsid().map_err(pty("setsid"))?;
    // SAFETY: TIOCSCTTY on our slave fd.
    Errno::result(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) })
        .map_err(pty("making the pty the controlling terminal"))?;
    for target in 0..=2 {
        // SAFETY: dup2 onto the standard fds.
        Errno::result(unsafe { libc::dup2(slave.as_fd().as_raw_fd(), target) })
            .map_err(pty("redirecting stdio"))?;
    }
    Ok(())
}
