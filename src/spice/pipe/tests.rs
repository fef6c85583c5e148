//! The pipe against a fake canvas: startup order, squashing, COPY_BITS rules, budget,
//! surface changes, and that the client's picture always converges to the canonical one.

use std::sync::Mutex;

use super::*;
use crate::display::{CursorState, SurfaceFormat};
use crate::spice::wire::{
    BitmapFormat, Codec, DisplayMsg, Framer, HeaderKind, MessageWriter, MiniDataHeader, MsgcAck,
    MsgcAckSync,
};

/// A canvas whose primary the test paints directly, with a generation per change, and the
/// generation of each pixel's last change as its content versions.
struct FakeCanvas {
    state: Mutex<(u32, u32, Vec<u8>, u64)>,
    versions: Mutex<Vec<u64>>,
}

impl FakeCanvas {
    fn new(w: u32, h: u32) -> Self {
        Self {
            state: Mutex::new((w, h, vec![0; (w * h * 4) as usize], 1)),
            versions: Mutex::new(vec![1; (w * h) as usize]),
        }
    }

    fn mark(&self, rect: Rect, w: u32, generation: u64) {
        let mut v = self.versions.lock().unwrap();
        for y in rect.top..rect.bottom {
            for x in rect.left..rect.right {
                v[(y as u32 * w + x as u32) as usize] = generation;
            }
        }
    }

    /// The pixels of `rect`, 4 bytes each, and the generation.
    fn snapshot_rect(&self, surface_id: u32, rect: Rect) -> Option<(u64, Vec<u8>)> {
        let s = self.state.lock().unwrap();
        if surface_id != 0 || !Rect::ltrb(0, 0, s.0 as i32, s.1 as i32).contains(&rect) {
            return None;
        }
        let mut out = Vec::new();
        for y in rect.top..rect.bottom {
            let start = ((y * s.0 as i32 + rect.left) * 4) as usize;
            out.extend_from_slice(&s.2[start..start + rect.width() as usize * 4]);
        }
        Some((s.3, out))
    }

    /// Fills `rect` with `v` and returns the damage event.
    fn paint(&self, rect: Rect, v: u8) -> DisplayEvent {
        let mut s = self.state.lock().unwrap();
        let w = s.0 as i32;
        for y in rect.top..rect.bottom {
            for x in rect.left..rect.right {
                let i = ((y * w + x) * 4) as usize;
                s.2[i..i + 4].copy_from_slice(&[v, v, v, 0xff]);
            }
        }
        s.3 += 1;
        self.mark(rect, s.0, s.3);
        DisplayEvent::Damage {
            surface_id: 0,
            rect,
            generation: s.3,
        }
    }

    /// Fills `rect` with noise (incompressible) and returns the damage event.
    fn paint_noise(&self, rect: Rect, mut seed: u32) -> DisplayEvent {
        let mut s = self.state.lock().unwrap();
        let w = s.0 as i32;
        for y in rect.top..rect.bottom {
            for x in rect.left..rect.right {
                let i = ((y * w + x) * 4) as usize;
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                s.2[i..i + 4].copy_from_slice(&seed.to_le_bytes());
                s.2[i + 3] = 0xff;
            }
        }
        s.3 += 1;
        self.mark(rect, s.0, s.3);
        DisplayEvent::Damage {
            surface_id: 0,
            rect,
            generation: s.3,
        }
    }

    /// Copies the `dest`-sized area at `src` to `dest`, as the worker's COPY_BITS does.
    fn copy(&self, src: (i32, i32), dest: Rect) -> DisplayEvent {
        let area = Rect::ltrb(
            src.0,
            src.1,
            src.0 + dest.width() as i32,
            src.1 + dest.height() as i32,
        );
        let data = self.snapshot_rect(0, area).unwrap().1;
        let mut s = self.state.lock().unwrap();
        let w = s.0 as i32;
        let n = dest.width() as usize * 4;
        for (row, y) in (dest.top..dest.bottom).enumerate() {
            let i = ((y * w + dest.left) * 4) as usize;
            s.2[i..i + n].copy_from_slice(&data[row * n..(row + 1) * n]);
        }
        s.3 += 1;
        self.mark(dest, s.0, s.3);
        DisplayEvent::CopyBits {
            surface_id: 0,
            src: display::Point { x: src.0, y: src.1 },
            dest,
            generation: s.3,
        }
    }

    fn size(&self) -> (i32, i32) {
        let s = self.state.lock().unwrap();
        (s.0 as i32, s.1 as i32)
    }

    fn resize(&self, w: u32, h: u32) -> SurfaceInfo {
        let mut s = self.state.lock().unwrap();
        *s = (w, h, vec![0; (w * h * 4) as usize], s.3 + 1);
        *self.versions.lock().unwrap() = vec![s.3; (w * h) as usize];
        info(w, h, s.3)
    }

    fn pixels(&self) -> Vec<u8> {
        self.state.lock().unwrap().2.clone()
    }
}

fn info(width: u32, height: u32, generation: u64) -> SurfaceInfo {
    SurfaceInfo {
        surface_id: 0,
        width,
        height,
        format: SurfaceFormat::XRGB32,
        generation,
    }
}

impl Canvas for FakeCanvas {
    fn surfaces(&self) -> Vec<SurfaceInfo> {
        let s = self.state.lock().unwrap();
        vec![info(s.0, s.1, s.3)]
    }
    fn rect_version(&self, surface_id: u32, rect: Rect) -> Option<RectVersion> {
        let s = self.state.lock().unwrap();
        if surface_id != 0 || !Rect::ltrb(0, 0, s.0 as i32, s.1 as i32).contains(&rect) {
            return None;
        }
        let v = self.versions.lock().unwrap();
        let content = (rect.top..rect.bottom)
            .flat_map(|y| (rect.left..rect.right).map(move |x| (x, y)))
            .map(|(x, y)| v[(y as u32 * s.0 + x as u32) as usize])
            .max()?;
        Some(RectVersion {
            generation: s.3,
            content,
        })
    }
    fn read_rect_bgr(
        &self,
        surface_id: u32,
        rect: Rect,
        stride: usize,
        out: &mut Vec<u8>,
    ) -> Option<RectVersion> {
        let version = self.rect_version(surface_id, rect)?;
        let (_, px) = self.snapshot_rect(surface_id, rect)?;
        for row in px.chunks(rect.width() as usize * 4) {
            let start = out.len();
            out.extend(row.chunks(4).flat_map(|p| p[..3].to_vec()));
            out.resize(start + stride, 0);
        }
        Some(version)
    }
    fn monitors(&self) -> Arc<[display::Head]> {
        Arc::new([])
    }
    fn cursor(&self) -> CursorState {
        CursorState::default()
    }
}

/// A model client: applies what it receives to its own copy of the primary.
#[derive(Default)]
struct Client {
    framer: Option<Framer>,
    /// Bytes of a message not complete yet.
    partial: Vec<u8>,
    width: u32,
    pixels: Vec<u8>,
    types: Vec<DisplayMsg>,
    draws: Vec<Rect>,
}

impl Client {
    fn receive(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        let bytes = std::mem::take(&mut self.partial);
        let mut framer = self
            .framer
            .take()
            .unwrap_or_else(|| Framer::new(HeaderKind::Mini, u32::MAX));
        let mut at = 0;
        while let Some((frame, used)) = framer.next_frame(&bytes[at..]).unwrap() {
            at += used;
            let t = DisplayMsg(frame.msg_type);
            self.types.push(t);
            match t {
                DisplayMsg::SURFACE_CREATE => {
                    let m = MsgDisplaySurfaceCreate::read_bytes(frame.body).unwrap();
                    self.width = m.width;
                    self.pixels = vec![0xee; (m.width * m.height * 4) as usize];
                }
                DisplayMsg::SURFACE_DESTROY => self.pixels.clear(),
                DisplayMsg::DRAW_COPY => {
                    let m = MsgDisplayDrawCopy::read_bytes(frame.body).unwrap();
                    let b = m.base.bbox;
                    let w = (b.right - b.left) as usize;
                    let data = match m.src_bitmap.data {
                        ImageData::Bitmap(bm) => {
                            assert_eq!(bm.format, BitmapFormat::FMT_24BIT);
                            bm.data
                        }
                        ImageData::Lz4(l) => {
                            assert_eq!(l.format, BitmapFormat::FMT_24BIT);
                            let size = w * (b.bottom - b.top) as usize * 3;
                            let mut out: Vec<u8> = Vec::new();
                            for block in &l.blocks {
                                let mut dst = vec![0; size - out.len()];
                                let n = lz4_flex::block::decompress_into_with_dict(
                                    block, &mut dst, &out,
                                )
                                .unwrap();
                                out.extend_from_slice(&dst[..n]);
                            }
                            out
                        }
                        other => panic!("{other:?}"),
                    };
                    // 24-bit on the wire: the client's fourth byte is its own (0xff here,
                    // as the surface is xRGB and the test canvas paints it opaque).
                    for (row, y) in (b.top..b.bottom).enumerate() {
                        for x in 0..w {
                            let dst = ((y as u32 * self.width + b.left as u32) as usize + x) * 4;
                            let src = (row * w + x) * 3;
                            self.pixels[dst..dst + 3].copy_from_slice(&data[src..src + 3]);
                            self.pixels[dst + 3] = 0xff;
                        }
                    }
                    self.draws
                        .push(Rect::ltrb(b.left, b.top, b.right, b.bottom));
                }
                DisplayMsg::COPY_BITS => {
                    let m = MsgDisplayCopyBits::read_bytes(frame.body).unwrap();
                    let b = m.base.bbox;
                    let old = self.pixels.clone();
                    let w = (b.right - b.left) as usize;
                    for dy in 0..(b.bottom - b.top) {
                        let src = (((m.src_pos.y + dy) as u32 * self.width + m.src_pos.x as u32)
                            * 4) as usize;
                        let dst = (((b.top + dy) as u32 * self.width + b.left as u32) * 4) as usize;
                        self.pixels[dst..dst + w * 4].copy_from_slice(&old[src..src + w * 4]);
                    }
                }
                _ => {}
            }
        }
        self.partial = bytes[at..].to_vec();
        self.framer = Some(framer);
    }
}

/// B, G and R of each pixel: what the wire carries (24-bit pixels).
fn bgr(px: &[u8]) -> Vec<u8> {
    px.chunks(4).flat_map(|p| p[..3].to_vec()).collect()
}

const CONFIG: PipeConfig = PipeConfig {
    budget: DEFAULT_PIPE_BUDGET,
    lz4: false,
    monitors_config: true,
};

struct Rig {
    canvas: FakeCanvas,
    pipe: DisplayPipe,
    ack: AckWindow,
    out: Outbox,
    client: Client,
}

impl Rig {
    fn new(config: PipeConfig) -> Self {
        let mut out = Outbox::new(MessageWriter::new(HeaderKind::Mini));
        let ack = AckWindow::start(&mut out);
        let mut rig = Self {
            canvas: FakeCanvas::new(64, 48),
            pipe: DisplayPipe::new(config),
            ack,
            out,
            client: Client::default(),
        };
        rig.ack.handle_ack_sync(1);
        rig.pipe.resync(&rig.canvas);
        rig
    }

    /// Sends everything, acking like spice-gtk, and delivers it.
    fn drain(&mut self) {
        loop {
            let more = self
                .pipe
                .poll_transmit(&self.canvas, &self.ack, &mut self.out);
            let bytes = self.out.unsent_bytes();
            self.out.advance(bytes.len());
            self.client.receive(&bytes);
            for _ in 0..self.out.sent() / 20 {
                self.ack.handle_ack(self.out.sent());
            }
            if !more && !self.pipe.has_work() {
                return;
            }
        }
    }

    fn event(&mut self, e: DisplayEvent) {
        self.pipe.handle_event(&e);
    }

    /// B, G and R of every pixel match.
    fn assert_converged(&self) {
        assert!(
            bgr(&self.client.pixels) == bgr(&self.canvas.pixels()),
            "client differs from canvas"
        );
    }
}

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
        rig.pipe.poll_transmit(&rig.canvas, &rig.ack, &mut rig.out);
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
    rig.pipe.poll_transmit(&rig.canvas, &rig.ack, &mut rig.out);
    assert!(rig.out.pending() < 100);
    let n = rig.out.pending();
    rig.out.advance(n);
    // An empty socket always takes the next message, however large.
    rig.pipe.poll_transmit(&rig.canvas, &rig.ack, &mut rig.out);
    let pending = rig.out.pending();
    assert!(pending > 64 * 48 * 3);
    assert!(rig.pipe.has_work());
    rig.pipe.poll_transmit(&rig.canvas, &rig.ack, &mut rig.out);
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
    let a = rig.canvas.resize(32, 32);
    rig.event(DisplayEvent::SurfaceDestroyed {
        surface_id: 0,
        generation: a.generation,
    });
    rig.event(DisplayEvent::SurfaceCreated(a));
    let b = rig.canvas.resize(40, 30);
    rig.event(DisplayEvent::SurfaceDestroyed {
        surface_id: 0,
        generation: b.generation,
    });
    rig.event(DisplayEvent::SurfaceCreated(b));
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
fn lz4_images_decode_to_the_canvas() {
    let mut rig = Rig::new(PipeConfig {
        lz4: true,
        ..CONFIG
    });
    rig.drain();
    assert_eq!(rig.pipe.stats().lz4_images, 1);
    rig.assert_converged();
}

#[test]
fn encode_once_serves_every_client_reading_the_same_generation() {
    let lz4 = PipeConfig {
        lz4: true,
        ..CONFIG
    };
    let cache = Arc::new(ImageCache::new(1 << 20));
    let mut a = Rig::new(lz4);
    let mut b = Rig::new(lz4);
    a.pipe = DisplayPipe::new(lz4).with_cache(Arc::clone(&cache));
    b.pipe = DisplayPipe::new(lz4).with_cache(Arc::clone(&cache));
    for rig in [&mut a, &mut b] {
        rig.pipe.resync(&rig.canvas);
        let e = rig.canvas.paint(Rect::ltrb(3, 4, 40, 30), 0x5a);
        rig.event(e);
        rig.drain();
        rig.assert_converged();
    }
    assert_eq!(a.pipe.stats().cache_hits, 0);
    assert_eq!(b.pipe.stats().cache_hits, b.pipe.stats().lz4_images);
    assert!(b.pipe.stats().cache_hits >= 1);

    // Another generation of the same rectangle is encoded afresh.
    let e = b.canvas.paint(Rect::ltrb(3, 4, 40, 30), 0x11);
    b.event(e);
    let hits = b.pipe.stats().cache_hits;
    b.drain();
    b.assert_converged();
    assert_eq!(b.pipe.stats().cache_hits, hits);
}

#[test]
fn encode_once_survives_changes_elsewhere_on_the_surface() {
    let lz4 = PipeConfig {
        lz4: true,
        ..CONFIG
    };
    let cache = Arc::new(ImageCache::new(1 << 20));
    let mut a = Rig::new(lz4);
    let mut b = Rig::new(lz4);
    a.pipe = DisplayPipe::new(lz4).with_cache(Arc::clone(&cache));
    b.pipe = DisplayPipe::new(lz4).with_cache(Arc::clone(&cache));
    for rig in [&mut a, &mut b] {
        rig.pipe.resync(&rig.canvas);
        rig.drain();
    }
    let text = Rect::ltrb(2, 2, 30, 20);
    let far = Rect::ltrb(40, 30, 60, 44);
    // A reads the text right away; B only after something else on the screen changed: the
    // global generation moved, the text's content version did not.
    let e = a.canvas.paint(text, 0x33);
    a.event(e);
    a.drain();
    let e = b.canvas.paint(text, 0x33);
    b.event(e);
    let e = b.canvas.paint(far, 0x77);
    b.event(e);
    let before = b.pipe.stats().cache_hits;
    b.drain();
    b.assert_converged();
    assert_eq!(
        b.pipe.stats().cache_hits,
        before + 1,
        "the text came from A's encoding"
    );
    assert_eq!(b.pipe.stats().draws, 1 + 2);
}

#[test]
fn lz4_that_does_not_pay_is_decided_once_and_sent_raw_to_every_client() {
    let lz4 = PipeConfig {
        lz4: true,
        ..CONFIG
    };
    let cache = Arc::new(ImageCache::new(1 << 20));
    let mut a = Rig::new(lz4);
    let mut b = Rig::new(lz4);
    a.pipe = DisplayPipe::new(lz4).with_cache(Arc::clone(&cache));
    b.pipe = DisplayPipe::new(lz4).with_cache(Arc::clone(&cache));
    for rig in [&mut a, &mut b] {
        rig.pipe.resync(&rig.canvas);
        rig.drain();
        let lz4_before = rig.pipe.stats().lz4_images;
        let e = rig
            .canvas
            .paint_noise(Rect::ltrb(0, 0, 64, 40), 0x9e37_79b9);
        rig.event(e);
        rig.drain();
        rig.assert_converged();
        assert_eq!(rig.pipe.stats().lz4_images, lz4_before, "noise goes raw");
    }
    assert_eq!(
        b.pipe.stats().cache_hits,
        2,
        "B took A's image and A's decision"
    );
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (2, 2));
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
    rig.pipe.resync(&rig.canvas);
    rig.drain();
    rig.assert_converged();
    assert_eq!(rig.client.draws.last(), Some(&Rect::ltrb(0, 0, 64, 48)));

    // Lost events included a mode change: the primary is re-created.
    rig.client.types.clear();
    rig.canvas.resize(50, 20);
    rig.canvas.paint(Rect::ltrb(0, 0, 10, 10), 0x24);
    rig.pipe.resync(&rig.canvas);
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
                    rig.pipe.poll_transmit(&rig.canvas, &rig.ack, &mut rig.out);
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
