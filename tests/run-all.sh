#!/usr/bin/env bash
# Velarium's test command: everything CI runs, from a fresh clone with ../shared beside it.
#   1. unit, property and integration tests of every crate (cargo nextest, or cargo test);
#   2. import of both shipped chains, verifying every block (state root included);
#   3. Ethereum's blockchain conformance fixtures (EEST stable v5.4.0 + ethereum/tests v14.1).
# Needs: a Rust toolchain, tar and xz (Debian: xz-utils). Set VELARIUM_SHARED to move ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${VELARIUM_SHARED:-../shared}"
fixtures="$shared/fixtures"
[ -d "$fixtures" ] || { echo "error: $fixtures not found (set VELARIUM_SHARED)" >&2; exit 2; }
if ! command -v xz >/dev/null 2>&1; then
  echo "installing xz-utils (needed to unpack the fixture archives)"
  (apt-get update -qq && apt-get install -y -qq xz-utils) >/dev/null
fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
echo "== build"
cargo build --release --locked --workspace --all-targets

echo "== unit, property and integration tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --release --locked --workspace --no-fail-fast
else
  cargo test --release --locked --workspace --no-fail-fast
fi

velarium=target/release/velarium
echo "== chain import"
for chain in geth-devp2p execution-apis; do
  "$velarium" import --progress 200 --genesis "$fixtures/chains/$chain/genesis.json" \
    "$fixtures/chains/$chain/chain.rlp"
done

echo "== conformance fixtures"
"$velarium" blocktest \
  "$fixtures/eest-stable-v5.4.0-blockchain_tests.tar.xz" \
  "$fixtures/ethereum-tests-v14.1-BlockchainTests.tar.xz"
