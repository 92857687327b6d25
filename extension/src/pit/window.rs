//! The restorable window and the lineage. The journal reaches back to where it began (or was pruned to);
//! an in-place restore starts a new lineage, and the instants between its cut and the moment it ran belong
//! to the replaced history, which only its safety backup holds.

use serde_json::Value as Json;

use super::cut::{rfc3339, Cut, Instant};
use crate::error::{Error, Result};
use crate::sqlite::Db;
use crate::store::pit as store;

/// The earliest restorable position: (seq, Julian day). Rows at or below `seq` are gone or never existed.
pub fn start(db: Db) -> Result<(i64, f64)> {
    let seq = store::meta(db, "horizon_seq")?.as_i64().unwrap_or(0);
    let at = store::meta(db, "horizon_at")?.as_f64().or(store::meta(db, "created_at")?.as_f64()).unwrap_or(0.0);
    Ok((seq, at))
}

/// Where the states before the window are: the checkpoint pit_prune started the window at, when it did.
fn before_window(db: Db) -> Result<String> {
    let checkpoint = store::meta(db, "horizon_checkpoint")?;
    Ok(match checkpoint.as_str().and_then(|t| serde_json::from_str::<Json>(t).ok()) {
        Some(c) => format!(
            "pit_prune started the window at the checkpoint {} (backup {}, journal seq {}), which holds the \
             journal before it: start the restore from it with the option '{{\"base\": {}}}'",
            c["path"], c["id"], c["cut_seq"], c["path"]
        ),
        None => "an older state is only in a backup taken then (backup_list)".into(),
    })
}

/// Refuses an instant the journal cannot reach, naming the window and what to do.
pub fn check(db: Db, instant: &Instant) -> Result<()> {
    let (start_seq, start_at) = start(db)?;
    let window = || format!("the window is {} to now (pit_status() shows it)", rfc3339(db, start_at));
    match instant {
        Instant::Time { julian, text } => {
            if *julian < start_at {
                return Err(Error::new(format!(
                    "{text} is before the journal's window: {}; {}",
                    window(),
                    before_window(db)?
                )));
            }
            let now = db.query_value("SELECT julianday('now')", &[])?.as_f64().unwrap_or(0.0);
            if *julian > now + 1.0 / 86_400.0 {
                return Err(Error::new(format!("{text} is in the future; {}", window())));
            }
            for fork in store::forks(db)? {
                let (cut_at, restored_at) =
                    (fork["cut_at"].as_f64().unwrap_or(0.0), fork["restored_at"].as_f64().unwrap_or(0.0));
                if *julian > cut_at && *julian < restored_at {
                    let kept = fork["safety_backup"].as_str().unwrap_or("(named in the restore's result)");
                    return Err(Error::new(format!(
                        "{text} belongs to the history an in-place restore replaced at {}: its last state is in the \
                         safety backup {kept}; start the restore from it with the option '{{\"base\": \"{kept}\"}}'",
                        rfc3339(db, restored_at)
                    )));
                }
            }
        }
        Instant::Seq(seq) if *seq < start_seq => {
            return Err(Error::new(format!(
                "seq {seq} is before the journal's window, which starts after seq {start_seq}; {}; {}",
                window(),
                before_window(db)?
            )));
        }
        Instant::Seq(seq) => {
            for fork in store::forks(db)? {
                let cut_seq = fork["cut_seq"].as_i64().unwrap_or(i64::MAX);
                let replaced_to = fork["replaced_to_seq"].as_i64().unwrap_or(cut_seq);
                let present = db.query_value(
                    &format!("SELECT count(*) FROM main.{} WHERE seq = ?1", store::LOG),
                    &[(*seq).into()],
                )?;
                if *seq > cut_seq && (*seq <= replaced_to || present.as_i64() == Some(0)) {
                    let kept = fork["safety_backup"].as_str().unwrap_or("(named in the restore's result)");
                    return Err(Error::new(format!(
                        "seq {seq} is not in this database's history: an in-place restore replaced the history after \
                         seq {cut_seq}, and its last state is in the safety backup {kept}; start the restore from it \
                         with the option '{{\"base\": \"{kept}\"}}'"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Refuses a cut below the window (a time inside it may still cut below its start when the rows around it were
/// pruned).
pub fn check_cut(db: Db, cut: &Cut) -> Result<()> {
    let (start_seq, start_at) = start(db)?;
    let window = || format!("the window is {} to now (pit_status() shows it)", rfc3339(db, start_at));
    if cut.seq < start_seq {
        return Err(Error::new(format!(
            "the cut at seq {} is before the journal's window; {}; {}",
            cut.seq,
            window(),
            before_window(db)?
        )));
    }
    Ok(())
}

/// Gives a restored copy a lineage of its own, remembering where it branched off. Returns {lineage, parent}.
pub fn fork(db: Db, cut: &Cut) -> Result<Json> {
    store::record_fork(db, cut.seq, cut.at)
}

pub use store::fork_published;
