//! Records (https://sqlite.org/fileformat2.html#record_format): a header of serial types, then the values.
//! Decoding checks that the header and the values add up to exactly the payload, which is what keeps a
//! damaged cell from turning into an invented row.

use super::btree::varint;
use super::header::TextEncoding;

/// One value of a record, borrowing text and blob bytes from the payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    Null,
    Integer(i64),
    Real(f64),
    /// Text in the database's encoding, as stored.
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

/// Bytes a value of serial type `t` takes; `None` for the reserved types 10 and 11.
pub fn serial_size(t: u64) -> Option<u64> {
    Some(match t {
        0 | 8 | 9 => 0,
        1..=4 => t,
        5 => 6,
        6 | 7 => 8,
        10 | 11 => return None,
        _ => (t - 12) / 2,
    })
}

/// The serial types of a record's header and where its values start.
pub fn serial_types(payload: &[u8], payload_size: u64) -> Result<(Vec<u64>, usize), String> {
    let (header_size, mut at) = varint(payload).ok_or("the record header is cut short")?;
    if header_size < at as u64 || header_size > payload_size.min(payload.len() as u64) {
        return Err(format!("the record header claims {header_size} bytes"));
    }
    let header_size = header_size as usize;
    let mut types = Vec::new();
    while at < header_size {
        let (t, len) = varint(&payload[at..header_size]).ok_or("a serial type runs past the record header")?;
        serial_size(t).ok_or_else(|| format!("reserved serial type {t}"))?;
        types.push(t);
        at += len;
    }
    Ok((types, header_size))
}

/// Checks that a record's header and values fill its payload exactly, without decoding the values.
/// Returns its serial types.
pub fn validate(payload: &[u8]) -> Result<Vec<u64>, String> {
    let (types, at) = serial_types(payload, payload.len() as u64)?;
    let body: u64 = types.iter().filter_map(|&t| serial_size(t)).sum();
    if at as u64 + body != payload.len() as u64 {
        return Err(format!("the record's values take {} bytes, its payload has {}", body, payload.len() - at));
    }
    Ok(types)
}

/// The storage class of a serial type as a bit: NULL 1, INTEGER 2, REAL 4, TEXT 8, BLOB 16.
pub fn class_bit(serial_type: u64) -> u8 {
    match serial_type {
        0 => 1,
        1..=6 | 8 | 9 => 2,
        7 => 4,
        t if t >= 12 && t % 2 == 0 => 16,
        _ => 8,
    }
}

/// Decodes a whole record, which must fill `payload` exactly.
pub fn decode(payload: &[u8]) -> Result<Vec<Field<'_>>, String> {
    let (types, mut at) = serial_types(payload, payload.len() as u64)?;
    let body: u64 = types.iter().filter_map(|&t| serial_size(t)).sum();
    if at as u64 + body != payload.len() as u64 {
        return Err(format!("the record's values take {} bytes, its payload has {}", body, payload.len() - at));
    }
    Ok(types
        .iter()
        .map(|&t| {
            let size = serial_size(t).unwrap_or(0) as usize;
            let field = value(t, &payload[at..at + size]);
            at += size;
            field
        })
        .collect())
}

/// The values of a record whose payload is only partly readable (an overflow chain broke): the ones that lie
/// wholly in `prefix`, then `None` for the rest.
pub fn decode_prefix(prefix: &[u8], payload_size: u64) -> Option<Vec<Option<Field<'_>>>> {
    let (types, mut at) = serial_types(prefix, payload_size).ok()?;
    let mut fields = Vec::with_capacity(types.len());
    for t in types {
        let size = serial_size(t).unwrap_or(0) as usize;
        fields.push(prefix.get(at..at + size).map(|bytes| value(t, bytes)));
        at += size;
    }
    Some(fields)
}

fn value(t: u64, bytes: &[u8]) -> Field<'_> {
    let int = || {
        let mut v: i64 = if bytes.first().is_some_and(|b| b & 0x80 != 0) { -1 } else { 0 };
        for &b in bytes {
            v = (v << 8) | i64::from(b);
        }
        v
    };
    match t {
        0 => Field::Null,
        1..=6 => Field::Integer(int()),
        7 => Field::Real(f64::from_bits(int() as u64)),
        8 => Field::Integer(0),
        9 => Field::Integer(1),
        t if t % 2 == 0 => Field::Blob(bytes),
        _ => Field::Text(bytes),
    }
}

/// Text as UTF-8 bytes: UTF-8 databases' text as stored (even when not valid UTF-8, as SQLite keeps it);
/// UTF-16 text converted, `None` when it is not valid UTF-16.
pub fn text_utf8(bytes: &[u8], encoding: TextEncoding) -> Option<std::borrow::Cow<'_, [u8]>> {
    let units = |big: bool| {
        bytes
            .chunks_exact(2)
            .map(move |c| if big { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_le_bytes([c[0], c[1]]) })
    };
    let utf16 = |big: bool| -> Option<std::borrow::Cow<'_, [u8]>> {
        if bytes.len() % 2 != 0 {
            return None;
        }
        let text: String = char::decode_utf16(units(big)).collect::<Result<_, _>>().ok()?;
        Some(text.into_bytes().into())
    };
    match encoding {
        TextEncoding::Utf8 => Some(bytes.into()),
        TextEncoding::Utf16le => utf16(false),
        TextEncoding::Utf16be => utf16(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_serial_type() {
        // header: size 7, types NULL, int8, int16 (-2), float, 0, 1, text "hi" (17)
        let mut record = vec![8, 0, 1, 2, 7, 8, 9, 17];
        record.extend([5, 0xff, 0xfe]);
        record.extend(1.5f64.to_bits().to_be_bytes());
        record.extend(b"hi");
        let fields = decode(&record).unwrap();
        assert_eq!(
            fields,
            vec![
                Field::Null,
                Field::Integer(5),
                Field::Integer(-2),
                Field::Real(1.5),
                Field::Integer(0),
                Field::Integer(1),
                Field::Text(b"hi")
            ]
        );
    }

    #[test]
    fn a_record_that_does_not_fill_its_payload_is_refused() {
        assert!(decode(&[2, 1, 5, 0]).unwrap_err().contains("values take 1 bytes"));
        assert!(decode(&[2, 10]).unwrap_err().contains("reserved serial type"));
        assert!(decode(&[9, 1]).unwrap_err().contains("header claims"));
    }

    #[test]
    fn a_partial_record_gives_the_values_it_holds() {
        let fields = decode_prefix(&[3, 1, 19, 7, b'a'], 8).unwrap();
        assert_eq!(fields, vec![Some(Field::Integer(7)), None]);
    }

    #[test]
    fn utf16_text_is_converted_or_refused() {
        assert_eq!(text_utf8(&[b'h', 0, b'i', 0], TextEncoding::Utf16le).unwrap().as_ref(), b"hi");
        assert!(text_utf8(&[0x00, 0xd8], TextEncoding::Utf16le).is_none());
    }
}
