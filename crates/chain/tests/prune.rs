//! A linear import that keeps only the head's state takes each parent's state over instead of
//! copying it; a block whose state root is wrong must then leave the parent's state exactly as
//! it was, so that the right block imports on top of it.

use alloy_primitives::B256;
use std::path::PathBuf;
use velarium_chain::{
    genesis::load_genesis_file,
    rlp::{decode_blocks, read_chain_file},
    Blockchain, ImportError, PostExecutionError, KEPT_BLOCKS,
};
use velarium_executor::Engine;

fn devp2p() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/chains/geth-devp2p")
}

#[test]
fn a_pruned_import_survives_blocks_with_a_wrong_state_root() {
    let dir = devp2p();
    let genesis = load_genesis_file(&dir.join("genesis.json")).expect("devp2p genesis");
    let bytes = read_chain_file(&dir.join("chain.rlp")).expect("devp2p chain");
    let blocks = decode_blocks(&bytes, "chain.rlp").expect("devp2p blocks");
    let new_chain = || {
        Blockchain::new(
            genesis.spec.clone(),
            genesis.header.clone(),
            genesis.state.clone(),
            Engine::Sequential,
        )
    };
    let mut pruned = new_chain();
    pruned.set_prune(true);
    let mut kept = new_chain();

    let mut rejected = 0;
    for (i, block) in blocks.iter().enumerate() {
        if i % 40 == 7 {
            let mut bad = block.clone();
            bad.header.state_root = B256::repeat_byte(0x11);
            let err = pruned.import_block(&bad).expect_err("a wrong state root is rejected");
            assert!(
                matches!(err, ImportError::PostExecution(PostExecutionError::StateRoot { .. })),
                "block {}: {err}",
                block.header.number
            );
            rejected += 1;
            // The parent's state is whole again: same root as the chain that copies states.
            assert_eq!(pruned.head_hash(), kept.head_hash());
            assert_eq!(
                pruned.head_state().compute_state_root(),
                kept.head_state().compute_state_root()
            );
        }
        let imported = pruned.import_block(block).expect("the real block imports");
        assert!(imported.is_head);
        kept.import_block(block).expect("the real block imports without pruning");
        // A bounded window of blocks, whatever the chain's length.
        assert!(pruned.block_count() as u64 <= KEPT_BLOCKS + 64 + 1);
    }
    assert!(blocks.len() as u64 > KEPT_BLOCKS + 64, "the chain is long enough to prune");
    assert_eq!(kept.block_count(), blocks.len() + 1);
    assert!(rejected >= 10, "only {rejected} wrong blocks tried");
    assert_eq!(pruned.head_hash(), kept.head_hash());
    let head_root = pruned.head().state_root;
    assert_eq!(pruned.head_state().compute_state_root(), head_root);
    assert_eq!(kept.head_state().compute_state_root(), head_root);
}
