//! Table-valued functions, computed eagerly: vigil's tables are small reports (a row per check, per
//! b-tree), so each call builds its rows in `filter` and the cursor walks them. Capabilities implement
//! [`TableFunction`]; this adapter handles the virtual-table protocol, arguments, errors and panics.

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
