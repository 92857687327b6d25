//! A pit_journal query for one table over the last minute of a journal of `rows` rows. Writing 10 million
//! changes through the triggers would take minutes, so the old rows are synthetic: real journal rows of two
//! tracked tables, copied into vigil_pit_log with `at` spread over the day before the last two minutes. The
//! last minute holds real changes written through the triggers.

use std::path::Path;
use std::time::Instant;

use rusqlite::{params, Connection, OpenFlags};

use crate::common;

const LOG: &str = "vigil_pit_log";
const RECENT: i64 = 1000;

fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// A few inserts, updates and deletes of `table`, journaled by its triggers; returns the table's journal id.
fn template_changes(conn: &Connection, table: &str, first_id: i64) -> i64 {
    let before: i64 = conn.query_row(&format!("SELECT coalesce(max(seq), 0) FROM {LOG}"), [], |r| r.get(0)).unwrap();
    conn.execute_batch(&format!(
        "INSERT INTO {table}(id, v, note) VALUES ({a}, 1, 'first'), ({b}, 2, 'second'), ({c}, 3, 'third');
         UPDATE {table} SET v = v + 10, note = 'changed' WHERE id IN ({a}, {b});
         DELETE FROM {table} WHERE id = {c};",
        a = first_id,
        b = first_id + 1,
        c = first_id + 2
    ))
    .unwrap();
    conn.query_row(&format!("SELECT DISTINCT tbl FROM {LOG} WHERE seq > ?1"), [before], |r| r.get(0)).unwrap()
}

/// The log's columns other than seq, with `at` and `txn` replaced by the synthetic row's.
fn copied_columns(conn: &Connection) -> (String, String) {
    let names: Vec<String> = conn
        .prepare(&format!("SELECT name FROM pragma_table_info('{LOG}') WHERE name <> 'seq' ORDER BY cid"))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let values: Vec<String> = names
        .iter()
        .map(|n| match n.as_str() {
            "at" => "?1 + n.i * ?2".to_string(),
            "txn" => "NULL".to_string(),
            other => format!("tpl.\"{other}\""),
        })
        .collect();
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    (quoted.join(", "), values.join(", "))
}

/// Copies the template rows (seq ≤ `template_end`) `rows` times over, their `at` from a day ago to two minutes
/// ago, in transactions of a million.
fn synthesize(conn: &Connection, template_end: i64, rows: i64) {
    let now: f64 = conn.query_row("SELECT julianday('now')", [], |r| r.get(0)).unwrap();
    let (start, end) = (now - 1.0, now - 2.0 / 1440.0);
    conn.execute(&format!("UPDATE {LOG} SET at = ?1 WHERE seq <= ?2"), params![start - 1.0, template_end]).unwrap();
    conn.execute_batch(&format!(
        "CREATE TEMP TABLE tpl AS SELECT row_number() OVER (ORDER BY seq) - 1 AS k, * FROM main.{LOG}
         WHERE seq <= {template_end} AND op IN (1, 2, 3)"
    ))
    .unwrap();
    let kinds: i64 = conn.query_row("SELECT count(*) FROM temp.tpl", [], |r| r.get(0)).unwrap();
    let (columns, values) = copied_columns(conn);
    let step = (end - start) / rows as f64;
    let chunk = 1_000_000;
    for first in (0..rows).step_by(chunk as usize) {
        let last = (first + chunk).min(rows) - 1;
        conn.execute(
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT ?3 UNION ALL SELECT i + 1 FROM n WHERE i < ?4)
                 INSERT INTO main.{LOG}({columns}) SELECT {values} FROM n JOIN temp.tpl AS tpl ON tpl.k = n.i % ?5"
            ),
            params![start, step, first, last, kinds],
        )
        .unwrap();
    }
    conn.execute_batch("DROP TABLE temp.tpl").unwrap();
}

/// `RECENT` changes to each table through the triggers, in transactions of 100.
fn recent_changes(conn: &Connection) {
    for table in ["t", "u"] {
        for batch in 0..RECENT / 100 {
            let first = 1_000_000 + batch * 100;
            conn.execute_batch(&format!(
                "BEGIN; WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {last})
                 INSERT INTO {table}(id, v, note) SELECT i, i, 'recent' FROM n; COMMIT;",
                last = first + 99
            ))
            .unwrap();
        }
    }
}

/// Median ms of `runs` runs of `sql` with `since`, reading every column; and the number of rows.
fn median_ms(conn: &Connection, sql: &str, since: &rusqlite::types::Value, runs: usize) -> (f64, usize) {
    let mut stmt = conn.prepare(sql).unwrap();
    let columns = stmt.column_count();
    let mut count = 0;
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let mut rows = stmt.query([since]).unwrap();
            count = 0;
            while let Some(row) = rows.next().unwrap() {
                for i in 0..columns {
                    let _ = row.get_ref(i).unwrap();
                }
                count += 1;
            }
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    (samples[runs / 2], count)
}

pub fn run(dir: &Path, rows: i64) {
    let path = dir.join("journal.db");
    remove_database(&path);
    let conn = common::open(&path, OpenFlags::default());
    conn.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER, note TEXT);
         CREATE TABLE u(id INTEGER PRIMARY KEY, v INTEGER, note TEXT);
         SELECT pit_enable('t'); SELECT pit_enable('u');",
    )
    .unwrap();
    let started = Instant::now();
    let t_id = template_changes(&conn, "t", 1);
    template_changes(&conn, "u", 1);
    let template_end: i64 = conn.query_row(&format!("SELECT max(seq) FROM {LOG}"), [], |r| r.get(0)).unwrap();
    synthesize(&conn, template_end, rows);
    recent_changes(&conn);
    let total: i64 = conn.query_row(&format!("SELECT count(*) FROM {LOG}"), [], |r| r.get(0)).unwrap();
    let mib = std::fs::metadata(&path).unwrap().len() as f64 / 1048576.0;
    println!(
        "\nPIT_JOURNAL QUERY — journal of {total} rows ({mib:.0} MiB, built in {:.0} s): {rows} synthetic rows \
         (copies of real trigger rows of t and u inserted directly into {LOG}, `at` backdated over the day \
         before the last 2 minutes), then {RECENT} real changes to each of t and u; median of 11 runs",
        started.elapsed().as_secs_f64()
    );
    query(&conn, t_id);
    drop(conn);
    remove_database(&path);
}

/// Whether this build of vigil has the pit_journal virtual table.
fn has_vtab(conn: &Connection) -> bool {
    conn.query_row("SELECT count(*) FROM pragma_module_list WHERE name = 'pit_journal'", [], |r| r.get::<_, i64>(0))
        .unwrap()
        > 0
}

fn query(conn: &Connection, t_id: i64) {
    let since_text: String =
        conn.query_row("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-60 seconds')", [], |r| r.get(0)).unwrap();
    let since_day: f64 = conn.query_row("SELECT julianday(?1)", [&since_text], |r| r.get(0)).unwrap();
    let direct = format!("SELECT * FROM {LOG} WHERE tbl = {t_id} AND at > ?1");
    let (scan_ms, scan_n) = median_ms(conn, &direct, &rusqlite::types::Value::Real(since_day), 3);
    if has_vtab(conn) {
        let sql = "SELECT * FROM pit_journal WHERE \"table\" = 't' AND at > ?1";
        let since = rusqlite::types::Value::Text(since_text.clone());
        let label = format!("SELECT * FROM pit_journal WHERE \"table\"='t' AND at > '{since_text}'");
        let (ms, n) = median_ms(conn, sql, &since, 3);
        println!("{label:<72} {ms:>9.2} ms  {n} rows   before any pit_tick() (median of 3)");
        let (ticks, tick_s) = tick_until_summarized(conn);
        let (ms, n) = median_ms(conn, sql, &since, 11);
        println!("{label:<72} {ms:>9.2} ms  {n} rows   goal ≤ 50 ms, after {ticks} pit_tick() ({tick_s:.1} s)");
    } else {
        println!("(this build of vigil has no pit_journal virtual table: only the reference is measured)");
    }
    println!("{:<72} {scan_ms:>9.2} ms  {scan_n} rows   (reference: the same rows by a scan of the log)", direct);
    let mut samples: Vec<(f64, usize)> = (0..11).map(|_| by_bisection(conn, t_id, since_day)).collect();
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ms, n) = samples[samples.len() / 2];
    println!(
        "{:<72} {ms:>9.2} ms  {n} rows   (what a pushdown can do without an index: `at` grows with seq)",
        "the same rows: first seq with at > T by bisection on seq, then a seq range"
    );
}

/// Calls pit_tick() until its time summary (vigil_pit_marks, extended by each tick) reaches the last
/// journal row; returns the number of calls and their seconds.
fn tick_until_summarized(conn: &Connection) -> (usize, f64) {
    let started = Instant::now();
    let mut ticks = 0;
    loop {
        let _: String = conn.query_row("SELECT pit_tick()", [], |r| r.get(0)).unwrap();
        ticks += 1;
        let behind: i64 = conn
            .query_row(
                &format!("SELECT (SELECT max(seq) FROM {LOG}) - coalesce((SELECT value FROM vigil_pit_meta WHERE key = 'marks_seq'), 0)"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        if behind <= 1 || ticks >= 1000 {
            return (ticks, started.elapsed().as_secs_f64());
        }
    }
}

/// Ms to read the rows of table `tbl` after `since` (julianday) by a bisection on seq for the first row
/// after it (each probe one rowid seek) and a range scan from there; and the number of rows.
fn by_bisection(conn: &Connection, tbl: i64, since: f64) -> (f64, usize) {
    let started = Instant::now();
    let mut probe =
        conn.prepare_cached(&format!("SELECT seq, at FROM {LOG} WHERE seq >= ?1 ORDER BY seq LIMIT 1")).unwrap();
    // Two subqueries: min() and max() in one SELECT would scan the whole log.
    let (mut low, mut high): (i64, i64) = conn
        .query_row(&format!("SELECT (SELECT min(seq) FROM {LOG}), (SELECT max(seq) FROM {LOG}) + 1"), [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    while low < high {
        let middle = low + (high - low) / 2;
        let found: Option<(i64, f64)> = probe.query_row([middle], |r| Ok((r.get(0)?, r.get(1)?))).ok();
        match found {
            Some((seq, at)) if at <= since => low = seq + 1,
            _ => high = middle,
        }
    }
    let mut rows =
        conn.prepare_cached(&format!("SELECT * FROM {LOG} WHERE seq >= ?1 AND tbl = ?2 AND at > ?3")).unwrap();
    let columns = rows.column_count();
    let mut found = rows.query(params![low, tbl, since]).unwrap();
    let mut count = 0;
    while let Some(row) = found.next().unwrap() {
        for i in 0..columns {
            let _ = row.get_ref(i).unwrap();
        }
        count += 1;
    }
    (started.elapsed().as_secs_f64() * 1000.0, count)
}
