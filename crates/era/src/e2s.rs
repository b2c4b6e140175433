//! The e2store container that era1 archives are made of.
//!
//! An e2store file is a flat sequence of type-length-value entries. Every entry starts with an
//! 8-byte header: the type (`u16`, little-endian), the data length (`u32`, little-endian) and two
//! reserved bytes that must be zero; `length` bytes of data follow. See the e2store description
//! in nimbus-eth2 (`docs/e2store.md`) and the era1 format in `eth-clients/e2store-format-specs`.
//!
//! The functions here never panic: a damaged buffer yields an [`Era1Error`].

use crate::Era1Error;
use core::fmt;

/// Size in bytes of an e2store entry header (type, length, reserved).
pub const HEADER_SIZE: usize = 8;

/// Type tag of an e2store entry, as the `u16` stored little-endian in the entry header.
///
/// The era1 specification writes these tags as their byte sequence (`Version` is
/// `[0x65, 0x32]`); the constants here hold the little-endian value of those bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryType(pub u16);

impl EntryType {
    /// `Version` (`"e2"`, bytes `[0x65, 0x32]`): first entry of every e2store file, no data.
    pub const VERSION: Self = Self(0x3265);
    /// `CompressedHeader` (bytes `[0x03, 0x00]`): `snappyFramed(rlp(header))`.
    pub const COMPRESSED_HEADER: Self = Self(0x0003);
    /// `CompressedBody` (bytes `[0x04, 0x00]`): `snappyFramed(rlp([transactions, ommers]))`.
    pub const COMPRESSED_BODY: Self = Self(0x0004);
    /// `CompressedReceipts` (bytes `[0x05, 0x00]`): `snappyFramed(rlp(receipts))`.
    pub const COMPRESSED_RECEIPTS: Self = Self(0x0005);
    /// `TotalDifficulty` (bytes `[0x06, 0x00]`): 32-byte little-endian `uint256`.
    pub const TOTAL_DIFFICULTY: Self = Self(0x0006);
    /// `Accumulator` (bytes `[0x07, 0x00]`): 32-byte SSZ root of the header records.
    pub const ACCUMULATOR: Self = Self(0x0007);
    /// `BlockIndex` (bytes `[0x66, 0x32]`): starting number, one offset per block, count.
    pub const BLOCK_INDEX: Self = Self(0x3266);

    /// The era1 name of this type, or `None` for a type era1 does not define.
    pub const fn name(self) -> Option<&'static str> {
        match self {
            Self::VERSION => Some("Version"),
            Self::COMPRESSED_HEADER => Some("CompressedHeader"),
            Self::COMPRESSED_BODY => Some("CompressedBody"),
            Self::COMPRESSED_RECEIPTS => Some("CompressedReceipts"),
            Self::TOTAL_DIFFICULTY => Some("TotalDifficulty"),
            Self::ACCUMULATOR => Some("Accumulator"),
            Self::BLOCK_INDEX => Some("BlockIndex"),
            _ => None,
        }
    }

    /// Whether era1 defines this type.
    pub const fn is_era1(self) -> bool {
        self.name().is_some()
    }
}

impl fmt::Display for EntryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({:#06x})", self.0),
            None => write!(f, "unknown type {:#06x}", self.0),
        }
    }
}

impl fmt::Debug for EntryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The 8-byte header in front of every e2store entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHeader {
    /// Entry type.
    pub ty: EntryType,
    /// Length of the data that follows the header.
    pub length: u32,
    /// Reserved bytes; a valid entry has zero here.
    pub reserved: u16,
}

impl EntryHeader {
    /// Decodes a header from its 8 bytes (no validation of `reserved`).
    pub const fn from_bytes(bytes: [u8; HEADER_SIZE]) -> Self {
        Self {
            ty: EntryType(u16::from_le_bytes([bytes[0], bytes[1]])),
            length: u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]),
            reserved: u16::from_le_bytes([bytes[6], bytes[7]]),
        }
    }

    /// Encodes the header into its 8 bytes.
    pub const fn to_bytes(self) -> [u8; HEADER_SIZE] {
        let ty = self.ty.0.to_le_bytes();
        let len = self.length.to_le_bytes();
        let res = self.reserved.to_le_bytes();
        [ty[0], ty[1], len[0], len[1], len[2], len[3], res[0], res[1]]
    }
}

/// One entry of an e2store buffer, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Offset of the entry header in the buffer.
    pub offset: usize,
    /// Entry type.
    pub ty: EntryType,
    /// The entry's data (without the header).
    pub data: &'a [u8],
}

impl Entry<'_> {
    /// Offset just past this entry, where the next entry starts.
    pub const fn end(&self) -> usize {
        // Cannot overflow: `data` lies inside a buffer that starts at or before `offset`.
        self.offset + HEADER_SIZE + self.data.len()
    }
}

/// Reads the entry whose header starts at `offset` in `buf`.
///
/// Fails with [`Era1Error::Truncated`] when the header or the data runs past the end of `buf`,
/// and with [`Era1Error::ReservedNotZero`] when the reserved header bytes are not zero.
pub fn read_entry(buf: &[u8], offset: usize) -> Result<Entry<'_>, Era1Error> {
    let available = buf.len().saturating_sub(offset);
    let Some(header) = buf.get(offset..).and_then(|rest| rest.first_chunk::<HEADER_SIZE>()) else {
        return Err(Era1Error::Truncated { offset, needed: HEADER_SIZE as u64, available });
    };
    let header = EntryHeader::from_bytes(*header);
    if header.reserved != 0 {
        return Err(Era1Error::ReservedNotZero { offset, reserved: header.reserved });
    }
    let needed = HEADER_SIZE as u64 + u64::from(header.length);
    let start = offset + HEADER_SIZE;
    let data = usize::try_from(header.length)
        .ok()
        .and_then(|len| start.checked_add(len))
        .and_then(|end| buf.get(start..end))
        .ok_or(Era1Error::Truncated { offset, needed, available })?;
    Ok(Entry { offset, ty: header.ty, data })
}

/// Iterates over the entries of an e2store buffer, front to back.
///
/// Yields an error for the first damaged entry and then stops.
pub const fn entries(buf: &[u8]) -> Entries<'_> {
    Entries { buf, offset: 0, done: false }
}

/// Iterator over the entries of an e2store buffer; see [`entries`].
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    buf: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, Era1Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.offset >= self.buf.len() {
            return None;
        }
        let entry = read_entry(self.buf, self.offset);
        match &entry {
            Ok(entry) => self.offset = entry.end(),
            Err(_) => self.done = true,
        }
        Some(entry)
    }
}

/// Appends one entry (header and data) to `out`.
///
/// Fails with [`Era1Error::EntryTooLarge`] when `data` does not fit the 32-bit length field.
pub fn write_entry(out: &mut Vec<u8>, ty: EntryType, data: &[u8]) -> Result<(), Era1Error> {
    let length = u32::try_from(data.len())
        .map_err(|_| Era1Error::EntryTooLarge { ty, length: data.len() })?;
    out.extend_from_slice(&EntryHeader { ty, length, reserved: 0 }.to_bytes());
    out.extend_from_slice(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_the_spec_example() {
        // nimbus-eth2 docs/e2store.md: type [0x22, 0x32], length 4, data 01 02 03 04.
        let mut out = Vec::new();
        write_entry(&mut out, EntryType(0x3222), &[1, 2, 3, 4]).unwrap();
        assert_eq!(out, [0x22, 0x32, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 1, 2, 3, 4]);
        let entry = read_entry(&out, 0).unwrap();
        assert_eq!(entry.ty, EntryType(0x3222));
        assert_eq!(entry.data, &[1, 2, 3, 4]);
        assert_eq!(entry.end(), out.len());
    }

    #[test]
    fn era1_type_tags_have_the_spec_bytes() {
        assert_eq!(EntryType::VERSION.0.to_le_bytes(), [0x65, 0x32]);
        assert_eq!(EntryType::COMPRESSED_HEADER.0.to_le_bytes(), [0x03, 0x00]);
        assert_eq!(EntryType::COMPRESSED_BODY.0.to_le_bytes(), [0x04, 0x00]);
        assert_eq!(EntryType::COMPRESSED_RECEIPTS.0.to_le_bytes(), [0x05, 0x00]);
        assert_eq!(EntryType::TOTAL_DIFFICULTY.0.to_le_bytes(), [0x06, 0x00]);
        assert_eq!(EntryType::ACCUMULATOR.0.to_le_bytes(), [0x07, 0x00]);
        assert_eq!(EntryType::BLOCK_INDEX.0.to_le_bytes(), [0x66, 0x32]);
        assert_eq!(EntryType::BLOCK_INDEX.to_string(), "BlockIndex (0x3266)");
        assert_eq!(EntryType(0x1234).to_string(), "unknown type 0x1234");
    }

    #[test]
    fn damaged_headers_are_reported() {
        let mut out = Vec::new();
        write_entry(&mut out, EntryType::ACCUMULATOR, &[7; 32]).unwrap();
        for len in 0..out.len() {
            let err = read_entry(&out[..len], 0).unwrap_err();
            assert!(matches!(err, Era1Error::Truncated { offset: 0, .. }), "{len}: {err}");
        }
        let mut bad = out.clone();
        bad[7] = 1;
        assert!(matches!(
            read_entry(&bad, 0),
            Err(Era1Error::ReservedNotZero { offset: 0, reserved: 0x0100 })
        ));
        // An offset past the end, and a length that overflows the address space on 32-bit.
        assert!(matches!(read_entry(&out, 1000), Err(Era1Error::Truncated { available: 0, .. })));
        let huge = EntryHeader { ty: EntryType(1), length: u32::MAX, reserved: 0 }.to_bytes();
        assert!(matches!(read_entry(&huge, 0), Err(Era1Error::Truncated { .. })));
        let all: Vec<_> = entries(&bad).collect();
        assert_eq!(all.len(), 1);
        assert!(all[0].is_err());
    }
}
