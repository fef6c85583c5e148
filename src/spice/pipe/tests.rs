//! The pipe against a fake canvas: startup order, squashing, COPY_BITS rules, budget,
//! surface changes, and that the client's picture always converges to the canonical one.

use std::sync::Mutex;

use super::*;
use crate::display::{CursorState, RectVersion, SurfaceFormat, SurfaceInfo};
use crate::spice::wire::{
    BitmapFormat, Codec, DisplayMsg, Framer, HeaderKind, MessageWriter, MiniDataHeader, MsgcAck,
    MsgcAckSync,
};
use rig::*;

mod cache;
mod pool;
mod quic;
mod rig;

#[test]
fn startup_sends_create_full_image_monitors_mark_in_order() {
    let mut rig = Rig::new(CONFIG);
    rig.drain();
    assert_eq!(
        rig.client.types[1..],
        [
            DisplayMsg::SURFACE_CREATE,
            DisplayMsg::DRAW_COPY,
            DisplayMsg::MONITORS_CONFIG,
            DisplayMsg::MARK
        ]
    );
    assert_eq!(rig.client.draws, [Rect::ltrb(0, 0, 64, 48)]);
    rig.assert_converged();
}

#[test]
fn damage_sends_only_its_rect_and_stale_damage_is_skipped() {
    let mut rig = Rig::new(CONFIG);
    let stale = rig.canvas.paint(Rect::ltrb(0, 0, 4, 4), 9);
    rig.drain();
    rig.event(stale);
    let e = rig.canvas.paint(Rect::ltrb(5, 6, 15, 16), 7);
    rig.event(e);
    rig.drain();
    assert_eq!(rig.client.draws[1..], [Rect::ltrb(5, 6, 15, 16)]);
    rig.assert_converged();
}

#[test]
fn stalled_client_gets_squashed_updates() {
    let mut rig = Rig::new(CONFIG);
    rig.drain();
    for i in 0..500 {
        let x = i % 60;
        let e = rig.canvas.paint(Rect::ltrb(x, 0, x + 4, 4), i as u8);
        rig.event(e);
    }
    rig.drain();
    assert!(
        rig.client.draws.len() < 40,
        "{} draws",
        rig.client.draws.len()
    );
    assert!(rig.pipe.stats().squashed > 400);
    rig.assert_converged();
}

#[test]
fn ack_window_stops_the_pipe_until_acked() {
    let mut rig = Rig::new(CONFIG);
    rig.drain();
    let before = rig.out.sent();
    // No ACKs from here: at most 2 × 20 unacked messages go out.
    for batch in 0..3 {
        for i in 0..20 {
            let e = rig
                .canvas
                .paint(Rect::ltrb(i * 3, batch * 2, i * 3 + 1, batch * 2 + 1), 3);
            rig.event(e);
        }
        rig.pipe.poll_transmit(&*rig.canvas, &rig.ack, &mut rig.out);
    }
    assert!(rig.out.sent() - before <= 41, "{}", rig.out.sent() - before);
    assert!(rig.pipe.has_work());
    rig.drain();
    rig.assert_converged();
}

#[test]
fn byte_budget_stops_encoding_while_the_socket_is_full() {
    let mut rig = Rig::new(PipeConfig {
        budget: 1000,
        ..CONFIG
    });
    // SURFACE_CREATE fits; the full image (9 KiB) waits for the socket to drain.
    rig.pipe.poll_transmit(&*rig.canvas, &rig.ack, &mut rig.out);
    assert!(rig.out.pending() < 100);
    let n = rig.out.pending();
    rig.out.advance(n);
    // An empty socket always takes the next message, however large.
    rig.pipe.poll_transmit(&*rig.canvas, &rig.ack, &mut rig.out);
    let pending = rig.out.pending();
    assert!(pending > 64 * 48 * 3);
    assert!(rig.pipe.has_work());
    rig.pipe.poll_transmit(&*rig.canvas, &rig.ack, &mut rig.out);
    assert_eq!(rig.out.pending(), pending);
}

#[test]
fn copy_bits_replayed_only_from_a_clean_source() {
    let mut rig = Rig::new(CONFIG);
    let e = rig.canvas.paint(Rect::ltrb(0, 0, 10, 10), 5);
    rig.event(e);
    rig.drain();
    // Scroll: canvas copies (0,0)-(10,10) to (20,20), as the worker would.
    let e = rig.canvas.copy((0, 0), Rect::ltrb(20, 20, 30, 30));
    rig.event(e);
    rig.drain();
    assert_eq!(rig.pipe.stats().copy_bits, 1);
    rig.assert_converged();

    // Dirty source: the destination is re-sent as pixels instead.
    let e = rig.canvas.paint(Rect::ltrb(0, 0, 5, 5), 8);
    rig.event(e);
    let e = rig.canvas.copy((0, 0), Rect::ltrb(40, 30, 50, 40));
    rig.event(e);
    rig.drain();
    assert_eq!(rig.pipe.stats().copy_bits, 1);
    rig.assert_converged();
}

#[test]
fn mode_change_recreates_the_primary_and_unseen_surfaces_are_dropped() {
    let mut rig = Rig::new(CONFIG);
    rig.drain();
    rig.client.types.clear();
    // Two resizes while the client is not reading: only the last surface is sent.
    rig.replace_primary(32, 32);
    rig.replace_primary(40, 30);
    let e = rig.canvas.paint(Rect::ltrb(1, 1, 3, 3), 4);
    rig.event(e);
    rig.drain();
    assert_eq!(
        rig.client.types,
        [
            DisplayMsg::SURFACE_DESTROY,
            DisplayMsg::SURFACE_CREATE,
            DisplayMsg::DRAW_COPY,
            DisplayMsg::MONITORS_CONFIG,
            DisplayMsg::MARK
        ]
    );
    assert_eq!(rig.client.width, 40);
    rig.assert_converged();
}

#[test]
fn reset_clears_the_client() {
    let mut rig = Rig::new(CONFIG);
    rig.drain();
    rig.event(DisplayEvent::Reset { generation: 99 });
    rig.drain();
    assert_eq!(rig.client.types.last(), Some(&DisplayMsg::RESET));
}

// Keep the imports honest for message types only some tests decode.
#[allow(dead_code)]
fn _types(_: MsgcAck, _: MsgcAckSync, _: MiniDataHeader) {}

#[test]
fn resync_after_missed_events_repaints_or_recreates() {
    let mut rig = Rig::new(CONFIG);
    rig.drain();
    // Events lost (broadcast lag): the canvas changed, nobody told the pipe.
    rig.canvas.paint(Rect::ltrb(3, 3, 30, 30), 0x42);
    rig.pipe.resync(&*rig.canvas);
    rig.drain();
    rig.assert_converged();
    assert_eq!(rig.client.draws.last(), Some(&Rect::ltrb(0, 0, 64, 48)));

    // Lost events included a mode change: the primary is re-created.
    rig.client.types.clear();
    rig.canvas.resize(50, 20);
    rig.canvas.paint(Rect::ltrb(0, 0, 10, 10), 0x24);
    rig.pipe.resync(&*rig.canvas);
    rig.drain();
    assert_eq!(
        rig.client.types[..2],
        [DisplayMsg::SURFACE_DESTROY, DisplayMsg::SURFACE_CREATE]
    );
    assert_eq!(rig.client.width, 50);
    rig.assert_converged();
}

/// xorshift32: deterministic, no dependency.
fn next(x: &mut u32) -> u32 {
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    *x
}

fn random_rect(x: &mut u32, w: i32, h: i32) -> Rect {
    let l = (next(x) % w as u32) as i32;
    let t = (next(x) % h as u32) as i32;
    let r = l + 1 + (next(x) % (w - l) as u32) as i32;
    let b = t + 1 + (next(x) % (h - t) as u32) as i32;
    Rect::ltrb(l, t, r.min(w), b.min(h))
}

#[test]
fn random_events_late_delivery_and_a_sluggish_client_always_converge() {
    let mut x = 0x9e37_79b9u32;
    let mut totals = PipeStats::default();
    for round in 0..150 {
        let mut rig = Rig::new(PipeConfig {
            budget: 2048,
            lz4: round % 2 == 0,
            quic: round % 3 == 0,
            monitors_config: true,
        });
        // Events reach the pipe late, in order, while the canvas already moved on (as a
        // broadcast subscriber lags the worker).
        let mut in_flight = std::collections::VecDeque::new();
        let mut acked = 0;
        for _ in 0..120 {
            let (w, h) = rig.canvas.size();
            match next(&mut x) % 16 {
                0..=5 => {
                    let r = random_rect(&mut x, w, h);
                    in_flight.push_back(rig.canvas.paint(r, next(&mut x) as u8));
                }
                6..=8 => {
                    let dest = random_rect(&mut x, w, h);
                    let sx = (next(&mut x) % (w - dest.width() as i32 + 1) as u32) as i32;
                    let sy = (next(&mut x) % (h - dest.height() as i32 + 1) as u32) as i32;
                    in_flight.push_back(rig.canvas.copy((sx, sy), dest));
                }
                9..=11 => {
                    for _ in 0..next(&mut x) % 4 {
                        if let Some(e) = in_flight.pop_front() {
                            rig.event(e);
                        }
                    }
                }
                12 => {
                    rig.pipe.poll_transmit(&*rig.canvas, &rig.ack, &mut rig.out);
                    let n = (next(&mut x) as usize % 3000).min(rig.out.pending());
                    let bytes = rig.out.unsent_bytes()[..n].to_vec();
                    rig.out.advance(n);
                    rig.client.receive(&bytes);
                }
                13 | 14 => {
                    // ACK what the client has received, as spice-gtk does every 20.
                    let got = rig.client.types.len() as u64;
                    while acked + 20 <= got {
                        acked += 20;
                        rig.ack.handle_ack(rig.out.sent());
                    }
                }
                _ => {
                    if next(&mut x) % 4 == 0 {
                        let info = rig
                            .canvas
                            .resize(16 + next(&mut x) % 50, 16 + next(&mut x) % 40);
                        in_flight.push_back(DisplayEvent::SurfaceDestroyed {
                            surface_id: 0,
                            generation: info.generation,
                        });
                        in_flight.push_back(DisplayEvent::SurfaceCreated(info));
                    }
                }
            }
        }
        while let Some(e) = in_flight.pop_front() {
            rig.event(e);
        }
        let rest = rig.out.unsent_bytes();
        rig.out.advance(rest.len());
        rig.client.receive(&rest);
        rig.drain();
        if bgr(&rig.client.pixels) != bgr(&rig.canvas.pixels()) {
            let canvas = bgr(&rig.canvas.pixels());
            let at = bgr(&rig.client.pixels)
                .iter()
                .zip(&canvas)
                .position(|(a, b)| a != b);
            let w = rig.canvas.size().0 as usize;
            let at = at.map(|i| (i / 3 % w, i / 3 / w));
            panic!("round {round}: client differs from canvas at {at:?}");
        }
        let st = rig.pipe.stats();
        totals.copy_bits += st.copy_bits;
        totals.squashed += st.squashed;
    }
    assert!(
        totals.copy_bits > 100,
        "COPY_BITS replayed: {}",
        totals.copy_bits
    );
    assert!(
        totals.squashed > 100,
        "damage squashed: {}",
        totals.squashed
    );
}
