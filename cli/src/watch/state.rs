//! `--state FILE`: what `vigil watch` must remember across restarts (the last run of each job of each database,
//! its last status, the alert states and the undelivered messages), so that a restart neither repeats jobs
//! nor re-sends alerts, nor forgets to resolve them.
//!
//! The file is JSON written temp + fsync + rename + fsync of the directory; an exclusive flock on `FILE.lock`
//! keeps a second watch off it. A symlink or anything but a regular file at FILE is refused, and so is a file
//! that is not vigil's: it is never overwritten.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};

use super::schedule::Millis;
use crate::Failure;

const FORMAT: &str = "vigil-watch-state";
const VERSION: u64 = 1;

/// What one database's jobs did last.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DbState {
    /// When vigil first saw it: jobs never run are spread from there.
    pub first_seen: Millis,
    /// Per job name, when it last ran (started).
    pub last: BTreeMap<String, Millis>,
    /// The status of its last check (ok | info | warning | critical | unknown).
    pub status: Option<String>,
    /// The local day (YYYY-MM-DD) its maintenance last ran.
    pub maintained_on: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    pub databases: BTreeMap<String, DbState>,
    /// The alert engine's states (its own serialisation).
    pub alerts: Json,
    /// Messages not delivered yet (the dispatcher's own serialisation).
    pub pending: Json,
}

impl State {
    fn to_json(&self) -> Json {
        let databases: serde_json::Map<String, Json> = self
            .databases
            .iter()
            .map(|(db, s)| {
                let value = json!({
                    "first_seen_ms": s.first_seen,
                    "last_run_ms": s.last,
                    "status": s.status,
                    "maintained_on": s.maintained_on,
                });
                (db.clone(), value)
            })
            .collect();
        json!({"format": FORMAT, "version": VERSION, "databases": databases, "alerts": self.alerts,
               "pending": self.pending})
    }

    fn from_json(value: &Json) -> Option<State> {
        if value["format"] != FORMAT || value["version"] != VERSION {
            return None;
        }
        let mut state =
            State { alerts: value["alerts"].clone(), pending: value["pending"].clone(), ..State::default() };
        for (db, s) in value["databases"].as_object()? {
            let last = s["last_run_ms"]
                .as_object()?
                .iter()
                .filter_map(|(job, at)| Some((job.clone(), at.as_u64()?)))
                .collect();
            let db_state = DbState {
                first_seen: s["first_seen_ms"].as_u64()?,
                last,
                status: s["status"].as_str().map(String::from),
                maintained_on: s["maintained_on"].as_str().map(String::from),
            };
            state.databases.insert(db.clone(), db_state);
        }
        Some(state)
    }
}

/// The state file, locked for the life of this value.
pub struct StateFile {
    path: PathBuf,
    _lock: File,
}

/// `--state` when not given: systemd's StateDirectory, else the XDG state directory, else ~/.local/state.
pub fn default_path() -> Result<PathBuf, Failure> {
    let from = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dirs) = std::env::var("STATE_DIRECTORY").ok().filter(|v| !v.is_empty()) {
        // systemd lists several directories separated by ':' when the unit names several.
        let first = dirs.split(':').next().unwrap_or_default();
        return Ok(Path::new(first).join("watch-state.json"));
    }
    if let Some(xdg) = from("XDG_STATE_HOME") {
        return Ok(xdg.join("vigil/watch-state.json"));
    }
    match from("HOME") {
        Some(home) => Ok(home.join(".local/state/vigil/watch-state.json")),
        None => Err(Failure::usage(
            "watch: no --state FILE and neither $XDG_STATE_HOME nor $HOME is set; pass --state FILE",
        )),
    }
}

impl StateFile {
    /// Locks and reads the state (empty when the file does not exist yet). `create_parent`: the default location,
    /// whose directory vigil creates (0700); a `--state` the user names must be in an existing directory.
    pub fn open(path: &Path, create_parent: bool) -> Result<(StateFile, State), Failure> {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if create_parent && !parent.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(|e| {
                Failure::usage(format!(
                    "--state {}: cannot create its directory: {}",
                    path.display(),
                    crate::output::io_text(&e)
                ))
            })?;
        }
        let lock = lock(path)?;
        let state = read(path)?;
        remove_stale_temps(path);
        Ok((StateFile { path: path.to_path_buf(), _lock: lock }, state))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file: a temporary file beside it (created exclusively, never through a symlink, 0600),
    /// fsynced, renamed over it, then the directory fsynced.
    pub fn save(&self, state: &State) -> Result<(), String> {
        let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let temp = temp_path(&self.path, std::process::id());
        let _ = std::fs::remove_file(&temp);
        let text = serde_json::to_string_pretty(&state.to_json()).unwrap_or_default();
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()))
            .and_then(|_| std::fs::rename(&temp, &self.path))
            .and_then(|_| File::open(dir).and_then(|d| d.sync_all()));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            format!("cannot save the state to {}: {}", self.path.display(), crate::output::io_text(&e))
        })
    }
}

fn lock(path: &Path) -> Result<File, Failure> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(&lock_path)
        .map_err(|e| {
            Failure::usage(format!(
                "--state {}: cannot open its lock file {}: {}; name another --state FILE",
                path.display(),
                lock_path.display(),
                crate::output::io_text(&e)
            ))
        })?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(Failure::usage(format!(
            "--state {}: {} is not a regular file",
            path.display(),
            lock_path.display()
        )));
    }
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(Failure::usage(format!(
            "--state {}: another vigil watch is using this state file (it holds {}); stop it, or give this one its \
             own --state FILE",
            path.display(),
            lock_path.display()
        )));
    }
    Ok(file)
}

fn read(path: &Path) -> Result<State, Failure> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => return Err(Failure::usage(format!("--state {}: {}", path.display(), crate::output::io_text(&e)))),
    };
    if meta.file_type().is_symlink() || !meta.is_file() {
        let what = if meta.file_type().is_symlink() { "a symlink" } else { "not a regular file" };
        return Err(Failure::usage(format!(
            "--state {}: is {what}; vigil writes its state only to a regular file: remove it or name another --state FILE",
            path.display()
        )));
    }
    let text = std::fs::read(path)
        .map_err(|e| Failure::usage(format!("--state {}: {}", path.display(), crate::output::io_text(&e))))?;
    let json = serde_json::from_slice::<Json>(&text).ok();
    if let Some(version) = json.as_ref().filter(|j| j["format"] == FORMAT && j["version"] != VERSION) {
        return Err(Failure::usage(format!(
            "--state {}: is a vigil watch state file of version {}, and this vigil reads and writes version \
             {VERSION}; vigil will not overwrite it: run the vigil that wrote it, or move it away or name another \
             --state FILE",
            path.display(),
            crate::output::cut(&version["version"].to_string(), 40)
        )));
    }
    json.as_ref().and_then(State::from_json).ok_or_else(|| {
        Failure::usage(format!(
            "--state {}: is not a vigil watch state file; vigil will not overwrite it: move it away or name another \
             --state FILE",
            path.display()
        ))
    })
}

/// The temporary file `save` writes beside the state (`.NAME.PID.tmp`).
fn temp_path(path: &Path, pid: u32) -> PathBuf {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.join(format!(".{name}.{pid}.tmp"))
}

/// Removes the temporary files a killed watch left (`.NAME.PID.tmp`, exactly save's pattern, regular files only,
/// never through a symlink). Called under the lock, so no other watch is writing one.
fn remove_stale_temps(path: &Path) {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)?.strip_suffix(".tmp")) else {
            continue;
        };
        let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
        // file_type() does not follow a symlink.
        if digits && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_round_trips_and_foreign_json_is_refused() {
        let mut state = State::default();
        let db = DbState {
            first_seen: 5,
            last: [("check".to_string(), 7)].into(),
            status: Some("warning".into()),
            maintained_on: Some("2026-12-02".into()),
        };
        state.databases.insert("a/b.db".into(), db);
        state.alerts = json!({"x": 1});
        assert_eq!(State::from_json(&state.to_json()), Some(state));
        assert_eq!(State::from_json(&json!({"databases": {}})), None);
        assert_eq!(State::from_json(&json!([1, 2])), None);
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn stale_temp_files_of_the_writer_are_removed_and_nothing_else() {
        let dir = scratch("temps");
        let path = dir.join("s.json");
        std::fs::write(dir.join(".s.json.123.tmp"), "{").unwrap();
        std::fs::write(dir.join(".s.json.x.tmp"), "{").unwrap();
        std::fs::write(dir.join(".other.json.123.tmp"), "{").unwrap();
        std::fs::write(dir.join("victim"), "keep").unwrap();
        std::os::unix::fs::symlink(dir.join("victim"), dir.join(".s.json.456.tmp")).unwrap();
        let (_file, _) = StateFile::open(&path, false).unwrap();
        assert!(!dir.join(".s.json.123.tmp").exists());
        assert!(dir.join(".s.json.x.tmp").exists());
        assert!(dir.join(".other.json.123.tmp").exists());
        assert!(std::fs::symlink_metadata(dir.join(".s.json.456.tmp")).is_ok());
        assert_eq!(std::fs::read_to_string(dir.join("victim")).unwrap(), "keep");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_file_of_another_version_names_both_versions() {
        let dir = scratch("version");
        let path = dir.join("s.json");
        std::fs::write(&path, r#"{"format": "vigil-watch-state", "version": 7, "databases": {}}"#).unwrap();
        let error = StateFile::open(&path, false).err().unwrap().message;
        assert!(error.contains("version 7") && error.contains("version 1"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
