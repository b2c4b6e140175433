//! Command-line arguments of the Velarium engine.
//!
//! The same flags are accepted by `velarium-reth node` (they are flattened into reth's
//! `NodeCommand` through its extension-arguments slot) and, through their environment variables,
//! by every other subcommand that executes blocks (`import`, `re-execute`, `stage run`), whose
//! argument sets reth does not let a binary extend.

use clap::{Args, Parser, ValueEnum};
use velarium_reth_glue::ParallelConfig;

/// Where the executors run Block-STM (`--velarium.block-stm`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum BlockStmMode {
    /// On machines with at least `velarium_reth_glue::MIN_CORES_FOR_BLOCK_STM` (3) cores:
    /// behind reth's `State` Block-STM measured slower than reth's executor on two.
    #[default]
    Auto,
    /// Always (also `true`, `1`).
    #[value(alias = "true", alias = "1")]
    On,
    /// Never: every block runs through reth's (alloy-evm's) executor (also `false`, `0`).
    #[value(alias = "false", alias = "0")]
    Off,
}

/// Settings of Velarium's parallel block executor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
#[command(next_help_heading = "Velarium")]
pub struct VelariumArgs {
    /// Worker threads of the parallel executor [default: the machine's cores, at most 4].
    #[arg(long = "velarium.threads", env = "VELARIUM_THREADS", value_name = "N")]
    pub threads: Option<usize>,

    /// Blocks with fewer transactions than this run sequentially [default: 24]; 0 sends every
    /// block through Block-STM.
    /// (The same name as `velarium --min-parallel-txs`; `--velarium.min-txs` is its old,
    /// hidden alias.)
    #[arg(
        long = "velarium.min-parallel-txs",
        alias = "velarium.min-txs",
        env = "VELARIUM_MIN_PARALLEL_TXS",
        value_name = "N"
    )]
    pub min_txs: Option<usize>,

    /// Where blocks run through Block-STM: `auto` on machines with at least 3 cores, `on`
    /// always, `off` never [default: auto]. (Behind reth's `State`, where only reth's thread
    /// may read the state and commits every transaction, Block-STM measured slower than reth's
    /// executor on two cores.)
    #[arg(long = "velarium.block-stm", env = "VELARIUM_BLOCK_STM", value_name = "MODE")]
    pub block_stm: Option<BlockStmMode>,

    /// Install the `velarium-verify` ExEx: re-execute every committed block with the parallel
    /// executor and compare receipts, gas and state changes with what the node committed.
    #[arg(long = "velarium.verify", env = "VELARIUM_VERIFY")]
    pub verify: bool,

    /// Pin the parallel executor's workers to cores: each helper to its own, the calling
    /// thread to the first for each block.
    #[arg(long = "velarium.pin-workers", env = "VELARIUM_PIN_WORKERS")]
    pub pin_workers: bool,

    /// Transactions the payload builder's executor sees ahead of the builder and runs through
    /// Block-STM [default: 128]; 0 builds as reth does.
    #[arg(
        long = "velarium.builder-lookahead",
        env = "VELARIUM_BUILDER_LOOKAHEAD",
        value_name = "N"
    )]
    pub builder_lookahead: Option<usize>,
}

impl VelariumArgs {
    /// Reads the settings from the `VELARIUM_*` environment variables alone.
    ///
    /// Used for the subcommands other than `node`, which have no room for extra flags.
    pub fn from_env() -> eyre::Result<Self> {
        /// A parser whose only arguments are the Velarium ones.
        #[derive(Debug, Parser)]
        struct EnvOnly {
            #[command(flatten)]
            args: VelariumArgs,
        }

        Ok(EnvOnly::try_parse_from(["velarium-reth"])?.args)
    }

    /// The payload builder's lookahead these arguments select (0 where Block-STM is off).
    pub fn builder_lookahead(&self) -> usize {
        if !self.parallel_config().block_stm {
            return 0;
        }
        self.builder_lookahead.unwrap_or(velarium_reth_glue::DEFAULT_LOOKAHEAD)
    }

    /// The executor configuration these arguments select.
    pub fn parallel_config(&self) -> ParallelConfig {
        let mut config = ParallelConfig::default();
        if let Some(threads) = self.threads {
            config.threads = threads.max(1);
        }
        if let Some(min_txs) = self.min_txs {
            config.min_txs = min_txs;
        }
        match self.block_stm.unwrap_or_default() {
            BlockStmMode::Auto => {}
            BlockStmMode::On => config.block_stm = true,
            BlockStmMode::Off => config.block_stm = false,
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: VelariumArgs,
    }

    #[test]
    fn parses_flags() {
        let args = Wrapper::try_parse_from([
            "velarium-reth",
            "--velarium.threads",
            "8",
            "--velarium.min-parallel-txs",
            "0",
            "--velarium.verify",
            "--velarium.pin-workers",
            "--velarium.builder-lookahead",
            "0",
            "--velarium.block-stm",
            "on",
        ])
        .unwrap()
        .args;
        assert_eq!(
            args,
            VelariumArgs {
                threads: Some(8),
                min_txs: Some(0),
                verify: true,
                pin_workers: true,
                builder_lookahead: Some(0),
                block_stm: Some(BlockStmMode::On),
            }
        );
        let config = args.parallel_config();
        assert_eq!((config.threads, config.min_txs, config.block_stm), (8, 0, true));
        assert_eq!(args.builder_lookahead(), 0, "0 turns the builder's lookahead off");
    }

    #[test]
    fn old_flag_name_still_parses() {
        let args =
            Wrapper::try_parse_from(["velarium-reth", "--velarium.min-txs", "3"]).unwrap().args;
        assert_eq!(args.min_txs, Some(3));
    }

    #[test]
    fn defaults_follow_parallel_config() {
        let args = Wrapper::try_parse_from(["velarium-reth"]).unwrap().args;
        let (ours, default) = (args.parallel_config(), ParallelConfig::default());
        assert_eq!(ours, default);
        let lookahead = if default.block_stm { velarium_reth_glue::DEFAULT_LOOKAHEAD } else { 0 };
        assert_eq!(args.builder_lookahead(), lookahead);
        let auto = Wrapper::try_parse_from(["velarium-reth", "--velarium.block-stm", "auto"]);
        assert_eq!(auto.unwrap().args.parallel_config(), default);
    }

    #[test]
    fn block_stm_off_turns_every_path_off() {
        let args = Wrapper::try_parse_from([
            "velarium-reth",
            "--velarium.block-stm",
            "off",
            "--velarium.builder-lookahead",
            "64",
        ])
        .unwrap()
        .args;
        assert!(!args.parallel_config().block_stm);
        assert_eq!(args.builder_lookahead(), 0, "no lookahead feeds a builder that cannot use it");
        assert!(Wrapper::try_parse_from(["velarium-reth", "--velarium.block-stm", "2"]).is_err());
        for (word, mode) in [
            ("true", BlockStmMode::On),
            ("1", BlockStmMode::On),
            ("false", BlockStmMode::Off),
            ("0", BlockStmMode::Off),
        ] {
            let args = Wrapper::try_parse_from(["velarium-reth", "--velarium.block-stm", word]);
            assert_eq!(args.unwrap().args.block_stm, Some(mode), "{word}");
        }
    }
}
