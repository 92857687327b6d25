//! Retention: which of a directory's backups of one database to keep (the last N, and/or the newest of
//! each of the last D days, W ISO weeks, M months), and deleting the rest. Only backups with a vigil
//! manifest are candidates; the newest verified one is always kept, and so is any backup a drill or restore
//! is reading (it holds a shared lock on the manifest). Manifests that name anything but a plain file in
//! their own directory are ignored and reported, never followed (dir.rs).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Utc};
use nix::fcntl::{Flock, FlockArg};
use serde_json::{json, Value as Json};

use super::dir::{open_regular_with, remove_own, sync_dir};
use super::manifest::{self, Manifest};
use super::options::Retention;
use crate::error::Result;
use crate::info::parse_utc;

/// Indices (into `backups`, newest first) that the policy keeps.
pub fn keep(backups: &[&Manifest], policy: &Retention) -> BTreeSet<usize> {
    let mut kept = BTreeSet::new();
    if let Some(last) = policy.last {
        kept.extend(0..(last as usize).min(backups.len()));
    }
    type BucketOf = fn(DateTime<Utc>) -> String;
    let buckets: [(Option<i64>, BucketOf); 3] = [
        (policy.daily, |t| t.format("%Y-%m-%d").to_string()),
        (policy.weekly, |t| format!("{}-W{:02}", t.iso_week().year(), t.iso_week().week())),
        (policy.monthly, |t| t.format("%Y-%m").to_string()),
    ];
    for (count, bucket_of) in buckets {
        let Some(count) = count else { continue };
        let mut seen: Vec<String> = Vec::new();
        for (i, backup) in backups.iter().enumerate() {
            let Some(time) = parse_utc(&backup.created_at) else { continue };
            let bucket = bucket_of(time);
            if !seen.contains(&bucket) {
                if seen.len() as i64 == count {
                    break;
                }
                seen.push(bucket);
                kept.insert(i);
            }
        }
    }
    if let Some(newest_verified) = backups.iter().position(|m| m.is_verified()) {
        kept.insert(newest_verified);
    }
    kept
}

/// Applies `policy` to the backups in `dir` of the same source as `made`; returns what it kept, deleted and
/// ignored.
pub fn apply(dir: &Path, made: &Manifest, policy: &Retention) -> Result<Json> {
    let mut listing = manifest::list(dir)?;
    let (regular, other): (Vec<_>, Vec<_>) = listing.backups.into_iter().partition(|(_, a)| regular_or_gone(a).is_ok());
    listing.ignored.extend(other.into_iter().map(|(_, a)| manifest::Ignored {
        reason: regular_or_gone(&a).err().unwrap_or_default(),
        path: manifest::path_for(&a),
    }));
    let ignored: Vec<Json> = listing.ignored.iter().map(manifest::Ignored::to_json).collect();
    let mut backups: Vec<(Manifest, PathBuf)> = regular
        .into_iter()
        .filter(|(m, _)| m.source.path == made.source.path && m.source.schema == made.source.schema)
        .collect();
    backups.reverse();
    let manifests: Vec<&Manifest> = backups.iter().map(|(m, _)| m).collect();
    let kept = keep(&manifests, policy);
    let (mut deleted, mut in_use) = (Vec::new(), Vec::new());
    for (i, (_, artifact)) in backups.iter().enumerate() {
        if kept.contains(&i) {
            continue;
        }
        let shown = artifact.to_string_lossy().into_owned();
        match delete(artifact) {
            Ok(true) => deleted.push(shown),
            Ok(false) => in_use.push(shown),
            Err(e) => in_use.push(format!("{shown} ({e})")),
        }
    }
    if !deleted.is_empty() {
        sync_dir(dir)?;
    }
    Ok(json!({"kept": kept.len(), "deleted": deleted, "in_use": in_use, "ignored": ignored}))
}

/// An artifact retention may count and delete: a regular file, or gone (its manifest is then deleted).
fn regular_or_gone(artifact: &Path) -> std::result::Result<(), String> {
    match artifact.symlink_metadata() {
        Ok(meta) if !meta.is_file() => Err(format!("{} is not a regular file: left alone", artifact.display())),
        _ => Ok(()),
    }
}

/// Deletes an artifact and then its manifest, unless someone holds a lock on the manifest (`false`).
fn delete(artifact: &Path) -> std::io::Result<bool> {
    let manifest_path = manifest::path_for(artifact);
    let file = open_regular_with(&manifest_path, false)?;
    let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else { return Ok(false) };
    match remove_own(artifact) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    remove_own(&manifest_path)?;
    drop(lock);
    Ok(true)
}

/// A shared lock on a backup's manifest while it is being read: retention leaves it alone.
pub fn hold(artifact: &Path) -> Option<Flock<File>> {
    let file = super::dir::open_regular(&manifest::path_for(artifact)).ok()?;
    Flock::lock(file, FlockArg::LockSharedNonblock).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::manifest::{Source, Verification};

    fn backup(created_at: &str, verified: bool) -> Manifest {
        Manifest {
            format: manifest::FORMAT.into(),
            id: created_at.into(),
            file: format!("{created_at}.db"),
            created_at: created_at.into(),
            source: Source {
                path: Some("/db".into()),
                schema: "main".into(),
                page_size: 4096,
                page_count: 1,
                journal_mode: "wal".into(),
            },
            method: "file_copy".into(),
            compression: "none".into(),
            incremental: false,
            bytes: 1,
            sha256: String::new(),
            database_bytes: 1,
            database_sha256: String::new(),
            verification: Verification {
                method: "quick".into(),
                result: if verified { "ok" } else { "skipped" }.into(),
            },
            sqlite_version: String::new(),
            vigil_version: String::new(),
            duration_ms: 0.0,
        }
    }

    #[test]
    fn last_n_and_grandfather_father_son() {
        // Newest first: two a day for 40 days, then the oldest months.
        let mut list = Vec::new();
        for day in (1..=40).rev() {
            let date = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new(day);
            list.push(backup(&format!("{date}T18:00:00.000Z"), true));
            list.push(backup(&format!("{date}T06:00:00.000Z"), true));
        }
        let refs: Vec<&Manifest> = list.iter().collect();
        let last3 = keep(&refs, &Retention { last: Some(3), ..Default::default() });
        assert_eq!(last3.into_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
        let daily = keep(&refs, &Retention { daily: Some(3), ..Default::default() });
        assert_eq!(daily.into_iter().collect::<Vec<_>>(), vec![0, 2, 4], "the newest of each of 3 days");
        let monthly = keep(&refs, &Retention { monthly: Some(12), ..Default::default() });
        assert_eq!(monthly.len(), 2, "January and February 2026");
        let weekly = keep(&refs, &Retention { weekly: Some(2), ..Default::default() });
        assert_eq!(weekly.len(), 2);
    }

    #[test]
    fn the_newest_verified_backup_is_always_kept() {
        let list = [backup("2026-03-03T00:00:00.000Z", false), backup("2026-03-02T00:00:00.000Z", true)];
        let refs: Vec<&Manifest> = list.iter().collect();
        let kept = keep(&refs, &Retention { last: Some(1), ..Default::default() });
        assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec![0, 1]);
    }
}
