//! The statement normaliser of query statistics (extension/src/stats/normalize.rs): ns per normalisation of
//! typical statements, next to what SQLite itself spends preparing the same text (rusqlite's bundled SQLite,
//! `sqlite3_prepare_v2` + finalize, uncached), measured in the same run. The normaliser runs once per distinct
//! raw SQL text, so its cost should be a fraction of one prepare.
//!
//!   cargo run --release -p vigil-bench --bin normalize

#[path = "../../../extension/src/stats/normalize.rs"]
#[allow(dead_code)] // keywords() is for the tests
mod normalize;

use std::hint::black_box;
use std::time::Instant;

use rusqlite::Connection;

const SCHEMA: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, email TEXT, created TEXT, data TEXT);
    CREATE TABLE orders(id INTEGER PRIMARY KEY, user_id INTEGER, total REAL, status TEXT, at TEXT);";

const STATEMENTS: &[(&str, &str)] = &[
    ("point lookup", "SELECT name, email FROM users WHERE id = 42"),
    ("insert", "INSERT INTO orders(user_id, total, status, at) VALUES (7, 19.99, 'new', '2026-12-02T03:00:00Z')"),
    ("update", "UPDATE orders SET status = 'paid', at = datetime('now') WHERE id = ?1 AND status = 'new'"),
    (
        "IN list of 20",
        "SELECT id, total FROM orders WHERE user_id IN (1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20)",
    ),
    (
        "join + aggregate",
        "SELECT u.name, count(*) AS n, sum(o.total) FROM users AS u JOIN orders AS o ON o.user_id = u.id \
         WHERE o.at >= '2026-01-01' AND o.status IN ('paid', 'shipped') GROUP BY u.id HAVING n > 3 \
         ORDER BY 3 DESC LIMIT 10 -- top customers",
    ),
    (
        "upsert + JSON",
        "INSERT INTO users(id, name, data) VALUES (:id, :name, json_object('tags', json_array('a', 'b'))) \
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, data = json_set(data, '$.seen', 1)",
    ),
];

/// ns per call of `f`: the fastest of 15 rounds of `n` calls (the machine is shared; the fastest round is the
/// one least disturbed, for both sides alike).
fn ns_per_call(n: u32, mut f: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..15)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..n {
                f();
            }
            started.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[0]
}

fn main() {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    println!(
        "{:<18} {:>7} {:>10} {:>10} {:>12} {:>8}",
        "statement", "bytes", "normalize", "+queryid", "prepare", "ratio"
    );
    for (name, sql) in STATEMENTS {
        let normalize_ns = ns_per_call(20_000, || {
            black_box(normalize::normalize(black_box(sql)));
        });
        let with_id_ns = ns_per_call(20_000, || {
            black_box(normalize::queryid(&normalize::normalize(black_box(sql))));
        });
        let prepare_ns = ns_per_call(2_000, || {
            black_box(conn.prepare(black_box(sql)).unwrap());
        });
        println!(
            "{name:<18} {:>7} {:>8.0}ns {:>8.0}ns {:>10.0}ns {:>7.2}×",
            sql.len(),
            normalize_ns,
            with_id_ns,
            prepare_ns,
            with_id_ns / prepare_ns
        );
    }
    let big = format!(
        "SELECT * FROM users WHERE id IN ({})",
        (0..10_000).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
    );
    let big_ns = ns_per_call(50, || {
        black_box(normalize::normalize(black_box(&big)));
    });
    println!(
        "{:<18} {:>7} {:>8.0}ns  ({:.2} ns/byte: linear)",
        "IN list of 10000",
        big.len(),
        big_ns,
        big_ns / big.len() as f64
    );
}
