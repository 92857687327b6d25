//! Pages no b-tree claimed after every tree was walked: leaves cut off from their tree by a damaged interior
//! page. A page goes back to a table only when exactly one table lost a key range that holds all its rowids
//! and has room for its records' values; otherwise its rows are kept in lost_and_found. Freelist pages are never
//! orphans (they hold deleted rows): only a damaged freelist can make them look like ones.

use std::collections::HashMap;

use super::cells::{read_cell, Entry, Read};
use super::rebuild::Rebuild;
use super::schema::SchemaEntry;
use super::survey::Scan;
use super::walk::TreeWalk;
use crate::format::btree::BtreePage;

/// A table walked by the salvage.
pub trait Candidate {
    fn entry(&self) -> &SchemaEntry;
    fn tree(&self) -> u32;
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

/// The one table that can own an orphan page, if there is exactly one.
fn owner<'c, C: Candidate>(
    scan: &Scan<'_>,
    runs: &'c [C],
    rebuild: &Rebuild,
    whole: &[(Entry, Vec<u32>)],
    keyed: bool,
) -> Option<&'c C> {
    let fields = whole.iter().map(|(e, _)| e.values.len()).max()?;
    let keys: Vec<i64> = whole.iter().filter_map(|(e, _)| e.rowid).collect();
    let (low, high) = (keys.iter().min().copied(), keys.iter().max().copied());
    let fits = |run: &&C| {
        let walk = &scan.walker.walks[run.tree() as usize];
        let columns = rebuild.columns(&run.entry().name).unwrap_or(0);
        let in_lost_range = walk.lost.iter().any(|l| match (low, high) {
            (Some(low), Some(high)) => l.bounds.holds(low) && l.bounds.holds(high),
            _ => !keyed,
        });
        Scan::keyed_by_rowid(run.entry()) == keyed && in_lost_range && columns >= fields
    };
    let candidates: Vec<&C> = runs.iter().filter(fits).collect();
    let exact: Vec<&C> =
        candidates.iter().copied().filter(|run| rebuild.columns(&run.entry().name) == Some(fields)).collect();
    match (candidates.len(), exact.len()) {
        (1, _) => Some(candidates[0]),
        (_, 1) => Some(exact[0]),
        _ => None,
    }
}

/// Gives every orphan leaf back to its table, or its rows to lost_and_found.
pub fn give_back<C: Candidate>(scan: &mut Scan<'_>, runs: &[C], rebuild: &mut Rebuild) -> GivenBack {
    let orphans = scan.orphans();
    let schema_damaged = !scan.walker.walks[0].damaged.is_empty();
    let mut given = GivenBack::default();
    let pages = orphans.table_leaves.iter().map(|&p| (p, true)).chain(orphans.index_pages.iter().map(|&p| (p, false)));
    for (number, keyed) in pages {
        let Some((whole, damaged)) = read_page(scan, number) else { continue };
        match owner(scan, runs, rebuild, &whole, keyed) {
            Some(run) => {
                let (tree, name, root) = (run.tree(), run.entry().name.clone(), run.entry().root);
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
            // Index entries of an index SQLite will rebuild are no loss, unless the schema that says which
            // b-trees are indexes is itself damaged: then they may be a WITHOUT ROWID table's rows.
            None if !keyed && !schema_damaged => {}
            None => {
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
    given
}

/// Rows a walk could not reach, estimated from the surviving pages: a leaf's worth for each lost leaf, a
/// subtree's (mean fan-out × mean leaf) for each lost interior page, less the rows given back from orphans.
pub fn estimate_lost(walk: &TreeWalk, given: u64) -> u64 {
    let per_leaf = walk.cells_per_leaf();
    let fanout = if walk.interior_pages > 0 {
        f64::from(walk.leaf_pages + walk.interior_pages - 1) / f64::from(walk.interior_pages)
    } else {
        1.0
    };
    let lost: f64 = walk.lost.iter().map(|l| if l.leaf_level { per_leaf } else { per_leaf * fanout }).sum();
    (lost.round() as u64).saturating_sub(given)
}
