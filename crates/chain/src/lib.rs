//! Block import: decode, validate, execute, verify, and choose the head.
//!
//! The pipeline for one block ([`Blockchain::import_block`]):
//!
//! ```text
//!  RLP ──decode──▶ Block ──consensus checks──▶ execute on parent state ──verify──▶ commit
//!                  (rlp.rs)  (velarium-consensus)    (velarium-executor)  (verify.rs)  fork choice
//! ```
//!
//! A block that fails any step is rejected with an [`ImportError`] naming the rule, and the
//! chain is exactly as it was before that block. States are kept per block so side chains of
//! the conformance fixtures work; [`Blockchain::set_prune`] keeps only the head's state for
//! long linear imports.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod genesis;
pub mod persistent;
pub mod rlp;
pub mod verify;

use alloy_consensus::{Block, Header, TxEnvelope};
use alloy_primitives::{map::HashMap, B256, U256};
use std::sync::Arc;
use velarium_chainspec::ChainSpec;
use velarium_consensus::ConsensusError;
use velarium_executor::{recover_senders, BlockInput, BlockOutput, Engine, ExecutionError};
use velarium_state::InMemoryState;
pub use verify::PostExecutionError;

/// Blocks (headers and ancestor hashes) a pruned chain keeps below its head: more than
/// `BLOCKHASH` (256) and ommer checks (7 generations) reach back. It forgets older ones every
/// 64 blocks.
pub const KEPT_BLOCKS: u64 = 320;

/// An Ethereum block with typed transactions.
pub type EthBlock = Block<TxEnvelope>;

/// Why a block was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The block's parent is not known.
    #[error("unknown parent {0}")]
    UnknownParent(B256),
    /// The block is already part of the chain.
    #[error("block {0} already imported")]
    AlreadyKnown(B256),
    /// A header or body rule failed before execution.
    #[error("consensus: {0}")]
    Consensus(#[from] ConsensusError),
    /// Execution failed (invalid transaction, failed system call, ...).
    #[error("execution: {0}")]
    Execution(#[from] ExecutionError),
    /// Execution succeeded but its results disagree with the header.
    #[error("post-execution: {0}")]
    PostExecution(#[from] PostExecutionError),
}

/// A block known to the chain, with its post-state.
#[derive(Debug, Clone)]
struct ChainEntry {
    header: Header,
    ommer_hashes: Vec<B256>,
    total_difficulty: U256,
    /// Post-state of the block; `None` once pruned.
    state: Option<Arc<InMemoryState>>,
}

/// What importing a valid block did.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The block's hash.
    pub hash: B256,
    /// Whether the block became the head.
    pub is_head: bool,
    /// The execution output (receipts, gas, state changes).
    pub output: BlockOutput,
    /// Number of transactions.
    pub tx_count: usize,
}

/// An in-memory block tree with the state of each block and a fork-choice rule.
#[derive(Debug)]
pub struct Blockchain {
    spec: ChainSpec,
    engine: Engine,
    blocks: HashMap<B256, ChainEntry>,
    head: B256,
    prune: bool,
}

impl Blockchain {
    /// A chain holding only `genesis` with its state.
    pub fn new(spec: ChainSpec, genesis: Header, mut state: InMemoryState, engine: Engine) -> Self {
        let hash = genesis.hash_slow();
        state.insert_block_hash(genesis.number, hash);
        let entry = ChainEntry {
            total_difficulty: genesis.difficulty,
            header: genesis,
            ommer_hashes: Vec::new(),
            state: Some(Arc::new(state)),
        };
        let mut blocks = HashMap::default();
        blocks.insert(hash, entry);
        Self { spec, engine, blocks, head: hash, prune: false }
    }

    /// Keep only the head's state and the last [`KEPT_BLOCKS`] blocks (for long linear imports,
    /// in memory bounded by the state, not the chain's length); side chains then fail to import.
    pub fn set_prune(&mut self, prune: bool) {
        self.prune = prune;
    }

    /// Blocks the chain holds (genesis included).
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// The chain specification (with the merge block resolved once reached).
    pub const fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The head block's hash.
    pub const fn head_hash(&self) -> B256 {
        self.head
    }

    /// The head block's header.
    pub fn head(&self) -> &Header {
        &self.blocks[&self.head].header
    }

    /// The head block's post-state.
    pub fn head_state(&self) -> &InMemoryState {
        self.blocks[&self.head].state.as_deref().expect("the head's state is never pruned")
    }

    /// A known block's header.
    pub fn header(&self, hash: &B256) -> Option<&Header> {
        self.blocks.get(hash).map(|e| &e.header)
    }

    /// With pruning on, every 64 blocks: forgets the blocks and ancestor hashes more than
    /// [`KEPT_BLOCKS`] below the head, so a long linear import holds a bounded window.
    fn forget_old_blocks(&mut self, head_number: u64) {
        if head_number <= KEPT_BLOCKS || !head_number.is_multiple_of(64) {
            return;
        }
        let oldest = head_number - KEPT_BLOCKS;
        self.blocks.retain(|_, entry| entry.header.number >= oldest);
        if let Some(state) = self.blocks.get_mut(&self.head).and_then(|e| e.state.as_mut()) {
            if let Some(state) = Arc::get_mut(state) {
                state.prune_block_hashes_below(oldest);
            }
        }
    }

    /// With pruning on, the state of `parent` when it is the head and nothing else holds it:
    /// taken out of the chain (the caller puts it back if the child is not imported).
    fn take_head_state(&mut self, parent: &B256) -> Option<InMemoryState> {
        if !self.prune || *parent != self.head {
            return None;
        }
        let entry = self.blocks.get_mut(parent)?;
        match Arc::try_unwrap(entry.state.take()?) {
            Ok(state) => Some(state),
            Err(shared) => {
                entry.state = Some(shared);
                None
            }
        }
    }

    /// Validates, executes and verifies `block`; on success stores it and applies fork choice.
    pub fn import_block(&mut self, block: &EthBlock) -> Result<Imported, ImportError> {
        let header = &block.header;
        let hash = header.hash_slow();
        if self.blocks.contains_key(&hash) {
            return Err(ImportError::AlreadyKnown(hash));
        }
        let parent = self
            .blocks
            .get(&header.parent_hash)
            .ok_or(ImportError::UnknownParent(header.parent_hash))?;
        let parent_state =
            parent.state.clone().ok_or(ImportError::UnknownParent(header.parent_hash))?;
        let parent_td = parent.total_difficulty;

        // A merge by total difficulty: the first block whose parent reached TTD is post-merge.
        // The resolved spec is kept only if this block is imported.
        let resolved = self.spec.pending_merge_ttd().filter(|ttd| parent_td >= *ttd).map(|_| {
            let mut spec = self.spec.clone();
            spec.set_merge_block(header.number);
            spec
        });
        let spec = resolved.as_ref().unwrap_or(&self.spec);

        velarium_consensus::validate_header_standalone(spec, header)?;
        velarium_consensus::validate_header_against_parent(spec, header, &parent.header)?;
        velarium_consensus::validate_block_pre_execution(spec, block)?;
        let ancestor =
            |h: &B256| self.blocks.get(h).map(|e| (e.header.clone(), e.ommer_hashes.clone()));
        velarium_consensus::validate_ommers(spec, header, &block.body.ommers, &ancestor)?;

        let transactions = recover_senders(&block.body.transactions)?;
        let input = BlockInput {
            header,
            transactions: &transactions,
            ommers: &block.body.ommers,
            withdrawals: block.body.withdrawals.as_ref().map(|w| w.as_slice()),
        };
        let output = self.engine.execute(spec, parent_state.as_ref(), input)?;
        verify::verify_outputs(spec, header, &output)?;

        // Fork choice: before the merge the heaviest chain wins (first seen on ties); after it,
        // the consensus layer picks the head, which in an ordered import is the newest block.
        let total_difficulty = parent_td + header.difficulty;
        let head_td = self.blocks[&self.head].total_difficulty;
        let is_head = spec.is_merged(header.number) || total_difficulty > head_td;

        // A linear import that keeps only the head's state takes the parent's state over
        // (undoing the block if its root is wrong) instead of copying the whole state.
        drop(parent_state);
        let taken = if is_head { self.take_head_state(&header.parent_hash) } else { None };
        let (mut state, undo) = match taken {
            Some(mut state) => {
                let undo = state.apply_bundle_undoable(&output.bundle);
                (state, Some(undo))
            }
            None => {
                let parent = &self.blocks[&header.parent_hash];
                let mut state = InMemoryState::clone(
                    parent.state.as_deref().expect("the parent's state was there above"),
                );
                state.apply_bundle(&output.bundle);
                (state, None)
            }
        };
        let state_root = state.state_root();
        if state_root != header.state_root {
            if let Some(undo) = undo {
                state.undo(undo);
                let parent = self.blocks.get_mut(&header.parent_hash).expect("parent known");
                parent.state = Some(Arc::new(state));
            }
            return Err(PostExecutionError::StateRoot {
                expected: header.state_root,
                got: state_root,
            }
            .into());
        }
        state.insert_block_hash(header.number, hash);

        let entry = ChainEntry {
            header: header.clone(),
            ommer_hashes: block.body.ommers.iter().map(Header::hash_slow).collect(),
            total_difficulty,
            state: Some(Arc::new(state)),
        };
        if let Some(spec) = resolved {
            self.spec = spec;
        }
        let parent_hash = header.parent_hash;
        self.blocks.insert(hash, entry);
        if is_head {
            self.head = hash;
            if self.prune {
                if let Some(parent) = self.blocks.get_mut(&parent_hash) {
                    parent.state = None;
                }
                self.forget_old_blocks(header.number);
            }
        }
        Ok(Imported { hash, is_head, output, tx_count: transactions.len() })
    }
}
