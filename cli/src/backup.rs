//! `vigil backup`, `backups`, `verify`, `restore` and `export`: call backup_to, backup_list, backup_verify,
//! backup_restore and export_to. Exit 0 when done and verified, 2 when a backup, drill or restore failed
//! (a failed backup is what monitoring must see), 3 when the database cannot be opened, 64 for bad usage.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rusqlite::Connection;
use serde_json::{json, Value as Json};

use crate::output::{columns, figure, name, print_json, text};
use crate::sql::{query_json, sql_failure};
use crate::{exit, extension, Failure, Global};

#[derive(Args)]
pub struct BackupArgs {
    /// The database file
    pub db: PathBuf,
    /// A directory to name the backup in (<name>-<UTC time>.db): an existing one, or any path ending in '/'
    /// (created); else a file to create, ending in .gz with --gzip, .zst with --zstd
    pub dest: PathBuf,
    /// Compress with gzip (.gz)
    #[arg(long, conflicts_with = "zstd")]
    pub gzip: bool,
    /// Compress with zstd (.zst): faster than gzip and smaller
    #[arg(long)]
    pub zstd: bool,
    /// Check the copy before it is published
    #[arg(long, value_enum, default_value_t = Verify::Quick)]
    pub verify: Verify,
    #[command(flatten)]
    pub retention: Retention,
    /// Replace DEST if it exists
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub output: Output,
    /// The attached schema to back up
    #[arg(long, default_value = "main")]
    pub schema: String,
}

/// The retention flags, shared by `vigil backup` and `vigil watch --backup-every`.
#[derive(Args, Clone, Debug, Default)]
pub struct Retention {
    /// Retention: keep the last N backups of this database in the directory. With any --keep… option, a
    /// backup of this database that none of them keeps is deleted
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub keep: Option<i64>,
    /// Keep only the newest backup of each of the last N days (older ones of the same day are deleted), plus
    /// what the other --keep… options keep
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub keep_daily: Option<i64>,
    /// Keep only the newest backup of each of the last N ISO weeks, plus what the other --keep… options keep
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub keep_weekly: Option<i64>,
    /// Keep only the newest backup of each of the last N months, plus what the other --keep… options keep
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub keep_monthly: Option<i64>,
}

impl Retention {
    /// The first --keep… flag given, if any (watch refuses them without --backup-dir).
    pub fn first_given(&self) -> Option<&'static str> {
        [
            ("--keep", self.keep),
            ("--keep-daily", self.keep_daily),
            ("--keep-weekly", self.keep_weekly),
            ("--keep-monthly", self.keep_monthly),
        ]
        .into_iter()
        .find_map(|(flag, value)| value.map(|_| flag))
    }

    /// Adds backup_to's retention options (keep, keep_daily, …) that were given.
    pub fn add_options(&self, options: &mut Json) {
        for (key, value) in [
            ("keep", self.keep),
            ("keep_daily", self.keep_daily),
            ("keep_weekly", self.keep_weekly),
            ("keep_monthly", self.keep_monthly),
        ] {
            if let Some(n) = value {
                options[key] = json!(n);
            }
        }
    }
}

#[derive(Args)]
pub struct BackupsArgs {
    /// A directory of backups
    pub dir: PathBuf,
    /// Recompute every backup's SHA-256 and compare it with its manifest
    #[arg(long)]
    pub hash: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// A backup file (or its .vigil.json manifest)
    pub backup: PathBuf,
    /// Run quick_check instead of the full integrity_check
    #[arg(long)]
    pub quick: bool,
    /// Accept a backup without its manifest (plain, .gz or .zst SQLite file): integrity-checked, not hash-verified
    #[arg(long)]
    pub bare: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// A backup file (or its .vigil.json manifest)
    pub backup: PathBuf,
    /// The database to restore into: replaced in place (its current state is backed up beside it first),
    /// or created
    pub db: PathBuf,
    /// Accept a backup without its manifest (plain, .gz or .zst SQLite file): integrity-checked, not hash-verified
    #[arg(long)]
    pub bare: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct ExportArgs {
    /// The database file
    pub db: PathBuf,
    /// The directory to write into (created when missing)
    pub dir: PathBuf,
    #[arg(long, value_enum)]
    pub format: Format,
    /// Replace files that exist
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct Output {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Verify {
    Quick,
    Full,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Sql,
    Json,
    Csv,
}

/// A progress bar for work that takes over a second, fed by `vigil_progress()` from a second connection
/// (the work holds the first); drawn on stderr when stderr is a terminal, whatever stdout is. A phase of
/// unknown size (a check) shows a spinner with the elapsed time, not a bar at zero.
fn with_progress<T: Send>(global: &Global, work: impl FnOnce() -> T + Send) -> T {
    use std::io::IsTerminal;
    let watcher = extension::open_memory(global).ok().filter(|_| std::io::stderr().is_terminal());
    std::thread::scope(|scope| {
        let running = scope.spawn(work);
        let started = Instant::now();
        let mut bar: Option<ProgressBar> = None;
        while !running.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            let Some(conn) = watcher.as_ref().filter(|_| started.elapsed() > Duration::from_secs(1)) else { continue };
            let Ok(list) = query_json(conn, "SELECT vigil_progress()", []) else { continue };
            let Some(now) = list.as_array().and_then(|l| l.last()) else { continue };
            match &bar {
                Some(bar) => show(bar, now),
                None => {
                    // Styled before it is first drawn.
                    let new = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
                    show(&new, now);
                    new.set_draw_target(ProgressDrawTarget::stderr());
                    bar = Some(new);
                }
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        running.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Draws one `vigil_progress()` entry: bytes done of a known total, else a spinner.
fn show(bar: &ProgressBar, now: &Json) {
    let total = now["total_bytes"].as_u64().unwrap_or(0);
    let template = if total > 0 {
        "{msg}\n[{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}"
    } else {
        "{msg}\n{spinner} {elapsed}"
    };
    // Figures first, then the style: a redraw in between never shows a bar of 0 B/0 B.
    bar.set_length(total);
    bar.set_position(now["done_bytes"].as_u64().unwrap_or(0));
    bar.set_message(text(&now["operation"]));
    bar.set_style(ProgressStyle::with_template(template).unwrap_or(ProgressStyle::default_bar()));
    bar.tick();
}

/// A backup, drill or restore that did not succeed is critical (exit 2); bad usage stays a usage error.
fn failed_operation(failure: Failure) -> Failure {
    if failure.code == exit::USAGE {
        failure
    } else {
        Failure { code: exit::CRITICAL, ..failure }
    }
}

/// Runs one vigil function that returns JSON, with a progress bar; its failures are a failed operation
/// (exit 2) unless they are bad usage.
pub(crate) fn run(
    global: &Global,
    conn: Connection,
    sql: &str,
    params: Vec<rusqlite::types::Value>,
) -> Result<Json, Failure> {
    run_with(global, conn, sql, params, |e| failed_operation(sql_failure(e)))
}

/// Like `run`, for a function reading the database it was opened on (backup, export): a database that could
/// not be read (locked, not a database) leaves its state unknown (exit 3), as for `vigil health`.
pub(crate) fn run_on_db(
    global: &Global,
    conn: Connection,
    sql: &str,
    params: Vec<rusqlite::types::Value>,
) -> Result<Json, Failure> {
    run_with(global, conn, sql, params, |e| {
        if crate::sql::unreadable(&e) {
            sql_failure(e)
        } else {
            failed_operation(sql_failure(e))
        }
    })
}

fn run_with(
    global: &Global,
    conn: Connection,
    sql: &str,
    params: Vec<rusqlite::types::Value>,
    failure: impl FnOnce(rusqlite::Error) -> Failure,
) -> Result<Json, Failure> {
    let outcome = with_progress(global, move || {
        let text: rusqlite::Result<String> = conn.query_row(sql, rusqlite::params_from_iter(params), |row| row.get(0));
        text
    });
    let text = outcome.map_err(failure)?;
    serde_json::from_str(&text).map_err(|e| Failure::unknown(format!("the extension returned invalid JSON: {e}")))
}

/// A path as SQL text; a path that is not valid UTF-8 is refused rather than sent with bytes replaced
/// (vigil would then write or read another file).
pub(crate) fn path_value(path: &std::path::Path, what: &str) -> Result<rusqlite::types::Value, Failure> {
    match path.to_str() {
        Some(text) => Ok(rusqlite::types::Value::Text(text.to_string())),
        None => Err(Failure::usage(format!(
            "{what} {} is not valid UTF-8: vigil would use another name; rename it to a UTF-8 name",
            path.display()
        ))),
    }
}

pub fn backup(global: &Global, args: &BackupArgs) -> Result<u8, Failure> {
    let conn = extension::open(global, &args.db, false)?;
    let mut options = json!({
        "schema": args.schema,
        "busy_timeout_ms": global.busy_timeout,
        "verify": name(args.verify),
        "compress": if args.gzip { "gzip" } else if args.zstd { "zstd" } else { "none" },
        "overwrite": args.overwrite,
    });
    args.retention.add_options(&mut options);
    let dest = path_value(&args.dest, "DEST")?;
    let out = run_on_db(global, conn, "SELECT backup_to(?1, ?2)", vec![dest, options.to_string().into()])?;
    warn_unrecorded(&args.db, &out);
    if args.output.json {
        print_json(&out);
        return Ok(exit::OK);
    }
    println!("backup {} → {}", args.db.display(), text(&out["path"]));
    println!(
        "{} ({} of database, {}), {} pages of {} bytes, {} in {} ms",
        figure(&out["bytes"], "bytes"),
        figure(&out["database_bytes"], "bytes"),
        text(&out["compression"]),
        text(&out["pages"]),
        text(&out["page_size"]),
        text(&out["method"]),
        text(&out["duration_ms"])
    );
    println!("verified: {} ({})", text(&out["verified"]), text(&out["verify"]));
    println!("sha256: {}", text(&out["sha256"]));
    if let Some(retention) = out.get("retention") {
        let deleted = retention["deleted"].as_array().map_or(0, Vec::len);
        println!("retention: kept {}, deleted {deleted}", text(&retention["kept"]));
    }
    print_removed_temporaries(&out);
    Ok(exit::OK)
}

/// A backup the database's log could not record does not count for `vigil health`'s last_backup: say so on
/// the terminal (stderr), also under --json.
fn warn_unrecorded(db: &std::path::Path, out: &Json) {
    if let Some(reason) = out["logged"].as_str() {
        let reason = reason.strip_prefix("not recorded: ").unwrap_or(reason);
        eprintln!(
            "vigil backup: the backup was made but not recorded in {}'s vigil_backup_log ({reason}), so `vigil \
             health` will not count it as its last_backup",
            db.display()
        );
    }
}

pub fn backups(global: &Global, args: &BackupsArgs) -> Result<u8, Failure> {
    let conn = extension::open_memory(global)?;
    let options = json!({"hash": args.hash, "ignored": true}).to_string();
    let (ignored, list): (Vec<Json>, Vec<Json>) = query_rows(&conn, path_value(&args.dir, "DIR")?, &options)?
        .into_iter()
        .partition(|r| r["sha256_status"].as_str().is_some_and(|s| s.starts_with("ignored")));
    let damaged = list.iter().any(|r| {
        let status = r["sha256_status"].as_str().unwrap_or_default();
        matches!(status, "mismatch" | "missing") || status.starts_with("unreadable")
    });
    if args.output.json {
        print_json(&Json::Array(list.into_iter().chain(ignored).collect()));
    } else {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|r| {
                vec![
                    text(&r["created_at"]),
                    format!("{} h", text(&r["age_hours"])),
                    figure(&r["bytes"], "bytes"),
                    text(&r["compression"]),
                    if r["verified"] == 1 { format!("{} ok", text(&r["verify"])) } else { "no".into() },
                    text(&r["sha256_status"]),
                    text(&r["path"]),
                ]
            })
            .collect();
        print!("{}", columns(&["CREATED", "AGE", "SIZE", "COMPRESSION", "VERIFIED", "SHA256", "PATH"], &rows));
        println!("\n{} backups in {}", list.len(), args.dir.display());
        print_ignored(&ignored);
    }
    Ok(if damaged { exit::CRITICAL } else { exit::OK })
}

/// Files of the directory that are not listed as backups, each with the reason.
fn print_ignored(ignored: &[Json]) {
    if ignored.is_empty() {
        return;
    }
    println!("\nignored {} files:", ignored.len());
    for file in ignored {
        let reason = text(&file["sha256_status"]);
        let reason = reason.trim_start_matches("ignored: ").replace(BARE_OPTION, "vigil verify --bare");
        println!("  {}: {reason}", text(&file["path"]));
    }
}

fn query_rows(conn: &Connection, dir: rusqlite::types::Value, options: &str) -> Result<Vec<Json>, Failure> {
    let params = [dir, options.to_string().into()];
    let rows = crate::sql::query_rows(conn, "SELECT * FROM backup_list(?1, ?2)", params).map_err(failed_operation)?;
    Ok(rows.into_iter().map(Json::Object).collect())
}

/// The extension names the SQL option; in the listing, the command that takes it.
const BARE_OPTION: &str = r#"'{"bare":true}'"#;

fn print_bare(out: &Json) {
    if out["bare"] == true {
        println!("\nbare backup: no manifest, so its content could not be verified against a hash");
    }
}

fn print_steps(out: &Json) {
    let steps = out["steps"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|s| {
            let ok = if s["ok"] == true { "ok" } else { "FAILED" };
            vec![text(&s["step"]), ok.into(), format!("{} ms", text(&s["duration_ms"])), text(&s["detail"])]
        })
        .collect();
    print!("{}", columns(&["STEP", "RESULT", "TIME", "DETAIL"], &rows));
}

/// A backup named on the command line that is not there: said plainly, before the extension looks for its
/// manifest.
pub(crate) fn must_exist(backup: &std::path::Path) -> Result<(), Failure> {
    match backup.exists() {
        true => Ok(()),
        false => Err(Failure { message: format!("{}: no such file", backup.display()), code: exit::CRITICAL }),
    }
}

pub fn verify(global: &Global, args: &VerifyArgs) -> Result<u8, Failure> {
    must_exist(&args.backup)?;
    let conn = extension::open_memory(global)?;
    let options = json!({"verify": if args.quick { "quick" } else { "full" }, "bare": args.bare}).to_string();
    let out =
        run(global, conn, "SELECT backup_verify(?1, ?2)", vec![path_value(&args.backup, "BACKUP")?, options.into()])?;
    if args.output.json {
        print_json(&out);
    } else {
        print_steps(&out);
        print_bare(&out);
        match out["problem"].as_str() {
            Some(problem) => println!("\n{}: FAILED: {problem}", args.backup.display()),
            None => println!("\n{}: OK, restorable", args.backup.display()),
        }
    }
    Ok(if out["ok"] == true { exit::OK } else { exit::CRITICAL })
}

pub fn restore(global: &Global, args: &RestoreArgs) -> Result<u8, Failure> {
    must_exist(&args.backup)?;
    let conn = extension::open_memory(global)?;
    let options = json!({"busy_timeout_ms": global.busy_timeout, "bare": args.bare}).to_string();
    let params = vec![path_value(&args.backup, "BACKUP")?, path_value(&args.db, "DB")?, options.into()];
    let out = run(global, conn, "SELECT backup_restore(?1, ?2, ?3)", params)?;
    if args.output.json {
        print_json(&out);
    } else {
        print_steps(&out);
        print_bare(&out);
        println!("\nrestored {} into {}", args.backup.display(), args.db.display());
        if let Some(safety) = out["safety_backup"]["path"].as_str() {
            println!("the state it replaced is kept in {safety}");
        }
    }
    let (code, warning) = restore_outcome(&out, &args.db.display().to_string());
    if let Some(warning) = warning {
        eprintln!("{warning}");
    }
    Ok(code)
}

/// The exit code of a restore that ran, and what to tell the user when its check after publication failed:
/// the data is already replaced, so restoring again would only replace it once more.
fn restore_outcome(out: &Json, db: &str) -> (u8, Option<String>) {
    match (&out["ok"], &out["restored"]) {
        (Json::Bool(true), _) => (exit::OK, None),
        (_, Json::Bool(true)) => {
            let problem = out["check_problem"].as_str().unwrap_or("unknown problem");
            let warning = format!(
                "vigil restore: the restore is done, but the check after it failed: {problem}. Do not restore \
                 again; check the database with `vigil health {db} --full`"
            );
            (exit::RESTORED_UNCHECKED, Some(warning))
        }
        _ => (exit::CRITICAL, None),
    }
}

pub fn export(global: &Global, args: &ExportArgs) -> Result<u8, Failure> {
    let conn = extension::open(global, &args.db, false)?;
    let options = json!({"overwrite": args.overwrite}).to_string();
    let params = vec![path_value(&args.dir, "DIR")?, name(args.format).into(), options.into()];
    let out = run_on_db(global, conn, "SELECT export_to(?1, ?2, ?3)", params)?;
    if args.output.json {
        print_json(&out);
    } else {
        let files = out["files"].as_array().cloned().unwrap_or_default();
        let rows: Vec<Vec<String>> =
            files.iter().map(|f| vec![text(&f["path"]), text(&f["rows"]), figure(&f["bytes"], "bytes")]).collect();
        print!("{}", columns(&["FILE", "ROWS", "SIZE"], &rows));
    }
    Ok(exit::OK)
}

/// The stale temporary files this run removed (left by a killed run), as the backup reports them.
fn print_removed_temporaries(out: &Json) {
    let removed = out["removed_temporaries"].as_array().cloned().unwrap_or_default();
    for path in removed {
        println!("removed a stale temporary file left by an interrupted run: {}", text(&path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_whose_check_failed_says_it_is_done_and_exits_4() {
        let out = json!({"ok": false, "restored": true, "check_problem": "could not run: database is locked"});
        let (code, warning) = restore_outcome(&out, "live.db");
        assert_eq!(code, exit::RESTORED_UNCHECKED);
        let warning = warning.unwrap();
        assert!(warning.contains("the restore is done") && warning.contains("database is locked"), "{warning}");
        assert!(warning.contains("vigil health live.db --full"), "{warning}");
        assert_eq!(restore_outcome(&json!({"ok": true, "restored": true}), "x").0, exit::OK);
        assert_eq!(restore_outcome(&json!({"ok": false}), "x").0, exit::CRITICAL);
    }
}
