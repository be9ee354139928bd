//! The error every front-end step returns: what went wrong, in which
//! Dockerfile, on which line.

/// A problem with a Dockerfile, located at its line (1-based; 0 when no
/// single line is to blame, such as an unknown `--target`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct DockerfileError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl DockerfileError {
    pub fn new(file: &str, line: usize, message: impl Into<String>) -> Self {
        DockerfileError {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }

    fn render(&self) -> String {
        if self.line == 0 {
            format!("{}: {}", self.file, self.message)
        } else {
            format!("{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

pub type Result<T> = std::result::Result<T, DockerfileError>;
