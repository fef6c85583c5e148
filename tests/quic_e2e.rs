//! Natural images (the `video` workload's plasma + noise, gradients with noise, flat blocks
//! inside them) reach real spice-gtk clients as QUIC under the default image compression,
//! and the clients' screens equal the canonical surface pixel for pixel: spice-common's
//! decoder is the judge of our encoder.

mod spice_support;

use spice_support::*;
use vhost_user_spice::display::Rect;
use vhost_user_spice::spice::ticket::Ticketing;
use vhost_user_spice::spice::{ClientStats, DisplayStats};
use vhost_user_spice::workload::{Generator, Workload, WorkloadConfig};

const W: u32 = 1280;
const H: u32 = 720;

fn xorshift(s: &mut u32) -> u32 {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    *s
}

/// A gradient plus 0..7 of noise per channel (B, G, R, X pixels), with flat blocks from
/// row `flat_from` on: LZ4 finds nothing to shrink in the first rows, so the whole image
/// goes QUIC, and its flat blocks exercise the run mode.
fn natural(w: u32, h: u32, seed: u32, flat_from: u32) -> Vec<u8> {
    let mut s = seed | 1;
    let mut px = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let n = xorshift(&mut s);
            let flat = y >= flat_from && (x / 24 + y / 16) % 3 == 0;
            let p = if flat {
                [0x30, 0x90, (y / 16) as u8, 0xff]
            } else {
                let v = ((x * 2 + y * 3) % 230) as u8;
                [
                    v + (n & 7) as u8,
                    (v / 2) + ((n >> 3) & 7) as u8,
                    240 - v + ((n >> 6) & 7) as u8,
                    0xff,
                ]
            };
            px.extend_from_slice(&p);
        }
    }
    px
}

fn noise(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut s = seed | 1;
    (0..w * h)
        .flat_map(|_| {
            let n = xorshift(&mut s);
            [n as u8, (n >> 8) as u8, (n >> 16) as u8, 0xff]
        })
        .collect()
}

fn display(stats: &[ClientStats]) -> DisplayStats {
    stats[0].display.expect("display linked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natural_images_reach_spice_gtk_as_quic_and_converge() {
    let rig = start(Ticketing::Disabled).await;
    rig.guest.create_primary(W, H);
    rig.guest.draw(
        Rect::ltrb(0, 0, W as i32, H as i32),
        natural(W, H, 1, H / 2),
    );
    rig.guest.sync();
    if !have_python_client() {
        return;
    }
    let mut c = PyClient::connect(rig.port, None).await;
    c.wait_event("mark").await;
    // The first picture: 1280 × 720, natural above, runs below, all one QUIC image.
    assert_same_picture(&c.dump(200).await, &rig.guest.primary_rgb());
    let first = display(&rig.server.client_stats());
    assert!(first.quic, "QUIC is on by default");
    assert!(first.pipe.quic_images >= 1, "{first:?}");

    // Frames of the `video` workload: its 641 × 361 region (odd sizes) of plasma + noise.
    let mut gen = Generator::new(WorkloadConfig {
        width: W,
        height: H,
        video: (641, 361),
        ..WorkloadConfig::new(Workload::Video)
    });
    let mut quic_draws = 0;
    for n in 0..4 {
        gen.frame(n, &mut |cmd| rig.guest.draw_workload(cmd));
        rig.guest.sync();
        assert_same_picture(&c.dump(150).await, &rig.guest.primary_rgb());
        quic_draws += 1;
    }

    // Shapes: one column, one row, widths that are not multiples of 4, a wide strip whose
    // rows cross the encoder's 2048-pixel wait-mask steps within the image, flat blocks
    // (runs) under natural rows, and noise (which QUIC does not shrink: it goes raw).
    enum Content {
        Natural,
        WithRuns,
        Noise,
    }
    let shapes = [
        (Rect::ltrb(3, 5, 4, 605), Content::Natural),
        (Rect::ltrb(17, 700, 1217, 701), Content::Natural),
        (Rect::ltrb(101, 33, 434, 74), Content::Natural),
        (Rect::ltrb(0, 400, 1279, 447), Content::WithRuns),
        (Rect::ltrb(900, 100, 1177, 350), Content::WithRuns),
        (Rect::ltrb(500, 500, 597, 553), Content::Noise),
    ];
    for (i, (rect, content)) in shapes.into_iter().enumerate() {
        let (w, h) = (rect.width() as u32, rect.height() as u32);
        let seed = 7 + i as u32;
        let before = display(&rig.server.client_stats()).pipe.quic_images;
        let pixels = match content {
            Content::Natural => natural(w, h, seed, h),
            Content::WithRuns => natural(w, h, seed, h / 2),
            Content::Noise => noise(w, h, seed),
        };
        rig.guest.draw(rect, pixels);
        rig.guest.sync();
        assert_same_picture(&c.dump(150).await, &rig.guest.primary_rgb());
        let after = display(&rig.server.client_stats()).pipe.quic_images;
        if matches!(content, Content::Noise) {
            assert_eq!(after, before, "noise goes raw");
        } else {
            assert!(after > before, "{rect:?} went as QUIC");
            quic_draws += 1;
        }
    }
    let end = display(&rig.server.client_stats());
    eprintln!(
        "{} QUIC images of {} draws, {} LZ4, {} bytes framed",
        end.pipe.quic_images, end.pipe.draws, end.pipe.lz4_images, end.bytes_framed
    );
    assert!(end.pipe.quic_images >= first.pipe.quic_images + quic_draws);

    // A second client (spicy-screenshot, spice-gtk's own tool) joining now gets the whole
    // screen at once and sees the same picture.
    if let Some(bin) = client("/usr/bin/spicy-screenshot") {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("shot.ppm");
        let status = tokio::time::timeout(
            WAIT,
            tokio::process::Command::new(bin)
                .args(["-h", "127.0.0.1", "-p", &rig.port.to_string(), "-o"])
                .arg(&out)
                .kill_on_drop(true)
                .status(),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(status.success(), "spicy-screenshot failed: {status}");
        assert_same_picture(
            &read_ppm(&std::fs::read(&out).unwrap()),
            &rig.guest.primary_rgb(),
        );
    }
    rig.server.shutdown().await;
}
