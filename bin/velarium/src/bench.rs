//! `velarium bench`: the oracle and the parallel engine side by side on the same blocks.
//!
//! Every workload's state is loaded in memory first, so only execution is timed. The engines
//! run interleaved (oracle, then each thread count, repeated), in one process, and every
//! parallel run is checked against the oracle's output. For each workload the critical-path
//! bound (gas-weighted longest dependency chain from the real read/write sets) says how much
//! parallelism exists at all; efficiency = speedup / min(threads, bound).

use eyre::{bail, eyre, WrapErr};
use serde_json::json;
use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};
use velarium_analyzer::{critical_path, efficiency};
use velarium_chainspec::ChainSpec;
use velarium_executor::{trace_accesses, BlockInput, Engine, ParallelStats};
use velarium_state::InMemoryState;

/// Arguments of `velarium bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workloads, comma-separated: generator names (see `--list`), `mainnet`, or `all`.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    workloads: Vec<String>,
    /// Thread counts of the parallel engine, comma-separated.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Interleaved repetitions per engine (the median is reported).
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
    /// Folder of mainnet blocks for the `mainnet` workload.
    #[arg(long, default_value = "target/fixtures/mainnet-blocks")]
    mainnet: PathBuf,
    /// Print one JSON record per workload and engine/thread count.
    #[arg(long)]
    json: bool,
    /// List the workloads and exit.
    #[arg(long)]
    list: bool,
    /// Profiling mode: run only this engine (`sequential`, or `parallel` at the first
    /// `--threads` value), `--reps` times per block, without the oracle, tracing or checks; for
    /// `perf record`.
    #[arg(long, value_parser = ["sequential", "parallel"])]
    profile: Option<String>,
}

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
        if name == "mainnet" {
            let dirs = velarium_replay::list_block_dirs(&args.mainnet);
            if dirs.is_empty() {
                bail!("no mainnet blocks under {}", args.mainnet.display());
            }
            let spec = velarium_replay::mainnet_spec();
            for dir in dirs {
                let b = velarium_replay::load_block(&dir)
                    .wrap_err_with(|| format!("loading {}", dir.display()))?;
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
        blocks.push(Block {
            name: w.name.clone(),
            spec: w.spec,
            header: w.header,
            transactions: w.transactions,
            ommers: Vec::new(),
            withdrawals: Some(Vec::new()),
            state: w.state,
        });
    }
    Ok(blocks)
}

/// `--profile`: one engine only, every block `--reps` times; prints each block's median.
fn profile(args: &Args, engine: &str, blocks: &[Block]) -> eyre::Result<ExitCode> {
    let engine = match engine {
        "sequential" => Engine::Sequential,
        _ => Engine::Parallel { threads: args.threads[0], min_txs: 0 },
    };
    for block in blocks {
        let mut samples = Samples::default();
        let mut phases: [Vec<Duration>; 4] = Default::default();
        for _ in 0..args.reps {
            let t = Instant::now();
            let (output, stats) =
                engine.execute_with_stats(&block.spec, &block.state, block.input())?;
            samples.times.push(t.elapsed());
            samples.stats = stats;
            let p = stats.phases;
            for (all, one) in phases.iter_mut().zip([p.pre, p.execute, p.commit, p.post]) {
                all.push(one);
            }
            drop(output);
        }
        let ms = |times: &mut Vec<Duration>| {
            times.sort();
            times[times.len() / 2].as_secs_f64() * 1e3
        };
        let [pre, execute, commit, post] = &mut phases;
        println!(
            "{:<28} {:>9.3} ms  (phases: pre {:.3}, execute {:.3}, commit {:.3}, post {:.3})  re-executions {}, suspensions {}, paused reads {}",
            block.name,
            samples.median().as_secs_f64() * 1e3,
            ms(pre),
            ms(execute),
            ms(commit),
            ms(post),
            samples.stats.re_executions(block.transactions.len()),
            samples.stats.suspensions,
            samples.stats.waits,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Timing of one engine configuration on one block.
#[derive(Default)]
struct Samples {
    times: Vec<Duration>,
    stats: ParallelStats,
}

impl Samples {
    fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t[t.len() / 2]
    }
}

pub(crate) fn run(args: Args) -> eyre::Result<ExitCode> {
    if args.list {
        for (name, _) in velarium_workloads::GENERATORS {
            println!("{name}");
        }
        println!("mainnet");
        return Ok(ExitCode::SUCCESS);
    }
    if args.reps == 0 || args.threads.is_empty() || args.threads.contains(&0) {
        bail!("--reps and every --threads value must be at least 1");
    }
    let blocks = load_workloads(&args)?;
    if let Some(engine) = &args.profile {
        return profile(&args, engine, &blocks);
    }
    if !args.json {
        println!(
            "{:<28} {:>10} {:>9} {:>9} {:>9} {:>8} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>5}",
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
            "bound",
            "eff"
        );
    }
    let mut mainnet_speedups: Vec<(usize, f64)> = Vec::new();
    for block in &blocks {
        let oracle = Engine::Sequential
            .execute(&block.spec, &block.state, block.input())
            .map_err(|e| eyre!("{}: oracle failed: {e}", block.name))?;
        let trace = trace_accesses(&block.spec, &block.state, block.input())
            .map_err(|e| eyre!("{}: tracing failed: {e}", block.name))?;
        let bound = critical_path(&trace).bound;
        let mut seq = Samples::default();
        let mut par: Vec<Samples> = args.threads.iter().map(|_| Samples::default()).collect();
        for _ in 0..args.reps {
            let t = Instant::now();
            let output = Engine::Sequential.execute(&block.spec, &block.state, block.input())?;
            seq.times.push(t.elapsed());
            // Both engines' outputs are dropped outside the timed region.
            drop(output);
            for (i, &threads) in args.threads.iter().enumerate() {
                let engine = Engine::Parallel { threads, min_txs: 0 };
                let t = Instant::now();
                let (output, stats) =
                    engine.execute_with_stats(&block.spec, &block.state, block.input())?;
                par[i].times.push(t.elapsed());
                par[i].stats = stats;
                if let Err(what) = velarium_replay::compare_outputs_exactly(&output, &oracle) {
                    bail!(
                        "{}: parallel output at {threads} threads differs from the oracle: {what}",
                        block.name
                    );
                }
            }
        }
        let gas = oracle.gas_used as f64;
        let seq_median = seq.median();
        let report = |engine: &str, threads: usize, s: &Samples, speedup: f64| {
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
                    "re_executions": s.stats.re_executions(txs), "validations": s.stats.validations,
                    "aborts": s.stats.aborts, "suspensions": s.stats.suspensions,
                    "critical_path_bound": bound, "efficiency": eff,
                });
                println!("{record}");
            } else {
                println!(
                    "{:<28} {:>10} {:>9.3} {:>9.3} {:>9.3} {:>8.1} {:>6.2}x {:>6} {:>6} {:>6} {:>6} {:>6.1} {:>4.0}%",
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
                    bound,
                    eff * 100.0
                );
            }
        };
        report("sequential", 1, &seq, 1.0);
        for (i, &threads) in args.threads.iter().enumerate() {
            let speedup = seq_median.as_secs_f64() / par[i].median().as_secs_f64().max(1e-12);
            report(&format!("parallel/{threads}"), threads, &par[i], speedup);
            if block.name.starts_with("mainnet/") {
                mainnet_speedups.push((threads, speedup));
            }
        }
    }
    for &threads in &args.threads {
        let s: Vec<f64> =
            mainnet_speedups.iter().filter(|(t, _)| *t == threads).map(|(_, s)| *s).collect();
        if s.is_empty() {
            continue;
        }
        let geomean = (s.iter().map(|x| x.ln()).sum::<f64>() / s.len() as f64).exp();
        let worst = s.iter().copied().fold(f64::INFINITY, f64::min);
        let line = format!(
            "mainnet, {threads} threads: geometric mean speedup {geomean:.2}x, worst {worst:.2}x over {} blocks",
            s.len()
        );
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
