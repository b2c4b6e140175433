//! A deterministic, internally consistent test chain with signed transactions and receipts.

use crate::Era1Block;
use alloy_consensus::{
    proofs::{calculate_ommers_root, calculate_receipt_root, calculate_transaction_root},
    BlockBody, Eip658Value, Header, Receipt, ReceiptEnvelope, SignableTransaction, TxEip1559,
    TxEip2930, TxEnvelope, TxLegacy,
};
use alloy_eips::eip2930::{AccessList, AccessListItem};
use alloy_primitives::{Address, Bloom, Bytes, Log, Signature, TxKind, B256, B64, U256};
use k256::ecdsa::SigningKey;

/// splitmix64: small, deterministic, good enough for test data.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) const fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) const fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) const fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn bytes(&mut self, max: u64) -> Bytes {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    fn b256(&mut self) -> B256 {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        B256::from(out)
    }

    fn address(&mut self) -> Address {
        Address::from_slice(&self.b256()[..20])
    }
}

/// Which transaction and receipt formats a block may use.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Era {
    /// Legacy transactions (some without a chain id), post-state receipts.
    Frontier,
    /// Adds EIP-2930 transactions; status receipts.
    Berlin,
    /// Adds EIP-1559 transactions and the base fee.
    London,
}

/// The generated chain and the key that signed every transaction.
pub(crate) struct TestChain {
    pub(crate) blocks: Vec<Era1Block>,
    pub(crate) signer: Address,
}

fn sign<T: SignableTransaction<Signature>>(tx: T, key: &SigningKey) -> alloy_consensus::Signed<T> {
    let hash = tx.signature_hash();
    let (sig, recid) = key.sign_prehash_recoverable(hash.as_slice()).expect("signing succeeds");
    tx.into_signed(Signature::from((sig, recid)))
}

fn to(rng: &mut Rng) -> TxKind {
    if rng.below(8) == 0 {
        TxKind::Create
    } else {
        TxKind::Call(rng.address())
    }
}

fn access_list(rng: &mut Rng) -> AccessList {
    AccessList(
        (0..rng.below(3))
            .map(|_| AccessListItem {
                address: rng.address(),
                storage_keys: (0..rng.below(3)).map(|_| rng.b256()).collect(),
            })
            .collect(),
    )
}

fn logs(rng: &mut Rng) -> Vec<Log> {
    (0..rng.below(4))
        .map(|_| {
            let topics = (0..rng.below(5)).map(|_| rng.b256()).collect();
            Log::new_unchecked(rng.address(), topics, rng.bytes(64))
        })
        .collect()
}

/// `count` blocks from `start`; block `start` is genesis when `start == 0`.
pub(crate) fn generate_chain(start: u64, count: usize, seed: u64) -> TestChain {
    let mut rng = Rng::new(seed);
    let key = SigningKey::from_slice(&[0x42; 32]).expect("valid key");
    let signer = Address::from_private_key(&key);
    let mut nonce = 0u64;
    let mut blocks: Vec<Era1Block> = Vec::with_capacity(count);
    let mut parent_hash = if start == 0 { B256::ZERO } else { rng.b256() };
    let mut total_difficulty = if start == 0 { U256::ZERO } else { U256::from(1u64) << 70 };

    for i in 0..count {
        let number = start + i as u64;
        let era = match i * 3 / count.max(1) {
            0 => Era::Frontier,
            1 => Era::Berlin,
            _ => Era::London,
        };
        let base_fee = (era == Era::London).then(|| 7 + rng.below(1_000_000_000));

        let mut transactions = Vec::new();
        let mut receipts = Vec::new();
        let mut cumulative = 0u64;
        for _ in 0..rng.below(6) {
            let kind = match era {
                Era::Frontier => 0,
                Era::Berlin => rng.below(2),
                Era::London => rng.below(3),
            };
            let gas_limit = 21_000 + rng.below(200_000);
            let tx: TxEnvelope = match kind {
                0 => sign(
                    TxLegacy {
                        chain_id: (rng.below(2) == 0).then_some(1),
                        nonce,
                        gas_price: u128::from(base_fee.unwrap_or(1)) + 1_000,
                        gas_limit,
                        to: to(&mut rng),
                        value: U256::from(rng.next_u64()),
                        input: rng.bytes(100),
                    },
                    &key,
                )
                .into(),
                1 => sign(
                    TxEip2930 {
                        chain_id: 1,
                        nonce,
                        gas_price: u128::from(base_fee.unwrap_or(1)) + 2_000,
                        gas_limit,
                        to: to(&mut rng),
                        value: U256::from(rng.next_u64()),
                        access_list: access_list(&mut rng),
                        input: rng.bytes(100),
                    },
                    &key,
                )
                .into(),
                _ => sign(
                    TxEip1559 {
                        chain_id: 1,
                        nonce,
                        gas_limit,
                        max_fee_per_gas: u128::from(base_fee.unwrap_or(1)) * 2,
                        max_priority_fee_per_gas: 1 + u128::from(rng.below(1_000)),
                        to: to(&mut rng),
                        value: U256::from(rng.next_u64()),
                        access_list: access_list(&mut rng),
                        input: rng.bytes(100),
                    },
                    &key,
                )
                .into(),
            };
            nonce += 1;
            cumulative += 21_000 + rng.below(gas_limit - 20_999);
            let status = if era == Era::Frontier {
                Eip658Value::PostState(rng.b256())
            } else {
                Eip658Value::Eip658(rng.below(5) != 0)
            };
            let receipt = Receipt { status, cumulative_gas_used: cumulative, logs: logs(&mut rng) }
                .with_bloom();
            receipts.push(match kind {
                0 => ReceiptEnvelope::Legacy(receipt),
                1 => ReceiptEnvelope::Eip2930(receipt),
                _ => ReceiptEnvelope::Eip1559(receipt),
            });
            transactions.push(tx);
        }

        let ommers: Vec<Header> = if i % 7 == 3 {
            (0..1 + rng.below(2))
                .map(|_| Header {
                    parent_hash: rng.b256(),
                    beneficiary: rng.address(),
                    state_root: rng.b256(),
                    difficulty: U256::from(131_072 + rng.below(1 << 20)),
                    number: number.saturating_sub(1),
                    gas_limit: 8_000_000,
                    timestamp: 1_438_269_988 + 13 * i as u64,
                    extra_data: Bytes::from_static(b"uncle"),
                    nonce: B64::from(rng.next_u64()),
                    base_fee_per_gas: base_fee,
                    ..Default::default()
                })
                .collect()
        } else {
            Vec::new()
        };

        let mut logs_bloom = Bloom::ZERO;
        for receipt in &receipts {
            logs_bloom.accrue_bloom(receipt.logs_bloom());
        }
        let difficulty = U256::from(131_072 + rng.below(1 << 24));
        let header = Header {
            parent_hash,
            ommers_hash: calculate_ommers_root(&ommers),
            beneficiary: rng.address(),
            state_root: rng.b256(),
            transactions_root: calculate_transaction_root(&transactions),
            receipts_root: calculate_receipt_root(&receipts),
            logs_bloom,
            difficulty,
            number,
            gas_limit: 8_000_000,
            gas_used: cumulative,
            timestamp: 1_438_269_988 + 14 * i as u64,
            extra_data: rng.bytes(32),
            mix_hash: rng.b256(),
            nonce: B64::from(rng.next_u64()),
            base_fee_per_gas: base_fee,
            ..Default::default()
        };
        total_difficulty += difficulty;
        parent_hash = header.hash_slow();
        blocks.push(Era1Block {
            header,
            body: BlockBody { transactions, ommers, withdrawals: None },
            receipts,
            total_difficulty,
        });
    }
    TestChain { blocks, signer }
}
