//! Every generator against the sequential oracle: the block executes, each receipt has the
//! expected status, and generation is deterministic.

use super::*;
use alloy_consensus::{transaction::SignerRecoverable, Transaction};
use alloy_primitives::{B256, U256};
use velarium_executor::{execute_sequential, BlockOutput};

const N_TXS: usize = 200;

fn run(workload: &Workload) -> BlockOutput {
    let output = execute_sequential(&workload.spec, &workload.state, workload.block_input())
        .unwrap_or_else(|e| panic!("{}: block rejected: {e}", workload.name));
    assert_eq!(output.receipts.len(), workload.expected.len(), "{}", workload.name);
    for (i, (receipt, expected)) in output.receipts.iter().zip(&workload.expected).enumerate() {
        assert_eq!(
            receipt.status(),
            expected.status(),
            "{}: tx {i} expected {expected:?}",
            workload.name
        );
    }
    assert!(output.gas_used <= workload.header.gas_limit);
    output
}

fn post_state_root(workload: &Workload, output: &BlockOutput) -> B256 {
    let mut state = workload.state.clone();
    state.apply_bundle(&output.bundle);
    state.compute_state_root()
}

fn tx_hashes(workload: &Workload) -> Vec<B256> {
    workload.transactions.iter().map(|tx| *tx.inner().tx_hash()).collect()
}

#[test]
fn every_generator_matches_its_expected_outcomes() {
    for (name, generate) in GENERATORS {
        let workload = generate(42, N_TXS);
        assert_eq!(workload.name, *name);
        assert_eq!(workload.transactions.len(), N_TXS, "{name}");
        let output = run(&workload);
        // Fees reach the beneficiary.
        let beneficiary = output.bundle.state.get(&workload.header.beneficiary);
        assert!(
            beneficiary.is_some_and(|a| a.info.as_ref().is_some_and(|i| i.balance > U256::ZERO))
        );
    }
}

#[test]
fn generators_are_deterministic() {
    for (name, generate) in GENERATORS {
        let (a, b) = (generate(7, 50), generate(7, 50));
        assert_eq!(tx_hashes(&a), tx_hashes(&b), "{name}");
        assert_eq!(a.header, b.header, "{name}");
        assert_eq!(a.expected, b.expected, "{name}");
        assert_eq!(a.state.compute_state_root(), b.state.compute_state_root(), "{name}");
        assert_eq!(post_state_root(&a, &run(&a)), post_state_root(&b, &run(&b)), "{name}");
        let other = generate(8, 50);
        assert_ne!(tx_hashes(&a), tx_hashes(&other), "{name}: the seed must matter");
    }
}

#[test]
fn mixed_covers_every_outcome_over_seeds() {
    for seed in 0..8 {
        let workload = mixed(seed, N_TXS);
        run(&workload);
        for outcome in [ExpectedOutcome::Success, ExpectedOutcome::Revert, ExpectedOutcome::Halt] {
            assert!(workload.expected.contains(&outcome), "seed {seed}: no {outcome:?}");
        }
        let types: std::collections::BTreeSet<u8> =
            workload.transactions.iter().map(|tx| tx.inner().tx_type() as u8).collect();
        assert_eq!(types.into_iter().collect::<Vec<_>>(), vec![0, 2, 4], "seed {seed}");
        assert!(workload.transactions.iter().any(|tx| tx.inner().kind().is_create()));
    }
}

#[test]
fn senders_recover_from_signatures() {
    for workload in [mixed(3, N_TXS), eth_transfers(3, 20)] {
        for tx in &workload.transactions {
            assert_eq!(tx.inner().recover_signer().unwrap(), tx.signer());
            for auth in tx.inner().authorization_list().into_iter().flatten() {
                assert!(auth.recover_authority().is_ok());
            }
        }
    }
}

#[test]
fn invalid_tx_makes_the_oracle_reject_the_block() {
    for seed in 0..4 {
        let (workload, k) = with_invalid_tx(seed);
        assert!(k < workload.transactions.len());
        assert!(
            execute_sequential(&workload.spec, &workload.state, workload.block_input()).is_err()
        );
        // The same block without the bad transaction is valid.
        let mut fixed = workload.clone();
        fixed.transactions.remove(k);
        fixed.expected.remove(k);
        run(&fixed);
    }
}

#[test]
fn gigagas_gas_limit() {
    let workload = eth_transfers(1, 100).with_gas_limit(GIGAGAS).unwrap();
    assert_eq!(workload.header.gas_limit, GIGAGAS);
    run(&workload);
    assert_eq!(
        eth_transfers(1, 100).with_gas_limit(21_000 * 99).unwrap_err(),
        WorkloadError::GasLimitTooLow { needed: 21_000 * 100, gas_limit: 21_000 * 99 }
    );
    let big = generate("dependent_chain", 1, 10_000, GasLimit::Fixed(GIGAGAS)).unwrap();
    assert!(big.gas_needed() <= GIGAGAS);
    assert!(generate("nope", 1, 1, GasLimit::Auto).is_err());
}

#[test]
fn swaps_move_reserves_as_the_constant_product_says() {
    // The minimum output of every swap is the exact expected output, so the block succeeding
    // shows the router saw the simulated reserves; check the pair's reserve slot moved too.
    let workload = single_pool_swaps(5, 50);
    let output = run(&workload);
    let pairs: Vec<_> = workload
        .state
        .accounts()
        .filter(|(_, a)| a.storage.get(&U256::from(12)) == Some(&U256::from(1)))
        .map(|(address, _)| *address)
        .collect();
    assert_eq!(pairs.len(), 1);
    let after = &output.bundle.state[&pairs[0]].storage[&U256::from(8)];
    assert_ne!(after.present_value, after.previous_or_original_value);
}

#[test]
fn erc20_transfer_credits_the_receiver_slot() {
    let workload = erc20_transfers(9, 10);
    let output = run(&workload);
    let token = &output.bundle.state[&contracts::WETH9_ADDRESS];
    for tx in &workload.transactions {
        let input = tx.inner().input();
        let to = alloy_primitives::Address::from_slice(&input[16..36]);
        let amount = U256::from_be_slice(&input[36..68]);
        let slot = contracts::weth_balance_slot(to);
        assert_eq!(token.storage[&slot].present_value, amount);
    }
}

#[test]
fn the_hot_receiver_gets_every_transfer() {
    let workload = erc20_hot_receiver(3, 25);
    let output = run(&workload);
    let token = &output.bundle.state[&contracts::WETH9_ADDRESS];
    let mut receivers = std::collections::HashSet::new();
    let mut total = U256::ZERO;
    for tx in &workload.transactions {
        let input = tx.inner().input();
        receivers.insert(alloy_primitives::Address::from_slice(&input[16..36]));
        total += U256::from_be_slice(&input[36..68]);
    }
    assert_eq!(receivers.len(), 1, "one receiver for every transfer");
    let receiver = *receivers.iter().next().unwrap();
    let slot = &token.storage[&contracts::weth_balance_slot(receiver)];
    // It held one ether of tokens before the block.
    assert_eq!(slot.previous_or_original_value, U256::from(10u128.pow(18)));
    assert_eq!(slot.present_value, U256::from(10u128.pow(18)) + total);
}

#[test]
fn mixed_has_the_intended_effects() {
    use alloy_eips::eip7702::constants::EIP7702_DELEGATION_DESIGNATOR;
    let workload = mixed(11, N_TXS);
    let output = run(&workload);
    let mut previous = 0;
    let (mut halts, mut delegations, mut kept, mut destroyed) = (0, 0, 0, 0);
    for ((tx, receipt), expected) in
        workload.transactions.iter().zip(&output.receipts).zip(&workload.expected)
    {
        let cumulative = receipt.cumulative_gas_used();
        let used = cumulative - previous;
        previous = cumulative;
        if *expected == ExpectedOutcome::Halt {
            halts += 1;
            assert_eq!(used, tx.inner().gas_limit(), "a halt burns all gas");
        }
        if let Some(auths) = tx.inner().authorization_list() {
            delegations += 1;
            let authority = tx.inner().to().unwrap();
            assert_eq!(auths[0].recover_authority().unwrap(), authority);
            let account = &output.bundle.state[&authority];
            let info = account.info.as_ref().unwrap();
            let code = info.code.as_ref().unwrap().original_bytes();
            assert!(code.starts_with(&EIP7702_DELEGATION_DESIGNATOR), "{code}");
            // The delegated counter ran in the authority's storage.
            assert!(account.storage[&U256::ZERO].present_value >= U256::from(1));
        }
        if tx.inner().kind().is_create() {
            let created = tx.signer().create(tx.inner().nonce());
            let code_len = output
                .bundle
                .state
                .get(&created)
                .and_then(|a| a.info.as_ref())
                .and_then(|i| i.code.as_ref())
                .map_or(0, |c| c.original_bytes().len());
            // Counters stay; same-transaction selfdestructs leave no account.
            if code_len == contracts::COUNTER.len() {
                kept += 1;
            } else {
                let account = output.bundle.state.get(&created);
                assert!(account.is_none_or(|a| a.info.is_none()), "{created}");
                destroyed += 1;
            }
        }
    }
    assert!(
        halts > 0 && delegations > 0 && kept > 0 && destroyed > 0,
        "{halts} {delegations} {kept} {destroyed}"
    );
    // The EIP-4788 system call stored the parent beacon root.
    let beacon = &output.bundle.state[&alloy_eips::eip4788::BEACON_ROOTS_ADDRESS];
    assert!(!beacon.storage.is_empty());
}

#[test]
fn empty_blocks_and_fill() {
    for (name, generate) in GENERATORS {
        let workload = generate(1, 0);
        assert!(workload.transactions.is_empty(), "{name}");
        run(&workload);
    }
    let full = fill("single_pool_swaps", 2, 10_000_000).unwrap();
    assert_eq!(full.header.gas_limit, 10_000_000);
    assert_eq!(full.transactions.len(), 50, "10M gas of 200k-gas swaps");
    run(&full);
    let full = fill("mixed", 2, 10_000_000).unwrap();
    assert!(full.gas_needed() <= 10_000_000 && full.transactions.len() >= 50);
    run(&full);
}

#[test]
#[ignore = "slow: a full gigagas block per generator"]
fn gigagas_blocks_execute() {
    for (name, _) in GENERATORS {
        let start = std::time::Instant::now();
        let workload = fill(name, 1, GIGAGAS).unwrap();
        let built = start.elapsed();
        let output = run(&workload);
        eprintln!(
            "{name}: {} txs, built in {built:?}, {} gas used, total {:?}",
            workload.transactions.len(),
            output.gas_used,
            start.elapsed()
        );
    }
}
