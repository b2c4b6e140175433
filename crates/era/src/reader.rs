//! Reading and verifying era1 archives.

use crate::{
    accumulator::{accumulator_root, HeaderRecord},
    e2s::{self, Entry, EntryType},
    error::{EntryContext, HeaderRoot},
    snappy, Era1Block, Era1Error, Era1FileName, MAX_BLOCKS_PER_ERA1,
};
use alloy_consensus::{
    proofs::{calculate_ommers_root, calculate_receipt_root, calculate_transaction_root},
    BlockBody, Header, ReceiptEnvelope, TxEnvelope,
};
use alloy_primitives::{keccak256, B256, U256};
use alloy_rlp::Decodable;
use std::path::Path;

/// Size of a `TotalDifficulty` or `Accumulator` entry's data.
const WORD: usize = 32;

/// The block tuple types in file order.
const TUPLE: [EntryType; 4] = [
    EntryType::COMPRESSED_HEADER,
    EntryType::COMPRESSED_BODY,
    EntryType::COMPRESSED_RECEIPTS,
    EntryType::TOTAL_DIFFICULTY,
];

/// Position of one entry in the file.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Offset of the entry header.
    offset: usize,
    /// Start of the entry data.
    start: usize,
    /// End of the entry data.
    end: usize,
}

impl From<&Entry<'_>> for Slot {
    fn from(entry: &Entry<'_>) -> Self {
        let start = entry.offset + e2s::HEADER_SIZE;
        Self { offset: entry.offset, start, end: start + entry.data.len() }
    }
}

/// Where one block's entries lie.
#[derive(Debug, Clone, Copy)]
struct BlockSlots {
    header: Slot,
    body: Slot,
    receipts: Slot,
    total_difficulty: U256,
}

/// An era1 archive held in memory.
///
/// [`from_bytes`](Self::from_bytes) checks the layout: the e2store framing of every entry, the
/// `Version` entry first, the block index last with a count that matches its offsets, the
/// accumulator before it, and one `CompressedHeader`, `CompressedBody`, `CompressedReceipts`,
/// `TotalDifficulty` tuple per indexed block. Entries of types era1 does not define may follow the
/// last tuple (the spec's `other-entries`); they are skipped. Block contents are decoded when
/// read; [`verify`](Self::verify) checks everything else.
#[derive(Debug, Clone)]
pub struct Era1Reader {
    data: Vec<u8>,
    starting_number: u64,
    blocks: Vec<BlockSlots>,
    accumulator: B256,
    index_offset: usize,
    index_offsets: Vec<i64>,
}

impl Era1Reader {
    /// Reads the archive at `path` into memory and checks its layout.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Era1Error> {
        let path = path.as_ref();
        let data = std::fs::read(path)
            .map_err(|source| Era1Error::Io { path: path.to_path_buf(), source })?;
        Self::from_bytes(data)
    }

    /// Takes an archive from memory and checks its layout.
    pub fn from_bytes(data: Vec<u8>) -> Result<Self, Era1Error> {
        let layout = Layout::parse(&data)?;
        Ok(Self {
            data,
            starting_number: layout.starting_number,
            blocks: layout.blocks,
            accumulator: layout.accumulator,
            index_offset: layout.index_offset,
            index_offsets: layout.index_offsets,
        })
    }

    /// Number of the first block.
    pub const fn starting_number(&self) -> u64 {
        self.starting_number
    }

    /// Number of blocks in the archive (at least 1).
    pub const fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the archive holds no blocks (never true for an archive that parsed).
    pub const fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Number of the last block.
    pub const fn last_number(&self) -> u64 {
        // `Layout::parse` checked that this does not overflow.
        self.starting_number.saturating_add((self.blocks.len() as u64).saturating_sub(1))
    }

    /// The accumulator root stored in the file (not checked; see [`verify`](Self::verify)).
    pub const fn accumulator_root(&self) -> B256 {
        self.accumulator
    }

    /// The canonical file name of this archive on `network`, from the stored accumulator root.
    pub fn file_name(&self, network: &str) -> Era1FileName {
        Era1FileName::for_archive(network, self.starting_number, self.accumulator)
    }

    /// The raw bytes of the archive.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Gives back the raw bytes of the archive.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// Decodes the block with number `number`.
    pub fn block(&self, number: u64) -> Result<Era1Block, Era1Error> {
        let position = number
            .checked_sub(self.starting_number)
            .and_then(|p| usize::try_from(p).ok())
            .filter(|&p| p < self.blocks.len())
            .ok_or_else(|| Era1Error::BlockNotInArchive {
                number,
                first: self.starting_number,
                last: self.last_number(),
            })?;
        self.decode_block(position)
    }

    /// Iterates over the blocks in order; the iterator ends after the first error it yields.
    pub fn iter(&self) -> Era1Blocks<'_> {
        Era1Blocks { reader: self, position: 0, failed: false }
    }

    /// Checks the whole archive and returns its accumulator root.
    ///
    /// Checks, in this order: that every index offset points at its block's
    /// `CompressedHeader` entry; then for each block that its entries decompress and decode, that
    /// its header number is the starting number plus its position, that its parent hash is the
    /// previous header's hash and its total difficulty the previous one plus its difficulty (for
    /// the first block of the file: at least its difficulty, exactly it for genesis), and that the
    /// header's transactions root, ommers hash and receipts root match the body and receipts;
    /// finally that the accumulator computed from the header hashes and total difficulties equals
    /// the stored one.
    pub fn verify(&self) -> Result<B256, Era1Error> {
        self.verify_index()?;
        let mut records = Vec::with_capacity(self.blocks.len());
        let mut previous: Option<HeaderRecord> = None;
        for (position, slots) in self.blocks.iter().enumerate() {
            let number = self.number_at(position);
            let raw_header = self.decompress(number, EntryType::COMPRESSED_HEADER, slots.header)?;
            let header: Header =
                decode_rlp(&raw_header, number, EntryType::COMPRESSED_HEADER, slots.header)?;
            check_number(&header, position, number)?;
            let record = HeaderRecord {
                block_hash: keccak256(&raw_header),
                total_difficulty: slots.total_difficulty,
            };
            check_chain(&header, &record, previous.as_ref())?;
            let body: BlockBody<TxEnvelope> =
                self.decode(number, EntryType::COMPRESSED_BODY, slots.body)?;
            let receipts: Vec<ReceiptEnvelope> =
                self.decode(number, EntryType::COMPRESSED_RECEIPTS, slots.receipts)?;
            check_roots(&header, &body, &receipts)?;
            records.push(record);
            previous = Some(record);
        }
        let computed = accumulator_root(&records)?;
        if computed != self.accumulator {
            return Err(Era1Error::AccumulatorMismatch { stored: self.accumulator, computed });
        }
        Ok(computed)
    }

    /// Checks that every index offset points at its block's `CompressedHeader` entry.
    fn verify_index(&self) -> Result<(), Era1Error> {
        for (position, (slots, &stored)) in self.blocks.iter().zip(&self.index_offsets).enumerate()
        {
            // Both offsets are below the file length, which fits an `i64`.
            let expected = slots.header.offset as i64 - self.index_offset as i64;
            if stored != expected {
                return Err(Era1Error::IndexOffsetMismatch {
                    number: self.number_at(position),
                    index_offset: self.index_offset,
                    stored,
                    expected,
                });
            }
        }
        Ok(())
    }

    /// Block number at `position` (which is below `len()`, so this does not overflow).
    const fn number_at(&self, position: usize) -> u64 {
        self.starting_number.saturating_add(position as u64)
    }

    fn decode_block(&self, position: usize) -> Result<Era1Block, Era1Error> {
        let number = self.number_at(position);
        let Some(slots) = self.blocks.get(position) else {
            return Err(Era1Error::BlockNotInArchive {
                number,
                first: self.starting_number,
                last: self.last_number(),
            });
        };
        let header: Header = self.decode(number, EntryType::COMPRESSED_HEADER, slots.header)?;
        check_number(&header, position, number)?;
        let body = self.decode(number, EntryType::COMPRESSED_BODY, slots.body)?;
        let receipts = self.decode(number, EntryType::COMPRESSED_RECEIPTS, slots.receipts)?;
        Ok(Era1Block { header, body, receipts, total_difficulty: slots.total_difficulty })
    }

    fn decompress(&self, number: u64, entry: EntryType, slot: Slot) -> Result<Vec<u8>, Era1Error> {
        // `Layout::parse` took the slot from this very buffer.
        let compressed = self.data.get(slot.start..slot.end).unwrap_or_default();
        snappy::decompress(compressed).map_err(|message| Era1Error::Snappy {
            number,
            entry,
            offset: slot.offset,
            message,
        })
    }

    fn decode<T: Decodable>(
        &self,
        number: u64,
        entry: EntryType,
        slot: Slot,
    ) -> Result<T, Era1Error> {
        decode_rlp(&self.decompress(number, entry, slot)?, number, entry, slot)
    }
}

impl<'a> IntoIterator for &'a Era1Reader {
    type Item = Result<Era1Block, Era1Error>;
    type IntoIter = Era1Blocks<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the blocks of an [`Era1Reader`], in order.
///
/// Yields `Err` for the first block that fails to decode and then ends.
#[derive(Debug, Clone)]
pub struct Era1Blocks<'a> {
    reader: &'a Era1Reader,
    position: usize,
    failed: bool,
}

impl Iterator for Era1Blocks<'_> {
    type Item = Result<Era1Block, Era1Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.reader.len() {
            return None;
        }
        let block = self.reader.decode_block(self.position);
        self.position += 1;
        self.failed = block.is_err();
        Some(block)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.failed { 0 } else { self.reader.len() - self.position };
        (left.min(1), Some(left))
    }
}

fn decode_rlp<T: Decodable>(
    raw: &[u8],
    number: u64,
    entry: EntryType,
    slot: Slot,
) -> Result<T, Era1Error> {
    alloy_rlp::decode_exact(raw).map_err(|source| Era1Error::Rlp {
        number,
        entry,
        offset: slot.offset,
        source,
    })
}

const fn check_number(header: &Header, position: usize, expected: u64) -> Result<(), Era1Error> {
    if header.number != expected {
        return Err(Era1Error::HeaderNumberMismatch { position, expected, found: header.number });
    }
    Ok(())
}

/// Checks the parent hash and total difficulty against the previous block.
fn check_chain(
    header: &Header,
    record: &HeaderRecord,
    previous: Option<&HeaderRecord>,
) -> Result<(), Era1Error> {
    let number = header.number;
    let found = record.total_difficulty;
    let difficulty = header.difficulty;
    let previous_td = match previous {
        Some(previous) => {
            if header.parent_hash != previous.block_hash {
                return Err(Era1Error::ParentHashMismatch {
                    number,
                    expected: previous.block_hash,
                    found: header.parent_hash,
                });
            }
            previous.total_difficulty
        }
        // The genesis block's total difficulty is its own difficulty.
        None if number == 0 => U256::ZERO,
        // An archive starting mid-chain does not know the previous total.
        None => {
            if found < difficulty {
                return Err(Era1Error::TotalDifficultyTooLow { number, difficulty, found });
            }
            return Ok(());
        }
    };
    if previous_td.checked_add(difficulty) != Some(found) {
        return Err(Era1Error::TotalDifficultyMismatch {
            number,
            previous: previous_td,
            difficulty,
            found,
        });
    }
    Ok(())
}

/// Checks the header's commitments to the body and receipts.
fn check_roots(
    header: &Header,
    body: &BlockBody<TxEnvelope>,
    receipts: &[ReceiptEnvelope],
) -> Result<(), Era1Error> {
    let number = header.number;
    if body.transactions.len() != receipts.len() {
        return Err(Era1Error::ReceiptCountMismatch {
            number,
            transactions: body.transactions.len(),
            receipts: receipts.len(),
        });
    }
    let roots = [
        (HeaderRoot::Transactions, header.transactions_root),
        (HeaderRoot::Ommers, header.ommers_hash),
        (HeaderRoot::Receipts, header.receipts_root),
    ];
    for (field, in_header) in roots {
        let computed = match field {
            HeaderRoot::Transactions => calculate_transaction_root(&body.transactions),
            HeaderRoot::Ommers => calculate_ommers_root(&body.ommers),
            HeaderRoot::Receipts => calculate_receipt_root(receipts),
        };
        if computed != in_header {
            return Err(Era1Error::RootMismatch { number, field, header: in_header, computed });
        }
    }
    Ok(())
}

/// The layout of an era1 file, as [`Era1Reader::from_bytes`] checks it.
struct Layout {
    starting_number: u64,
    blocks: Vec<BlockSlots>,
    accumulator: B256,
    index_offset: usize,
    index_offsets: Vec<i64>,
}

impl Layout {
    fn parse(data: &[u8]) -> Result<Self, Era1Error> {
        if data.is_empty() {
            return Err(Era1Error::EmptyFile);
        }
        let entries = e2s::entries(data).collect::<Result<Vec<_>, _>>()?;
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Err(Era1Error::EmptyFile);
        };
        expect_entry(first, EntryType::VERSION, EntryContext::FileStart, Some(0))?;
        if last.ty != EntryType::BLOCK_INDEX {
            return Err(Era1Error::MissingBlockIndex { offset: last.offset, last: last.ty });
        }

        // block-index := starting-number | offset* | count, all 8-byte little-endian.
        if last.data.len() < 16 || last.data.len() % 8 != 0 {
            return Err(Era1Error::MalformedIndex { offset: last.offset, length: last.data.len() });
        }
        let mut words = last.data.chunks_exact(8).map(|w| {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            word
        });
        let starting_number = words.next().map_or(0, u64::from_le_bytes);
        let count = words.next_back().map_or(0, u64::from_le_bytes);
        let index_offsets: Vec<i64> = words.map(i64::from_le_bytes).collect();
        if count != index_offsets.len() as u64 {
            return Err(Era1Error::IndexCountMismatch { count, offsets: index_offsets.len() });
        }
        if count == 0 {
            return Err(Era1Error::NoBlocks);
        }
        if index_offsets.len() > MAX_BLOCKS_PER_ERA1 {
            return Err(Era1Error::TooManyBlocks { count, max: MAX_BLOCKS_PER_ERA1 });
        }
        if starting_number.checked_add(count - 1).is_none() {
            return Err(Era1Error::BlockNumberOverflow { starting_number, count });
        }

        // `first` is the Version entry and `last` the index, so there are at least two entries.
        let Some(accumulator) = entries.len().checked_sub(2).and_then(|i| entries.get(i)) else {
            return Err(Era1Error::EmptyFile);
        };
        expect_entry(accumulator, EntryType::ACCUMULATOR, EntryContext::BeforeIndex, Some(WORD))?;
        let accumulator_root = B256::from_slice(accumulator.data);

        // The entries between Version and Accumulator: the block tuples, then foreign entries.
        let middle = entries.get(1..entries.len() - 2).unwrap_or_default();
        let mut blocks = Vec::with_capacity(index_offsets.len());
        for position in 0..index_offsets.len() {
            let number = starting_number + position as u64;
            let context = EntryContext::Block(number);
            for (i, ty) in TUPLE.into_iter().enumerate() {
                let Some(entry) = middle.get(position * 4 + i) else {
                    return Err(Era1Error::MissingBlocks { count, found: position as u64 });
                };
                let length = (ty == EntryType::TOTAL_DIFFICULTY).then_some(WORD);
                expect_entry(entry, ty, context, length)?;
            }
            let Some([header, body, receipts, td]) =
                middle.get(position * 4..position * 4 + 4).and_then(|t| t.first_chunk::<4>())
            else {
                return Err(Era1Error::MissingBlocks { count, found: position as u64 });
            };
            blocks.push(BlockSlots {
                header: header.into(),
                body: body.into(),
                receipts: receipts.into(),
                total_difficulty: U256::from_le_slice(td.data),
            });
        }
        for entry in middle.get(blocks.len() * 4..).unwrap_or_default() {
            if entry.ty.is_era1() {
                return Err(Era1Error::ExtraEntry { offset: entry.offset, ty: entry.ty, count });
            }
        }
        Ok(Self {
            starting_number,
            blocks,
            accumulator: accumulator_root,
            index_offset: last.offset,
            index_offsets,
        })
    }
}

/// Checks an entry's type and, when given, its data length.
fn expect_entry(
    entry: &Entry<'_>,
    expected: EntryType,
    context: EntryContext,
    length: Option<usize>,
) -> Result<(), Era1Error> {
    if entry.ty != expected {
        return Err(Era1Error::UnexpectedEntry {
            context,
            offset: entry.offset,
            expected,
            found: entry.ty,
        });
    }
    match length {
        Some(expected) if entry.data.len() != expected => Err(Era1Error::BadEntryLength {
            context,
            offset: entry.offset,
            ty: entry.ty,
            expected,
            found: entry.data.len(),
        }),
        _ => Ok(()),
    }
}
