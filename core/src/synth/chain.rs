//! Chain objects: messages, the per-block TxMeta, receipt AMTs and the 16-field block header.

use alloc::vec::Vec;

use cid::Cid;

use super::amt;
use super::cbor;
use super::rng::Rng;
use super::sink::Sink;

/// Per mille of message slots (in blocks after a tipset's first) filled with a message an
/// earlier block of the same tipset already included, as happens on mainnet.
const SHARED_PER_MILLE: u32 = 250;

/// A tipset's messages.
#[derive(Debug)]
pub(crate) struct TipsetMessages {
    /// One TxMeta per block, in block order.
    pub(crate) txmetas: Vec<Cid>,
    /// Distinct messages across the tipset: the number of receipts its child records.
    pub(crate) unique: usize,
}

/// Builds and emits the messages, message AMTs and TxMeta objects of a tipset of `blocks`
/// blocks. `serial` numbers messages chain-wide and is their nonce, so no message repeats
/// across tipsets; inside a tipset, shared messages are emitted once.
pub(crate) fn tipset_messages(
    rng: &mut Rng,
    sink: &mut Sink,
    serial: &mut u64,
    blocks: usize,
    per_block: usize,
    actors: u64,
) -> TipsetMessages {
    let mut pool: Vec<(Cid, bool)> = Vec::with_capacity(blocks * per_block);
    let mut txmetas = Vec::with_capacity(blocks);
    for _ in 0..blocks {
        let earlier = pool.len();
        let mut mine: Vec<(Cid, bool)> = Vec::with_capacity(per_block);
        for _ in 0..per_block {
            if earlier > 0 && rng.per_mille(SHARED_PER_MILLE) {
                let pick = pool[rng.below(earlier as u64) as usize];
                if !mine.contains(&pick) {
                    mine.push(pick);
                    continue;
                }
            }
            let secp = rng.below(2) == 0;
            let cid = sink.put_new(message(rng, *serial, actors, secp));
            *serial += 1;
            pool.push((cid, secp));
            mine.push((cid, secp));
        }
        let bls: Vec<Cid> = mine.iter().filter(|m| !m.1).map(|m| m.0).collect();
        let secp: Vec<Cid> = mine.iter().filter(|m| m.1).map(|m| m.0).collect();
        txmetas.push(txmeta(sink, &bls, &secp));
    }
    TipsetMessages { txmetas, unique: pool.len() }
}

/// `TxMeta [bls_messages_amt, secp_messages_amt]`, each AMT holding message CIDs.
pub(crate) fn txmeta(sink: &mut Sink, bls: &[Cid], secp: &[Cid]) -> Cid {
    let bls_root = amt::build(sink, bls.len(), |i, out| cbor::link(out, &bls[i]));
    let secp_root = amt::build(sink, secp.len(), |i, out| cbor::link(out, &secp[i]));
    let mut out = Vec::with_capacity(90);
    cbor::array(&mut out, 2);
    cbor::link(&mut out, &bls_root);
    cbor::link(&mut out, &secp_root);
    sink.put_dedup(out)
}

/// A message `[version, to, from, nonce, value, gas_limit, gas_fee_cap, gas_premium, method,
/// params]`; secp messages are wrapped as `[message, signature]`.
fn message(rng: &mut Rng, nonce: u64, actors: u64, secp: bool) -> Vec<u8> {
    let params = rng.below(48) as usize;
    let mut out = Vec::with_capacity(96 + params);
    if secp {
        cbor::array(&mut out, 2);
    }
    cbor::array(&mut out, 10);
    cbor::uint(&mut out, 0);
    cbor::id_address(&mut out, rng.below(actors.max(1)));
    cbor::id_address(&mut out, rng.below(actors.max(1)));
    cbor::uint(&mut out, nonce);
    cbor::bigint(&mut out, u128::from(rng.below(1 << 40)) * 1_000_000);
    cbor::uint(&mut out, 1_000_000 + rng.below(50_000_000));
    cbor::bigint(&mut out, 100_000 + u128::from(rng.below(1_000_000)));
    cbor::bigint(&mut out, u128::from(rng.below(100_000)));
    cbor::uint(&mut out, rng.below(30));
    cbor::random_bytes(&mut out, rng, params);
    if secp {
        cbor::signature(&mut out, rng, 1, 65);
    }
    out
}

/// Builds and emits the receipts AMT for `count` messages: values
/// `[exit_code, return, gas_used]`. The return value encodes a chain-wide `serial`, so no two
/// receipts, hence no two non-empty receipt AMT nodes, are ever equal.
pub(crate) fn receipts(rng: &mut Rng, sink: &mut Sink, serial: &mut u64, count: usize) -> Cid {
    let first = *serial;
    *serial += count as u64;
    amt::build(sink, count, |i, out| {
        cbor::array(out, 3);
        let exit = if rng.per_mille(50) { 16 + rng.below(8) } else { 0 };
        cbor::uint(out, exit);
        let mut ret = Vec::with_capacity(9);
        cbor::uint(&mut ret, first + i as u64);
        cbor::bytes(out, &ret);
        cbor::uint(out, 500_000 + rng.below(100_000_000));
    })
}

/// The fields of a header that tie it into the chain; everything else is random filler.
#[derive(Debug)]
pub(crate) struct HeaderLinks<'a> {
    pub(crate) miner: u64,
    pub(crate) parents: &'a [Cid],
    pub(crate) parent_weight: u128,
    pub(crate) height: i64,
    pub(crate) parent_state_root: Cid,
    pub(crate) parent_message_receipts: Cid,
    pub(crate) messages: Cid,
    pub(crate) timestamp: u64,
    pub(crate) parent_base_fee: u128,
}

/// Encodes a 16-field header: Miner, Ticket, ElectionProof, BeaconEntries, WinPoStProof,
/// Parents, ParentWeight, Height, ParentStateRoot, ParentMessageReceipts, Messages,
/// BLSAggregate, Timestamp, BlockSig, ForkSignaling, ParentBaseFee.
pub(crate) fn header(rng: &mut Rng, h: &HeaderLinks<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(820 + 42 * h.parents.len());
    cbor::array(&mut out, 16);
    cbor::id_address(&mut out, h.miner);
    // Ticket [vrf_proof]
    cbor::array(&mut out, 1);
    cbor::random_bytes(&mut out, rng, 96);
    // ElectionProof [win_count, vrf_proof]
    cbor::array(&mut out, 2);
    cbor::uint(&mut out, 1 + rng.below(3));
    cbor::random_bytes(&mut out, rng, 96);
    // BeaconEntries [[round, data]]
    cbor::array(&mut out, 1);
    cbor::array(&mut out, 2);
    cbor::uint(&mut out, 1_000_000 + h.height.unsigned_abs());
    cbor::random_bytes(&mut out, rng, 96);
    // WinPoStProof [[proof_type, proof]]
    cbor::array(&mut out, 1);
    cbor::array(&mut out, 2);
    cbor::uint(&mut out, 3);
    cbor::random_bytes(&mut out, rng, 192);
    cbor::array(&mut out, h.parents.len());
    for p in h.parents {
        cbor::link(&mut out, p);
    }
    cbor::bigint(&mut out, h.parent_weight);
    cbor::int(&mut out, h.height);
    cbor::link(&mut out, &h.parent_state_root);
    cbor::link(&mut out, &h.parent_message_receipts);
    cbor::link(&mut out, &h.messages);
    cbor::signature(&mut out, rng, 2, 96);
    cbor::uint(&mut out, h.timestamp);
    cbor::signature(&mut out, rng, 2, 96);
    cbor::uint(&mut out, 0);
    cbor::bigint(&mut out, h.parent_base_fee);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_messages_are_emitted_once() {
        let mut rng = Rng::new(4, 0);
        let mut sink = Sink::default();
        let mut serial = 0;
        let mut shared_seen = false;
        let mut total_unique = 0;
        for _ in 0..50 {
            let t = tipset_messages(&mut rng, &mut sink, &mut serial, 3, 6, 100);
            total_unique += t.unique;
            assert_eq!(t.txmetas.len(), 3);
            let blocks = sink.take_epoch().0;
            let messages = blocks.iter().filter(|(_, b)| b[0] == 0x8a || (b[0] == 0x82 && b[1] == 0x8a)).count();
            assert_eq!(messages, t.unique);
            shared_seen |= t.unique < 18;
            let mut cids: Vec<Cid> = blocks.iter().map(|b| b.0).collect();
            cids.sort();
            cids.dedup();
            assert_eq!(cids.len(), blocks.len(), "no block twice in one epoch");
        }
        assert!(shared_seen);
        assert_eq!(serial as usize, total_unique);
    }

    #[test]
    fn receipts_amt_counts_its_messages() {
        let mut rng = Rng::new(4, 0);
        let mut sink = Sink::default();
        let mut serial = 10;
        receipts(&mut rng, &mut sink, &mut serial, 20);
        assert_eq!(serial, 30);
        let blocks = sink.take_epoch().0;
        // 20 values at 8 per node: 3 leaves and the root.
        assert_eq!(blocks.len(), 4);
        let root = &blocks[3].1;
        assert_eq!(&root[..4], &[0x84, 0x03, 0x01, 0x14]);
    }

    #[test]
    fn header_has_sixteen_fields_and_the_height() {
        let mut rng = Rng::new(4, 0);
        let c = crate::key::dag_cbor_blake2b_cid(b"\x80");
        let parents = [c, c];
        let h = HeaderLinks {
            miner: 1000,
            parents: &parents,
            parent_weight: 1,
            height: 7,
            parent_state_root: c,
            parent_message_receipts: c,
            messages: c,
            timestamp: 5,
            parent_base_fee: 100,
        };
        let bytes = header(&mut rng, &h);
        assert_eq!(bytes[0], 0x90);
        let mut links = 0;
        let needle = [0xd8, 0x2a, 0x58, 0x27, 0x00];
        for w in bytes.windows(needle.len()) {
            links += usize::from(w == needle);
        }
        assert_eq!(links, 5);
    }
}
