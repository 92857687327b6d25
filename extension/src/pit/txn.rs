//! Exact transaction ids for writes made on connections that loaded vigil. Every journal trigger stores
//! `nullif(sqlite_compileoption_used('vigil-pit-txn'), 0)`: the core function answers 0 for that unknown
//! option, so a writer without vigil stores NULL. vigil overrides the function on its connections (innocuous,
//! so triggers may call it with trusted_schema off) and answers the seq of the transaction's first journal
//! row. A new transaction is noticed when the file's data version moved (it moves at every commit, never
//! inside a write transaction), so no commit hook is taken from the application.

use std::sync::Mutex;

use crate::error::Result;
use crate::sqlite::{self, Db, Value};

use crate::store::pit::TXN_PREFIX;
pub const FUNCTION: &str = "sqlite_compileoption_used";

/// Per connection: the data version the current id belongs to, and the id (0: the main database is not the
/// journal the trigger asked about).
#[derive(Default)]
pub struct TxnState(Mutex<Option<(u32, String, i64)>>);

/// `sqlite_compileoption_used(name)` on a vigil connection. Never an error for a journal trigger: whatever
/// fails, the answer is 0 and the change is journaled with an unknown transaction, as a foreign writer's.
pub fn compileoption_used(db: Db, state: &TxnState, args: &[Value]) -> Result<Value> {
    match args.first() {
        Some(Value::Text(name)) if name.starts_with(TXN_PREFIX) => {
            Ok(Value::Integer(current_txn(db, state, &name[TXN_PREFIX.len()..]).unwrap_or(0)))
        }
        Some(Value::Text(name)) => Ok(Value::Integer(i64::from(sqlite::compileoption_used(name)))),
        Some(Value::Null) | None => Ok(Value::Null),
        Some(other) => {
            let text = match other {
                Value::Integer(i) => i.to_string(),
                Value::Real(r) => r.to_string(),
                Value::Blob(b) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            };
            Ok(Value::Integer(i64::from(sqlite::compileoption_used(&text))))
        }
    }
}

fn current_txn(db: Db, state: &TxnState, db_id: &str) -> Result<i64> {
    let version = db.data_version("main")?;
    let mut current = state.0.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((seen, journal, id)) = current.as_ref() {
        if *seen == version && journal == db_id {
            return Ok(*id);
        }
    }
    // The first journal row of this transaction is about to take the next seq: that seq names it. After a
    // rollback the same seq comes again (the rolled-back rows are gone), so a reused id still names one
    // committed transaction.
    // The journal this connection's main database holds is checked once (its id never changes); after that a
    // new transaction costs one lookup of the last seq.
    let known = current.as_ref().is_some_and(|(_, journal, id)| journal == db_id && *id != 0);
    let ours = known || (crate::store::pit::exists(db)? && crate::store::pit::db_id(db)? == db_id);
    let id = if ours { crate::store::pit::next_seq(db)? } else { 0 };
    *current = Some((version, db_id.to_string(), id));
    Ok(id)
}
