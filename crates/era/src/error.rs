//! Errors of reading, verifying and writing era1 archives.

use crate::e2s::EntryType;
use alloy_primitives::{B256, U256};
use core::fmt;
use std::path::PathBuf;

/// Where in an era1 file an entry was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryContext {
    /// The first entry of the file (the `Version` entry).
    FileStart,
    /// An entry of the block tuple of this block number.
    Block(u64),
    /// The entry just before the block index (the `Accumulator`).
    BeforeIndex,
}

impl fmt::Display for EntryContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FileStart => f.write_str("start of file"),
            Self::Block(number) => write!(f, "block {number}"),
            Self::BeforeIndex => f.write_str("end of file"),
        }
    }
}

/// A field of a block header that commits to the block body or receipts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderRoot {
    /// `transactions_root`.
    Transactions,
    /// `ommers_hash`.
    Ommers,
    /// `receipts_root`.
    Receipts,
}

impl fmt::Display for HeaderRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Transactions => "transactions_root",
            Self::Ommers => "ommers_hash",
            Self::Receipts => "receipts_root",
        })
    }
}

/// Everything that can go wrong with an era1 archive.
///
/// Offsets are byte offsets of an entry header from the start of the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Era1Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("empty file: an era1 archive holds at least Version, Accumulator and BlockIndex")]
    EmptyFile,
    /// An entry runs past the end of the file.
    #[error(
        "truncated entry at offset {offset}: it needs {needed} bytes, only {available} remain"
    )]
    Truncated {
        /// Offset of the entry header.
        offset: usize,
        /// Bytes the entry needs (header and data).
        needed: u64,
        /// Bytes left in the file from `offset`.
        available: usize,
    },
    /// The reserved bytes of an entry header are not zero.
    #[error("entry at offset {offset}: reserved header bytes are {reserved:#06x}, must be zero")]
    ReservedNotZero {
        /// Offset of the entry header.
        offset: usize,
        /// The reserved field as read (little-endian).
        reserved: u16,
    },
    /// An entry has a different type than the era1 layout requires at its place.
    #[error("{context}: expected a {expected} entry at offset {offset}, found {found}")]
    UnexpectedEntry {
        /// Where in the file.
        context: EntryContext,
        /// Offset of the entry header.
        offset: usize,
        /// The type the layout requires.
        expected: EntryType,
        /// The type found.
        found: EntryType,
    },
    /// An entry of fixed size has the wrong length.
    #[error("{context}: {ty} entry at offset {offset} holds {found} bytes, expected {expected}")]
    BadEntryLength {
        /// Where in the file.
        context: EntryContext,
        /// Offset of the entry header.
        offset: usize,
        /// Entry type.
        ty: EntryType,
        /// Required data length.
        expected: usize,
        /// Actual data length.
        found: usize,
    },
    /// The last entry of the file is not a block index: the file is cut short or not era1.
    #[error("last entry is {last} at offset {offset}, not a BlockIndex (truncated file?)")]
    MissingBlockIndex {
        /// Offset of the last entry.
        offset: usize,
        /// Its type.
        last: EntryType,
    },
    /// The block index entry is too short or not a whole number of 8-byte words.
    #[error("BlockIndex entry at offset {offset} holds {length} bytes, not 16 + 8 × count")]
    MalformedIndex {
        /// Offset of the index entry.
        offset: usize,
        /// Its data length.
        length: usize,
    },
    /// The count at the end of the block index disagrees with the number of offsets in it.
    #[error("block index count is {count} but the index holds {offsets} offsets")]
    IndexCountMismatch {
        /// The stored count.
        count: u64,
        /// Offsets the index entry has room for.
        offsets: usize,
    },
    /// An index offset does not point at the block's `CompressedHeader` entry.
    #[error(
        "block {number}: index offset {stored} points at {}, but the block's CompressedHeader \
         entry is at {} (relative offset {expected})",
        *index_offset as i128 + *stored as i128,
        *index_offset as i128 + *expected as i128
    )]
    IndexOffsetMismatch {
        /// Block number.
        number: u64,
        /// Offset of the block index entry (the base of the relative offsets).
        index_offset: usize,
        /// The stored relative offset.
        stored: i64,
        /// The relative offset of the block's `CompressedHeader` entry.
        expected: i64,
    },
    /// The block index lists no blocks.
    #[error("the block index lists no blocks")]
    NoBlocks,
    /// More than [`MAX_BLOCKS_PER_ERA1`](crate::MAX_BLOCKS_PER_ERA1) blocks.
    #[error("{count} blocks, more than the era1 maximum of {max}")]
    TooManyBlocks {
        /// The number of blocks listed or offered.
        count: u64,
        /// The maximum.
        max: usize,
    },
    /// The starting number plus the count exceeds `u64`.
    #[error("block numbers overflow: {count} blocks starting at {starting_number}")]
    BlockNumberOverflow {
        /// Starting block number from the index.
        starting_number: u64,
        /// Block count from the index.
        count: u64,
    },
    /// Fewer block tuples than the index lists.
    #[error("the block index lists {count} blocks but the file holds only {found} block tuples")]
    MissingBlocks {
        /// Blocks the index lists.
        count: u64,
        /// Complete block tuples found.
        found: u64,
    },
    /// An era1 entry after the last indexed block tuple (only foreign entries may go there).
    #[error("{ty} entry at offset {offset} follows the {count} blocks the index lists")]
    ExtraEntry {
        /// Offset of the entry header.
        offset: usize,
        /// Its type.
        ty: EntryType,
        /// Blocks the index lists.
        count: u64,
    },
    /// Snappy decompression (or compression) of an entry failed.
    #[error("block {number}: {entry} entry at offset {offset}: snappy error: {message}")]
    Snappy {
        /// Block number.
        number: u64,
        /// Entry type.
        entry: EntryType,
        /// Offset of the entry header.
        offset: usize,
        /// The decoder's message.
        message: String,
    },
    /// The decompressed data of an entry is not valid RLP of the expected type.
    #[error("block {number}: {entry} entry at offset {offset}: RLP error: {source}")]
    Rlp {
        /// Block number.
        number: u64,
        /// Entry type.
        entry: EntryType,
        /// Offset of the entry header.
        offset: usize,
        /// The RLP error.
        #[source]
        source: alloy_rlp::Error,
    },
    /// A header's number differs from the one its position (and the index) implies.
    #[error("block at position {position}: header number is {found}, expected {expected}")]
    HeaderNumberMismatch {
        /// Position of the block in the file, from 0.
        position: usize,
        /// Starting number plus position.
        expected: u64,
        /// Number in the header.
        found: u64,
    },
    /// A header's parent hash is not the hash of the previous header.
    #[error("block {number}: parent hash {found}, but the previous header hashes to {expected}")]
    ParentHashMismatch {
        /// Block number.
        number: u64,
        /// Hash of the previous header.
        expected: B256,
        /// Parent hash in the header.
        found: B256,
    },
    /// A total difficulty is not the previous one plus the block's difficulty.
    #[error(
        "block {number}: total difficulty {found}, but previous total {previous} + difficulty \
         {difficulty} = {}",
        previous.checked_add(*difficulty).map_or_else(|| "overflow".to_string(), |s| s.to_string())
    )]
    TotalDifficultyMismatch {
        /// Block number.
        number: u64,
        /// Total difficulty of the previous block (zero before the genesis block).
        previous: U256,
        /// The block's difficulty.
        difficulty: U256,
        /// The stored total difficulty.
        found: U256,
    },
    /// The first block's total difficulty is below its own difficulty.
    #[error(
        "block {number}: total difficulty {found} is below the block's difficulty {difficulty}"
    )]
    TotalDifficultyTooLow {
        /// Block number.
        number: u64,
        /// The block's difficulty.
        difficulty: U256,
        /// The stored total difficulty.
        found: U256,
    },
    /// A header root does not match the body or receipts stored with it.
    #[error("block {number}: header {field} is {header}, the stored data gives {computed}")]
    RootMismatch {
        /// Block number.
        number: u64,
        /// Which root.
        field: HeaderRoot,
        /// Value in the header.
        header: B256,
        /// Value computed from the body or receipts.
        computed: B256,
    },
    /// The numbers of transactions and receipts differ.
    #[error("block {number}: {transactions} transactions but {receipts} receipts")]
    ReceiptCountMismatch {
        /// Block number.
        number: u64,
        /// Transactions in the body.
        transactions: usize,
        /// Receipts stored.
        receipts: usize,
    },
    /// The stored accumulator root differs from the one computed from the blocks.
    #[error("accumulator mismatch: the file stores {stored}, its blocks give {computed}")]
    AccumulatorMismatch {
        /// Root in the `Accumulator` entry.
        stored: B256,
        /// Root computed from the header hashes and total difficulties.
        computed: B256,
    },
    /// A block number outside the archive was asked for.
    #[error("block {number} is not in this archive (blocks {first}..={last})")]
    BlockNotInArchive {
        /// The number asked for.
        number: u64,
        /// First block of the archive.
        first: u64,
        /// Last block of the archive.
        last: u64,
    },
    /// The writer was given a block whose number does not follow the previous one.
    #[error("block number {found} does not follow the previous block (expected {expected})")]
    NonConsecutiveBlock {
        /// The next number in sequence.
        expected: u64,
        /// The number given.
        found: u64,
    },
    /// Data too large for the 32-bit length of an e2store entry.
    #[error("{ty} entry of {length} bytes exceeds the e2store limit of 4 GiB")]
    EntryTooLarge {
        /// Entry type.
        ty: EntryType,
        /// Data length.
        length: usize,
    },
}
