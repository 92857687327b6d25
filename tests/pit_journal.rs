//! pit_journal, the journal as a table: exact row images in every host, constraints pushed down (shown by the
//! plan and by the seq range the scan read), exact answers across clock steps and for odd constraint values,
//! REPLACE's repeated deletes dropped, and reads on read-only connections.

use std::path::Path;

use rusqlite::{params, Connection};
use serde_json::{json, Value as Json};
use vigil_tests::*;

/// A database with a rowid table, a WITHOUT ROWID table with a compound key, and the journal on.
fn journaled(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("j.db");
    create_db(
        &db,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b UNIQUE);
         CREATE TABLE w(k TEXT, n INT, v, PRIMARY KEY(k, n)) WITHOUT ROWID;",
    );
    call(&Rusqlite, &db, "SELECT pit_enable('*')");
    db
}

fn plain(db: &Path) -> Connection {
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
    conn
}

fn seqs(conn: &Connection, sql: &str, value: &dyn rusqlite::ToSql) -> Vec<i64> {
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let rows = stmt.query_map([value], |r| r.get::<_, i64>(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

fn last_scan(conn: &Connection) -> Json {
    let text: String = conn.query_row("SELECT vigil_debug()", [], |r| r.get(0)).unwrap();
    serde_json::from_str::<Json>(&text).unwrap()["pit_journal_last_scan"].clone()
}

fn plan(conn: &Connection, sql: &str) -> String {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let details = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
    details.map(Result::unwrap).collect::<Vec<_>>().join("\n")
}

#[test]
fn images_are_exact_json_for_every_storage_class_in_both_hosts() {
    let dir = scratch();
    let db = journaled(dir.path());
    // A writer that never loads vigil.
    plain(&db)
        .execute_batch(
            "INSERT INTO t VALUES(1, x'00ff10', 1.0), (2, 9e999, -9e999), (3, '{\"a\": [1]}', NULL);
             UPDATE t SET a = 0.1 + 0.2, b = 1 WHERE id = 1;
             UPDATE t SET b = 2 WHERE id = 2;
             UPDATE t SET a = NULL, b = 1.0 WHERE id = 1;
             INSERT INTO w VALUES('x', 1, 'one'), ('x', 2, 7);
             DELETE FROM w WHERE n = 2;
             DELETE FROM t WHERE id = 3;",
        )
        .unwrap();
    let expected = [
        json!({"op": "insert", "table": "t", "key": "{\"rowid\":1}", "old": null,
               "new": "{\"id\":1,\"a\":{\"$blob\":\"00ff10\"},\"b\":1.0}", "txn_exact": 0}),
        json!({"op": "insert", "table": "t", "key": "{\"rowid\":2}", "old": null,
               "new": "{\"id\":2,\"a\":\"Infinity\",\"b\":\"-Infinity\"}", "txn_exact": 0}),
        json!({"op": "insert", "table": "t", "key": "{\"rowid\":3}", "old": null,
               "new": "{\"id\":3,\"a\":\"{\\\"a\\\": [1]}\",\"b\":null}", "txn_exact": 0}),
        json!({"op": "update", "table": "t", "key": "{\"rowid\":1}",
               "old": "{\"id\":1,\"a\":{\"$blob\":\"00ff10\"},\"b\":1.0}",
               "new": "{\"id\":1,\"a\":0.30000000000000004,\"b\":1}", "txn_exact": 0}),
        // Columns an UPDATE left alone are in its new image too; a change to NULL or from 1 to 1.0 is a change.
        json!({"op": "update", "table": "t", "key": "{\"rowid\":2}",
               "old": "{\"id\":2,\"a\":\"Infinity\",\"b\":\"-Infinity\"}",
               "new": "{\"id\":2,\"a\":\"Infinity\",\"b\":2}", "txn_exact": 0}),
        json!({"op": "update", "table": "t", "key": "{\"rowid\":1}",
               "old": "{\"id\":1,\"a\":0.30000000000000004,\"b\":1}",
               "new": "{\"id\":1,\"a\":null,\"b\":1.0}", "txn_exact": 0}),
        json!({"op": "insert", "table": "w", "key": "{\"k\":\"x\",\"n\":1}", "old": null,
               "new": "{\"k\":\"x\",\"n\":1,\"v\":\"one\"}", "txn_exact": 0}),
        json!({"op": "insert", "table": "w", "key": "{\"k\":\"x\",\"n\":2}", "old": null,
               "new": "{\"k\":\"x\",\"n\":2,\"v\":7}", "txn_exact": 0}),
        json!({"op": "delete", "table": "w", "key": "{\"k\":\"x\",\"n\":2}",
               "old": "{\"k\":\"x\",\"n\":2,\"v\":7}", "new": null, "txn_exact": 0}),
        json!({"op": "delete", "table": "t", "key": "{\"rowid\":3}",
               "old": "{\"id\":3,\"a\":\"{\\\"a\\\": [1]}\",\"b\":null}", "new": null, "txn_exact": 0}),
    ];
    let sql = "SELECT op, \"table\", key, old, new, txn_exact FROM pit_journal WHERE op <> 'schema' ORDER BY seq";
    for host in hosts() {
        let rows = host.query(&db, sql).unwrap();
        let rows: Vec<Json> = rows.into_iter().map(Json::Object).collect();
        assert_eq!(rows, expected, "{}", host.name());
    }
    // The images read back as JSON: the REAL keeps its bits, the text that looks like JSON stays text.
    let conn = plain(&db);
    load(&conn);
    let (real, text_type): (f64, String) = conn
        .query_row(
            "SELECT json_extract(new, '$.a'), (SELECT json_type(old, '$.a') FROM pit_journal WHERE op = 'delete'
               AND \"table\" = 't') FROM pit_journal WHERE op = 'update'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(real.to_bits(), (0.1f64 + 0.2).to_bits());
    assert_eq!(text_type, "text");
}

#[test]
fn schema_and_tick_rows_carry_their_detail_and_vigil_writers_exact_txns() {
    let dir = scratch();
    let db = journaled(dir.path());
    let conn = Rusqlite::open(&db);
    conn.execute_batch("BEGIN; INSERT INTO t(a) VALUES(1); INSERT INTO w VALUES('a', 1, 2); COMMIT;").unwrap();
    let tick: String = conn.query_row("SELECT pit_tick()", [], |r| r.get(0)).unwrap();
    let tick_seq = serde_json::from_str::<Json>(&tick).unwrap()["seq"].as_i64().unwrap();
    let rows = rows(&conn, "SELECT seq, txn, op, \"table\", detail, txn_exact, key FROM pit_journal").unwrap();
    let schema: Vec<&Row> = rows.iter().filter(|r| r["op"] == "schema").collect();
    assert_eq!(schema.len(), 2, "{rows:?}");
    assert_eq!(schema[0]["detail"], json!("{\"event\":\"track\",\"table\":\"t\"}"));
    assert_eq!(schema[0]["key"], Json::Null);
    let changes: Vec<&Row> = rows.iter().filter(|r| r["op"] == "insert").collect();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["txn"], changes[1]["txn"], "one transaction, one txn");
    assert_eq!(changes[0]["txn"], changes[0]["seq"], "a txn is the seq of its first row");
    assert!(changes.iter().all(|r| r["txn_exact"] == 1));
    let last = rows.last().unwrap();
    assert_eq!((last["op"].clone(), last["seq"].as_i64()), (json!("tick"), Some(tick_seq)));
    assert_eq!(last["table"], Json::Null);
    // at is RFC 3339 UTC with milliseconds, the same text pit_tick reported.
    let at: String = conn.query_row("SELECT at FROM pit_journal WHERE seq = ?1", [tick_seq], |r| r.get(0)).unwrap();
    assert_eq!(at, serde_json::from_str::<Json>(&tick).unwrap()["at"].as_str().unwrap());
    assert!(regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").unwrap().is_match(&at), "{at}");
}

/// Appends `n` synthetic change rows for table id `tbl`, one second apart from `start` (Julian day).
fn append_rows(conn: &Connection, tbl: i64, n: i64, start: f64, step_seconds: f64) {
    conn.execute(
        "WITH RECURSIVE i(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM i WHERE k + 1 < ?2)
         INSERT INTO vigil_pit_log(txn, at, tbl, op, rid, n1, n2)
         SELECT NULL, ?3 + k * ?4 / 86400.0, ?1, 1, 100000 + k, k, 'row' FROM i",
        params![tbl, n, start, step_seconds],
    )
    .unwrap();
}

fn tbl_of(conn: &Connection, name: &str) -> i64 {
    conn.query_row("SELECT tbl FROM vigil_pit_tables WHERE name = ?1", [name], |r| r.get(0)).unwrap()
}

/// A day from now, in Julian days: synthetic rows come after every row the test wrote at the real time.
fn tomorrow(conn: &Connection) -> f64 {
    conn.query_row("SELECT julianday('now') + 1", [], |r| r.get(0)).unwrap()
}

fn last_seq(conn: &Connection) -> i64 {
    conn.query_row("SELECT max(seq) FROM vigil_pit_log", [], |r| r.get(0)).unwrap()
}

#[test]
fn constraints_reach_the_scan_and_narrow_what_it_reads() {
    let dir = scratch();
    let db = journaled(dir.path());
    let conn = Rusqlite::open(&db);
    let (t, w) = (tbl_of(&conn, "t"), tbl_of(&conn, "w"));
    let start = tomorrow(&conn);
    append_rows(&conn, t, 20_000, start, 1.0);
    append_rows(&conn, w, 10, start + 20_000.0 / 86_400.0, 1.0);
    conn.query_row("SELECT pit_tick()", [], |_| Ok(())).unwrap();
    let last = last_seq(&conn);

    let query = "SELECT seq FROM pit_journal WHERE seq > 100 AND txn = 5 AND at >= '2026' AND \"table\" = 't' \
                 ORDER BY seq";
    let shown = plan(&conn, query);
    for term in ["[\"seq\",\">\"]", "[\"txn\",\"=\"]", "[\"at\",\">=\"]", "[\"table\",\"=\",\"BINARY\"]"] {
        assert!(shown.contains(term), "{term} not pushed down: {shown}");
    }
    assert!(!shown.contains("ORDER BY"), "rows come out in seq order: {shown}");
    assert!(plan(&conn, "SELECT seq FROM pit_journal ORDER BY seq DESC").contains("ORDER BY"));

    // A seq range reads that range only.
    assert_eq!(seqs(&conn, "SELECT seq FROM pit_journal WHERE seq BETWEEN ?1 AND ?1 + 2", &500), [500, 501, 502]);
    assert_eq!((last_scan(&conn)["from"].as_i64(), last_scan(&conn)["to"].as_i64()), (Some(500), Some(502)));

    // txn = X reads from seq X to the transaction's last row (pit_enable's two schema rows), then stops.
    assert_eq!(seqs(&conn, "SELECT seq FROM pit_journal WHERE txn = ?1", &1), [1, 2]);
    assert_eq!(last_scan(&conn)["rows_read"], 3, "{}", last_scan(&conn));

    // The last ten seconds of rows: found through the marks, one block read, not 20 000 rows.
    let cutoff: String =
        conn.query_row("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ?1 + 19995 / 86400.0)", [start], |r| r.get(0)).unwrap();
    let recent = seqs(&conn, "SELECT seq FROM pit_journal WHERE at > ?1 AND \"table\" = 't'", &cutoff);
    assert_eq!(recent.len(), 4, "{recent:?}");
    let scan = last_scan(&conn);
    assert!(scan["from"].as_i64().unwrap() > last - 4097, "read from the last block only: {scan}");
    assert!(scan["rows_read"].as_i64().unwrap() <= 4096, "{scan}");
    // Marks of another lineage (an in-place restore forked the history) are not used until a tick redoes them.
    conn.execute("UPDATE vigil_pit_meta SET value = 'forked' WHERE key = 'lineage'", []).unwrap();
    assert_eq!(seqs(&conn, "SELECT seq FROM pit_journal WHERE at > ?1 AND \"table\" = 't'", &cutoff), recent);
    assert_eq!(last_scan(&conn)["rows_read"], 20_001, "every row of t: {}", last_scan(&conn));
    conn.query_row("SELECT pit_tick()", [], |_| Ok(())).unwrap();
    assert_eq!(seqs(&conn, "SELECT seq FROM pit_journal WHERE at > ?1 AND \"table\" = 't'", &cutoff), recent);
    assert!(last_scan(&conn)["from"].as_i64().unwrap() > last - 4097, "{}", last_scan(&conn));

    // "table" = goes to that table's rows only, under the query's collation.
    let w_rows = seqs(&conn, "SELECT seq FROM pit_journal WHERE \"table\" = ?1 AND op = 'insert'", &"w");
    assert_eq!(w_rows.len(), 10);
    assert_eq!(
        last_scan(&conn)["rows_read"],
        11,
        "w's ten rows and its schema row: {:?}",
        rows(&conn, "SELECT seq, op, detail FROM pit_journal WHERE \"table\" = 'w' AND op <> 'insert'")
    );
    assert!(seqs(&conn, "SELECT seq FROM pit_journal WHERE \"table\" = ?1", &"W").is_empty());
    let nocase = "SELECT seq FROM pit_journal WHERE \"table\" = ?1 COLLATE NOCASE AND op = 'insert'";
    assert_eq!(seqs(&conn, nocase, &"W"), w_rows);
}

/// Every comparison on `at` pushed down gives the rows SQLite's own comparison gives over a full scan.
fn assert_at_bounds_exact(conn: &Connection, values: &[String]) {
    for op in ["=", ">", ">=", "<", "<="] {
        for value in values {
            let pushed = seqs(conn, &format!("SELECT seq FROM pit_journal WHERE at {op} ?1"), value);
            let plan_text = plan(conn, &format!("SELECT seq FROM pit_journal WHERE at {op} '{value}'"));
            assert!(plan_text.contains("\"at\""), "{plan_text}");
            // The same comparison inside an expression is not a constraint: SQLite scans and compares itself.
            let full = seqs(conn, &format!("SELECT seq FROM pit_journal WHERE coalesce(at {op} ?1, 0)"), value);
            assert!(!plan(conn, &format!("SELECT seq FROM pit_journal WHERE coalesce(at {op} '{value}', 0)"))
                .contains("\"at\""));
            assert_eq!(pushed, full, "at {op} {value}");
        }
    }
}

#[test]
fn a_clock_step_back_never_hides_a_row() {
    let dir = scratch();
    let db = journaled(dir.path());
    let conn = Rusqlite::open(&db);
    let t = tbl_of(&conn, "t");
    let start = tomorrow(&conn);
    // 4 500 rows a second apart, then the clock steps back for 1 500 rows, then on again.
    append_rows(&conn, t, 4_500, start, 1.0);
    append_rows(&conn, t, 1_500, start + 2_600.0 / 86_400.0, 1.0);
    conn.query_row("SELECT pit_tick()", [], |_| Ok(())).unwrap();
    // A tail after the last mark, stepping back again, and rows in the same millisecond.
    append_rows(&conn, t, 500, start + 1_000.0 / 86_400.0, 0.5);
    append_rows(&conn, t, 50, start + 7_000.0 / 86_400.0, 0.0);
    let text = |seconds: f64| -> String {
        conn.query_row("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ?1 + ?2 / 86400.0)", params![start, seconds], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let mut values: Vec<String> = [-10.0, 0.0, 1_000.0, 2_599.0, 4_499.0, 7_000.0].map(text).to_vec();
    // Text that is not a full timestamp compares as text too.
    values.extend(["2026".to_string(), "Z".to_string()]);
    assert_at_bounds_exact(&conn, &values);
    // Once marked, the same answers.
    conn.query_row("SELECT pit_tick()", [], |_| Ok(())).unwrap();
    assert_at_bounds_exact(&conn, &values);
    // Hand-written rows: an at that is not a number makes its block always read.
    let hand_written = "INSERT INTO vigil_pit_log(txn, at, tbl, op, rid, n1) VALUES(NULL, ?2, ?1, 1, 1, 1)";
    conn.execute(hand_written, params![t, "2461000.5"]).unwrap();
    conn.query_row("SELECT pit_tick()", [], |_| Ok(())).unwrap();
    assert_at_bounds_exact(&conn, &values);
    // In a block of their own, years before 0, whose text sorts backwards (-4712 after -0001).
    append_rows(&conn, t, 4_096, start, 1.0);
    conn.execute(hand_written, params![t, 1.5]).unwrap();
    conn.execute(hand_written, params![t, 1_721_000.5]).unwrap();
    conn.query_row("SELECT pit_tick()", [], |_| Ok(())).unwrap();
    assert_at_bounds_exact(&conn, &["-1000".to_string(), "-0001-06".to_string(), values[3].clone()]);
}

/// Copies journal row `seq` to the end of the journal: the repeated delete a REPLACE journaled under
/// recursive_triggers before the capture learned to journal it once (same statement time and txn).
fn repeat_row(conn: &Connection, seq: i64) -> i64 {
    let width: i64 = conn
        .query_row("SELECT count(*) FROM pragma_table_info('vigil_pit_log') WHERE name GLOB 'o[0-9]*'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let slots: String = (1..=width).map(|k| format!(", o{k}, n{k}")).collect();
    let columns = format!("txn, at, tbl, op, rid, rid_new, nmask{slots}");
    conn.execute(
        &format!("INSERT INTO vigil_pit_log({columns}) SELECT {columns} FROM vigil_pit_log WHERE seq = ?1"),
        [seq],
    )
    .unwrap();
    last_seq(conn)
}

#[test]
fn a_replace_s_delete_shows_once_and_a_repeated_one_is_dropped() {
    for recursive in ["ON", "OFF"] {
        let dir = scratch();
        let db = journaled(dir.path());
        let writer = plain(&db);
        writer
            .execute_batch(&format!(
                "PRAGMA recursive_triggers = {recursive};
                 INSERT INTO t VALUES(1, 'a', 10), (2, 'b', 20);
                 INSERT OR REPLACE INTO t VALUES(1, 'a2', 10);
                 INSERT OR REPLACE INTO t VALUES(3, 'c', 20);
                 DELETE FROM t WHERE id = 3; INSERT INTO t VALUES(3, 'again', 30); DELETE FROM t WHERE id = 3;"
            ))
            .unwrap();
        let conn = plain(&db);
        load(&conn);
        let expected = [
            "insert {\"rowid\":1}",
            "insert {\"rowid\":2}",
            "delete {\"rowid\":1}",
            "insert {\"rowid\":1}",
            "delete {\"rowid\":2}",
            "insert {\"rowid\":3}",
            "delete {\"rowid\":3}",
            "insert {\"rowid\":3}",
            "delete {\"rowid\":3}",
        ];
        let shown = || -> Vec<String> {
            let ops = rows(&conn, "SELECT op, key FROM pit_journal WHERE op <> 'schema'").unwrap();
            ops.iter().map(|r| format!("{} {}", r["op"].as_str().unwrap(), r["key"].as_str().unwrap())).collect()
        };
        assert_eq!(shown(), expected, "recursive_triggers={recursive}");
        // A repeat of the last delete, as the capture once journaled it: dropped, also by a scan starting on it.
        let last_delete: i64 =
            conn.query_row("SELECT max(seq) FROM vigil_pit_log WHERE op = 3", [], |r| r.get(0)).unwrap();
        let repeat = repeat_row(&conn, last_delete);
        assert_eq!(shown(), expected, "recursive_triggers={recursive}");
        assert!(seqs(&conn, "SELECT seq FROM pit_journal WHERE seq >= ?1", &repeat).is_empty());
        assert_eq!(seqs(&conn, "SELECT seq FROM pit_journal WHERE seq >= ?1", &last_delete), [last_delete]);
        // Two keys that differ only in bytes that are not UTF-8 (the JSON key shows both as U+FFFD) are two
        // deletes, not a repeat.
        writer
            .execute_batch(
                "INSERT INTO w VALUES(CAST(x'ff' AS TEXT), 1, 1), (CAST(x'fe' AS TEXT), 1, 2); DELETE FROM w;",
            )
            .unwrap();
        let w_deletes = seqs(&conn, "SELECT seq FROM pit_journal WHERE \"table\" = ?1 AND op = 'delete'", &"w");
        assert_eq!(w_deletes.len(), 2, "recursive_triggers={recursive}");
    }
}

#[test]
fn odd_constraint_values_give_sqlite_s_own_answers() {
    let dir = scratch();
    let db = journaled(dir.path());
    let conn = Rusqlite::open(&db);
    conn.execute_batch("INSERT INTO t(a) VALUES(1), (2); INSERT INTO t(a) VALUES(3); INSERT INTO w VALUES('k', 1, 1);")
        .unwrap();
    let txn: i64 = conn.query_row("SELECT max(txn) FROM vigil_pit_log WHERE op = 1", [], |r| r.get(0)).unwrap();
    let conditions = [
        "seq > 'abc'",
        "seq < 'abc'",
        "seq = '3'",
        "seq >= '3'",
        "seq < x'00'",
        "seq = NULL",
        "seq > 2.5",
        "seq <= 3.5",
        "seq = 3.0",
        "seq = 3.5",
        "seq > 9.9e30",
        "seq < -9.9e30",
        "seq > 9223372036854775807",
        "seq < -9223372036854775808",
        "rowid >= 4",
        "txn = 'x'",
        "txn = NULL",
        "txn = 2.5",
        "at > 5",
        "at < 2461000",
        "at = NULL",
        "at > x'00'",
        "\"table\" = NULL",
        "\"table\" = 5",
        "\"table\" = 'nosuch'",
        "\"table\" = ' t'",
        "\"table\" = 't ' COLLATE RTRIM",
        "\"table\" = 'T' COLLATE NOCASE",
        "\"table\" = x'74'",
        "\"table\" IN ('w', 't')",
        "seq IN (5, 2, 4) AND \"table\" = 't'",
    ];
    let mut conditions: Vec<String> = conditions.iter().map(|c| c.to_string()).collect();
    conditions.push(format!("txn = {txn}"));
    conditions.push(format!("txn = '{txn}'"));
    conditions.push(format!("txn = {txn}.0"));
    for host in hosts() {
        for condition in &conditions {
            let pushed =
                host.query(&db, &format!("SELECT seq FROM pit_journal WHERE {condition} ORDER BY seq")).unwrap();
            let full = host
                .query(&db, &format!("SELECT seq FROM pit_journal WHERE coalesce({condition}, 0) ORDER BY seq"))
                .unwrap();
            assert_eq!(pushed, full, "{}: {condition}", host.name());
        }
    }
    // A join filters one cursor once per outer row (the cursor keeps its statement between filters).
    let join = "SELECT j.seq, j.op, j.\"table\" FROM (SELECT value AS s FROM json_each('[6, 1, 4, 99, 3]')) AS v \
                JOIN pit_journal AS j ON j.seq = v.s ORDER BY j.seq";
    let direct = "SELECT seq, op, \"table\" FROM pit_journal WHERE seq IN (1, 3, 4, 6) ORDER BY seq";
    for host in hosts() {
        assert_eq!(host.query(&db, join).unwrap(), host.query(&db, direct).unwrap(), "{}", host.name());
    }
    let exact = seqs(&conn, "SELECT seq FROM pit_journal WHERE txn = ?1", &txn);
    assert_eq!(exact.len(), 1, "the second INSERT statement was its own transaction");
}

#[test]
fn reads_on_a_read_only_connection_and_an_empty_result_without_a_journal() {
    let dir = scratch();
    let db = journaled(dir.path());
    plain(&db).execute_batch("INSERT INTO t(a) VALUES('x')").unwrap();
    let out = shell_run(
        &db,
        &format!(".load {}\nSELECT op, new FROM pit_journal WHERE op = 'insert';\n", library().display()),
        &["-readonly"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "insert|{\"id\":1,\"a\":\"x\",\"b\":null}\n");
    let conn = Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    load(&conn);
    assert_eq!(seqs(&conn, "SELECT count(*) FROM pit_journal WHERE op = ?1", &"insert"), [1]);

    let bare = dir.path().join("bare.db");
    create_db(&bare, "CREATE TABLE t(x)");
    for host in hosts() {
        assert_eq!(host.query(&bare, "SELECT * FROM pit_journal WHERE at > '2026'").unwrap(), Vec::<Row>::new());
    }
}

#[test]
fn at_is_the_text_sqlite_s_strftime_prints_in_both_hosts() {
    let dir = scratch();
    let db = journaled(dir.path());
    let conn = Rusqlite::open(&db);
    let t = tbl_of(&conn, "t");
    // Times on and around millisecond boundaries across the calendar, and values that are not numbers.
    conn.execute(
        "WITH RECURSIVE i(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM i WHERE k + 1 < 3000)
         INSERT INTO vigil_pit_log(txn, at, tbl, op, rid, n1)
         SELECT NULL, 1721059.5 + k * 1213.377 + (k % 7) * 0.5 / 86400000.0 + (k % 3) * 1e-11, ?1, 1, k, k FROM i",
        [t],
    )
    .unwrap();
    conn.execute_batch(&format!(
        "INSERT INTO vigil_pit_log(txn, at, tbl, op, rid, n1) VALUES
           (NULL, '2026-12-01 10:00:00', {t}, 1, 1, 1), (NULL, NULL, {t}, 1, 1, 1), (NULL, 5373484.6, {t}, 1, 1, 1),
           (NULL, 2461376, {t}, 1, 1, 1), (NULL, 1721059.4999, {t}, 1, 1, 1)"
    ))
    .unwrap();
    let check = "SELECT count(*) AS n, sum(j.at IS NOT strftime('%Y-%m-%dT%H:%M:%fZ', l.at)) AS differ \
                 FROM pit_journal AS j JOIN vigil_pit_log AS l ON l.seq = j.seq";
    for host in hosts() {
        let rows = host.query(&db, check).unwrap();
        assert_eq!(rows[0]["differ"], 0, "{}: {rows:?}", host.name());
        assert!(rows[0]["n"].as_i64().unwrap() > 3000);
    }
}

/// export_to's JSON for a value, written here independently of vigil.
fn export_json(value: rusqlite::types::ValueRef) -> Json {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Json::Null,
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(r) if r.is_finite() => json!(r),
        ValueRef::Real(r) => json!(if r > 0.0 { "Infinity" } else { "-Infinity" }),
        ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => json!({"$blob": b.iter().map(|x| format!("{x:02x}")).collect::<String>()}),
    }
}

#[test]
fn the_last_image_of_every_key_is_the_row_a_foreign_writer_left() {
    for recursive in ["OFF", "ON"] {
        last_images_match_the_rows(recursive);
    }
}

fn last_images_match_the_rows(recursive_triggers: &str) {
    let dir = scratch();
    let db = journaled(dir.path());
    let writer = plain(&db);
    writer.execute_batch(&format!("PRAGMA recursive_triggers = {recursive_triggers}")).unwrap();
    let values =
        ["NULL", "1", "1.0", "-0.0", "0.1 + 0.2", "9e999", "-9e999", "x'00ff'", "'{\"a\": 1}'", "'text'", "''"];
    let mut state: u64 = 7;
    let mut next = |n: usize| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize % n
    };
    for _ in 0..300 {
        let (id, a, b) = (next(20), values[next(values.len())], values[next(values.len())]);
        let sql = match next(4) {
            0 => format!("INSERT OR REPLACE INTO t(id, a, b) VALUES({id}, {a}, {b})"),
            1 => format!("UPDATE OR REPLACE t SET a = {a} WHERE id = {id}"),
            2 => format!("UPDATE t SET id = {} WHERE id = {id}", 100 + next(20)),
            _ => format!("DELETE FROM t WHERE id = {id}"),
        };
        // Some statements break the UNIQUE on b or the key; those fail and journal nothing.
        let _ = writer.execute_batch(&sql);
    }
    let conn = plain(&db);
    load(&conn);
    // The last journal row of every key: its new image, or nothing after a delete.
    let mut last: std::collections::BTreeMap<i64, Json> = std::collections::BTreeMap::new();
    for row in rows(&conn, "SELECT op, key, new FROM pit_journal WHERE \"table\" = 't' AND op <> 'schema' ORDER BY seq")
        .unwrap()
    {
        let key: Json = serde_json::from_str(row["key"].as_str().unwrap()).unwrap();
        let rowid = key["rowid"].as_i64().unwrap();
        match row["op"].as_str().unwrap() {
            "delete" => {
                last.remove(&rowid);
            }
            _ => {
                let new: Json = serde_json::from_str(row["new"].as_str().unwrap()).unwrap();
                if let Some(moved) = key["new_rowid"].as_i64() {
                    last.remove(&rowid);
                    last.insert(moved, new);
                } else {
                    last.insert(rowid, new);
                }
            }
        }
    }
    let mut stmt = writer.prepare("SELECT id, a, b FROM t ORDER BY id").unwrap();
    let mut current = std::collections::BTreeMap::new();
    let mut cursor = stmt.query([]).unwrap();
    while let Some(r) = cursor.next().unwrap() {
        let object = json!({"id": r.get::<_, i64>(0).unwrap(), "a": export_json(r.get_ref(1).unwrap()),
                            "b": export_json(r.get_ref(2).unwrap())});
        current.insert(r.get::<_, i64>(0).unwrap(), object);
    }
    assert!(current.len() > 3, "{current:?}");
    assert_eq!(last, current, "recursive_triggers={recursive_triggers}");
}
