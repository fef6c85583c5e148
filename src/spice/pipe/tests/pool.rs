//! Large encodings made in the encode pool: the client waits without framing anything out of
//! order, another client waits for the same encoding instead of making its own, and what
//! happens meanwhile (COPY_BITS, a new surface) is handled as if the image were not sent.

use std::sync::Condvar;
use std::time::{Duration, Instant};

use super::*;
use crate::spice::encode_pool::EncodePool;

/// QUIC-capable, so that 320 × 240 (76,800 pixels) goes to the pool.
const QUIC: PipeConfig = PipeConfig {
    lz4: true,
    quic: true,
    ..CONFIG
};

/// The canvas the pool reads through: its pixel reads wait until the test opens the gate,
/// so that the test can act while an image is being made.
struct Gated {
    canvas: Arc<FakeCanvas>,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gated {
    fn new(canvas: &Arc<FakeCanvas>) -> Arc<Self> {
        Arc::new(Self {
            canvas: Arc::clone(canvas),
            open: Mutex::new(false),
            opened: Condvar::new(),
        })
    }

    fn set(&self, open: bool) {
        *self.open.lock().unwrap() = open;
        self.opened.notify_all();
    }
}

impl Canvas for Gated {
    fn surfaces(&self) -> Vec<SurfaceInfo> {
        self.canvas.surfaces()
    }
    fn rect_version(&self, surface_id: u32, rect: Rect) -> Option<RectVersion> {
        self.canvas.rect_version(surface_id, rect)
    }
    fn read_rect_bgr(
        &self,
        surface_id: u32,
        rect: Rect,
        stride: usize,
        out: &mut Vec<u8>,
    ) -> Option<RectVersion> {
        let open = self.open.lock().unwrap();
        let (_open, timeout) = self
            .opened
            .wait_timeout_while(open, Duration::from_secs(10), |open| !*open)
            .unwrap();
        assert!(!timeout.timed_out(), "the gate was never opened");
        self.canvas.read_rect_bgr(surface_id, rect, stride, out)
    }
    fn monitors(&self) -> Arc<[display::Head]> {
        self.canvas.monitors()
    }
    fn cursor(&self) -> CursorState {
        self.canvas.cursor()
    }
}

/// Clients of one 320 × 240 canvas painted with natural pixels, sharing a cache and a pool
/// whose reads wait at the gate (closed).
fn clients(n: usize) -> (Vec<Rig>, Arc<Gated>, Arc<ImageCache>) {
    let canvas = Arc::new(FakeCanvas::new(320, 240));
    canvas.paint_natural(Rect::ltrb(0, 0, 320, 240), 7);
    let gate = Gated::new(&canvas);
    let cache = Arc::new(ImageCache::new(1 << 24));
    let pool = Arc::new(EncodePool::default());
    let rigs = (0..n)
        .map(|_| {
            let mut rig = Rig::with_canvas(QUIC, Arc::clone(&canvas));
            rig.pipe = DisplayPipe::new(QUIC)
                .with_cache(Arc::clone(&cache))
                .with_encode_pool(Arc::clone(&pool), Arc::clone(&gate) as Arc<dyn Canvas>);
            rig.pipe.resync(&*rig.canvas);
            rig
        })
        .collect();
    (rigs, gate, cache)
}

/// One call, delivering what it framed; returns whether the pipe waits for an image.
fn poll_once(rig: &mut Rig) -> bool {
    rig.pipe.poll_transmit(&*rig.canvas, &rig.ack, &mut rig.out);
    let bytes = rig.out.unsent_bytes();
    rig.out.advance(bytes.len());
    rig.client.receive(&bytes);
    rig.pipe.awaited().is_some()
}

fn wait_until_in(rig: &Rig) {
    let Some(slot) = rig.pipe.awaited() else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while slot.get().is_none() {
        assert!(Instant::now() < deadline, "the pool never made the image");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Still announced: the connection may look only after it came in.
    assert!(rig.pipe.awaited().is_some());
}

#[test]
fn a_large_image_is_made_in_the_pool_and_nothing_overtakes_it() {
    let (mut rigs, gate, _cache) = clients(1);
    let rig = &mut rigs[0];
    assert!(poll_once(rig), "the full image went to the pool");
    assert!(poll_once(rig), "still waiting: nothing is framed");
    assert_eq!(rig.client.types[1..], [DisplayMsg::SURFACE_CREATE]);
    assert!(rig.pipe.has_work());

    gate.set(true);
    wait_until_in(rig);
    rig.drain();
    let types = &rig.client.types[1..];
    assert_eq!(types.first(), Some(&DisplayMsg::SURFACE_CREATE));
    assert_eq!(types.last(), Some(&DisplayMsg::MARK));
    assert_eq!(types[types.len() - 2], DisplayMsg::MONITORS_CONFIG);
    assert!(types[1..types.len() - 2]
        .iter()
        .all(|t| *t == DisplayMsg::DRAW_COPY));
    assert!(rig.pipe.stats().quic_images >= 1);
    assert_eq!(rig.pipe.stats().pooled, rig.pipe.stats().draws);
    rig.assert_converged();
}

#[test]
fn a_second_client_waits_for_the_first_clients_encoding() {
    let (mut rigs, gate, cache) = clients(2);
    assert!(poll_once(&mut rigs[0]));
    assert!(poll_once(&mut rigs[1]), "waits for the encoding being made");
    gate.set(true);
    for rig in &mut rigs {
        wait_until_in(rig);
        rig.drain();
        rig.assert_converged();
    }
    let (a, b) = (rigs[0].pipe.stats(), rigs[1].pipe.stats());
    assert_eq!(a.cache_hits, 0);
    assert_eq!(
        b.cache_hits, b.draws,
        "every image of the second came from the first"
    );
    assert_eq!(cache.stats().misses, a.draws);
    assert_eq!((a.pooled, a.waited), (a.draws, 0));
    assert_eq!((b.pooled, b.waited), (0, b.draws));
}

#[test]
fn copy_bits_while_an_image_is_made_goes_as_damage() {
    let (mut rigs, gate, _cache) = clients(1);
    let rig = &mut rigs[0];
    gate.set(true);
    rig.drain();
    gate.set(false);

    let e = rig.canvas.paint_natural(Rect::ltrb(0, 0, 320, 240), 9);
    rig.event(e);
    assert!(poll_once(rig));
    // Its source is in the image on its way, read after this event: replayed after that
    // image it would copy newer pixels.
    let e = rig.canvas.copy((0, 0), Rect::ltrb(200, 100, 260, 160));
    rig.event(e);
    let e = rig.canvas.paint(Rect::ltrb(10, 10, 20, 20), 0x33);
    rig.event(e);
    gate.set(true);
    wait_until_in(rig);
    rig.drain();
    assert_eq!(rig.pipe.stats().copy_bits, 0);
    rig.assert_converged();
}

#[test]
fn an_image_of_a_replaced_surface_is_dropped() {
    let (mut rigs, gate, _cache) = clients(1);
    let rig = &mut rigs[0];
    assert!(poll_once(rig));
    rig.replace_primary(40, 30);
    let e = rig.canvas.paint(Rect::ltrb(0, 0, 40, 30), 0x44);
    rig.event(e);
    assert!(rig.pipe.awaited().is_none(), "forgotten with the surface");
    gate.set(true);
    rig.drain();
    assert_eq!(rig.client.width, 40);
    rig.assert_converged();
}
