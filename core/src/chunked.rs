//! A vector that grows in fixed-size chunks: pushing never moves what it holds, so its memory
//! is what it holds plus at most one chunk, and growing it never needs the old and the new
//! buffer at once (a `Vec` that doubles briefly holds three times its contents).

use alloc::vec::Vec;

/// Elements per chunk.
pub(crate) const CHUNK: usize = 1 << 14;

#[derive(Debug)]
pub(crate) struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked { chunks: Vec::new(), len: 0 }
    }
}

impl<T: Copy> Chunked<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes held, chunks' spare room included.
    pub fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity()).sum::<usize>() * core::mem::size_of::<T>()
            + self.chunks.capacity() * core::mem::size_of::<Vec<T>>()
    }

    pub fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(value),
            // A full chunk's successor is allocated whole; the first grows as a `Vec` does.
            Some(_) => self.chunks.push({
                let mut c = Vec::with_capacity(CHUNK);
                c.push(value);
                c
            }),
            None => self.chunks.push(alloc::vec![value]),
        }
        self.len += 1;
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    /// The elements, chunk by chunk.
    pub fn chunks(&self) -> impl Iterator<Item = &[T]> + '_ {
        self.chunks.iter().map(Vec::as_slice)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flatten()
    }
}

impl<T: Copy> core::ops::Index<usize> for Chunked<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_was_pushed_in_order_across_chunks() {
        let mut c = Chunked::default();
        let n = 2 * CHUNK + 17;
        for i in 0..n {
            c.push(i as u32);
        }
        assert_eq!(c.len(), n);
        assert!(c.iter().copied().eq(0..n as u32));
        for i in [0, 1, CHUNK - 1, CHUNK, 2 * CHUNK, n - 1] {
            assert_eq!((c[i], c.get(i)), (i as u32, Some(&(i as u32))));
        }
        assert_eq!(c.get(n), None);
        // Full chunks hold exactly their elements; only the last has room to spare.
        assert!(c.bytes() <= 3 * CHUNK * 4 + 3 * core::mem::size_of::<Vec<u32>>() + 64);
    }
}
