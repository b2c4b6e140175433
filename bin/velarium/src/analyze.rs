//! `velarium analyze`: the contention dossier of a range of mainnet blocks.
//!
//! Every block is traced once (actual read, write and credit sets per transaction), its
//! dependency graph analysed with `velarium_analyzer::dossier` (conflicting pairs, waves,
//! critical path, simulated list schedules, hot locations, observed access lists, scale-out),
//! and executed by the oracle and the parallel engine interleaved to measure the real speedup.
//! The result goes to a JSON file (`docs/dossier-schema.json`), a Markdown report and a
//! self-contained HTML page (inline CSS and SVG, nothing fetched).
//!
//! The blocks come from mainnet block folders (each with its parent's state) or, with
//! `--genesis`, from chain files imported on top of that genesis: every block is analysed on
//! the chain's head state before it is imported (and verified) like `velarium import` does.

use crate::replay::find_block_dirs;
use alloy_consensus::Transaction as _;
use alloy_primitives::{keccak256, Address, B256, U256};
use eyre::{bail, eyre, WrapErr};
use serde_json::{json, Value};
use std::{
    collections::{BTreeSet, HashMap, HashSet},
    fmt::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};
use velarium_analyzer::{
    dossier::{
        ceiling, edges_linked_by, hot_locations, list_schedule, scale_out, AccessListBuilder,
        AccessLists, ConflictGraph, CriticalChain, HotLocation, Priority,
    },
    TxAccess,
};
use velarium_chain::{
    genesis::load_genesis_file,
    rlp::{blocks as chain_blocks, read_chain_file},
    Blockchain,
};
use velarium_chainspec::ChainSpec;
use velarium_executor::{recover_senders, trace_accesses, AccessKey, BlockInput, Engine};
use velarium_state::InMemoryState;

/// Simulated worker counts.
const WORKERS: [usize; 6] = [1, 2, 4, 8, 16, 32];
/// Simulated partition counts.
const PARTITIONS: [usize; 4] = [1, 2, 4, 8];
/// A location is in a group's recommended access list when more than this share of the
/// group's calls touched it.
const ACCESS_LIST_MIN_SHARE: f64 = 0.5;
/// Transactions listed per hot location in the range-level tables.
const MAX_TXS_PER_LOCATION: usize = 50;
/// The labels shipped in `etc/labels.json`, used unless `--labels` replaces them.
const DEFAULT_LABELS: &str = include_str!("../../../etc/labels.json");

/// Arguments of `velarium analyze`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Thread counts at which the parallel engine's speedup is measured, comma-separated.
    #[arg(long, default_value = "2", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Interleaved timed repetitions per engine and block (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Write the dossier as JSON (schema: docs/dossier-schema.json).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown report.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Write the self-contained HTML page.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Names of addresses: a JSON object `{"0xaddress": "name"}` (default: etc/labels.json,
    /// built in).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Hot locations and access-list groups listed.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Cost, in gas-equivalents, of one cross-node round trip in the scale-out simulation.
    #[arg(long, default_value_t = 100_000)]
    round_trip_gas: u64,
    /// Workers per node in the scale-out simulation.
    #[arg(long, default_value_t = 8)]
    node_workers: usize,
    /// Where `.tar.xz` archives are extracted.
    #[arg(long, env = "VELARIUM_FIXTURE_CACHE", default_value = "target/fixtures-cache")]
    cache_dir: PathBuf,
    /// geth-format genesis file: every SOURCE is then a chain file, imported in order on top of
    /// it (as `velarium import` does); each block is analysed on the state before it.
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// With `--genesis`: the first block number analysed (earlier blocks are only imported).
    #[arg(long, requires = "genesis")]
    from: Option<u64>,
    /// With `--genesis`: the last block number analysed (later blocks are only imported).
    #[arg(long, requires = "genesis")]
    to: Option<u64>,
    /// Mainnet block folders, folders of them, or the `mainnet-blocks.tar.xz` archive; with
    /// `--genesis`, chain files instead (concatenated RLP blocks, optionally gzipped), whose
    /// blocks without transactions are imported but not analysed.
    #[arg(required = true)]
    sources: Vec<PathBuf>,
}

/// A state location; [`AccessKey`] with an order (for stable reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Loc {
    /// An account's balance, nonce or code.
    Account(Address),
    /// One storage slot.
    Storage(Address, U256),
    /// The wiping of an account's storage.
    StorageEpoch(Address),
}

impl From<AccessKey> for Loc {
    fn from(key: AccessKey) -> Self {
        match key {
            AccessKey::Account(a) => Self::Account(a),
            AccessKey::Storage(a, s) => Self::Storage(a, s),
            AccessKey::StorageEpoch(a) => Self::StorageEpoch(a),
        }
    }
}

impl Loc {
    const fn address(&self) -> Address {
        match *self {
            Self::Account(a) | Self::Storage(a, _) | Self::StorageEpoch(a) => a,
        }
    }

    /// The partition hash: the first 8 bytes of keccak256(address), so an account and its
    /// storage live on one node.
    fn partition_hash(&self) -> u64 {
        let h = keccak256(self.address());
        u64::from_be_bytes(h[..8].try_into().unwrap_or_default())
    }
}

/// A call group: the contract called and the 4-byte selector (`None`: no calldata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Call {
    to: Address,
    selector: Option<[u8; 4]>,
}

/// The call group of every transaction (`None` for contract creations).
fn call_groups(transactions: &[velarium_executor::RecoveredTx]) -> Vec<Option<Call>> {
    transactions
        .iter()
        .map(|tx| {
            let tx = tx.inner();
            tx.to().map(|to| Call {
                to,
                selector: tx.input().get(..4).map(|s| [s[0], s[1], s[2], s[3]]),
            })
        })
        .collect()
}

/// Names of addresses.
pub(crate) struct Labels(HashMap<Address, String>);

impl Labels {
    fn parse(text: &str) -> eyre::Result<Self> {
        let map: HashMap<String, String> = serde_json::from_str(text)?;
        let mut labels = HashMap::new();
        for (address, name) in map {
            let parsed: Address =
                address.parse().map_err(|e| eyre!("label address `{address}`: {e}"))?;
            labels.insert(parsed, name);
        }
        Ok(Self(labels))
    }

    fn get(&self, address: &Address) -> Option<&str> {
        self.0.get(address).map(String::as_str)
    }

    /// `WETH9` or `0x1234…abcd`.
    fn short(&self, address: &Address) -> String {
        self.get(address).map_or_else(
            || {
                let hex = format!("{address:#x}");
                format!("{}…{}", &hex[..6], &hex[hex.len() - 4..])
            },
            str::to_string,
        )
    }

    /// A readable name of a location.
    fn name(&self, loc: &Loc) -> String {
        match loc {
            Loc::Account(a) => format!("{} (account)", self.short(a)),
            Loc::StorageEpoch(a) => format!("{} (storage wipe)", self.short(a)),
            Loc::Storage(a, slot) => {
                let slot = if *slot < U256::from(1u64 << 32) {
                    slot.to_string()
                } else {
                    let hex = format!("{:#066x}", B256::from(*slot));
                    format!("{}…{}", &hex[..8], &hex[hex.len() - 4..])
                };
                format!("{} slot {slot}", self.short(a))
            }
        }
    }

    fn selector(call: &Call) -> String {
        call.selector.map_or_else(|| "(no calldata)".to_string(), |s| format!("0x{}", hex(&s)))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// One measured thread count on one block.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    threads: usize,
    oracle: Duration,
    parallel: Duration,
    aborts: u64,
    re_executions: u64,
    validations: u64,
    suspensions: u64,
    /// Reads paused until the transaction they depended on finished executing.
    waits: u64,
    /// Transactions that credited a hot storage slot without reading it.
    storage_credits: u64,
    /// The locations whose reads failed validation or paused in the last measured run, most
    /// first (`ParallelStats::hot_spots`).
    hot_spots: Vec<velarium_executor::HotSpot>,
    /// `None` when equal, else what differed.
    mismatch: Option<String>,
}

impl Measured {
    fn speedup(&self) -> f64 {
        self.oracle.as_secs_f64() / self.parallel.as_secs_f64().max(1e-12)
    }
}

/// Simulated speedups at one worker count.
#[derive(Debug, Clone, Copy)]
struct Simulated {
    workers: usize,
    list_makespan: u64,
    cp_first_makespan: u64,
}

/// One scale-out configuration of one block.
#[derive(Debug, Clone, Copy)]
struct Scaled {
    nodes: usize,
    cross_txs: usize,
    cross_gas: u64,
    cross_edges: usize,
    makespan: u64,
}

/// Everything known about one block.
pub(crate) struct BlockDossier {
    number: u64,
    trace: Vec<TxAccess<Loc>>,
    groups: Vec<Option<Call>>,
    graph: ConflictGraph<Loc>,
    chain: CriticalChain<Loc>,
    levels: Vec<usize>,
    waves: Vec<usize>,
    hot: Vec<HotLocation<Loc>>,
    simulated: Vec<Simulated>,
    scaled: Vec<Scaled>,
    measured: Vec<Measured>,
    /// (anticipated, edges) under the range's access lists.
    anticipated: (usize, usize),
}

impl BlockDossier {
    /// The pure analysis of one traced block.
    pub(crate) fn analyse(
        number: u64,
        trace: Vec<TxAccess<Loc>>,
        groups: Vec<Option<Call>>,
        round_trip_gas: u64,
        node_workers: usize,
    ) -> Self {
        let graph = ConflictGraph::new(&trace);
        let chain = CriticalChain::new(&trace, &graph);
        let simulated = WORKERS
            .iter()
            .map(|&workers| Simulated {
                workers,
                list_makespan: list_schedule(&graph, workers, Priority::BlockOrder).makespan,
                cp_first_makespan: list_schedule(&graph, workers, Priority::CriticalPathFirst)
                    .makespan,
            })
            .collect();
        let scaled = PARTITIONS
            .iter()
            .map(|&nodes| {
                let s = scale_out(
                    &trace,
                    &graph,
                    Loc::partition_hash,
                    nodes,
                    node_workers,
                    round_trip_gas,
                );
                Scaled {
                    nodes,
                    cross_txs: s.cross_txs,
                    cross_gas: s.cross_gas,
                    cross_edges: s.cross_edges,
                    makespan: s.schedule.makespan,
                }
            })
            .collect();
        let hot = hot_locations(&graph, &chain);
        Self {
            number,
            levels: graph.levels(),
            waves: graph.wave_sizes(),
            trace,
            groups,
            graph,
            chain,
            hot,
            simulated,
            scaled,
            measured: Vec::new(),
            anticipated: (0, 0),
        }
    }

    fn gas(&self) -> u64 {
        self.graph.total_gas()
    }

    fn bound(&self) -> f64 {
        self.chain.path.bound
    }

    /// (level, size) of the widest wave (the lowest level among equals).
    fn widest_wave(&self) -> (usize, usize) {
        self.waves
            .iter()
            .enumerate()
            .max_by_key(|&(l, &s)| (s, std::cmp::Reverse(l)))
            .map_or((0, 0), |(l, &s)| (l, s))
    }

    /// Share of the block's edges linked by its own top-`k` locations.
    fn concentration(&self, k: usize) -> f64 {
        let top: HashSet<Loc> = self.hot.iter().take(k).map(|h| h.key).collect();
        share(edges_linked_by(&self.graph, &top), self.graph.edges.len())
    }
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn speedup(gas: u64, makespan: u64) -> f64 {
    if makespan == 0 {
        1.0
    } else {
        gas as f64 / makespan as f64
    }
}

/// A location over the whole range.
#[derive(Debug, Clone, Default)]
struct RangeHot {
    edges: usize,
    critical_gas: u64,
    blocks: BTreeSet<u64>,
    txs: Vec<(u64, usize)>,
    tx_count: usize,
}

/// The whole dossier.
pub(crate) struct Dossier {
    blocks: Vec<BlockDossier>,
    access_lists: AccessLists<Loc, Call>,
    hot: Vec<(Loc, RangeHot)>,
    threads: Vec<usize>,
    reps: usize,
    top: usize,
    round_trip_gas: u64,
    node_workers: usize,
}

impl Dossier {
    /// Ranges the blocks' findings and applies the access lists.
    pub(crate) fn new(
        mut blocks: Vec<BlockDossier>,
        threads: Vec<usize>,
        reps: usize,
        top: usize,
        round_trip_gas: u64,
        node_workers: usize,
    ) -> Self {
        let mut builder = AccessListBuilder::default();
        for b in &blocks {
            builder.add_block(&b.trace, &b.groups);
        }
        let mut access_lists = builder.finish(ACCESS_LIST_MIN_SHARE);
        let mut hot: HashMap<Loc, RangeHot> = HashMap::new();
        for b in &mut blocks {
            b.anticipated = access_lists.count_block(&b.graph, &b.groups);
            for h in &b.hot {
                let r = hot.entry(h.key).or_default();
                r.edges += h.edges;
                r.critical_gas += h.critical_gas;
                r.blocks.insert(b.number);
                r.tx_count += h.txs.len();
                for &tx in &h.txs {
                    if r.txs.len() < MAX_TXS_PER_LOCATION {
                        r.txs.push((b.number, tx));
                    }
                }
            }
        }
        let mut hot: Vec<_> = hot.into_iter().collect();
        hot.sort_by(|a, b| {
            (b.1.edges, b.1.critical_gas, a.0).cmp(&(a.1.edges, a.1.critical_gas, b.0))
        });
        Self { blocks, access_lists, hot, threads, reps, top, round_trip_gas, node_workers }
    }

    fn txs(&self) -> usize {
        self.blocks.iter().map(|b| b.graph.len()).sum()
    }

    fn gas(&self) -> u64 {
        self.blocks.iter().map(BlockDossier::gas).sum()
    }

    fn edges(&self) -> usize {
        self.blocks.iter().map(|b| b.graph.edges.len()).sum()
    }

    fn mean_bound(&self) -> f64 {
        self.blocks.iter().map(BlockDossier::bound).sum::<f64>() / self.blocks.len().max(1) as f64
    }

    /// Range gas over the sum of the blocks' critical paths (blocks run one after another).
    fn aggregate_bound(&self) -> f64 {
        let chains: u64 = self.blocks.iter().map(|b| b.chain.path.chain_gas).sum();
        speedup(self.gas(), chains)
    }

    /// Share of all edges linked by the range's top-`k` locations.
    fn concentration(&self, k: usize) -> f64 {
        let top: HashSet<Loc> = self.hot.iter().take(k).map(|h| h.0).collect();
        let linked: usize = self.blocks.iter().map(|b| edges_linked_by(&b.graph, &top)).sum();
        share(linked, self.edges())
    }

    fn hot_by_critical_gas(&self) -> Vec<&(Loc, RangeHot)> {
        let mut by_gas: Vec<_> = self.hot.iter().filter(|h| h.1.critical_gas > 0).collect();
        by_gas.sort_by(|a, b| (b.1.critical_gas, a.0).cmp(&(a.1.critical_gas, b.0)));
        by_gas.truncate(self.top);
        by_gas
    }

    /// (workers, list, cp-first, ceiling) over the range.
    fn simulated(&self) -> Vec<(usize, f64, f64, f64)> {
        let gas = self.gas();
        let bound = self.aggregate_bound();
        WORKERS
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let list: u64 = self.blocks.iter().map(|b| b.simulated[i].list_makespan).sum();
                let cp: u64 = self.blocks.iter().map(|b| b.simulated[i].cp_first_makespan).sum();
                (w, speedup(gas, list), speedup(gas, cp), ceiling(w, bound))
            })
            .collect()
    }

    /// Per thread count: (threads, aggregate speedup, geometric mean, geometric mean of
    /// min(threads, bound), aborts, re-executions, mismatches).
    fn measured(&self) -> Vec<(usize, f64, f64, f64, u64, u64, usize)> {
        self.threads
            .iter()
            .enumerate()
            .filter(|(i, _)| self.blocks.iter().all(|b| b.measured.len() > *i))
            .filter(|_| !self.blocks.is_empty())
            .map(|(i, &t)| {
                let m: Vec<&Measured> = self.blocks.iter().map(|b| &b.measured[i]).collect();
                let oracle: f64 = m.iter().map(|m| m.oracle.as_secs_f64()).sum();
                let parallel: f64 = m.iter().map(|m| m.parallel.as_secs_f64()).sum();
                let n = m.len() as f64;
                let geo = (m.iter().map(|m| m.speedup().ln()).sum::<f64>() / n).exp();
                let cap =
                    (self.blocks.iter().map(|b| ceiling(t, b.bound()).max(1.0).ln()).sum::<f64>()
                        / n)
                        .exp();
                (
                    t,
                    oracle / parallel.max(1e-12),
                    geo,
                    cap,
                    m.iter().map(|m| m.aborts).sum(),
                    m.iter().map(|m| m.re_executions).sum(),
                    m.iter().filter(|m| m.mismatch.is_some()).count(),
                )
            })
            .collect()
    }

    /// (nodes, cross tx share, cross gas share, cross edges, speedup) over the range.
    fn scaled(&self) -> Vec<(usize, f64, f64, usize, f64)> {
        let (txs, gas) = (self.txs(), self.gas());
        PARTITIONS
            .iter()
            .enumerate()
            .map(|(i, &nodes)| {
                let s: Vec<&Scaled> = self.blocks.iter().map(|b| &b.scaled[i]).collect();
                (
                    nodes,
                    share(s.iter().map(|s| s.cross_txs).sum(), txs),
                    share(s.iter().map(|s| s.cross_gas as usize).sum(), gas as usize),
                    s.iter().map(|s| s.cross_edges).sum(),
                    speedup(gas, s.iter().map(|s| s.makespan).sum()),
                )
            })
            .collect()
    }

    /// The block with the most conflicting pairs (the featured block of the charts).
    fn most_conflicted(&self) -> Option<&BlockDossier> {
        self.blocks.iter().max_by_key(|b| (b.graph.edges.len(), std::cmp::Reverse(b.number)))
    }

    /// The block with the most gas (the featured block of the timeline).
    fn heaviest(&self) -> Option<&BlockDossier> {
        self.blocks.iter().max_by_key(|b| (b.gas(), std::cmp::Reverse(b.number)))
    }

    /// The access-list groups listed: the top-k by dependency edges into them (ties: calls).
    fn listed_groups(&self) -> Vec<&velarium_analyzer::dossier::GroupAccessList<Loc, Call>> {
        let mut groups: Vec<_> = self.access_lists.groups.iter().collect();
        groups.sort_by_key(|g| std::cmp::Reverse((g.edges_in, g.calls)));
        groups.truncate(self.top);
        groups
    }

    fn range_text(&self) -> String {
        match (self.blocks.first(), self.blocks.last()) {
            (Some(a), Some(b)) => format!("{}–{}", a.number, b.number),
            _ => "(empty)".to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

fn loc_json(labels: &Labels, loc: &Loc) -> Value {
    let (kind, slot) = match loc {
        Loc::Account(_) => ("account", Value::Null),
        Loc::Storage(_, s) => ("storage", json!(format!("{}", B256::from(*s)))),
        Loc::StorageEpoch(_) => ("storage_epoch", Value::Null),
    };
    let address = loc.address();
    json!({
        "kind": kind,
        "address": format!("{address:#x}"),
        "slot": slot,
        "label": labels.get(&address),
        "name": labels.name(loc),
    })
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

impl Dossier {
    pub(crate) fn to_json(&self, labels: &Labels) -> Value {
        let blocks: Vec<Value> = self.blocks.iter().map(|b| self.block_json(b, labels)).collect();
        let hot = |list: Vec<&(Loc, RangeHot)>| -> Vec<Value> {
            list.into_iter()
                .map(|(loc, h)| {
                    merge(
                        loc_json(labels, loc),
                        json!({
                            "edges": h.edges,
                            "critical_gas": h.critical_gas,
                            "blocks": h.blocks.len(),
                            "serialised_txs": h.tx_count,
                            "txs": h.txs.iter().map(|(b, t)| json!({"block": b, "tx": t})).collect::<Vec<_>>(),
                        }),
                    )
                })
                .collect()
        };
        let widest = self
            .blocks
            .iter()
            .map(|b| (b.widest_wave(), b.number))
            .max_by_key(|((_, s), n)| (*s, std::cmp::Reverse(*n)));
        let groups: Vec<Value> = self
            .access_lists
            .groups
            .iter()
            .take(self.top)
            .map(|g| {
                json!({
                    "contract": format!("{:#x}", g.group.to),
                    "label": labels.get(&g.group.to),
                    "selector": g.group.selector.map(|s| format!("0x{}", hex(&s))),
                    "calls": g.calls,
                    "gas": g.gas,
                    "edges_in": g.edges_in,
                    "anticipated_in": g.anticipated_in,
                    "locations_touched": g.locations.len(),
                    "recommended": g.locations.iter().filter(|u| u.recommended).map(|u| merge(loc_json(labels, &u.key), json!({
                        "reads": u.reads, "writes": u.writes, "calls": u.calls,
                    }))).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "schema_version": 1,
            "generator": format!("velarium analyze {}", env!("CARGO_PKG_VERSION")),
            "parameters": {
                "threads": self.threads,
                "reps": self.reps,
                "top": self.top,
                "workers": WORKERS,
                "partitions": PARTITIONS,
                "round_trip_gas": self.round_trip_gas,
                "node_workers": self.node_workers,
                "access_list_min_share": ACCESS_LIST_MIN_SHARE,
            },
            "range": {
                "first_block": self.blocks.first().map(|b| b.number),
                "last_block": self.blocks.last().map(|b| b.number),
                "blocks": self.blocks.len(),
                "txs": self.txs(),
                "gas": self.gas(),
                "conflicting_pairs": self.edges(),
                "mean_bound": self.mean_bound(),
                "aggregate_bound": self.aggregate_bound(),
                "widest_wave": widest.map(|((level, size), block)| json!({"block": block, "level": level, "size": size})),
                "concentration": {"top1": self.concentration(1), "top10": self.concentration(10)},
                "simulated": self.simulated().into_iter().map(|(w, l, c, ceil)| json!({
                    "workers": w, "list": l, "cp_first": c, "ceiling": ceil,
                })).collect::<Vec<_>>(),
                "measured": self.measured().into_iter().map(|(t, agg, geo, cap, aborts, re, bad)| json!({
                    "threads": t, "speedup": agg, "speedup_geomean": geo,
                    "ceiling_geomean": cap, "aborts": aborts, "re_executions": re, "mismatches": bad,
                })).collect::<Vec<_>>(),
                "scale_out": self.scaled().into_iter().map(|(n, tx, gas, edges, s)| json!({
                    "nodes": n, "cross_tx_share": tx, "cross_gas_share": gas, "cross_edges": edges, "speedup": s,
                })).collect::<Vec<_>>(),
            },
            "hot_by_edges": hot(self.hot.iter().take(self.top).collect()),
            "hot_by_critical_gas": hot(self.hot_by_critical_gas()),
            "access_lists": {
                "min_share": ACCESS_LIST_MIN_SHARE,
                "groups_total": self.access_lists.groups.len(),
                "edges": self.access_lists.edges,
                "anticipated": self.access_lists.anticipated,
                "anticipated_share": share(self.access_lists.anticipated, self.access_lists.edges),
                "groups": groups,
            },
            "blocks": blocks,
        })
    }

    fn block_json(&self, b: &BlockDossier, labels: &Labels) -> Value {
        let (level, size) = b.widest_wave();
        let path = &b.chain.path;
        json!({
            "number": b.number,
            "txs": b.graph.len(),
            "gas": b.gas(),
            "conflicting_pairs": b.graph.edges.len(),
            "edges": b.graph.edges.iter().map(|e| [e.from, e.to]).collect::<Vec<_>>(),
            "levels": b.levels,
            "wave_sizes": b.waves,
            "widest_wave": {"level": level, "size": size},
            "critical_path": {
                "txs": path.chain,
                "chain_gas": path.chain_gas,
                "total_gas": path.total_gas,
                "bound": path.bound,
                "links": b.chain.links.iter().map(|l| json!({
                    "from": l.from, "to": l.to,
                    "locations": l.locations.iter().map(|k| loc_json(labels, k)).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            },
            "simulated": b.simulated.iter().map(|s| json!({
                "workers": s.workers,
                "list": speedup(b.gas(), s.list_makespan),
                "cp_first": speedup(b.gas(), s.cp_first_makespan),
                "ceiling": ceiling(s.workers, b.bound()),
            })).collect::<Vec<_>>(),
            "measured": b.measured.iter().map(|m| json!({
                "threads": m.threads,
                "oracle_ms": m.oracle.as_secs_f64() * 1e3,
                "parallel_ms": m.parallel.as_secs_f64() * 1e3,
                "speedup": m.speedup(),
                "ceiling": ceiling(m.threads, b.bound()),
                "aborts": m.aborts,
                "re_executions": m.re_executions,
                "validations": m.validations,
                "suspensions": m.suspensions,
                "waits": m.waits,
                "storage_credits": m.storage_credits,
                "hot_spots": m.hot_spots.iter().map(|h| json!({
                    "address": h.address.to_string(),
                    "slot": h.slot.map(|s| format!("{s:#x}")),
                    "failed_validations": h.failed_validations,
                    "waits": h.waits,
                })).collect::<Vec<_>>(),
                "outputs_equal": m.mismatch.is_none(),
            })).collect::<Vec<_>>(),
            "hot": b.hot.iter().take(self.top).map(|h| merge(loc_json(labels, &h.key), json!({
                "edges": h.edges, "critical_gas": h.critical_gas, "txs": h.txs,
            }))).collect::<Vec<_>>(),
            "concentration": {"top1": b.concentration(1), "top10": b.concentration(10)},
            "access_lists": {"edges": b.anticipated.1, "anticipated": b.anticipated.0},
            "scale_out": b.scaled.iter().map(|s| json!({
                "nodes": s.nodes,
                "cross_txs": s.cross_txs,
                "cross_gas": s.cross_gas,
                "cross_edges": s.cross_edges,
                "speedup": speedup(b.gas(), s.makespan),
            })).collect::<Vec<_>>(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Markdown

impl Dossier {
    pub(crate) fn to_markdown(&self, labels: &Labels) -> String {
        let mut md = String::new();
        let w = &mut md;
        let _ = writeln!(w, "# Contention dossier: blocks {}\n", self.range_text());
        let _ = writeln!(w, "## Executive summary\n");
        let _ = writeln!(
            w,
            "- **Range**: blocks {} ({} blocks, {} transactions, {:.1} Mgas).",
            self.range_text(),
            self.blocks.len(),
            self.txs(),
            self.gas() as f64 / 1e6
        );
        let _ = writeln!(
            w,
            "- **Critical-path bound**: mean {:.2}x per block; {:.2}x for the range (gas / sum of critical paths).",
            self.mean_bound(),
            self.aggregate_bound()
        );
        let _ = writeln!(
            w,
            "- **Conflicts**: {} conflicting pairs; the top location links {:.0}% of them, the top 10 {:.0}%.",
            self.edges(),
            self.concentration(1) * 100.0,
            self.concentration(10) * 100.0
        );
        for (t, agg, geo, cap, aborts, re, bad) in self.measured() {
            let _ = writeln!(
                w,
                "- **Measured at {t} threads**: {agg:.2}x aggregate ({geo:.2}x geometric mean) vs a ceiling of {cap:.2}x (geometric mean of min({t}, bound)), {:.0}% of it; {aborts} aborts, {re} re-executions; {}.",
                geo / cap.max(1e-12) * 100.0,
                if bad == 0 { "outputs equal the oracle's".to_string() } else { format!("**{bad} blocks differ from the oracle**") }
            );
        }
        if let Some(&(_, _, cp8, ceil8)) = self.simulated().get(3) {
            let _ = writeln!(
                w,
                "- **Simulated at 8 workers** (critical-path-first list schedule): {cp8:.2}x of a {ceil8:.2}x ceiling."
            );
        }
        let top: Vec<String> = self
            .hot
            .iter()
            .take(3)
            .map(|(loc, h)| format!("{} ({} edges)", labels.name(loc), h.edges))
            .collect();
        if !top.is_empty() {
            let _ = writeln!(w, "- **Hottest locations**: {}.", top.join(", "));
        }
        let _ = writeln!(
            w,
            "- **Access lists**: observed lists would have announced {} of {} dependency edges ({:.0}%).",
            self.access_lists.anticipated,
            self.access_lists.edges,
            share(self.access_lists.anticipated, self.access_lists.edges) * 100.0
        );
        let _ = writeln!(w, "\n## Speedup vs workers (range)\n");
        let _ = writeln!(
            w,
            "| workers | list (block order) | critical-path-first | ceiling min(w, bound) |"
        );
        let _ = writeln!(w, "|---:|---:|---:|---:|");
        for (wk, l, c, ceil) in self.simulated() {
            let _ = writeln!(w, "| {wk} | {l:.2}x | {c:.2}x | {ceil:.2}x |");
        }
        let _ = writeln!(w, "\n## Blocks\n");
        let mut header =
            "| block | txs | Mgas | pairs | waves | widest | bound | CP-first @8 |".to_string();
        let mut rule = "|---:|---:|---:|---:|---:|---:|---:|---:|".to_string();
        for t in &self.threads {
            let _ = write!(header, " measured @{t} | aborts @{t} |");
            rule.push_str("---:|---:|");
        }
        let _ = writeln!(w, "{header}\n{rule}");
        for b in &self.blocks {
            let (level, size) = b.widest_wave();
            let mut row = format!(
                "| {} | {} | {:.2} | {} | {} | {size} (level {level}) | {:.2}x | {:.2}x |",
                b.number,
                b.graph.len(),
                b.gas() as f64 / 1e6,
                b.graph.edges.len(),
                b.waves.len(),
                b.bound(),
                speedup(b.gas(), b.simulated[3].cp_first_makespan),
            );
            for m in &b.measured {
                let _ = write!(row, " {:.2}x | {} |", m.speedup(), m.aborts);
            }
            let _ = writeln!(w, "{row}");
        }
        let _ = writeln!(w, "\n## Hot locations by dependency edges\n");
        let _ = writeln!(
            w,
            "| location | address | edges | critical-path gas | blocks | serialised (block:tx) |"
        );
        let _ = writeln!(w, "|---|---|---:|---:|---:|---|");
        let txs_text = |h: &RangeHot| {
            let mut list: Vec<String> =
                h.txs.iter().take(8).map(|(b, t)| format!("{b}:{t}")).collect();
            if h.tx_count > list.len() {
                list.push(format!("… ({} in all)", h.tx_count));
            }
            list.join(", ")
        };
        for (loc, h) in self.hot.iter().take(self.top) {
            let _ = writeln!(
                w,
                "| {} | `{:#x}` | {} | {} | {} | {} |",
                labels.name(loc),
                loc.address(),
                h.edges,
                h.critical_gas,
                h.blocks.len(),
                txs_text(h)
            );
        }
        let _ = writeln!(w, "\n## Hot locations by critical-path gas\n");
        let _ = writeln!(w, "| location | critical-path gas | edges |");
        let _ = writeln!(w, "|---|---:|---:|");
        for (loc, h) in self.hot_by_critical_gas() {
            let _ = writeln!(w, "| {} | {} | {} |", labels.name(loc), h.critical_gas, h.edges);
        }
        let measured_hot: Vec<(u64, usize, &velarium_executor::HotSpot)> = self
            .blocks
            .iter()
            .flat_map(|b| {
                b.measured
                    .iter()
                    .flat_map(move |m| m.hot_spots.iter().map(move |h| (b.number, m.threads, h)))
            })
            .collect();
        if !measured_hot.is_empty() {
            let _ = writeln!(w, "\n## Contention measured in Block-STM\n");
            let _ = writeln!(
                w,
                "Per block and thread count, the locations whose reads failed validation (each a \
                 re-execution) or paused for a lower transaction's write (no work lost) in the \
                 last measured run.\n"
            );
            let _ =
                writeln!(w, "| block | threads | address | slot | failed validations | waits |");
            let _ = writeln!(w, "|---:|---:|---|---|---:|---:|");
            for (number, threads, h) in measured_hot.iter().take(self.top * 4) {
                let slot = h.slot.map_or_else(|| "account".to_string(), |s| format!("`{s:#x}`"));
                let _ = writeln!(
                    w,
                    "| {number} | {threads} | `{:#x}` | {slot} | {} | {} |",
                    h.address, h.failed_validations, h.waits
                );
            }
        }
        if let Some(b) = self.most_conflicted() {
            let _ = writeln!(w, "\n## Critical path of block {} (most conflicts)\n", b.number);
            let _ = writeln!(
                w,
                "{} transactions, {} of {} gas, bound {:.2}x. Links:\n",
                b.chain.path.chain.len(),
                b.chain.path.chain_gas,
                b.chain.path.total_gas,
                b.bound()
            );
            for l in b.chain.links.iter().take(30) {
                let names: Vec<String> = l.locations.iter().map(|k| labels.name(k)).collect();
                let _ = writeln!(w, "- tx {} → tx {}: {}", l.from, l.to, names.join(", "));
            }
            if b.chain.links.len() > 30 {
                let _ = writeln!(w, "- … {} more links", b.chain.links.len() - 30);
            }
        }
        let _ = writeln!(w, "\n## Observed access lists\n");
        let _ = writeln!(
            w,
            "A location is recommended for a (contract, selector) when more than {:.0}% of its calls touched it. \
             An edge j → i is *anticipated* when one of its linking locations is recommended for both j's and i's group.\n",
            ACCESS_LIST_MIN_SHARE * 100.0
        );
        let _ =
            writeln!(w, "| contract | selector | calls | recommended | edges in | anticipated |");
        let _ = writeln!(w, "|---|---|---:|---:|---:|---:|");
        for g in self.listed_groups().into_iter() {
            let _ = writeln!(
                w,
                "| {} | `{}` | {} | {} of {} | {} | {} |",
                labels.short(&g.group.to),
                Labels::selector(&g.group),
                g.calls,
                g.locations.iter().filter(|u| u.recommended).count(),
                g.locations.len(),
                g.edges_in,
                g.anticipated_in
            );
        }
        let _ = writeln!(w, "\n## Scale-out (state partitioned by address hash)\n");
        let _ = writeln!(
            w,
            "{} workers per node; a cross-partition transaction and a dependency across nodes each cost a round trip of {} gas-equivalents.\n",
            self.node_workers, self.round_trip_gas
        );
        let _ = writeln!(w, "| nodes | cross-partition txs | cross-partition gas | cross-node edges | simulated speedup |");
        let _ = writeln!(w, "|---:|---:|---:|---:|---:|");
        for (n, tx, gas, edges, s) in self.scaled() {
            let _ = writeln!(
                w,
                "| {n} | {:.1}% | {:.1}% | {edges} | {s:.2}x |",
                tx * 100.0,
                gas * 100.0
            );
        }
        md
    }
}

// ---------------------------------------------------------------------------------------------
// HTML

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1280px;margin:0 auto;padding:16px}
h1{font-size:1.5rem;margin:.4rem 0 1rem}h2{font-size:1.1rem;margin:0 0 .6rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:10px;margin-bottom:14px}
.card{background:#fff;border-radius:8px;padding:10px 12px;box-shadow:0 1px 2px #0002}
.card b{display:block;font-size:1.35rem}.card span{font-size:.8rem;color:#5a6275}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,560px),1fr));gap:14px}
section{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px #0002;margin-bottom:14px;min-width:0}
svg{width:100%;height:auto;display:block}svg text{font-size:12px;fill:#3a4152}
.note{font-size:.8rem;color:#5a6275;margin:.4rem 0 0}
.legend span{display:inline-block;margin-right:12px;font-size:.8rem}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px;border-radius:2px}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.8rem;width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #e3e6ec;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}td.l{text-align:left}
";

const BLUE: &str = "#3b6fd8";
const GREEN: &str = "#1f9d68";
const GRAY: &str = "#8a93a6";
const RED: &str = "#d9453d";

fn legend(items: &[(&str, &str)]) -> String {
    let mut s = String::from("<div class=\"legend\">");
    for (color, name) in items {
        let _ = write!(s, "<span><i style=\"background:{color}\"></i>{}</span>", esc(name));
    }
    s.push_str("</div>");
    s
}

impl Dossier {
    pub(crate) fn to_html(&self, labels: &Labels) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <title>Contention dossier {}</title><style>{CSS}</style></head><body><main>",
            esc(&self.range_text())
        );
        let _ = write!(h, "<h1>Contention dossier · blocks {}</h1>", esc(&self.range_text()));
        h.push_str("<div class=\"cards\">");
        let mut card = |value: String, what: &str| {
            let _ = write!(
                h,
                "<div class=\"card\"><b>{}</b><span>{}</span></div>",
                esc(&value),
                esc(what)
            );
        };
        card(self.blocks.len().to_string(), "blocks");
        card(self.txs().to_string(), "transactions");
        card(format!("{:.1}", self.gas() as f64 / 1e6), "Mgas");
        card(format!("{:.2}x", self.mean_bound()), "mean critical-path bound");
        card(self.edges().to_string(), "conflicting pairs");
        for (t, _, geo, cap, _, _, _) in self.measured() {
            card(
                format!("{geo:.2}x / {cap:.2}x"),
                &format!("measured vs ceiling @{t} threads (geo. mean)"),
            );
        }
        card(
            format!("{:.0}%", self.concentration(10) * 100.0),
            "edges linked by the top 10 locations",
        );
        h.push_str("</div><div class=\"grid\">");
        self.speedup_chart(&mut h);
        self.block_bars(&mut h);
        if let Some(b) = self.heaviest() {
            timeline(&mut h, b);
        }
        if let Some(b) = self.most_conflicted() {
            matrix(&mut h, b);
        }
        self.hot_bars(&mut h, labels);
        h.push_str("</div>");
        self.tables(&mut h, labels);
        h.push_str(
            "<p class=\"note\">Generated by <code>velarium analyze</code>; schema and definitions: \
             docs/dossier-schema.json and README.md (Contention dossier).</p></main></body></html>\n",
        );
        h
    }

    fn speedup_chart(&self, h: &mut String) {
        let sims = self.simulated();
        let measured = self.measured();
        let ymax = sims
            .iter()
            .flat_map(|s| [s.1, s.2, s.3])
            .chain(measured.iter().map(|m| m.2))
            .fold(1.0f64, f64::max)
            .ceil();
        let (w, ht, left, bottom, top) = (600.0, 300.0, 44.0, 30.0, 12.0);
        let x = |workers: f64| left + (workers.log2() / 5.0) * (w - left - 16.0);
        let y = |v: f64| top + (1.0 - v / ymax) * (ht - top - bottom);
        let _ = write!(h, "<section><h2>Speedup vs workers (range)</h2><svg viewBox=\"0 0 {w} {ht}\" role=\"img\">");
        let step = (ymax / 6.0).ceil().max(1.0);
        let mut v = 0.0;
        while v <= ymax {
            let _ = write!(
                h,
                "<line x1=\"{left}\" x2=\"{}\" y1=\"{y0:.1}\" y2=\"{y0:.1}\" stroke=\"#e3e6ec\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}x</text>",
                w - 16.0,
                left - 6.0,
                y(v) + 4.0,
                y0 = y(v)
            );
            v += step;
        }
        for wk in WORKERS {
            let _ = write!(
                h,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{wk}</text>",
                x(wk as f64),
                ht - 10.0
            );
        }
        let series = |h: &mut String, color: &str, dash: &str, values: Vec<(f64, f64)>| {
            let points: Vec<String> =
                values.iter().map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b))).collect();
            let _ = write!(
                h,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\" points=\"{}\"/>",
                points.join(" ")
            );
            for (a, b) in values {
                let _ = write!(
                    h,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                    x(a),
                    y(b)
                );
            }
        };
        series(h, GRAY, "5 4", sims.iter().map(|s| (s.0 as f64, s.3)).collect());
        series(h, BLUE, "", sims.iter().map(|s| (s.0 as f64, s.1)).collect());
        series(h, GREEN, "", sims.iter().map(|s| (s.0 as f64, s.2)).collect());
        for m in &measured {
            let _ = write!(
                h,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{RED}\"/>",
                x(m.0 as f64) - 5.0,
                y(m.2) - 5.0
            );
        }
        h.push_str("</svg>");
        h.push_str(&legend(&[
            (BLUE, "list schedule (block order)"),
            (GREEN, "critical-path-first"),
            (GRAY, "ceiling min(workers, bound)"),
            (RED, "measured (geo. mean)"),
        ]));
        h.push_str("<p class=\"note\">Simulated: range gas / sum of block makespans, durations = gas. Measured: wall-clock, oracle vs parallel engine.</p></section>");
    }

    fn block_bars(&self, h: &mut String) {
        let n = self.blocks.len().max(1);
        let ymax = self.blocks.iter().map(BlockDossier::bound).fold(2.0f64, f64::max).log2().ceil();
        let (w, ht, left, bottom, top) = (600.0, 300.0, 52.0, 54.0, 12.0);
        let bw = (w - left - 10.0) / n as f64;
        // Measured speedups can fall below 1x: the axis starts at the lowest power of two
        // under them (at most 1/8x).
        let ymin = self
            .blocks
            .iter()
            .flat_map(|b| b.measured.iter().map(Measured::speedup))
            .fold(1.0f64, f64::min)
            .max(0.125)
            .log2()
            .floor();
        let y = |v: f64| {
            let l = v.max(0.125).log2().clamp(ymin, ymax);
            top + (1.0 - (l - ymin) / (ymax - ymin)) * (ht - top - bottom)
        };
        let _ = write!(h, "<section><h2>Per block: bound, simulated and measured</h2><svg viewBox=\"0 0 {w} {ht}\" role=\"img\">");
        for e in (ymin as i32)..=(ymax as i32) {
            let v = 2f64.powi(e);
            let _ = write!(
                h,
                "<line x1=\"{left}\" x2=\"{}\" y1=\"{y0:.1}\" y2=\"{y0:.1}\" stroke=\"#e3e6ec\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}x</text>",
                w - 10.0,
                left - 6.0,
                y(v) + 4.0,
                y0 = y(v)
            );
        }
        let label_every = (n / 16).max(1);
        for (i, b) in self.blocks.iter().enumerate() {
            let x0 = left + i as f64 * bw;
            let yb = y(b.bound());
            let _ = write!(
                h,
                "<rect x=\"{:.1}\" y=\"{yb:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#c9d3ea\"><title>block {}: bound {:.2}x</title></rect>",
                x0 + bw * 0.1,
                bw * 0.8,
                (y(1.0) - yb).max(0.0),
                b.number,
                b.bound()
            );
            let cp8 = speedup(b.gas(), b.simulated[3].cp_first_makespan);
            let _ = write!(
                h,
                "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y8:.1}\" y2=\"{y8:.1}\" stroke=\"{GREEN}\" stroke-width=\"2\"/>",
                x0 + bw * 0.1,
                x0 + bw * 0.9,
                y8 = y(cp8)
            );
            if let Some(m) = b.measured.first() {
                let _ = write!(
                    h,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{:.1}\" fill=\"{RED}\"><title>block {}: measured {:.2}x at {} threads</title></circle>",
                    x0 + bw / 2.0,
                    y(m.speedup()),
                    (bw * 0.3).clamp(1.5, 4.0),
                    b.number,
                    m.speedup(),
                    m.threads
                );
            }
            if i % label_every == 0 {
                let _ = write!(
                    h,
                    "<text transform=\"translate({:.1},{}) rotate(-55)\" text-anchor=\"end\" style=\"font-size:9px\">{}</text>",
                    x0 + bw / 2.0,
                    ht - bottom + 10.0,
                    b.number
                );
            }
        }
        h.push_str("</svg>");
        let first = self.threads.first().copied().unwrap_or(0);
        h.push_str(&legend(&[
            ("#c9d3ea", "critical-path bound (log scale)"),
            (GREEN, "critical-path-first @ 8 workers"),
            (RED, &format!("measured @ {first} threads")),
        ]));
        h.push_str("</section>");
    }

    fn hot_bars(&self, h: &mut String, labels: &Labels) {
        let by_edges: Vec<(Loc, u64, String)> = self
            .hot
            .iter()
            .take(self.top)
            .map(|(loc, r)| (*loc, r.edges as u64, r.edges.to_string()))
            .collect();
        let note = format!(
            "Top location links {:.0}% of the range's {} conflicting pairs; the top 10 link {:.0}%.",
            self.concentration(1) * 100.0,
            self.edges(),
            self.concentration(10) * 100.0
        );
        bars(h, labels, "Hot locations (dependency edges)", &by_edges, BLUE, &note);
        let by_gas: Vec<(Loc, u64, String)> = self
            .hot_by_critical_gas()
            .into_iter()
            .map(|(loc, r)| {
                (*loc, r.critical_gas, format!("{:.2} Mgas", r.critical_gas as f64 / 1e6))
            })
            .collect();
        let note = "Gas of the critical-path transactions whose incoming critical link the location is part of, summed over the range.";
        bars(h, labels, "Hot locations (critical-path gas)", &by_gas, RED, note);
    }

    fn tables(&self, h: &mut String, labels: &Labels) {
        h.push_str("<section><h2>Blocks</h2><div class=\"scroll\"><table><tr><th>block</th><th>txs</th><th>Mgas</th><th>pairs</th><th>waves</th><th>widest wave</th><th>bound</th><th>list @8</th><th>CP-first @8</th>");
        for t in &self.threads {
            let _ = write!(h, "<th>measured @{t}</th><th>aborts @{t}</th>");
        }
        h.push_str("</tr>");
        for b in &self.blocks {
            let (_, size) = b.widest_wave();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{size}</td><td>{:.2}x</td><td>{:.2}x</td><td>{:.2}x</td>",
                b.number,
                b.graph.len(),
                b.gas() as f64 / 1e6,
                b.graph.edges.len(),
                b.waves.len(),
                b.bound(),
                speedup(b.gas(), b.simulated[3].list_makespan),
                speedup(b.gas(), b.simulated[3].cp_first_makespan),
            );
            for m in &b.measured {
                let _ = write!(h, "<td>{:.2}x</td><td>{}</td>", m.speedup(), m.aborts);
            }
            h.push_str("</tr>");
        }
        h.push_str("</table></div></section>");
        h.push_str("<div class=\"grid\"><section><h2>Observed access lists</h2><div class=\"scroll\"><table><tr><th>contract</th><th>selector</th><th>calls</th><th>recommended</th><th>edges in</th><th>anticipated</th></tr>");
        for g in self.listed_groups().into_iter() {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"l\"><code>{}</code></td><td>{}</td><td>{} of {}</td><td>{}</td><td>{}</td></tr>",
                esc(&labels.short(&g.group.to)),
                esc(&Labels::selector(&g.group)),
                g.calls,
                g.locations.iter().filter(|u| u.recommended).count(),
                g.locations.len(),
                g.edges_in,
                g.anticipated_in
            );
        }
        let _ = write!(
            h,
            "</table></div><p class=\"note\">Declared lists (locations touched by more than {:.0}% of a group's calls) would have announced {} of {} dependency edges ({:.0}%).</p></section>",
            ACCESS_LIST_MIN_SHARE * 100.0,
            self.access_lists.anticipated,
            self.access_lists.edges,
            share(self.access_lists.anticipated, self.access_lists.edges) * 100.0
        );
        h.push_str("<section><h2>Scale-out</h2><div class=\"scroll\"><table><tr><th>nodes</th><th>cross-partition txs</th><th>cross gas</th><th>cross-node edges</th><th>speedup</th></tr>");
        for (n, tx, gas, edges, s) in self.scaled() {
            let _ = write!(
                h,
                "<tr><td>{n}</td><td>{:.1}%</td><td>{:.1}%</td><td>{edges}</td><td>{s:.2}x</td></tr>",
                tx * 100.0,
                gas * 100.0
            );
        }
        let _ = write!(
            h,
            "</table></div><p class=\"note\">State partitioned by keccak(address); {} workers per node; a round trip costs {} gas-equivalents.</p></section></div>",
            self.node_workers, self.round_trip_gas
        );
    }
}

/// A section of horizontal bars: one per location, `value` its length, `text` printed after it.
fn bars(
    h: &mut String,
    labels: &Labels,
    title: &str,
    items: &[(Loc, u64, String)],
    color: &str,
    note: &str,
) {
    let max = items.iter().map(|i| i.1).max().unwrap_or(1).max(1) as f64;
    let row = 24.0;
    let (w, left) = (600.0, 230.0);
    let ht = row * items.len() as f64 + 10.0;
    let _ =
        write!(h, "<section><h2>{}</h2><svg viewBox=\"0 0 {w} {ht}\" role=\"img\">", esc(title));
    for (i, (loc, value, text)) in items.iter().enumerate() {
        let y0 = 4.0 + i as f64 * row;
        let bar = (w - left - 80.0) * *value as f64 / max;
        let mut name = labels.name(loc);
        if name.chars().count() > 36 {
            name = name.chars().take(35).collect::<String>() + "…";
        }
        let _ = write!(
            h,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{left}\" y=\"{y0:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{:#x}</title></rect><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            left - 6.0,
            y0 + 14.0,
            esc(&name),
            row - 8.0,
            loc.address(),
            left + bar + 4.0,
            y0 + 14.0,
            esc(text)
        );
    }
    h.push_str("</svg>");
    let _ = write!(h, "<p class=\"note\">{}</p></section>", esc(note));
}

/// The featured block's transactions at their earliest start (unlimited workers), the critical
/// path in red.
fn timeline(h: &mut String, b: &BlockDossier) {
    let n = b.graph.len().max(1);
    let finish = b.graph.earliest_finish();
    let span = finish.iter().copied().max().unwrap_or(1).max(1) as f64;
    let (w, left, top) = (600.0, 40.0, 8.0);
    let row = (360.0 / n as f64).clamp(0.4, 8.0);
    let ht = top + row * n as f64 + 26.0;
    let x = |gas: f64| left + gas / span * (w - left - 10.0);
    let _ = write!(
        h,
        "<section><h2>Critical path of block {} (most gas) on a transaction timeline</h2><svg viewBox=\"0 0 {w} {ht:.1}\" role=\"img\">",
        b.number
    );
    let on_path: HashSet<usize> = b.chain.path.chain.iter().copied().collect();
    for (i, (&end, &gas)) in finish.iter().zip(&b.graph.gas).enumerate() {
        let start = (end - gas) as f64;
        let color = if on_path.contains(&i) { RED } else { "#aebbd8" };
        let _ = write!(
            h,
            "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{:.2}\" fill=\"{color}\"/>",
            x(start),
            top + i as f64 * row,
            (x(end as f64) - x(start)).max(0.8),
            (row * 0.8).max(0.4)
        );
    }
    let points: Vec<String> = b
        .chain
        .path
        .chain
        .iter()
        .map(|&i| {
            format!(
                "{:.1},{:.1}",
                x((finish[i] - b.graph.gas[i]) as f64),
                top + (i as f64 + 0.4) * row
            )
        })
        .collect();
    let _ = write!(
        h,
        "<polyline fill=\"none\" stroke=\"{RED}\" stroke-width=\"1\" points=\"{}\"/>",
        points.join(" ")
    );
    let base = top + row * n as f64;
    let _ = write!(
        h,
        "<text x=\"{left}\" y=\"{:.1}\">0</text><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.2} Mgas (critical path)</text><text x=\"4\" y=\"{:.1}\">tx 0</text><text x=\"4\" y=\"{:.1}\">tx {}</text>",
        base + 16.0,
        w - 10.0,
        base + 16.0,
        span / 1e6,
        top + 8.0,
        base,
        n - 1
    );
    h.push_str("</svg>");
    h.push_str(&legend(&[
        (RED, "critical path"),
        ("#aebbd8", "other transactions at their earliest start"),
    ]));
    let _ = write!(
        h,
        "<p class=\"note\">{} transactions on the path, {:.2} of {:.2} Mgas: bound {:.2}x.</p></section>",
        b.chain.path.chain.len(),
        b.chain.path.chain_gas as f64 / 1e6,
        b.chain.path.total_gas as f64 / 1e6,
        b.bound()
    );
}

/// The featured block's conflict matrix: a dot at (column j, row i) for each edge j -> i.
fn matrix(h: &mut String, b: &BlockDossier) {
    let n = b.graph.len().max(1);
    let size = n as f64;
    let _ = write!(
        h,
        "<section><h2>Conflict matrix of block {} ({} pairs)</h2><svg viewBox=\"-{pad} -{pad} {s} {s}\" style=\"max-width:520px;margin:auto\" role=\"img\"><rect x=\"0\" y=\"0\" width=\"{size}\" height=\"{size}\" fill=\"#f0f2f6\"/>",
        b.number,
        b.graph.edges.len(),
        pad = size * 0.02,
        s = size * 1.04
    );
    let on_path: HashSet<(usize, usize)> = b.chain.links.iter().map(|l| (l.from, l.to)).collect();
    let dot = (size / 300.0).max(1.0);
    for e in &b.graph.edges {
        let color = if on_path.contains(&(e.from, e.to)) { RED } else { BLUE };
        let _ = write!(
            h,
            "<rect x=\"{}\" y=\"{}\" width=\"{dot}\" height=\"{dot}\" fill=\"{color}\"/>",
            e.from, e.to
        );
    }
    h.push_str("</svg>");
    h.push_str(&legend(&[
        (BLUE, "dependency j → i (column j, row i)"),
        (RED, "critical-path link"),
    ]));
    h.push_str("</section>");
}

// ---------------------------------------------------------------------------------------------
// The command

/// Times the oracle and the parallel engine interleaved on one block.
fn measure(
    spec: &ChainSpec,
    state: &InMemoryState,
    input: BlockInput<'_>,
    threads: &[usize],
    reps: usize,
) -> eyre::Result<Vec<Measured>> {
    let number = input.header.number;
    let oracle = Engine::Sequential
        .execute(spec, state, input)
        .map_err(|e| eyre!("block {number}: oracle failed: {e}"))?;
    let mut results = Vec::new();
    for &t in threads {
        let engine = Engine::Parallel { threads: t, min_txs: 0 };
        // Warm-up, not timed.
        drop(engine.execute_with_stats(spec, state, input)?);
        let (mut seq, mut par) = (Vec::new(), Vec::new());
        let mut last = None;
        let mut mismatch = None;
        for round in 0..reps {
            let oracle_first = round % 2 == 0;
            let time_oracle = || -> eyre::Result<Duration> {
                let t0 = Instant::now();
                let out = Engine::Sequential.execute(spec, state, input)?;
                let elapsed = t0.elapsed();
                drop(out);
                Ok(elapsed)
            };
            if oracle_first {
                seq.push(time_oracle()?);
            }
            let t0 = Instant::now();
            let (output, stats) = engine.execute_with_stats(spec, state, input)?;
            par.push(t0.elapsed());
            if let Err(what) = velarium_replay::compare_outputs_exactly(&output, &oracle) {
                mismatch = Some(what);
            }
            drop(output);
            last = Some(stats);
            if !oracle_first {
                seq.push(time_oracle()?);
            }
        }
        let stats = last.unwrap_or_default();
        seq.sort();
        par.sort();
        results.push(Measured {
            threads: t,
            oracle: seq[seq.len() / 2],
            parallel: par[par.len() / 2],
            aborts: stats.aborts,
            re_executions: stats.re_executions(input.transactions.len()),
            validations: stats.validations,
            suspensions: stats.suspensions,
            waits: stats.waits,
            storage_credits: stats.storage_credits,
            hot_spots: stats.hot_spots().to_vec(),
            mismatch,
        });
    }
    Ok(results)
}

/// Traces, analyses and measures one block executed on `state`.
fn analyse_block(
    args: &Args,
    spec: &ChainSpec,
    state: &InMemoryState,
    input: BlockInput<'_>,
) -> eyre::Result<BlockDossier> {
    let number = input.header.number;
    let trace = trace_accesses(spec, state, input)
        .map_err(|e| eyre!("block {number}: tracing failed: {e}"))?;
    let trace: Vec<TxAccess<Loc>> = trace
        .into_iter()
        .map(|t| TxAccess {
            reads: t.reads.into_iter().map(Loc::from).collect(),
            reads_ignoring_credits: t.reads_ignoring_credits.into_iter().map(Loc::from).collect(),
            writes: t.writes.into_iter().map(Loc::from).collect(),
            credits: t.credits.into_iter().map(Loc::from).collect(),
            gas: t.gas,
        })
        .collect();
    let mut analysed = BlockDossier::analyse(
        number,
        trace,
        call_groups(input.transactions),
        args.round_trip_gas,
        args.node_workers,
    );
    analysed.measured = measure(spec, state, input, &args.threads, args.reps)?;
    note!(
        "block {number}: {} txs, {} pairs, bound {:.2}x, measured {}",
        analysed.graph.len(),
        analysed.graph.edges.len(),
        analysed.bound(),
        analysed
            .measured
            .iter()
            .map(|m| format!("{:.2}x @{}", m.speedup(), m.threads))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(analysed)
}

/// The mainnet block folders and archives of `args.sources`, each on its own pre-state.
fn analyse_mainnet_blocks(args: &Args) -> eyre::Result<Vec<BlockDossier>> {
    let mut dirs = Vec::new();
    for source in &args.sources {
        dirs.extend(find_block_dirs(source, &args.cache_dir)?);
    }
    let spec = velarium_replay::mainnet_spec();
    let mut blocks = Vec::new();
    for dir in &dirs {
        let block = velarium_replay::load_block(dir)
            .wrap_err_with(|| format!("loading {}", dir.display()))?;
        let input = BlockInput {
            header: &block.header,
            transactions: &block.transactions,
            ommers: &block.ommers,
            withdrawals: block.withdrawals.as_deref(),
        };
        blocks.push(analyse_block(args, &spec, &block.state, input)?);
    }
    Ok(blocks)
}

/// The chain files of `args.sources` imported on top of `genesis`: every block with
/// transactions in the `--from`/`--to` range is analysed on the head state before it, then
/// every block is imported (validated, executed, verified against its header).
fn analyse_chain(args: &Args, genesis: &Path) -> eyre::Result<Vec<BlockDossier>> {
    let (from, to) = (args.from.unwrap_or(0), args.to.unwrap_or(u64::MAX));
    if from > to {
        bail!("--from {from} is after --to {to}");
    }
    let genesis = load_genesis_file(genesis)?;
    let genesis_hash = genesis.header.hash_slow();
    // The head's total difficulty, to resolve a pending merge exactly as the import does.
    let mut total_difficulty = genesis.header.difficulty;
    let mut chain =
        Blockchain::new(genesis.spec, genesis.header, genesis.state, Engine::Sequential);
    chain.set_prune(true);
    note!("genesis {genesis_hash}");
    let mut analysed = Vec::new();
    for path in &args.sources {
        let bytes = read_chain_file(path)?;
        let name = path.display().to_string();
        let mut in_file = 0usize;
        for block in chain_blocks(&bytes, &name) {
            // The decoding error names the block after the last decoded one.
            let block = block?;
            in_file += 1;
            let number = block.header.number;
            let hash = block.header.hash_slow();
            if block.header.parent_hash != chain.head_hash() {
                bail!(
                    "block {number} ({hash}): its parent {} is not the head #{} {} \
                     (wrong --genesis, or blocks missing or out of order)",
                    block.header.parent_hash,
                    chain.head().number,
                    chain.head_hash()
                );
            }
            if (from..=to).contains(&number) && !block.body.transactions.is_empty() {
                let pending = chain.spec().pending_merge_ttd();
                let resolved = pending.filter(|ttd| total_difficulty >= *ttd).map(|_| {
                    let mut spec = chain.spec().clone();
                    spec.set_merge_block(number);
                    spec
                });
                let spec = resolved.as_ref().unwrap_or_else(|| chain.spec());
                let transactions = recover_senders(&block.body.transactions)
                    .map_err(|e| eyre!("block {number} ({hash}): {e}"))?;
                let input = BlockInput {
                    header: &block.header,
                    transactions: &transactions,
                    ommers: &block.body.ommers,
                    withdrawals: block.body.withdrawals.as_ref().map(|w| w.as_slice()),
                };
                let dossier = analyse_block(args, spec, chain.head_state(), input)
                    .wrap_err_with(|| format!("analysing block {number} ({hash})"))?;
                analysed.push(dossier);
            }
            let imported = chain
                .import_block(&block)
                .wrap_err_with(|| format!("importing block {number} ({hash})"))?;
            if !imported.is_head {
                bail!("block {number} ({hash}) did not become the head: the chain forks");
            }
            total_difficulty += block.header.difficulty;
        }
        if in_file == 0 {
            bail!("{name}: no blocks in the file");
        }
    }
    if analysed.is_empty() {
        bail!("no block with transactions in the range analysed (head #{})", chain.head().number);
    }
    note!("imported and verified up to #{} {}", chain.head().number, chain.head_hash());
    Ok(analysed)
}

fn write_file(path: &Path, text: &str) -> eyre::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .wrap_err_with(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).wrap_err_with(|| format!("writing {}", path.display()))
}

pub(crate) fn run(args: Args) -> eyre::Result<ExitCode> {
    if args.reps == 0 || args.threads.is_empty() || args.threads.contains(&0) {
        bail!("--reps and every --threads value must be at least 1");
    }
    if args.node_workers == 0 {
        bail!("--node-workers must be at least 1");
    }
    let labels = match &args.labels {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .wrap_err_with(|| format!("cannot read labels {}", path.display()))?;
            Labels::parse(&text).wrap_err_with(|| format!("labels {}", path.display()))?
        }
        None => Labels::parse(DEFAULT_LABELS)?,
    };
    let mut blocks = match &args.genesis {
        Some(genesis) => analyse_chain(&args, genesis)?,
        None => analyse_mainnet_blocks(&args)?,
    };
    blocks.sort_by_key(|b| b.number);
    let dossier = Dossier::new(
        blocks,
        args.threads.clone(),
        args.reps,
        args.top,
        args.round_trip_gas,
        args.node_workers,
    );
    let markdown = dossier.to_markdown(&labels);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&dossier.to_json(&labels))?;
        write_file(path, &(text + "\n"))?;
        note!("wrote {}", path.display());
    }
    if let Some(path) = &args.markdown {
        write_file(path, &markdown)?;
        note!("wrote {}", path.display());
    }
    if let Some(path) = &args.html {
        write_file(path, &dossier.to_html(&labels))?;
        note!("wrote {}", path.display());
    }
    if args.json.is_none() && args.markdown.is_none() && args.html.is_none() {
        out!("{markdown}");
    }
    let mismatches: Vec<String> = dossier
        .blocks
        .iter()
        .flat_map(|b| {
            b.measured.iter().filter_map(move |m| {
                m.mismatch
                    .as_ref()
                    .map(|what| format!("block {} at {} threads: {what}", b.number, m.threads))
            })
        })
        .collect();
    for m in &mismatches {
        note!("error: parallel output differs from the oracle: {m}");
    }
    Ok(if mismatches.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
#[path = "../tests/support/json_schema.rs"]
mod json_schema;

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(reads: Vec<Loc>, writes: Vec<Loc>, credits: Vec<Loc>, gas: u64) -> TxAccess<Loc> {
        TxAccess { reads, reads_ignoring_credits: Vec::new(), writes, credits, gas }
    }

    /// A hand-made block: three swaps on one pool slot (a chain), two independent transfers.
    fn sample() -> Dossier {
        let pool: Address = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D".parse().unwrap();
        let coinbase = Address::repeat_byte(0xcb);
        let slot = Loc::Storage(pool, U256::from(8));
        let sender = |i: u8| Loc::Account(Address::repeat_byte(i));
        let swap = |i: u8| {
            acc(vec![sender(i), slot], vec![sender(i), slot], vec![Loc::Account(coinbase)], 100_000)
        };
        let transfer = |i: u8| {
            acc(
                vec![sender(i)],
                vec![sender(i), sender(i + 100)],
                vec![Loc::Account(coinbase)],
                21_000,
            )
        };
        let trace = vec![swap(1), transfer(2), swap(3), transfer(4), swap(5)];
        let call = Some(Call { to: pool, selector: Some([0x38, 0xed, 0x17, 0x39]) });
        let groups = vec![call, None, call, None, call];
        let mut block = BlockDossier::analyse(7, trace, groups, 100_000, 8);
        block.measured = vec![Measured {
            threads: 2,
            oracle: Duration::from_millis(2),
            parallel: Duration::from_millis(1),
            aborts: 1,
            re_executions: 1,
            validations: 6,
            suspensions: 0,
            waits: 2,
            storage_credits: 0,
            hot_spots: vec![velarium_executor::HotSpot {
                address: alloy_primitives::Address::repeat_byte(0xcc),
                slot: Some(alloy_primitives::U256::from(5)),
                failed_validations: 3,
                waits: 9,
            }],
            mismatch: None,
        }];
        Dossier::new(vec![block], vec![2], 1, 10, 100_000, 8)
    }

    #[test]
    fn sample_block_analysis() {
        let d = sample();
        let b = &d.blocks[0];
        let pairs: Vec<_> = b.graph.edges.iter().map(|e| (e.from, e.to)).collect();
        assert_eq!(pairs, vec![(0, 2), (2, 4)]);
        assert_eq!(b.levels, vec![0, 0, 1, 0, 2]);
        assert_eq!(b.widest_wave(), (0, 3));
        assert_eq!(b.chain.path.chain, vec![0, 2, 4]);
        assert!((b.bound() - 342_000.0 / 300_000.0).abs() < 1e-12);
        assert_eq!(d.hot[0].1.edges, 2);
        assert_eq!(d.concentration(1), 1.0);
        // The pool slot is recommended for the swap group: both edges anticipated.
        assert_eq!((d.access_lists.anticipated, d.access_lists.edges), (2, 2));
        for (w, list, cp, ceil) in d.simulated() {
            assert!(list <= ceil + 1e-9 && cp <= ceil + 1e-9, "{w}");
        }
    }

    #[test]
    fn json_matches_the_documented_schema() {
        let labels = Labels::parse(DEFAULT_LABELS).unwrap();
        let value = sample().to_json(&labels);
        assert_eq!(value["schema_version"], 1);
        let schema: Value =
            serde_json::from_str(include_str!("../../../docs/dossier-schema.json")).unwrap();
        let errors = json_schema::validate(&schema, &value);
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(value["hot_by_edges"][0]["label"], "Uniswap V2 Router 02");
        // The validator does catch a wrong type.
        let mut broken = value;
        broken["range"]["txs"] = json!("five");
        assert!(!json_schema::validate(&schema, &broken).is_empty());
    }

    #[test]
    fn markdown_and_html_are_self_contained_reports() {
        let labels = Labels::parse(DEFAULT_LABELS).unwrap();
        let d = sample();
        let md = d.to_markdown(&labels);
        assert!(md.contains("## Executive summary"));
        assert!(md.contains("Measured at 2 threads"));
        assert!(md.contains("## Contention measured in Block-STM"));
        assert!(
            md.contains(&format!(
                "| 7 | 2 | `{:#x}` | `0x5` | 3 | 9 |",
                Address::repeat_byte(0xcc)
            )),
            "{md}"
        );
        let html = d.to_html(&labels);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<svg"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
