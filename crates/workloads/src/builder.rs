//! [`BlockBuilder`]: the pre-state, the signed transactions and the header of one workload.

use crate::{
    contracts::{self, WETH9_CODE},
    rng::Rng,
    signer::Wallet,
    ExpectedOutcome, Workload,
};
use alloy_consensus::{
    proofs::calculate_transaction_root, Header, TxEip1559, TxEip7702, TxEnvelope, TxLegacy,
    EMPTY_OMMER_ROOT_HASH,
};
use alloy_eips::{eip7685::EMPTY_REQUESTS_HASH, eip7702::SignedAuthorization};
use alloy_primitives::{map::HashMap, Address, Bytes, TxKind, U256};
use revm::bytecode::Bytecode;
use std::collections::BTreeMap;
use velarium_chainspec::ChainSpec;
use velarium_executor::RecoveredTx;
use velarium_state::InMemoryState;

/// Chain id of every workload (mainnet's, so the real contracts see a familiar `CHAINID`).
pub(crate) const CHAIN_ID: u64 = 1;
/// The header's base fee: small but non-zero, so the burn and the tip both happen.
pub(crate) const BASE_FEE: u64 = 7;
/// Every transaction's fee cap (EIP-1559 `max_fee_per_gas`, legacy `gas_price`).
pub(crate) const MAX_FEE_PER_GAS: u128 = 2_000_000_000;
/// Every EIP-1559 transaction's tip cap; the effective tip is `min(this, cap - base fee)`.
pub(crate) const MAX_PRIORITY_FEE_PER_GAS: u128 = 1_000_000_000;
/// The balance of a funded sender: 1,000 ether, far above any workload's fees and values.
pub(crate) const SENDER_BALANCE: U256 = U256::from_limbs([0x35c9_adc5_dea0_0000, 0x36, 0, 0]);
/// Block number of every workload (not genesis, so the EIP-4788 call happens).
const BLOCK_NUMBER: u64 = 20_000_000;
/// Block timestamp (mid-2024).
const TIMESTAMP: u64 = 1_720_000_000;

/// The rule set of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fork {
    Cancun,
    Prague,
}

/// One pre-state account as the generators assemble it.
#[derive(Debug, Default)]
struct AccountSpec {
    balance: U256,
    nonce: u64,
    code: Option<Bytes>,
    storage: BTreeMap<U256, U256>,
}

/// Assembles a workload: accounts (ordered, so generation is deterministic), transactions with
/// tracked nonces, and the header.
#[derive(Debug)]
pub(crate) struct BlockBuilder {
    pub(crate) rng: Rng,
    seed: u64,
    fork: Fork,
    accounts: BTreeMap<Address, AccountSpec>,
    next_wallet: u64,
    nonces: HashMap<Address, u64>,
    txs: Vec<RecoveredTx>,
    expected: Vec<ExpectedOutcome>,
    pub(crate) header: Header,
}

impl BlockBuilder {
    /// A builder for generator `stream` with `seed`: system contracts deployed, header drafted.
    pub(crate) fn new(seed: u64, stream: u64, fork: Fork) -> Self {
        let mut rng = Rng::new(seed, stream);
        let header = Header {
            parent_hash: rng.b256(),
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: rng.address(),
            number: BLOCK_NUMBER,
            gas_limit: crate::DEFAULT_BLOCK_GAS_LIMIT,
            timestamp: TIMESTAMP,
            mix_hash: rng.b256(),
            base_fee_per_gas: Some(BASE_FEE),
            withdrawals_root: Some(alloy_consensus::constants::EMPTY_WITHDRAWALS),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(rng.b256()),
            requests_hash: (fork == Fork::Prague).then_some(EMPTY_REQUESTS_HASH),
            ..Default::default()
        };
        let mut builder = Self {
            rng,
            seed,
            fork,
            accounts: BTreeMap::new(),
            next_wallet: stream << 32,
            nonces: HashMap::default(),
            txs: Vec::new(),
            expected: Vec::new(),
            header,
        };
        builder.deploy(
            alloy_eips::eip4788::BEACON_ROOTS_ADDRESS,
            alloy_eips::eip4788::BEACON_ROOTS_CODE.clone(),
        );
        if fork == Fork::Prague {
            builder.deploy(
                alloy_eips::eip2935::HISTORY_STORAGE_ADDRESS,
                alloy_eips::eip2935::HISTORY_STORAGE_CODE.clone(),
            );
            builder.deploy(
                alloy_eips::eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
                alloy_eips::eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_CODE.clone(),
            );
            builder.deploy(
                alloy_eips::eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
                alloy_eips::eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_CODE.clone(),
            );
        }
        builder
    }

    pub(crate) const fn timestamp(&self) -> u64 {
        self.header.timestamp
    }

    pub(crate) const fn beneficiary(&self) -> Address {
        self.header.beneficiary
    }

    fn account(&mut self, address: Address) -> &mut AccountSpec {
        self.accounts.entry(address).or_default()
    }

    /// A new key whose account holds `balance` wei.
    pub(crate) fn wallet(&mut self, balance: U256) -> Wallet {
        let wallet = Wallet::derive(self.seed, self.next_wallet);
        self.next_wallet += 1;
        if !balance.is_zero() {
            self.add_balance(wallet.address(), balance);
        }
        wallet
    }

    /// `n` funded wallets.
    pub(crate) fn wallets(&mut self, n: usize) -> Vec<Wallet> {
        (0..n).map(|_| self.wallet(SENDER_BALANCE)).collect()
    }

    /// A fresh random address (no key, no account).
    pub(crate) fn address(&mut self) -> Address {
        self.rng.address()
    }

    pub(crate) fn add_balance(&mut self, address: Address, amount: U256) {
        self.account(address).balance += amount;
    }

    /// Puts `code` at `address`.
    pub(crate) fn deploy(&mut self, address: Address, code: impl Into<Bytes>) {
        let account = self.account(address);
        account.code = Some(code.into());
        // EIP-161: contracts start at nonce 1.
        account.nonce = account.nonce.max(1);
    }

    /// Puts `code` at a fresh random address and returns it.
    pub(crate) fn deploy_new(&mut self, code: impl Into<Bytes>) -> Address {
        let address = self.address();
        self.deploy(address, code);
        address
    }

    pub(crate) fn set_storage(&mut self, address: Address, slot: U256, value: U256) {
        self.account(address).storage.insert(slot, value);
    }

    /// Deploys a WETH9 instance (name, symbol, decimals set) at `address`.
    pub(crate) fn deploy_weth(&mut self, address: Address) {
        self.deploy(address, WETH9_CODE.clone());
        for (slot, value) in contracts::weth_metadata() {
            self.set_storage(address, slot, value);
        }
    }

    /// Credits `amount` WETH9 tokens of `token` to `owner`; the token's ether backs its supply
    /// (`totalSupply()` is the contract's balance).
    pub(crate) fn mint_weth(&mut self, token: Address, owner: Address, amount: U256) {
        let slot = contracts::weth_balance_slot(owner);
        let entry = self.account(token).storage.entry(slot).or_default();
        *entry += amount;
        self.add_balance(token, amount);
    }

    /// Sets `allowance[owner][spender] = type(uint256).max` on a WETH9 instance.
    pub(crate) fn approve_weth_max(&mut self, token: Address, owner: Address, spender: Address) {
        self.set_storage(token, contracts::weth_allowance_slot(owner, spender), U256::MAX);
    }

    /// The sender's next nonce, bumped.
    pub(crate) fn take_nonce(&mut self, sender: Address) -> u64 {
        let nonce = self.nonces.entry(sender).or_insert(0);
        let current = *nonce;
        *nonce += 1;
        current
    }

    /// The sender's next nonce, not bumped.
    pub(crate) fn peek_nonce(&self, sender: Address) -> u64 {
        self.nonces.get(&sender).copied().unwrap_or(0)
    }

    fn push(&mut self, envelope: TxEnvelope, sender: Address, expected: ExpectedOutcome) {
        self.txs.push(RecoveredTx::new_unchecked(envelope, sender));
        self.expected.push(expected);
    }

    /// An EIP-1559 transaction from `from`.
    pub(crate) fn send(
        &mut self,
        from: &Wallet,
        to: TxKind,
        value: U256,
        input: Bytes,
        gas_limit: u64,
        expected: ExpectedOutcome,
    ) {
        let nonce = self.take_nonce(from.address());
        self.send_with_nonce(from, nonce, to, value, input, gas_limit, expected);
    }

    /// An EIP-1559 transaction with an explicit nonce (for the invalid-block variant).
    #[expect(clippy::too_many_arguments, reason = "a transaction's fields")]
    pub(crate) fn send_with_nonce(
        &mut self,
        from: &Wallet,
        nonce: u64,
        to: TxKind,
        value: U256,
        input: Bytes,
        gas_limit: u64,
        expected: ExpectedOutcome,
    ) {
        let fees = (MAX_FEE_PER_GAS, MAX_PRIORITY_FEE_PER_GAS);
        self.push_eip1559(from, nonce, (to, value, input), gas_limit, fees, expected);
    }

    /// Signs and adds an EIP-1559 transaction: its call (`to`, value, input), its gas limit
    /// and its fees (max fee and max priority fee per gas).
    fn push_eip1559(
        &mut self,
        from: &Wallet,
        nonce: u64,
        (to, value, input): (TxKind, U256, Bytes),
        gas_limit: u64,
        (max_fee_per_gas, max_priority_fee_per_gas): (u128, u128),
        expected: ExpectedOutcome,
    ) {
        let tx = TxEip1559 {
            chain_id: CHAIN_ID,
            nonce,
            gas_limit,
            max_fee_per_gas,
            max_priority_fee_per_gas,
            to,
            value,
            access_list: Default::default(),
            input,
        };
        self.push(from.sign_tx(tx).into(), from.address(), expected);
    }

    /// A plain EIP-1559 transfer from `from` paying the priority fee `tip` (at most the
    /// block's usual max fee).
    pub(crate) fn send_with_tip(
        &mut self,
        from: &Wallet,
        to: TxKind,
        value: U256,
        tip: u128,
        expected: ExpectedOutcome,
    ) {
        let nonce = self.take_nonce(from.address());
        let fees = (MAX_FEE_PER_GAS, tip.min(MAX_FEE_PER_GAS));
        self.push_eip1559(from, nonce, (to, value, Bytes::new()), 21_000, fees, expected);
    }

    /// A legacy (EIP-155) transaction from `from`.
    pub(crate) fn send_legacy(
        &mut self,
        from: &Wallet,
        to: TxKind,
        value: U256,
        input: Bytes,
        gas_limit: u64,
        expected: ExpectedOutcome,
    ) {
        let tx = TxLegacy {
            chain_id: Some(CHAIN_ID),
            nonce: self.take_nonce(from.address()),
            gas_price: MAX_FEE_PER_GAS,
            gas_limit,
            to,
            value,
            input,
        };
        self.push(from.sign_tx(tx).into(), from.address(), expected);
    }

    /// A contract-creation transaction; returns the new contract's address.
    pub(crate) fn create(
        &mut self,
        from: &Wallet,
        init_code: Bytes,
        value: U256,
        gas_limit: u64,
        expected: ExpectedOutcome,
    ) -> Address {
        let address = from.address().create(self.peek_nonce(from.address()));
        self.send(from, TxKind::Create, value, init_code, gas_limit, expected);
        address
    }

    /// An EIP-7702 set-code transaction (Prague only).
    pub(crate) fn send_set_code(
        &mut self,
        from: &Wallet,
        to: Address,
        authorization_list: Vec<SignedAuthorization>,
        input: Bytes,
        gas_limit: u64,
        expected: ExpectedOutcome,
    ) {
        debug_assert_eq!(self.fork, Fork::Prague);
        let tx = TxEip7702 {
            chain_id: CHAIN_ID,
            nonce: self.take_nonce(from.address()),
            gas_limit,
            max_fee_per_gas: MAX_FEE_PER_GAS,
            max_priority_fee_per_gas: MAX_PRIORITY_FEE_PER_GAS,
            to,
            value: U256::ZERO,
            access_list: Default::default(),
            authorization_list,
            input,
        };
        self.push(from.sign_tx(tx).into(), from.address(), expected);
    }

    /// The finished workload, with the gas limit chosen by [`crate::GasLimit::Auto`].
    pub(crate) fn finish(self, name: &str) -> Workload {
        let spec = ChainSpec::from_network(
            match self.fork {
                Fork::Cancun => "Cancun",
                Fork::Prague => "Prague",
            },
            CHAIN_ID,
        )
        .expect("Cancun and Prague are known networks");
        let mut state = InMemoryState::new();
        for (address, account) in self.accounts {
            state.insert_account(
                address,
                account.balance,
                account.nonce,
                account.code.map(Bytecode::new_raw),
                account.storage.into_iter().filter(|(_, v)| !v.is_zero()).collect(),
            );
        }
        let envelopes: Vec<TxEnvelope> = self.txs.iter().map(|tx| tx.inner().clone()).collect();
        let mut header = self.header;
        header.transactions_root = calculate_transaction_root(&envelopes);
        let workload = Workload {
            name: name.to_string(),
            spec,
            header,
            transactions: self.txs,
            state,
            expected: self.expected,
        };
        workload
            .with_gas_limit_option(crate::GasLimit::Auto)
            .expect("the automatic gas limit always fits")
    }
}
