//! `velarium import`: execute and verify a chain export on top of its genesis.

use crate::EngineArgs;
use eyre::{bail, WrapErr};
use std::{path::PathBuf, process::ExitCode, time::Instant};
use velarium_chain::{
    genesis::load_genesis_file,
    rlp::{decode_blocks, read_chain_file},
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
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Chain files: concatenated RLP blocks, optionally gzipped.
    #[arg(required = true)]
    chains: Vec<PathBuf>,
}

pub(crate) fn run(args: Args) -> eyre::Result<ExitCode> {
    let genesis = load_genesis_file(&args.genesis)?;
    let genesis_hash = genesis.header.hash_slow();
    let mut chain =
        Blockchain::new(genesis.spec, genesis.header, genesis.state, args.engine.engine());
    chain.set_prune(true);
    if !args.json {
        eprintln!("genesis {genesis_hash}, engine {:?}", args.engine.engine());
    }

    let started = Instant::now();
    let mut exec_time = std::time::Duration::ZERO;
    let (mut blocks, mut txs, mut gas) = (0u64, 0u64, 0u64);
    for path in &args.chains {
        let bytes = read_chain_file(path)?;
        let decoded = decode_blocks(&bytes, &path.display().to_string())?;
        for block in &decoded {
            let number = block.header.number;
            let t = Instant::now();
            let imported = chain
                .import_block(block)
                .wrap_err_with(|| format!("block {number} ({})", block.header.hash_slow()))?;
            exec_time += t.elapsed();
            if !imported.is_head {
                bail!(
                    "block {number} ({}) did not become the head: the chain forks",
                    imported.hash
                );
            }
            blocks += 1;
            txs += imported.tx_count as u64;
            gas += block.header.gas_used;
            if !args.json && args.progress > 0 && blocks % args.progress == 0 {
                eprintln!(
                    "imported block {number} {} txs={txs} gas={gas} elapsed={:.2}s",
                    imported.hash,
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    let head = chain.head();
    let secs = exec_time.as_secs_f64();
    let mgas_per_s = if secs > 0.0 { gas as f64 / 1e6 / secs } else { 0.0 };
    if args.json {
        let summary = serde_json::json!({
            "blocks": blocks,
            "transactions": txs,
            "gas": gas,
            "seconds": secs,
            "mgas_per_s": mgas_per_s,
            "head_number": head.number,
            "head_hash": chain.head_hash().to_string(),
            "state_root": head.state_root.to_string(),
        });
        println!("{summary}");
    } else {
        println!(
            "imported {blocks} blocks, {txs} transactions, {gas} gas in {secs:.3}s ({mgas_per_s:.1} Mgas/s)"
        );
        println!("head #{} {}", head.number, chain.head_hash());
        println!("state root {} (verified against every header)", head.state_root);
    }
    Ok(ExitCode::SUCCESS)
}
