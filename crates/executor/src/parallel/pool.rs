//! The persistent worker pools.
//!
//! One pool per thread count, created on first use and reused by every block, so a block pays
//! no thread start-up. Blocks executed concurrently on the same pool queue for its threads;
//! Block-STM needs no particular number of live workers to finish.

use super::fault::EngineFault;
use std::sync::{Arc, Mutex, OnceLock};

/// A pool of worker threads.
#[derive(Debug, Clone)]
pub(crate) struct WorkerPool {
    pool: Arc<rayon::ThreadPool>,
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
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("velarium-worker-{i}"))
            .build()
            .map_err(|e| EngineFault::PoolStart { threads, reason: e.to_string() })?;
        let pool = Self { pool: Arc::new(pool) };
        pools.push((threads, pool.clone()));
        Ok(pool)
    }

    /// Number of worker threads.
    pub(crate) fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `work(worker_index)` once on each of the pool's workers and waits for all of them.
    /// A panic is caught per worker (`on_panic` runs right away, to stop the others) and the
    /// first one is returned after every worker finished.
    pub(crate) fn broadcast<F, P>(&self, work: F, on_panic: P) -> Result<(), EngineFault>
    where
        F: Fn(usize) + Sync,
        P: Fn() + Sync,
    {
        let panic = self
            .pool
            .broadcast(|ctx| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(ctx.index())))
                    .map_err(|panic| {
                        on_panic();
                        panic_message(&panic)
                    })
            })
            .into_iter()
            .find_map(Result::err);
        match panic {
            Some(msg) => Err(EngineFault::WorkerPanic(msg)),
            None => Ok(()),
        }
    }
}

/// A panic payload's message.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
