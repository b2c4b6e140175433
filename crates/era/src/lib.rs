//! Reading and writing era1 archives: pre-merge Ethereum history in the e2store format that
//! geth, reth and nimbus read and publish (`mainnet-00000-5ec1ffb8.era1`, …).
//!
//! An era1 file is a sequence of e2store entries ([`e2s`]):
//!
//! ```text
//! era1        := Version | block-tuple* | other-entries* | Accumulator | BlockIndex
//! block-tuple := CompressedHeader | CompressedBody | CompressedReceipts | TotalDifficulty
//! ```
//!
//! Header, body (`[transactions, ommers]`) and receipts are RLP in the snappy framing format; the
//! total difficulty is a 32-byte little-endian integer; the accumulator is the SSZ root of the
//! `(block hash, total difficulty)` records ([`accumulator`]); the block index holds the starting
//! number, one offset per block (from the index entry to the block's `CompressedHeader` entry)
//! and the count. An archive holds at most [`MAX_BLOCKS_PER_ERA1`] blocks.
//!
//! Typed receipts are stored in their network form, as geth writes them: an RLP string holding
//! `type ‖ rlp(receipt)` inside the receipts list, next to plain-list legacy receipts.
//!
//! [`Era1Reader`] checks the layout when it opens a file, decodes blocks on demand and
//! [`verifies`](Era1Reader::verify) the whole archive; [`Era1Writer`] builds one; [`Era1FileName`]
//! formats and parses the canonical file names. No input makes any of them panic.

pub mod accumulator;
mod block;
pub mod e2s;
mod error;
mod file_name;
mod reader;
mod snappy;
mod writer;

#[cfg(test)]
mod tests;

pub use accumulator::{accumulator_root, HeaderRecord};
pub use block::Era1Block;
pub use error::{EntryContext, Era1Error, HeaderRoot};
pub use file_name::{Era1FileName, Era1FileNameError, ERA1_EXTENSION};
pub use reader::{Era1Blocks, Era1Reader};
pub use writer::{Era1Archive, Era1Writer};

/// The most blocks an era1 archive holds (the limit of the accumulator's SSZ list).
pub const MAX_BLOCKS_PER_ERA1: usize = 8192;
