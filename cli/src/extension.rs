//! Finding and loading the vigil extension into a rusqlite connection.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::{Failure, Global};

const LIBRARY: &str = if cfg!(target_os = "macos") {
    "libvigil.dylib"
} else if cfg!(windows) {
    "vigil.dll"
} else {
    "libvigil.so"
};

/// --extension / $VIGIL_EXTENSION, else the library next to this executable.
fn library_path(global: &Global) -> Result<PathBuf, Failure> {
    if let Some(path) = &global.extension {
        return Ok(path.clone());
    }
    let exe = std::env::current_exe().map_err(|e| Failure::unknown(format!("cannot locate this executable: {e}")))?;
    let beside = exe.parent().unwrap_or(Path::new(".")).join(LIBRARY);
    if beside.exists() {
        return Ok(beside);
    }
    Err(Failure::unknown(format!(
        "cannot find the vigil extension: looked for {} (build it with `cargo build --release`, or pass --extension PATH)",
        beside.display()
    )))
}

/// Opens a database (never creating it) and loads vigil into the connection.
pub fn open(global: &Global, db: &Path, writable: bool) -> Result<Connection, Failure> {
    if !db.exists() {
        return Err(Failure::unknown(format!("{}: no such file", db.display())));
    }
    if db.is_dir() {
        return Err(Failure::unknown(format!(
            "{}: is a directory, not a database file; name the database file",
            db.display()
        )));
    }
    refuse_special_file(db)?;
    let mode = if writable { OpenFlags::SQLITE_OPEN_READ_WRITE } else { OpenFlags::SQLITE_OPEN_READ_ONLY };
    let flags = mode | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let mut conn = Connection::open_with_flags(db, flags)
        .map_err(|e| Failure::unknown(format!("cannot open {}: {e}", db.display())))?;
    crate::interrupt::wait_for_locks(&mut conn, global.busy_timeout).map_err(|e| Failure::unknown(e.to_string()))?;
    load(&conn, global)?;
    crate::interrupt::watch(&conn);
    Ok(conn)
}

/// A FIFO, device or socket in a database's place (after symlinks) is refused before SQLite opens it: opening a
/// FIFO blocks until a writer comes, which no signal interrupts, and a device reads as endless zeros.
fn refuse_special_file(db: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::FileTypeExt;
    let kind = match std::fs::metadata(db) {
        Ok(meta) => meta.file_type(),
        Err(e) => return Err(Failure::unknown(format!("cannot open {}: {e}", db.display()))),
    };
    let what = if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        return Ok(());
    };
    Err(Failure::unknown(format!("{}: is {what}, not a database file; name the database file", db.display())))
}

/// An in-memory connection with vigil loaded, for functions that work on files (backup_list, backup_verify,
/// backup_restore into a path) and for watching progress.
pub fn open_memory(global: &Global) -> Result<Connection, Failure> {
    let conn = Connection::open_in_memory().map_err(|e| Failure::unknown(e.to_string()))?;
    load(&conn, global)?;
    crate::interrupt::watch(&conn);
    Ok(conn)
}

fn load(conn: &Connection, global: &Global) -> Result<(), Failure> {
    let library = library_path(global)?;
    // SAFETY: loading vigil runs its entry point, which only registers functions on this connection.
    let loaded = unsafe {
        conn.load_extension_enable()
            .and_then(|_| conn.load_extension(&library, None::<&str>))
            .and_then(|_| conn.load_extension_disable())
    };
    loaded.map_err(|e| Failure::unknown(format!("cannot load the vigil extension {}: {e}", library.display())))
}
