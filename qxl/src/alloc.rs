//! The producer's allocator for RAM and VRAM: first fit over a free list, coalescing on free.
//!
//! Allocations live from push to release, mostly in order, but surface CREATEs are held until
//! their DESTROY, so a ring allocator would stall behind them; a free list does not.

use std::collections::BTreeMap;

/// Allocation granularity: keeps every block 64-byte aligned (one cache line), so a command
/// and the next one's bytes never share a line the consumer is reading.
pub const ALIGN: usize = 64;

/// A block of a pool, offsets relative to the pool start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub offset: usize,
    pub len: usize,
}

#[derive(Debug)]
pub struct FreeList {
    size: usize,
    /// offset → len of each free block; blocks never touch (they are merged on free).
    free: BTreeMap<usize, usize>,
    used: usize,
}

impl FreeList {
    pub fn new(size: usize) -> FreeList {
        let size = size - size % ALIGN;
        let mut free = BTreeMap::new();
        if size > 0 {
            free.insert(0, size);
        }
        FreeList {
            size,
            free,
            used: 0,
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn used(&self) -> usize {
        self.used
    }

    /// Rounds `len` up to `ALIGN`; `None` when it cannot be represented.
    pub fn rounded(len: usize) -> Option<usize> {
        len.max(1).checked_next_multiple_of(ALIGN)
    }

    pub fn alloc(&mut self, len: usize) -> Option<Block> {
        let need = Self::rounded(len)?;
        let (&offset, &free_len) = self.free.iter().find(|(_, &l)| l >= need)?;
        self.free.remove(&offset);
        if free_len > need {
            self.free.insert(offset + need, free_len - need);
        }
        self.used += need;
        Some(Block { offset, len: need })
    }

    /// Returns a block from `alloc`.
    pub fn free(&mut self, block: Block) {
        let mut offset = block.offset;
        let mut len = block.len;
        self.used = self.used.saturating_sub(len);
        if let Some((&prev, &prev_len)) = self.free.range(..offset).next_back() {
            if prev + prev_len == offset {
                self.free.remove(&prev);
                offset = prev;
                len += prev_len;
            }
        }
        if let Some(&next_len) = self.free.get(&(offset + len)) {
            self.free.remove(&(offset + len));
            len += next_len;
        }
        self.free.insert(offset, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_splits_and_coalesces() {
        let mut f = FreeList::new(1024);
        let a = f.alloc(10).unwrap();
        let b = f.alloc(100).unwrap();
        let c = f.alloc(64).unwrap();
        assert_eq!((a.offset, b.offset, c.offset), (0, 64, 192));
        assert_eq!(f.used(), 64 + 128 + 64);
        f.free(b);
        assert_eq!(f.alloc(128).unwrap().offset, 64);
        f.free(Block {
            offset: 64,
            len: 128,
        });
        f.free(a);
        f.free(c);
        assert_eq!(f.used(), 0);
        assert_eq!(f.alloc(1024).unwrap().offset, 0);
        assert!(f.alloc(1).is_none());
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let mut f = FreeList::new(256);
        assert!(f.alloc(257).is_none());
        assert!(f.alloc(usize::MAX).is_none());
    }
}
