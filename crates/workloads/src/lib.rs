//! Deterministic synthetic blocks over real contract bytecode.
//!
//! Every generator is a `fn(seed, n_txs) -> Workload`: the same seed gives the same keys,
//! transactions, pre-state and header, bit for bit. A [`Workload`] is a whole block on top of a
//! whole pre-state, ready for [`velarium_executor::execute_sequential`] (the oracle) or any other
//! engine, with the outcome every transaction must have ([`ExpectedOutcome`]).
//!
//! Two consumers:
//! - differential and property tests, which run the parallel engine and the sequential oracle on
//!   the same block and compare their outputs exactly ([`mixed`] covers the corner cases: CREATE,
//!   CREATE2, SELFDESTRUCT of old and same-transaction contracts, reverts, halts, nonce chains,
//!   hot slots, reads of the beneficiary, EIP-7702 delegations);
//! - `velarium bench`, which looks generators up by name in [`GENERATORS`] and sizes blocks with
//!   [`GasLimit`] / [`Workload::with_gas_limit`] (e.g. one gigagas).
//!
//! # Contracts
//!
//! ERC-20 traffic runs on WETH9 and swaps run through the real UniswapV2Router02 into real
//! UniswapV2Pair code (runtime bytecode from mainnet, see `contracts/README.md`). Each pair is
//! placed at the CREATE2 address the router derives from the mainnet factory and its two tokens,
//! with its storage (tokens, reserves, lock) written as the pair's own layout has it, so the router
//! and the pair run unmodified. Hot-spot patterns that need no real contract (a counter, a chain
//! of slots, a beneficiary-balance probe, a CREATE2 factory) are a few hand-assembled bytes each,
//! documented in `contracts.rs`.
//!
//! # Blocks
//!
//! Headers are Cancun (Prague for [`mixed`], for EIP-7702) with a 7 wei base fee, a fresh
//! beneficiary and fee caps above it, so priority fees flow to the beneficiary. The system
//! contracts the block calls (EIP-4788, and for Prague EIP-2935, EIP-7002, EIP-7251) are deployed
//! with their canonical code. Senders are funded; each generator's transactions fit the block's gas
//! limit (the sum of the transactions' gas limits never exceeds it).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod contracts;
mod error;
mod generators;
mod rng;
mod signer;

pub use error::WorkloadError;
pub use generators::{
    airdrop, builder_tips, counter_modes, dependent_chain, erc20_deposits, erc20_hot_receiver,
    erc20_transfers, eth_transfers, hot_account_30pct, late_heavy, liquidation_cascade, mixed,
    nft_mint_counter, payouts, reads_beneficiary, shared_recipients, single_pool_swaps,
    uniswap_swaps, uniswap_swaps_many_pairs, with_invalid_tx, Twist,
};
pub use signer::Wallet;

use alloy_consensus::Header;
use velarium_chainspec::ChainSpec;
use velarium_executor::{BlockInput, RecoveredTx};
use velarium_state::InMemoryState;

/// The smallest block gas limit a generator picks on its own (mainnet's 30M).
pub const DEFAULT_BLOCK_GAS_LIMIT: u64 = 30_000_000;

/// One gigagas: the block size of the `velarium bench` gigagas runs.
pub const GIGAGAS: u64 = 1_000_000_000;

/// What a transaction must do when the block executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedOutcome {
    /// Executes to the end (receipt status 1).
    Success,
    /// Stops with `REVERT` (receipt status 0, unused gas refunded).
    Revert,
    /// Halts exceptionally: out of gas, invalid opcode (receipt status 0, all gas used).
    Halt,
}

impl ExpectedOutcome {
    /// The receipt status this outcome gives (`true` only for [`ExpectedOutcome::Success`]).
    pub const fn status(self) -> bool {
        matches!(self, Self::Success)
    }
}

/// How a generator picks the header's gas limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GasLimit {
    /// The larger of [`DEFAULT_BLOCK_GAS_LIMIT`] and the sum of the transactions' gas limits.
    #[default]
    Auto,
    /// Exactly this limit; the block must still fit (see [`Workload::with_gas_limit`]).
    Fixed(u64),
}

/// A block on top of its pre-state, with the outcome each transaction must have.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Generator name (as in [`GENERATORS`]).
    pub name: String,
    /// The chain's rule set (Cancun or Prague from genesis, chain id 1).
    pub spec: ChainSpec,
    /// The block's header (state and receipt roots are not filled in: nothing checks them).
    pub header: Header,
    /// Signed transactions with their senders, in block order.
    pub transactions: Vec<RecoveredTx>,
    /// The parent's state: contracts, funded senders, system contracts.
    pub state: InMemoryState,
    /// One expected outcome per transaction.
    pub expected: Vec<ExpectedOutcome>,
}

impl Workload {
    /// The block as the executors take it (no ommers, no withdrawals).
    pub fn block_input(&self) -> BlockInput<'_> {
        BlockInput {
            header: &self.header,
            transactions: &self.transactions,
            ommers: &[],
            withdrawals: Some(&[]),
        }
    }

    /// The sum of the transactions' gas limits: the smallest block gas limit that surely fits.
    pub fn gas_needed(&self) -> u64 {
        self.transactions.iter().map(|tx| alloy_consensus::Transaction::gas_limit(tx.inner())).sum()
    }

    /// Sets the header's gas limit (e.g. [`GIGAGAS`]); fails if the transactions might not fit.
    pub fn with_gas_limit(mut self, gas_limit: u64) -> Result<Self, WorkloadError> {
        let needed = self.gas_needed();
        if needed > gas_limit {
            return Err(WorkloadError::GasLimitTooLow { needed, gas_limit });
        }
        self.header.gas_limit = gas_limit;
        Ok(self)
    }

    /// Applies a [`GasLimit`] choice.
    pub fn with_gas_limit_option(self, gas_limit: GasLimit) -> Result<Self, WorkloadError> {
        match gas_limit {
            GasLimit::Auto => {
                let auto = self.gas_needed().max(DEFAULT_BLOCK_GAS_LIMIT);
                self.with_gas_limit(auto)
            }
            GasLimit::Fixed(limit) => self.with_gas_limit(limit),
        }
    }
}

/// A workload generator: `(seed, n_txs)` to a block.
pub type Generator = fn(u64, usize) -> Workload;

/// Every named generator, conflict-free ones first, then the hostile ones, then [`mixed`].
pub const GENERATORS: &[(&str, Generator)] = &[
    ("eth_transfers", eth_transfers),
    ("erc20_transfers", erc20_transfers),
    ("erc20_hot_receiver", erc20_hot_receiver),
    ("erc20_deposits", erc20_deposits),
    ("uniswap_swaps_many_pairs", uniswap_swaps_many_pairs),
    ("airdrop", airdrop),
    ("nft_mint_counter", nft_mint_counter),
    ("single_pool_swaps", single_pool_swaps),
    ("liquidation_cascade", liquidation_cascade),
    ("dependent_chain", dependent_chain),
    ("counter_modes", counter_modes),
    ("hot_account_30pct", hot_account_30pct),
    ("reads_beneficiary", reads_beneficiary),
    ("payouts", payouts),
    ("builder_tips", builder_tips),
    ("late_heavy", late_heavy),
    ("mixed", mixed),
];

/// Looks a generator up by name.
pub fn generator(name: &str) -> Option<Generator> {
    GENERATORS.iter().find(|(n, _)| *n == name).map(|(_, g)| *g)
}

/// Runs the generator `name` and applies `gas_limit`.
pub fn generate(
    name: &str,
    seed: u64,
    n_txs: usize,
    gas_limit: GasLimit,
) -> Result<Workload, WorkloadError> {
    let generate = generator(name).ok_or_else(|| WorkloadError::UnknownGenerator(name.into()))?;
    generate(seed, n_txs).with_gas_limit_option(gas_limit)
}

/// The largest block of generator `name` whose transactions surely fit `gas_limit`, with the
/// header's gas limit set to it (e.g. [`GIGAGAS`] for the bench).
///
/// Transaction gas limits are safe upper bounds (a router swap allows 250k, uses ~110k), so the
/// block's gas *used* is below `gas_limit`; benches should report the executed gas.
pub fn fill(name: &str, seed: u64, gas_limit: u64) -> Result<Workload, WorkloadError> {
    let generate = generator(name).ok_or_else(|| WorkloadError::UnknownGenerator(name.into()))?;
    let probe = generate(seed, 64);
    let max_tx_gas = probe
        .transactions
        .iter()
        .map(|tx| alloy_consensus::Transaction::gas_limit(tx.inner()))
        .max()
        .unwrap_or(21_000);
    let mut n_txs = (gas_limit / max_tx_gas) as usize;
    loop {
        let workload = generate(seed, n_txs);
        if workload.gas_needed() <= gas_limit || n_txs == 0 {
            return workload.with_gas_limit(gas_limit);
        }
        n_txs -= n_txs.div_ceil(10);
    }
}

#[cfg(test)]
mod tests;
