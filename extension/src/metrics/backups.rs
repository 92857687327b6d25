//! The newest verified backup: from the manifests of a backup directory (option `backups`), through the backup
//! capability's listing, or else from the database's own backup log.

use std::path::Path;

use super::{timestamp, Options, Row};
use crate::backup::manifest::{self, Manifest};
use crate::error::Result;
use crate::sqlite::Db;
use crate::store::backup_log;

const SUCCESS_HELP: &str = "When the newest verified backup whose file exists was made (0: none)";
const SIZE_HELP: &str = "Size of the newest verified backup's file (compressed size when compressed)";
const DURATION_HELP: &str = "How long the newest verified backup took";
const FILES_HELP: &str = "Backups of this database in the backup directory (with a manifest)";
const MISSING_HELP: &str = "Backups in the backup directory whose manifest remains but whose file is missing";

/// The facts exported of one backup.
struct Newest {
    created_at: String,
    bytes: u64,
    duration_ms: f64,
}

pub fn rows(db: Db, options: &Options) -> Result<Vec<Row>> {
    let schema = &options.health.schema;
    let (newest, mut rows) = match &options.backups {
        Some(dir) => from_directory(db, schema, Path::new(dir))?,
        None => (from_log(db, schema)?, Vec::new()),
    };
    // 0 when there is none: "never" reads as infinitely old, so the backup-age alert fires.
    let at = newest.as_ref().and_then(|b| timestamp(&b.created_at)).unwrap_or(0.0);
    rows.push(Row::gauge("vigil_backup_last_success_timestamp_seconds", SUCCESS_HELP, at));
    if let Some(b) = newest {
        rows.push(Row::gauge("vigil_backup_last_size_bytes", SIZE_HELP, b.bytes as f64));
        rows.push(Row::gauge(
            "vigil_backup_last_duration_seconds",
            DURATION_HELP,
            super::millionths(b.duration_ms / 1000.0),
        ));
    }
    Ok(rows)
}

fn from_log(db: Db, schema: &str) -> Result<Option<Newest>> {
    let recorded = backup_log::verified(db, schema, 100)?;
    Ok(recorded.into_iter().find(|r| Path::new(&r.path).exists()).map(|r| Newest {
        created_at: r.created_at,
        bytes: r.bytes,
        duration_ms: r.duration_ms,
    }))
}

/// The manifests in `dir` whose source is this database file (a directory may hold backups of several).
fn from_directory(db: Db, schema: &str, dir: &Path) -> Result<(Option<Newest>, Vec<Row>)> {
    if !dir.is_dir() {
        return Err(crate::error::Error::new(format!(
            "option \"backups\": {} is not a directory; name the directory backup_to writes into",
            dir.display()
        )));
    }
    let listing = manifest::list(dir)?;
    let source = db.filename(schema)?.filter(|p| !p.is_empty());
    let ours: Vec<&(Manifest, std::path::PathBuf)> =
        listing.backups.iter().filter(|(m, _)| same_source(m, source.as_deref())).collect();
    let present = |artifact: &Path| crate::backup::dir::regular_metadata(artifact).is_ok();
    let missing = ours.iter().filter(|(_, artifact)| !present(artifact)).count();
    let newest = ours.iter().rev().find(|(m, artifact)| m.is_verified() && present(artifact)).map(|(m, _)| Newest {
        created_at: m.created_at.clone(),
        bytes: m.bytes,
        duration_ms: m.duration_ms,
    });
    let rows = vec![
        Row::gauge("vigil_backup_files", FILES_HELP, ours.len() as f64),
        Row::gauge("vigil_backup_missing_files", MISSING_HELP, missing as f64),
    ];
    Ok((newest, rows))
}

/// Whether a manifest's source is this database: the same file (after resolving links), else the same path.
fn same_source(manifest: &Manifest, database: Option<&str>) -> bool {
    let (Some(recorded), Some(database)) = (manifest.source.path.as_deref(), database) else { return false };
    match (std::fs::canonicalize(recorded), std::fs::canonicalize(database)) {
        (Ok(a), Ok(b)) => a == b,
        _ => recorded == database,
    }
}
