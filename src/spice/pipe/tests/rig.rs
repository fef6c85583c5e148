//! The test rig: a canvas the tests paint, a model client that applies what it receives,
//! and a pipe between them.

use super::*;

/// A canvas whose primary the test paints directly, with a generation per change, and the
/// generation of each pixel's last change as its content versions.
pub(super) struct FakeCanvas {
    pub(super) state: Mutex<(u32, u32, Vec<u8>, u64)>,
    pub(super) versions: Mutex<Vec<u64>>,
}

impl FakeCanvas {
    pub(super) fn new(w: u32, h: u32) -> Self {
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
    pub(super) fn paint(&self, rect: Rect, v: u8) -> DisplayEvent {
        self.paint_with(rect, |_, _| [v, v, v, 0xff])
    }

    /// Fills `rect` with noise (incompressible) and returns the damage event.
    pub(super) fn paint_noise(&self, rect: Rect, mut seed: u32) -> DisplayEvent {
        self.paint_with(rect, |_, _| {
            let [b, g, r, _] = xorshift(&mut seed).to_le_bytes();
            [b, g, r, 0xff]
        })
    }

    /// Natural-looking pixels: a gradient plus 0..7 of noise per channel (as the video
    /// workload's plasma), which LZ4 does not shrink and QUIC does.
    pub(super) fn paint_natural(&self, rect: Rect, mut seed: u32) -> DisplayEvent {
        self.paint_with(rect, |x, y| {
            let v = ((x * 3 + y * 2) % 240) as u8;
            let n = xorshift(&mut seed).to_le_bytes().map(|b| b & 7);
            [v + n[0], v / 2 + n[1], 240 - v + n[2], 0xff]
        })
    }

    /// Sets every pixel of `rect`, row by row, to `pixel(x, y)`; returns the damage event.
    fn paint_with(&self, rect: Rect, mut pixel: impl FnMut(i32, i32) -> [u8; 4]) -> DisplayEvent {
        let mut s = self.state.lock().unwrap();
        let w = s.0 as i32;
        for y in rect.top..rect.bottom {
            for x in rect.left..rect.right {
                let i = ((y * w + x) * 4) as usize;
                s.2[i..i + 4].copy_from_slice(&pixel(x, y));
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
    pub(super) fn copy(&self, src: (i32, i32), dest: Rect) -> DisplayEvent {
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

    pub(super) fn size(&self) -> (i32, i32) {
        let s = self.state.lock().unwrap();
        (s.0 as i32, s.1 as i32)
    }

    pub(super) fn resize(&self, w: u32, h: u32) -> SurfaceInfo {
        let mut s = self.state.lock().unwrap();
        *s = (w, h, vec![0; (w * h * 4) as usize], s.3 + 1);
        *self.versions.lock().unwrap() = vec![s.3; (w * h) as usize];
        info(w, h, s.3)
    }

    pub(super) fn pixels(&self) -> Vec<u8> {
        self.state.lock().unwrap().2.clone()
    }
}

pub(super) fn info(width: u32, height: u32, generation: u64) -> SurfaceInfo {
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
pub(super) struct Client {
    pub(super) framer: Option<Framer>,
    /// Bytes of a message not complete yet.
    pub(super) partial: Vec<u8>,
    pub(super) width: u32,
    pub(super) pixels: Vec<u8>,
    pub(super) types: Vec<DisplayMsg>,
    pub(super) draws: Vec<Rect>,
}

impl Client {
    pub(super) fn receive(&mut self, bytes: &[u8]) {
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
                        ImageData::Quic(q) => {
                            let mut payload = (q.len() as u32).to_le_bytes().to_vec();
                            payload.extend_from_slice(&q);
                            let (qw, qh, px) = crate::spice::encode::quic::decode::decode(&payload)
                                .expect("a QUIC image the test decoder takes");
                            assert_eq!((qw as usize, qh as i32), (w, b.bottom - b.top));
                            px
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
pub(super) fn bgr(px: &[u8]) -> Vec<u8> {
    px.chunks(4).flat_map(|p| p[..3].to_vec()).collect()
}

pub(super) const CONFIG: PipeConfig = PipeConfig {
    budget: DEFAULT_PIPE_BUDGET,
    lz4: false,
    quic: false,
    monitors_config: true,
};

pub(super) struct Rig {
    pub(super) canvas: Arc<FakeCanvas>,
    pub(super) pipe: DisplayPipe,
    pub(super) ack: AckWindow,
    pub(super) out: Outbox,
    pub(super) client: Client,
}

impl Rig {
    pub(super) fn new(config: PipeConfig) -> Self {
        Self::with_canvas(config, Arc::new(FakeCanvas::new(64, 48)))
    }

    pub(super) fn with_canvas(config: PipeConfig, canvas: Arc<FakeCanvas>) -> Self {
        let mut out = Outbox::new(MessageWriter::new(HeaderKind::Mini));
        let ack = AckWindow::start(&mut out);
        let mut rig = Self {
            canvas,
            pipe: DisplayPipe::new(config),
            ack,
            out,
            client: Client::default(),
        };
        rig.ack.handle_ack_sync(1);
        rig.pipe.resync(&*rig.canvas);
        rig
    }

    /// Sends everything, acking like spice-gtk, and delivers it.
    pub(super) fn drain(&mut self) {
        loop {
            let more = self
                .pipe
                .poll_transmit(&*self.canvas, &self.ack, &mut self.out);
            let bytes = self.out.unsent_bytes();
            self.out.advance(bytes.len());
            self.client.receive(&bytes);
            for _ in 0..self.out.sent() / 20 {
                self.ack.handle_ack(self.out.sent());
            }
            if !more && !self.pipe.has_work() {
                return;
            }
            if self.pipe.awaited().is_some() {
                // An image is being made in the encode pool.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }

    pub(super) fn event(&mut self, e: DisplayEvent) {
        self.pipe.handle_event(&e);
    }

    /// Gives the canvas a new `w × h` primary and the pipe the events the worker sends then.
    pub(super) fn replace_primary(&mut self, w: u32, h: u32) {
        let info = self.canvas.resize(w, h);
        self.event(DisplayEvent::SurfaceDestroyed {
            surface_id: 0,
            generation: info.generation,
        });
        self.event(DisplayEvent::SurfaceCreated(info));
    }

    /// B, G and R of every pixel match.
    pub(super) fn assert_converged(&self) {
        assert!(
            bgr(&self.client.pixels) == bgr(&self.canvas.pixels()),
            "client differs from canvas"
        );
    }
}

/// The next value of a xorshift32 stream.
fn xorshift(seed: &mut u32) -> u32 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 17;
    *seed ^= *seed << 5;
    *seed
}
