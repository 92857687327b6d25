//! `vigil watch`: runs checks, snapshots, backups, maintenance and pit ticks on schedule over many databases,
//! until stopped (or once, for cron), remembering in a state file what ran and which alerts fire.
//!
//! The main thread owns every decision (what is due, what a result changes, what to save); workers in three
//! lanes (cheap checks, pit ticks, long jobs) only run jobs, so a slow or locked database holds one worker of
//! one lane and never the schedule of the others.

mod alerting;
mod discover;
mod jobs;
mod log;
mod schedule;
mod state;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use clap::{Args, ValueEnum};
use serde_json::json;

use self::jobs::{Job, Lane, Outcome, Settings};
use self::log::{Level, Log};
use self::schedule::Millis;
use self::state::{DbState, State, StateFile};
use crate::metrics::{self, DbReport, Target};
use crate::{exit, interrupt, Failure, Global};

#[derive(Args)]
pub struct WatchArgs {
    /// Database files or globs (quoted, e.g. '/srv/*/data/*.db'); globs keep only SQLite files
    #[arg(value_name = "DB|GLOB", required_unless_present = "dir")]
    pub databases: Vec<String>,
    /// Also watch the databases in this directory whose file names match --pattern
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The file names --dir watches (a glob on the name)
    #[arg(long, value_name = "GLOB", default_value = "*.db", requires = "dir", value_parser = parse_pattern)]
    pub pattern: glob::Pattern,
    /// Also look in --dir's subdirectories (never through a symlink)
    #[arg(long, requires = "dir")]
    pub recursive: bool,
    /// Cheap checks (vigil_metrics without integrity scans), and re-reading the selection, every PERIOD
    #[arg(long, value_name = "PERIOD", default_value = "60s", value_parser = crate::pit::parse_period)]
    pub every: Duration,
    /// PRAGMA quick_check every PERIOD, or off
    #[arg(long, value_name = "PERIOD|off", default_value = "24h", value_parser = parse_period_or_off)]
    pub quick_every: Period,
    /// integrity_check and the fragmentation scan every PERIOD, or off
    #[arg(long, value_name = "PERIOD|off", default_value = "7d", value_parser = parse_period_or_off)]
    pub full_every: Period,
    /// Record health_snapshot() into the database's vigil_health_history every PERIOD (the one write of the
    /// checks; it feeds growth and drift), or off
    #[arg(long, value_name = "PERIOD|off", default_value = "24h", value_parser = parse_period_or_off)]
    pub snapshot_every: Period,
    /// Back up each database every PERIOD into its own subdirectory of --backup-dir (off without it)
    #[arg(long, value_name = "PERIOD|off", default_value = "24h", value_parser = parse_period_or_off)]
    pub backup_every: Period,
    /// Where backups go: DIR/<label>/ per database (created 0700)
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Compression of the backups
    #[arg(long, value_enum, default_value_t = Compress::None)]
    pub backup_compress: Compress,
    #[command(flatten)]
    pub retention: crate::backup::Retention,
    /// Run maintain() at this level once a day in the quiet hour, or off
    #[arg(long, value_enum, default_value_t = Maintain::Off)]
    pub maintain: Maintain,
    /// The quiet hour (local time, 0-23) for --maintain
    #[arg(long, value_name = "H", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=23))]
    pub quiet_hour: u32,
    /// pit_tick() every PERIOD on databases whose pit_journal is enabled, or off
    #[arg(long, value_name = "PERIOD|off", default_value = "1s", value_parser = parse_period_or_off)]
    pub pit_every: Period,
    /// Override a health threshold, as `vigil health --threshold`
    #[arg(long = "threshold", value_name = "NAME=WARN[,CRIT]")]
    pub thresholds: Vec<String>,
    /// The state file (default: $STATE_DIRECTORY/watch-state.json under systemd, else
    /// $XDG_STATE_HOME/vigil/watch-state.json, else ~/.local/state/vigil/watch-state.json)
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Write DIR/vigil.prom (node_exporter's textfile collector) after each cycle
    #[arg(long, value_name = "DIR")]
    pub textfile: Option<PathBuf>,
    /// Log JSON lines instead of text
    #[arg(long)]
    pub log_json: bool,
    /// Run what is due now, deliver, save the state and exit: 0 ok, 1 warning, 2 critical, 3 unreadable
    #[arg(long)]
    pub once: bool,
    /// Workers for the cheap checks (pit ticks and long jobs get half as many each, at least one)
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    #[command(flatten)]
    pub alert: alerting::Args,
}

/// A schedule's period; None: off.
pub type Period = Option<Duration>;

fn parse_period_or_off(text: &str) -> Result<Period, String> {
    if text == "off" {
        return Ok(None);
    }
    if let Some(days) = text.strip_suffix('d') {
        let days: u64 = days.parse().map_err(|_| "expected a period such as 60s, 24h, 7d, or off".to_string())?;
        return Ok(Some(Duration::from_secs(days * 86_400)).filter(|d| !d.is_zero()));
    }
    crate::pit::parse_period(text).map(Some).map_err(|e| format!("{e}, 7d, or off"))
}

fn parse_pattern(text: &str) -> Result<glob::Pattern, String> {
    if text.contains('/') {
        return Err("expected a file name glob such as '*.db' (no '/': it matches names, not paths)".into());
    }
    glob::Pattern::new(text).map_err(|e| format!("bad glob: {} at character {}", e.msg, e.pos))
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Debug)]
pub enum Compress {
    None,
    Gzip,
    Zstd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Debug)]
pub enum Maintain {
    Off,
    Auto,
    Light,
    Standard,
    Full,
}

fn now_ms() -> Millis {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A job sent to a lane's workers.
struct Task {
    job: Job,
    target: Target,
    started: Millis,
}

/// A job's end, sent back to the main thread.
struct Finished {
    db: String,
    job: Job,
    started: Millis,
    outcome: Outcome,
    took: Duration,
}

/// One database being watched.
struct Watched {
    target: Target,
    /// pit_journal is enabled (seen in its last check).
    pit: bool,
    last_pit: Option<Millis>,
    report: Option<DbReport>,
    /// Each periodic job's jitter (its periods are fixed for the run).
    offsets: HashMap<Job, Millis>,
    /// When dispatch must look at it again (ms since the epoch; 0: at once).
    next: Millis,
}

struct Watch<'a> {
    args: &'a WatchArgs,
    log: Log,
    selection: discover::Selection,
    file: StateFile,
    state: State,
    dbs: BTreeMap<String, Watched>,
    busy: HashSet<(String, Lane)>,
    /// Databases whose maintenance runs now: a signal waits for it (its VACUUM runs on the extension's own
    /// connection, which no interrupt reaches; exiting under it would leave a hot journal).
    maintaining: HashSet<String>,
    /// --once: the jobs already sent.
    ran: HashSet<(String, Job)>,
    /// The worst status rank of this run's reports (--once's exit code).
    worst_seen: u8,
    noted: HashSet<PathBuf>,
    /// Directories of the selection the last scan could not read (said once per outage).
    unreadable: HashSet<PathBuf>,
    lanes: BTreeMap<Lane, Sender<Task>>,
    results: Receiver<Finished>,
    alerts: alerting::Alerting,
    dirty: bool,
    saved_at: Instant,
    textfile_at: Option<Instant>,
    /// Reports arrived since the textfile was last written.
    fresh: bool,
}

pub fn run(global: &Global, args: &WatchArgs) -> Result<u8, Failure> {
    let settings = settings(global, args)?;
    let log = Log { json: args.log_json };
    let (path, default) = match &args.state {
        Some(path) => (path.clone(), false),
        None => (state::default_path()?, true),
    };
    let (file, state) = StateFile::open(&path, default)?;
    let alerts = alerting::Alerting::start(&args.alert, &state, log)?;
    let selection = discover::Selection {
        patterns: args.databases.clone(),
        dir: args.dir.clone(),
        pattern: args.pattern.clone(),
        recursive: args.recursive,
        exclude: args.backup_dir.clone(),
    };
    if let Some(backups) = &args.backup_dir {
        let watched = selection.scan(true)?.targets;
        discover::check_backup_dir(backups, args.dir.as_deref(), &watched)?;
    }
    // A connection holding the extension keeps its library mapped while the watch runs.
    let _library = crate::extension::open_memory(global)?;
    crate::health::checked_thresholds(&_library, &args.thresholds)?;
    let (lanes, results) = start_lanes(args.workers.into(), Arc::new(settings));
    let mut watch = Watch {
        args,
        log,
        selection,
        file,
        state,
        dbs: BTreeMap::new(),
        busy: HashSet::new(),
        maintaining: HashSet::new(),
        ran: HashSet::new(),
        worst_seen: 0,
        noted: HashSet::new(),
        unreadable: HashSet::new(),
        lanes,
        results,
        alerts,
        dirty: false,
        saved_at: Instant::now(),
        textfile_at: None,
        fresh: false,
    };
    watch.rescan(true)?;
    watch.log_started();
    if args.once {
        watch.once()
    } else {
        watch.until_stopped()
    }
}

fn settings(global: &Global, args: &WatchArgs) -> Result<Settings, Failure> {
    if let Some(dir) = args.backup_dir.as_ref().filter(|d| !d.is_dir()) {
        return Err(Failure::usage(format!(
            "--backup-dir {}: not a directory; create it (each database gets its own subdirectory in it)",
            dir.display()
        )));
    }
    if let (Some(flag), None) = (args.retention.first_given(), &args.backup_dir) {
        return Err(Failure::usage(format!(
            "watch {flag} needs --backup-dir: retention applies to the backups watch writes there"
        )));
    }
    if let Some(dir) = args.textfile.as_ref().filter(|d| !d.is_dir()) {
        return Err(Failure::usage(format!("--textfile {}: not a directory; create it", dir.display())));
    }
    let options = metrics::Options {
        thresholds: crate::health::parse_thresholds(&args.thresholds)?,
        ..metrics::Options::default()
    };
    let mut backup_options = json!({
        "busy_timeout_ms": global.busy_timeout,
        "verify": "quick",
        "compress": crate::output::name(args.backup_compress),
    });
    args.retention.add_options(&mut backup_options);
    Ok(Settings {
        global: global.clone(),
        options,
        backup_dir: args.backup_dir.clone(),
        backup_options,
        maintain_level: crate::output::name(args.maintain),
    })
}

/// Three lanes of workers fed by the main thread; every result comes back on one channel.
fn start_lanes(workers: usize, settings: Arc<Settings>) -> (BTreeMap<Lane, Sender<Task>>, Receiver<Finished>) {
    let (done, results) = mpsc::channel();
    let mut lanes = BTreeMap::new();
    for (lane, count) in [(Lane::Check, workers), (Lane::Pit, workers.div_ceil(2)), (Lane::Long, workers.div_ceil(2))] {
        let (send, receive) = mpsc::channel::<Task>();
        let receive = Arc::new(Mutex::new(receive));
        for i in 0..count {
            let (receive, done, settings) = (receive.clone(), done.clone(), settings.clone());
            let _ = std::thread::Builder::new()
                .name(format!("vigil-watch-{lane:?}-{i}"))
                .spawn(move || work(&receive, &done, &settings));
        }
        lanes.insert(lane, send);
    }
    (lanes, results)
}

fn work(tasks: &Mutex<Receiver<Task>>, done: &Sender<Finished>, settings: &Settings) {
    loop {
        let task = match tasks.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(task) => task,
            Err(_) => return,
        };
        let (outcome, took) = jobs::run(task.job, &task.target, settings);
        let finished = Finished { db: task.target.name, job: task.job, started: task.started, outcome, took };
        if done.send(finished).is_err() {
            return;
        }
    }
}

impl Watch<'_> {
    /// The start: an event with its figures (a log shipper reads fields, not a sentence); with nothing to watch,
    /// a warning that says where vigil looked, since silence would look like a healthy fleet.
    fn log_started(&self) {
        let fields = [
            ("databases", json!(self.dbs.len())),
            ("every", json!(crate::serve::period_text(self.args.every))),
            ("state", json!(self.file.path().display().to_string())),
        ];
        self.log.event(Level::Info, None, "started", &fields);
        if self.dbs.is_empty() {
            self.log.event(Level::Warning, None, "nothing to watch", &self.nothing_fields());
        }
    }

    /// Where an empty selection looked (only --dir can select nothing: a glob matching nothing is refused).
    fn nothing_fields(&self) -> Vec<(&'static str, serde_json::Value)> {
        let Some(dir) = &self.args.dir else { return vec![] };
        let mut reason = format!(
            "no SQLite database in {} matches --pattern {}",
            dir.display(),
            crate::sql::quoted(self.args.pattern.as_str())
        );
        let subdirectories = std::fs::read_dir(dir)
            .map(|entries| entries.flatten().any(|e| e.file_type().is_ok_and(|t| t.is_dir())))
            .unwrap_or(false);
        if subdirectories && !self.args.recursive {
            reason.push_str(" (subdirectories need --recursive)");
        }
        vec![
            ("dir", json!(dir.display().to_string())),
            ("pattern", json!(self.args.pattern.as_str())),
            ("reason", json!(reason)),
        ]
    }

    /// Re-reads the selection: new databases are added, vanished ones dropped (their alerts resolve).
    fn rescan(&mut self, first: bool) -> Result<(), Failure> {
        let mut scan = self.selection.scan(first)?;
        for (path, why) in std::mem::take(&mut scan.skipped) {
            if self.noted.insert(path.clone()) {
                let fields = [("file", json!(path.display().to_string())), ("reason", json!(why))];
                self.log.event(Level::Info, None, "skipped", &fields);
            }
        }
        self.note_unreadable(&scan.unreadable);
        let now = now_ms();
        let names: HashSet<String> = scan.targets.iter().map(|t| t.name.clone()).collect();
        let gone: Vec<String> = self
            .dbs
            .iter()
            .filter(|(n, d)| !names.contains(*n) && !scan.cannot_tell(&d.target.path))
            .map(|(n, _)| n.clone())
            .collect();
        for db in gone {
            self.dbs.remove(&db);
            self.state.databases.remove(&db);
            self.log.event(Level::Info, Some(&db), "removed", &[]);
            self.alerts.forget(&db);
            self.dirty = true;
        }
        for target in scan.targets {
            if self.dbs.contains_key(&target.name) {
                continue;
            }
            // New to vigil, not only to this process: a restart does not announce every database again.
            if !self.state.databases.contains_key(&target.name) {
                let fields = [("file", json!(target.path.display().to_string()))];
                self.log.event(Level::Info, Some(&target.name), "added", &fields);
                self.state.databases.insert(target.name.clone(), DbState { first_seen: now, ..DbState::default() });
            }
            let offsets = Job::ALL
                .iter()
                .filter_map(|&job| Some((job, schedule::jitter(&target.name, job.name(), self.period(job)?))))
                .collect();
            let watched =
                Watched { target: target.clone(), pit: false, last_pit: None, report: None, offsets, next: 0 };
            self.dbs.insert(target.name, watched);
            self.dirty = true;
        }
        // Databases remembered from a previous run that are not selected any more.
        let stale: Vec<String> = self.state.databases.keys().filter(|n| !self.dbs.contains_key(*n)).cloned().collect();
        for db in stale {
            self.state.databases.remove(&db);
            self.alerts.forget(&db);
            self.dirty = true;
        }
        Ok(())
    }

    /// Says when a directory of the selection becomes unreadable (its databases are kept, and report unknown if
    /// they cannot be read either) and when it is readable again.
    fn note_unreadable(&mut self, now: &[(PathBuf, String)]) {
        for (root, why) in now {
            if self.unreadable.insert(root.clone()) {
                let fields = [("root", json!(root.display().to_string())), ("reason", json!(why))];
                self.log.event(Level::Error, None, "root unreadable", &fields);
            }
        }
        let back: Vec<PathBuf> =
            self.unreadable.iter().filter(|r| !now.iter().any(|(n, _)| n == *r)).cloned().collect();
        for root in back {
            self.unreadable.remove(&root);
            self.log.event(Level::Info, None, "root readable", &[("root", json!(root.display().to_string()))]);
        }
    }

    /// The period of a job (None: off for this watch).
    fn period(&self, job: Job) -> Period {
        match job {
            Job::Check => Some(self.args.every),
            Job::Quick => self.args.quick_every,
            Job::Full => self.args.full_every,
            Job::Snapshot => self.args.snapshot_every,
            Job::Backup => self.args.backup_every.filter(|_| self.args.backup_dir.is_some()),
            Job::Pit => self.args.pit_every.filter(|_| !self.args.once),
            Job::Maintain => None,
        }
    }

    /// When a job is due (past or future; None: off, not applicable, or already run by this `--once`).
    fn due(&self, db: &Watched, job: Job) -> Option<Millis> {
        let state = self.state.databases.get(&db.target.name)?;
        if self.args.once && self.ran.contains(&(db.target.name.clone(), job)) {
            return None;
        }
        if job == Job::Maintain {
            if self.args.maintain == Maintain::Off {
                return None;
            }
            let local = chrono::Local::now().naive_local();
            let last = state.maintained_on.as_deref().and_then(|d| d.parse().ok());
            // A cron run comes at a fixed minute: it maintains whenever it runs in the quiet hour, or an offset
            // past its minute would keep maintenance from ever running.
            let offset = if self.args.once { Duration::ZERO } else { schedule::maintain_offset(&db.target.name) };
            // Not due: looked at again at the next wake-up (at most a second away).
            return schedule::maintain_due(local, last, self.args.quiet_hour, offset).then_some(0);
        }
        let period = self.period(job)?;
        if self.args.once && job == Job::Check {
            return Some(0); // a cron run always checks: its exit code and textfile are about now
        }
        if job == Job::Pit {
            return db.pit.then(|| db.last_pit.map_or(0, |last| last + period.as_millis() as u64));
        }
        let offset = *db.offsets.get(&job)?;
        let last = state.last.get(job.name()).copied();
        if job == Job::Backup && last.is_none() {
            // A database never backed up is due at first sight, as with --once: last_backup would warn for up to
            // a period before its jittered slot. The jitter spreads the backups from then on.
            return Some(0);
        }
        Some(schedule::due_at(last, state.first_seen, period, offset, self.args.once))
    }

    /// Sends, for each database whose next job is due and each of its free lanes, the due job that has waited
    /// longest. Each database remembers when it next needs a look (its earliest job not yet due, at most a second
    /// away, or at once when one of its jobs finishes), so a loop over a thousand databases costs a comparison
    /// each.
    fn dispatch(&mut self) {
        let now = now_ms();
        let ready: Vec<String> = self.dbs.iter().filter(|(_, d)| d.next <= now).map(|(n, _)| n.clone()).collect();
        for name in ready {
            let Some(db) = self.dbs.get(&name) else { continue };
            let mut next = now + 1000;
            let mut chosen: BTreeMap<Lane, (Millis, Job)> = BTreeMap::new();
            for job in Job::ALL {
                let Some(due) = self.due(db, job) else { continue };
                if self.busy.contains(&(name.clone(), job.lane())) {
                    continue; // its result brings the database back
                }
                if due > now {
                    next = next.min(due);
                } else if chosen.get(&job.lane()).is_none_or(|(other, _)| due < *other) {
                    chosen.insert(job.lane(), (due, job));
                }
            }
            let target = db.target.clone();
            for (lane, (_, job)) in chosen {
                let task = Task { job, target: target.clone(), started: now };
                if self.lanes[&lane].send(task).is_ok() {
                    self.busy.insert((name.clone(), lane));
                    if job == Job::Maintain {
                        self.maintaining.insert(name.clone());
                    }
                    if self.args.once {
                        self.ran.insert((name.clone(), job));
                    }
                    if job == Job::Pit {
                        if let Some(db) = self.dbs.get_mut(&name) {
                            db.last_pit = Some(now);
                        }
                    }
                }
            }
            if let Some(db) = self.dbs.get_mut(&name) {
                db.next = next;
            }
        }
    }

    /// Takes in one finished job.
    fn absorb(&mut self, done: Finished) {
        self.busy.remove(&(done.db.clone(), done.job.lane()));
        if done.job == Job::Maintain {
            self.maintaining.remove(&done.db);
        }
        if let Some(db) = self.dbs.get_mut(&done.db) {
            db.next = 0; // a lane came free: what waited for it may go now
        }
        // Cut short by a signal: not a result (the job runs again after a restart).
        if interrupt::received().is_some() && !succeeded(&done.outcome) {
            return;
        }
        if !self.dbs.contains_key(&done.db) {
            return; // dropped while the job ran
        }
        if done.job != Job::Pit {
            if let Some(state) = self.state.databases.get_mut(&done.db) {
                state.last.insert(done.job.name().into(), done.started);
                if done.job == Job::Maintain {
                    state.maintained_on = Some(chrono::Local::now().date_naive().to_string());
                }
            }
            self.dirty = true;
        }
        let ms = done.took.as_millis() as u64;
        match done.outcome {
            Outcome::Report(report) => self.absorb_report(done.job, *report, ms),
            Outcome::Done { ok, summary } => {
                let level = if ok { Level::Info } else { Level::Error };
                let fields = [
                    ("job", json!(done.job.name())),
                    ("status", json!(if ok { "ok" } else { "failed" })),
                    ("duration_ms", json!(ms)),
                    ("detail", json!(summary)),
                ];
                // A pit tick every second is not an event worth a line; its failure is.
                if done.job != Job::Pit || !ok {
                    self.log.event(level, Some(&done.db), "job done", &fields);
                }
                if done.job != Job::Pit {
                    self.save(true);
                }
            }
        }
    }

    fn absorb_report(&mut self, job: Job, report: DbReport, ms: u64) {
        let db = report.target.name.clone();
        let status = if report.up { report.status.clone().unwrap_or_else(|| "ok".into()) } else { "unknown".into() };
        let mut fields = vec![("job", json!(job.name())), ("status", json!(status)), ("duration_ms", json!(ms))];
        if let Some(error) = &report.error {
            fields.push(("error", json!(error)));
        }
        let level = if report.up { Level::Info } else { Level::Warning };
        if job != Job::Check || !report.up {
            self.log.event(level, Some(&db), "job done", &fields);
        }
        self.worst_seen = self.worst_seen.max(metrics::status_rank(&status));
        let state = self.state.databases.entry(db.clone()).or_default();
        // A database's status is its cheap checks': a daily quick or full check (which sees more, such as
        // fragmentation) would otherwise flip it for one cycle; its own status is in its `job done` line.
        if job == Job::Check && state.status.as_deref() != Some(&status) {
            let was = state.status.replace(status.clone());
            let mut fields = vec![("status", json!(status))];
            if let Some(was) = was {
                fields.push(("was", json!(was)));
            }
            // Critical pages someone; unknown (a lock, a missing file) has its own vigil_up alert if it lasts.
            let level = match metrics::status_rank(&status) {
                0 | 1 => Level::Info,
                3 => Level::Error,
                _ => Level::Warning,
            };
            self.log.event(level, Some(&db), "status changed", &fields);
        }
        self.alerts.observe(job, &report);
        // The textfile shows the cheap checks' series: a quick or full check's extra series (fragmentation…)
        // would appear once a day and vanish at the next check, which Prometheus reads as gaps.
        if let Some(watched) = self.dbs.get_mut(&db).filter(|_| job == Job::Check) {
            if report.up {
                watched.pit = jobs::pit_enabled(&report);
            }
            watched.report = Some(report);
        }
        self.fresh = true;
        self.dirty = true;
        if job != Job::Check {
            self.save(true);
        }
    }

    /// Saves the state when it changed: at once after a long job (a repeated backup costs), else at most once
    /// a second.
    fn save(&mut self, now: bool) {
        if !now && self.saved_at.elapsed() < Duration::from_secs(1) {
            return;
        }
        match self.alerts.store(&mut self.state) {
            Ok(changed) => self.dirty |= changed,
            Err(e) => {
                // Saving now would lose them: the previous file stays until they serialise again.
                self.log.event(Level::Error, None, "state not saved", &[("error", json!(e))]);
                self.saved_at = Instant::now();
                return;
            }
        }
        if !self.dirty {
            self.saved_at = Instant::now();
            return;
        }
        match self.file.save(&self.state) {
            Ok(()) => self.dirty = false,
            Err(e) => self.log.event(Level::Error, None, "state not saved", &[("error", json!(e))]),
        }
        self.saved_at = Instant::now();
    }

    /// Writes --textfile when new reports came, at most once per --every.
    fn write_textfile(&mut self, force: bool) {
        let Some(dir) = &self.args.textfile else { return };
        let recent = self.textfile_at.is_some_and(|at| at.elapsed() < self.args.every);
        if !self.fresh || (recent && !force) {
            return;
        }
        let reports: Vec<DbReport> = self.dbs.values().filter_map(|d| d.report.clone()).collect();
        if let Err(e) = metrics::textfile::write(dir, metrics::textfile::FILE_NAME, &metrics::render(&reports)) {
            self.log.event(Level::Error, None, "textfile not written", &[("error", json!(e.message))]);
        }
        self.fresh = false;
        self.textfile_at = Some(Instant::now());
    }

    /// The loop: rescan every --every, dispatch what is due, take results in, save; until a signal.
    fn until_stopped(&mut self) -> Result<u8, Failure> {
        let mut next_scan = Instant::now() + self.args.every;
        while interrupt::received().is_none() {
            if Instant::now() >= next_scan {
                self.rescan(false)?;
                next_scan += self.args.every;
                if next_scan < Instant::now() {
                    next_scan = Instant::now() + self.args.every;
                }
            }
            self.dispatch();
            if let Ok(done) = self.results.recv_timeout(Duration::from_millis(20)) {
                self.absorb(done);
                while let Ok(done) = self.results.try_recv() {
                    self.absorb(done);
                }
            }
            self.alerts.pump();
            self.write_textfile(false);
            self.save(false);
        }
        self.finish(Duration::from_secs(2));
        self.log.event(Level::Info, None, &format!("stopped by {}", interrupt::received().unwrap_or("a signal")), &[]);
        Ok(exit::OK)
    }

    /// `--once`: everything due now, then deliver, save and exit with the worst status.
    fn once(&mut self) -> Result<u8, Failure> {
        self.dispatch();
        while !self.busy.is_empty() && interrupt::received().is_none() {
            if let Ok(done) = self.results.recv_timeout(Duration::from_millis(20)) {
                self.absorb(done);
                // A job that was waiting for its lane (one per database per lane) goes now.
                self.dispatch();
            }
        }
        self.finish(Duration::from_secs(10));
        if interrupt::received().is_some() {
            return Ok(exit::OK);
        }
        if self.dbs.is_empty() {
            return Ok(exit::UNKNOWN); // nothing could be said of any database: not "all is well"
        }
        Ok(match self.worst_seen {
            0 | 1 => exit::OK,
            2 => exit::WARNING,
            3 => exit::CRITICAL,
            _ => exit::UNKNOWN,
        })
    }

    /// Takes in the jobs still finishing (a signal interrupted their SQL), delivers, writes the textfile, saves.
    /// A maintenance still running is waited for however long it takes (a second signal exits at once).
    fn finish(&mut self, grace: Duration) {
        if interrupt::received().is_some() {
            for db in &self.maintaining {
                let line = format!("finishing maintenance of {db} before stopping");
                self.log.event(Level::Info, Some(db), &line, &[]);
            }
        }
        let deadline = Instant::now() + grace;
        while !self.busy.is_empty() && (Instant::now() < deadline || !self.maintaining.is_empty()) {
            if let Ok(done) = self.results.recv_timeout(Duration::from_millis(20)) {
                self.absorb(done);
            }
        }
        self.alerts.flush(Instant::now() + grace);
        self.write_textfile(true);
        self.dirty = true;
        self.save(true);
    }
}

fn succeeded(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Report(report) => report.up,
        Outcome::Done { ok, .. } => *ok,
    }
}
