//! Options of the backup functions: NULL or a JSON object. Each function accepts the keys it uses
//! (docs/api.md lists them) and rejects the others by name.

use serde_json::{Map, Value as Json};

use crate::args::{bad_choice, boolean, integer, object_arg, string};
use crate::error::{Error, Result};
use crate::sqlite::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    None,
    Quick,
    Full,
}

impl Verify {
    pub fn as_str(self) -> &'static str {
        match self {
            Verify::None => "none",
            Verify::Quick => "quick",
            Verify::Full => "full",
        }
    }

    pub fn parse(word: &str) -> Result<Verify> {
        match word {
            "none" => Ok(Verify::None),
            "quick" => Ok(Verify::Quick),
            "full" => Ok(Verify::Full),
            other => Err(bad_choice("verify", other, "quick, full, none")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    pub fn parse(word: &str) -> Result<Compression> {
        match word {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            other => Err(bad_choice("compress", other, "none, gzip, zstd")),
        }
    }

    /// The file name suffix of an artifact.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }
}

/// How many backups retention keeps; `None` everywhere: retention is off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    pub last: Option<i64>,
    pub daily: Option<i64>,
    pub weekly: Option<i64>,
    pub monthly: Option<i64>,
}

impl Retention {
    pub fn is_off(&self) -> bool {
        *self == Retention::default()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BackupOptions {
    pub schema: String,
    pub busy_timeout_ms: i32,
    pub verify: Verify,
    pub compression: Compression,
    /// Compression level; `None`: gzip 6, zstd 3.
    pub level: Option<i32>,
    pub overwrite: bool,
    pub retention: Retention,
    /// Record the backup in the source database's `vigil_backup_log`.
    pub log: bool,
    /// Recompute an artifact's SHA-256 (backup_list) .
    pub hash: bool,
    /// Accept an artifact without a manifest (backup_verify, backup_restore).
    pub bare: bool,
    /// Also list the files a directory holds that are not backups, and why (backup_list).
    pub ignored: bool,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            schema: "main".into(),
            busy_timeout_ms: 5000,
            verify: Verify::Quick,
            compression: Compression::None,
            level: None,
            overwrite: false,
            retention: Retention::default(),
            log: true,
            hash: false,
            bare: false,
            ignored: false,
        }
    }
}

impl BackupOptions {
    /// Parses an options argument; only the keys in `allowed` are accepted.
    pub fn parse(arg: Option<&Value>, allowed: &[&str]) -> Result<BackupOptions> {
        Self::parse_over(BackupOptions::default(), arg, allowed)
    }

    /// Parses an options argument over other defaults than backup_to's.
    pub fn parse_over(defaults: BackupOptions, arg: Option<&Value>, allowed: &[&str]) -> Result<BackupOptions> {
        let mut options = defaults;
        if let Some(map) = object_arg(arg, r#"{"compress":"gzip"}"#, allowed)? {
            options.apply(&map)?;
        }
        Ok(options)
    }

    fn apply(&mut self, map: &Map<String, Json>) -> Result<()> {
        for (key, value) in map {
            match key.as_str() {
                "schema" => self.schema = string(key, value)?.to_string(),
                "busy_timeout_ms" => self.busy_timeout_ms = integer(key, value, 0, 3_600_000)? as i32,
                "verify" => self.verify = Verify::parse(string(key, value)?)?,
                "compress" => self.compression = Compression::parse(string(key, value)?)?,
                "level" => self.level = Some(integer(key, value, 1, 19)? as i32),
                "overwrite" => self.overwrite = boolean(key, value)?,
                "log" => self.log = boolean(key, value)?,
                "hash" => self.hash = boolean(key, value)?,
                "bare" => self.bare = boolean(key, value)?,
                "ignored" => self.ignored = boolean(key, value)?,
                "keep" => self.retention.last = Some(count(key, value)?),
                "keep_daily" => self.retention.daily = Some(count(key, value)?),
                "keep_weekly" => self.retention.weekly = Some(count(key, value)?),
                "keep_monthly" => self.retention.monthly = Some(count(key, value)?),
                _ => unreachable!("object_arg admits only allowed keys, and each is handled"),
            }
        }
        if self.compression == Compression::Gzip && self.level.is_some_and(|l| l > 9) {
            return Err(Error::new("option \"level\" must be from 1 to 9 for gzip (zstd takes 1 to 19)"));
        }
        Ok(())
    }
}

/// A retention count: a whole number of backups, at least 1 (0 would delete every backup).
fn count(key: &str, value: &Json) -> Result<i64> {
    integer(key, value, 1, 100_000).map_err(|_| {
        Error::new(format!(
            "option \"{key}\" must be a whole number of backups from 1 to 100000, not {value} (retention never \
             deletes every backup; leave the option out to keep all)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[&str] = &["schema", "verify", "compress", "level", "keep", "keep_daily", "overwrite"];

    fn parse(text: &str) -> Result<BackupOptions> {
        BackupOptions::parse(Some(&Value::Text(text.into())), ALL)
    }

    #[test]
    fn options_parse_and_default() {
        let o = parse(r#"{"verify":"full","compress":"zstd","keep":3,"keep_daily":7}"#).unwrap();
        assert_eq!((o.verify, o.compression), (Verify::Full, Compression::Zstd));
        assert_eq!((o.retention.last, o.retention.daily, o.retention.weekly), (Some(3), Some(7), None));
        assert_eq!(BackupOptions::parse(None, ALL).unwrap(), BackupOptions::default());
    }

    #[test]
    fn bad_options_name_the_problem() {
        let cases = [
            ("{\"log\":false}", "unknown option \"log\""),
            ("{\"verify\":\"deep\"}", "one of quick, full, none"),
            ("{\"compress\":\"xz\"}", "one of none, gzip, zstd"),
            ("{\"keep\":0}", "from 1 to 100000, not 0"),
            ("{\"keep_daily\":-2}", "not -2"),
            ("{\"keep\":\"all\"}", "not \"all\""),
            ("{\"compress\":\"gzip\",\"level\":12}", "1 to 9 for gzip"),
            ("[]", "must be a JSON object"),
            ("{", "not valid JSON"),
        ];
        for (input, expected) in cases {
            let err = parse(input).unwrap_err().to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }
}
