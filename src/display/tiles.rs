//! Per-tile versions of a surface: the generation of the last change to each 64 × 64 tile, so
//! that a reader can name what a rectangle's pixels *are* (the newest version among its
//! tiles) without reading them, and two reads of a rectangle with the same version are known
//! to hold the same bytes, however much changed elsewhere on the surface in between.
//!
//! Why this is exact: generations only grow, and every change marks each tile it touches with
//! its own (new, larger) generation. If any pixel of a rectangle changed between two reads,
//! some tile of the rectangle got a generation larger than every version seen by the first
//! read. Tiles are coarser than pixels, so a change next to a rectangle may change its version
//! without changing its pixels: a cache keyed by it misses then, it never answers wrongly.

use super::geom::Rect;

/// Side of a square tile, in pixels: 64 × 64 keeps the table small (510 entries for 1920 ×
/// 1080) while an update of a few text lines does not version the whole row of windows.
pub const TILE: i32 = 64;

/// The versions of one surface's tiles.
#[derive(Debug, Clone)]
pub(crate) struct TileVersions {
    /// Tiles per row.
    columns: usize,
    rows: usize,
    /// Row-major, `columns × rows`.
    versions: Vec<u64>,
}

impl TileVersions {
    /// A surface of `width × height` pixels, every tile at `generation` (its creation).
    pub(crate) fn new(width: u32, height: u32, generation: u64) -> Self {
        let tiles = |side: u32| usize::try_from(side.div_ceil(TILE.unsigned_abs())).unwrap_or(0);
        let (columns, rows) = (tiles(width), tiles(height));
        Self {
            columns,
            rows,
            versions: vec![generation; columns.saturating_mul(rows)],
        }
    }

    /// The tile columns and rows `rect` touches, clamped to the surface; empty ranges for a
    /// rectangle outside it.
    fn span(&self, rect: &Rect) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let first = |v: i32, n: usize| usize::try_from(v.max(0) / TILE).unwrap_or(0).min(n);
        // Exclusive end: the tile holding the last pixel, plus one.
        let end = |v: i32, n: usize| {
            usize::try_from((i64::from(v) + i64::from(TILE) - 1).max(0) / i64::from(TILE))
                .unwrap_or(n)
                .min(n)
        };
        (
            first(rect.left, self.columns)..end(rect.right, self.columns),
            first(rect.top, self.rows)..end(rect.bottom, self.rows),
        )
    }

    /// Records that the pixels of `rect` changed at `generation`.
    pub(crate) fn mark(&mut self, rect: &Rect, generation: u64) {
        if rect.is_empty() {
            return;
        }
        let (xs, ys) = self.span(rect);
        for y in ys {
            let row = y.saturating_mul(self.columns);
            if let Some(tiles) = self
                .versions
                .get_mut(row.saturating_add(xs.start)..row.saturating_add(xs.end))
            {
                tiles.fill(generation);
            }
        }
    }

    /// The version of the pixels of `rect`: the newest generation among its tiles (0 for a
    /// rectangle outside the surface).
    pub(crate) fn version(&self, rect: &Rect) -> u64 {
        if rect.is_empty() {
            return 0;
        }
        let (xs, ys) = self.span(rect);
        ys.filter_map(|y| {
            let row = y.saturating_mul(self.columns);
            self.versions
                .get(row.saturating_add(xs.start)..row.saturating_add(xs.end))
                .and_then(|tiles| tiles.iter().max().copied())
        })
        .max()
        .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_versions_only_the_rectangles_it_touches() {
        let mut t = TileVersions::new(1920, 1080, 1);
        let text = Rect::ltrb(100, 100, 300, 130);
        let far = Rect::ltrb(1000, 600, 1200, 700);
        t.mark(&far, 5);
        assert_eq!(t.version(&text), 1, "a change elsewhere leaves the version");
        assert_eq!(t.version(&far), 5);
        // Same tile, other pixels: versioned too (coarse, never wrong).
        t.mark(&Rect::ltrb(130, 120, 131, 121), 7);
        assert_eq!(t.version(&text), 7);
        assert_eq!(t.version(&Rect::ltrb(0, 0, 1920, 1080)), 7);
    }

    #[test]
    fn edges_and_outside_rectangles_are_safe() {
        let mut t = TileVersions::new(100, 70, 2);
        assert_eq!(t.versions.len(), 2 * 2);
        t.mark(&Rect::ltrb(99, 69, 100, 70), 3);
        assert_eq!(t.version(&Rect::ltrb(64, 64, 100, 70)), 3);
        assert_eq!(t.version(&Rect::ltrb(0, 0, 64, 64)), 2);
        // Tile boundaries are exclusive: a rect ending at 64 touches only the first tile.
        t.mark(&Rect::ltrb(0, 0, 64, 64), 4);
        assert_eq!(t.version(&Rect::ltrb(64, 0, 100, 64)), 2);
        t.mark(&Rect::ltrb(i32::MIN, i32::MIN, i32::MAX, i32::MAX), 9);
        assert_eq!(t.version(&Rect::ltrb(10, 10, 20, 20)), 9);
        assert_eq!(t.version(&Rect::ltrb(500, 500, 600, 600)), 0);
        assert_eq!(t.version(&Rect::ltrb(5, 5, 5, 9)), 0);
    }
}
