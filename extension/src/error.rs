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

/// Longest piece of user input a message echoes (an argument, an option name, a mode).
const ECHO_CHARS: usize = 80;
/// Longest message vigil reports: a backstop for what is echoed in full (paths).
const MESSAGE_CHARS: usize = 2000;

/// User input as a message echoes it: at most ECHO_CHARS characters, then "…" and how long it was.
pub fn cut(text: &str) -> String {
    let chars = text.chars().count();
    if chars <= ECHO_CHARS {
        return text.to_string();
    }
    let head: String = text.chars().take(ECHO_CHARS).collect();
    format!("{head}… ({chars} characters)")
}

/// Bytes as text (invalid UTF-8 replaced), at most `max_bytes` long, cut on a character boundary with "…".
pub fn cut_bytes(bytes: &[u8], max_bytes: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= max_bytes {
        return text.into_owned();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// User input in single quotes (SQL's way), cut to a bounded length.
pub fn quoted(text: &str) -> String {
    format!("'{}'", cut(text))
}

/// An SQL value as a message names it, in SQL terms: NULL, an integer, a real, text, a blob.
pub fn describe(value: &crate::sqlite::Value) -> String {
    use crate::sqlite::Value;
    match value {
        Value::Null => "NULL".into(),
        Value::Integer(i) => format!("the integer {i}"),
        Value::Real(r) => format!("the real {r}"),
        Value::Text(t) => format!("the text {}", quoted(t)),
        Value::RawText(t) => format!("a text of {} bytes that is not UTF-8", t.len()),
        Value::Blob(b) => format!("a blob of {} bytes", b.len()),
    }
}

/// A message cut to MESSAGE_CHARS, so that no input makes an error megabytes long.
pub fn bounded(message: &str) -> std::borrow::Cow<'_, str> {
    if message.len() <= MESSAGE_CHARS {
        return message.into();
    }
    let head: String = message.chars().take(MESSAGE_CHARS).collect();
    format!("{head}… (message cut; {} bytes in all)", message.len()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::Value;

    #[test]
    fn echoed_input_is_bounded_and_values_are_named_in_sql_terms() {
        let long = "x".repeat(1_000_000);
        assert!(quoted(&long).len() < 120 && quoted(&long).ends_with("(1000000 characters)'"));
        assert_eq!(quoted("abc"), "'abc'");
        assert!(bounded(&long).len() < 2100);
        assert_eq!(describe(&Value::Integer(0)), "the integer 0");
        assert_eq!(describe(&Value::Blob(vec![0, 255])), "a blob of 2 bytes");
        assert_eq!(describe(&Value::Text("x".into())), "the text 'x'");
    }
}
