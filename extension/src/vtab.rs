//! Virtual tables. Two kinds:
//! - table-valued functions computed eagerly ([`TableFunction`]): vigil's reports are small (a row per check,
//!   per b-tree), so each call builds its rows in `filter` and the cursor walks them;
//! - streamed tables ([`StreamTable`]), read lazily with constraints pushed down, for tables too large to
//!   build (the point-in-time journal).
//!
//! Capabilities implement a trait; this module handles the virtual-table protocol, arguments, errors and
//! panics.

use std::marker::PhantomData;
use std::os::raw::c_int;

use sqlite_loadable::ext::{sqlite3, sqlite3_context, sqlite3_value, sqlite3_vtab, sqlite3_vtab_cursor};
use sqlite_loadable::table::{BestIndexError, ConstraintOperator, IndexInfo, VTab, VTabArguments, VTabCursor};

use crate::error::Result;
use crate::guard;
use crate::sqlite::{read_value, Context, Db, Value};

/// A table-valued function: `SELECT * FROM name(arg, …)`.
pub trait TableFunction: 'static {
    const NAME: &'static str;
    /// Result columns.
    const COLUMNS: &'static [&'static str];
    /// Arguments, as hidden columns; all optional, absent ones arrive as NULL.
    const ARGS: &'static [&'static str];
    fn rows(db: Db, args: &[Value]) -> Result<Vec<Vec<Value>>>;
}

pub fn define<T: TableFunction>(db: *mut sqlite3) -> sqlite_loadable::Result<()> {
    sqlite_loadable::define_table_function::<EagerTable<T>>(db, T::NAME, None)
}

#[repr(C)]
pub struct EagerTable<T> {
    base: sqlite3_vtab,
    db: *mut sqlite3,
    _function: PhantomData<T>,
}

#[repr(C)]
pub struct EagerCursor<T> {
    base: sqlite3_vtab_cursor,
    db: *mut sqlite3,
    args: Vec<Value>,
    rows: Vec<Vec<Value>>,
    position: usize,
    _function: PhantomData<T>,
}

impl<'vtab, T: TableFunction> VTab<'vtab> for EagerTable<T> {
    type Aux = ();
    type Cursor = EagerCursor<T>;

    fn connect(db: *mut sqlite3, _aux: Option<&()>, _args: VTabArguments) -> sqlite_loadable::Result<(String, Self)> {
        let columns: Vec<String> = T::COLUMNS
            .iter()
            .map(|c| format!("\"{c}\""))
            .chain(T::ARGS.iter().map(|a| format!("\"{a}\" HIDDEN")))
            .collect();
        let schema = format!("CREATE TABLE x({})", columns.join(", "));
        let base = sqlite3_vtab { pModule: std::ptr::null(), nRef: 0, zErrMsg: std::ptr::null_mut() };
        Ok((schema, EagerTable { base, db, _function: PhantomData }))
    }

    /// Each equality on an argument column becomes a filter argument, in column order; `idxNum` is the
    /// bit mask of the arguments given.
    fn best_index(&self, mut info: IndexInfo) -> core::result::Result<(), BestIndexError> {
        let first_arg = T::COLUMNS.len() as i32;
        let mut chosen: Vec<(i32, usize)> = Vec::new();
        for (n, constraint) in info.constraints().iter().enumerate() {
            let column = constraint.column_idx();
            if column < first_arg || chosen.iter().any(|(c, _)| *c == column) {
                continue;
            }
            if constraint.op() != Some(ConstraintOperator::EQ) {
                continue;
            }
            if !constraint.usable() {
                return Err(BestIndexError::Constraint);
            }
            chosen.push((column, n));
        }
        chosen.sort();
        let mut constraints = info.constraints();
        let mut mask = 0;
        for (argv, (column, n)) in chosen.iter().enumerate() {
            constraints[*n].set_argv_index(argv as i32 + 1);
            constraints[*n].set_omit(true);
            mask |= 1 << (column - first_arg);
        }
        info.set_idxnum(mask);
        info.set_estimated_cost(1000.0);
        info.set_estimated_rows(25);
        Ok(())
    }

    fn open(&'vtab mut self) -> sqlite_loadable::Result<Self::Cursor> {
        Ok(EagerCursor {
            base: sqlite3_vtab_cursor { pVtab: std::ptr::null_mut() },
            db: self.db,
            args: Vec::new(),
            rows: Vec::new(),
            position: 0,
            _function: PhantomData,
        })
    }
}

impl<T: TableFunction> VTabCursor for EagerCursor<T> {
    fn filter(
        &mut self,
        mask: c_int,
        _idx_str: Option<&str>,
        values: &[*mut sqlite3_value],
    ) -> sqlite_loadable::Result<()> {
        let mut given = values.iter();
        self.args = (0..T::ARGS.len())
            .map(|i| match (mask >> i) & 1 {
                1 => given.next().map_or(Value::Null, |v| read_value(*v)),
                _ => Value::Null,
            })
            .collect();
        let db = Db::from_raw(self.db);
        let args = &self.args;
        self.rows = guard::run(T::NAME, || T::rows(db, args)).map_err(|e| {
            sqlite_loadable::Error::new_message(guard::escape_percent(&crate::error::bounded(e.message())))
        })?;
        self.position = 0;
        Ok(())
    }

    fn next(&mut self) -> sqlite_loadable::Result<()> {
        self.position += 1;
        Ok(())
    }

    fn eof(&self) -> bool {
        self.position >= self.rows.len()
    }

    fn column(&self, ctx: *mut sqlite3_context, i: c_int) -> sqlite_loadable::Result<()> {
        let i = i as usize;
        let value = match i.checked_sub(T::COLUMNS.len()) {
            None => self.rows.get(self.position).and_then(|row| row.get(i)),
            Some(arg) => self.args.get(arg),
        };
        Context::from_raw(ctx).set_result(value.unwrap_or(&Value::Null));
        Ok(())
    }

    fn rowid(&self) -> sqlite_loadable::Result<i64> {
        Ok(self.position as i64 + 1)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Streamed tables: rows read lazily from a statement, with constraints pushed down. sqlite_loadable's
// IndexInfo hides the collation of a constraint and orderByConsumed, which a pushdown needs to stay exact, so
// this part speaks the virtual-table protocol itself; it is the only unsafe code outside sqlite.rs.

/// A comparison SQLite offers to a streamed table in xBestIndex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
    /// Any other operator (LIKE, IS, !=, LIMIT…): left to SQLite.
    Other,
}

impl Op {
    fn from_raw(op: u8) -> Op {
        match op {
            2 => Op::Eq,
            4 => Op::Gt,
            8 => Op::Le,
            16 => Op::Lt,
            32 => Op::Ge,
            _ => Op::Other,
        }
    }
}

/// One constraint of a WHERE clause as xBestIndex sees it. `column` -1 is the rowid.
#[derive(Clone, Debug)]
pub struct Constraint {
    pub column: i32,
    pub op: Op,
    pub usable: bool,
    pub collation: String,
}

/// What a streamed table will do with a query: the constraints whose values its scan receives (indices into
/// the request, in argument order), a description the scan parses (idxStr, shown by EXPLAIN QUERY PLAN),
/// and its cost. SQLite still checks every constraint on the rows returned, so a scan may return more rows
/// than match, never fewer; except those listed in `exact`, which the scan applies exactly for any value.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub uses: Vec<usize>,
    pub exact: Vec<usize>,
    pub text: String,
    pub cost: f64,
    pub rows: i64,
    /// The rows come out in the ORDER BY the query asked for.
    pub ordered: bool,
    /// At most one row.
    pub unique: bool,
}

/// A table read lazily: `SELECT … FROM name WHERE …`.
pub trait StreamTable: 'static {
    const NAME: &'static str;
    /// Column declarations (`seq INTEGER`, `"table" TEXT`…), in order.
    const COLUMNS: &'static [&'static str];
    type Scan: Scan;
    /// Chooses the constraints to use. `order_by` lists (column, descending).
    fn plan(constraints: &[Constraint], order_by: &[(i32, bool)]) -> Plan;
    /// Starts reading with the plan's text and the values of the constraints it used. `previous` is the
    /// cursor's last scan (a join filters a cursor once per outer row), to reuse what it prepared.
    fn scan(db: Db, plan: &str, values: &[Value], previous: Option<Self::Scan>) -> Result<Self::Scan>;
    /// The connection is closing (its table goes away).
    fn disconnect(_db: Db) {}
}

/// A running scan, positioned on a row until `eof`.
pub trait Scan: 'static {
    fn eof(&self) -> bool;
    fn next(&mut self) -> Result<()>;
    fn column(&self, i: usize) -> Value;
    fn rowid(&self) -> i64;
}

pub fn define_stream<T: StreamTable>(db: *mut sqlite3) -> sqlite_loadable::Result<()> {
    crate::sqlite::create_module(Db::from_raw(db), T::NAME, stream::module::<T>())
        .map_err(|e| sqlite_loadable::Error::new_message(e.message()))
}

#[allow(unsafe_code)]
mod stream {
    //! The C callbacks. Each one catches panics (through [`guard::run`]) and turns errors into SQLite's
    //! error protocol; the objects SQLite holds are Boxes whose first field is SQLite's base struct.
    use std::os::raw::{c_char, c_int, c_void};

    use sqlite3ext_sys::{
        sqlite3, sqlite3_context, sqlite3_index_info, sqlite3_module, sqlite3_value, sqlite3_vtab, sqlite3_vtab_cursor,
    };

    use super::{Constraint, Op, Scan, StreamTable};
    use crate::error::Result;
    use crate::guard;
    use crate::sqlite::{self, read_value, Context, Db, Value};

    const SQLITE_OK: c_int = 0;
    const SQLITE_ERROR: c_int = 1;
    const SQLITE_INDEX_SCAN_UNIQUE: c_int = 1;

    #[repr(C)]
    struct Table {
        base: sqlite3_vtab,
        db: *mut sqlite3,
    }

    #[repr(C)]
    struct Cursor<S> {
        base: sqlite3_vtab_cursor,
        db: *mut sqlite3,
        scan: Option<S>,
    }

    struct Holder<T>(std::marker::PhantomData<T>);

    impl<T: StreamTable> Holder<T> {
        /// Eponymous-only (no xCreate): the table exists in every schema by its name and cannot be created.
        const MODULE: sqlite3_module = sqlite3_module {
            iVersion: 1,
            xCreate: None,
            xConnect: Some(connect::<T>),
            xBestIndex: Some(best_index::<T>),
            xDisconnect: Some(disconnect::<T>),
            xDestroy: Some(disconnect::<T>),
            xOpen: Some(open::<T>),
            xClose: Some(close::<T>),
            xFilter: Some(filter::<T>),
            xNext: Some(next::<T>),
            xEof: Some(eof::<T>),
            xColumn: Some(column::<T>),
            xRowid: Some(rowid::<T>),
            xUpdate: None,
            xBegin: None,
            xSync: None,
            xCommit: None,
            xRollback: None,
            xFindFunction: None,
            xRename: None,
            xSavepoint: None,
            xRelease: None,
            xRollbackTo: None,
            xShadowName: None,
        };
    }

    pub fn module<T: StreamTable>() -> &'static sqlite3_module {
        &Holder::<T>::MODULE
    }

    /// Reports `result`'s error on the table's zErrMsg; returns the SQLite code.
    fn report(vtab: *mut sqlite3_vtab, result: Result<()>) -> c_int {
        match result {
            Ok(()) => SQLITE_OK,
            Err(e) => {
                if !vtab.is_null() {
                    let message = crate::error::bounded(e.message());
                    sqlite::give_string(unsafe { &mut (*vtab).zErrMsg }, &message);
                }
                SQLITE_ERROR
            }
        }
    }

    unsafe extern "C" fn connect<T: StreamTable>(
        db: *mut sqlite3,
        _aux: *mut c_void,
        _argc: c_int,
        _argv: *const *const c_char,
        out: *mut *mut sqlite3_vtab,
        err: *mut *mut c_char,
    ) -> c_int {
        let declared = guard::run(T::NAME, || {
            sqlite::declare_vtab(Db::from_raw(db), &format!("CREATE TABLE x({})", T::COLUMNS.join(", ")))
        });
        if let Err(e) = declared {
            sqlite::give_string(err, e.message());
            return SQLITE_ERROR;
        }
        let base = sqlite3_vtab { pModule: std::ptr::null(), nRef: 0, zErrMsg: std::ptr::null_mut() };
        *out = Box::into_raw(Box::new(Table { base, db })).cast();
        SQLITE_OK
    }

    unsafe extern "C" fn disconnect<T: StreamTable>(vtab: *mut sqlite3_vtab) -> c_int {
        let table = Box::from_raw(vtab.cast::<Table>());
        let _ = guard::run(T::NAME, || {
            T::disconnect(Db::from_raw(table.db));
            Ok(())
        });
        SQLITE_OK
    }

    unsafe extern "C" fn best_index<T: StreamTable>(vtab: *mut sqlite3_vtab, info: *mut sqlite3_index_info) -> c_int {
        let info_ref = &mut *info;
        let raw_constraints = slice(info_ref.aConstraint, info_ref.nConstraint);
        let constraints: Vec<Constraint> = raw_constraints
            .iter()
            .enumerate()
            .map(|(i, c)| Constraint {
                column: c.iColumn,
                op: Op::from_raw(c.op),
                usable: c.usable != 0,
                collation: sqlite::vtab_collation(info, i as c_int),
            })
            .collect();
        let order_by: Vec<(i32, bool)> =
            slice(info_ref.aOrderBy, info_ref.nOrderBy).iter().map(|o| (o.iColumn, o.desc != 0)).collect();
        let planned = guard::run(T::NAME, || Ok(T::plan(&constraints, &order_by)));
        let plan = match planned {
            Ok(plan) => plan,
            Err(e) => return report(vtab, Err(e)),
        };
        let usage = std::slice::from_raw_parts_mut(info_ref.aConstraintUsage, constraints.len());
        for (argv, &n) in plan.uses.iter().enumerate() {
            usage[n].argvIndex = argv as c_int + 1;
            usage[n].omit = u8::from(plan.exact.contains(&n));
        }
        sqlite::give_string(&mut info_ref.idxStr, &plan.text);
        info_ref.needToFreeIdxStr = 1;
        info_ref.orderByConsumed = c_int::from(plan.ordered);
        info_ref.estimatedCost = plan.cost;
        info_ref.estimatedRows = plan.rows;
        if plan.unique {
            info_ref.idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
        }
        SQLITE_OK
    }

    unsafe fn slice<'a, E>(items: *const E, n: c_int) -> &'a [E] {
        if items.is_null() || n <= 0 {
            &[]
        } else {
            std::slice::from_raw_parts(items, n as usize)
        }
    }

    unsafe extern "C" fn open<T: StreamTable>(vtab: *mut sqlite3_vtab, out: *mut *mut sqlite3_vtab_cursor) -> c_int {
        let db = (*vtab.cast::<Table>()).db;
        let cursor: Cursor<T::Scan> = Cursor { base: sqlite3_vtab_cursor { pVtab: vtab }, db, scan: None };
        *out = Box::into_raw(Box::new(cursor)).cast();
        SQLITE_OK
    }

    unsafe extern "C" fn close<T: StreamTable>(cursor: *mut sqlite3_vtab_cursor) -> c_int {
        drop(Box::from_raw(cursor.cast::<Cursor<T::Scan>>()));
        SQLITE_OK
    }

    unsafe fn cursor<'a, T: StreamTable>(raw: *mut sqlite3_vtab_cursor) -> &'a mut Cursor<T::Scan> {
        &mut *raw.cast::<Cursor<T::Scan>>()
    }

    unsafe extern "C" fn filter<T: StreamTable>(
        raw: *mut sqlite3_vtab_cursor,
        _idx_num: c_int,
        idx_str: *const c_char,
        argc: c_int,
        argv: *mut *mut sqlite3_value,
    ) -> c_int {
        let cursor = cursor::<T>(raw);
        let previous = cursor.scan.take();
        let plan =
            if idx_str.is_null() { String::new() } else { std::ffi::CStr::from_ptr(idx_str).to_string_lossy().into() };
        let values: Vec<Value> = slice(argv.cast_const(), argc).iter().map(|v| read_value(*v)).collect();
        let db = Db::from_raw(cursor.db);
        let started = guard::run(T::NAME, || T::scan(db, &plan, &values, previous));
        report(
            cursor.base.pVtab,
            started.map(|scan| {
                cursor.scan = Some(scan);
            }),
        )
    }

    unsafe extern "C" fn next<T: StreamTable>(raw: *mut sqlite3_vtab_cursor) -> c_int {
        let cursor = cursor::<T>(raw);
        let result = match cursor.scan.as_mut() {
            Some(scan) => guard::run(T::NAME, || scan.next()),
            None => Ok(()),
        };
        report(cursor.base.pVtab, result)
    }

    unsafe extern "C" fn eof<T: StreamTable>(raw: *mut sqlite3_vtab_cursor) -> c_int {
        c_int::from(cursor::<T>(raw).scan.as_ref().is_none_or(|s| s.eof()))
    }

    unsafe extern "C" fn column<T: StreamTable>(
        raw: *mut sqlite3_vtab_cursor,
        ctx: *mut sqlite3_context,
        i: c_int,
    ) -> c_int {
        let value = cursor::<T>(raw).scan.as_ref().map_or(Value::Null, |s| s.column(i as usize));
        Context::from_raw(ctx).set_result(&value);
        SQLITE_OK
    }

    unsafe extern "C" fn rowid<T: StreamTable>(raw: *mut sqlite3_vtab_cursor, out: *mut i64) -> c_int {
        *out = cursor::<T>(raw).scan.as_ref().map_or(0, |s| s.rowid());
        SQLITE_OK
    }
}
