//! What a draw really changes, worked out before it lands on the canonical surface: the rows
//! and columns it leaves as they were are trimmed off its damage, a draw that changes nothing
//! has none, and rows that are old rows moved up or down (within the same columns) become one
//! COPY_BITS (a scroll) instead of new pixels, as VNC servers' comparing update trackers and
//! copy-rect detection do.
//!
//! Only draws whose every written byte is known without rendering are examined: an unscaled,
//! unclipped plain copy from 32-bit pixels whose source holds all of them (QEMU's, virtio-gpu's
//! and spice-ref-server's updates), and a solid plain fill. Anything else (scaled, clipped or
//! ROP copies, copies from a surface, the guest's own COPY_BITS) is drawn and damaged whole,
//! as before.
//!
//! Exactness: a row joins a copy only after its bytes were compared with the bytes the draw
//! writes there; sample rows merely propose the shifts worth comparing. So the changes
//! returned, applied in order to the surface as it is, give exactly the surface the draw
//! leaves.
//!
//! Cost when nothing can be saved: content that changes everywhere (video) differs in the
//! first pixels compared, so trimming stops after one row at each end, and the scroll search
//! gives up after [`FIRST_SAMPLES`] sample rows matched no old row, each comparison stopping
//! at its first [`HEAD`] bytes. Worst case, content made to defeat every early stop, one draw
//! costs about `SAMPLE_AT.len() + MAX_CANDIDATES + 3` comparisons of its rectangle: bounded
//! by what the guest sends, as drawing it is.

use super::geom::{idx, Clip, Point, Rect, Region};
use super::pixels::{Combine, SourceView, BYTES_PER_PIXEL};
use super::surface::Surface;

/// Rows a changed band needs before a scroll is looked for. A scrolled view is a document,
/// terminal or list of some height; smaller redraws are widgets whose pixels cost little to
/// send, and skipping them keeps the search off the many small draws of a busy desktop.
const MIN_SCROLL_ROWS: usize = 64;

/// Pixels of width a changed band needs before a scroll is looked for: about 32 characters of
/// an 8-pixel font, narrower than any terminal (80 × 8 = 640) or document view. Narrower bands
/// are cheap to send as pixels.
const MIN_SCROLL_WIDTH: usize = 256;

/// Rows a verified shifted run needs to become a COPY_BITS. Each copy splits the rest of the
/// damage in up to two images, each with its own header and compression start; at 32 rows of
/// at least [`MIN_SCROLL_WIDTH`] pixels (32 KiB raw) the saving clearly pays for that.
const MIN_COPY_ROWS: usize = 32;

/// Sample rows whose old positions propose the shifts, at these sixteenths of the changed
/// band: eight survive a document whose lines are half blank (a blank row proposes nothing).
/// The middle ones come first: a shift of up to half the band in either direction reaches
/// an old row from one of them, so the early stop below cannot miss a large scroll.
const SAMPLE_AT: [usize; 8] = [7, 9, 3, 13, 5, 11, 1, 15];
const SAMPLE_DIVISIONS: usize = 16;

/// Rows a sample moves down past uniform rows (blank lines, the gaps between text lines),
/// which match too many old rows to tell shifts apart. More than a blank line and a gap of a
/// 16-pixel font, so that samples whose spacing is a multiple of the line pitch cannot all
/// land on blank rows.
const SAMPLE_WALK: usize = 24;

/// If the first this many sample rows equal no old row at all, nothing moved:
/// the search stops there (video costs 2 × surface height short comparisons).
const FIRST_SAMPLES: usize = 2;

/// A sample row equal to more old rows than this (a blank line, a solid background) says
/// nothing about the shift and casts no vote.
const MAX_SAMPLE_MATCHES: usize = 4;

/// Proposed shifts verified at most, most voted first.
const MAX_CANDIDATES: usize = 3;

/// Bytes compared before the rest of a row: four pixels, where rows of moving content differ.
const HEAD: usize = 4 * BYTES_PER_PIXEL;

/// Bytes compared at a time after the head: long enough for the comparison to run at memory
/// speed, short enough that a row differing early stops early.
const BLOCK: usize = 64 * BYTES_PER_PIXEL;

/// The alpha bits a 32BIT (xRGB) source gets when written (see `SourceView::direct32`).
const OPAQUE: u32 = 0xff00_0000;

/// A change the draw makes, in the order a client replays them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Pixels of the rectangle changed.
    Damage(Rect),
    /// `dest` now holds what was at `src` (its top-left corner): exact, unclipped and inside
    /// the surface (see `DisplayEvent::CopyBits`).
    CopyBits { src: Point, dest: Rect },
}

/// The bytes a draw writes, row by row, over a rectangle it writes whole.
pub(crate) struct Incoming<'a> {
    /// Inside the surface; every pixel of it is written.
    rect: Rect,
    rows: Rows<'a>,
    /// The alpha byte is written as 0xff whatever the source holds (32BIT sources).
    opaque: bool,
}

enum Rows<'a> {
    /// Row `i` of the rectangle is bytes `start..start + len` of source row `first + i`.
    Copy {
        src: SourceView<'a>,
        first: u32,
        start: usize,
        len: usize,
    },
    /// Every row is this.
    Solid(Vec<u8>),
}

impl<'a> Incoming<'a> {
    /// A plain copy of `src_area` of `src` onto `bbox`, if its result is known without
    /// rendering: rop PUT, no scaling, no clip cutting into it, 32-bit pixels, and every
    /// pixel's source inside `src` and its data (else the copy leaves some pixels alone).
    pub(crate) fn copy(
        surface: &Surface,
        bbox: Rect,
        clip: &Clip,
        src: &SourceView<'a>,
        src_area: Rect,
        rop: u16,
    ) -> Option<Self> {
        if !Combine::for_copy(rop).is_put()
            || bbox.width() != src_area.width()
            || bbox.height() != src_area.height()
        {
            return None;
        }
        let opaque = src.direct32()?;
        let rect = whole_region(surface, bbox, clip)?;
        let first_col = i64::from(src_area.left) + i64::from(rect.left) - i64::from(bbox.left);
        let first_row = i64::from(src_area.top) + i64::from(rect.top) - i64::from(bbox.top);
        if first_col < 0
            || first_row < 0
            || first_col + rect.width() > i64::from(src.width())
            || first_row + rect.height() > i64::from(src.height())
        {
            return None;
        }
        let start = usize::try_from(first_col)
            .ok()?
            .checked_mul(BYTES_PER_PIXEL)?;
        let len = usize::try_from(rect.width())
            .ok()?
            .checked_mul(BYTES_PER_PIXEL)?;
        let first = u32::try_from(first_row).ok()?;
        let rows = u32::try_from(rect.height()).ok()?;
        // Short data is legal (the copy skips what is missing); then the result is not known
        // row by row and the draw is left alone.
        let end = start.checked_add(len)?;
        if (first..first.checked_add(rows)?).any(|y| src.row(y).is_none_or(|r| r.len() < end)) {
            return None;
        }
        Some(Self {
            rect,
            rows: Rows::Copy {
                src: *src,
                first,
                start,
                len,
            },
            opaque,
        })
    }

    /// A solid fill with rop PUT over a region that is its whole bounding box.
    pub(crate) fn fill(
        surface: &Surface,
        bbox: Rect,
        clip: &Clip,
        color: u32,
        rop: u16,
    ) -> Option<Self> {
        if !Combine::for_fill(rop).is_put() {
            return None;
        }
        let rect = whole_region(surface, bbox, clip)?;
        let width = usize::try_from(rect.width()).ok()?;
        Some(Self {
            rect,
            rows: Rows::Solid(color.to_le_bytes().repeat(width)),
            opaque: false,
        })
    }

    /// The bytes written on surface row `y` (inside the rectangle), columns `c0..c1`.
    fn span(&self, y: usize, c0: usize, c1: usize) -> &[u8] {
        let left = idx(self.rect.left);
        let bytes = (c0.saturating_sub(left) * BYTES_PER_PIXEL)
            ..(c1.saturating_sub(left) * BYTES_PER_PIXEL);
        let row = match &self.rows {
            Rows::Copy {
                src,
                first,
                start,
                len,
            } => {
                let i = u32::try_from(y.saturating_sub(idx(self.rect.top))).unwrap_or(u32::MAX);
                first
                    .checked_add(i)
                    .and_then(|sy| src.row(sy))
                    .and_then(|r| r.get(*start..start.saturating_add(*len)))
            }
            Rows::Solid(row) => Some(row.as_slice()),
        };
        row.and_then(|r| r.get(bytes)).unwrap_or_default()
    }
}

/// The rectangle a draw touches, if it touches all of it.
fn whole_region(surface: &Surface, bbox: Rect, clip: &Clip) -> Option<Rect> {
    let region = Region::new(bbox, surface.bounds(), clip).ok()?;
    region.is_rectangular().then(|| region.bounds())
}

/// What drawing `incoming` onto `surface` changes: nothing (empty), one damaged rectangle, or
/// a COPY_BITS followed by the damage it leaves.
pub(crate) fn changes(surface: &Surface, incoming: &Incoming<'_>) -> Vec<Change> {
    let r = incoming.rect;
    let area = Area {
        surface,
        incoming,
        rows: idx_u32(surface.height()),
    };
    let (left, right) = (idx(r.left), idx(r.right));
    let changed = |y: usize| !area.same(y, y, left, right);
    let Some(top) = (idx(r.top)..idx(r.bottom)).find(|&y| changed(y)) else {
        return Vec::new();
    };
    let bottom = (top..idx(r.bottom))
        .rev()
        .find(|&y| changed(y))
        .unwrap_or(top)
        + 1;
    let scrollable = |c0: usize, c1: usize| {
        matches!(incoming.rows, Rows::Copy { .. })
            && bottom - top >= MIN_SCROLL_ROWS
            && c1 - c0 >= MIN_SCROLL_WIDTH
    };
    // A scroll is looked for across the draw's whole width first: the rows it moves are
    // verified whole, so only the few rows left as damage need their columns trimmed, not
    // every row's unchanged margins (a quarter of the work on a scrolled editor).
    let whole = Band {
        top,
        bottom,
        c0: left,
        c1: right,
    };
    if scrollable(left, right) {
        if let Some(run) = area.find_scroll(&whole) {
            return area.scroll_changes(&whole, &run);
        }
    }
    let (c0, c1) = area.changed_columns(top, bottom, left, right);
    let band = Band {
        top,
        bottom,
        c0,
        c1,
    };
    // Margins that stay while the rest moves (a sidebar beside a document) hide the scroll
    // from whole rows: look again within the changed columns.
    if (c0, c1) != (left, right) && scrollable(c0, c1) {
        if let Some(run) = area.find_scroll(&band) {
            return area.scroll_changes(&band, &run);
        }
    }
    vec![Change::Damage(band.rect(top, bottom))]
}

/// The rows and columns that changed.
struct Band {
    top: usize,
    bottom: usize,
    c0: usize,
    c1: usize,
}

impl Band {
    fn rect(&self, top: usize, bottom: usize) -> Rect {
        Rect::ltrb(coord(self.c0), coord(top), coord(self.c1), coord(bottom))
    }
}

/// Rows `top..bottom` of the band are old rows `top + dy..bottom + dy`.
struct Run {
    dy: isize,
    top: usize,
    bottom: usize,
}

fn idx_u32(v: u32) -> usize {
    usize::try_from(v).unwrap_or(0)
}

fn coord(v: usize) -> i32 {
    // Surface coordinates: at most `MAX_SURFACE_SIDE`.
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// The draw's rectangle on the surface before it lands.
struct Area<'s, 'a> {
    surface: &'s Surface,
    incoming: &'s Incoming<'a>,
    /// The surface's rows: where a moved row may come from. Not only the rectangle's: a
    /// screen split into bands (`qxl::commands::BAND_BYTES`) scrolls rows from one band into
    /// the next, and the surface is still as it was before this draw.
    rows: usize,
}

impl Area<'_, '_> {
    fn old(&self, y: usize, c0: usize, c1: usize) -> &[u8] {
        self.surface
            .row(y)
            .get(c0 * BYTES_PER_PIXEL..c1 * BYTES_PER_PIXEL)
            .unwrap_or_default()
    }

    /// Whether new row `y` equals old row `old_y` over columns `c0..c1`.
    fn same(&self, y: usize, old_y: usize, c0: usize, c1: usize) -> bool {
        same(
            self.incoming.span(y, c0, c1),
            self.old(old_y, c0, c1),
            self.incoming.opaque,
        )
    }

    /// The columns of rows `top..bottom` that change. Each row is compared only outside the
    /// columns already known to change, so the cost is the unchanged margins, not the band.
    fn changed_columns(
        &self,
        top: usize,
        bottom: usize,
        left: usize,
        right: usize,
    ) -> (usize, usize) {
        let opaque = self.incoming.opaque;
        let (mut c0, mut c1) = (right, left);
        for y in top..bottom {
            if c0 == left && c1 == right {
                break;
            }
            if let Some(p) = first_diff(
                self.incoming.span(y, left, c0),
                self.old(y, left, c0),
                opaque,
            ) {
                c0 = left + p;
            }
            let from = c1.max(c0);
            if let Some(p) = last_diff(
                self.incoming.span(y, from, right),
                self.old(y, from, right),
                opaque,
            ) {
                c1 = from + p + 1;
            }
        }
        // `top` changed, so both moved; the guard keeps the rectangle well formed regardless.
        (c0.min(c1), c1.max(c0))
    }

    /// The longest run of band rows that are old rows shifted by one `dy`.
    fn find_scroll(&self, band: &Band) -> Option<Run> {
        let height = band.bottom - band.top;
        let mut votes: Vec<(isize, usize)> = Vec::new();
        let mut matched_any = false;
        for (k, &at) in SAMPLE_AT.iter().enumerate() {
            let at = band.top + at * height / SAMPLE_DIVISIONS;
            let s = (at..band.bottom.min(at + SAMPLE_WALK))
                .find(|&y| !uniform(self.incoming.span(y, band.c0, band.c1)))
                .unwrap_or(at);
            let row = self.incoming.span(s, band.c0, band.c1);
            let probe = probe_at(row);
            let mut found: Vec<isize> = Vec::new();
            for r in (0..self.rows).filter(|&r| r != s) {
                let old = self.old(r, band.c0, band.c1);
                if block_same(near(row, probe), near(old, probe), self.incoming.opaque)
                    && same(row, old, self.incoming.opaque)
                {
                    found.push(offset(s, r));
                    if found.len() > MAX_SAMPLE_MATCHES {
                        break;
                    }
                }
            }
            matched_any |= !found.is_empty();
            if found.len() <= MAX_SAMPLE_MATCHES {
                for dy in found {
                    match votes.iter_mut().find(|(d, _)| *d == dy) {
                        Some((_, n)) => *n += 1,
                        None => votes.push((dy, 1)),
                    }
                }
            }
            if k + 1 == FIRST_SAMPLES && !matched_any {
                return None;
            }
        }
        votes.sort_by_key(|&(dy, n)| (std::cmp::Reverse(n), dy.unsigned_abs()));
        votes
            .iter()
            .take(MAX_CANDIDATES)
            .filter_map(|&(dy, _)| self.longest_run(band, dy))
            .max_by_key(|run| {
                (
                    run.bottom - run.top,
                    std::cmp::Reverse(run.dy.unsigned_abs()),
                )
            })
            .filter(|run| run.bottom - run.top >= MIN_COPY_ROWS)
    }

    /// The longest run of band rows `y` whose new bytes equal old row `y + dy`.
    fn longest_run(&self, band: &Band, dy: isize) -> Option<Run> {
        let mut best: Option<Run> = None;
        let mut start = None;
        for y in band.top..=band.bottom {
            let matches = y < band.bottom
                && y.checked_add_signed(dy)
                    .filter(|&r| r < self.rows)
                    .is_some_and(|r| self.same(y, r, band.c0, band.c1));
            match (matches, start) {
                (true, None) => start = Some(y),
                (false, Some(s)) => {
                    if best.as_ref().is_none_or(|b| y - s > b.bottom - b.top) {
                        best = Some(Run {
                            dy,
                            top: s,
                            bottom: y,
                        });
                    }
                    start = None;
                }
                _ => {}
            }
        }
        best
    }

    /// The copy of `run`, then the band rows above and below it that change.
    fn scroll_changes(&self, band: &Band, run: &Run) -> Vec<Change> {
        let src_y = run.top.checked_add_signed(run.dy).unwrap_or(run.top);
        let mut out = vec![Change::CopyBits {
            src: Point {
                x: coord(band.c0),
                y: coord(src_y),
            },
            dest: band.rect(run.top, run.bottom),
        }];
        // Rows outside the copy keep their old pixels until the damage is read, so those equal
        // to the new ones need no damage; `band.top` and `band.bottom - 1` are known to change.
        let unchanged = |y: usize| self.same(y, y, band.c0, band.c1);
        let mut above = run.top;
        while above > band.top && unchanged(above - 1) {
            above -= 1;
        }
        if above > band.top {
            out.push(self.trimmed_damage(band, band.top, above));
        }
        let mut below = run.bottom;
        while below < band.bottom && unchanged(below) {
            below += 1;
        }
        if below < band.bottom {
            out.push(self.trimmed_damage(band, below, band.bottom));
        }
        out
    }

    /// Damage for band rows `top..bottom`, the first of them changed, trimmed to the columns
    /// that change in them.
    fn trimmed_damage(&self, band: &Band, top: usize, bottom: usize) -> Change {
        let (c0, c1) = self.changed_columns(top, bottom, band.c0, band.c1);
        Change::Damage(Rect::ltrb(coord(c0), coord(top), coord(c1), coord(bottom)))
    }
}

/// `to - from` as a signed row offset (rows are at most `MAX_SURFACE_SIDE`).
fn offset(from: usize, to: usize) -> isize {
    let d = |a: usize, b: usize| isize::try_from(a - b).unwrap_or(isize::MAX);
    if to >= from {
        d(to, from)
    } else {
        -d(from, to)
    }
}

/// Where to compare a sample row with old rows first: at its first pixel unlike its first
/// one (where a text line's margin ends), so that rows sharing only a margin differ within
/// [`HEAD`] bytes. A byte offset, at most `row.len() - HEAD`.
fn probe_at(row: &[u8]) -> usize {
    let first = row.get(..BYTES_PER_PIXEL).unwrap_or_default();
    let at = row
        .chunks_exact(BYTES_PER_PIXEL)
        .position(|px| px != first)
        .unwrap_or(0)
        * BYTES_PER_PIXEL;
    at.min(row.len().saturating_sub(HEAD))
}

/// The [`HEAD`] bytes of `row` from `probe` (none past its end).
fn near(row: &[u8], probe: usize) -> &[u8] {
    row.get(probe..probe.saturating_add(HEAD))
        .unwrap_or_default()
}

/// Whether every pixel of `row` is the same: such a row matches every blank old row.
fn uniform(row: &[u8]) -> bool {
    let n = row.len().saturating_sub(BYTES_PER_PIXEL);
    row.get(BYTES_PER_PIXEL..) == row.get(..n)
}

/// Whether the pixel bytes `new`, written by the draw, leave `old` as it is.
fn same(new: &[u8], old: &[u8], opaque: bool) -> bool {
    if new.len() != old.len() || new.len() % BYTES_PER_PIXEL != 0 {
        return false;
    }
    let head = new.len().min(HEAD);
    let ((nh, nt), (oh, ot)) = (new.split_at(head), old.split_at(head));
    block_same(nh, oh, opaque)
        && nt
            .chunks(BLOCK)
            .zip(ot.chunks(BLOCK))
            .all(|(n, o)| block_same(n, o, opaque))
}

/// [`same`] for a block, compared whole: no early exit inside, so it runs as vector code.
/// Opaque pixels are compared two at a time in 64-bit words loaded whole (assembling each
/// pixel from its bytes kept the loop scalar: 36 % of the worker on the fullscreen workload).
fn block_same(new: &[u8], old: &[u8], opaque: bool) -> bool {
    if !opaque {
        return new == old;
    }
    const PAIR: usize = 2 * BYTES_PER_PIXEL;
    const OPAQUE_PAIR: u64 = (OPAQUE as u64) << 32 | OPAQUE as u64;
    let (new_pairs, old_pairs) = (new.chunks_exact(PAIR), old.chunks_exact(PAIR));
    let rest = new_pairs
        .remainder()
        .chunks_exact(BYTES_PER_PIXEL)
        .zip(old_pairs.remainder().chunks_exact(BYTES_PER_PIXEL))
        .fold(0, |acc, (n, o)| acc | ((le32(n) | OPAQUE) ^ le32(o)));
    let diff = new_pairs
        .zip(old_pairs)
        .fold(0, |acc, (n, o)| acc | ((le64(n) | OPAQUE_PAIR) ^ le64(o)));
    diff == 0 && rest == 0
}

fn le32(px: &[u8]) -> u32 {
    u32::from_le_bytes(px.try_into().unwrap_or_default())
}

fn le64(pair: &[u8]) -> u64 {
    u64::from_le_bytes(pair.try_into().unwrap_or_default())
}

fn pixel_same(new: &[u8], old: &[u8], opaque: bool) -> bool {
    if opaque {
        le32(new) | OPAQUE == le32(old)
    } else {
        new == old
    }
}

/// The first pixel where `new` would change `old` (the first of all if their lengths differ).
fn first_diff(new: &[u8], old: &[u8], opaque: bool) -> Option<usize> {
    if new.len() != old.len() {
        return (new.len().max(old.len()) >= BYTES_PER_PIXEL).then_some(0);
    }
    let block = new
        .chunks(BLOCK)
        .zip(old.chunks(BLOCK))
        .position(|(n, o)| !block_same(n, o, opaque))?;
    let (n, o) = (new.chunks(BLOCK).nth(block)?, old.chunks(BLOCK).nth(block)?);
    let px = n
        .chunks(BYTES_PER_PIXEL)
        .zip(o.chunks(BYTES_PER_PIXEL))
        .position(|(a, b)| !pixel_same(a, b, opaque))?;
    Some(block * (BLOCK / BYTES_PER_PIXEL) + px)
}

/// The last pixel where `new` would change `old` (the last of all if their lengths differ).
fn last_diff(new: &[u8], old: &[u8], opaque: bool) -> Option<usize> {
    let pixels = new.len().max(old.len()) / BYTES_PER_PIXEL;
    if new.len() != old.len() {
        return pixels.checked_sub(1);
    }
    let block = new
        .rchunks(BLOCK)
        .zip(old.rchunks(BLOCK))
        .position(|(n, o)| !block_same(n, o, opaque))?;
    let (n, o) = (
        new.rchunks(BLOCK).nth(block)?,
        old.rchunks(BLOCK).nth(block)?,
    );
    let from_end = n
        .rchunks(BYTES_PER_PIXEL)
        .zip(o.rchunks(BYTES_PER_PIXEL))
        .position(|(a, b)| !pixel_same(a, b, opaque))?;
    pixels.checked_sub(block * (BLOCK / BYTES_PER_PIXEL) + from_end + 1)
}

#[cfg(test)]
mod tests;
