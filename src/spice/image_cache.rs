//! Encode once, send to many: images encoded for one client, kept for every other client
//! that would encode the same pixels the same way.
//!
//! A key names the pixels exactly: the display's generation is global and bumped by every
//! change (display/handle.rs), so a surface's rectangle read at one generation is the same
//! bytes for whoever reads it. The value is the encoding's output, or the decision that the
//! encoding does not pay (LZ4 larger than the pixels), so the next client skips the attempt.
//! Bounded by bytes and by entries; the least recently used entries go first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use crate::display::Rect;

/// Encoded bytes kept by default: two full-HD frames at a typical 2:1 LZ4 ratio, so clients
/// in step with each other (the common case) all hit while one frame is being sent.
pub const DEFAULT_IMAGE_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// Entries kept at most, whatever their size ("did not pay" markers weigh nothing).
const MAX_ENTRIES: usize = 4096;

/// How an image is encoded for the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// One LZ4 block of 32-bit top-down pixels.
    Lz4,
}

/// What one surface rectangle, read at one generation, encodes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageKey {
    /// The surface read.
    pub surface_id: u32,
    /// The surface's generation when read.
    pub generation: u64,
    /// The rectangle read.
    pub rect: Rect,
    /// How it is encoded.
    pub encoding: Encoding,
}

/// A cached encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoded {
    /// The encoder's output.
    Bytes(Arc<[u8]>),
    /// The encoding does not pay for these pixels: send them raw.
    NotWorthIt,
}

impl Encoded {
    fn weight(&self) -> usize {
        match self {
            Self::Bytes(b) => b.len(),
            Self::NotWorthIt => 0,
        }
    }
}

/// Counters of the shared cache.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImageCacheStats {
    /// Lookups answered.
    pub hits: u64,
    /// Lookups not answered.
    pub misses: u64,
    /// Encoded bytes held now.
    pub bytes: usize,
    /// Entries held now.
    pub entries: usize,
}

#[derive(Debug)]
struct Entry {
    value: Encoded,
    /// Matches the newest `order` item of this key; older items are stale.
    stamp: u64,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<ImageKey, Entry>,
    /// Use order, oldest first; an item whose stamp is not its entry's is skipped.
    order: VecDeque<(ImageKey, u64)>,
    next_stamp: u64,
    bytes: usize,
    hits: u64,
    misses: u64,
}

impl Inner {
    fn touch(&mut self, key: ImageKey) -> u64 {
        let stamp = self.next_stamp;
        self.next_stamp = self.next_stamp.wrapping_add(1);
        self.order.push_back((key, stamp));
        stamp
    }

    /// Drops stale order items once they outnumber the live ones, so hits cannot grow
    /// `order` without bound.
    fn compact(&mut self) {
        if self.order.len() > self.map.len().saturating_mul(2).saturating_add(64) {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|e| e.stamp == *s));
        }
    }
}

/// The cache all display clients of one server share.
#[derive(Debug)]
pub struct ImageCache {
    /// Held for a lookup or an insert (no encoding under it), never across an `.await`.
    inner: Mutex<Inner>,
    budget: usize,
}

impl ImageCache {
    /// A cache of at most `budget` encoded bytes (0: caches nothing).
    pub fn new(budget: usize) -> Self {
        Self {
            inner: Mutex::default(),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The encoding of `key`, if some client made it and it is still held.
    pub fn get(&self, key: &ImageKey) -> Option<Encoded> {
        let mut inner = self.lock();
        if !inner.map.contains_key(key) {
            inner.misses = inner.misses.saturating_add(1);
            return None;
        }
        inner.hits = inner.hits.saturating_add(1);
        let stamp = inner.touch(*key);
        let entry = inner.map.get_mut(key)?;
        entry.stamp = stamp;
        let value = entry.value.clone();
        inner.compact();
        Some(value)
    }

    /// Keeps `value` as the encoding of `key`, evicting the least recently used entries to
    /// stay within the budget. A value larger than the whole budget is not kept.
    pub fn insert(&self, key: ImageKey, value: Encoded) {
        let weight = value.weight();
        if weight > self.budget {
            return;
        }
        let mut inner = self.lock();
        let stamp = inner.touch(key);
        if let Some(old) = inner.map.insert(key, Entry { value, stamp }) {
            inner.bytes = inner.bytes.saturating_sub(old.value.weight());
        }
        inner.bytes = inner.bytes.saturating_add(weight);
        while inner.bytes > self.budget || inner.map.len() > MAX_ENTRIES {
            let Some((k, s)) = inner.order.pop_front() else {
                break;
            };
            if inner.map.get(&k).is_some_and(|e| e.stamp == s) {
                if let Some(e) = inner.map.remove(&k) {
                    inner.bytes = inner.bytes.saturating_sub(e.value.weight());
                }
            }
        }
        inner.compact();
    }

    /// Counters and size now.
    pub fn stats(&self) -> ImageCacheStats {
        let inner = self.lock();
        ImageCacheStats {
            hits: inner.hits,
            misses: inner.misses,
            bytes: inner.bytes,
            entries: inner.map.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(generation: u64) -> ImageKey {
        ImageKey {
            surface_id: 0,
            generation,
            rect: Rect::ltrb(0, 0, 10, 10),
            encoding: Encoding::Lz4,
        }
    }

    fn bytes(n: usize) -> Encoded {
        Encoded::Bytes(vec![7u8; n].into())
    }

    #[test]
    fn hit_needs_the_same_generation_rect_and_encoding() {
        let c = ImageCache::new(1000);
        c.insert(key(1), bytes(10));
        assert_eq!(c.get(&key(1)), Some(bytes(10)));
        assert_eq!(c.get(&key(2)), None);
        let mut other = key(1);
        other.rect = Rect::ltrb(0, 0, 10, 11);
        assert_eq!(c.get(&other), None);
        assert_eq!(
            c.stats(),
            ImageCacheStats {
                hits: 1,
                misses: 2,
                bytes: 10,
                entries: 1
            }
        );
    }

    #[test]
    fn evicts_least_recently_used_within_the_byte_budget() {
        let c = ImageCache::new(100);
        c.insert(key(1), bytes(40));
        c.insert(key(2), bytes(40));
        assert!(c.get(&key(1)).is_some(), "1 is now the most recent");
        c.insert(key(3), bytes(40));
        assert!(c.get(&key(2)).is_none(), "2 was least recently used");
        assert!(c.get(&key(1)).is_some());
        assert!(c.get(&key(3)).is_some());
        assert_eq!(c.stats().bytes, 80);
        c.insert(key(4), bytes(101));
        assert!(c.get(&key(4)).is_none(), "larger than the budget: not kept");
        c.insert(key(5), Encoded::NotWorthIt);
        assert_eq!(c.get(&key(5)), Some(Encoded::NotWorthIt));
    }

    #[test]
    fn many_hits_and_entries_stay_bounded() {
        let c = ImageCache::new(1 << 20);
        for g in 0..(MAX_ENTRIES as u64 * 2) {
            c.insert(key(g), Encoded::NotWorthIt);
            for _ in 0..3 {
                c.get(&key(g));
            }
        }
        assert_eq!(c.stats().entries, MAX_ENTRIES);
        let inner = c.lock();
        assert!(inner.order.len() <= MAX_ENTRIES * 2 + 64 + 1);
    }
}
