//! backup_restore: a verified backup back into a live database (through SQLite's backup API, atomic and
//! safe with other connections open) or into a new file. What it replaces is backed up first.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::dir::{io_error, parent_of, sync_dir, sync_file, TempFile};
use super::options::{BackupOptions, Verify};
use super::verify::{self, Step};
use super::{retention, snapshot};
use crate::args::path_arg;
use crate::error::{Error, Result};
use crate::maintenance::{elapsed_ms, Target};
use crate::sqlite::{open_flags, Backup, BackupProgress, Db, OwnedDb, Value};

const RESTORE_KEYS: &[&str] = &["schema", "verify", "busy_timeout_ms", "bare"];

/// `backup_restore(path [, target [, options]])`.
pub fn backup_restore(db: Db, args: &[Value]) -> Result<Value> {
    let path = Path::new(path_arg(args, 0, "the backup path").map_err(|e| e.context("bad arguments"))?);
    let target = match args.get(1) {
        None | Some(Value::Null) => None,
        Some(_) => {
            Some(PathBuf::from(path_arg(args, 1, "the restore target").map_err(|e| e.context("bad arguments"))?))
        }
    };
    let options = BackupOptions::parse_over(super::drill_defaults(), args.get(2), RESTORE_KEYS)
        .map_err(|e| e.context("bad options"))?;
    let result = restore(db, path, target.as_deref(), &options)?;
    Ok(Value::Text(result.to_string()))
}

fn restore(db: Db, path: &Path, target: Option<&Path>, options: &BackupOptions) -> Result<Json> {
    let started = Instant::now();
    let backup = verify::Backup::open(path, options.bare)?;
    let artifact = &backup.artifact;
    let _reading = retention::hold(artifact);
    let target_path = match target {
        Some(t) => t.to_path_buf(),
        None => PathBuf::from(db.filename(&options.schema)?.ok_or_else(|| {
            Error::new("the calling database is in-memory or temporary: name a target file to restore into")
        })?),
    };
    super::dir::check_restore_target(&target_path, artifact)?;
    let scratch = parent_of(&target_path);
    let drill = verify::drill_backup(&backup, options.verify, &scratch)?;
    let mut steps: Vec<Json> = drill.steps.iter().map(Step::to_json).collect();
    let Some(database) = drill.database.clone().filter(|_| drill.ok()) else {
        return Err(Error::new(format!(
            "{} failed verification, nothing was restored: {}",
            artifact.display(),
            drill.problem().unwrap_or_default()
        )));
    };
    // A journaled database replaced in place starts a new point-in-time lineage (its journal now ends
    // where the backup's did); failing to record it is reported like a failed check.
    let mut lineage_problem = None;
    let (step, safety_backup) = match target {
        None => {
            let live = Target::open(db, &options.schema, options.busy_timeout_ms)?;
            let done = replace(live.db(), &target_path, &database, options).map_err(|e| live.explain(e))?;
            lineage_problem = fork_lineage(live.db(), &done.1);
            done
        }
        Some(_) if target_path.exists() => {
            let open = OwnedDb::open(&target_path.to_string_lossy(), open_flags::READ_WRITE, None)?;
            open.db().set_busy_timeout(options.busy_timeout_ms)?;
            let done = replace(open.db(), &target_path, &database, options)?;
            lineage_problem = fork_lineage(open.db(), &done.1);
            done
        }
        Some(_) => (into_new_file(&database, &target_path)?, Json::Null),
    };
    steps.push(step.to_json());
    // The restore is published: from here on a failure is the check's, and the result says so.
    let check = Instant::now();
    let new_file = safety_backup.is_null();
    let checked =
        verify_restored(&target_path, drill.page_count.unwrap_or_default(), new_file, options.busy_timeout_ms);
    let problem = checked.as_ref().err().cloned().or(lineage_problem);
    let detail = checked.unwrap_or_else(|e| e);
    steps.push(Step { name: "check", ok: problem.is_none(), detail, duration_ms: elapsed_ms(check) }.to_json());
    Ok(json!({
        "restored_from": artifact.to_string_lossy(),
        "id": backup.id(),
        "bare": backup.manifest.is_none(),
        "target": target_path.to_string_lossy(),
        "ok": problem.is_none(),
        "restored": true,
        "check_problem": problem,
        "safety_backup": safety_backup,
        "steps": steps,
        "duration_ms": elapsed_ms(started),
    }))
}

/// Replaces the content of an existing database (`live`, a connection of vigil's own to `path`) with the
/// verified `database`, keeping what it replaces. SQLite's backup API first takes the target's write lock
/// (copying nothing), the safety backup is taken under that lock, then the copy and its commit follow in the
/// same transaction: no commit of another connection can fall between the safety backup and the restore, so
/// each one is in the safety backup or lands on the restored database. Returns the step and the safety
/// backup's {path, sha256}.
pub(crate) fn replace(live: Db, path: &Path, database: &Path, options: &BackupOptions) -> Result<(Step, Json)> {
    let started = Instant::now();
    // Everything about the target is learned before the backup starts: from then on only the backup may use
    // the target's connection.
    let origin =
        snapshot::Origin::open(live, "main", options.busy_timeout_ms).and_then(snapshot::Origin::held).map_err(
            |e| e.context(format!("the restore did not start: cannot open {} to keep a copy of it", path.display())),
        )?;
    let source = verify::open_immutable(database)?;
    let source_db = source.db();
    let mut backup = Backup::new(&live, "main", &source_db, "main")?;
    lock_target(&mut backup, path, options.busy_timeout_ms)?;
    let locked = Instant::now();
    let busy = options.busy_timeout_ms;
    let safety_backup = super::safety_backup_from(live, "main", origin, path, "restore", Verify::Quick, busy)
        .map_err(|e| e.context("the restore did not start: the safety backup of the current database failed"))?;
    let done = backup.step(-1).and_then(|progress| match progress {
        BackupProgress::Done => Ok(()),
        _ => Err(Error::new("the copy into the target did not finish in one step")),
    });
    drop(backup);
    let kept = safety_backup["path"].as_str().unwrap_or_default().to_string();
    done.map_err(|e| e.context(format!("the target is unchanged; its current state is also in {kept}")))?;
    let detail = format!("backup API, one transaction; other writers waited {:.0} ms", elapsed_ms(locked));
    Ok((Step { name: "restore", ok: true, detail, duration_ms: elapsed_ms(started) }, safety_backup))
}

fn fork_lineage(db: Db, safety_backup: &Json) -> Option<String> {
    crate::store::pit::fork_after_backup_restore(db, safety_backup["path"].as_str())
        .err()
        .map(|e| format!("the point-in-time journal could not start a new lineage: {e}"))
}

/// Takes the target's write lock through the backup (a step that copies no page), waiting for other
/// connections at most `busy_timeout_ms`.
fn lock_target(backup: &mut Backup, path: &Path, busy_timeout_ms: i32) -> Result<()> {
    let deadline = Instant::now() + Duration::from_millis(busy_timeout_ms.max(0) as u64);
    loop {
        match backup.step(0)? {
            BackupProgress::Busy if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            BackupProgress::Busy => {
                let message = format!(
                    "the restore did not start: another connection kept {} locked for the whole busy timeout ({} \
                     ms); retry when it is idle, or raise busy_timeout_ms",
                    path.display(),
                    busy_timeout_ms
                );
                return Err(Error::with_code(message, 5));
            }
            BackupProgress::More { .. } | BackupProgress::Done => return Ok(()),
        }
    }
}

/// Copies the verified database to a new file: temporary name, fsync, rename without replacing, fsync.
fn into_new_file(database: &Path, target: &Path) -> Result<Step> {
    let started = Instant::now();
    let dir = parent_of(target);
    if !dir.is_dir() {
        return Err(Error::new(format!("directory {} does not exist; create it first", dir.display())));
    }
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (temp, mut file) = TempFile::create(&dir, &name, super::dir::Perms::of(database))?;
    let mut input = File::open(database).map_err(|e| io_error("cannot read", database, e))?;
    std::io::copy(&mut input, &mut file).map_err(|e| io_error("cannot write", &temp.path, e))?;
    sync_file(&file, &temp.path)?;
    temp.publish(target, false)?;
    sync_dir(&dir)?;
    Ok(Step { name: "restore", ok: true, detail: "copied into a new file".into(), duration_ms: elapsed_ms(started) })
}

/// quick_check of the restored database through a fresh connection, and its page count: the backup's for a
/// new file; an existing database may have been written by other connections since the restore.
fn verify_restored(
    target: &Path,
    expected_pages: u32,
    new_file: bool,
    busy_timeout_ms: i32,
) -> std::result::Result<String, String> {
    let could_not = |e: Error| format!("could not run: {e}");
    let db = OwnedDb::open(&target.to_string_lossy(), open_flags::READ_ONLY, None).map_err(could_not)?;
    db.db().set_busy_timeout(busy_timeout_ms).map_err(could_not)?;
    let check = db.db().query_value("PRAGMA quick_check", &[]).map_err(could_not)?;
    let pages = db.db().query_value("PRAGMA page_count", &[]).map_err(could_not)?.as_i64().unwrap_or(0);
    match check.as_str() {
        Some("ok") if pages == i64::from(expected_pages) => Ok(format!("quick_check ok, {pages} pages")),
        Some("ok") if !new_file => {
            Ok(format!("quick_check ok, {pages} pages now (the backup has {expected_pages}: written since)"))
        }
        Some("ok") => Err(format!("quick_check ok but {pages} pages, the backup has {expected_pages}")),
        Some(other) => Err(format!("quick_check: {other}")),
        None => Err("quick_check returned nothing".into()),
    }
}
