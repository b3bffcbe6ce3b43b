//! Unit tests of the CAR reader and writer on hand-built files.

use alloc::vec;
use alloc::vec::Vec;

use cid::Cid;
use multihash::Multihash;

use super::header::{read_varint, write_varint};
use super::*;
use crate::key;

fn cbor_block(n: u8) -> (Cid, Vec<u8>) {
    // A CBOR byte string of n+1 bytes.
    let mut data = vec![0x40 + n + 1];
    data.extend((0..=n).map(|i| i.wrapping_mul(7)));
    (key::dag_cbor_blake2b_cid(&data), data)
}

fn raw_sha256_block(data: &[u8]) -> (Cid, Vec<u8>) {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data);
    let mh = Multihash::<64>::wrap(key::SHA2_256, &digest).unwrap();
    (Cid::new_v1(key::RAW, mh), data.to_vec())
}

fn identity_cid(data: &[u8]) -> Cid {
    Cid::new_v1(key::RAW, Multihash::<64>::wrap(key::IDENTITY, data).unwrap())
}

fn sample() -> (Vec<Cid>, OwnedBlocks, Vec<u8>) {
    let blocks = vec![cbor_block(3), raw_sha256_block(b"hello"), cbor_block(20)];
    let roots = vec![blocks[0].0, identity_cid(b"id")];
    let mut out = Vec::new();
    write_car_v1(&roots, blocks.iter().map(|(c, d)| (*c, d)), &mut out);
    (roots, blocks, out)
}

fn v2_wrap(v1: &[u8], padding: usize, index: &[u8]) -> Vec<u8> {
    let data_offset = (51 + padding) as u64;
    let data_size = v1.len() as u64;
    let index_offset = if index.is_empty() { 0 } else { data_offset + data_size };
    let mut out = PRAGMA.to_vec();
    out.extend_from_slice(&[0u8; 16]);
    for v in [data_offset, data_size, index_offset] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend(core::iter::repeat_n(0u8, padding));
    out.extend_from_slice(v1);
    out.extend_from_slice(index);
    out
}

type Decoded = (Option<CarHeader>, Vec<(Cid, Vec<u8>, u64)>, Result<(), CarError>);

/// Feeds `bytes` in chunks of `chunk` bytes and records everything the decoder produced.
fn decode_chunked(bytes: &[u8], chunk: usize, limits: CarLimits) -> Decoded {
    let mut dec = CarDecoder::new(limits);
    let mut blocks = Vec::new();
    let result = (|| {
        'outer: for piece in bytes.chunks(chunk) {
            let mut rest = piece;
            loop {
                let (used, step) = dec.decode(rest)?;
                rest = &rest[used..];
                match step {
                    Step::NeedMore => break,
                    Step::Header => {}
                    Step::Block(b) => blocks.push((b.cid, b.data.to_vec(), b.offset)),
                    Step::End => break 'outer,
                }
            }
        }
        dec.finish()
    })();
    (dec.header().cloned(), blocks, result)
}

#[test]
fn varints() {
    let mut buf = Vec::new();
    for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
        buf.clear();
        write_varint(v, &mut buf);
        assert_eq!(read_varint(&buf, 0), Ok(Some((v, buf.len()))));
        assert_eq!(read_varint(&buf[..buf.len() - 1], 0), Ok(None));
    }
    assert_eq!(read_varint(&[0xff; 11], 5), Err(CarError::VarintOverflow { offset: 5 }));
    let mut too_big = [0xff; 10];
    too_big[9] = 0x02;
    assert_eq!(read_varint(&too_big, 0), Err(CarError::VarintOverflow { offset: 0 }));
    assert_eq!(read_varint(&[0x80, 0x00], 9), Err(CarError::NonMinimalVarint { offset: 9 }));
}

#[test]
fn round_trip_v1_and_offsets() {
    let (roots, blocks, bytes) = sample();
    let (header, got) = read_car(&bytes, CarLimits::default()).unwrap();
    assert_eq!(header.version, 1);
    assert_eq!(header.roots, roots);
    assert_eq!(header.v2, None);
    assert_eq!(got, blocks);
    let it = CarBlocks::new(&bytes, CarLimits::default()).unwrap();
    let offsets: Vec<u64> = it.map(|b| b.unwrap().offset).collect();
    assert_eq!(offsets.len(), 3);
    assert_eq!(bytes[offsets[0] as usize] as usize, blocks[0].0.to_bytes().len() + blocks[0].1.len());
}

#[test]
fn every_chunk_size_matches_one_shot() {
    let (_, blocks, v1) = sample();
    let v2 = v2_wrap(&v1, 7, b"\x80\x08index");
    for bytes in [&v1, &v2] {
        let one: Vec<_> = CarBlocks::new(bytes, CarLimits::default())
            .unwrap()
            .map(|b| b.unwrap())
            .map(|b| (b.cid, b.data.to_vec(), b.offset))
            .collect();
        assert_eq!(one.len(), blocks.len());
        for chunk in 1..=bytes.len() {
            let (header, got, result) = decode_chunked(bytes, chunk, CarLimits::default());
            assert_eq!(result, Ok(()), "chunk {chunk}");
            assert_eq!(got, one, "chunk {chunk}");
            assert!(header.is_some());
        }
    }
}

#[test]
fn v2_layout_is_reported_and_index_ignored() {
    let (roots, blocks, v1) = sample();
    let v2 = v2_wrap(&v1, 0, b"garbage index");
    let (header, got) = read_car(&v2, CarLimits::default()).unwrap();
    assert_eq!(header.version, 2);
    assert_eq!(header.roots, roots);
    let layout = header.v2.unwrap();
    assert_eq!((layout.data_offset, layout.data_size), (51, v1.len() as u64));
    assert_eq!(got, blocks);
}

#[test]
fn v2_bad_layouts() {
    let (_, _, v1) = sample();
    let base = v2_wrap(&v1, 0, b"ix");
    let with = |field: usize, value: u64| {
        let mut b = base.clone();
        b[27 + 8 * field..35 + 8 * field].copy_from_slice(&value.to_le_bytes());
        b
    };
    let cases = [
        with(0, 50),                    // payload inside the header
        with(0, u64::MAX - 3),          // end overflows
        with(1, v1.len() as u64 + 1),   // payload past the end of the file
        with(2, 60),                    // index inside the payload
        with(2, base.len() as u64 + 1), // index past the end of the file
    ];
    for bytes in &cases {
        match read_car(bytes, CarLimits::default()) {
            Err(CarError::BadV2Header { .. }) => {}
            other => panic!("expected BadV2Header, got {other:?}"),
        }
    }
    // Without the total length, a payload past the end shows as truncation at the end.
    let mut short = v2_wrap(&v1, 0, b"");
    short[35..43].copy_from_slice(&(v1.len() as u64 + 1).to_le_bytes());
    assert!(matches!(read_car(&short, CarLimits::default()), Err(CarError::BadV2Header { .. })));
    let (_, _, result) = decode_chunked(&short, 64, CarLimits::default());
    assert!(matches!(result, Err(CarError::Truncated { .. })), "{result:?}");
}

#[test]
fn header_key_order_and_identity_roots() {
    let root = identity_cid(b"");
    let root_bytes = root.to_bytes();
    // {version: 1, roots: [root]}: non-canonical key order is accepted.
    let mut body = vec![0xa2, 0x67];
    body.extend_from_slice(b"version");
    body.extend_from_slice(&[0x01, 0x65]);
    body.extend_from_slice(b"roots");
    body.extend_from_slice(&[0x81, 0xd8, 0x2a, 0x40 + root_bytes.len() as u8 + 1, 0x00]);
    body.extend_from_slice(&root_bytes);
    let mut bytes = Vec::new();
    write_varint(body.len() as u64, &mut bytes);
    bytes.extend_from_slice(&body);
    let (header, blocks) = read_car(&bytes, CarLimits::default()).unwrap();
    assert_eq!(header.roots, vec![root]);
    assert!(blocks.is_empty());
}

fn header_only(body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_varint(body.len() as u64, &mut bytes);
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn bad_headers() {
    let v = |version: &[u8]| {
        let mut b = vec![0xa2, 0x65];
        b.extend_from_slice(b"roots");
        b.extend_from_slice(&[0x80, 0x67]);
        b.extend_from_slice(b"version");
        b.extend_from_slice(version);
        b
    };
    let err = |body: &[u8]| read_car(&header_only(body), CarLimits::default()).unwrap_err();
    assert_eq!(err(&v(&[0x18, 42])), CarError::UnsupportedVersion { version: 42 });
    assert_eq!(err(&v(&[2])), CarError::BadPragma { offset: 0 });
    let mut trailing = v(&[1]);
    trailing.push(0);
    assert!(matches!(err(&trailing), CarError::BadHeader { offset: 18, .. }));
    let mut unknown = v(&[1]);
    unknown[0] = 0xa3;
    unknown.extend_from_slice(&[0x61, b'x', 0x01]);
    assert!(matches!(err(&unknown), CarError::BadHeader { .. }));
    let mut null_roots = v(&[1]);
    null_roots[7] = 0xf6;
    assert!(matches!(err(&null_roots), CarError::BadHeader { offset: 8, .. }));
    assert!(matches!(err(&[0x80]), CarError::BadHeader { .. }));
    assert!(matches!(err(&[0xbf]), CarError::BadHeader { .. }));
    let limits = CarLimits { max_roots: 0, ..CarLimits::default() };
    let (roots, _, bytes) = sample();
    assert_eq!(
        read_car(&bytes, limits).unwrap_err(),
        CarError::TooManyRoots { offset: 8, count: roots.len() as u64, limit: 0 }
    );
    // A huge declared header length fails on the prefix, before any byte is buffered.
    let mut huge = Vec::new();
    write_varint(u64::MAX >> 1, &mut huge);
    let (_, _, result) = decode_chunked(&huge, 1, CarLimits::default());
    assert!(matches!(result, Err(CarError::HeaderTooLarge { offset: 0, .. })));
    assert_eq!(read_car(&[], CarLimits::default()).unwrap_err(), CarError::Truncated { offset: 0 });
}

#[test]
fn bad_sections() {
    let (_, blocks, good) = sample();
    let first = CarBlocks::new(&good, CarLimits::default()).unwrap().position() as usize;
    let second = first + 1 + blocks[0].0.to_bytes().len() + blocks[0].1.len();
    let at = first as u64;

    let mut mismatch = good.clone();
    let last = mismatch.len() - 1;
    mismatch[last] ^= 1;
    let e = read_car(&mismatch, CarLimits::default()).unwrap_err();
    assert!(matches!(e, CarError::HashMismatch { cid, .. } if cid == blocks[2].0), "{e:?}");
    let unchecked = CarLimits { verify_hashes: false, ..CarLimits::default() };
    assert_eq!(read_car(&mismatch, unchecked).unwrap().1.len(), 3);

    let mut zero = good[..second].to_vec();
    zero.extend_from_slice(&[0, 0, 0]);
    let e = read_car(&zero, CarLimits::default()).unwrap_err();
    assert_eq!(e, CarError::ZeroLengthSection { offset: second as u64 });
    let eof = CarLimits { zero_length_section_as_eof: true, ..CarLimits::default() };
    assert_eq!(read_car(&zero, eof).unwrap().1, blocks[..1].to_vec());

    let small = CarLimits { max_section_len: 8, ..CarLimits::default() };
    let e = read_car(&good, small).unwrap_err();
    assert!(matches!(e, CarError::SectionTooLarge { offset, limit: 8, .. } if offset == at));

    for cut in first + 1..second {
        let e = read_car(&good[..cut], CarLimits::default()).unwrap_err();
        assert_eq!(e, CarError::Truncated { offset: at }, "cut at {cut}");
        let (_, _, result) = decode_chunked(&good[..cut], 3, CarLimits::default());
        assert_eq!(result, Err(CarError::Truncated { offset: at }), "cut at {cut}");
    }

    let mut bad_cid = good[..first].to_vec();
    bad_cid.extend_from_slice(&[3, 0x02, 0x71, 0x12]);
    assert_eq!(read_car(&bad_cid, CarLimits::default()).unwrap_err(), CarError::BadCid { offset: at + 1 });

    let sha1 = Cid::new_v1(key::RAW, Multihash::<64>::wrap(0x11, &[7; 20]).unwrap());
    let mut unsupported = Vec::new();
    write_car_v1(&[], [(sha1, b"x".as_slice())], &mut unsupported);
    assert!(matches!(
        read_car(&unsupported, CarLimits::default()).unwrap_err(),
        CarError::UnsupportedHash { cid, .. } if cid == sha1
    ));
}

#[test]
fn errors_are_sticky() {
    let (_, _, mut bytes) = sample();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    let mut dec = CarDecoder::new(CarLimits::default());
    let mut rest = bytes.as_slice();
    let first = loop {
        match dec.decode(rest) {
            Ok((used, _)) => rest = &rest[used..],
            Err(e) => break e,
        }
    };
    assert_eq!(dec.decode(&[]).unwrap_err(), first);
    assert_eq!(dec.finish().unwrap_err(), first);
}

#[test]
fn finish_right_after_the_last_block() {
    let (_, blocks, v1) = sample();
    let v2 = v2_wrap(&v1, 0, b"");
    for (bytes, total) in [(&v1, None), (&v2, None), (&v1, Some(v1.len())), (&v2, Some(v2.len()))] {
        let mut dec = CarDecoder::new(CarLimits::default());
        if let Some(t) = total {
            dec = dec.with_total_len(t as u64);
        }
        let mut rest = bytes.as_slice();
        let mut n = 0;
        while n < blocks.len() {
            let (used, step) = dec.decode(rest).unwrap();
            rest = &rest[used..];
            if let Step::Block(_) = step {
                n += 1;
            }
        }
        assert_eq!(dec.finish(), Ok(()), "total {total:?}");
        assert!(dec.is_done());
    }
    // An announced length that the stream does not reach is truncation.
    let mut dec = CarDecoder::new(CarLimits::default()).with_total_len(v1.len() as u64 + 1);
    let mut rest = v1.as_slice();
    loop {
        let (used, step) = dec.decode(rest).unwrap();
        rest = &rest[used..];
        if step == Step::NeedMore {
            break;
        }
    }
    let end = v1.len() as u64;
    assert_eq!(dec.finish(), Err(CarError::Truncated { offset: end }));
}

#[test]
fn messages_name_the_offset() {
    let e = CarError::SectionTooLarge { offset: 1234, len: 99_999_999, limit: 8 };
    let text = alloc::format!("{e}");
    assert!(text.contains("1234") && text.contains("99999999"), "{text}");
}
