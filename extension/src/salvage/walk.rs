//! Walking a damaged file's b-trees from their roots. Every page is claimed by at most one b-tree; an interior
//! page is trusted only when its keys rise inside the range its parent gave it and its children are new pages
//! in the file, so a garbage page cannot lead the walk into another tree. What cannot be walked is recorded
//! as damage, with the key range that was lost under it, so pages found later outside every tree (orphans)
//! can be given back to the one tree whose lost range holds their keys.

use crate::format::btree::BtreePage;
use crate::format::pages::FilePages;

/// B-trees nest at most about 20 levels (SQLite's BTCURSOR_MAX_DEPTH): deeper means a loop of pages.
const MAX_DEPTH: usize = 24;

/// A rowid range `(low, high]` (None: unbounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bounds {
    pub low: Option<i64>,
    pub high: Option<i64>,
}

impl Bounds {
    pub fn holds(&self, key: i64) -> bool {
        self.low.is_none_or(|low| key > low) && self.high.is_none_or(|high| key <= high)
    }

    fn split(&self, key: i64) -> (Bounds, Bounds) {
        (Bounds { low: self.low, high: Some(key) }, Bounds { low: Some(key), high: self.high })
    }
}

/// A page the walk could not use, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Damage {
    pub page: u32,
    pub why: String,
}

/// A subtree the walk could not enter: where it was, the keys it held, and whether it was a single leaf.
#[derive(Debug, Clone, PartialEq)]
pub struct Lost {
    pub page: u32,
    pub bounds: Bounds,
    /// The damaged page sat where its siblings are leaves: one leaf's worth of rows is gone, not a subtree's.
    pub leaf_level: bool,
}

/// What walking one b-tree found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TreeWalk {
    pub root: u32,
    pub interior_pages: u32,
    pub leaf_pages: u32,
    pub overflow_pages: u32,
    pub leaf_cells: u64,
    /// Entries: leaf cells, and the cells of interior pages of index b-trees (entries too).
    pub entries: u64,
    pub damaged: Vec<Damage>,
    pub lost: Vec<Lost>,
    /// What the tree's records look like, from the first cells read.
    pub profile: Profile,
}

/// The shape of a tree's records (how many values, which storage classes at each position), sampled from the
/// cells the walk could read: an orphan page goes back to a tree only when its records have that shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub samples: u32,
    fields_min: usize,
    fields_max: usize,
    classes: Vec<u8>,
}

const PROFILE_SAMPLES: u32 = 512;

impl Profile {
    pub fn observe(&mut self, serial_types: &[u64]) {
        if self.samples >= PROFILE_SAMPLES {
            return;
        }
        let n = serial_types.len();
        (self.fields_min, self.fields_max) =
            if self.samples == 0 { (n, n) } else { (self.fields_min.min(n), self.fields_max.max(n)) };
        if self.classes.len() < n {
            self.classes.resize(n, 0);
        }
        for (class, &t) in self.classes.iter_mut().zip(serial_types) {
            *class |= crate::format::record::class_bit(t);
        }
        self.samples += 1;
    }

    /// Whether a record of these storage classes (see `class_bit`) has the shape seen; any shape fits a tree
    /// none of whose records could be read. NULL fits anywhere.
    pub fn fits(&self, classes: &[u8]) -> bool {
        if self.samples == 0 {
            return true;
        }
        (self.fields_min..=self.fields_max).contains(&classes.len())
            && classes.iter().zip(&self.classes).all(|(&c, &seen)| c == 1 || c & seen != 0)
    }
}

impl TreeWalk {
    pub fn pages(&self) -> u32 {
        self.interior_pages + self.leaf_pages + self.overflow_pages
    }

    /// Mean cells per leaf, for estimating what a lost subtree held.
    pub fn cells_per_leaf(&self) -> f64 {
        if self.leaf_pages == 0 {
            0.0
        } else {
            self.leaf_cells as f64 / f64::from(self.leaf_pages)
        }
    }
}

/// Who owns each page of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Nobody,
    Structure,
    Free,
    /// The b-tree with this index in the walk order.
    Tree(u32),
}

/// Receives what the walk reaches: every page holding entries (leaves; and interior pages of index b-trees,
/// whose cells are entries too), in key order.
pub trait Visitor {
    /// Whether interior cells of index b-trees are wanted (WITHOUT ROWID tables keep rows there).
    fn wants_interior_entries(&self) -> bool {
        false
    }
    /// True once the visitor wants the walk to stop (the caller was interrupted).
    fn stopped(&self) -> bool {
        false
    }
    /// A page of entries; `walk.claim_overflow` marks the overflow pages the visitor follows.
    fn entries(&mut self, walk: &mut Walker<'_>, tree: u32, page: &BtreePage<'_>, bounds: Bounds);
}

/// The walk over one file: page ownership, shared by every tree walked.
pub struct Walker<'p> {
    pub pages: &'p FilePages,
    pub owners: Vec<Owner>,
    pub walks: Vec<TreeWalk>,
}

impl<'p> Walker<'p> {
    pub fn new(pages: &'p FilePages) -> Walker<'p> {
        let mut owners = vec![Owner::Nobody; pages.page_count as usize + 1];
        owners[0] = Owner::Structure;
        for (number, owner) in owners.iter_mut().enumerate().skip(2) {
            if pages.is_structural(number as u32) {
                *owner = Owner::Structure;
            }
        }
        Walker { pages, owners, walks: Vec::new() }
    }

    pub fn owner(&self, page: u32) -> Owner {
        self.owners.get(page as usize).copied().unwrap_or(Owner::Structure)
    }

    fn claim(&mut self, page: u32, owner: Owner) -> Result<(), String> {
        match self.owners.get(page as usize) {
            None => Err(format!("page {page} is past the end of the database ({} pages)", self.pages.page_count)),
            Some(Owner::Nobody) => {
                self.owners[page as usize] = owner;
                Ok(())
            }
            Some(Owner::Structure) => Err(format!("page {page} is a pointer-map or lock page")),
            Some(Owner::Free) => Err(format!("page {page} is on the freelist")),
            Some(Owner::Tree(_)) => Err(format!("page {page} is already part of a b-tree")),
        }
    }

    /// Gives an orphan page to `tree` (found by content, not by walking).
    pub fn claim_as(&mut self, page: u32, tree: u32) {
        if self.claim(page, Owner::Tree(tree)).is_ok() {
            self.walks[tree as usize].leaf_pages += 1;
        }
    }

    /// Marks an overflow chain's pages as `tree`'s; false when one of them belongs elsewhere (the chain is
    /// damaged: the caller treats the cell as such).
    pub fn claim_overflow(&mut self, tree: u32, chain: &[u32]) -> bool {
        for (i, &page) in chain.iter().enumerate() {
            if self.claim(page, Owner::Tree(tree)).is_err() {
                for &claimed in &chain[..i] {
                    self.owners[claimed as usize] = Owner::Nobody;
                }
                return false;
            }
        }
        self.walks[tree as usize].overflow_pages += chain.len() as u32;
        true
    }

    /// Walks the freelist from the header: its trunk and leaf pages are nobody's content. Returns what is
    /// wrong with it.
    pub fn walk_freelist(&mut self) -> Vec<String> {
        let header = self.pages.header;
        let mut problems = Vec::new();
        let (mut trunk, mut seen) = (header.freelist_trunk, 0u64);
        let per_trunk = (self.pages.usable_size() / 4 - 2) as usize;
        while trunk != 0 {
            let Some(bytes) = self.pages.page(trunk).filter(|_| self.claim(trunk, Owner::Free).is_ok()) else {
                problems.push(format!("freelist trunk page {trunk} cannot be used"));
                break;
            };
            let word = |at: usize| crate::format::be_u32(&bytes, at);
            let count = word(4) as usize;
            if count > per_trunk {
                problems.push(format!("freelist trunk page {trunk} claims {count} leaves"));
                break;
            }
            for i in 0..count {
                let leaf = word(8 + 4 * i);
                if self.claim(leaf, Owner::Free).is_err() {
                    problems.push(format!("freelist trunk page {trunk} lists page {leaf}, which cannot be free"));
                }
            }
            seen += 1 + count as u64;
            trunk = word(0);
        }
        if problems.is_empty() && seen != u64::from(header.freelist_count) {
            problems.push(format!("the header counts {} free pages, the freelist holds {seen}", header.freelist_count));
        }
        problems
    }

    /// Walks the b-tree rooted at `root` (`table`: keyed by rowid), handing its entries to `visitor`.
    /// Returns the tree's index.
    pub fn walk(&mut self, root: u32, table: bool, visitor: &mut dyn Visitor) -> u32 {
        let tree = self.walks.len() as u32;
        self.walks.push(TreeWalk { root, ..TreeWalk::default() });
        self.descend(tree, root, table, Bounds::default(), 0, visitor);
        tree
    }

    /// Walks one page and what lies under it. Returns whether it was a leaf, `None` when it was lost.
    fn descend(
        &mut self,
        tree: u32,
        number: u32,
        table: bool,
        bounds: Bounds,
        depth: usize,
        visitor: &mut dyn Visitor,
    ) -> Option<bool> {
        let lose = |walker: &mut Self, why: String| {
            let walk = &mut walker.walks[tree as usize];
            walk.damaged.push(Damage { page: number, why });
            walk.lost.push(Lost { page: number, bounds, leaf_level: false });
            None
        };
        if depth > MAX_DEPTH {
            return lose(self, format!("page {number}: the b-tree is deeper than any SQLite makes"));
        }
        if let Err(why) = self.claim(number, Owner::Tree(tree)) {
            return lose(self, why);
        }
        let Some(bytes) = self.pages.page(number) else {
            return lose(self, format!("page {number} is past the end of the file"));
        };
        let page = match BtreePage::parse(number, &bytes, self.pages.usable_size()) {
            Ok(page) if page.kind.is_table() == table => page,
            Ok(page) => {
                return lose(
                    self,
                    format!("page {number} is a {} page in a {} b-tree", page.kind.name(), family(table)),
                )
            }
            Err(why) => return lose(self, why),
        };
        if page.kind.is_leaf() {
            let walk = &mut self.walks[tree as usize];
            walk.leaf_pages += 1;
            walk.leaf_cells += page.cell_count() as u64;
            walk.entries += page.cell_count() as u64;
            visitor.entries(self, tree, &page, bounds);
            return Some(true);
        }
        let children = match children(&page, bounds, self.pages.page_limit) {
            Ok(children) => children,
            Err(why) => return lose(self, why),
        };
        self.walks[tree as usize].interior_pages += 1;
        if !table {
            self.walks[tree as usize].entries += page.cell_count() as u64;
        }
        if !table && visitor.wants_interior_entries() {
            visitor.entries(self, tree, &page, bounds);
        }
        let lost_before = self.walks[tree as usize].lost.len();
        let mut leaves_below = false;
        for (child, child_bounds) in children {
            if visitor.stopped() {
                break;
            }
            leaves_below |= self.descend(tree, child, table, child_bounds, depth + 1, visitor) == Some(true);
        }
        // A lost child whose siblings are leaves was a leaf too: one leaf's rows are gone, not a subtree's.
        for lost in &mut self.walks[tree as usize].lost[lost_before..] {
            lost.leaf_level |= leaves_below;
        }
        Some(false)
    }
}

fn family(table: bool) -> &'static str {
    if table {
        "table"
    } else {
        "index"
    }
}

/// An interior page's children with their key ranges, checked: page numbers in the database (`page_limit`: a
/// child past the end of a truncated file is lost on its own) and distinct, table keys rising inside the page's
/// own range.
fn children(page: &BtreePage<'_>, bounds: Bounds, page_count: u32) -> Result<Vec<(u32, Bounds)>, String> {
    let mut out = Vec::with_capacity(page.cell_count() + 1);
    let mut rest = bounds;
    for i in 0..page.cell_count() {
        let cell = page.cell(i)?;
        let child = cell.left_child.unwrap_or(0);
        match cell.rowid {
            Some(key) if page.kind.is_table() => {
                if !rest.holds(key) {
                    return Err(format!("page {}: key {key} of cell {i} is out of order", page.number));
                }
                let (left, right) = rest.split(key);
                out.push((child, left));
                rest = right;
            }
            _ => out.push((child, Bounds::default())),
        }
    }
    out.push((page.right_child(), if page.kind.is_table() { rest } else { Bounds::default() }));
    let mut numbers: Vec<u32> = out.iter().map(|&(c, _)| c).collect();
    numbers.sort_unstable();
    numbers.dedup();
    if numbers.len() != out.len() || numbers.iter().any(|&c| c < 2 || c > page_count) {
        return Err(format!("page {}: its child page numbers are impossible", page.number));
    }
    Ok(out)
}
