#!/usr/bin/env python3
"""Builds the gzipped geth-style genesis files of `velarium_chain::genesis::builtin`.

Sepolia, holesky and hoodi: the allocations come from the npm package
`@ethereumjs/genesis` (src/genesisStates/NAME.ts) and the genesis header fields (timestamp,
gasLimit, difficulty, extraData, nonce, mixHash, baseFeePerGas) from `@ethereumjs/common`
(src/chains.ts), together with the state root ethereumjs records for the network
(src/enums.ts, `ChainGenesis`). Mainnet: the geth-style genesis file of the shared fixtures,
copied byte for byte (its allocation is checked against ethereumjs' mainnet.ts).

The output has no `config`: the fork schedule is `ChainSpec::mainnet()` (sepolia, ...), built
from alloy-hardforks. Usage (once, after `npm pack` of both packages and unpacking them):

    python3 convert_ethereumjs_genesis.py --genesis-pkg GENESIS/package \
        --common-pkg COMMON/package --mainnet ../../../../shared/fixtures/chains/mainnet/genesis.json

The files are written beside this script (`--out` to change). Gzip output is deterministic
(no name, mtime 0), so a re-run over the same inputs gives the same bytes.
"""

import argparse
import gzip
import json
import os
import re
import sys

NETWORKS = {
    # name: (ethereumjs genesis-state export, ethereumjs common chain constant, chain id)
    "sepolia": ("sepoliaGenesis", "Sepolia", 11155111),
    "holesky": ("holeskyGenesis", "Holesky", 17000),
    "hoodi": ("hoodiGenesis", "Hoodi", 560048),
}


def strip_comments(ts):
    """Removes `/* ... */` and `// ...` comments (the data holds no `//` inside strings)."""
    ts = re.sub(r"/\*.*?\*/", "", ts, flags=re.S)
    return re.sub(r"//[^\n]*", "", ts)


def ts_literal_to_json(text):
    """Turns a TypeScript object/array literal of strings, numbers and nested literals into
    JSON text: single quotes to double, no trailing commas, bare keys quoted."""
    if '"' in text or "\\" in text:
        sys.exit("unexpected double quote or backslash in the TypeScript literal")
    text = text.replace("'", '"')
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    return re.sub(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*:)", r'\1"\2"\3', text)


def no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        # Addresses (and hex keys) compare case-insensitively; field names as they are.
        k = key.lower() if key.startswith("0x") else key
        if k in out:
            sys.exit(f"duplicate key {key}")
        out[k] = value
    return out


def load_genesis_state(path, export):
    """Parses `export const EXPORT: GenesisState = { ... }` of an ethereumjs genesis file."""
    ts = strip_comments(open(path, encoding="utf-8").read())
    m = re.search(r"export const " + export + r"\s*:\s*GenesisState\s*=\s*(\{.*\})\s*$", ts, re.S)
    if not m:
        sys.exit(f"{path}: no `export const {export}: GenesisState = {{...}}`")
    return json.loads(ts_literal_to_json(m.group(1)), object_pairs_hook=no_duplicates)


def quantity(value):
    """A JSON quantity: `0x` + minimal hex of a decimal number or hex string."""
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and value.lower().startswith("0x"):
        n = int(value, 16) if len(value) > 2 else 0
    elif isinstance(value, str) and value.isdigit():
        n = int(value)
    else:
        sys.exit(f"not a quantity: {value!r}")
    return hex(n)


def hex_data(value, size=None):
    """Lower-case `0x` hex bytes, left-padded to `size` bytes when given."""
    if not (isinstance(value, str) and re.fullmatch(r"0x([0-9a-fA-F]{2})*", value)):
        sys.exit(f"not hex bytes: {value!r}")
    digits = value[2:].lower()
    if size is not None:
        if len(digits) > 2 * size:
            sys.exit(f"{value} is longer than {size} bytes")
        digits = digits.rjust(2 * size, "0")
    return "0x" + digits


def alloc_entry(address, state):
    """One geth-style `alloc` entry from an ethereumjs `PrefixedHexString | AccountState`."""
    if isinstance(state, str):
        return {"balance": quantity(state)}
    if not isinstance(state, list) or not 1 <= len(state) <= 4:
        sys.exit(f"{address}: unexpected account state {state!r}")
    balance, code, storage, nonce = (state + [None, None, None])[:4]
    entry = {"balance": quantity(balance)}
    if code not in (None, "0x"):
        entry["code"] = hex_data(code)
    if storage:
        slots = {}
        for key, value in storage:
            k = hex_data(key, 32)
            if k in slots:
                sys.exit(f"{address}: storage slot {k} twice")
            slots[k] = hex_data(value, 32)
        entry["storage"] = slots
    if nonce not in (None, "0x", "0x0"):
        entry["nonce"] = quantity(nonce)
    return entry


def alloc_from_state(state):
    out = {}
    for address, account in state.items():
        if not re.fullmatch(r"0x[0-9a-f]{40}", address):
            sys.exit(f"not an address: {address}")
        out[address[2:]] = alloc_entry(address, account)
    return dict(sorted(out.items()))


def chain_block(chains_ts, const):
    """The text of `export const CONST: ChainConfig = { ... }` up to the next export."""
    m = re.search(r"export const " + const + r": ChainConfig = \{(.*?)\n\}\n", chains_ts, re.S)
    if not m:
        sys.exit(f"chains.ts: no `export const {const}: ChainConfig`")
    return m.group(1)


def chain_header(chains_ts, const, chain_id):
    """The genesis header fields of a chain in ethereumjs' chains.ts."""
    block = chain_block(chains_ts, const)
    m = re.search(r"\n  chainId: (\d+),", block)
    if not m or int(m.group(1)) != chain_id:
        sys.exit(f"chains.ts {const}: chain id is not {chain_id}")
    m = re.search(r"\n  genesis: (\{[^{}]*\})", block)
    if not m:
        sys.exit(f"chains.ts {const}: no genesis block")
    g = json.loads(ts_literal_to_json(m.group(1)), object_pairs_hook=no_duplicates)
    known = {"timestamp", "gasLimit", "difficulty", "nonce", "extraData", "mixHash", "baseFeePerGas"}
    if set(g) - known:
        sys.exit(f"chains.ts {const}: unexpected genesis fields {sorted(set(g) - known)}")
    header = {
        "nonce": quantity(g.get("nonce", "0x0")),
        "timestamp": quantity(g.get("timestamp", 0)),
        "extraData": hex_data(g.get("extraData", "0x")),
        "gasLimit": quantity(g["gasLimit"]),
        "difficulty": quantity(g["difficulty"]),
        "mixHash": hex_data(g.get("mixHash", "0x"), 32),
        "coinbase": "0x" + "00" * 20,
    }
    if "baseFeePerGas" in g:
        header["baseFeePerGas"] = quantity(g["baseFeePerGas"])
    return header


def state_roots(enums_ts):
    """ethereumjs' recorded genesis state roots (`ChainGenesis` in enums.ts), by name."""
    roots = {}
    for name, root in re.findall(
        r"name: '(\w+)',\s*blockNumber: BIGINT_0,\s*stateRoot: hexToBytes\('(0x[0-9a-f]{64})'\)",
        enums_ts,
    ):
        roots[name] = root
    return roots


def write_gz(path, data):
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            gz.write(data)
    print(f"wrote {path} ({len(data)} bytes, {os.path.getsize(path)} gzipped)")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genesis-pkg", required=True, help="unpacked @ethereumjs/genesis")
    parser.add_argument("--common-pkg", required=True, help="unpacked @ethereumjs/common")
    parser.add_argument("--mainnet", required=True, help="the fixtures' mainnet genesis.json")
    parser.add_argument("--out", default=here)
    args = parser.parse_args()

    for pkg, name in [(args.genesis_pkg, "@ethereumjs/genesis"), (args.common_pkg, "@ethereumjs/common")]:
        meta = json.load(open(os.path.join(pkg, "package.json"), encoding="utf-8"))
        if meta["name"] != name:
            sys.exit(f"{pkg} is {meta['name']}, not {name}")
        print(f"{name}@{meta['version']} ({meta['license']})")

    chains_ts = strip_comments(open(os.path.join(args.common_pkg, "src/chains.ts")).read())
    roots = state_roots(open(os.path.join(args.common_pkg, "src/enums.ts")).read())
    states = os.path.join(args.genesis_pkg, "src/genesisStates")

    # Mainnet: the fixture verbatim, after checking its allocation against ethereumjs'.
    mainnet_bytes = open(args.mainnet, "rb").read()
    mainnet = json.loads(mainnet_bytes)
    ours = {a.lower().removeprefix("0x"): e for a, e in mainnet["alloc"].items()}
    theirs = alloc_from_state(load_genesis_state(os.path.join(states, "mainnet.ts"), "mainnetGenesis"))
    if any(set(e) != {"balance"} for e in ours.values()):
        sys.exit("the fixture's mainnet alloc has more than balances")
    ours = {a: {"balance": quantity(e["balance"])} for a, e in ours.items()}
    if ours != theirs:
        sys.exit("the fixture's mainnet alloc differs from ethereumjs' mainnet.ts")
    if mainnet.get("stateRoot") != roots["mainnet"]:
        sys.exit("the fixture's mainnet stateRoot differs from ethereumjs'")
    print(f"mainnet: {len(ours)} accounts, same as ethereumjs' mainnet.ts")
    write_gz(os.path.join(args.out, "mainnet.json.gz"), mainnet_bytes)

    for name, (export, const, chain_id) in NETWORKS.items():
        state = load_genesis_state(os.path.join(states, f"{name}.ts"), export)
        genesis = chain_header(chains_ts, const, chain_id)
        # Informational (velarium recomputes it; its tests compare against this value).
        genesis["stateRoot"] = roots[name]
        genesis["alloc"] = alloc_from_state(state)
        data = (json.dumps(genesis, separators=(",", ":")) + "\n").encode()
        print(f"{name}: {len(genesis['alloc'])} accounts")
        write_gz(os.path.join(args.out, f"{name}.json.gz"), data)


if __name__ == "__main__":
    main()
