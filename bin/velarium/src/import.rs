//! `velarium import`: execute and verify a chain export on top of its genesis, in memory or
//! into a persistent datadir (resumable, crash-safe).

use crate::{render_error, EngineArgs};
use alloy_primitives::U256;
use eyre::{bail, WrapErr};
use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};
use velarium_chain::{
    genesis::{builtin, load_genesis_file, LoadedGenesis, BUILTIN_CHAINS},
    persistent::{ImportedBlock, Outcome, PersistentChain},
    rlp::{blocks, read_chain_file},
    Blockchain,
};
use velarium_executor::Engine;

/// Where the chain starts: a genesis file or a built-in network (exactly one of them).
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct GenesisArgs {
    /// geth-format genesis file.
    #[arg(long)]
    pub(crate) genesis: Option<PathBuf>,
    /// A built-in network's genesis and fork schedule, instead of `--genesis`.
    #[arg(long, value_parser = chain_names())]
    pub(crate) chain: Option<String>,
}

/// Arguments of `velarium import`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    source: GenesisArgs,
    /// Keep the chain in this directory (state, headers, receipts, head): each verified block
    /// is committed atomically, a re-run resumes at the stored head and skips the blocks it
    /// already holds. Without it the import runs in memory.
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// With `--datadir`: make commits durable (fsync) at most this many milliseconds apart
    /// (0, the default: every block is on disk before the next starts). Commits are atomic
    /// either way; a larger interval saves the fsyncs and a crash then loses at most that much
    /// of the latest work.
    #[arg(long, default_value_t = 0)]
    sync_interval_ms: u64,
    /// Print a progress line every N blocks.
    #[arg(long, default_value_t = 100)]
    progress: u64,
    /// Print the summary as one JSON object on stdout (on failure too: with the error, the
    /// failing block and the blocks verified before it).
    #[arg(long)]
    json: bool,
    /// Chain files: concatenated RLP blocks, optionally gzipped.
    #[arg(required = true)]
    chains: Vec<PathBuf>,
}

/// What an import got through, successful or not.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub(crate) blocks: u64,
    txs: u64,
    gas: u64,
    exec_time: std::time::Duration,
    /// The block being imported when the import failed.
    failed_block: Option<u64>,
    /// With `--datadir`: blocks the store already held.
    pub(crate) skipped: u64,
    /// With `--datadir`: time executing, computing state roots and writing the store.
    execution: Duration,
    state_root: Duration,
    commit: Duration,
}

/// The head an import reached.
pub(crate) struct Head {
    pub(crate) number: u64,
    pub(crate) hash: alloy_primitives::B256,
    pub(crate) state_root: alloy_primitives::B256,
}

pub(crate) fn run(args: Args) -> eyre::Result<ExitCode> {
    let mut progress = Progress::default();
    let result = if let Some(datadir) = &args.datadir {
        let job = PersistentJob {
            datadir,
            genesis: args.source.genesis.as_deref(),
            chain: args.source.chain.as_deref(),
            engine: args.engine.engine(),
            sync_interval: Duration::from_millis(args.sync_interval_ms),
            chains: &args.chains,
            quiet: args.json,
            progress_every: args.progress,
            analysis_every: 0,
        };
        import_persistent(&job, &mut progress, &mut |_, _| {})
    } else {
        import(&args, &mut progress).map(|chain| Head {
            number: chain.head().number,
            hash: chain.head_hash(),
            state_root: chain.head().state_root,
        })
    };
    let secs = progress.exec_time.as_secs_f64();
    let mgas_per_s = if secs > 0.0 { progress.gas as f64 / 1e6 / secs } else { 0.0 };
    match result {
        Ok(head) => {
            if args.json {
                let summary = serde_json::json!({
                    "ok": true,
                    "blocks": progress.blocks,
                    "transactions": progress.txs,
                    "gas": progress.gas,
                    "seconds": secs,
                    "mgas_per_s": mgas_per_s,
                    "head_number": head.number,
                    "head_hash": head.hash.to_string(),
                    "state_root": head.state_root.to_string(),
                    "skipped": progress.skipped,
                    "execution_seconds": progress.execution.as_secs_f64(),
                    "state_root_seconds": progress.state_root.as_secs_f64(),
                    "commit_seconds": progress.commit.as_secs_f64(),
                });
                out!("{summary}");
            } else {
                out!(
                    "imported {} blocks, {} transactions, {} gas in {secs:.3}s ({mgas_per_s:.1} Mgas/s)",
                    progress.blocks,
                    progress.txs,
                    progress.gas
                );
                if args.datadir.is_some() {
                    out!(
                        "skipped {} blocks already stored; time in execution {:.3}s, state root {:.3}s, store {:.3}s",
                        progress.skipped,
                        progress.execution.as_secs_f64(),
                        progress.state_root.as_secs_f64(),
                        progress.commit.as_secs_f64()
                    );
                }
                out!("head #{} {}", head.number, head.hash);
                out!("state root {} (verified against every header)", head.state_root);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) if args.json => {
            let summary = serde_json::json!({
                "ok": false,
                "error": render_error(&err),
                "failed_block": progress.failed_block,
                "blocks_verified": progress.blocks,
                "transactions": progress.txs,
                "gas": progress.gas,
            });
            out!("{summary}");
            Ok(ExitCode::FAILURE)
        }
        Err(err) if progress.blocks > 0 => {
            Err(err.wrap_err(format!("after {} verified blocks", progress.blocks)))
        }
        Err(err) => Err(err),
    }
}

/// Imports every block of every chain file, counting into `progress` as it goes.
fn import(args: &Args, progress: &mut Progress) -> eyre::Result<Blockchain> {
    let genesis = load_genesis(args.source.genesis.as_deref(), args.source.chain.as_deref())?;
    let genesis_hash = genesis.header.hash_slow();
    let engine = args.engine.engine();
    let mut chain = Blockchain::new(genesis.spec, genesis.header, genesis.state, engine);
    chain.set_prune(true);
    if !args.json {
        tracing::info!(genesis = %genesis_hash, %engine, "importing");
    }
    let started = Instant::now();
    for path in &args.chains {
        let name = path.display().to_string();
        let mut bytes = Vec::new();
        let source = chain_source(path, &name, &mut bytes)?;
        let mut in_file = 0usize;
        for block in source {
            // A block that does not decode is presumably the one after the last imported.
            progress.failed_block = Some(chain.head().number + 1);
            let (block, era_td, _) = block?;
            // An era1 archive of epoch 0 starts with the genesis block, which the chain has.
            if era_td.is_some() && chain.header(&block.header.hash_slow()).is_some() {
                continue;
            }
            in_file += 1;
            let number = block.header.number;
            progress.failed_block = Some(number);
            let t = Instant::now();
            let imported = chain
                .import_block(&block)
                .wrap_err_with(|| format!("block {number} ({})", block.header.hash_slow()))?;
            progress.exec_time += t.elapsed();
            if !imported.is_head {
                bail!(
                    "block {number} ({}) did not become the head: the chain forks",
                    imported.hash
                );
            }
            progress.failed_block = None;
            progress.blocks += 1;
            progress.txs += imported.tx_count as u64;
            progress.gas += block.header.gas_used;
            if !args.json && args.progress > 0 && progress.blocks.is_multiple_of(args.progress) {
                note_progress(number, imported.hash, progress, started);
            }
        }
        if in_file == 0 {
            bail!("{name}: no blocks in the file");
        }
    }
    Ok(chain)
}

/// The values `--chain` takes: the built-in networks.
pub(crate) fn chain_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(BUILTIN_CHAINS.iter().copied())
}

/// The genesis of `--genesis FILE` or of `--chain NAME` (clap lets exactly one through).
pub(crate) fn load_genesis(
    genesis: Option<&Path>,
    chain: Option<&str>,
) -> eyre::Result<LoadedGenesis> {
    Ok(match (genesis, chain) {
        (Some(path), None) => load_genesis_file(path)?,
        (None, Some(name)) => builtin(name)?,
        _ => bail!("give exactly one of --genesis FILE and --chain NAME"),
    })
}

/// An import into a datadir (`velarium import --datadir`, `velarium node`).
pub(crate) struct PersistentJob<'a> {
    pub(crate) datadir: &'a Path,
    /// `--genesis FILE`, or else
    pub(crate) genesis: Option<&'a Path>,
    /// `--chain NAME` (exactly one of the two).
    pub(crate) chain: Option<&'a str>,
    pub(crate) engine: Engine,
    pub(crate) sync_interval: Duration,
    pub(crate) chains: &'a [PathBuf],
    /// No progress output (JSON mode).
    pub(crate) quiet: bool,
    /// A progress line every this many blocks when not on a terminal (0: none).
    pub(crate) progress_every: u64,
    /// Analyse every this many blocks (see `PersistentChain::set_analysis_every`; 0: none).
    pub(crate) analysis_every: u64,
}

/// Imports every block of every chain file into the datadir's persistent chain, calling
/// `on_block` after each block committed.
pub(crate) fn import_persistent(
    job: &PersistentJob<'_>,
    progress: &mut Progress,
    on_block: &mut dyn FnMut(u64, &ImportedBlock),
) -> eyre::Result<Head> {
    let datadir = job.datadir;
    let genesis = load_genesis(job.genesis, job.chain)?;
    let engine = job.engine;
    let mut chain =
        PersistentChain::open(datadir, genesis.spec, &genesis.header, genesis.state, engine)
            .wrap_err_with(|| format!("opening {}", datadir.display()))?;
    chain.set_sync_interval(job.sync_interval);
    chain.set_analysis_every(job.analysis_every);
    if !job.quiet {
        let head = chain.head();
        tracing::info!(
            datadir = %datadir.display(),
            head = head.header.number,
            hash = %head.hash,
            %engine,
            "opened the datadir"
        );
    }
    let bar = ProgressLine::new(!job.quiet && std::io::stderr().is_terminal());
    let started = Instant::now();
    let result = (|| -> eyre::Result<()> {
        // The files' sizes weigh the share of the import done, for the progress line's estimate.
        let weights: Vec<f64> = job
            .chains
            .iter()
            .map(|p| std::fs::metadata(p).map_or(1.0, |m| m.len().max(1) as f64))
            .collect();
        let total_weight: f64 = weights.iter().sum();
        let mut done_weight = 0.0;
        for (path, weight) in job.chains.iter().zip(weights) {
            let name = path.display().to_string();
            let mut bytes = Vec::new();
            let source = chain_source(path, &name, &mut bytes)?;
            let mut in_file = 0usize;
            for block in source {
                progress.failed_block = Some(chain.head().header.number + 1);
                let (block, era_td, read) = block?;
                let done = (done_weight + weight * read) / total_weight;
                in_file += 1;
                let number = block.header.number;
                progress.failed_block = Some(number);
                let t = Instant::now();
                let outcome = chain
                    .import_block(&block)
                    .wrap_err_with(|| format!("block {number} ({})", block.header.hash_slow()))?;
                progress.exec_time += t.elapsed();
                progress.failed_block = None;
                let Outcome::Imported(imported) = outcome else {
                    progress.skipped += 1;
                    continue;
                };
                if let Some(td) = era_td {
                    let ours = chain.head().total_difficulty;
                    if ours != td {
                        bail!("{name}: block {number}'s total difficulty is {td} in the archive, {ours} in the chain (it was imported: the chain is right, the archive is not)");
                    }
                }
                progress.blocks += 1;
                progress.txs += imported.tx_count as u64;
                progress.gas += imported.gas_used;
                progress.execution += imported.execution;
                progress.state_root += imported.state_root;
                progress.commit += imported.commit;
                on_block(number, &imported);
                bar.update(number, progress, started, done);
                if !bar.enabled
                    && !job.quiet
                    && job.progress_every > 0
                    && progress.blocks.is_multiple_of(job.progress_every)
                {
                    note_progress(number, imported.hash, progress, started);
                }
            }
            if in_file == 0 {
                bail!("{name}: no blocks in the file");
            }
            done_weight += weight;
        }
        Ok(())
    })();
    bar.finish();
    // Whatever happened, what was committed becomes durable (a failed block never was).
    let synced = chain.sync();
    result?;
    synced.wrap_err("making the last commits durable")?;
    let head = chain.head();
    Ok(Head { number: head.header.number, hash: head.hash, state_root: head.header.state_root })
}

/// A one-line progress display on a terminal (blocks/s, Mgas/s), redrawn at most 10 times a
/// second; disabled otherwise (plain progress lines then).
struct ProgressLine {
    enabled: bool,
    last: std::cell::Cell<Instant>,
}

impl ProgressLine {
    fn new(enabled: bool) -> Self {
        Self { enabled, last: std::cell::Cell::new(Instant::now()) }
    }

    /// Redraws the line; `done` is the share of the whole import done (for the estimate of the
    /// time left).
    fn update(&self, number: u64, progress: &Progress, started: Instant, done: f64) {
        if !self.enabled || self.last.get().elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last.set(Instant::now());
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let eta = if done > 0.0 && done < 1.0 { secs * (1.0 - done) / done } else { 0.0 };
        note_inline(&format!(
            "block {number}  {} blocks  {:.1} blocks/s  {:.1} Mgas/s  {:.0}%  {:.1}s, about {:.0}s left",
            progress.blocks,
            progress.blocks as f64 / secs,
            progress.gas as f64 / 1e6 / secs,
            done * 100.0,
            secs,
            eta
        ));
    }

    fn finish(&self) {
        if self.enabled {
            note_inline("");
        }
    }
}

/// A plain progress line (when standard error is not a terminal).
fn note_progress(number: u64, hash: alloy_primitives::B256, progress: &Progress, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        number,
        %hash,
        blocks = progress.blocks,
        txs = progress.txs,
        gas = progress.gas,
        blocks_per_s = format_args!("{:.1}", progress.blocks as f64 / secs.max(1e-9)),
        mgas_per_s = format_args!("{:.1}", progress.gas as f64 / 1e6 / secs.max(1e-9)),
        elapsed_s = format_args!("{secs:.2}"),
        "imported block"
    );
}

/// Redraws the current standard-error line.
fn note_inline(text: &str) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{text}");
    let _ = err.flush();
}

/// Blocks of a chain file, each with its total difficulty where the file records one and the
/// share of the file read once it is (for the progress line's estimate).
type BlockSource<'a> =
    Box<dyn Iterator<Item = eyre::Result<(velarium_chain::EthBlock, Option<U256>, f64)>> + 'a>;

/// The blocks of a chain file: an era1 archive (by its extension) or RLP blocks, read into
/// `bytes`.
fn chain_source<'a>(
    path: &Path,
    name: &'a str,
    bytes: &'a mut Vec<u8>,
) -> eyre::Result<BlockSource<'a>> {
    if crate::era::is_era1(path) {
        return era_source(path);
    }
    *bytes = read_chain_file(path)?;
    Ok(rlp_source(bytes, name))
}

/// The blocks of an RLP chain file (decoded one by one: a damaged block ends the file there).
fn rlp_source<'a>(bytes: &'a [u8], name: &'a str) -> BlockSource<'a> {
    let total = bytes.len().max(1) as f64;
    let mut read = 0usize;
    Box::new(blocks(bytes, name).map(move |b| {
        let b = b.map_err(eyre::Report::from)?;
        read += alloy_rlp::Encodable::length(&b);
        Ok((b, None, read as f64 / total))
    }))
}

/// The blocks of an era1 archive, checked whole first (see `era.rs`).
fn era_source(path: &Path) -> eyre::Result<BlockSource<'static>> {
    let blocks = crate::era::read_era1(path)?;
    let total = blocks.len().max(1) as f64;
    Ok(Box::new(
        blocks
            .into_iter()
            .enumerate()
            .map(move |(i, (b, td))| Ok((b, Some(td), (i + 1) as f64 / total))),
    ))
}
