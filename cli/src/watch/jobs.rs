//! The jobs `vigil watch` runs on a database, each on a connection of its own (opened with --busy-timeout, its
//! SQL interrupted by a signal), and the lanes that keep long jobs from delaying cheap checks and pit ticks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use crate::metrics::{self, DbReport, Depth, Options, Target};
use crate::{extension, Global};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Job {
    /// The cheap checks (vigil_metrics without integrity): flat cost whatever the size.
    Check,
    Quick,
    Full,
    Snapshot,
    Backup,
    Maintain,
    Pit,
}

/// At most one job per database per lane runs at a time; each lane has workers of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    Check,
    Pit,
    Long,
}

impl Job {
    pub const ALL: [Job; 7] = [Job::Check, Job::Pit, Job::Quick, Job::Full, Job::Snapshot, Job::Backup, Job::Maintain];

    pub fn name(self) -> &'static str {
        match self {
            Job::Check => "check",
            Job::Quick => "quick",
            Job::Full => "full",
            Job::Snapshot => "snapshot",
            Job::Backup => "backup",
            Job::Maintain => "maintain",
            Job::Pit => "pit_tick",
        }
    }

    pub fn lane(self) -> Lane {
        match self {
            Job::Check => Lane::Check,
            Job::Pit => Lane::Pit,
            _ => Lane::Long,
        }
    }
}

/// What the jobs need besides the database.
#[derive(Clone)]
pub struct Settings {
    pub global: Global,
    /// The cheap checks' options (thresholds, --backups); quick and full use them at their depth.
    pub options: Options,
    pub backup_dir: Option<PathBuf>,
    pub backup_options: Json,
    /// maintain()'s level (auto, light, standard, full).
    pub maintain_level: String,
}

#[derive(Debug)]
pub enum Outcome {
    /// A check (cheap, quick or full): its report feeds status, alerts and the textfile.
    Report(Box<DbReport>),
    /// Any other job: whether it succeeded, and a one-line summary.
    Done { ok: bool, summary: String },
}

/// Runs one job to its end (a signal interrupts its SQL).
pub fn run(job: Job, target: &Target, settings: &Settings) -> (Outcome, Duration) {
    let started = Instant::now();
    let outcome = match job {
        Job::Check => report(target, settings, Depth::Cheap),
        Job::Quick => report(target, settings, Depth::Quick),
        Job::Full => report(target, settings, Depth::Full),
        Job::Snapshot => done(snapshot(target, settings)),
        Job::Backup => done(backup(target, settings)),
        Job::Maintain => done(maintain(target, settings)),
        Job::Pit => done(pit_tick(target, settings)),
    };
    (outcome, started.elapsed())
}

fn report(target: &Target, settings: &Settings, depth: Depth) -> Outcome {
    let options = Options { depth, ..settings.options.clone() };
    Outcome::Report(Box::new(metrics::collect(&settings.global, target, &options)))
}

fn done(result: Result<String, String>) -> Outcome {
    match result {
        Ok(summary) => Outcome::Done { ok: true, summary },
        Err(summary) => Outcome::Done { ok: false, summary },
    }
}

/// Whether a report says pit_journal is enabled (vigil_metrics exports its window only then).
pub fn pit_enabled(report: &DbReport) -> bool {
    report.samples.iter().any(|s| s.metric == "vigil_pit_journal_rows")
}

fn call(
    target: &Target,
    settings: &Settings,
    writable: bool,
    sql: &str,
    params: Vec<rusqlite::types::Value>,
) -> Result<Json, String> {
    let failed = |f: crate::Failure| {
        let f = crate::sql::explained(f, Some(&target.path), settings.global.busy_timeout);
        crate::output::cut(&f.message.split_whitespace().collect::<Vec<_>>().join(" "), 300)
    };
    let conn = extension::open(&settings.global, &target.path, writable).map_err(failed)?;
    crate::sql::query_json(&conn, sql, rusqlite::params_from_iter(params)).map_err(failed)
}

fn snapshot(target: &Target, settings: &Settings) -> Result<String, String> {
    let out = call(target, settings, true, "SELECT health_snapshot()", vec![])?;
    Ok(format!("snapshot {} ({})", out["snapshot"]["id"], out["status"].as_str().unwrap_or("?")))
}

fn pit_tick(target: &Target, settings: &Settings) -> Result<String, String> {
    let out = call(target, settings, true, "SELECT pit_tick()", vec![])?;
    Ok(format!("seq {}", out["seq"]))
}

fn maintain(target: &Target, settings: &Settings) -> Result<String, String> {
    let options = json!({"busy_timeout_ms": settings.global.busy_timeout}).to_string();
    let params = vec![settings.maintain_level.clone().into(), options.into()];
    let out = call(target, settings, true, "SELECT maintain(?1, ?2)", params)?;
    let result = out["result"].as_str().unwrap_or("?").to_string();
    let summary = format!("level {} result {result}", out["level"].as_str().unwrap_or("?"));
    if result == "ok" || result == "warning" {
        Ok(summary)
    } else {
        Err(summary)
    }
}

fn backup(target: &Target, settings: &Settings) -> Result<String, String> {
    let Some(root) = &settings.backup_dir else { return Err("no --backup-dir".into()) };
    let dir = backup_subdir(root, &target.name)?;
    let dest = dir.to_str().ok_or("the backup directory's path is not UTF-8")?.to_string() + "/";
    let params = vec![dest.into(), settings.backup_options.to_string().into()];
    let out = call(target, settings, false, "SELECT backup_to(?1, ?2)", params)?;
    let deleted = out["retention"]["deleted"].as_array().map_or(0, Vec::len);
    Ok(format!("{} ({} bytes, retention deleted {deleted})", out["path"].as_str().unwrap_or("?"), out["bytes"]))
}

/// The subdirectory of --backup-dir for one database: one path component named from its label (`/` and `%`
/// percent-encoded, a leading `.` too, so `shop/app.db` → `shop%2Fapp.db` and no label can name `..`), created
/// 0700 without following a symlink planted at its name.
pub fn backup_subdir(root: &Path, label: &str) -> Result<PathBuf, String> {
    let dir = root.join(subdir_name(label));
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() => trusted(&dir, &meta).map(|_| dir),
        Ok(_) => Err(format!("{} is not a directory (a symlink or a file): remove it", dir.display())),
        Err(_) => {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            Ok(dir)
        }
    }
}

/// A backup subdirectory that already exists must be this user's and writable by no one else: another user could
/// swap or read the backups in it.
fn trusted(dir: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mode = meta.mode() & 0o7777;
    if meta.uid() != me || mode & 0o022 != 0 {
        return Err(format!(
            "{} is owned by uid {} with mode {mode:04o}; vigil writes backups only into a directory owned by its own \
             user (uid {me}) and writable by no one else: chown it and chmod 700 it, or move it away",
            dir.display(),
            meta.uid()
        ));
    }
    Ok(())
}

pub fn subdir_name(label: &str) -> String {
    metrics::backup_dir_name(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_label_gets_one_safe_directory_name() {
        assert_eq!(subdir_name("app.db"), "app.db");
        assert_eq!(subdir_name("shop/app.db"), "shop%2Fapp.db");
        assert_eq!(subdir_name("50%/x"), "50%25%2Fx");
        assert_eq!(subdir_name(".."), "%2E.");
        assert_ne!(subdir_name("a/b"), subdir_name("a%2Fb"));
    }

    #[test]
    fn a_symlink_planted_at_a_backup_directory_is_refused() {
        let root = std::env::temp_dir().join(format!("vigil-subdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere"), root.join("evil.db")).unwrap();
        let error = backup_subdir(&root, "evil.db").unwrap_err();
        assert!(error.contains("not a directory"), "{error}");
        let made = backup_subdir(&root, "shop/app.db").unwrap();
        assert_eq!(made, root.join("shop%2Fapp.db"));
        assert!(std::fs::symlink_metadata(&made).unwrap().is_dir());
        assert_eq!(backup_subdir(&root, "shop/app.db").unwrap(), made);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_backup_directory_writable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("vigil-subdir-mode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("open.db")).unwrap();
        std::fs::set_permissions(root.join("open.db"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = backup_subdir(&root, "open.db").unwrap_err();
        assert!(error.contains("mode 0777") && error.contains("chmod 700"), "{error}");
        std::fs::set_permissions(root.join("open.db"), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(backup_subdir(&root, "open.db").unwrap(), root.join("open.db"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
