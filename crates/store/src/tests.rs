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

/// A bundle of random changes to the accounts `0x01..=0x08` of `state` (created, changed,
/// removed, storage wiped and re-created, slots set and cleared), drawn from `seed`.
fn random_bundle(state: &InMemoryState, seed: u64) -> BundleState {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut bundle = BundleState::default();
    for _ in 0..1 + next(4) {
        let address = Address::with_last_byte(1 + next(8) as u8);
        let kind = next(6);
        let storage: HashMap<U256, StorageSlot> = (0..next(5))
            .map(|_| {
                let slot = U256::from(next(12));
                let old = state.storage_ref(address, slot).unwrap();
                (slot, StorageSlot::new_changed(old, U256::from(next(3))))
            })
            .collect();
        let info =
            AccountInfo { balance: U256::from(next(1000)), nonce: next(9), ..Default::default() };
        let account = match kind {
            0 => BundleAccount::new(None, None, Default::default(), AccountStatus::Destroyed),
            1 => BundleAccount::new(
                None,
                Some(info),
                storage.into_iter().collect(),
                AccountStatus::DestroyedChanged,
            ),
            _ => BundleAccount::new(
                None,
                Some(info),
                storage.into_iter().collect(),
                AccountStatus::Changed,
            ),
        };
        bundle.state.insert(address, account);
    }
    bundle
}

#[test]
fn state_diffs_are_applied_in_batches_and_loaded_in_between() {
    let dir = temp_dir("diffs");
    let mut state = genesis_state();
    let genesis = Header { state_root: state.state_root(), ..Default::default() };
    let store = Store::open(&dir).unwrap();
    store.init_genesis(&genesis, &state).unwrap();
    let mut parent = genesis;
    let blocks = 2 * DIFF_BLOCKS + 7;
    for number in 1..=blocks {
        let bundle = random_bundle(&state, number);
        state.apply_bundle(&bundle);
        let header = Header {
            number,
            parent_hash: parent.hash_slow(),
            state_root: state.state_root(),
            ..Default::default()
        };
        let record = BlockRecord {
            header: &header,
            hash: header.hash_slow(),
            total_difficulty: U256::ZERO,
            ommer_hashes: &[],
            receipts: &[],
            bundle: &bundle,
        };
        store.commit_block(&record, None, number % 3 == 0).unwrap();
        // The diffs wait until DIFF_BLOCKS of them are there, then go into the tables.
        assert_eq!(store.pending_diffs().0, number % DIFF_BLOCKS, "block {number}");
        if number % 17 == 0 || number % DIFF_BLOCKS <= 1 {
            let mut loaded = store.load_state().unwrap();
            assert_eq!(loaded.state_root(), header.state_root, "block {number}");
            assert_eq!(loaded.compute_state_root(), header.state_root, "block {number}");
        }
        parent = header;
    }
    drop(store);
    // Reopened with diffs pending: the same state, and the count of pending diffs.
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.pending_diffs().0, blocks % DIFF_BLOCKS);
    assert!(store.pending_diffs().1 > 0);
    assert_eq!(store.load_state().unwrap().compute_state_root(), parent.state_root);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_diff_decodes_to_what_was_encoded_and_damage_is_an_error() {
    let state = genesis_state();
    for seed in 1..50 {
        let bundle = random_bundle(&state, seed);
        let encoded = encode_diff(&bundle);
        let decoded = decode_diff(&encoded, seed).unwrap();
        assert_eq!(decoded.len(), bundle.state.len());
        for change in &decoded {
            let account = &bundle.state[&change.address];
            assert_eq!(change.removed, account.info.is_none());
            assert_eq!(change.wiped, account.was_destroyed());
            assert_eq!(
                change.fields,
                account.info.as_ref().map(|i| (i.nonce, i.balance, i.code_hash))
            );
            let mut slots: Vec<(U256, U256)> =
                account.storage.iter().map(|(k, v)| (*k, v.present_value)).collect();
            slots.sort();
            assert_eq!(change.slots, slots);
        }
        // A cut anywhere inside, or a bad flag, is damage, named with the block.
        for cut in [1, 19, 21, encoded.len() - 1] {
            if cut < encoded.len() {
                let err = decode_diff(&encoded[..cut], seed).unwrap_err();
                assert!(err.to_string().contains(&format!("state diff of block {seed}")), "{err}");
            }
        }
        let mut bad = encoded.clone();
        bad[20] = 0x80;
        assert!(decode_diff(&bad, seed).is_err());
    }
}

#[test]
fn a_version_1_store_is_upgraded() {
    let dir = temp_dir("upgrade");
    {
        let store = Store::open(&dir).unwrap();
        let tx = store.db.begin_write().unwrap();
        tx.open_table(META).unwrap().insert("schema", 1u64.to_be_bytes().as_slice()).unwrap();
        tx.delete_table(STATE_DIFFS).unwrap();
        tx.commit().unwrap();
    }
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.meta_u64("schema").unwrap(), Some(SCHEMA));
    assert_eq!(store.pending_diffs(), (0, 0));
    let _ = std::fs::remove_dir_all(&dir);
}
