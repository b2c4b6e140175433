//! Contention analysis for Velarium (not implemented yet).
//!
//! This crate will hold the dependency-graph analysis of executed blocks: per-transaction read
//! and write sets, hot contracts and slots, the gas-weighted critical path (the best speedup
//! any scheduler could reach) and bytecode effect analysis used to predict access patterns.
//! The benchmark issue fills it; today it exports nothing.
