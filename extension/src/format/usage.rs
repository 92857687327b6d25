//! Space usage of b-trees, page by page, with the definitions of SQLite's dbstat virtual table (which
//! sqlite3_analyzer reports): pages by kind, cells, payload, unused bytes, and the gaps in page order.
//!
//! One pass: every b-tree page is read once; an overflow chain's figures follow from its length (its last
//! page is never read, the others only for the number of the next).

use super::btree::{overflow_pages, BtreePage, PageKind};
use super::pages::PageSource;

/// Page usage of one b-tree, as dbstat counts it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeUsage {
    pub internal_pages: i64,
    pub leaf_pages: i64,
    pub overflow_pages: i64,
    pub leaf_cells: i64,
    pub internal_cells: i64,
    /// Bytes of payload on the tree's pages (each cell's local part, plus what its overflow pages hold).
    pub payload: i64,
    pub unused: i64,
    /// Page size × pages.
    pub bytes: i64,
    /// Leaf pages not directly after another page of the same b-tree (sqlite3_analyzer's gap count).
    pub gaps: i64,
}

impl TreeUsage {
    pub fn pages(&self) -> i64 {
        self.internal_pages + self.leaf_pages + self.overflow_pages
    }

    /// Counts the gaps from the tree's pages `(page number, is a leaf)`: sorted by number, a leaf page that does
    /// not follow the page before it is a gap.
    pub fn count_gaps(&mut self, pages: &mut [(u32, bool)]) {
        pages.sort_unstable();
        let mut previous = 0;
        for &(page, is_leaf) in pages.iter() {
            if previous > 0 && is_leaf && page != previous + 1 {
                self.gaps += 1;
            }
            previous = page;
        }
    }
}

/// Marks who owns each page: the tree's index + 1, with [`LEAF`] for leaf pages; 0 for no tree.
const LEAF: u32 = 1 << 31;

/// Walks the b-trees rooted at `roots` and measures each. An error names the page that cannot be read, is
/// not a b-tree page, or is reached twice (a loop, or two trees sharing it).
pub fn measure(source: &mut dyn PageSource, roots: &[u32]) -> Result<Vec<TreeUsage>, String> {
    let mut walk = Walk {
        owner: vec![0; source.page_count() as usize + 1],
        stack: Vec::new(),
        chains: Vec::new(),
        page_size: i64::from(source.page_size()),
        usable: source.usable_size(),
    };
    let mut trees = Vec::with_capacity(roots.len());
    for (index, &root) in roots.iter().enumerate() {
        let mut usage = TreeUsage::default();
        walk.tree(source, index as u32 + 1, root, &mut usage)?;
        trees.push(usage);
    }
    walk.count_gaps(&mut trees);
    Ok(trees)
}

/// Touches every cache line of a page at once, in independent loads the CPU overlaps: its cells are then read
/// in pointer order, one dependent load after another, and a page fresh from the page cache would otherwise cost
/// a memory round trip per line (most of the scan's time, measured).
#[inline]
fn prefetch(bytes: &[u8]) {
    let mut any = 0u8;
    for line in bytes.chunks(64) {
        any ^= line[0];
    }
    std::hint::black_box(any);
}

struct Walk {
    owner: Vec<u32>,
    /// Pages still to visit in the current tree.
    stack: Vec<u32>,
    /// Overflow chains of the current page: (first page, pages, payload bytes on them).
    chains: Vec<(u32, u64, u64)>,
    page_size: i64,
    usable: u32,
}

impl Walk {
    fn tree(&mut self, source: &mut dyn PageSource, id: u32, root: u32, usage: &mut TreeUsage) -> Result<(), String> {
        self.stack.clear();
        self.stack.push(root);
        while let Some(number) = self.stack.pop() {
            self.claim(number, id)?;
            let bytes = source.page(number)?;
            prefetch(bytes);
            let leaf = self.page(bytes, number, usage)?;
            if leaf {
                self.owner[number as usize] |= LEAF;
            }
            for i in 0..self.chains.len() {
                let (first, pages, payload) = self.chains[i];
                self.overflow(source, id, first, pages, payload, usage)?;
            }
        }
        Ok(())
    }

    /// Takes page `number` for tree `id`.
    fn claim(&mut self, number: u32, id: u32) -> Result<(), String> {
        match self.owner.get_mut(number as usize) {
            Some(owner) if number > 0 && *owner == 0 => {
                *owner = id;
                Ok(())
            }
            Some(_) if number > 0 => Err(format!("page {number} is reached twice (a loop, or shared by two b-trees)")),
            _ => Err(format!("page {number} is outside the database ({} pages)", self.owner.len() - 1)),
        }
    }

    /// Counts one b-tree page, queues its children and notes its overflow chains. True for a leaf page.
    fn page(&mut self, bytes: &[u8], number: u32, usage: &mut TreeUsage) -> Result<bool, String> {
        let page = BtreePage::parse(number, bytes, self.usable)?;
        let cells = page.cell_count();
        self.chains.clear();
        let mut payload = 0;
        for i in 0..cells {
            let cell = page.cell(i)?;
            if let Some(child) = cell.left_child {
                self.stack.push(child);
            }
            if page.kind == PageKind::InteriorTable {
                continue;
            }
            // The parsed cell's local part has the file format's length (btree::local_payload).
            let local = cell.local.len();
            payload += local as i64;
            if let Some(first) = cell.overflow {
                let pages = overflow_pages(cell.payload_size, local, self.usable);
                self.chains.push((first, pages, cell.payload_size - local as u64));
            }
        }
        if !page.kind.is_leaf() {
            self.stack.push(page.right_child());
        }
        let (pages, cells_total) = if page.kind.is_leaf() {
            (&mut usage.leaf_pages, &mut usage.leaf_cells)
        } else {
            (&mut usage.internal_pages, &mut usage.internal_cells)
        };
        *pages += 1;
        *cells_total += cells as i64;
        usage.payload += payload;
        usage.unused += page.unused_as_dbstat()?;
        usage.bytes += self.page_size;
        Ok(page.kind.is_leaf())
    }

    /// Counts an overflow chain of `pages` pages holding `payload` bytes: every page but the last is full
    /// (usable − 4 bytes after the next-page number). Only the pages before the last are read, for the number
    /// of the next.
    fn overflow(
        &mut self,
        source: &mut dyn PageSource,
        id: u32,
        first: u32,
        pages: u64,
        payload: u64,
        usage: &mut TreeUsage,
    ) -> Result<(), String> {
        let per_page = u64::from(self.usable) - 4;
        let mut number = first;
        for i in 0..pages {
            self.claim(number, id)?;
            if i + 1 < pages {
                let bytes = source.page(number)?;
                number = super::be_u32(&bytes, 0);
            }
        }
        let last = payload - (pages - 1) * per_page;
        usage.overflow_pages += pages as i64;
        usage.payload += payload as i64;
        usage.unused += (per_page - last) as i64;
        usage.bytes += pages as i64 * self.page_size;
        Ok(())
    }

    /// The gaps of every tree in one pass over the pages in file order.
    fn count_gaps(&self, trees: &mut [TreeUsage]) {
        let mut previous = vec![0u32; trees.len()];
        for (number, &owner) in self.owner.iter().enumerate().skip(1) {
            let id = owner & !LEAF;
            if id == 0 {
                continue;
            }
            let tree = id as usize - 1;
            let before = previous[tree];
            if owner & LEAF != 0 && before > 0 && number as u32 != before + 1 {
                trees[tree].gaps += 1;
            }
            previous[tree] = number as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages in memory, 512 bytes each.
    struct Memory(Vec<Vec<u8>>);

    impl PageSource for Memory {
        fn page_size(&self) -> u32 {
            512
        }
        fn usable_size(&self) -> u32 {
            512
        }
        fn page_count(&self) -> u32 {
            self.0.len() as u32
        }
        fn page(&mut self, number: u32) -> Result<&[u8], String> {
            self.0.get(number as usize - 1).map(Vec::as_slice).ok_or_else(|| format!("no page {number}"))
        }
    }

    /// A b-tree page of `kind` holding `cells` (each given whole), packed at the page's end.
    fn page(kind: u8, cells: &[Vec<u8>], right_child: u32) -> Vec<u8> {
        let mut page = vec![0u8; 512];
        page[0] = kind;
        page[3..5].copy_from_slice(&(cells.len() as u16).to_be_bytes());
        let header = if kind == 13 || kind == 10 { 8 } else { 12 };
        if header == 12 {
            page[8..12].copy_from_slice(&right_child.to_be_bytes());
        }
        let mut end = 512;
        for (i, cell) in cells.iter().enumerate() {
            end -= cell.len();
            page[end..end + cell.len()].copy_from_slice(cell);
            page[header + 2 * i..header + 2 * i + 2].copy_from_slice(&(end as u16).to_be_bytes());
        }
        page[5..7].copy_from_slice(&(end as u16).to_be_bytes());
        page
    }

    /// A table leaf cell with rowid `rowid` and a payload of `size` bytes; past 477 bytes (512 − 35) the
    /// payload keeps its local part and the number of its first overflow page.
    fn leaf_cell(rowid: u8, size: u16, overflow: u32) -> Vec<u8> {
        let local = if size <= 477 { size as usize } else { 39 + (size as usize - 39) % 508 };
        let local = if local > 477 { 39 } else { local };
        let mut cell = vec![0x80 | (size >> 7) as u8, (size & 0x7f) as u8, rowid];
        cell.extend(std::iter::repeat_n(0u8, local));
        if (local as u16) < size {
            cell.extend_from_slice(&overflow.to_be_bytes());
        }
        cell
    }

    #[test]
    fn counts_pages_cells_payload_overflow_and_gaps_as_dbstat() {
        // Page 1: an empty schema leaf. Tree at 2: interior → leaves 3 and 7; leaf 3 holds a row whose
        // 1100-byte payload keeps 84 bytes local and spills over pages 4 and 5 (508 bytes each); page 6 is free.
        let mut schema = page(13, &[], 0);
        schema.splice(0..0, std::iter::repeat_n(0u8, 100));
        schema.truncate(512);
        schema[100] = 13;
        schema[105..107].copy_from_slice(&512u16.to_be_bytes());
        let interior = page(5, &[vec![0, 0, 0, 3, 1]], 7);
        let leaf = page(13, &[leaf_cell(1, 1100, 4)], 0);
        let mut first_overflow = vec![0u8; 512];
        first_overflow[..4].copy_from_slice(&5u32.to_be_bytes());
        let last_overflow = vec![0xffu8; 512]; // never read: its figures follow from the chain
        let right = page(13, &[leaf_cell(2, 10, 0)], 0);
        let mut pages = Memory(vec![schema, interior, leaf, first_overflow, last_overflow, vec![0; 512], right]);
        let trees = measure(&mut pages, &[1, 2]).unwrap();
        assert_eq!((trees[0].leaf_pages, trees[0].unused, trees[0].gaps), (1, 512 - 108, 0));
        let t = &trees[1];
        assert_eq!((t.internal_pages, t.leaf_pages, t.overflow_pages), (1, 2, 2));
        assert_eq!((t.internal_cells, t.leaf_cells), (1, 2));
        assert_eq!(t.payload, 1100 + 10);
        assert_eq!(t.bytes, 5 * 512);
        // Interior: 507 − 14; leaf 3: its 91-byte cell, 421 − 10; leaf 7: 13-byte cell, 499 − 10; the
        // overflow pages are full.
        assert_eq!(t.unused, 493 + 411 + 489);
        // Sorted 2, 3, 4, 5, 7: leaf 7 does not follow page 5, leaf 3 follows page 2.
        assert_eq!(t.gaps, 1);
    }

    #[test]
    fn a_page_reached_twice_is_an_error_not_a_loop() {
        let mut schema = page(13, &[], 0);
        schema.splice(0..0, std::iter::repeat_n(0u8, 100));
        schema.truncate(512);
        schema[100] = 13;
        let looping = page(5, &[vec![0, 0, 0, 2, 1]], 2);
        let mut pages = Memory(vec![schema, looping]);
        let err = measure(&mut pages, &[1, 2]).unwrap_err();
        assert!(err.contains("page 2 is reached twice"), "{err}");
        let err = measure(&mut pages, &[1, 9]).unwrap_err();
        assert!(err.contains("page 9 is outside the database"), "{err}");
    }
}
