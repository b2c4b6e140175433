//! The generators. Each draws everything from its own stream of the seed, so two generators with
//! one seed share no keys.

use crate::{
    builder::{BlockBuilder, Fork, CHAIN_ID, SENDER_BALANCE},
    contracts::{self as c, UNISWAP_V2_PAIR_CODE, UNISWAP_V2_ROUTER, UNISWAP_V2_ROUTER_CODE},
    ExpectedOutcome::{self, Halt, Revert, Success},
    Workload,
};
use alloy_primitives::{Address, Bytes, TxKind, U256};

/// Gas limit of a plain ether transfer.
const TRANSFER_GAS: u64 = 21_000;
/// Gas limit of a WETH9 `transfer` (about 35k-52k used).
const ERC20_GAS: u64 = 65_000;
/// Gas limit of a router swap (about 100k-150k used).
const SWAP_GAS: u64 = 200_000;
/// Gas limit of a call into a small hand-assembled contract that writes a fresh slot (at most
/// about 50k used).
const SMALL_CALL_GAS: u64 = 70_000;
/// Gas limit of a counter increment (26k used, 43k for the first one).
const COUNTER_GAS: u64 = 50_000;
/// The least gas of `late_heavy`'s long call.
const HEAVY_MIN_GAS: u64 = 200_000;
/// Gas limit of the mixed workload's calls (a SELFDESTRUCT creating its heir uses about 54k).
const MIXED_CALL_GAS: u64 = 100_000;

const ETHER: u128 = 1_000_000_000_000_000_000;

fn ether(n: u128) -> U256 {
    U256::from(n * ETHER)
}

/// Generator streams: one per generator, so equal seeds give unrelated blocks.
mod stream {
    pub(super) const ETH_TRANSFERS: u64 = 1;
    pub(super) const ERC20_TRANSFERS: u64 = 2;
    pub(super) const UNISWAP: u64 = 3;
    pub(super) const AIRDROP: u64 = 4;
    pub(super) const NFT_MINT: u64 = 5;
    pub(super) const CASCADE: u64 = 6;
    pub(super) const DEPENDENT: u64 = 7;
    pub(super) const HOT_30: u64 = 8;
    pub(super) const BENEFICIARY: u64 = 9;
    pub(super) const MIXED: u64 = 10;
    pub(super) const INVALID: u64 = 11;
    pub(super) const HOT_RECEIVER: u64 = 12;
    pub(super) const PAYOUTS: u64 = 13;
    pub(super) const BUILDER_TIPS: u64 = 14;
    pub(super) const LATE_HEAVY: u64 = 15;
    pub(super) const DEPOSITS: u64 = 16;
    pub(super) const COUNTER_MODES: u64 = 17;
    pub(super) const SHARED_RECIPIENTS: u64 = 18;
}

/// `n_txs` ether transfers, each from its own sender to its own receiver (half of them existing
/// accounts). Conflict-free apart from the beneficiary's fees.
pub fn eth_transfers(seed: u64, n_txs: usize) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::ETH_TRANSFERS, Fork::Cancun);
    for sender in b.wallets(n_txs) {
        let to = b.address();
        if b.rng.chance(50) {
            let dust = U256::from(b.rng.range(1, 1_000_000));
            b.add_balance(to, dust);
        }
        let value = U256::from(b.rng.range(1, ETHER as u64));
        b.send(&sender, TxKind::Call(to), value, Bytes::new(), TRANSFER_GAS, Success);
    }
    b.finish("eth_transfers")
}

/// `n_txs` WETH9 `transfer`s (mainnet WETH9 code at its mainnet address), distinct senders to
/// distinct fresh receivers. Conflict-free apart from the token's code and the beneficiary.
pub fn erc20_transfers(seed: u64, n_txs: usize) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::ERC20_TRANSFERS, Fork::Cancun);
    let token = c::WETH9_ADDRESS;
    b.deploy_weth(token);
    for sender in b.wallets(n_txs) {
        let balance = U256::from(b.rng.range(1_000, 1_000_000)) * U256::from(ETHER / 1_000);
        b.mint_weth(token, sender.address(), balance);
        let amount = b.rng.u256_range(U256::from(1), balance + U256::from(1));
        let to = b.address();
        let input = c::erc20_transfer(to, amount);
        b.send(&sender, TxKind::Call(token), U256::ZERO, input, ERC20_GAS, Success);
    }
    b.finish("erc20_transfers")
}

/// Hostile: `n_txs` WETH9 `transfer`s from distinct senders to one hot receiver (an exchange
/// deposit address, a protocol treasury). Every transfer reads and writes the receiver's balance
/// slot, a read-modify-write nobody else observes: as plain writes the block is one chain
/// (critical-path bound 1), as commutative credits it is conflict-free.
pub fn erc20_hot_receiver(seed: u64, n_txs: usize) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::HOT_RECEIVER, Fork::Cancun);
    let token = c::WETH9_ADDRESS;
    b.deploy_weth(token);
    let receiver = b.address();
    // The receiver already holds tokens: its slot is non-zero before the block, as a real
    // deposit address's is.
    b.mint_weth(token, receiver, U256::from(ETHER));
    for sender in b.wallets(n_txs) {
        let balance = U256::from(b.rng.range(1_000, 1_000_000)) * U256::from(ETHER / 1_000);
        b.mint_weth(token, sender.address(), balance);
        let amount = b.rng.u256_range(U256::from(1), balance + U256::from(1));
        let input = c::erc20_transfer(receiver, amount);
        b.send(&sender, TxKind::Call(token), U256::ZERO, input, ERC20_GAS, Success);
    }
    b.finish("erc20_hot_receiver")
}

/// Hostile, an exchange's deposit address: WETH9 transfers from many senders to one receiver
/// that holds no tokens before the block. Now and then the exchange sweeps half of what it holds
/// to a cold wallet (a full write of its balance slot) and someone calls `balanceOf` on it (a
/// read of the sum); a few deposits are of zero tokens, and about one in a hundred is a whale's
/// of 2^193 tokens (above what the engine credits without reading).
pub fn erc20_deposits(seed: u64, n_txs: usize) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::DEPOSITS, Fork::Cancun);
    let token = c::WETH9_ADDRESS;
    b.deploy_weth(token);
    let exchange = b.wallet(SENDER_BALANCE);
    let cold = b.address();
    // What the exchange holds as the block goes (sweeps never take more).
    let mut held = U256::ZERO;
    for _ in 0..n_txs {
        let roll = b.rng.range(0, 100);
        if roll < 5 && !held.is_zero() {
            let amount = held / U256::from(2);
            held -= amount;
            let input = c::erc20_transfer(cold, amount);
            b.send(&exchange, TxKind::Call(token), U256::ZERO, input, ERC20_GAS, Success);
        } else if roll < 9 {
            let reader = b.wallet(SENDER_BALANCE);
            let input = c::erc20_balance_of(exchange.address());
            b.send(&reader, TxKind::Call(token), U256::ZERO, input, ERC20_GAS, Success);
        } else {
            let sender = b.wallet(SENDER_BALANCE);
            let amount = match roll {
                9..=11 => U256::ZERO,
                12 => U256::from(1) << 193,
                _ => U256::from(b.rng.range(1, 1_000_000)) * U256::from(ETHER / 1_000),
            };
            b.mint_weth(token, sender.address(), amount);
            held += amount;
            let input = c::erc20_transfer(exchange.address(), amount);
            b.send(&sender, TxKind::Call(token), U256::ZERO, input, ERC20_GAS, Success);
        }
    }
    b.finish("erc20_deposits")
}

/// One UniswapV2 pool as the generators track it.
#[derive(Debug)]
struct Pool {
    token0: Address,
    token1: Address,
    reserve0: U256,
    reserve1: U256,
}

/// `n_txs` swaps through the real UniswapV2Router02 (`swapExactTokensForTokens`, one hop) over
/// `n_pairs` real UniswapV2Pair pools, each between two fresh WETH9-code tokens. Every swap has
/// its own sender, who holds exactly the input amount and has approved the router; the minimum
/// output is the exact constant-product output (0.3% fee) given the reserves left by the
/// previous swaps, so a swap succeeds only if it sees them.
///
/// Pair `i % n_pairs` gets swap `i` when `n_pairs == n_txs`, else pairs are drawn at random.
pub fn uniswap_swaps(seed: u64, n_txs: usize, n_pairs: usize) -> Workload {
    let n_pairs = n_pairs.max(1);
    let mut b = BlockBuilder::new(seed, stream::UNISWAP, Fork::Cancun);
    b.deploy(UNISWAP_V2_ROUTER, UNISWAP_V2_ROUTER_CODE.clone());
    let timestamp = b.timestamp();
    let mut pools = Vec::with_capacity(n_pairs);
    for _ in 0..n_pairs {
        let (token0, token1) = c::sort_tokens(b.address(), b.address());
        b.deploy_weth(token0);
        b.deploy_weth(token1);
        let reserve0 = b.rng.u256_range(ether(1_000), ether(100_000));
        let reserve1 = b.rng.u256_range(ether(1_000), ether(100_000));
        let pair = c::pair_address(token0, token1);
        b.deploy(pair, UNISWAP_V2_PAIR_CODE.clone());
        let last_update = (timestamp - b.rng.range(12, 100_000)) as u32;
        for (slot, value) in c::pair_storage(token0, token1, reserve0, reserve1, last_update) {
            b.set_storage(pair, slot, value);
        }
        b.mint_weth(token0, pair, reserve0);
        b.mint_weth(token1, pair, reserve1);
        pools.push(Pool { token0, token1, reserve0, reserve1 });
    }
    for i in 0..n_txs {
        let pool_idx = if n_pairs == n_txs { i } else { b.rng.range(0, n_pairs as u64) as usize };
        let user = b.wallet(SENDER_BALANCE);
        let zero_for_one = b.rng.chance(50);
        let divisor = U256::from(b.rng.range(200, 5_000));
        let pool = &mut pools[pool_idx];
        let (token_in, token_out, amount_in, out) = if zero_for_one {
            let amount_in = pool.reserve0 / divisor;
            let out = c::amount_out(amount_in, pool.reserve0, pool.reserve1);
            pool.reserve0 += amount_in;
            pool.reserve1 -= out;
            (pool.token0, pool.token1, amount_in, out)
        } else {
            let amount_in = pool.reserve1 / divisor;
            let out = c::amount_out(amount_in, pool.reserve1, pool.reserve0);
            pool.reserve1 += amount_in;
            pool.reserve0 -= out;
            (pool.token1, pool.token0, amount_in, out)
        };
        b.mint_weth(token_in, user.address(), amount_in);
        b.approve_weth_max(token_in, user.address(), UNISWAP_V2_ROUTER);
        let input = c::swap_exact_tokens_for_tokens(
            amount_in,
            out,
            token_in,
            token_out,
            user.address(),
            timestamp + 600,
        );
        b.send(&user, TxKind::Call(UNISWAP_V2_ROUTER), U256::ZERO, input, SWAP_GAS, Success);
    }
    b.finish(if n_pairs == 1 { "single_pool_swaps" } else { "uniswap_swaps" })
}

/// [`uniswap_swaps`] with one pool per swap: conflict-free apart from the router's code and the
/// beneficiary.
pub fn uniswap_swaps_many_pairs(seed: u64, n_txs: usize) -> Workload {
    let mut workload = uniswap_swaps(seed, n_txs, n_txs);
    workload.name = "uniswap_swaps_many_pairs".into();
    workload
}

/// Hostile: [`uniswap_swaps`] with every swap on one pool (every swap reads and writes the
/// reserves and both token balances of the pair).
pub fn single_pool_swaps(seed: u64, n_txs: usize) -> Workload {
    uniswap_swaps(seed, n_txs, 1)
}

/// Hostile: ONE sender sends WETH9 `transfer`s to `n_txs` fresh receivers: a nonce chain, and
/// every transaction writes the sender's token balance slot.
pub fn airdrop(seed: u64, n_txs: usize) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::AIRDROP, Fork::Cancun);
    let token = c::WETH9_ADDRESS;
    b.deploy_weth(token);
    let sender = b.wallet(SENDER_BALANCE);
    b.mint_weth(token, sender.address(), ether(1_000_000));
    for _ in 0..n_txs {
        let to = b.address();
        let amount = U256::from(b.rng.range(1, ETHER as u64));
        let input = c::erc20_transfer(to, amount);
        b.send(&sender, TxKind::Call(token), U256::ZERO, input, ERC20_GAS, Success);
    }
    b.finish("airdrop")
}

/// Hostile: `n_txs` senders each mint from one contract (`id = ++counter; owner[id] = caller`):
/// every transaction reads and writes the counter slot.
pub fn nft_mint_counter(seed: u64, n_txs: usize) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::NFT_MINT, Fork::Cancun);
    let minter = b.deploy_new(Bytes::from_static(c::MINT_COUNTER));
    for sender in b.wallets(n_txs) {
        b.send(&sender, TxKind::Call(minter), U256::ZERO, Bytes::new(), SMALL_CALL_GAS, Success);
    }
    b.finish("nft_mint_counter")
}

/// Hostile: transaction `i` (own sender) reads slot `i - 1`, which transaction `i - 1` wrote, and
/// writes slot `i`: a chain of distinct slots.
pub fn liquidation_cascade(seed: u64, n_txs: usize) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::CASCADE, Fork::Cancun);
    let cascade = b.deploy_new(Bytes::from_static(c::CASCADE));
    for (i, sender) in b.wallets(n_txs).into_iter().enumerate() {
        let input = c::word(U256::from(i));
        b.send(&sender, TxKind::Call(cascade), U256::ZERO, input, SMALL_CALL_GAS, Success);
    }
    b.finish("liquidation_cascade")
}

/// Hostile: every transaction (own sender) increments the same slot: fully sequential.
pub fn dependent_chain(seed: u64, n_txs: usize) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::DEPENDENT, Fork::Cancun);
    let counter = b.deploy_new(Bytes::from_static(c::COUNTER));
    for sender in b.wallets(n_txs) {
        b.send(&sender, TxKind::Call(counter), U256::ZERO, Bytes::new(), COUNTER_GAS, Success);
    }
    b.finish("dependent_chain")
}

/// Hostile, for storage credits: one counter that most transactions (own senders) bump through
/// a pushed key, an increment nobody observes, which the engine credits without reading once
/// the slot is hot and non-zero. Between them, some bump it and store the new value (observed),
/// some reset it to zero, and some add large amounts: 2^100, 2^191 and 2^192 (the largest the
/// engine credits is below 2^192), 2^255, and the amount that wraps it to exactly zero. By
/// seed it starts at zero, at one, or just below 2^224 (the largest value the engine serves as
/// a credit's base), so every `SSTORE` gas case (zero to non-zero, non-zero to zero, non-zero
/// to non-zero) meets the credits.
pub fn counter_modes(seed: u64, n_txs: usize) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::COUNTER_MODES, Fork::Cancun);
    let counter = b.deploy_new(Bytes::from_static(c::COUNTER_MODES));
    let mut value = match seed % 3 {
        0 => U256::ZERO,
        1 => U256::from(1),
        _ => (U256::from(1) << 224) - U256::from(3),
    };
    if !value.is_zero() {
        b.set_storage(counter, U256::ZERO, value);
    }
    let call = |mode: u64, amount: U256| {
        let mut input = c::word(U256::from(mode)).to_vec();
        input.extend_from_slice(&c::word(amount));
        Bytes::from(input)
    };
    for sender in b.wallets(n_txs) {
        let roll = b.rng.range(0, 100);
        let (mode, amount) = match roll {
            0..=79 => (0, U256::ZERO),
            80..=87 => (1, U256::ZERO),
            88..=90 => (2, U256::ZERO),
            91 => (3, U256::from(1) << 100),
            92 => (3, U256::from(1) << 191),
            93 => (3, U256::from(1) << 192),
            94 => (3, U256::from(1) << 255),
            95 => (3, U256::ZERO.wrapping_sub(value)),
            _ => (3, U256::from(b.rng.range(1, 1_000))),
        };
        value = match mode {
            0 | 1 => value.wrapping_add(U256::from(1)),
            2 => U256::ZERO,
            _ => value.wrapping_add(amount),
        };
        b.send(
            &sender,
            TxKind::Call(counter),
            U256::ZERO,
            call(mode, amount),
            SMALL_CALL_GAS,
            Success,
        );
    }
    b.finish("counter_modes")
}

/// A long transaction at the end of the block, as mainnet blocks often have (a rollup's proof
/// verification): `n_txs - 1` ether transfers, then one call that computes until its gas runs
/// out, with a gas limit as large as all the transfers' together. For even seeds one of the
/// transfers' senders first bumps the counter the long call reads (a dependency a start before
/// it gets wrong); for odd seeds the long call reads a counter nobody else touches.
pub fn late_heavy(seed: u64, n_txs: usize) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::LATE_HEAVY, Fork::Cancun);
    let looper = b.deploy_new(Bytes::from_static(c::COUNT_THEN_LOOP));
    let n_transfers = n_txs.saturating_sub(1);
    let bumper =
        (seed.is_multiple_of(2) && n_transfers > 0).then(|| b.rng.range(0, n_transfers as u64));
    for (i, sender) in b.wallets(n_transfers).into_iter().enumerate() {
        if bumper == Some(i as u64) {
            b.send(&sender, TxKind::Call(looper), U256::ZERO, Bytes::new(), COUNTER_GAS, Success);
            continue;
        }
        let to = b.address();
        let value = U256::from(b.rng.range(1, ETHER as u64));
        b.send(&sender, TxKind::Call(to), value, Bytes::new(), TRANSFER_GAS, Success);
    }
    if n_txs > 0 {
        let heavy = b.wallets(1).remove(0);
        let gas = (TRANSFER_GAS * n_transfers as u64).max(HEAVY_MIN_GAS);
        b.send(&heavy, TxKind::Call(looper), U256::ZERO, Bytes::from_static(&[1]), gas, Halt);
    }
    b.finish("late_heavy")
}

/// Hostile: 30% of the transactions touch one hot spot (half pay ether to one hot account, half
/// increment one hot counter slot); the other 70% are independent ether and WETH9 transfers.
pub fn hot_account_30pct(seed: u64, n_txs: usize) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::HOT_30, Fork::Cancun);
    let hot_account = b.address();
    let hot_counter = b.deploy_new(Bytes::from_static(c::COUNTER));
    let token = c::WETH9_ADDRESS;
    b.deploy_weth(token);
    for sender in b.wallets(n_txs) {
        let value = U256::from(b.rng.range(1, ETHER as u64));
        if b.rng.chance(30) {
            if b.rng.chance(50) {
                b.send(
                    &sender,
                    TxKind::Call(hot_account),
                    value,
                    Bytes::new(),
                    TRANSFER_GAS,
                    Success,
                );
            } else {
                let to = TxKind::Call(hot_counter);
                b.send(&sender, to, U256::ZERO, Bytes::new(), COUNTER_GAS, Success);
            }
        } else if b.rng.chance(50) {
            let to = b.address();
            b.send(&sender, TxKind::Call(to), value, Bytes::new(), TRANSFER_GAS, Success);
        } else {
            b.mint_weth(token, sender.address(), value);
            let input = c::erc20_transfer(b.address(), value);
            b.send(&sender, TxKind::Call(token), U256::ZERO, input, ERC20_GAS, Success);
        }
    }
    b.finish("hot_account_30pct")
}

/// Hostile: every transaction (own sender) runs `COINBASE BALANCE` and stores the result in the
/// sender's own slot, so the only conflict is the beneficiary's balance, which every earlier
/// transaction's fee changed.
pub fn reads_beneficiary(seed: u64, n_txs: usize) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::BENEFICIARY, Fork::Cancun);
    let beneficiary = b.beneficiary();
    b.add_balance(beneficiary, ether(1));
    let probe = b.deploy_new(Bytes::from_static(c::READ_BENEFICIARY));
    for sender in b.wallets(n_txs) {
        b.send(&sender, TxKind::Call(probe), U256::ZERO, Bytes::new(), SMALL_CALL_GAS, Success);
    }
    b.finish("reads_beneficiary")
}

/// Payouts, as mining pools and exchanges make them: the block's beneficiary (a pool) and a
/// second hot wallet each send most of the block's transactions, plain ether transfers to fresh
/// accounts (EIP-1559 and legacy), a few to a contract (a counter) instead; other senders pay
/// both hot wallets, and a probe reads the beneficiary's balance (`COINBASE BALANCE`) mid-block.
/// Sequentially one nonce chain per hot wallet; the engine's lazy senders run it in parallel.
pub fn payouts(seed: u64, n_txs: usize) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::PAYOUTS, Fork::Cancun);
    let pool = b.wallet(SENDER_BALANCE);
    b.header.beneficiary = pool.address();
    let exchange = b.wallet(SENDER_BALANCE);
    let counter = b.deploy_new(Bytes::from_static(c::COUNTER));
    let probe = b.deploy_new(Bytes::from_static(c::READ_BENEFICIARY));
    for _ in 0..n_txs {
        let value = U256::from(b.rng.range(1, ETHER as u64 / 1000));
        let roll = b.rng.range(0, 100);
        let hot = if b.rng.chance(60) { &pool } else { &exchange };
        if roll < 70 {
            let to = TxKind::Call(b.address());
            if b.rng.chance(30) {
                b.send_legacy(hot, to, value, Bytes::new(), TRANSFER_GAS, Success);
            } else {
                b.send(hot, to, value, Bytes::new(), TRANSFER_GAS, Success);
            }
        } else if roll < 80 {
            let to = TxKind::Call(counter);
            b.send(hot, to, value, Bytes::new(), COUNTER_GAS, Success);
        } else if roll < 92 {
            let payer = b.wallet(SENDER_BALANCE);
            let to =
                TxKind::Call(if b.rng.chance(50) { pool.address() } else { exchange.address() });
            b.send(&payer, to, value, Bytes::new(), TRANSFER_GAS, Success);
        } else {
            let reader = b.wallet(SENDER_BALANCE);
            b.send(&reader, TxKind::Call(probe), U256::ZERO, Bytes::new(), SMALL_CALL_GAS, Success);
        }
    }
    b.finish("payouts")
}

/// A builder's block: the beneficiary is the builder's wallet; searchers tip it through a
/// contract (each tip also bumps one of four tipping contracts' counters), others send it ether
/// directly, plain transfers and counter calls fill the block, a few transactions read its
/// balance (`BALANCE(COINBASE)`), and the builder itself pays out in the middle of the block and
/// pays the proposer at the end.
pub fn builder_tips(seed: u64, n_txs: usize) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::BUILDER_TIPS, Fork::Cancun);
    let builder = b.wallet(SENDER_BALANCE);
    b.header.beneficiary = builder.address();
    let tippers: Vec<Address> =
        (0..4).map(|_| b.deploy_new(Bytes::from_static(c::TIP_BENEFICIARY))).collect();
    let counter = b.deploy_new(Bytes::from_static(c::COUNTER));
    let probe = b.deploy_new(Bytes::from_static(c::READ_BENEFICIARY));
    let proposer = b.address();
    for i in 0..n_txs {
        let value = U256::from(b.rng.range(1, ETHER as u64 / 1000));
        if i + 1 == n_txs || i == n_txs / 2 {
            b.send(&builder, TxKind::Call(proposer), value, Bytes::new(), TRANSFER_GAS, Success);
            continue;
        }
        let sender = b.wallet(SENDER_BALANCE);
        let roll = b.rng.range(0, 100);
        let (to, value, gas) = if roll < 40 {
            let tipper = tippers[b.rng.range(0, tippers.len() as u64) as usize];
            (tipper, value, SMALL_CALL_GAS)
        } else if roll < 50 {
            (builder.address(), value, TRANSFER_GAS)
        } else if roll < 75 {
            (b.address(), value, TRANSFER_GAS)
        } else if roll < 95 {
            (counter, U256::ZERO, COUNTER_GAS)
        } else {
            (probe, U256::ZERO, SMALL_CALL_GAS)
        };
        b.send(&sender, TxKind::Call(to), value, Bytes::new(), gas, Success);
    }
    b.finish("builder_tips")
}

/// The property-test mix (Prague rules): ether transfers (EIP-1559 and legacy), WETH9 transfers
/// (and over-balance ones that revert), CREATE transactions (and calls to what they created),
/// CREATE2 through a factory, SELFDESTRUCT of a pre-existing contract (EIP-6780: only its balance
/// moves) and of contracts created in the same transaction (deleted, by CREATE and by CREATE2),
/// REVERTs, out-of-gas loops and invalid opcodes, nonce chains (a small pool of senders, and
/// bursts from one), one hot counter slot, reads of the beneficiary's balance, and EIP-7702
/// set-code transactions delegating fresh EOAs to the counter, plus later calls to them.
pub fn mixed(seed: u64, n_txs: usize) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::MIXED, Fork::Prague);
    let token = c::WETH9_ADDRESS;
    b.deploy_weth(token);
    let pool = b.wallets(6);
    for wallet in &pool {
        b.mint_weth(token, wallet.address(), ether(1_000_000));
    }
    let counter = b.deploy_new(Bytes::from_static(c::COUNTER));
    let probe = b.deploy_new(Bytes::from_static(c::READ_BENEFICIARY));
    let factory = b.deploy_new(Bytes::from_static(c::CREATE2_FACTORY));
    let reverter = b.deploy_new(Bytes::from_static(c::REVERTER));
    let looper = b.deploy_new(Bytes::from_static(c::INFINITE_LOOP));
    let invalid = b.deploy_new(Bytes::from_static(c::INVALID));
    let heir = b.address();
    let old_suicide = b.deploy_new(c::selfdestruct_to(heir));
    b.add_balance(old_suicide, ether(1));
    let counter_init = c::init_code_returning(c::COUNTER);
    let suicide_init = c::selfdestruct_to(heir);
    let mut created: Vec<Address> = Vec::new();
    let mut delegated: Vec<Address> = Vec::new();

    let mut remaining = n_txs;
    while remaining > 0 {
        let sender = if b.rng.chance(50) {
            pool[b.rng.range(0, pool.len() as u64) as usize].clone()
        } else {
            b.wallet(SENDER_BALANCE)
        };
        let value = U256::from(b.rng.range(1, ETHER as u64 / 100));
        let call = |b: &mut BlockBuilder, to: Address, input: Bytes, gas, expected| {
            b.send(&sender, TxKind::Call(to), U256::ZERO, input, gas, expected);
        };
        match b.rng.range(0, 17) {
            0 => {
                let to = if b.rng.chance(50) {
                    pool[b.rng.range(0, pool.len() as u64) as usize].address()
                } else {
                    b.address()
                };
                b.send(&sender, TxKind::Call(to), value, Bytes::new(), TRANSFER_GAS, Success);
            }
            1 => {
                let to = TxKind::Call(b.address());
                b.send_legacy(&sender, to, value, Bytes::new(), TRANSFER_GAS, Success);
            }
            2 => {
                // Only pool wallets hold WETH; `value` is far below their balance.
                let from = pool[b.rng.range(0, pool.len() as u64) as usize].clone();
                let input = c::erc20_transfer(b.address(), value);
                b.send(&from, TxKind::Call(token), U256::ZERO, input, ERC20_GAS, Success);
            }
            3 => {
                // More than any balance: WETH9's `require` reverts.
                let input = c::erc20_transfer(b.address(), ether(1_000_000_000));
                call(&mut b, token, input, ERC20_GAS, Revert);
            }
            4 => {
                let address = b.create(&sender, counter_init.clone(), U256::ZERO, 150_000, Success);
                created.push(address);
            }
            5 => {
                // Created and destroyed in one transaction: the account is deleted.
                b.create(&sender, suicide_init.clone(), value, 150_000, Success);
            }
            6 => call(&mut b, factory, counter_init.clone(), 200_000, Success),
            7 => call(&mut b, factory, suicide_init.clone(), 200_000, Success),
            8 => call(&mut b, old_suicide, Bytes::new(), MIXED_CALL_GAS, Success),
            9 => call(&mut b, reverter, Bytes::new(), MIXED_CALL_GAS, Revert),
            10 => {
                let target = if b.rng.chance(50) { looper } else { invalid };
                call(&mut b, target, Bytes::new(), 50_000, Halt);
            }
            11 => call(&mut b, counter, Bytes::new(), MIXED_CALL_GAS, Success),
            12 => call(&mut b, probe, Bytes::new(), MIXED_CALL_GAS, Success),
            13 => {
                // EIP-7702: a fresh EOA delegates to the counter; the transaction calls it.
                let authority = b.wallet(U256::ZERO);
                let nonce = b.take_nonce(authority.address());
                let auth = authority.authorize(CHAIN_ID, counter, nonce);
                b.send_set_code(
                    &sender,
                    authority.address(),
                    vec![auth],
                    Bytes::new(),
                    200_000,
                    Success,
                );
                delegated.push(authority.address());
            }
            14 => {
                let to = pick(&mut b, &delegated).unwrap_or(counter);
                call(&mut b, to, Bytes::new(), MIXED_CALL_GAS, Success);
            }
            15 => {
                let to = pick(&mut b, &created).unwrap_or(counter);
                call(&mut b, to, Bytes::new(), MIXED_CALL_GAS, Success);
            }
            _ => {
                // A burst from the first pool wallet: consecutive nonces in a row.
                let burst = remaining.min(3);
                for _ in 0..burst {
                    let to = TxKind::Call(b.address());
                    b.send(&pool[0], to, value, Bytes::new(), TRANSFER_GAS, Success);
                }
                remaining -= burst;
                continue;
            }
        }
        remaining -= 1;
    }
    b.finish("mixed")
}

fn pick(b: &mut BlockBuilder, from: &[Address]) -> Option<Address> {
    (!from.is_empty()).then(|| from[b.rng.range(0, from.len() as u64) as usize])
}

/// A block the oracle must reject: 16 ether transfers from distinct senders where transaction `k`
/// (returned, drawn from the seed) skips a nonce (it uses 1, its sender's account is at 0).
/// `expected` describes the other transactions as if the block were valid.
pub fn with_invalid_tx(seed: u64) -> (Workload, usize) {
    const N: usize = 16;
    let mut b = BlockBuilder::new(seed, stream::INVALID, Fork::Cancun);
    let k = b.rng.range(0, N as u64) as usize;
    for (i, sender) in b.wallets(N).into_iter().enumerate() {
        let to = TxKind::Call(b.address());
        let nonce = u64::from(i == k);
        let expected: ExpectedOutcome = Success;
        b.send_with_nonce(&sender, nonce, to, U256::from(1), Bytes::new(), TRANSFER_GAS, expected);
    }
    (b.finish("with_invalid_tx"), k)
}

/// What [`shared_recipients`] adds to its block of independent plain transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Twist {
    /// Nothing: every transaction is a plain transfer from its own sender, and no sender is
    /// paid.
    None,
    /// One transfer, late in the block, pays a contract (WETH9, whose fallback takes deposits).
    ContractRecipient,
    /// One sender is paid by an earlier transfer of the block.
    PaidSender,
    /// One transfer, late in the block, moves more than its sender holds: the block is invalid.
    ShortSender,
}

/// `n_txs` plain ether transfers, each from its own sender, to recipients drawn from a pool of
/// `n_txs / 4 + 1` (half of them fresh accounts, half funded), so that most recipients are paid
/// several times, at random gas tips (some zero), with `twist` (see [`Twist`]). The blocks the
/// engine runs without Block-STM, and the ones that look like them but are not.
pub fn shared_recipients(seed: u64, n_txs: usize, twist: Twist) -> Workload {
    let mut b = BlockBuilder::new(seed, stream::SHARED_RECIPIENTS, Fork::Cancun);
    let pool: Vec<Address> = (0..n_txs / 4 + 1)
        .map(|i| {
            let to = b.address();
            if i % 2 == 1 {
                let dust = U256::from(b.rng.range(1, 1_000_000));
                b.add_balance(to, dust);
            }
            to
        })
        .collect();
    let senders = b.wallets(n_txs);
    let weth = c::WETH9_ADDRESS;
    if twist == Twist::ContractRecipient {
        b.deploy_weth(weth);
    }
    let special = n_txs.saturating_sub(1 + n_txs / 8);
    for (i, sender) in senders.iter().enumerate() {
        let mut to = pool[b.rng.range(0, pool.len() as u64) as usize];
        let mut value = U256::from(b.rng.range(1, ETHER as u64));
        let mut expected = Success;
        if i == special {
            match twist {
                Twist::None => {}
                Twist::ContractRecipient => to = weth,
                Twist::PaidSender => to = senders[n_txs - 1].address(),
                Twist::ShortSender => {
                    value = SENDER_BALANCE;
                    expected = Halt;
                }
            }
        }
        let tip = u128::from(b.rng.range(0, 3)) * 1_000_000_000;
        b.send_with_tip(sender, TxKind::Call(to), value, tip, expected);
    }
    b.finish("shared_recipients")
}
