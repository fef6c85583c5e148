//! The worker's events for redraws it works out (`delta`): a scroll arrives as COPY_BITS then
//! the new rows, an identical redraw as nothing, and a client replaying the events in order
//! holds the canonical surface.

use super::source::{Bitmap, BitmapFormat, DrawCommand, DrawOp, Image, IoRequest, Rop, Work};
use super::tests::{create_primary, drain, io, start};
use super::*;

const W: u32 = 512;
const H: u32 = 320;

/// Document row `y`, pixel `x`: lines of 16 rows whose last 4 are blank.
fn doc(y: i64, x: u32) -> u32 {
    let y = u32::try_from(y.rem_euclid(1 << 20)).unwrap();
    if y % 16 >= 12 {
        return 0xffff_ffff;
    }
    let h =
        (y.wrapping_mul(0x9E37_79B1) ^ (x / 3).wrapping_mul(0x85EB_CA77)).wrapping_mul(0x2C1B_3C6D);
    0xff00_0000 | (h ^ h >> 13) & 0x00ff_ffff
}

/// A DRAW_COPY of `w × h` pixels made by `f` at (`x`, `y`).
fn draw(x: i32, y: i32, w: u32, h: u32, f: impl Fn(u32, u32) -> u32) -> Work {
    let data = (0..h)
        .flat_map(|by| (0..w).map(move |bx| (bx, by)))
        .flat_map(|(bx, by)| f(bx, by).to_le_bytes())
        .collect();
    draw_pixels(x, y, w, h, data)
}

/// A DRAW_COPY of `w × h` xRGB pixels, rows top-down, at (`x`, `y`).
fn draw_pixels(x: i32, y: i32, w: u32, h: u32, data: Vec<u8>) -> Work {
    let bitmap = Bitmap {
        format: BitmapFormat::THIRTY_TWO_BIT.0,
        width: w,
        height: h,
        stride: usize::try_from(w * 4).unwrap(),
        top_down: true,
        data,
        palette: None,
    };
    Work::Draw(DrawCommand {
        surface_id: 0,
        bbox: Rect::ltrb(
            x,
            y,
            x + i32::try_from(w).unwrap(),
            y + i32::try_from(h).unwrap(),
        ),
        clip: Clip::None,
        op: DrawOp::Copy {
            src: Image::Bitmap(bitmap),
            src_area: Rect::ltrb(0, 0, i32::try_from(w).unwrap(), i32::try_from(h).unwrap()),
            rop: Rop::OP_PUT,
            scale_mode: 0,
        },
    })
}

/// Waits until the worker has handled everything sent so far.
fn sync(tx: &std::sync::mpsc::Sender<Work>) {
    io(
        tx,
        IoRequest::UpdateArea {
            surface_id: 0,
            area: Rect::ltrb(0, 0, 1, 1),
        },
    )
    .unwrap();
}

#[test]
fn a_scroll_is_announced_as_copy_bits_then_the_new_rows() {
    let (tx, display) = start();
    io(&tx, create_primary(W, H)).unwrap();
    tx.send(draw(0, 0, W, H, |x, y| doc(i64::from(y), x)))
        .unwrap();
    sync(&tx);
    let mut events = display.subscribe();
    let before = display.generation();
    tx.send(draw(0, 0, W, H, |x, y| doc(i64::from(y) + 8, x)))
        .unwrap();
    sync(&tx);
    let got = drain(&mut events);
    let h = i32::try_from(H).unwrap();
    let w = i32::try_from(W).unwrap();
    assert_eq!(
        got,
        [
            DisplayEvent::CopyBits {
                surface_id: 0,
                src: Point { x: 0, y: 8 },
                dest: Rect::ltrb(0, 0, w, h - 8),
                generation: before + 1,
            },
            DisplayEvent::Damage {
                surface_id: 0,
                rect: Rect::ltrb(0, h - 8, w, h),
                generation: before + 2,
            }
        ]
    );
    assert_eq!(display.snapshot(0).unwrap().info.generation, before + 2);

    // The same pixels again: nothing changes, nothing is sent, no generation is spent.
    tx.send(draw(0, 0, W, H, |x, y| doc(i64::from(y) + 8, x)))
        .unwrap();
    sync(&tx);
    assert_eq!(drain(&mut events), []);
    assert_eq!(display.generation(), before + 2);
}

#[test]
fn replaying_the_events_of_random_scrolls_and_redraws_gives_the_canonical_surface() {
    let (tx, display) = start();
    let mut events = display.subscribe();
    io(&tx, create_primary(W, H)).unwrap();
    let mut mirror = vec![0u8; usize::try_from(W * H * 4).unwrap()];
    let stride = usize::try_from(W * 4).unwrap();
    let mut rng = 0x1234_5678u32;
    let mut next = move |n: u32| {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        rng % n
    };
    let mut scroll = 0i64;
    let mut copies = 0;
    for step in 0..60 {
        // Mostly scrolls of a large view at a random place, some small redraws.
        let (x, y) = (next(W / 4), next(H / 4));
        let (w, h) = if step % 4 == 2 {
            (1 + next(W - x), 1 + next(H - y))
        } else {
            (W - x - next(64), H - y - next(64))
        };
        scroll += i64::from(next(64)) - 32;
        let s = scroll;
        let work = if step % 4 == 3 {
            draw(x as i32, y as i32, w, h, |bx, by| {
                doc(i64::from(by * 7), bx)
            })
        } else {
            draw(x as i32, y as i32, w, h, move |bx, by| {
                doc(s + i64::from(y + by), x + bx)
            })
        };
        tx.send(work).unwrap();
        sync(&tx);
        let snap = display.snapshot(0).unwrap();
        for event in drain(&mut events) {
            match event {
                DisplayEvent::Damage { rect, .. } => {
                    for row in rect.top..rect.bottom {
                        let at = usize::try_from(row).unwrap() * stride;
                        let span = at + usize::try_from(rect.left).unwrap() * 4
                            ..at + usize::try_from(rect.right).unwrap() * 4;
                        mirror[span.clone()].copy_from_slice(&snap.pixels[span]);
                    }
                }
                DisplayEvent::CopyBits { src, dest, .. } => {
                    copies += 1;
                    let old = mirror.clone();
                    let n = usize::try_from(dest.right - dest.left).unwrap() * 4;
                    for row in 0..dest.bottom - dest.top {
                        let d = usize::try_from(dest.top + row).unwrap() * stride
                            + usize::try_from(dest.left).unwrap() * 4;
                        let s = usize::try_from(src.y + row).unwrap() * stride
                            + usize::try_from(src.x).unwrap() * 4;
                        mirror[d..d + n].copy_from_slice(&old[s..s + n]);
                    }
                }
                DisplayEvent::SurfaceCreated(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(
            mirror[..] == snap.pixels[..],
            "step {step}: the mirror differs"
        );
    }
    assert!(copies > 5, "scrolls are found: {copies}");
}

#[test]
fn every_fullscreen_frame_is_a_copy_and_no_video_frame_is() {
    use crate::workload::{Generator, Workload, WorkloadConfig};
    for (workload, frames) in [(Workload::Fullscreen, 40), (Workload::Video, 10)] {
        let cfg = WorkloadConfig::new(workload);
        let (tx, display) = start();
        io(&tx, create_primary(cfg.width, cfg.height)).unwrap();
        let mut events = display.subscribe();
        let mut gen = Generator::new(cfg);
        for n in 0..frames {
            gen.frame(n, &mut |c| {
                let (x, y) = (i32::try_from(c.x).unwrap(), i32::try_from(c.y).unwrap());
                let work = draw_pixels(x, y, c.width, c.height, c.pixels.to_vec());
                tx.send(work).unwrap();
            });
            sync(&tx);
            let copies: Vec<(Point, Rect)> = drain(&mut events)
                .into_iter()
                .filter_map(|e| match e {
                    DisplayEvent::CopyBits { src, dest, .. } => Some((src, dest)),
                    _ => None,
                })
                .collect();
            match (workload, n) {
                // The document under the title bar moves up 8 rows a frame.
                (Workload::Fullscreen, 1..) => assert!(
                    matches!(copies[..], [(src, dest)] if src.y - dest.top == 8 && dest.top >= 24),
                    "frame {n}: {copies:?}"
                ),
                _ => assert_eq!(copies, [], "{workload:?} frame {n}"),
            }
        }
    }
}
