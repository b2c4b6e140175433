//! `velarium replay`: execute real mainnet blocks on their partial pre-states and check them
//! against their headers (and, for a non-sequential engine, against the sequential oracle).

use crate::{blocktest::resolve_input, EngineArgs};
use eyre::bail;
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};
use velarium_chainspec::ChainSpec;
use velarium_executor::{Engine, ParallelStats};
use velarium_replay::{
    check_against_oracle, list_block_dirs, load_block, mainnet_spec, replay_block, MainnetBlock,
    ReplayError, ReplayOutcome,
};

/// Arguments of `velarium replay`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    /// Print one JSON object per block per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Execute each block this many times and report the median run (every run is verified;
    /// for a parallel engine the oracle runs interleaved, each run beside one of the oracle's,
    /// and the block's speedup is the median of the pairs' ratios). With 2 or more, a block
    /// faster than 200 ms / R runs more times (at most 40R, both engines alike).
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// Take the blocks by turns: each of the `--repeat` rounds runs every block once with the
    /// engine and once with the oracle, in two passes over the blocks (the engine's first on
    /// even rounds), after an untimed round, so that each run meets the caches the other
    /// blocks left, as consecutive blocks on a node do, rather than a run of the same block.
    /// Short blocks get no extra runs.
    #[arg(long)]
    rotate: bool,
    /// Where `.tar.xz` archives are extracted.
    #[arg(long, env = "VELARIUM_FIXTURE_CACHE", default_value = "target/fixtures-cache")]
    cache_dir: PathBuf,
    /// Block folders (holding `block.json`, `pre_state.json`), folders of them, or `.tar.xz`
    /// archives of them (`mainnet-blocks.tar.xz`).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// One replayed block, as reported.
struct Report {
    number: String,
    txs: Option<usize>,
    gas: Option<u64>,
    result: Result<(), String>,
    /// Median execution time of the engine.
    time: Option<Duration>,
    /// Median execution time of the oracle, run interleaved (parallel engines only).
    oracle_time: Option<Duration>,
    /// The median of the runs' ratios, each the oracle's run over the engine's run beside it
    /// (see [`paired_speedup`]).
    speedup: Option<f64>,
    stats: Option<ParallelStats>,
    /// The fewest and most workers the engine's timed runs used (0: the oracle ran the block).
    workers: Option<(usize, usize)>,
    /// Timed runs of each engine (see [`rounds_for`]).
    runs: u32,
    unrewarded_ommers: usize,
}

/// The median of `times` (upper median for an even count).
fn median(times: &mut [Duration]) -> Option<Duration> {
    times.sort();
    times.get(times.len() / 2).copied()
}

/// A block's speedup from its runs by turns: the median over the pairs (the oracle's run, the
/// engine's run beside it) of the oracle's time over the engine's (upper median for an even
/// count; `None` without pairs).
///
/// Why pairs: the virtual machine's speed drifts from one millisecond to the next (its cores
/// are shared), and two runs side by side meet the same drift, which their ratio cancels; the
/// ratio of the two engines' medians compares runs from different moments. Measured with the
/// oracle on both sides (`replay --threads 2 --min-parallel-txs 100000 --repeat 9`, identical
/// code, 2026-12-07 00:10-00:20 UTC, each run giving both figures): with the former budget of
/// 50 ms (at most 5R), 5, 4, 2, 2, 1 and 3 of the 47 blocks read below 0.97x as ratios of
/// medians (as low as 0.78x), 3, 1, 1, 2, 1 and 2 as medians of pairs; with this budget
/// ([`SHORT_BLOCK_BUDGET`]) 4, 1, 1 and 2 against 0, 0, 0 and 1 (worst 0.98x, 0.98x, 0.98x,
/// 0.94x).
pub(crate) fn paired_speedup(oracle: &[Duration], engine: &[Duration]) -> Option<f64> {
    let mut ratios: Vec<f64> = oracle
        .iter()
        .zip(engine)
        .map(|(o, e)| o.as_secs_f64() / e.as_secs_f64().max(1e-12))
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios.get(ratios.len() / 2).copied()
}

/// A block's report before its runs: `Err` if it could not be loaded.
fn loaded(dir: &std::path::Path, repeat: u32) -> (Report, Option<MainnetBlock>) {
    let mut report = Report {
        number: dir
            .file_name()
            .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned()),
        txs: None,
        gas: None,
        result: Ok(()),
        time: None,
        oracle_time: None,
        speedup: None,
        stats: None,
        workers: None,
        runs: repeat,
        unrewarded_ommers: 0,
    };
    let block = match load_block(dir) {
        Ok(block) => block,
        Err(err) => {
            report.result = Err(err.to_string());
            return (report, None);
        }
    };
    report.number = block.number.to_string();
    report.txs = Some(block.transactions.len());
    report.gas = Some(block.header.gas_used);
    report.unrewarded_ommers = block.ommer_hashes.len();
    (report, Some(block))
}

/// The timed runs of one block so far.
#[derive(Default)]
struct Runs {
    times: Vec<Duration>,
    oracle_times: Vec<Duration>,
    stats: Option<ParallelStats>,
    workers: Option<(usize, usize)>,
}

impl Runs {
    /// Untimed: one-time costs (the KZG setup, first-touch allocations, the worker threads)
    /// are charged to neither engine. Returns the run's time, and checks it against the
    /// oracle.
    fn warm_up(
        block: &MainnetBlock,
        spec: &ChainSpec,
        engine: Engine,
    ) -> Result<Duration, ReplayError> {
        let warm = replay_block(block, spec, engine)?;
        if engine != Engine::Sequential {
            check_against_oracle(block, spec, &warm.output)?;
        }
        Ok(warm.execution_time)
    }

    /// Times one run of `engine` and, for a parallel engine, one of the oracle beside it
    /// (first on odd rounds, so neither always finds the other's data in the caches), checking
    /// that both gave the same output.
    fn time(
        &mut self,
        block: &MainnetBlock,
        spec: &ChainSpec,
        engine: Engine,
        round: u32,
    ) -> Result<(), ReplayError> {
        let oracle_first = round % 2 == 1;
        let mut oracle = None;
        if engine != Engine::Sequential && oracle_first {
            oracle = Some(replay_block(block, spec, Engine::Sequential)?);
        }
        let outcome = replay_block(block, spec, engine)?;
        if engine == Engine::Sequential {
            self.times.push(outcome.execution_time);
            return Ok(());
        }
        let oracle = match oracle {
            Some(oracle) => oracle,
            None => replay_block(block, spec, Engine::Sequential)?,
        };
        self.record_pair(&outcome, &oracle)
    }

    /// Records a run of a parallel engine and the oracle's run it is compared with, checking
    /// that both gave the same output.
    fn record_pair(
        &mut self,
        outcome: &ReplayOutcome,
        oracle: &ReplayOutcome,
    ) -> Result<(), ReplayError> {
        velarium_replay::compare_outputs_exactly(&outcome.output, &oracle.output)
            .map_err(ReplayError::OracleMismatch)?;
        self.times.push(outcome.execution_time);
        self.oracle_times.push(oracle.execution_time);
        self.stats = Some(outcome.stats);
        let used = outcome.stats.threads;
        self.workers =
            Some(self.workers.map_or((used, used), |(lo, hi)| (lo.min(used), hi.max(used))));
        Ok(())
    }

    /// Completes `report` with these runs.
    fn report(mut self, report: &mut Report) {
        report.speedup = paired_speedup(&self.oracle_times, &self.times);
        report.runs = u32::try_from(self.times.len()).unwrap_or(u32::MAX);
        report.time = median(&mut self.times);
        report.oracle_time = median(&mut self.oracle_times);
        report.stats = self.stats;
        report.workers = self.workers;
    }
}

/// Loads, replays (`repeat` times) and, for a non-sequential engine, cross-checks one block.
fn replay_dir(dir: &std::path::Path, engine: Engine, repeat: u32) -> Report {
    let (mut report, block) = loaded(dir, repeat);
    let Some(block) = block else { return report };
    let spec = mainnet_spec();
    let mut runs = Runs::default();
    let mut run = || -> Result<(), ReplayError> {
        let mut rounds = repeat;
        if engine != Engine::Sequential {
            rounds = rounds_for(repeat, Runs::warm_up(&block, &spec, engine)?);
        }
        for round in 0..rounds {
            runs.time(&block, &spec, engine, round)?;
        }
        Ok(())
    };
    report.result = run().map_err(|err| err.to_string());
    runs.report(&mut report);
    report
}

/// `--rotate`: the blocks of `dirs` by turns, `repeat` timed rounds after an untimed one. A
/// round is two passes over the blocks, one of each engine (the engine's first on even
/// rounds), so that each engine's run of a block follows the other blocks' runs, never the
/// other engine's run of the same block (which would leave it that block's data warm).
fn replay_rotating(dirs: &[PathBuf], engine: Engine, repeat: u32) -> Vec<Report> {
    // The oracle alone has nothing to compare: one pass a round.
    let paired = engine != Engine::Sequential;
    let spec = mainnet_spec();
    let mut blocks: Vec<(Report, Option<MainnetBlock>, Runs)> = dirs
        .iter()
        .map(|dir| {
            let (report, block) = loaded(dir, repeat);
            (report, block, Runs::default())
        })
        .collect();
    for (report, block, _) in &mut blocks {
        if let Some(block) = block.as_ref() {
            if let Err(err) = Runs::warm_up(block, &spec, engine) {
                report.result = Err(err.to_string());
            }
        }
    }
    // The engine's outcomes of the current round, until the oracle's pass.
    let mut pending: Vec<Option<ReplayOutcome>> = blocks.iter().map(|_| None).collect();
    for round in 0..repeat {
        let oracle_first = round % 2 == 1;
        let passes: &[Engine] = match (paired, oracle_first) {
            (false, _) => &[engine],
            (true, false) => &[engine, Engine::Sequential],
            (true, true) => &[Engine::Sequential, engine],
        };
        for &pass in passes {
            for ((report, block, runs), pending) in blocks.iter_mut().zip(&mut pending) {
                let Some(block) = block.as_ref().filter(|_| report.result.is_ok()) else {
                    continue;
                };
                let ran = replay_block(block, &spec, pass).and_then(|outcome| {
                    if !paired {
                        runs.times.push(outcome.execution_time);
                        return Ok(());
                    }
                    match pending.take() {
                        // The second pass of the round: the pair is complete.
                        Some(first) if pass == Engine::Sequential => {
                            runs.record_pair(&first, &outcome)
                        }
                        Some(first) => runs.record_pair(&outcome, &first),
                        None => {
                            *pending = Some(outcome);
                            Ok(())
                        }
                    }
                });
                if let Err(err) = ran {
                    report.result = Err(err.to_string());
                }
            }
        }
    }
    blocks
        .into_iter()
        .map(|(mut report, _, runs)| {
            runs.report(&mut report);
            report
        })
        .collect()
}

/// Each engine's runs of a block together take at least this long in a benchmarking run (see
/// [`rounds_for`]).
const SHORT_BLOCK_BUDGET: Duration = Duration::from_millis(200);

/// The most runs [`rounds_for`] gives a block, in multiples of `--repeat`.
const SHORT_BLOCK_MAX_FACTOR: u32 = 40;

/// The run time (ms, rounded) under which a block gets more than `repeat` runs.
fn short_block_ms(repeat: u32) -> String {
    format!("{:.1}", SHORT_BLOCK_BUDGET.as_secs_f64() * 1e3 / f64::from(repeat.max(1)))
}

/// The timed runs of a block one run of which takes `one_run`, for `--repeat R`: `R`, or for a
/// benchmarking run (`R` of 2 or more) of a block short enough for the timer and the machine's
/// jitter to matter, more (at most [`SHORT_BLOCK_MAX_FACTOR`] `R`) until each engine's runs
/// add up to [`SHORT_BLOCK_BUDGET`]. Both engines run the same number of times, by turns; the
/// report is still the median of single runs. Measured with the oracle on both sides
/// (`replay --threads 2 --min-parallel-txs 100000 --repeat 9`, identical code, 2026-12-05
/// 23:36-23:41 UTC, runs by turns): 9 runs a block left 4-6, then 2-3 of the 47 blocks below
/// 0.97x (as low as 0.84x); a budget of 50 ms (at most 5R) 1, 1, 1, 0 (0.92x-0.96x), each
/// run about 1.5 s longer. The present budget, with the median of pairs ([`paired_speedup`]),
/// reads 0-1 below: about 20 s for the 47 blocks, against 10 s.
pub(crate) fn rounds_for(repeat: u32, one_run: Duration) -> u32 {
    if repeat < 2 {
        return repeat;
    }
    let wanted = SHORT_BLOCK_BUDGET.as_nanos() / one_run.as_nanos().max(1);
    u32::try_from(wanted)
        .unwrap_or(u32::MAX)
        .clamp(repeat, repeat.saturating_mul(SHORT_BLOCK_MAX_FACTOR))
}

/// The block folders of a command-line path: a block folder, a folder of them, or an archive of
/// them (extracted once into `cache_dir`). None found is an error.
pub(crate) fn find_block_dirs(path: &Path, cache_dir: &Path) -> eyre::Result<Vec<PathBuf>> {
    let root = resolve_input(path, cache_dir)?;
    // An archive holds one top-level `mainnet-blocks/` folder.
    let mut found = list_block_dirs(&root);
    if found.is_empty() {
        found = list_block_dirs(&root.join("mainnet-blocks"));
    }
    if found.is_empty() {
        bail!("{}: no block folders (with a block.json) found", path.display());
    }
    Ok(found)
}

pub(crate) fn run(args: Args) -> eyre::Result<ExitCode> {
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let mut dirs = Vec::new();
    for path in &args.paths {
        dirs.extend(find_block_dirs(path, &args.cache_dir)?);
    }

    let engine = args.engine.engine();
    if !args.json {
        out!(
            "{:>10} {:>6} {:>10}  {:>10} {:>10} {:>7} {:>6} {:>7} {:>6}  result",
            "number",
            "txs",
            "gas",
            "time ms",
            "oracle ms",
            "speedup",
            "re-ex",
            "workers",
            "c2c ns"
        );
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut with_ommers = Vec::new();
    let mut speedups: Vec<f64> = Vec::new();
    // The same blocks' ratios of the two engines' median times, for comparison.
    let mut median_ratios: Vec<f64> = Vec::new();
    let (mut total_ms, mut total_oracle_ms) = (0.0f64, 0.0f64);
    // Per timed block: the cores' round trip measured right after it, and whether the block
    // read below 0.97x.
    let mut round_trips: Vec<(f64, bool)> = Vec::new();
    let mut max_runs = args.repeat;
    let reports: Box<dyn Iterator<Item = Report>> = if args.rotate {
        Box::new(replay_rotating(&dirs, engine, args.repeat).into_iter())
    } else {
        Box::new(dirs.iter().map(|dir| replay_dir(dir, engine, args.repeat)))
    };
    for report in reports {
        max_runs = max_runs.max(report.runs);
        match report.result {
            Ok(()) => passed += 1,
            Err(_) => failed += 1,
        }
        if report.unrewarded_ommers > 0 {
            with_ommers.push(format!("{} ({})", report.number, report.unrewarded_ommers));
        }
        let millis = report.time.map(|t| t.as_secs_f64() * 1e3);
        let oracle_millis = report.oracle_time.map(|t| t.as_secs_f64() * 1e3);
        let median_ratio = millis.zip(oracle_millis).map(|(p, s)| s / p);
        let speedup = report.speedup;
        if let Some(s) = speedup.filter(|s| *s > 0.0) {
            speedups.push(s);
            median_ratios.extend(median_ratio);
            total_ms += millis.unwrap_or_default();
            total_oracle_ms += oracle_millis.unwrap_or_default();
        }
        let re_executions =
            report.stats.zip(report.txs).map(|(stats, txs)| stats.re_executions(txs));
        // A benchmarking run (side by side, repeated) says how far apart the cores it met were:
        // on a virtual machine that changes from one minute to the next, and the parallel
        // engine's ratios with it (see `velarium bench`'s c2c column).
        let round_trip = speedup
            .filter(|_| args.repeat > 1)
            .and_then(|_| velarium_numa_runtime::core_round_trip_ns());
        if let Some((ns, s)) = round_trip.zip(speedup) {
            round_trips.push((ns, s < 0.97));
        }
        if args.json {
            let stats = report.stats.map(|s| {
                serde_json::json!({
                    "threads": s.threads,
                    "executions": s.executions,
                    "re_executions": re_executions,
                    "validations": s.validations,
                    "aborts": s.aborts,
                    "suspensions": s.suspensions,
                    "storage_credits": s.storage_credits,
                })
            });
            let line = serde_json::json!({
                "number": report.number.parse::<u64>().ok(),
                "txs": report.txs,
                "gas": report.gas,
                "result": report.result.as_ref().err().map_or("ok", String::as_str),
                "millis": millis,
                "oracle_millis": oracle_millis,
                "speedup": speedup,
                "speedup_of_medians": median_ratio,
                "core_round_trip_ns": round_trip,
                "workers": report.workers.map(|(lo, hi)| serde_json::json!({"min": lo, "max": hi})),
                "stats": stats,
            });
            out!("{line}");
        } else {
            let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
            out!(
                "{:>10} {:>6} {:>10}  {:>10} {:>10} {:>7} {:>6} {:>7} {:>6}  {}",
                report.number,
                opt(report.txs.map(|t| t.to_string())),
                opt(report.gas.map(|g| g.to_string())),
                opt(millis.map(|m| format!("{m:.3}"))),
                opt(oracle_millis.map(|m| format!("{m:.3}"))),
                opt(speedup.map(|s| format!("{s:.2}x"))),
                opt(re_executions.map(|r| r.to_string())),
                opt(report.workers.map(workers_label)),
                opt(round_trip.map(|ns| format!("{ns:.0}"))),
                match &report.result {
                    Ok(()) => "ok".to_string(),
                    Err(err) => format!("FAIL {err}"),
                }
            );
        }
    }
    // The limits of a partial pre-state: on stderr in JSON mode, so stdout stays JSON lines.
    let mut notes = vec![format!(
        "note: engine {engine}; checked gas used, receipts root (Byzantium+), logs bloom, blob \
         gas and requests hash; the state root is NOT checked (the pre-state is partial)"
    )];
    if !with_ommers.is_empty() {
        notes.push(format!(
            "note: ommer rewards not applied (ommer headers unknown) for block(s) {}",
            with_ommers.join(", ")
        ));
    }
    if !speedups.is_empty() {
        let (geomean, worst, below) = summary(&speedups);
        let aggregate = total_oracle_ms / total_ms.max(1e-12);
        notes.push(format!(
            "speedup vs oracle (median over each block's {} interleaved pairs of runs{}): geometric mean {geomean:.2}x, aggregate {aggregate:.2}x (oracle {total_oracle_ms:.1} ms / {total_ms:.1} ms, medians), worst {worst:.2}x, {below} of {} blocks below 0.97x",
            args.repeat,
            if max_runs > args.repeat {
                format!(", up to {max_runs} for blocks under {} ms", short_block_ms(args.repeat))
            } else {
                String::new()
            },
            speedups.len()
        ));
        let (geomean, worst, below) = summary(&median_ratios);
        notes.push(format!(
            "the same runs as the ratio of the engines' medians: geometric mean {geomean:.2}x, worst {worst:.2}x, {below} below 0.97x"
        ));
    }
    if let Some(line) = round_trip_note(&round_trips) {
        notes.push(line);
    }
    for note in notes {
        if args.json {
            note!("{note}");
        } else {
            out!("{note}");
        }
    }
    // The plain closing line CI tooling reads.
    if args.json {
        note!("replay: {passed} passed, {failed} failed");
    } else {
        out!("replay: {passed} passed, {failed} failed");
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The workers a block's timed runs used: `oracle` (the engine gave the block to the oracle),
/// one count, or the range (the engine gives a block of cheap transactions one worker while the
/// cores are far apart: `velarium_executor::workers_for`).
fn workers_label((lo, hi): (usize, usize)) -> String {
    match (lo, hi) {
        (0, 0) => "oracle".to_string(),
        (lo, hi) if lo == hi => lo.to_string(),
        (lo, hi) => format!("{lo}-{hi}"),
    }
}

/// The geometric mean, the worst and the count below 0.97x of per-block speedups.
fn summary(speedups: &[f64]) -> (f64, f64, usize) {
    let geomean =
        (speedups.iter().map(|s| s.ln()).sum::<f64>() / speedups.len().max(1) as f64).exp();
    let worst = speedups.iter().copied().fold(f64::INFINITY, f64::min);
    (geomean, worst, speedups.iter().filter(|s| **s < 0.97).count())
}

/// The summary of the cores' round trips met by a benchmarking run: their range and median,
/// and those the blocks below 0.97x met (`None` if none was measured).
fn round_trip_note(round_trips: &[(f64, bool)]) -> Option<String> {
    let mut all: Vec<f64> = round_trips.iter().map(|(ns, _)| *ns).collect();
    all.sort_by(f64::total_cmp);
    let (first, last) = (all.first()?, all.last()?);
    let median = all[all.len() / 2];
    let below: Vec<String> =
        round_trips.iter().filter(|(_, b)| *b).map(|(ns, _)| format!("{ns:.0}")).collect();
    let below = if below.is_empty() {
        String::new()
    } else {
        format!("; after the blocks below 0.97x: {} ns", below.join(", "))
    };
    Some(format!(
        "core-to-core round trip after each block: {first:.0}-{last:.0} ns, median \
         {median:.0}{below} ({})",
        velarium_numa_runtime::ROUND_TRIP_MEANING
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_blocks_get_more_runs_in_a_benchmarking_run_only() {
        let ms = |m: f64| Duration::from_secs_f64(m / 1e3);
        // One run is not a benchmark: exactly as asked.
        assert_eq!(rounds_for(1, ms(0.001)), 1);
        // Long blocks: as asked.
        assert_eq!(rounds_for(9, ms(40.0)), 9);
        assert_eq!(rounds_for(9, ms(22.3)), 9);
        // Short ones: up to the budget, at most forty times as many.
        assert_eq!(rounds_for(9, ms(10.0)), 20);
        assert_eq!(rounds_for(9, ms(2.5)), 80);
        assert_eq!(rounds_for(9, ms(0.001)), 360);
        assert_eq!(rounds_for(2, Duration::ZERO), 80);
        assert_eq!(short_block_ms(9), "22.2");
    }

    #[test]
    fn the_speedup_is_the_median_of_the_pairs_ratios() {
        let ms = |m: u64| Duration::from_millis(m);
        // The machine slowed down tenfold for the second pair and the engine's third run met a
        // hiccup of its own: each pair still says 2x but the third, and so does their median,
        // where the engines' medians (12 ms and 30 ms) would say 0.4x.
        let oracle = [ms(10), ms(100), ms(12)];
        let engine = [ms(5), ms(50), ms(30)];
        assert_eq!(paired_speedup(&oracle, &engine), Some(2.0));
        let (o, e) = (median(&mut oracle.clone()).unwrap(), median(&mut engine.clone()).unwrap());
        assert!((o.as_secs_f64() / e.as_secs_f64() - 0.4).abs() < 1e-9);
        // An even count takes the upper median; no pairs, no speedup.
        assert_eq!(paired_speedup(&[ms(4), ms(8)], &[ms(4), ms(2)]), Some(4.0));
        assert_eq!(paired_speedup(&[], &[]), None);
    }
}
