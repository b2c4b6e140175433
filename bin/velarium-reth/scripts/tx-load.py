#!/usr/bin/env python3
"""Transaction load for a `velarium-reth node --dev` (or any node with dev signers).

Deploys WETH9 (the runtime code Velarium's workloads use, from mainnet), has every dev account
wrap some ether, then sends, round-robin over the accounts, plain ether transfers and WETH9
`transfer` calls to fresh addresses, in JSON-RPC batches with explicit nonces, so that every
block the dev node builds holds hundreds of independent transactions. Standard library only.

    scripts/tx-load.py --rpc http://127.0.0.1:8545 --txs 20000 --rate 2000
"""
import argparse
import json
import os
import random
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
WETH9_HEX = os.path.join(HERE, "../../../crates/workloads/contracts/weth9.hex")


class Rpc:
    def __init__(self, url):
        self.url = url
        self.next_id = 0

    def _post(self, body):
        req = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def call(self, method, *params):
        self.next_id += 1
        reply = self._post({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": list(params)})
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def batch(self, calls):
        body = []
        for method, params in calls:
            self.next_id += 1
            body.append({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        replies = self._post(body)
        return [r.get("error") for r in replies]


def wait_receipt(rpc, tx_hash, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        receipt = rpc.call("eth_getTransactionReceipt", tx_hash)
        if receipt:
            return receipt
        time.sleep(0.2)
    raise RuntimeError(f"no receipt for {tx_hash} after {timeout}s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rpc", default="http://127.0.0.1:8545")
    ap.add_argument("--txs", type=int, default=20000, help="transactions to send after set-up")
    ap.add_argument("--rate", type=float, default=2000, help="transactions per second at most")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--erc20-share", type=float, default=0.5, help="share of WETH9 transfers")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    rpc = Rpc(args.rpc)

    accounts = rpc.call("eth_accounts")
    if not accounts:
        sys.exit("the node has no dev accounts (run it with --dev)")
    nonces = {a: int(rpc.call("eth_getTransactionCount", a, "pending"), 16) for a in accounts}
    fees = {"maxFeePerGas": hex(50 * 10**9), "maxPriorityFeePerGas": hex(10**9)}

    def tx(sender, **fields):
        t = {"from": sender, "nonce": hex(nonces[sender]), **fees, **fields}
        nonces[sender] += 1
        return ("eth_sendTransaction", [t])

    weth = None
    if args.erc20_share > 0:
        # WETH9: a 12-byte constructor that returns the runtime code.
        runtime = open(WETH9_HEX).read().strip().removeprefix("0x")
        init = "61%04x80600c6000396000f3" % (len(runtime) // 2) + runtime
        deployer = accounts[0]
        try:
            tx_hash = rpc.call("eth_sendTransaction", {"from": deployer, "nonce": hex(nonces[deployer]), "data": "0x" + init, "gas": hex(1_500_000), **fees})
            nonces[deployer] += 1
            weth = wait_receipt(rpc, tx_hash)["contractAddress"]
            print(f"WETH9 deployed at {weth}", flush=True)
        except RuntimeError as err:
            # reth 2.5.1's dev signer refuses contract creations ("invalid transaction request").
            print(f"cannot deploy WETH9 ({err}); sending ether transfers only", flush=True)
    if weth:
        # Every account wraps 1,000 ether.
        errors = rpc.batch([tx(a, to=weth, value=hex(1000 * 10**18), data="0xd0e30db0", gas=hex(80_000)) for a in accounts])
        if any(errors):
            sys.exit(f"deposit failed: {[e for e in errors if e][:3]}")
        time.sleep(3)

    sent = failed = 0
    started = time.time()
    while sent < args.txs:
        calls = []
        for _ in range(min(args.batch, args.txs - sent)):
            sender = accounts[(sent + len(calls)) % len(accounts)]
            to = "0x" + rnd.randbytes(20).hex()
            if weth and rnd.random() < args.erc20_share:
                data = "0xa9059cbb" + "00" * 12 + to[2:] + "%064x" % rnd.randint(1, 10**15)
                calls.append(tx(sender, to=weth, data=data, gas=hex(70_000)))
            else:
                calls.append(tx(sender, to=to, value=hex(rnd.randint(1, 10**15)), gas=hex(21_000)))
        errors = rpc.batch(calls)
        failed += sum(1 for e in errors if e)
        if failed and failed == sum(1 for e in errors if e):
            print(f"errors: {[e for e in errors if e][:2]}", flush=True)
        sent += len(calls)
        ahead = sent / args.rate - (time.time() - started)
        if ahead > 0:
            time.sleep(ahead)
    elapsed = time.time() - started
    print(f"sent {sent} transactions in {elapsed:.1f}s ({failed} rejected)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
