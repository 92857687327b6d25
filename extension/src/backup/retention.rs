//! Retention: which of a directory's backups of one database to keep (the last N, and/or the newest of
//! each of the last D days, W ISO weeks, M months), and deleting the rest. Only backups with a vigil
//! manifest are candidates; the newest verified one is always kept, and so is any backup a drill or restore
//! is reading (it holds a shared lock on the manifest). Manifests that name anything but a plain file in
//! their own directory are ignored and reported, never followed (dir.rs). Nor is the checkpoint a journaled
//! database's point-in-time window starts at (see [`window_anchor`]).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Utc};
use nix::fcntl::{Flock, FlockArg};
use serde_json::{json, Value as Json};

use super::dir::{open_regular_with, remove_own, sync_dir};
use super::manifest::{self, Manifest, Position};
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

/// The backup (index into `backups`, newest first) that the live journal's window starts at: the newest
/// checkpoint of the live lineage whose cut is the live horizon. pit_prune moved the horizon to that cut and
/// dropped the journal rows below it, so instants before the window are restorable only from it.
pub fn window_anchor(backups: &[&Manifest], live: &Position) -> Option<usize> {
    if live.horizon_seq == 0 {
        return None; // never pruned: the live journal reaches back to its start by itself
    }
    backups
        .iter()
        .position(|m| m.pit.as_ref().is_some_and(|pit| pit.lineage == live.lineage && pit.cut_seq == live.horizon_seq))
}

/// The live database's journal position: `None` without a journal, an error when it could not be read.
pub type LivePosition = std::result::Result<Option<Position>, String>;
pub type Live<'a> = &'a dyn Fn() -> LivePosition;

/// Whether deleting `backup` could cost the live window its start: it is the window's checkpoint, or it is a
/// checkpoint and the live position is unknown (kept, to be safe).
pub fn window_needs(backup: &Manifest, live: &LivePosition) -> bool {
    match live {
        Ok(Some(position)) => window_anchor(&[backup], position).is_some(),
        Ok(None) => false,
        Err(_) => backup.pit.is_some(),
    }
}

/// Applies `policy` to the backups in `dir` of the same source as `made`, keeping the checkpoint the live
/// journal's window needs (`live`); returns what it kept, deleted and ignored.
pub fn apply(dir: &Path, made: &Manifest, policy: &Retention, live: Live) -> Result<Json> {
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
    let mut kept = keep(&manifests, policy);
    let anchor = live().ok().flatten().and_then(|position| window_anchor(&manifests, &position));
    let anchor = anchor.filter(|i| kept.insert(*i)); // only when the policy alone would delete it
    let (mut deleted, mut in_use, mut window) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (m, artifact)) in backups.iter().enumerate() {
        if kept.contains(&i) {
            continue;
        }
        let shown = artifact.to_string_lossy().into_owned();
        // Asked again under the lock: a pit_prune that holds this checkpoint until it has moved the horizon
        // to it has released it by then.
        let anchors = || window_needs(m, &live());
        match delete(artifact, anchors) {
            Ok(Deleted::Yes) => deleted.push(shown),
            Ok(Deleted::InUse) => in_use.push(shown),
            Ok(Deleted::WindowNeedsIt) => window.push(shown),
            Err(e) => in_use.push(format!("{shown} ({e})")),
        }
    }
    window.extend(anchor.map(|i| backups[i].1.to_string_lossy().into_owned()));
    if !deleted.is_empty() {
        sync_dir(dir)?;
    }
    Ok(json!({"kept": kept.len(), "deleted": deleted, "in_use": in_use, "ignored": ignored,
              "kept_for_pit_window": window}))
}

enum Deleted {
    Yes,
    /// A drill, restore or pit_prune holds its manifest.
    InUse,
    /// The live journal's window starts at this checkpoint.
    WindowNeedsIt,
}

/// An artifact retention may count and delete: a regular file, or gone (its manifest is then deleted).
fn regular_or_gone(artifact: &Path) -> std::result::Result<(), String> {
    match artifact.symlink_metadata() {
        Ok(meta) if !meta.is_file() => Err(format!("{} is not a regular file: left alone", artifact.display())),
        _ => Ok(()),
    }
}

/// Deletes an artifact and then its manifest, unless someone holds a lock on the manifest or, asked under
/// the lock, the live journal's window `anchors` on it.
fn delete(artifact: &Path, anchors: impl Fn() -> bool) -> std::io::Result<Deleted> {
    let manifest_path = manifest::path_for(artifact);
    let file = open_regular_with(&manifest_path, false)?;
    let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else { return Ok(Deleted::InUse) };
    if anchors() {
        return Ok(Deleted::WindowNeedsIt);
    }
    match remove_own(artifact) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    remove_own(&manifest_path)?;
    drop(lock);
    Ok(Deleted::Yes)
}

/// A shared lock on a backup's manifest, released when dropped.
pub type Hold = Flock<File>;

/// A shared lock on a backup's manifest while it is being read: retention leaves it alone.
pub fn hold(artifact: &Path) -> Option<Hold> {
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
            pit: None,
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

    fn checkpoint(created_at: &str, lineage: &str, cut_seq: i64) -> Manifest {
        let mut m = backup(created_at, true);
        m.pit = Some(Position { lineage: lineage.into(), cut_seq, cut_at: None, horizon_seq: 0, horizon_at: None });
        m
    }

    fn live(lineage: &str, horizon_seq: i64) -> Position {
        Position { lineage: lineage.into(), cut_seq: 900, cut_at: None, horizon_seq, horizon_at: None }
    }

    #[test]
    fn the_window_anchor_is_the_newest_checkpoint_of_the_lineage_cut_at_the_horizon() {
        // Newest first.
        let list = [
            checkpoint("2026-03-05T00:00:00.000Z", "a", 500),
            backup("2026-03-04T00:00:00.000Z", true),
            checkpoint("2026-03-03T00:00:00.000Z", "b", 300),
            checkpoint("2026-03-02T00:00:00.000Z", "a", 300),
            checkpoint("2026-03-01T00:00:00.000Z", "a", 300),
            checkpoint("2026-02-28T00:00:00.000Z", "a", 100),
        ];
        let refs: Vec<&Manifest> = list.iter().collect();
        assert_eq!(window_anchor(&refs, &live("a", 300)), Some(3), "same cut, other lineage: not it");
        assert_eq!(window_anchor(&refs, &live("a", 100)), Some(5));
        assert_eq!(window_anchor(&refs, &live("b", 300)), Some(2));
        assert_eq!(window_anchor(&refs, &live("a", 0)), None, "never pruned: no checkpoint needed");
        assert_eq!(window_anchor(&refs, &live("a", 200)), None, "no checkpoint at the horizon");
        assert_eq!(window_anchor(&refs, &live("c", 300)), None);
    }

    #[test]
    fn a_checkpoint_is_kept_when_the_live_position_is_unknown() {
        let (point, plain) =
            (checkpoint("2026-03-05T00:00:00.000Z", "a", 500), backup("2026-03-04T00:00:00.000Z", true));
        let unknown: LivePosition = Err("database is locked".into());
        assert!(window_needs(&point, &unknown));
        assert!(!window_needs(&plain, &unknown));
        assert!(window_needs(&point, &Ok(Some(live("a", 500)))));
        assert!(!window_needs(&point, &Ok(Some(live("a", 400)))));
        assert!(!window_needs(&point, &Ok(None)));
    }

    #[test]
    fn the_newest_verified_backup_is_always_kept() {
        let list = [backup("2026-03-03T00:00:00.000Z", false), backup("2026-03-02T00:00:00.000Z", true)];
        let refs: Vec<&Manifest> = list.iter().collect();
        let kept = keep(&refs, &Retention { last: Some(1), ..Default::default() });
        assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec![0, 1]);
    }
}
