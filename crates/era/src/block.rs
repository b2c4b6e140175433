//! The decoded content of one era1 block tuple.

use alloy_consensus::{Block, BlockBody, Header, ReceiptEnvelope, TxEnvelope};
use alloy_primitives::{B256, U256};

/// One block of an era1 archive: header, body, receipts and total difficulty.
///
/// The body is the pre-merge `[transactions, ommers]` pair (`withdrawals` is `None` for every
/// block era1 holds); transactions and receipts use their network encoding, so typed ones
/// (EIP-2930, EIP-1559) decode to their envelope variants and round-trip byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Era1Block {
    /// Block header.
    pub header: Header,
    /// Transactions and ommers.
    pub body: BlockBody<TxEnvelope>,
    /// One receipt per transaction, in order, with its logs bloom.
    pub receipts: Vec<ReceiptEnvelope>,
    /// Total difficulty of the chain up to and including this block.
    pub total_difficulty: U256,
}

impl Era1Block {
    /// Bundles a block with its receipts and total difficulty.
    pub fn new(
        block: Block<TxEnvelope>,
        receipts: Vec<ReceiptEnvelope>,
        total_difficulty: U256,
    ) -> Self {
        Self { header: block.header, body: block.body, receipts, total_difficulty }
    }

    /// Block number.
    pub const fn number(&self) -> u64 {
        self.header.number
    }

    /// Keccak-256 hash of the RLP-encoded header.
    pub fn hash(&self) -> B256 {
        self.header.hash_slow()
    }

    /// The block (header and body), dropping receipts and total difficulty.
    pub fn into_block(self) -> Block<TxEnvelope> {
        Block::new(self.header, self.body)
    }
}
