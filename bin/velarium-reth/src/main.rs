//! `velarium-reth`: reth v2.5.1's Ethereum node with Velarium's parallel Block-STM executor.
//!
//! The binary is reth's Ethereum command line ([`reth_ethereum_cli::Cli`]) run with custom
//! components: every subcommand that executes blocks (`node`, `import`, `re-execute`,
//! `stage run`) gets a [`VelariumEvmConfig`], whose block executor factory is
//! [`velarium_reth_glue::ParallelBlockExecutorFactory`]. Everything else is reth's.
//!
//! Extra flags of `node` (environment variables for the other subcommands):
//! `--velarium.threads N` (`VELARIUM_THREADS`), `--velarium.min-parallel-txs N` (`VELARIUM_MIN_PARALLEL_TXS`),
//! `--velarium.verify` (`VELARIUM_VERIFY`), which installs the `velarium-verify` ExEx, and
//! `--velarium.pin-workers` (`VELARIUM_PIN_WORKERS`).

mod args;
mod builder;
mod evm;
mod metrics;
mod node;
mod verify;

use crate::{args::VelariumArgs, evm::VelariumEvmConfig, node::VelariumNode};
use clap::Parser;
use reth_chainspec::ChainSpec;
use reth_ethereum_cli::{chainspec::EthereumChainSpecParser, Cli, Commands};
use reth_node_ethereum::consensus::EthBeaconConsensus;
use reth_tracing::tracing::info;
use std::sync::{Arc, OnceLock};
use velarium_reth_glue::ExecutionMetrics;

fn main() {
    if let Err(err) = run() {
        eprintln!("Error: {err:?}");
        std::process::exit(1);
    }
}

/// Parses the command line and runs the selected subcommand.
fn run() -> eyre::Result<()> {
    let cli = Cli::<EthereumChainSpecParser, VelariumArgs>::parse();

    // `node` carries the Velarium flags; the other subcommands read the environment.
    let args = match &cli.command {
        Commands::Node(command) => command.ext.clone(),
        _ => VelariumArgs::from_env()?,
    };
    let parallel_config = args.parallel_config();

    // The EVM and consensus of the subcommands that execute blocks without launching a node
    // (`import`, `re-execute`, `stage`). Their executor's counters are kept for a summary.
    let offline_metrics = Arc::new(OnceLock::<Arc<ExecutionMetrics>>::new());
    let components = {
        let offline_metrics = Arc::clone(&offline_metrics);
        move |spec: Arc<ChainSpec>| {
            let evm_config = VelariumEvmConfig::ethereum(Arc::clone(&spec), parallel_config);
            let _ = offline_metrics.set(Arc::clone(evm_config.execution_metrics()));
            (evm_config, Arc::new(EthBeaconConsensus::new(spec)))
        }
    };

    let result = cli.run_with_components::<VelariumNode>(
        components,
        async move |builder, args: VelariumArgs| {
            info!(target: "velarium", verify = args.verify, "Launching velarium-reth node");
            if args.pin_workers {
                velarium_reth_glue::pin_workers();
            }
            let handle = builder
                .node(
                    VelariumNode::new(args.parallel_config())
                        .with_builder_lookahead(args.builder_lookahead()),
                )
                .install_exex_if(args.verify, verify::EXEX_ID, async move |ctx| {
                    Ok(verify::velarium_verify(ctx))
                })
                .launch_with_debug_capabilities()
                .await?;

            handle.wait_for_node_exit().await
        },
    );

    if let Some(metrics) = offline_metrics.get() {
        // Tracing may already be torn down here: print directly.
        eprintln!(
            "velarium: threads={} min_txs={} block_stm={} {:?}",
            parallel_config.threads,
            parallel_config.min_txs,
            parallel_config.block_stm,
            metrics.snapshot()
        );
    }
    result
}
