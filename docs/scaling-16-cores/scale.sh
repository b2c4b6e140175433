#!/bin/bash
# Scaling run on the lent 16-core machine: threads 1,2,4,8,16 (run there as `bash .dev/scale.sh`).
# .dev/velarium: `strip -o .dev/velarium target/release/velarium`; .dev/mainnet-blocks.tar.xz: a
# copy of ../shared/fixtures/mainnet-blocks/mainnet-blocks.tar.xz; $OUT: where the output goes
# (the files beside this script).
set -u
V=.dev/velarium
A=.dev/mainnet-blocks.tar.xz
export VELARIUM_FIXTURE_CACHE=/tmp/fc
{ date -u; nproc; lscpu | egrep 'Model name|Socket|Core|Thread|NUMA|MHz|L3'; free -g | head -2; } > $OUT/machine.txt 2>&1
cat $OUT/machine.txt
s=$(date +%s)
timeout 200 $V bench --workloads all --threads 1,2,4,8,16 --reps 5 --mainnet $A --json > $OUT/bench.json 2>> $OUT/err.txt
echo "bench rc=$? $(( $(date +%s)-s ))s"; s=$(date +%s)
timeout 90 $V bench --workloads eth_transfers,erc20_transfers,uniswap_swaps_many_pairs --gas-limit 1000000000 --threads 1,2,4,8,16 --reps 3 --json > $OUT/giga.json 2>> $OUT/err.txt
echo "giga rc=$? $(( $(date +%s)-s ))s"; s=$(date +%s)
for t in 2 4 8 16; do
  timeout 60 $V replay --threads $t --repeat 5 $A > $OUT/replay_t$t.txt 2>&1
  echo "replay t$t rc=$? $(( $(date +%s)-s ))s"; tail -4 $OUT/replay_t$t.txt; s=$(date +%s)
done
