//! reth integration for Velarium (not implemented yet).
//!
//! This crate will provide a `ParallelBlockExecutorFactory` implementing alloy-evm 0.38's
//! `BlockExecutorFactory` (the trait reth 2.5.1 executes blocks through), running blocks with
//! the parallel engine of `velarium-executor`. Today it exports nothing.
