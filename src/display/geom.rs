//! Rectangles and points in QXL's convention, and the clipping of a draw to its surface and
//! clip list.
//!
//! QXL rectangles (`QXLRect {i32 top, left, bottom, right}`, spice-protocol qxl_dev.h) are
//! half-open: `right` and `bottom` are exclusive. Every value comes from the guest, so nothing
//! here may overflow or panic on any `i32`: widths are computed in `i64`, and a rectangle is
//! turned into buffer indices only after it has been clipped to a surface.

/// A rectangle, `right` and `bottom` exclusive (QXLRect / SpiceRect field order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rect {
    pub top: i32,
    pub left: i32,
    pub bottom: i32,
    pub right: i32,
}

/// A point (QXLPoint: `i32 x, y`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

impl Rect {
    /// The rectangle from `(left, top)` included to `(right, bottom)` excluded.
    pub const fn ltrb(left: i32, top: i32, right: i32, bottom: i32) -> Self {
        Self {
            top,
            left,
            bottom,
            right,
        }
    }

    /// Width; negative for an inverted rectangle (never overflows: computed in `i64`).
    pub fn width(&self) -> i64 {
        i64::from(self.right) - i64::from(self.left)
    }

    /// Height; negative for an inverted rectangle.
    pub fn height(&self) -> i64 {
        i64::from(self.bottom) - i64::from(self.top)
    }

    /// True when the rectangle covers no pixel (empty or inverted).
    pub fn is_empty(&self) -> bool {
        self.left >= self.right || self.top >= self.bottom
    }

    /// The common part of two rectangles, `None` when it covers no pixel.
    pub fn intersect(&self, other: &Rect) -> Option<Rect> {
        let r = Rect {
            top: self.top.max(other.top),
            left: self.left.max(other.left),
            bottom: self.bottom.min(other.bottom),
            right: self.right.min(other.right),
        };
        (!r.is_empty()).then_some(r)
    }

    /// The bounding box of two non-empty rectangles.
    pub fn union(&self, other: &Rect) -> Rect {
        Rect {
            top: self.top.min(other.top),
            left: self.left.min(other.left),
            bottom: self.bottom.max(other.bottom),
            right: self.right.max(other.right),
        }
    }

    /// True when `other` lies entirely inside `self`.
    pub fn contains(&self, other: &Rect) -> bool {
        other.left >= self.left
            && other.top >= self.top
            && other.right <= self.right
            && other.bottom <= self.bottom
    }

    /// The rectangle moved by `(dx, dy)`, or `None` if a coordinate would leave `i32`.
    pub fn translate(&self, dx: i64, dy: i64) -> Option<Rect> {
        let mv = |v: i32, d: i64| i32::try_from(i64::from(v) + d).ok();
        Some(Rect {
            top: mv(self.top, dy)?,
            left: mv(self.left, dx)?,
            bottom: mv(self.bottom, dy)?,
            right: mv(self.right, dx)?,
        })
    }
}

/// The clip of a draw (QXLClip: NONE, or RECTS; the draw touches the union of the rects).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Clip {
    #[default]
    None,
    Rects(Vec<Rect>),
}

/// Clip lists longer than this are refused. QEMU's and the Linux/Windows QXL drivers' clip
/// lists are a handful of rectangles; a region is walked per row, so the bound caps the work
/// a guest can make one draw cost (rows × rects).
pub const MAX_CLIP_RECTS: usize = 1024;

/// A pixel index from a coordinate already clipped to a surface (so never negative).
pub(crate) fn idx(v: i32) -> usize {
    usize::try_from(v).unwrap_or(0)
}

/// The pixels a draw may touch: its bbox, clipped to the surface and to the clip rects.
///
/// Clip rects may overlap (a guest can send anything), so spans are merged per row: each
/// pixel is visited exactly once, which matters for non-idempotent ROPs (XOR, INVERS).
#[derive(Debug)]
pub(crate) struct Region {
    bounds: Rect,
    /// `None` = the whole of `bounds`; else non-empty rects inside `bounds`.
    rects: Option<Vec<Rect>>,
}

/// Why a draw touches nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RegionError {
    /// The bbox, surface and clip have no pixel in common: nothing to do, not an error.
    Empty,
    /// More clip rects than [`MAX_CLIP_RECTS`].
    TooManyClipRects(usize),
}

impl Region {
    /// The part of `bbox` inside `surface` and inside the clip.
    pub(crate) fn new(bbox: Rect, surface: Rect, clip: &Clip) -> Result<Region, RegionError> {
        let area = bbox.intersect(&surface).ok_or(RegionError::Empty)?;
        match clip {
            Clip::None => Ok(Region {
                bounds: area,
                rects: None,
            }),
            Clip::Rects(list) if list.len() > MAX_CLIP_RECTS => {
                Err(RegionError::TooManyClipRects(list.len()))
            }
            Clip::Rects(list) => {
                let rects: Vec<Rect> = list.iter().filter_map(|r| r.intersect(&area)).collect();
                let bounds = rects
                    .iter()
                    .copied()
                    .reduce(|a, b| a.union(&b))
                    .ok_or(RegionError::Empty)?;
                Ok(Region {
                    bounds,
                    rects: Some(rects),
                })
            }
        }
    }

    /// The bounding box of the touched pixels: the damage a draw reports.
    pub(crate) fn bounds(&self) -> Rect {
        self.bounds
    }

    /// True when the region is its whole bounding box (no clip rects cut into it).
    pub(crate) fn is_rectangular(&self) -> bool {
        match &self.rects {
            None => true,
            Some(rects) => rects.contains(&self.bounds),
        }
    }

    /// Calls `f(y, x0, x1)` for every row span, top to bottom, left to right, spans disjoint.
    pub(crate) fn for_each_span(&self, mut f: impl FnMut(usize, usize, usize)) {
        let b = self.bounds;
        let Some(rects) = self.rects.as_ref().filter(|_| !self.is_rectangular()) else {
            for y in b.top..b.bottom {
                f(idx(y), idx(b.left), idx(b.right));
            }
            return;
        };
        let mut spans: Vec<(i32, i32)> = Vec::with_capacity(rects.len());
        for y in b.top..b.bottom {
            spans.clear();
            spans.extend(
                rects
                    .iter()
                    .filter(|r| r.top <= y && y < r.bottom)
                    .map(|r| (r.left, r.right)),
            );
            spans.sort_unstable();
            let mut current: Option<(i32, i32)> = None;
            for &(l, r) in &spans {
                current = match current {
                    Some((cl, cr)) if l <= cr => Some((cl, cr.max(r))),
                    Some((cl, cr)) => {
                        f(idx(y), idx(cl), idx(cr));
                        Some((l, r))
                    }
                    None => Some((l, r)),
                };
            }
            if let Some((cl, cr)) = current {
                f(idx(y), idx(cl), idx(cr));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(region: &Region) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        region.for_each_span(|y, a, b| out.push((y, a, b)));
        out
    }

    #[test]
    fn extreme_rects_do_not_overflow() {
        let huge = Rect::ltrb(i32::MIN, i32::MIN, i32::MAX, i32::MAX);
        assert_eq!(huge.width(), i64::from(u32::MAX));
        assert!(!huge.is_empty());
        assert_eq!(
            Rect::ltrb(i32::MAX, 0, i32::MIN, 1).width(),
            -i64::from(u32::MAX)
        );
        assert!(Rect::ltrb(5, 5, 5, 9).is_empty());
        assert_eq!(huge.translate(1, 0), None);
        let surface = Rect::ltrb(0, 0, 4, 3);
        let r = Region::new(huge, surface, &Clip::None).unwrap();
        assert_eq!(r.bounds(), surface);
    }

    #[test]
    fn inverted_or_outside_bbox_is_empty() {
        let surface = Rect::ltrb(0, 0, 4, 4);
        for bbox in [
            Rect::ltrb(3, 0, 1, 4),
            Rect::ltrb(0, 3, 4, 1),
            Rect::ltrb(4, 0, 8, 4),
            Rect::ltrb(-8, -8, 0, 0),
        ] {
            assert_eq!(
                Region::new(bbox, surface, &Clip::None).unwrap_err(),
                RegionError::Empty
            );
        }
    }

    #[test]
    fn overlapping_clip_rects_merge_into_disjoint_spans() {
        let surface = Rect::ltrb(0, 0, 10, 10);
        let clip = Clip::Rects(vec![
            Rect::ltrb(1, 0, 4, 2),
            Rect::ltrb(3, 1, 6, 2),
            Rect::ltrb(8, 0, 20, 1),
            Rect::ltrb(7, 7, 3, 9), // inverted: ignored
        ]);
        let r = Region::new(Rect::ltrb(0, 0, 9, 3), surface, &clip).unwrap();
        assert_eq!(r.bounds(), Rect::ltrb(1, 0, 9, 2));
        assert_eq!(spans(&r), vec![(0, 1, 4), (0, 8, 9), (1, 1, 6)]);
    }

    #[test]
    fn clip_outside_bbox_is_empty_and_long_lists_are_refused() {
        let surface = Rect::ltrb(0, 0, 10, 10);
        let clip = Clip::Rects(vec![Rect::ltrb(5, 5, 6, 6)]);
        let err = Region::new(Rect::ltrb(0, 0, 2, 2), surface, &clip).unwrap_err();
        assert_eq!(err, RegionError::Empty);
        let clip = Clip::Rects(vec![Rect::ltrb(0, 0, 1, 1); MAX_CLIP_RECTS + 1]);
        let err = Region::new(surface, surface, &clip).unwrap_err();
        assert_eq!(err, RegionError::TooManyClipRects(MAX_CLIP_RECTS + 1));
    }
}
