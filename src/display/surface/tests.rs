//! Pixel-exact tests of the surface operations and their behaviour on hostile geometry.

use super::*;
use crate::display::source::{Bitmap, BitmapFormat, Rop};

const W: u32 = 8;
const H: u32 = 6;

/// A surface whose pixel (x, y) holds `0x0100_0000 | y << 8 | x`: every pixel distinct.
fn numbered() -> Surface {
    let mut s = Surface::new(W, H, SurfaceFormat::XRGB32, None).unwrap();
    for y in 0..H {
        for x in 0..W {
            set(&mut s, x, y, numbered_px(x, y));
        }
    }
    s
}

fn numbered_px(x: u32, y: u32) -> u32 {
    0x0100_0000 | y << 8 | x
}

fn px(s: &Surface, x: u32, y: u32) -> u32 {
    let i = usize::try_from(y * W + x).unwrap() * 4;
    u32::from_le_bytes(s.pixels()[i..i + 4].try_into().unwrap())
}

fn set(s: &mut Surface, x: u32, y: u32, v: u32) {
    let row = s.row_mut(usize::try_from(y).unwrap());
    put_px(row, usize::try_from(x).unwrap(), v);
}

/// Every pixel, as a closure over (x, y) says it should be.
fn assert_pixels(s: &Surface, expect: impl Fn(u32, u32) -> u32) {
    for y in 0..H {
        for x in 0..W {
            assert_eq!(px(s, x, y), expect(x, y), "pixel ({x}, {y})");
        }
    }
}

fn inside(r: Rect, x: u32, y: u32) -> bool {
    let (x, y) = (i32::try_from(x).unwrap(), i32::try_from(y).unwrap());
    r.left <= x && x < r.right && r.top <= y && y < r.bottom
}

/// A 32BIT bitmap whose pixel (x, y) is `0x00aa_0000 | y << 8 | x`.
fn bitmap(width: u32, height: u32) -> Bitmap {
    let mut data = Vec::new();
    for y in 0..height {
        for x in 0..width {
            data.extend_from_slice(&(0x00aa_0000 | y << 8 | x).to_le_bytes());
        }
    }
    let stride = usize::try_from(width).unwrap() * 4;
    Bitmap {
        format: BitmapFormat::THIRTY_TWO_BIT.0,
        width,
        height,
        stride,
        top_down: true,
        data,
        palette: None,
    }
}

fn bitmap_px(x: i32, y: i32) -> u32 {
    0xffaa_0000 | u32::try_from(y).unwrap() << 8 | u32::try_from(x).unwrap()
}

#[test]
fn fill_sets_exactly_the_bbox() {
    let mut s = numbered();
    let r = Rect::ltrb(2, 1, 5, 3);
    assert_eq!(
        s.fill(r, &Clip::None, 0x00ff_0000, Rop::OP_PUT),
        Ok(Some(r))
    );
    assert_pixels(&s, |x, y| {
        if inside(r, x, y) {
            0x00ff_0000
        } else {
            numbered_px(x, y)
        }
    });
}

#[test]
fn fill_is_clipped_to_surface_and_clip_rects() {
    let mut s = numbered();
    let clip = Clip::Rects(vec![Rect::ltrb(0, 0, 2, 2), Rect::ltrb(6, 4, 100, 100)]);
    let damage = s
        .fill(Rect::ltrb(-5, -5, 50, 50), &clip, 7, Rop::OP_PUT)
        .unwrap();
    assert_eq!(damage, Some(Rect::ltrb(0, 0, 8, 6)));
    let a = Rect::ltrb(0, 0, 2, 2);
    let b = Rect::ltrb(6, 4, 8, 6);
    assert_pixels(&s, |x, y| {
        if inside(a, x, y) || inside(b, x, y) {
            7
        } else {
            numbered_px(x, y)
        }
    });
}

#[test]
fn xor_fill_touches_overlapping_clip_rects_once() {
    let mut s = Surface::new(W, H, SurfaceFormat::XRGB32, None).unwrap();
    let clip = Clip::Rects(vec![Rect::ltrb(0, 0, 4, 1), Rect::ltrb(2, 0, 6, 1)]);
    s.fill(Rect::ltrb(0, 0, 8, 6), &clip, 0xff, Rop::OP_XOR)
        .unwrap();
    assert_pixels(&s, |x, y| if y == 0 && x < 6 { 0xff } else { 0 });
}

#[test]
fn copy_draws_a_partial_src_area() {
    let mut s = numbered();
    let bm = bitmap(5, 4);
    let view = SourceView::from_bitmap(&bm).unwrap();
    let dest = Rect::ltrb(4, 2, 7, 4);
    let damage = s
        .copy(
            dest,
            &Clip::None,
            &view,
            Rect::ltrb(1, 2, 4, 4),
            Rop::OP_PUT,
        )
        .unwrap();
    assert_eq!(damage, Some(dest));
    assert_pixels(&s, |x, y| {
        if inside(dest, x, y) {
            bitmap_px(i32::try_from(x).unwrap() - 3, i32::try_from(y).unwrap())
        } else {
            numbered_px(x, y)
        }
    });
}

#[test]
fn copy_reads_bottom_up_bitmaps_from_the_last_row() {
    let mut s = numbered();
    let mut bm = bitmap(2, 2);
    bm.top_down = false;
    let view = SourceView::from_bitmap(&bm).unwrap();
    let dest = Rect::ltrb(0, 0, 2, 2);
    s.copy(dest, &Clip::None, &view, dest, Rop::OP_PUT).unwrap();
    // Stored row 1 is the top row.
    assert_eq!(px(&s, 1, 0), bitmap_px(1, 1));
    assert_eq!(px(&s, 0, 1), bitmap_px(0, 0));
}

#[test]
fn copy_scales_nearest_neighbour() {
    let mut s = numbered();
    let bm = bitmap(2, 2);
    let view = SourceView::from_bitmap(&bm).unwrap();
    let dest = Rect::ltrb(0, 0, 4, 4);
    s.copy(
        dest,
        &Clip::None,
        &view,
        Rect::ltrb(0, 0, 2, 2),
        Rop::OP_PUT,
    )
    .unwrap();
    assert_pixels(&s, |x, y| {
        if inside(dest, x, y) {
            bitmap_px(i32::try_from(x / 2).unwrap(), i32::try_from(y / 2).unwrap())
        } else {
            numbered_px(x, y)
        }
    });
    // Down-scaling samples pixel centres: 4 → 2 takes columns 1 and 3.
    let mut s = numbered();
    let bm = bitmap(4, 4);
    let view = SourceView::from_bitmap(&bm).unwrap();
    s.copy(
        Rect::ltrb(0, 0, 2, 2),
        &Clip::None,
        &view,
        Rect::ltrb(0, 0, 4, 4),
        Rop::OP_PUT,
    )
    .unwrap();
    assert_eq!(px(&s, 0, 0), bitmap_px(1, 1));
    assert_eq!(px(&s, 1, 1), bitmap_px(3, 3));
    assert_eq!(px(&s, 2, 0), numbered_px(2, 0));
}

#[test]
fn copy_is_clipped_by_clip_rects() {
    let mut s = numbered();
    let bm = bitmap(8, 6);
    let view = SourceView::from_bitmap(&bm).unwrap();
    let keep = Rect::ltrb(1, 1, 3, 5);
    let clip = Clip::Rects(vec![keep]);
    let all = Rect::ltrb(0, 0, 8, 6);
    assert_eq!(s.copy(all, &clip, &view, all, Rop::OP_PUT), Ok(Some(keep)));
    assert_pixels(&s, |x, y| {
        if inside(keep, x, y) {
            bitmap_px(i32::try_from(x).unwrap(), i32::try_from(y).unwrap())
        } else {
            numbered_px(x, y)
        }
    });
}

#[test]
fn copy_skips_pixels_whose_source_is_outside_the_bitmap() {
    let mut s = numbered();
    let bm = bitmap(2, 2);
    let view = SourceView::from_bitmap(&bm).unwrap();
    let dest = Rect::ltrb(0, 0, 4, 4);
    // src_area hangs off the bitmap's right and bottom edges by 2 pixels.
    s.copy(
        dest,
        &Clip::None,
        &view,
        Rect::ltrb(0, 0, 4, 4),
        Rop::OP_PUT,
    )
    .unwrap();
    assert_pixels(&s, |x, y| {
        if x < 2 && y < 2 {
            bitmap_px(i32::try_from(x).unwrap(), i32::try_from(y).unwrap())
        } else {
            numbered_px(x, y)
        }
    });
}

#[test]
fn copy_from_short_bitmap_data_draws_only_what_exists() {
    let mut s = numbered();
    let mut bm = bitmap(2, 2);
    bm.data.truncate(4 * 3); // row 1 holds only its first pixel
    let view = SourceView::from_bitmap(&bm).unwrap();
    let dest = Rect::ltrb(0, 0, 2, 2);
    s.copy(dest, &Clip::None, &view, dest, Rop::OP_PUT).unwrap();
    assert_eq!(px(&s, 0, 1), bitmap_px(0, 1));
    assert_eq!(px(&s, 1, 1), numbered_px(1, 1));
}

#[test]
fn copy_with_rop_combines_with_destination() {
    let mut s = Surface::new(W, H, SurfaceFormat::XRGB32, None).unwrap();
    s.fill(s.bounds(), &Clip::None, 0x0f, Rop::OP_PUT).unwrap();
    let bm = bitmap(1, 1);
    let view = SourceView::from_bitmap(&bm).unwrap();
    let dest = Rect::ltrb(0, 0, 1, 1);
    s.copy(dest, &Clip::None, &view, dest, Rop::OP_XOR).unwrap();
    assert_eq!(px(&s, 0, 0), bitmap_px(0, 0) ^ 0x0f);
}

#[test]
fn surface_to_surface_copy_reads_the_other_surface() {
    let src = numbered();
    let mut dst = Surface::new(W, H, SurfaceFormat::XRGB32, None).unwrap();
    let dest = Rect::ltrb(0, 0, 2, 2);
    dst.copy(
        dest,
        &Clip::None,
        &src.view(),
        Rect::ltrb(3, 3, 5, 5),
        Rop::OP_PUT,
    )
    .unwrap();
    // xRGB sources read as opaque.
    assert_eq!(px(&dst, 0, 0), 0xff00_0000 | numbered_px(3, 3));
    assert_eq!(px(&dst, 1, 1), 0xff00_0000 | numbered_px(4, 4));
}

/// Copy bits by `(dx, dy)` over the whole interior, compared with a naive copy of the
/// original.
fn check_copy_bits(bbox: Rect, src_pos: Point) {
    let mut s = numbered();
    let (dx, dy) = (src_pos.x - bbox.left, src_pos.y - bbox.top);
    let result = s.copy_bits(bbox, &Clip::None, src_pos).unwrap();
    assert_eq!(result, Some((bbox, true)));
    assert_pixels(&s, |x, y| {
        if inside(bbox, x, y) {
            let sx = u32::try_from(i32::try_from(x).unwrap() + dx).unwrap();
            let sy = u32::try_from(i32::try_from(y).unwrap() + dy).unwrap();
            numbered_px(sx, sy)
        } else {
            numbered_px(x, y)
        }
    });
}

#[test]
fn copy_bits_handles_overlap_in_every_direction() {
    // Scroll up, down, left, right and diagonally by one or two pixels, overlapping.
    check_copy_bits(Rect::ltrb(0, 0, 8, 5), Point { x: 0, y: 1 });
    check_copy_bits(Rect::ltrb(0, 1, 8, 6), Point { x: 0, y: 0 });
    check_copy_bits(Rect::ltrb(0, 0, 6, 6), Point { x: 2, y: 0 });
    check_copy_bits(Rect::ltrb(2, 0, 8, 6), Point { x: 0, y: 0 });
    check_copy_bits(Rect::ltrb(1, 1, 6, 5), Point { x: 2, y: 2 });
    check_copy_bits(Rect::ltrb(2, 2, 7, 6), Point { x: 1, y: 1 });
}

#[test]
fn copy_bits_with_source_partly_outside_copies_the_rest() {
    let mut s = numbered();
    // Source starts 2 pixels left of the surface: the 2 leftmost columns stay.
    let bbox = Rect::ltrb(0, 0, 4, 1);
    let result = s
        .copy_bits(bbox, &Clip::None, Point { x: -2, y: 0 })
        .unwrap();
    assert_eq!(result, Some((bbox, false)));
    assert_eq!(px(&s, 0, 0), numbered_px(0, 0));
    assert_eq!(px(&s, 1, 0), numbered_px(1, 0));
    assert_eq!(px(&s, 2, 0), numbered_px(0, 0));
    assert_eq!(px(&s, 3, 0), numbered_px(1, 0));
}

#[test]
fn copy_bits_honours_clip_rects() {
    let mut s = numbered();
    let clip = Clip::Rects(vec![Rect::ltrb(0, 0, 1, 1)]);
    let result = s
        .copy_bits(Rect::ltrb(0, 0, 8, 5), &clip, Point { x: 0, y: 1 })
        .unwrap();
    assert_eq!(result, Some((Rect::ltrb(0, 0, 1, 1), false)));
    assert_pixels(&s, |x, y| {
        if (x, y) == (0, 0) {
            numbered_px(0, 1)
        } else {
            numbered_px(x, y)
        }
    });
}

/// Rectangles a hostile guest might send.
fn hostile_rects() -> Vec<Rect> {
    let (min, max) = (i32::MIN, i32::MAX);
    vec![
        Rect::ltrb(min, min, max, max),
        Rect::ltrb(max, max, min, min),
        Rect::ltrb(-10, -10, -1, -1),
        Rect::ltrb(100, 100, 200, 200),
        Rect::ltrb(3, 3, 3, 3),
        Rect::ltrb(5, 1, 2, 4),
        Rect::ltrb(max - 1, 0, max, 1),
        Rect::ltrb(min, 2, min + 1, 3),
        Rect::ltrb(-3, -3, 3, 3),
        Rect::ltrb(0, 0, 1, max),
    ]
}

#[test]
fn hostile_geometry_is_harmless() {
    let rects = hostile_rects();
    let points = [
        Point {
            x: i32::MIN,
            y: i32::MIN,
        },
        Point {
            x: i32::MAX,
            y: i32::MAX,
        },
        Point { x: -1, y: 0 },
        Point { x: 7, y: 5 },
    ];
    let mut bm = bitmap(3, 3);
    bm.data.truncate(5); // shorter than stride × height
    let bitmaps = [
        bitmap(3, 3),
        bm,
        Bitmap {
            width: u32::MAX,
            height: u32::MAX,
            stride: usize::MAX,
            ..bitmap(1, 1)
        },
    ];
    let mut s = numbered();
    let bounds = s.bounds();
    for &bbox in &rects {
        for clip in [Clip::None, Clip::Rects(rects.clone())] {
            let damage = s.fill(bbox, &clip, 1, Rop::OP_XOR).unwrap();
            assert!(damage.is_none_or(|d| bounds.contains(&d) && !d.is_empty()));
            for &p in &points {
                let damage = s.copy_bits(bbox, &clip, p).unwrap();
                assert!(damage.is_none_or(|(d, _)| bounds.contains(&d)));
            }
            for bm in &bitmaps {
                let view = SourceView::from_bitmap(bm).unwrap();
                for &area in &rects {
                    let damage = s.copy(bbox, &clip, &view, area, Rop::OP_PUT).unwrap();
                    assert!(damage.is_none_or(|d| bounds.contains(&d)));
                }
            }
        }
    }
}

#[test]
fn surfaces_refuse_bad_sizes_and_formats() {
    let fmt = SurfaceFormat::XRGB32;
    for (w, h) in [
        (0, 1),
        (1, 0),
        (MAX_SURFACE_SIDE + 1, 1),
        (MAX_SURFACE_SIDE, MAX_SURFACE_SIDE),
        (u32::MAX, u32::MAX),
    ] {
        assert!(matches!(
            Surface::new(w, h, fmt, None).unwrap_err(),
            DisplayError::SurfaceSizeOutOfRange { .. }
        ));
    }
    for f in [
        SurfaceFormat::A1,
        SurfaceFormat::A8,
        SurfaceFormat::R5G6B5,
        SurfaceFormat(12345),
    ] {
        assert_eq!(
            Surface::new(4, 4, f, None).unwrap_err(),
            DisplayError::UnsupportedSurfaceFormat(f)
        );
    }
    assert!(Surface::new(4, 4, SurfaceFormat::ARGB32, None).is_ok());
}

#[test]
fn initial_pixels_are_kept_and_short_data_leaves_black() {
    let s = Surface::new(2, 2, SurfaceFormat::XRGB32, Some(&[1, 2, 3, 4, 5, 6])).unwrap();
    assert_eq!(
        s.pixels(),
        &[1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    let s = Surface::new(1, 1, SurfaceFormat::XRGB32, Some(&[9; 64])).unwrap();
    assert_eq!(s.pixels(), &[9; 4]);
}

#[test]
fn read_rect_returns_rows_top_down_or_none_outside() {
    let s = numbered();
    let out = s.read_rect(Rect::ltrb(6, 4, 8, 6)).unwrap();
    let expect: Vec<u8> = [(6, 4), (7, 4), (6, 5), (7, 5)]
        .iter()
        .flat_map(|&(x, y)| numbered_px(x, y).to_le_bytes())
        .collect();
    assert_eq!(out, expect);
    for r in hostile_rects() {
        assert_eq!(s.read_rect(r), None, "{r:?}");
    }
}

#[test]
fn read_rect_bgr_packs_wide_rows_through_every_path() {
    // 8-pixel groups, then pairs, then one pixel: widths 1..=19 cover each remainder.
    let mut s = Surface::new(40, 2, SurfaceFormat::XRGB32, None).unwrap();
    for y in 0..2 {
        for x in 0..40 {
            set(&mut s, x, y, numbered_px(x, y));
        }
    }
    for w in 1..=19 {
        let rect = Rect::ltrb(3, 0, 3 + w, 2);
        let mut out = Vec::new();
        s.read_rect_bgr(rect, w as usize * 3, &mut out).unwrap();
        let expect: Vec<u8> = (0..2u32)
            .flat_map(|y| (3..3 + w as u32).map(move |x| (x, y)))
            .flat_map(|(x, y)| numbered_px(x, y).to_le_bytes()[..3].to_vec())
            .collect();
        assert_eq!(out, expect, "width {w}");
    }
}

#[test]
fn read_rect_bgr_packs_every_width_with_padded_rows() {
    let s = numbered();
    for (l, r) in [(0u32, 1u32), (3, 7), (1, 8), (0, 8), (2, 5)] {
        let rect = Rect::ltrb(l as i32, 2, r as i32, 5);
        let w = (r - l) as usize;
        let stride = (w * 3).next_multiple_of(4) + 4;
        let mut out = vec![0xa5];
        s.read_rect_bgr(rect, stride, &mut out).unwrap();
        assert_eq!(out.len(), 1 + stride * 3);
        let mut expect = vec![0xa5];
        for y in 2..5u32 {
            for x in l..r {
                expect.extend_from_slice(&numbered_px(x, y).to_le_bytes()[..3]);
            }
            expect.resize(1 + stride * (y as usize - 1), 0);
        }
        assert_eq!(out, expect, "{rect:?}");
    }
    let mut out = Vec::new();
    assert_eq!(s.read_rect_bgr(Rect::ltrb(0, 0, 4, 1), 11, &mut out), None);
    for r in hostile_rects() {
        assert_eq!(s.read_rect_bgr(r, 1 << 20, &mut out), None, "{r:?}");
    }
    assert!(out.is_empty());
}

#[test]
fn direct_copy_path_matches_the_per_pixel_path() {
    // PUT with the source and the result inverted is PUT again, but takes the per-pixel path.
    let slow_put = Rop::OP_PUT | Rop::INVERS_SRC | Rop::INVERS_RES;
    let mut seed = 0x2545_f491_u32;
    let mut next = |range: i32| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        i32::try_from(seed >> 16).unwrap() % range - 3
    };
    let mut short = bitmap(5, 4);
    short.data.truncate(5 * 4 * 2 + 6);
    let mut bottom_up = bitmap(5, 4);
    bottom_up.top_down = false;
    let mut rgba = bitmap(5, 4);
    rgba.format = BitmapFormat::RGBA.0;
    for bm in [bitmap(5, 4), short, bottom_up, rgba] {
        let view = SourceView::from_bitmap(&bm).unwrap();
        for _ in 0..300 {
            let (l, t) = (next(12), next(10));
            let (w, h, hs) = (next(10) + 3, next(8) + 3, next(8) + 3);
            let bbox = Rect::ltrb(l, t, l + w, t + h);
            let (sl, st) = (next(8), next(7));
            // Same width (the direct path's condition), any height.
            let area = Rect::ltrb(sl, st, sl + w, st + hs);
            let clip = if next(4) == 0 {
                Clip::Rects(vec![Rect::ltrb(1, 0, 5, 3)])
            } else {
                Clip::None
            };
            let (mut fast, mut slow) = (numbered(), numbered());
            let a = fast.copy(bbox, &clip, &view, area, Rop::OP_PUT).unwrap();
            let b = slow.copy(bbox, &clip, &view, area, slow_put).unwrap();
            assert_eq!(a, b, "{bbox:?} {area:?}");
            assert!(fast.pixels() == slow.pixels(), "{bbox:?} {area:?} {clip:?}");
        }
    }
}
