//! Writing CARv1: a header, then one section per block. The pieces are separate so a host can
//! stream an export of any size through a small buffer: encode the header, write it out, then
//! encode and write one section at a time.

use alloc::vec::Vec;

use cid::Cid;

use super::header::{encode_header_body, write_varint};

/// Appends a CARv1 header naming `roots` (possibly none): its length prefix and the canonical
/// DAG-CBOR map `{roots, version: 1}`.
pub fn encode_header_v1(roots: &[Cid], out: &mut Vec<u8>) {
    let mut body = Vec::new();
    encode_header_body(roots, &mut body);
    write_varint(body.len() as u64, out);
    out.extend_from_slice(&body);
}

/// Appends one section: length prefix, binary CID, block bytes. The bytes are written as
/// given; it is the caller's contract that they hash to `cid`.
pub fn encode_section(cid: &Cid, data: &[u8], out: &mut Vec<u8>) {
    let cid_bytes = cid.to_bytes();
    write_varint((cid_bytes.len() + data.len()) as u64, out);
    out.extend_from_slice(&cid_bytes);
    out.extend_from_slice(data);
}

/// The CID an export names a stored block by. The store keys blocks by multihash and keeps no
/// codec, so the codec is inferred from the bytes: DAG-CBOR when they are one well-formed CBOR
/// item whose links all read (every Filecoin chain object is), raw otherwise. Every host's
/// export uses it, so exports of the same blocks name them alike. `None` when `key` is not a
/// multihash.
pub fn export_cid(key: &[u8], bytes: &[u8]) -> Option<Cid> {
    let mh = cid::multihash::Multihash::<64>::from_bytes(key).ok()?;
    let codec = if crate::links::for_each_link(bytes, |_| {}).is_ok() { crate::key::DAG_CBOR } else { crate::key::RAW };
    Some(Cid::new_v1(codec, mh))
}

/// Appends a complete CARv1 file: the header naming `roots`, then `blocks` in order.
pub fn write_car_v1<B: AsRef<[u8]>>(roots: &[Cid], blocks: impl IntoIterator<Item = (Cid, B)>, out: &mut Vec<u8>) {
    encode_header_v1(roots, out);
    for (cid, data) in blocks {
        encode_section(&cid, data.as_ref(), out);
    }
}
