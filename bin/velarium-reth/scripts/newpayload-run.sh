#!/usr/bin/env bash
# Follows a dev chain through the engine API's newPayload with two velarium-reth nodes, one
# executing each payload through Block-STM (per-transaction calls served from one Block-STM run)
# and one through alloy-evm's sequential executor, while a third node builds the chain from a
# transaction load. Prints the executor counters, the verification ExEx's counts and reth's own
# newPayload/execution metrics of both followers.
#
#   scripts/newpayload-run.sh [BIN] [TXS] [RATE]
#
# The chain: reth's dev chain plus WETH9's code at its mainnet address (`tx-load.py
#   --write-genesis`), so the load can send ERC-20 calls (reth's dev signer cannot deploy).
# Node A: `--dev` (builds a block every 3 s from its pool): the payload builder, with its
#   candidates run ahead through Block-STM (`BUILDER_ARGS`, default `--velarium.block-stm on
#   --velarium.min-parallel-txs 0 --velarium.threads 2`; `--velarium.builder-lookahead 0` builds
#   as stock reth does).
# Node B: `--debug.rpc-consensus-url A`: reth's debug consensus client fetches each
#   new block from A and hands it to B's engine as newPayload + forkchoiceUpdated; Block-STM on
#   every block (`--velarium.block-stm on --velarium.min-parallel-txs 0`: on fewer than three
#   cores Block-STM is off by default), `--velarium.verify` re-executes each committed block
#   whole and compares.
# Node C: as B with `--velarium.block-stm off`: every payload on the sequential
#   per-transaction path (alloy-evm's EthBlockExecutor, what stock reth runs).
# FOLLOWERS (default "b c") picks the followers to start: on a machine with few cores, run
#   `FOLLOWERS=b` and `FOLLOWERS=c` by turns, so that neither competes with the other for cores
#   while it executes a payload.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-$here/../target/debug/velarium-reth}
TXS=${2:-6000}
RATE=${3:-400}
W=$(mktemp -d /tmp/velarium-newpayload.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

python3 "$here/tx-load.py" --write-genesis "$W/genesis.json"
common=(--chain "$W/genesis.json" --disable-discovery --ipcdisable --log.file.max-files 0 --color never)
"$BIN" node --dev --dev.block-time 3s --datadir "$W/a" --http --http.port 18545 \
    --http.api eth,net,web3 --authrpc.port 18551 --port 30413 "${common[@]}" \
    --metrics 127.0.0.1:19001 ${BUILDER_ARGS:---velarium.block-stm on --velarium.min-parallel-txs 0 --velarium.threads 2} \
    >"$W/a.log" 2>&1 &
pids+=($!)
sleep 5
follower() { # name http-port authrpc-port p2p-port metrics-port extra...
    local name=$1 http=$2 auth=$3 p2p=$4 metrics=$5; shift 5
    "$BIN" node --datadir "$W/$name" --debug.rpc-consensus-url http://127.0.0.1:18545 \
        --http --http.port "$http" --authrpc.port "$auth" --port "$p2p" "${common[@]}" \
        --metrics "127.0.0.1:$metrics" "$@" >"$W/$name.log" 2>&1 &
    pids+=($!)
}
FOLLOWERS=${FOLLOWERS:-b c}
http_of() { [ "$1" = b ] && echo 18645 || echo 18745; }    # a follower's HTTP port
metrics_of() { [ "$1" = b ] && echo 19002 || echo 19003; } # and its metrics port
case " $FOLLOWERS " in *" b "*)
    follower b 18645 18651 30414 19002 --velarium.block-stm on --velarium.min-parallel-txs 0 \
        --velarium.threads 2 --velarium.verify ;;
esac
case " $FOLLOWERS " in *" c "*)
    follower c 18745 18751 30415 19003 --velarium.block-stm off --velarium.threads 2 ;;
esac
sleep 10
python3 "$here/tx-load.py" --rpc http://127.0.0.1:18545 --txs "$TXS" --rate "$RATE"

rpc() { curl -s -H 'Content-Type: application/json' -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$2\",\"params\":$3}" "http://127.0.0.1:$1"; }
head_of() { rpc "$1" eth_blockNumber '[]' | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["result"],16))'; }
# Let the pool drain into blocks, then wait for both followers to reach A's head.
sleep 12
target=$(head_of 18545)
ports=()
for name in $FOLLOWERS; do ports+=("$(http_of "$name")"); done
for port in "${ports[@]}"; do
    for _ in $(seq 120); do
        [ "$(head_of $port 2>/dev/null || echo 0)" -ge "$target" ] && break
        sleep 1
    done
done
sleep 6 # the verification ExEx and the metrics refresh (every 5 s)
echo "== chain: head $target; blocks with transactions:"
python3 - "$target" <<'PY'
import json, sys, urllib.request
def rpc(method, *params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
    req = urllib.request.Request("http://127.0.0.1:18545", body, {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))["result"]
sizes = [len(rpc("eth_getBlockByNumber", hex(n), False)["transactions"]) for n in range(1, int(sys.argv[1]) + 1)]
full = [s for s in sizes if s]
print(f"   {len(full)} blocks, {sum(full)} transactions, per block: {full}")
PY
echo "== node a (the builder; head $target)"
curl -s "127.0.0.1:19001/metrics" | grep -E '^reth_velarium_builder_|^reth_payloads_' || true
for name in $FOLLOWERS; do
    port=$(metrics_of "$name")
    echo "== node $name (head $(head_of "$(http_of "$name")"))"
    curl -s "127.0.0.1:$port/metrics" | grep -E '^reth_(velarium_|sync_execution_execution_histogram_(sum|count)|sync_execution_execution_histogram\{quantile="0.5"\}|consensus_engine_beacon_new_payload_(messages|valid|invalid|error|latency_sum|latency_count)|sync_block_validation_state_root_histogram_(sum|count))' || true
done
echo "== state root task fallbacks (should be none):"
logs=(); for name in $FOLLOWERS; do logs+=("$W/$name.log"); done
grep -h "incorrect state root" "${logs[@]}" || echo "   none"
if [ -f "$W/b.log" ]; then
    echo "== verification mismatches in node b's log (should be none):"
    grep -h "Verified committed chain" "$W/b.log" | grep -vc "mismatched=0 errors=0" || true
    echo "   blocks verified: $(grep -c "Verified committed chain" "$W/b.log")"
fi
for name in $FOLLOWERS; do curl -s "127.0.0.1:$(metrics_of "$name")/metrics" > "$W/$name.metrics"; done
echo "logs in $W"
