#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into fuzz/corpus/<target>/ from the shared test data.

Nothing here is committed: the corpora are regenerated from ../shared/testdata (or
$SPLITSTORE_TESTDATA) by running this script, which is idempotent (files are named by the
SHA-1 of their content, as libFuzzer names its own). Inputs the fuzzers add to the same
folders are kept; `--clean` removes everything first.

Seeds per target:
  links   DAG-CBOR codec fixtures and negative fixtures, the nested-list and CID-array torture
          files (the latter cut to 2000 CIDs), and real DAG-CBOR blocks from chain, genesis and
          conformance-vector CARs (the one with an invalid-UTF-8 string included);
  header  real 13-field (2020 testnet) and 16-field (current) block headers, and a few blocks
          that are not headers;
  car     every CAR file up to 64 KiB (valid, edge-case and malformed ones, fuzz regressions),
          larger files cut after as many whole sections as fit in 32 KiB, the first 32 KiB of
          large CARv2 files, and a headers-only chain, each behind the target's 4-byte prefix
          (flags, chunk seed) in a few flag variants;
  meta    encoded head, state and purge records built from real CIDs, multihash keys, and
          hostile-open inputs;
  ops     operation sequences from a fixed pseudo-random generator, plus hand-written ones
          that drive compactions, interleavings, crashes and reopens, the orders real nodes
          write in, deletions, reads in use with reify drains, and cold prunes.
"""

import hashlib
import os
import random
import shutil
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TESTDATA = Path(os.environ.get("SPLITSTORE_TESTDATA", ROOT.parent.parent / "shared" / "testdata"))
OUT = ROOT / "corpus"


def fail(msg):
    sys.exit(f"seed-corpus: {msg}")


def data(rel):
    p = TESTDATA / rel
    if not p.is_file():
        fail(f"test data file {p} does not exist (set SPLITSTORE_TESTDATA)")
    return p.read_bytes()


def varint(b, pos):
    v, shift = 0, 0
    while True:
        x = b[pos]
        pos += 1
        v |= (x & 0x7F) << shift
        if x < 0x80:
            return v, pos
        shift += 7


def enc_varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def cid_len(b, pos):
    """Length of the binary CID at b[pos:]."""
    if b[pos : pos + 2] == b"\x12\x20":
        return 34
    p = pos
    _, p = varint(b, p)  # version
    _, p = varint(b, p)  # codec
    _, p = varint(b, p)  # hash code
    n, p = varint(b, p)  # digest length
    return p + n - pos


def cid_codec(cid):
    if cid[:2] == b"\x12\x20":
        return 0x70
    _, p = varint(cid, 0)
    codec, _ = varint(cid, p)
    return codec


def car_v1(b):
    """The CARv1 payload of a CARv1 or CARv2 file."""
    if b[:11] == bytes.fromhex("0aa16776657273696f6e02"):
        off, size = struct.unpack_from("<QQ", b, 11 + 16)
        return b[off : off + size]
    return b


def sections(b):
    """(header bytes, [(cid, data, section bytes)]) of a well-formed CAR."""
    b = car_v1(b)
    hlen, pos = varint(b, 0)
    header = b[: pos + hlen]
    pos += hlen
    out = []
    while pos < len(b):
        start = pos
        n, pos = varint(b, pos)
        if n == 0:
            break
        c = cid_len(b, pos)
        out.append((b[pos : pos + c], b[pos + c : pos + n], b[start : pos + n]))
        pos += n
    return header, out


def multihash(cid):
    if cid[:2] == b"\x12\x20":
        return cid
    _, p = varint(cid, 0)
    _, p = varint(cid, p)
    return cid[p:]


def cbor_head(b, pos):
    ib = b[pos]
    info = ib & 0x1F
    if info < 24:
        return ib >> 5, info, pos + 1
    n = {24: 1, 25: 2, 26: 4, 27: 8}[info]
    return ib >> 5, int.from_bytes(b[pos + 1 : pos + 1 + n], "big"), pos + 1 + n


def is_header(block):
    return len(block) > 0 and block[0] in (0x8D, 0x90)


class Writer:
    def __init__(self):
        self.counts = {}

    def put(self, target, blob):
        d = OUT / target
        d.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha1(blob).hexdigest()
        (d / name).write_bytes(blob)
        self.counts[target] = self.counts.get(target, 0) + 1


SMALL_CARS = [
    "go-car/cmd-car-inputs/badheaderlength.car",
    "go-car/cmd-car-inputs/badsectionlength.car",
    "go-car/cmd-car-inputs/simple-unixfs-missing-blocks.car",
    "go-car/cmd-car-inputs/simple-unixfs.car",
    "go-car/fuzz-regressions/FuzzBlockReader-c3c7eedeb496.car",
    "go-car/fuzz-regressions/FuzzReader-c640dd07c027.car",
    "go-car/fuzz-regressions/FuzzReader-e1d7f87ee37f.car",
    "go-car/fuzz-regressions/FuzzReader-fe93cec1356a.car",
    "go-car/v2-testdata/sample-corrupt-pragma.car",
    "go-car/v2-testdata/sample-rootless-v42.car",
    "go-car/v2-testdata/sample-rw-bs-v2.car",
    "go-car/v2-testdata/sample-unixfs-v2.car",
    "go-car/v2-testdata/sample-v1-with-zero-len-section2.car",
    "js-car/go.car",
    "js-car/go.carv2",
    "kubo-lotus-testnet/combined_naked_roots_genesis_and_128.car",
    "kubo-lotus-testnet/lotus_devnet_genesis.car",
    "kubo-lotus-testnet/lotus_devnet_genesis_shuffled_noroots.car",
    "kubo-lotus-testnet/lotus_devnet_genesis_shuffled_nulroot.car",
    "kubo-lotus-testnet/lotus_devnet_genesis_v2.car",
    "kubo-lotus-testnet/partial-dag-scope-entity.car",
    "lotus/adl_test.car",
    "test-vectors/ext-0004-fil_1_storagemarket-PublishStorageDeals-SysErrOutOfGas-1.car",
    "test-vectors/ext-0004-fil_1_storageminer-ChangeWorkerAddress-Ok-1.car",
    "test-vectors/reward--ok-miners-awarded-no-premiums--actorsv2.car",
]

LARGE_V1 = [
    "go-car/cmd-car-inputs/sample-v1.car",
    "go-car/v2-testdata/sample-v1-tailing-corrupt-section.car",
    "go-car/v2-testdata/sample-v1-with-zero-len-section.car",
    "go-car/cmd-car-inputs/wikipedia-cryptographic-hash-function.car",
    "kubo-lotus-testnet/lotus_testnet_export_128.car",
    "forest/chain4.car",
    "forest/export40.car",
    "lotus/genesis-mainnet.car",
    "fvm-test-vectors/ext-0002-fil_10_multisig-Propose-Ok-3.car",
]

LARGE_V2 = [
    "go-car/v2-testdata/sample-wrapped-v2.car",
    "go-car/v2-testdata/sample-v2-indexless.car",
    "go-car/v2-testdata/sample-v2-corrupt-data-and-index.car",
    "kubo-lotus-testnet/lotus_testnet_export_128_v2.car",
    "forest/carv2.car",
]

BLOCK_CARS = [
    "kubo-lotus-testnet/lotus_testnet_export_128.car",
    "forest/chain4.car",
    "forest/export40.car",
    "lotus/genesis-calibnet.car",
    "test-vectors/ext-0004-fil_1_storagemarket-PublishStorageDeals-SysErrOutOfGas-1.car",
    "test-vectors/ext-0001-fil_1_storageminer-SubmitWindowedPoSt-Ok-7.car",
    "fvm-test-vectors/ext-0002-fil_10_storageminer-ProveCommitAggregate-Ok-6.car",
]


def car_seeds(w):
    def put(car, flags=(0x00, 0x01, 0x80)):
        for f in flags:
            w.put("car", bytes([f, len(car) & 0xFF, 0x5A, 0x01]) + car)

    for rel in SMALL_CARS:
        put(data(rel))
    for rel in LARGE_V1:
        header, secs = sections(data(rel))
        cut = bytearray(header)
        for _, _, s in secs:
            if len(cut) + len(s) > 32 * 1024:
                break
            cut += s
        put(bytes(cut))
    for rel in LARGE_V2:
        put(data(rel)[: 32 * 1024], flags=(0x00, 0x01))
    # A chain of headers only: the roots decode as headers, so the import applies a head
    # whose state is absent.
    header, secs = sections(data("kubo-lotus-testnet/lotus_testnet_export_128.car"))
    only = bytearray(header)
    for _, block, s in secs:
        if is_header(block) and len(only) + len(s) <= 60 * 1024:
            only += s
    put(bytes(only))


def link_and_header_seeds(w):
    fixtures = TESTDATA / "codec-fixtures" / "fixtures"
    if not fixtures.is_dir():
        fail(f"{fixtures} does not exist")
    for p in sorted(fixtures.glob("*/*.dag-cbor")):
        w.put("links", p.read_bytes())
    import json

    neg = json.loads(data("codec-fixtures/negative-fixtures/dag-cbor/decode/duplicate-keys.json"))
    for case in neg:
        w.put("links", bytes.fromhex(case["hex"]))
    w.put("links", data("python-libipld/semi_torture_nested_lists.dagcbor"))
    torture = data("python-libipld/torture_cids.dagcbor")
    _, _, pos = cbor_head(torture, 0)
    start, n = pos, 0
    while n < 2000:
        _, _, pos = cbor_head(torture, pos)  # tag 42
        _, length, pos = cbor_head(torture, pos)  # bytes
        pos += length
        n += 1
    w.put("links", bytes([0x99]) + n.to_bytes(2, "big") + torture[start:pos])

    headers = {13: 0, 16: 0}
    for rel in BLOCK_CARS:
        _, secs = sections(data(rel))
        for i, (cid, block, _) in enumerate(secs):
            if cid_codec(cid) != 0x71 or len(block) > 16 * 1024:
                continue
            if is_header(block):
                fields = 13 if block[0] == 0x8D else 16
                if headers[fields] < 80:
                    headers[fields] += 1
                    w.put("header", block)
                    w.put("links", block)
            elif i % 7 == 0:
                w.put("links", block)
                if i % 21 == 0:
                    w.put("header", block)


def meta_seeds(w):
    _, secs = sections(data("kubo-lotus-testnet/lotus_testnet_export_128.car"))
    cids = [c for c, _, _ in secs[:40]]
    v0 = bytes.fromhex("1220") + bytes(range(32))
    for k in range(1, 4):
        tipset = cids[k : k + k]
        rec = bytes([1]) + struct.pack("<qQ", 100 * k, 1_600_000_000 + k) + bytes([len(tipset)])
        for c in tipset:
            rec += bytes([len(c)]) + c
        w.put("meta", rec)
    w.put("meta", bytes([1]) + struct.pack("<qQ", -5, 0) + bytes([1, len(v0)]) + v0)
    w.put("meta", bytes([1]) + struct.pack("<qQQ", 40, 3, 1234))
    w.put("meta", bytes([1]) + struct.pack("<qQQ", -(2**63), 2**64 - 1, 0))
    purge = bytes([1]) + struct.pack("<qqqQQ", 100, 60, 40, 500, 20)
    w.put("meta", purge)
    w.put("meta", bytes([1]) + struct.pack("<qqqQQ", 10, -2, 0, 0, 0))
    keys = [multihash(c) for c in cids[:10]]
    for k in keys:
        w.put("meta", k)
    # The chain index: an anchor over two sorted CIDs and one genesis root, and a chunk.
    anchor = bytes([1]) + struct.pack("<qQQQ", 30, 0, 1, 3) + bytes([2])
    for c in sorted(cids[:2]):
        anchor += bytes([len(c)]) + c
    anchor += bytes([1, len(cids[2])]) + cids[2]
    w.put("meta", anchor)
    chunk = bytes([1]) + struct.pack("<I", 3) + b"".join(bytes([len(k)]) + k for k in keys[:3])
    w.put("meta", chunk)
    w.put("meta", bytes([0xC0, 6, len(anchor)]) + anchor + bytes([7, len(chunk)]) + chunk)
    # Hostile opens: records [kind, len, bytes] after a 0xc0.. selector.
    for sel in (0xC0, 0xE7):
        rec = bytes([sel, 2, len(purge)]) + purge
        for k in keys:
            rec += bytes([4, len(k)]) + k
        w.put("meta", rec)
        state = bytes([1]) + struct.pack("<qQQ", 2, 1, 10)
        w.put("meta", bytes([sel, 1, len(state)]) + state + bytes([5, len(keys[0])]) + keys[0])


def ops_seeds(w):
    rng = random.Random(20240601)
    apply = [0x00, 0x00]
    for mode in range(6):
        base = bytes([mode, 7, 3])
        w.put("ops", base + bytes(apply * 12) + bytes([11]) + bytes([7, 3, 9, 5, 4, 1, 2, 3, 3]))
        w.put("ops", base + bytes([0x00, 0x01] * 10) + bytes([4, 1, 2, 3, 3, 13, 9, 0, 7, 0, 0, 4, 0, 1, 2, 3, 7, 1, 9, 2, 0, 0]))
        w.put("ops", base + bytes(apply * 9) + bytes([14, 40, 0, 11, 15, 1, 0]) + bytes(apply * 4) + bytes([11]))
        w.put("ops", base + bytes(apply * 9) + bytes([14, 25, 0, 13, 3, 1, 6, 4, 1, 0, 0, 7, 5, 15, 3, 2]))
        w.put("ops", base + bytes(apply * 10) + bytes([12, 0, 4, 9, 9, 9, 3, 15, 2, 0, 12, 1, 0, 0, 11, 15, 0, 0]))
    for _ in range(40):
        n = rng.randrange(20, 120)
        w.put("ops", bytes(rng.choice([0, 0, 0, 1, 2, 3, 4, 6, 8, 10, 11, 12, 13, 14, 15]) if i % 2 == 0 else rng.randrange(256) for i in range(n)))
    # The orders real nodes write in (setup / 6 odd; setup / 12 % 3 picks how writes land):
    # header-first syncs (16), prefetched state (18), parents before children (19), pending
    # writes (20) and reads (22), dropped writes (23), compactions beside two writers (13 with
    # an odd seed).
    header_first, prefetch, parent_first, write_pending, read_pending, dropped = 16, 18, 19, 20, 22, 23
    for setup in [6, 7, 8, 18, 19, 20, 30, 31, 32]:
        base = bytes([setup, 7, 3])
        w.put("ops", base + bytes(apply * 6) + bytes([header_first, 0, 0x0f, prefetch]) + bytes(apply * 3)
              + bytes([parent_first, 1, 2, 3, 2, write_pending, 0, read_pending, 0, 0, dropped, 1, 2, 3, 65, 11]))
        w.put("ops", base + bytes(apply * 8) + bytes([13, 1, 0, 7, header_first, 0, 0x33, parent_first, 4, 5, 6, 1,
                                                        write_pending, 1, dropped, 7, 8, 9, 2, 4, 1, 2, 3, 2,
                                                        write_pending, 0, 0, 0, 11]))
        w.put("ops", base + bytes(apply * 7) + bytes([prefetch, 12, 0, header_first, 1, 0xaa, 13, 3, 0, 5, read_pending,
                                                        1, 1, write_pending, 2, dropped, 4, 4, 4, 130, 0, 0,
                                                        write_pending, 0, 15, 2, 0]))
    for _ in range(40):
        n = rng.randrange(20, 120)
        setup = rng.choice([6, 7, 8, 9, 10, 11, 18, 19, 20, 21, 22, 23, 30, 31, 32, 33, 34, 35])
        w.put("ops", bytes([setup]) + bytes(rng.randrange(256) if i % 2 else rng.choice([0, 0, 1, 4, 7, 11, 13, 16, 17, 18, 19, 20, 21, 22, 23]) for i in range(n)))
    # Deletions (setup / 36 odd; operation bytes 29 to 31): puts and deletions of what they
    # wrote, around compactions held, interleaved with more of both, and crashes.
    delete = 29
    for setup in [36, 37, 38, 42, 43, 44, 54, 55, 56]:
        base = bytes([setup, 7, 3])
        w.put("ops", base + bytes(apply * 8) + bytes([4, 1, 2, 3, 2, 4, 4, 5, 6, 1, delete, 0, 12, 0, 13, 9, 6,
                                                        delete, 1, 4, 7, 8, 9, 3, delete, 2, 11, 7, 0, delete, 3,
                                                        15, 1, 0, 7, 1]))
        w.put("ops", base + bytes(apply * 9) + bytes([6, 4, 9, delete, 0, 13, 5, 12, delete, 1, 4, 1, 2, 3, 3,
                                                        delete, 2, 6, 3, 1, 0, 0, 14, 30, 0, 11, 15, 1, 0, 7, 2]))
    for _ in range(40):
        n = rng.randrange(20, 120)
        setup = rng.choice([36, 37, 38, 39, 40, 41, 42, 43, 44, 54, 55, 56, 66, 67, 68])
        w.put("ops", bytes([setup]) + bytes(rng.randrange(256) if i % 2 else rng.choice([0, 0, 1, 4, 6, 7, 11, 13, 16, 19, 20, 23, 29, 29, 30, 31]) for i in range(n)))
    # Reads in use and reify drains (setup / 72 odd; operation bytes 34 to 39): old state read
    # through the hot view after compactions moved it cold, drains alone and beside an
    # interleaved compaction (13), deletions (29) and crashes (15).
    in_use, reify = 34, 39
    for setup in [73, 74, 79, 80, 109, 110, 115, 116]:
        base = bytes([setup, 7, 3])
        w.put("ops", base + bytes(apply * 20) + bytes([in_use, 0, 0, in_use, 5, 1, in_use, 9, 0, reify, 7, 1,
                                                         in_use, 3, 0, 12, 0, 13, 9, 6, in_use, 2, 0, reify, 0, 0,
                                                         in_use, 4, 0, reify, 11, 15, 2, 0, in_use, 1, 0, reify]))
        w.put("ops", base + bytes(apply * 16) + bytes([in_use, 2, 0, 29, 2, reify, in_use, 6, 1, 14, 20, reify,
                                                         15, 3, 1, in_use, 2, 0, 13, 4, 5, reify, in_use, 8, 0,
                                                         0, 0, reify, 11]))
    for _ in range(40):
        n = rng.randrange(20, 120)
        setup = rng.choice([73, 74, 79, 80, 85, 86, 109, 110, 115, 116])
        w.put("ops", bytes([setup]) + bytes(rng.randrange(256) if i % 2 else rng.choice([0, 0, 0, 1, 4, 7, 11, 13, 15, 34, 35, 39]) for i in range(n)))


    # Cold prunes (third byte with bit 4 set; operation bytes 45 to 47, then the retention):
    # prunes of every retention after compactions moved state cold, beside held and
    # interleaved compactions (12, 13), reads (7), deletions (29), a fuse (14) and crashes (15).
    prune = 45
    for setup in [1, 2, 4, 5, 37, 38, 73, 74]:
        base = bytes([setup, 7, 0x13])
        w.put("ops", base + bytes(apply * 14) + bytes([prune, 0, 7, 3, prune, 1, 11, prune, 2, 7, 9, prune, 3]))
        w.put("ops", base + bytes(apply * 12) + bytes([12, 0, prune, 1, 13, 5, 3, 7, 1, 0, 0, 4, 1, 2, 3, 1,
                                                         prune, 0, 14, 40, prune, 1, 0, 0, 15, 3, 2, prune, 2]))
        w.put("ops", base + bytes(apply * 10) + bytes([14, 60, prune, 0, 15, 2, 0]) + bytes(apply * 4)
              + bytes([29, 0, prune, 2, 11, 15, 1, 0]))
    for _ in range(40):
        n = rng.randrange(20, 120)
        setup = rng.choice([1, 2, 4, 5, 7, 8, 37, 38, 73, 74, 109, 110])
        w.put("ops", bytes([setup, rng.randrange(256), 0x10 | rng.randrange(16)])
              + bytes(rng.randrange(256) if i % 2 else rng.choice([0, 0, 0, 1, 4, 7, 11, 12, 13, 14, 15, 45, 46]) for i in range(n)))


def main():
    if "--clean" in sys.argv and OUT.exists():
        shutil.rmtree(OUT)
    if not TESTDATA.is_dir():
        fail(f"test data folder {TESTDATA} does not exist (set SPLITSTORE_TESTDATA)")
    w = Writer()
    car_seeds(w)
    link_and_header_seeds(w)
    meta_seeds(w)
    ops_seeds(w)
    for t, n in sorted(w.counts.items()):
        print(f"seed-corpus: {n:5} seeds -> {OUT / t}")


if __name__ == "__main__":
    main()
