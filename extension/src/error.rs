//! vigil's error: a message that says what went wrong and why, plus the SQLite result code to report.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    message: String,
    code: i32,
}

impl Error {
    /// An error reported as SQLITE_ERROR.
    pub fn new(message: impl Into<String>) -> Self {
        Error { message: message.into(), code: 1 }
    }

    pub fn with_code(message: impl Into<String>, code: i32) -> Self {
        Error { message: message.into(), code }
    }

    /// Prefixes what was being done: `"<what>: <cause>"`.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error { message: format!("{what}: {}", self.message), code: self.code }
    }

    pub fn code(&self) -> i32 {
        self.code
    }

    /// The primary result code (SQLITE_BUSY for SQLITE_BUSY_SNAPSHOT, …).
    pub fn primary_code(&self) -> i32 {
        self.code & 0xff
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Adds what was being done to any error.
pub trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.context(what))
    }
}
