//! vigil_metrics' options: a JSON object (docs/api.md lists every key).

use serde_json::{json, Map, Value as Json};

use crate::args::{bad_choice, boolean, integer, object_arg, string};
use crate::error::{Error, Result};
use crate::health;
use crate::sqlite::Value;

/// Where query statistics come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuerySource {
    /// This process's live statistics when it traces a connection, else the saved ones.
    Auto,
    /// What `query_stats_save()` stored in the database (any process).
    Saved,
    /// This process's own, from `query_stats_start()`.
    Live,
    None,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub health: health::Options,
    /// A backup directory whose manifests give the newest backup; None: the database's backup log.
    pub backups: Option<String>,
    /// Per-statement series for the top N statements by total time.
    pub statements: usize,
    pub query_stats: QuerySource,
    /// Adds each check's `status` word, `detail` text and `value` (JSON) as labels of vigil_health_status, for
    /// callers that build a health report from the same rows (`vigil serve`); not for export: unbounded text.
    pub details: bool,
}

const KEYS: &[&str] =
    &["schema", "integrity", "fragmentation", "thresholds", "backups", "statements", "query_stats", "details"];
const EXAMPLE: &str = r#"{"integrity":"quick","backups":"/var/backups/app","statements":10}"#;

impl Options {
    pub fn parse(arg: Option<&Value>) -> Result<Options> {
        let map = object_arg(arg, EXAMPLE, KEYS)?.unwrap_or_default();
        let mut options = Options {
            health: health_options(&map)?,
            backups: None,
            statements: 0,
            query_stats: QuerySource::Auto,
            details: false,
        };
        for (key, value) in &map {
            match key.as_str() {
                "backups" => options.backups = Some(non_empty(key, string(key, value)?)?),
                "statements" => options.statements = integer(key, value, 0, 1000)? as usize,
                "query_stats" => options.query_stats = query_source(key, string(key, value)?)?,
                "details" => options.details = boolean(key, value)?,
                _ => {}
            }
        }
        Ok(options)
    }
}

/// The health options inside: schema, integrity, fragmentation (default: with integrity full) and thresholds.
fn health_options(map: &Map<String, Json>) -> Result<health::Options> {
    let mut health = Map::new();
    for key in ["schema", "integrity", "fragmentation", "thresholds"] {
        if let Some(value) = map.get(key) {
            health.insert(key.into(), value.clone());
        }
    }
    if !health.contains_key("fragmentation") && map.get("integrity") == Some(&json!("full")) {
        health.insert("fragmentation".into(), json!(true));
    }
    health::Options::parse(Some(&Value::Text(Json::Object(health).to_string())))
}

fn non_empty(key: &str, text: &str) -> Result<String> {
    if text.is_empty() {
        return Err(Error::new(format!("option \"{key}\" must name a directory")));
    }
    Ok(text.to_string())
}

fn query_source(key: &str, text: &str) -> Result<QuerySource> {
    Ok(match text {
        "auto" => QuerySource::Auto,
        "saved" => QuerySource::Saved,
        "live" => QuerySource::Live,
        "none" => QuerySource::None,
        other => return Err(bad_choice(key, other, "auto, saved, live, none")),
    })
}
