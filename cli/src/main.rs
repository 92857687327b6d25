//! `vigil`: the command line face of the vigil extension. It parses arguments, opens the database with
//! rusqlite, loads the extension, calls its SQL and formats the result; it holds no database logic.

mod alert;
mod backup;
mod diagnose;
mod extension;
mod health;
mod interrupt;
mod maintain;
mod metrics;
mod output;
mod pit;
mod salvage;
mod serve;
mod sql;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Exit codes, after the monitoring-plugin convention (Nagios, Icinga, Sensu).
pub mod exit {
    pub const OK: u8 = 0;
    pub const WARNING: u8 = 1;
    pub const CRITICAL: u8 = 2;
    /// The database cannot be opened or read, or vigil cannot load: the state is unknown.
    pub const UNKNOWN: u8 = 3;
    /// `vigil restore` only: the backup was restored, but the check after it failed or could not run.
    pub const RESTORED_UNCHECKED: u8 = 4;
    /// Bad command line (sysexits' EX_USAGE): never mistaken for a database state.
    pub const USAGE: u8 = 64;
    /// Stopped by SIGINT (Ctrl-C) or SIGTERM before it finished (128 + SIGINT, the shells' convention).
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Parser)]
#[command(name = "vigil", version, about = "Keep SQLite databases healthy, backed up and recoverable")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// The vigil extension library to load (default: next to this executable, or $VIGIL_EXTENSION)
    #[arg(long, global = true, value_name = "PATH", env = "VIGIL_EXTENSION")]
    pub extension: Option<PathBuf>,
    /// How long to wait for a lock held by another connection, in milliseconds
    #[arg(long, global = true, value_name = "MS", default_value_t = 5000)]
    pub busy_timeout: u32,
}

#[derive(Subcommand)]
enum Command {
    /// Report a database's health; exit 0 ok, 1 warning, 2 critical, 3 unknown
    Health(health::HealthArgs),
    /// Diagnose a database that may be damaged, without writing to it: exit 0 ok, 1 warning, 2 critical
    Diagnose(diagnose::DiagnoseArgs),
    /// Vacuum when fragmented: exit 0 vacuumed or skipped, 1 refused (not enough disk)
    Vacuum(maintain::VacuumArgs),
    /// Graded maintenance (optimize, checkpoint, analyze, reindex, vacuum, integrity): exit 0 ok, 1 warning, 2 failed
    Maintain(maintain::MaintainArgs),
    /// Checkpoint the WAL into the database: exit 0 done, 1 blocked by a reader
    Checkpoint(maintain::CheckpointArgs),
    /// Back up a database online: verified, hashed, with a manifest; exit 0 done, 2 failed
    Backup(backup::BackupArgs),
    /// List a directory's backups (oldest first); exit 2 when one is missing or damaged (--hash)
    Backups(backup::BackupsArgs),
    /// Restore drill of a backup (hashes, decompression, integrity_check); exit 0 restorable, 2 not
    Verify(backup::VerifyArgs),
    /// Restore a verified backup into a database, keeping what it replaces; exit 0 done, 2 refused, 4 restored
    /// but its check failed
    Restore(backup::RestoreArgs),
    /// Export a database as SQL (one dump), JSON or CSV (a file per table)
    Export(backup::ExportArgs),
    /// Point in time: journal every change (enable, disable, status, log) and restore any instant (restore, tick)
    Pit(pit::PitArgs),
    /// Salvage every readable row of a damaged database into a new one: exit 0 nothing damaged, 1 damage found
    /// (see the report), 2 failed
    Salvage(salvage::SalvageArgs),
    /// Prometheus metrics of databases (stdout or --textfile DIR); exit 3 when one cannot be read
    Metrics(metrics::MetricsArgs),
    /// Serve /metrics (Prometheus), /health (200/503 + JSON) and a dashboard (/) for databases, from a cache
    /// refreshed every --every; runs until SIGINT or SIGTERM, then exits 0
    Serve(serve::ServeArgs),
    /// Send one firing then one resolved test alert to every --webhook and --alertmanager; exit 0 when all were
    /// delivered, 2 when one was not
    AlertTest(alert::AlertTestArgs),
    /// Watch databases: checks, snapshots, backups, maintenance and pit ticks on schedule, with alerts; runs
    /// until SIGINT or SIGTERM (exit 0), or --once (exit 0 ok, 1 warning, 2 critical, 3 unreadable)
    Watch(Box<watch::WatchArgs>),
    /// Create a demo database (a small shop with some deleted history) at PATH
    Demo {
        /// Where to create it
        path: PathBuf,
        /// Replace PATH if it exists
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    interrupt::install();
    let interrupted = interrupted_note(&cli.command);
    let db = database_of(&cli.command);
    // serve runs until a signal: stopping then is its normal end, not work cut short.
    let serving = matches!(cli.command, Command::Serve(_) | Command::Watch(_));
    let result = match cli.command {
        Command::Health(args) => health::run(&cli.global, &args),
        Command::Diagnose(args) => diagnose::run(&cli.global, &args),
        Command::Vacuum(args) => maintain::vacuum(&cli.global, &args),
        Command::Maintain(args) => maintain::maintain(&cli.global, &args),
        Command::Checkpoint(args) => maintain::checkpoint(&cli.global, &args),
        Command::Backup(args) => backup::backup(&cli.global, &args),
        Command::Backups(args) => backup::backups(&cli.global, &args),
        Command::Verify(args) => backup::verify(&cli.global, &args),
        Command::Restore(args) => backup::restore(&cli.global, &args),
        Command::Export(args) => backup::export(&cli.global, &args),
        Command::Pit(args) => pit::run(&cli.global, &args),
        Command::Salvage(args) => salvage::salvage(&cli.global, &args),
        Command::Metrics(args) => metrics::run(&cli.global, &args),
        Command::Serve(args) => serve::run(&cli.global, &args),
        Command::AlertTest(args) => alert::alert_test(&args),
        Command::Watch(args) => watch::run(&cli.global, &args),
        Command::Demo { path, force } => health::demo(&path, force),
    };
    match result {
        Ok(code) => {
            if let Some(signal) = interrupt::received().filter(|_| !serving) {
                eprintln!("vigil: {signal} came when the work could no longer stop: it was completed");
            }
            ExitCode::from(code)
        }
        Err(failure) => match (interrupt::received(), interrupted) {
            // Only a failure the interrupt caused: anything else keeps its own message and code.
            (Some(signal), Some(left)) if caused_by_signal(&failure) => {
                eprintln!("vigil: interrupted by {signal}: {left}");
                ExitCode::from(exit::INTERRUPTED)
            }
            _ => {
                let failure = sql::explained(failure, db.as_deref(), cli.global.busy_timeout);
                eprintln!("vigil: {}", output::printable(&failure.message));
                ExitCode::from(failure.code)
            }
        },
    }
}

/// Whether a failure is what a signal does: an interrupted statement, or a lock wait the signal cut short.
fn caused_by_signal(failure: &Failure) -> bool {
    let said = &failure.message;
    said.contains("interrupted") || said.contains("database is locked") || said.contains("database is busy")
}

/// The database file a command works on, named in its errors.
fn database_of(command: &Command) -> Option<PathBuf> {
    match command {
        Command::Health(args) => Some(args.db.clone()),
        Command::Diagnose(args) => Some(args.db.clone()),
        Command::Vacuum(args) => Some(args.db.clone()),
        Command::Maintain(args) => Some(args.db.clone()),
        Command::Checkpoint(args) => Some(args.db.clone()),
        Command::Backup(args) => Some(args.db.clone()),
        Command::Export(args) => Some(args.db.clone()),
        Command::Pit(args) => Some(args.command.db().to_path_buf()),
        _ => None,
    }
}

/// What an interrupted command left, as the user should read it; None where an interrupted step is
/// finished first and the command reports as usual (restore, maintain, checkpoint, vacuum).
fn interrupted_note(command: &Command) -> Option<String> {
    Some(match command {
        Command::Backup(args) => format!(
            "no backup was written, vigil removed its temporary files, and {} was not changed",
            args.db.display()
        ),
        Command::Export(args) => format!("the export did not finish; {} was not changed", args.db.display()),
        Command::Verify(args) => format!("the drill did not finish; {} was not changed", args.backup.display()),
        Command::Backups(_) | Command::Health(_) | Command::Diagnose(_) => "nothing was changed".into(),
        Command::Metrics(args) => match &args.textfile {
            Some(dir) => {
                format!("no metrics were written; {} keeps the previous run's", dir.join("vigil.prom").display())
            }
            None => "no metrics were written".into(),
        },
        Command::Pit(args) => return args.command.interrupted_note(),
        Command::Salvage(args) => format!(
            "the salvage did not finish; {} was not created and {} was not changed{}",
            args.out.display(),
            args.broken.display(),
            if args.no_emergency_copy { "" } else { " (its emergency copy, when complete, stays beside OUT)" }
        ),
        _ => return None,
    })
}

/// Why a command could not produce its result, and the exit code that says so.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    pub fn unknown(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code: exit::UNKNOWN }
    }
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code: exit::USAGE }
    }
}
