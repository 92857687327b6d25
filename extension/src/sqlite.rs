//! The one place that calls SQLite. A small safe layer over the host's `sqlite3_api_routines`: every other
//! module of vigil is safe Rust over these types.
//!
//! Nothing here links SQLite: each call goes through the function table the host handed to the entry point,
//! so vigil always runs on the host's own SQLite (its locks, its VFS, its version).
#![allow(unsafe_code)]
// Raw handles here are only those SQLite passes to vigil's callbacks (context, values, connection); vigil never
// fabricates one, so the functions taking them stay safe to call.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use sqlite3ext_sys::{
    sqlite3, sqlite3_api_routines, sqlite3_backup, sqlite3_context, sqlite3_file, sqlite3_index_info, sqlite3_module,
    sqlite3_stmt, sqlite3_value,
};

use crate::error::{Error, Result};

static API: AtomicPtr<sqlite3_api_routines> = AtomicPtr::new(ptr::null_mut());

/// Oldest host vigil accepts: SQLITE_DIRECTONLY (3.31), sqlite3_txn_state (3.34), RETURNING (3.35).
pub const MIN_HOST_VERSION: i32 = 3_035_000;

const SQLITE_OK: c_int = 0;
const SQLITE_ROW: c_int = 100;
const SQLITE_DONE: c_int = 101;
const SQLITE_BUSY: c_int = 5;
const SQLITE_LOCKED: c_int = 6;
/// The result code of an operation stopped by sqlite3_interrupt().
pub const SQLITE_INTERRUPT: c_int = 9;
const SQLITE_INTEGER: c_int = 1;
const SQLITE_FLOAT: c_int = 2;
const SQLITE_TEXT: c_int = 3;
const SQLITE_BLOB: c_int = 4;
const SQLITE_FCNTL_VFSNAME: c_int = 12;
const SQLITE_FCNTL_FILE_POINTER: c_int = 7;
const SQLITE_FCNTL_JOURNAL_POINTER: c_int = 28;
const SQLITE_FCNTL_DATA_VERSION: c_int = 35;
const SQLITE_DBCONFIG_ENABLE_TRIGGER: c_int = 1003;
/// xRead past the end of the file: SQLite zero-fills the rest of the buffer.
const SQLITE_IOERR_SHORT_READ: c_int = 522;

/// `sqlite3_create_function_v2` flags vigil uses.
pub mod function_flags {
    use std::ffi::c_int;
    pub const UTF8: c_int = 1;
    pub const DIRECTONLY: c_int = 0x0008_0000;
    pub const INNOCUOUS: c_int = 0x0020_0000;
}

/// `sqlite3_open_v2` flags vigil uses.
pub mod open_flags {
    use std::ffi::c_int;
    pub const READ_ONLY: c_int = 0x01;
    pub const READ_WRITE: c_int = 0x02;
    pub const CREATE: c_int = 0x04;
    pub const URI: c_int = 0x40;
}

/// Remembers the host's function table. Called once by the entry point, before anything else here.
pub fn install_api(api: *mut sqlite3_api_routines) {
    if !api.is_null() {
        API.store(api, Ordering::Release);
    }
}

fn api() -> &'static sqlite3_api_routines {
    let api = API.load(Ordering::Acquire);
    assert!(!api.is_null(), "vigil: SQLite API used before the extension was initialised");
    // SAFETY: the host keeps its routine table alive for the life of the process.
    unsafe { &*api }
}

/// Calls a routine of the host's table; a missing slot is a bug of the host, reported as a panic that the
/// callback guard turns into an SQL error.
macro_rules! call {
    ($name:ident ( $($arg:expr),* $(,)? )) => {
        (api().$name.expect(concat!("the host SQLite lacks sqlite3_", stringify!($name))))($($arg),*)
    };
}

/// SQLITE_TRANSIENT: SQLite copies the buffer before the call returns.
fn transient() -> Option<unsafe extern "C" fn(*mut c_void)> {
    // SAFETY: SQLite defines SQLITE_TRANSIENT as the destructor value -1 and never calls it.
    Some(unsafe { std::mem::transmute::<isize, unsafe extern "C" fn(*mut c_void)>(-1) })
}

fn c_string(text: &str, what: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error::new(format!("{what} contains a NUL byte")))
}

fn owned_text(raw: *const c_char) -> Option<String> {
    if raw.is_null() {
        return None;
    }
    // SAFETY: SQLite returns NUL-terminated strings that stay valid until the next call on the object.
    Some(unsafe { CStr::from_ptr(raw) }.to_string_lossy().into_owned())
}

/// Version of the host library, e.g. "3.40.1".
pub fn host_version() -> String {
    unsafe { owned_text(call!(libversion())) }.unwrap_or_default()
}

pub fn host_version_number() -> i32 {
    unsafe { call!(libversion_number()) }
}

pub fn host_source_id() -> String {
    unsafe { owned_text(call!(sourceid())) }.unwrap_or_default()
}

/// The host's compile-time options (without the SQLITE_ prefix), in the host's order.
pub fn host_compile_options() -> Vec<String> {
    (0..).map_while(|i| unsafe { owned_text(call!(compileoption_get(i))) }).collect()
}

/// The host's own `sqlite_compileoption_used(name)`: vigil's override of that function hands every other
/// name to it.
pub fn compileoption_used(name: &str) -> bool {
    match CString::new(name) {
        Ok(name) => unsafe { call!(compileoption_used(name.as_ptr())) != 0 },
        Err(_) => false,
    }
}

/// An SQL value, as SQLite stores it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    /// TEXT that is not valid UTF-8 (SQLite stores what it is given): kept byte for byte.
    RawText(Vec<u8>),
    Blob(Vec<u8>),
}

impl Value {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            Value::Real(r) => Some(*r as i64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Integer(i) => Some(*i as f64),
            Value::Real(r) => Some(*r),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Reads a function or virtual-table argument.
pub fn read_value(raw: *mut sqlite3_value) -> Value {
    unsafe {
        match call!(value_type(raw)) {
            SQLITE_INTEGER => Value::Integer(call!(value_int64(raw))),
            SQLITE_FLOAT => Value::Real(call!(value_double(raw))),
            SQLITE_TEXT => {
                let text = call!(value_text(raw));
                let len = call!(value_bytes(raw)) as usize;
                text_value(text.cast(), len)
            }
            SQLITE_BLOB => {
                let data = call!(value_blob(raw));
                let len = call!(value_bytes(raw)) as usize;
                Value::Blob(bytes(data.cast(), len).to_vec())
            }
            _ => Value::Null,
        }
    }
}

fn bytes<'a>(data: *const u8, len: usize) -> &'a [u8] {
    if data.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: SQLite guarantees `len` readable bytes at `data` until the next call on the object.
        unsafe { std::slice::from_raw_parts(data, len) }
    }
}

/// TEXT as a String when it is valid UTF-8, else its exact bytes.
fn text_value(data: *const u8, len: usize) -> Value {
    let raw = bytes(data, len);
    match std::str::from_utf8(raw) {
        Ok(text) => Value::Text(text.to_owned()),
        Err(_) => Value::RawText(raw.to_vec()),
    }
}

/// The context of a running SQL function call: where its result goes.
pub struct Context(*mut sqlite3_context);

impl Context {
    pub fn from_raw(raw: *mut sqlite3_context) -> Self {
        Context(raw)
    }

    /// The connection that called the function.
    pub fn db(&self) -> Db {
        Db(unsafe { call!(context_db_handle(self.0)) })
    }

    pub fn set_result(&self, value: &Value) {
        unsafe {
            match value {
                Value::Null => call!(result_null(self.0)),
                Value::Integer(i) => call!(result_int64(self.0, *i)),
                Value::Real(r) => call!(result_double(self.0, *r)),
                Value::Text(s) => {
                    call!(result_text64(self.0, s.as_ptr().cast(), s.len() as u64, transient(), 1))
                }
                Value::RawText(t) => {
                    call!(result_text64(self.0, t.as_ptr().cast(), t.len() as u64, transient(), 1))
                }
                Value::Blob(b) => {
                    call!(result_blob64(self.0, b.as_ptr().cast(), b.len() as u64, transient()))
                }
            }
        }
    }

    pub fn set_error(&self, error: &Error) {
        let message = crate::error::bounded(error.message());
        unsafe {
            call!(result_error(self.0, message.as_ptr().cast(), message.len() as c_int));
            if error.code() != 1 {
                call!(result_error_code(self.0, error.code()));
            }
        }
    }
}

/// A connection handle owned by someone else (the host): never closed here.
#[derive(Clone, Copy)]
pub struct Db(*mut sqlite3);

impl Db {
    pub fn from_raw(raw: *mut sqlite3) -> Self {
        Db(raw)
    }

    pub fn raw(&self) -> *mut sqlite3 {
        self.0
    }

    fn error(&self, rc: c_int) -> Error {
        let message = unsafe { owned_text(call!(errmsg(self.0))) }.unwrap_or_default();
        let code = unsafe { call!(extended_errcode(self.0)) };
        let code = if code != 0 { code } else { rc };
        Error::with_code(message, code)
    }

    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        Ok(Statement { raw: self.prepare_raw(sql)?, db: *self, _db: PhantomData })
    }

    /// A statement not tied to a borrow of this handle, for a virtual-table cursor: SQLite closes every
    /// cursor (which finalizes its statement) before it closes the connection.
    pub fn prepare_for_cursor(&self, sql: &str) -> Result<Statement<'static>> {
        Ok(Statement { raw: self.prepare_raw(sql)?, db: *self, _db: PhantomData })
    }

    fn prepare_raw(&self, sql: &str) -> Result<*mut sqlite3_stmt> {
        let mut raw = ptr::null_mut();
        let rc =
            unsafe { call!(prepare_v2(self.0, sql.as_ptr().cast(), sql.len() as c_int, &mut raw, ptr::null_mut())) };
        if rc != SQLITE_OK {
            return Err(self.error(rc));
        }
        if raw.is_null() {
            return Err(Error::new(format!("no SQL statement in {}", crate::error::quoted(sql))));
        }
        Ok(raw)
    }

    /// Whether `sql` is exactly one statement (nothing but whitespace or comments after it).
    pub fn is_single_statement(&self, sql: &str) -> Result<bool> {
        let mut raw = ptr::null_mut();
        let mut tail: *const c_char = ptr::null();
        let rc = unsafe { call!(prepare_v2(self.0, sql.as_ptr().cast(), sql.len() as c_int, &mut raw, &mut tail)) };
        if rc != SQLITE_OK {
            return Err(self.error(rc));
        }
        if raw.is_null() {
            return Ok(false);
        }
        let _stmt = Statement { raw, db: *self, _db: PhantomData };
        let used = (tail as usize).saturating_sub(sql.as_ptr() as usize).min(sql.len());
        let rest = &sql.as_bytes()[used..];
        if rest.iter().all(u8::is_ascii_whitespace) {
            return Ok(true);
        }
        // Only a comment may follow: preparing it yields no statement.
        let rest = std::str::from_utf8(rest).unwrap_or("x");
        let mut next = ptr::null_mut();
        let rc =
            unsafe { call!(prepare_v2(self.0, rest.as_ptr().cast(), rest.len() as c_int, &mut next, ptr::null_mut())) };
        if !next.is_null() {
            unsafe { call!(finalize(next)) };
            return Ok(false);
        }
        Ok(rc == SQLITE_OK)
    }

    /// Runs one or more statements that return nothing of interest.
    pub fn exec(&self, sql: &str) -> Result<()> {
        let sql = c_string(sql, "SQL text")?;
        let mut message: *mut c_char = ptr::null_mut();
        let rc = unsafe { call!(exec(self.0, sql.as_ptr(), None, ptr::null_mut(), &mut message)) };
        if rc == SQLITE_OK {
            return Ok(());
        }
        let text = owned_text(message);
        unsafe { call!(free(message.cast())) };
        let mut error = self.error(rc);
        if let Some(text) = text {
            error = Error::with_code(text, error.code());
        }
        Err(error)
    }

    /// Every row of a query, all columns.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let mut stmt = self.prepare(sql)?;
        stmt.bind_all(params)?;
        let mut rows = Vec::new();
        while stmt.step()? {
            rows.push(stmt.row());
        }
        Ok(rows)
    }

    /// Runs `work` inside SAVEPOINT `name`: released when it succeeds, rolled back when it fails. Works in
    /// autocommit mode and inside the caller's own transaction alike.
    pub fn in_savepoint<T>(&self, name: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
        self.exec(&format!("SAVEPOINT {name}"))?;
        let result = work();
        let end =
            if result.is_ok() { format!("RELEASE {name}") } else { format!("ROLLBACK TO {name}; RELEASE {name}") };
        self.exec(&end)?;
        result
    }

    /// The first column of the first row, or NULL when there is no row.
    pub fn query_value(&self, sql: &str, params: &[Value]) -> Result<Value> {
        let mut stmt = self.prepare(sql)?;
        stmt.bind_all(params)?;
        Ok(if stmt.step()? { stmt.column(0) } else { Value::Null })
    }

    /// The file behind a schema (`main`, an attached name); `None` for in-memory and temporary databases.
    pub fn filename(&self, schema: &str) -> Result<Option<String>> {
        let schema = c_string(schema, "schema name")?;
        let name = unsafe { owned_text(call!(db_filename(self.0, schema.as_ptr()))) };
        Ok(name.filter(|n| !n.is_empty()))
    }

    /// Whether a schema is attached read-only; `None` when no such schema is attached.
    pub fn is_readonly(&self, schema: &str) -> Result<Option<bool>> {
        let schema = c_string(schema, "schema name")?;
        Ok(match unsafe { call!(db_readonly(self.0, schema.as_ptr())) } {
            -1 => None,
            flag => Some(flag != 0),
        })
    }

    /// Whether the connection holds a read or write transaction on a schema right now, also one opened
    /// implicitly by the statement that is running (sqlite3_txn_state: 0 none, 1 read, 2 write).
    pub fn in_transaction(&self, schema: &str) -> Result<bool> {
        let schema = c_string(schema, "schema name")?;
        Ok(unsafe { call!(txn_state(self.0, schema.as_ptr())) } > 0)
    }

    /// Whether sqlite3_interrupt() was called on this connection during the running statement (Ctrl-C in a
    /// host, the `vigil` CLI on SIGINT/SIGTERM), so that vigil's own loops stop too. sqlite3_is_interrupted
    /// came with SQLite 3.41: older hosts always answer false.
    pub fn is_interrupted(&self) -> bool {
        type IsInterrupted = unsafe extern "C" fn(*mut sqlite3) -> c_int;
        if host_version_number() < 3_041_000 {
            return false;
        }
        // The vendored routine table ends with 3.39's db_name; 3.40 appended value_encoding, then 3.41
        // is_interrupted: the second slot past its end, present in every 3.41+ host's table.
        let slots = api() as *const sqlite3_api_routines as *const Option<IsInterrupted>;
        let index = std::mem::size_of::<sqlite3_api_routines>() / std::mem::size_of::<Option<IsInterrupted>>() + 1;
        // SAFETY: the host's table is at least that long (version checked above), slots are function pointers.
        match unsafe { *slots.add(index) } {
            Some(is_interrupted) => unsafe { is_interrupted(self.0) != 0 },
            None => false,
        }
    }

    /// Makes this connection's long statements stop (SQLITE_INTERRUPT) once `caller` is interrupted: for work
    /// vigil does on a connection of its own on behalf of a call the user may cancel. `caller` must outlive
    /// this connection.
    pub fn stop_when_interrupted(&self, caller: Db) {
        unsafe extern "C" fn check(caller: *mut c_void) -> c_int {
            c_int::from(Db(caller.cast()).is_interrupted())
        }
        unsafe { call!(progress_handler(self.0, 10_000, Some(check), caller.0.cast())) };
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE on this connection.
    pub fn changes(&self) -> i64 {
        i64::from(unsafe { call!(changes(self.0)) })
    }

    /// False while the connection has an open transaction (BEGIN without COMMIT).
    pub fn is_autocommit(&self) -> bool {
        unsafe { call!(get_autocommit(self.0)) != 0 }
    }

    /// The name of the VFS serving a schema (the outermost one when VFS shims are stacked).
    pub fn vfs_name(&self, schema: &str) -> Result<Option<String>> {
        let schema = c_string(schema, "schema name")?;
        let mut names: *mut c_char = ptr::null_mut();
        let rc = unsafe {
            call!(file_control(self.0, schema.as_ptr(), SQLITE_FCNTL_VFSNAME, (&mut names as *mut *mut c_char).cast()))
        };
        let text = owned_text(names);
        unsafe { call!(free(names.cast())) };
        Ok(if rc == SQLITE_OK { text.and_then(|t| t.split('/').next().map(str::to_string)) } else { None })
    }

    /// The open file behind a schema, as the connection's VFS holds it: reading through it takes no new file
    /// descriptor, so the process's POSIX locks on the file stay intact (closing any other descriptor of the
    /// file would drop them). `None` when the schema has no file open yet.
    pub fn database_file(&self, schema: &str) -> Result<Option<VfsFile<'_>>> {
        self.file_pointer(schema, SQLITE_FCNTL_FILE_POINTER)
    }

    /// The WAL file (in WAL mode) or rollback journal the connection has open for a schema, if any.
    pub fn journal_file(&self, schema: &str) -> Result<Option<VfsFile<'_>>> {
        self.file_pointer(schema, SQLITE_FCNTL_JOURNAL_POINTER)
    }

    fn file_pointer(&self, schema: &str, op: c_int) -> Result<Option<VfsFile<'_>>> {
        let schema = c_string(schema, "schema name")?;
        let mut file: *mut sqlite3_file = ptr::null_mut();
        let rc =
            unsafe { call!(file_control(self.0, schema.as_ptr(), op, (&mut file as *mut *mut sqlite3_file).cast())) };
        if rc != SQLITE_OK || file.is_null() || unsafe { (*file).pMethods.is_null() } {
            return Ok(None);
        }
        Ok(Some(VfsFile { raw: file, _db: PhantomData }))
    }

    /// The statements running on the connection now (stepped, neither done nor reset), also the one calling the
    /// current function.
    fn running(&self) -> Vec<*mut sqlite3_stmt> {
        let mut running = Vec::new();
        let mut stmt: *mut sqlite3_stmt = ptr::null_mut();
        loop {
            stmt = unsafe { call!(next_stmt(self.0, stmt)) };
            if stmt.is_null() {
                return running;
            }
            if unsafe { call!(stmt_busy(stmt)) } != 0 {
                running.push(stmt);
            }
        }
    }

    /// The SQL text of each running statement; `None` for a statement that kept no text (legacy
    /// sqlite3_prepare).
    pub fn running_statements(&self) -> Vec<Option<String>> {
        self.running().into_iter().map(|stmt| unsafe { owned_text(call!(sql(stmt))) }).collect()
    }

    /// SQLITE_FCNTL_DATA_VERSION of a schema: changes whenever a transaction commits on the file (any
    /// connection, this one included) and never inside a write transaction.
    pub fn data_version(&self, schema: &str) -> Result<u32> {
        let schema = c_string(schema, "schema name")?;
        let mut version: u32 = 0;
        let rc = unsafe {
            call!(file_control(self.0, schema.as_ptr(), SQLITE_FCNTL_DATA_VERSION, (&mut version as *mut u32).cast()))
        };
        if rc == SQLITE_OK {
            Ok(version)
        } else {
            Err(self.error(rc))
        }
    }

    /// Turns trigger firing on or off for this connection (SQLITE_DBCONFIG_ENABLE_TRIGGER): vigil's own
    /// connections apply restored rows without running the application's triggers again.
    pub fn set_triggers_enabled(&self, enabled: bool) -> Result<()> {
        let mut now: c_int = 0;
        let rc = unsafe {
            call!(db_config(self.0, SQLITE_DBCONFIG_ENABLE_TRIGGER, c_int::from(enabled), &mut now as *mut c_int))
        };
        if rc == SQLITE_OK && (now != 0) == enabled {
            Ok(())
        } else {
            Err(Error::new("cannot switch triggers on this connection"))
        }
    }

    pub fn set_busy_timeout(&self, millis: i32) -> Result<()> {
        let rc = unsafe { call!(busy_timeout(self.0, millis)) };
        if rc == SQLITE_OK {
            Ok(())
        } else {
            Err(self.error(rc))
        }
    }
}

/// A file as a connection's VFS has it open (database, WAL or journal). Valid while the connection keeps it
/// open, which the borrow of the connection stands for; used only from the connection's thread.
pub struct VfsFile<'db> {
    raw: *mut sqlite3_file,
    _db: PhantomData<&'db Db>,
}

/// Bytes of a database file mapped by its VFS ([`VfsFile::fetch`]). The copy that fetched them hands them to
/// another thread to read, and takes them back to unfetch before its read transaction ends.
pub struct Mapped {
    data: *const u8,
    len: usize,
    offset: u64,
}

// SAFETY: read-only file memory that nothing writes while the fetching connection's read transaction lasts;
// only the fetching thread unfetches it.
unsafe impl Send for Mapped {}

impl Mapped {
    /// MADV_DONTNEED on the whole memory pages inside the mapping: for a shared file mapping that only
    /// unmaps them from this process (a later read maps them again from the page cache).
    fn release_pages(&self) {
        #[cfg(target_os = "linux")]
        {
            const PAGE: usize = 4096;
            let start = (self.data as usize).div_ceil(PAGE) * PAGE;
            let end = (self.data as usize + self.len) / PAGE * PAGE;
            if end > start {
                unsafe { libc::madvise(start as *mut c_void, end - start, libc::MADV_DONTNEED) };
            }
        }
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: xFetch mapped `len` bytes at `data`; they stay mapped until unfetched, which consumes self.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl VfsFile<'_> {
    fn methods(&self) -> &sqlite3ext_sys::sqlite3_io_methods {
        // SAFETY: file_pointer returned the file only with its methods set; they live as long as the file.
        unsafe { &*(*self.raw).pMethods }
    }

    /// Fills `buffer` from `offset`; bytes past the end of the file read as zeros (SQLite's short read).
    pub fn read_at(&self, buffer: &mut [u8], offset: u64) -> Result<()> {
        let read = self.methods().xRead.ok_or_else(|| Error::new("the VFS file has no xRead"))?;
        let rc = unsafe { read(self.raw, buffer.as_mut_ptr().cast(), buffer.len() as c_int, offset as i64) };
        match rc {
            SQLITE_OK | SQLITE_IOERR_SHORT_READ => Ok(()),
            rc => Err(Error::with_code(format!("reading {} bytes at offset {offset} failed", buffer.len()), rc)),
        }
    }

    /// The file's bytes `offset..offset + len` as the VFS has them memory-mapped (xFetch; needs the
    /// connection's `mmap_size` to cover them), to read without copying. None when the VFS maps nothing there.
    /// Every mapping must go back through [`VfsFile::unfetch`] while the connection is open.
    pub fn fetch(&self, offset: u64, len: usize) -> Option<Mapped> {
        let methods = self.methods();
        let fetch = methods.xFetch.filter(|_| methods.iVersion >= 3)?;
        let mut data: *mut c_void = ptr::null_mut();
        let rc = unsafe { fetch(self.raw, offset as i64, c_int::try_from(len).ok()?, &mut data) };
        (rc == SQLITE_OK && !data.is_null()).then_some(Mapped { data: data as *const u8, len, offset })
    }

    /// Hands a mapping back (xUnfetch), first dropping its pages from this process's page tables: they stay
    /// in the page cache, and the process's resident memory stays flat instead of growing with the file.
    pub fn unfetch(&self, mapped: Mapped) {
        mapped.release_pages();
        if let Some(unfetch) = self.methods().xUnfetch {
            unsafe { unfetch(self.raw, mapped.offset as i64, mapped.data as *mut c_void) };
        }
    }

    pub fn size(&self) -> Result<u64> {
        let file_size = self.methods().xFileSize.ok_or_else(|| Error::new("the VFS file has no xFileSize"))?;
        let mut size: i64 = 0;
        let rc = unsafe { file_size(self.raw, &mut size) };
        if rc == SQLITE_OK {
            Ok(size as u64)
        } else {
            Err(Error::with_code("cannot read the file size", rc))
        }
    }

    /// Copies the first `buffer.len()` bytes of the shared-memory wal-index (WAL mode only) without
    /// extending it; `false` when the VFS has no wal-index mapped for this file.
    pub fn read_wal_index(&self, buffer: &mut [u8]) -> bool {
        const REGION: usize = 32768;
        let methods = self.methods();
        if methods.iVersion < 2 || buffer.len() > REGION {
            return false;
        }
        let Some(map) = methods.xShmMap else { return false };
        let mut region: *mut c_void = ptr::null_mut();
        let rc = unsafe { map(self.raw, 0, REGION as c_int, 0, &mut region) };
        if rc != SQLITE_OK || region.is_null() {
            return false;
        }
        // SAFETY: the region is REGION bytes of shared memory; other processes may write it concurrently,
        // so it is copied with volatile reads and the caller validates what it got (checksums, two copies).
        for (i, byte) in buffer.iter_mut().enumerate() {
            *byte = unsafe { ptr::read_volatile(region.cast::<u8>().add(i)) };
        }
        true
    }
}

/// The `file:` URI that opens `path` with `params` (SQLite's URI syntax: every byte that is not plainly safe
/// percent-encoded, so that `?`, `#`, `%` and spaces in a name stay part of it).
pub fn file_uri(path: &std::path::Path, params: &str) -> String {
    let mut out = String::from("file:");
    for &byte in path.as_os_str().as_encoded_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{out}?{params}")
}

/// A database file opened read-only through the host's default VFS, to read its bytes (salvage, diagnose).
/// Going through the VFS matters: POSIX drops every lock a process holds on a file when the process closes
/// any descriptor of it, and the unix VFS keeps one lock table per file for the whole process, deferring
/// that close while a connection of the process holds a lock. A plain `File` would silently release the
/// application's locks on its own database.
pub struct OwnedVfsFile {
    raw: *mut sqlite3_file,
    /// The sqlite3_file, szOsFile bytes, 8-aligned.
    _storage: Vec<u64>,
    name: *const c_char,
    locked: bool,
}

impl OwnedVfsFile {
    pub fn open_database(path: &str) -> Result<OwnedVfsFile> {
        const SQLITE_OPEN_MAIN_DB: c_int = 0x100;
        if host_version_number() < 3_032_000 {
            return Err(Error::new("reading a database file directly needs SQLite 3.32 or newer as the host"));
        }
        let cpath = c_string(path, "database path")?;
        let vfs = unsafe { call!(vfs_find(ptr::null())) };
        if vfs.is_null() {
            return Err(Error::new("the host SQLite has no default VFS"));
        }
        // SAFETY: vfs is the host's registered default VFS; it lives as long as the process.
        let (size, open) = unsafe { ((*vfs).szOsFile, (*vfs).xOpen) };
        let open = open.ok_or_else(|| Error::new("the default VFS has no xOpen"))?;
        let mut storage = vec![0u64; (size.max(8) as usize).div_ceil(8)];
        let raw = storage.as_mut_ptr().cast::<sqlite3_file>();
        // xOpen wants a name made by sqlite3_create_filename (the VFS may read URI parameters after it).
        let name = unsafe { call!(create_filename(cpath.as_ptr(), c"".as_ptr(), c"".as_ptr(), 0, ptr::null_mut())) };
        if name.is_null() {
            return Err(Error::new("out of memory"));
        }
        let file = OwnedVfsFile { raw, _storage: storage, name, locked: false };
        let mut out_flags: c_int = 0;
        let rc = unsafe { open(vfs, name, raw, open_flags::READ_ONLY | SQLITE_OPEN_MAIN_DB, &mut out_flags) };
        if rc != SQLITE_OK {
            return Err(Error::with_code(format!("cannot open {path}"), rc));
        }
        Ok(file)
    }

    fn methods(&self) -> Option<&sqlite3ext_sys::sqlite3_io_methods> {
        // SAFETY: xOpen set pMethods (or left it null on failure); the methods live as long as the VFS.
        unsafe { (*self.raw).pMethods.as_ref() }
    }

    /// Reads into `buffer` from `offset`; returns how many bytes the file had there (the rest is zeroed).
    pub fn read_at(&self, buffer: &mut [u8], offset: u64) -> usize {
        let Some(read) = self.methods().and_then(|m| m.xRead) else { return 0 };
        let size = self.size().unwrap_or(0);
        let rc = unsafe { read(self.raw, buffer.as_mut_ptr().cast(), buffer.len() as c_int, offset as i64) };
        match rc {
            SQLITE_OK => buffer.len(),
            SQLITE_IOERR_SHORT_READ => size.saturating_sub(offset).min(buffer.len() as u64) as usize,
            _ => 0,
        }
    }

    /// Takes a SHARED lock (what a reader holds: writers of a rollback-journal database cannot commit while
    /// it is held), retrying for up to `wait`; false when a writer kept it longer. Released on drop.
    pub fn lock_shared(&mut self, wait: std::time::Duration) -> bool {
        const SQLITE_LOCK_SHARED: c_int = 1;
        let Some(lock) = self.methods().and_then(|m| m.xLock) else { return false };
        let started = std::time::Instant::now();
        loop {
            if unsafe { lock(self.raw, SQLITE_LOCK_SHARED) } == SQLITE_OK {
                self.locked = true;
                return true;
            }
            if started.elapsed() >= wait {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    pub fn size(&self) -> Result<u64> {
        let file_size = self.methods().and_then(|m| m.xFileSize).ok_or_else(|| Error::new("the file is not open"))?;
        let mut size: i64 = 0;
        match unsafe { file_size(self.raw, &mut size) } {
            SQLITE_OK => Ok(size as u64),
            rc => Err(Error::with_code("cannot read the file size", rc)),
        }
    }
}

impl Drop for OwnedVfsFile {
    fn drop(&mut self) {
        if self.locked {
            if let Some(unlock) = self.methods().and_then(|m| m.xUnlock) {
                unsafe { unlock(self.raw, 0) };
            }
        }
        if let Some(close) = self.methods().and_then(|m| m.xClose) {
            unsafe { close(self.raw) };
        }
        unsafe { call!(free_filename(self.name as *mut c_char)) };
    }
}

/// A second connection, opened through the host's library (never a linked SQLite), closed on drop.
pub struct OwnedDb(Db);

impl OwnedDb {
    /// Opens `path` with [`open_flags`], on the named VFS (the host's default when `None`). Connections to
    /// one file must share a VFS, or their locks would not see each other.
    pub fn open(path: &str, flags: c_int, vfs: Option<&str>) -> Result<OwnedDb> {
        let cpath = c_string(path, "database path")?;
        let cvfs = vfs.map(|v| c_string(v, "VFS name")).transpose()?;
        let vfs_ptr = cvfs.as_ref().map_or(ptr::null(), |v| v.as_ptr());
        let mut raw = ptr::null_mut();
        let rc = unsafe { call!(open_v2(cpath.as_ptr(), &mut raw, flags, vfs_ptr)) };
        let db = OwnedDb(Db(raw));
        if rc != SQLITE_OK {
            let error = if raw.is_null() { Error::with_code("out of memory", rc) } else { db.0.error(rc) };
            return Err(error.context(format!("cannot open {path}")));
        }
        Ok(db)
    }

    pub fn db(&self) -> Db {
        self.0
    }
}

impl Drop for OwnedDb {
    fn drop(&mut self) {
        if !self.0 .0.is_null() {
            unsafe { call!(close_v2(self.0 .0)) };
        }
    }
}

/// A prepared statement, finalized on drop.
pub struct Statement<'db> {
    raw: *mut sqlite3_stmt,
    db: Db,
    _db: PhantomData<&'db Db>,
}

impl Statement<'_> {
    pub fn bind(&mut self, index: usize, value: &Value) -> Result<()> {
        let i = index as c_int;
        let rc = unsafe {
            match value {
                Value::Null => call!(bind_null(self.raw, i)),
                Value::Integer(v) => call!(bind_int64(self.raw, i, *v)),
                Value::Real(v) => call!(bind_double(self.raw, i, *v)),
                Value::Text(s) => {
                    call!(bind_text64(self.raw, i, s.as_ptr().cast(), s.len() as u64, transient(), 1))
                }
                Value::RawText(t) => {
                    call!(bind_text64(self.raw, i, t.as_ptr().cast(), t.len() as u64, transient(), 1))
                }
                Value::Blob(b) => {
                    call!(bind_blob64(self.raw, i, b.as_ptr().cast(), b.len() as u64, transient()))
                }
            }
        };
        if rc == SQLITE_OK {
            Ok(())
        } else {
            Err(self.db.error(rc))
        }
    }

    pub fn bind_all(&mut self, params: &[Value]) -> Result<()> {
        for (i, value) in params.iter().enumerate() {
            self.bind(i + 1, value)?;
        }
        Ok(())
    }

    /// Advances to the next row: `true` when a row is ready, `false` when done. Every failure, including a
    /// corrupt page met half-way, is an error carrying SQLite's message.
    pub fn step(&mut self) -> Result<bool> {
        match unsafe { call!(step(self.raw)) } {
            SQLITE_ROW => Ok(true),
            SQLITE_DONE => Ok(false),
            rc => Err(self.db.error(rc)),
        }
    }

    /// Makes the statement ready to run again with new bindings.
    pub fn reset(&mut self) {
        unsafe { call!(reset(self.raw)) };
    }

    /// Binds `params`, runs the statement to its end and resets it: for statements run once per row.
    pub fn run(&mut self, params: &[Value]) -> Result<()> {
        self.bind_all(params)?;
        let done = self.step().map(|_| ());
        self.reset();
        done
    }

    /// The connection the statement belongs to.
    pub fn db(&self) -> Db {
        self.db
    }

    pub fn column_count(&self) -> usize {
        unsafe { call!(column_count(self.raw)) as usize }
    }

    pub fn column_name(&self, i: usize) -> String {
        unsafe { owned_text(call!(column_name(self.raw, i as c_int))) }.unwrap_or_default()
    }

    pub fn column(&self, i: usize) -> Value {
        let (raw, i) = (self.raw, i as c_int);
        unsafe {
            match call!(column_type(raw, i)) {
                SQLITE_INTEGER => Value::Integer(call!(column_int64(raw, i))),
                SQLITE_FLOAT => Value::Real(call!(column_double(raw, i))),
                SQLITE_TEXT => {
                    let text = call!(column_text(raw, i));
                    text_value(text, call!(column_bytes(raw, i)) as usize)
                }
                SQLITE_BLOB => {
                    let data = call!(column_blob(raw, i));
                    Value::Blob(bytes(data.cast(), call!(column_bytes(raw, i)) as usize).to_vec())
                }
                _ => Value::Null,
            }
        }
    }

    pub fn row(&self) -> Vec<Value> {
        (0..self.column_count()).map(|i| self.column(i)).collect()
    }
}

impl Drop for Statement<'_> {
    fn drop(&mut self) {
        unsafe { call!(finalize(self.raw)) };
    }
}

/// Progress of an online backup step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupProgress {
    /// More pages to copy: (remaining, total). The destination stays write-locked until the backup is done
    /// or dropped.
    More {
        remaining: i32,
        total: i32,
    },
    /// Another connection holds a lock the step needs; nothing was copied.
    Busy,
    Done,
}

/// An online backup (`sqlite3_backup_*`) from one connection's schema into another's, finished on drop.
pub struct Backup<'a> {
    raw: *mut sqlite3_backup,
    dest: Db,
    _conns: PhantomData<&'a Db>,
}

impl<'a> Backup<'a> {
    pub fn new(dest: &'a Db, dest_schema: &str, source: &'a Db, source_schema: &str) -> Result<Self> {
        let dest_name = c_string(dest_schema, "schema name")?;
        let source_name = c_string(source_schema, "schema name")?;
        let raw = unsafe { call!(backup_init(dest.0, dest_name.as_ptr(), source.0, source_name.as_ptr())) };
        if raw.is_null() {
            return Err(dest.error(1).context("cannot start the backup"));
        }
        Ok(Backup { raw, dest: *dest, _conns: PhantomData })
    }

    /// Copies up to `pages` pages (all when negative; none with 0, which only takes the destination's write
    /// lock). Busy and locked are reported as `Busy` so that the caller decides how long to wait.
    pub fn step(&mut self, pages: i32) -> Result<BackupProgress> {
        let rc = unsafe { call!(backup_step(self.raw, pages)) };
        // Primary codes: a WAL destination can answer SQLITE_BUSY_SNAPSHOT.
        match rc & 0xff {
            SQLITE_DONE => Ok(BackupProgress::Done),
            SQLITE_BUSY | SQLITE_LOCKED => Ok(BackupProgress::Busy),
            SQLITE_OK => Ok(BackupProgress::More {
                remaining: unsafe { call!(backup_remaining(self.raw)) },
                total: unsafe { call!(backup_pagecount(self.raw)) },
            }),
            _ => Err(self.dest.error(rc).context("backup step failed")),
        }
    }
}

impl Drop for Backup<'_> {
    fn drop(&mut self) {
        unsafe { call!(backup_finish(self.raw)) };
    }
}

/// Hands an entry-point error message to SQLite, which frees it with sqlite3_free.
pub fn set_init_error(err: *mut *mut c_char, message: &str) {
    give_string(err, message);
}

/// Stores in `slot` a copy of `text` allocated by SQLite, which frees it (error messages, idxStr); a string
/// already there is freed first.
pub fn give_string(slot: *mut *mut c_char, text: &str) {
    if slot.is_null() || API.load(Ordering::Acquire).is_null() {
        return;
    }
    unsafe {
        let buffer = call!(malloc(text.len() as c_int + 1)).cast::<u8>();
        if buffer.is_null() {
            return;
        }
        ptr::copy_nonoverlapping(text.as_ptr(), buffer, text.len());
        *buffer.add(text.len()) = 0;
        if !(*slot).is_null() {
            call!(free((*slot).cast()));
        }
        *slot = buffer.cast();
    }
}

/// Registers a scalar SQL function whose state is the closure `func`, owned by SQLite from here on: it is dropped by
/// the destructor SQLite calls when the function is replaced or the connection closes (or at once when the
/// registration fails). Without it every connection that loads vigil kept its closures for the life of the process
/// (about 2.4 KB a load: 140 MB an hour for `vigil watch` over 1000 databases).
/// `flags`: [`function_flags`].
pub fn create_scalar<F>(db: Db, name: &str, arity: c_int, flags: c_int, func: F) -> Result<()>
where
    F: Fn(*mut sqlite3_context, &[*mut sqlite3_value]) + 'static,
{
    unsafe extern "C" fn call<F: Fn(*mut sqlite3_context, &[*mut sqlite3_value])>(
        ctx: *mut sqlite3_context,
        argc: c_int,
        argv: *mut *mut sqlite3_value,
    ) {
        // SAFETY: the user data is the closure registered below, alive until SQLite calls `destroy`; argv holds
        // argc values for the duration of the call.
        let func = unsafe { &*call!(user_data(ctx)).cast::<F>() };
        let args = match usize::try_from(argc) {
            Ok(n) if n > 0 && !argv.is_null() => unsafe { std::slice::from_raw_parts(argv, n) },
            _ => &[],
        };
        func(ctx, args);
    }
    unsafe extern "C" fn destroy<F>(state: *mut c_void) {
        // SAFETY: `state` is the Box::into_raw of create_scalar, handed back exactly once.
        drop(unsafe { Box::from_raw(state.cast::<F>()) });
    }
    let cname = c_string(name, "function name")?;
    let state = Box::into_raw(Box::new(func)).cast::<c_void>();
    let rc = unsafe {
        call!(create_function_v2(
            db.0,
            cname.as_ptr(),
            arity,
            flags,
            state,
            Some(call::<F>),
            None,
            None,
            Some(destroy::<F>)
        ))
    };
    match rc {
        SQLITE_OK => Ok(()),
        rc => Err(db.error(rc)),
    }
}

/// Registers a virtual-table module that lives as long as the process (a constant).
pub fn create_module(db: Db, name: &str, module: &'static sqlite3_module) -> Result<()> {
    let name = c_string(name, "module name")?;
    let rc = unsafe { call!(create_module_v2(db.0, name.as_ptr(), module, ptr::null_mut(), None)) };
    match rc {
        SQLITE_OK => Ok(()),
        rc => Err(db.error(rc)),
    }
}

/// Declares a virtual table's columns from inside xConnect.
pub fn declare_vtab(db: Db, schema: &str) -> Result<()> {
    let schema = c_string(schema, "virtual table schema")?;
    match unsafe { call!(declare_vtab(db.0, schema.as_ptr())) } {
        SQLITE_OK => Ok(()),
        rc => Err(db.error(rc)),
    }
}

/// The collation a constraint compares with, inside xBestIndex (`BINARY` when SQLite names none).
pub fn vtab_collation(info: *mut sqlite3_index_info, constraint: c_int) -> String {
    owned_text(unsafe { call!(vtab_collation(info, constraint)) }).unwrap_or_else(|| "BINARY".into())
}

// ---------------------------------------------------------------------------------------------------------
// Statement tracing (sqlite3_trace_v2), for query statistics. A connection has one trace callback: whoever
// installs one last (the host, the shell's `.trace`, Python's set_trace_callback) silently replaces the other.

/// sqlite3_trace_v2 event mask bits.
pub mod trace_mask {
    pub const STMT: u32 = 0x01;
    pub const PROFILE: u32 = 0x02;
    pub const ROW: u32 = 0x04;
    pub const CLOSE: u32 = 0x08;
}

/// `sqlite3_stmt_status` counters vigil reads.
#[derive(Clone, Copy, Debug)]
pub enum StmtCounter {
    FullscanStep = 1,
    Sort = 2,
    Autoindex = 3,
    VmStep = 4,
    Reprepare = 5,
}

/// A statement SQLite passed to a trace callback: valid only for the duration of that event.
#[derive(Clone, Copy)]
pub struct TracedStmt<'event> {
    raw: *mut sqlite3_stmt,
    _event: PhantomData<&'event ()>,
}

impl TracedStmt<'_> {
    /// Identifies the statement while it lives (its address; SQLite may reuse it after finalize).
    pub fn id(&self) -> usize {
        self.raw as usize
    }

    /// A cumulative counter of the statement (not reset: the host may read them too).
    pub fn counter(&self, which: StmtCounter) -> u32 {
        match api().stmt_status {
            Some(status) => unsafe { status(self.raw, which as c_int, 0) as u32 },
            None => 0,
        }
    }

    /// The statement's text with its bound parameters' values, at most `max_bytes` long; None when the host
    /// lacks sqlite3_expanded_sql or memory ran out.
    pub fn expanded_sql(&self, max_bytes: usize) -> Option<String> {
        let expand = api().expanded_sql?;
        let raw = unsafe { expand(self.raw) };
        if raw.is_null() {
            return None;
        }
        // SAFETY: sqlite3_expanded_sql returns a NUL-terminated string from sqlite3_malloc that the caller frees.
        let text = unsafe { CStr::from_ptr(raw) }.to_bytes();
        let cut = crate::error::cut_bytes(text, max_bytes);
        unsafe { call!(free(raw.cast())) };
        Some(cut)
    }

    /// Whether the statement cannot write the database.
    pub fn is_readonly(&self) -> bool {
        api().stmt_readonly.is_some_and(|readonly| unsafe { readonly(self.raw) } != 0)
    }
}

/// One trace event.
pub enum TraceEvent<'event> {
    /// A statement starts running (its first step), or, text starting with `--`, a trigger program starts
    /// inside the running statement.
    Stmt { stmt: TracedStmt<'event>, sql: &'event [u8] },
    /// The statement finished or was reset; `nanos` is SQLite's own (millisecond-quantised) time.
    Profile { stmt: TracedStmt<'event>, nanos: i64 },
    /// The statement produced a row.
    Row { stmt: TracedStmt<'event> },
    /// The connection is closing: the last event, after which the hook is removed and released.
    Close { db: Db },
}

/// What a trace hook does with events. It runs inside SQLite's calls on the connection's thread; it must not
/// run SQL on the connection.
pub trait TraceHandler: Send + Sync + 'static {
    fn event(&self, event: TraceEvent<'_>);
}

struct HookInner<H> {
    handler: H,
    /// SQLite holds a reference (an Arc count) to this hook, given when it was installed.
    held: std::sync::atomic::AtomicBool,
}

/// A trace handler that can be installed on a connection. SQLite holds one reference while it is installed;
/// it is given back when vigil uninstalls it, when the connection closes, or by [`TraceHook::release`] when
/// the host replaced it.
pub struct TraceHook<H: TraceHandler> {
    inner: std::sync::Arc<HookInner<H>>,
}

impl<H: TraceHandler> Clone for TraceHook<H> {
    fn clone(&self) -> Self {
        TraceHook { inner: self.inner.clone() }
    }
}

impl<H: TraceHandler> TraceHook<H> {
    pub fn new(handler: H) -> Self {
        TraceHook { inner: std::sync::Arc::new(HookInner { handler, held: false.into() }) }
    }

    pub fn handler(&self) -> &H {
        &self.inner.handler
    }

    fn context(&self) -> *mut c_void {
        std::sync::Arc::as_ptr(&self.inner) as *mut c_void
    }

    /// Makes this hook the connection's trace callback for the events in `mask` (replacing any other).
    pub fn install(&self, db: Db, mask: u32) -> Result<()> {
        let trace = api().trace_v2.ok_or_else(|| Error::new("the host SQLite lacks sqlite3_trace_v2"))?;
        if !self.inner.held.swap(true, Ordering::AcqRel) {
            // The reference SQLite holds: given back by uninstall, release or the close event.
            std::mem::forget(self.inner.clone());
        }
        let rc = unsafe { trace(db.0, mask, Some(trace_callback::<H>), self.context()) };
        if rc != SQLITE_OK {
            self.release();
            return Err(db.error(rc));
        }
        Ok(())
    }

    /// Removes the connection's trace callback, which must be this hook, and gives back SQLite's reference.
    pub fn uninstall(&self, db: Db) {
        if let Some(trace) = api().trace_v2 {
            unsafe { trace(db.0, 0, None, ptr::null_mut()) };
        }
        self.release();
    }

    /// Gives back SQLite's reference without touching the connection: the host replaced the callback.
    pub fn release(&self) {
        if self.inner.held.swap(false, Ordering::AcqRel) {
            // SAFETY: install leaked exactly one count for SQLite while `held` was false → true.
            unsafe { std::sync::Arc::decrement_strong_count(std::sync::Arc::as_ptr(&self.inner)) };
        }
    }
}

/// The C callback: turns SQLite's (mask, P, X) into a [`TraceEvent`]; panics never cross into SQLite.
unsafe extern "C" fn trace_callback<H: TraceHandler>(
    mask: std::ffi::c_uint,
    context: *mut c_void,
    p: *mut c_void,
    x: *mut c_void,
) -> c_int {
    if context.is_null() {
        return 0;
    }
    // SAFETY: `context` is the HookInner SQLite holds a reference to until the close event below.
    let inner = unsafe { &*(context as *const HookInner<H>) };
    let stmt = TracedStmt { raw: p.cast(), _event: PhantomData };
    let event = match mask {
        trace_mask::STMT if !x.is_null() => {
            TraceEvent::Stmt { stmt, sql: unsafe { CStr::from_ptr(x as *const c_char) }.to_bytes() }
        }
        trace_mask::PROFILE if !x.is_null() => TraceEvent::Profile { stmt, nanos: unsafe { *(x as *const i64) } },
        trace_mask::ROW => TraceEvent::Row { stmt },
        trace_mask::CLOSE => TraceEvent::Close { db: Db(p.cast()) },
        _ => return 0,
    };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.handler.event(event)));
    if mask == trace_mask::CLOSE {
        // sqlite3_close can still fail (unfinalized statements) and leave the connection open: untrace it so
        // that SQLite never calls a released hook, then give back SQLite's reference (last use of `inner`).
        if let Some(trace) = api().trace_v2 {
            unsafe { trace(p.cast(), 0, None, ptr::null_mut()) };
        }
        if inner.held.swap(false, Ordering::AcqRel) {
            unsafe { std::sync::Arc::decrement_strong_count(context as *const HookInner<H>) };
        }
    }
    0
}

impl Db {
    /// Addresses of the statements running on the connection now (stepped, neither done nor reset).
    pub fn running_statement_ids(&self) -> Vec<usize> {
        self.running().into_iter().map(|stmt| stmt as usize).collect()
    }

    /// Rows changed by INSERT, UPDATE and DELETE since the connection opened (triggers' included).
    pub fn total_changes(&self) -> i64 {
        i64::from(unsafe { call!(total_changes(self.0)) })
    }
}

/// Keeps this library mapped until the process ends, whatever connections close: SQLite unloads an extension
/// with the connection that loaded it, and query statistics live in the library's static memory (a web app that
/// opens a connection per request would lose them with each request). True when pinned.
pub fn pin_library() -> bool {
    static PINNED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PINNED.get_or_init(|| {
        // SAFETY: dladdr fills a zeroed Dl_info for an address inside this library; dlopen with RTLD_NOLOAD only
        // finds the already loaded library and marks it RTLD_NODELETE. The handle is deliberately never closed.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            let here = pin_library as *const c_void;
            if libc::dladdr(here, &mut info) == 0 || info.dli_fname.is_null() {
                return false;
            }
            !libc::dlopen(info.dli_fname, libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE).is_null()
        }
    })
}
