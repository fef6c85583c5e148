//! Each draw is worked out, drawn, and its changes replayed on a mirror (a client's copy, with
//! its own COPY_BITS): the mirror must equal the canonical surface byte for byte.

use super::*;
use crate::display::source::{Bitmap, BitmapFormat, Rop};
use crate::display::SurfaceFormat;

const W: u32 = 640;
const H: u32 = 400;
const WHITE: u32 = 0xffff_ffff;

/// A tiny deterministic generator, so failures replay.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u32) -> u32 {
        self.next() % n.max(1)
    }
}

fn mix(a: u32, b: u32, c: u32) -> u32 {
    let mut h =
        a.wrapping_mul(0x9E37_79B1) ^ b.wrapping_mul(0x85EB_CA77) ^ c.wrapping_mul(0xC2B2_AE3D);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^ (h >> 12)
}

/// Row `y` of document `doc`, pixel `x`: text-like lines, 16 rows each, the last 4 blank
/// (white), so blank rows repeat and written rows are distinct.
fn doc(doc: u32, y: i64, x: u32) -> u32 {
    let y = u32::try_from(y.rem_euclid(1 << 20)).unwrap();
    if y % 16 >= 12 || mix(doc, y / 16, 0) % 5 == 0 {
        WHITE
    } else {
        0xff00_0000 | (mix(doc, y, x / 3) & 0x00ff_ffff)
    }
}

fn surface(mut f: impl FnMut(u32, u32) -> u32) -> Surface {
    let mut px = Vec::with_capacity((W * H * 4) as usize);
    for y in 0..H {
        for x in 0..W {
            px.extend_from_slice(&f(x, y).to_le_bytes());
        }
    }
    Surface::new(W, H, SurfaceFormat::XRGB32, Some(&px)).unwrap()
}

fn bitmap(w: u32, h: u32, format: BitmapFormat, mut f: impl FnMut(u32, u32) -> u32) -> Bitmap {
    let mut data = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            data.extend_from_slice(&f(x, y).to_le_bytes());
        }
    }
    Bitmap {
        format: format.0,
        width: w,
        height: h,
        stride: (w * 4) as usize,
        top_down: true,
        data,
        palette: None,
    }
}

/// A client's copy of the surface, replaying changes as spice-gtk does: COPY_BITS through a
/// temporary copy, damage read from the canonical surface.
struct Mirror(Vec<u8>);

impl Mirror {
    fn of(s: &Surface) -> Self {
        Self(s.pixels().to_vec())
    }

    fn apply(&mut self, change: &Change, canonical: &Surface) {
        let stride = canonical.stride();
        let bounds = canonical.bounds();
        match *change {
            Change::Damage(r) => {
                assert!(!r.is_empty() && bounds.contains(&r), "damage {r:?}");
                for y in idx(r.top)..idx(r.bottom) {
                    let span = y * stride + idx(r.left) * 4..y * stride + idx(r.right) * 4;
                    self.0[span.clone()].copy_from_slice(&canonical.pixels()[span]);
                }
            }
            Change::CopyBits { src, dest } => {
                let from = dest
                    .translate(i64::from(src.x - dest.left), i64::from(src.y - dest.top))
                    .unwrap();
                assert!(!dest.is_empty() && bounds.contains(&dest) && bounds.contains(&from));
                let old = self.0.clone();
                for (dy, sy) in (idx(dest.top)..idx(dest.bottom)).zip(idx(from.top)..) {
                    let n = idx(dest.right - dest.left) * 4;
                    let (d, s) = (
                        dy * stride + idx(dest.left) * 4,
                        sy * stride + idx(from.left) * 4,
                    );
                    self.0[d..d + n].copy_from_slice(&old[s..s + n]);
                }
            }
        }
    }
}

/// Works out the copy of `bm` (all of it) onto `bbox`, draws it, replays the changes on a
/// mirror of the old surface and checks the mirror equals the result.
fn copy(s: &mut Surface, bbox: Rect, bm: &Bitmap) -> Vec<Change> {
    let view = SourceView::from_bitmap(bm).unwrap();
    let area = Rect::ltrb(0, 0, bm.width as i32, bm.height as i32);
    let Some(incoming) = Incoming::copy(s, bbox, &Clip::None, &view, area, Rop::OP_PUT) else {
        assert_eq!(
            s.bounds().intersect(&bbox),
            None,
            "a plain copy is worked out"
        );
        return Vec::new();
    };
    let changes = changes(s, &incoming);
    let mut mirror = Mirror::of(s);
    s.copy(bbox, &Clip::None, &view, area, Rop::OP_PUT).unwrap();
    for c in &changes {
        mirror.apply(c, s);
    }
    assert!(mirror.0 == s.pixels(), "mirror differs after {changes:?}");
    changes
}

fn copy_bits(changes: &[Change]) -> Vec<(Point, Rect)> {
    changes
        .iter()
        .filter_map(|c| match *c {
            Change::CopyBits { src, dest } => {
                assert_eq!(src.x, dest.left, "only vertical moves are looked for");
                Some((src, dest))
            }
            Change::Damage(_) => None,
        })
        .collect()
}

/// The one copy: its shift (source row − destination row) and destination.
fn the_copy(changes: &[Change]) -> (i32, Rect) {
    match copy_bits(changes)[..] {
        [(src, dest)] => (src.y - dest.top, dest),
        _ => panic!("one copy expected: {changes:?}"),
    }
}

/// The screen showing document 1 from row `at`.
fn page(at: i64) -> Surface {
    surface(|x, y| doc(1, at + i64::from(y), x))
}

/// Rows `at..` of document 1, `w × h`, columns from `x0`.
fn page_bitmap(at: i64, x0: u32, w: u32, h: u32) -> Bitmap {
    bitmap(w, h, BitmapFormat::THIRTY_TWO_BIT, |x, y| {
        doc(1, at + i64::from(y), x0 + x)
    })
}

const fn full() -> Rect {
    Rect::ltrb(0, 0, W as i32, H as i32)
}

#[test]
fn scroll_up_and_down_become_one_copy_and_the_new_rows() {
    let h = H as i32;
    for dy in [1i32, 8, 16, 37, 100, 200] {
        // Up: the document moves up by dy, new rows appear at the bottom.
        let mut s = page(100);
        let got = copy(&mut s, full(), &page_bitmap(100 + i64::from(dy), 0, W, H));
        let (shift, dest) = the_copy(&got);
        assert_eq!(
            (shift, dest.bottom, dest.left, dest.right),
            (dy, h - dy, 0, W as i32),
            "up {dy}"
        );
        assert_eq!(
            got[0],
            Change::CopyBits {
                src: Point {
                    x: 0,
                    y: dest.top + dy
                },
                dest
            }
        );
        assert!(
            dest.top < 16,
            "up {dy}: only unchanged rows above the copy: {dest:?}"
        );
        assert!(
            got[1..]
                .iter()
                .all(|c| matches!(c, Change::Damage(r) if r.top >= h - dy || r.bottom <= dest.top)),
            "up {dy}: {got:?}"
        );

        // Down: new rows at the top.
        let mut s = page(100);
        let got = copy(&mut s, full(), &page_bitmap(100 - i64::from(dy), 0, W, H));
        let (shift, dest) = the_copy(&got);
        assert_eq!((shift, dest.top), (-dy, dy), "down {dy}");
        assert!(dest.bottom > h - 16, "down {dy}: {dest:?}");
        assert!(
            got[1..]
                .iter()
                .all(|c| matches!(c, Change::Damage(r) if r.bottom <= dy || r.top >= dest.bottom)),
            "down {dy}: {got:?}"
        );
    }
    // The largest shift that leaves a copy worth making is exact too, found or not.
    let mut s = page(0);
    copy(
        &mut s,
        full(),
        &page_bitmap(i64::from(H) - MIN_COPY_ROWS as i64, 0, W, H),
    );
}

#[test]
fn a_scroll_under_a_fixed_title_bar_copies_only_the_document() {
    // spice-ref-server's `fullscreen`: 24 rows of title, the document below moving up 8.
    let title = |x: u32, y: u32, at: i64| {
        if y < 24 {
            0xff30_60a0 + (x >> 4)
        } else {
            doc(2, at + i64::from(y), x)
        }
    };
    let mut s = surface(|x, y| title(x, y, 0));
    let bm = bitmap(W, H, BitmapFormat::THIRTY_TWO_BIT, |x, y| title(x, y, 8));
    let got = copy(&mut s, full(), &bm);
    let (shift, dest) = the_copy(&got);
    assert_eq!((shift, dest.bottom), (8, H as i32 - 8));
    assert!((24..40).contains(&dest.top), "{dest:?}");
    assert!(
        matches!(got[..], [_, Change::Damage(r)] if r.top >= H as i32 - 8),
        "{got:?}"
    );
}

#[test]
fn a_partial_width_scroll_copies_only_its_columns() {
    // A 300-pixel-wide view at x = 100..400 scrolls; the rest of the screen is unchanged.
    let inside = |x: u32| (100..400).contains(&x);
    let at = |x: u32, y: u32, scroll: i64| {
        if inside(x) {
            doc(3, i64::from(y) + scroll, x)
        } else {
            doc(9, i64::from(y), x)
        }
    };
    let mut s = surface(|x, y| at(x, y, 0));
    // Drawn as the whole screen: unchanged columns are trimmed before looking for the scroll.
    let bm = bitmap(W, H, BitmapFormat::THIRTY_TWO_BIT, |x, y| at(x, y, 21));
    let got = copy(&mut s, full(), &bm);
    let (shift, dest) = the_copy(&got);
    assert_eq!(
        (shift, dest.left, dest.right, dest.bottom),
        (21, 100, 400, H as i32 - 21)
    );

    // Drawn as just the view, at rows 50..250: row 50 + i now shows document row 30 + i,
    // which was at row 30 + i, so the content moved down 20, and rows 50..70 come from
    // above the view.
    let mut s = page(0);
    let got = copy(
        &mut s,
        Rect::ltrb(100, 50, 400, 250),
        &page_bitmap(30, 100, 300, 200),
    );
    let (shift, dest) = the_copy(&got);
    assert_eq!((shift, dest.left, dest.right), (-20, 100, 400));
    assert!(dest.top < 50 + 16 && dest.bottom > 250 - 16, "{dest:?}");
}

#[test]
fn a_screen_drawn_in_bands_scrolls_rows_across_them() {
    // The QXL producer splits a large frame into bands; the top band's last rows come from
    // the band below, still as it was.
    let mut s = page(0);
    let half = H as i32 / 2;
    let got = copy(
        &mut s,
        Rect::ltrb(0, 0, W as i32, half),
        &page_bitmap(40, 0, W, H / 2),
    );
    let (shift, dest) = the_copy(&got);
    assert_eq!((shift, dest.bottom), (40, half));
    let got = copy(
        &mut s,
        Rect::ltrb(0, half, W as i32, H as i32),
        &page_bitmap(40 + i64::from(H / 2), 0, W, H / 2),
    );
    let (shift, dest) = the_copy(&got);
    assert_eq!((shift, dest.bottom), (40, H as i32 - 40));
}

#[test]
fn redrawing_the_same_pixels_changes_nothing() {
    let mut s = page(5);
    assert_eq!(
        copy(
            &mut s,
            Rect::ltrb(0, 0, W as i32, H as i32),
            &page_bitmap(5, 0, W, H)
        ),
        []
    );
    assert_eq!(
        copy(&mut s, Rect::ltrb(17, 3, 90, 4), &page_bitmap(8, 17, 73, 1)),
        []
    );
}

#[test]
fn unchanged_rows_and_columns_are_trimmed() {
    let mut s = page(0);
    // Rows 120..130, columns 200..260 of the redraw differ.
    let changed = |x: u32, y: u32| (200..260).contains(&x) && (120..130).contains(&y);
    let bm = bitmap(W, H, BitmapFormat::THIRTY_TWO_BIT, |x, y| {
        if changed(x, y) {
            0xff12_3456
        } else {
            doc(1, i64::from(y), x)
        }
    });
    let got = copy(&mut s, Rect::ltrb(0, 0, W as i32, H as i32), &bm);
    assert_eq!(got, [Change::Damage(Rect::ltrb(200, 120, 260, 130))]);
    // One pixel at each corner of a smaller redraw.
    let mut s = page(0);
    let bm = bitmap(100, 80, BitmapFormat::THIRTY_TWO_BIT, |x, y| {
        if (x, y) == (3, 0) || (x, y) == (99, 79) {
            0xff00_0001
        } else {
            doc(1, i64::from(y) + 10, x + 20)
        }
    });
    assert_eq!(
        copy(&mut s, Rect::ltrb(20, 10, 120, 90), &bm),
        [Change::Damage(Rect::ltrb(23, 10, 120, 90))]
    );
}

#[test]
fn noise_is_damaged_whole_without_copies() {
    let mut rng = Rng(7);
    let mut s = surface(|_, _| rng.next() | 0xff00_0000);
    let mut rng = Rng(8);
    let bm = bitmap(W, H, BitmapFormat::THIRTY_TWO_BIT, |_, _| rng.next());
    let got = copy(&mut s, Rect::ltrb(0, 0, W as i32, H as i32), &bm);
    assert_eq!(got, [Change::Damage(Rect::ltrb(0, 0, W as i32, H as i32))]);
}

#[test]
fn edge_cases_stay_exact() {
    // dy = height - 1: one row moves, too few for a copy.
    let mut s = page(0);
    let got = copy(
        &mut s,
        Rect::ltrb(0, 0, W as i32, H as i32),
        &page_bitmap(i64::from(H) - 1, 0, W, H),
    );
    assert!(copy_bits(&got).is_empty(), "{got:?}");
    // One-row rectangles.
    let mut s = page(0);
    copy(
        &mut s,
        Rect::ltrb(0, 7, W as i32, 8),
        &page_bitmap(9, 0, W, 1),
    );
    // Rectangles reaching past the surface's edges: only the part inside is drawn.
    let mut s = page(0);
    let bbox = Rect::ltrb(-10, -40, W as i32 + 10, H as i32);
    let got = copy(&mut s, bbox, &page_bitmap(-28, 0, W + 20, H + 40));
    assert!(
        copy_bits(&got).is_empty(),
        "the columns moved by 10: {got:?}"
    );
    let mut s = page(12);
    let bm = bitmap(W, H + 40, BitmapFormat::THIRTY_TWO_BIT, |x, y| {
        doc(1, i64::from(y) - 40 + 12 + 64, x)
    });
    let got = copy(&mut s, Rect::ltrb(0, -40, W as i32, H as i32), &bm);
    let (shift, dest) = the_copy(&got);
    assert_eq!((shift, dest.bottom), (64, H as i32 - 64));
    let bbox = Rect::ltrb(0, H as i32 - 100, W as i32, H as i32 + 50);
    copy(&mut s, bbox, &page_bitmap(500, 0, W, 150));
    let bbox = Rect::ltrb(W as i32 - 300, H as i32 - 80, W as i32, H as i32);
    copy(&mut s, bbox, &page_bitmap(77, W - 300, 300, 80));
}

#[test]
fn the_alpha_a_32bit_source_gets_counts() {
    // A fresh surface is all zero; black xRGB pixels with X = 0 are written with alpha 0xff.
    let mut s = Surface::new(W, H, SurfaceFormat::XRGB32, None).unwrap();
    let black = bitmap(300, 100, BitmapFormat::THIRTY_TWO_BIT, |_, _| 0);
    assert_eq!(
        copy(&mut s, Rect::ltrb(0, 0, 300, 100), &black),
        [Change::Damage(Rect::ltrb(0, 0, 300, 100))]
    );
    // Now they are 0xff000000: the same draw changes nothing, whatever its X bytes.
    let x_any = bitmap(300, 100, BitmapFormat::THIRTY_TWO_BIT, |x, _| x << 24);
    assert_eq!(copy(&mut s, Rect::ltrb(0, 0, 300, 100), &x_any), []);
    // An RGBA source keeps its alpha, so alpha 0 is a change again.
    let clear = bitmap(300, 100, BitmapFormat::RGBA, |_, _| 0);
    assert_eq!(
        copy(&mut s, Rect::ltrb(0, 0, 300, 100), &clear),
        [Change::Damage(Rect::ltrb(0, 0, 300, 100))]
    );
    // Scrolled content with X = 0 bytes still verifies against the stored 0xff alpha.
    let mut s = page(0);
    let bm = bitmap(W, H, BitmapFormat::THIRTY_TWO_BIT, |x, y| {
        doc(1, i64::from(y) + 40, x) & 0x00ff_ffff
    });
    let (shift, dest) = the_copy(&copy(&mut s, full(), &bm));
    assert_eq!((shift, dest.bottom), (40, H as i32 - 40));
}

#[test]
fn draws_whose_result_is_not_known_row_by_row_are_left_alone() {
    let s = page(0);
    let bm = page_bitmap(0, 0, 100, 100);
    let view = SourceView::from_bitmap(&bm).unwrap();
    let all = Rect::ltrb(0, 0, 100, 100);
    let clip = Clip::Rects(vec![Rect::ltrb(0, 0, 50, 100), Rect::ltrb(60, 0, 100, 100)]);
    assert!(
        Incoming::copy(&s, all, &clip, &view, all, Rop::OP_PUT).is_none(),
        "clipped"
    );
    assert!(
        Incoming::copy(&s, all, &Clip::None, &view, all, Rop::OP_XOR).is_none(),
        "rop"
    );
    let scaled = Rect::ltrb(0, 0, 200, 100);
    assert!(
        Incoming::copy(&s, scaled, &Clip::None, &view, all, Rop::OP_PUT).is_none(),
        "scaled"
    );
    let past = Rect::ltrb(50, 0, 150, 100);
    assert!(
        Incoming::copy(&s, all, &Clip::None, &view, past, Rop::OP_PUT).is_none(),
        "source ends"
    );
    let mut short = bm.clone();
    short.data.truncate(short.data.len() - 4);
    let view = SourceView::from_bitmap(&short).unwrap();
    assert!(
        Incoming::copy(&s, all, &Clip::None, &view, all, Rop::OP_PUT).is_none(),
        "short data"
    );
}

#[test]
fn fills_are_trimmed_to_what_they_change() {
    let mut s = surface(|x, y| {
        if (10..20).contains(&y) && x < 30 {
            0xff00_00ff
        } else {
            WHITE
        }
    });
    let check = |s: &mut Surface, bbox: Rect, color: u32| {
        let incoming = Incoming::fill(s, bbox, &Clip::None, color, Rop::OP_PUT).unwrap();
        let got = changes(s, &incoming);
        let mut mirror = Mirror::of(s);
        s.fill(bbox, &Clip::None, color, Rop::OP_PUT).unwrap();
        got.iter().for_each(|c| mirror.apply(c, s));
        assert!(mirror.0 == s.pixels());
        got
    };
    assert_eq!(
        check(&mut s, Rect::ltrb(0, 0, 300, 300), WHITE),
        [Change::Damage(Rect::ltrb(0, 10, 30, 20))]
    );
    assert_eq!(check(&mut s, Rect::ltrb(0, 0, 300, 300), WHITE), []);
}

#[test]
fn random_draws_with_and_without_moved_content_replay_exactly() {
    let mut rng = Rng(0x5eed);
    let mut s = page(0);
    let mut at = 0i64;
    let mut copies = 0;
    for step in 0..300 {
        // A random rectangle, sometimes past the edges.
        let w = 1 + rng.below(W + 40);
        let h = 1 + rng.below(H + 40);
        let x = i64::from(rng.below(W + 20)) - 20;
        let y = i64::from(rng.below(H + 20)) - 20;
        let bbox = Rect::ltrb(
            x as i32,
            y as i32,
            (x + i64::from(w)) as i32,
            (y + i64::from(h)) as i32,
        );
        let kind = rng.below(4);
        let bm = match kind {
            // What the rectangle shows, moved by dy rows (mostly a few), new rows below or
            // above from the document.
            0 | 1 => {
                let span = if rng.below(2) == 0 { 40 } else { 2 * h };
                let dy = i64::from(rng.below(span)) - i64::from(span / 2);
                at += 1;
                let old = |sx: i64, sy: i64| {
                    let inside = (0..i64::from(W)).contains(&sx) && (0..i64::from(H)).contains(&sy);
                    inside.then(|| {
                        let i = ((sy * i64::from(W) + sx) * 4) as usize;
                        u32::from_le_bytes(s.pixels()[i..i + 4].try_into().unwrap())
                    })
                };
                bitmap(w, h, BitmapFormat::THIRTY_TWO_BIT, |bx, by| {
                    let (sx, sy) = (x + i64::from(bx), y + i64::from(by));
                    let from = sy + dy;
                    let moved = (y..y + i64::from(h))
                        .contains(&from)
                        .then(|| old(sx, from))
                        .flatten();
                    moved.unwrap_or_else(|| doc(1, at * 1000 + sy, sx.rem_euclid(1 << 16) as u32))
                })
            }
            // The document as it is, with a few pixels changed.
            2 => {
                let spots: Vec<(u32, u32)> = (0..rng.below(4))
                    .map(|_| (rng.below(w), rng.below(h)))
                    .collect();
                bitmap(w, h, BitmapFormat::THIRTY_TWO_BIT, |bx, by| {
                    let sx = x + i64::from(bx);
                    let sy = y + i64::from(by);
                    if spots.contains(&(bx, by))
                        || sx < 0
                        || sy < 0
                        || sx >= i64::from(W)
                        || sy >= i64::from(H)
                    {
                        0xff00_0000 | (bx * 31 + by)
                    } else {
                        let i = ((sy * i64::from(W) + sx) * 4) as usize;
                        u32::from_le_bytes(s.pixels()[i..i + 4].try_into().unwrap())
                    }
                })
            }
            _ => {
                let seed = rng.next();
                bitmap(w, h, BitmapFormat::THIRTY_TWO_BIT, |bx, by| {
                    mix(seed, bx, by)
                })
            }
        };
        let got = copy(&mut s, bbox, &bm);
        copies += copy_bits(&got).len();
        assert!(copy_bits(&got).len() <= 1, "step {step}: {got:?}");
    }
    assert!(copies > 20, "scrolls are found: {copies}");
}

#[test]
#[ignore = "a measurement, not a check"]
fn measure_the_scroll_search_of_an_editor() {
    // The office workload's editor: 944 × 976 of a 1416 × 1040 screen, scrolled 3 lines.
    let (w, h) = (1416u32, 1040u32);
    let mut px = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            px.extend_from_slice(&doc(1, i64::from(y), x).to_le_bytes());
        }
    }
    let s = Surface::new(w, h, SurfaceFormat::XRGB32, Some(&px)).unwrap();
    let bbox = Rect::ltrb(8, 64, 952, 1040);
    let bm = bitmap(944, 976, BitmapFormat::THIRTY_TWO_BIT, |x, y| {
        doc(1, i64::from(y) + 64 + 48, x + 8)
    });
    let view = SourceView::from_bitmap(&bm).unwrap();
    let area = Rect::ltrb(0, 0, 944, 976);
    let incoming = Incoming::copy(&s, bbox, &Clip::None, &view, area, Rop::OP_PUT).unwrap();
    let runs = 50;
    let start = std::time::Instant::now();
    let mut found = Vec::new();
    for _ in 0..runs {
        found = changes(&s, &incoming);
    }
    let per = start.elapsed() / runs;
    eprintln!("editor scroll: {per:?} per draw, {found:?}");
    assert!(matches!(found.first(), Some(Change::CopyBits { .. })));
}
