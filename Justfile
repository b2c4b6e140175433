# Velarium tasks. `just --list` shows them.

shared := env_var_or_default("VELARIUM_SHARED", "../shared")

# The main job: import the shipped 600-block chain into a datadir, verifying every state root.
demo:
    cargo run --release -p velarium -- import --datadir target/velarium-data --genesis {{shared}}/fixtures/chains/geth-devp2p/genesis.json {{shared}}/fixtures/chains/geth-devp2p/chain.rlp

# Everything CI runs.
test:
    bash tests/run-all.sh

# Conformance fixtures only.
blocktest *ARGS:
    cargo run --release -p velarium -- blocktest {{ARGS}} {{shared}}/fixtures/eest-stable-v5.4.0-blockchain_tests.tar.xz {{shared}}/fixtures/ethereum-tests-v14.1-BlockchainTests.tar.xz

# Lints: rustfmt and clippy, warnings are errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --release --workspace --all-targets -- -D warnings

# The benchmark suite: oracle vs parallel engine, side by side, every workload.
bench THREADS="1,2" REPS="5":
    cargo run --release -p velarium -- bench --workloads all --threads {{THREADS}} --reps {{REPS}}

# Micro-benchmarks of the multi-version memory, the scheduler and small blocks (criterion).
microbench:
    cargo bench -p velarium-mvmemory -p velarium-scheduler -p velarium-workloads

# Contention dossier of the mainnet blocks: target/dossier/{dossier.json,dossier.md,dossier.html}.
dossier THREADS="2" REPS="3":
    cargo build --release -p velarium
    blocks=target/fixtures/mainnet-blocks; [ -d "$blocks" ] || blocks={{shared}}/fixtures/mainnet-blocks/mainnet-blocks.tar.xz; \
    target/release/velarium analyze --threads {{THREADS}} --reps {{REPS}} --json target/dossier/dossier.json --markdown target/dossier/dossier.md --html target/dossier/dossier.html "$blocks"
