//! One line per event on stderr: `vigil watch: <db>: <event> key=value…` for people (control characters
//! escaped: names and details come from files and databases), or one JSON object per line with `--log-json`
//! (`{"ts","level","db","event",…}`) for journald or a log shipper.

use serde_json::{json, Map, Value as Json};

#[derive(Clone, Copy, Debug)]
pub struct Log {
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

impl Log {
    /// Logs one event; `db` is the database's label (None: the watch itself).
    pub fn event(&self, level: Level, db: Option<&str>, event: &str, fields: &[(&str, Json)]) {
        eprintln!("{}", self.line(level, db, event, fields));
    }

    fn line(&self, level: Level, db: Option<&str>, event: &str, fields: &[(&str, Json)]) -> String {
        if self.json {
            let mut object = Map::new();
            object.insert("ts".into(), json!(crate::output::rfc3339(std::time::SystemTime::now())));
            object.insert("level".into(), json!(level.name()));
            object.insert("db".into(), db.map_or(Json::Null, |d| json!(d)));
            object.insert("event".into(), json!(event));
            for (key, value) in fields {
                object.insert((*key).into(), value.clone());
            }
            return Json::Object(object).to_string();
        }
        let mut line = String::from("vigil watch: ");
        if let Some(db) = db {
            line.push_str(db);
            line.push_str(": ");
        }
        line.push_str(event);
        for (key, value) in fields {
            let value = match value {
                Json::String(text) => text.clone(),
                other => other.to_string(),
            };
            line.push_str(&format!(" {key}={value}"));
        }
        crate::output::escape_controls(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_lines_escape_and_json_lines_parse() {
        let human = Log { json: false }.line(Level::Info, Some("a\nb.db"), "job done", &[("job", json!("check"))]);
        assert_eq!(human, "vigil watch: a\\nb.db: job done job=check");
        let line = Log { json: true }.line(Level::Warning, Some("a\nb.db"), "status", &[("status", json!("warning"))]);
        let parsed: Json = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["db"], "a\nb.db");
        assert_eq!(parsed["level"], "warning");
        assert_eq!(parsed["status"], "warning");
        assert!(parsed["ts"].as_str().unwrap().ends_with('Z'));
        assert!(!line.contains('\n'));
    }
}
