//! Encode once and LZ4 through the pipe: clients sharing a cache, and what goes raw.

use super::*;

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
        rig.pipe.resync(&*rig.canvas);
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
        rig.pipe.resync(&*rig.canvas);
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
        rig.pipe.resync(&*rig.canvas);
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
