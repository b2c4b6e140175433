//! Hardware-aware worker runtime for Velarium (not implemented yet).
//!
//! This crate will pin Block-STM workers to cores, keep NUMA-local task queues (hwloc behind an
//! opt-in feature) and pre-heat state so that no worker stalls on a cold read. The parallel
//! engine currently spawns scoped threads per block (`velarium-executor`); today this crate
//! exports nothing.
