//! `velarium growth`: does a block cost what it changes, or what the state holds?
//!
//! `growth generate` writes a geth-format genesis and a chain in which every block creates the
//! same number of new accounts (ether transfers to fresh addresses) and new storage slots (calls
//! to a contract that stores the caller in the slot its calldata names), so the state grows
//! linearly while the work per block stays the same. Every header is valid: the generator
//! executes each block on the oracle over an [`InMemoryState`] and fills in gas used, receipts
//! root, logs bloom and state root, so `velarium import` verifies every block.
//!
//! `growth import` imports such a chain into a fresh datadir with [`PersistentChain`] and
//! reports, window by window, blocks/s, Mgas/s and how each block's time splits between
//! execution, state root and store writes, then how the last window's per-block costs compare
//! with the first's. Roughly flat costs while the state grows tenfold are the claim it checks.

use crate::EngineArgs;
use alloy_consensus::{
    constants::EMPTY_WITHDRAWALS,
    proofs::{calculate_receipt_root, calculate_transaction_root},
    BlockBody, Header, TxEip1559, TxEnvelope, TxReceipt, EMPTY_OMMER_ROOT_HASH,
};
use alloy_eips::{eip1559::BaseFeeParams, eip4895::Withdrawals};
use alloy_primitives::{address, keccak256, Address, Bloom, Bytes, TxKind, B256, U256};
use eyre::{bail, ensure, WrapErr};
use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::mpsc,
    time::{Duration, Instant},
};
use velarium_chain::{
    genesis::load_genesis_file,
    persistent::{Outcome, PersistentChain},
    rlp::{blocks, read_chain_file},
    EthBlock,
};
use velarium_executor::{execute_sequential, BlockInput, RecoveredTx};
use velarium_state::InMemoryState;
use velarium_workloads::Wallet;

/// Chain id of generated chains.
const CHAIN_ID: u64 = 4_242;
/// Genesis timestamp; blocks follow every [`BLOCK_TIME`] seconds.
const GENESIS_TIMESTAMP: u64 = 1_700_000_000;
/// Seconds between blocks.
const BLOCK_TIME: u64 = 12;
/// The fee recipient of every block.
const BENEFICIARY: Address = address!("0xc0ffee00000000000000000000000000000c0ffe");
/// The slot-writing contract (in the genesis allocation).
const SLOT_WRITER: Address = address!("0x5107000000000000000000000000000000005107");
/// `slot[calldata[0..32]] = CALLER`: `CALLER PUSH1 0 CALLDATALOAD SSTORE STOP`. A call with a
/// new key creates one slot and touches nothing another call touches.
const SLOT_WRITER_CODE: [u8; 6] = [0x33, 0x60, 0x00, 0x35, 0x55, 0x00];
/// Gas limit of a transfer (exactly what it uses).
const TRANSFER_GAS: u64 = 21_000;
/// Gas limit of a slot write (about 43.3k used: 21k, calldata, a cold SSTORE of a new slot).
const SLOT_GAS: u64 = 60_000;
/// Fee cap of every transaction; the base fee starts at 1 gwei and never rises (see
/// [`block_gas_limit`]).
const MAX_FEE_PER_GAS: u128 = 10_000_000_000;
/// Tip of every transaction.
const MAX_PRIORITY_FEE_PER_GAS: u128 = 1_000_000_000;
/// Value of each transfer (1 gwei).
const TRANSFER_VALUE: u64 = 1_000_000_000;
/// Balance of each sender: 10^24 wei, a million ether, enough for billions of blocks.
const SENDER_BALANCE: U256 = U256::from_limbs([0x1bce_cced_a100_0000, 0xd3c2, 0, 0]);
/// Most transfers or slot writes per block.
const MAX_PER_BLOCK: u64 = 1_000_000;

/// Arguments of `velarium growth`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: GrowthCommand,
}

#[derive(Debug, clap::Subcommand)]
enum GrowthCommand {
    /// Write DIR/genesis.json and DIR/chain.rlp: blocks that each create a fixed number of new
    /// accounts and storage slots.
    Generate(GenerateArgs),
    /// Import a chain into a fresh datadir, reporting per window of blocks the throughput and
    /// each block's execution, state-root and store times.
    Import(ImportArgs),
}

/// Arguments of `velarium growth generate`.
#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// Output directory (created if missing; genesis.json and chain.rlp are overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Number of blocks after genesis.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    blocks: u64,
    /// New accounts per block (ether transfers to fresh addresses).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(0..=MAX_PER_BLOCK))]
    accounts_per_block: u64,
    /// New storage slots per block (calls to the slot-writing contract).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(0..=MAX_PER_BLOCK))]
    slots_per_block: u64,
    /// Seed of the sender keys, fresh addresses and mix hashes (same seed, same chain).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Arguments of `velarium growth import`.
#[derive(Debug, clap::Args)]
struct ImportArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// A fresh datadir (missing or empty): the import runs from genesis.
    #[arg(long)]
    datadir: PathBuf,
    /// geth-format genesis file (as `growth generate` writes it).
    #[arg(long)]
    genesis: PathBuf,
    /// Chain file: concatenated RLP blocks, optionally gzipped.
    #[arg(long)]
    chain: PathBuf,
    /// Blocks per report window.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    every: u64,
    /// Make commits durable (fsync) at most this many milliseconds apart (0, the default:
    /// every block, as `velarium import --datadir` does by default).
    #[arg(long, default_value_t = 0)]
    sync_interval_ms: u64,
    /// One JSON record per window on stdout, then a summary record.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args) -> eyre::Result<ExitCode> {
    match args.command {
        GrowthCommand::Generate(args) => generate(&args),
        GrowthCommand::Import(args) => import(&args),
    }
}

// --- generate -----------------------------------------------------------------------------------

/// The block gas limit: twice what the transactions may use, so a block never goes over the
/// EIP-1559 target and the base fee never rises (it falls slowly instead); at least 30M.
fn block_gas_limit(accounts: u64, slots: u64) -> u64 {
    (2 * (accounts * TRANSFER_GAS + slots * SLOT_GAS)).max(30_000_000)
}

/// The `index`-th fresh address of `seed`: `keccak256("velarium-growth" ++ seed ++ index)`'s
/// last 20 bytes.
fn fresh_address(seed: u64, index: u64) -> Address {
    let mut material = [0u8; 31];
    material[..15].copy_from_slice(b"velarium-growth");
    material[15..23].copy_from_slice(&seed.to_be_bytes());
    material[23..].copy_from_slice(&index.to_be_bytes());
    Address::from_word(keccak256(material))
}

/// The genesis document: every fork through Shanghai at genesis, merged (terminal total
/// difficulty 0), the senders funded and the slot writer deployed.
fn genesis_json(senders: &[Address], gas_limit: u64) -> serde_json::Value {
    let mut alloc = serde_json::Map::new();
    for sender in senders {
        alloc.insert(
            sender.to_string(),
            serde_json::json!({ "balance": format!("0x{SENDER_BALANCE:x}") }),
        );
    }
    alloc.insert(
        SLOT_WRITER.to_string(),
        serde_json::json!({
            "balance": "0x0",
            "nonce": "0x1",
            "code": format!("0x{}", alloy_primitives::hex::encode(SLOT_WRITER_CODE)),
        }),
    );
    serde_json::json!({
        "config": {
            "chainId": CHAIN_ID,
            "homesteadBlock": 0,
            "eip150Block": 0,
            "eip155Block": 0,
            "eip158Block": 0,
            "byzantiumBlock": 0,
            "constantinopleBlock": 0,
            "petersburgBlock": 0,
            "istanbulBlock": 0,
            "muirGlacierBlock": 0,
            "berlinBlock": 0,
            "londonBlock": 0,
            "arrowGlacierBlock": 0,
            "grayGlacierBlock": 0,
            "terminalTotalDifficulty": 0,
            "terminalTotalDifficultyPassed": true,
            "shanghaiTime": 0,
        },
        "nonce": "0x0",
        "timestamp": format!("{GENESIS_TIMESTAMP:#x}"),
        "extraData": format!("0x{}", alloy_primitives::hex::encode("velarium growth")),
        "gasLimit": format!("{gas_limit:#x}"),
        "difficulty": "0x0",
        "mixHash": B256::ZERO.to_string(),
        "coinbase": Address::ZERO.to_string(),
        "baseFeePerGas": format!("{:#x}", alloy_eips::eip1559::INITIAL_BASE_FEE),
        "alloc": alloc,
    })
}

/// The signed transactions of block `number` (1-based): `accounts` transfers to fresh addresses
/// from the first senders, then `slots` slot writes with new keys from the others. Each sender
/// sends exactly one transaction per block, so its nonce in block `number` is `number - 1`
/// (which lets several threads sign different blocks at once).
fn sign_block(plan: &GenerateArgs, wallets: &[Wallet], number: u64) -> Vec<RecoveredTx> {
    let (accounts, slots) = (plan.accounts_per_block, plan.slots_per_block);
    let nonce = number - 1;
    let mut txs = Vec::with_capacity((accounts + slots) as usize);
    for (i, wallet) in (0..accounts + slots).zip(wallets) {
        let (to, value, input, gas_limit) = if i < accounts {
            let to = fresh_address(plan.seed, (number - 1) * accounts + i);
            (to, U256::from(TRANSFER_VALUE), Bytes::new(), TRANSFER_GAS)
        } else {
            // Keys from 1 on, never reused: every call creates a slot.
            let key = U256::from((number - 1) * slots + (i - accounts) + 1);
            (SLOT_WRITER, U256::ZERO, Bytes::from(key.to_be_bytes::<32>()), SLOT_GAS)
        };
        let tx = TxEip1559 {
            chain_id: CHAIN_ID,
            nonce,
            gas_limit,
            max_fee_per_gas: MAX_FEE_PER_GAS,
            max_priority_fee_per_gas: MAX_PRIORITY_FEE_PER_GAS,
            to: TxKind::Call(to),
            value,
            access_list: Default::default(),
            input,
        };
        let envelope: TxEnvelope = wallet.sign_tx(tx).into();
        txs.push(RecoveredTx::new_unchecked(envelope, wallet.address()));
    }
    txs
}

/// Accounts and non-zero storage slots of a state.
fn count_state(state: &InMemoryState) -> (usize, usize) {
    (state.len(), state.accounts().map(|(_, account)| account.storage.len()).sum())
}

fn generate(args: &GenerateArgs) -> eyre::Result<ExitCode> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.out)
        .wrap_err_with(|| format!("cannot create {}", args.out.display()))?;
    let n_senders = (args.accounts_per_block + args.slots_per_block) as usize;
    let wallets: Vec<Wallet> =
        (0..n_senders as u64).map(|i| Wallet::derive(args.seed, i)).collect();
    let senders: Vec<Address> = wallets.iter().map(Wallet::address).collect();
    let gas_limit = block_gas_limit(args.accounts_per_block, args.slots_per_block);

    let genesis_path = args.out.join("genesis.json");
    let json = genesis_json(&senders, gas_limit);
    std::fs::write(&genesis_path, serde_json::to_string_pretty(&json)? + "\n")
        .wrap_err_with(|| format!("cannot write {}", genesis_path.display()))?;
    // Read back through the path `velarium import` takes, so the chain builds on what it sees.
    let genesis = load_genesis_file(&genesis_path)?;
    let spec = genesis.spec;
    let mut state = genesis.state;
    let mut parent = genesis.header;
    let (genesis_accounts, genesis_slots) = count_state(&state);

    let chain_path = args.out.join("chain.rlp");
    let file = std::fs::File::create(&chain_path)
        .wrap_err_with(|| format!("cannot create {}", chain_path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let (mut txs_total, mut gas_total, mut bytes_total) = (0u64, 0u64, 0u64);
    let (mut exec_time, mut root_time, mut write_time) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let progress_every = args.blocks.div_ceil(10).max(1);

    // Signing (about 100 µs a transaction here) runs ahead on its own threads, block `n` on
    // thread `(n - 1) % threads`, each with its own channel so blocks arrive in order.
    let threads = crate::default_threads().clamp(1, 4) as u64;
    let (senders_tx, receivers): (Vec<_>, Vec<_>) =
        (0..threads).map(|_| mpsc::sync_channel::<Vec<RecoveredTx>>(2)).unzip();
    let wallets = &wallets;
    let result = std::thread::scope(|scope| -> eyre::Result<()> {
        // Owned here, so an error drops them and each signing thread's next send fails: the
        // scope then joins threads that have stopped.
        let receivers = receivers;
        for (k, sender) in (0..threads).zip(senders_tx) {
            scope.spawn(move || {
                for number in (k + 1..=args.blocks).step_by(threads as usize) {
                    if sender.send(sign_block(args, wallets, number)).is_err() {
                        return;
                    }
                }
            });
        }
        for number in 1..=args.blocks {
            let transactions = receivers[((number - 1) % threads) as usize]
                .recv()
                .wrap_err("a signing thread stopped")?;
            let mut header = Header {
                parent_hash: parent.hash_slow(),
                ommers_hash: EMPTY_OMMER_ROOT_HASH,
                beneficiary: BENEFICIARY,
                difficulty: U256::ZERO,
                number,
                gas_limit,
                timestamp: parent.timestamp + BLOCK_TIME,
                mix_hash: keccak256([args.seed.to_be_bytes(), number.to_be_bytes()].concat()),
                base_fee_per_gas: parent.next_block_base_fee(BaseFeeParams::ethereum()),
                withdrawals_root: Some(EMPTY_WITHDRAWALS),
                ..Default::default()
            };
            let t = Instant::now();
            let input = BlockInput {
                header: &header,
                transactions: &transactions,
                ommers: &[],
                withdrawals: Some(&[]),
            };
            let output = execute_sequential(&spec, &state, input)
                .wrap_err_with(|| format!("executing generated block {number}"))?;
            if let Some(i) = output.receipts.iter().position(|r| !r.status()) {
                bail!("generated block {number}: transaction {i} failed");
            }
            exec_time += t.elapsed();
            let t = Instant::now();
            state.apply_bundle(&output.bundle);
            header.state_root = state.state_root();
            root_time += t.elapsed();

            let t = Instant::now();
            header.gas_used = output.gas_used;
            header.receipts_root = calculate_receipt_root(&output.receipts);
            header.logs_bloom = output.receipts.iter().fold(Bloom::ZERO, |acc, r| acc | r.bloom());
            let envelopes: Vec<TxEnvelope> =
                transactions.into_iter().map(RecoveredTx::into_inner).collect();
            header.transactions_root = calculate_transaction_root(&envelopes);
            txs_total += envelopes.len() as u64;
            gas_total += header.gas_used;
            let body = BlockBody {
                transactions: envelopes,
                ommers: Vec::new(),
                withdrawals: Some(Withdrawals::default()),
            };
            let rlp = EthBlock::rlp_encoded_from_parts(&header, &body);
            out.write_all(&rlp)
                .wrap_err_with(|| format!("cannot write {}", chain_path.display()))?;
            bytes_total += rlp.len() as u64;
            write_time += t.elapsed();
            parent = header;
            if number.is_multiple_of(progress_every) || number == args.blocks {
                note!(
                    "generated block {number}/{}: {} accounts, {:.1}s",
                    args.blocks,
                    state.len(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Ok(())
    });
    result?;
    out.flush().wrap_err_with(|| format!("cannot write {}", chain_path.display()))?;
    drop(out);

    let (accounts, slots) = count_state(&state);
    let secs = started.elapsed().as_secs_f64();
    out!(
        "wrote {} ({} blocks, {txs_total} transactions, {gas_total} gas, {:.1} MB) and {}",
        chain_path.display(),
        args.blocks,
        bytes_total as f64 / 1e6,
        genesis_path.display()
    );
    out!(
        "state: {accounts} accounts + {slots} slots = {} entries (genesis {genesis_accounts} + {genesis_slots})",
        accounts + slots
    );
    out!("head #{} {} state root {}", parent.number, parent.hash_slow(), parent.state_root);
    out!(
        "in {secs:.1}s: execution {:.1}s, state root {:.1}s, encoding and writing {:.1}s (signing on {threads} more threads)",
        exec_time.as_secs_f64(),
        root_time.as_secs_f64(),
        write_time.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

// --- import -------------------------------------------------------------------------------------

/// One imported block's costs.
#[derive(Debug, Clone, Copy)]
struct BlockCost {
    execution: Duration,
    state_root: Duration,
    store: Duration,
    gas: u64,
    txs: usize,
}

/// Median, mean and maximum of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    median: f64,
    mean: f64,
    max: f64,
}

impl Summary {
    fn of(values: impl Iterator<Item = Duration>) -> Self {
        let mut ms: Vec<f64> = values.map(|d| d.as_secs_f64() * 1e3).collect();
        if ms.is_empty() {
            return Self::default();
        }
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median = if n % 2 == 1 { ms[n / 2] } else { (ms[n / 2 - 1] + ms[n / 2]) / 2.0 };
        Self { median, mean: ms.iter().sum::<f64>() / n as f64, max: ms[n - 1] }
    }

    fn json(self) -> serde_json::Value {
        serde_json::json!({ "median": self.median, "mean": self.mean, "max": self.max })
    }
}

/// A window of blocks, reported.
#[derive(Debug, Clone)]
struct Window {
    first_block: u64,
    last_block: u64,
    blocks: usize,
    txs: usize,
    gas: u64,
    seconds: f64,
    accounts: usize,
    slots: usize,
    execution: Summary,
    state_root: Summary,
    store: Summary,
}

impl Window {
    fn new(first_block: u64, costs: &[BlockCost], seconds: f64, state: &InMemoryState) -> Self {
        let (accounts, slots) = count_state(state);
        Self {
            first_block,
            last_block: first_block + costs.len() as u64 - 1,
            blocks: costs.len(),
            txs: costs.iter().map(|c| c.txs).sum(),
            gas: costs.iter().map(|c| c.gas).sum(),
            seconds,
            accounts,
            slots,
            execution: Summary::of(costs.iter().map(|c| c.execution)),
            state_root: Summary::of(costs.iter().map(|c| c.state_root)),
            store: Summary::of(costs.iter().map(|c| c.store)),
        }
    }

    fn blocks_per_s(&self) -> f64 {
        self.blocks as f64 / self.seconds.max(1e-9)
    }

    fn mgas_per_s(&self) -> f64 {
        self.gas as f64 / 1e6 / self.seconds.max(1e-9)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "window",
            "first_block": self.first_block,
            "last_block": self.last_block,
            "blocks": self.blocks,
            "transactions": self.txs,
            "gas": self.gas,
            "seconds": self.seconds,
            "accounts": self.accounts,
            "slots": self.slots,
            "entries": self.accounts + self.slots,
            "blocks_per_s": self.blocks_per_s(),
            "mgas_per_s": self.mgas_per_s(),
            "execution_ms": self.execution.json(),
            "state_root_ms": self.state_root.json(),
            "store_ms": self.store.json(),
        })
    }

    fn row(&self) -> String {
        format!(
            "{:>13} {:>10} {:>10} {:>10} {:>8.2} {:>7.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            format!("{}-{}", self.first_block, self.last_block),
            self.accounts,
            self.slots,
            self.accounts + self.slots,
            self.blocks_per_s(),
            self.mgas_per_s(),
            self.execution.median,
            self.execution.mean,
            self.state_root.median,
            self.state_root.mean,
            self.store.median,
            self.store.mean,
        )
    }
}

const HEADER_ROW: [&str; 2] = [
    "                                                                   ms per block (median, mean)",
    "       blocks   accounts      slots    entries blocks/s  Mgas/s  exec.md exec.mn  root.md  root.mn store.md store.mn",
];

/// How the last window's per-block cost compares with the first's.
fn ratio(first: f64, last: f64) -> f64 {
    if first > 0.0 {
        last / first
    } else {
        f64::NAN
    }
}

fn import(args: &ImportArgs) -> eyre::Result<ExitCode> {
    let datadir = &args.datadir;
    ensure_fresh(datadir)?;
    let genesis = load_genesis_file(&args.genesis)?;
    let bytes = read_chain_file(&args.chain)?;
    let name = args.chain.display().to_string();
    let engine = args.engine.engine();
    let mut chain =
        PersistentChain::open(datadir, genesis.spec, &genesis.header, genesis.state, engine)
            .wrap_err_with(|| format!("opening {}", datadir.display()))?;
    chain.set_sync_interval(Duration::from_millis(args.sync_interval_ms));
    let (genesis_accounts, genesis_slots) = count_state(chain.state());
    if !args.json {
        note!(
            "datadir {}, genesis {} ({genesis_accounts} accounts, {genesis_slots} slots), engine {engine}",
            datadir.display(),
            chain.head().hash
        );
        out!("{}", HEADER_ROW[0]);
        out!("{}", HEADER_ROW[1]);
    }

    let every = args.every as usize;
    let mut windows: Vec<Window> = Vec::new();
    let mut costs: Vec<BlockCost> = Vec::with_capacity(every);
    let mut all: Vec<BlockCost> = Vec::new();
    let mut import_time = Duration::ZERO;
    let mut window_started = Instant::now();
    let mut window_first = chain.head().header.number + 1;
    let mut emit = |costs: &mut Vec<BlockCost>,
                    window_started: &mut Instant,
                    window_first: &mut u64,
                    chain: &PersistentChain|
     -> eyre::Result<()> {
        let seconds = window_started.elapsed().as_secs_f64();
        let window = Window::new(*window_first, costs, seconds, chain.state());
        if args.json {
            out!("{}", window.json());
        } else {
            out!("{}", window.row());
        }
        windows.push(window);
        costs.clear();
        *window_first = chain.head().header.number + 1;
        // Counting the state is not the next window's work.
        *window_started = Instant::now();
        Ok(())
    };
    let result = (|| -> eyre::Result<()> {
        let mut in_file = 0usize;
        for block in blocks(&bytes, &name) {
            let block = block?;
            in_file += 1;
            let number = block.header.number;
            let t = Instant::now();
            let outcome = chain
                .import_block(&block)
                .wrap_err_with(|| format!("block {number} ({})", block.header.hash_slow()))?;
            import_time += t.elapsed();
            let Outcome::Imported(imported) = outcome else {
                bail!("block {number} was already stored: the datadir was not fresh");
            };
            let cost = BlockCost {
                execution: imported.execution,
                state_root: imported.state_root,
                store: imported.commit,
                gas: imported.gas_used,
                txs: imported.tx_count,
            };
            costs.push(cost);
            all.push(cost);
            if costs.len() == every {
                emit(&mut costs, &mut window_started, &mut window_first, &chain)?;
            }
        }
        ensure!(in_file > 0, "{name}: no blocks in the file");
        if !costs.is_empty() {
            emit(&mut costs, &mut window_started, &mut window_first, &chain)?;
        }
        Ok(())
    })();
    // What was committed becomes durable, whatever happened (a failed block never was).
    let synced = chain.sync();
    result.wrap_err_with(|| format!("after {} imported blocks", all.len()))?;
    synced.wrap_err("making the last commits durable")?;
    // The windows' time: every block from decoding to commit, not the counting of the state
    // after each window.
    let wall: f64 = windows.iter().map(|w| w.seconds).sum();

    let head = chain.head();
    let (first, last) = (&windows[0], &windows[windows.len() - 1]);
    let gas: u64 = all.iter().map(|c| c.gas).sum();
    let txs: usize = all.iter().map(|c| c.txs).sum();
    let total = |f: fn(&BlockCost) -> Duration| all.iter().map(f).sum::<Duration>().as_secs_f64();
    let (execution, state_root, store) =
        (total(|c| c.execution), total(|c| c.state_root), total(|c| c.store));
    let import_secs = import_time.as_secs_f64();
    let growth = ratio((first.accounts + first.slots) as f64, (last.accounts + last.slots) as f64);
    let root_ratio = ratio(first.state_root.median, last.state_root.median);
    let store_ratio = ratio(first.store.median, last.store.median);
    let exec_ratio = ratio(first.execution.median, last.execution.median);
    if args.json {
        let summary = serde_json::json!({
            "type": "summary",
            "blocks": all.len(),
            "transactions": txs,
            "gas": gas,
            "seconds": wall,
            "import_block_seconds": import_secs,
            "blocks_per_s": all.len() as f64 / wall.max(1e-9),
            "mgas_per_s": gas as f64 / 1e6 / wall.max(1e-9),
            "execution_seconds": execution,
            "state_root_seconds": state_root,
            "store_seconds": store,
            "genesis_accounts": genesis_accounts,
            "genesis_slots": genesis_slots,
            "accounts": last.accounts,
            "slots": last.slots,
            "entries": last.accounts + last.slots,
            "head_number": head.header.number,
            "head_hash": head.hash.to_string(),
            "state_root": head.header.state_root.to_string(),
            "last_vs_first": {
                "entries": growth,
                "execution_median": exec_ratio,
                "state_root_median": root_ratio,
                "store_median": store_ratio,
                "state_root_mean": ratio(first.state_root.mean, last.state_root.mean),
                "store_mean": ratio(first.store.mean, last.store.mean),
            },
        });
        out!("{summary}");
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "imported {} blocks, {txs} transactions, {gas} gas in {wall:.1}s: {:.2} blocks/s, {:.1} Mgas/s",
        all.len(),
        all.len() as f64 / wall.max(1e-9),
        gas as f64 / 1e6 / wall.max(1e-9)
    );
    out!(
        "time in execution {execution:.1}s ({:.0}%), state root {state_root:.1}s ({:.0}%), store {store:.1}s ({:.0}%), validation and the rest {:.1}s",
        100.0 * execution / wall.max(1e-9),
        100.0 * state_root / wall.max(1e-9),
        100.0 * store / wall.max(1e-9),
        (wall - execution - state_root - store).max(0.0)
    );
    out!(
        "state: {} accounts + {} slots = {} entries (genesis {genesis_accounts} + {genesis_slots})",
        last.accounts,
        last.slots,
        last.accounts + last.slots
    );
    out!(
        "last window (blocks {}-{}) vs first ({}-{}), per block, medians: state root {:.2} -> {:.2} ms ({root_ratio:.2}x), store {:.2} -> {:.2} ms ({store_ratio:.2}x), execution {:.2} -> {:.2} ms ({exec_ratio:.2}x), while the state grew {growth:.1}x ({} -> {} entries)",
        last.first_block,
        last.last_block,
        first.first_block,
        first.last_block,
        first.state_root.median,
        last.state_root.median,
        first.store.median,
        last.store.median,
        first.execution.median,
        last.execution.median,
        first.accounts + first.slots,
        last.accounts + last.slots
    );
    out!("head #{} {}", head.header.number, head.hash);
    out!("state root {} (verified against every header)", head.header.state_root);
    Ok(ExitCode::SUCCESS)
}

/// Refuses a datadir that already holds anything: the measurement is an import from genesis.
fn ensure_fresh(datadir: &Path) -> eyre::Result<()> {
    match std::fs::read_dir(datadir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: `growth import` measures an import from genesis into a fresh datadir (remove it or give another)",
                    datadir.display()
                );
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(eyre::eyre!("cannot read {}: {err}", datadir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_balance_is_a_million_ether() {
        assert_eq!(SENDER_BALANCE, U256::from(10u64).pow(U256::from(24)));
    }

    #[test]
    fn medians_and_means() {
        let ms = |v: &[u64]| Summary::of(v.iter().map(|&m| Duration::from_millis(m)));
        let s = ms(&[3, 1, 2]);
        assert_eq!((s.median, s.mean, s.max), (2.0, 2.0, 3.0));
        let s = ms(&[4, 1, 2, 3]);
        assert_eq!((s.median, s.mean), (2.5, 2.5));
        assert_eq!(ms(&[]).median, 0.0);
    }

    #[test]
    fn fresh_addresses_differ_by_seed_and_index() {
        assert_ne!(fresh_address(1, 0), fresh_address(1, 1));
        assert_ne!(fresh_address(1, 0), fresh_address(2, 0));
        assert_eq!(fresh_address(7, 9), fresh_address(7, 9));
    }
}
