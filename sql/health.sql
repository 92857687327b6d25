-- Health of a database, from the sqlite3 shell (run from the project root after `cargo build --release`):
--   sqlite3 app.db < sql/health.sql
.load ./target/release/libvigil
.mode box
.bail on
SELECT "check", status, value, unit, detail FROM health_report('quick');
SELECT name, type, rows, bytes, unused_pct, nonsequential_pct FROM health_tables() LIMIT 10;
