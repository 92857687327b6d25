//! Salvage under random damage (issue 13): 1000 seeded cases of byte flips over small originals, salvaged in
//! process by `salvage_to` in rusqlite — no panic, no hang, an output that passes integrity_check and holds only
//! original rows (one altered row per flipped byte at most) — and a subset by the real `vigil salvage` under a
//! memory bound (prlimit). A failure names the seed that reproduces it.
//!
//!   cargo build --workspace && cargo test -p vigil-tests --test salvage_fuzz -- --nocapture

#[path = "salvage/corpus.rs"]
mod corpus;
#[path = "salvage/fuzz.rs"]
mod fuzz;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_tests::{cli_binary, scratch, text};

const SEED: u64 = 0x5A1_7A6E;
const CASES: u64 = 1000;
/// A debug build salvages these small files in well under a second: a case that takes this long is a hang.
const HANG: Duration = Duration::from_secs(30);
/// The address space `vigil salvage` gets under prlimit: a damaged header must not make it allocate more.
const MEMORY: u64 = 512 << 20;

/// A scratch directory in memory when the machine has one: the loop writes a thousand small databases.
fn fast_scratch() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| scratch())
}

#[test]
fn salvage_survives_random_byte_flips() {
    let dir = fast_scratch();
    let subjects = fuzz::subjects(dir.path());
    let worker = fuzz::Worker::start(vigil_tests::load);
    let (src, dest) = (dir.path().join("case.db"), dir.path().join("case.out.db"));
    let started = Instant::now();
    let (mut salvaged, mut refused, mut failures) = (0, 0, Vec::new());
    for seed in SEED..SEED + CASES {
        let mutation = fuzz::mutate(seed, &subjects);
        fuzz::apply(&mutation, &subjects, &src);
        corpus::remove_database(&dest);
        let Some(outcome) = worker.salvage(&src, &dest, HANG) else {
            panic!("seed {seed}: salvage_to did not return within {HANG:?}: {mutation:?}");
        };
        if outcome.is_ok() {
            salvaged += 1
        } else {
            refused += 1
        }
        let problems = fuzz::problems(&mutation, &subjects[mutation.subject], outcome, &dest);
        if !problems.is_empty() {
            let name = &subjects[mutation.subject].original.name;
            failures.push(format!("seed {seed} ({name}): {problems:?}\n  {mutation:?}"));
        }
    }
    eprintln!("{CASES} cases from seed {SEED}: {salvaged} salvaged, {refused} refused, {:?}", started.elapsed());
    let first = failures.iter().take(8).cloned().collect::<Vec<_>>().join("\n");
    assert!(failures.is_empty(), "{} of {CASES} cases failed; the first:\n{first}", failures.len());
    assert!(salvaged > CASES / 2, "most flipped files still hold rows to salvage");
}

/// Runs `vigil salvage` under prlimit's address-space bound; None when it did not finish within `HANG`.
fn bounded_cli(src: &Path, dest: &Path) -> Option<std::process::Output> {
    let mut child = Command::new("prlimit")
        .arg(format!("--as={MEMORY}"))
        .arg("--")
        .arg(cli_binary())
        .args(["salvage", "--json", "--no-emergency-copy"])
        .arg(src)
        .arg(dest)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux, scripts/setup)");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > HANG {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(child.wait_with_output().unwrap())
}

#[test]
fn vigil_salvage_stays_in_bounded_memory() {
    let dir = fast_scratch();
    let subjects = fuzz::subjects(dir.path());
    let (src, dest) = (dir.path().join("case.db"), dir.path().join("case.out.db"));
    let mut failures = Vec::new();
    for seed in (SEED + CASES..SEED + CASES + 1000).step_by(20) {
        let mutation = fuzz::mutate(seed, &subjects);
        fuzz::apply(&mutation, &subjects, &src);
        corpus::remove_database(&dest);
        // A hang, a signal (an allocation over the bound aborts) or a panic stops the loop; other problems of
        // the output are collected, so that they cannot hide a memory failure later in the loop.
        let out = bounded_cli(&src, &dest)
            .unwrap_or_else(|| panic!("seed {seed}: vigil salvage did not finish within {HANG:?}: {mutation:?}"));
        let stderr = text(&out.stderr);
        let code = out.status.code();
        assert!(
            matches!(code, Some(0..=2)),
            "seed {seed}: vigil salvage ended by {:?}: {stderr}\n{mutation:?}",
            out.status
        );
        assert!(!stderr.contains("panicked"), "seed {seed}: {stderr}\n{mutation:?}");
        let outcome = if code == Some(2) { Err(stderr) } else { Ok(text(&out.stdout)) };
        let problems = fuzz::problems(&mutation, &subjects[mutation.subject], outcome, &dest);
        if !problems.is_empty() {
            failures.push(format!("seed {seed}: {problems:?}\n  {mutation:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of 50 cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn the_memory_bound_is_real() {
    // The bound must be one a runaway allocation hits: a process asking for 1 GiB under it fails.
    let out = Command::new("prlimit")
        .arg(format!("--as={MEMORY}"))
        .args(["--", "/usr/bin/python3", "-c", "bytearray(1 << 30)"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "python3 allocated 1 GiB under --as={MEMORY}");
    assert!(text(&out.stderr).contains("MemoryError"), "{}", text(&out.stderr));
}
