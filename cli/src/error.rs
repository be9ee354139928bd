//! What a command can fail with, worded as docker words it.

use crate::template::TemplateError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The socket is missing or refuses connections.
    #[error("Cannot connect to the berth daemon at {host}. Is berthd running?")]
    Connect { host: String },
    /// `-H tcp://…` and other hosts berth does not speak to.
    #[error("unsupported host {0:?}: berth talks to berthd over a unix socket (unix:///path)")]
    Host(String),
    /// An error answer: `{"message": ...}` with a status of 400 or more.
    #[error("Error response from daemon: {message}")]
    Daemon { status: u16, message: String },
    /// The connection broke or the answer was not HTTP.
    #[error("error during connect: {0}")]
    Transport(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// An answer that does not parse.
    #[error("unexpected answer from the daemon to {what}: {message}")]
    Decode { what: String, message: String },
    #[error("template parsing error: {0}")]
    Template(#[from] TemplateError),
    /// Wrong arguments, in docker's words.
    #[error("{0}")]
    Usage(String),
    /// Any other message, printed as is.
    #[error("{0}")]
    Message(String),
    /// Exit with this status, saying nothing more (a container's exit
    /// code, or errors already printed).
    #[error("exit status {0}")]
    Status(i32),
}

impl CliError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let what = what.into();
        move |source| CliError::Io { what, source }
    }

    /// The status `berth` exits with after printing this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Status(n) => *n,
            CliError::Usage(_) => 125,
            _ => 1,
        }
    }

    /// A 404 from the daemon.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CliError::Daemon { status: 404, .. })
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;
