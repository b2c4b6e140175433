use super::*;
use revm::{
    database::{states::StorageSlot, AccountStatus, BundleAccount},
    state::AccountInfo,
    DatabaseRef,
};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("velarium-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn genesis_state() -> InMemoryState {
    let mut state = InMemoryState::new();
    let mut storage = HashMap::default();
    storage.insert(U256::from(1), U256::from(7));
    storage.insert(U256::from(2), U256::from(8));
    state.insert_account(
        Address::repeat_byte(0xaa),
        U256::from(10),
        1,
        Some(Bytecode::new_raw(alloy_primitives::bytes!("6001600055"))),
        storage,
    );
    state.insert_account(Address::repeat_byte(0xbb), U256::from(5), 0, None, HashMap::default());
    state
}

#[test]
fn genesis_and_blocks_survive_reopening() {
    let dir = temp_dir("roundtrip");
    let mut state = genesis_state();
    let genesis = Header { state_root: state.state_root(), ..Default::default() };
    {
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.head().unwrap(), None);
        let head = store.init_genesis(&genesis, &state).unwrap();
        assert_eq!(head.number, 0);
        assert!(store.init_genesis(&genesis, &state).is_err(), "a second genesis is refused");
    }
    // Block 1: slot 1 cleared, slot 3 set, 0xbb removed, 0xcc created.
    let a = Address::repeat_byte(0xaa);
    let mut info = state.basic_ref(a).unwrap().unwrap();
    info.balance = U256::from(11);
    let slots = [
        (U256::from(1), StorageSlot::new_changed(U256::from(7), U256::ZERO)),
        (U256::from(3), StorageSlot::new_changed(U256::ZERO, U256::from(9))),
    ];
    let mut bundle = BundleState::default();
    bundle.state.insert(
        a,
        BundleAccount::new(None, Some(info), slots.into_iter().collect(), AccountStatus::Changed),
    );
    bundle.state.insert(
        Address::repeat_byte(0xbb),
        BundleAccount::new(None, None, Default::default(), AccountStatus::Destroyed),
    );
    let created = AccountInfo { balance: U256::from(3), ..Default::default() };
    bundle.state.insert(
        Address::repeat_byte(0xcc),
        BundleAccount::new(None, Some(created), Default::default(), AccountStatus::InMemoryChange),
    );
    state.apply_bundle(&bundle);
    let header = Header {
        number: 1,
        parent_hash: genesis.hash_slow(),
        state_root: state.state_root(),
        difficulty: U256::from(2),
        ..Default::default()
    };
    let hash = header.hash_slow();
    {
        let store = Store::open(&dir).unwrap();
        let record = BlockRecord {
            header: &header,
            hash,
            total_difficulty: U256::from(2),
            ommer_hashes: &[B256::repeat_byte(1)],
            receipts: &[],
            bundle: &bundle,
        };
        store.commit_block(&record, None, false).unwrap();
        store.sync().unwrap();
    }
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.head().unwrap(), Some(StoredHead { number: 1, hash }));
    assert_eq!(store.genesis_hash().unwrap(), Some(genesis.hash_slow()));
    let block = store.block(1).unwrap().unwrap();
    assert_eq!(block.header, header);
    assert_eq!(block.ommer_hashes, vec![B256::repeat_byte(1)]);
    assert_eq!(store.receipts(1).unwrap(), Some(vec![]));
    assert!(store.block(2).unwrap().is_none());
    let mut loaded = store.load_state().unwrap();
    assert_eq!(loaded.state_root(), header.state_root);
    assert_eq!(loaded.compute_state_root(), header.state_root);
    assert_eq!(loaded.storage_ref(a, U256::from(1)).unwrap(), U256::ZERO);
    assert_eq!(loaded.storage_ref(a, U256::from(3)).unwrap(), U256::from(9));
    assert_eq!(loaded.block_hash_ref(1).unwrap(), hash);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_that_is_not_a_store_is_an_error() {
    let dir = temp_dir("garbage");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(DB_FILE), vec![0x5a; 10_000]).unwrap();
    let err = Store::open(&dir).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn another_layout_version_is_refused() {
    let dir = temp_dir("schema");
    {
        let store = Store::open(&dir).unwrap();
        let tx = store.db.begin_write().unwrap();
        tx.open_table(META).unwrap().insert("schema", 99u64.to_be_bytes().as_slice()).unwrap();
        tx.commit().unwrap();
    }
    let err = Store::open(&dir).unwrap_err();
    assert!(matches!(err, StoreError::Schema { found: 99 }), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
