//! `pit_restore(instant [, target [, options]])`: the database as it was at an instant, into a new file or in
//! place. The live database is copied (one read transaction, SQLite's backup API) beside the destination; the
//! copy, which carries its own journal, is brought back to the cut by net undo and checked; then it is
//! published like a backup restore: a new file by rename, or in place through `backup_restore`'s machinery,
//! which keeps the replaced state as a verified safety backup taken under the restore's write lock.

use std::path::{Path, PathBuf};
use std::time::Instant as Clock;

use serde_json::{json, Value as Json};

use super::cut::{self, Cut, Instant};
use super::{tracking, undo};
use crate::args::{integer, object_arg, string};
use crate::backup::dir::{self, parent_of, sync_dir, sync_file, TempFile};
use crate::backup::options::BackupOptions;
use crate::error::{Error, Result};
use crate::maintenance::{elapsed_ms, Target};
use crate::progress::Tracker;
use crate::sqlite::{open_flags, Backup, BackupProgress, Db, OwnedDb, Value};
use crate::store::pit as store;

struct Options {
    strict: bool,
    busy_timeout_ms: i32,
    /// A checkpoint (a vigil backup of the journaled database) to start from instead of the live database.
    base: Option<PathBuf>,
}

fn options(arg: Option<&Value>) -> Result<Options> {
    let mut options = Options { strict: false, busy_timeout_ms: 5000, base: None };
    let keys = ["consistency", "busy_timeout_ms", "base"];
    let Some(map) = object_arg(arg, "{\"consistency\": \"strict\"}", &keys)? else {
        return Ok(options);
    };
    if let Some(value) = map.get("consistency") {
        options.strict = match string("consistency", value)? {
            "strict" => true,
            "statement" => false,
            other => return Err(crate::args::bad_choice("consistency", other, "statement, strict")),
        };
    }
    if let Some(value) = map.get("base") {
        let path = string("base", value)?;
        crate::backup::dir::utf8_path(path, "option \"base\"")?;
        options.base = Some(PathBuf::from(path));
    }
    if let Some(value) = map.get("busy_timeout_ms") {
        options.busy_timeout_ms = integer("busy_timeout_ms", value, 0, 3_600_000)? as i32;
    }
    Ok(options)
}

/// `pit_restore(instant [, target [, options]])`.
pub fn pit_restore(db: Db, args: &[Value]) -> Result<Value> {
    let bad = |e: Error| e.context("bad arguments");
    let instant = cut::parse(db, args.first().unwrap_or(&Value::Null)).map_err(bad)?;
    let target = match args.get(1) {
        None | Some(Value::Null) => None,
        Some(_) => Some(PathBuf::from(crate::args::path_arg(args, 1, "the restore target").map_err(bad)?)),
    };
    let options = options(args.get(2)).map_err(|e| e.context("bad options"))?;
    if !store::exists(db)? {
        return Err(Error::new(
            "this database has no journal: run SELECT pit_enable('*') first; restores reach back to that moment",
        ));
    }
    let result = restore(db, &instant, target.as_deref(), &options)?;
    Ok(Value::Text(result.to_string()))
}

fn restore(db: Db, instant: &Instant, target: Option<&Path>, options: &Options) -> Result<Json> {
    let started = Clock::now();
    if let Some(t) = target {
        refuse_existing(t)?;
    }
    let live = Target::open(db, "main", options.busy_timeout_ms)?;
    super::install_txn_override(live.db());
    tracking::sync(live.db())?;
    let live_path = PathBuf::from(&live.path);
    let destination = target.map_or_else(|| live_path.clone(), Path::to_path_buf);
    let dir = parent_of(&destination);
    if !dir.is_dir() {
        return Err(Error::new(format!("directory {} does not exist; create it first", dir.display())));
    }
    let name = destination.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (temp, file) = TempFile::create(&dir, &name, dir::Perms::of(&live_path))?;
    dir::clear_sidecars(&temp.path);
    let size = std::fs::metadata(&live_path).map(|m| m.len()).unwrap_or(0);
    let mut steps = Vec::new();
    let mut step_started = Clock::now();
    let mut timed = |name: &str, started: &mut Clock| {
        steps.push(json!({"step": name, "duration_ms": elapsed_ms(*started)}));
        *started = Clock::now();
    };
    let progress = Tracker::start(format!("pit_restore {}: copy", destination.display()), size).for_caller(db);
    let base = match &options.base {
        None => {
            copy_live(live.db(), &temp.path)?;
            json!({"kind": "live database", "path": live_path.to_string_lossy()})
        }
        Some(path) => copy_checkpoint(path, &dir, &temp.path)?,
    };
    progress.advance(size, size)?;
    timed("copy", &mut step_started);
    let (cut, applied, lineage) = bring_back(&temp.path, instant, options.strict, &progress)?;
    timed("undo and check", &mut step_started);
    progress.phase(format!("pit_restore {}: publish", destination.display()), 0);
    sync_file(&file, &temp.path)?;
    drop(file);
    let (published, safety_backup) = match target {
        Some(_) => {
            temp.publish(&destination, false)?;
            sync_dir(&dir)?;
            (json!({"step": "renamed into place", "new_file": true}), Json::Null)
        }
        None => {
            let backup_options = BackupOptions { busy_timeout_ms: options.busy_timeout_ms, ..BackupOptions::default() };
            let (step, safety) = crate::backup::restore::replace(live.db(), &live_path, &temp.path, &backup_options)
                .map_err(|e| live.explain(e))?;
            // The replaced history ends now, and its last state is the safety backup: later refusals say where.
            super::window::fork_published(live.db(), safety["path"].as_str())?;
            (step.to_json(), safety)
        }
    };
    timed("publish", &mut step_started);
    let live_db = live.db();
    Ok(json!({
        "restored": true,
        "target": destination.to_string_lossy(),
        "instant": instant_json(instant),
        "cut": cut.to_json(live_db),
        "consistency": cut.consistency,
        "base": base,
        "rows_changed": applied.rows_changed,
        "journal_rows_undone": applied.journal_rows_undone,
        "tables": applied.tables,
        "schema": applied.schema_notes,
        "verified": {"quick_check": "ok", "rows_checked": applied.checked_rows,
                     "content_sha256": applied.content_sha256,
                     "check": "every row changed after the cut read back equal to its journaled image"},
        "lineage": lineage,
        "safety_backup": safety_backup,
        "published": published,
        "steps": steps,
        "duration_ms": elapsed_ms(started),
    }))
}

fn instant_json(instant: &Instant) -> Json {
    match instant {
        Instant::Time { text, .. } => json!({"time": text}),
        Instant::Seq(seq) => json!({"seq": seq}),
    }
}

fn refuse_existing(target: &Path) -> Result<()> {
    if target.symlink_metadata().is_ok() {
        return Err(Error::new(format!(
            "{} exists: pit_restore writes a new file and never replaces one; name a new path, or call \
             pit_restore(instant) without a target to restore this database in place",
            target.display()
        )));
    }
    Ok(())
}

/// Copies the live database into `copy` in one read transaction (the journal comes with it).
fn copy_live(live: Db, copy: &Path) -> Result<()> {
    copy_database(live, copy, "the live database")
}

/// Copies `source`'s main database into the file `copy` in one step of SQLite's backup API.
fn copy_database(source: Db, copy: &Path, what: &str) -> Result<()> {
    let dest = OwnedDb::open(&copy.to_string_lossy(), open_flags::READ_WRITE, None)?;
    let dest_db = dest.db();
    let mut backup = Backup::new(&dest_db, "main", &source, "main")?;
    match backup.step(-1)? {
        BackupProgress::Done => Ok(()),
        _ => Err(Error::new(format!("the copy of {what} did not finish in one step; retry when it is idle"))),
    }
}

/// Copies a checkpoint (a vigil backup, verified first as backup_restore does: size, SHA-256, decompression,
/// integrity) into `copy`: it carries the journal up to its own cut, so any instant of its window can be
/// reached from it, also one of a history an in-place restore replaced (its safety backup). The manifest is
/// held shared while it is read, so retention does not delete it meanwhile.
fn copy_checkpoint(path: &Path, scratch: &Path, copy: &Path) -> Result<Json> {
    use crate::backup::{options::Verify, retention, verify};
    let backup = verify::Backup::open(path, false).map_err(|e| e.context("option \"base\""))?;
    let _reading = retention::hold(&backup.artifact);
    let drill = verify::drill_backup(&backup, Verify::Full, scratch)?;
    let Some(database) = drill.database.clone().filter(|_| drill.ok()) else {
        return Err(Error::new(format!(
            "the checkpoint {} failed verification, nothing was restored: {}",
            backup.artifact.display(),
            drill.problem().unwrap_or_default()
        )));
    };
    let source = verify::open_immutable(&database)?;
    copy_database(source.db(), copy, "the checkpoint")?;
    Ok(json!({"kind": "checkpoint", "path": backup.artifact.to_string_lossy(), "id": backup.id()}))
}

/// Opens the copy, finds the cut, checks it is inside the window, and undoes everything after it.
fn bring_back(copy: &Path, instant: &Instant, strict: bool, progress: &Tracker) -> Result<(Cut, undo::Applied, Json)> {
    let opened = OwnedDb::open(&copy.to_string_lossy(), open_flags::READ_WRITE, None)?;
    let db = opened.db();
    super::window::check(db, instant)?;
    let cut = cut::locate(db, instant, strict)?;
    super::window::check_cut(db, &cut)?;
    let applied = undo::apply(db, cut.seq, progress)?;
    let lineage = super::window::fork(db, &cut)?;
    let check = db.query_value("PRAGMA quick_check", &[])?;
    if check.as_str() != Some("ok") {
        return Err(Error::new(format!(
            "the restored copy failed quick_check ({}); nothing was published",
            crate::error::describe(&check)
        )));
    }
    Ok((cut, applied, lineage))
}
