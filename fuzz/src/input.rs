//! Turning fuzzer bytes into decisions: a reader that never fails, and chunk-size schedules.

/// Reads an input front to back. Past the end every read returns zero, so any input decodes.
#[derive(Clone, Debug)]
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    /// A reader at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// True once every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte, or 0 past the end.
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` next bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        &self.data[start..end]
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        &self.data[start..]
    }
}

/// A seeded schedule of chunk sizes for feeding a stream: mostly tiny chunks (1 to 16 bytes,
/// so every item is cut somewhere), some up to 256 and 4096 bytes, and now and then the whole
/// rest at once.
#[derive(Clone, Debug)]
pub struct Chunks(u64);

impl Chunks {
    /// The schedule of `seed`.
    pub fn new(seed: u64) -> Self {
        Chunks(seed ^ 0x5851_F42D_4C95_7F2D)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next chunk size (at least 1; `usize::MAX` means "all the rest").
    pub fn next_len(&mut self) -> usize {
        let r = self.next_u64();
        let v = (r >> 8) as usize;
        match r % 16 {
            0..=8 => 1 + v % 16,
            9..=12 => 1 + v % 256,
            13..=14 => 1 + v % 4096,
            _ => usize::MAX,
        }
    }

    /// Splits `data` into consecutive chunks following the schedule.
    pub fn split<'d>(&mut self, data: &'d [u8]) -> Vec<&'d [u8]> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let (a, b) = rest.split_at(self.next_len().min(rest.len()));
            out.push(a);
            rest = b;
        }
        out
    }
}
