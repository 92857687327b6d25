//! The salvage fuzz loop: seeded random byte flips over small originals, each copy salvaged by `salvage_to` in
//! a worker thread (a case that does not return in time is a hang), and every output checked: integrity_check
//! passes and its rows are the original's, but for at most one altered row per flipped byte. Shared by
//! tests/salvage_fuzz.rs (1000 cases) and the salvage benchmark (more). Needs crate::corpus.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use rusqlite::Connection;

use crate::corpus::{self, Contents, Layout, Original, Rng};

/// Small originals: every page kind in a few dozen pages, so that a flip often hits something that matters.
pub fn small_originals(dir: &Path) -> Vec<Original> {
    let base = corpus::layouts()[0];
    let small = [
        Layout { name: "fuzz-512", page_size: 512, rows: 40, ..base },
        Layout { name: "fuzz-1k-autovacuum", page_size: 1024, rows: 60, auto_vacuum_full: true, ..base },
        Layout { name: "fuzz-4k-utf16", page_size: 4096, rows: 90, encoding: "UTF-16le", ..base },
    ];
    small.into_iter().map(|layout| corpus::generated_original(layout, dir)).collect()
}

/// An original as the loop uses it: its bytes and rows.
pub struct Subject {
    pub original: Original,
    pub bytes: Vec<u8>,
    pub contents: Contents,
}

pub fn subjects(dir: &Path) -> Vec<Subject> {
    small_originals(dir)
        .into_iter()
        .map(|original| Subject {
            bytes: std::fs::read(&original.path).unwrap(),
            contents: Contents::read(&original.path, dir),
            original,
        })
        .collect()
}

/// One case: which original, the bytes flipped (offset, xor mask), and where the file is cut, if it is; all
/// from its seed.
#[derive(Debug)]
pub struct Mutation {
    pub seed: u64,
    pub subject: usize,
    pub flips: Vec<(usize, u8)>,
    pub cut: Option<usize>,
}

/// Flips 1–8 bytes (1–64 in one case of ten): half anywhere, the rest in b-tree page headers and cell pointer
/// arrays (where one flip changes how a whole page is read), a few in the database header; one case of ten
/// also cuts the file anywhere (a salvage must not read what lies past the end as zeros).
pub fn mutate(seed: u64, subjects: &[Subject]) -> Mutation {
    let mut rng = Rng::new(seed);
    let subject = rng.below(subjects.len() as u64) as usize;
    let bytes = &subjects[subject].bytes;
    let page_size = corpus::page_size_of(bytes);
    let pages = bytes.len() / page_size;
    let most = if rng.below(10) == 0 { 64 } else { 8 };
    let flips = (0..1 + rng.below(most))
        .map(|_| {
            let offset = match rng.below(20) {
                0 => rng.below(100) as usize,
                1..=9 => {
                    let page = rng.below(pages as u64) as usize;
                    let header = if page == 0 { 100 } else { 0 };
                    page * page_size + header + rng.below(24) as usize
                }
                _ => rng.below(bytes.len() as u64) as usize,
            };
            (offset, 1 + rng.below(255) as u8)
        })
        .collect();
    let cut = (rng.below(10) == 0).then(|| page_size + rng.below((bytes.len() - page_size) as u64) as usize);
    Mutation { seed, subject, flips, cut }
}

pub fn apply(mutation: &Mutation, subjects: &[Subject], path: &Path) {
    let mut bytes = subjects[mutation.subject].bytes.clone();
    for &(offset, mask) in &mutation.flips {
        bytes[offset] ^= mask;
    }
    bytes.truncate(mutation.cut.unwrap_or(bytes.len()));
    corpus::remove_database(path);
    std::fs::write(path, bytes).unwrap();
}

/// salvage_to in a thread of its own, on a connection of its own with the extension loaded, so that the loop
/// can stop waiting for a case that hangs.
pub struct Worker {
    jobs: Sender<(PathBuf, PathBuf)>,
    results: Receiver<Result<String, String>>,
}

impl Worker {
    pub fn start(load: fn(&Connection)) -> Worker {
        let (jobs, inbox) = channel::<(PathBuf, PathBuf)>();
        let (outbox, results) = channel();
        std::thread::spawn(move || {
            let conn = Connection::open_in_memory().unwrap();
            load(&conn);
            for (src, dest) in inbox {
                let args =
                    rusqlite::params![src.to_str().unwrap(), dest.to_str().unwrap(), r#"{"emergency_copy": false}"#];
                let result =
                    conn.query_row("SELECT salvage_to(?1, ?2, ?3)", args, |r| r.get(0)).map_err(|e| e.to_string());
                if outbox.send(result).is_err() {
                    return;
                }
            }
        });
        Worker { jobs, results }
    }

    /// The salvage's JSON text or error text; None when it did not return within `limit`.
    pub fn salvage(&self, src: &Path, dest: &Path, limit: Duration) -> Option<Result<String, String>> {
        self.jobs.send((src.to_path_buf(), dest.to_path_buf())).unwrap();
        self.results.recv_timeout(limit).ok()
    }
}

/// What is wrong with one case's outcome (empty when nothing is); an output that cannot even be read is one.
pub fn problems(mutation: &Mutation, subject: &Subject, outcome: Result<String, String>, dest: &Path) -> Vec<String> {
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(mutation, subject, outcome, dest)));
    checked.unwrap_or_else(|panic| {
        let what =
            panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
        vec![format!("its output cannot be read: {}", what.unwrap_or_default())]
    })
}

fn check(mutation: &Mutation, subject: &Subject, outcome: Result<String, String>, dest: &Path) -> Vec<String> {
    let report = match outcome {
        Err(error) if error.contains("internal error") => return vec![format!("panicked: {error}")],
        Err(error) if dest.exists() => return vec![format!("failed ({error}) but left its output")],
        Err(_) => return Vec::new(),
        Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(report) => report,
            Err(e) => return vec![format!("report is not JSON ({e}): {text}")],
        },
    };
    let verdict = corpus::judge(dest, &subject.contents, "lost_and_found");
    let mut found = Vec::new();
    if verdict.integrity != "ok" {
        found.push(format!("integrity_check of OUT: {}", verdict.integrity));
    }
    if verdict.foreign.len() > mutation.flips.len() {
        found.push(format!(
            "{} rows not in the original for {} flipped bytes",
            verdict.foreign.len(),
            mutation.flips.len()
        ));
    }
    let tables: usize = verdict.counts.iter().filter(|(name, _)| *name != "lost_and_found").map(|(_, n)| n).sum();
    if report["rows_recovered"].as_u64() != Some(tables as u64) {
        found.push(format!("report rows_recovered {} but OUT's tables hold {tables}", report["rows_recovered"]));
    }
    found
}
