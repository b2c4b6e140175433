//! The persistent worker pools and the reused per-block buffers.
//!
//! One pool per thread count, created on first use and reused by every block, so a block pays
//! no thread start-up. Blocks executed concurrently on the same pool queue for it.

use super::{db::BlockMemory, fault::EngineFault};
use std::sync::{Arc, Mutex, OnceLock};

/// A pool of worker threads (the calling thread is worker 0, see `velarium-numa-runtime`).
#[derive(Debug, Clone)]
pub(crate) struct WorkerPool {
    pool: Arc<velarium_numa_runtime::WorkerPool>,
}

impl WorkerPool {
    /// The process-wide pool of `threads` workers.
    pub(crate) fn get(threads: usize) -> Result<Self, EngineFault> {
        static POOLS: OnceLock<Mutex<Vec<(usize, WorkerPool)>>> = OnceLock::new();
        let threads = threads.max(1);
        let mut pools =
            POOLS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, pool)) = pools.iter().find(|(n, _)| *n == threads) {
            return Ok(pool.clone());
        }
        let config = velarium_numa_runtime::PoolConfig { threads, pin: false };
        let pool = velarium_numa_runtime::WorkerPool::new(config)
            .map_err(|e| EngineFault::PoolStart { threads, reason: e.to_string() })?;
        let pool = Self { pool: Arc::new(pool) };
        pools.push((threads, pool.clone()));
        Ok(pool)
    }

    /// Number of worker threads.
    pub(crate) fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Runs `work(worker_index)` once on each of the pool's workers (worker 0 is the calling
    /// thread) and waits for all of them. A panic is caught per worker (`on_panic` runs right
    /// away, to stop the others) and the first one is returned after every worker finished.
    pub(crate) fn broadcast<F, P>(&self, work: F, on_panic: P) -> Result<(), EngineFault>
    where
        F: Fn(usize) + Sync,
        P: Fn() + Sync,
    {
        self.pool.broadcast(work, on_panic).map_err(EngineFault::WorkerPanic)
    }
}

/// A panic payload's message.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    velarium_numa_runtime::panic_message(&**panic)
}

/// Multi-version memories of finished blocks, kept for reuse (see `MvMemory::reset`).
static MEMORIES: Mutex<Vec<BlockMemory>> = Mutex::new(Vec::new());

/// An empty multi-version memory for a block of `block_size` transactions on `threads`
/// workers, reusing a finished block's allocations when one is available.
pub(crate) fn take_memory(block_size: usize, threads: usize) -> BlockMemory {
    let reused = MEMORIES.lock().unwrap_or_else(|e| e.into_inner()).pop();
    match reused {
        Some(mut memory) => {
            memory.reset(block_size, threads);
            memory
        }
        None => BlockMemory::with_workers(block_size, threads),
    }
}

/// Returns a memory for reuse by a later block (a few are kept; the rest are dropped).
pub(crate) fn give_back_memory(memory: BlockMemory) {
    let mut memories = MEMORIES.lock().unwrap_or_else(|e| e.into_inner());
    if memories.len() < 4 {
        memories.push(memory);
    }
}
