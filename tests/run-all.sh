#!/usr/bin/env bash
# Velarium's test command: everything CI runs, from a fresh clone with ../shared beside it.
#   1. unit, property and integration tests of every crate (cargo nextest, or cargo test);
#   2. import of both shipped chains, verifying every block (state root included), with the
#      sequential oracle and the parallel engine;
#   3. the real mainnet blocks, parallel engine checked against the oracle;
#   4. Ethereum's blockchain conformance fixtures (EEST stable v5.4.0 + ethereum/tests v14.1)
#      through the oracle, then through the parallel engine at 1, 2, 4 and 8 threads.
# Every step runs even if an earlier one fails; the exit code is non-zero if any failed.
# Needs: a Rust toolchain, tar and xz (Debian: xz-utils). Set VELARIUM_SHARED to move ../shared.
set -uo pipefail
cd "$(dirname "$0")/.."
shared="${VELARIUM_SHARED:-../shared}"
fixtures="$shared/fixtures"
[ -d "$fixtures" ] || { echo "error: $fixtures not found (set VELARIUM_SHARED)" >&2; exit 2; }
if ! command -v xz >/dev/null 2>&1; then
  echo "installing xz-utils (needed to unpack the fixture archives)"
  (apt-get update -qq && apt-get install -y -qq xz-utils) >/dev/null || true
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Unpack the fixture archives once under target/fixtures (never into ../shared). The tests that
# read them are `#[ignore]`d (a plain `cargo test` lists them as ignored, with the reason) and
# run here, where their fixtures are present: with VELARIUM_REQUIRE_FIXTURES set, a missing
# fixture fails them instead of skipping.
unpacked=target/fixtures
if [ ! -f "$unpacked/.complete" ]; then
  echo "unpacking fixtures into $unpacked"
  rm -rf "$unpacked" && mkdir -p "$unpacked"
  for archive in eest-stable-v5.4.0-blockchain_tests.tar.xz ethereum-tests-v14.1-BlockchainTests.tar.xz \
    mainnet-blocks/mainnet-blocks.tar.xz; do
    tar xJf "$fixtures/$archive" -C "$unpacked" || { echo "cannot unpack $archive" >&2; exit 1; }
  done
  touch "$unpacked/.complete"
fi
export VELARIUM_REQUIRE_FIXTURES=1

passed=0
failed=0
failures=()
step() {
  local name=$1
  shift
  echo
  echo "== $name"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "-- $name: ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "-- $name: FAILED ($((SECONDS - start)) s)"
  fi
}

if ! cargo build --release --locked --workspace --all-targets; then
  echo "build failed"
  exit 1
fi

# The engine's runs below (tests and commands) check every plain transfer it executes without the
# EVM against revm (a difference is an engine fault, which fails the step).
export VELARIUM_CHECK_TRANSFERS=1

# Ignored tests run too (those needing the fixtures), except the one ignored for its run time.
slow=gigagas_blocks_execute
if cargo nextest --version >/dev/null 2>&1; then
  step "unit, property and integration tests" \
    cargo nextest run --release --locked --workspace --no-fail-fast --run-ignored all \
    -E "not test($slow)"
else
  step "unit, property and integration tests" \
    cargo test --release --locked --workspace --no-fail-fast -- --include-ignored --skip "$slow"
fi

velarium=target/release/velarium
eest="$unpacked/blockchain_tests"
legacy="$unpacked/BlockchainTests"
for chain in geth-devp2p execution-apis; do
  for engine in sequential parallel; do
    step "import $chain ($engine)" "$velarium" import --engine "$engine" --min-parallel-txs 0 --progress 200 \
      --genesis "$fixtures/chains/$chain/genesis.json" "$fixtures/chains/$chain/chain.rlp"
  done
  # Into a fresh datadir (persistent, every block committed), then again: all blocks skipped.
  datadir="target/test-datadir-$chain"
  rm -rf "$datadir"
  for run in first resumed; do
    step "import $chain (parallel, datadir, $run)" "$velarium" import --datadir "$datadir" --min-parallel-txs 0 \
      --progress 200 --genesis "$fixtures/chains/$chain/genesis.json" "$fixtures/chains/$chain/chain.rlp"
  done
done
step "mainnet blocks (parallel vs oracle)" "$velarium" replay --engine parallel --threads 2 --min-parallel-txs 0 \
  "$unpacked/mainnet-blocks"
step "conformance: sequential oracle" "$velarium" blocktest --engine sequential "$eest" "$legacy"
for threads in 1 2 4 8; do
  step "conformance: parallel engine, $threads threads" \
    "$velarium" blocktest --engine parallel --threads "$threads" --min-parallel-txs 0 "$eest" "$legacy"
done

# The contention dossier of two mainnet blocks, rendered in headless Chromium (installed here if
# missing; the render script says SKIPPED where it cannot be, and then this step fails).
dossier() {
  local out=target/dossier-ci
  rm -rf "$out" && mkdir -p "$out"
  "$velarium" analyze --threads 2 --reps 1 --json "$out/dossier.json" --markdown "$out/dossier.md" \
    --html "$out/dossier.html" "$unpacked/mainnet-blocks/1796867" "$unpacked/mainnet-blocks/5283152" || return 1
  if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium (to render the dossier page)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null || true
  fi
  bash scripts/render-dossier.sh "$out/dossier.html" || return 1
  for png in "$out"/dossier-1400x1000.png "$out"/dossier-420x900.png; do
    [ -s "$png" ] || { echo "no screenshot $png"; return 1; }
  done
}
step "contention dossier (analyze, headless Chromium render)" dossier

echo
for name in "${failures[@]}"; do echo "failed step: $name"; done
echo "steps: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
