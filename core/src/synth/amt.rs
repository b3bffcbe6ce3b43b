//! AMT-like arrays (Filecoin's `go-amt-ipld` v3 shape): root `[bit_width, height, count, node]`
//! and node `[bitmap bytes, [links], [values]]`. Leaves (height 0) hold values; inner nodes
//! hold links to child nodes; the top node is inlined in the root. Indexes are dense from 0.

use alloc::vec::Vec;

use cid::Cid;

use super::cbor;
use super::sink::Sink;

/// Bits per level: 8 entries per node, as Filecoin's message and receipt AMTs use.
pub(crate) const BIT_WIDTH: u32 = 3;
const WIDTH: usize = 1 << BIT_WIDTH;

/// The bitmap byte of a node whose first `n` (1..=8) slots are set.
fn bitmap(n: usize) -> u8 {
    (((1u16) << n) - 1) as u8
}

/// Writes an inner node linking to `children` (1..=8 of them).
fn inner_node(out: &mut Vec<u8>, children: &[Cid]) {
    cbor::array(out, 3);
    cbor::bytes(out, &[bitmap(children.len())]);
    cbor::array(out, children.len());
    for c in children {
        cbor::link(out, c);
    }
    cbor::array(out, 0);
}

/// Writes a leaf node holding values `range` (1..=8 of them, or none for the empty AMT).
fn leaf_node(out: &mut Vec<u8>, range: core::ops::Range<usize>, value: &mut impl FnMut(usize, &mut Vec<u8>)) {
    cbor::array(out, 3);
    cbor::bytes(out, &[bitmap(range.len())]);
    cbor::array(out, 0);
    cbor::array(out, range.len());
    for i in range {
        value(i, out);
    }
}

fn root_head(out: &mut Vec<u8>, height: u64, count: usize) {
    cbor::array(out, 4);
    cbor::uint(out, u64::from(BIT_WIDTH));
    cbor::uint(out, height);
    cbor::uint(out, count as u64);
}

/// Builds an AMT of `count` values, `value(i, out)` writing value `i`, emitting every node
/// (children before parents, root last) and returning the root's CID.
///
/// Every node goes through `Sink::put_dedup`: blocks of one tipset that share messages can
/// build identical message AMTs, and the empty AMT is the same object in every epoch.
pub(crate) fn build(sink: &mut Sink, count: usize, mut value: impl FnMut(usize, &mut Vec<u8>)) -> Cid {
    let mut height = 0u64;
    let mut capacity = WIDTH;
    while capacity < count {
        capacity *= WIDTH;
        height += 1;
    }
    let mut root = Vec::with_capacity(16 + count * 48);
    root_head(&mut root, height, count);
    if height == 0 {
        leaf_node(&mut root, 0..count, &mut value);
        return sink.put_dedup(root);
    }
    let mut level: Vec<Cid> = (0..count.div_ceil(WIDTH))
        .map(|leaf| {
            let start = leaf * WIDTH;
            let mut node = Vec::with_capacity(8 + WIDTH * 48);
            leaf_node(&mut node, start..count.min(start + WIDTH), &mut value);
            sink.put_dedup(node)
        })
        .collect();
    // `level` holds the nodes one level below the top once it fits in a single node.
    while level.len() > WIDTH {
        level = level
            .chunks(WIDTH)
            .map(|children| {
                let mut node = Vec::with_capacity(8 + WIDTH * 42);
                inner_node(&mut node, children);
                sink.put_dedup(node)
            })
            .collect();
    }
    inner_node(&mut root, &level);
    sink.put_dedup(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uint_values(count: usize) -> (Cid, Vec<(Cid, Vec<u8>)>) {
        let mut sink = Sink::default();
        let root = build(&mut sink, count, |i, out| cbor::uint(out, i as u64));
        (root, sink.take_epoch().0)
    }

    #[test]
    fn empty_amt_is_one_constant_block() {
        let (root, blocks) = uint_values(0);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].0, root);
        assert_eq!(blocks[0].1, [0x84, 0x03, 0x00, 0x00, 0x83, 0x41, 0x00, 0x80, 0x80]);
    }

    #[test]
    fn small_amt_is_inlined_in_the_root() {
        let (root, blocks) = uint_values(3);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].0, root);
        assert_eq!(blocks[0].1, [0x84, 0x03, 0x00, 0x03, 0x83, 0x41, 0x07, 0x80, 0x83, 0x00, 0x01, 0x02]);
    }

    #[test]
    fn node_counts_follow_the_height() {
        // 9 values: two leaves under the root node.
        let (_, blocks) = uint_values(9);
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[2].1[2], 1, "height 1");
        // 65 values: 9 leaves, 2 inner nodes, root at height 2.
        let (_, blocks) = uint_values(65);
        assert_eq!(blocks.len(), 9 + 2 + 1);
        assert_eq!(blocks[11].1[2], 2, "height 2");
        // 64 values fit height 1 exactly: 8 leaves and the root.
        let (_, blocks) = uint_values(64);
        assert_eq!(blocks.len(), 9);
    }
}
