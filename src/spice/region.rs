//! A client's dirty region of a surface (a short list of rectangles that collapses into its
//! bounding box) and the memory of recent reads that lets stale damage events be skipped.

use crate::display::Rect;

/// Rectangles a dirty region keeps apart before it collapses into their bounding box. A
/// desktop frame touches a handful of widgets; past this many, one image of the bounding box
/// costs less in message overhead and client work than many small ones.
pub const MAX_DIRTY_RECTS: usize = 32;

/// Parts of a surface the client has stale: the union of `rects`, which never overlap by
/// containment (a rectangle inside another is dropped).
#[derive(Debug, Default, Clone)]
pub struct DirtyRegion {
    rects: Vec<Rect>,
}

impl DirtyRegion {
    /// Whether nothing is dirty.
    pub fn is_empty(&self) -> bool {
        self.rects.is_empty()
    }

    /// The rectangles, in insertion order.
    pub fn rects(&self) -> &[Rect] {
        &self.rects
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.rects.clear();
    }

    /// Adds `rect` (ignored when empty).
    pub fn add(&mut self, rect: Rect) {
        if rect.is_empty() || self.rects.iter().any(|r| r.contains(&rect)) {
            return;
        }
        self.rects.retain(|r| !rect.contains(r));
        self.rects.push(rect);
        if self.rects.len() > MAX_DIRTY_RECTS {
            let bbox = self.rects.iter().fold(rect, |acc, r| acc.union(r));
            self.rects.clear();
            self.rects.push(bbox);
        }
    }

    /// Whether any dirty pixel lies in `rect`.
    pub fn intersects(&self, rect: &Rect) -> bool {
        self.rects.iter().any(|r| r.intersect(rect).is_some())
    }

    /// Takes the oldest rectangle.
    pub fn pop(&mut self) -> Option<Rect> {
        (!self.rects.is_empty()).then(|| self.rects.remove(0))
    }
}

/// Recent reads remembered; older ones only cost a redundant resend.
const RECENT_READS: usize = 16;

/// The last rectangles read from the canonical surface and sent, with the generation each
/// read saw. A damage event of generation `g` inside a rectangle read at generation `≥ g` is
/// already on its way to the client (display/handle.rs, "How a reader stays consistent").
#[derive(Debug, Default, Clone)]
pub struct RecentReads {
    reads: Vec<(Rect, u64)>,
    newest: u64,
}

impl RecentReads {
    /// Records a read of `rect` at `generation`.
    pub fn record(&mut self, rect: Rect, generation: u64) {
        if self.reads.len() == RECENT_READS {
            self.reads.remove(0);
        }
        self.reads.push((rect, generation));
        self.newest = self.newest.max(generation);
    }

    /// Whether damage to `rect` at `generation` is already covered by a read.
    pub fn covers(&self, rect: &Rect, generation: u64) -> bool {
        self.reads
            .iter()
            .any(|(r, g)| *g >= generation && r.contains(rect))
    }

    /// The newest generation any read saw: a COPY_BITS event at or before it may describe a
    /// source the client already holds in a newer state.
    pub fn newest(&self) -> u64 {
        self.newest
    }

    /// Forgets every read (the surface was replaced).
    pub fn clear(&mut self) {
        self.reads.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contained_rects_are_absorbed() {
        let mut d = DirtyRegion::default();
        d.add(Rect::ltrb(10, 10, 20, 20));
        d.add(Rect::ltrb(12, 12, 15, 15));
        assert_eq!(d.rects(), &[Rect::ltrb(10, 10, 20, 20)]);
        d.add(Rect::ltrb(0, 0, 30, 30));
        assert_eq!(d.rects(), &[Rect::ltrb(0, 0, 30, 30)]);
        d.add(Rect::ltrb(5, 5, 5, 9));
        assert_eq!(d.rects().len(), 1);
    }

    #[test]
    fn collapses_into_bounding_box_past_the_limit() {
        let mut d = DirtyRegion::default();
        for i in 0..=MAX_DIRTY_RECTS as i32 {
            d.add(Rect::ltrb(i * 10, 0, i * 10 + 5, 5));
        }
        assert_eq!(
            d.rects(),
            &[Rect::ltrb(0, 0, MAX_DIRTY_RECTS as i32 * 10 + 5, 5)]
        );
    }

    #[test]
    fn recent_reads_cover_older_damage_inside_only() {
        let mut r = RecentReads::default();
        r.record(Rect::ltrb(0, 0, 100, 100), 7);
        assert!(r.covers(&Rect::ltrb(10, 10, 20, 20), 7));
        assert!(!r.covers(&Rect::ltrb(10, 10, 20, 20), 8));
        assert!(!r.covers(&Rect::ltrb(90, 90, 120, 120), 3));
        assert_eq!(r.newest(), 7);
    }
}
