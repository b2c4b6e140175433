//! Payload-builder-shaped tests: `ParallelBlockExecutorFactory` with a candidate feed, driven
//! exactly as reth 2.5.1's `default_ethereum_payload` drives an executor, against alloy-evm's
//! `EthBlockExecutorFactory` driven the same way (without a feed).
//!
//! The driver pulls candidates from a pool iterator (wrapped in the glue's `Lookahead` for ours),
//! skips one whose gas limit exceeds the block's remaining gas and drops its sender's later
//! candidates (`mark_invalid`), executes the others with a result closure, skips an invalid one
//! (dropping its sender's later candidates unless its nonce was too low), and finishes the
//! block. Everything must be identical: which candidates were skipped, included or rejected
//! (with the error), each call's gas, result and receipt, every state-hook update, the
//! `BlockExecutionResult` and the `BundleState`. Skips make the speculation's later outcomes
//! depend on what was not committed: those must be caught (stale) and executed afresh.

mod support;

use alloy_consensus::{ReceiptEnvelope, Transaction, TxEnvelope};
use alloy_evm::{
    block::{
        BlockExecutionError, BlockExecutionResult, BlockExecutor, BlockExecutorFactory,
        BlockValidationError, CommitChanges, TxResult,
    },
    EvmEnv,
};
use alloy_primitives::Address;
use revm::{context::result::HaltReason, DatabaseRef};
use std::sync::Arc;
use velarium_chainspec::ChainSpec;
use velarium_executor::{evm_env, RecoveredTx};
use velarium_reth_glue::{
    BuildKey, CandidateFeed, Lookahead, MetricsSnapshot, ParallelConfig, PlannedTx,
    DEFAULT_LOOKAHEAD,
};

use support::{canon, compare, execute_hooked, Block, Canon, ParFactory};

/// What happened to one candidate.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // a test's record
enum Fate {
    /// Skipped before execution: its gas limit exceeds the block's remaining gas.
    TooMuchGas(usize),
    /// Skipped before execution for a rule the executor does not see (the builder's blob and
    /// block-size rules): the test names these candidates.
    Refused(usize),
    /// Executed and committed: gas, the result and diff the closure saw, the receipt after.
    Included(usize, u64, String, Canon, Option<ReceiptEnvelope>),
    /// Rejected by the executor (the error's text).
    Rejected(usize, String),
}

/// A pool's best-transactions iterator over `txs` (their indices), which drops a sender's later
/// transactions once one of its transactions is marked invalid.
struct Pool<'a> {
    txs: &'a [RecoveredTx],
    next: usize,
    invalid: Vec<(Address, u64)>,
}

impl<'a> Pool<'a> {
    const fn new(txs: &'a [RecoveredTx]) -> Self {
        Self { txs, next: 0, invalid: Vec::new() }
    }

    fn mark_invalid(&mut self, tx: &RecoveredTx) {
        self.invalid.push((tx.signer(), tx.nonce()));
    }
}

/// Whether `tx` descends from a transaction marked invalid.
fn descends(invalid: &[(Address, u64)], tx: &RecoveredTx) -> bool {
    invalid.iter().any(|(sender, nonce)| tx.signer() == *sender && tx.nonce() > *nonce)
}

impl<'a> Iterator for Pool<'a> {
    type Item = (usize, &'a RecoveredTx);

    fn next(&mut self) -> Option<Self::Item> {
        while self.next < self.txs.len() {
            let i = self.next;
            self.next += 1;
            if !descends(&self.invalid, &self.txs[i]) {
                return Some((i, &self.txs[i]));
            }
        }
        None
    }
}

/// The converter type of a [`Best::Plain`] (which converts nothing).
type NoConvert = fn(&(usize, &RecoveredTx)) -> Option<PlannedTx>;

/// The best-transactions iterator the builder pulls from: the pool's, or the pool's behind a
/// lookahead that publishes into a feed.
enum Best<'a, F> {
    Plain(Pool<'a>),
    Ahead(Lookahead<Pool<'a>, F>),
}

impl<'a, F> Best<'a, F>
where
    F: FnMut(&(usize, &'a RecoveredTx)) -> Option<PlannedTx>,
{
    fn next(&mut self) -> Option<(usize, &'a RecoveredTx)> {
        match self {
            Self::Plain(pool) => pool.next(),
            Self::Ahead(ahead) => ahead.next(),
        }
    }

    /// `BestTransactions::mark_invalid`: the pool's iterator and the lookahead's buffer.
    fn mark_invalid(&mut self, tx: &RecoveredTx) {
        match self {
            Self::Plain(pool) => pool.mark_invalid(tx),
            Self::Ahead(ahead) => {
                ahead.inner_mut().mark_invalid(tx);
                let invalid = ahead.inner_mut().invalid.clone();
                ahead.retain(|(_, t)| !descends(&invalid, t));
            }
        }
    }
}

/// Builds a block from `best` on `executor` as `default_ethereum_payload` does.
fn build<'a, X, F>(
    mut executor: X,
    mut best: Best<'a, F>,
    block_gas_limit: u64,
    refused: &[usize],
    fates: &mut Vec<Fate>,
    record: bool,
) -> Result<BlockExecutionResult<ReceiptEnvelope>, BlockExecutionError>
where
    X: BlockExecutor<Transaction = TxEnvelope, Receipt = ReceiptEnvelope>,
    X::Result: TxResult<HaltReason = HaltReason>,
    F: FnMut(&(usize, &'a RecoveredTx)) -> Option<PlannedTx>,
{
    executor.apply_pre_execution_changes()?;
    let mut cumulative = 0u64;
    while let Some((index, tx)) = best.next() {
        if tx.gas_limit() > block_gas_limit.saturating_sub(cumulative) {
            best.mark_invalid(tx);
            fates.push(Fate::TooMuchGas(index));
            continue;
        }
        if refused.contains(&index) {
            best.mark_invalid(tx);
            fates.push(Fate::Refused(index));
            continue;
        }
        let mut seen = None;
        let outcome = executor.execute_transaction_with_commit_condition(tx, |result| {
            let result = result.result();
            if record {
                seen = Some((format!("{:?}", result.result), canon(&result.state)));
            }
            CommitChanges::Yes
        });
        match outcome {
            Ok(gas) => {
                let gas = gas.expect("committed").tx_gas_used();
                cumulative += gas;
                let (result, diff) = seen.unwrap_or_default();
                let receipt = executor.receipts().last().cloned();
                fates.push(Fate::Included(index, gas, result, diff, receipt));
            }
            Err(BlockExecutionError::Validation(BlockValidationError::InvalidTx {
                error, ..
            })) => {
                if !error.is_nonce_too_low() {
                    best.mark_invalid(tx);
                }
                fates.push(Fate::Rejected(index, error.to_string()));
            }
            Err(
                err @ BlockExecutionError::Validation(
                    BlockValidationError::TransactionGasLimitMoreThanAvailableBlockGas { .. },
                ),
            ) => {
                best.mark_invalid(tx);
                fates.push(Fate::Rejected(index, err.to_string()));
            }
            Err(err) => return Err(err),
        }
    }
    executor.finish().map(|(_, result)| result)
}

/// Everything one build showed its caller: a fate per candidate.
type Built = support::Observed<Fate>;

#[allow(clippy::too_many_arguments)]
/// Builds from `candidates` on `parent` with a recording state hook: through `factory` with a
/// feed `depth` ahead, or (no factory) through alloy-evm's factory.
fn run<P>(
    spec: &ChainSpec,
    factory: Option<&ParFactory>,
    depth: usize,
    parent: P,
    env: &EvmEnv,
    block: Block<'_>,
    candidates: &[RecoveredTx],
    refused: &[usize],
) -> Built
where
    P: DatabaseRef + std::fmt::Debug,
    P::Error: Send + Sync + 'static,
{
    // What reth's `context_for_next_block` gives: no transaction count.
    let ctx = alloy_evm::eth::EthBlockExecutionCtx { tx_count_hint: None, ..block.ctx() };
    let parent_hash = block.header.parent_hash;
    support::observe(parent, env, |evm, fates| match factory {
        Some(factory) => {
            let key = BuildKey::of_block(parent_hash, &env.block_env).expect("key");
            let feed: Arc<CandidateFeed> = factory.candidates().begin(key);
            let executor = factory.create_executor(evm, ctx);
            let convert =
                |(_, tx): &(usize, &RecoveredTx)| Some(PlannedTx::from_parts::<TxEnvelope, _>(*tx));
            let best = Best::Ahead(Lookahead::new(Pool::new(candidates), feed, depth, convert));
            build(executor, best, env.block_env.gas_limit, refused, fates, true)
        }
        None => {
            let eth = support::eth_factory(spec);
            let executor = eth.create_executor(evm, ctx);
            let best: Best<'_, NoConvert> = Best::Plain(Pool::new(candidates));
            build(executor, best, env.block_env.gas_limit, refused, fates, true)
        }
    })
}

/// How many candidates each fate got.
fn tally(fates: &[Fate]) -> (usize, usize, usize) {
    fates.iter().fold((0, 0, 0), |(g, i, r), f| match f {
        Fate::TooMuchGas(_) | Fate::Refused(_) => (g + 1, i, r),
        Fate::Included(..) => (g, i + 1, r),
        Fate::Rejected(..) => (g, i, r + 1),
    })
}

/// Builds from `candidates` with the reference and with ours at 1, 2 and 4 workers (feed 64
/// ahead, and 8 ahead at 2 workers); checks every build is the reference's and returns the
/// reference's fates and our counters summed over the builds.
#[allow(clippy::too_many_arguments)]
fn check_build<P>(
    what: &str,
    spec: &ChainSpec,
    parent: &P,
    env: &EvmEnv,
    block: Block<'_>,
    candidates: &[RecoveredTx],
    refused: &[usize],
) -> (Vec<Fate>, MetricsSnapshot)
where
    P: DatabaseRef + std::fmt::Debug,
    P::Error: Send + Sync + 'static,
{
    let want = run(spec, None, 0, parent, env, block, candidates, refused);
    assert!(want.output.is_ok(), "{what}: the reference failed: {:?}", want.output);
    let mut total = MetricsSnapshot::default();
    for (threads, depth) in [(1, 64), (2, 64), (2, 8), (4, 64)] {
        let factory =
            ParFactory::from_eth(support::eth_factory(spec), ParallelConfig::new(threads, 0));
        let got = run(spec, Some(&factory), depth, parent, env, block, candidates, refused);
        compare(&got, &want)
            .unwrap_or_else(|e| panic!("{what}, {threads} workers, {depth} ahead: {e}"));
        let b = factory.metrics().snapshot().builder;
        assert_eq!(b.blocks, 1, "{what}: {b:?}");
        let executed = want
            .calls
            .iter()
            .filter(|f| matches!(f, Fate::Included(..) | Fate::Rejected(..)))
            .count();
        // Every executed candidate came from a window or ran afresh (rejected ones may come
        // from either, and are counted in neither when a window rejected them).
        assert!(b.speculated + b.fresh <= executed as u64, "{what}: {b:?}");
        assert!(b.speculated > 0, "{what}: nothing came from the speculation: {b:?}");
        assert_eq!(factory.metrics().snapshot().fallbacks.after_plan(), 0, "{what}");
        let t = &mut total.builder;
        t.blocks += b.blocks;
        t.windows += b.windows;
        t.speculated += b.speculated;
        t.stale += b.stale;
        t.fresh += b.fresh;
    }
    (want.calls, total)
}

/// A generated block, its environment (block gas limit `gas_limit`) and candidates.
fn workload_build(
    workload: &velarium_workloads::Workload,
    gas_limit: Option<u64>,
    candidates: &[RecoveredTx],
    refused: &[usize],
) -> (Vec<Fate>, MetricsSnapshot) {
    let mut env = evm_env(&workload.spec, &workload.header);
    if let Some(limit) = gas_limit {
        env.block_env.gas_limit = limit;
    }
    check_build(
        &workload.name,
        &workload.spec,
        &workload.state,
        &env,
        Block::workload(workload),
        candidates,
        refused,
    )
}

/// The gas the reference used building from every transaction of `workload`.
fn gas_used(workload: &velarium_workloads::Workload) -> u64 {
    let env = evm_env(&workload.spec, &workload.header);
    let built = run(
        &workload.spec,
        None,
        0,
        &workload.state,
        &env,
        Block::workload(workload),
        &workload.transactions,
        &[],
    );
    built.output.expect("reference").gas_used
}

#[test]
fn a_build_taking_every_candidate_comes_from_the_speculation() {
    for workload in [
        velarium_workloads::erc20_transfers(5, 200),
        velarium_workloads::uniswap_swaps_many_pairs(5, 150),
        velarium_workloads::erc20_hot_receiver(5, 150),
    ] {
        let (fates, metrics) = workload_build(&workload, None, &workload.transactions, &[]);
        assert_eq!(tally(&fates), (0, workload.transactions.len(), 0), "{}", workload.name);
        // Nothing was skipped: every outcome stayed exact.
        assert_eq!(metrics.builder.stale, 0, "{}: {metrics:?}", workload.name);
    }
}

#[test]
fn a_block_that_fills_before_its_candidates_run_out_matches() {
    // A chain of counter increments: every transaction reads what the one before wrote. With
    // a block gas limit that leaves some out, and one big candidate that does not fit placed
    // early, the skipped candidates' writes are read by later ones.
    for (workload, share) in [
        (velarium_workloads::dependent_chain(9, 120), 2),
        (velarium_workloads::single_pool_swaps(9, 120), 3),
        (velarium_workloads::erc20_transfers(9, 150), 2),
    ] {
        let limit = gas_used(&workload) / share;
        let mut candidates = workload.transactions.clone();
        // Interleave: the block fills up, then only the small ones fit.
        candidates.rotate_left(7);
        let (fates, metrics) = workload_build(&workload, Some(limit), &candidates, &[]);
        let (too_much, included, _) = tally(&fates);
        assert!(too_much > 0 && included > 0, "{}: {fates:?}", workload.name);
        assert!(metrics.builder.speculated > 0, "{}: {metrics:?}", workload.name);
    }
}

#[test]
fn a_refused_candidate_makes_its_readers_stale_and_they_run_afresh() {
    // Every transaction of a dependent chain reads the counter the one before wrote; the
    // builder refuses three of them (as for blob or size rules), so each outcome speculated
    // after a refused one read a value that is not in the state.
    for workload in [
        velarium_workloads::dependent_chain(13, 120),
        velarium_workloads::single_pool_swaps(13, 120),
    ] {
        let refused = [4, 5, 40, 90];
        let (fates, metrics) = workload_build(&workload, None, &workload.transactions, &refused);
        let (skipped, included, _) = tally(&fates);
        assert_eq!((skipped, included), (4, 116), "{}: {fates:?}", workload.name);
        assert!(metrics.builder.stale > 0, "{}: nothing went stale: {metrics:?}", workload.name);
        assert!(metrics.builder.speculated > 0, "{}: {metrics:?}", workload.name);
    }
}

#[test]
fn invalid_and_out_of_order_candidates_are_rejected_as_sequentially() {
    // Senders' transactions out of nonce order (too high: rejected, descendants dropped), a
    // replayed transaction (nonce too low), and a skip in the middle of a dependent chain.
    let workload = velarium_workloads::dependent_chain(11, 100);
    let mut candidates = workload.transactions.clone();
    candidates.insert(10, candidates[3].clone());
    candidates.swap(20, 21);
    let erc20 = velarium_workloads::erc20_transfers(11, 100);
    let (fates, metrics) = workload_build(&workload, None, &candidates, &[]);
    let (_, included, rejected) = tally(&fates);
    assert!(rejected >= 1 && included > 90, "{fates:?}");
    assert!(metrics.builder.windows > 0, "{metrics:?}");
    // Every sender sending twice, the second first: each second is rejected (nonce too high)
    // and drops nothing (the pool drops only later nonces), then the first goes in.
    let mut twice = erc20.transactions.clone();
    twice.reverse();
    let (fates, _) = workload_build(&erc20, None, &twice, &[]);
    assert!(tally(&fates).1 > 0, "{fates:?}");
}

#[test]
#[ignore = "needs the ../shared fixtures (tests/run-all.sh runs them)"]
fn mainnet_blocks_built_from_their_transactions_match_eth_factory() {
    let Some(blocks) = support::mainnet_blocks() else { return };
    let spec = velarium_replay::mainnet_spec();
    let mut total = MetricsSnapshot::default().builder;
    for block in blocks.iter().filter(|b| b.transactions.len() >= 30) {
        let mut env = evm_env(&spec, &block.header);
        // As built: every transaction. Then with two thirds of the gas used as the limit, and
        // the candidates rotated, so that the builder skips and the speculation must notice.
        for (limit, rotate) in [(None, 0), (Some(block.header.gas_used * 2 / 3), 5)] {
            if let Some(limit) = limit {
                env.block_env.gas_limit = limit;
            }
            let mut candidates = block.transactions.clone();
            candidates.rotate_left(rotate);
            let what = format!("block {} limit {limit:?}", block.number);
            let (_, metrics) = check_build(
                &what,
                &spec,
                &block.state,
                &env,
                Block::mainnet(block, &block.transactions),
                &candidates,
                &[3, 11],
            );
            let b = metrics.builder;
            total.speculated += b.speculated;
            total.stale += b.stale;
            total.fresh += b.fresh;
            total.windows += b.windows;
        }
    }
    eprintln!("mainnet builds: {total:?}");
    assert!(total.stale > 0, "some skip must have made an outcome stale: {total:?}");
}

/// Not a check: how long building the mainnet blocks from their own transactions takes through
/// the speculation against alloy-evm's executor, interleaved (the feed's conversions included;
/// no state hook). `VELARIUM_TIMING_ROUNDS`, `VELARIUM_TIMING_THREADS` and
/// `VELARIUM_TIMING_LOOKAHEAD` change the rounds (default 5), workers (default 2) and lookahead
/// (default [`DEFAULT_LOOKAHEAD`]).
#[test]
#[ignore = "a measurement, not a check (run with --include-ignored builder_timing --nocapture)"]
fn builder_timing() {
    let Some(blocks) = support::mainnet_blocks() else { return };
    let spec = velarium_replay::mainnet_spec();
    let setting = support::timing_setting;
    let rounds = setting("VELARIUM_TIMING_ROUNDS", 5);
    let threads = setting("VELARIUM_TIMING_THREADS", 2);
    let depth = setting("VELARIUM_TIMING_LOOKAHEAD", DEFAULT_LOOKAHEAD);
    let eth = support::eth_factory(&spec);
    let ours = ParFactory::from_eth(support::eth_factory(&spec), ParallelConfig::new(threads, 0));
    let median = support::median;
    let (mut sums, mut ratios) = ([0f64; 2], Vec::new());
    for block in blocks.iter().filter(|b| !b.transactions.is_empty()) {
        let input = Block::mainnet(block, &block.transactions);
        let env = evm_env(&spec, &block.header);
        let ctx = alloy_evm::eth::EthBlockExecutionCtx { tx_count_hint: None, ..input.ctx() };
        let mut times: [Vec<f64>; 2] = Default::default();
        for _ in 0..rounds {
            let mut fates = Vec::new();
            let t = std::time::Instant::now();
            support::execute(&block.state, &env, |evm| {
                let best: Best<'_, NoConvert> = Best::Plain(Pool::new(input.txs));
                let limit = env.block_env.gas_limit;
                build(eth.create_executor(evm, ctx.clone()), best, limit, &[], &mut fates, false)
            })
            .unwrap();
            times[0].push(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            support::execute(&block.state, &env, |evm| {
                let key = BuildKey::of_block(block.header.parent_hash, &env.block_env).unwrap();
                let feed = ours.candidates().begin(key);
                let executor = ours.create_executor(evm, ctx.clone());
                let convert = |(_, tx): &(usize, &RecoveredTx)| {
                    Some(PlannedTx::from_parts::<TxEnvelope, _>(*tx))
                };
                let ahead = Lookahead::new(Pool::new(input.txs), feed, depth, convert);
                let limit = env.block_env.gas_limit;
                build(executor, Best::Ahead(ahead), limit, &[], &mut fates, false)
            })
            .unwrap();
            times[1].push(t.elapsed().as_secs_f64());
        }
        let m = times.map(median);
        sums[0] += m[0];
        sums[1] += m[1];
        ratios.push(m[0] / m[1]);
    }
    ratios.sort_by(f64::total_cmp);
    let geo = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
    eprintln!(
        "{} mainnet blocks built from their transactions, {rounds} interleaved rounds, \
         {threads} threads, {depth} ahead: speculation against sequential \
         {:.2}x (sum of per-block medians), geometric mean {geo:.2}x, worst {:.2}x; {:?}",
        ratios.len(),
        sums[0] / sums[1],
        ratios[0],
        ours.metrics().snapshot().builder
    );
}

#[test]
fn a_feed_for_another_block_is_not_taken() {
    let workload = velarium_workloads::erc20_transfers(17, 60);
    let env = evm_env(&workload.spec, &workload.header);
    let block = Block::workload(&workload);
    let factory =
        ParFactory::from_eth(support::eth_factory(&workload.spec), ParallelConfig::new(2, 0));
    // A feed for the next slot's build (another timestamp) waits in the registry.
    let mut other = BuildKey::of_block(workload.header.parent_hash, &env.block_env).unwrap();
    other.timestamp += 12;
    factory.candidates().begin(other);
    let ctx = alloy_evm::eth::EthBlockExecutionCtx { tx_count_hint: None, ..block.ctx() };
    let mut fates = Vec::new();
    let got = execute_hooked(&workload.state, &env, None, |evm| {
        let best: Best<'_, NoConvert> = Best::Plain(Pool::new(&workload.transactions));
        let limit = env.block_env.gas_limit;
        build(factory.create_executor(evm, ctx), best, limit, &[], &mut fates, true)
    });
    let want =
        run(&workload.spec, None, 0, &workload.state, &env, block, &workload.transactions, &[]);
    assert_eq!(fates, want.calls);
    velarium_replay::compare_outputs_exactly(&got.unwrap(), &want.output.unwrap()).unwrap();
    let metrics = factory.metrics().snapshot();
    assert_eq!(metrics.builder, Default::default(), "{metrics:?}");
    assert_eq!(metrics.fallbacks.no_plan, 1, "{metrics:?}");
    assert_eq!(factory.candidates().pending(), 1, "the other build's feed stays");
}

#[test]
fn with_block_stm_off_the_builder_runs_no_window() {
    let workload = velarium_workloads::erc20_transfers(29, 60);
    let env = evm_env(&workload.spec, &workload.header);
    let block = Block::workload(&workload);
    let want =
        run(&workload.spec, None, 0, &workload.state, &env, block, &workload.transactions, &[]);
    let off = ParallelConfig { block_stm: false, ..ParallelConfig::new(2, 0) };
    let factory = ParFactory::from_eth(support::eth_factory(&workload.spec), off);
    let got = run(
        &workload.spec,
        Some(&factory),
        64,
        &workload.state,
        &env,
        block,
        &workload.transactions,
        &[],
    );
    compare(&got, &want).unwrap();
    let metrics = factory.metrics().snapshot();
    assert_eq!(metrics.builder, Default::default(), "{metrics:?}");
    assert_eq!((metrics.fallbacks.disabled, metrics.sequential_blocks), (1, 1), "{metrics:?}");
}

#[test]
fn an_engine_fault_in_a_window_continues_sequentially() {
    let workload = velarium_workloads::erc20_transfers(19, 80);
    let env = evm_env(&workload.spec, &workload.header);
    let block = Block::workload(&workload);
    let want =
        run(&workload.spec, None, 0, &workload.state, &env, block, &workload.transactions, &[]);
    // The first read of the token's storage panics (a transient fault while this thread serves
    // the workers' reads): the window is abandoned, nothing of it committed, and the build goes
    // on through alloy-evm's executor.
    let token = *workload.transactions[0].to().expect("a token call");
    let parent = support::PanicOnce {
        inner: &workload.state,
        account: Address::from(token),
        armed: std::sync::atomic::AtomicBool::new(true),
    };
    let factory =
        ParFactory::from_eth(support::eth_factory(&workload.spec), ParallelConfig::new(2, 0));
    let got =
        run(&workload.spec, Some(&factory), 64, &parent, &env, block, &workload.transactions, &[]);
    compare(&got, &want).unwrap();
    let metrics = factory.metrics().snapshot();
    assert_eq!(metrics.fallbacks.engine_fault, 1, "{metrics:?}");
    assert_eq!(metrics.fallbacks.after_plan(), 1, "{metrics:?}");
    // The block left the speculation (counted as a fallback, not as a builder block).
    assert_eq!((metrics.builder.blocks, metrics.builder.windows), (0, 1), "{metrics:?}");
    assert_eq!(metrics.builder.speculated, 0, "{metrics:?}");
}

#[test]
fn a_transaction_the_feed_never_saw_makes_its_readers_stale() {
    // Every transaction of a dependent chain reads the counter the one before wrote. Two are
    // never published to the feed (as if the lookahead could not convert them): each runs on
    // the spot inside a window that was speculated without it, so what it wrote must make the
    // window's next outcomes stale.
    let workload = velarium_workloads::dependent_chain(23, 100);
    let env = evm_env(&workload.spec, &workload.header);
    let block = Block::workload(&workload);
    let want =
        run(&workload.spec, None, 0, &workload.state, &env, block, &workload.transactions, &[]);
    let factory =
        ParFactory::from_eth(support::eth_factory(&workload.spec), ParallelConfig::new(2, 0));
    let ctx = alloy_evm::eth::EthBlockExecutionCtx { tx_count_hint: None, ..block.ctx() };
    let got = support::observe(&workload.state, &env, |evm, fates| {
        let key = BuildKey::of_block(workload.header.parent_hash, &env.block_env).unwrap();
        let feed = factory.candidates().begin(key);
        let executor = factory.create_executor(evm, ctx);
        let convert = |(i, tx): &(usize, &RecoveredTx)| {
            (![5, 40].contains(i)).then(|| PlannedTx::from_parts::<TxEnvelope, _>(*tx))
        };
        let ahead = Lookahead::new(Pool::new(&workload.transactions), feed, 64, convert);
        build(executor, Best::Ahead(ahead), env.block_env.gas_limit, &[], fates, true)
    });
    compare(&got, &want).unwrap();
    let b = factory.metrics().snapshot().builder;
    assert!(b.fresh >= 2 && b.stale > 0 && b.speculated > 0, "{b:?}");
}
