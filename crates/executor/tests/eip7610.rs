//! EIP-7610: a creation whose target has storage (but neither code nor nonce) collides, in the
//! oracle and in Block-STM alike, for creation transactions and for CREATE2.

use alloy_consensus::{transaction::Recovered, Header, SignableTransaction, TxEnvelope, TxLegacy};
use alloy_primitives::{
    keccak256,
    map::{AddressSet, HashMap},
    Address, Bytes, Signature, TxKind, B256, U256,
};
use revm::{bytecode::Bytecode, state::AccountInfo, DatabaseRef};
use velarium_chainspec::ChainSpec;
use velarium_executor::{
    execute_parallel, execute_sequential, BlockInput, BlockOutput, RecoveredTx, StorageProbe,
};
use velarium_state::{InMemoryState, StateError};

const SENDER: Address = Address::repeat_byte(0x5e);
const FACTORY: Address = Address::repeat_byte(0xfa);

/// CREATE2 of the one-byte init code `STOP` with salt 0, result into slot 0; then the same with
/// salt 1 into slot 1.
const FACTORY_CODE: [u8; 25] = [
    0x60, 0x00, 0x60, 0x01, 0x60, 0x00, 0x60, 0x00, 0xf5, 0x60, 0x00,
    0x55, // salt 0 -> slot 0
    0x60, 0x01, 0x60, 0x01, 0x60, 0x00, 0x60, 0x00, 0xf5, 0x60, 0x01,
    0x55, // salt 1 -> slot 1
    0x00,
];

fn create2_target(salt: u8) -> Address {
    FACTORY.create2(B256::with_last_byte(salt), keccak256([0x00]))
}

fn legacy(nonce: u64, gas_limit: u64, to: TxKind, input: Bytes) -> RecoveredTx {
    let tx = TxLegacy {
        chain_id: Some(1),
        nonce,
        gas_price: 10,
        gas_limit,
        to,
        value: U256::ZERO,
        input,
    };
    // The executors take the sender as recovered; the signature itself is never checked here.
    let signed = tx.into_signed(Signature::test_signature());
    Recovered::new_unchecked(TxEnvelope::Legacy(signed), SENDER)
}

/// The parent state: the sender, the factory, and storage-only accounts where the creation
/// transaction and the first CREATE2 land.
fn state() -> InMemoryState {
    let mut state = InMemoryState::new();
    let ether = U256::from(10).pow(U256::from(18));
    state.insert_account(SENDER, ether, 0, None, HashMap::default());
    state.insert_account(
        FACTORY,
        U256::ZERO,
        1,
        Some(Bytecode::new_raw(Bytes::from_static(&FACTORY_CODE))),
        HashMap::default(),
    );
    let storage: HashMap<U256, U256> = [(U256::from(1), U256::from(7))].into_iter().collect();
    state.insert_account(SENDER.create(0), U256::ZERO, 0, None, storage.clone());
    state.insert_account(create2_target(0), U256::from(3), 0, None, storage);
    state
}

/// The same state, but a store that names no storage-only account (what revm alone decides).
#[derive(Debug)]
struct Unprobed(InMemoryState, AddressSet);

impl StorageProbe for Unprobed {
    fn storage_only_accounts(&self) -> &AddressSet {
        &self.1
    }
}

impl DatabaseRef for Unprobed {
    type Error = StateError;
    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        self.0.basic_ref(address)
    }
    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        self.0.code_by_hash_ref(code_hash)
    }
    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StateError> {
        self.0.storage_ref(address, index)
    }
    fn block_hash_ref(&self, number: u64) -> Result<B256, StateError> {
        self.0.block_hash_ref(number)
    }
}

fn block() -> (ChainSpec, Header, Vec<RecoveredTx>) {
    let spec = ChainSpec::from_network("Shanghai", 1).expect("Shanghai rules");
    let header = Header {
        number: 1,
        gas_limit: 30_000_000,
        base_fee_per_gas: Some(7),
        timestamp: 1_000,
        beneficiary: Address::repeat_byte(0xbe),
        ..Default::default()
    };
    let txs = vec![
        // A creation transaction onto the first storage-only account.
        legacy(0, 200_000, TxKind::Create, Bytes::from_static(&[0x00])),
        // The factory: CREATE2 onto the second one (a collision burns the gas it passed on, so
        // the 1/64 kept back must pay for the rest), then onto a fresh address.
        legacy(1, 10_000_000, TxKind::Call(FACTORY), Bytes::new()),
    ];
    (spec, header, txs)
}

fn run<DB>(db: &DB, threads: Option<usize>) -> BlockOutput
where
    DB: DatabaseRef + StorageProbe + std::fmt::Debug + Sync,
    DB::Error: Send + Sync + std::fmt::Display + 'static,
{
    let (spec, header, txs) = block();
    let input =
        BlockInput { header: &header, transactions: &txs, ommers: &[], withdrawals: Some(&[]) };
    match threads {
        None => execute_sequential(&spec, db, input).expect("oracle"),
        Some(threads) => execute_parallel(&spec, db, input, threads).expect("engine").0,
    }
}

#[test]
fn the_store_names_its_storage_only_accounts() {
    let mut state = state();
    let named = state.storage_only_accounts().clone();
    let expected: AddressSet = [SENDER.create(0), create2_target(0)].into_iter().collect();
    assert_eq!(named, expected);
    // A block that gives one a nonce takes it off the list.
    let output = run(&state, None);
    state.apply_bundle(&output.bundle);
    assert_eq!(state.storage_only_accounts(), &expected, "collisions leave both untouched");
    let mut nonced = state.clone();
    nonced.insert_account(SENDER.create(0), U256::ZERO, 1, None, HashMap::default());
    assert!(!nonced.storage_only_accounts().contains(&SENDER.create(0)));
}

#[test]
fn creations_onto_storage_collide_in_both_engines() {
    let state = state();
    let oracle = run(&state, None);
    // The creation transaction halts with a collision: failed, all its gas used.
    assert!(!oracle.receipts[0].status(), "the creation transaction must collide");
    assert_eq!(oracle.receipts[0].cumulative_gas_used(), 200_000);
    assert!(oracle.receipts[1].status());
    let mut after = state.clone();
    after.apply_bundle(&oracle.bundle);
    // The first CREATE2 collided (0 in slot 0), the second created its account.
    let factory = after.account(&FACTORY).unwrap();
    assert_eq!(factory.storage.get(&U256::ZERO), None, "CREATE2 onto storage must fail");
    let fresh = create2_target(1);
    assert_eq!(factory.storage.get(&U256::from(1)), Some(&U256::from_be_slice(fresh.as_slice())));
    assert_eq!(after.account(&fresh).unwrap().info.nonce, 1);
    // The storage-only accounts are untouched (no placeholder nonce left behind), and the
    // sender's nonce moved past both transactions.
    for target in [SENDER.create(0), create2_target(0)] {
        let account = after.account(&target).unwrap();
        assert_eq!(account.info.nonce, 0, "{target}");
        assert_eq!(account.storage.get(&U256::from(1)), Some(&U256::from(7)), "{target}");
    }
    assert_eq!(after.account(&create2_target(0)).unwrap().info.balance, U256::from(3));
    assert_eq!(after.account(&SENDER).unwrap().info.nonce, 2);
    for threads in [1, 2, 4] {
        assert_eq!(run(&state, Some(threads)), oracle, "Block-STM at {threads} threads");
    }
}

#[test]
fn without_the_probe_revm_alone_would_overwrite_the_storage() {
    // The control: the same block where the store names nothing is what revm 42 does without
    // EIP-7610 (the creation succeeds), so the test above really tests the guard.
    let unprobed = Unprobed(state(), AddressSet::default());
    let output = run(&unprobed, None);
    assert!(output.receipts[0].status(), "revm alone lets the creation transaction through");
    assert_eq!(run(&unprobed, Some(2)), output);
}
