//! A guest scrolling documents, as spice-ref-server's `fullscreen` workload does (the whole
//! screen redrawn as one DRAW_COPY per frame), reaches a real spice-gtk client as COPY_BITS
//! plus the new rows, and the client's screen ends equal to the canonical surface.

mod spice_support;

use spice_support::*;
use vhost_user_spice::display::Rect;
use vhost_user_spice::spice::ticket::Ticketing;
use vhost_user_spice::workload::{Generator, Workload, WorkloadConfig};

const W: u32 = 640;
const H: u32 = 400;

/// Frames of `fullscreen` drawn, each waited for by the client.
const FRAMES: u32 = 6;

/// Rows of a document line in the hand-made view below.
const LINE: u32 = 16;

/// A view of `w × h` at document row `at`: distinct text-like rows, blank gaps between lines.
fn view(w: u32, h: u32, at: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity((w * h * 4) as usize);
    for y in at..at + h {
        for x in 0..w {
            let ink = y % LINE < 12 && (x / 4 + y * 7) % 5 != 0;
            let px: [u8; 4] = if ink {
                [(x * 3 + y) as u8, (y * 5) as u8, (x ^ y) as u8, 0xff]
            } else {
                [0xf0, 0xf0, 0xf0, 0xff]
            };
            v.extend_from_slice(&px);
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrolled_documents_reach_the_client_as_copy_bits_and_converge() {
    let rig = start(Ticketing::Disabled).await;
    rig.guest.create_primary(W, H);
    let mut gen = Generator::new(WorkloadConfig {
        width: W,
        height: H,
        ..WorkloadConfig::new(Workload::Fullscreen)
    });
    let mut draw_frame = |n: u32, wait: bool| {
        gen.frame(n, &mut |cmd| rig.guest.draw_workload(cmd));
        if wait {
            rig.guest.sync();
        }
    };
    draw_frame(0, true);
    if !have_python_client() {
        return;
    }
    let mut c = PyClient::connect(rig.port, None).await;
    c.wait_event("mark").await;
    assert_same_picture(&c.dump(200).await, &rig.guest.primary_rgb());
    let stats = || {
        rig.server.client_stats()[0]
            .display
            .expect("display linked")
    };
    let start = stats();

    // The document scrolls up 8 rows a frame under its title bar.
    for n in 1..=FRAMES {
        draw_frame(n, true);
        assert_same_picture(&c.dump(150).await, &rig.guest.primary_rgb());
    }
    // A 320-pixel-wide view in the middle scrolls down by a line, then up by three, each
    // drawn as the view alone.
    let v = Rect::ltrb(160, 100, 480, 340);
    let (vw, vh) = (v.width() as u32, v.height() as u32);
    for at in [100, 100 - LINE, 100 + 2 * LINE] {
        rig.guest.draw(v, view(vw, vh, at));
        rig.guest.sync();
        assert_same_picture(&c.dump(150).await, &rig.guest.primary_rgb());
    }

    let end = stats();
    let copies = end.pipe.copy_bits - start.pipe.copy_bits;
    let bytes = end.bytes_framed - start.bytes_framed;
    let frame = u64::from(W * H * 4);
    eprintln!("{copies} COPY_BITS, {bytes} bytes for {FRAMES} full-screen frames and 3 views");
    // The first view draw is new content; every other redraw is a scroll.
    assert_eq!(copies, u64::from(FRAMES) + 2, "{end:?}");
    // Raw, each frame alone would be `frame` bytes; the copies leave a few rows each.
    assert!(bytes < frame, "{bytes} bytes framed: {end:?}");

    // Frames back to back, faster than the client is served: a copy whose source is still
    // waiting to be sent, or older than a read already sent, goes as pixels instead.
    for n in FRAMES + 1..=FRAMES + 8 {
        draw_frame(n, false);
    }
    rig.guest.sync();
    assert_same_picture(&c.dump(300).await, &rig.guest.primary_rgb());
    let burst = stats();
    eprintln!(
        "burst: {} COPY_BITS, {} images",
        burst.pipe.copy_bits - end.pipe.copy_bits,
        burst.pipe.draws - end.pipe.draws
    );
    rig.server.shutdown().await;
}
