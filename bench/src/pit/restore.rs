//! Restore to an instant vs backup_restore: a copy of a generated database is journaled, takes `changes`
//! changes after the instant, is backed up with backup_to, and is then restored into new files both ways
//! (turn about, best of the runs, the page cache flushed with `sync` before each).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rusqlite::{params, Connection, OpenFlags};

use crate::common;

fn open(db: &Path) -> Connection {
    common::open(db, OpenFlags::default())
}

fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn sync() {
    Command::new("sync").status().unwrap();
}

fn json(conn: &Connection, sql: &str) -> serde_json::Value {
    let out: String = conn.query_row(sql, [], |r| r.get(0)).unwrap();
    serde_json::from_str(&out).unwrap()
}

fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The journal position of the committed state (0 when the journal is empty).
fn journal_position(conn: &Connection) -> i64 {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM vigil_pit_log", [], |r| r.get(0)).unwrap()
}

/// `n` changes in transactions of 1000: order updates, new events, deleted order lines, in equal turns.
fn apply_changes(conn: &Connection, n: i64, salt: i64) {
    let (orders, lines) = targets(conn, n / 3 + 1, salt);
    let mut update = conn.prepare("UPDATE orders SET status = 'refunded', note = ?2 WHERE id = ?1").unwrap();
    let mut insert = conn
        .prepare("INSERT INTO events(ts, kind, customer_id, order_id, data) VALUES (?1, 'bench', NULL, ?2, ?3)")
        .unwrap();
    let mut delete = conn.prepare("DELETE FROM order_items WHERE order_id = ?1 AND line_no = ?2").unwrap();
    for i in 0..n {
        if i % 1000 == 0 {
            conn.execute_batch(if i == 0 { "BEGIN" } else { "COMMIT; BEGIN" }).unwrap();
        }
        let k = (i / 3) as usize;
        match i % 3 {
            0 => update.execute(params![orders[k], format!("refund {salt}-{i}")]),
            1 => insert.execute(params![1_800_000_000 + i, orders[k], format!("{{\"bench\":{i},\"salt\":{salt}}}")]),
            _ => delete.execute(params![lines[k].0, lines[k].1]),
        }
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
}

/// `n` order ids and `n` order-line keys spread over the file, different for each `salt`.
fn targets(conn: &Connection, n: i64, salt: i64) -> (Vec<i64>, Vec<(i64, i64)>) {
    let orders: Vec<i64> = conn
        .prepare("SELECT id FROM orders WHERE id % 7 = ?2 LIMIT ?1")
        .unwrap()
        .query_map(params![n, salt % 7], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let lines: Vec<(i64, i64)> = conn
        .prepare("SELECT order_id, line_no FROM order_items WHERE order_id % 7 = ?2 LIMIT ?1")
        .unwrap()
        .query_map(params![n, (salt + 3) % 7], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(orders.len() as i64 == n && lines.len() as i64 == n, "the database is too small for {n} changes");
    (orders, lines)
}

/// The instant to restore to: a journal position, and the wall clock between its commit and the next.
struct Cut {
    seq: i64,
    rfc3339: String,
}

/// Journals the copy, writes some history before the instant and `changes` after it.
fn prepare(work: &Path, changes: i64, with_pit: bool) -> Option<Cut> {
    let conn = open(work);
    if !with_pit {
        apply_changes(&conn, changes, 1);
        return None;
    }
    let enabled = json(&conn, "SELECT pit_enable('*')");
    println!("pit_enable('*'): tracked {}, skipped {}", enabled["tracked"], enabled["skipped"]);
    apply_changes(&conn, 3000, 0);
    let seq = journal_position(&conn);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let rfc3339: String = conn.query_row("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')", [], |r| r.get(0)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let started = Instant::now();
    apply_changes(&conn, changes, 1);
    let after = journal_position(&conn);
    println!(
        "{changes} changes after the instant (seq {seq}, {rfc3339}): journal rows {}, written in {:.1} s",
        after - seq,
        started.elapsed().as_secs_f64()
    );
    Some(Cut { seq, rfc3339 })
}

fn timed<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let started = Instant::now();
    let out = f();
    (started.elapsed().as_secs_f64(), out)
}

pub fn run(source: &Path, dir: &Path, changes: i64, runs: usize, with_pit: bool) {
    let work = dir.join("restore.db");
    let (backup, into_b, into_p) = (dir.join("restore-backup.db"), dir.join("into-backup.db"), dir.join("into-pit.db"));
    remove_database(&work);
    std::fs::copy(source, &work).unwrap();
    let mib = std::fs::metadata(&work).unwrap().len() as f64 / 1048576.0;
    println!(
        "\nRESTORE TO AN INSTANT — {} ({mib:.0} MiB), best of {runs}, new target files",
        source.file_name().unwrap().to_string_lossy()
    );
    let cut = prepare(&work, changes, with_pit);
    let conn = open(&work);
    let made = json(&conn, &format!("SELECT backup_to({})", sql_text(backup.to_str().unwrap())));
    println!("backup_to: {} ms, verified {}", made["duration_ms"], made["verified"]);
    let mut best = Best { backup: f64::MAX, backup_quick: f64::MAX, pit: f64::MAX, copy: f64::MAX };
    let mut last_pit = serde_json::Value::Null;
    for _ in 0..runs {
        best.backup = best.backup.min(backup_restore(&conn, &backup, &into_b, ""));
        best.backup_quick = best.backup_quick.min(backup_restore(&conn, &backup, &into_b, QUICK));
        let Some(cut) = &cut else { continue };
        best.copy = best.copy.min(copy_live(&conn, &into_p));
        remove_database(&into_p);
        sync();
        let sql = format!("SELECT pit_restore('{{\"seq\":{}}}', {})", cut.seq, sql_text(into_p.to_str().unwrap()));
        let (s, out) = timed(|| json(&conn, &sql));
        best.pit = best.pit.min(s);
        last_pit = out;
    }
    print_restore(&best, &last_pit);
    if let Some(cut) = &cut {
        by_time(&conn, cut, &into_p);
    }
    drop(conn);
    for path in [&work, &backup, &into_b, &into_p] {
        remove_database(path);
    }
    let _ = std::fs::remove_file(format!("{}.vigil.json", backup.display()));
}

const QUICK: &str = r#"{"verify":"quick"}"#;

/// Best seconds of each way to restore.
struct Best {
    backup: f64,
    backup_quick: f64,
    pit: f64,
    copy: f64,
}

/// Seconds of a plain copy of the live database (backup_to, no check, not logged): the part of a restore from
/// the live base that does not depend on the journal.
fn copy_live(conn: &Connection, into: &Path) -> f64 {
    remove_database(into);
    sync();
    let sql =
        format!("SELECT backup_to({}, '{{\"verify\":\"none\",\"log\":false}}')", sql_text(into.to_str().unwrap()));
    let (s, out) = timed(|| json(conn, &sql));
    assert!(out["path"].is_string(), "backup_to: {out}");
    let _ = std::fs::remove_file(format!("{}.vigil.json", into.display()));
    remove_database(into);
    s
}

/// Seconds of one backup_restore of `backup` into the new file `into`, with `options` (JSON or empty).
fn backup_restore(conn: &Connection, backup: &Path, into: &Path, options: &str) -> f64 {
    remove_database(into);
    sync();
    let options = if options.is_empty() { String::new() } else { format!(", {}", sql_text(options)) };
    let sql = format!(
        "SELECT backup_restore({}, {}{options})",
        sql_text(backup.to_str().unwrap()),
        sql_text(into.to_str().unwrap())
    );
    let (s, out) = timed(|| json(conn, &sql));
    assert_eq!(out["ok"], true, "backup_restore: {out}");
    s
}

fn print_restore(best: &Best, pit: &serde_json::Value) {
    println!("{:<58} {:>8.2} s", "backup_restore(backup, new file) (drill: integrity_check)", best.backup);
    println!("{:<58} {:>8.2} s", format!("backup_restore(backup, new file, '{QUICK}')"), best.backup_quick);
    if best.pit == f64::MAX {
        println!("(pit_restore not measured)");
        return;
    }
    println!(
        "{:<58} {:>8.2} s   {:.2}× the first, {:.2}× the second   goal ≤ 1.5×",
        "pit_restore('{\"seq\":cut}', new file)",
        best.pit,
        best.pit / best.backup,
        best.pit / best.backup_quick
    );
    println!(
        "{:<58} {:>8.2} s   (of pit_restore's time: the copy of the live base; the rest is undo and checks)",
        "backup_to(new file, verify none) of the live database", best.copy
    );
    println!(
        "pit_restore said: cut {}, consistency {}, rows_changed {}, journal_rows_undone {}, verified {}, base {}",
        pit["cut"],
        pit["consistency"],
        pit["rows_changed"],
        pit["journal_rows_undone"],
        pit["verified"],
        pit["base"]["kind"]
    );
}

/// One restore to the RFC 3339 instant recorded between the two batches: it must cut at the same seq.
fn by_time(conn: &Connection, cut: &Cut, into: &Path) {
    remove_database(into);
    let sql = format!("SELECT pit_restore({}, {})", sql_text(&cut.rfc3339), sql_text(into.to_str().unwrap()));
    let (s, out) = timed(|| json(conn, &sql));
    let same = out["cut"]["seq"] == cut.seq;
    println!(
        "pit_restore('{}', new file): {s:.2} s, cut {} — {}",
        cut.rfc3339,
        out["cut"],
        if same { "the same seq as the recorded position" } else { "NOT the recorded position" }
    );
    remove_database(into);
}
