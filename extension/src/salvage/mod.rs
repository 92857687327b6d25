//! `salvage_to(src, dest [, options])`: every row that can still be read from a damaged database, in a new
//! database. The raw files are first copied into an emergency directory beside dest and read from there (a
//! still image, and the originals are never touched again). vigil's own b-tree reader surveys every b-tree from
//! the schema; tables found whole are copied by SQLite, the others read row by row; pages cut off by damage are
//! found by scanning the file and given back to the one table whose lost key range holds them, or kept in a
//! lost-and-found table. SQLite builds the indexes, checks the new file, and it is published by rename, never
//! replacing anything.

pub mod cells;
mod emergency;
mod orphans;
mod rebuild;
pub mod schema;
pub mod survey;
pub mod walk;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value as Json};

use self::cells::{read_cell, Read};
use self::rebuild::Rebuild;
use self::schema::SchemaEntry;
use self::survey::{CellChecker, Scan};
use self::walk::{Bounds, Visitor, Walker};
use crate::args::{boolean, object_arg, path_arg, string};
use crate::backup::dir::{self, sync_dir, Perms, TempFile};
use crate::error::{Error, Result};
use crate::format::btree::BtreePage;
use crate::format::pages::FilePages;
use crate::progress::Tracker;
use crate::sqlite::{Db, Value};

struct Options {
    emergency_copy: bool,
    lost_and_found: String,
}

fn options(arg: Option<&Value>) -> Result<Options> {
    let mut options = Options { emergency_copy: true, lost_and_found: "lost_and_found".into() };
    let keys = ["emergency_copy", "lost_and_found"];
    let Some(map) = object_arg(arg, "{\"emergency_copy\": false}", &keys)? else { return Ok(options) };
    if let Some(value) = map.get("emergency_copy") {
        options.emergency_copy = boolean("emergency_copy", value)?;
    }
    if let Some(value) = map.get("lost_and_found") {
        let name = string("lost_and_found", value)?;
        if name.is_empty() || name.len() > 100 || name.to_ascii_lowercase().starts_with("sqlite_") {
            return Err(Error::new(
                "option \"lost_and_found\" must be a table name of 1 to 100 characters, not starting with sqlite_",
            ));
        }
        options.lost_and_found = name.to_string();
    }
    Ok(options)
}

/// `salvage_to(src, dest [, options])`.
pub fn salvage_to(db: Db, args: &[Value]) -> Result<Value> {
    let src = path_arg(args, 0, "the damaged database (first argument)").map_err(|e| e.context("bad arguments"))?;
    let dest = path_arg(args, 1, "the new database (second argument)").map_err(|e| e.context("bad arguments"))?;
    let options = options(args.get(2)).map_err(|e| e.context("bad options"))?;
    let tracker = Tracker::start("salvage", 0).for_caller(db);
    let report = salvage(Path::new(src), Path::new(dest), &options, &tracker)?;
    Ok(Value::Text(report.to_string()))
}

fn check_paths(src: &Path, dest: &Path) -> Result<()> {
    match std::fs::metadata(src) {
        Ok(meta) if meta.is_file() && meta.len() == 0 => {
            return Err(Error::new(format!("{} is empty: there is nothing to salvage", src.display())))
        }
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(Error::new(format!("{} is not a regular file: give the database file", src.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::new(format!("{}: no such file", src.display())))
        }
        Err(e) => return Err(dir::io_error("cannot read", src, e)),
    }
    if dest.is_dir() {
        return Err(Error::new(format!(
            "{} is a directory: give the path of a new database file (e.g. {}/salvaged.db)",
            dest.display(),
            dest.display()
        )));
    }
    if dest.symlink_metadata().is_ok() {
        return Err(Error::new(format!(
            "{} already exists: salvage_to writes a new database and never replaces a file; give a new path",
            dest.display()
        )));
    }
    let parent = dir::parent_of(dest);
    if !parent.is_dir() {
        return Err(Error::new(format!("the directory of {} does not exist", dest.display())));
    }
    Ok(())
}

fn salvage(src: &Path, dest: &Path, options: &Options, tracker: &Tracker) -> Result<Json> {
    let started = Instant::now();
    check_paths(src, dest)?;
    let perms = Perms::of(src);
    let emergency = if options.emergency_copy { Some(emergency::copy(src, dest, perms)?) } else { None };
    let read_from = emergency.as_ref().map_or_else(|| src.to_path_buf(), |(_, file)| file.clone());
    let mut report = build(src, &read_from, dest, perms, options, tracker).map_err(|e| match &emergency {
        Some((dir, _)) => Error::with_code(
            format!(
                "{}; {} was not created; the damaged files as they were are in {}",
                e.message(),
                dest.display(),
                dir.display()
            ),
            e.code(),
        ),
        None => e,
    })?;
    report["source"] = json!(src.display().to_string());
    report["dest"] = json!(dest.display().to_string());
    report["emergency_copy"] = json!(emergency.map(|(d, _)| d.display().to_string()));
    report["elapsed_ms"] = json!(started.elapsed().as_secs_f64() * 1000.0);
    Ok(report)
}

/// Builds dest from the file at `read_from` (the emergency copy, or src itself).
fn build(
    src: &Path,
    read_from: &Path,
    dest: &Path,
    perms: Option<Perms>,
    options: &Options,
    tracker: &Tracker,
) -> Result<Json> {
    let pages = FilePages::open(read_from)
        .map_err(|e| Error::new(e.replace(&read_from.display().to_string(), &src.display().to_string())))?;
    if !pages.looks_like_database {
        return Err(Error::new(format!(
            "{} is not an SQLite database: it has no SQLite header and no page of it looks like a b-tree page; \
             nothing to salvage",
            src.display()
        )));
    }
    // SQLite may copy intact tables itself when the file alone is the committed state. A copied record is not
    // decoded, so a damage the survey could not see (a valid-looking page of another tree, flipped bits inside
    // a value) can still fail the final check: then the whole file is built again, every row read and inserted
    // by vigil, where SQLite's constraints and affinities apply to each.
    let plain = pages.wal().is_none() && pages.journal().is_none() && pages.header_problems.is_empty();
    let attempts: &[bool] = if plain { &[true, false] } else { &[false] };
    let mut failure = None;
    for &copy in attempts {
        match build_once(&pages, read_from, dest, perms, options, tracker, copy) {
            Ok(report) => return Ok(report),
            Err(Failure::Check(e)) => {
                tracker.check()?;
                failure = Some(e)
            }
            Err(Failure::Other(e)) => return Err(e),
        }
    }
    Err(failure.unwrap_or_else(|| Error::new("the salvage could not build the new database")))
}

enum Failure {
    /// The finished file failed its check.
    Check(Error),
    Other(Error),
}

fn build_once(
    pages: &FilePages,
    read_from: &Path,
    dest: &Path,
    perms: Option<Perms>,
    options: &Options,
    tracker: &Tracker,
    copy: bool,
) -> std::result::Result<Json, Failure> {
    let parent = dir::parent_of(dest);
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("salvaged.db");
    let (temp, file) = TempFile::create(&parent, name, perms).map_err(Failure::Other)?;
    dir::clear_sidecars(&temp.path);
    let temp_path = temp.path.to_str().ok_or_else(|| Failure::Other(dir::not_utf8("the destination")))?.to_string();
    let mut rebuild = Rebuild::create(&temp_path, &pages.header, copy.then_some(read_from), tracker.caller())
        .map_err(Failure::Other)?;
    let mut report = extract(pages, &mut rebuild, options, tracker).map_err(Failure::Other)?;
    rebuild.check(pages.header.wal).map_err(Failure::Check)?;
    report["check"] = json!(format!("{} ok, row counts match", rebuild.check_pragma()));
    rebuild.close();
    dir::clear_sidecars(&temp.path);
    let publish = || {
        dir::sync_file(&file, &temp.path)?;
        temp.publish(dest, false)?;
        sync_dir(&parent)
    };
    publish().map_err(Failure::Other)?;
    Ok(report)
}

/// Per table: where its rows went and what was damaged.
struct TableRun {
    entry: SchemaEntry,
    tree: u32,
    damaged_pages: BTreeSet<u32>,
    rejected_cells: u64,
}

/// Surveys every b-tree; copies the tables found whole with SQLite, reads the others row by row; gives back
/// orphan pages; finishes the new database.
fn extract(pages: &FilePages, rebuild: &mut Rebuild, options: &Options, tracker: &Tracker) -> Result<Json> {
    let mut scan = Scan::start(pages);
    let schema = scan.schema.clone();
    rebuild.create_tables(&schema);
    tracker.phase("salvage: surveying", u64::from(pages.page_count));
    let stop = || tracker.check().is_err();
    let mut runs = Vec::new();
    // Tables whose indexes are damaged: SQLite must not copy those (it would copy the index b-trees too).
    let mut damaged_indexes: BTreeSet<String> = BTreeSet::new();
    let mut walked = Vec::new();
    for entry in schema.iter().filter(|e| e.root > 0) {
        let mut checker = CellChecker { stop: Some(&stop), ..CellChecker::default() };
        let tree = scan.walker.walk(entry.root, Scan::keyed_by_rowid(entry), &mut checker);
        tracker.check()?;
        let whole = checker.rejected.is_empty() && scan.walker.walks[tree as usize].damaged.is_empty();
        walked.push(orphans::Walked { entry: entry.clone(), tree });
        if !entry.is_table() {
            if !whole {
                damaged_indexes.insert(entry.table.to_ascii_lowercase());
            }
            continue;
        }
        let damaged_pages = checker.rejected.iter().map(|(page, _)| *page).collect();
        runs.push(TableRun {
            entry: entry.clone(),
            tree,
            damaged_pages,
            rejected_cells: checker.rejected.len() as u64,
        });
    }
    tracker.phase("salvage: rows", u64::from(pages.page_count));
    // sqlite_sequence last: copying the AUTOINCREMENT tables writes rows into it that the source's replace.
    runs.sort_by_key(|run| run.entry.name.eq_ignore_ascii_case("sqlite_sequence"));
    for run in &mut runs {
        if run.entry.name.eq_ignore_ascii_case("sqlite_sequence") {
            rebuild.prepare_sequence();
        }
        let walk = &scan.walker.walks[run.tree as usize];
        let whole = walk.damaged.is_empty()
            && run.rejected_cells == 0
            && !damaged_indexes.contains(&run.entry.name.to_ascii_lowercase());
        if !(whole && rebuild.copy_table(&schema, &run.entry.name, walk.entries)) {
            rebuild.prepare_rows(&schema, &run.entry.name);
            read_rows(pages, rebuild, run, tracker)?;
        }
    }
    tracker.check()?;
    let orphans = orphans::give_back(&mut scan, &walked, rebuild, tracker)?;
    tracker.check()?;
    let lost_table = lost_table_name(&schema, &options.lost_and_found);
    let lost_rows = rebuild.finish(&schema, &lost_table)?;
    let damaged_rows = rebuild.lost.iter().filter(|l| l.reason.starts_with("overflow chain")).count();
    let tables: Vec<Json> = runs.iter().map(|run| table_report(&scan, run, rebuild, &orphans)).collect();
    let rows: u64 = runs.iter().map(|r| rebuild.recovered(&r.entry.name)).sum();
    let damaged: usize = scan.walker.walks.iter().map(|w| w.damaged.len()).sum::<usize>()
        + runs.iter().map(|r| r.damaged_pages.len()).sum::<usize>();
    let mut notes = pages.header_problems.clone();
    notes.extend(scan.freelist_problems.iter().cloned());
    notes.extend(rebuild.notes.iter().cloned());
    Ok(json!({
        "page_size": pages.page_size(),
        "pages": pages.page_count,
        "encoding": pages.header.encoding.pragma_name(),
        "wal": pages.wal().map(|w| json!({"frames_applied": w.committed_frames, "frames_ignored": w.ignored_frames})),
        "hot_journal": pages.journal().map(|j| json!({"pages_rolled_back": j.originals.len()})),
        "tables": tables,
        "lost_and_found": {
            "table": if lost_rows > 0 { Json::from(lost_table) } else { Json::Null },
            "rows": lost_rows,
            "damaged_rows": damaged_rows,
            "orphan_pages": orphans.unassigned_pages,
        },
        "rows_recovered": rows,
        "pages_damaged": damaged,
        "notes": notes,
    }))
}

/// Reads a damaged table's rows with vigil's reader, on a walk of its own (the survey's walk keeps the page
/// ownership that tells orphans apart).
fn read_rows(pages: &FilePages, rebuild: &mut Rebuild, run: &mut TableRun, tracker: &Tracker) -> Result<()> {
    let mut walker = Walker::new(pages);
    walker.walk_freelist();
    let mut sink = RowSink::new(rebuild, &run.entry, tracker);
    walker.walk(run.entry.root, Scan::keyed_by_rowid(&run.entry), &mut sink);
    if let Some(e) = sink.interrupted {
        return Err(e);
    }
    run.damaged_pages.extend(sink.damaged_pages);
    Ok(())
}

fn table_report(scan: &Scan<'_>, run: &TableRun, rebuild: &Rebuild, orphans: &orphans::GivenBack) -> Json {
    let walk = &scan.walker.walks[run.tree as usize];
    let name = run.entry.name.as_str();
    let lost_here = rebuild.lost.iter().filter(|l| l.tree.as_deref() == Some(name)).count();
    let estimate = orphans::estimate_lost(walk, orphans.rows_given_to(run.tree)).map(|n| n + run.rejected_cells);
    json!({
        "name": name,
        "rows_recovered": rebuild.recovered(name),
        "pages_damaged": walk.damaged.len() + run.damaged_pages.len(),
        "rows_lost_estimate": estimate,
        "lost_and_found": lost_here,
    })
}

/// The lost-and-found table's name: the one asked for, numbered when the schema has it already.
fn lost_table_name(schema: &[SchemaEntry], wanted: &str) -> String {
    let taken = |name: &str| schema.iter().any(|e| e.name.eq_ignore_ascii_case(name));
    (0..)
        .map(|n| if n == 0 { wanted.to_string() } else { format!("{wanted}_{n}") })
        .find(|n| !taken(n))
        .unwrap_or_default()
}

/// Inserts a table's rows as the walk reaches them, in key order.
struct RowSink<'r> {
    rebuild: &'r mut Rebuild,
    entry: &'r SchemaEntry,
    tracker: &'r Tracker,
    damaged_pages: BTreeSet<u32>,
    rejected: u64,
    interrupted: Option<Error>,
    pages_seen: u64,
}

impl<'r> RowSink<'r> {
    fn new(rebuild: &'r mut Rebuild, entry: &'r SchemaEntry, tracker: &'r Tracker) -> RowSink<'r> {
        RowSink {
            rebuild,
            entry,
            tracker,
            damaged_pages: BTreeSet::new(),
            rejected: 0,
            interrupted: None,
            pages_seen: 0,
        }
    }
}

impl Visitor for RowSink<'_> {
    fn wants_interior_entries(&self) -> bool {
        true
    }

    fn stopped(&self) -> bool {
        self.interrupted.is_some()
    }

    fn entries(&mut self, walk: &mut Walker<'_>, tree: u32, page: &BtreePage<'_>, bounds: Bounds) {
        if self.interrupted.is_some() {
            return;
        }
        self.pages_seen += 1;
        if self.pages_seen % 256 == 0 {
            if let Err(e) = self.tracker.check() {
                self.interrupted = Some(e);
                return;
            }
        }
        let (name, root) = (self.entry.name.as_str(), self.entry.root);
        for i in 0..page.cell_count() {
            match read_cell(walk.pages, page, i, &|key| bounds.holds(key)) {
                Read::Whole(entry, chain) if walk.claim_overflow(tree, &chain) => {
                    self.rebuild.insert(name, root, entry)
                }
                Read::Whole(entry, _) => {
                    self.damaged_pages.insert(page.number);
                    self.rebuild.lose("overflow chain shared with another b-tree", name, root, entry)
                }
                Read::Damaged(entry, why) => {
                    self.damaged_pages.insert(page.number);
                    self.rebuild.lose(&format!("overflow chain broken: {why}"), name, root, entry)
                }
                Read::Rejected(_) => {
                    self.damaged_pages.insert(page.number);
                    self.rejected += 1;
                }
            }
        }
    }
}
