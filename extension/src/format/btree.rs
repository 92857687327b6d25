//! B-tree pages and their cells, parsed defensively: every offset and length is checked against the page, so
//! a damaged page yields an error that names what is wrong, never a panic or an out-of-page read.

/// The four kinds of b-tree page (the first byte of the page header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageKind {
    InteriorIndex,
    InteriorTable,
    LeafIndex,
    LeafTable,
}

impl PageKind {
    pub fn from_byte(byte: u8) -> Option<PageKind> {
        match byte {
            2 => Some(PageKind::InteriorIndex),
            5 => Some(PageKind::InteriorTable),
            10 => Some(PageKind::LeafIndex),
            13 => Some(PageKind::LeafTable),
            _ => None,
        }
    }

    /// The page kind in dbstat's and sqlite3_analyzer's words.
    pub fn name(self) -> &'static str {
        match self {
            PageKind::InteriorIndex => "interior index",
            PageKind::InteriorTable => "interior table",
            PageKind::LeafIndex => "index leaf",
            PageKind::LeafTable => "table leaf",
        }
    }

    pub fn is_leaf(self) -> bool {
        matches!(self, PageKind::LeafIndex | PageKind::LeafTable)
    }

    /// Table b-trees are keyed by rowid; index b-trees (indexes and WITHOUT ROWID tables) by a record.
    pub fn is_table(self) -> bool {
        matches!(self, PageKind::InteriorTable | PageKind::LeafTable)
    }

    fn header_bytes(self) -> usize {
        if self.is_leaf() {
            8
        } else {
            12
        }
    }
}

/// Reads an SQLite varint at the start of `bytes`: (value, length), or `None` when it runs off the end.
#[inline]
pub fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    // Most varints in a page (payload sizes, small rowids) are one byte.
    match bytes.first() {
        Some(&byte) if byte < 0x80 => return Some((u64::from(byte), 1)),
        None => return None,
        _ => {}
    }
    let mut value: u64 = 0;
    for i in 0..9 {
        let byte = *bytes.get(i)?;
        if i == 8 {
            return Some(((value << 8) | u64::from(byte), 9));
        }
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

use super::be_u32 as word;

#[inline]
fn short(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]))
}

/// One cell of a b-tree page.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell<'a> {
    /// Interior pages: the child page left of this cell's key.
    pub left_child: Option<u32>,
    /// Table b-trees: the rowid key.
    pub rowid: Option<i64>,
    /// Size of the whole payload (the record), on this page and on overflow pages.
    pub payload_size: u64,
    /// The part of the payload stored on this page.
    pub local: &'a [u8],
    /// First overflow page of the rest of the payload.
    pub overflow: Option<u32>,
}

/// A b-tree page whose header has been checked.
#[derive(Debug, Clone)]
pub struct BtreePage<'a> {
    pub number: u32,
    pub kind: PageKind,
    bytes: &'a [u8],
    header_at: usize,
    usable: usize,
}

impl<'a> BtreePage<'a> {
    /// Parses the page header (at byte 100 on page 1). `usable`: page size minus reserved bytes.
    pub fn parse(number: u32, bytes: &'a [u8], usable: u32) -> Result<BtreePage<'a>, String> {
        let usable = (usable as usize).min(bytes.len());
        let header_at = if number == 1 { 100 } else { 0 };
        let kind = bytes.get(header_at).and_then(|&b| PageKind::from_byte(b)).ok_or_else(|| {
            format!("page {number} is not a b-tree page (type byte {})", bytes.get(header_at).copied().unwrap_or(0))
        })?;
        let page = BtreePage { number, kind, bytes, header_at, usable };
        if header_at + kind.header_bytes() > usable {
            return Err(format!("page {number}: the page header runs past the page"));
        }
        let pointers_end = page.pointers_at() + 2 * page.cell_count();
        if pointers_end > usable {
            return Err(format!("page {number}: {} cells cannot fit on the page", page.cell_count()));
        }
        let content = page.content_start();
        if content < pointers_end || content > usable {
            return Err(format!("page {number}: the cell content area starts at {content}, outside the page"));
        }
        if !kind.is_leaf() && page.right_child() == 0 {
            return Err(format!("page {number}: an interior page without a right child"));
        }
        Ok(page)
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn cell_count(&self) -> usize {
        short(self.bytes, self.header_at + 3)
    }

    fn pointers_at(&self) -> usize {
        self.header_at + self.kind.header_bytes()
    }

    fn content_start(&self) -> usize {
        match short(self.bytes, self.header_at + 5) {
            0 => 65536,
            start => start,
        }
    }

    /// Interior pages: the child right of every key.
    pub fn right_child(&self) -> u32 {
        if self.kind.is_leaf() {
            0
        } else {
            word(self.bytes, self.header_at + 8)
        }
    }

    /// The byte offset of cell `i`, checked to lie in the cell content area.
    #[inline]
    pub fn cell_offset(&self, i: usize) -> Result<usize, String> {
        let offset = short(self.bytes, self.pointers_at() + 2 * i);
        if offset < self.content_start() || offset >= self.usable {
            return Err(format!("page {}: cell {i} points to offset {offset}, outside the content area", self.number));
        }
        Ok(offset)
    }

    /// Cell `i`, with its lengths checked against the page.
    #[inline]
    pub fn cell(&self, i: usize) -> Result<Cell<'a>, String> {
        let at = self.cell_offset(i)?;
        let area = &self.bytes[at..self.usable];
        let broken = |what: &str| format!("page {}: cell {i}: {what}", self.number);
        let mut pos = 0;
        let left_child = if self.kind.is_leaf() {
            None
        } else {
            if area.len() < 4 {
                return Err(broken("the child page number runs past the page"));
            }
            pos = 4;
            Some(word(area, 0))
        };
        if self.kind == PageKind::InteriorTable {
            let (key, _) = varint(&area[pos..]).ok_or_else(|| broken("the rowid runs past the page"))?;
            return Ok(Cell { left_child, rowid: Some(key as i64), payload_size: 0, local: &[], overflow: None });
        }
        let (payload_size, len) = varint(&area[pos..]).ok_or_else(|| broken("the payload size runs past the page"))?;
        pos += len;
        let rowid = if self.kind == PageKind::LeafTable {
            let (key, len) = varint(&area[pos..]).ok_or_else(|| broken("the rowid runs past the page"))?;
            pos += len;
            Some(key as i64)
        } else {
            None
        };
        let local_size = local_payload(self.kind, payload_size, self.usable as u32);
        let overflow_bytes = if (local_size as u64) < payload_size { 4 } else { 0 };
        if pos + local_size + overflow_bytes > area.len() {
            return Err(broken(&format!("a payload of {payload_size} bytes runs past the page")));
        }
        let local = &area[pos..pos + local_size];
        let overflow = (overflow_bytes > 0).then(|| word(area, pos + local_size));
        Ok(Cell { left_child, rowid, payload_size, local, overflow })
    }

    /// Bytes of the page no cell uses: the gap between the pointer array and the content area, the freeblocks,
    /// and the fragmented bytes (dbstat's `unused`, except for an empty 65536-byte page: see
    /// [`Self::unused_as_dbstat`]). An error when the freeblock chain is damaged.
    pub fn unused_bytes(&self) -> Result<usize, String> {
        let gap = self.content_start().min(self.usable) - (self.pointers_at() + 2 * self.cell_count());
        let mut free = gap + usize::from(self.bytes[self.header_at + 7]);
        let mut block = short(self.bytes, self.header_at + 1);
        let mut hops = 0;
        while block != 0 {
            if block + 4 > self.usable || hops > self.usable / 4 {
                return Err(format!("page {}: the freeblock chain is damaged", self.number));
            }
            free += short(self.bytes, block + 2);
            block = short(self.bytes, block);
            hops += 1;
        }
        Ok(free)
    }

    /// dbstat's `unused` figure: [`Self::unused_bytes`], except that dbstat takes the content-area start as
    /// stored, and an empty 65536-byte page stores 0 there (meaning 65536): dbstat counts it −8, not 65528.
    pub fn unused_as_dbstat(&self) -> Result<i64, String> {
        let stored_zero = short(self.bytes, self.header_at + 5) == 0;
        let correction = if stored_zero { self.content_start().min(self.usable) } else { 0 };
        Ok(self.unused_bytes()? as i64 - correction as i64)
    }

    /// The usable bytes of the page counted by dbstat as its size (`pgsize` is the page size).
    pub fn usable(&self) -> usize {
        self.usable
    }
}

/// How many payload bytes a cell keeps on its own page (the rest goes to overflow pages).
#[inline]
pub fn local_payload(kind: PageKind, payload_size: u64, usable: u32) -> usize {
    let usable = u64::from(usable);
    let max_local = if kind == PageKind::LeafTable { usable - 35 } else { (usable - 12) * 64 / 255 - 23 };
    if payload_size <= max_local {
        return payload_size as usize;
    }
    let min_local = (usable - 12) * 32 / 255 - 23;
    let k = min_local + (payload_size - min_local) % (usable - 4);
    (if k <= max_local { k } else { min_local }) as usize
}

/// How many overflow pages a payload needs beyond its local part.
pub fn overflow_pages(payload_size: u64, local: usize, usable: u32) -> u64 {
    let rest = payload_size.saturating_sub(local as u64);
    rest.div_ceil(u64::from(usable) - 4)
}

/// Follows a cell's overflow chain and returns the whole payload. `page(n)` reads page `n`; every page number
/// is checked against `page_count`, every page used once, and the chain must end exactly where the payload
/// does. Returns the pages visited too.
pub fn read_payload(
    cell: &Cell<'_>,
    usable: u32,
    page_count: u32,
    page: &mut dyn FnMut(u32) -> Option<Vec<u8>>,
) -> Result<(Vec<u8>, Vec<u32>), String> {
    let mut payload = Vec::with_capacity(cell.payload_size.min(1 << 30) as usize);
    payload.extend_from_slice(cell.local);
    let mut pages = Vec::new();
    let mut next = cell.overflow;
    let per_page = usable as usize - 4;
    while (payload.len() as u64) < cell.payload_size {
        let number = next.filter(|&n| n >= 2 && n <= page_count).ok_or_else(|| {
            format!("the overflow chain breaks after {} pages (next page {})", pages.len(), next.unwrap_or(0))
        })?;
        if pages.contains(&number) || pages.len() as u64 > u64::from(page_count) {
            return Err(format!("the overflow chain loops at page {number}"));
        }
        let bytes = page(number).ok_or_else(|| format!("overflow page {number} cannot be read"))?;
        let take = per_page.min((cell.payload_size - payload.len() as u64) as usize);
        payload.extend_from_slice(&bytes[4..4 + take]);
        pages.push(number);
        next = Some(word(&bytes, 0));
    }
    if next.unwrap_or(0) != 0 && !pages.is_empty() {
        return Err(format!("the overflow chain goes on past the payload's end (page {})", pages[pages.len() - 1]));
    }
    Ok((payload, pages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_of_every_length() {
        assert_eq!(varint(&[0x7f]), Some((127, 1)));
        assert_eq!(varint(&[0x81, 0x00]), Some((128, 2)));
        assert_eq!(varint(&[0xff; 9]), Some((u64::MAX, 9)));
        assert_eq!(varint(&[0x81]), None);
    }

    #[test]
    fn local_payload_follows_the_file_format() {
        // 4096-byte pages: a table leaf keeps up to 4061 bytes; an index leaf up to 1002.
        assert_eq!(local_payload(PageKind::LeafTable, 4061, 4096), 4061);
        assert_eq!(local_payload(PageKind::LeafTable, 4062, 4096), 489);
        assert_eq!(local_payload(PageKind::LeafIndex, 1002, 4096), 1002);
        assert_eq!(local_payload(PageKind::LeafIndex, 100_000, 4096), 489);
        assert_eq!(local_payload(PageKind::LeafIndex, 489 + 4092 + 100, 4096), 589);
    }

    fn leaf(cells: &[&[u8]]) -> Vec<u8> {
        let mut page = vec![0u8; 512];
        page[0] = 13;
        page[3..5].copy_from_slice(&(cells.len() as u16).to_be_bytes());
        let mut end = 512;
        for (i, cell) in cells.iter().enumerate() {
            end -= cell.len();
            page[end..end + cell.len()].copy_from_slice(cell);
            page[8 + 2 * i..10 + 2 * i].copy_from_slice(&(end as u16).to_be_bytes());
        }
        page[5..7].copy_from_slice(&(end as u16).to_be_bytes());
        page
    }

    #[test]
    fn parses_cells_and_rejects_those_that_leave_the_page() {
        let bytes = leaf(&[&[3, 7, 2, 1, 9]]);
        let page = BtreePage::parse(2, &bytes, 512).unwrap();
        let cell = page.cell(0).unwrap();
        assert_eq!((cell.rowid, cell.payload_size, cell.local), (Some(7), 3, &[2u8, 1, 9][..]));
        assert_eq!(page.unused_bytes().unwrap(), 512 - 10 - 5);
        let mut broken = bytes.clone();
        broken[507] = 100; // payload size 100 on a 5-byte cell at the page's end
        assert!(BtreePage::parse(2, &broken, 512).unwrap().cell(0).unwrap_err().contains("runs past the page"));
        let mut broken = bytes;
        broken[3] = 0xff; // 65280 cells
        assert!(BtreePage::parse(2, &broken, 512).unwrap_err().contains("cannot fit"));
        assert!(BtreePage::parse(2, &[0u8; 512], 512).unwrap_err().contains("not a b-tree page"));
    }

    #[test]
    fn overflow_chains_must_end_where_the_payload_does() {
        let cell = Cell { left_child: None, rowid: Some(1), payload_size: 10, local: &[1, 2], overflow: Some(3) };
        let mut pages = |n: u32| -> Option<Vec<u8>> {
            let mut p = vec![n as u8; 8];
            p[..4].copy_from_slice(&(if n == 3 { 4u32 } else { 0 }).to_be_bytes());
            Some(p)
        };
        let (payload, used) = read_payload(&cell, 8, 10, &mut pages).unwrap();
        assert_eq!((payload.len(), used), (10, vec![3, 4]));
        let short = Cell { payload_size: 6, ..cell.clone() };
        assert!(read_payload(&short, 8, 10, &mut pages).unwrap_err().contains("goes on past"));
        let out_of_range = Cell { overflow: Some(11), ..cell };
        assert!(read_payload(&out_of_range, 8, 10, &mut pages).unwrap_err().contains("breaks"));
    }
}
