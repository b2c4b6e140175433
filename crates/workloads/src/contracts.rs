//! Contract bytecode (real mainnet runtime code and a few hand-assembled hot-spot contracts) and
//! the storage layouts the generators write.

use alloy_primitives::{address, b256, hex, keccak256, Address, Bytes, B256, U256};
use std::sync::LazyLock;

/// Mainnet WETH9 (also the workloads' generic ERC-20).
pub(crate) const WETH9_ADDRESS: Address = address!("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2");
/// Mainnet UniswapV2Router02; its runtime code embeds [`UNISWAP_V2_FACTORY`] and WETH9.
pub(crate) const UNISWAP_V2_ROUTER: Address =
    address!("0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D");
/// Mainnet UniswapV2Factory: the CREATE2 deployer of every pair (the router only hashes it).
pub(crate) const UNISWAP_V2_FACTORY: Address =
    address!("0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f");
/// keccak256 of the UniswapV2Pair creation code, as the router's `pairFor` hard-codes it.
pub(crate) const UNISWAP_V2_PAIR_INIT_CODE_HASH: B256 =
    b256!("0x96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f");

fn decode(hex_text: &str) -> Bytes {
    hex::decode(hex_text.trim()).expect("bundled contract hex is valid").into()
}

/// WETH9 runtime code (mainnet block 19,933,597 pre-state).
pub(crate) static WETH9_CODE: LazyLock<Bytes> =
    LazyLock::new(|| decode(include_str!("../contracts/weth9.hex")));
/// UniswapV2Pair runtime code (the USDC/WETH pair in block 19,933,597's pre-state).
pub(crate) static UNISWAP_V2_PAIR_CODE: LazyLock<Bytes> =
    LazyLock::new(|| decode(include_str!("../contracts/uniswap_v2_pair.hex")));
/// UniswapV2Router02 runtime code (block 19,933,597's pre-state).
pub(crate) static UNISWAP_V2_ROUTER_CODE: LazyLock<Bytes> =
    LazyLock::new(|| decode(include_str!("../contracts/uniswap_v2_router02.hex")));

// --- Hand-assembled contracts -------------------------------------------------------------------

/// `slot0 += 1`: `PUSH1 0 SLOAD PUSH1 1 ADD PUSH1 0 SSTORE STOP`. Every call reads and writes
/// slot 0: a fully sequential chain.
pub(crate) const COUNTER: &[u8] = &hex!("600054600101600055 00");

/// A counter (slot 0) that, called with calldata, then loops until the gas runs out: a long
/// computation whose only read is the counter. `PUSH1 0 SLOAD PUSH1 1 ADD PUSH1 0 SSTORE
/// CALLDATASIZE PUSH1 14 JUMPI STOP JUMPDEST PUSH1 14 JUMP`.
pub(crate) const COUNT_THEN_LOOP: &[u8] = &hex!("600054600101600055 36600e57 00 5b600e56");

/// A counter (slot 0) with four ways in, chosen by `mode = calldata[0..32]`: 0 bumps it
/// through a pushed key (`PUSH1 0 SLOAD PUSH1 1 ADD PUSH1 0 SSTORE`, an unobserved increment),
/// 1 bumps it and stores the new value at the caller's slot (observed), 2 resets it to zero,
/// and anything else adds `calldata[32..64]` to it (an unobserved increment by any amount,
/// wrapping). `PUSH1 0 CALLDATALOAD DUP1 ISZERO PUSH1 33 JUMPI DUP1 PUSH1 1 EQ PUSH1 44 JUMPI
/// DUP1 PUSH1 2 EQ PUSH1 58 JUMPI PUSH1 0 SLOAD PUSH1 32 CALLDATALOAD ADD PUSH1 0 SSTORE STOP;
/// 33: JUMPDEST PUSH1 0 SLOAD PUSH1 1 ADD PUSH1 0 SSTORE STOP; 44: JUMPDEST PUSH1 0 SLOAD PUSH1 1
/// ADD DUP1 PUSH1 0 SSTORE CALLER SSTORE STOP; 58: JUMPDEST PUSH1 0 PUSH1 0 SSTORE STOP`.
pub(crate) const COUNTER_MODES: &[u8] = &hex!(
    "600035 801560215780600114602c5780600214603a57 60005460203501600055 00
     5b600054600101600055 00 5b60005460010180600055335500 5b600060005500"
);

/// An NFT-style mint: `id = slot0 + 1; slot0 = id; slot[id] = CALLER`.
/// `PUSH1 0 SLOAD PUSH1 1 ADD DUP1 PUSH1 0 SSTORE CALLER SWAP1 SSTORE STOP`.
pub(crate) const MINT_COUNTER: &[u8] = &hex!("600054600101 80600055 339055 00");

/// A cascade: with `i = calldata[0..32]`, `slot[i] = slot[i - 1] + 1`.
/// `PUSH1 0 CALLDATALOAD DUP1 PUSH1 1 SWAP1 SUB SLOAD PUSH1 1 ADD SWAP1 SSTORE STOP`.
pub(crate) const CASCADE: &[u8] = &hex!("600035 80600190 03 54 600101 90 55 00");

/// Forwards the call's value to the beneficiary (a searcher's tip to the block's builder) and
/// bumps a counter of its own (slot 0): `PUSH1 0 PUSH1 0 PUSH1 0 PUSH1 0 CALLVALUE COINBASE GAS
/// CALL POP PUSH1 0 SLOAD PUSH1 1 ADD PUSH1 0 SSTORE STOP`.
pub(crate) const TIP_BENEFICIARY: &[u8] =
    &hex!("6000600060006000 34 41 5a f1 50 600054600101600055 00");

/// Stores the beneficiary's balance in the caller's own slot: `slot[CALLER] = BALANCE(COINBASE)`.
/// `COINBASE BALANCE CALLER SSTORE STOP`: only the beneficiary read conflicts.
pub(crate) const READ_BENEFICIARY: &[u8] = &hex!("41 31 33 55 00");

/// A CREATE2 factory: deploys the calldata as init code with salt `slot0++` and records the new
/// address (0 when the creation failed) in slot 1.
/// `PUSH1 0 SLOAD DUP1 PUSH1 1 ADD PUSH1 0 SSTORE` (salt on the stack, counter bumped),
/// `CALLDATASIZE PUSH1 0 PUSH1 0 CALLDATACOPY`, `CALLDATASIZE PUSH1 0 PUSH1 0 CREATE2`,
/// `PUSH1 1 SSTORE STOP`.
pub(crate) const CREATE2_FACTORY: &[u8] =
    &hex!("600054 80 600101 600055 3660006000 37 3660006000 f5 600155 00");

/// Writes slot 0, then `REVERT(0, 0)`: `PUSH1 1 PUSH1 0 SSTORE PUSH1 0 DUP1 REVERT`.
pub(crate) const REVERTER: &[u8] = &hex!("6001600055 600080fd");

/// An endless loop: `JUMPDEST PUSH1 0 JUMP`. Every call runs out of gas.
pub(crate) const INFINITE_LOOP: &[u8] = &hex!("5b600056");

/// The designated invalid opcode `0xfe`: every call halts.
pub(crate) const INVALID: &[u8] = &hex!("fe");

/// Runtime code `PUSH20 heir SELFDESTRUCT`.
pub(crate) fn selfdestruct_to(heir: Address) -> Bytes {
    let mut code = Vec::with_capacity(22);
    code.push(0x73);
    code.extend_from_slice(heir.as_slice());
    code.push(0xff);
    code.into()
}

/// Init code that deploys `runtime` (at most 32 bytes):
/// `PUSHn runtime PUSH1 0 MSTORE PUSH1 n PUSH1 32-n RETURN`.
pub(crate) fn init_code_returning(runtime: &[u8]) -> Bytes {
    let n = runtime.len();
    assert!((1..=32).contains(&n), "runtime must fit one word");
    let mut code = Vec::with_capacity(n + 10);
    code.push(0x5f + n as u8);
    code.extend_from_slice(runtime);
    code.extend_from_slice(&[0x60, 0x00, 0x52, 0x60, n as u8, 0x60, (32 - n) as u8, 0xf3]);
    code.into()
}

// --- Storage layouts ----------------------------------------------------------------------------

/// The slot of `mapping[key]` for a mapping declared at `slot` (Solidity layout).
pub(crate) fn mapping_slot(key: B256, slot: U256) -> U256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(key.as_slice());
    buf[32..].copy_from_slice(&slot.to_be_bytes::<32>());
    U256::from_be_bytes(keccak256(buf).0)
}

fn address_word(address: Address) -> B256 {
    address.into_word()
}

/// WETH9 `balanceOf[owner]` (mapping at slot 3).
pub(crate) fn weth_balance_slot(owner: Address) -> U256 {
    mapping_slot(address_word(owner), U256::from(3))
}

/// WETH9 `allowance[owner][spender]` (mapping at slot 4).
pub(crate) fn weth_allowance_slot(owner: Address, spender: Address) -> U256 {
    let inner = mapping_slot(address_word(owner), U256::from(4));
    mapping_slot(address_word(spender), inner)
}

/// A Solidity short string (< 32 bytes) as its storage word: data left-aligned, `2 * len` last.
fn short_string(s: &str) -> U256 {
    let mut word = [0u8; 32];
    word[..s.len()].copy_from_slice(s.as_bytes());
    word[31] = 2 * s.len() as u8;
    U256::from_be_bytes(word)
}

/// WETH9's constructor-initialised storage: name, symbol, decimals.
pub(crate) fn weth_metadata() -> [(U256, U256); 3] {
    [
        (U256::ZERO, short_string("Wrapped Ether")),
        (U256::from(1), short_string("WETH")),
        (U256::from(2), U256::from(18)),
    ]
}

/// The UniswapV2Pair slots that matter to a swap: factory (5), token0 (6), token1 (7), reserves
/// and timestamp (8), unlocked (12).
pub(crate) fn pair_storage(
    token0: Address,
    token1: Address,
    reserve0: U256,
    reserve1: U256,
    timestamp_last: u32,
) -> [(U256, U256); 5] {
    let packed = reserve0 | (reserve1 << 112) | (U256::from(timestamp_last) << 224);
    [
        (U256::from(5), U256::from_be_bytes(address_word(UNISWAP_V2_FACTORY).0)),
        (U256::from(6), U256::from_be_bytes(address_word(token0).0)),
        (U256::from(7), U256::from_be_bytes(address_word(token1).0)),
        (U256::from(8), packed),
        (U256::from(12), U256::from(1)),
    ]
}

/// The address the router's `pairFor` computes for two tokens: CREATE2 from the factory with salt
/// `keccak256(token0 ++ token1)` (sorted) and the pair's init code hash.
pub(crate) fn pair_address(token_a: Address, token_b: Address) -> Address {
    let (token0, token1) = sort_tokens(token_a, token_b);
    let mut salt_input = [0u8; 40];
    salt_input[..20].copy_from_slice(token0.as_slice());
    salt_input[20..].copy_from_slice(token1.as_slice());
    UNISWAP_V2_FACTORY.create2(keccak256(salt_input), UNISWAP_V2_PAIR_INIT_CODE_HASH)
}

/// Sorts two token addresses as UniswapV2Library does.
pub(crate) fn sort_tokens(a: Address, b: Address) -> (Address, Address) {
    if a < b {
        (a, b)
    } else {
        (b, a)
    }
}

/// `getAmountOut`: the constant-product output with the 0.3% fee.
pub(crate) fn amount_out(amount_in: U256, reserve_in: U256, reserve_out: U256) -> U256 {
    let with_fee = amount_in * U256::from(997);
    with_fee * reserve_out / (reserve_in * U256::from(1000) + with_fee)
}

// --- ABI encoding -------------------------------------------------------------------------------

fn selector(signature: &str) -> [u8; 4] {
    keccak256(signature.as_bytes())[..4].try_into().expect("4 bytes")
}

/// `transfer(address,uint256)` calldata.
pub(crate) fn erc20_transfer(to: Address, amount: U256) -> Bytes {
    let mut data = Vec::with_capacity(68);
    data.extend_from_slice(&selector("transfer(address,uint256)"));
    data.extend_from_slice(address_word(to).as_slice());
    data.extend_from_slice(&amount.to_be_bytes::<32>());
    data.into()
}

/// `balanceOf(address)` calldata.
pub(crate) fn erc20_balance_of(owner: Address) -> Bytes {
    let mut data = Vec::with_capacity(36);
    data.extend_from_slice(&selector("balanceOf(address)"));
    data.extend_from_slice(address_word(owner).as_slice());
    data.into()
}

/// `swapExactTokensForTokens(uint256,uint256,address[],address,uint256)` calldata for a one-hop
/// path.
pub(crate) fn swap_exact_tokens_for_tokens(
    amount_in: U256,
    amount_out_min: U256,
    token_in: Address,
    token_out: Address,
    to: Address,
    deadline: u64,
) -> Bytes {
    let mut data = Vec::with_capacity(4 + 8 * 32);
    data.extend_from_slice(&selector(
        "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
    ));
    for word in [
        amount_in,
        amount_out_min,
        U256::from(5 * 32), // offset of `path`
        U256::from_be_bytes(address_word(to).0),
        U256::from(deadline),
        U256::from(2), // path.length
        U256::from_be_bytes(address_word(token_in).0),
        U256::from_be_bytes(address_word(token_out).0),
    ] {
        data.extend_from_slice(&word.to_be_bytes::<32>());
    }
    data.into()
}

/// One 32-byte big-endian word of calldata.
pub(crate) fn word(value: U256) -> Bytes {
    Bytes::copy_from_slice(&value.to_be_bytes::<32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_selectors() {
        assert_eq!(selector("transfer(address,uint256)"), hex!("a9059cbb"));
        assert_eq!(
            selector("swapExactTokensForTokens(uint256,uint256,address[],address,uint256)"),
            hex!("38ed1739")
        );
    }

    #[test]
    fn real_code_is_what_it_claims() {
        // The router embeds the factory and the pair init code hash it derives pairs with.
        let router = hex::encode(&*UNISWAP_V2_ROUTER_CODE);
        assert!(router.contains(&hex::encode(UNISWAP_V2_FACTORY)));
        assert!(router.contains(&hex::encode(UNISWAP_V2_PAIR_INIT_CODE_HASH)));
        assert!(router.contains(&hex::encode(WETH9_ADDRESS)));
        assert_eq!(WETH9_CODE.len(), 3124);
        assert_eq!(UNISWAP_V2_PAIR_CODE.len(), 11293);
    }

    #[test]
    fn pair_address_matches_mainnet() {
        // USDC/WETH: the pair whose code we ship.
        let usdc = address!("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48");
        assert_eq!(
            pair_address(WETH9_ADDRESS, usdc),
            address!("0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc")
        );
    }
}
