//! Pages no b-tree claimed after every tree was walked: leaves cut off from their tree by a damaged interior
//! page. A page goes back to a table only when exactly one table lost a key range that holds all its rowids
//! and has room for its records' values; otherwise its rows are kept in lost_and_found. Freelist pages are never
//! orphans (they hold deleted rows): only a damaged freelist can make them look like ones.

use std::collections::HashMap;

use super::cells::{read_cell, value_class, Entry, Read};
use super::rebuild::Rebuild;
use super::schema::SchemaEntry;
use super::survey::Scan;
use super::walk::TreeWalk;
use crate::error::Result;
use crate::format::btree::BtreePage;
use crate::progress::Tracker;

/// A b-tree the salvage walked: a table (its rows go back into it) or an index (its entries are rebuilt).
pub struct Walked {
    pub entry: SchemaEntry,
    pub tree: u32,
}

/// Where an orphan page's entries belong.
enum Verdict<'w> {
    Table(&'w Walked),
    /// An index's entries: SQLite rebuilds the index, nothing is lost.
    Index,
    /// No single tree, or none: kept in lost_and_found.
    Unknown,
}

/// What happened to the orphan pages.
#[derive(Debug, Default)]
pub struct GivenBack {
    /// Orphan leaves whose rows went to lost_and_found.
    pub unassigned_pages: usize,
    rows: HashMap<u32, u64>,
}

impl GivenBack {
    pub fn rows_given_to(&self, tree: u32) -> u64 {
        self.rows.get(&tree).copied().unwrap_or(0)
    }
}

/// The whole entries of an orphan page, with their overflow chains, and the rest as lost rows.
fn read_page(scan: &Scan<'_>, number: u32) -> Option<(Vec<(Entry, Vec<u32>)>, Vec<(Entry, String)>)> {
    let pages = scan.walker.pages;
    let bytes = pages.page(number)?;
    let page = BtreePage::parse(number, &bytes, pages.usable_size()).ok()?;
    let (mut whole, mut damaged) = (Vec::new(), Vec::new());
    for i in 0..page.cell_count() {
        match read_cell(pages, &page, i, &|_| true) {
            Read::Whole(entry, chain) => whole.push((entry, chain)),
            Read::Damaged(entry, why) => damaged.push((entry, format!("overflow chain broken: {why}"))),
            Read::Rejected(_) => {}
        }
    }
    Some((whole, damaged))
}

/// The tree an orphan page belongs to: among the trees of its kind that lost pages (and, for rowid tables, lost a
/// range holding all its rowids), those whose records have the page's shape (at least 9 in 10 of its entries fit
/// the tree's profile; a table must have room for the values). Exactly one, or none.
fn verdict<'w>(
    scan: &Scan<'_>,
    trees: &'w [Walked],
    rebuild: &Rebuild,
    whole: &[(Entry, Vec<u32>)],
    keyed: bool,
) -> Verdict<'w> {
    let Some(fields) = whole.iter().map(|(e, _)| e.values.len()).max() else { return Verdict::Unknown };
    let keys: Vec<i64> = whole.iter().filter_map(|(e, _)| e.rowid).collect();
    let (low, high) = (keys.iter().min().copied(), keys.iter().max().copied());
    let shapes: Vec<Vec<u8>> = whole.iter().map(|(e, _)| e.values.iter().map(value_class).collect()).collect();
    let fits = |walked: &&Walked| {
        let walk = &scan.walker.walks[walked.tree as usize];
        let in_lost_range = walk.lost.iter().any(|l| match (low, high) {
            (Some(low), Some(high)) => l.bounds.holds(low) && l.bounds.holds(high),
            _ => !keyed,
        });
        let fitting = shapes.iter().filter(|shape| walk.profile.fits(shape)).count();
        let room = !walked.entry.is_table() || rebuild.columns(&walked.entry.name).unwrap_or(0) >= fields;
        // A table's INTEGER PRIMARY KEY is stored as NULL: records with a value there are another table's.
        let alias_null = rebuild.rowid_column(&walked.entry.name).is_none_or(|at| {
            whole.iter().all(|(e, _)| e.values.get(at).is_none_or(|v| matches!(v, crate::sqlite::Value::Null)))
        });
        Scan::keyed_by_rowid(&walked.entry) == keyed
            && in_lost_range
            && room
            && alias_null
            && fitting * 10 >= shapes.len() * 9
    };
    // An index of a rowid table ends each entry with the rowid: entries that do not cannot be its.
    let end_with_rowids = shapes.iter().all(|shape| shape.last() == Some(&2));
    let rowid_table = |name: &str| trees.iter().any(|t| t.entry.name == name && Scan::keyed_by_rowid(&t.entry));
    let could_be = |walked: &&Walked| walked.entry.is_table() || end_with_rowids || !rowid_table(&walked.entry.table);
    let candidates: Vec<&Walked> = trees.iter().filter(fits).filter(could_be).collect();
    match candidates[..] {
        [only] if only.entry.is_table() => Verdict::Table(only),
        [_] => Verdict::Index,
        _ if candidates.iter().all(|w| !w.entry.is_table()) && !candidates.is_empty() => Verdict::Index,
        _ => Verdict::Unknown,
    }
}

/// Gives every orphan leaf back to its table, or its rows to lost_and_found.
pub fn give_back(scan: &mut Scan<'_>, trees: &[Walked], rebuild: &mut Rebuild, tracker: &Tracker) -> Result<GivenBack> {
    let orphans = scan.orphans();
    let schema_damaged = !scan.walker.walks[0].damaged.is_empty();
    let without_rowid_losses = trees.iter().any(|t| {
        t.entry.is_table() && !Scan::keyed_by_rowid(&t.entry) && !scan.walker.walks[t.tree as usize].lost.is_empty()
    });
    let mut given = GivenBack::default();
    let pages = orphans.table_leaves.iter().map(|&p| (p, true)).chain(orphans.index_pages.iter().map(|&p| (p, false)));
    for (number, keyed) in pages {
        tracker.check()?;
        let Some((whole, damaged)) = read_page(scan, number) else { continue };
        match verdict(scan, trees, rebuild, &whole, keyed) {
            Verdict::Table(walked) => {
                let (tree, name, root) = (walked.tree, walked.entry.name.clone(), walked.entry.root);
                scan.walker.claim_as(number, tree);
                for (entry, chain) in whole {
                    if scan.walker.claim_overflow(tree, &chain) {
                        rebuild.insert(&name, root, entry);
                        *given.rows.entry(tree).or_default() += 1;
                    }
                }
                for (entry, why) in damaged {
                    rebuild.lose(&why, &name, root, entry);
                }
            }
            Verdict::Index => {}
            // Index b-tree pages no tree could own are an index's entries when no WITHOUT ROWID table lost
            // pages and the schema that says which trees exist is sound.
            Verdict::Unknown if !keyed && !schema_damaged && !without_rowid_losses => {}
            Verdict::Unknown => {
                given.unassigned_pages += 1;
                for (entry, _) in whole {
                    rebuild.lose_orphan("orphan page: no single table lost the rowids it holds", entry);
                }
                for (entry, why) in damaged {
                    rebuild.lose_orphan(&why, entry);
                }
            }
        }
    }
    Ok(given)
}

/// Rows a walk could not reach, estimated from the surviving pages: a leaf's worth for each lost leaf, a
/// subtree's (mean fan-out × mean leaf) for each lost interior page, less the rows given back from orphans.
/// `None` (unknown) when nothing survived to estimate from: the root was lost, or no leaf could be read.
pub fn estimate_lost(walk: &TreeWalk, given: u64) -> Option<u64> {
    if walk.lost.is_empty() {
        return Some(0);
    }
    if walk.leaf_pages == 0 || walk.lost.iter().any(|l| l.page == walk.root) {
        return None;
    }
    let per_leaf = walk.cells_per_leaf();
    let fanout = if walk.interior_pages > 0 {
        f64::from(walk.leaf_pages + walk.interior_pages - 1) / f64::from(walk.interior_pages)
    } else {
        1.0
    };
    let lost: f64 = walk.lost.iter().map(|l| if l.leaf_level { per_leaf } else { per_leaf * fanout }).sum();
    Some((lost.round() as u64).saturating_sub(given))
}
