//! QUIC through the pipe: natural images go out as QUIC in `auto` (with or without the LZ4
//! capability), text as LZ4, noise raw; `lz4` mode never sends QUIC.

use super::*;

fn config(lz4: bool, quic: bool) -> PipeConfig {
    PipeConfig {
        lz4,
        quic,
        ..CONFIG
    }
}

/// Paints natural content over the whole canvas and sends it; returns the stats' change.
fn send_natural(rig: &mut Rig, seed: u32) -> PipeStats {
    rig.drain();
    let before = rig.pipe.stats();
    let (w, h) = rig.canvas.size();
    let e = rig.canvas.paint_natural(Rect::ltrb(0, 0, w, h), seed);
    rig.event(e);
    rig.drain();
    rig.assert_converged();
    let after = rig.pipe.stats();
    PipeStats {
        lz4_images: after.lz4_images - before.lz4_images,
        quic_images: after.quic_images - before.quic_images,
        draws: after.draws - before.draws,
        ..PipeStats::default()
    }
}

#[test]
fn natural_images_go_as_quic_in_auto_mode_with_or_without_lz4() {
    for lz4 in [true, false] {
        let mut rig = Rig::new(config(lz4, true));
        let d = send_natural(&mut rig, 0x1234_5678);
        assert_eq!(
            (d.draws, d.quic_images, d.lz4_images),
            (1, 1, 0),
            "lz4 {lz4}"
        );
    }
}

#[test]
fn lz4_mode_sends_natural_images_raw() {
    let mut rig = Rig::new(config(true, false));
    let d = send_natural(&mut rig, 7);
    assert_eq!((d.draws, d.quic_images, d.lz4_images), (1, 0, 0));
}

#[test]
fn auto_mode_still_sends_flat_content_as_lz4_and_noise_raw() {
    let mut rig = Rig::new(config(true, true));
    rig.drain();
    // The first image (a flat canvas) pays with LZ4.
    assert_eq!(rig.pipe.stats().lz4_images, 1);
    assert_eq!(rig.pipe.stats().quic_images, 0);
    let e = rig.canvas.paint_noise(Rect::ltrb(0, 0, 64, 48), 99);
    rig.event(e);
    rig.drain();
    rig.assert_converged();
    assert_eq!(rig.pipe.stats().quic_images, 0, "noise does not pay: raw");
}

#[test]
fn quic_is_encoded_once_for_every_client() {
    let auto = config(true, true);
    let cache = Arc::new(ImageCache::new(1 << 20));
    let mut a = Rig::new(auto);
    let mut b = Rig::new(auto);
    a.pipe = DisplayPipe::new(auto).with_cache(Arc::clone(&cache));
    b.pipe = DisplayPipe::new(auto).with_cache(Arc::clone(&cache));
    for rig in [&mut a, &mut b] {
        rig.pipe.resync(&rig.canvas);
        rig.drain();
        let e = rig.canvas.paint_natural(Rect::ltrb(5, 3, 60, 40), 42);
        rig.event(e);
        rig.drain();
        rig.assert_converged();
        assert_eq!(rig.pipe.stats().quic_images, 1);
    }
    assert_eq!(b.pipe.stats().cache_hits, 2, "B took A's images");
}
