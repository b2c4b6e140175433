//! Parallel reads from a database only one thread may touch.
//!
//! Block-STM workers read the parent state concurrently, which needs a `DatabaseRef + Sync`
//! backend. A node's state often is neither: reth hands its executors a `&mut State<DB>` whose
//! provider (an MDBX read transaction) must stay on one thread. [`with_remote_db`] bridges the
//! two: the thread that owns the database serves the workers' cold reads over a channel while
//! they run, and every answer is cached in a sharded map, so each location crosses the channel
//! once per block. Before the workers start, the owner pre-heats the cache with the accounts the
//! block is known to touch (senders, recipients, the beneficiary), so most transactions never
//! wait on a cold read. Both sides poll their channel (spinning briefly, then yielding the core)
//! instead of sleeping on it: sleeping made every cold read cost two thread wake-ups, and the
//! reth glue's Block-STM ran at 0.25x-0.26x of sequential on the mainnet blocks against
//! 0.52x-0.58x polled, interleaved in the same minutes (`cargo test -p velarium-reth-glue
//! --release --test newpayload -- --include-ignored timing --nocapture`).

use super::EngineFault;
use crate::ExecutionError;
use alloy_primitives::{map::HashMap, Address, B256, U256};
use revm::{
    bytecode::Bytecode,
    database_interface::{DBErrorMarker, Database, DatabaseRef},
    state::AccountInfo,
};
use std::{
    hash::{BuildHasher, Hash},
    sync::{mpsc, RwLock},
};

/// How many times a waiting side polls its channel before it starts yielding its core.
const POLL_SPINS: u32 = 200;

/// One read the owner thread performs for a worker.
#[derive(Debug, Clone, Copy)]
enum Query {
    Basic(Address),
    Code(B256),
    Storage(Address, U256),
    BlockHash(u64),
}

/// The owner's answer to a [`Query`].
#[derive(Debug)]
enum Answer {
    Basic(Option<AccountInfo>),
    Code(Bytecode),
    Storage(U256),
    BlockHash(B256),
}

/// A query and where to send its answer.
#[derive(Debug)]
struct Request {
    query: Query,
    reply: mpsc::SyncSender<Result<Answer, String>>,
}

/// A read the owner could not serve: the database's error, as text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RemoteError(String);

impl DBErrorMarker for RemoteError {}

/// A map split into independently locked shards.
struct Sharded<K, V> {
    shards: Box<[RwLock<HashMap<K, V>>]>,
    hasher: alloy_primitives::map::DefaultHashBuilder,
}

impl<K, V> std::fmt::Debug for Sharded<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sharded").field("shards", &self.shards.len()).finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V: Clone> Sharded<K, V> {
    const SHARDS: usize = 64;

    fn new() -> Self {
        Self {
            shards: (0..Self::SHARDS).map(|_| RwLock::default()).collect(),
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &K) -> &RwLock<HashMap<K, V>> {
        &self.shards[self.hasher.hash_one(key) as usize % Self::SHARDS]
    }

    fn get(&self, key: &K) -> Option<V> {
        self.shard(key).read().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    fn insert(&self, key: K, value: V) {
        self.shard(&key).write().unwrap_or_else(|e| e.into_inner()).insert(key, value);
    }
}

/// The workers' view of a database owned by another thread (see the module docs).
#[derive(Debug)]
pub(crate) struct RemoteDb {
    requests: mpsc::Sender<Request>,
    accounts: Sharded<Address, Option<AccountInfo>>,
    storage: Sharded<(Address, U256), U256>,
    code: Sharded<B256, Bytecode>,
    block_hashes: Sharded<u64, B256>,
}

impl RemoteDb {
    fn new(requests: mpsc::Sender<Request>) -> Self {
        Self {
            requests,
            accounts: Sharded::new(),
            storage: Sharded::new(),
            code: Sharded::new(),
            block_hashes: Sharded::new(),
        }
    }

    /// Asks the owner thread.
    fn ask(&self, query: Query) -> Result<Answer, RemoteError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests
            .send(Request { query, reply })
            .map_err(|_| RemoteError("state owner has stopped serving reads".to_string()))?;
        let mut spins = 0u32;
        let answer = loop {
            match answer.try_recv() {
                Ok(answer) => break answer,
                Err(mpsc::TryRecvError::Empty) => {
                    spins = spins.saturating_add(1);
                    if spins < POLL_SPINS {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Err(RemoteError("state owner dropped a read".to_string()))
                }
            }
        };
        answer.map_err(RemoteError)
    }

    fn unexpected(query: Query, answer: Answer) -> RemoteError {
        RemoteError(format!("{query:?} answered with {answer:?}"))
    }
}

impl RemoteDb {
    /// `key`'s value from `cache`, or else from the owner (`query`), then cached; `pick` takes
    /// the value out of the answer of the matching kind.
    fn cached<K, V>(
        &self,
        cache: &Sharded<K, V>,
        key: K,
        query: Query,
        pick: impl FnOnce(Answer) -> Result<V, Answer>,
    ) -> Result<V, RemoteError>
    where
        K: Hash + Eq,
        V: Clone,
    {
        if let Some(value) = cache.get(&key) {
            return Ok(value);
        }
        let value = pick(self.ask(query)?).map_err(|other| Self::unexpected(query, other))?;
        cache.insert(key, value.clone());
        Ok(value)
    }
}

impl DatabaseRef for RemoteDb {
    type Error = RemoteError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        self.cached(&self.accounts, address, Query::Basic(address), |answer| match answer {
            Answer::Basic(info) => Ok(info),
            other => Err(other),
        })
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        self.cached(&self.code, code_hash, Query::Code(code_hash), |answer| match answer {
            Answer::Code(code) => Ok(code),
            other => Err(other),
        })
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        let query = Query::Storage(address, index);
        self.cached(&self.storage, (address, index), query, |answer| match answer {
            Answer::Storage(value) => Ok(value),
            other => Err(other),
        })
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        self.cached(&self.block_hashes, number, Query::BlockHash(number), |answer| match answer {
            Answer::BlockHash(hash) => Ok(hash),
            other => Err(other),
        })
    }
}

/// Performs one read on the owner's database.
fn serve<DB>(db: &mut DB, query: Query) -> Result<Answer, String>
where
    DB: Database,
    DB::Error: std::fmt::Display,
{
    let answer = match query {
        Query::Basic(address) => db.basic(address).map(Answer::Basic),
        Query::Code(hash) => db.code_by_hash(hash).map(Answer::Code),
        Query::Storage(address, slot) => db.storage(address, slot).map(Answer::Storage),
        Query::BlockHash(number) => db.block_hash(number).map(Answer::BlockHash),
    };
    answer.map_err(|e| e.to_string())
}

/// What [`with_remote_db`] returns when its runner panicked: the caller's thread (a node's
/// engine thread, which owns the database) must get an error, never the unwinding panic.
pub(crate) trait FromRunnerPanic {
    /// The value standing for a runner that panicked with `message`.
    fn from_runner_panic(message: String) -> Self;
}

impl<T> FromRunnerPanic for Result<T, ExecutionError> {
    /// An engine fault ([`EngineFault::WorkerPanic`]): the engine failed, not the block.
    fn from_runner_panic(message: String) -> Self {
        Err(ExecutionError::Engine(EngineFault::WorkerPanic(format!(
            "state-read runner: {message}"
        ))))
    }
}

/// Runs `run` on a scoped thread with a [`RemoteDb`] over `db`, while this thread serves its
/// reads. `preheat` accounts are loaded into the cache first. Returns what `run` returns; a
/// panic in `run` is caught and returned as [`FromRunnerPanic::from_runner_panic`] (an engine
/// fault), so it never unwinds on the calling thread.
pub(crate) fn with_remote_db<DB, T>(
    db: &mut DB,
    preheat: impl IntoIterator<Item = Address>,
    run: impl FnOnce(&RemoteDb) -> T + Send,
) -> Result<T, String>
where
    DB: Database,
    DB::Error: std::fmt::Display,
    T: Send + FromRunnerPanic,
{
    let (requests, incoming) = mpsc::channel::<Request>();
    let remote = RemoteDb::new(requests);
    for address in preheat {
        if remote.accounts.get(&address).is_none() {
            let info = db.basic(address).map_err(|e| format!("loading {address}: {e}"))?;
            remote.accounts.insert(address, info);
        }
    }
    std::thread::scope(|scope| {
        let runner = scope.spawn(move || {
            let remote = remote;
            run(&remote)
        });
        // Ends when the runner drops `remote` (its sender), i.e. when `run` has returned.
        // Polled rather than slept on: a cold read is then one hand-off, not two thread
        // wake-ups; after a short spin the owner yields its core to the workers. Owned here:
        // if serving a read panics, unwinding drops the receiver and with it every queued
        // request, so the workers waiting on them see the owner gone instead of waiting for
        // ever (and the runner ends, which the scope waits for).
        let incoming = incoming;
        let mut idle = 0u32;
        loop {
            match incoming.try_recv() {
                Ok(request) => {
                    idle = 0;
                    let _ = request.reply.send(serve(db, request.query));
                }
                Err(mpsc::TryRecvError::Empty) => {
                    idle = idle.saturating_add(1);
                    if idle < POLL_SPINS {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => break,
            }
        }
        match runner.join() {
            Ok(value) => Ok(value),
            Err(panic) => Ok(T::from_runner_panic(super::panic_message(&panic))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use revm::database::{CacheDB, EmptyDB};

    #[test]
    fn reads_cross_threads_once_and_preheat_is_served_from_cache() {
        let mut db = CacheDB::new(EmptyDB::default());
        let a = Address::repeat_byte(1);
        let b = Address::repeat_byte(2);
        db.insert_account_info(a, AccountInfo { balance: U256::from(7), ..Default::default() });
        db.insert_account_storage(b, U256::from(1), U256::from(42)).unwrap();
        let result = with_remote_db(&mut db, [a], |remote| -> Result<_, ExecutionError> {
            Ok(std::thread::scope(|s| {
                // Spawn all before joining any, so the reads really are concurrent.
                #[allow(clippy::needless_collect)]
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            (
                                remote.basic_ref(a).unwrap().unwrap().balance,
                                remote.storage_ref(b, U256::from(1)).unwrap(),
                                remote.basic_ref(Address::repeat_byte(9)).unwrap(),
                            )
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
            }))
        })
        .unwrap()
        .unwrap();
        assert_eq!(result.len(), 4);
        for (balance, slot, missing) in result {
            assert_eq!(balance, U256::from(7));
            assert_eq!(slot, U256::from(42));
            assert_eq!(missing, None);
        }
    }

    #[derive(Debug)]
    struct FailingDb;

    #[derive(Debug, thiserror::Error)]
    #[error("disk on fire")]
    struct Fire;
    impl DBErrorMarker for Fire {}

    impl Database for FailingDb {
        type Error = Fire;
        fn basic(&mut self, _: Address) -> Result<Option<AccountInfo>, Fire> {
            Err(Fire)
        }
        fn code_by_hash(&mut self, _: B256) -> Result<Bytecode, Fire> {
            Err(Fire)
        }
        fn storage(&mut self, _: Address, _: U256) -> Result<U256, Fire> {
            Err(Fire)
        }
        fn block_hash(&mut self, _: u64) -> Result<B256, Fire> {
            Err(Fire)
        }
    }

    #[test]
    fn owner_errors_reach_the_worker_and_preheat_errors_the_caller() {
        let err = with_remote_db(&mut FailingDb, [], |remote| -> Result<_, ExecutionError> {
            Ok(remote.storage_ref(Address::ZERO, U256::ZERO).unwrap_err().to_string())
        })
        .unwrap()
        .unwrap();
        assert_eq!(err, "disk on fire");
        let err = with_remote_db(&mut FailingDb, [Address::ZERO], |_| Ok::<_, ExecutionError>(()))
            .unwrap_err();
        assert!(err.contains("disk on fire"), "{err}");
    }

    #[test]
    fn a_runner_panic_is_an_engine_fault_on_the_owner_thread() {
        let mut db = CacheDB::new(EmptyDB::default());
        let a = Address::repeat_byte(1);
        db.insert_account_info(a, AccountInfo { balance: U256::from(7), ..Default::default() });
        // The runner reads through the owner first (the owner is serving), then panics.
        let got = with_remote_db(&mut db, [], |remote| -> Result<(), ExecutionError> {
            assert_eq!(remote.basic_ref(a).unwrap().unwrap().balance, U256::from(7));
            panic!("runner blew up");
        })
        .expect("a runner panic is not a state-read failure");
        match got {
            Err(ExecutionError::Engine(EngineFault::WorkerPanic(message))) => {
                assert!(message.contains("runner blew up"), "{message}")
            }
            other => panic!("expected an engine fault, got {other:?}"),
        }
        // The database is still usable by its owner.
        assert_eq!(db.basic(a).unwrap().unwrap().balance, U256::from(7));
    }
}
