//! What both benchmark binaries need: paths, the extension loaded into rusqlite, generated databases.

use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::{Connection, OpenFlags};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn library() -> PathBuf {
    std::env::var("VIGIL_EXTENSION").map(PathBuf::from).unwrap_or_else(|_| root().join("target/release/libvigil.so"))
}

/// Opens `db` with `flags` and loads the release build of vigil.
pub fn open(db: &Path, flags: OpenFlags) -> Connection {
    let conn = Connection::open_with_flags(db, flags).unwrap();
    unsafe {
        conn.load_extension_enable().unwrap();
        conn.load_extension(library(), None::<&str>).expect("build the extension first: cargo build --release");
        conn.load_extension_disable().unwrap();
    }
    conn
}

/// Generates `db` with ../shared/bench/make_db.py (or $VIGIL_MAKE_DB) unless it exists.
pub fn ensure(db: &Path, mb: u32, fragment: u32) {
    if db.exists() {
        return;
    }
    let script =
        std::env::var("VIGIL_MAKE_DB").map(PathBuf::from).unwrap_or_else(|_| root().join("../shared/bench/make_db.py"));
    eprintln!("generating {} ({mb} MiB, --fragment {fragment}) with {}", db.display(), script.display());
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let status = Command::new("python3")
        .arg(&script)
        .args(["--out", db.to_str().unwrap(), "--mb", &mb.to_string(), "--fragment", &fragment.to_string(), "--quiet"])
        .status()
        .expect("python3");
    assert!(status.success(), "make_db.py failed");
}

/// Runs a statement to the end, reading every column of every row (the health and scan benches).
#[allow(dead_code)]
pub fn drain(conn: &rusqlite::Connection, sql: &str) {
    let mut stmt = conn.prepare(sql).unwrap();
    let columns = stmt.column_count();
    let mut rows = stmt.query([]).unwrap();
    while let Some(row) = rows.next().unwrap() {
        for i in 0..columns {
            let _ = row.get_ref(i).unwrap();
        }
    }
}
