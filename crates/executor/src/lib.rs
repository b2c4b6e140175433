//! Block execution: the sequential oracle (and, from the parallel-engine issue on, the engine).
//!
//! [`execute_sequential`] runs a block exactly as reth does: alloy-evm's `EthBlockExecutor` over
//! revm's `State`, with the pre-execution system calls (EIP-2935 block hashes, EIP-4788 beacon
//! root), every transaction, and the post-execution changes (EIP-6110/7002/7251 requests,
//! withdrawals, block and ommer rewards, the DAO fork's irregular state change). Its
//! [`BlockOutput`] is the reference every other engine must reproduce bit for bit.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod chains;
mod eip7610;
mod parallel;
mod sequential;
pub mod tx_cost;

pub use chains::{
    chained, dominant_callee, dominant_callee_by, learn as learn_chain,
    route as route_learned_chain, ChainKey, LearnedRoute, REPROBE_EVERY,
};
pub use eip7610::{CollisionGuard, StorageProbe};

pub use parallel::{
    check_transfers, credit_beneficiary, engine_faults, execute_parallel, execute_parallel_with,
    execute_transactions, execute_transactions_traced, panic_message, pin_workers, start_streaming,
    trace_accesses, AccessKey, EngineFault, HotSpot, Mechanisms, ParallelStats, PhaseTimes,
    SpeculativeTx, StreamingRun, TxDbError, HOT_SPOT_CONFLICTS, MAX_HOT_SPOTS,
};
pub use sequential::{evm_env, execute_sequential, time_transactions};

use alloy_consensus::{Header, ReceiptEnvelope, TxEnvelope};
use alloy_eips::{eip4895::Withdrawal, eip7685::Requests};
use alloy_evm::block::BlockExecutionError;
use alloy_primitives::Address;
use revm::database::BundleState;

/// A transaction with its recovered sender.
pub type RecoveredTx = alloy_consensus::transaction::Recovered<TxEnvelope>;

/// Everything needed to execute one block on top of its parent's state.
#[derive(Debug, Clone, Copy)]
pub struct BlockInput<'a> {
    /// The block's header.
    pub header: &'a Header,
    /// Transactions with recovered senders, in block order.
    pub transactions: &'a [RecoveredTx],
    /// Ommer (uncle) headers.
    pub ommers: &'a [Header],
    /// Withdrawals (Shanghai and later).
    pub withdrawals: Option<&'a [Withdrawal]>,
}

/// The result of executing a block: what the header commits to, and the state changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutput {
    /// One receipt per transaction (status, cumulative gas, logs, bloom).
    pub receipts: Vec<ReceiptEnvelope>,
    /// Total gas used by the block.
    pub gas_used: u64,
    /// Total blob gas used by the block's transactions (0 before Cancun).
    pub blob_gas_used: u64,
    /// EIP-7685 requests (empty before Prague).
    pub requests: Requests,
    /// State changes with original values, as revm's `State::take_bundle` returns them.
    pub bundle: BundleState,
}

impl BlockOutput {
    /// Joins alloy-evm's result of a block with the state changes taken from its `State`.
    pub fn new(
        result: alloy_evm::block::BlockExecutionResult<ReceiptEnvelope>,
        bundle: BundleState,
    ) -> Self {
        Self {
            receipts: result.receipts,
            gas_used: result.gas_used,
            blob_gas_used: result.blob_gas_used,
            requests: result.requests,
            bundle,
        }
    }
}

/// Why a block could not be executed. The block is invalid; the state is untouched.
#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    /// alloy-evm rejected the block (an invalid transaction, a failed system call, ...).
    #[error(transparent)]
    Block(#[from] BlockExecutionError),
    /// A transaction's sender could not be recovered from its signature.
    #[error("transaction {index}: invalid signature")]
    InvalidSignature {
        /// Position of the transaction in the block.
        index: usize,
    },
    /// A system contract the block must call (EIP-7002, EIP-7251) has no code.
    #[error("system contract {0} has no code")]
    SystemContractEmpty(Address),
    /// Reading the parent state failed (the database's error, as text); not the block's fault.
    #[error("state read failed: {0}")]
    StateRead(String),
    /// The parallel engine itself failed (a worker panicked, an invariant broke); not the
    /// block's fault. [`Engine`] never returns it: it re-executes the block on the oracle.
    #[error("parallel engine fault: {0}")]
    Engine(#[from] EngineFault),
}

/// Recovers the senders of a block's transactions, on several threads for a block of many
/// transactions: recovery is the largest cost of importing a block of plain transfers. (With
/// libsecp256k1 instead of k256 a recovery is several times faster, but enabling alloy's
/// `secp256k1` feature made the parallel engine's mainnet replay about 7% slower here, 1.21x
/// against 1.30x in interleaved rounds, so it stays off.)
pub fn recover_senders(txs: &[TxEnvelope]) -> Result<Vec<RecoveredTx>, ExecutionError> {
    use alloy_consensus::transaction::SignerRecoverable;
    let recover =
        |offset: usize, part: &[TxEnvelope]| -> Result<Vec<RecoveredTx>, ExecutionError> {
            part.iter()
                .enumerate()
                .map(|(i, tx)| {
                    let signer: Address = tx
                        .recover_signer()
                        .map_err(|_| ExecutionError::InvalidSignature { index: offset + i })?;
                    Ok(RecoveredTx::new_unchecked(tx.clone(), signer))
                })
                .collect()
        };
    if txs.len() < RECOVER_PARALLEL_FROM {
        return recover(0, txs);
    }
    // Asked once: the standard library reads the cgroup's CPU quota from /proc every time.
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let threads = *THREADS
        .get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(16));
    if threads < 2 {
        return recover(0, txs);
    }
    let chunk = txs.len().div_ceil(threads);
    let parts: Vec<Result<Vec<RecoveredTx>, ExecutionError>> = std::thread::scope(|s| {
        let handles: Vec<_> = txs
            .chunks(chunk)
            .enumerate()
            .map(|(k, part)| s.spawn(move || recover(k * chunk, part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    let mut out = Vec::with_capacity(txs.len());
    for part in parts {
        // The first invalid signature in block order is the one reported.
        out.extend(part?);
    }
    Ok(out)
}

/// Transactions from which [`recover_senders`] uses several threads (a recovery takes about
/// 100 µs; a thread far less to start).
const RECOVER_PARALLEL_FROM: usize = 64;

/// Which engine executes blocks. Every engine returns exactly the oracle's [`BlockOutput`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// The sequential oracle (alloy-evm's `EthBlockExecutor`, what reth runs today).
    #[default]
    Sequential,
    /// Block-STM on `threads` workers.
    Parallel {
        /// Worker threads.
        threads: usize,
        /// Blocks with fewer transactions, or made mostly of one sender's chain (see
        /// [`mostly_one_chain`]), run on the oracle instead (0: always Block-STM).
        min_txs: usize,
    },
}

impl core::fmt::Display for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Sequential => f.write_str("sequential (the oracle)"),
            Self::Parallel { threads, min_txs: 0 } => {
                write!(f, "parallel ({threads} threads, Block-STM on every block)")
            }
            Self::Parallel { threads, min_txs } => write!(
                f,
                "parallel ({threads} threads; on the oracle: blocks under {min_txs} transactions \
                 (under {} with {} Mgas or more), chains of one sender's calls, and blocks \
                 dominated by a contract whose last Block-STM block ran as a chain; on one \
                 worker: blocks under {} gas or (as learned) {} µs a transaction while the \
                 cores are far apart)",
                min_txs / 3,
                DEFAULT_PARALLEL_MIN_GAS / 1_000_000,
                CHEAP_TX_GAS,
                CHEAP_TX_NANOS as f64 / 1000.0
            ),
        }
    }
}

/// Below this many transactions a block runs sequentially by default (unless it holds
/// [`DEFAULT_PARALLEL_MIN_GAS`], see [`worth_block_stm`]).
///
/// Measured, not guessed: on the 47 mainnet blocks of `../shared/fixtures/mainnet-blocks`
/// (`velarium replay --threads 2 --repeat 9`, 2-core machine) every block with fewer than 24
/// transactions but one (4369999, 6.6 Mgas) was slower through Block-STM than through the
/// oracle (0.10x-0.96x), and the criterion bench `small_blocks` shows no crossover below 128
/// cheap transfers. Blocks at or above it are where Block-STM can win; re-measure when the
/// engine's fixed costs change.
pub const DEFAULT_PARALLEL_MIN_TXS: usize = 24;

/// The most workers the parallel engine uses by default ([`default_workers`]); more can be
/// asked for explicitly (`--threads`, `--velarium.threads`).
///
/// Measured, not guessed, on the one many-core machine lent so far, a 16-core Xeon (one socket,
/// a 280 ns core-to-core round trip), 2026-12-05: `velarium bench --threads 1,2,4,8,16 --reps 5`
/// gave the mainnet blocks of 24 transactions or more a geometric mean of 1.24x at 2 workers,
/// 1.48x at 4, 1.38x at 8 and 1.25x at 16, with 6, 6, 9 and 10 of them below 0.97x (worst
/// 0.78x, 0.74x, 0.38x, 0.30x), and the generated 1,000-transaction workloads 1.01x, 1.05x,
/// 0.90x and 0.75x (`velarium replay --repeat 5`, one thread count per run: 1.31x, 1.40x, 1.49x,
/// 1.26x). Past four workers a mainnet-size block has too little work per worker and pays for
/// more of them in the shared scheduler counters and cross-core reads; only gigagas blocks and
/// the heaviest workloads kept scaling (1,000 swaps: 3.4x at 4, 8.6x at 16), and those can ask
/// for more workers.
pub const DEFAULT_MAX_WORKERS: usize = 4;

/// The default worker count of the parallel engine: the machine's cores, at most
/// [`DEFAULT_MAX_WORKERS`].
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(DEFAULT_MAX_WORKERS)
}

/// The gas (the header's `gas_used`) from which a block of at least a third of the small-block
/// threshold's transactions (8 of [`DEFAULT_PARALLEL_MIN_TXS`]) is worth Block-STM under it:
/// what makes a block small is how little work it holds, and the transaction count is only a
/// proxy for it. Measured on the mainnet fixtures (2026-12-05, `velarium bench --workloads
/// mainnet`, Block-STM forced, 2 threads): 4369999 (22 transactions, 6.6 Mgas) 1.71x; the small
/// blocks that lost (0.21x-0.93x) all hold under 3 Mgas or under 8 transactions.
pub const DEFAULT_PARALLEL_MIN_GAS: u64 = 5_000_000;

/// Whether the parallel engine with small-block threshold `min_txs` (see
/// [`DEFAULT_PARALLEL_MIN_TXS`]) runs `block` through Block-STM rather than the oracle: a block
/// large enough (in transactions, or in gas with a third of `min_txs` transactions) that is not
/// [`mostly_one_chain`]. A threshold of 0 forces Block-STM.
pub fn worth_block_stm(block: BlockInput<'_>, min_txs: usize) -> bool {
    if min_txs == 0 {
        return true;
    }
    let txs = block.transactions.len();
    let large =
        txs >= min_txs || (txs >= min_txs / 3 && block.header.gas_used >= DEFAULT_PARALLEL_MIN_GAS);
    large && !mostly_one_chain(block.transactions)
}

/// Blocks whose transactions average less gas than this (the header's `gas_used` over the
/// transaction count: mostly plain transfers, as a pool's payouts) are cheap (see
/// [`workers_for`]). On the mainnet fixtures the blocks between 21,000 and 24,500 gas a
/// transaction cost the oracle 1.7-4.8 µs a transaction and lost to sequential execution at 2
/// workers on far cores (0.63x-0.94x), while 13217637 (27,300 gas, 7.3 µs) and most blocks
/// above kept winning there (1.19x and more).
pub const CHEAP_TX_GAS: u64 = 26_000;

/// Blocks whose transactions are predicted to take less than this (ns) each on one worker
/// (their gas at the rate a sample of the last blocks' transactions of the fork took, see
/// [`tx_cost`]) are cheap too, whatever their gas (see [`workers_for`]). Gas is only a proxy
/// for time, and its rate moves with the forks and the machine: 116525 (2016, 31,600 gas and
/// 3.1 µs a transaction in the oracle) and 4330482 (2017, 28,100 gas, 3.7 µs) lost at 2
/// workers on far cores (0.72x, 0.87x) as the cheap modern blocks did, where one worker runs
/// them at 1.0x-1.2x. Measured (2026-12-07, the 47 mainnet blocks, Block-STM on 1 and 2 workers
/// on near cores): the sample prices those two at 1.8 and 2.5 µs a transaction on one worker
/// (2.6 and 3.3 µs on two, before [`tx_cost::MULTI_WORKER_PERCENT`]), the cheap modern blocks
/// at 1.1-3.0 µs, and the cheapest block that won on far cores, 13217637 (7.1 µs in the
/// oracle), at 5.0 µs (5.6 µs on two).
pub const CHEAP_TX_NANOS: u64 = 4_000;

/// The core-to-core round trip (ns) from which the engine's cores count as far apart: they
/// share no cache (see `velarium_numa_runtime::placement`). Near cores read 60-130 ns on the
/// 2-core development VM, far ones 280-650 ns; the lent 16-core Xeon read 250-290 ns.
pub const FAR_ROUND_TRIP_NS: u64 = 200;

/// How old the worker pool's last placement probe may be for [`workers_for`] to go by it.
const PLACEMENT_MAX_AGE: std::time::Duration = std::time::Duration::from_millis(100);

/// The workers the parallel engine gives `block` (of fork `spec`) when asked for `threads`:
/// one for a block of cheap transactions (see [`CHEAP_TX_GAS`], [`CHEAP_TX_NANOS`]) while the
/// worker pool's last probe (at most 100 ms old, `PLACEMENT_MAX_AGE`) found the cores far apart, else
/// `threads`.
///
/// Why: each transaction Block-STM runs crosses a few shared cache lines between the workers
/// (the scheduler's indices and status words, multi-version memory, the fold), so two workers
/// beat one only where a transaction costs more than those crossings. Where the cores share a
/// cache a crossing costs about 80 ns, and two workers run the payout blocks 1.1x-1.2x faster
/// than sequential execution; where they do not, it costs 300-600 ns, and the same blocks ran
/// at 0.63x-0.94x (`velarium replay --threads 2 --repeat 9`, 2026-12-05 22:45-23:00 UTC, rows
/// at 256-330 ns: 2179522, 5891667, 11814555, 12520364, 14396881, 15274915) where one worker
/// runs them at 0.9x-1.25x. Blocks of heavier transactions keep their workers at either
/// placement. With no recent probe (every worker-pool job of two workers or more ends with one
/// at most every 20 ms) the block gets `threads`, and so a probe. `VELARIUM_PLACEMENT=off`
/// turns the rule off.
pub fn workers_for(
    spec: revm::primitives::hardfork::SpecId,
    block: BlockInput<'_>,
    threads: usize,
) -> usize {
    if !placement_rule_on() {
        return threads;
    }
    let round_trip = velarium_numa_runtime::placement::recent_round_trip_ns(PLACEMENT_MAX_AGE);
    workers_at_round_trip(block, threads, round_trip, tx_cost::LEARNED.ps_per_gas(spec))
}

/// [`workers_for`] with the cores' recent round trip given (`None`: not measured lately) and
/// the fork's learned cost per gas (picoseconds; `None`: not learned, the gas alone decides).
pub fn workers_at_round_trip(
    block: BlockInput<'_>,
    threads: usize,
    round_trip_ns: Option<u64>,
    ps_per_gas: Option<u64>,
) -> usize {
    let txs = block.transactions.len().max(1) as u64;
    let gas_per_tx = block.header.gas_used / txs;
    let cheap = gas_per_tx < CHEAP_TX_GAS
        || ps_per_gas.is_some_and(|ps| gas_per_tx.saturating_mul(ps) / 1000 < CHEAP_TX_NANOS);
    match round_trip_ns {
        Some(ns) if threads > 1 && cheap && ns >= FAR_ROUND_TRIP_NS => 1,
        _ => threads,
    }
}

/// Whether [`workers_for`] goes by the cores' placement (`VELARIUM_PLACEMENT=off` says no).
fn placement_rule_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("VELARIUM_PLACEMENT").map_or(true, |v| !v.eq_ignore_ascii_case("off"))
    })
}

/// Whether most of a block's transactions follow an earlier one of the same sender and are not
/// plain value transfers (calls with data, creations): such a block is one nonce chain of
/// contract calls, executes in order whatever the engine, and cannot profit from Block-STM.
/// Unless Block-STM is forced (`min_txs == 0`), the parallel engine gives it to the oracle, at
/// sequential speed.
///
/// A wallet's plain transfers (a mining pool paying out) do not count: the engine's lazy
/// senders run them side by side. Measured 2026-12-05 (`velarium replay --threads 2 --repeat
/// 9`, 4 interleaved runs): the payout blocks 2179522, 5891667, 11814555, 12520364 at
/// 1.24x/1.07x/1.12x/1.08x through Block-STM, where the oracle gave them 1.0x; 1796867 (28 of 49
/// transactions a chain of calls) at 0.79x, so it stays on the oracle.
pub fn mostly_one_chain(txs: &[RecoveredTx]) -> bool {
    use alloy_consensus::Transaction as _;
    let chained = |tx: &RecoveredTx| {
        tx.kind().is_create()
            || !tx.input().is_empty()
            || tx.value().is_zero()
            || tx.authorization_list().is_some_and(|list| !list.is_empty())
    };
    // A wallet paying out sends its transactions in a row: comparing neighbours (no hashing)
    // settles most such blocks, which then reach the oracle sooner. Neighbours repeating are a
    // subset of all repeats, so this never says yes where the full count would say no.
    let in_a_row = txs
        .windows(2)
        .filter(|pair| pair[0].signer() == pair[1].signer() && chained(&pair[1]))
        .count();
    if in_a_row * 2 > txs.len() {
        return true;
    }
    let mut seen = alloy_primitives::map::AddressSet::default();
    seen.reserve(txs.len());
    let repeats = txs.iter().filter(|tx| !seen.insert(tx.signer()) && chained(tx)).count();
    repeats * 2 > txs.len()
}

impl Engine {
    /// Executes `block` on top of `db` with this engine.
    pub fn execute<DB>(
        &self,
        spec: &velarium_chainspec::ChainSpec,
        db: &DB,
        block: BlockInput<'_>,
    ) -> Result<BlockOutput, ExecutionError>
    where
        DB: revm::DatabaseRef + StorageProbe + std::fmt::Debug + Sync,
        DB::Error: Send + Sync + std::fmt::Display + 'static,
    {
        self.execute_with_stats(spec, db, block).map(|(output, _)| output)
    }

    /// Executes `block`, also returning the parallel engine's counters (zero when sequential).
    pub fn execute_with_stats<DB>(
        &self,
        spec: &velarium_chainspec::ChainSpec,
        db: &DB,
        block: BlockInput<'_>,
    ) -> Result<(BlockOutput, ParallelStats), ExecutionError>
    where
        DB: revm::DatabaseRef + StorageProbe + std::fmt::Debug + Sync,
        DB::Error: Send + Sync + std::fmt::Display + 'static,
    {
        match *self {
            Self::Sequential => {
                Ok((execute_sequential(spec, db, block)?, ParallelStats::default()))
            }
            Self::Parallel { threads, min_txs } if worth_block_stm(block, min_txs) => {
                // Forced (`min_txs == 0`): Block-STM on every block, as asked.
                let route = if min_txs == 0 {
                    LearnedRoute::BlockStm(None)
                } else {
                    chains::route_block(db, block)
                };
                let callee = match route {
                    LearnedRoute::Oracle => {
                        let mut stats = ParallelStats::default();
                        stats.learned_chain = true;
                        return Ok((execute_sequential(spec, db, block)?, stats));
                    }
                    LearnedRoute::BlockStm(callee) => callee,
                };
                let fork = spec.spec_id(block.header.number, block.header.timestamp);
                let threads =
                    if min_txs == 0 { threads } else { workers_for(fork, block, threads) };
                match execute_parallel(spec, db, block, threads) {
                    Err(ExecutionError::Engine(fault)) => {
                        parallel::record_fault(&fault, block.header.number);
                        let mut stats = ParallelStats::default();
                        stats.fell_back = true;
                        Ok((execute_sequential(spec, db, block)?, stats))
                    }
                    Ok((output, stats)) => {
                        let round_trip = velarium_numa_runtime::placement::recent_round_trip_ns(
                            PLACEMENT_MAX_AGE,
                        );
                        tx_cost::LEARNED.learn(fork, &stats, block.transactions.len(), round_trip);
                        if let Some(callee) = callee {
                            chains::learn(callee, &stats, block.transactions.len());
                        }
                        Ok((output, stats))
                    }
                    other => other,
                }
            }
            Self::Parallel { .. } => {
                Ok((execute_sequential(spec, db, block)?, ParallelStats::default()))
            }
        }
    }

    /// Parses an engine name as the CLI spells it (`parallel` takes its threads separately).
    pub fn from_name(name: &str, threads: usize) -> Option<Self> {
        match name {
            "sequential" => Some(Self::Sequential),
            "parallel" => {
                Some(Self::Parallel { threads: threads.max(1), min_txs: DEFAULT_PARALLEL_MIN_TXS })
            }
            _ => None,
        }
    }
}
