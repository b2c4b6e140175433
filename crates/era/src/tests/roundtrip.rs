//! Writing generated chains and reading them back.

use super::{build, generate_chain, join, split, tuple_entry, RawEntry};
use crate::{
    accumulator_root, e2s::EntryType, snappy, EntryContext, Era1Block, Era1Error, Era1FileName,
    Era1Reader, Era1Writer, HeaderRecord, MAX_BLOCKS_PER_ERA1,
};
use alloy_consensus::{
    transaction::SignerRecoverable, Block, BlockBody, Eip658Value, Header, ReceiptEnvelope,
    TxEnvelope, TxReceipt,
};
use alloy_primitives::{B256, U256};
use alloy_rlp::Decodable;

#[test]
fn round_trips_a_chain_of_300_blocks() {
    let chain = generate_chain(0, 300, 1);
    let archive = build(&chain.blocks);
    assert_eq!(archive.block_count, 300);
    assert_eq!(archive.starting_number, 0);

    // The chain exercises every format the reader must handle.
    let txs = || chain.blocks.iter().flat_map(|b| &b.body.transactions);
    let receipts = || chain.blocks.iter().flat_map(|b| &b.receipts);
    assert!(txs().any(|t| matches!(t, TxEnvelope::Legacy(t) if t.tx().chain_id.is_none())));
    assert!(txs().any(|t| matches!(t, TxEnvelope::Legacy(t) if t.tx().chain_id.is_some())));
    assert!(txs().any(|t| matches!(t, TxEnvelope::Eip2930(_))));
    assert!(txs().any(|t| matches!(t, TxEnvelope::Eip1559(_))));
    assert!(receipts().any(|r| matches!(r.status_or_post_state(), Eip658Value::PostState(_))));
    assert!(receipts().any(|r| r.status_or_post_state() == Eip658Value::Eip658(false)));
    assert!(receipts().any(|r| matches!(r, ReceiptEnvelope::Eip2930(_))));
    assert!(receipts().any(|r| matches!(r, ReceiptEnvelope::Eip1559(_))));
    assert!(receipts().any(|r| !r.logs().is_empty()));
    assert!(chain.blocks.iter().any(|b| b.body.ommers.len() == 2));
    assert!(chain.blocks.iter().any(|b| b.header.base_fee_per_gas.is_some()));
    assert!(chain.blocks.iter().any(|b| b.header.base_fee_per_gas.is_none()));

    let reader = Era1Reader::from_bytes(archive.bytes.clone()).unwrap();
    assert_eq!(reader.starting_number(), 0);
    assert_eq!(reader.len(), 300);
    assert!(!reader.is_empty());
    assert_eq!(reader.last_number(), 299);
    assert_eq!(reader.accumulator_root(), archive.accumulator_root);
    assert_eq!(reader.verify().unwrap(), archive.accumulator_root);

    let read: Vec<Era1Block> = reader.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(read, chain.blocks);
    for tx in read.iter().flat_map(|b| &b.body.transactions) {
        assert_eq!(tx.recover_signer().unwrap(), chain.signer);
    }
    for number in [0, 1, 150, 299] {
        assert_eq!(reader.block(number).unwrap(), chain.blocks[number as usize]);
    }
    assert!(matches!(
        reader.block(300),
        Err(Era1Error::BlockNotInArchive { number: 300, first: 0, last: 299 })
    ));

    // The accumulator is the SSZ root of (keccak(rlp(header)), total difficulty).
    let records: Vec<_> = chain
        .blocks
        .iter()
        .map(|b| HeaderRecord { block_hash: b.hash(), total_difficulty: b.total_difficulty })
        .collect();
    assert_eq!(accumulator_root(&records).unwrap(), archive.accumulator_root);

    // Pushing `Block`s gives the same bytes, and re-writing what was read too.
    let mut writer = Era1Writer::new();
    for block in &chain.blocks {
        let b = Block { header: block.header.clone(), body: block.body.clone() };
        writer.push(&b, &block.receipts, block.total_difficulty).unwrap();
    }
    assert_eq!(writer.finish().unwrap(), archive);
    assert_eq!(build(&read), archive);
}

#[test]
fn archive_starting_mid_chain_goes_through_a_file() {
    let start = 3 * 8192 + 100;
    let chain = generate_chain(start, 40, 2);
    let archive = build(&chain.blocks);
    let dir = std::env::temp_dir().join(format!("velarium-era-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = archive.write_to_dir(&dir, "testnet").unwrap();
    let file_name = path.file_name().unwrap().to_str().unwrap().to_string();

    let reader = Era1Reader::open(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(reader.starting_number(), start);
    assert_eq!(reader.verify().unwrap(), archive.accumulator_root);
    assert_eq!(reader.iter().collect::<Result<Vec<_>, _>>().unwrap(), chain.blocks);

    let name = Era1FileName::parse(&file_name).unwrap();
    assert_eq!(name, reader.file_name("testnet"));
    assert_eq!(name.epoch, 3);
    assert!(name.matches_root(reader.accumulator_root()));
    assert_eq!(
        file_name,
        format!(
            "testnet-00003-{}.era1",
            &alloy_primitives::hex::encode(archive.accumulator_root)[..8]
        )
    );

    let missing = dir.join("missing.era1");
    assert!(
        matches!(Era1Reader::open(&missing), Err(Era1Error::Io { path, .. }) if path == missing)
    );
}

/// Checks the bytes against the era1 layout, independently of the reader.
#[test]
fn layout_matches_the_format() {
    let chain = generate_chain(1000, 5, 3);
    let archive = build(&chain.blocks);
    let entries = split(&archive.bytes);
    assert_eq!(entries.len(), 1 + 4 * 5 + 2);

    // Version: type bytes "e2", empty.
    assert_eq!(&archive.bytes[..8], &[0x65, 0x32, 0, 0, 0, 0, 0, 0]);
    for (position, block) in chain.blocks.iter().enumerate() {
        let [h, b, r, td] = [0, 1, 2, 3].map(|k| &entries[tuple_entry(position, k)]);
        assert_eq!(h.ty, EntryType::COMPRESSED_HEADER);
        assert_eq!(b.ty, EntryType::COMPRESSED_BODY);
        assert_eq!(r.ty, EntryType::COMPRESSED_RECEIPTS);
        assert_eq!(td.ty, EntryType::TOTAL_DIFFICULTY);
        // Snappy framing: every compressed entry opens with the stream identifier chunk.
        for e in [h, b, r] {
            assert_eq!(&e.data[..10], b"\xff\x06\x00\x00sNaPpY");
        }
        assert_eq!(snappy::decompress(&h.data).unwrap(), alloy_rlp::encode(&block.header));
        // Body: rlp([transactions, ommers]), no withdrawals element.
        let body = snappy::decompress(&b.data).unwrap();
        let mut expected = Vec::new();
        alloy_rlp::Header {
            list: true,
            payload_length: alloy_rlp::list_length(&block.body.transactions)
                + alloy_rlp::list_length(&block.body.ommers),
        }
        .encode(&mut expected);
        alloy_rlp::encode_list(&block.body.transactions, &mut expected);
        alloy_rlp::encode_list(&block.body.ommers, &mut expected);
        assert_eq!(body, expected);
        // Total difficulty: 32 bytes, little-endian.
        assert_eq!(td.data, block.total_difficulty.to_le_bytes::<32>());
        assert_eq!(U256::from_le_slice(&td.data), block.total_difficulty);
    }

    // Accumulator, then the index: start, offsets relative to the index entry, count.
    let acc = &entries[entries.len() - 2];
    assert_eq!(acc.ty, EntryType::ACCUMULATOR);
    assert_eq!(acc.data, archive.accumulator_root.as_slice());
    let index = &entries[entries.len() - 1];
    assert_eq!(index.ty, EntryType::BLOCK_INDEX);
    assert_eq!(&archive.bytes[index.offset..index.offset + 2], &[0x66, 0x32]);
    assert_eq!(index.data.len(), 16 + 8 * 5);
    assert_eq!(index.data[..8], 1000u64.to_le_bytes());
    for position in 0..5 {
        let stored =
            i64::from_le_bytes(index.data[8 + 8 * position..16 + 8 * position].try_into().unwrap());
        let header_offset = entries[tuple_entry(position, 0)].offset as i64;
        assert!(stored < 0);
        assert_eq!(index.offset as i64 + stored, header_offset);
    }
    assert_eq!(index.data[index.data.len() - 8..], 5u64.to_le_bytes());
    assert_eq!(index.offset + 8 + index.data.len(), archive.bytes.len());
}

/// Typed receipts are RLP strings holding `type ‖ rlp(receipt)`, as geth's `Receipt.EncodeRLP`
/// writes them; legacy receipts are plain lists.
#[test]
fn receipts_use_the_network_encoding() {
    let chain = generate_chain(0, 300, 1);
    let archive = build(&chain.blocks);
    let entries = split(&archive.bytes);
    let mut seen_typed = 0;
    for (position, block) in chain.blocks.iter().enumerate() {
        let raw = snappy::decompress(&entries[tuple_entry(position, 2)].data).unwrap();
        let mut buf = raw.as_slice();
        let list = alloy_rlp::Header::decode(&mut buf).unwrap();
        assert!(list.list);
        assert_eq!(list.payload_length, buf.len());
        for receipt in &block.receipts {
            let item = alloy_rlp::Header::decode(&mut buf).unwrap();
            let (payload, rest) = buf.split_at(item.payload_length);
            let mut inner = Vec::new();
            match receipt {
                ReceiptEnvelope::Legacy(r) => {
                    assert!(item.list);
                    alloy_rlp::Encodable::encode(r, &mut inner);
                    let mut header = inner.as_slice();
                    alloy_rlp::Header::decode(&mut header).unwrap();
                    assert_eq!(payload, header);
                }
                ReceiptEnvelope::Eip2930(r) | ReceiptEnvelope::Eip1559(r) => {
                    assert!(!item.list);
                    let ty = if matches!(receipt, ReceiptEnvelope::Eip2930(_)) { 1 } else { 2 };
                    assert_eq!(payload[0], ty);
                    alloy_rlp::Encodable::encode(r, &mut inner);
                    assert_eq!(&payload[1..], inner);
                    seen_typed += 1;
                }
                _ => unreachable!("pre-merge chains have no blob or set-code receipts"),
            }
            buf = rest;
        }
        assert!(buf.is_empty());
        assert_eq!(Vec::<ReceiptEnvelope>::decode(&mut raw.as_slice()).unwrap(), block.receipts);
    }
    assert!(seen_typed > 10);
}

#[test]
fn foreign_entries_after_the_blocks_are_skipped() {
    let chain = generate_chain(0, 4, 4);
    let archive = build(&chain.blocks);
    let mut entries = split(&archive.bytes);
    let at = entries.len() - 2;
    entries.insert(at, RawEntry { offset: 0, ty: EntryType(0x8001), data: vec![1, 2, 3] });
    entries.insert(at, RawEntry { offset: 0, ty: EntryType(0x0000), data: vec![] });
    let reader = Era1Reader::from_bytes(join(&entries, true)).unwrap();
    assert_eq!(reader.verify().unwrap(), archive.accumulator_root);

    // An era1 entry there would be a block the index does not list.
    entries.insert(at, RawEntry { offset: 0, ty: EntryType::TOTAL_DIFFICULTY, data: vec![0; 32] });
    let bytes = join(&entries, true);
    let offset = split(&bytes)[at].offset;
    assert!(matches!(
        Era1Reader::from_bytes(bytes),
        Err(Era1Error::ExtraEntry { offset: o, ty: EntryType::TOTAL_DIFFICULTY, count: 4 }) if o == offset
    ));
}

#[test]
fn writer_refuses_more_than_8192_blocks() {
    // Minimal consistent blocks: empty bodies, difficulty 1.
    let mut writer = Era1Writer::new();
    let mut parent_hash = B256::ZERO;
    let mut td = U256::ZERO;
    let empty = BlockBody::<TxEnvelope> { transactions: vec![], ommers: vec![], withdrawals: None };
    let make = |number: u64, parent_hash: B256| Header {
        parent_hash,
        number,
        difficulty: U256::from(1),
        ..Default::default()
    };
    for number in 0..MAX_BLOCKS_PER_ERA1 as u64 {
        let header = make(number, parent_hash);
        td += header.difficulty;
        parent_hash = header.hash_slow();
        writer.push_parts(&header, &empty, &[], td).unwrap();
    }
    assert_eq!(writer.len(), MAX_BLOCKS_PER_ERA1);
    assert_eq!(writer.next_number(), Some(8192));
    let header = make(8192, parent_hash);
    assert!(matches!(
        writer.push_parts(&header, &empty, &[], td + U256::from(1)),
        Err(Era1Error::TooManyBlocks { count: 8193, max: 8192 })
    ));
    // The refused block left the archive intact: all 8192 blocks verify.
    let archive = writer.finish().unwrap();
    let reader = Era1Reader::from_bytes(archive.bytes).unwrap();
    assert_eq!(reader.len(), 8192);
    assert_eq!(reader.verify().unwrap(), archive.accumulator_root);
    assert_eq!(reader.file_name("mainnet").epoch, 0);
}

#[test]
fn writer_refuses_gaps_and_empty_archives() {
    let chain = generate_chain(10, 3, 5);
    let mut writer = Era1Writer::new();
    assert!(writer.is_empty());
    assert_eq!(writer.next_number(), None);
    writer.push_era1_block(&chain.blocks[0]).unwrap();
    assert!(matches!(
        writer.push_era1_block(&chain.blocks[2]),
        Err(Era1Error::NonConsecutiveBlock { expected: 11, found: 12 })
    ));
    assert!(matches!(
        writer.push_era1_block(&chain.blocks[0]),
        Err(Era1Error::NonConsecutiveBlock { expected: 11, found: 10 })
    ));
    writer.push_era1_block(&chain.blocks[1]).unwrap();
    let archive = writer.finish().unwrap();
    let reader = Era1Reader::from_bytes(archive.bytes).unwrap();
    assert_eq!(reader.verify().unwrap(), archive.accumulator_root);
    assert_eq!(reader.starting_number(), 10);
    assert!(matches!(Era1Writer::new().finish(), Err(Era1Error::NoBlocks)));

    // The last possible block number: one block fits, a second has no number.
    let mut last = chain.blocks[0].clone();
    last.header.number = u64::MAX;
    let mut writer = Era1Writer::new();
    writer.push_era1_block(&last).unwrap();
    assert_eq!(writer.next_number(), None);
    assert!(matches!(
        writer.push_era1_block(&last),
        Err(Era1Error::BlockNumberOverflow { starting_number: u64::MAX, count: 2 })
    ));
    let reader = Era1Reader::from_bytes(writer.finish().unwrap().bytes).unwrap();
    assert_eq!(reader.last_number(), u64::MAX);
    assert_eq!(reader.block(u64::MAX).unwrap(), last);
    assert!(matches!(reader.block(0), Err(Era1Error::BlockNotInArchive { number: 0, .. })));
}

#[test]
fn error_messages_name_the_place() {
    let err = Era1Error::UnexpectedEntry {
        context: EntryContext::Block(42),
        offset: 1234,
        expected: EntryType::COMPRESSED_BODY,
        found: EntryType(0x1234),
    };
    assert_eq!(
        err.to_string(),
        "block 42: expected a CompressedBody (0x0004) entry at offset 1234, found unknown type 0x1234"
    );
    let err = Era1Error::IndexOffsetMismatch {
        number: 7,
        index_offset: 1000,
        stored: -900,
        expected: -892,
    };
    assert_eq!(
        err.to_string(),
        "block 7: index offset -900 points at 100, but the block's CompressedHeader entry is at 108 (relative offset -892)"
    );
    let err = Era1Error::TotalDifficultyMismatch {
        number: 5,
        previous: U256::MAX,
        difficulty: U256::from(1),
        found: U256::ZERO,
    };
    assert!(err.to_string().ends_with("= overflow"));
}
