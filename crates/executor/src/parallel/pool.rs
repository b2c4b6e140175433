//! The persistent worker pools and the reused per-block buffers.
//!
//! One pool per thread count, created on first use and reused by every block, so a block pays
//! no thread start-up. Blocks executed concurrently on the same pool queue for it.

use super::{commit::OutcomeSlot, db::BlockMemory, fault::EngineFault, fees::FeeLedger};
use std::sync::{Arc, Mutex, OnceLock};
use velarium_scheduler::Scheduler;

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

/// The per-block structures of a finished block, kept for reuse: a block then works in memory
/// the previous one already had, instead of fresh (zeroed, cache-cold) pages.
#[derive(Debug)]
pub(crate) struct Workspace {
    pub(crate) memory: BlockMemory,
    pub(crate) scheduler: Scheduler,
    pub(crate) fees: FeeLedger,
    pub(crate) outcomes: Vec<OutcomeSlot>,
}

static WORKSPACES: Mutex<Vec<Workspace>> = Mutex::new(Vec::new());

/// A workspace for a block of `block_size` transactions on `threads` workers.
pub(crate) fn take_workspace(block_size: usize, threads: usize, state_clear: bool) -> Workspace {
    let reused = WORKSPACES.lock().unwrap_or_else(|e| e.into_inner()).pop();
    match reused {
        Some(mut ws) => {
            ws.memory.reset(block_size, threads);
            ws.scheduler.reset(block_size, threads);
            ws.fees.reset(block_size, state_clear);
            ws.outcomes.truncate(block_size);
            for slot in &mut ws.outcomes {
                *slot.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
            }
            ws.outcomes.resize_with(block_size, Default::default);
            ws
        }
        None => Workspace {
            memory: BlockMemory::with_workers(block_size, threads),
            scheduler: Scheduler::with_workers(block_size, threads),
            fees: FeeLedger::new(block_size, state_clear),
            outcomes: (0..block_size).map(|_| Default::default()).collect(),
        },
    }
}

/// Returns a workspace for reuse by a later block (a few are kept; the rest are dropped).
pub(crate) fn give_back(workspace: Workspace) {
    let mut workspaces = WORKSPACES.lock().unwrap_or_else(|e| e.into_inner());
    if workspaces.len() < 4 {
        workspaces.push(workspace);
    }
}
