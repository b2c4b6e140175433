//! `velarium import`: execute and verify a chain export on top of its genesis.

use crate::{render_error, EngineArgs};
use eyre::{bail, WrapErr};
use std::{path::PathBuf, process::ExitCode, time::Instant};
use velarium_chain::{
    genesis::load_genesis_file,
    rlp::{blocks, read_chain_file},
    Blockchain,
};

/// Arguments of `velarium import`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    /// geth-format genesis file.
    #[arg(long)]
    genesis: PathBuf,
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
struct Progress {
    blocks: u64,
    txs: u64,
    gas: u64,
    exec_time: std::time::Duration,
    /// The block being imported when the import failed.
    failed_block: Option<u64>,
}

pub(crate) fn run(args: Args) -> eyre::Result<ExitCode> {
    let mut progress = Progress::default();
    let result = import(&args, &mut progress);
    let secs = progress.exec_time.as_secs_f64();
    let mgas_per_s = if secs > 0.0 { progress.gas as f64 / 1e6 / secs } else { 0.0 };
    match result {
        Ok(chain) => {
            let head = chain.head();
            if args.json {
                let summary = serde_json::json!({
                    "ok": true,
                    "blocks": progress.blocks,
                    "transactions": progress.txs,
                    "gas": progress.gas,
                    "seconds": secs,
                    "mgas_per_s": mgas_per_s,
                    "head_number": head.number,
                    "head_hash": chain.head_hash().to_string(),
                    "state_root": head.state_root.to_string(),
                });
                out!("{summary}");
            } else {
                out!(
                    "imported {} blocks, {} transactions, {} gas in {secs:.3}s ({mgas_per_s:.1} Mgas/s)",
                    progress.blocks,
                    progress.txs,
                    progress.gas
                );
                out!("head #{} {}", head.number, chain.head_hash());
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
    let genesis = load_genesis_file(&args.genesis)?;
    let genesis_hash = genesis.header.hash_slow();
    let engine = args.engine.engine();
    let mut chain = Blockchain::new(genesis.spec, genesis.header, genesis.state, engine);
    chain.set_prune(true);
    if !args.json {
        note!("genesis {genesis_hash}, engine {engine}");
    }
    let started = Instant::now();
    for path in &args.chains {
        let bytes = read_chain_file(path)?;
        let name = path.display().to_string();
        let mut in_file = 0usize;
        for block in blocks(&bytes, &name) {
            // A block that does not decode is presumably the one after the last imported.
            progress.failed_block = Some(chain.head().number + 1);
            let block = block?;
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
                note!(
                    "imported block {number} {} txs={} gas={} elapsed={:.2}s",
                    imported.hash,
                    progress.txs,
                    progress.gas,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        if in_file == 0 {
            bail!("{name}: no blocks in the file");
        }
    }
    Ok(chain)
}
