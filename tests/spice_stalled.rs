//! A client that stops reading holds nobody back: the others keep getting every update, and
//! when it resumes it receives a squashed picture of the current screen, not the backlog.

mod spice_support;

use std::time::{Duration, Instant};

use spice_support::raw::Raw;
use spice_support::*;
use vhost_user_spice::display::Rect;
use vhost_user_spice::spice::ticket::Ticketing;
use vhost_user_spice::spice::wire::{
    BitmapFormat, Codec, ImageData, MsgDisplayCopyBits, MsgDisplayDrawCopy,
    MsgDisplaySurfaceCreate, MsgcAck, MsgcAckSync,
};
use vhost_user_spice::spice::SpiceConfig;

const W: u32 = 320;
const H: u32 = 240;

/// A display client that keeps its own copy of the primary, as spice-gtk does.
struct Viewer {
    _main: Raw,
    display: Raw,
    width: u32,
    pixels: Vec<u8>,
    received: u64,
    bytes: usize,
}

impl Viewer {
    async fn open(port: u16) -> Self {
        let (main, mut display) = Raw::display_session(port).await;
        display.send_display_init().await;
        Self {
            _main: main,
            display,
            width: 0,
            pixels: Vec::new(),
            received: 0,
            bytes: 0,
        }
    }

    /// Applies one message, acking like spice-gtk.
    async fn step(&mut self) {
        let (t, body) = self.display.recv().await;
        self.received += 1;
        self.bytes += body.len() + 6;
        match t {
            3 => {
                let generation = u32::from_le_bytes(body[..4].try_into().unwrap());
                self.display.send(&MsgcAckSync { generation }).await;
                self.received = 0;
            }
            314 => {
                let m = MsgDisplaySurfaceCreate::read_bytes(&body).unwrap();
                self.width = m.width;
                self.pixels = vec![0; (m.width * m.height * 4) as usize];
            }
            304 => {
                let m = MsgDisplayDrawCopy::read_bytes(&body).unwrap();
                let ImageData::Bitmap(bm) = m.src_bitmap.data else {
                    panic!("raw clients get bitmaps")
                };
                assert_eq!(bm.format, BitmapFormat::FMT_24BIT);
                let b = m.base.bbox;
                let w = (b.right - b.left) as usize;
                for (i, y) in (b.top..b.bottom).enumerate() {
                    for x in 0..w {
                        let at = (y as usize * self.width as usize + b.left as usize + x) * 4;
                        let from = bm.stride as usize * i + x * 3;
                        self.pixels[at..at + 3].copy_from_slice(&bm.data[from..from + 3]);
                    }
                }
            }
            104 => {
                let m = MsgDisplayCopyBits::read_bytes(&body).unwrap();
                let b = m.base.bbox;
                let old = self.pixels.clone();
                let row = (b.right - b.left) as usize * 4;
                for dy in 0..(b.bottom - b.top) as usize {
                    let from = ((m.src_pos.y as usize + dy) * self.width as usize
                        + m.src_pos.x as usize)
                        * 4;
                    let to = ((b.top as usize + dy) * self.width as usize + b.left as usize) * 4;
                    self.pixels[to..to + row].copy_from_slice(&old[from..from + row]);
                }
            }
            _ => {}
        }
        if self.received > 0 && self.received % 20 == 0 {
            self.display.send(&MsgcAck::default()).await;
        }
    }

    /// Reads until the picture equals `want`.
    async fn converge(&mut self, guest: &Guest) {
        let deadline = Instant::now() + WAIT;
        loop {
            let snap = guest.display.snapshot(0).unwrap();
            // The wire carries B, G, R (24-bit bitmaps); the fourth byte is not sent.
            let same = self
                .pixels
                .chunks(4)
                .zip(snap.pixels.chunks(4))
                .all(|(a, b)| a[..3] == b[..3]);
            if same {
                return;
            }
            assert!(Instant::now() < deadline, "viewer did not converge");
            tokio::time::timeout(Duration::from_millis(200), self.step())
                .await
                .ok();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_client_does_not_delay_others_and_gets_a_squashed_catch_up() {
    let rig = start_with(SpiceConfig {
        listeners: vec![vhost_user_spice::spice::ListenerSpec::tcp(
            ([127, 0, 0, 1], 0).into(),
        )],
        pipe_budget: 64 * 1024,
        ..SpiceConfig::new(Ticketing::Disabled)
    })
    .await;
    rig.guest.create_primary(W, H);
    rig.guest
        .draw(Rect::ltrb(0, 0, W as i32, H as i32), pattern(W, H, 0));
    rig.guest.sync();

    let mut stalled = Viewer::open(rig.port).await;
    let mut good = Viewer::open(rig.port).await;
    good.converge(&rig.guest).await;

    // 60 full frames (18 MB) while `stalled` reads nothing; `good` follows each one.
    let frames = 60;
    for seed in 1..=frames {
        rig.guest
            .draw(Rect::ltrb(0, 0, W as i32, H as i32), pattern(W, H, seed));
        rig.guest.sync();
        good.converge(&rig.guest).await;
    }

    // The stalled client catches up with far fewer bytes than the frames it missed.
    let before = stalled.bytes;
    stalled.converge(&rig.guest).await;
    let caught_up = stalled.bytes - before;
    let frame = (W * H * 4) as usize;
    eprintln!("stalled client: {caught_up} bytes to catch up on {frames} frames of {frame} bytes");
    assert!(caught_up < frame * 20, "{caught_up} bytes");
    rig.server.shutdown().await;
}

/// Prints how fast one raw client receives full-screen 1920 × 1080 updates (raw bitmaps).
/// A measurement, not a check: `cargo test --test spice_stalled -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_full_hd_update_rate() {
    let (w, h) = (1920u32, 1080u32);
    let rig = start(Ticketing::Disabled).await;
    rig.guest.create_primary(w, h);
    rig.guest.sync();
    let mut viewer = Viewer::open(rig.port).await;
    viewer.converge(&rig.guest).await;
    let frames: Vec<Vec<u8>> = (1..=4).map(|s| pattern(w, h, s)).collect();
    let n = 30;
    let started = Instant::now();
    let bytes0 = viewer.bytes;
    for i in 0..n {
        rig.guest
            .draw(Rect::ltrb(0, 0, w as i32, h as i32), frames[i % 4].clone());
        rig.guest.sync();
        viewer.converge(&rig.guest).await;
    }
    let t = started.elapsed().as_secs_f64();
    eprintln!(
        "full HD, raw bitmaps, one client: {:.1} frames/s, {:.0} MB/s received",
        n as f64 / t,
        (viewer.bytes - bytes0) as f64 / t / 1e6
    );
    rig.server.shutdown().await;
}
