use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use cid::Cid;

use super::{decode, tipset_key, write_cbor_head, BlockHeader, HeaderError};
use crate::key::dag_cbor_blake2b_cid;
use crate::links::LinkError;

fn cid(seed: &[u8]) -> Cid {
    dag_cbor_blake2b_cid(seed)
}

fn push_cid(out: &mut Vec<u8>, c: &Cid) {
    let raw = c.to_bytes();
    out.extend_from_slice(&[0xd8, 42]);
    write_cbor_head(out, 2, raw.len() as u64 + 1);
    out.push(0);
    out.extend_from_slice(&raw);
}

fn push_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        write_cbor_head(out, 0, v as u64);
    } else {
        write_cbor_head(out, 1, (-1 - v) as u64);
    }
}

/// Height field: either a real integer or raw bytes standing in for a malformed one.
enum Height<'a> {
    Int(i64),
    Raw(&'a [u8]),
}

/// A header of `fields` (13 or 16) fields; the skipped fields hold plausible Lotus values.
fn header(fields: usize, parents: &[Cid], height: Height<'_>, ts: u64) -> Vec<u8> {
    let mut v = Vec::new();
    write_cbor_head(&mut v, 4, fields as u64);
    // Miner: an ID address as bytes.
    v.extend_from_slice(&[0x42, 0x00, 0x64]);
    // Ticket: [VRFProof bytes].
    v.extend_from_slice(&[0x81, 0x43, 1, 2, 3]);
    if fields == 16 {
        // ElectionProof: [WinCount, VRFProof]; BeaconEntries: [[round, data]]; WinPoStProof: [].
        v.extend_from_slice(&[0x82, 0x01, 0x41, 0x09]);
        v.extend_from_slice(&[0x81, 0x82, 0x19, 0x01, 0x00, 0x42, 0xaa, 0xbb]);
        v.push(0x80);
    } else {
        // EPostProof: [Proof, PostRand, Candidates].
        v.extend_from_slice(&[0x83, 0x40, 0x41, 0x07, 0x80]);
    }
    write_cbor_head(&mut v, 4, parents.len() as u64);
    for p in parents {
        push_cid(&mut v, p);
    }
    // ParentWeight: a big integer as bytes.
    v.extend_from_slice(&[0x43, 0x00, 0x10, 0x00]);
    match height {
        Height::Int(h) => push_int(&mut v, h),
        Height::Raw(raw) => v.extend_from_slice(raw),
    }
    push_cid(&mut v, &cid(b"state"));
    push_cid(&mut v, &cid(b"receipts"));
    push_cid(&mut v, &cid(b"messages"));
    // BLSAggregate: Signature {Type, Data} as [2, bytes].
    v.extend_from_slice(&[0x82, 0x02, 0x42, 0x05, 0x06]);
    write_cbor_head(&mut v, 0, ts);
    // BlockSig, ForkSignaling (and ParentBaseFee).
    v.extend_from_slice(&[0xf6, 0x00]);
    if fields == 16 {
        v.extend_from_slice(&[0x42, 0x00, 0x64]);
    }
    v
}

fn expected(parents: &[Cid], height: i64, ts: u64) -> BlockHeader {
    BlockHeader {
        parents: parents.to_vec(),
        height,
        parent_state_root: cid(b"state"),
        parent_message_receipts: cid(b"receipts"),
        messages: cid(b"messages"),
        timestamp: ts,
    }
}

#[test]
fn decodes_both_layouts() {
    let parents = [cid(b"p1"), cid(b"p2"), cid(b"p3")];
    for fields in [13, 16] {
        let bytes = header(fields, &parents, Height::Int(1234), 1_600_000_000);
        assert_eq!(decode(&bytes), Ok(expected(&parents, 1234, 1_600_000_000)), "{fields}");
        let bytes = header(fields, &[], Height::Int(0), 0);
        assert_eq!(decode(&bytes), Ok(expected(&[], 0, 0)), "{fields}");
    }
}

#[test]
fn height_of_either_sign() {
    for h in [-1, -25, i64::MIN, i64::MAX, 23, 24, 65_536] {
        let bytes = header(16, &[cid(b"p")], Height::Int(h), 9);
        assert_eq!(decode(&bytes).map(|h| h.height), Ok(h));
    }
    let too_big: &[&[u8]] =
        &[&[0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0], &[0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0], &[0x41, 0x01], &[0xf6]];
    for raw in too_big {
        let bytes = header(13, &[cid(b"p")], Height::Raw(raw), 9);
        assert_eq!(decode(&bytes), Err(HeaderError::BadField { field: "Height" }), "{raw:02x?}");
    }
}

#[test]
fn not_a_header() {
    assert_eq!(decode(&[0xa0]), Err(HeaderError::NotAnArray));
    assert_eq!(decode(&[0x9f, 0xff]), Err(HeaderError::NotAnArray));
    assert_eq!(decode(&[0xfc]), Err(HeaderError::NotAnArray));
    assert_eq!(decode(&[]), Err(HeaderError::Truncated { offset: 0 }));
    assert_eq!(decode(&[0x83, 1, 2, 3]), Err(HeaderError::WrongFieldCount { found: 3 }));
    assert_eq!(decode(&[0x8e]), Err(HeaderError::WrongFieldCount { found: 14 }));
}

#[test]
fn truncated_and_malformed_fields() {
    let bytes = header(16, &[cid(b"p")], Height::Int(5), 7);
    let ts_end = bytes.len() - 5;
    for cut in 1..ts_end {
        assert!(
            matches!(decode(&bytes[..cut]), Err(HeaderError::Truncated { .. })),
            "cut at {cut}: {:?}",
            decode(&bytes[..cut])
        );
    }
    // Fields after Timestamp are not read.
    assert!(decode(&bytes[..ts_end]).is_ok());

    // A reserved head inside the Ticket field.
    let mut bad = bytes.clone();
    assert_eq!(bad[4], 0x81);
    bad[4] = 0x9c;
    assert_eq!(
        decode(&bad),
        Err(HeaderError::Malformed { field: "Ticket", source: LinkError::InvalidHead { offset: 4 } })
    );
}

#[test]
fn parents_must_be_an_array_of_cids() {
    let good = header(13, &[cid(b"p")], Height::Int(1), 2);
    let at = 1 + 3 + 5 + 5; // array head, Miner, Ticket, EPostProof
    assert_eq!(good[at], 0x81);
    let mut not_array = good.clone();
    not_array[at] = 0xa1;
    assert_eq!(decode(&not_array), Err(HeaderError::BadField { field: "Parents" }));
    let mut not_cid = good.clone();
    not_cid[at + 2] = 43; // tag 43 instead of 42
    assert_eq!(decode(&not_cid), Err(HeaderError::BadField { field: "Parents" }));
    let mut huge = good[..at].to_vec();
    huge.extend_from_slice(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert!(matches!(decode(&huge), Err(HeaderError::Truncated { .. })));
}

/// The vectors of Lotus's `chain/types/tipset_key_test.go` ("derived CID"): the blocks are
/// DAG-CBOR BLAKE2b-256 CIDv1s of the bytes "a", "b" and "c".
#[test]
fn tipset_key_matches_lotus() {
    let (c1, c2, c3) = (cid(b"a"), cid(b"b"), cid(b"c"));
    assert_eq!(c1.to_string(), "bafy2bzacecesrkxghscnq7vatble2hqdvwat6ed23vdu4vvo3uuggsoaya7ki");
    assert_eq!(c2.to_string(), "bafy2bzacebxfyh2fzoxrt6kcgc5dkaodpcstgwxxdizrww225vrhsizsfcg4g");
    assert_eq!(c3.to_string(), "bafy2bzacedwviarjtjraqakob5pslltmuo5n3xev3nt5zylezofkbbv5jclyu");
    let cases: [(&[Cid], &str); 3] = [
        (&[], "bafy2bzacea456askyutsf7uk4ta2q5aojrlcji4mhaqokbfalgvoq4ueeh4l2"),
        (&[c1], "bafy2bzacealem6larzxhf7aggj3cozcefqez3jlksx2tuxehwdil27otcmy4q"),
        (&[c1, c2, c3], "bafy2bzacecbnwngwfvxuciumcfudiaoqozisp3hus5im5lg4urrwlxbueissu"),
    ];
    for (blocks, want) in cases {
        let (key, bytes) = tipset_key(blocks);
        assert_eq!(key.to_string(), want);
        assert_eq!(key, dag_cbor_blake2b_cid(&bytes));
    }
    // The object is one byte string of the concatenated CIDs, in the given order.
    let (_, bytes) = tipset_key(&[c1, c2]);
    let mut want = vec![0x58, 76];
    want.extend_from_slice(&c1.to_bytes());
    want.extend_from_slice(&c2.to_bytes());
    assert_eq!(bytes, want);
    assert_ne!(tipset_key(&[c1, c2]).0, tipset_key(&[c2, c1]).0);
}

#[test]
fn cbor_heads_are_shortest_form() {
    let cases: [(u64, &[u8]); 9] = [
        (0, &[0x40]),
        (23, &[0x57]),
        (24, &[0x58, 24]),
        (255, &[0x58, 0xff]),
        (256, &[0x59, 1, 0]),
        (65_535, &[0x59, 0xff, 0xff]),
        (65_536, &[0x5a, 0, 1, 0, 0]),
        (u64::from(u32::MAX), &[0x5a, 0xff, 0xff, 0xff, 0xff]),
        (1 << 32, &[0x5b, 0, 0, 0, 1, 0, 0, 0, 0]),
    ];
    for (n, want) in cases {
        let mut out = Vec::new();
        write_cbor_head(&mut out, 2, n);
        assert_eq!(out, want, "{n}");
    }
}
