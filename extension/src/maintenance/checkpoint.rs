//! wal_checkpoint: copies WAL frames back into the database and reports what it could do. Readers on old
//! snapshots keep frames the checkpoint may not overwrite; the result says when that happened.

use std::time::Instant;

use super::options::MaintenanceOptions;
use super::{elapsed_ms, wal_bytes, Target};
use crate::error::{Error, Result};
use crate::format::wal_index::WalIndexHeader;
use crate::health::thresholds::show;
use crate::sqlite::{Db, Value};

pub const OPTION_KEYS: &[&str] = &["schema", "busy_timeout_ms"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Copies what it can without waiting for anyone.
    Passive,
    /// Waits (busy timeout) for writers, then copies everything readers allow.
    Full,
    /// Full, then waits for readers so the next writer starts the WAL from its beginning.
    Restart,
    /// Restart, then truncates the WAL file to zero bytes.
    Truncate,
}

impl Mode {
    pub fn parse(value: &Value) -> Result<Mode> {
        match value {
            Value::Null => Ok(Mode::Passive),
            Value::Text(text) => match text.to_ascii_lowercase().as_str() {
                "passive" => Ok(Mode::Passive),
                "full" => Ok(Mode::Full),
                "restart" => Ok(Mode::Restart),
                "truncate" => Ok(Mode::Truncate),
                _ => Err(Error::new(format!(
                    "unknown mode {}: use passive, full, restart or truncate",
                    crate::error::quoted(text)
                ))),
            },
            other => Err(Error::new(format!(
                "mode must be text (passive, full, restart, truncate), not {}",
                crate::error::describe(other)
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Passive => "passive",
            Mode::Full => "full",
            Mode::Restart => "restart",
            Mode::Truncate => "truncate",
        }
    }
}

/// What one checkpoint did.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub mode: Mode,
    /// A reader or writer kept the checkpoint from completing.
    pub blocked: bool,
    /// Frames in the WAL before, from the wal-index (None when it cannot be read).
    pub frames_before: Option<i64>,
    /// Frames in the WAL after, and how many of them are now in the database (None outside WAL mode).
    pub frames_after: Option<i64>,
    pub checkpointed: Option<i64>,
    pub wal_bytes_before: i64,
    pub wal_bytes_after: i64,
    pub duration_ms: f64,
    pub detail: String,
}

/// Frames in the WAL according to the wal-index header, read through the connection's own mapping of it.
/// None when absent, or while a writer is changing it.
fn wal_index_frames(target: &Target) -> Option<i64> {
    let db = target.db();
    let file = db.database_file("main").ok()??;
    WalIndexHeader::read(&file).map(|header| i64::from(header.max_frame))
}

/// Checkpoints the target's WAL in `mode`.
pub fn run(target: &Target, mode: Mode) -> Result<Checkpoint> {
    let started = Instant::now();
    let wal_bytes_before = wal_bytes(&target.path);
    let journal_mode = target.journal_mode()?;
    if journal_mode != "wal" {
        return Ok(Checkpoint {
            mode,
            blocked: false,
            frames_before: None,
            frames_after: None,
            checkpointed: None,
            wal_bytes_before,
            wal_bytes_after: wal_bytes_before,
            duration_ms: elapsed_ms(started),
            detail: format!("journal_mode is {journal_mode}: there is no WAL to checkpoint"),
        });
    }
    let frames_before = wal_index_frames(target);
    let row = target.query(&format!("PRAGMA wal_checkpoint({})", mode.as_str().to_uppercase()))?;
    let number = |i: usize| row.first().and_then(|r| r.get(i)).and_then(Value::as_i64).unwrap_or(-1);
    let (busy, frames, copied) = (number(0) == 1, number(1), number(2));
    let blocked = busy || copied < frames;
    let wal_bytes_after = wal_bytes(&target.path);
    let detail = if blocked {
        format!(
            "blocked: {copied} of {frames} frames copied; a reader on an older snapshot{} keeps the rest until it \
             finishes",
            if busy { " or a writer (within the busy timeout)" } else { "" }
        )
    } else {
        format!("{frames} frames in the WAL, all in the database; WAL file {}", show(wal_bytes_after as f64, "bytes"))
    };
    Ok(Checkpoint {
        mode,
        blocked,
        frames_before,
        frames_after: Some(frames.max(0)),
        checkpointed: Some(copied.max(0)),
        wal_bytes_before,
        wal_bytes_after,
        duration_ms: elapsed_ms(started),
        detail,
    })
}

impl Checkpoint {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": self.mode.as_str(),
            "blocked": self.blocked,
            "frames_before": self.frames_before,
            "frames_after": self.frames_after,
            "checkpointed": self.checkpointed,
            "wal_bytes_before": self.wal_bytes_before,
            "wal_bytes_after": self.wal_bytes_after,
            "duration_ms": self.duration_ms,
            "detail": self.detail,
        })
    }
}

/// `wal_checkpoint([mode [, options]])`: what the checkpoint did, as a JSON object.
pub fn wal_checkpoint(db: Db, args: &[Value]) -> Result<Value> {
    let mode = Mode::parse(args.first().unwrap_or(&Value::Null)).map_err(|e| e.context("bad arguments"))?;
    let options = MaintenanceOptions::parse(args.get(1), OPTION_KEYS).map_err(|e| e.context("bad options"))?;
    let target = Target::open(db, &options.schema, options.busy_timeout_ms)?;
    Ok(Value::Text(run(&target, mode)?.to_json().to_string()))
}
