//! The contention dossier: everything about a block's contention that its transactions'
//! actual accesses reveal, generic over the location type.
//!
//! * [`ConflictGraph`]: the dependency DAG under exactly the rule [`crate::critical_path`]
//!   documents: transaction `i` depends on `j < i` when `j` is the last writer before `i` of a
//!   location `i` reads or writes, or when `j` credited such a location after its last full
//!   write; a read ignoring credits depends on the last full write only. Commutative credits
//!   never order the transactions that make them. Every edge keeps the locations that link it.
//! * Dependency waves: the level of each transaction (0 without dependencies, else one more
//!   than its deepest dependency) and the widest wave.
//! * [`CriticalChain`]: the gas-weighted critical path, its bound, and the locations linking
//!   consecutive transactions of the chain.
//! * [`list_schedule`]: a simulated list schedule on `workers` workers, every transaction
//!   lasting its gas, in block order ([`Priority::BlockOrder`]) or longest-remaining-path first
//!   ([`Priority::CriticalPathFirst`]). Its speedup never exceeds `min(workers, bound)`.
//! * [`hot_locations`]: per location, the dependency edges it links, the critical-path gas it
//!   carries and the transactions it serialised.
//! * [`AccessListBuilder`]: observed access lists per group (the binary groups calls by contract
//!   and 4-byte selector), and how many dependency edges they would have announced.
//! * [`scale_out`]: state partitioned over `nodes` by a location hash, with a round trip charged
//!   to cross-partition work.

use crate::{critical_path, CriticalPath, TxAccess};
use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, HashMap, HashSet},
    hash::Hash,
};

/// One dependency: `to` must follow `from` because of `locations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge<K> {
    /// The earlier transaction.
    pub from: usize,
    /// The later transaction, which depends on `from`.
    pub to: usize,
    /// The locations that link them, in the order `to` touched them.
    pub locations: Vec<K>,
}

/// The dependency DAG of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictGraph<K> {
    /// Every dependency, sorted by `(to, from)`; one per ordered pair (the conflicting pairs).
    pub edges: Vec<Edge<K>>,
    /// Per transaction, the transactions it depends on, ascending.
    pub preds: Vec<Vec<usize>>,
    /// Per transaction, the transactions depending on it, ascending.
    pub succs: Vec<Vec<usize>>,
    /// Per transaction, its gas.
    pub gas: Vec<u64>,
}

impl<K: Eq + Hash + Clone> ConflictGraph<K> {
    /// Builds the graph from the transactions' accesses (see the module docs for the rule).
    pub fn new(txs: &[TxAccess<K>]) -> Self {
        let mut last_writer: HashMap<K, usize> = HashMap::new();
        let mut credits_since_write: HashMap<K, Vec<usize>> = HashMap::new();
        let mut edges = Vec::new();
        let mut preds = vec![Vec::new(); txs.len()];
        let mut succs = vec![Vec::new(); txs.len()];
        for (i, tx) in txs.iter().enumerate() {
            let mut deps: BTreeMap<usize, Vec<K>> = BTreeMap::new();
            let mut link = |j: usize, key: &K| {
                let locations = deps.entry(j).or_default();
                if !locations.contains(key) {
                    locations.push(key.clone());
                }
            };
            for key in tx.reads.iter().chain(&tx.writes) {
                if let Some(&j) = last_writer.get(key) {
                    link(j, key);
                }
                for &j in credits_since_write.get(key).into_iter().flatten() {
                    link(j, key);
                }
            }
            for key in &tx.reads_ignoring_credits {
                if let Some(&j) = last_writer.get(key) {
                    link(j, key);
                }
            }
            for (j, locations) in deps {
                preds[i].push(j);
                succs[j].push(i);
                edges.push(Edge { from: j, to: i, locations });
            }
            for key in &tx.writes {
                last_writer.insert(key.clone(), i);
                credits_since_write.remove(key);
            }
            for key in &tx.credits {
                let credits = credits_since_write.entry(key.clone()).or_default();
                if credits.last() != Some(&i) {
                    credits.push(i);
                }
            }
        }
        for s in &mut succs {
            s.sort_unstable();
        }
        Self { edges, preds, succs, gas: txs.iter().map(|t| t.gas).collect() }
    }
}

impl<K> ConflictGraph<K> {
    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.gas.len()
    }

    /// Whether the block has no transactions.
    pub fn is_empty(&self) -> bool {
        self.gas.is_empty()
    }

    /// Gas of all transactions.
    pub fn total_gas(&self) -> u64 {
        self.gas.iter().sum()
    }

    /// The edge from `from` to `to`, if any.
    pub fn edge(&self, from: usize, to: usize) -> Option<&Edge<K>> {
        let start = self.edges.partition_point(|e| (e.to, e.from) < (to, from));
        self.edges.get(start).filter(|e| e.from == from && e.to == to)
    }

    /// The dependency level of each transaction: 0 without dependencies, else one more than
    /// its deepest dependency. Transactions of one level (a wave) are mutually independent.
    pub fn levels(&self) -> Vec<usize> {
        let mut level = vec![0usize; self.len()];
        for i in 0..self.len() {
            level[i] = self.preds[i].iter().map(|&j| level[j] + 1).max().unwrap_or(0);
        }
        level
    }

    /// The number of transactions in each wave, by level.
    pub fn wave_sizes(&self) -> Vec<usize> {
        let levels = self.levels();
        let mut sizes = vec![0usize; levels.iter().max().map_or(0, |m| m + 1)];
        for l in levels {
            sizes[l] += 1;
        }
        sizes
    }

    /// Per transaction, the gas of the heaviest chain ending with it (its earliest finish with
    /// unlimited workers).
    pub fn earliest_finish(&self) -> Vec<u64> {
        let mut finish = vec![0u64; self.len()];
        for i in 0..self.len() {
            let start = self.preds[i].iter().map(|&j| finish[j]).max().unwrap_or(0);
            finish[i] = start + self.gas[i];
        }
        finish
    }

    /// Per transaction, the gas of the heaviest chain starting with it (its "bottom level").
    pub fn remaining_path(&self) -> Vec<u64> {
        let mut rest = vec![0u64; self.len()];
        for i in (0..self.len()).rev() {
            rest[i] = self.gas[i] + self.succs[i].iter().map(|&j| rest[j]).max().unwrap_or(0);
        }
        rest
    }
}

/// The critical path with the locations linking its consecutive transactions.
#[derive(Debug, Clone, PartialEq)]
pub struct CriticalChain<K> {
    /// The chain, its gas and bound, exactly as [`crate::critical_path`] computes them.
    pub path: CriticalPath,
    /// For each consecutive pair of the chain, the edge (with its linking locations).
    pub links: Vec<Edge<K>>,
}

impl<K: Eq + Hash + Clone> CriticalChain<K> {
    /// The critical path of `txs`, its links taken from `graph` (built from the same `txs`).
    pub fn new(txs: &[TxAccess<K>], graph: &ConflictGraph<K>) -> Self {
        let path = critical_path(txs);
        let links = path
            .chain
            .windows(2)
            .map(|w| {
                graph.edge(w[0], w[1]).cloned().unwrap_or_else(|| Edge {
                    from: w[0],
                    to: w[1],
                    locations: Vec::new(),
                })
            })
            .collect();
        Self { path, links }
    }
}

/// Which ready transaction a free worker takes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// The lowest index (block order).
    BlockOrder,
    /// The longest remaining gas-weighted path to the end of the block (ties: block order).
    CriticalPathFirst,
}

/// A simulated schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Start of each transaction, in gas units.
    pub start: Vec<u64>,
    /// Where each transaction ran (node, worker).
    pub worker: Vec<(usize, usize)>,
    /// Finish of the last transaction.
    pub makespan: u64,
    /// `total gas / makespan` (1.0 for an empty or gas-free block).
    pub speedup: f64,
}

/// The machine a [`simulate`] run models.
#[derive(Debug, Clone)]
pub struct Machine<'a> {
    /// Workers per node.
    pub workers_per_node: usize,
    /// Nodes.
    pub nodes: usize,
    /// Per transaction, the node it runs on (all 0 for one node).
    pub home: &'a [usize],
    /// Per transaction, extra duration beyond its gas.
    pub extra: &'a [u64],
    /// Delay between the end of a dependency on another node and the start of its dependant.
    pub cross_node_delay: u64,
}

/// A list schedule of the graph on `workers` workers of one machine, durations = gas.
pub fn list_schedule<K>(graph: &ConflictGraph<K>, workers: usize, priority: Priority) -> Schedule {
    let home = vec![0; graph.len()];
    let extra = vec![0; graph.len()];
    let machine = Machine {
        workers_per_node: workers,
        nodes: 1,
        home: &home,
        extra: &extra,
        cross_node_delay: 0,
    };
    simulate(graph, &machine, priority)
}

/// Event-driven list scheduling: whenever a worker of a node is free and a transaction homed
/// there is ready (all dependencies finished, plus the cross-node delay for those that ran
/// elsewhere), the highest-priority one starts. Durations are gas plus `machine.extra`.
pub fn simulate<K>(
    graph: &ConflictGraph<K>,
    machine: &Machine<'_>,
    priority: Priority,
) -> Schedule {
    let n = graph.len();
    let workers = machine.workers_per_node.max(1);
    let nodes = machine.nodes.max(1);
    let rank: Vec<u64> = match priority {
        Priority::BlockOrder => vec![0; n],
        Priority::CriticalPathFirst => graph.remaining_path(),
    };
    // Max-heap key: higher rank first, then lower index.
    let key = |i: usize| (rank[i], Reverse(i));
    let duration = |i: usize| graph.gas[i] + machine.extra.get(i).copied().unwrap_or(0);
    let mut missing: Vec<usize> = graph.preds.iter().map(Vec::len).collect();
    let mut ready_at = vec![0u64; n];
    let mut start = vec![0u64; n];
    let mut finish = vec![0u64; n];
    let mut worker = vec![(0usize, 0usize); n];
    // Transactions whose dependencies are done, waiting for their ready time.
    let mut pending: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut ready: Vec<BinaryHeap<(u64, Reverse<usize>)>> = vec![BinaryHeap::new(); nodes];
    let mut free: Vec<Vec<usize>> = (0..nodes).map(|_| (0..workers).rev().collect()).collect();
    let mut running: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    for (i, _) in missing.iter().enumerate().filter(|(_, m)| **m == 0) {
        pending.push(Reverse((0, i)));
    }
    let mut now = 0u64;
    let mut done = 0usize;
    while done < n {
        while let Some(&Reverse((t, i))) = pending.peek() {
            if t > now {
                break;
            }
            pending.pop();
            ready[machine.home[i] % nodes].push(key(i));
        }
        for node in 0..nodes {
            while !free[node].is_empty() {
                let Some((_, Reverse(i))) = ready[node].pop() else { break };
                let w = free[node].pop().unwrap_or_default();
                start[i] = now;
                finish[i] = now + duration(i);
                worker[i] = (node, w);
                running.push(Reverse((finish[i], i)));
            }
        }
        let next_finish = running.peek().map(|r| r.0 .0);
        let next_ready = pending.peek().map(|r| r.0 .0);
        now = match (next_finish, next_ready) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        while let Some(&Reverse((t, i))) = running.peek() {
            if t > now {
                break;
            }
            running.pop();
            done += 1;
            let (node, w) = worker[i];
            free[node].push(w);
            for &s in &graph.succs[i] {
                let delay =
                    if machine.home[s] % nodes == node { 0 } else { machine.cross_node_delay };
                ready_at[s] = ready_at[s].max(finish[i] + delay);
                missing[s] -= 1;
                if missing[s] == 0 {
                    pending.push(Reverse((ready_at[s], s)));
                }
            }
        }
    }
    let makespan = finish.iter().copied().max().unwrap_or(0);
    let total = graph.total_gas();
    let speedup = if makespan == 0 { 1.0 } else { total as f64 / makespan as f64 };
    Schedule { start, worker, makespan, speedup }
}

/// What one location did to a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotLocation<K> {
    /// The location.
    pub key: K,
    /// Dependency edges it links (an edge linked by several locations counts for each).
    pub edges: usize,
    /// Gas of the critical-path transactions whose incoming critical link it is part of.
    pub critical_gas: u64,
    /// The transactions it serialised: the later end of each edge it links, ascending.
    pub txs: Vec<usize>,
}

/// Every location that links at least one dependency edge, most edges first (ties: most
/// critical-path gas).
pub fn hot_locations<K: Eq + Hash + Clone>(
    graph: &ConflictGraph<K>,
    chain: &CriticalChain<K>,
) -> Vec<HotLocation<K>> {
    let mut by_key: HashMap<K, HotLocation<K>> = HashMap::new();
    for edge in &graph.edges {
        for key in &edge.locations {
            let hot = by_key.entry(key.clone()).or_insert_with(|| HotLocation {
                key: key.clone(),
                edges: 0,
                critical_gas: 0,
                txs: Vec::new(),
            });
            hot.edges += 1;
            if hot.txs.last() != Some(&edge.to) {
                hot.txs.push(edge.to);
            }
        }
    }
    for link in &chain.links {
        for key in &link.locations {
            if let Some(hot) = by_key.get_mut(key) {
                hot.critical_gas += graph.gas[link.to];
            }
        }
    }
    let mut hot: Vec<_> = by_key.into_values().collect();
    // Deterministic order: edges, critical gas, then the first transaction serialised.
    hot.sort_by(|a, b| {
        (b.edges, b.critical_gas, a.txs.first()).cmp(&(a.edges, a.critical_gas, b.txs.first()))
    });
    hot
}

/// Edges of `graph` that at least one location of `top` links.
pub fn edges_linked_by<K: Eq + Hash>(graph: &ConflictGraph<K>, top: &HashSet<K>) -> usize {
    graph.edges.iter().filter(|e| e.locations.iter().any(|k| top.contains(k))).count()
}

/// How often the calls of one group touched one location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationUse<K> {
    /// The location.
    pub key: K,
    /// Calls that read it (ordinary reads or reads ignoring credits).
    pub reads: usize,
    /// Calls that wrote or credited it.
    pub writes: usize,
    /// Calls that touched it at all.
    pub calls: usize,
    /// Whether the recommended access list holds it.
    pub recommended: bool,
}

/// The observed access list of one group of calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAccessList<K, G> {
    /// The group (contract and selector in the binary).
    pub group: G,
    /// Calls observed.
    pub calls: usize,
    /// Gas of those calls.
    pub gas: u64,
    /// Every location touched, most-touched first.
    pub locations: Vec<LocationUse<K>>,
    /// Dependency edges ending at a call of this group.
    pub edges_in: usize,
    /// Of those, the edges the access lists would have announced (see [`AccessLists`]).
    pub anticipated_in: usize,
}

/// Accumulates, per group, which locations its calls touched.
#[derive(Debug, Clone)]
pub struct AccessListBuilder<K, G> {
    groups: HashMap<G, GroupUses<K>>,
}

/// Calls, gas, and per location (calls reading, calls writing, calls touching).
type GroupUses<K> = (usize, u64, HashMap<K, (usize, usize, usize)>);

impl<K, G> Default for AccessListBuilder<K, G> {
    fn default() -> Self {
        Self { groups: HashMap::new() }
    }
}

impl<K: Eq + Hash + Clone + Ord, G: Eq + Hash + Clone + Ord> AccessListBuilder<K, G> {
    /// Records one block: `groups[i]` is transaction `i`'s group (`None`: not groupable, such
    /// as a contract creation).
    pub fn add_block(&mut self, txs: &[TxAccess<K>], groups: &[Option<G>]) {
        for (tx, group) in txs.iter().zip(groups) {
            let Some(group) = group else { continue };
            let (calls, gas, uses) = self.groups.entry(group.clone()).or_default();
            *calls += 1;
            *gas += tx.gas;
            let read: HashSet<&K> = tx.reads.iter().chain(&tx.reads_ignoring_credits).collect();
            let written: HashSet<&K> = tx.writes.iter().chain(&tx.credits).collect();
            for key in read.union(&written) {
                let entry = uses.entry((*key).clone()).or_default();
                entry.0 += usize::from(read.contains(key));
                entry.1 += usize::from(written.contains(key));
                entry.2 += 1;
            }
        }
    }

    /// The recommended access list of a group holds every location that more than `min_share`
    /// of its calls touched (0.5: a strict majority, so locations tied to one caller drop out
    /// as soon as the group has two calls).
    pub fn finish(self, min_share: f64) -> AccessLists<K, G> {
        let mut groups: Vec<GroupAccessList<K, G>> = self
            .groups
            .into_iter()
            .map(|(group, (calls, gas, uses))| {
                let mut locations: Vec<LocationUse<K>> = uses
                    .into_iter()
                    .map(|(key, (reads, writes, touched))| LocationUse {
                        key,
                        reads,
                        writes,
                        calls: touched,
                        recommended: touched as f64 > min_share * calls as f64,
                    })
                    .collect();
                locations.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.key.cmp(&b.key)));
                GroupAccessList { group, calls, gas, locations, edges_in: 0, anticipated_in: 0 }
            })
            .collect();
        groups.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.group.cmp(&b.group)));
        let index = groups.iter().enumerate().map(|(i, g)| (g.group.clone(), i)).collect();
        AccessLists { groups, index, edges: 0, anticipated: 0 }
    }
}

/// Observed access lists and what they would have announced.
///
/// An edge `j -> i` is **anticipated** when one of its linking locations is in the
/// recommended access list of `j`'s group *and* of `i`'s group: both transactions would have
/// declared it, so a scheduler reading the declarations would have ordered `i` after `j`
/// instead of executing it optimistically and aborting it. Transactions without a group never
/// anticipate anything.
#[derive(Debug, Clone)]
pub struct AccessLists<K, G> {
    /// The groups, most calls first.
    pub groups: Vec<GroupAccessList<K, G>>,
    index: HashMap<G, usize>,
    /// Dependency edges counted with [`AccessLists::count_block`].
    pub edges: usize,
    /// Of those, the anticipated ones.
    pub anticipated: usize,
}

impl<K: Eq + Hash, G: Eq + Hash> AccessLists<K, G> {
    /// Whether the recommended access list of `group` holds `key`.
    pub fn recommends(&self, group: &G, key: &K) -> bool {
        self.index.get(group).is_some_and(|&g| {
            self.groups[g].locations.iter().any(|u| u.recommended && &u.key == key)
        })
    }

    /// Counts a block's edges, anticipated or not; returns `(anticipated, edges)` of the block.
    pub fn count_block(
        &mut self,
        graph: &ConflictGraph<K>,
        groups: &[Option<G>],
    ) -> (usize, usize) {
        let mut anticipated = 0;
        for edge in &graph.edges {
            let hit = match (&groups[edge.from], &groups[edge.to]) {
                (Some(a), Some(b)) => {
                    edge.locations.iter().any(|k| self.recommends(a, k) && self.recommends(b, k))
                }
                _ => false,
            };
            anticipated += usize::from(hit);
            if let Some(g) = groups[edge.to].as_ref().and_then(|g| self.index.get(g)) {
                self.groups[*g].edges_in += 1;
                self.groups[*g].anticipated_in += usize::from(hit);
            }
        }
        self.edges += graph.edges.len();
        self.anticipated += anticipated;
        (anticipated, graph.edges.len())
    }
}

/// A block's state partitioned over nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleOut {
    /// Nodes.
    pub nodes: usize,
    /// Transactions touching more than one partition.
    pub cross_txs: usize,
    /// Their gas.
    pub cross_gas: u64,
    /// Dependency edges between transactions homed on different nodes.
    pub cross_edges: usize,
    /// The simulated schedule (critical-path-first on every node).
    pub schedule: Schedule,
}

/// Partitions state by `partition(key) % nodes` (commutative credits excluded: they travel as
/// deltas merged at the end of the block). A transaction runs on the node holding most of the
/// locations it reads or writes (ties: the lowest node); if it touches another partition it
/// pays one `round_trip` (fetching remote state), and a dependency on a transaction of another
/// node delays it by one `round_trip` too. Each node has `workers_per_node` workers.
pub fn scale_out<K>(
    txs: &[TxAccess<K>],
    graph: &ConflictGraph<K>,
    partition: impl Fn(&K) -> u64,
    nodes: usize,
    workers_per_node: usize,
    round_trip: u64,
) -> ScaleOut {
    let nodes = nodes.max(1);
    let mut home = Vec::with_capacity(txs.len());
    let mut extra = Vec::with_capacity(txs.len());
    let (mut cross_txs, mut cross_gas) = (0, 0);
    for tx in txs {
        let mut count = vec![0usize; nodes];
        for key in tx.reads.iter().chain(&tx.reads_ignoring_credits).chain(&tx.writes) {
            count[(partition(key) % nodes as u64) as usize] += 1;
        }
        let node = (0..nodes).max_by_key(|&n| (count[n], Reverse(n))).unwrap_or(0);
        let touched = count.iter().filter(|&&c| c > 0).count();
        home.push(node);
        if touched > 1 {
            cross_txs += 1;
            cross_gas += tx.gas;
            extra.push(round_trip);
        } else {
            extra.push(0);
        }
    }
    let cross_edges = graph.edges.iter().filter(|e| home[e.from] != home[e.to]).count();
    let machine = Machine {
        workers_per_node,
        nodes,
        home: &home,
        extra: &extra,
        cross_node_delay: round_trip,
    };
    let schedule = simulate(graph, &machine, Priority::CriticalPathFirst);
    ScaleOut { nodes, cross_txs, cross_gas, cross_edges, schedule }
}

/// The ceiling any schedule on `workers` workers obeys: `min(workers, bound)`.
pub fn ceiling(workers: usize, bound: f64) -> f64 {
    (workers as f64).min(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::tx;
    use proptest::prelude::*;

    fn pairs(graph: &ConflictGraph<u32>) -> Vec<(usize, usize)> {
        graph.edges.iter().map(|e| (e.from, e.to)).collect()
    }

    /// A diamond plus a straggler: 0 writes A; 1 and 2 read A and write B and C; 3 reads B and
    /// C; 4 is independent.
    fn diamond() -> Vec<TxAccess<u32>> {
        vec![
            tx(&[], &[1], 100),
            tx(&[1], &[2], 50),
            tx(&[1], &[3], 200),
            tx(&[2, 3], &[], 10),
            tx(&[9], &[9], 30),
        ]
    }

    #[test]
    fn diamond_graph_waves_and_critical_path() {
        let txs = diamond();
        let graph = ConflictGraph::new(&txs);
        assert_eq!(pairs(&graph), vec![(0, 1), (0, 2), (1, 3), (2, 3)]);
        assert_eq!(graph.edge(2, 3).unwrap().locations, vec![3]);
        assert_eq!(graph.levels(), vec![0, 1, 1, 2, 0]);
        assert_eq!(graph.wave_sizes(), vec![2, 2, 1]);
        assert_eq!(graph.earliest_finish(), vec![100, 150, 300, 310, 30]);
        assert_eq!(graph.remaining_path(), vec![310, 60, 210, 10, 30]);
        let chain = CriticalChain::new(&txs, &graph);
        assert_eq!(chain.path.chain, vec![0, 2, 3]);
        assert_eq!(chain.path.chain_gas, 310);
        let links: Vec<_> =
            chain.links.iter().map(|l| (l.from, l.to, l.locations.clone())).collect();
        assert_eq!(links, vec![(0, 2, vec![1]), (2, 3, vec![3])]);
        // Hot: A links two edges (both on the way in), B and C one each.
        let hot = hot_locations(&graph, &chain);
        assert_eq!((hot[0].key, hot[0].edges, hot[0].critical_gas), (1, 2, 200));
        assert_eq!(hot[0].txs, vec![1, 2]);
        assert_eq!((hot[1].key, hot[1].critical_gas), (3, 10));
        assert_eq!((hot[2].key, hot[2].critical_gas), (2, 0));
        assert_eq!(edges_linked_by(&graph, &HashSet::from([1])), 2);
    }

    #[test]
    fn diamond_schedules() {
        let graph = ConflictGraph::new(&diamond());
        // One worker: sequential.
        let one = list_schedule(&graph, 1, Priority::BlockOrder);
        assert_eq!(one.makespan, 390);
        assert_eq!(one.speedup, 1.0);
        // Two workers in block order: 0 | 4, then 1 | 2 at 100, 3 at 300.
        let two = list_schedule(&graph, 2, Priority::BlockOrder);
        assert_eq!(two.start, vec![0, 100, 100, 300, 0]);
        assert_eq!(two.makespan, 310);
        // Unlimited workers reach the critical path.
        let many = list_schedule(&graph, 8, Priority::CriticalPathFirst);
        assert_eq!(many.makespan, 310);
    }

    #[test]
    fn critical_path_first_beats_block_order_on_a_long_tail() {
        // 0..3 are short and independent; 4 -> 5 is a heavy chain behind them in block order.
        let mut txs: Vec<_> = (0..4).map(|i| tx(&[i], &[i], 10)).collect();
        txs.push(tx(&[], &[50], 100));
        txs.push(tx(&[50], &[], 100));
        let graph = ConflictGraph::new(&txs);
        let plain = list_schedule(&graph, 2, Priority::BlockOrder);
        let cp = list_schedule(&graph, 2, Priority::CriticalPathFirst);
        assert_eq!(plain.makespan, 220);
        assert_eq!(cp.makespan, 200);
        assert!(cp.speedup > plain.speedup);
    }

    #[test]
    fn credits_link_readers_to_every_credit_since_the_last_write() {
        let credit = |reads: &[u32], credits: &[u32]| TxAccess {
            reads: reads.to_vec(),
            reads_ignoring_credits: Vec::new(),
            writes: Vec::new(),
            credits: credits.to_vec(),
            gas: 10,
        };
        // Three credits to 0, then a reader of 0, a writer of 0, a credit, a reader.
        let txs = vec![
            credit(&[], &[0]),
            credit(&[], &[0]),
            credit(&[], &[0]),
            credit(&[0], &[]),
            tx(&[], &[0], 10),
            credit(&[], &[0]),
            credit(&[0], &[]),
        ];
        let graph = ConflictGraph::new(&txs);
        assert_eq!(
            pairs(&graph),
            vec![(0, 3), (1, 3), (2, 3), (0, 4), (1, 4), (2, 4), (4, 6), (5, 6)]
        );
        // A read ignoring credits follows the last full write only.
        let mut ignoring = credit(&[], &[]);
        ignoring.reads_ignoring_credits = vec![0];
        let txs = vec![tx(&[], &[0], 10), credit(&[], &[0]), ignoring];
        assert_eq!(pairs(&ConflictGraph::new(&txs)), vec![(0, 2)]);
    }

    #[test]
    fn access_lists_anticipate_edges_on_declared_locations() {
        // Group 1 calls all write the pool (7) and their own sender (i); group 2 reads 8.
        let txs = vec![
            tx(&[7, 10], &[7, 10], 10),
            tx(&[7, 11], &[7, 11], 10),
            tx(&[8], &[], 10),
            tx(&[7, 12], &[7, 12], 10),
        ];
        let groups = vec![Some(1u8), Some(1), Some(2), None];
        let mut builder = AccessListBuilder::default();
        builder.add_block(&txs, &groups);
        let mut lists = builder.finish(0.5);
        assert_eq!(lists.groups[0].group, 1);
        assert_eq!(lists.groups[0].calls, 2);
        let recommended: Vec<u32> =
            lists.groups[0].locations.iter().filter(|u| u.recommended).map(|u| u.key).collect();
        assert_eq!(recommended, vec![7]);
        assert!(!lists.recommends(&1, &10));
        let graph = ConflictGraph::new(&txs);
        assert_eq!(pairs(&graph), vec![(0, 1), (1, 3)]);
        // 0 -> 1 is anticipated (both declare 7); 1 -> 3 is not (3 has no group).
        assert_eq!(lists.count_block(&graph, &groups), (1, 2));
        assert_eq!((lists.groups[0].edges_in, lists.groups[0].anticipated_in), (1, 1));
    }

    #[test]
    fn scale_out_counts_cross_partition_work() {
        // Keys partition by value: 0 and 2 on node 0, 1 and 3 on node 1 (two nodes).
        let txs = vec![tx(&[0], &[0], 100), tx(&[1], &[1], 100), tx(&[0, 1], &[2], 100)];
        let graph = ConflictGraph::new(&txs);
        let one = scale_out(&txs, &graph, |k| u64::from(*k), 1, 4, 1000);
        assert_eq!((one.cross_txs, one.cross_edges, one.schedule.makespan), (0, 0, 200));
        let two = scale_out(&txs, &graph, |k| u64::from(*k), 2, 4, 1000);
        // Tx 2 touches both partitions, homed on node 0 (two of its three locations).
        assert_eq!((two.cross_txs, two.cross_gas), (1, 100));
        assert_eq!(two.cross_edges, 1);
        // Tx 2 waits for tx 1's round trip (100 + 1000), then runs 100 + 1000.
        assert_eq!(two.schedule.makespan, 2200);
    }

    fn arb_block() -> impl Strategy<Value = Vec<TxAccess<u32>>> {
        let keys = || proptest::collection::vec(0u32..8, 0..4);
        let one = (keys(), keys(), keys(), keys(), 0u64..1000).prop_map(
            |(reads, ignoring, writes, credits, gas)| TxAccess {
                reads,
                reads_ignoring_credits: ignoring,
                writes,
                credits,
                gas,
            },
        );
        proptest::collection::vec(one, 0..40)
    }

    fn check_schedule(graph: &ConflictGraph<u32>, s: &Schedule, workers: usize) {
        for (i, preds) in graph.preds.iter().enumerate() {
            for &j in preds {
                assert!(s.start[i] >= s.start[j] + graph.gas[j], "{j} -> {i} violated");
            }
        }
        // At no start time are more than `workers` transactions running.
        for i in 0..graph.len() {
            let t = s.start[i];
            let busy = (0..graph.len())
                .filter(|&j| graph.gas[j] > 0 && s.start[j] <= t && t < s.start[j] + graph.gas[j])
                .count();
            assert!(busy <= workers);
        }
    }

    proptest! {
        #[test]
        fn simulated_speedups_never_exceed_the_ceiling(txs in arb_block()) {
            let graph = ConflictGraph::new(&txs);
            let cp = critical_path(&txs);
            // The graph's heaviest chain is the critical path, and its links are edges.
            prop_assert_eq!(graph.earliest_finish().into_iter().max().unwrap_or(0), cp.chain_gas);
            for w in cp.chain.windows(2) {
                prop_assert!(graph.edge(w[0], w[1]).is_some());
            }
            for workers in [1usize, 2, 4, 8, 16, 32] {
                for priority in [Priority::BlockOrder, Priority::CriticalPathFirst] {
                    let s = list_schedule(&graph, workers, priority);
                    prop_assert!(s.speedup <= ceiling(workers, cp.bound) + 1e-9,
                        "{priority:?} {workers}: {} > min({workers}, {})", s.speedup, cp.bound);
                    prop_assert!(s.speedup >= 1.0 - 1e-9 || graph.total_gas() == 0);
                    if workers == 1 {
                        prop_assert_eq!(s.makespan, graph.total_gas());
                    }
                    check_schedule(&graph, &s, workers);
                }
            }
            for nodes in [1usize, 2, 4, 8] {
                let out = scale_out(&txs, &graph, |k| u64::from(*k) * 7, nodes, 2, 500);
                prop_assert!(out.schedule.speedup <= ceiling(nodes * 2, cp.bound) + 1e-9);
                prop_assert!(out.cross_txs <= txs.len());
            }
        }
    }
}
