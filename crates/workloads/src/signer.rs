//! Deterministic keys and transaction signing (secp256k1 through k256).

use alloy_consensus::{SignableTransaction, Signed};
use alloy_eips::eip7702::{Authorization, SignedAuthorization};
use alloy_primitives::{keccak256, Address, Signature, B256, U256};
use k256::ecdsa::SigningKey;

/// A private key and its address.
#[derive(Clone)]
pub struct Wallet {
    key: SigningKey,
    address: Address,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet").field("address", &self.address).finish_non_exhaustive()
    }
}

impl Wallet {
    /// The key derived from `(seed, index)`: `keccak256("velarium-wallet" ++ seed ++ index)`,
    /// rehashed in the (never seen) case that it is not a valid scalar.
    pub fn derive(seed: u64, index: u64) -> Self {
        let mut material = Vec::with_capacity(31);
        material.extend_from_slice(b"velarium-wallet");
        material.extend_from_slice(&seed.to_be_bytes());
        material.extend_from_slice(&index.to_be_bytes());
        let mut bytes = keccak256(&material);
        loop {
            if let Ok(key) = SigningKey::from_slice(bytes.as_slice()) {
                let address = Address::from_public_key(key.verifying_key());
                return Self { key, address };
            }
            bytes = keccak256(bytes);
        }
    }

    /// The address of the key.
    pub const fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte hash, with the recovery id as the y parity (low-s, as k256 produces).
    pub fn sign_hash(&self, hash: B256) -> Signature {
        let (sig, recovery_id) = self
            .key
            .sign_prehash_recoverable(hash.as_slice())
            .expect("signing a 32-byte prehash cannot fail");
        Signature::from_signature_and_parity(sig, recovery_id.is_y_odd())
    }

    /// Signs a transaction over its signature hash.
    pub fn sign_tx<T: SignableTransaction<Signature>>(&self, tx: T) -> Signed<T> {
        let signature = self.sign_hash(tx.signature_hash());
        tx.into_signed(signature)
    }

    /// Signs an EIP-7702 authorization delegating this account to `delegate`.
    pub fn authorize(&self, chain_id: u64, delegate: Address, nonce: u64) -> SignedAuthorization {
        let auth = Authorization { chain_id: U256::from(chain_id), address: delegate, nonce };
        let signature = self.sign_hash(auth.signature_hash());
        auth.into_signed(signature)
    }
}
