//! Writing era1 archives.

use crate::{
    accumulator::{accumulator_root, HeaderRecord},
    e2s::{self, EntryType},
    snappy, Era1Block, Era1Error, Era1FileName, MAX_BLOCKS_PER_ERA1,
};
use alloy_consensus::{Block, BlockBody, Header, ReceiptEnvelope, TxEnvelope};
use alloy_primitives::{keccak256, B256, U256};
use std::path::{Path, PathBuf};

/// Builds an era1 archive in memory, one block at a time.
///
/// The layout follows geth's era1 builder (`internal/era/onedb`): a `Version` entry, then per
/// block `CompressedHeader`, `CompressedBody`, `CompressedReceipts` and `TotalDifficulty`, then
/// the `Accumulator` and the `BlockIndex`. Block numbers must be consecutive and at most
/// [`MAX_BLOCKS_PER_ERA1`] blocks fit. The writer does not check the chain itself (parent hashes,
/// total difficulties, roots): run [`Era1Reader::verify`](crate::Era1Reader::verify) on the
/// result for that.
#[derive(Debug, Clone)]
pub struct Era1Writer {
    buf: Vec<u8>,
    starting_number: Option<u64>,
    /// Absolute offsets of the blocks' `CompressedHeader` entries.
    offsets: Vec<usize>,
    records: Vec<HeaderRecord>,
}

impl Default for Era1Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Era1Writer {
    /// An empty archive.
    pub fn new() -> Self {
        let mut buf = Vec::new();
        // The Version entry has no data, so this cannot fail.
        let _ = e2s::write_entry(&mut buf, EntryType::VERSION, &[]);
        Self { buf, starting_number: None, offsets: Vec::new(), records: Vec::new() }
    }

    /// Number of blocks added so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no block was added yet.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The number the next block must have (`None` before the first block, when any number
    /// goes).
    /// `None` too after a block numbered `u64::MAX`.
    pub fn next_number(&self) -> Option<u64> {
        self.starting_number.and_then(|start| start.checked_add(self.records.len() as u64))
    }

    /// Appends a block with its receipts and the total difficulty up to and including it.
    pub fn push(
        &mut self,
        block: &Block<TxEnvelope>,
        receipts: &[ReceiptEnvelope],
        total_difficulty: U256,
    ) -> Result<(), Era1Error> {
        self.push_parts(&block.header, &block.body, receipts, total_difficulty)
    }

    /// Appends a decoded era1 block (as read by [`Era1Reader`](crate::Era1Reader)).
    pub fn push_era1_block(&mut self, block: &Era1Block) -> Result<(), Era1Error> {
        self.push_parts(&block.header, &block.body, &block.receipts, block.total_difficulty)
    }

    /// Appends a block given as header and body.
    pub fn push_parts(
        &mut self,
        header: &Header,
        body: &BlockBody<TxEnvelope>,
        receipts: &[ReceiptEnvelope],
        total_difficulty: U256,
    ) -> Result<(), Era1Error> {
        if self.records.len() >= MAX_BLOCKS_PER_ERA1 {
            return Err(Era1Error::TooManyBlocks {
                count: self.records.len() as u64 + 1,
                max: MAX_BLOCKS_PER_ERA1,
            });
        }
        let number = header.number;
        if let Some(starting_number) = self.starting_number {
            let count = self.records.len() as u64;
            let expected = starting_number
                .checked_add(count)
                .ok_or(Era1Error::BlockNumberOverflow { starting_number, count: count + 1 })?;
            if number != expected {
                return Err(Era1Error::NonConsecutiveBlock { expected, found: number });
            }
        }

        let header_rlp = alloy_rlp::encode(header);
        let body_rlp = alloy_rlp::encode(body);
        let mut receipts_rlp = Vec::new();
        alloy_rlp::encode_list(receipts, &mut receipts_rlp);

        // Build the tuple aside so that a failure leaves the archive unchanged.
        let offset = self.buf.len();
        let mut tuple = Vec::new();
        for (ty, rlp) in [
            (EntryType::COMPRESSED_HEADER, &header_rlp),
            (EntryType::COMPRESSED_BODY, &body_rlp),
            (EntryType::COMPRESSED_RECEIPTS, &receipts_rlp),
        ] {
            let compressed = snappy::compress(rlp).map_err(|message| Era1Error::Snappy {
                number,
                entry: ty,
                offset: offset + tuple.len(),
                message,
            })?;
            e2s::write_entry(&mut tuple, ty, &compressed)?;
        }
        e2s::write_entry(
            &mut tuple,
            EntryType::TOTAL_DIFFICULTY,
            &total_difficulty.to_le_bytes::<32>(),
        )?;

        self.buf.extend_from_slice(&tuple);
        self.starting_number.get_or_insert(number);
        self.offsets.push(offset);
        self.records.push(HeaderRecord { block_hash: keccak256(&header_rlp), total_difficulty });
        Ok(())
    }

    /// Writes the accumulator and the block index and returns the finished archive.
    ///
    /// Fails with [`Era1Error::NoBlocks`] when no block was added.
    pub fn finish(self) -> Result<Era1Archive, Era1Error> {
        let Some(starting_number) = self.starting_number else {
            return Err(Era1Error::NoBlocks);
        };
        let mut buf = self.buf;
        let root = accumulator_root(&self.records)?;
        e2s::write_entry(&mut buf, EntryType::ACCUMULATOR, root.as_slice())?;

        // Offsets are relative to the start of the BlockIndex entry.
        let index_offset = buf.len();
        let mut index = Vec::with_capacity(16 + 8 * self.offsets.len());
        index.extend_from_slice(&starting_number.to_le_bytes());
        for &offset in &self.offsets {
            // Both are file offsets of an in-memory buffer, far below `i64::MAX`.
            let relative = offset as i64 - index_offset as i64;
            index.extend_from_slice(&relative.to_le_bytes());
        }
        index.extend_from_slice(&(self.offsets.len() as u64).to_le_bytes());
        e2s::write_entry(&mut buf, EntryType::BLOCK_INDEX, &index)?;

        Ok(Era1Archive {
            bytes: buf,
            accumulator_root: root,
            starting_number,
            block_count: self.records.len(),
        })
    }
}

/// A finished era1 archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Era1Archive {
    /// The file contents.
    pub bytes: Vec<u8>,
    /// The accumulator root (also stored in the file).
    pub accumulator_root: B256,
    /// Number of the first block.
    pub starting_number: u64,
    /// Number of blocks.
    pub block_count: usize,
}

impl Era1Archive {
    /// The canonical file name of this archive on `network`.
    pub fn file_name(&self, network: &str) -> Era1FileName {
        Era1FileName::for_archive(network, self.starting_number, self.accumulator_root)
    }

    /// Writes the archive into `dir` under its canonical file name and returns the path.
    pub fn write_to_dir(&self, dir: impl AsRef<Path>, network: &str) -> Result<PathBuf, Era1Error> {
        let path = dir.as_ref().join(self.file_name(network).to_string());
        std::fs::write(&path, &self.bytes)
            .map_err(|source| Era1Error::Io { path: path.clone(), source })?;
        Ok(path)
    }
}
