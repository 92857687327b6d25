//! `pit_prune([options])`: retention of the journal that never breaks a restore inside the window it
//! advertises. Journal rows go only below the cut of a checkpoint (a `backup_to` backup of this database whose
//! manifest records its journal position) that is of the same lineage, was verified when taken, has its
//! SHA-256 and journal position checked again now, and is older than the keep period. The window then starts
//! exactly at that checkpoint's state: an older instant is restored from the checkpoint, which holds the
//! journal up to its cut. The checkpoint's manifest is held (the shared lock `backup_restore` and
//! `backup_verify` take) from its check until the horizon has moved, so backup retention cannot delete it
//! meanwhile; once the horizon is at its cut, backup retention keeps it (`retention::window_anchor`).

use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};

use super::cut::rfc3339;
use crate::args::{boolean, integer, object_arg, string};
use crate::backup::manifest::{self, Manifest};
use crate::backup::options::Verify;
use crate::backup::{retention, verify};
use crate::error::{Error, Result};
use crate::maintenance::Target;
use crate::sqlite::{Db, Value};
use crate::store::pit::{self as store, LOG, TABLES};

const DEFAULT_KEEP: &str = "7 days";

struct Options {
    /// The keep period in seconds, and as the user wrote it.
    keep_seconds: f64,
    keep: String,
    dir: Option<PathBuf>,
    dry_run: bool,
    busy_timeout_ms: i32,
}

fn options(arg: Option<&Value>) -> Result<Options> {
    let example = "{\"keep\": \"7 days\", \"dir\": \"/backups/app\"}";
    let mut options = Options {
        keep_seconds: parse_keep(DEFAULT_KEEP)?,
        keep: DEFAULT_KEEP.into(),
        dir: None,
        dry_run: false,
        busy_timeout_ms: 5000,
    };
    let Some(map) = object_arg(arg, example, &["keep", "keep_days", "dir", "dry_run", "busy_timeout_ms"])? else {
        return Ok(options);
    };
    if map.contains_key("keep") && map.contains_key("keep_days") {
        return Err(Error::new("give \"keep\" or \"keep_days\", not both"));
    }
    if let Some(value) = map.get("keep") {
        options.keep = string("keep", value)?.to_string();
        options.keep_seconds = parse_keep(&options.keep)?;
    }
    if let Some(value) = map.get("keep_days") {
        let days = value.as_f64().filter(|d| d.is_finite() && (0.0..=36_500.0).contains(d));
        let days = days.ok_or_else(|| {
            Error::new(format!("option \"keep_days\" must be a number of days from 0 to 36500, not {value}"))
        })?;
        options.keep_seconds = days * 86_400.0;
        options.keep = format!("{days} days");
    }
    if let Some(value) = map.get("dir") {
        let text = string("dir", value)?;
        if text.trim().is_empty() {
            return Err(Error::new("option \"dir\" is empty: name the directory holding the checkpoints"));
        }
        options.dir = Some(crate::backup::dir::utf8_path(text, "the checkpoint directory")?.to_path_buf());
    }
    if let Some(value) = map.get("dry_run") {
        options.dry_run = boolean("dry_run", value)?;
    }
    if let Some(value) = map.get("busy_timeout_ms") {
        options.busy_timeout_ms = integer("busy_timeout_ms", value, 0, 3_600_000)? as i32;
    }
    Ok(options)
}

/// A keep period: a number and a unit, e.g. "7 days", "12 hours", "30 minutes", "0 seconds".
fn parse_keep(text: &str) -> Result<f64> {
    let bad = || {
        Error::new(format!(
            "option \"keep\" must be a period like \"7 days\", \"12 hours\" or \"30 minutes\", not {}",
            crate::error::quoted(text)
        ))
    };
    let mut words = text.split_whitespace();
    let (Some(number), Some(unit), None) = (words.next(), words.next(), words.next()) else { return Err(bad()) };
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim_end_matches('s') {
        "second" => 1.0,
        "minute" => 60.0,
        "hour" => 3_600.0,
        "day" => 86_400.0,
        "week" => 604_800.0,
        _ => return Err(bad()),
    };
    match number * seconds {
        s if s.is_finite() && (0.0..=100.0 * 365.0 * 86_400.0).contains(&s) => Ok(s),
        _ => Err(bad()),
    }
}

/// `pit_prune([options])`.
pub fn pit_prune(db: Db, args: &[Value]) -> Result<Value> {
    let options = options(args.first()).map_err(|e| e.context("bad options"))?;
    if !store::exists(db)? {
        return Err(Error::new("this database has no journal: nothing to prune (pit_enable starts one)"));
    }
    let target = Target::open(db, "main", options.busy_timeout_ms)?;
    super::install_txn_override(target.db());
    super::tracking::sync(target.db()).map_err(|e| target.explain(e))?;
    let result = prune(target.db(), &options).map_err(|e| target.explain(e))?;
    Ok(Value::Text(result.to_string()))
}

/// What the live journal says about itself, for choosing a checkpoint.
struct Live {
    lineage: String,
    horizon_seq: i64,
    last_seq: i64,
    /// Journal rows older than this (Julian day) may go: now less the keep period.
    keep_after: f64,
}

impl Live {
    fn read(db: Db, options: &Options) -> Result<Live> {
        let keep_days = options.keep_seconds / 86_400.0;
        Ok(Live {
            lineage: store::meta(db, "lineage")?.as_str().unwrap_or_default().to_string(),
            horizon_seq: super::window::start(db)?.0,
            last_seq: store::last_seq(db)?,
            keep_after: db.query_value("SELECT julianday('now') - ?1", &[keep_days.into()])?.as_f64().unwrap_or(0.0),
        })
    }
}

fn prune(db: Db, options: &Options) -> Result<Json> {
    let live = Live::read(db, options)?;
    let mut result = json!({
        "pruned_rows": 0,
        "dry_run": options.dry_run,
        "keep": options.keep,
        "keep_after": rfc3339(db, live.keep_after),
        "checkpoint": null,
        "window": {"before": window(db)?},
        "considered": [],
    });
    let Some(dir) = &options.dir else {
        return nothing(db, result, "no checkpoint directory given (option \"dir\")", None);
    };
    if !dir.is_dir() {
        return Err(Error::new(format!("{} is not a directory (option \"dir\")", dir.display())));
    }
    let listing = manifest::list(dir)?;
    let (eligible, mut considered) = eligible(db, &live, &listing.backups)?;
    let chosen = first_checked(eligible, dir, &mut considered)?;
    result["considered"] = Json::Array(considered);
    let Some((m, artifact, hold)) = chosen else {
        let reason = if listing.backups.iter().any(|(m, _)| m.pit.is_some()) {
            "no checkpoint in the directory can be used (see \"considered\")"
        } else {
            "no checkpoint in the directory: none of its backups is of a journaled database"
        };
        return nothing(db, result, reason, Some(dir));
    };
    let pruned = move_horizon(db, m, artifact, options.dry_run)?;
    drop(hold);
    result["checkpoint"] = checkpoint_json(m, artifact);
    if options.dry_run {
        result["would_prune_rows"] = json!(pruned);
        result["would_move_horizon_to"] = json!({"seq": m.pit.as_ref().map(|p| p.cut_seq)});
    } else {
        result["pruned_rows"] = json!(pruned);
    }
    result["horizon"] = window(db)?;
    result["window"]["after"] = result["horizon"].clone();
    Ok(result)
}

/// The first eligible checkpoint that passes its check now, with its manifest held: until the horizon has
/// moved, retention cannot delete it (it skips held manifests). Those that fail go to `considered`.
fn first_checked<'a>(
    eligible: Vec<Found<'a>>,
    dir: &Path,
    considered: &mut Vec<Json>,
) -> Result<Option<(&'a Manifest, &'a PathBuf, retention::Hold)>> {
    for (m, artifact) in eligible {
        let Some(hold) = retention::hold(artifact) else {
            considered.push(rejected(artifact, "its manifest is gone or locked by a retention run deleting it"));
            continue;
        };
        match verify::drill(artifact, m, Verify::None, dir)?.problem() {
            Some(problem) => considered.push(rejected(artifact, &format!("failed its check: {problem}"))),
            None => return Ok(Some((m, artifact, hold))),
        }
    }
    Ok(None)
}

/// The result when nothing can be pruned: why, and what to do.
fn nothing(db: Db, mut result: Json, reason: &str, dir: Option<&Path>) -> Result<Json> {
    let dir = dir.map_or("/path/to/backups".into(), |d| d.display().to_string().replace('\'', "''"));
    result["reason"] = json!(reason);
    result["hint"] = json!(format!(
        "journal rows go only below the cut of a verified checkpoint of this database (any backup_to backup of \
         it): take one with SELECT backup_to('{dir}') and call pit_prune('{{\"dir\": \"{dir}\"}}') once it \
         is older than keep"
    ));
    result["horizon"] = window(db)?;
    result["window"]["after"] = result["horizon"].clone();
    Ok(result)
}

/// The window's start: {seq, at}.
fn window(db: Db) -> Result<Json> {
    let (seq, at) = super::window::start(db)?;
    Ok(json!({"seq": seq, "at": rfc3339(db, at)}))
}

fn rejected(artifact: &Path, reason: &str) -> Json {
    json!({"path": artifact.to_string_lossy(), "reason": reason})
}

fn checkpoint_json(m: &Manifest, artifact: &Path) -> Json {
    let path = std::fs::canonicalize(artifact).unwrap_or_else(|_| artifact.to_path_buf());
    let pit = m.pit.as_ref();
    json!({"id": m.id, "path": path.to_string_lossy(), "created_at": m.created_at,
           "cut_seq": pit.map(|p| p.cut_seq), "cut_at": pit.and_then(|p| p.cut_at.clone()),
           "checked": "sha256 and journal position checked again against its manifest"})
}

type Found<'a> = (&'a Manifest, &'a PathBuf);

/// The checkpoints that may carry the window's start, newest cut first, and why the others may not.
fn eligible<'a>(db: Db, live: &Live, backups: &'a [(Manifest, PathBuf)]) -> Result<(Vec<Found<'a>>, Vec<Json>)> {
    let (mut usable, mut considered) = (Vec::new(), Vec::new());
    for (m, artifact) in backups {
        let Some(pit) = &m.pit else { continue };
        match unusable(db, live, m, pit)? {
            Some(reason) => considered.push(rejected(artifact, &reason)),
            None => usable.push((m, artifact)),
        }
    }
    usable.sort_by_key(|(m, _)| std::cmp::Reverse(m.pit.as_ref().map_or(0, |p| p.cut_seq)));
    Ok((usable, considered))
}

/// Why a checkpoint cannot carry the window's start, `None` when it can.
fn unusable(db: Db, live: &Live, m: &Manifest, pit: &manifest::Position) -> Result<Option<String>> {
    if let Some(reason) = other_history(db, live, pit)? {
        return Ok(Some(reason));
    }
    if !m.is_verified() {
        return Ok(Some(format!("not verified when taken (verification: {})", m.verification.result)));
    }
    if pit.cut_seq <= live.horizon_seq {
        return Ok(Some(format!(
            "its cut (seq {}) is not after the window's start (seq {}): no journal row below it is left",
            pit.cut_seq, live.horizon_seq
        )));
    }
    if pit.horizon_seq > live.horizon_seq {
        return Ok(Some(format!(
            "its own journal starts at seq {}, after the window's start (seq {}): it does not hold the rows between",
            pit.horizon_seq, live.horizon_seq
        )));
    }
    if let Some(reason) = rebuild_needs_rows_below(db, pit.cut_seq)? {
        return Ok(Some(reason));
    }
    let at = db.query_value(&format!("SELECT at FROM main.{LOG} WHERE seq = ?1"), &[pit.cut_seq.into()])?;
    if at.as_f64().unwrap_or(f64::MAX) >= live.keep_after {
        return Ok(Some(format!(
            "its cut ({}) is within the keep period: rows after {} stay",
            pit.cut_at.as_deref().unwrap_or("?"),
            rfc3339(db, live.keep_after)
        )));
    }
    Ok(None)
}

/// Why a checkpoint is not a state of this journal's history: another lineage (an in-place restore forked
/// it), or its recorded last row is not this journal's row of that seq (a copy of the database that went its
/// own way, or a history an in-place backup_restore replaced, whose seqs were given again).
fn other_history(db: Db, live: &Live, pit: &manifest::Position) -> Result<Option<String>> {
    if pit.lineage != live.lineage {
        return Ok(Some(format!(
            "another lineage ({}; this database's is {}): taken before an in-place restore forked the history, \
             or of another database",
            pit.lineage, live.lineage
        )));
    }
    if pit.cut_seq > live.last_seq {
        return Ok(Some(format!(
            "its cut (seq {}) is past the journal's end (seq {}): not this database's history",
            pit.cut_seq, live.last_seq
        )));
    }
    let sql = format!("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', at) FROM main.{LOG} WHERE seq = ?1");
    let cut_at = db.query_value(&sql, &[pit.cut_seq.into()])?;
    if cut_at.as_str() != pit.cut_at.as_deref() {
        return Ok(Some(format!(
            "the journal's row seq {} is not the one it recorded: another history (a copy of this database that \
             went its own way, or one an in-place backup_restore replaced)",
            pit.cut_seq
        )));
    }
    Ok(None)
}

/// A table dropped (no longer journaled) after `cut` whose journal reaches back to its birth: a restore
/// before its drop rebuilds it from every row since then (pit_restore's schema_back), so those rows stay.
fn rebuild_needs_rows_below(db: Db, cut: i64) -> Result<Option<String>> {
    let rows = db.query(
        &format!(
            "SELECT name, dropped FROM (
               SELECT name, min(epoch) AS epoch, max(last_seq) AS dropped, count(last_seq) = count(*) AS gone
               FROM main.{TABLES} GROUP BY name) AS life
             WHERE gone AND dropped >= ?1 AND EXISTS (SELECT 1 FROM main.{TABLES} AS birth
               WHERE birth.name = life.name AND birth.epoch = life.epoch AND complete = 1 AND first_seq < ?1)
             LIMIT 1"
        ),
        &[cut.into()],
    )?;
    Ok(rows.first().map(|r| {
        format!(
            "table {} was dropped at seq {} after the cut (seq {cut}), and a restore before that \
             rebuilds it from the journal rows since its creation, below the cut; a checkpoint taken after seq {} \
             can be used",
            crate::error::quoted(r[0].as_str().unwrap_or_default()),
            r[1].as_i64().unwrap_or(0),
            r[1].as_i64().unwrap_or(0)
        )
    }))
}

/// Drops the journal rows below the checkpoint's cut and starts the window there, in one transaction (a crash
/// leaves either the old window with every row or the new one). Returns the rows dropped (would drop, dry).
fn move_horizon(db: Db, m: &Manifest, artifact: &Path, dry_run: bool) -> Result<i64> {
    let cut = m.pit.as_ref().map_or(0, |p| p.cut_seq);
    let mut pruned = 0;
    crate::store::in_write_transaction(db, || {
        // Read again under the write lock: another pit_prune may have moved the horizon meanwhile, or a writer
        // dropped a table the rows below the cut may be needed to rebuild.
        if super::window::start(db)?.0 >= cut {
            return Ok(());
        }
        super::tracking::sync(db)?;
        if let Some(reason) = rebuild_needs_rows_below(db, cut)? {
            return Err(Error::new(format!("the schema changed while pit_prune ran: {reason}; nothing was pruned")));
        }
        let below = format!("FROM main.{LOG} WHERE seq < ?1");
        pruned = db.query_value(&format!("SELECT count(*) {below}"), &[cut.into()])?.as_i64().unwrap_or(0);
        if dry_run {
            return Ok(());
        }
        db.query(&format!("DELETE {below}"), &[cut.into()])?;
        let at = db.query_value(&format!("SELECT at FROM main.{LOG} WHERE seq = ?1"), &[cut.into()])?;
        store::set_meta(db, "horizon_seq", Value::Integer(cut))?;
        store::set_meta(db, "horizon_at", at)?;
        store::set_meta(db, "horizon_checkpoint", Value::from(checkpoint_json(m, artifact).to_string()))?;
        // Tables whose history began below the cut can no longer be rebuilt from the journal alone (a
        // restore across a later DROP TABLE of one says to restore from a backup taken before the drop).
        db.query(&format!("UPDATE main.{TABLES} SET complete = 0 WHERE first_seq < ?1"), &[cut.into()])?;
        Ok(())
    })?;
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_is_a_number_and_a_unit() {
        assert_eq!(parse_keep("7 days").unwrap(), 7.0 * 86_400.0);
        assert_eq!(parse_keep("1 day").unwrap(), 86_400.0);
        assert_eq!(parse_keep("1.5 hours").unwrap(), 5_400.0);
        assert_eq!(parse_keep("0 seconds").unwrap(), 0.0);
        assert_eq!(parse_keep(" 2  weeks ").unwrap(), 14.0 * 86_400.0);
        for bad in ["7", "days", "7 fortnights", "-1 days", "7 days ago", "", "NaN days", "1e300 days"] {
            assert!(parse_keep(bad).is_err(), "{bad}");
        }
    }
}
