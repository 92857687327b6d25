//! backup_restore: a verified backup back into a live database (through SQLite's backup API, atomic and
//! safe with other connections open) or into a new file. What it replaces is backed up first.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::artifact::{io_error, parent_of, sync_dir, sync_file, TempFile};
use super::manifest;
use super::options::{BackupOptions, Verify};
use super::verify::{self, Step};
use super::{path_arg, retention};
use crate::error::{Error, Result};
use crate::maintenance::{elapsed_ms, Target};
use crate::sqlite::{open_flags, Backup, BackupProgress, Db, OwnedDb, Value};

const RESTORE_KEYS: &[&str] = &["schema", "verify", "busy_timeout_ms"];

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
    let (manifest, artifact) = manifest::read(path)?;
    let _reading = retention::hold(&artifact);
    let target_path = match target {
        Some(t) => t.to_path_buf(),
        None => PathBuf::from(db.filename(&options.schema)?.ok_or_else(|| {
            Error::new("the calling database is in-memory or temporary: name a target file to restore into")
        })?),
    };
    let scratch = parent_of(&target_path);
    let drill = verify::drill(&artifact, &manifest, options.verify, &scratch)?;
    let mut steps: Vec<Json> = drill.steps.iter().map(Step::to_json).collect();
    let Some(database) = drill.database.clone().filter(|_| drill.ok()) else {
        return Err(Error::new(format!(
            "{} failed verification, nothing was restored: {}",
            artifact.display(),
            drill.problem().unwrap_or_default()
        )));
    };
    let mut safety_backup = Json::Null;
    let replaced = match target {
        None => {
            let live = Target::open(db, &options.schema, options.busy_timeout_ms)?;
            safety_backup = keep_current(live.db(), &target_path, options)?;
            into_live(&live.db(), &database, options.busy_timeout_ms).map_err(|e| live.explain(e))
        }
        Some(_) if target_path.exists() => {
            let open = OwnedDb::open(&target_path.to_string_lossy(), open_flags::READ_WRITE, None)?;
            open.db().set_busy_timeout(options.busy_timeout_ms)?;
            safety_backup = keep_current(open.db(), &target_path, options)?;
            into_live(&open.db(), &database, options.busy_timeout_ms)
        }
        Some(_) => into_new_file(&database, &target_path),
    };
    let step = replaced.map_err(|e| match &safety_backup {
        Json::Object(b) => e.context(format!("the target is unchanged; its state before is also in {}", b["path"])),
        _ => e,
    })?;
    steps.push(step.to_json());
    let check = Instant::now();
    let checked = verify_restored(&target_path, manifest.source.page_count);
    let ok = checked.is_ok();
    steps.push(
        Step { name: "check", ok, detail: checked.unwrap_or_else(|e| e), duration_ms: elapsed_ms(check) }.to_json(),
    );
    Ok(json!({
        "restored_from": artifact.to_string_lossy(),
        "id": manifest.id,
        "target": target_path.to_string_lossy(),
        "ok": ok,
        "safety_backup": safety_backup,
        "steps": steps,
        "duration_ms": elapsed_ms(started),
    }))
}

/// Backs up what a restore is about to replace, beside it, verified.
fn keep_current(db: Db, target: &Path, options: &BackupOptions) -> Result<Json> {
    super::safety_backup(db, "main", target, "restore", Verify::Quick, options.busy_timeout_ms)
        .map_err(|e| e.context("the restore did not start: the safety backup of the current database failed"))
}

/// Copies the verified database into an open database in one backup step: a single write transaction.
fn into_live(target: &Db, database: &Path, busy_timeout_ms: i32) -> Result<Step> {
    let started = Instant::now();
    let source = verify::open_immutable(database)?;
    let deadline = started + Duration::from_millis(busy_timeout_ms as u64);
    let source_db = source.db();
    let mut backup = Backup::new(target, "main", &source_db, "main")?;
    loop {
        match backup.step(-1)? {
            BackupProgress::Done => break,
            BackupProgress::More { .. } if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            BackupProgress::More { .. } => {
                return Err(Error::with_code("the target database stayed locked", 5));
            }
        }
    }
    drop(backup);
    Ok(Step { name: "restore", ok: true, detail: "backup API, one step".into(), duration_ms: elapsed_ms(started) })
}

/// Copies the verified database to a new file: temporary name, fsync, rename without replacing, fsync.
fn into_new_file(database: &Path, target: &Path) -> Result<Step> {
    let started = Instant::now();
    let dir = parent_of(target);
    if !dir.is_dir() {
        return Err(Error::new(format!("directory {} does not exist; create it first", dir.display())));
    }
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (temp, mut file) = TempFile::create(&dir, &name)?;
    let mut input = File::open(database).map_err(|e| io_error("cannot read", database, e))?;
    std::io::copy(&mut input, &mut file).map_err(|e| io_error("cannot write", &temp.path, e))?;
    sync_file(&file, &temp.path)?;
    temp.publish(target, false)?;
    sync_dir(&dir)?;
    Ok(Step { name: "restore", ok: true, detail: "copied into a new file".into(), duration_ms: elapsed_ms(started) })
}

/// quick_check of the restored database, through a fresh connection, and its page count.
fn verify_restored(target: &Path, expected_pages: u32) -> std::result::Result<String, String> {
    let db = OwnedDb::open(&target.to_string_lossy(), open_flags::READ_ONLY, None).map_err(|e| e.to_string())?;
    let check = db.db().query_value("PRAGMA quick_check", &[]).map_err(|e| e.to_string())?;
    let pages = db.db().query_value("PRAGMA page_count", &[]).map_err(|e| e.to_string())?;
    match (check.as_str(), pages.as_i64()) {
        (Some("ok"), Some(p)) if p == i64::from(expected_pages) => Ok(format!("quick_check ok, {p} pages")),
        (Some("ok"), p) => Err(format!("quick_check ok but {p:?} pages, the backup has {expected_pages}")),
        (other, _) => Err(format!("quick_check: {other:?}")),
    }
}
