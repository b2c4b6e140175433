//! Random input never makes the reader panic.

use super::{build, exercise, generate_chain, join, recompress, split, tuple_entry, RawEntry};
use crate::{e2s::EntryType, snappy, Era1Archive};
use proptest::{collection::vec, prelude::*, sample::Index};
use std::sync::OnceLock;

fn base() -> &'static Era1Archive {
    static BASE: OnceLock<Era1Archive> = OnceLock::new();
    BASE.get_or_init(|| build(&generate_chain(77, 3, 21).blocks))
}

/// Types an era1 reader meets, plus a foreign one.
fn entry_type() -> impl Strategy<Value = EntryType> {
    prop_oneof![
        Just(EntryType::VERSION),
        Just(EntryType::COMPRESSED_HEADER),
        Just(EntryType::COMPRESSED_BODY),
        Just(EntryType::COMPRESSED_RECEIPTS),
        Just(EntryType::TOTAL_DIFFICULTY),
        Just(EntryType::ACCUMULATOR),
        Just(EntryType::BLOCK_INDEX),
        any::<u16>().prop_map(EntryType),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(data in vec(any::<u8>(), 0..4096)) {
        exercise(data);
    }

    /// Random bytes behind a valid Version header, so that parsing gets past the first entry.
    #[test]
    fn random_bytes_after_a_version_entry(data in vec(any::<u8>(), 0..4096)) {
        let mut bytes = vec![0x65, 0x32, 0, 0, 0, 0, 0, 0];
        bytes.extend(data);
        exercise(bytes);
    }

    /// Overwritten bytes, then maybe a cut or an insertion, in a valid archive.
    #[test]
    fn mutated_archive(
        writes in vec((any::<Index>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<Index>()),
        insert in proptest::option::of((any::<Index>(), vec(any::<u8>(), 1..16))),
    ) {
        let mut bytes = base().bytes.clone();
        for (at, value) in writes {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        if let Some((at, data)) = insert {
            let at = at.index(bytes.len());
            bytes.splice(at..at, data);
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        exercise(bytes);
    }

    /// Well-framed entries of era1 types with random data, random snappy-compressed data or
    /// random words, and a consistent block index: this reaches the snappy and RLP decoders.
    #[test]
    fn random_entries_with_a_valid_index(
        entries in vec((entry_type(), vec(any::<u8>(), 0..300), 0u8..3), 0..24),
        start in any::<u64>(),
    ) {
        let mut raw = vec![RawEntry { offset: 0, ty: EntryType::VERSION, data: vec![] }];
        for (ty, data, mode) in entries {
            let data = match mode {
                0 => data,
                1 => snappy::compress(&data).unwrap(),
                _ => data.into_iter().take(32).collect(),
            };
            raw.push(RawEntry { offset: 0, ty, data });
        }
        raw.push(RawEntry { offset: 0, ty: EntryType::ACCUMULATOR, data: vec![0; 32] });
        let mut index = start.to_le_bytes().to_vec();
        index.extend_from_slice(&0u64.to_le_bytes());
        raw.push(RawEntry { offset: 0, ty: EntryType::BLOCK_INDEX, data: index });
        exercise(join(&raw, true));
    }

    /// Valid snappy around mutated RLP of real blocks: the decoders see almost-valid input.
    #[test]
    fn mutated_rlp_of_real_blocks(
        position in 0usize..3,
        kind in 0usize..3,
        writes in vec((any::<Index>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<Index>()),
    ) {
        let mut entries = split(&base().bytes);
        let entry = &mut entries[tuple_entry(position, kind)];
        let mut rlp = snappy::decompress(&entry.data).unwrap();
        for (at, value) in writes {
            let at = at.index(rlp.len());
            rlp[at] = value;
        }
        if let Some(cut) = cut {
            rlp.truncate(cut.index(rlp.len() + 1));
        }
        recompress(entry, &rlp);
        exercise(join(&entries, true));
    }
}
