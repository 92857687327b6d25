//! Entries read out of b-tree cells: a cell becomes a row only when its record decodes exactly and its
//! overflow chain can be followed to the end; otherwise it is kept as a damaged row with the values that
//! could be read, or rejected.

use std::borrow::Cow;

use crate::format::btree::{read_payload, BtreePage, Cell, PageKind};
use crate::format::header::TextEncoding;
use crate::format::pages::FilePages;
use crate::format::record::{decode, decode_prefix, text_utf8, validate, Field};
use crate::sqlite::Value;

/// A row (or index entry) as stored: its rowid for table b-trees and its record's values.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub rowid: Option<i64>,
    pub values: Vec<Value>,
    pub page: u32,
    pub cell: usize,
}

/// What one cell gave.
#[derive(Debug)]
pub enum Read {
    Whole(Entry, Vec<u32>),
    /// The record starts well but its overflow chain breaks: the values it holds on this page, NULL after.
    Damaged(Entry, String),
    Rejected(String),
}

/// Reads cell `index` of `page`; `bounds_ok` says whether a table key lies where the tree put the page.
pub fn read_cell(pages: &FilePages, page: &BtreePage<'_>, index: usize, bounds_ok: &dyn Fn(i64) -> bool) -> Read {
    let cell = match placed_cell(pages, page, index, bounds_ok) {
        Ok(_) if page.kind == PageKind::InteriorTable => {
            return Read::Rejected(format!("page {}: interior table cells hold no rows", page.number))
        }
        Ok(cell) => cell,
        Err(why) => return Read::Rejected(why),
    };
    let entry = |values| Entry { rowid: cell.rowid, values, page: page.number, cell: index };
    let encoding = pages.header.encoding;
    let broken = |why: String| format!("page {}: cell {index}: {why}", page.number);
    let (payload, chain) = match whole_payload(pages, &cell) {
        Ok(read) => read,
        Err(why) => {
            return match decode_prefix(cell.local, cell.payload_size) {
                Some(fields) => {
                    let values = fields
                        .iter()
                        .map(|f| f.as_ref().and_then(|f| value(f, encoding).ok()).unwrap_or(Value::Null))
                        .collect();
                    Read::Damaged(entry(values), why)
                }
                None => Read::Rejected(broken(why)),
            }
        }
    };
    match decode(&payload).and_then(|fields| values(&fields, encoding)) {
        Ok(values) => Read::Whole(entry(values), chain),
        Err(why) => Read::Rejected(broken(why)),
    }
}

/// Checks cell `index` as `read_cell` would read it, without building its values: the overflow chain it uses
/// and its record's serial types, when it is sound.
pub fn check_cell(
    pages: &FilePages,
    page: &BtreePage<'_>,
    index: usize,
    bounds_ok: &dyn Fn(i64) -> bool,
) -> Result<(Vec<u32>, Vec<u64>), String> {
    let cell = placed_cell(pages, page, index, bounds_ok)?;
    if page.kind == PageKind::InteriorTable {
        return Ok((Vec::new(), Vec::new()));
    }
    let broken = |why: String| format!("page {}: cell {index}: {why}", page.number);
    let (payload, chain) = whole_payload(pages, &cell).map_err(broken)?;
    let checked = validate(&payload).and_then(|types| {
        // UTF-16 text must decode too (UTF-8 text is kept byte for byte, whatever it holds).
        if pages.header.encoding != TextEncoding::Utf8 {
            decode(&payload).and_then(|f| values(&f, pages.header.encoding))?;
        }
        Ok(types)
    });
    Ok((chain, checked.map_err(broken)?))
}

/// Cell `index`, when its bytes lie inside the file and its rowid inside the range the tree gave its page.
fn placed_cell<'a>(
    pages: &FilePages,
    page: &BtreePage<'a>,
    index: usize,
    bounds_ok: &dyn Fn(i64) -> bool,
) -> Result<Cell<'a>, String> {
    let cell = within_file(pages, page, index, page.cell(index)?)?;
    match cell.rowid.filter(|&r| !bounds_ok(r)) {
        Some(rowid) => Err(format!("page {}: cell {index}: rowid {rowid} lies outside its page's range", page.number)),
        None => Ok(cell),
    }
}

/// A cell's whole payload (its own bytes, or followed through its overflow chain) and the chain's pages.
fn whole_payload<'a>(pages: &FilePages, cell: &Cell<'a>) -> Result<(Cow<'a, [u8]>, Vec<u32>), String> {
    if cell.overflow.is_none() {
        return Ok((Cow::Borrowed(cell.local), Vec::new()));
    }
    let (payload, chain) = read_payload(cell, pages.usable_size(), pages.page_count, &mut |n| pages.whole_page(n))?;
    Ok((Cow::Owned(payload), chain))
}

/// The storage class of a value as `class_bit` gives it.
pub fn value_class(value: &Value) -> u8 {
    match value {
        Value::Null => 1,
        Value::Integer(_) => 2,
        Value::Real(_) => 4,
        Value::Text(_) | Value::RawText(_) => 8,
        Value::Blob(_) => 16,
    }
}

/// A cell whose bytes lie before the end of the file (a last page cut short holds only some of its cells).
fn within_file<'a>(pages: &FilePages, page: &BtreePage<'a>, index: usize, cell: Cell<'a>) -> Result<Cell<'a>, String> {
    let end = if cell.local.is_empty() {
        page.cell_offset(index)? + 1
    } else {
        let start = cell.local.as_ptr() as usize - page.bytes().as_ptr() as usize;
        start + cell.local.len() + if cell.overflow.is_some() { 4 } else { 0 }
    };
    if end > pages.valid_bytes(page.number) {
        return Err(format!("page {}: cell {index} lies past the end of the file", page.number));
    }
    Ok(cell)
}

fn values(fields: &[Field<'_>], encoding: TextEncoding) -> Result<Vec<Value>, String> {
    fields.iter().map(|f| value(f, encoding)).collect()
}

fn value(field: &Field<'_>, encoding: TextEncoding) -> Result<Value, String> {
    Ok(match *field {
        Field::Null => Value::Null,
        Field::Integer(i) => Value::Integer(i),
        Field::Real(r) if r.is_nan() => return Err("a NaN real, which SQLite never stores".into()),
        Field::Real(r) => Value::Real(r),
        Field::Blob(bytes) => Value::Blob(bytes.to_vec()),
        Field::Text(bytes) => {
            let utf8 = text_utf8(bytes, encoding).ok_or("text that is not valid UTF-16")?;
            match std::str::from_utf8(&utf8) {
                Ok(text) => Value::Text(text.to_string()),
                Err(_) => Value::RawText(utf8.into_owned()),
            }
        }
    })
}
