//! Unobserved increments: a storage slot loaded only to add something to it and store it back.
//!
//! `balanceOf[to] += amount` (WETH9, and OpenZeppelin 5's `unchecked` credit of the receiver)
//! compiles to a straight run of code after the `SLOAD`: the loaded value is added to and stored
//! back to the same slot, and nothing else looks at it. A transaction running such a run on a
//! hot slot (a token's hot receiver) need not read the slot's current value: whatever the value,
//! it adds the same amount, and the rest of the transaction cannot tell. The engine then writes
//! the amount as a commutative delta instead of waiting for every earlier credit.
//!
//! [`unobserved_increment`] proves that of the code right after one `SLOAD`, by running it on an
//! abstract stack: the loaded value may be moved (`DUPn`, `SWAPn`), dropped (`POP`), added to
//! (`ADD` with an operand that does not depend on it) and stored (`SSTORE`, as the value, once,
//! at a key that is a copy of the loaded key, or a constant the code pushes, as a counter's
//! `PUSH1 0 SLOAD PUSH1 1 ADD PUSH1 0 SSTORE`: the caller checks either against the loaded
//! key); any other use, and any jump, jump target, call
//! or halt while the value (or a sum of it) is still on the stack, and the proof fails. The run
//! ends when the value and its sums are all gone. Gas is no concern here: the engine accepts the increment
//! only where `SSTORE`'s charge and refund cannot depend on the value (see the executor).

const ADD: u8 = 0x01;
const SLOAD: u8 = 0x54;
const SSTORE: u8 = 0x55;
const POP: u8 = 0x50;
const PUSH0: u8 = 0x5f;
const PUSH32: u8 = 0x7f;
const DUP1: u8 = 0x80;
const DUP16: u8 = 0x8f;
const SWAP1: u8 = 0x90;
const SWAP16: u8 = 0x9f;

/// Opcodes followed before giving up.
const MAX_STEPS: usize = 64;

/// What [`unobserved_increment`] proved of one `SLOAD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Increment {
    /// Where the `SSTORE` that writes the increased value back is.
    pub sstore_pc: usize,
    /// The `SSTORE`'s key: the caller must check that it equals the loaded key.
    pub key: StoreKey,
}

/// The key the increment's `SSTORE` stores at, as [`unobserved_increment`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKey {
    /// The stack item this deep, counted from the top when the `SLOAD` starts (0: the loaded
    /// key itself).
    Depth(usize),
    /// A constant the code pushes (big-endian, as `PUSHn` left-pads it).
    Constant([u8; 32]),
}

/// A stack item of the abstract run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// The item this deep on the stack when the `SLOAD` started (0 was its key).
    Before(usize),
    /// The loaded value.
    Loaded,
    /// The loaded value plus something that does not depend on it.
    Increased,
    /// A constant pushed by the code (big-endian).
    Pushed([u8; 32]),
    /// Anything else (a value that does not depend on the loaded one).
    Other,
}

impl Item {
    const fn depends(self) -> bool {
        matches!(self, Self::Loaded | Self::Increased)
    }
}

/// The abstract stack: the items pushed since the `SLOAD` (top last), above the items that were
/// on the stack before it, taken as they are reached.
struct Stack {
    items: Vec<Item>,
    /// The next item from before the `SLOAD` to be reached.
    next_before: usize,
}

impl Stack {
    fn pop(&mut self) -> Item {
        self.items.pop().unwrap_or_else(|| {
            self.next_before += 1;
            Item::Before(self.next_before - 1)
        })
    }

    /// Makes the top `n` items explicit.
    fn reach(&mut self, n: usize) {
        while self.items.len() < n {
            self.items.insert(0, Item::Before(self.next_before));
            self.next_before += 1;
        }
    }

    fn depends(&self) -> bool {
        self.items.iter().any(|item| item.depends())
    }
}

/// Stack inputs and outputs of the opcodes an increment's run may contain besides `ADD`,
/// `SSTORE`, `POP`, `PUSHn`, `DUPn` and `SWAPn`: arithmetic, comparisons, bit operations,
/// hashing, memory, logs and the call's own constants. Jumps, calls, halts and state reads
/// other than `SLOAD` end the run (`None`), and so does a `JUMPDEST`: a jump from elsewhere
/// could land there and reach the `SSTORE` without this `SLOAD` (the engine takes the `SSTORE`
/// at the proved position for the increment's).
const fn stack_io(op: u8) -> Option<(usize, usize)> {
    Some(match op {
        // MUL SUB DIV SDIV MOD SMOD, EXP SIGNEXTEND
        0x02..=0x07 | 0x0a | 0x0b => (2, 1),
        // ADDMOD MULMOD
        0x08 | 0x09 => (3, 1),
        // LT GT SLT SGT EQ, AND OR XOR, BYTE SHL SHR SAR
        0x10..=0x14 | 0x16..=0x18 | 0x1a..=0x1d => (2, 1),
        // ISZERO NOT
        0x15 | 0x19 => (1, 1),
        // KECCAK256
        0x20 => (2, 1),
        // ADDRESS ORIGIN CALLER CALLVALUE, CALLDATASIZE CODESIZE GASPRICE
        0x30 | 0x32..=0x34 | 0x36 | 0x38 | 0x3a => (0, 1),
        // CALLDATALOAD, MLOAD, SLOAD (of another slot: the engine watches every load)
        0x35 | 0x51 | SLOAD => (1, 1),
        // MSTORE MSTORE8
        0x52 | 0x53 => (2, 0),
        // PC MSIZE GAS
        0x58..=0x5a => (0, 1),
        // LOG0..LOG4
        0xa0..=0xa4 => ((op - 0xa0) as usize + 2, 0),
        _ => return None,
    })
}

/// Whether the code after the `SLOAD` at `sload_pc` only increases the loaded value and stores
/// it back, and where (see the module docs). `None` when that cannot be shown.
pub fn unobserved_increment(code: &[u8], sload_pc: usize) -> Option<Increment> {
    if code.get(sload_pc) != Some(&SLOAD) {
        return None;
    }
    let mut stack = Stack { items: vec![Item::Loaded], next_before: 1 };
    let mut stored: Option<Increment> = None;
    let mut pc = sload_pc + 1;
    for _ in 0..MAX_STEPS {
        let op = *code.get(pc)?;
        pc += 1;
        match op {
            ADD => {
                let (a, b) = (stack.pop(), stack.pop());
                let item = match (a.depends(), b.depends()) {
                    (false, false) => Item::Other,
                    (true, false) | (false, true) => Item::Increased,
                    (true, true) => return None,
                };
                stack.items.push(item);
            }
            SSTORE => {
                let (key, value) = (stack.pop(), stack.pop());
                match (key, value) {
                    (_, Item::Loaded) => return None,
                    (Item::Before(depth), Item::Increased) if stored.is_none() => {
                        stored = Some(Increment { sstore_pc: pc - 1, key: StoreKey::Depth(depth) });
                    }
                    (Item::Pushed(constant), Item::Increased) if stored.is_none() => {
                        stored = Some(Increment {
                            sstore_pc: pc - 1,
                            key: StoreKey::Constant(constant),
                        });
                    }
                    (key, value) if !key.depends() && !value.depends() => {}
                    _ => return None,
                }
            }
            POP => {
                stack.pop();
            }
            PUSH0..=PUSH32 => {
                let len = usize::from(op - PUSH0);
                // Push data cut off by the code's end reads as zeros; it is taken as unknown.
                let item = match code.get(pc..pc + len) {
                    Some(data) => {
                        let mut word = [0u8; 32];
                        word[32 - len..].copy_from_slice(data);
                        Item::Pushed(word)
                    }
                    None => Item::Other,
                };
                pc += len;
                stack.items.push(item);
            }
            DUP1..=DUP16 => {
                let n = usize::from(op - DUP1) + 1;
                stack.reach(n);
                let item = stack.items[stack.items.len() - n];
                stack.items.push(item);
            }
            SWAP1..=SWAP16 => {
                let n = usize::from(op - SWAP1) + 1;
                stack.reach(n + 1);
                let top = stack.items.len() - 1;
                stack.items.swap(top, top - n);
            }
            _ => {
                let (inputs, outputs) = stack_io(op)?;
                for _ in 0..inputs {
                    if stack.pop().depends() {
                        return None;
                    }
                }
                stack.items.extend(std::iter::repeat_n(Item::Other, outputs));
            }
        }
        if !stack.depends() {
            // The value is gone: stored once as an increase, or never (then nothing was shown).
            return stored;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// WETH9's `balanceOf[dst] += wad` (`transferFrom`, mainnet code): `PUSH1 0 DUP3 DUP3 SLOAD
    /// ADD SWAP3 POP POP DUP2 SWAP1 SSTORE POP CALLER`.
    const WETH9_CREDIT: &[u8] =
        &[0x60, 0x00, 0x82, 0x82, 0x54, 0x01, 0x92, 0x50, 0x50, 0x81, 0x90, 0x55, 0x50, 0x33];

    #[test]
    fn weths_credit_of_the_receiver_is_an_increment() {
        // At the SLOAD the stack is (top first) key, wad, 0, key, wad: the store's key is the
        // copy three down.
        assert_eq!(
            unobserved_increment(WETH9_CREDIT, 4),
            Some(Increment { sstore_pc: 11, key: StoreKey::Depth(3) })
        );
    }

    #[test]
    fn a_counter_stored_back_through_a_pushed_key_names_the_constant() {
        // PUSH0 SLOAD PUSH1 1 ADD PUSH0 SSTORE: the key is pushed again; the caller compares
        // the constant with the loaded key.
        assert_eq!(
            unobserved_increment(&[0x5f, 0x54, 0x60, 0x01, 0x01, 0x5f, 0x55, 0x00], 1),
            Some(Increment { sstore_pc: 6, key: StoreKey::Constant([0; 32]) })
        );
        // PUSH1 0 SLOAD PUSH1 1 ADD PUSH2 0x0102 SSTORE: another constant (the caller's check
        // fails for a load of slot 0).
        let mut slot = [0u8; 32];
        slot[30..].copy_from_slice(&[0x01, 0x02]);
        assert_eq!(
            unobserved_increment(&[0x60, 0x00, 0x54, 0x60, 0x01, 0x01, 0x61, 0x01, 0x02, 0x55], 2),
            Some(Increment { sstore_pc: 9, key: StoreKey::Constant(slot) })
        );
        // PUSH0 DUP1 SLOAD PUSH1 1 ADD SWAP1 SSTORE STOP: stored at the kept key.
        assert_eq!(
            unobserved_increment(&[0x5f, 0x80, 0x54, 0x60, 0x01, 0x01, 0x90, 0x55, 0x00], 2),
            Some(Increment { sstore_pc: 7, key: StoreKey::Depth(1) })
        );
        // An NFT's next id (PUSH1 0 SLOAD PUSH1 1 ADD DUP1 PUSH1 0 SSTORE CALLER SWAP1 SSTORE):
        // the increased value is also stored as the owner's slot key's value: observed.
        let mint = [0x60, 0x00, 0x54, 0x60, 0x01, 0x01, 0x80, 0x60, 0x00, 0x55, 0x33, 0x90, 0x55];
        assert_eq!(unobserved_increment(&mint, 2), None);
        // PUSH1 0 SLOAD PUSH1 1 ADD PUSH2 <cut off>: push data past the code's end.
        assert_eq!(
            unobserved_increment(&[0x60, 0x00, 0x54, 0x60, 0x01, 0x01, 0x61, 0x01], 2),
            None
        );
    }

    #[test]
    fn any_other_use_of_the_value_fails() {
        // DUP1 SLOAD DUP1 PUSH1 5 GT ...: compared (a checked add's overflow test).
        assert_eq!(unobserved_increment(&[0x80, 0x54, 0x80, 0x60, 0x05, 0x11, 0x00], 1), None);
        // DUP1 SLOAD PUSH1 1 SWAP1 SUB SWAP1 SSTORE: a decrease (SUB) is not an increment.
        assert_eq!(
            unobserved_increment(&[0x80, 0x54, 0x60, 0x01, 0x90, 0x03, 0x90, 0x55], 1),
            None
        );
        // DUP1 SLOAD PUSH1 9 JUMP: a jump while the value is live.
        assert_eq!(unobserved_increment(&[0x80, 0x54, 0x60, 0x09, 0x56], 1), None);
        // DUP1 SLOAD JUMPDEST PUSH1 1 ADD SWAP1 SSTORE: a jump target inside the run.
        let code = [0x80, 0x54, 0x5b, 0x60, 0x01, 0x01, 0x90, 0x55, 0x00];
        assert_eq!(unobserved_increment(&code, 1), None);
        // DUP1 SLOAD PUSH0 MSTORE: the value goes to memory.
        assert_eq!(unobserved_increment(&[0x80, 0x54, 0x5f, 0x52], 1), None);
        // DUP1 SLOAD SWAP1 SSTORE: stored unchanged (as the value, not increased).
        assert_eq!(unobserved_increment(&[0x80, 0x54, 0x90, 0x55], 1), None);
        // DUP1 SLOAD DUP1 ADD SWAP1 SSTORE: doubled (both operands depend on it).
        assert_eq!(unobserved_increment(&[0x80, 0x54, 0x80, 0x01, 0x90, 0x55], 1), None);
        // DUP1 SLOAD POP: loaded and dropped, nothing stored: nothing to show.
        assert_eq!(unobserved_increment(&[0x80, 0x54, 0x50, 0x00], 1), None);
        // The code ends while the value is live; not an SLOAD at all.
        assert_eq!(unobserved_increment(&[0x80, 0x54, 0x60, 0x01, 0x01], 1), None);
        assert_eq!(unobserved_increment(WETH9_CREDIT, 3), None);
    }

    #[test]
    fn a_second_store_of_the_increase_fails() {
        // DUP1 SLOAD PUSH1 1 ADD DUP1 DUP3 SSTORE DUP2 SSTORE: the increase stored twice.
        let code = [0x80, 0x54, 0x60, 0x01, 0x01, 0x80, 0x82, 0x55, 0x81, 0x55, 0x00];
        assert_eq!(unobserved_increment(&code, 1), None);
    }

    proptest! {
        /// Any bytes, any position: no panic, and a proof names an `SSTORE` after the `SLOAD`.
        #[test]
        fn never_panics(code in prop::collection::vec(any::<u8>(), 0..200), at in 0usize..200) {
            if let Some(found) = unobserved_increment(&code, at) {
                prop_assert_eq!(code[at], SLOAD);
                prop_assert!(found.sstore_pc > at);
                prop_assert_eq!(code[found.sstore_pc], SSTORE);
            }
        }
    }
}
