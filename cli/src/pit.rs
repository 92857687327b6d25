//! `vigil pit …`: the point-in-time journal from the command line. Each command calls one pit function
//! (pit_enable, pit_disable, pit_status, pit_tick, pit_restore) or reads the pit_journal table, and formats
//! the result; `vigil pit tick` repeats pit_tick on a fixed schedule until it is stopped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant as Clock};

use clap::{Args, Subcommand};
use rusqlite::types::Value;
use rusqlite::Connection;
use serde_json::{json, Map, Value as Json};

use crate::output::{fitted, print_json, text, Width};
use crate::sql::{query_json, query_rows, sql_failure};
use crate::{exit, extension, interrupt, Failure, Global};

#[derive(Args)]
pub struct PitArgs {
    #[command(subcommand)]
    pub command: PitCommand,
}

#[derive(Subcommand)]
pub enum PitCommand {
    /// Start journaling every table (also tables created later), or the tables named
    Enable(TablesArgs),
    /// Stop journaling every table, or the tables named; the history stays restorable
    Disable(TablesArgs),
    /// The journal's window, size, tracked tables and share of changes without exact transactions
    Status(StatusArgs),
    /// The journaled changes, oldest first (the last --limit of them)
    Log(LogArgs),
    /// The database as it was at an instant: into a new file (--into), or in place keeping a safety backup;
    /// exit 0 done, 2 refused or failed
    Restore(RestoreArgs),
    /// Seal exact cut points on a schedule until stopped (Ctrl-C, SIGTERM: exit 130)
    Tick(TickArgs),
}

impl PitCommand {
    pub fn db(&self) -> &Path {
        match self {
            PitCommand::Enable(a) | PitCommand::Disable(a) => &a.db,
            PitCommand::Status(a) => &a.db,
            PitCommand::Log(a) => &a.db,
            PitCommand::Restore(a) => &a.db,
            PitCommand::Tick(a) => &a.db,
        }
    }

    /// What an interrupted command left (see main's `interrupted_note`); None where the work finishes first.
    pub fn interrupted_note(&self) -> Option<String> {
        match self {
            PitCommand::Tick(a) => Some(format!(
                "the ticks stopped; each seal written to {} is a complete transaction of its own, none was left \
                 half-written",
                a.db.display()
            )),
            PitCommand::Status(_) | PitCommand::Log(_) => Some("nothing was changed".into()),
            _ => None,
        }
    }
}

#[derive(Args)]
pub struct TablesArgs {
    /// The database file
    pub db: PathBuf,
    /// Tables to act on (default: every table; enable then also journals tables created later)
    pub tables: Vec<String>,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct StatusArgs {
    /// The database file
    pub db: PathBuf,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct LogArgs {
    /// The database file
    pub db: PathBuf,
    /// Changes at or after T (RFC 3339 such as 2026-12-01T14:03:27.250Z, or unix seconds), or after seq:N
    #[arg(long, value_name = "T", value_parser = parse_instant)]
    pub since: Option<At>,
    /// Only this table's changes
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
    /// Show the last N matching changes (0: all)
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: u64,
    /// Show every change in full, however long (default: fit $COLUMNS or the terminal, else 120)
    #[arg(long)]
    pub wide: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The database file (journaled with `vigil pit enable`)
    pub db: PathBuf,
    /// The instant: RFC 3339 (2026-12-01T14:03:27.250Z, any offset), unix seconds (1764598407.25), or seq:N
    #[arg(long, value_name = "T", value_parser = parse_instant)]
    pub at: At,
    /// Write the state at T into this new file (never an existing one); without it DB is restored in place
    /// and its current state kept as a verified safety backup beside it
    #[arg(long, value_name = "NEW")]
    pub into: Option<PathBuf>,
    /// Cut only at an exact transaction boundary (at or before T) when writers without vigil leave it unknown
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct TickArgs {
    /// The database file (journaled with `vigil pit enable`)
    pub db: PathBuf,
    /// The period: 1s, 250ms, 2m, 1h (a bare number is seconds)
    #[arg(long, value_name = "PERIOD", default_value = "1s", value_parser = parse_period)]
    pub every: Duration,
    /// Stop after N ticks (exit 0), e.g. 1 from cron; default: run until stopped
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Print nothing per tick (errors still go to stderr)
    #[arg(long)]
    pub quiet: bool,
    /// Print each tick as one line of JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct Output {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// An instant named on the command line.
#[derive(Clone, Debug, PartialEq)]
pub enum At {
    /// A journal position: everything up to and including row N.
    Seq(i64),
    /// Unix seconds.
    Unix(f64),
    /// RFC 3339 text, checked by SQLite's date functions where it is used.
    Time(String),
}

impl At {
    /// The value pit_restore takes: '{"seq":N}', a number, or the text.
    fn sql(&self) -> Value {
        match self {
            At::Seq(n) => Value::Text(json!({"seq": n}).to_string()),
            At::Unix(s) => Value::Real(*s),
            At::Time(t) => Value::Text(t.clone()),
        }
    }
}

const INSTANT_FORMS: &str = "an RFC 3339 time (2026-12-01T14:03:27.250Z, any offset), unix seconds \
                             (1764598407.25) or seq:N (a journal position)";

fn parse_instant(text: &str) -> Result<At, String> {
    let bad = || format!("expected {INSTANT_FORMS}");
    if let Some(n) = text.strip_prefix("seq:") {
        return n.parse::<i64>().ok().filter(|n| *n >= 0).map(At::Seq).ok_or_else(bad);
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then_some(At::Unix(seconds)).ok_or_else(bad);
    }
    let date_shaped = text.len() >= 10 && text.as_bytes()[..4].iter().all(u8::is_ascii_digit) && &text[4..5] == "-";
    date_shaped.then(|| At::Time(text.to_string())).ok_or_else(bad)
}

/// A period such as 1s, 250ms, 2m, 1h or 3 (seconds); at least 10 ms.
pub fn parse_period(text: &str) -> Result<Duration, String> {
    let bad = || "expected a period such as 1s, 250ms, 2m or 1h (at least 10ms)".to_string();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(bad()),
    };
    match Duration::try_from_secs_f64(seconds) {
        Ok(period) if period >= Duration::from_millis(10) => Ok(period),
        _ => Err(bad()),
    }
}

fn as_text_value(text: &str) -> Value {
    Value::Text(text.to_string())
}

/// Calls `function` once per table (or once with '*'), in one transaction: all or nothing. The results are
/// merged: lists joined, the rest from the last call.
fn per_table(conn: &mut Connection, function: &str, tables: &[String]) -> Result<Json, Failure> {
    let which: Vec<String> = if tables.is_empty() { vec!["*".into()] } else { tables.to_vec() };
    let txn = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql_failure)?;
    let mut merged = Map::new();
    for table in &which {
        let sql = format!("SELECT {function}(?1)");
        let result = query_json(&txn, &sql, [as_text_value(table)]).map_err(|f| named_table_failure(f, table))?;
        for (key, value) in result.as_object().cloned().unwrap_or_default() {
            match (merged.get_mut(&key), value) {
                (Some(Json::Array(all)), Json::Array(more)) if key != "tracked" && key != "still_tracked" => {
                    all.extend(more)
                }
                (_, value) => {
                    merged.insert(key, value);
                }
            }
        }
    }
    txn.commit().map_err(sql_failure)?;
    Ok(Json::Object(merged))
}

/// A table named on the command line that cannot be, or is not, journaled is a usage error.
fn named_table_failure(failure: Failure, table: &str) -> Failure {
    let about_it = failure.message.contains("cannot journal") || failure.message.contains("is not journaled");
    if table != "*" && about_it {
        Failure::usage(failure.message)
    } else {
        failure
    }
}

fn names(value: &Json) -> String {
    let list: Vec<String> = value.as_array().map(|l| l.iter().map(text).collect()).unwrap_or_default();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

pub fn run(global: &Global, args: &PitArgs) -> Result<u8, Failure> {
    match &args.command {
        PitCommand::Enable(a) => enable(global, a),
        PitCommand::Disable(a) => disable(global, a),
        PitCommand::Status(a) => status(global, a),
        PitCommand::Log(a) => log(global, a),
        PitCommand::Restore(a) => restore(global, a),
        PitCommand::Tick(a) => tick(global, a),
    }
}

fn enable(global: &Global, args: &TablesArgs) -> Result<u8, Failure> {
    let mut conn = extension::open(global, &args.db, true)?;
    let out = per_table(&mut conn, "pit_enable", &args.tables)?;
    if args.output.json {
        print_json(&out);
        return Ok(exit::OK);
    }
    let scope = if args.tables.is_empty() { " (every table, and tables created later)" } else { "" };
    println!("journaling {}: {}{scope}", args.db.display(), names(&out["tracked"]));
    for skipped in out["skipped"].as_array().into_iter().flatten() {
        println!("skipped {}: {}", text(&skipped["table"]), text(&skipped["reason"]));
    }
    for warning in out["warnings"].as_array().into_iter().flatten() {
        println!("warning: {}: {}", text(&warning["table"]), text(&warning["warning"]));
    }
    let db = args.db.display();
    println!("next: `vigil pit tick {db}` seals exact cut points; `vigil pit status {db}` shows the window");
    Ok(exit::OK)
}

fn disable(global: &Global, args: &TablesArgs) -> Result<u8, Failure> {
    let mut conn = extension::open(global, &args.db, true)?;
    let out = per_table(&mut conn, "pit_disable", &args.tables)?;
    if args.output.json {
        print_json(&out);
        return Ok(exit::OK);
    }
    println!("stopped journaling {}: {}", args.db.display(), names(&out["stopped"]));
    println!("still journaled: {}", names(&out["still_tracked"]));
    println!(
        "history: {} journal rows kept; restores inside the window still work",
        text(&out["history"]["journal_rows"])
    );
    Ok(exit::OK)
}

fn status(global: &Global, args: &StatusArgs) -> Result<u8, Failure> {
    let conn = extension::open(global, &args.db, false)?;
    let out = query_json(&conn, "SELECT pit_status()", [])?;
    if args.output.json {
        print_json(&out);
        return Ok(exit::OK);
    }
    let db = args.db.display();
    if out["enabled"] != true {
        println!("{db}: no journal; start one with `vigil pit enable {db}`");
        return Ok(exit::OK);
    }
    let tables: Vec<String> = out["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| format!("{} (key: {})", text(&t["table"]), text(&t["key"])))
        .collect();
    let every = if out["tracking"] == "*" { ", and tables created later" } else { "" };
    let window = &out["window"];
    let journal = &out["journal"];
    let share = journal["share_without_exact_txn"].as_f64().unwrap_or(0.0) * 100.0;
    println!("journal of {db} (lineage {})", text(&out["lineage"]));
    println!("tables:   {}{every}", if tables.is_empty() { "none".into() } else { tables.join(", ") });
    println!(
        "window:   {} (after seq {}) to now (seq {}); last change {}",
        text(&window["earliest"]),
        text(&window["earliest_seq"]),
        text(&window["latest_seq"]),
        if window["last_change"].is_null() { "none".into() } else { text(&window["last_change"]) }
    );
    println!(
        "journal:  {} rows, {}; {} rows ({share:.1} %) from writers without vigil (cut at statements between seals)",
        text(&journal["rows"]),
        crate::output::figure(&journal["bytes"], "bytes"),
        text(&journal["rows_without_exact_txn"]),
    );
    println!("schema:   {} changes seen", text(&out["schema_changes_seen"]));
    if out["schema_change_pending"] == true {
        println!("          a schema change is not yet noticed: the next pit command (e.g. a tick) takes it in");
    }
    Ok(exit::OK)
}

/// The canonical text of `pit_journal.at` (UTC, milliseconds) for a time (unix seconds as a REAL, else
/// RFC 3339 text), through SQLite's date functions.
fn journal_time(conn: &Connection, time: Value) -> Result<String, Failure> {
    let sql = match time {
        Value::Real(_) => "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ?1, 'unixepoch')",
        _ => "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ?1)",
    };
    let canonical: Option<String> = conn.query_row(sql, [time], |r| r.get(0)).map_err(sql_failure)?;
    canonical.ok_or_else(|| Failure::usage(format!("--since: not a valid time; expected {INSTANT_FORMS}")))
}

/// The newest `limit` journal rows matching the filters, oldest first, and whether older ones matched too.
fn journal_rows(conn: &Connection, args: &LogArgs) -> Result<(Vec<Map<String, Json>>, bool), Failure> {
    let mut filters = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    match &args.since {
        None => {}
        Some(At::Seq(n)) => {
            filters.push("seq > ?");
            params.push(Value::Integer(*n));
        }
        Some(time) => {
            filters.push("at >= ?");
            params.push(Value::Text(journal_time(conn, time.sql())?));
        }
    }
    if let Some(table) = &args.table {
        filters.push("\"table\" = ?");
        params.push(Value::Text(table.clone()));
    }
    let limit = if args.limit == 0 { -1 } else { args.limit.min(i64::MAX as u64 - 1) as i64 + 1 };
    params.push(Value::Integer(limit));
    let filter = if filters.is_empty() { String::new() } else { format!("WHERE {}", filters.join(" AND ")) };
    let sql = format!(
        "SELECT seq, txn, at, \"table\", op, key, old, new, detail FROM pit_journal {filter} ORDER BY seq DESC LIMIT ?"
    );
    let mut rows = query_rows(conn, &sql, rusqlite::params_from_iter(params))?;
    let more = args.limit > 0 && rows.len() as u64 > args.limit;
    if more {
        rows.truncate(args.limit as usize);
    }
    rows.reverse();
    Ok((rows, more))
}

/// A JSON text column (key, old, new) as JSON; other text stays text.
fn parsed(value: &Json) -> Json {
    match value.as_str().map(serde_json::from_str::<Json>) {
        Some(Ok(json)) => json,
        _ => value.clone(),
    }
}

/// A value in one line: text as it is, anything else as JSON.
fn compact(value: &Json) -> String {
    if value.is_string() || value.is_null() {
        text(value)
    } else {
        value.to_string()
    }
}

/// What a change did, in one line: the new row for an insert, the old one for a delete, and for an update
/// the columns whose value changed.
fn change(old: &Json, new: &Json) -> String {
    match (old, new) {
        (Json::Null, Json::Null) => String::new(),
        (Json::Null, new) => compact(new),
        (old, Json::Null) => compact(old),
        (Json::Object(before), Json::Object(after)) => {
            let changed: Vec<String> = after
                .iter()
                .filter(|(column, value)| before.get(*column) != Some(*value))
                .map(|(column, value)| format!("{column}: {} → {value}", before.get(column).unwrap_or(&Json::Null)))
                .collect();
            if changed.is_empty() {
                "no column changed".into()
            } else {
                changed.join(", ")
            }
        }
        (old, new) => format!("{} → {}", compact(old), compact(new)),
    }
}

fn log(global: &Global, args: &LogArgs) -> Result<u8, Failure> {
    let conn = extension::open(global, &args.db, false)?;
    let (rows, more) = journal_rows(&conn, args)?;
    let rows: Vec<Map<String, Json>> = rows
        .into_iter()
        .map(|mut row| {
            for column in ["key", "old", "new", "detail"] {
                if let Some(value) = row.get_mut(column) {
                    *value = parsed(value);
                }
            }
            row
        })
        .collect();
    if args.output.json {
        print_json(&Json::Array(rows.into_iter().map(Json::Object).collect()));
        return Ok(exit::OK);
    }
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let key = if r["key"].is_string() { text(&r["key"]) } else { r["key"].to_string() };
            let txn = if r["txn"].is_null() { "-".into() } else { text(&r["txn"]) };
            vec![
                text(&r["seq"]),
                txn,
                text(&r["at"]),
                text(&r["table"]),
                text(&r["op"]),
                if r["key"].is_null() { String::new() } else { key },
                if r["old"].is_null() && r["new"].is_null() {
                    compact(&r["detail"])
                } else {
                    change(&r["old"], &r["new"])
                },
            ]
        })
        .collect();
    if lines.is_empty() {
        println!("no journaled changes match");
        return Ok(exit::OK);
    }
    let header = ["SEQ", "TXN", "AT", "TABLE", "OP", "KEY", "CHANGE"];
    print!("{}", fitted(&header, &lines, Width::of_output(args.wide)));
    if more {
        println!("(older changes match too: raise --limit, 0 for all, or narrow with --since)");
    }
    Ok(exit::OK)
}

/// A path as SQL text; a name that is not valid UTF-8 is refused rather than sent with bytes replaced.
fn path_text(path: &Path, what: &str) -> Result<Value, Failure> {
    path.to_str().map(as_text_value).ok_or_else(|| {
        Failure::usage(format!("{what} {} is not valid UTF-8: rename it to a UTF-8 name", path.display()))
    })
}

fn restore(global: &Global, args: &RestoreArgs) -> Result<u8, Failure> {
    if let Some(into) = &args.into {
        if into.symlink_metadata().is_ok() {
            return Err(Failure::usage(format!(
                "--into {}: exists; vigil pit restore writes a new file and never replaces one: name a new path, \
                 or leave out --into to restore {} in place",
                into.display(),
                args.db.display()
            )));
        }
    }
    let target = match &args.into {
        Some(into) => path_text(into, "--into")?,
        None => Value::Null,
    };
    let conn = extension::open(global, &args.db, true)?;
    let options = json!({
        "consistency": if args.strict { "strict" } else { "statement" },
        "busy_timeout_ms": global.busy_timeout,
    });
    let params = vec![args.at.sql(), target, Value::Text(options.to_string())];
    // A progress bar from vigil_progress() on a terminal, as for backups, once the restore reports phases there.
    let out = crate::backup::run_on_db(global, conn, "SELECT pit_restore(?1, ?2, ?3)", params)?;
    if !args.output.json {
        print_restore(&args.db, &out);
        return Ok(exit::OK);
    }
    print_json(&out);
    if let Some(safety) = out["safety_backup"]["path"].as_str() {
        // Also said where a person reads it when the JSON goes to a file or a program.
        eprintln!("vigil pit restore: the state it replaced is kept in {safety}");
    }
    Ok(exit::OK)
}

fn print_restore(db: &Path, out: &Json) {
    let cut = &out["cut"];
    let at = if cut["at"].is_null() { "before the first change".into() } else { text(&cut["at"]) };
    let place = match out["safety_backup"].is_null() {
        true => format!("into {}", text(&out["target"])),
        false => "in place".into(),
    };
    println!("restored {} {place}: the state at seq {} ({at})", db.display(), text(&cut["seq"]));
    println!("consistency: {}", consistency(&text(&out["consistency"])));
    if let Some(moved) = cut["moved_from"].as_i64() {
        println!("seq {moved} is inside a transaction: the cut moved back to its start");
    }
    let per_table: Vec<String> =
        out["tables"].as_object().into_iter().flatten().map(|(t, n)| format!("{t}: {}", text(n))).collect();
    let per_table = if per_table.is_empty() { String::new() } else { format!(" ({})", per_table.join(", ")) };
    println!(
        "rows changed: {}{per_table}; {} journal rows undone",
        text(&out["rows_changed"]),
        text(&out["journal_rows_undone"])
    );
    for note in out["schema"].as_array().into_iter().flatten() {
        println!("schema: {}", schema_note(note, db));
    }
    let verified = &out["verified"];
    println!(
        "verified: quick_check {}, {} changed rows read back equal to their journaled images",
        text(&verified["quick_check"]),
        text(&verified["rows_checked"])
    );
    if out["rows_changed"].as_i64().unwrap_or(0) > 0 && !verified["content_sha256"].is_null() {
        println!("content sha256 of the rows it wrote or removed: {}", text(&verified["content_sha256"]));
    }
    if let Some(safety) = out["safety_backup"]["path"].as_str() {
        println!("\nSAFETY BACKUP: the state it replaced is kept in {safety}");
        println!("(undo this restore with `vigil restore {safety} {}`)", db.display());
    }
}

/// A note on the schema roll-back: `table.column: note`, in CLI terms.
fn schema_note(note: &Json, db: &Path) -> String {
    let Some(said) = note["note"].as_str() else { return compact(note) };
    let place = match note["column"].as_str() {
        Some(column) => format!("{}.{column}", text(&note["table"])),
        None => text(&note["table"]),
    };
    format!("{place}: {}", crate::sql::cli_terms(said, Some(db)))
}

fn consistency(kind: &str) -> String {
    match kind {
        "transaction" => "transaction (the cut is a transaction boundary)".into(),
        "statement" => "statement (writers without vigil: a transaction may be split; --strict cuts at the last \
                        exact boundary)"
            .into(),
        "row" => "row (between rows of one millisecond: a statement may be split; --strict avoids it)".into(),
        other => other.into(),
    }
}

/// When the tick after `elapsed` (since the first tick) is due, as an offset from the first tick: the
/// first slot of the grid 0, every, 2·every, … later than `elapsed`. A late tick (a slow write, a locked
/// database, a suspended machine) skips the slots it missed instead of catching up in a burst, and the
/// schedule never drifts by the ticks' own duration.
pub fn next_slot(elapsed: Duration, every: Duration) -> Duration {
    let period = every.as_nanos().max(1);
    let slots = elapsed.as_nanos() / period + 1;
    Duration::from_nanos(u64::try_from(slots * period).unwrap_or(u64::MAX))
}

fn interrupted() -> Failure {
    Failure { message: "interrupted".into(), code: exit::INTERRUPTED }
}

fn tick(global: &Global, args: &TickArgs) -> Result<u8, Failure> {
    // A signal interrupts a tick waiting for a lock: pit_tick then rolls its seal back, so every seal printed is
    // written and none written goes unsaid.
    let conn = extension::open(global, &args.db, true)?;
    let started = Clock::now();
    let mut written = 0;
    loop {
        if interrupt::received().is_some() {
            return Err(interrupted());
        }
        match query_json(&conn, "SELECT pit_tick()", []) {
            Ok(out) => {
                print_tick(args, &out);
                written += 1;
                if args.count == Some(written) {
                    return Ok(exit::OK);
                }
            }
            Err(_) if interrupt::received().is_some() => return Err(interrupted()),
            // A lock held past the busy timeout skips this tick (pit_tick rolled it back); the next slot tries again.
            Err(failure) if failure.message.contains("locked") || failure.message.contains("busy") => {
                let failure = crate::sql::explained(failure, Some(&args.db), global.busy_timeout);
                eprintln!("vigil pit tick: tick skipped: {}", failure.message);
            }
            Err(failure) => return Err(failure),
        }
        if !interrupt::sleep_until(started + next_slot(started.elapsed(), args.every)) {
            return Err(interrupted());
        }
    }
}

fn print_tick(args: &TickArgs, out: &Json) {
    if args.quiet {
        return;
    }
    if args.json {
        println!("{out}");
        return;
    }
    let noticed: Vec<String> = out["noticed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| format!("{} {}", text(&e["event"]), text(&e["table"])))
        .collect();
    let noticed = if noticed.is_empty() { String::new() } else { format!(" (noticed: {})", noticed.join(", ")) };
    // pit_tick returns an empty time when a signal interrupted it after its seal committed.
    let at = out["at"].as_str().filter(|at| !at.is_empty()).map_or(String::new(), |at| format!(" at {at}"));
    println!("tick seq {}{at}{noticed}", text(&out["seq"]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_keeps_a_fixed_grid_and_skips_missed_slots() {
        let ms = Duration::from_millis;
        assert_eq!(next_slot(ms(0), ms(100)), ms(100));
        assert_eq!(next_slot(ms(30), ms(100)), ms(100), "a tick's own time does not shift the grid");
        assert_eq!(next_slot(ms(100), ms(100)), ms(200), "a tick due now is the next one after it");
        assert_eq!(next_slot(ms(350), ms(100)), ms(400), "slots missed by a slow tick are skipped, not burst");
        assert_eq!(next_slot(Duration::from_secs(3600), Duration::from_secs(1)), Duration::from_secs(3601));
    }

    #[test]
    fn periods_take_a_unit_and_refuse_what_is_too_short() {
        assert_eq!(parse_period("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_period("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_period("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_period("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["0s", "5ms", "", "s", "1d", "-1s", "1 s"] {
            assert!(parse_period(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instants_are_a_seq_unix_seconds_or_rfc3339_text() {
        assert_eq!(parse_instant("seq:12"), Ok(At::Seq(12)));
        assert_eq!(parse_instant("1764598407.25"), Ok(At::Unix(1764598407.25)));
        assert_eq!(
            parse_instant("2026-12-01T14:03:27.250+01:00"),
            Ok(At::Time("2026-12-01T14:03:27.250+01:00".into()))
        );
        assert_eq!(At::Seq(12).sql(), Value::Text(r#"{"seq":12}"#.into()));
        for bad in ["seq:-1", "seq:x", "yesterday", "-5", "inf", "12-01-2026"] {
            assert!(parse_instant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_update_shows_only_the_columns_it_changed() {
        let old = json!({"id": 1, "name": "a", "qty": 2});
        let new = json!({"id": 1, "name": "b", "qty": 2});
        assert_eq!(change(&old, &new), r#"name: "a" → "b""#);
        assert_eq!(change(&Json::Null, &new), new.to_string());
        assert_eq!(change(&old, &Json::Null), old.to_string());
    }
}
