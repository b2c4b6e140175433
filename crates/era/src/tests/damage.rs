//! Every kind of damage gives its own error, and nothing panics.

use super::{build, generate_chain, join, recompress, split, tuple_entry, RawEntry};
use crate::{
    e2s::{EntryType, HEADER_SIZE},
    snappy, EntryContext, Era1Archive, Era1Block, Era1Error, Era1Reader, HeaderRoot,
};
use alloy_primitives::{B256, U256};
use std::sync::OnceLock;

const START: u64 = 5000;
const BLOCKS: usize = 4;

/// A small archive with transactions in every block (a seed with non-empty blocks).
fn small() -> &'static (Vec<Era1Block>, Era1Archive) {
    static SMALL: OnceLock<(Vec<Era1Block>, Era1Archive)> = OnceLock::new();
    SMALL.get_or_init(|| {
        let blocks = (0..)
            .map(|seed| generate_chain(START, BLOCKS, seed).blocks)
            .find(|b| b.iter().all(|b| b.body.transactions.len() >= 2))
            .unwrap();
        let archive = build(&blocks);
        (blocks, archive)
    })
}

fn read(bytes: Vec<u8>) -> Result<Era1Reader, Era1Error> {
    Era1Reader::from_bytes(bytes)
}

/// The first error of reading every block, if any.
fn iterate(reader: &Era1Reader) -> Result<(), Era1Error> {
    reader.iter().try_for_each(|b| b.map(drop))
}

#[test]
fn the_small_archive_is_valid() {
    let (blocks, archive) = small();
    let reader = read(archive.bytes.clone()).unwrap();
    assert_eq!(reader.verify().unwrap(), archive.accumulator_root);
    assert_eq!(&reader.iter().collect::<Result<Vec<_>, _>>().unwrap(), blocks);
}

#[test]
fn truncation_at_every_offset() {
    let (_, archive) = small();
    let bytes = &archive.bytes;
    let boundaries: Vec<usize> = split(bytes).iter().map(|e| e.offset).collect();
    for len in 0..bytes.len() {
        let err = read(bytes[..len].to_vec()).unwrap_err();
        if len == 0 {
            assert!(matches!(err, Era1Error::EmptyFile), "{len}: {err}");
        } else if boundaries.contains(&len) {
            // Whole entries, but the block index is gone.
            let last = *boundaries.iter().filter(|&&b| b < len).max().unwrap();
            assert!(
                matches!(err, Era1Error::MissingBlockIndex { offset, .. } if offset == last),
                "{len}: {err}"
            );
        } else {
            let entry = *boundaries.iter().filter(|&&b| b < len).max().unwrap();
            assert!(
                matches!(err, Era1Error::Truncated { offset, available, .. }
                    if offset == entry && available == len - entry),
                "{len}: {err}"
            );
        }
    }
}

#[test]
fn flipped_bytes_in_compressed_entries() {
    let (_, archive) = small();
    let entries = split(&archive.bytes);
    let mut unchanged = 0;
    let mut total = 0;
    for position in 0..BLOCKS {
        let number = START + position as u64;
        for (kind, ty) in [
            (0, EntryType::COMPRESSED_HEADER),
            (1, EntryType::COMPRESSED_BODY),
            (2, EntryType::COMPRESSED_RECEIPTS),
        ] {
            let entry = &entries[tuple_entry(position, kind)];
            let data_start = entry.offset + HEADER_SIZE;
            for i in 0..entry.data.len() {
                total += 1;
                let mut bytes = archive.bytes.clone();
                bytes[data_start + i] ^= 0xff;
                // A flipped copy offset can point at identical bytes (say, in a logs bloom): the
                // content is unchanged, so there is nothing to detect.
                let original = snappy::decompress(&entry.data).unwrap();
                let flipped = &bytes[data_start..data_start + entry.data.len()];
                if snappy::decompress(flipped).as_ref() == Ok(&original) {
                    unchanged += 1;
                    continue;
                }
                // The layout is intact, so the file opens; the block does not decode.
                let reader = read(bytes).unwrap();
                for err in [iterate(&reader).unwrap_err(), reader.verify().unwrap_err()] {
                    let ok = match &err {
                        // Flips in the compressed data or its CRC fail the checksum.
                        Era1Error::Snappy { number: n, entry: e, offset, .. } => {
                            *n == number && *e == ty && *offset == entry.offset
                        }
                        // A flip that turns a chunk into a skippable one loses the data.
                        Era1Error::Rlp { number: n, entry: e, .. } => *n == number && *e == ty,
                        _ => false,
                    };
                    assert!(ok, "block {number} {ty} byte {i}: {err}");
                }
                // Past the stream identifier (10 bytes) and the chunk header (type, length,
                // CRC: 8 bytes) a flip breaks decompression or the CRC: a snappy error.
                if i >= 18 {
                    let err = iterate(&reader).unwrap_err();
                    assert!(matches!(err, Era1Error::Snappy { .. }), "byte {i}: {err}");
                }
            }
        }
    }
    assert!(unchanged * 100 < total, "{unchanged} of {total} flips changed nothing");
}

#[test]
fn non_zero_reserved_bytes() {
    let (_, archive) = small();
    for entry in split(&archive.bytes) {
        for (byte, reserved) in [(6, 0x0001), (7, 0x0100)] {
            let mut bytes = archive.bytes.clone();
            bytes[entry.offset + byte] = 1;
            let err = read(bytes).unwrap_err();
            assert!(
                matches!(err, Era1Error::ReservedNotZero { offset, reserved: r }
                    if offset == entry.offset && r == reserved),
                "{}: {err}",
                entry.offset
            );
        }
    }
}

#[test]
fn wrong_accumulator() {
    let (_, archive) = small();
    let entries = split(&archive.bytes);
    let acc = &entries[entries.len() - 2];
    let mut bytes = archive.bytes.clone();
    bytes[acc.offset + HEADER_SIZE + 5] ^= 0x10;
    let reader = read(bytes).unwrap();
    // Blocks still read; only verification notices.
    iterate(&reader).unwrap();
    let mut stored = archive.accumulator_root;
    stored[5] ^= 0x10;
    assert_eq!(reader.accumulator_root(), stored);
    let err = reader.verify().unwrap_err();
    assert!(
        matches!(err, Era1Error::AccumulatorMismatch { stored: s, computed }
            if s == stored && computed == archive.accumulator_root),
        "{err}"
    );
    assert!(err.to_string().contains(&archive.accumulator_root.to_string()));
    assert!(err.to_string().contains(&stored.to_string()));
}

#[test]
fn wrong_index_offsets() {
    let (_, archive) = small();
    let entries = split(&archive.bytes);
    let index = entries.last().unwrap();
    for position in 0..BLOCKS {
        for delta in [-8i64, 1, 8, i64::MAX / 2] {
            let mut bytes = archive.bytes.clone();
            let at = index.offset + HEADER_SIZE + 8 + 8 * position;
            let stored = i64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
            let wrong = stored.wrapping_add(delta);
            bytes[at..at + 8].copy_from_slice(&wrong.to_le_bytes());
            let reader = read(bytes).unwrap();
            iterate(&reader).unwrap();
            let err = reader.verify().unwrap_err();
            assert!(
                matches!(err, Era1Error::IndexOffsetMismatch { number, stored: s, expected, .. }
                    if number == START + position as u64 && s == wrong && expected == stored),
                "{err}"
            );
            let _ = err.to_string();
        }
    }
}

#[test]
fn wrong_index_count_and_shape() {
    let (_, archive) = small();
    let entries = split(&archive.bytes);
    let index = entries.last().unwrap();
    let count_at = archive.bytes.len() - 8;
    for count in [0u64, 3, 5, 8193, u64::MAX] {
        let mut bytes = archive.bytes.clone();
        bytes[count_at..].copy_from_slice(&count.to_le_bytes());
        let err = read(bytes).unwrap_err();
        assert!(
            matches!(err, Era1Error::IndexCountMismatch { count: c, offsets: 4 } if c == count),
            "{count}: {err}"
        );
    }

    let with_index = |data: Vec<u8>| {
        let mut e = entries.clone();
        e.last_mut().unwrap().data = data;
        join(&e, false)
    };
    // Shorter than start + count, or not whole words.
    for data in [vec![], vec![0; 8], vec![0; 15], vec![0; 17], vec![0; index.data.len() - 1]] {
        let len = data.len();
        let err = read(with_index(data)).unwrap_err();
        assert!(matches!(err, Era1Error::MalformedIndex { length, .. } if length == len), "{err}");
    }
    // A consistent index listing no blocks.
    let err = read(with_index(vec![0; 16])).unwrap_err();
    assert!(matches!(err, Era1Error::NoBlocks), "{err}");
    // More than 8192 offsets.
    let mut many = vec![0u8; 8 + 8 * 8193];
    many.extend_from_slice(&8193u64.to_le_bytes());
    let err = read(with_index(many)).unwrap_err();
    assert!(matches!(err, Era1Error::TooManyBlocks { count: 8193, max: 8192 }), "{err}");
    // Block numbers past u64::MAX.
    let mut data = index.data.clone();
    data[..8].copy_from_slice(&(u64::MAX - 2).to_le_bytes());
    let err = read(with_index(data)).unwrap_err();
    assert!(matches!(err, Era1Error::BlockNumberOverflow { count: 4, .. }), "{err}");
    // One block fewer in the file than in the index.
    let mut fewer = entries.clone();
    fewer.drain(tuple_entry(BLOCKS - 1, 0)..tuple_entry(BLOCKS, 0));
    let err = read(join(&fewer, false)).unwrap_err();
    assert!(matches!(err, Era1Error::MissingBlocks { count: 4, found: 3 }), "{err}");
}

#[test]
fn wrong_starting_number_in_the_index() {
    let (_, archive) = small();
    let entries = split(&archive.bytes);
    let at = entries.last().unwrap().offset + HEADER_SIZE;
    let mut bytes = archive.bytes.clone();
    bytes[at..at + 8].copy_from_slice(&(START + 1).to_le_bytes());
    let reader = read(bytes).unwrap();
    let expected = START + 1;
    for err in [iterate(&reader).unwrap_err(), reader.verify().unwrap_err()] {
        assert!(
            matches!(err, Era1Error::HeaderNumberMismatch { position: 0, expected: e, found: START }
                if e == expected),
            "{err}"
        );
    }
}

#[test]
fn unexpected_entry_types() {
    let (_, archive) = small();
    let entries = split(&archive.bytes);
    // Every entry retyped to something else: an unknown type, or a misplaced era1 type.
    for (i, entry) in entries.iter().enumerate() {
        for ty in [EntryType(0x1234), EntryType::COMPRESSED_RECEIPTS, EntryType::BLOCK_INDEX] {
            if ty == entry.ty {
                continue;
            }
            let mut bytes = archive.bytes.clone();
            bytes[entry.offset..entry.offset + 2].copy_from_slice(&ty.0.to_le_bytes());
            let err = read(bytes).unwrap_err();
            let ok = if i == 0 {
                matches!(err, Era1Error::UnexpectedEntry { context: EntryContext::FileStart, offset: 0, expected: EntryType::VERSION, found } if found == ty)
            } else if i == entries.len() - 1 {
                matches!(err, Era1Error::MissingBlockIndex { offset, last } if offset == entry.offset && last == ty)
            } else if i == entries.len() - 2 {
                matches!(err, Era1Error::UnexpectedEntry { context: EntryContext::BeforeIndex, expected: EntryType::ACCUMULATOR, found, .. } if found == ty)
            } else {
                let number = START + ((i - 1) / 4) as u64;
                matches!(err, Era1Error::UnexpectedEntry { context: EntryContext::Block(n), offset, expected, found }
                    if n == number && offset == entry.offset && expected == entry.ty && found == ty)
            };
            assert!(ok, "entry {i} retyped to {ty}: {err}");
        }
    }
}

#[test]
fn wrong_fixed_lengths() {
    let (_, archive) = small();
    let entries = split(&archive.bytes);
    let cases = [
        (0, vec![0u8]),                     // Version with data
        (tuple_entry(2, 3), vec![1u8; 31]), // short total difficulty
        (tuple_entry(2, 3), vec![1u8; 33]), // long total difficulty
        (entries.len() - 2, archive.accumulator_root[..].to_vec().repeat(2)), // long accumulator
    ];
    for (i, data) in cases {
        let mut e = entries.clone();
        let found = data.len();
        e[i].data = data;
        let err = read(join(&e, true)).unwrap_err();
        assert!(
            matches!(err, Era1Error::BadEntryLength { found: f, ty, .. } if f == found && ty == entries[i].ty),
            "entry {i}: {err}"
        );
    }
}

/// Re-encodes block `position` with `edit` applied to its decoded form, fixing up the index.
fn with_block(position: usize, edit: impl FnOnce(&mut Era1Block)) -> Vec<u8> {
    let (blocks, archive) = small();
    let mut block = blocks[position].clone();
    edit(&mut block);
    let mut entries = split(&archive.bytes);
    recompress(&mut entries[tuple_entry(position, 0)], &alloy_rlp::encode(&block.header));
    recompress(&mut entries[tuple_entry(position, 1)], &alloy_rlp::encode(&block.body));
    recompress(&mut entries[tuple_entry(position, 2)], &alloy_rlp::encode(&block.receipts));
    entries[tuple_entry(position, 3)].data = block.total_difficulty.to_le_bytes::<32>().to_vec();
    join(&entries, true)
}

#[test]
fn unchanged_re_encoding_still_verifies() {
    let (_, archive) = small();
    let reader = read(with_block(2, |_| {})).unwrap();
    assert_eq!(reader.verify().unwrap(), archive.accumulator_root);
}

#[test]
fn header_number_out_of_sequence() {
    for (position, number) in [(0, START + 1), (2, START + 1), (3, 0), (1, u64::MAX)] {
        let reader = read(with_block(position, |b| b.header.number = number)).unwrap();
        let expected = START + position as u64;
        for err in [iterate(&reader).unwrap_err(), reader.verify().unwrap_err()] {
            assert!(
                matches!(err, Era1Error::HeaderNumberMismatch { position: p, expected: e, found }
                    if p == position && e == expected && found == number),
                "{err}"
            );
        }
        // The blocks before it still read.
        assert_eq!(reader.iter().take_while(Result::is_ok).count(), position);
    }
}

#[test]
fn broken_chain_links() {
    let (blocks, _) = small();
    // Parent hash.
    let reader = read(with_block(2, |b| b.header.parent_hash = B256::repeat_byte(9))).unwrap();
    iterate(&reader).unwrap();
    let err = reader.verify().unwrap_err();
    assert!(
        matches!(err, Era1Error::ParentHashMismatch { number, expected, found }
            if number == START + 2 && expected == blocks[1].hash() && found == B256::repeat_byte(9)),
        "{err}"
    );
    // Changing a header changes its hash, which the next block's parent hash catches.
    let reader = read(with_block(1, |b| b.header.gas_limit += 1)).unwrap();
    let err = reader.verify().unwrap_err();
    assert!(
        matches!(err, Era1Error::ParentHashMismatch { number, .. } if number == START + 2),
        "{err}"
    );
    // Total difficulty.
    let reader = read(with_block(2, |b| b.total_difficulty += U256::from(1))).unwrap();
    let err = reader.verify().unwrap_err();
    assert!(
        matches!(err, Era1Error::TotalDifficultyMismatch { number, previous, difficulty, found }
            if number == START + 2 && previous == blocks[1].total_difficulty
                && difficulty == blocks[2].header.difficulty
                && found == blocks[2].total_difficulty + U256::from(1)),
        "{err}"
    );
    let reader = read(with_block(0, |b| b.total_difficulty = U256::from(1))).unwrap();
    let err = reader.verify().unwrap_err();
    assert!(matches!(err, Era1Error::TotalDifficultyTooLow { number: START, .. }), "{err}");
    // The last block's total difficulty is checked against the previous one too.
    let reader = read(with_block(3, |b| b.total_difficulty += U256::from(1))).unwrap();
    let err = reader.verify().unwrap_err();
    assert!(
        matches!(err, Era1Error::TotalDifficultyMismatch { number, .. } if number == START + 3),
        "{err}"
    );
}

#[test]
fn genesis_total_difficulty_is_its_difficulty() {
    let chain = generate_chain(0, 3, 11);
    let archive = build(&chain.blocks);
    let mut entries = split(&archive.bytes);
    let td = chain.blocks[0].total_difficulty + U256::from(5);
    entries[tuple_entry(0, 3)].data = td.to_le_bytes::<32>().to_vec();
    let err = read(join(&entries, true)).unwrap().verify().unwrap_err();
    assert!(
        matches!(err, Era1Error::TotalDifficultyMismatch { number: 0, previous, .. } if previous == U256::ZERO),
        "{err}"
    );
}

#[test]
fn body_and_receipts_must_match_the_header() {
    // A transaction less (with its receipt).
    let reader = read(with_block(1, |b| {
        b.body.transactions.pop();
        b.receipts.pop();
    }))
    .unwrap();
    iterate(&reader).unwrap();
    let err = reader.verify().unwrap_err();
    assert!(
        matches!(err, Era1Error::RootMismatch { number, field: HeaderRoot::Transactions, .. } if number == START + 1),
        "{err}"
    );
    // A receipt less.
    let err = read(with_block(1, |b| drop(b.receipts.pop()))).unwrap().verify().unwrap_err();
    assert!(
        matches!(err, Era1Error::ReceiptCountMismatch { number, transactions, receipts }
            if number == START + 1 && receipts + 1 == transactions),
        "{err}"
    );
    // A changed receipt.
    let err = read(with_block(3, |b| {
        let receipt = b.receipts[0].as_receipt_with_bloom_mut().unwrap();
        receipt.receipt.cumulative_gas_used += 1;
    }))
    .unwrap()
    .verify()
    .unwrap_err();
    assert!(
        matches!(err, Era1Error::RootMismatch { number, field: HeaderRoot::Receipts, .. } if number == START + 3),
        "{err}"
    );
    // An extra ommer.
    let err = read(with_block(0, |b| b.body.ommers.push(Default::default())))
        .unwrap()
        .verify()
        .unwrap_err();
    assert!(
        matches!(err, Era1Error::RootMismatch { number: START, field: HeaderRoot::Ommers, .. }),
        "{err}"
    );
}

#[test]
fn undecodable_rlp_inside_valid_snappy() {
    let (_, archive) = small();
    for kind in 0..3 {
        let ty = [
            EntryType::COMPRESSED_HEADER,
            EntryType::COMPRESSED_BODY,
            EntryType::COMPRESSED_RECEIPTS,
        ][kind];
        for rlp in [vec![], vec![0xc1, 0x80], vec![0x80], vec![0xf8], b"not rlp at all".to_vec()] {
            let mut entries = split(&archive.bytes);
            recompress(&mut entries[tuple_entry(1, kind)], &rlp);
            let reader = read(join(&entries, true)).unwrap();
            for err in [iterate(&reader).unwrap_err(), reader.verify().unwrap_err()] {
                assert!(
                    matches!(err, Era1Error::Rlp { number, entry, .. } if number == START + 1 && entry == ty),
                    "{ty} {rlp:?}: {err}"
                );
            }
        }
        // Trailing bytes after a valid item.
        let mut entries = split(&archive.bytes);
        let mut raw = snappy::decompress(&entries[tuple_entry(1, kind)].data).unwrap();
        raw.push(0x80);
        recompress(&mut entries[tuple_entry(1, kind)], &raw);
        let err = read(join(&entries, true)).unwrap().verify().unwrap_err();
        assert!(matches!(err, Era1Error::Rlp { entry, .. } if entry == ty), "{err}");
    }
    // An empty receipt list is valid RLP; verification counts the receipts.
    let mut entries = split(&archive.bytes);
    recompress(&mut entries[tuple_entry(1, 2)], &[0xc0]);
    let reader = read(join(&entries, true)).unwrap();
    assert!(reader.block(START + 1).unwrap().receipts.is_empty());
    let err = reader.verify().unwrap_err();
    assert!(matches!(err, Era1Error::ReceiptCountMismatch { receipts: 0, .. }), "{err}");
    // Not snappy at all.
    let mut entries = split(&archive.bytes);
    entries[tuple_entry(0, 1)] =
        RawEntry { data: b"plain bytes".to_vec(), ..entries[tuple_entry(0, 1)].clone() };
    let err = read(join(&entries, true)).unwrap().verify().unwrap_err();
    assert!(
        matches!(err, Era1Error::Snappy { number: START, entry: EntryType::COMPRESSED_BODY, .. }),
        "{err}"
    );
}
