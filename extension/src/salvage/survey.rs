//! The survey of a damaged file: its freelist, its schema, every b-tree walked from its root, and the pages
//! that belong to no tree. Salvage extracts rows on the same walk; diagnose reports what it found.

use std::path::Path;

use super::cells::check_cell;
use super::schema::{SchemaEntry, SchemaReader};
use super::walk::{Bounds, Owner, TreeWalk, Visitor, Walker};
use crate::format::btree::{BtreePage, PageKind};
use crate::format::pages::FilePages;
use crate::format::wal::WalScan;

/// The file's structure, read without SQLite: freelist, schema, and page ownership.
pub struct Scan<'p> {
    pub walker: Walker<'p>,
    pub schema: Vec<SchemaEntry>,
    /// Schema rows that could not be read.
    pub schema_rejected: usize,
    pub freelist_problems: Vec<String>,
}

/// Pages no b-tree claimed, by what they look like.
#[derive(Debug, Default)]
pub struct Orphans {
    pub table_leaves: Vec<u32>,
    pub index_pages: Vec<u32>,
    pub others: Vec<u32>,
}

impl<'p> Scan<'p> {
    /// Reads the freelist and the schema (from its tree, and when that is damaged from orphan pages too).
    pub fn start(pages: &'p FilePages) -> Scan<'p> {
        let mut walker = Walker::new(pages);
        let freelist_problems = walker.walk_freelist();
        let mut reader = SchemaReader::default();
        let tree = walker.walk(1, true, &mut reader);
        if !walker.walks[tree as usize].damaged.is_empty() {
            reader.search_orphans(&mut walker, tree);
        }
        Scan { walker, schema: reader.entries, schema_rejected: reader.rejected, freelist_problems }
    }

    /// Whether the b-tree of `entry` is keyed by rowid.
    pub fn keyed_by_rowid(entry: &SchemaEntry) -> bool {
        entry.is_table() && !entry.without_rowid()
    }

    /// Every page no walk claimed, classified by its first byte.
    pub fn orphans(&self) -> Orphans {
        let pages = self.walker.pages;
        let mut orphans = Orphans::default();
        for number in 2..=pages.page_count {
            if self.walker.owner(number) != Owner::Nobody {
                continue;
            }
            let kind = pages
                .page(number)
                .and_then(|bytes| BtreePage::parse(number, &bytes, pages.usable_size()).ok().map(|p| p.kind));
            match kind {
                Some(PageKind::LeafTable) => orphans.table_leaves.push(number),
                // Interior pages of index b-trees hold entries too (a WITHOUT ROWID table's rows).
                Some(PageKind::LeafIndex | PageKind::InteriorIndex) => orphans.index_pages.push(number),
                _ => orphans.others.push(number),
            }
        }
        orphans
    }
}

/// Checks every entry (record, overflow chain) so that overflow pages count as their tree's; notes cells that
/// cannot be read. `stop` ends the walk early (an interrupted caller).
#[derive(Default)]
pub struct CellChecker<'s> {
    pub rejected: Vec<(u32, String)>,
    pub stop: Option<&'s dyn Fn() -> bool>,
    pub stopped: bool,
}

impl Visitor for CellChecker<'_> {
    fn wants_interior_entries(&self) -> bool {
        true
    }

    fn stopped(&self) -> bool {
        self.stopped
    }

    fn entries(&mut self, walk: &mut Walker<'_>, tree: u32, page: &BtreePage<'_>, bounds: Bounds) {
        self.stopped = self.stopped || self.stop.is_some_and(|stop| stop());
        for i in 0..page.cell_count() {
            let problem = match check_cell(walk.pages, page, i, &|key| bounds.holds(key)) {
                Ok((chain, types)) if walk.claim_overflow(tree, &chain) => {
                    walk.walks[tree as usize].profile.observe(&types);
                    continue;
                }
                Ok(_) => format!("page {}: cell {i}: its overflow pages belong elsewhere", page.number),
                Err(why) => why,
            };
            self.rejected.push((page.number, problem));
        }
    }
}

/// One b-tree as the survey found it.
#[derive(Debug, Clone)]
pub struct TreeSurvey {
    pub name: String,
    /// "table" or "index" (WITHOUT ROWID tables are tables).
    pub kind: String,
    pub table: String,
    pub root: u32,
    pub pages: u32,
    /// Pages that could not be used, or held cells that could not be read, and why.
    pub damaged: Vec<(u32, String)>,
}

/// What `survey` found in a file.
#[derive(Debug, Clone)]
pub struct Survey {
    pub page_size: u32,
    pub page_count: u32,
    pub header_problems: Vec<String>,
    pub trees: Vec<TreeSurvey>,
    pub orphan_pages: Vec<u32>,
    pub freelist_problems: Vec<String>,
    pub wal: Option<WalScan>,
}

/// Walks every b-tree of the file at `path` (with its committed WAL frames, or a hot journal's originals) and
/// reports the damage found. Never writes.
pub fn survey(path: &Path) -> Result<Survey, String> {
    let pages = FilePages::open(path)?;
    let mut scan = Scan::start(&pages);
    let mut trees = vec![TreeSurvey {
        name: "sqlite_schema".into(),
        kind: "table".into(),
        table: "sqlite_schema".into(),
        root: 1,
        pages: 0,
        damaged: Vec::new(),
    }];
    let schema = scan.schema.clone();
    for entry in schema.iter().filter(|e| e.root > 0) {
        let mut checker = CellChecker::default();
        scan.walker.walk(entry.root, Scan::keyed_by_rowid(entry), &mut checker);
        let kind = if entry.is_table() { "table" } else { "index" };
        trees.push(TreeSurvey {
            name: entry.name.clone(),
            kind: kind.into(),
            table: entry.table.clone(),
            root: entry.root,
            pages: 0,
            damaged: checker.rejected,
        });
    }
    for (tree, walk) in trees.iter_mut().zip(&scan.walker.walks) {
        tree.pages = walk.pages();
        tree.damaged.extend(walk.damaged.iter().map(|d| (d.page, d.why.clone())));
        tree.damaged.sort_by_key(|d| d.0);
    }
    let orphans = scan.orphans();
    let mut orphan_pages = orphans.table_leaves;
    orphan_pages.extend(orphans.index_pages);
    orphan_pages.sort_unstable();
    Ok(Survey {
        page_size: pages.page_size(),
        page_count: pages.page_count,
        header_problems: pages.header_problems.clone(),
        trees,
        orphan_pages,
        freelist_problems: scan.freelist_problems,
        wal: pages.wal().cloned(),
    })
}

/// The walk of tree `index` (the schema tree is 0).
pub fn walk_of<'a>(scan: &'a Scan<'_>, index: u32) -> &'a TreeWalk {
    &scan.walker.walks[index as usize]
}
