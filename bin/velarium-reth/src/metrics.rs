//! Prometheus metrics of `velarium-reth`.
//!
//! Recorded with the [`metrics`](::metrics) crate; reth installs its Prometheus recorder at
//! start-up and serves everything on the `--metrics` endpoint, where reth's exporter prefixes
//! every name with `reth_` (`velarium_verify_blocks_total` is scraped as
//! `reth_velarium_verify_blocks_total`).
//!
//! Executor counters (mirrors of [`ExecutionMetrics`], refreshed every few seconds):
//! `velarium_executor_parallel_blocks_total`, `velarium_executor_sequential_blocks_total`,
//! `velarium_executor_transactions_total`, `velarium_executor_executions_total`,
//! `velarium_executor_re_executions_total`, `velarium_executor_validations_total`,
//! `velarium_executor_aborts_total`, `velarium_executor_suspensions_total`,
//! `velarium_executor_learned_chain_blocks_total` (blocks run sequentially because Block-STM
//! ran the last block dominated by the same contract as a chain); for newPayload's
//! per-transaction calls `velarium_executor_per_tx_parallel_blocks_total` (blocks every
//! transaction of which came from Block-STM), `velarium_executor_per_tx_block_stm_runs_total`,
//! `velarium_executor_state_read_errors_total` and
//! `velarium_executor_per_tx_fallbacks_total{reason}` (blocks that continued sequentially, and
//! why).
//!
//! The payload builder's speculation: `velarium_builder_blocks_total` (blocks built with
//! candidates ahead), `velarium_builder_windows_total` (Block-STM runs over candidates),
//! `velarium_builder_transactions_total{source}` (`speculated`: committed from Block-STM's
//! outcome; `fresh`: executed on the spot) and `velarium_builder_stale_total` (outcomes that
//! read what a skipped candidate wrote).
//!
//! Verification (the `velarium-verify` ExEx): `velarium_verify_blocks_total{result}` with
//! `result` = `match`, `mismatch` or `error`, `velarium_verify_transactions_total`,
//! `velarium_verify_gas_total` and `velarium_verify_last_block` (gauge).

use std::{future::Future, sync::Arc, time::Duration};
use velarium_reth_glue::{ExecutionMetrics, MetricsSnapshot};

/// How often [`report_execution_metrics`] refreshes the executor counters.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Outcome of re-executing one block in the verification ExEx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyResult {
    /// Receipts, gas and state changes equal what the node committed.
    Match,
    /// Something differed.
    Mismatch,
    /// The block could not be re-executed (state unavailable, execution error).
    Error,
}

impl VerifyResult {
    /// The value of the `result` label.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Match => "match",
            Self::Mismatch => "mismatch",
            Self::Error => "error",
        }
    }
}

/// Publishes a snapshot of the executor's counters.
pub fn record_execution_snapshot(snapshot: &MetricsSnapshot) {
    let MetricsSnapshot {
        parallel_blocks,
        sequential_blocks,
        transactions,
        executions,
        re_executions,
        validations,
        aborts,
        suspensions,
        per_tx_parallel_blocks,
        per_tx_block_stm_runs,
        state_read_errors,
        learned_chain_blocks,
        fallbacks,
        builder,
    } = *snapshot;
    ::metrics::counter!("velarium_executor_parallel_blocks_total").absolute(parallel_blocks);
    ::metrics::counter!("velarium_executor_sequential_blocks_total").absolute(sequential_blocks);
    ::metrics::counter!("velarium_executor_transactions_total").absolute(transactions);
    ::metrics::counter!("velarium_executor_executions_total").absolute(executions);
    ::metrics::counter!("velarium_executor_re_executions_total").absolute(re_executions);
    ::metrics::counter!("velarium_executor_validations_total").absolute(validations);
    ::metrics::counter!("velarium_executor_aborts_total").absolute(aborts);
    ::metrics::counter!("velarium_executor_suspensions_total").absolute(suspensions);
    ::metrics::counter!("velarium_executor_per_tx_parallel_blocks_total")
        .absolute(per_tx_parallel_blocks);
    ::metrics::counter!("velarium_executor_per_tx_block_stm_runs_total")
        .absolute(per_tx_block_stm_runs);
    ::metrics::counter!("velarium_executor_state_read_errors_total").absolute(state_read_errors);
    ::metrics::counter!("velarium_executor_learned_chain_blocks_total")
        .absolute(learned_chain_blocks);
    ::metrics::counter!("velarium_builder_blocks_total").absolute(builder.blocks);
    ::metrics::counter!("velarium_builder_windows_total").absolute(builder.windows);
    for (source, count) in [("speculated", builder.speculated), ("fresh", builder.fresh)] {
        ::metrics::counter!("velarium_builder_transactions_total", "source" => source)
            .absolute(count);
    }
    ::metrics::counter!("velarium_builder_stale_total").absolute(builder.stale);
    for (reason, count) in [
        ("disabled", fallbacks.disabled),
        ("no_plan", fallbacks.no_plan),
        ("inspector", fallbacks.inspector),
        ("amsterdam", fallbacks.amsterdam),
        ("small_block", fallbacks.small_block),
        ("plan_mismatch", fallbacks.plan_mismatch),
        ("plan_truncated", fallbacks.plan_truncated),
        ("plan_timeout", fallbacks.plan_timeout),
        ("not_committed", fallbacks.not_committed),
        ("direct_call", fallbacks.direct_call),
        ("engine_fault", fallbacks.engine_fault),
    ] {
        ::metrics::counter!("velarium_executor_per_tx_fallbacks_total", "reason" => reason)
            .absolute(count);
    }
}

/// Records the verification of one block with `transactions` transactions and `gas` gas used.
pub fn record_verified_block(result: VerifyResult, block_number: u64, transactions: u64, gas: u64) {
    ::metrics::counter!("velarium_verify_blocks_total", "result" => result.label()).increment(1);
    ::metrics::counter!("velarium_verify_transactions_total").increment(transactions);
    ::metrics::counter!("velarium_verify_gas_total").increment(gas);
    ::metrics::gauge!("velarium_verify_last_block").set(block_number as f64);
}

/// Refreshes the executor counters from `metrics` every [`REPORT_INTERVAL`] until `shutdown`
/// resolves.
pub async fn report_execution_metrics<S>(metrics: Arc<ExecutionMetrics>, shutdown: S)
where
    S: Future,
{
    let mut shutdown = std::pin::pin!(shutdown);
    let mut interval = tokio::time::interval(REPORT_INTERVAL);
    loop {
        tokio::select! {
            _ = interval.tick() => record_execution_snapshot(&metrics.snapshot()),
            _ = &mut shutdown => break,
        }
    }
    record_execution_snapshot(&metrics.snapshot());
}
