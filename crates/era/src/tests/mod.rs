//! Tests of the whole crate: round trips of generated chains, every kind of damage, fuzzing.

mod chain;
mod damage;
mod fuzz;
mod roundtrip;

use crate::{
    e2s::{self, EntryType},
    snappy, Era1Archive, Era1Block, Era1Reader, Era1Writer,
};

pub(crate) use chain::generate_chain;

/// Writes `blocks` into an archive.
fn build(blocks: &[Era1Block]) -> Era1Archive {
    let mut writer = Era1Writer::new();
    for block in blocks {
        writer.push_era1_block(block).unwrap();
    }
    writer.finish().unwrap()
}

/// An owned e2store entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawEntry {
    offset: usize,
    ty: EntryType,
    data: Vec<u8>,
}

/// Splits a well-formed e2store buffer into its entries.
fn split(bytes: &[u8]) -> Vec<RawEntry> {
    e2s::entries(bytes)
        .map(|e| {
            let e = e.unwrap();
            RawEntry { offset: e.offset, ty: e.ty, data: e.data.to_vec() }
        })
        .collect()
}

/// Serializes entries; with `fix_index`, rewrites the offsets and count of the final block index
/// to match the `CompressedHeader` entries (keeping its starting number).
fn join(entries: &[RawEntry], fix_index: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut headers = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if entry.ty == EntryType::COMPRESSED_HEADER {
            headers.push(out.len());
        }
        if fix_index && i + 1 == entries.len() && entry.ty == EntryType::BLOCK_INDEX {
            let base = out.len() as i64;
            let mut index = entry.data[..8].to_vec();
            for &h in &headers {
                index.extend_from_slice(&(h as i64 - base).to_le_bytes());
            }
            index.extend_from_slice(&(headers.len() as u64).to_le_bytes());
            e2s::write_entry(&mut out, entry.ty, &index).unwrap();
        } else {
            e2s::write_entry(&mut out, entry.ty, &entry.data).unwrap();
        }
    }
    out
}

/// Position in `entries` of the `kind` entry (0 header, 1 body, 2 receipts, 3 TD) of block
/// `position` (counted from the first block of the file).
const fn tuple_entry(position: usize, kind: usize) -> usize {
    1 + 4 * position + kind
}

/// Replaces the RLP inside a compressed entry.
fn recompress(entry: &mut RawEntry, rlp: &[u8]) {
    entry.data = snappy::compress(rlp).unwrap();
}

/// Reads everything an archive offers, ignoring the results: must never panic.
fn exercise(bytes: Vec<u8>) {
    if let Ok(reader) = Era1Reader::from_bytes(bytes) {
        for block in &reader {
            let _ = block;
        }
        let _ = reader.block(reader.starting_number());
        let _ = reader.block(reader.last_number());
        let _ = reader.verify();
        let _ = reader.file_name("fuzz").to_string();
    }
}
