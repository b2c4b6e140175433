//! A linear chain kept in a persistent [`Store`]: the import path of `velarium import --datadir`.
//!
//! Each block is validated, executed, checked against its header (gas, receipts, bloom, state
//! root) and only then written, with its state changes and the new head, in one store
//! transaction: a kill at any moment leaves a verified block as the stored head, with the state
//! that belongs to it, and reopening resumes from there. Blocks at or below the head that the
//! store already holds are skipped; a block that does not extend the head is an error naming
//! both. The world state stays in memory next to the store (loaded once at open), with
//! incremental tries, so a block costs what it changes, not what the state holds; only the
//! last [`velarium_store::BLOCK_HASH_WINDOW`] block hashes and a few recent headers are kept.

use crate::{verify, EthBlock, ImportError, PostExecutionError};
use alloy_consensus::Header;
use alloy_primitives::B256;
use std::{
    collections::VecDeque,
    path::Path,
    time::{Duration, Instant},
};
use velarium_chainspec::ChainSpec;
use velarium_executor::{recover_senders, BlockInput, Engine, ParallelStats};
use velarium_state::InMemoryState;
use velarium_store::{BlockRecord, Store, StoreError, StoredBlock, BLOCK_HASH_WINDOW};

/// Headers kept in memory below the head: ommers may be up to six generations old.
const RECENT_BLOCKS: usize = 8;

/// Why a block was not imported into a [`PersistentChain`].
#[derive(Debug, thiserror::Error)]
pub enum PersistentImportError {
    /// The block is invalid (the store stays at its parent).
    #[error(transparent)]
    Invalid(#[from] ImportError),
    /// The block is neither stored nor the child of the head.
    #[error("block {number} ({hash}) does not extend the head #{head_number} ({head_hash}): its parent is {parent}")]
    NotNext {
        /// The block's number.
        number: u64,
        /// The block's hash.
        hash: B256,
        /// Its parent's hash.
        parent: B256,
        /// The head's number.
        head_number: u64,
        /// The head's hash.
        head_hash: B256,
    },
    /// The store holds another block at this height: the file is a different chain.
    #[error("block {number} ({got}) differs from the stored block {number} ({stored}): a different chain")]
    Conflict {
        /// The height.
        number: u64,
        /// The stored block's hash.
        stored: B256,
        /// The given block's hash.
        got: B256,
    },
    /// The store failed (I/O, full disk, corruption): the block was not committed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a datadir could not be opened for a chain.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The datadir holds a chain with another genesis.
    #[error("the datadir holds a chain with genesis {stored}, not {given}: use another --datadir")]
    GenesisMismatch {
        /// The stored genesis hash.
        stored: B256,
        /// The genesis given.
        given: B256,
    },
    /// The stored head's header is missing or the stored state disagrees with it.
    #[error("the store is inconsistent: {0}")]
    Inconsistent(String),
}

/// What importing one block did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The store already held it (a resumed import).
    Skipped,
    /// Verified and committed.
    Imported(Box<ImportedBlock>),
}

/// A block verified and committed, with its costs.
#[derive(Debug, Clone)]
pub struct ImportedBlock {
    /// Its hash.
    pub hash: B256,
    /// Number of transactions.
    pub tx_count: usize,
    /// Gas used.
    pub gas_used: u64,
    /// Executing it (sender recovery included).
    pub execution: Duration,
    /// Applying its changes and computing the state root.
    pub state_root: Duration,
    /// Writing it to the store.
    pub commit: Duration,
    /// The parallel engine's counters (zero when it ran sequentially).
    pub stats: ParallelStats,
    /// The block's analysis, when it was due (see [`PersistentChain::set_analysis_every`]).
    pub analysis: Option<BlockAnalysis>,
}

/// What a block's parallelism was worth, measured beside its import: the oracle's time on the
/// same pre-state and the critical-path bound of its transactions' real accesses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockAnalysis {
    /// The sequential oracle's execution time of the block.
    pub sequential: Duration,
    /// The configured engine's execution time of the block (sender recovery and checks
    /// excluded, as for `sequential`).
    pub engine: Duration,
    /// The gas-weighted critical-path bound on the block's speedup (see
    /// `velarium_analyzer::critical_path`).
    pub bound: f64,
}

impl BlockAnalysis {
    /// The engine's speedup over the oracle on this block.
    pub fn speedup(&self) -> f64 {
        self.sequential.as_secs_f64() / self.engine.as_secs_f64().max(1e-9)
    }
}

/// A chain imported into a persistent store (see the module docs).
#[derive(Debug)]
pub struct PersistentChain {
    spec: ChainSpec,
    engine: Engine,
    store: Store,
    state: InMemoryState,
    /// The head and up to [`RECENT_BLOCKS`] - 1 blocks below it, oldest first.
    recent: VecDeque<StoredBlock>,
    /// A commit is made durable when the last durable one is older than this.
    sync_interval: Duration,
    last_sync: Instant,
    /// Every this many blocks, a block is also analysed (0: never).
    analysis_every: u64,
}

impl PersistentChain {
    /// Opens the chain in `datadir`: a fresh datadir is initialised with `genesis` (header and
    /// state), a used one must hold the same genesis and resumes at its head.
    ///
    /// # Errors
    ///
    /// See [`OpenError`].
    pub fn open(
        datadir: &Path,
        mut spec: ChainSpec,
        genesis: &Header,
        genesis_state: InMemoryState,
        engine: Engine,
    ) -> Result<Self, OpenError> {
        let store = Store::open(datadir)?;
        let given = genesis.hash_slow();
        let mut state = match store.genesis_hash()? {
            None => {
                store.init_genesis(genesis, &genesis_state)?;
                genesis_state
            }
            Some(stored) if stored != given => {
                return Err(OpenError::GenesisMismatch { stored, given })
            }
            Some(_) => store.load_state()?,
        };
        let head = store.head()?.ok_or_else(|| OpenError::Inconsistent("no head".into()))?;
        if let Some(number) = store.merge_block()? {
            spec.set_merge_block(number);
        }
        let mut recent = VecDeque::with_capacity(RECENT_BLOCKS);
        let from = head.number.saturating_sub(RECENT_BLOCKS as u64 - 1);
        for number in from..=head.number {
            let block = store.block(number)?.ok_or_else(|| {
                OpenError::Inconsistent(format!("block {number} below the head is missing"))
            })?;
            recent.push_back(block);
        }
        let top = recent.back().expect("the head was read");
        if top.hash != head.hash {
            return Err(OpenError::Inconsistent(format!(
                "head {} is not block {}",
                head.hash, head.number
            )));
        }
        if head.number == genesis.number {
            state.insert_block_hash(genesis.number, given);
        }
        let root = state.state_root();
        if root != top.header.state_root {
            return Err(OpenError::Inconsistent(format!(
                "stored state root {root} differs from head #{}'s {}",
                head.number, top.header.state_root
            )));
        }
        Ok(Self {
            spec,
            engine,
            store,
            state,
            recent,
            sync_interval: Duration::from_secs(1),
            last_sync: Instant::now(),
            analysis_every: 0,
        })
    }

    /// Sets how old the last durable commit may get before the next commit is made durable
    /// (zero: every block is durable when its commit returns). Commits are atomic either way:
    /// a crash loses at most this much of the most recent work, never consistency.
    pub fn set_sync_interval(&mut self, interval: Duration) {
        self.sync_interval = interval;
    }

    /// Analyses every `every`-th block (by number; 0: none) beside its import: the block is
    /// executed once more by the oracle and once on one worker with access tracing, on the
    /// same pre-state, for [`ImportedBlock::analysis`] (about three times the block's
    /// execution cost; nothing else changes).
    pub fn set_analysis_every(&mut self, every: u64) {
        self.analysis_every = every;
    }

    /// The head block.
    pub fn head(&self) -> &StoredBlock {
        self.recent.back().expect("a chain always has a head")
    }

    /// The chain spec (with the merge block resolved once reached).
    pub const fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The head's state.
    pub const fn state(&self) -> &InMemoryState {
        &self.state
    }

    /// The store.
    pub const fn store(&self) -> &Store {
        &self.store
    }

    /// Makes every commit durable.
    ///
    /// # Errors
    ///
    /// On a write failure.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.store.sync()?;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Imports `block` (see the module docs). On any error the store and the chain stay at the
    /// previous head.
    ///
    /// # Errors
    ///
    /// See [`PersistentImportError`].
    pub fn import_block(&mut self, block: &EthBlock) -> Result<Outcome, PersistentImportError> {
        let header = &block.header;
        let hash = header.hash_slow();
        let head = self.head();
        if header.number <= head.header.number {
            let stored = self.stored_hash(header.number)?;
            return match stored {
                Some(stored) if stored == hash => Ok(Outcome::Skipped),
                Some(stored) => Err(PersistentImportError::Conflict {
                    number: header.number,
                    stored,
                    got: hash,
                }),
                None => Err(StoreError::Corrupt(format!(
                    "block {} below the head is missing",
                    header.number
                ))
                .into()),
            };
        }
        if header.parent_hash != head.hash || header.number != head.header.number + 1 {
            return Err(PersistentImportError::NotNext {
                number: header.number,
                hash,
                parent: header.parent_hash,
                head_number: head.header.number,
                head_hash: head.hash,
            });
        }
        let parent_td = head.total_difficulty;
        let resolved = self.spec.pending_merge_ttd().filter(|ttd| parent_td >= *ttd).map(|_| {
            let mut spec = self.spec.clone();
            spec.set_merge_block(header.number);
            spec
        });
        let spec = resolved.as_ref().unwrap_or(&self.spec);
        velarium_consensus::validate_header_standalone(spec, header).map_err(ImportError::from)?;
        velarium_consensus::validate_header_against_parent(spec, header, &head.header)
            .map_err(ImportError::from)?;
        velarium_consensus::validate_block_pre_execution(spec, block).map_err(ImportError::from)?;
        let ancestor = |h: &B256| {
            self.recent
                .iter()
                .find(|b| b.hash == *h)
                .map(|b| (b.header.clone(), b.ommer_hashes.clone()))
        };
        velarium_consensus::validate_ommers(spec, header, &block.body.ommers, &ancestor)
            .map_err(ImportError::from)?;

        let started = Instant::now();
        let transactions = recover_senders(&block.body.transactions).map_err(ImportError::from)?;
        let input = BlockInput {
            header,
            transactions: &transactions,
            ommers: &block.body.ommers,
            withdrawals: block.body.withdrawals.as_ref().map(|w| w.as_slice()),
        };
        let engine_started = Instant::now();
        let (output, stats) =
            self.engine.execute_with_stats(spec, &self.state, input).map_err(ImportError::from)?;
        let engine_time = engine_started.elapsed();
        verify::verify_outputs(spec, header, &output).map_err(ImportError::from)?;
        let execution = started.elapsed();
        let analysis =
            if self.analysis_every > 0 && header.number.is_multiple_of(self.analysis_every) {
                Some(analyse(spec, &self.state, input, engine_time)?)
            } else {
                None
            };

        let started = Instant::now();
        self.state.apply_bundle(&output.bundle);
        let state_root = self.state.state_root();
        if state_root != header.state_root {
            // The in-memory state went ahead of the store: take it back from the store.
            self.state = self.store.load_state()?;
            self.state.state_root();
            let mismatch =
                PostExecutionError::StateRoot { expected: header.state_root, got: state_root };
            return Err(ImportError::from(mismatch).into());
        }
        let root_time = started.elapsed();

        let started = Instant::now();
        let ommer_hashes: Vec<B256> = block.body.ommers.iter().map(Header::hash_slow).collect();
        let total_difficulty = parent_td + header.difficulty;
        let record = BlockRecord {
            header,
            hash,
            total_difficulty,
            ommer_hashes: &ommer_hashes,
            receipts: &output.receipts,
            bundle: &output.bundle,
        };
        let durable = self.last_sync.elapsed() >= self.sync_interval;
        let merge_block = resolved.is_some().then_some(header.number);
        if let Err(err) = self.store.commit_block(&record, merge_block, durable) {
            self.state = self.store.load_state()?;
            return Err(err.into());
        }
        if durable {
            self.last_sync = Instant::now();
        }
        let commit = started.elapsed();

        if let Some(spec) = resolved {
            self.spec = spec;
        }
        self.state.insert_block_hash(header.number, hash);
        if header.number >= BLOCK_HASH_WINDOW && header.number.is_multiple_of(BLOCK_HASH_WINDOW) {
            self.state.prune_block_hashes_below(header.number - (BLOCK_HASH_WINDOW - 1));
        }
        if self.recent.len() == RECENT_BLOCKS {
            self.recent.pop_front();
        }
        self.recent.push_back(StoredBlock {
            header: header.clone(),
            hash,
            total_difficulty,
            ommer_hashes,
        });
        Ok(Outcome::Imported(Box::new(ImportedBlock {
            hash,
            tx_count: transactions.len(),
            gas_used: header.gas_used,
            execution,
            state_root: root_time,
            commit,
            stats,
            analysis,
        })))
    }

    /// The stored canonical hash at `number`.
    fn stored_hash(&self, number: u64) -> Result<Option<B256>, StoreError> {
        if let Some(block) = self.recent.iter().find(|b| b.header.number == number) {
            return Ok(Some(block.hash));
        }
        Ok(self.store.block(number)?.map(|b| b.hash))
    }
}

/// A block's analysis (see [`PersistentChain::set_analysis_every`]) on its pre-state.
fn analyse(
    spec: &ChainSpec,
    state: &InMemoryState,
    input: BlockInput<'_>,
    engine: Duration,
) -> Result<BlockAnalysis, ImportError> {
    let started = Instant::now();
    Engine::Sequential.execute_with_stats(spec, state, input)?;
    let sequential = started.elapsed();
    let trace = velarium_executor::trace_accesses(spec, state, input)?;
    let bound = velarium_analyzer::critical_path(&trace).bound;
    Ok(BlockAnalysis { sequential, engine, bound })
}
