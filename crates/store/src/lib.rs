//! The persistent chain store of `velarium import --datadir`: world state, headers, receipts,
//! total difficulties and the head, in one [redb] database file.
//!
//! redb is an embedded, pure-Rust, ACID key-value store (copy-on-write B-trees, like LMDB and
//! reth's MDBX): it needs no system library, so the project keeps building from crates.io alone
//! on a bare machine, and every write transaction is atomic and crash-safe: after a kill at any
//! moment the database opens at its last committed transaction. [`Store::commit_block`] writes a
//! verified block's state changes, header, receipts and the new head in one transaction, so the
//! stored head and the stored state always belong together.
//!
//! Layout (all integers big-endian, so tables iterate in numeric order):
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | `genesis` hash, `head` (number, hash), `merge_block` number |
//! | `headers` | number | RLP header |
//! | `hashes` | number | block hash |
//! | `total_difficulty` | number | 32 bytes |
//! | `ommers` | number | the block's ommer hashes, concatenated |
//! | `receipts` | number | RLP list of receipts (as in the eth protocol) |
//! | `accounts` | address | nonce (8), balance (32), code hash (32) |
//! | `storage` | address ‖ slot | value (32), never zero |
//! | `code` | code hash | bytecode |
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use alloy_consensus::{Header, ReceiptEnvelope};
use alloy_primitives::{map::HashMap, Address, B256, U256};
use alloy_rlp::{Decodable, Encodable};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use revm::{bytecode::Bytecode, database::BundleState, primitives::KECCAK_EMPTY};
use std::path::{Path, PathBuf};
use velarium_state::InMemoryState;

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const HEADERS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("headers");
const HASHES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("hashes");
const TOTAL_DIFFICULTY: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("total_difficulty");
const OMMERS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("ommers");
const RECEIPTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("receipts");
const ACCOUNTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("accounts");
const STORAGE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("storage");
const CODE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("code");

/// The database file inside a datadir.
pub const DB_FILE: &str = "velarium.redb";

/// Version of the layout above, stored under `meta/schema`.
const SCHEMA: u64 = 1;

/// `BLOCKHASH` reaches this many blocks back: the hashes [`Store::load_state`] restores.
pub const BLOCK_HASH_WINDOW: u64 = 256;

/// Errors of the store. Every one names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The datadir could not be created or the database opened.
    #[error("cannot open the store at {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A read or write of the database failed (I/O error, full disk, corruption).
    #[error("store {what}: {source}")]
    Db {
        /// What the store was doing.
        what: &'static str,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Stored bytes do not decode: the file was damaged or written by something else.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The store was written by another layout version.
    #[error("the store has layout version {found}, this build reads version {SCHEMA}")]
    Schema {
        /// The stored version.
        found: u64,
    },
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Wraps a redb error with what the store was doing.
fn fail<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Db { what, source: Box::new(e) }
}

/// The head of the stored chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredHead {
    /// Its number.
    pub number: u64,
    /// Its hash.
    pub hash: B256,
}

/// A verified block, as [`Store::commit_block`] writes it.
#[derive(Debug, Clone, Copy)]
pub struct BlockRecord<'a> {
    /// The header.
    pub header: &'a Header,
    /// Its hash.
    pub hash: B256,
    /// Total difficulty up to and including it.
    pub total_difficulty: U256,
    /// Its ommers' hashes (for validating later blocks' ommers).
    pub ommer_hashes: &'a [B256],
    /// Its receipts.
    pub receipts: &'a [ReceiptEnvelope],
    /// Its state changes.
    pub bundle: &'a BundleState,
}

/// A stored block header with what fork choice and ommer validation need.
#[derive(Debug, Clone)]
pub struct StoredBlock {
    /// The header.
    pub header: Header,
    /// Its hash.
    pub hash: B256,
    /// Total difficulty up to and including it.
    pub total_difficulty: U256,
    /// Its ommers' hashes.
    pub ommer_hashes: Vec<B256>,
}

/// The persistent store (see the crate docs).
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store in `datadir`.
    ///
    /// # Errors
    ///
    /// If the directory cannot be created, the file is not a redb database of this layout, or
    /// another process holds it.
    pub fn open(datadir: &Path) -> Result<Self> {
        let path = datadir.join(DB_FILE);
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(datadir).map_err(|e| open_err(Box::new(e)))?;
        let db = Database::create(&path).map_err(|e| open_err(Box::new(e)))?;
        let store = Self { db, path };
        match store.meta_u64("schema")? {
            Some(SCHEMA) => {}
            Some(found) => return Err(StoreError::Schema { found }),
            None => {
                let tx = store.db.begin_write().map_err(fail("begin write"))?;
                {
                    let mut meta = tx.open_table(META).map_err(fail("open meta"))?;
                    meta.insert("schema", SCHEMA.to_be_bytes().as_slice())
                        .map_err(fail("write meta"))?;
                    // Create every table, so that readers of a fresh store find them.
                    for table in [HEADERS, HASHES, TOTAL_DIFFICULTY, OMMERS, RECEIPTS] {
                        tx.open_table(table).map_err(fail("create table"))?;
                    }
                    for table in [ACCOUNTS, STORAGE, CODE] {
                        tx.open_table(table).map_err(fail("create table"))?;
                    }
                }
                tx.commit().map_err(fail("commit"))?;
            }
        }
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read().map_err(fail("begin read"))?;
        let table = match tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(fail("open meta")(e)),
        };
        let value = table.get(key).map_err(fail("read meta"))?.map(|v| v.value().to_vec());
        Ok(value)
    }

    fn meta_u64(&self, key: &str) -> Result<Option<u64>> {
        self.meta(key)?
            .map(|v| {
                <[u8; 8]>::try_from(v.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt(format!("meta/{key}: {} bytes", v.len())))
            })
            .transpose()
    }

    /// The genesis hash the store was initialised with (`None`: a fresh store).
    pub fn genesis_hash(&self) -> Result<Option<B256>> {
        self.meta("genesis")?.map(|v| b256(&v, "meta/genesis")).transpose()
    }

    /// The stored head (`None`: a fresh store).
    pub fn head(&self) -> Result<Option<StoredHead>> {
        let Some(v) = self.meta("head")? else { return Ok(None) };
        if v.len() != 40 {
            return Err(StoreError::Corrupt(format!("meta/head: {} bytes", v.len())));
        }
        let number = u64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
        Ok(Some(StoredHead { number, hash: B256::from_slice(&v[8..]) }))
    }

    /// The block at which the chain merged, once it is known (a TTD chain past the merge).
    pub fn merge_block(&self) -> Result<Option<u64>> {
        self.meta_u64("merge_block")
    }

    /// Writes block 0 and its state into a fresh store (durably).
    ///
    /// # Errors
    ///
    /// If the store already holds a chain, or on a write failure.
    pub fn init_genesis(&self, header: &Header, state: &InMemoryState) -> Result<StoredHead> {
        if self.head()?.is_some() {
            return Err(StoreError::Corrupt("init_genesis on a store that holds a chain".into()));
        }
        let hash = header.hash_slow();
        let tx = self.db.begin_write().map_err(fail("begin write"))?;
        {
            let mut accounts = tx.open_table(ACCOUNTS).map_err(fail("open accounts"))?;
            let mut storage = tx.open_table(STORAGE).map_err(fail("open storage"))?;
            let mut code = tx.open_table(CODE).map_err(fail("open code"))?;
            for (address, account) in state.accounts() {
                let info = &account.info;
                accounts
                    .insert(
                        address.as_slice(),
                        account_value(info.nonce, info.balance, info.code_hash).as_slice(),
                    )
                    .map_err(fail("write account"))?;
                if info.code_hash != KECCAK_EMPTY {
                    if let Some(bytecode) = state.code(&info.code_hash) {
                        code.insert(info.code_hash.as_slice(), bytecode.original_byte_slice())
                            .map_err(fail("write code"))?;
                    }
                }
                for (slot, value) in &account.storage {
                    storage
                        .insert(
                            storage_key(address, slot).as_slice(),
                            value.to_be_bytes::<32>().as_slice(),
                        )
                        .map_err(fail("write storage"))?;
                }
            }
        }
        let record = BlockRecord {
            header,
            hash,
            total_difficulty: header.difficulty,
            ommer_hashes: &[],
            receipts: &[],
            bundle: &BundleState::default(),
        };
        write_block(&tx, &record)?;
        {
            let mut meta = tx.open_table(META).map_err(fail("open meta"))?;
            meta.insert("genesis", hash.as_slice()).map_err(fail("write meta"))?;
        }
        tx.commit().map_err(fail("commit genesis"))?;
        Ok(StoredHead { number: header.number, hash })
    }

    /// Writes a verified block: its state changes, header, hash, total difficulty, ommer
    /// hashes, receipts, and the head, all in one transaction (atomic: after a crash the store
    /// holds either all of it or none). With `durable` the commit is on disk when this returns;
    /// without, it is visible to this process at once and reaches the disk with the next
    /// durable commit (a crash before that loses it whole, never part of it).
    ///
    /// # Errors
    ///
    /// On a write failure (full disk, I/O error): the store stays at its previous head.
    pub fn commit_block(
        &self,
        block: &BlockRecord<'_>,
        merge_block: Option<u64>,
        durable: bool,
    ) -> Result<()> {
        let mut tx = self.db.begin_write().map_err(fail("begin write"))?;
        if !durable {
            tx.set_durability(Durability::None).map_err(fail("set durability"))?;
        }
        write_state(&tx, block.bundle)?;
        write_block(&tx, block)?;
        if let Some(number) = merge_block {
            let mut meta = tx.open_table(META).map_err(fail("open meta"))?;
            meta.insert("merge_block", number.to_be_bytes().as_slice())
                .map_err(fail("write meta"))?;
        }
        tx.commit().map_err(fail("commit block"))
    }

    /// Makes every earlier commit durable (an empty durable transaction).
    pub fn sync(&self) -> Result<()> {
        let tx = self.db.begin_write().map_err(fail("begin write"))?;
        tx.commit().map_err(fail("sync"))
    }

    /// The stored block `number` of the canonical chain.
    pub fn block(&self, number: u64) -> Result<Option<StoredBlock>> {
        let tx = self.db.begin_read().map_err(fail("begin read"))?;
        let read = |def: TableDefinition<'_, u64, &[u8]>| -> Result<Option<Vec<u8>>> {
            let table = tx.open_table(def).map_err(fail("open table"))?;
            let value = table.get(number).map_err(fail("read block"))?.map(|v| v.value().to_vec());
            Ok(value)
        };
        let Some(header) = read(HEADERS)? else { return Ok(None) };
        let header = Header::decode(&mut header.as_slice())
            .map_err(|e| StoreError::Corrupt(format!("header {number}: {e}")))?;
        let hash = b256(&read(HASHES)?.unwrap_or_default(), "hash")?;
        let td = read(TOTAL_DIFFICULTY)?.unwrap_or_default();
        if td.len() != 32 {
            return Err(StoreError::Corrupt(format!("total difficulty of block {number}")));
        }
        let ommers = read(OMMERS)?.unwrap_or_default();
        if ommers.len() % 32 != 0 {
            return Err(StoreError::Corrupt(format!("ommer hashes of block {number}")));
        }
        Ok(Some(StoredBlock {
            header,
            hash,
            total_difficulty: U256::from_be_slice(&td),
            ommer_hashes: ommers.chunks(32).map(B256::from_slice).collect(),
        }))
    }

    /// The stored receipts of block `number`.
    pub fn receipts(&self, number: u64) -> Result<Option<Vec<ReceiptEnvelope>>> {
        let tx = self.db.begin_read().map_err(fail("begin read"))?;
        let table = tx.open_table(RECEIPTS).map_err(fail("open receipts"))?;
        let Some(bytes) = table.get(number).map_err(fail("read receipts"))? else {
            return Ok(None);
        };
        let receipts = Vec::<ReceiptEnvelope>::decode(&mut bytes.value())
            .map_err(|e| StoreError::Corrupt(format!("receipts of block {number}: {e}")))?;
        Ok(Some(receipts))
    }

    /// The stored world state, with the hashes of the last [`BLOCK_HASH_WINDOW`] blocks up to
    /// the head (for `BLOCKHASH`).
    pub fn load_state(&self) -> Result<InMemoryState> {
        let tx = self.db.begin_read().map_err(fail("begin read"))?;
        let code_table = tx.open_table(CODE).map_err(fail("open code"))?;
        let mut codes: HashMap<B256, Bytecode> = HashMap::default();
        for entry in code_table.iter().map_err(fail("read code"))? {
            let (hash, code) = entry.map_err(fail("read code"))?;
            let hash = b256(hash.value(), "code hash")?;
            codes.insert(hash, Bytecode::new_raw(code.value().to_vec().into()));
        }
        let mut storage: HashMap<Address, HashMap<U256, U256>> = HashMap::default();
        let storage_table = tx.open_table(STORAGE).map_err(fail("open storage"))?;
        for entry in storage_table.iter().map_err(fail("read storage"))? {
            let (key, value) = entry.map_err(fail("read storage"))?;
            let (key, value) = (key.value(), value.value());
            if key.len() != 52 || value.len() != 32 {
                return Err(StoreError::Corrupt(format!("storage entry of {} bytes", key.len())));
            }
            storage
                .entry(Address::from_slice(&key[..20]))
                .or_default()
                .insert(U256::from_be_slice(&key[20..]), U256::from_be_slice(value));
        }
        let mut state = InMemoryState::new();
        let accounts = tx.open_table(ACCOUNTS).map_err(fail("open accounts"))?;
        for entry in accounts.iter().map_err(fail("read accounts"))? {
            let (address, value) = entry.map_err(fail("read accounts"))?;
            let (address, value) = (address.value(), value.value());
            if address.len() != 20 || value.len() != 72 {
                return Err(StoreError::Corrupt(format!("account entry of {} bytes", value.len())));
            }
            let address = Address::from_slice(address);
            let nonce = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
            let balance = U256::from_be_slice(&value[8..40]);
            let code_hash = B256::from_slice(&value[40..]);
            let code = if code_hash == KECCAK_EMPTY {
                None
            } else {
                Some(codes.get(&code_hash).cloned().ok_or_else(|| {
                    StoreError::Corrupt(format!("code {code_hash} of {address} missing"))
                })?)
            };
            state.insert_account(
                address,
                balance,
                nonce,
                code,
                storage.remove(&address).unwrap_or_default(),
            );
        }
        if let Some((address, _)) = storage.into_iter().next() {
            return Err(StoreError::Corrupt(format!("storage of {address}, which has no account")));
        }
        if let Some(head) = self.head()? {
            let hashes = tx.open_table(HASHES).map_err(fail("open hashes"))?;
            let from = head.number.saturating_sub(BLOCK_HASH_WINDOW - 1);
            for entry in hashes.range(from..=head.number).map_err(fail("read hashes"))? {
                let (number, hash) = entry.map_err(fail("read hashes"))?;
                state.insert_block_hash(number.value(), b256(hash.value(), "block hash")?);
            }
        }
        Ok(state)
    }
}

/// Writes a bundle's state changes.
fn write_state(tx: &redb::WriteTransaction, bundle: &BundleState) -> Result<()> {
    let mut accounts = tx.open_table(ACCOUNTS).map_err(fail("open accounts"))?;
    let mut storage = tx.open_table(STORAGE).map_err(fail("open storage"))?;
    let mut code = tx.open_table(CODE).map_err(fail("open code"))?;
    for (hash, bytecode) in &bundle.contracts {
        if *hash != KECCAK_EMPTY {
            code.insert(hash.as_slice(), bytecode.original_byte_slice())
                .map_err(fail("write code"))?;
        }
    }
    // In key order: consecutive inserts then land on the same or neighbouring B-tree pages.
    let mut changed: Vec<_> = bundle.state.iter().collect();
    changed.sort_unstable_by_key(|(address, _)| **address);
    for (address, account) in changed {
        if account.info.is_none() || account.was_destroyed() {
            // Its storage goes (and, without info, the account).
            let from = storage_key(address, &U256::ZERO);
            let to = storage_key(address, &U256::MAX);
            storage
                .retain_in(from.as_slice()..=to.as_slice(), |_, _| false)
                .map_err(fail("delete storage"))?;
        }
        let Some(info) = &account.info else {
            accounts.remove(address.as_slice()).map_err(fail("delete account"))?;
            continue;
        };
        accounts
            .insert(
                address.as_slice(),
                account_value(info.nonce, info.balance, info.code_hash).as_slice(),
            )
            .map_err(fail("write account"))?;
        let mut slots: Vec<_> = account.storage.iter().collect();
        slots.sort_unstable_by_key(|(slot, _)| **slot);
        for (slot, value) in slots {
            let key = storage_key(address, slot);
            if value.present_value.is_zero() {
                storage.remove(key.as_slice()).map_err(fail("delete slot"))?;
            } else {
                storage
                    .insert(key.as_slice(), value.present_value.to_be_bytes::<32>().as_slice())
                    .map_err(fail("write slot"))?;
            }
        }
    }
    Ok(())
}

/// Writes a block's header, hash, total difficulty, ommers, receipts and makes it the head.
fn write_block(tx: &redb::WriteTransaction, block: &BlockRecord<'_>) -> Result<()> {
    let number = block.header.number;
    let mut header = Vec::new();
    block.header.encode(&mut header);
    tx.open_table(HEADERS)
        .map_err(fail("open headers"))?
        .insert(number, header.as_slice())
        .map_err(fail("write header"))?;
    tx.open_table(HASHES)
        .map_err(fail("open hashes"))?
        .insert(number, block.hash.as_slice())
        .map_err(fail("write hash"))?;
    tx.open_table(TOTAL_DIFFICULTY)
        .map_err(fail("open total difficulty"))?
        .insert(number, block.total_difficulty.to_be_bytes::<32>().as_slice())
        .map_err(fail("write total difficulty"))?;
    let ommers: Vec<u8> = block.ommer_hashes.iter().flat_map(|h| h.0).collect();
    tx.open_table(OMMERS)
        .map_err(fail("open ommers"))?
        .insert(number, ommers.as_slice())
        .map_err(fail("write ommers"))?;
    let mut receipts = Vec::new();
    alloy_rlp::encode_list(block.receipts, &mut receipts);
    tx.open_table(RECEIPTS)
        .map_err(fail("open receipts"))?
        .insert(number, receipts.as_slice())
        .map_err(fail("write receipts"))?;
    let mut head = number.to_be_bytes().to_vec();
    head.extend_from_slice(block.hash.as_slice());
    tx.open_table(META)
        .map_err(fail("open meta"))?
        .insert("head", head.as_slice())
        .map_err(fail("write head"))?;
    Ok(())
}

fn account_value(nonce: u64, balance: U256, code_hash: B256) -> [u8; 72] {
    let mut out = [0u8; 72];
    out[..8].copy_from_slice(&nonce.to_be_bytes());
    out[8..40].copy_from_slice(&balance.to_be_bytes::<32>());
    out[40..].copy_from_slice(code_hash.as_slice());
    out
}

fn storage_key(address: &Address, slot: &U256) -> [u8; 52] {
    let mut out = [0u8; 52];
    out[..20].copy_from_slice(address.as_slice());
    out[20..].copy_from_slice(&slot.to_be_bytes::<32>());
    out
}

fn b256(bytes: &[u8], what: &str) -> Result<B256> {
    if bytes.len() == 32 {
        Ok(B256::from_slice(bytes))
    } else {
        Err(StoreError::Corrupt(format!("{what}: {} bytes, not 32", bytes.len())))
    }
}

#[cfg(test)]
mod tests;
