//! The DAO fork's irregular state change happens before the block's transactions.

use alloy_consensus::Header;
use alloy_evm::eth::dao_fork::{DAO_HARDFORK_ACCOUNTS, DAO_HARDFORK_BENEFICIARY};
use alloy_primitives::{map::HashMap, U256};
use velarium_chainspec::ChainSpec;
use velarium_executor::{execute_parallel, execute_sequential, BlockInput};
use velarium_state::InMemoryState;

#[test]
fn dao_drain_keeps_empty_accounts_before_eip161() {
    let spec = ChainSpec::from_network("HomesteadToDaoAt5", 1).unwrap();
    let mut state = InMemoryState::new();
    state.insert_account(DAO_HARDFORK_ACCOUNTS[0], U256::from(100), 0, None, HashMap::default());
    state.insert_account(DAO_HARDFORK_ACCOUNTS[1], U256::from(23), 0, None, HashMap::default());
    let header = Header {
        number: 5,
        gas_limit: 1_000_000,
        difficulty: U256::from(131072),
        ..Default::default()
    };
    let input = BlockInput { header: &header, transactions: &[], ommers: &[], withdrawals: None };
    let seq = execute_sequential(&spec, &state, input).unwrap();
    let (par, _) = execute_parallel(&spec, &state, input, 2).unwrap();
    assert_eq!(seq, par);
    let mut after = state.clone();
    after.apply_bundle(&seq.bundle);
    let drained =
        after.account(&DAO_HARDFORK_ACCOUNTS[0]).expect("drained account stays (pre-EIP-161)");
    assert_eq!(drained.info.balance, U256::ZERO);
    assert_eq!(after.account(&DAO_HARDFORK_BENEFICIARY).unwrap().info.balance, U256::from(123));
}
