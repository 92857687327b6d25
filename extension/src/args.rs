//! The options argument every SQL function takes: a JSON object as text, its keys checked against the ones the
//! function knows, each value's type checked with an error naming the option.

use std::path::Path;

use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::sqlite::Value;

/// The JSON object an options argument holds as text; `None` for NULL or no argument. Keys other than
/// `allowed` are an error naming them; `example` shows a valid object in the error message.
pub fn object_arg(arg: Option<&Value>, example: &str, allowed: &[&str]) -> Result<Option<Map<String, Json>>> {
    let text = match arg {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Text(text)) => text,
        Some(other) => {
            return Err(Error::new(format!(
                "options must be a JSON object as text, not {}",
                crate::error::describe(other)
            )))
        }
    };
    let json: Json = serde_json::from_str(text)
        .map_err(|e| Error::new(format!("options are not valid JSON ({e}); expected e.g. '{example}'")))?;
    let Json::Object(map) = json else { return Err(Error::new("options must be a JSON object")) };
    if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Error::new(format!(
            "unknown option \"{}\" (known: {})",
            crate::error::cut(key),
            allowed.join(", ")
        )));
    }
    Ok(Some(map))
}

pub fn string<'a>(key: &str, value: &'a Json) -> Result<&'a str> {
    value.as_str().ok_or_else(|| Error::new(format!("option \"{key}\" must be a string, not {value}")))
}

pub fn boolean(key: &str, value: &Json) -> Result<bool> {
    value.as_bool().ok_or_else(|| Error::new(format!("option \"{key}\" must be true or false, not {value}")))
}

pub fn integer(key: &str, value: &Json, min: i64, max: i64) -> Result<i64> {
    value
        .as_i64()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| Error::new(format!("option \"{key}\" must be an integer from {min} to {max}, not {value}")))
}

pub fn bad_choice(key: &str, got: &str, choices: &str) -> Error {
    Error::new(format!("option \"{key}\" must be one of {choices}, not \"{got}\""))
}

/// Refuses a path that SQLite or the CLI could only hand over with bytes replaced (U+FFFD): the file would
/// silently be written under another name.
pub fn not_utf8(what: &str) -> Error {
    Error::new(format!(
        "{what} is not valid UTF-8 (or contains U+FFFD): vigil would write under another name; rename the file or \
         directory to a UTF-8 name"
    ))
}

pub fn utf8_path<'a>(text: &'a str, what: &str) -> Result<&'a Path> {
    if text.contains('\u{FFFD}') {
        return Err(not_utf8(what));
    }
    if text.contains('\0') {
        // The operating system would stop reading the name at the NUL: another file than the one named.
        return Err(Error::new(format!("{what} contains a NUL character, which no file name can hold")));
    }
    Ok(Path::new(text))
}

/// The text argument at `index`, which must be present and not empty.
pub fn path_arg<'a>(args: &'a [Value], index: usize, what: &str) -> Result<&'a str> {
    match args.get(index) {
        Some(Value::Text(text)) if !text.trim().is_empty() => utf8_path(text, what).map(|_| text.as_str()),
        Some(Value::RawText(_)) => Err(not_utf8(what)),
        Some(Value::Text(_)) | Some(Value::Null) | None => Err(Error::new(format!("{what} is missing"))),
        Some(other) => Err(Error::new(format!("{what} must be text (a path), not {}", crate::error::describe(other)))),
    }
}
