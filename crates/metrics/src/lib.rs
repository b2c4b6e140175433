//! Prometheus metrics for a Velarium node.
//!
//! [`Metrics`] turns one [`BlockReport`] per imported block into Prometheus series and renders them
//! in the text exposition format (version 0.0.4), either on demand ([`Metrics::render`]) or over
//! HTTP from a small background server ([`Metrics::serve`], `GET /metrics`). The crate knows
//! nothing about the rest of Velarium: a report is plain numbers and strings, filled in by the
//! node after each block.
//!
//! Every [`Metrics`] owns its own [`PrometheusRecorder`] and records through
//! [`metrics::with_local_recorder`], so no global recorder is installed and several instances can
//! live in one process (tests do this).
//!
//! # Series
//!
//! Counters:
//!
//! - `velarium_blocks_total{engine}`: blocks recorded, by the engine that executed them
//!   (`parallel` or `sequential`; `unknown` when the report leaves it empty);
//! - `velarium_transactions_total`, `velarium_gas_total`: transactions and gas of those blocks;
//! - `velarium_executions_total`, `velarium_re_executions_total`, `velarium_validations_total`,
//!   `velarium_aborts_total`, `velarium_suspensions_total`: Block-STM's work (re-executions per
//!   transaction is the contention signal);
//! - `velarium_storage_credits_total`: transactions that credited a hot storage slot (a token's
//!   hot receiver) without reading it, contention the engine took out of the way;
//! - `velarium_learned_chain_blocks_total`: blocks the parallel engine gave the sequential
//!   executor because Block-STM ran the last block dominated by the same contract as a chain
//!   (counted under `engine="sequential"` too);
//! - `velarium_import_errors_total{kind}`: blocks that failed to import, by a short error kind
//!   ([`Metrics::record_import_error`]).
//!
//! Histograms (seconds, buckets [`SECONDS_BUCKETS`]):
//!
//! - `velarium_block_execution_seconds`: executing a block's transactions;
//! - `velarium_state_root_seconds`: computing its state root;
//! - `velarium_commit_seconds`: writing its changes to storage.
//!
//! Gauges:
//!
//! - `velarium_head_block_number`: the number of the last recorded block;
//! - `velarium_mgas_per_second`: gas (in millions) over execution + state root + commit time,
//!   summed over the last [`MGAS_WINDOW_BLOCKS`] blocks (a sliding window, so one slow or empty
//!   block does not swing it);
//! - `velarium_critical_path_bound`: the last block's achievable speedup (total work over its
//!   critical path), set only by blocks that report it;
//! - `velarium_speedup`: the last measured speedup over sequential execution, set only by blocks
//!   that report it;
//! - `velarium_bound_efficiency`: speedup / min(bound, workers) of the last block that reported
//!   both (speedup / bound when it did not say how many workers ran it), as `velarium bench`
//!   computes efficiency;
//! - `velarium_worker_utilisation`: the share (0..1) of worker time spent on useful work, set only
//!   by blocks that report it;
//! - `velarium_hot_contract_conflicts{rank,address}` and
//!   `velarium_hot_slot_conflicts{rank,address,slot}`: the last block's most contended contracts
//!   and storage slots (aborts plus dependency waits), see below;
//! - `velarium_build_info{version}`: always 1 ([`Metrics::set_build_info`]).
//!
//! # Hot contracts and slots: bounded cardinality
//!
//! Addresses and slots are unbounded label values, so the hot series follow a strict policy: they
//! describe **the last recorded block only**. Each block's entries are merged by key, entries with
//! a zero count are dropped, the rest are sorted by count (descending, ties by key) and only the
//! first [`HOT_TOP_K`] are kept, ranked `1..=HOT_TOP_K`. Recording a block replaces the previous
//! block's set entirely: label sets of earlier blocks are removed from the exposition at once
//! (not zeroed, not left to expire), so each hot series family never has more than
//! [`HOT_TOP_K`] samples and memory does not grow with the number of distinct addresses seen. A
//! block without hot entries leaves the families empty. Prometheus marks the vanished series stale
//! on its next scrape; use `max_over_time`/`topk` over a range to look at a period rather than a
//! block.
//!
//! These two families are kept outside the recorder (whose registry cannot delete a label set on
//! demand) and appended to its output by [`Metrics::render`].
//!
//! # Example
//!
//! ```no_run
//! use velarium_metrics::{BlockReport, Metrics};
//!
//! let metrics = Metrics::new();
//! metrics.set_build_info(env!("CARGO_PKG_VERSION"));
//! let server = metrics.serve("127.0.0.1:9002".parse().unwrap())?;
//! metrics.record_block(&BlockReport {
//!     number: 1,
//!     transactions: 120,
//!     gas_used: 14_000_000,
//!     engine: "parallel",
//!     execution_seconds: 0.031,
//!     ..BlockReport::default()
//! });
//! // Prometheus scrapes http://127.0.0.1:9002/metrics; the server stops with `server`.
//! # drop(server);
//! # Ok::<(), std::io::Error>(())
//! ```

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

mod server;

pub use server::MetricsServer;

#[cfg(test)]
mod tests;

/// How many hot contracts and hot slots are exported per block (ranks `1..=HOT_TOP_K`).
pub const HOT_TOP_K: usize = 10;

/// How many recent blocks `velarium_mgas_per_second` averages over.
pub const MGAS_WINDOW_BLOCKS: usize = 64;

/// Upper bounds (seconds) of the buckets of the three timing histograms: 0.5 ms to 30 s.
pub const SECONDS_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The `Content-Type` of [`Metrics::render`]'s output: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Histogram samples are drained into their buckets at every render; a node that is not scraped
/// drains them every this many blocks instead, so they do not pile up.
const UPKEEP_EVERY_BLOCKS: u32 = 32;

const BLOCKS: &str = "velarium_blocks_total";
const TRANSACTIONS: &str = "velarium_transactions_total";
const GAS: &str = "velarium_gas_total";
const HEAD: &str = "velarium_head_block_number";
const MGAS: &str = "velarium_mgas_per_second";
const EXECUTION_SECONDS: &str = "velarium_block_execution_seconds";
const STATE_ROOT_SECONDS: &str = "velarium_state_root_seconds";
const COMMIT_SECONDS: &str = "velarium_commit_seconds";
const EXECUTIONS: &str = "velarium_executions_total";
const RE_EXECUTIONS: &str = "velarium_re_executions_total";
const VALIDATIONS: &str = "velarium_validations_total";
const ABORTS: &str = "velarium_aborts_total";
const SUSPENSIONS: &str = "velarium_suspensions_total";
const STORAGE_CREDITS: &str = "velarium_storage_credits_total";
const LEARNED_CHAINS: &str = "velarium_learned_chain_blocks_total";
const BOUND: &str = "velarium_critical_path_bound";
const SPEEDUP: &str = "velarium_speedup";
const EFFICIENCY: &str = "velarium_bound_efficiency";
const UTILISATION: &str = "velarium_worker_utilisation";
const IMPORT_ERRORS: &str = "velarium_import_errors_total";
const BUILD_INFO: &str = "velarium_build_info";
const HOT_CONTRACTS: &str = "velarium_hot_contract_conflicts";
const HOT_SLOTS: &str = "velarium_hot_slot_conflicts";

const HOT_CONTRACTS_HELP: &str = "Aborts plus dependency waits on the last block's most contended \
                                  contracts (top 10 by rank; earlier blocks' entries are removed).";
const HOT_SLOTS_HELP: &str = "Aborts plus dependency waits on the last block's most contended \
                              storage slots (top 10 by rank; earlier blocks' entries are removed).";

/// What the node measured while importing one block: the input of [`Metrics::record_block`].
///
/// Times are in seconds; a negative, NaN or infinite time or ratio is ignored rather than
/// recorded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlockReport {
    /// Block number.
    pub number: u64,
    /// Transactions in the block.
    pub transactions: u64,
    /// Gas the block used.
    pub gas_used: u64,
    /// The engine that executed it: `"parallel"` or `"sequential"` (empty reads as `"unknown"`).
    pub engine: &'static str,
    /// Time spent executing the transactions.
    pub execution_seconds: f64,
    /// Time spent computing the state root.
    pub state_root_seconds: f64,
    /// Time spent writing the block's changes to storage.
    pub commit_seconds: f64,
    /// Transaction executions (incarnations), first ones included.
    pub executions: u64,
    /// Executions beyond the first of each transaction.
    pub re_executions: u64,
    /// Validations of read sets.
    pub validations: u64,
    /// Aborted incarnations (failed validations or read conflicts).
    pub aborts: u64,
    /// Executions suspended on a dependency.
    pub suspensions: u64,
    /// Transactions that credited a hot storage slot without reading it.
    pub storage_credits: u64,
    /// The parallel engine gave the block to the sequential executor because Block-STM ran the
    /// last block dominated by the same contract as a chain (`engine` is then `"sequential"`).
    pub learned_chain: bool,
    /// The block's achievable speedup: total work over the critical path, when known.
    pub critical_path_bound: Option<f64>,
    /// The measured speedup over sequential execution, when known.
    pub speedup: Option<f64>,
    /// Share of worker time spent on useful work, 0..1, when known.
    pub worker_utilisation: Option<f64>,
    /// Worker threads that executed the block (0: unknown, or it ran sequentially): the bound
    /// of its efficiency is min(critical-path bound, workers).
    pub workers: usize,
    /// Contended contracts: (address, aborts + waits). Any order and length; the top
    /// [`HOT_TOP_K`] are exported.
    pub hot_contracts: Vec<(String, u64)>,
    /// Contended storage slots: (address, slot, aborts + waits). Any order and length; the top
    /// [`HOT_TOP_K`] are exported.
    pub hot_slots: Vec<(String, String, u64)>,
}

/// A node's Prometheus metrics: a recorder of its own, its render handle and the state the
/// derived series need (the gas window, the last block's hot entries).
///
/// Cloning is cheap and shares the same series (the HTTP server holds a clone).
#[derive(Clone)]
pub struct Metrics {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Shared {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// (gas, seconds) of the last [`MGAS_WINDOW_BLOCKS`] blocks.
    window: VecDeque<(u64, f64)>,
    /// The last block's hot contracts, ranked (index 0 is rank 1).
    hot_contracts: Vec<(String, u64)>,
    /// The last block's hot slots, ranked (index 0 is rank 1).
    hot_slots: Vec<(String, String, u64)>,
    blocks_since_upkeep: u32,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, every series described (HELP lines) and none recorded yet.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(SECONDS_BUCKETS)
            .expect("SECONDS_BUCKETS is not empty")
            .build_recorder();
        let handle = recorder.handle();
        let metrics =
            Self { shared: Arc::new(Shared { recorder, handle, state: Mutex::default() }) };
        metrics.with_recorder(describe_all);
        metrics
    }

    /// Records one imported block; see the crate documentation for the series it updates.
    pub fn record_block(&self, report: &BlockReport) {
        let mut state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);

        let seconds = [report.execution_seconds, report.state_root_seconds, report.commit_seconds]
            .into_iter()
            .filter(|s| valid(*s))
            .sum::<f64>();
        if state.window.len() == MGAS_WINDOW_BLOCKS {
            state.window.pop_front();
        }
        state.window.push_back((report.gas_used, seconds));
        let (window_gas, window_seconds) = state
            .window
            .iter()
            .fold((0u128, 0f64), |(g, s), (gas, secs)| (g + u128::from(*gas), s + secs));

        state.hot_contracts = top_contracts(&report.hot_contracts);
        state.hot_slots = top_slots(&report.hot_slots);

        self.with_recorder(|| {
            let engine = if report.engine.is_empty() { "unknown" } else { report.engine };
            counter!(BLOCKS, "engine" => engine).increment(1);
            counter!(TRANSACTIONS).increment(report.transactions);
            counter!(GAS).increment(report.gas_used);
            counter!(EXECUTIONS).increment(report.executions);
            counter!(RE_EXECUTIONS).increment(report.re_executions);
            counter!(VALIDATIONS).increment(report.validations);
            counter!(ABORTS).increment(report.aborts);
            counter!(SUSPENSIONS).increment(report.suspensions);
            counter!(STORAGE_CREDITS).increment(report.storage_credits);
            counter!(LEARNED_CHAINS).increment(u64::from(report.learned_chain));

            gauge!(HEAD).set(report.number as f64);
            if window_seconds > 0.0 {
                gauge!(MGAS).set(window_gas as f64 / window_seconds / 1e6);
            }

            for (name, value) in [
                (EXECUTION_SECONDS, report.execution_seconds),
                (STATE_ROOT_SECONDS, report.state_root_seconds),
                (COMMIT_SECONDS, report.commit_seconds),
            ] {
                if valid(value) {
                    histogram!(name).record(value);
                }
            }

            let bound = report.critical_path_bound.filter(|b| valid(*b));
            let speedup = report.speedup.filter(|s| valid(*s));
            if let Some(bound) = bound {
                gauge!(BOUND).set(bound);
            }
            if let Some(speedup) = speedup {
                gauge!(SPEEDUP).set(speedup);
            }
            if let (Some(bound), Some(speedup)) = (bound, speedup) {
                let reachable =
                    if report.workers > 0 { bound.min(report.workers as f64) } else { bound };
                if reachable > 0.0 {
                    gauge!(EFFICIENCY).set(speedup / reachable);
                }
            }
            if let Some(utilisation) = report.worker_utilisation.filter(|u| valid(*u)) {
                gauge!(UTILISATION).set(utilisation);
            }
        });

        state.blocks_since_upkeep += 1;
        if state.blocks_since_upkeep >= UPKEEP_EVERY_BLOCKS {
            state.blocks_since_upkeep = 0;
            self.shared.handle.run_upkeep();
        }
    }

    /// Counts a block that failed to import, by a short, fixed error kind (`"decode"`,
    /// `"consensus"`, `"execution"`, ...: keep the set of kinds small, it is a label).
    pub fn record_import_error(&self, kind: &str) {
        let kind = kind.to_owned();
        self.with_recorder(|| counter!(IMPORT_ERRORS, "kind" => kind).increment(1));
    }

    /// Sets `velarium_head_block_number` (the stored head a node starts from, before it
    /// records any block).
    pub fn set_head(&self, number: u64) {
        self.with_recorder(|| gauge!(HEAD).set(number as f64));
    }

    /// Sets `velarium_build_info{version}` to 1. Meant to be called once, at start-up; calling
    /// it again with another version adds a second series.
    pub fn set_build_info(&self, version: &str) {
        let version = version.to_owned();
        self.with_recorder(|| gauge!(BUILD_INFO, "version" => version).set(1.0));
    }

    /// Renders every series in the Prometheus text exposition format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = self.shared.handle.render();
        let state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.hot_contracts.is_empty() {
            write_family_head(&mut out, HOT_CONTRACTS, HOT_CONTRACTS_HELP);
            for (rank, (address, count)) in state.hot_contracts.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{HOT_CONTRACTS}{{rank=\"{}\",address=\"{}\"}} {count}",
                    rank + 1,
                    escape_label(address),
                );
            }
            out.push('\n');
        }
        if !state.hot_slots.is_empty() {
            write_family_head(&mut out, HOT_SLOTS, HOT_SLOTS_HELP);
            for (rank, (address, slot, count)) in state.hot_slots.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{HOT_SLOTS}{{rank=\"{}\",address=\"{}\",slot=\"{}\"}} {count}",
                    rank + 1,
                    escape_label(address),
                    escape_label(slot),
                );
            }
            out.push('\n');
        }
        out
    }

    /// Serves [`render`](Self::render)'s output at `GET /metrics` on `addr` from a background
    /// thread (port 0 picks a free port: see [`MetricsServer::local_addr`]). The server stops
    /// when the returned [`MetricsServer`] is dropped or shut down.
    ///
    /// # Errors
    ///
    /// Binding `addr` fails, or the thread cannot be spawned.
    pub fn serve(&self, addr: SocketAddr) -> io::Result<MetricsServer> {
        MetricsServer::start(self.clone(), addr)
    }

    fn with_recorder<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.shared.recorder, f)
    }
}

fn describe_all() {
    describe_counter!(BLOCKS, Unit::Count, "Blocks recorded, by the engine that executed them.");
    describe_counter!(TRANSACTIONS, Unit::Count, "Transactions in the recorded blocks.");
    describe_counter!(GAS, Unit::Count, "Gas used by the recorded blocks.");
    describe_gauge!(HEAD, Unit::Count, "Number of the last recorded block.");
    describe_gauge!(
        MGAS,
        "Millions of gas per second of execution, state root and commit time over the last 64 \
         blocks."
    );
    describe_histogram!(
        EXECUTION_SECONDS,
        Unit::Seconds,
        "Time spent executing a block's transactions."
    );
    describe_histogram!(STATE_ROOT_SECONDS, Unit::Seconds, "Time spent computing a state root.");
    describe_histogram!(
        COMMIT_SECONDS,
        Unit::Seconds,
        "Time spent writing a block's changes to storage."
    );
    describe_counter!(EXECUTIONS, Unit::Count, "Transaction executions, first ones included.");
    describe_counter!(
        RE_EXECUTIONS,
        Unit::Count,
        "Transaction executions beyond the first (contention)."
    );
    describe_counter!(VALIDATIONS, Unit::Count, "Read-set validations.");
    describe_counter!(ABORTS, Unit::Count, "Aborted transaction incarnations.");
    describe_counter!(SUSPENSIONS, Unit::Count, "Executions suspended on a dependency.");
    describe_counter!(
        STORAGE_CREDITS,
        Unit::Count,
        "Transactions that credited a hot storage slot without reading it."
    );
    describe_counter!(
        LEARNED_CHAINS,
        Unit::Count,
        "Blocks the parallel engine gave the sequential executor because Block-STM ran the last \
         block dominated by the same contract as a chain."
    );
    describe_gauge!(
        BOUND,
        "Achievable speedup of the last block that reported it (work over critical path)."
    );
    describe_gauge!(SPEEDUP, "Measured speedup over sequential execution of the last block.");
    describe_gauge!(
        EFFICIENCY,
        "Speedup over min(critical-path bound, workers) of the last block that reported both."
    );
    describe_gauge!(
        UTILISATION,
        Unit::Percent,
        "Share (0..1) of worker time spent on useful work in the last block."
    );
    describe_counter!(IMPORT_ERRORS, Unit::Count, "Blocks that failed to import, by kind.");
    describe_gauge!(BUILD_INFO, "Always 1; the version label names the running build.");
}

/// A time or ratio worth recording: finite and not negative.
fn valid(value: f64) -> bool {
    value.is_finite() && value >= 0.0
}

/// Merges duplicate addresses, drops zero counts, keeps the [`HOT_TOP_K`] largest (ties by key).
fn top_contracts(entries: &[(String, u64)]) -> Vec<(String, u64)> {
    let mut merged = BTreeMap::<&str, u64>::new();
    for (address, count) in entries {
        *merged.entry(address).or_default() += count;
    }
    let mut ranked: Vec<_> = merged.into_iter().filter(|(_, count)| *count > 0).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked.truncate(HOT_TOP_K);
    ranked.into_iter().map(|(address, count)| (address.to_owned(), count)).collect()
}

/// [`top_contracts`] for (address, slot) keys.
fn top_slots(entries: &[(String, String, u64)]) -> Vec<(String, String, u64)> {
    let mut merged = BTreeMap::<(&str, &str), u64>::new();
    for (address, slot, count) in entries {
        *merged.entry((address, slot)).or_default() += count;
    }
    let mut ranked: Vec<_> = merged.into_iter().filter(|(_, count)| *count > 0).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(HOT_TOP_K);
    ranked
        .into_iter()
        .map(|((address, slot), count)| (address.to_owned(), slot.to_owned(), count))
        .collect()
}

fn write_family_head(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// Escapes a label value for the text format: backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}
