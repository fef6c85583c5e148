//! Encode once, send to many: images encoded for one client, kept for every other client
//! that would encode the same pixels the same way.
//!
//! A key names the pixels exactly: a surface's rectangle at one content version (the
//! display's per-tile versions, display/tiles.rs) holds the same bytes for whoever reads it,
//! whatever else changed on the surface meanwhile. So a client looks the key up before
//! reading any pixel, and only a miss reads and encodes. The value is the wire payload, shared
//! by reference (for LZ4 clients it may be the raw bitmap or QUIC: the decision that LZ4 does
//! not pay is kept too). The first client to miss a key claims it and makes the encoding (on
//! its own thread or in the encode pool); clients asking meanwhile are told it is on its way
//! and wait for it without holding their thread, rather than make their own. Bounded by
//! bytes and by entries; the least recently used entries go first.
//!
//! The cache also answers "the newest encoding kept of this rectangle, older than the key"
//! ([`ImageCache::older`]): clients that fall behind a guest drawing faster than they take
//! frames each read the rectangle at a different version, so exact keys rarely meet; handing
//! such a client the newest frame another client already encoded keeps one encoding per frame
//! for all of them (the pipe decides when that is worth it, pipe.rs).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::sync::Notify;

use super::wire::EncodedImage;
use crate::display::Rect;

/// Encoded bytes kept by default: two and a half full-HD frames of raw 24-bit pixels, so
/// clients in step with each other (the common case) all hit while one frame is being sent.
pub const DEFAULT_IMAGE_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Entries kept at most, whatever their size.
const MAX_ENTRIES: usize = 4096;

/// How an image is encoded for the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// A raw 24-bit bitmap.
    Raw,
    /// LZ4 of 24-bit pixels where it pays, else the raw bitmap.
    Lz4,
    /// QUIC where it is smaller than the raw bitmap, else the raw bitmap.
    Quic,
    /// LZ4 where it pays, else QUIC where it is smaller, else the raw bitmap.
    Lz4OrQuic,
}

/// What one surface rectangle, at one content version, encodes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageKey {
    /// The surface read.
    pub surface_id: u32,
    /// The rectangle's content version (`RectVersion::content`).
    pub content: u64,
    /// The rectangle read.
    pub rect: Rect,
    /// How it is encoded.
    pub encoding: Encoding,
}

/// What the encoder of a key made.
#[derive(Debug, Clone)]
pub struct Made {
    /// The image.
    pub image: EncodedImage,
    /// The content version its pixels were read at: when it is not the key's (the pixels
    /// changed between the lookup and the read), the image is used once and not kept.
    pub content: u64,
    /// The display generation of that read (`RectVersion::generation`).
    pub generation: u64,
}

/// An encoding of a key's rectangle at an older content version ([`ImageCache::older`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Older {
    /// The image.
    pub image: EncodedImage,
    /// The content version of its pixels.
    pub content: u64,
    /// The display generation they were read at: every event up to it is in them.
    pub generation: u64,
}

/// A surface rectangle in one encoding, at any content version.
type Spot = (u32, Rect, Encoding);

fn spot(key: &ImageKey) -> Spot {
    (key.surface_id, key.rect, key.encoding)
}

/// Counters of the shared cache.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImageCacheStats {
    /// Lookups answered by another client's encoding.
    pub hits: u64,
    /// Lookups that encoded.
    pub misses: u64,
    /// Older encodings handed out by [`ImageCache::older`].
    pub older: u64,
    /// Encoded bytes held now.
    pub bytes: usize,
    /// Entries held now.
    pub entries: usize,
}

/// A key's encoding, made once by the client that claimed the key: empty while it is made.
#[derive(Debug, Default)]
pub struct InFlight {
    made: OnceLock<Option<Made>>,
    done: Notify,
}

impl InFlight {
    /// What the encoder made (`Some(None)`: nothing, the surface changed under it), or
    /// `None` while it works.
    pub fn get(&self) -> Option<Option<&Made>> {
        self.made.get().map(Option::as_ref)
    }

    /// Resolves once the encoding is in.
    pub async fn done(&self) {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            // Registered before the check, so a `finish` between the two still wakes it.
            notified.as_mut().enable();
            if self.made.get().is_some() {
                return;
            }
            notified.await;
        }
    }

    fn set(&self, made: Option<Made>) {
        let _ = self.made.set(made);
    }
}

/// What [`ImageCache::lookup`] found.
#[derive(Debug)]
pub enum Lookup {
    /// Another client's encoding of the key.
    Hit(EncodedImage),
    /// Another client is making it: its [`InFlight`] says when it is in.
    Busy(Arc<InFlight>),
    /// Nobody has it: the caller makes it and hands it in through the claim.
    Miss(Claim),
}

/// The duty to make a key's encoding, taken by the first client to miss it. Dropped without
/// [`Claim::finish`] (the encoder went away), it finishes with nothing, so no waiter hangs.
#[derive(Debug)]
pub struct Claim {
    cache: Arc<ImageCache>,
    key: ImageKey,
    slot: Arc<InFlight>,
    open: bool,
}

impl Claim {
    fn new(cache: Arc<ImageCache>, key: ImageKey, slot: Arc<InFlight>) -> Self {
        Self {
            cache,
            key,
            slot,
            open: true,
        }
    }

    /// Where the encoding will be found, for the claimant too when it is made elsewhere.
    pub fn slot(&self) -> &Arc<InFlight> {
        &self.slot
    }

    /// Hands in what was made (`None`: nothing, the surface changed under the encoder).
    pub fn finish(mut self, made: Option<Made>) {
        self.open = false;
        self.cache.finish(&self.key, &self.slot, made);
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.open {
            self.cache.finish(&self.key, &self.slot, None);
        }
    }
}

#[derive(Debug)]
struct Entry {
    slot: Arc<InFlight>,
    /// Bytes counted for it (0 until its encoding is in).
    weight: usize,
    /// Matches the newest `order` item of this key; older items are stale.
    stamp: u64,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<ImageKey, Entry>,
    /// Use order, oldest first; an item whose stamp is not its entry's is skipped.
    order: VecDeque<(ImageKey, u64)>,
    /// Per rectangle and encoding, the kept encoding of the newest content version: a copy
    /// of a `map` entry's, dropped with it.
    newest: HashMap<Spot, Older>,
    next_stamp: u64,
    bytes: usize,
    hits: u64,
    misses: u64,
    older: u64,
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

    fn remove(&mut self, key: &ImageKey) {
        if let Some(e) = self.map.remove(key) {
            self.bytes = self.bytes.saturating_sub(e.weight);
        }
        let spot = spot(key);
        if self
            .newest
            .get(&spot)
            .is_some_and(|n| n.content == key.content)
        {
            self.newest.remove(&spot);
        }
    }

    /// Notes a kept encoding as its rectangle's newest, unless a newer one is kept.
    fn kept(&mut self, key: &ImageKey, image: &EncodedImage, generation: u64) {
        let spot = spot(key);
        if self
            .newest
            .get(&spot)
            .is_none_or(|n| n.content < key.content)
        {
            let newest = Older {
                image: image.clone(),
                content: key.content,
                generation,
            };
            self.newest.insert(spot, newest);
        }
    }

    fn evict(&mut self, budget: usize) {
        while self.bytes > budget || self.map.len() > MAX_ENTRIES {
            let Some((k, s)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k).is_some_and(|e| e.stamp == s) {
                self.remove(&k);
            }
        }
        self.compact();
    }
}

/// The cache all display clients of one server share.
#[derive(Debug)]
pub struct ImageCache {
    /// Held for a lookup or an accounting step (never while encoding), never across an
    /// `.await`.
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

    /// Looks `key` up: its kept encoding, the encoding another client is making of it, or,
    /// when nobody has it, the claim to make it (counted as a hit, a hit, a miss).
    pub fn lookup(self: &Arc<Self>, key: ImageKey) -> Lookup {
        if self.budget == 0 {
            return Lookup::Miss(Claim::new(Arc::clone(self), key, Arc::default()));
        }
        let mut inner = self.lock();
        let stamp = inner.touch(key);
        let found = inner.map.get_mut(&key).map(|entry| {
            entry.stamp = stamp;
            Arc::clone(&entry.slot)
        });
        let lookup = match found {
            Some(slot) => {
                inner.hits = inner.hits.saturating_add(1);
                match slot.get() {
                    Some(Some(made)) if made.content == key.content => {
                        Lookup::Hit(made.image.clone())
                    }
                    _ => Lookup::Busy(slot),
                }
            }
            None => {
                inner.misses = inner.misses.saturating_add(1);
                let slot = Arc::<InFlight>::default();
                let entry = Entry {
                    slot: Arc::clone(&slot),
                    weight: 0,
                    stamp,
                };
                inner.map.insert(key, entry);
                Lookup::Miss(Claim::new(Arc::clone(self), key, slot))
            }
        };
        inner.compact();
        lookup
    }

    /// Puts in what the claimant of `key` made: kept for the others when its pixels are of
    /// the key's version, else the key is forgotten (the next reader encodes afresh).
    fn finish(&self, key: &ImageKey, slot: &Arc<InFlight>, made: Option<Made>) {
        let mut inner = self.lock();
        let ours = inner
            .map
            .get(key)
            .is_some_and(|e| Arc::ptr_eq(&e.slot, slot));
        if ours {
            match made.as_ref().filter(|m| m.content == key.content) {
                Some(made) => {
                    let weight = made.image.bytes.capacity();
                    if let Some(entry) = inner.map.get_mut(key) {
                        entry.weight = weight;
                    }
                    inner.bytes = inner.bytes.saturating_add(weight);
                    inner.kept(key, &made.image, made.generation);
                    inner.evict(self.budget);
                }
                None => inner.remove(key),
            }
        }
        // Set under the lock: a lookup never sees an encoding of another version as kept.
        slot.set(made);
        drop(inner);
        slot.done.notify_waiters();
    }

    /// The encoding of `key`: another client's if it made (or is making, then waited for
    /// here) one, else `encode`'s, kept for the others. Returns it and whether it came from
    /// the cache; `None` if `encode` had nothing (the surface changed under it). The pipe
    /// uses [`ImageCache::lookup`] instead, which never waits.
    #[cfg(test)]
    pub fn get_or_encode(
        self: &Arc<Self>,
        key: ImageKey,
        encode: impl FnOnce() -> Option<Made>,
    ) -> Option<(EncodedImage, bool)> {
        match self.lookup(key) {
            Lookup::Hit(image) => Some((image, true)),
            Lookup::Miss(claim) => {
                let made = encode();
                let image = made.as_ref().map(|m| m.image.clone());
                claim.finish(made);
                image.map(|image| (image, false))
            }
            Lookup::Busy(slot) => match slot.made.wait() {
                Some(made) if made.content == key.content => Some((made.image.clone(), true)),
                // Nothing for this version: a client that only waited encodes for itself.
                _ => encode().map(|m| (m.image, false)),
            },
        }
    }

    /// The newest encoding kept of `key`'s surface rectangle in `key`'s encoding whose
    /// content version is older than `key`'s and at least `since`, when nothing of `key`
    /// itself is kept or being made (then waiting for, or making, the exact one is better),
    /// and `accept` takes it. Counts as a use of that encoding.
    pub fn older(
        &self,
        key: ImageKey,
        since: u64,
        accept: impl FnOnce(&Older) -> bool,
    ) -> Option<Older> {
        if self.budget == 0 {
            return None;
        }
        let mut inner = self.lock();
        if inner.map.contains_key(&key) {
            return None;
        }
        let older = inner
            .newest
            .get(&spot(&key))
            .filter(|n| (since..key.content).contains(&n.content) && accept(n))
            .cloned()?;
        let used = ImageKey {
            content: older.content,
            ..key
        };
        let stamp = inner.touch(used);
        if let Some(entry) = inner.map.get_mut(&used) {
            entry.stamp = stamp;
        }
        inner.compact();
        inner.older = inner.older.saturating_add(1);
        Some(older)
    }

    /// Counters and size now.
    pub fn stats(&self) -> ImageCacheStats {
        let inner = self.lock();
        ImageCacheStats {
            hits: inner.hits,
            misses: inner.misses,
            older: inner.older,
            bytes: inner.bytes,
            entries: inner.map.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spice::wire::ImageType;

    fn key(content: u64) -> ImageKey {
        ImageKey {
            surface_id: 0,
            content,
            rect: Rect::ltrb(0, 0, 10, 10),
            encoding: Encoding::Lz4,
        }
    }

    fn image(n: usize) -> EncodedImage {
        EncodedImage {
            image_type: ImageType::BITMAP,
            bytes: Arc::new(vec![7u8; n]),
        }
    }

    fn made(n: usize, content: u64) -> impl FnOnce() -> Option<Made> {
        move || {
            Some(Made {
                image: image(n),
                content,
                generation: content + 100,
            })
        }
    }

    fn never() -> Option<Made> {
        panic!("encoded although cached")
    }

    #[test]
    fn hit_needs_the_same_surface_content_rect_and_encoding() {
        let c = Arc::new(ImageCache::new(1000));
        assert_eq!(
            c.get_or_encode(key(1), made(10, 1)),
            Some((image(10), false))
        );
        assert_eq!(c.get_or_encode(key(1), never), Some((image(10), true)));
        assert_eq!(
            c.get_or_encode(key(2), made(11, 2)),
            Some((image(11), false))
        );
        let mut other = key(1);
        other.rect = Rect::ltrb(0, 0, 10, 11);
        assert!(!c.get_or_encode(other, made(12, 1)).unwrap().1);
        let mut raw = key(1);
        raw.encoding = Encoding::Raw;
        assert!(!c.get_or_encode(raw, made(13, 1)).unwrap().1);
        let mut surface = key(1);
        surface.surface_id = 1;
        assert!(!c.get_or_encode(surface, made(14, 1)).unwrap().1);
        assert_eq!(
            c.stats(),
            ImageCacheStats {
                hits: 1,
                misses: 5,
                older: 0,
                bytes: 10 + 11 + 12 + 13 + 14,
                entries: 5
            }
        );
    }

    #[test]
    fn pixels_read_at_another_version_are_used_once_and_not_kept() {
        let c = Arc::new(ImageCache::new(1000));
        // Looked up at content 1, read at content 2: the reader gets its image...
        assert_eq!(
            c.get_or_encode(key(1), made(10, 2)),
            Some((image(10), false))
        );
        // ...but nobody else gets it as version 1.
        assert_eq!(
            c.get_or_encode(key(1), made(20, 1)),
            Some((image(20), false))
        );
        assert_eq!(c.get_or_encode(key(1), never).unwrap().0, image(20));
        // The surface went away under the encoder: nothing, nothing kept.
        assert_eq!(c.get_or_encode(key(3), || None), None);
        assert_eq!(c.stats().entries, 1);
    }

    #[test]
    fn evicts_least_recently_used_within_the_byte_budget() {
        let c = Arc::new(ImageCache::new(100));
        c.get_or_encode(key(1), made(40, 1));
        c.get_or_encode(key(2), made(40, 2));
        assert!(
            c.get_or_encode(key(1), never).unwrap().1,
            "1 is now the most recent"
        );
        c.get_or_encode(key(3), made(40, 3));
        assert!(
            !c.get_or_encode(key(2), made(40, 2)).unwrap().1,
            "2 was evicted"
        );
        assert_eq!(c.stats().bytes, 80);
        assert!(!c.get_or_encode(key(4), made(101, 4)).unwrap().1);
        assert!(
            !c.get_or_encode(key(4), made(101, 4)).unwrap().1,
            "larger than the budget: not kept"
        );
        assert!(c.stats().bytes <= 100);
    }

    #[test]
    fn concurrent_readers_of_one_key_encode_it_once() {
        let c = Arc::new(ImageCache::new(1 << 20));
        let encodings = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (c, encodings) = (Arc::clone(&c), Arc::clone(&encodings));
                std::thread::spawn(move || {
                    c.get_or_encode(key(9), || {
                        encodings.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        made(30, 9)()
                    })
                    .unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().0, image(30));
        }
        assert_eq!(encodings.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(c.stats().hits, 3);
    }

    #[test]
    fn a_claim_dropped_unfinished_ends_its_waiters() {
        let c = Arc::new(ImageCache::new(1000));
        let Lookup::Miss(claim) = c.lookup(key(1)) else {
            panic!("the first reader claims the key");
        };
        let Lookup::Busy(slot) = c.lookup(key(1)) else {
            panic!("the second is told it is being made");
        };
        assert!(slot.get().is_none());
        drop(claim);
        assert!(matches!(slot.get(), Some(None)));
        assert!(
            matches!(c.lookup(key(1)), Lookup::Miss(_)),
            "forgotten: the next reader encodes"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiter_gives_up_its_thread_until_the_encoding_is_in() {
        let c = Arc::new(ImageCache::new(1000));
        let Lookup::Miss(claim) = c.lookup(key(1)) else {
            panic!("the first reader claims the key");
        };
        let Lookup::Busy(slot) = c.lookup(key(1)) else {
            panic!("the second is told it is being made");
        };
        // One thread: the waiter must yield it for the claim to be finished at all.
        let waiter = tokio::spawn(async move {
            slot.done().await;
            slot.get().flatten().map(|m| m.image.clone())
        });
        tokio::task::yield_now().await;
        claim.finish(made(10, 1)());
        assert_eq!(waiter.await.unwrap(), Some(image(10)));
        assert!(matches!(c.lookup(key(1)), Lookup::Hit(i) if i == image(10)));
    }

    #[test]
    fn older_is_the_newest_kept_version_below_the_key_and_not_below_since() {
        let c = Arc::new(ImageCache::new(1000));
        assert_eq!(c.older(key(5), 0, |_| true), None, "nothing kept");
        c.get_or_encode(key(2), made(10, 2));
        c.get_or_encode(key(3), made(11, 3));
        c.get_or_encode(key(1), made(12, 1));
        let older = c.older(key(5), 0, |_| true).unwrap();
        assert_eq!(
            (older.image, older.content, older.generation),
            (image(11), 3, 103)
        );
        assert_eq!(c.older(key(5), 4, |_| true), None, "3 is before `since`");
        assert_eq!(c.older(key(5), 0, |o| o.content != 3), None, "refused");
        assert_eq!(c.older(key(3), 0, |_| true), None, "3 itself is kept");
        let mut lz4 = key(5);
        lz4.encoding = Encoding::Raw;
        assert_eq!(c.older(lz4, 0, |_| true), None, "another encoding");
        let mut elsewhere = key(5);
        elsewhere.rect = Rect::ltrb(0, 0, 10, 11);
        assert_eq!(c.older(elsewhere, 0, |_| true), None, "another rectangle");
        assert_eq!(c.stats().older, 1);
    }

    #[test]
    fn older_forgets_evicted_and_unkept_versions() {
        let c = Arc::new(ImageCache::new(100));
        c.get_or_encode(key(1), made(60, 1));
        c.get_or_encode(key(2), made(60, 2));
        assert_eq!(
            c.older(key(3), 0, |_| true).unwrap().content,
            2,
            "1 was evicted"
        );
        c.get_or_encode(key(4), made(101, 4));
        assert_eq!(
            c.older(key(5), 0, |_| true),
            None,
            "4 did not fit and pushed 2 out"
        );
        c.get_or_encode(key(5), made(30, 5));
        // Read at another version than looked up: used once, not kept, not offered.
        c.get_or_encode(key(6), made(30, 7));
        assert_eq!(c.older(key(8), 0, |_| true).unwrap().content, 5);
        // While the key itself is being made or kept, it is the better answer.
        c.get_or_encode(key(8), made(30, 8));
        assert_eq!(c.older(key(8), 0, |_| true), None);
        let inner = c.lock();
        assert_eq!(inner.newest.len(), 1);
        assert!(inner.newest.len() <= inner.map.len());
    }

    #[test]
    fn many_hits_and_entries_stay_bounded() {
        let c = Arc::new(ImageCache::new(1 << 20));
        for g in 0..(MAX_ENTRIES as u64 * 2) {
            c.get_or_encode(key(g), made(1, g));
            for _ in 0..3 {
                c.get_or_encode(key(g), never);
            }
        }
        assert_eq!(c.stats().entries, MAX_ENTRIES);
        let inner = c.lock();
        assert!(inner.order.len() <= MAX_ENTRIES * 2 + 64 + 1);
    }
}
