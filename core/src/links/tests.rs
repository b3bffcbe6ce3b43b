use alloc::vec;
use alloc::vec::Vec;

use cid::Cid;

use super::{for_each_link, links_of, LinkError, INLINE_DEPTH, MAX_DEPTH};
use crate::header::write_cbor_head;
use crate::key::{dag_cbor_blake2b_cid, DAG_CBOR, IDENTITY, RAW};

fn cid(seed: &[u8]) -> Cid {
    dag_cbor_blake2b_cid(seed)
}

/// Tag 42 with the CID's bytes behind the 0x00 prefix.
fn link(out: &mut Vec<u8>, c: &Cid) {
    let raw = c.to_bytes();
    out.extend_from_slice(&[0xd8, 42]);
    write_cbor_head(out, 2, raw.len() as u64 + 1);
    out.push(0);
    out.extend_from_slice(&raw);
}

fn linked(c: &Cid) -> Vec<u8> {
    let mut v = Vec::new();
    link(&mut v, c);
    v
}

fn scan(bytes: &[u8]) -> Result<Vec<Cid>, LinkError> {
    let mut out = Vec::new();
    for_each_link(bytes, |c| out.push(c))?;
    Ok(out)
}

#[test]
fn scalars_have_no_links() {
    let items: &[&[u8]] = &[
        &[0x00],
        &[0x17],
        &[0x18, 0xff],
        &[0x1b, 1, 2, 3, 4, 5, 6, 7, 8],
        &[0x20],
        &[0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0xf4],
        &[0xf5],
        &[0xf6],
        &[0xf7],
        &[0xf0],
        &[0xf8, 0x20],
        &[0xf9, 0x3c, 0x00],
        &[0xfa, 0x3f, 0x80, 0, 0],
        &[0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0],
        &[0x40],
        &[0x60],
        &[0x80],
        &[0xa0],
    ];
    for item in items {
        assert_eq!(scan(item), Ok(vec![]), "{item:02x?}");
    }
}

#[test]
fn empty_input_is_truncated() {
    assert_eq!(scan(&[]), Err(LinkError::Truncated { offset: 0 }));
}

#[test]
fn links_come_in_document_order_from_any_position() {
    let (a, b, c, d) = (cid(b"a"), cid(b"b"), cid(b"c"), cid(b"d"));
    // {a: [b, {"k": c}], "x": d} with a link as a map key.
    let mut v = vec![0xa2];
    link(&mut v, &a);
    v.push(0x82);
    link(&mut v, &b);
    v.extend_from_slice(&[0xa1, 0x61, b'k']);
    link(&mut v, &c);
    v.extend_from_slice(&[0x61, b'x']);
    link(&mut v, &d);
    assert_eq!(scan(&v), Ok(vec![a, b, c, d]));
    assert_eq!(scan(&linked(&a)), Ok(vec![a]));
}

#[test]
fn cid_v0_link() {
    let digest = [7u8; 32];
    let mh = multihash::Multihash::<64>::wrap(crate::key::SHA2_256, &digest).expect("fits");
    let v0 = Cid::new_v0(mh).expect("sha2-256 v0");
    let mut v = vec![0xd8, 42, 0x58, 35, 0x00];
    v.extend_from_slice(&v0.to_bytes());
    assert_eq!(scan(&v), Ok(vec![v0]));
}

#[test]
fn tagged_cid_bytes_inside_strings_are_not_links() {
    let inner = linked(&cid(b"hidden"));
    for major in [2u8, 3] {
        let mut v = vec![0x82];
        write_cbor_head(&mut v, major, inner.len() as u64);
        v.extend_from_slice(&inner);
        link(&mut v, &cid(b"real"));
        assert_eq!(scan(&v), Ok(vec![cid(b"real")]), "major {major}");
    }
    // Indefinite-length text whose chunks hold the pattern.
    let mut v = vec![0x7f];
    write_cbor_head(&mut v, 3, inner.len() as u64);
    v.extend_from_slice(&inner);
    v.push(0xff);
    assert_eq!(scan(&v), Ok(vec![]));
}

#[test]
fn invalid_utf8_text_is_skipped() {
    let mut v = vec![0x82, 0x64, 0xff, 0xfe, 0xc3, 0x28];
    link(&mut v, &cid(b"after"));
    assert_eq!(scan(&v), Ok(vec![cid(b"after")]));
}

#[test]
fn non_canonical_maps_are_accepted() {
    // Keys out of order, repeated, and of non-string types.
    let mut v = vec![0xa4, 0x62, b'z', b'z', 0x01, 0x61, b'a', 0x02, 0x61, b'a'];
    link(&mut v, &cid(b"dup"));
    v.extend_from_slice(&[0x18, 0x64, 0xf6]);
    assert_eq!(scan(&v), Ok(vec![cid(b"dup")]));
}

#[test]
fn other_tags_and_big_integers() {
    // [2(h'01ff'), 3(h'00'), 1(1.5), 55799(42(cid))]
    let mut v = vec![0x84, 0xc2, 0x42, 0x01, 0xff, 0xc3, 0x41, 0x00, 0xc1, 0xf9, 0x3e, 0x00];
    v.extend_from_slice(&[0xd9, 0xd9, 0xf7]);
    link(&mut v, &cid(b"t"));
    assert_eq!(scan(&v), Ok(vec![cid(b"t")]));
    // A long run of tags around one integer is fine (no nesting level per tag).
    let mut v = vec![0xc6; 10_000];
    v.push(0x01);
    assert_eq!(scan(&v), Ok(vec![]));
}

#[test]
fn indefinite_length_items() {
    let (a, b) = (cid(b"a"), cid(b"b"));
    // [_ {_ "k": a}, (_ h'01', h'02'), (_ "x"), b]
    let mut v = vec![0x9f, 0xbf, 0x61, b'k'];
    link(&mut v, &a);
    v.extend_from_slice(&[0xff, 0x5f, 0x41, 0x01, 0x41, 0x02, 0xff, 0x7f, 0x61, b'x', 0xff]);
    link(&mut v, &b);
    v.push(0xff);
    assert_eq!(scan(&v), Ok(vec![a, b]));
}

#[test]
fn malformed_indefinite_items() {
    // Chunk of the wrong type, indefinite chunk, break at top level, break in a definite
    // array, break right after a tag, indefinite integer and tag.
    assert_eq!(scan(&[0x5f, 0x61, b'x', 0xff]), Err(LinkError::BadChunk { offset: 1 }));
    assert_eq!(scan(&[0x7f, 0x7f, 0xff, 0xff]), Err(LinkError::BadChunk { offset: 1 }));
    assert_eq!(scan(&[0xff]), Err(LinkError::UnexpectedBreak { offset: 0 }));
    assert_eq!(scan(&[0x82, 0x01, 0xff]), Err(LinkError::UnexpectedBreak { offset: 2 }));
    assert_eq!(scan(&[0x9f, 0xc1, 0xff]), Err(LinkError::UnexpectedBreak { offset: 2 }));
    assert_eq!(scan(&[0x1f]), Err(LinkError::InvalidHead { offset: 0 }));
    assert_eq!(scan(&[0xdf, 0x01]), Err(LinkError::InvalidHead { offset: 0 }));
    assert_eq!(scan(&[0x9f, 0x01]), Err(LinkError::Truncated { offset: 2 }));
}

#[test]
fn reserved_additional_information() {
    for info in 28u8..=30 {
        for major in 0u8..8 {
            let v = [major << 5 | info, 0, 0, 0, 0, 0, 0, 0, 0];
            assert_eq!(scan(&v), Err(LinkError::InvalidHead { offset: 0 }), "{:02x}", v[0]);
        }
    }
}

#[test]
fn huge_declared_lengths_are_truncated_not_allocated() {
    let huge_bytes = [0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
    assert_eq!(scan(&huge_bytes), Err(LinkError::Truncated { offset: 9 }));
    let huge_array = [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
    assert_eq!(scan(&huge_array), Err(LinkError::Truncated { offset: 0 }));
    let huge_map = [0xbb, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00];
    assert_eq!(scan(&huge_map), Err(LinkError::Truncated { offset: 0 }));
    // A map of two entries with three bytes left cannot fit.
    assert_eq!(scan(&[0xa2, 0x01, 0x02, 0x03]), Err(LinkError::Truncated { offset: 0 }));
    assert_eq!(scan(&[0x19, 0x01]), Err(LinkError::Truncated { offset: 1 }));
    assert_eq!(scan(&[0x82, 0x01]), Err(LinkError::Truncated { offset: 0 }));
    assert_eq!(scan(&[0x83, 0x01, 0x02]), Err(LinkError::Truncated { offset: 0 }));
}

#[test]
fn trailing_bytes() {
    assert_eq!(scan(&[0x01, 0x02]), Err(LinkError::TrailingBytes { offset: 1 }));
    let mut v = linked(&cid(b"a"));
    let end = v.len();
    v.push(0xf6);
    assert_eq!(scan(&v), Err(LinkError::TrailingBytes { offset: end }));
}

#[test]
fn malformed_cid_payloads() {
    let good = cid(b"g").to_bytes();
    let mut cases: Vec<Vec<u8>> = Vec::new();
    // Text instead of bytes.
    let mut v = vec![0xd8, 42];
    write_cbor_head(&mut v, 3, good.len() as u64 + 1);
    v.push(0);
    v.extend_from_slice(&good);
    cases.push(v);
    // No 0x00 prefix.
    let mut v = vec![0xd8, 42];
    write_cbor_head(&mut v, 2, good.len() as u64);
    v.extend_from_slice(&good);
    cases.push(v);
    // Trailing byte after the CID.
    let mut v = vec![0xd8, 42];
    write_cbor_head(&mut v, 2, good.len() as u64 + 2);
    v.push(0);
    v.extend_from_slice(&good);
    v.push(0);
    cases.push(v);
    // Empty, prefix only, truncated digest, an integer, an indefinite byte string.
    cases.push(vec![0xd8, 42, 0x40]);
    cases.push(vec![0xd8, 42, 0x41, 0x00]);
    cases.push(vec![0xd8, 42, 0x45, 0x00, 0x01, 0x71, 0xa0, 0xe4]);
    cases.push(vec![0xd8, 42, 0x01]);
    cases.push(vec![0xd8, 42, 0x5f, 0xff]);
    for case in &cases {
        assert_eq!(scan(case), Err(LinkError::BadCid { offset: 0 }), "{case:02x?}");
        let mut nested = vec![0x82, 0x00];
        nested.extend_from_slice(case);
        assert_eq!(scan(&nested), Err(LinkError::BadCid { offset: 2 }), "{case:02x?}");
    }
    // A byte string that runs past the end is truncation, not a bad CID.
    assert_eq!(scan(&[0xd8, 42, 0x58, 0x25, 0x00, 0x01]), Err(LinkError::Truncated { offset: 4 }));
    assert_eq!(scan(&[0xd8, 42]), Err(LinkError::Truncated { offset: 2 }));
}

/// Tag 42 around an indefinite-length byte string whose chunks join to `payload`, cut at `cuts`.
fn chunked_link(payload: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut v = vec![0xd8, 42, 0x5f];
    let mut from = 0;
    for &to in cuts.iter().chain([payload.len()].iter()) {
        write_cbor_head(&mut v, 2, (to - from) as u64);
        v.extend_from_slice(&payload[from..to]);
        from = to;
    }
    v.push(0xff);
    v
}

#[test]
fn chunked_cid_payloads_are_joined() {
    let (a, b) = (cid(b"a"), cid(b"b"));
    let mut payload = vec![0];
    payload.extend_from_slice(&a.to_bytes());
    // [a in four chunks (one empty), b]
    let mut v = vec![0x82];
    v.extend_from_slice(&chunked_link(&payload, &[1, 6, 6]));
    link(&mut v, &b);
    assert_eq!(scan(&v), Ok(vec![a, b]));
    assert_eq!(scan(&chunked_link(&payload, &[])), Ok(vec![a]));

    // Joined, the payload must still be 0x00 and exactly one CID, no longer than a CID can be.
    let mut extra = payload.clone();
    extra.push(0);
    assert_eq!(scan(&chunked_link(&extra, &[3])), Err(LinkError::BadCid { offset: 0 }));
    let mut long = payload.clone();
    long.resize(200, 0);
    assert_eq!(scan(&chunked_link(&long, &[100])), Err(LinkError::BadCid { offset: 0 }));
    assert_eq!(scan(&chunked_link(&payload[1..], &[4])), Err(LinkError::BadCid { offset: 0 }));

    // A text chunk, a nested indefinite chunk, a missing break.
    let mut text = chunked_link(&payload, &[1]);
    // The second chunk's head, at 5 after `0x5f` and the chunk `41 00`: bytes (0x58) to text (0x78).
    assert_eq!(text[5], 0x58);
    text[5] = 0x78;
    assert_eq!(scan(&text), Err(LinkError::BadChunk { offset: 5 }));
    assert_eq!(scan(&[0xd8, 42, 0x5f, 0x5f, 0xff, 0xff]), Err(LinkError::BadChunk { offset: 3 }));
    let open = &chunked_link(&payload, &[])[..payload.len() + 5];
    assert_eq!(scan(open), Err(LinkError::Truncated { offset: payload.len() + 5 }));
}

fn nested_arrays(depth: usize) -> Vec<u8> {
    let mut v = vec![0x81; depth];
    v.push(0x00);
    v
}

#[test]
fn deep_nesting_is_iterative_and_bounded() {
    assert_eq!(scan(&nested_arrays(INLINE_DEPTH)), Ok(vec![]));
    assert_eq!(scan(&nested_arrays(INLINE_DEPTH + 1)), Ok(vec![]));
    assert_eq!(scan(&nested_arrays(3000)), Ok(vec![]));
    assert_eq!(scan(&nested_arrays(MAX_DEPTH)), Ok(vec![]));
    assert_eq!(scan(&nested_arrays(MAX_DEPTH + 1)), Err(LinkError::TooDeep { offset: MAX_DEPTH }));
    // Deep indefinite maps with a link at the bottom, closed by breaks.
    let mut v = Vec::new();
    for _ in 0..5000 {
        v.extend_from_slice(&[0xbf, 0x00]);
    }
    link(&mut v, &cid(b"deep"));
    v.extend(core::iter::repeat_n(0xff, 5000));
    assert_eq!(scan(&v), Ok(vec![cid(b"deep")]));
    // Siblings after a deep branch are still counted against the right container.
    let mut v = vec![0x83];
    v.extend_from_slice(&nested_arrays(100));
    link(&mut v, &cid(b"x"));
    v.push(0x80);
    assert_eq!(scan(&v), Ok(vec![cid(b"x")]));
}

#[test]
fn links_of_respects_codec_and_unitary_cids() {
    let body = linked(&cid(b"child"));
    let mut out = vec![cid(b"kept")];

    let raw = Cid::new_v1(RAW, *cid(b"r").hash());
    links_of(&raw, &body, &mut out).expect("raw is a leaf");
    assert_eq!(out, vec![cid(b"kept")]);

    let ident = multihash::Multihash::<64>::wrap(IDENTITY, &body).expect("fits");
    links_of(&Cid::new_v1(DAG_CBOR, ident), &body, &mut out).expect("identity is unitary");
    assert_eq!(out, vec![cid(b"kept")]);

    links_of(&cid(&body), &body, &mut out).expect("dag-cbor");
    assert_eq!(out, vec![cid(b"kept"), cid(b"child")]);

    // On error nothing is appended, even links read before the error.
    let mut bad = vec![0x83];
    link(&mut bad, &cid(b"first"));
    bad.push(0xfc);
    assert_eq!(links_of(&cid(&bad), &bad, &mut out), Err(LinkError::InvalidHead { offset: bad.len() - 1 }));
    assert_eq!(out, vec![cid(b"kept"), cid(b"child")]);
}
