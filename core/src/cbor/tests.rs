use alloc::vec::Vec;

use cid::Cid;
use multihash::Multihash;

use super::parse_cid;
use crate::synth::rng::Rng;

/// `Cid::read_bytes` required to consume every byte: the reference `parse_cid` must match.
fn reference(bytes: &[u8]) -> Option<Cid> {
    let mut rest = bytes;
    let cid = Cid::read_bytes(&mut rest).ok()?;
    rest.is_empty().then_some(cid)
}

/// Candidate CID bytes and mutations of them, drawn from the synthetic chain's generator.
struct Gen(Rng);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn varint(&mut self, out: &mut Vec<u8>) {
        let v = match self.below(4) {
            0 => self.below(0x80),
            1 => self.below(0x4000),
            2 => self.below(0x20_0000),
            _ => self.next(),
        };
        let mut buf = unsigned_varint_encode(v);
        if self.below(8) == 0 {
            // A non-minimal or overlong encoding.
            let last = buf.len() - 1;
            buf[last] |= 0x80;
            buf.extend(core::iter::repeat_n(0x80, self.below(9) as usize));
            buf.push(0);
        }
        out.extend_from_slice(&buf);
    }

    fn candidate(&mut self) -> Vec<u8> {
        match self.below(5) {
            // Well-formed CIDs of every shape.
            0 => {
                let mh = Multihash::<64>::wrap(0x12, &self.bytes(32)).expect("fits");
                Cid::new_v0(mh).expect("v0").to_bytes()
            }
            1 => {
                let size = self.below(65) as usize;
                let mh = Multihash::<64>::wrap(self.next() >> self.below(64), &self.bytes(size)).expect("fits");
                Cid::new_v1(self.next() >> self.below(64), mh).to_bytes()
            }
            // Random field-by-field encodings with random declared and actual digest sizes.
            2 | 3 => {
                let mut v = Vec::new();
                match self.below(4) {
                    0 => v.extend_from_slice(&[0x12, 0x20]),
                    1 => self.varint(&mut v),
                    _ => v.push(1),
                }
                for _ in 0..self.below(4) {
                    self.varint(&mut v);
                }
                let digest = self.below(70) as usize;
                v.extend_from_slice(&self.bytes(digest));
                v
            }
            _ => {
                let n = self.below(12) as usize;
                self.bytes(n)
            }
        }
    }
}

fn unsigned_varint_encode(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

#[test]
fn parse_cid_agrees_with_read_bytes() {
    let mut rng = Gen(Rng::new(42, 0));
    let (mut ok, mut err) = (0, 0);
    for _ in 0..200_000 {
        let mut c = rng.candidate();
        // Mutate some: cut, extend or flip a byte.
        match rng.below(6) {
            0 if !c.is_empty() => {
                let n = rng.below(c.len() as u64) as usize;
                c.truncate(n);
            }
            1 => c.push(rng.next() as u8),
            2 if !c.is_empty() => {
                let i = rng.below(c.len() as u64) as usize;
                c[i] ^= 1 << rng.below(8);
            }
            _ => {}
        }
        let want = reference(&c);
        assert_eq!(parse_cid(&c), want, "{c:02x?}");
        if want.is_some() {
            ok += 1;
        } else {
            err += 1;
        }
    }
    assert!(ok > 50_000 && err > 50_000, "both outcomes exercised: {ok} ok, {err} rejected");
}
