//! `velarium bench`: the oracle and the parallel engine side by side on the same blocks.
//!
//! Every workload's state is loaded in memory first, so only execution is timed. The engines
//! run interleaved (oracle, then each thread count, repeated), in one process, and every
//! parallel run is checked against the oracle's output. For each workload the critical-path
//! bound (gas-weighted longest dependency chain from the real read/write sets) says how much
//! parallelism exists at all; efficiency = speedup / min(threads, bound). The time-weighted
//! bound (`tbound`) weighs the same chains by each transaction's time on the oracle instead:
//! gas prices kinds of work differently from what they cost (a loop burns gas several times
//! slower than a transfer), so a block whose long transaction is a loop has less parallelism
//! than its gas says.
//!
//! A configuration's speedup is the median over the repetitions of the oracle's time over the
//! configuration's in the same repetition (`replay::paired_speedup`: the machine's drift
//! cancels within a repetition); the `median ms` columns are each engine's own median, and
//! `--json` also gives `speedup_of_medians`, their ratio.

use crate::{
    replay::{find_block_dirs, paired_speedup, rounds_for},
    EngineKind,
};
use eyre::{bail, eyre, WrapErr};
use serde_json::json;
use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};
use velarium_analyzer::{critical_path, efficiency};
use velarium_chainspec::ChainSpec;
use velarium_executor::{
    execute_parallel_with, time_transactions, trace_accesses, BlockInput, Engine, Mechanisms,
    ParallelStats,
};
use velarium_state::InMemoryState;

/// Arguments of `velarium bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workloads, comma-separated: generator names (see `--list`), `mainnet` (every fixture
    /// block) or `mainnet/NUMBER` (one of them), or `all`.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    workloads: Vec<String>,
    /// Blocks with fewer transactions run on the oracle under the parallel engine, as do the
    /// other blocks the engine gives it (one sender's chain of calls, a contract learned to run
    /// as a chain: see `velarium_executor::Engine`); the `oracle` column counts them. 0 forces
    /// Block-STM on every block.
    #[arg(long, default_value_t = velarium_executor::DEFAULT_PARALLEL_MIN_TXS)]
    min_parallel_txs: usize,
    /// Thread counts of the parallel engine, comma-separated.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Interleaved repetitions per engine (the median is reported). With 2 or more, a block
    /// whose oracle run takes under 200 ms / REPS runs more times (at most 40 REPS, every engine
    /// alike), as `replay --repeat` does: the `oracle` column shows the count.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Transactions per generated block (ignored with `--gas-limit`).
    #[arg(long, default_value_t = 1000)]
    txs: usize,
    /// Fill generated blocks up to this gas limit instead (1000000000 for gigagas blocks).
    #[arg(long)]
    gas_limit: Option<u64>,
    /// Seed of the generated blocks.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mainnet blocks for the `mainnet` workload: a folder of block folders or the
    /// `mainnet-blocks.tar.xz` archive (default: `target/fixtures/mainnet-blocks` if the test
    /// command unpacked it, else the archive in `$VELARIUM_SHARED` or `../shared`).
    #[arg(long)]
    mainnet: Option<PathBuf>,
    /// Where `.tar.xz` archives are extracted.
    #[arg(long, env = "VELARIUM_FIXTURE_CACHE", default_value = "target/fixtures-cache")]
    cache_dir: PathBuf,
    /// Print one JSON record per workload and engine/thread count.
    #[arg(long)]
    json: bool,
    /// List the workloads and exit.
    #[arg(long)]
    list: bool,
    /// Profiling mode: run only this engine (`sequential`, or `parallel` at the first
    /// `--threads` value), `--reps` times per block, without the oracle, tracing or checks; for
    /// `perf record`.
    #[arg(long, value_enum)]
    profile: Option<EngineKind>,
    /// Switch off known-dependency hints (same-sender transactions suspended up front) and
    /// effect analysis (hot locations predicted from history and from contract code).
    #[arg(long)]
    no_hints: bool,
    /// Switch off commutative credits: of plain transfer recipients, lazy senders, the lazy
    /// beneficiary, and hot storage slots' unobserved increments (storage credits).
    #[arg(long)]
    no_deltas: bool,
    /// Switch off hot-spot isolation (in-order chains, bounded speculation after aborts).
    #[arg(long)]
    no_isolation: bool,
    /// Switch off risk-aware speculation (pauses on running writers, waits at hot locations).
    #[arg(long)]
    no_risk: bool,
    /// Ablation: at each thread count above one, run the engine with every mechanism and with
    /// each one switched off in turn, interleaved, and print what each is worth per workload
    /// (one worker runs with every mechanism off).
    #[arg(long)]
    ablation: bool,
}

impl Args {
    /// The mechanisms the `--no-*` flags leave on.
    fn mechanisms(&self) -> Mechanisms {
        Mechanisms {
            hints: !self.no_hints,
            deltas: !self.no_deltas,
            isolation: !self.no_isolation,
            risk: !self.no_risk,
        }
    }

    /// The parallel configurations each block runs: (label, threads, mechanisms).
    fn configurations(&self) -> Vec<(String, usize, Mechanisms)> {
        let base = self.mechanisms();
        let mut configs = Vec::new();
        for &threads in &self.threads {
            configs.push((format!("parallel/{threads}"), threads, base));
            // One worker runs with every mechanism off (`Mechanisms::for_workers`): nothing
            // to switch off there.
            if self.ablation && threads > 1 {
                for (name, off) in ABLATIONS {
                    let mut m = base;
                    off(&mut m);
                    if m != base {
                        configs.push((format!("{threads}/no-{name}"), threads, m));
                    }
                }
            }
        }
        configs
    }
}

/// Switches one mechanism off.
type SwitchOff = fn(&mut Mechanisms);

/// The mechanisms `--ablation` switches off one at a time.
const ABLATIONS: [(&str, SwitchOff); 4] = [
    ("hints", |m| m.hints = false),
    ("deltas", |m| m.deltas = false),
    ("isolation", |m| m.isolation = false),
    ("risk", |m| m.risk = false),
];

/// A block ready to execute.
struct Block {
    name: String,
    spec: ChainSpec,
    header: alloy_consensus::Header,
    transactions: Vec<velarium_executor::RecoveredTx>,
    ommers: Vec<alloy_consensus::Header>,
    withdrawals: Option<Vec<alloy_eips::eip4895::Withdrawal>>,
    state: InMemoryState,
}

impl Block {
    fn input(&self) -> BlockInput<'_> {
        BlockInput {
            header: &self.header,
            transactions: &self.transactions,
            ommers: &self.ommers,
            withdrawals: self.withdrawals.as_deref(),
        }
    }
}

/// The blocks of the requested workloads.
fn load_workloads(args: &Args) -> eyre::Result<Vec<Block>> {
    let names: Vec<String> = if args.workloads.iter().any(|w| w == "all") {
        velarium_workloads::GENERATORS
            .iter()
            .map(|(n, _)| n.to_string())
            .chain(std::iter::once("mainnet".to_string()))
            .collect()
    } else {
        args.workloads.clone()
    };
    let mut blocks = Vec::new();
    for name in names {
        // `mainnet` is every fixture block, `mainnet/NUMBER` one of them.
        let only = match name.strip_prefix("mainnet/") {
            Some(number) => Some(number.parse::<u64>().map_err(|_| {
                eyre!("`{name}`: expected `mainnet/` and a block number (see --list)")
            })?),
            None => None,
        };
        if name == "mainnet" || only.is_some() {
            let source = args.mainnet.clone().unwrap_or_else(default_mainnet_blocks);
            let dirs = find_block_dirs(&source, &args.cache_dir)?;
            let spec = velarium_replay::mainnet_spec();
            let before = blocks.len();
            for dir in dirs {
                let b = velarium_replay::load_block(&dir)
                    .wrap_err_with(|| format!("loading {}", dir.display()))?;
                if only.is_some_and(|number| number != b.number) {
                    continue;
                }
                blocks.push(Block {
                    name: format!("mainnet/{}", b.number),
                    spec: spec.clone(),
                    header: b.header,
                    transactions: b.transactions,
                    ommers: b.ommers,
                    withdrawals: b.withdrawals,
                    state: b.state,
                });
            }
            if let Some(number) = only.filter(|_| blocks.len() == before) {
                bail!("`{name}`: no mainnet fixture block {number} in {}", source.display());
            }
            continue;
        }
        let w = match args.gas_limit {
            Some(limit) => velarium_workloads::fill(&name, args.seed, limit)
                .map_err(|e| eyre!("{name}: {e}"))?,
            None => velarium_workloads::generator(&name)
                .ok_or_else(|| eyre!("unknown workload `{name}` (see --list)"))?(
                args.seed, args.txs,
            ),
        };
        // A generator leaves the header's `gas_used` at zero; a real header carries what the
        // transactions used, which the parallel engine goes by (`workers_for`).
        let gas_used = Engine::Sequential
            .execute(&w.spec, &w.state, w.block_input())
            .map_err(|e| eyre!("{name}: oracle failed: {e}"))?
            .gas_used;
        blocks.push(Block {
            name: w.name.clone(),
            spec: w.spec,
            header: alloy_consensus::Header { gas_used, ..w.header },
            transactions: w.transactions,
            ommers: Vec::new(),
            withdrawals: Some(Vec::new()),
            state: w.state,
        });
    }
    Ok(blocks)
}

/// Where the mainnet blocks are when `--mainnet` is not given: the test command's unpacked copy,
/// else the shipped archive.
fn default_mainnet_blocks() -> PathBuf {
    let unpacked = PathBuf::from("target/fixtures/mainnet-blocks");
    if unpacked.is_dir() {
        return unpacked;
    }
    let shared =
        std::env::var_os("VELARIUM_SHARED").map_or_else(|| "../shared".into(), PathBuf::from);
    shared.join("fixtures/mainnet-blocks/mainnet-blocks.tar.xz")
}

/// The order in which repetition `rep` runs `n` configurations after the oracle. Two (the
/// default `--threads 1,2`) start at a different one each repetition, so neither always runs
/// right after the oracle (whose caches, and sleeping workers, it would meet). More (with
/// `--ablation`) are shuffled, seeded by `rep`: in a fixed cyclic order each configuration
/// would always follow the same one, each ablation the one before it at the same thread count
/// (its multi-version memory, of the same shape, still warm) and the full engine the last one
/// of the other thread count. Such a fixed neighbour moved a configuration by up to 7% against
/// an identical one (`bench` at `--threads 1,2` with a copy of each, 2026-12-07).
fn config_order(n: usize, rep: usize) -> Vec<usize> {
    if n <= 2 {
        return (0..n).map(|k| (k + rep) % n.max(1)).collect();
    }
    // splitmix64, seeded by the repetition: reproducible, and no dependency for a shuffle.
    let mut state = (rep as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// `--profile`: one engine only, every block `--reps` times; prints each block's median.
fn profile(args: &Args, engine: EngineKind, blocks: &[Block]) -> eyre::Result<ExitCode> {
    let engine = match engine {
        EngineKind::Sequential => Engine::Sequential,
        EngineKind::Parallel => {
            Engine::Parallel { threads: args.threads[0], min_txs: args.min_parallel_txs }
        }
    };
    for block in blocks {
        let mut samples = Samples::default();
        let mut phases: [Vec<Duration>; 5] = Default::default();
        for _ in 0..args.reps {
            let t = Instant::now();
            let (output, stats) =
                engine.execute_with_stats(&block.spec, &block.state, block.input())?;
            samples.record(t.elapsed(), stats);
            let p = stats.phases;
            let workers = stats.worker_wall;
            for (all, one) in phases.iter_mut().zip([p.pre, p.execute, p.commit, p.post, workers]) {
                all.push(one);
            }
            drop(output);
        }
        let ms = |times: &mut Vec<Duration>| {
            times.sort();
            times[times.len() / 2].as_secs_f64() * 1e3
        };
        let [pre, execute, commit, post, workers] = &mut phases;
        out!(
            "{:<28} {:>9.3} ms  (phases: pre {:.3}, execute {:.3} of which workers {:.3}, commit {:.3}, post {:.3})  re-executions {}, suspensions {}, paused reads {}, storage credits {}, utilisation {}{}{}",
            block.name,
            samples.median().as_secs_f64() * 1e3,
            ms(pre),
            ms(execute),
            ms(workers),
            ms(commit),
            ms(post),
            samples.stats.re_executions(block.transactions.len()),
            samples.stats.suspensions,
            samples.stats.waits,
            samples.stats.storage_credits,
            samples
                .stats
                .worker_utilisation()
                .map_or_else(|| "-".to_string(), |u| format!("{:.0}%", u * 100.0)),
            // A block of independent plain transfers runs without Block-STM.
            if samples.stats.independent { ", independent transfers" } else { "" },
            // Repetitions the parallel engine gave the oracle by its rules (the phases and
            // counters above are then the oracle's or zero): `--min-parallel-txs 0` forces
            // Block-STM on every one.
            match engine {
                Engine::Parallel { .. } if samples.oracle_runs > 0 => {
                    format!(", on the oracle {} of {}", samples.oracle_runs, samples.times.len())
                }
                _ => String::new(),
            },
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Oracle runs whose per-transaction medians weigh the time-weighted bound.
const TIMING_ROUNDS: usize = 3;

/// The critical-path bound with each transaction weighted by its time on the oracle
/// (`times`, nanoseconds; at least 1 each) instead of its gas.
fn time_weighted_bound(
    mut trace: Vec<velarium_analyzer::TxAccess<velarium_executor::AccessKey>>,
    times: &[Duration],
) -> f64 {
    for (tx, time) in trace.iter_mut().zip(times) {
        tx.gas = u64::try_from(time.as_nanos()).unwrap_or(u64::MAX).max(1);
    }
    critical_path(&trace).bound
}

/// Timing of one engine configuration on one block.
#[derive(Default)]
struct Samples {
    times: Vec<Duration>,
    /// The counters of the last repetition that ran through Block-STM.
    stats: ParallelStats,
    /// Repetitions the parallel engine gave to the oracle (see `Engine::Parallel`'s rules).
    oracle_runs: usize,
}

impl Samples {
    fn record(&mut self, time: Duration, stats: ParallelStats) {
        self.times.push(time);
        if stats.threads == 0 {
            self.oracle_runs += 1;
        } else {
            self.stats = stats;
        }
    }

    fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t[t.len() / 2]
    }
}

pub(crate) fn run(args: Args) -> eyre::Result<ExitCode> {
    if args.list {
        for (name, _) in velarium_workloads::GENERATORS {
            out!("{name}");
        }
        out!("mainnet");
        return Ok(ExitCode::SUCCESS);
    }
    if args.reps == 0 || args.threads.is_empty() || args.threads.contains(&0) {
        bail!("--reps and every --threads value must be at least 1");
    }
    let blocks = load_workloads(&args)?;
    if let Some(engine) = args.profile {
        return profile(&args, engine, &blocks);
    }
    let round_trip_before = velarium_numa_runtime::core_round_trip_ns();
    if !args.json {
        out!(
            "{:<28} {:>12} {:>9} {:>9} {:>9} {:>8} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>5} {:>6} {:>6}",
            "workload",
            "engine",
            "median ms",
            "min ms",
            "max ms",
            "Mgas/s",
            "speedup",
            "re-ex",
            "valid",
            "abort",
            "susp",
            "oracle",
            "bound",
            "eff",
            "tbound",
            "c2c ns"
        );
    }
    // (threads, speedup, critical-path bound, time-weighted bound) of every mainnet block.
    let mut mainnet_speedups: Vec<(usize, f64, f64, f64)> = Vec::new();
    // (workload, configuration, speedup with every mechanism / speedup without this one).
    let mut ablation: Vec<(String, String, f64)> = Vec::new();
    for block in &blocks {
        let started = Instant::now();
        let oracle = Engine::Sequential
            .execute(&block.spec, &block.state, block.input())
            .map_err(|e| eyre!("{}: oracle failed: {e}", block.name))?;
        // A short block gets more repetitions: a few medians of runs of a fraction of a
        // millisecond read the machine's jitter (a block of 4 transactions, run on the oracle
        // by both sides, read 0.87x at 9 repetitions; see `replay::rounds_for`).
        let reps = rounds_for(u32::try_from(args.reps).unwrap_or(u32::MAX), started.elapsed());
        let trace = trace_accesses(&block.spec, &block.state, block.input())
            .map_err(|e| eyre!("{}: tracing failed: {e}", block.name))?;
        let bound = critical_path(&trace).bound;
        // The same chains weighted by each transaction's time on the oracle instead of its gas.
        let times = time_transactions(&block.spec, &block.state, block.input(), TIMING_ROUNDS)
            .map_err(|e| eyre!("{}: timing the oracle failed: {e}", block.name))?;
        let time_bound = time_weighted_bound(trace, &times);
        let mut seq = Samples::default();
        let configs = args.configurations();
        let mut par: Vec<Samples> = configs.iter().map(|_| Samples::default()).collect();
        for rep in 0..reps as usize {
            let t = Instant::now();
            let output = Engine::Sequential.execute(&block.spec, &block.state, block.input())?;
            seq.times.push(t.elapsed());
            // Both engines' outputs are dropped outside the timed region.
            drop(output);
            for i in config_order(configs.len(), rep) {
                let (label, threads, mechanisms) = &configs[i];
                let (threads, mechanisms) = (*threads, *mechanisms);
                let t = Instant::now();
                let (output, stats) = if mechanisms == Mechanisms::ALL {
                    let engine = Engine::Parallel { threads, min_txs: args.min_parallel_txs };
                    engine.execute_with_stats(&block.spec, &block.state, block.input())?
                } else {
                    execute_parallel_with(
                        &block.spec,
                        &block.state,
                        block.input(),
                        threads,
                        mechanisms,
                    )?
                };
                par[i].record(t.elapsed(), stats);
                if let Err(what) = velarium_replay::compare_outputs_exactly(&output, &oracle) {
                    bail!("{}: {label} output differs from the oracle: {what}", block.name);
                }
            }
        }
        // The placement this workload's repetitions met (measured right after them: the
        // cores of a virtual machine may move between workloads of one run).
        let round_trip = velarium_numa_runtime::core_round_trip_ns();
        let gas = oracle.gas_used as f64;
        let seq_median = seq.median();
        let report = |engine: &str,
                      threads: usize,
                      s: &Samples,
                      speedup: f64|
         -> eyre::Result<()> {
            let median = s.median();
            let min = s.times.iter().min().copied().unwrap_or_default();
            let max = s.times.iter().max().copied().unwrap_or_default();
            let mgas = gas / 1e6 / median.as_secs_f64().max(1e-12);
            let eff = efficiency(speedup, threads, bound);
            let txs = block.transactions.len();
            if args.json {
                let record = json!({
                    "workload": block.name, "engine": engine, "threads": threads,
                    "txs": txs, "gas": oracle.gas_used,
                    "median_ms": median.as_secs_f64() * 1e3, "min_ms": min.as_secs_f64() * 1e3,
                    "max_ms": max.as_secs_f64() * 1e3, "mgas_per_s": mgas, "speedup": speedup,
                    "speedup_of_medians":
                        seq_median.as_secs_f64() / median.as_secs_f64().max(1e-12),
                    "re_executions": s.stats.re_executions(txs), "validations": s.stats.validations,
                    "aborts": s.stats.aborts, "suspensions": s.stats.suspensions,
                    "storage_credits": s.stats.storage_credits,
                    "oracle_runs": s.oracle_runs, "runs": s.times.len(),
                    "critical_path_bound": bound, "efficiency": eff,
                    "time_bound": time_bound,
                    "time_efficiency": efficiency(speedup, threads, time_bound),
                    "core_round_trip_ns": round_trip,
                });
                out!("{record}");
            } else {
                out!(
                    "{:<28} {:>12} {:>9.3} {:>9.3} {:>9.3} {:>8.1} {:>6.2}x {:>6} {:>6} {:>6} {:>6} {:>6} {:>6.1} {:>4.0}% {:>6.1} {:>6}",
                    block.name,
                    engine,
                    median.as_secs_f64() * 1e3,
                    min.as_secs_f64() * 1e3,
                    max.as_secs_f64() * 1e3,
                    mgas,
                    speedup,
                    s.stats.re_executions(txs),
                    s.stats.validations,
                    s.stats.aborts,
                    s.stats.suspensions,
                    format!("{}/{}", s.oracle_runs, s.times.len()),
                    bound,
                    eff * 100.0,
                    time_bound,
                    round_trip.map_or_else(|| "-".to_owned(), |ns| format!("{ns:.0}")),
                );
            }
            Ok(())
        };
        report("sequential", 1, &seq, 1.0)?;
        let mut with_all = 1.0;
        for (i, (label, threads, _)) in configs.iter().enumerate() {
            // Each repetition's oracle run beside this configuration's (see `paired_speedup`).
            let speedup = paired_speedup(&seq.times, &par[i].times).unwrap_or(0.0);
            report(label, *threads, &par[i], speedup)?;
            if label.starts_with("parallel/") {
                with_all = speedup;
                if block.name.starts_with("mainnet/") {
                    mainnet_speedups.push((*threads, speedup, bound, time_bound));
                }
            } else {
                ablation.push((block.name.clone(), label.clone(), with_all / speedup));
            }
        }
    }
    for &threads in &args.threads {
        let blocks: Vec<_> = mainnet_speedups.iter().filter(|(t, ..)| *t == threads).collect();
        if blocks.is_empty() {
            continue;
        }
        let geomean = |xs: &mut dyn Iterator<Item = f64>| {
            let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x.ln(), n + 1));
            (sum / n.max(1) as f64).exp()
        };
        let speedup = geomean(&mut blocks.iter().map(|(_, s, ..)| *s));
        let limit = geomean(&mut blocks.iter().map(|(t, _, b, _)| b.min(*t as f64)));
        let time_limit = geomean(&mut blocks.iter().map(|(t, _, _, b)| b.min(*t as f64)));
        let worst = blocks.iter().map(|(_, s, ..)| *s).fold(f64::INFINITY, f64::min);
        let line = format!(
            "mainnet, {threads} threads: geometric mean speedup {speedup:.2}x, worst {worst:.2}x over {} blocks (critical-path limit: geometric mean of min(threads, bound) {limit:.2}x; time-weighted {time_limit:.2}x)",
            blocks.len()
        );
        if args.json {
            note!("{line}");
        } else {
            out!("{line}");
        }
    }
    if !ablation.is_empty() {
        // What each mechanism is worth: the speedup with every mechanism on over the speedup
        // with this one off (above 1: it helps).
        let line = "ablation: speedup with every mechanism / speedup with the named one off";
        if args.json {
            for (workload, config, worth) in &ablation {
                let record = json!({ "ablation": config, "workload": workload, "worth": worth });
                out!("{record}");
            }
        } else {
            out!("{line}");
            for (workload, config, worth) in &ablation {
                out!("{workload:<28} {config:>12} {worth:>6.2}x");
            }
        }
    }
    if let (Some(before), Some(after)) =
        (round_trip_before, velarium_numa_runtime::core_round_trip_ns())
    {
        let line = format!(
            "core-to-core round trip: {before:.0} ns before, {after:.0} ns after ({})",
            velarium_numa_runtime::ROUND_TRIP_MEANING
        );
        if args.json {
            note!("{line}");
        } else {
            out!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: super::Args,
    }

    fn labels(argv: &[&str]) -> Vec<String> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied()))
            .expect("valid arguments");
        cli.args.configurations().into_iter().map(|(label, _, _)| label).collect()
    }

    #[test]
    fn ablation_switches_mechanisms_off_above_one_worker_only() {
        // One worker runs with every mechanism off: nothing to ablate there.
        assert_eq!(
            labels(&["--threads", "1,2", "--ablation"]),
            [
                "parallel/1",
                "parallel/2",
                "2/no-hints",
                "2/no-deltas",
                "2/no-isolation",
                "2/no-risk"
            ]
        );
        // A mechanism already off is not ablated again.
        assert_eq!(
            labels(&["--threads", "4", "--ablation", "--no-risk"]),
            ["parallel/4", "4/no-hints", "4/no-deltas", "4/no-isolation"]
        );
        assert_eq!(labels(&["--threads", "1,2"]), ["parallel/1", "parallel/2"]);
    }

    #[test]
    fn every_repetition_runs_every_configuration_once() {
        for n in 0..8 {
            for rep in 0..20 {
                let mut order = super::config_order(n, rep);
                order.sort_unstable();
                assert_eq!(order, (0..n).collect::<Vec<_>>(), "n {n} rep {rep}");
            }
        }
        // Two alternate; more are not always in the same cyclic order.
        assert_eq!(super::config_order(2, 0), [0, 1]);
        assert_eq!(super::config_order(2, 1), [1, 0]);
        let orders: std::collections::HashSet<_> =
            (0..20).map(|rep| super::config_order(5, rep)).collect();
        assert!(orders.len() > 5, "{orders:?}");
    }
}
