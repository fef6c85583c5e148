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
        rig.pipe.resync(&*rig.canvas);
        rig.drain();
        let e = rig.canvas.paint_natural(Rect::ltrb(5, 3, 60, 40), 42);
        rig.event(e);
        rig.drain();
        rig.assert_converged();
        assert_eq!(rig.pipe.stats().quic_images, 1);
    }
    assert_eq!(b.pipe.stats().cache_hits, 2, "B took A's images");
}

/// Two auto-mode clients sharing one cache, both with the primary sent.
fn two_clients() -> (Rig, Rig) {
    let auto = config(true, true);
    let cache = Arc::new(ImageCache::new(1 << 20));
    let mut a = Rig::new(auto);
    let mut b = Rig::new(auto);
    a.pipe = DisplayPipe::new(auto).with_cache(Arc::clone(&cache));
    b.pipe = DisplayPipe::new(auto).with_cache(cache);
    for rig in [&mut a, &mut b] {
        rig.pipe.resync(&*rig.canvas);
        rig.drain();
    }
    (a, b)
}

/// The guest's next video frame: the same natural picture on both rigs' canvases.
fn next_frame(a: &mut Rig, b: &mut Rig, seed: u32) {
    for rig in [a, b] {
        let (w, h) = rig.canvas.size();
        let e = rig.canvas.paint_natural(Rect::ltrb(0, 0, w, h), seed);
        rig.event(e);
    }
}

/// One poll, delivered: what a client gets when its socket drains once.
fn poll_once(rig: &mut Rig) {
    rig.pipe.poll_transmit(&*rig.canvas, &rig.ack, &mut rig.out);
    let bytes = rig.out.unsent_bytes();
    rig.out.advance(bytes.len());
    rig.client.receive(&bytes);
}

#[test]
fn a_client_behind_gets_the_newest_frame_another_client_encoded() {
    let (mut a, mut b) = two_clients();
    next_frame(&mut a, &mut b, 1);
    a.drain();
    let frame1 = a.canvas.pixels();
    // Frame 2 comes before B has read frame 1.
    next_frame(&mut a, &mut b, 2);
    let before = b.pipe.stats();
    poll_once(&mut b);
    assert_eq!(bgr(&b.client.pixels), bgr(&frame1), "A's frame 1");
    assert!(b.pipe.has_work(), "the rectangle stays dirty");
    assert_eq!(b.pipe.stats().older_images, 1);
    // Its next turn: frame 2, which nobody had yet, encoded by B and kept for A.
    b.drain();
    b.assert_converged();
    let after = b.pipe.stats();
    assert_eq!(after.older_images, 1);
    assert_eq!(after.quic_images - before.quic_images, 2);
    assert_eq!(after.draws - before.draws, 2);
    let hits = a.pipe.stats().cache_hits;
    a.drain();
    a.assert_converged();
    assert_eq!(a.pipe.stats().cache_hits, hits + 1, "B's frame 2");

    // A client in step is never sent a frame older than the current one: A has frame 2
    // (the newest kept), so frame 3 is encoded for it.
    next_frame(&mut a, &mut b, 3);
    a.drain();
    a.assert_converged();
    assert_eq!(a.pipe.stats().older_images, 0);
    b.drain();
    b.assert_converged();
    assert_eq!(b.pipe.stats().older_images, 1, "frame 3 was there for B");
}

#[test]
fn frames_of_a_replaced_surface_are_not_sent_as_older_ones() {
    let (mut a, mut b) = two_clients();
    next_frame(&mut a, &mut b, 1);
    a.drain();
    // The guest replaces the primary by one of the same size before B reads anything.
    for rig in [&mut a, &mut b] {
        let info = rig.canvas.resize(64, 48);
        rig.event(DisplayEvent::SurfaceCreated(info));
    }
    b.drain();
    b.assert_converged();
    assert_eq!(b.pipe.stats().older_images, 0);
}
