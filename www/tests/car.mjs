// An independent CARv1 reader for the tests' expectations: what a store that keys blocks by
// multihash and never stores identity-hash blocks must hold after importing a file.
// Written from the CAR and CID specifications; shares no code with the package.

import { readFileSync } from 'node:fs';

function varint(buf, pos) {
  let value = 0;
  let shift = 0;
  for (let i = pos; i < buf.length && i < pos + 9; i += 1) {
    value += (buf[i] & 0x7f) * 2 ** shift;
    if ((buf[i] & 0x80) === 0) return [value, i + 1];
    shift += 7;
  }
  throw new Error(`bad varint at ${pos}`);
}

/** Parses a CID at `pos`: `{ multihash: Buffer, hashCode, end }`. */
function cidAt(buf, pos) {
  if (buf[pos] === 0x12 && buf[pos + 1] === 0x20) {
    return { multihash: buf.subarray(pos, pos + 34), hashCode: 0x12, end: pos + 34 };
  }
  let p = pos;
  let version;
  [version, p] = varint(buf, p);
  if (version !== 1) throw new Error(`CID version ${version} at ${pos}`);
  [, p] = varint(buf, p); // codec
  const mhStart = p;
  let hashCode;
  let len;
  [hashCode, p] = varint(buf, p);
  [len, p] = varint(buf, p);
  return { multihash: buf.subarray(mhStart, p + len), hashCode, end: p + len };
}

/**
 * Summarises a CARv1 file (a path or its bytes): `sections`, `identity` (identity-hash
 * sections), `storable` (distinct non-identity multihashes) and `storableBytes` (their data
 * bytes).
 */
export function carSummary(source) {
  const buf = typeof source === 'string' ? readFileSync(source) : Buffer.from(source);
  let [headerLen, pos] = varint(buf, 0);
  pos += headerLen;
  if (pos > buf.length) throw new Error('truncated header');
  const seen = new Map();
  let sections = 0;
  let identity = 0;
  while (pos < buf.length) {
    let len;
    [len, pos] = varint(buf, pos);
    const end = pos + len;
    if (end > buf.length) throw new Error(`truncated section at ${pos}`);
    const cid = cidAt(buf, pos);
    sections += 1;
    if (cid.hashCode === 0x00) identity += 1;
    else seen.set(cid.multihash.toString('hex'), end - cid.end);
    pos = end;
  }
  let storableBytes = 0;
  for (const n of seen.values()) storableBytes += n;
  return { sections, identity, storable: seen.size, storableBytes };
}
