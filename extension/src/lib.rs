//! vigil: keeps SQLite databases healthy, backed up and recoverable, as SQL inside any SQLite host.
//!
//! This file is the entry point: it captures the host's API table and registers every SQL object from
//! one list. Capabilities live in their own modules; `sqlite` is the only module that calls SQLite.
#![deny(unsafe_code)]

mod args;
pub mod backup;
mod diagnose;
mod direct;
pub mod error;
pub mod format;
mod guard;
pub mod health;
mod info;
pub mod maintenance;
mod metrics;
pub mod pit;
pub mod progress;
pub mod salvage;
pub mod sqlite;
pub mod stats;
pub mod store;
mod volume;
mod vtab;

use std::os::raw::{c_char, c_uint};

use sqlite3ext_sys::{sqlite3, sqlite3_api_routines};

use crate::error::Result;
use crate::sqlite::{function_flags, read_value, Context, Db, Value};

type ScalarFn = fn(Db, &[Value]) -> Result<Value>;

/// Who may call a function: anyone (also views and triggers), or only top-level SQL because it writes.
#[derive(Clone, Copy)]
enum Access {
    /// Reads only; result depends on nothing but the database.
    ReadOnly,
    /// Writes the database or files: SQLITE_DIRECTONLY, so no trigger, view or schema can call it, and
    /// [`direct::require_direct_call`] where the host does not enforce that.
    Writes,
}

enum SqlObject {
    Scalar { name: &'static str, arities: &'static [i32], access: Access, func: ScalarFn },
    Table { name: &'static str, define: fn(*mut sqlite3) -> sqlite_loadable::Result<()> },
}

impl SqlObject {
    fn name(&self) -> &'static str {
        match self {
            SqlObject::Scalar { name, .. } | SqlObject::Table { name, .. } => name,
        }
    }
}

/// Every SQL object vigil registers. docs/api.md documents each; a test keeps the two in step.
fn sql_objects() -> Vec<SqlObject> {
    use backup::BackupList;
    use health::{HealthHistory, HealthReport, HealthTables};
    vec![
        SqlObject::Scalar { name: "vigil_version", arities: &[0], access: Access::ReadOnly, func: info::vigil_version },
        SqlObject::Scalar { name: "vigil_debug", arities: &[0], access: Access::ReadOnly, func: info::vigil_debug },
        SqlObject::Scalar {
            name: "vigil_progress",
            arities: &[0],
            access: Access::ReadOnly,
            func: progress::vigil_progress,
        },
        SqlObject::Table { name: "health_report", define: vtab::define::<HealthReport> },
        SqlObject::Table { name: "diagnose", define: vtab::define::<diagnose::Diagnose> },
        SqlObject::Table { name: "health_tables", define: vtab::define::<HealthTables> },
        SqlObject::Scalar {
            name: "health_json",
            arities: &[0, 1],
            access: Access::ReadOnly,
            func: health::health_json,
        },
        SqlObject::Scalar {
            name: "health_snapshot",
            arities: &[0, 1],
            access: Access::Writes,
            func: health::health_snapshot,
        },
        SqlObject::Table { name: "health_history", define: vtab::define::<HealthHistory> },
        // Scalars, not table functions: a table function's statement holds a read lock on the database, which
        // would block the maintenance connection's rewrite and checkpoint.
        SqlObject::Scalar {
            name: "vacuum_if_fragmented",
            arities: &[0, 1, 2],
            access: Access::Writes,
            func: maintenance::vacuum::vacuum_if_fragmented,
        },
        SqlObject::Scalar {
            name: "maintain",
            arities: &[0, 1, 2],
            access: Access::Writes,
            func: maintenance::maintain::maintain,
        },
        SqlObject::Scalar {
            name: "wal_checkpoint",
            arities: &[0, 1, 2],
            access: Access::Writes,
            func: maintenance::checkpoint::wal_checkpoint,
        },
        SqlObject::Scalar { name: "backup_to", arities: &[1, 2], access: Access::Writes, func: backup::backup_to },
        SqlObject::Table { name: "backup_list", define: vtab::define::<BackupList> },
        SqlObject::Scalar {
            name: "backup_verify",
            arities: &[1, 2],
            access: Access::Writes,
            func: backup::backup_verify,
        },
        SqlObject::Scalar {
            name: "backup_restore",
            arities: &[1, 2, 3],
            access: Access::Writes,
            func: backup::restore::backup_restore,
        },
        SqlObject::Scalar { name: "pit_enable", arities: &[0, 1, 2], access: Access::Writes, func: pit::pit_enable },
        SqlObject::Scalar { name: "pit_disable", arities: &[0, 1], access: Access::Writes, func: pit::pit_disable },
        SqlObject::Scalar { name: "pit_status", arities: &[0], access: Access::ReadOnly, func: pit::pit_status },
        SqlObject::Scalar { name: "pit_tick", arities: &[0], access: Access::Writes, func: pit::pit_tick },
        SqlObject::Table { name: "pit_journal", define: vtab::define_stream::<pit::journal::PitJournal> },
        SqlObject::Scalar {
            name: "pit_restore",
            arities: &[1, 2, 3],
            access: Access::Writes,
            func: pit::restore::pit_restore,
        },
        SqlObject::Scalar { name: "pit_prune", arities: &[0, 1], access: Access::Writes, func: pit::prune::pit_prune },
        SqlObject::Scalar { name: "salvage_to", arities: &[2, 3], access: Access::Writes, func: salvage::salvage_to },
        SqlObject::Table { name: "vigil_metrics", define: vtab::define::<metrics::VigilMetrics> },
        SqlObject::Scalar {
            name: "export_to",
            arities: &[2, 3],
            access: Access::Writes,
            func: backup::export::export_to,
        },
        SqlObject::Scalar {
            name: "query_stats_start",
            arities: &[0, 1],
            access: Access::Writes,
            func: stats::sql::query_stats_start,
        },
        SqlObject::Scalar {
            name: "query_stats_stop",
            arities: &[0],
            access: Access::Writes,
            func: stats::sql::query_stats_stop,
        },
        SqlObject::Scalar {
            name: "query_stats_reset",
            arities: &[0],
            access: Access::Writes,
            func: stats::sql::query_stats_reset,
        },
        SqlObject::Scalar {
            name: "query_stats_info",
            arities: &[0],
            access: Access::ReadOnly,
            func: stats::sql::query_stats_info,
        },
        SqlObject::Scalar {
            name: "query_stats_save",
            arities: &[0],
            access: Access::Writes,
            func: stats::sql::query_stats_save,
        },
        SqlObject::Table { name: "query_stats", define: vtab::define::<stats::sql::QueryStats> },
        SqlObject::Table { name: "slow_queries", define: vtab::define::<stats::sql::SlowQueries> },
    ]
}

/// Names of the registered SQL objects, in registration order.
pub fn registered_names() -> Vec<&'static str> {
    sql_objects().iter().map(SqlObject::name).collect()
}

fn define_scalar(
    db: *mut sqlite3,
    name: &'static str,
    arity: i32,
    access: Access,
    func: ScalarFn,
) -> sqlite_loadable::Result<()> {
    let flags = match access {
        Access::ReadOnly => function_flags::UTF8,
        Access::Writes => function_flags::UTF8 | function_flags::DIRECTONLY,
    };
    let call = move |ctx, raw_args: &[*mut sqlite3ext_sys::sqlite3_value]| {
        let context = Context::from_raw(ctx);
        let args: Vec<Value> = raw_args.iter().map(|v| read_value(*v)).collect();
        let work = || {
            if let Access::Writes = access {
                direct::require_direct_call(context.db(), name)?;
            }
            func(context.db(), &args)
        };
        match guard::run(name, work) {
            Ok(value) => context.set_result(&value),
            Err(error) => context.set_error(&error),
        }
    };
    sqlite::create_scalar(Db::from_raw(db), name, arity, flags, call)
        .map_err(|e| sqlite_loadable::Error::new_message(e.message()))
}

/// Overrides `sqlite_compileoption_used` on a connection so journal triggers record exact transaction ids
/// (see `pit::txn`). Innocuous: triggers call it under trusted_schema=OFF. A refusal is not an error.
pub(crate) fn define_txn_override(db: Db) {
    let state = pit::txn::TxnState::default();
    let call = move |ctx, raw_args: &[*mut sqlite3ext_sys::sqlite3_value]| {
        let context = Context::from_raw(ctx);
        let args: Vec<Value> = raw_args.iter().map(|v| read_value(*v)).collect();
        match guard::run(pit::txn::FUNCTION, || pit::txn::compileoption_used(context.db(), &state, &args)) {
            Ok(value) => context.set_result(&value),
            Err(error) => context.set_error(&error),
        }
    };
    let flags = function_flags::UTF8 | function_flags::INNOCUOUS;
    let _ = sqlite::create_scalar(db, pit::txn::FUNCTION, 1, flags, call);
}

fn register(db: *mut sqlite3) -> sqlite_loadable::Result<()> {
    define_txn_override(Db::from_raw(db));
    for object in sql_objects() {
        match object {
            SqlObject::Scalar { name, arities, access, func } => {
                for &arity in arities {
                    define_scalar(db, name, arity, access, func)?;
                }
            }
            SqlObject::Table { define, .. } => define(db)?,
        }
    }
    Ok(())
}

/// Writes an error message SQLite will show and free (it must come from sqlite3_malloc).
fn init_error(err: *mut *mut c_char, message: &str) -> c_uint {
    sqlite::set_init_error(err, message);
    1
}

/// The entry point SQLite finds for `libvigil.so` (`.load ./libvigil`).
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn sqlite3_vigil_init(
    db: *mut sqlite3,
    err: *mut *mut c_char,
    api: *mut sqlite3_api_routines,
) -> c_uint {
    let loaded = std::panic::catch_unwind(|| {
        sqlite::install_api(api);
        let version = sqlite::host_version_number();
        if version < sqlite::MIN_HOST_VERSION {
            return Err(format!("vigil needs SQLite 3.35.0 or newer; this host is {}", sqlite::host_version()));
        }
        Ok(())
    });
    match loaded {
        Ok(Ok(())) => {}
        Ok(Err(message)) => return init_error(err, &message),
        Err(_) => return init_error(err, "vigil: internal error while loading"),
    }
    let registered =
        std::panic::catch_unwind(|| sqlite_loadable::entrypoints::register_entrypoint(db, err, api, register));
    match registered {
        Ok(0) => 0,
        Ok(_) => init_error(err, "vigil: cannot register its SQL functions on this connection"),
        Err(_) => init_error(err, "vigil: internal error while registering functions"),
    }
}
