//! Differential tests: the parallel engine against the sequential oracle on generated blocks.
//!
//! Every comparison is exact: receipts (status, cumulative gas, logs, bloom), gas, blob gas,
//! requests and the full `BundleState` (every account and slot change with original values).

use alloy_primitives::{Address, B256, U256};
use proptest::prelude::*;
use revm::{bytecode::Bytecode, state::AccountInfo, DatabaseRef};
use velarium_executor::{
    execute_parallel, execute_parallel_with, execute_sequential, time_transactions, BlockOutput,
    Mechanisms, ParallelStats,
};
use velarium_state::{InMemoryState, StateError};
use velarium_workloads::{mixed, with_invalid_tx, Workload, GENERATORS};

/// Runs `workload` with the oracle and with the parallel engine at `threads`; asserts equality.
fn assert_same(workload: &Workload, threads: usize) -> BlockOutput {
    let oracle = execute_sequential(&workload.spec, &workload.state, workload.block_input())
        .unwrap_or_else(|e| panic!("{}: oracle failed: {e}", workload.name));
    let (parallel, stats) =
        execute_parallel(&workload.spec, &workload.state, workload.block_input(), threads)
            .unwrap_or_else(|e| panic!("{}: parallel failed: {e}", workload.name));
    assert_eq!(
        oracle, parallel,
        "{} at {threads} threads differs from the oracle ({stats:?})",
        workload.name
    );
    assert!(stats.executions >= workload.transactions.len() as u64);
    oracle
}

#[test]
fn every_generator_matches_the_oracle_at_1_2_4_8_threads() {
    for (name, generate) in GENERATORS {
        for seed in [1, 2] {
            let workload = generate(seed, 120);
            for threads in [1, 2, 4, 8] {
                let output = assert_same(&workload, threads);
                // The generators' expected success/revert pattern holds for the parallel output.
                for (i, (receipt, expected)) in
                    output.receipts.iter().zip(&workload.expected).enumerate()
                {
                    assert_eq!(receipt.status(), expected.status(), "{name} tx {i}");
                }
            }
        }
    }
}

/// Switching any of the engine's mechanisms off (as `velarium bench --ablation` does) changes
/// speed only: every generator, and the random mix, still gives the oracle's exact output.
#[test]
fn every_mechanism_can_be_switched_off() {
    let all = Mechanisms::ALL;
    let variants = [
        Mechanisms { hints: false, ..all },
        Mechanisms { deltas: false, ..all },
        Mechanisms { isolation: false, ..all },
        Mechanisms { risk: false, ..all },
        Mechanisms::NONE,
    ];
    for (name, generate) in GENERATORS {
        let workload = generate(3, 120);
        let oracle = oracle_of(&workload);
        for mechanisms in variants {
            for threads in [2, 4] {
                let parallel = parallel_with(&workload, threads, mechanisms).0;
                assert_eq!(oracle, parallel, "{name} at {threads} threads with {mechanisms:?}");
            }
        }
    }
}

/// The oracle's output of `workload`.
fn oracle_of(workload: &Workload) -> BlockOutput {
    execute_sequential(&workload.spec, &workload.state, workload.block_input())
        .unwrap_or_else(|e| panic!("{}: oracle failed: {e}", workload.name))
}

/// The parallel engine's output of `workload` on `threads` with `mechanisms`, and its stats.
fn parallel_with(
    workload: &Workload,
    threads: usize,
    mechanisms: Mechanisms,
) -> (BlockOutput, ParallelStats) {
    execute_parallel_with(
        &workload.spec,
        &workload.state,
        workload.block_input(),
        threads,
        mechanisms,
    )
    .unwrap_or_else(|e| panic!("{} {mechanisms:?}: parallel failed: {e}", workload.name))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random mixes (transfers, tokens, CREATE/CREATE2, SELFDESTRUCT, reverts, out-of-gas, nonce
    /// chains, hot slots, beneficiary reads, EIP-7702) on random thread counts.
    #[test]
    fn mixed_blocks_match_the_oracle(seed in any::<u64>(), n_txs in 1usize..160, threads in 1usize..9) {
        assert_same(&mixed(seed, n_txs), threads);
    }

    /// Random counter blocks: credited bumps beside observed ones, resets to zero and large or
    /// wrapping additions, from zero, one or just below 2^224, on random thread counts.
    #[test]
    fn counter_blocks_match_the_oracle(seed in any::<u64>(), n_txs in 1usize..160, threads in 1usize..9) {
        assert_same(&velarium_workloads::counter_modes(seed, n_txs), threads);
    }

    /// Random payout blocks: hot wallets (one the beneficiary) read lazily, beside payments to
    /// them, calls from them to a contract and reads of the beneficiary's balance.
    #[test]
    fn payout_blocks_match_the_oracle(seed in any::<u64>(), n_txs in 1usize..160, threads in 1usize..9) {
        assert_same(&velarium_workloads::payouts(seed, n_txs), threads);
    }

    /// Every generator (hot slots, a minted counter, a hot receiver, one pool, a cascade, a
    /// dependent chain, ...) with a random seed and size, on a random thread count, with a random
    /// subset of the engine's mechanisms switched off: the oracle's exact output.
    #[test]
    fn any_workload_with_any_mechanisms_off_matches_the_oracle(
        which in 0..GENERATORS.len(),
        seed in any::<u64>(),
        n_txs in 1usize..120,
        threads in 1usize..6,
        off in 0u8..16,
    ) {
        let (name, generate) = GENERATORS[which];
        let workload = generate(seed, n_txs);
        let mechanisms = Mechanisms {
            hints: off & 1 == 0,
            deltas: off & 2 == 0,
            isolation: off & 4 == 0,
            risk: off & 8 == 0,
        };
        let (oracle, parallel) = (oracle_of(&workload), parallel_with(&workload, threads, mechanisms).0);
        prop_assert_eq!(oracle, parallel, "{} seed {} at {} threads with {:?}", name, seed, threads, mechanisms);
    }
}

#[test]
fn the_same_block_twenty_times_is_bit_identical() {
    let workload = mixed(7, 200);
    let (first, _) =
        execute_parallel(&workload.spec, &workload.state, workload.block_input(), 4).unwrap();
    for _ in 0..20 {
        let (again, _) =
            execute_parallel(&workload.spec, &workload.state, workload.block_input(), 4).unwrap();
        assert_eq!(first, again);
    }
    let hot = velarium_workloads::dependent_chain(3, 150);
    let (first, _) = execute_parallel(&hot.spec, &hot.state, hot.block_input(), 8).unwrap();
    for _ in 0..20 {
        assert_eq!(first, execute_parallel(&hot.spec, &hot.state, hot.block_input(), 8).unwrap().0);
    }
}

/// The oracle rejects `workload`, and the parallel engine rejects it with the same error at 1, 2
/// and 4 threads (`what` names the case in a failure).
fn assert_oracles_error(workload: &Workload, what: &str) {
    let oracle = execute_sequential(&workload.spec, &workload.state, workload.block_input())
        .expect_err("the oracle rejects the block");
    for threads in [1, 2, 4] {
        let parallel =
            execute_parallel(&workload.spec, &workload.state, workload.block_input(), threads)
                .expect_err("the parallel engine rejects the block");
        assert_eq!(oracle.to_string(), parallel.to_string(), "{what} at {threads} threads");
    }
}

#[test]
fn an_invalid_transaction_gives_the_oracles_error() {
    for seed in 0..4 {
        let (workload, k) = with_invalid_tx(seed);
        assert_oracles_error(&workload, &format!("seed {seed}, bad tx {k}"));
    }
}

/// A state whose reads of one account panic, as a buggy or failing backend might.
#[derive(Debug)]
struct PanickingState {
    inner: InMemoryState,
    poisoned: Address,
}

impl DatabaseRef for PanickingState {
    type Error = StateError;
    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        assert!(address != self.poisoned, "backend exploded reading {address}");
        self.inner.basic_ref(address)
    }
    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        self.inner.code_by_hash_ref(code_hash)
    }
    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StateError> {
        self.inner.storage_ref(address, index)
    }
    fn block_hash_ref(&self, number: u64) -> Result<B256, StateError> {
        self.inner.block_hash_ref(number)
    }
}

impl velarium_state::StorageProbe for PanickingState {
    fn storage_only_accounts(&self) -> &alloy_primitives::map::AddressSet {
        self.inner.storage_only_accounts()
    }
}

#[test]
fn a_panicking_worker_is_an_error_not_a_hang() {
    let workload = velarium_workloads::eth_transfers(5, 64);
    // The recipient of a transaction in the middle of the block.
    let poisoned = alloy_consensus::Transaction::to(workload.transactions[40].inner())
        .expect("a transfer has a recipient");
    let db = PanickingState { inner: workload.state.clone(), poisoned };
    for threads in [1, 2, 4] {
        let err = execute_parallel(&workload.spec, &db, workload.block_input(), threads)
            .expect_err("a panicking read fails the block");
        assert!(err.to_string().contains("worker panicked"), "{err}");
    }
}

/// Runs `workload` at 1, 2 and 4 threads with every mechanism on and with the deltas off:
/// the oracle's result each time; `lazy` (the count of lazily read transactions that `count`
/// picks from the stats) satisfies `expected` with the deltas on at 2 and 4 threads, and is
/// zero with them off and on one worker (which runs with every mechanism off).
fn lazy_reads_give_the_oracles_result(
    workload: &Workload,
    count: fn(&velarium_executor::ParallelStats) -> u64,
    expected: impl Fn(u64) -> bool,
) {
    let oracle = execute_sequential(&workload.spec, &workload.state, workload.block_input())
        .expect("the oracle executes the block");
    for threads in [1, 2, 4] {
        for mechanisms in [Mechanisms::ALL, Mechanisms { deltas: false, ..Mechanisms::ALL }] {
            let (parallel, stats) = execute_parallel_with(
                &workload.spec,
                &workload.state,
                workload.block_input(),
                threads,
                mechanisms,
            )
            .expect("the parallel engine executes the block");
            assert_eq!(oracle, parallel, "{} at {threads} threads, {mechanisms:?}", workload.name);
            if mechanisms.deltas && threads > 1 {
                assert!(expected(count(&stats)), "{}: {stats:?}", workload.name);
            } else {
                assert_eq!(count(&stats), 0, "{}: {stats:?}", workload.name);
            }
        }
    }
}

/// The payout block's hot wallets (one of them the beneficiary) are read lazily by their plain
/// transfers on several workers, and the result is still the oracle's at every thread count;
/// with the deltas mechanism off, or on one worker, nothing is lazy.
#[test]
fn payouts_read_their_hot_wallets_lazily() {
    let workload = velarium_workloads::payouts(5, 200);
    lazy_reads_give_the_oracles_result(&workload, |s| s.lazy_sender_txs, |n| n > 100);
}

/// The access traces behind `velarium bench`'s critical-path bound show what the engine
/// credits (the hot wallets' lazy debits, the beneficiary's tips) as credits, not writes, though
/// tracing runs on one worker, which otherwise runs with every mechanism off: as writes the two
/// blocks would read as one long chain each.
#[test]
fn traces_keep_the_credits_of_one_worker() {
    for (workload, credited) in [
        (velarium_workloads::payouts(5, 200), 100),
        (velarium_workloads::builder_tips(7, 300), 100),
    ] {
        let trace = velarium_executor::trace_accesses(
            &workload.spec,
            &workload.state,
            workload.block_input(),
        )
        .expect("the block traces");
        let crediting = trace.iter().filter(|tx| !tx.credits.is_empty()).count();
        assert!(crediting > credited, "{}: {crediting} crediting transactions", workload.name);
        let bound = velarium_analyzer::critical_path(&trace).bound;
        assert!(bound > 2.0, "{}: bound {bound}", workload.name);
    }
}

/// A builder's block: tips from contracts and transfers to the beneficiary are read lazily
/// (not after every lower fee), `BALANCE(COINBASE)` readers and the builder's own payments read
/// it for real, and the result is the oracle's at every thread count, with and without deltas.
#[test]
fn builder_tips_credit_the_beneficiary_lazily() {
    let workload = velarium_workloads::builder_tips(7, 300);
    // About half of the transactions tip or pay the builder; the probes and the builder's own
    // payments must not be among the lazy ones.
    lazy_reads_give_the_oracles_result(
        &workload,
        |s| s.lazy_beneficiary_txs,
        |n| (100..290).contains(&n),
    );
}

/// A long last transaction is started early at 2 and 4 threads (never at 1) when no lower
/// transaction calls its contract (odd seeds), and is left in order when one does (even seeds:
/// that call writes what it reads); the result is the oracle's either way.
#[test]
fn a_long_late_transaction_starts_early_and_gives_the_oracles_result() {
    for seed in [1, 2, 3, 4] {
        let workload = velarium_workloads::late_heavy(seed, 60);
        let oracle = execute_sequential(&workload.spec, &workload.state, workload.block_input())
            .expect("the oracle executes the block");
        for threads in [1, 2, 4] {
            let (parallel, stats) =
                execute_parallel(&workload.spec, &workload.state, workload.block_input(), threads)
                    .expect("the parallel engine executes the block");
            assert_eq!(oracle, parallel, "seed {seed} at {threads} threads ({stats:?})");
            let early = threads > 1 && seed % 2 == 1;
            assert_eq!(stats.early_txs, u64::from(early), "seed {seed}: {stats:?}");
            let receipt = parallel.receipts.last().expect("a receipt per transaction");
            assert!(!receipt.status(), "seed {seed}: the long call runs out of gas");
        }
    }
}

/// The oracle's per-transaction times (the weights of the time-weighted bound): one per
/// transaction, and the long loop at the end of `late_heavy` takes longer than any transfer,
/// although its gas only equals theirs together.
#[test]
fn the_oracle_times_each_transaction() {
    // 299 transfers and a loop with their gas together (milliseconds against microseconds).
    let workload = velarium_workloads::late_heavy(1, 300);
    let times = time_transactions(&workload.spec, &workload.state, workload.block_input(), 3)
        .expect("the oracle executes the block");
    assert_eq!(times.len(), workload.transactions.len());
    let (last, transfers) = times.split_last().expect("transactions");
    assert!(transfers.iter().all(|t| t < last), "{times:?}");
}

/// `mostly_one_chain` counts every repeated sender, whether its transactions come in a row (a
/// pool paying out) or interleaved with others.
#[test]
fn one_sender_chains_are_found_in_a_row_and_interleaved() {
    use velarium_executor::mostly_one_chain;
    let chain = velarium_workloads::airdrop(1, 100).transactions;
    let distinct = velarium_workloads::eth_transfers(1, 100).transactions;
    assert!(mostly_one_chain(&chain));
    assert!(!mostly_one_chain(&distinct));
    let interleave = |chained: usize, others: usize| {
        let mut txs = Vec::new();
        let (mut a, mut b) = (chain[..chained].iter(), distinct[..others].iter());
        loop {
            match (a.next(), b.next()) {
                (None, None) => break txs,
                (x, y) => txs.extend(x.into_iter().chain(y).cloned()),
            }
        }
    };
    // 60 of one sender among 100, the first 80 alternating (19 in a row in all): 59 repeats.
    assert!(mostly_one_chain(&interleave(60, 40)));
    // 50 of one sender among 100: 49 repeats, not most.
    assert!(!mostly_one_chain(&interleave(50, 50)));
    // One wallet's plain transfers: the engine's lazy senders run them side by side.
    assert!(!mostly_one_chain(&velarium_workloads::payouts(1, 100).transactions));
}

/// The parallel engine's choice between Block-STM and the oracle: small blocks go to the
/// oracle unless they hold much gas, one sender's chains of calls always, and a threshold of 0
/// forces Block-STM.
#[test]
fn small_light_blocks_and_call_chains_go_to_the_oracle() {
    use velarium_executor::{worth_block_stm, DEFAULT_PARALLEL_MIN_GAS as HEAVY};
    let transfers = velarium_workloads::eth_transfers(1, 30);
    let chain = velarium_workloads::airdrop(1, 30);
    let with = |w: &velarium_workloads::Workload, txs: usize, gas_used: u64| {
        let header = alloy_consensus::Header { gas_used, ..w.header.clone() };
        let input = velarium_executor::BlockInput {
            transactions: &w.transactions[..txs],
            header: &header,
            ..w.block_input()
        };
        (worth_block_stm(input, 24), worth_block_stm(input, 0))
    };
    assert_eq!(with(&transfers, 30, 630_000), (true, true));
    assert_eq!(with(&transfers, 20, 420_000), (false, true));
    assert_eq!(with(&transfers, 20, HEAVY), (true, true));
    assert_eq!(with(&transfers, 7, HEAVY), (false, true));
    assert_eq!(with(&chain, 30, HEAVY), (false, true));
}

/// A block of cheap transactions gets one worker while the cores are far apart; heavier blocks
/// keep theirs, and so does every block where the cores are near or not measured lately.
/// The contract half of a block calls or more: a token's transfers and a probe's calls are
/// dominated, ether transfers to distinct accounts and a mixed block are not.
#[test]
fn a_block_is_dominated_by_the_contract_half_its_transactions_call() {
    use velarium_executor::dominant_callee;
    let token = velarium_workloads::erc20_transfers(1, 200);
    let callee = dominant_callee(&token.transactions).expect("every transfer calls the token");
    assert!(token.state.basic_ref(callee).expect("state").is_some_and(|a| a.code.is_some()));
    assert!(dominant_callee(&velarium_workloads::reads_beneficiary(1, 200).transactions).is_some());
    assert_eq!(dominant_callee(&velarium_workloads::eth_transfers(1, 200).transactions), None);
    assert_eq!(dominant_callee(&velarium_workloads::builder_tips(1, 200).transactions), None);
    // Exactly half still dominates; one call fewer does not.
    let transfers = velarium_workloads::eth_transfers(1, 100).transactions;
    let mixed = |calls: usize| {
        let mut txs = token.transactions[..calls].to_vec();
        txs.extend_from_slice(&transfers[..100 - calls]);
        txs
    };
    assert_eq!(dominant_callee(&mixed(50)), Some(callee));
    assert_eq!(dominant_callee(&mixed(49)), None);
    assert_eq!(dominant_callee(&[]), None);
}

/// A contract whose block Block-STM ran as a chain sends the next blocks it dominates to the
/// oracle (with the oracle's exact output), every `REPROBE_EVERY`th of them back through
/// Block-STM; a forced engine (`min_txs == 0`) and a dominated block that did not chain always
/// run Block-STM.
#[test]
fn cheap_blocks_get_one_worker_where_the_cores_are_far_apart() {
    use velarium_executor::{
        workers_at_round_trip as workers, CHEAP_TX_GAS, CHEAP_TX_NANOS, FAR_ROUND_TRIP_NS as FAR,
    };
    // What decides is the header's gas over the transaction count (a generated block's header
    // says 0: set it as a real block's would), and the rate its fork's blocks were timed at.
    let transfers = velarium_workloads::eth_transfers(1, 100);
    let cheap_header =
        alloy_consensus::Header { gas_used: 100 * 21_000, ..transfers.header.clone() };
    let heavy_header =
        alloy_consensus::Header { gas_used: 100 * CHEAP_TX_GAS, ..transfers.header.clone() };
    let cheap = velarium_executor::BlockInput { header: &cheap_header, ..transfers.block_input() };
    let heavy = velarium_executor::BlockInput { header: &heavy_header, ..transfers.block_input() };
    assert_eq!(workers(cheap, 2, Some(FAR + 100), None), 1);
    assert_eq!(workers(cheap, 4, Some(FAR), None), 1);
    assert_eq!(workers(cheap, 2, Some(FAR - 1), None), 2);
    assert_eq!(workers(cheap, 2, None, None), 2);
    assert_eq!(workers(heavy, 2, Some(FAR + 100), None), 2);
    assert_eq!(workers(cheap, 1, Some(FAR + 100), None), 1);
    // Heavy in gas but cheap in time at the learned rate (an old block's calldata): one worker
    // on far cores, both on near ones; a rate that prices it at the bound keeps both.
    let cheap_rate = CHEAP_TX_NANOS * 1000 / CHEAP_TX_GAS - 1;
    let dear_rate = CHEAP_TX_NANOS * 1000 / CHEAP_TX_GAS + 1;
    assert_eq!(workers(heavy, 2, Some(FAR + 100), Some(cheap_rate)), 1);
    assert_eq!(workers(heavy, 2, Some(FAR - 1), Some(cheap_rate)), 2);
    assert_eq!(workers(heavy, 2, Some(FAR + 100), Some(dear_rate)), 2);
    // The gas alone still makes a block cheap, whatever the rate.
    assert_eq!(workers(cheap, 2, Some(FAR + 100), Some(dear_rate * 10)), 1);
}

/// The default worker count follows the machine but stops at the measured cap.
#[test]
fn the_default_worker_count_is_capped() {
    use velarium_executor::{default_workers, DEFAULT_MAX_WORKERS};
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(default_workers(), cores.min(DEFAULT_MAX_WORKERS));
    assert!(default_workers() >= 1);
}

/// Effect analysis before execution: the counter slot every mint bumps (a constant key of the
/// contract most transactions call) is predicted hot, with the hints mechanism only; either
/// way the result is the oracle's.
#[test]
fn the_hot_counter_is_predicted_before_execution() {
    let workload = velarium_workloads::nft_mint_counter(3, 200);
    let oracle = execute_sequential(&workload.spec, &workload.state, workload.block_input())
        .expect("oracle");
    for hints in [true, false] {
        let mechanisms = Mechanisms { hints, ..Mechanisms::ALL };
        let (output, stats) = execute_parallel_with(
            &workload.spec,
            &workload.state,
            workload.block_input(),
            2,
            mechanisms,
        )
        .expect("parallel");
        assert_eq!(output, oracle, "hints {hints}");
        if hints {
            assert!(stats.predicted_hot >= 1, "{stats:?}");
        } else {
            assert_eq!(stats.predicted_hot, 0, "{stats:?}");
        }
    }
}

/// Senders are recovered on several threads for a large block, in block order, and an invalid
/// signature is reported at its own index whichever thread met it.
#[test]
fn senders_are_recovered_in_order_and_a_bad_signature_is_named() {
    use alloy_consensus::{transaction::SignerRecoverable, TxEnvelope};
    let workload = velarium_workloads::eth_transfers(4, 300);
    let envelopes: Vec<TxEnvelope> =
        workload.transactions.iter().map(|tx| tx.inner().clone()).collect();
    let recovered = velarium_executor::recover_senders(&envelopes).expect("valid signatures");
    assert_eq!(recovered.len(), 300);
    for (got, expected) in recovered.iter().zip(&workload.transactions) {
        assert_eq!(got.signer(), expected.signer());
    }
    for bad in [0usize, 150, 299] {
        let mut broken = envelopes.clone();
        let TxEnvelope::Eip1559(signed) = &broken[bad] else { panic!("an EIP-1559 transfer") };
        let signature = alloy_primitives::Signature::new(U256::ZERO, U256::ZERO, false);
        let tx = alloy_consensus::Signed::new_unhashed(signed.tx().clone(), signature);
        broken[bad] = TxEnvelope::Eip1559(tx);
        assert!(broken[bad].recover_signer().is_err());
        match velarium_executor::recover_senders(&broken) {
            Err(velarium_executor::ExecutionError::InvalidSignature { index }) => {
                assert_eq!(index, bad)
            }
            other => panic!("{other:?}"),
        }
    }
}

/// 400 mints, each bumping one counter, and the counter contract.
fn counter_block() -> (Workload, Address) {
    let workload = velarium_workloads::nft_mint_counter(9, 400);
    let counter =
        alloy_consensus::Transaction::to(workload.transactions[0].inner()).expect("a call");
    (workload, counter)
}

/// Run `run` of the counter block: on 2 workers, or 4 every other run.
fn counter_run(workload: &Workload, run: usize, mechanisms: Mechanisms) -> ParallelStats {
    parallel_with(workload, if run.is_multiple_of(2) { 2 } else { 4 }, mechanisms).1
}

/// A block whose transactions all bump one counter reports the counter's slot as its hot spot
/// once reads of it keep failing validation (run with the waits and predictions off, so that
/// they do fail). How often they fail depends on how the workers interleave, which a busy
/// machine (the test runner's other tests) can starve: up to 60 runs, alternating 2 and 4
/// workers, until one has enough aborts.
#[test]
fn the_contended_counter_is_reported_as_the_blocks_hot_spot() {
    let (workload, counter) = counter_block();
    let mechanisms = Mechanisms { hints: false, risk: false, ..Mechanisms::ALL };
    let mut seen = false;
    let mut most = 0;
    for run in 0..60 {
        let stats = counter_run(&workload, run, mechanisms);
        assert!(stats.hot_spots().len() <= velarium_executor::MAX_HOT_SPOTS);
        for spot in stats.hot_spots() {
            assert!(spot.conflicts() >= velarium_executor::HOT_SPOT_CONFLICTS, "{spot:?}");
        }
        most = most.max(stats.aborts);
        if stats.aborts >= 40 {
            assert!(
                stats.hot_spots().iter().any(|s| s.address == counter && s.slot.is_some()),
                "{} aborts, hot spots {:?}",
                stats.aborts,
                stats.hot_spots()
            );
            seen = true;
            break;
        }
    }
    assert!(seen, "the counter never failed validation 40 times in 60 runs (at most {most})");
}

/// With every mechanism on, reads of the contended counter pause instead of failing: the
/// block's hot spots report those waits at the counter's slot (how often a read pauses depends
/// on how the workers interleave: up to 60 runs, alternating 2 and 4 workers).
#[test]
fn the_contended_counter_reports_its_paused_reads() {
    let (workload, counter) = counter_block();
    let mut most = 0;
    for run in 0..60 {
        let stats = counter_run(&workload, run, Mechanisms::ALL);
        let waits: u32 = stats
            .hot_spots()
            .iter()
            .filter(|s| s.address == counter && s.slot.is_some())
            .map(|s| s.waits)
            .sum();
        most = most.max(waits);
        if waits >= 8 {
            return;
        }
    }
    panic!("the counter's reads paused at most {most} times in a run of 60");
}

#[test]
fn worker_utilisation_is_reported_for_blocks_that_ran_on_workers() {
    let workload = velarium_workloads::erc20_transfers(5, 400);
    for threads in [1, 2] {
        let (_, stats) = execute_parallel_with(
            &workload.spec,
            &workload.state,
            workload.block_input(),
            threads,
            Mechanisms::ALL,
        )
        .expect("parallel");
        let utilisation = stats.worker_utilisation().expect("Block-STM ran");
        // The share is a share either way; one worker never waits for another, so all of its
        // time in Block-STM is work (the fold's last stretch included: it once was left out
        // and one worker read 75%).
        assert!(utilisation > 0.0 && utilisation <= 1.0, "{threads}: {utilisation}");
        if threads == 1 {
            assert!(utilisation > 0.9, "one worker: {utilisation}");
        }
        assert!(stats.worker_busy > std::time::Duration::ZERO, "{stats:?}");
    }
    let (_, sequential) = velarium_executor::Engine::Sequential
        .execute_with_stats(&workload.spec, &workload.state, workload.block_input())
        .expect("oracle");
    assert_eq!(sequential.worker_utilisation(), None);
}

/// Plain transfers run without the EVM (each one also checked against revm here: a difference
/// panics the worker, which fails the block) and the block's result is the oracle's, at every
/// thread count, with the deltas mechanism on (lazy senders and recipients) and off; a block of
/// ERC-20 calls has none.
#[test]
fn plain_transfers_skip_the_evm_and_match_the_oracle() {
    velarium_executor::check_transfers(true);
    for workload in [velarium_workloads::eth_transfers(3, 300), velarium_workloads::payouts(4, 200)]
    {
        let oracle = execute_sequential(&workload.spec, &workload.state, workload.block_input())
            .expect("the oracle executes the block");
        for threads in [1, 2, 4] {
            for mechanisms in [Mechanisms::ALL, Mechanisms { deltas: false, ..Mechanisms::ALL }] {
                let (parallel, stats) = execute_parallel_with(
                    &workload.spec,
                    &workload.state,
                    workload.block_input(),
                    threads,
                    mechanisms,
                )
                .expect("the parallel engine executes the block");
                assert_eq!(oracle, parallel, "{} at {threads} threads", workload.name);
                assert!(stats.plain_transfers >= 150, "{}: {stats:?}", workload.name);
            }
        }
    }
    let erc20 = velarium_workloads::erc20_transfers(3, 100);
    let (_, stats) =
        execute_parallel_with(&erc20.spec, &erc20.state, erc20.block_input(), 2, Mechanisms::ALL)
            .expect("the parallel engine executes the block");
    assert_eq!(stats.plain_transfers, 0, "{stats:?}");
}

/// A counter every transaction bumps (`PUSH1 0 SLOAD PUSH1 1 ADD PUSH1 0 SSTORE`: the key
/// pushed again, not kept): its slot is credited without being read once it holds a non-zero
/// value, at 2 and 4 threads, with the oracle's result (the first bump, from zero, reads for
/// real: its `SSTORE` costs 20,000 gas, the others' 2,900). An NFT's next id is the same
/// increment, but the new value is also used (as the token's key): never credited. And
/// `counter_modes`, where bumps meet observers, resets and additions past what is credited.
#[test]
fn counters_bumped_through_a_pushed_key_are_credited() {
    let counter = velarium_workloads::dependent_chain(5, 200);
    let mint = velarium_workloads::nft_mint_counter(5, 200);
    let (counter_oracle, mint_oracle) = (oracle_of(&counter), oracle_of(&mint));
    for threads in [2, 4] {
        let (parallel, stats) = parallel_with(&counter, threads, Mechanisms::ALL);
        assert_eq!(counter_oracle, parallel, "{threads} threads: {stats:?}");
        assert!(stats.storage_credits >= 100, "{threads} threads: {stats:?}");
        let (parallel, stats) = parallel_with(&mint, threads, Mechanisms::ALL);
        assert_eq!(mint_oracle, parallel, "{threads} threads: {stats:?}");
        assert_eq!(stats.storage_credits, 0, "{threads} threads: {stats:?}");
        // The hostile mix, from each starting value (seed % 3): zero, one, 2^224 - 3.
        for seed in 0..3 {
            let modes = velarium_workloads::counter_modes(seed, 200);
            let (parallel, stats) = parallel_with(&modes, threads, Mechanisms::ALL);
            assert_eq!(oracle_of(&modes), parallel, "seed {seed}, {threads} threads: {stats:?}");
            assert!(stats.storage_credits > 0, "seed {seed}, {threads} threads: {stats:?}");
        }
    }
}

/// Deposits to an exchange (WETH9 transfers to one receiver, with sweeps from it, `balanceOf`
/// queries, zero deposits and whales' deposits too large to credit): at 2 and 4 threads the
/// receiver's balance slot is credited without being read (an unobserved increment), and the
/// result is the oracle's, with the deltas on and off. One worker never credits (its
/// transactions read final values).
#[test]
fn deposits_credit_the_receivers_balance_without_reading_it() {
    let workload = velarium_workloads::erc20_deposits(3, 300);
    let oracle = oracle_of(&workload);
    for threads in [1, 2, 4] {
        let mut credits = 0;
        // The slot is credited once it is hot: after a few failed reads, or from the history of
        // the runs before. On a loaded machine (the tests run side by side) the workers may not
        // overlap enough for a read to fail in one run: up to 60, then.
        for run in 0..60 {
            let (parallel, stats) = parallel_with(&workload, threads, Mechanisms::ALL);
            assert_eq!(oracle, parallel, "{threads} threads: {stats:?}");
            credits += stats.storage_credits;
            if run >= 2 && (credits > 0 || threads == 1) {
                break;
            }
        }
        if threads == 1 {
            assert_eq!(credits, 0);
        } else {
            assert!(credits > 0, "{threads} threads: no storage credit");
        }
        let off = Mechanisms { deltas: false, ..Mechanisms::ALL };
        let (parallel, stats) = parallel_with(&workload, threads, off);
        assert_eq!(oracle, parallel, "{threads} threads, deltas off");
        assert_eq!(stats.storage_credits, 0);
    }
}

/// The engine times the first incarnation of every eighth transaction and learns the fork's
/// cost per gas from it (what `workers_for` prices the next blocks' gas at). The block is one of
/// transfers with a paid sender, so that Block-STM runs it (a block of independent transfers
/// runs without it, and teaches nothing).
#[test]
fn the_engine_times_a_sample_of_the_transactions_and_learns_their_rate() {
    use velarium_executor::{tx_cost::LEARNED, Engine};
    use velarium_workloads::{shared_recipients, Twist};
    let mut transfers = shared_recipients(0x5eed_c057, 100, Twist::PaidSender);
    transfers.header.gas_used = oracle_of(&transfers).gas_used;
    let spec = transfers.spec.spec_id(transfers.header.number, transfers.header.timestamp);
    for threads in [1, 2] {
        let (_, stats) = parallel_with(&transfers, threads, Mechanisms::ALL);
        assert!(!stats.independent, "{stats:?}");
        // 13 transactions sampled (0, 8, ..., 96), each a 21,000-gas transfer; a transaction
        // whose first incarnation was abandoned on a dependency is not.
        assert!(stats.sampled_gas > 0 && stats.sampled_nanos > 0, "{stats:?}");
        assert!(stats.sampled_gas <= 13 * 21_000 && stats.sampled_gas % 21_000 == 0, "{stats:?}");
    }
    let engine = Engine::Parallel { threads: 2, min_txs: 24 };
    let (output, stats) = engine
        .execute_with_stats(&transfers.spec, &transfers.state, transfers.block_input())
        .expect("the engine executes the block");
    assert!(output == oracle_of(&transfers), "the output differs from the oracle's");
    assert!(stats.threads >= 1 && stats.sampled_gas > 0, "{stats:?}");
    assert!(LEARNED.ps_per_gas(spec).is_some(), "the engine learned no rate for {spec:?}");
}

/// A block of independent plain transfers (every sender once, no sender paid, recipients paid
/// several times, some tips zero) runs without Block-STM at every thread count, each transfer
/// checked against revm, with the oracle's result. A late transfer to a contract declines the
/// run and the block goes through Block-STM, with the oracle's result; a paid sender keeps the
/// block Block-STM's from the start; a sender short of funds gives the oracle's error.
#[test]
fn independent_transfers_skip_block_stm_and_match_the_oracle() {
    use velarium_workloads::{shared_recipients, Twist};
    velarium_executor::check_transfers(true);
    for seed in [1, 2, 3] {
        for (twist, independent, declined) in [
            (Twist::None, true, false),
            (Twist::ContractRecipient, false, true),
            (Twist::PaidSender, false, false),
        ] {
            let workload = shared_recipients(seed, 200, twist);
            let oracle = oracle_of(&workload);
            for threads in [1, 2, 3, 4] {
                let (parallel, stats) = parallel_with(&workload, threads, Mechanisms::ALL);
                assert_eq!(oracle, parallel, "{twist:?} seed {seed} at {threads} threads");
                assert_eq!(stats.independent, independent, "{twist:?} at {threads}: {stats:?}");
                assert_eq!(stats.independent_declined, declined, "{twist:?} at {threads}");
                if independent {
                    assert_eq!(stats.executions, 200);
                    assert_eq!(stats.plain_transfers, 200);
                    assert_eq!(stats.validations, 0);
                }
            }
            // With the deltas off (no lazy recipients), Block-STM runs it.
            let (parallel, stats) =
                parallel_with(&workload, 2, Mechanisms { deltas: false, ..Mechanisms::ALL });
            assert_eq!(oracle, parallel, "{twist:?} seed {seed} without deltas");
            assert!(!stats.independent);
        }
        let short = shared_recipients(seed, 200, Twist::ShortSender);
        assert_oracles_error(&short, &format!("a short sender, seed {seed}"));
    }
    // The generated block of transfers is one of them.
    let workload = velarium_workloads::eth_transfers(4, 300);
    let (parallel, stats) = parallel_with(&workload, 2, Mechanisms::ALL);
    assert_eq!(oracle_of(&workload), parallel);
    assert!(stats.independent, "{stats:?}");
}
