//! Errors building workloads.

/// Why a workload could not be built as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// No generator has this name.
    #[error("unknown workload generator {0:?}")]
    UnknownGenerator(String),
    /// The requested block gas limit is below the sum of the transactions' gas limits.
    #[error("block gas limit {gas_limit} is below the {needed} gas the transactions may use")]
    GasLimitTooLow {
        /// Sum of the transactions' gas limits.
        needed: u64,
        /// The requested block gas limit.
        gas_limit: u64,
    },
}
