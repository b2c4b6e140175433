#!/usr/bin/env python3
"""Transaction load for a `velarium-reth node --dev` (or any node with dev signers).

Uses WETH9 (the runtime code Velarium's workloads use, from mainnet) at its mainnet address when
the chain has it there (`--write-genesis`), or else tries to deploy it; has every dev account
wrap some ether, then sends, round-robin over the accounts, plain ether transfers and WETH9
`transfer` calls to fresh addresses, in JSON-RPC batches with explicit nonces, so that every
block the dev node builds holds hundreds of independent transactions. Standard library only.

    scripts/tx-load.py --write-genesis genesis.json   # then: velarium-reth node --dev --chain genesis.json
    scripts/tx-load.py --rpc http://127.0.0.1:8545 --txs 20000 --rate 2000

reth 2.5.1's dev signer refuses contract creations (alloy's `TransactionRequest` needs a `to`,
and JSON has no way to say "create"), so on reth's built-in dev chain the load is ether
transfers only; the genesis written here is that chain's (the same 20 funded accounts, chain
id 1337, every fork up to Osaka at genesis) plus WETH9's code at its mainnet address.
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
WETH9_ADDRESS = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
# The accounts reth's `--dev` signs for: m/44'/60'/0'/0/0..19 of the mnemonic
# "test test test test test test test test test test test junk".
DEV_ACCOUNTS = """
f39Fd6e51aad88F6F4ce6aB8827279cffFb92266 70997970C51812dc3A010C7d01b50e0d17dc79C8
3C44CdDdB6a900fa2b585dd299e03d12FA4293BC 90F79bf6EB2c4f870365E785982E1f101E93b906
15d34AAf54267DB7D7c367839AAf71A00a2C6A65 9965507D1a55bcC2695C58ba16FB37d819B0A4dc
976EA74026E726554dB657fA54763abd0C3a0aa9 14dC79964da2C08b23698B3D3cc7Ca32193d9955
23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f a0Ee7A142d267C1f36714E4a8F75612F20a79720
Bcd4042DE499D14e55001CcbB24a551F3b954096 71bE63f3384f5fb98995898A86B02Fb2426c5788
FABB0ac9d68B0B445fB7357272Ff202C5651694a 1CBd3b2770909D4e10f157cABC84C7264073C9Ec
dF3e18d64BC6A983f673Ab319CCaE4f1a57C7097 cd3B766CCDd6AE721141F452C550Ca635964ce71
2546BcD3c84621e976D8185a91A922aE77ECEc30 bDA5747bFD65F08deb54cb465eB87D40e51B197E
dD2FD4581271e230360230F9337D5c0430Bf44C0 8626f6940E2eb28930eFb4CeF49B2d1F2C9C1199
""".split()


def write_genesis(path):
    """reth's dev chain (chain id 1337, all forks at genesis) with WETH9 predeployed."""
    runtime = open(WETH9_HEX).read().strip().removeprefix("0x")
    forks = ["homestead", "eip150", "eip155", "eip158", "byzantium", "constantinople", "petersburg",
             "istanbul", "berlin", "london"]
    config = {"chainId": 1337, **{f"{f}Block": 0 for f in forks}, "daoForkSupport": True,
              "terminalTotalDifficulty": 0, "terminalTotalDifficultyPassed": True,
              "shanghaiTime": 0, "cancunTime": 0, "pragueTime": 0, "osakaTime": 0}
    alloc = {"0x" + a: {"balance": hex(10**24)} for a in DEV_ACCOUNTS}
    alloc[WETH9_ADDRESS] = {"balance": "0x0", "code": "0x" + runtime}
    genesis = {"config": config, "nonce": "0x0", "timestamp": "0x6490fdd2", "extraData": "0x",
               "gasLimit": hex(30_000_000), "difficulty": "0x0", "baseFeePerGas": hex(10**9),
               "mixHash": "0x" + "00" * 32, "coinbase": "0x" + "00" * 20, "alloc": alloc}
    with open(path, "w") as f:
        json.dump(genesis, f, indent=1)


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
    ap.add_argument("--write-genesis", metavar="PATH", help="write the dev genesis with WETH9 and exit")
    args = ap.parse_args()
    if args.write_genesis:
        write_genesis(args.write_genesis)
        return 0
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
    if args.erc20_share > 0 and rpc.call("eth_getCode", WETH9_ADDRESS, "latest") not in ("0x", None):
        weth = WETH9_ADDRESS
        print(f"WETH9 at {weth} (from the genesis)", flush=True)
    elif args.erc20_share > 0:
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
