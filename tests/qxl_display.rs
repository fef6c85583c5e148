//! The QXL device and the display worker joined: what a producer draws through real QXL
//! structures in shared memory is what the display's snapshots hold, byte for byte.

use std::thread;
use std::time::{Duration, Instant};

use qxl::{DeviceConfig, IoRequest, Producer};
use vhost_user_spice::display::qxl_source::{spawn_qxl, QxlSource};
use vhost_user_spice::display::source::{CursorCommand, CursorShape, Work};
use vhost_user_spice::display::{CommandSource, DisplayHandle, Point};

/// Generous: only reached when a test is failing.
const WAIT: Duration = Duration::from_secs(5);
const W: u32 = 640;
const H: u32 = 480;

fn device() -> (Producer, DisplayHandle) {
    let (producer, consumer) = qxl::new_device(DeviceConfig::default()).unwrap();
    (producer, spawn_qxl(consumer))
}

fn qrect(left: i32, top: i32, right: i32, bottom: i32) -> qxl::Rect {
    qxl::Rect {
        top,
        left,
        bottom,
        right,
    }
}

/// Returns once the worker has applied every command pushed so far: a device I/O request is
/// handed out only after the command ring is drained, and answered after it is handled.
fn sync(p: &mut Producer) {
    let (w, h) = p.primary().unwrap();
    let area = qrect(0, 0, w as i32, h as i32);
    p.io(IoRequest::UpdateArea {
        surface_id: 0,
        area,
    })
    .unwrap();
}

/// The screen as the test believes it is: 32-bit pixels, bytes B, G, R, X.
struct Model {
    width: usize,
    pixels: Vec<u8>,
}

impl Model {
    fn new(width: u32, height: u32) -> Self {
        Model {
            width: width as usize,
            pixels: vec![0; width as usize * height as usize * 4],
        }
    }

    fn at(&self, x: i32, y: i32) -> usize {
        (y as usize * self.width + x as usize) * 4
    }

    fn copy(&mut self, r: qxl::Rect, src: &[u8]) {
        let row = r.width() as usize * 4;
        for (i, y) in (r.top..r.bottom).enumerate() {
            let at = self.at(r.left, y);
            self.pixels[at..at + row].copy_from_slice(&src[i * row..(i + 1) * row]);
        }
    }

    fn fill(&mut self, r: qxl::Rect, color: u32) {
        for y in r.top..r.bottom {
            for x in r.left..r.right {
                let at = self.at(x, y);
                self.pixels[at..at + 4].copy_from_slice(&color.to_le_bytes());
            }
        }
    }

    fn copy_bits(&mut self, src: Point, dest: qxl::Rect) {
        let before = self.pixels.clone();
        let row = dest.width() as usize * 4;
        for (i, y) in (dest.top..dest.bottom).enumerate() {
            let from = self.at(src.x, src.y + i as i32);
            let to = self.at(dest.left, y);
            self.pixels[to..to + row].copy_from_slice(&before[from..from + row]);
        }
    }
}

/// Pixels of `r` in a pattern that differs per `seed`. The X byte is 0xff: the worker marks
/// the pixels of a 32BIT bitmap opaque, so that is what a snapshot holds.
fn pattern(r: qxl::Rect, seed: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.width() as usize * r.height() as usize * 4);
    for y in r.top..r.bottom {
        for x in r.left..r.right {
            let v = (x as u32).wrapping_mul(2654435761) ^ (y as u32).wrapping_mul(40503) ^ seed;
            out.extend_from_slice(&[v as u8, (v >> 8) as u8, (v >> 16) as u8, 0xff]);
        }
    }
    out
}

fn assert_screen(handle: &DisplayHandle, model: &Model, what: &str) {
    let snap = handle.snapshot(0).expect("a primary surface");
    assert_eq!(snap.stride, model.width * 4, "{what}: stride");
    if *snap.pixels != model.pixels[..] {
        let first = snap
            .pixels
            .iter()
            .zip(&model.pixels)
            .position(|(a, b)| a != b);
        panic!("{what}: snapshot differs from the model, first at byte {first:?}");
    }
}

#[test]
fn draws_reach_the_snapshot_byte_for_byte() {
    let (mut p, handle) = device();
    p.create_primary(W, H).unwrap();
    let info = handle.surfaces();
    assert_eq!((info.len(), info[0].width, info[0].height), (1, W, H));
    let mut model = Model::new(W, H);
    assert_screen(&handle, &model, "fresh primary");

    let full = qrect(0, 0, W as i32, H as i32);
    let frame = pattern(full, 1);
    p.draw_copy(full, &frame, W as usize * 4).unwrap();
    model.copy(full, &frame);
    let small = qrect(13, 7, 13 + 50, 7 + 21);
    let pixels = pattern(small, 2);
    p.draw_copy(small, &pixels, 50 * 4).unwrap();
    model.copy(small, &pixels);
    sync(&mut p);
    assert_screen(&handle, &model, "draw_copy");

    let red = qrect(100, 200, 300, 260);
    p.fill(red, 0xffff_0000).unwrap();
    model.fill(red, 0xffff_0000);
    let (src, dest) = (Point { x: 90, y: 190 }, qrect(120, 210, 320, 290));
    p.copy_bits(qxl::Point { x: src.x, y: src.y }, dest)
        .unwrap();
    model.copy_bits(src, dest);
    sync(&mut p);
    assert_screen(&handle, &model, "fill and copy_bits");

    p.destroy_primary().unwrap();
    assert!(handle.snapshot(0).is_none(), "the primary is gone");
    assert!(handle.surfaces().is_empty());
}

#[test]
fn off_screen_surfaces_and_the_monitor_layout_pass_through() {
    let (mut p, handle) = device();
    p.create_primary(W, H).unwrap();
    p.create_surface(3, 32, 16).unwrap();
    sync(&mut p);
    let ids: Vec<(u32, u32, u32)> = handle
        .surfaces()
        .iter()
        .map(|s| (s.surface_id, s.width, s.height))
        .collect();
    assert_eq!(ids, [(0, W, H), (3, 32, 16)]);
    p.destroy_surface(3).unwrap();
    sync(&mut p);
    assert!(handle.snapshot(3).is_none());

    let head = qxl::Head {
        id: 0,
        surface_id: 0,
        width: W,
        height: H,
        x: 0,
        y: 0,
    };
    p.io(IoRequest::MonitorsConfig(vec![head])).unwrap();
    let got = handle.monitors();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].id, got[0].surface_id, got[0].width, got[0].height),
        (0, 0, W, H)
    );
}

#[test]
fn cursor_commands_reach_the_cursor_state() {
    let (mut p, handle) = device();
    p.create_primary(W, H).unwrap();
    let (w, h) = (24u16, 16u16);
    let shape: Vec<u8> = (0..u32::from(w) * u32::from(h))
        .flat_map(|i| (i.wrapping_mul(0x0101_0307) | 0xff00_0000).to_le_bytes())
        .collect();
    p.cursor_set(&shape, w, h, 3, 5, qxl::Point { x: 100, y: 50 }, true)
        .unwrap();
    assert!(handle.wait_until(WAIT, |h| h.cursor().shape.is_some()));
    let cursor = handle.cursor();
    let got = cursor.shape.unwrap();
    assert_eq!(
        (got.kind, got.width, got.height, got.hot_x, got.hot_y),
        (CursorShape::ALPHA, w, h, 3, 5)
    );
    assert_eq!(got.data, shape);
    assert_eq!(cursor.position, Point { x: 100, y: 50 });
    assert!(cursor.visible);

    p.cursor_move(qxl::Point { x: 7, y: 9 }).unwrap();
    assert!(handle.wait_until(WAIT, |h| h.cursor().position == Point { x: 7, y: 9 }));
    p.cursor_hide().unwrap();
    assert!(handle.wait_until(WAIT, |h| !h.cursor().visible));
    assert!(handle.cursor().shape.is_some(), "hiding keeps the shape");

    // Destroying the primary resets the cursor, as QEMU's qxl does.
    p.destroy_primary().unwrap();
    assert!(handle.cursor().shape.is_none());
}

#[test]
fn reset_forgets_everything_and_the_device_draws_again() {
    let (mut p, handle) = device();
    p.create_primary(W, H).unwrap();
    let shape = vec![0xff; 8 * 8 * 4];
    p.cursor_set(&shape, 8, 8, 0, 0, qxl::Point { x: 1, y: 1 }, true)
        .unwrap();
    p.fill(qrect(0, 0, 10, 10), 0xff00_ff00).unwrap();
    assert!(handle.wait_until(WAIT, |h| h.cursor().shape.is_some()));
    p.reset().unwrap();
    assert!(handle.surfaces().is_empty());
    assert!(handle.cursor().shape.is_none());

    p.create_primary(320, 200).unwrap();
    let mut model = Model::new(320, 200);
    let r = qrect(5, 6, 105, 56);
    let pixels = pattern(r, 3);
    p.draw_copy(r, &pixels, 100 * 4).unwrap();
    model.copy(r, &pixels);
    sync(&mut p);
    assert_screen(&handle, &model, "after reset");
}

#[test]
fn a_broken_command_ring_is_dropped_and_the_rest_goes_on() {
    let (mut p, handle) = device();
    p.create_primary(W, H).unwrap();
    // The guest writes a producer index the ring cannot hold: the consumer reports it once
    // and stops reading that ring until a reset.
    let prod_at = p.layout().cmd_ring() + qxl::abi::RING_PROD_OFFSET;
    p.write_region(prod_at, &1000u32.to_le_bytes()).unwrap();
    p.notify();
    let shape = vec![0xff; 4 * 4 * 4];
    p.cursor_set(&shape, 4, 4, 0, 0, qxl::Point { x: 2, y: 3 }, true)
        .unwrap();
    assert!(
        handle.wait_until(WAIT, |h| h.cursor().shape.is_some()),
        "the cursor ring still works"
    );
    p.reset().unwrap();
    p.create_primary(64, 64).unwrap();
    p.fill(qrect(0, 0, 64, 64), 0xff12_3456).unwrap();
    sync(&mut p);
    let mut model = Model::new(64, 64);
    model.fill(qrect(0, 0, 64, 64), 0xff12_3456);
    assert_screen(&handle, &model, "after reset");
}

/// xorshift64*: reproducible draws without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % u64::from(n)) as u32
    }
}

/// The rectangles of `n` random small draws inside `width` × `height`.
fn random_rects(n: u32, width: u32, height: u32) -> Vec<qxl::Rect> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|_| {
            let (w, h) = (1 + rng.below(64), 1 + rng.below(64));
            let (x, y) = (rng.below(width - w + 1), rng.below(height - h + 1));
            qrect(x as i32, y as i32, (x + w) as i32, (y + h) as i32)
        })
        .collect()
}

#[test]
fn many_draws_from_a_producer_thread_while_reading_snapshots() {
    const DRAWS: u32 = 500;
    /// Snapshots kept for the replay check, at most one per this many generations.
    const KEEP_EVERY: u64 = 20;
    let (mut p, handle) = device();
    p.create_primary(W, H).unwrap();
    let created = handle.surfaces()[0].generation;
    let rects = random_rects(DRAWS, W, H);
    let to_draw = rects.clone();
    let producer = thread::spawn(move || {
        for (i, r) in to_draw.into_iter().enumerate() {
            let pixels = pattern(r, i as u32);
            p.draw_copy(r, &pixels, r.width() as usize * 4).unwrap();
        }
        sync(&mut p);
        p
    });
    let (mut read, mut kept) = (0, Vec::new());
    let mut last_generation = created;
    while !producer.is_finished() {
        let snap = handle.snapshot(0).unwrap();
        assert_eq!((snap.info.width, snap.info.height), (W, H));
        assert!(snap.info.generation >= last_generation);
        if snap.info.generation >= last_generation + KEEP_EVERY {
            kept.push(snap.clone());
        }
        last_generation = snap.info.generation;
        read += 1;
        thread::yield_now();
    }
    producer.join().unwrap();

    // Each draw is one generation of the primary, applied whole: a snapshot of generation
    // `created + k` is the model after exactly k draws, never a torn mix.
    let mut model = Model::new(W, H);
    let checked = kept.len();
    let mut kept = kept.into_iter().peekable();
    for (k, r) in rects.iter().enumerate() {
        model.copy(*r, &pattern(*r, k as u32));
        let generation = created + k as u64 + 1;
        while let Some(snap) = kept.next_if(|s| s.info.generation == generation) {
            assert!(*snap.pixels == model.pixels[..], "snapshot after draw {k}");
        }
    }
    assert!(
        kept.next().is_none(),
        "a snapshot with an unexpected generation"
    );
    assert_screen(&handle, &model, "after 500 draws");
    eprintln!("{DRAWS} draws, {read} snapshots read meanwhile, {checked} replayed");
}

#[test]
fn a_full_hd_frame_in_one_draw_copy() {
    let (mut p, handle) = device();
    let (w, h) = (1920u32, 1080u32);
    p.create_primary(w, h).unwrap();
    let full = qrect(0, 0, w as i32, h as i32);
    let frame = pattern(full, 4);
    let start = Instant::now();
    p.draw_copy(full, &frame, w as usize * 4).unwrap();
    let pushed = start.elapsed();
    sync(&mut p);
    let shown = start.elapsed();
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!("1920x1080 draw_copy ({build}): pushed in {pushed:?}, on the display in {shown:?}");
    let mut model = Model::new(w, h);
    model.copy(full, &frame);
    assert_screen(&handle, &model, "full HD frame");
}

/// Drives a `QxlSource` by hand, as the worker does, to see the order it hands work out.
#[test]
fn a_busy_command_ring_does_not_starve_the_cursor() {
    let (p, consumer) = qxl::new_device(DeviceConfig::default()).unwrap();
    let mut source = QxlSource::new(consumer);
    let creating = thread::spawn(move || {
        let mut p = p;
        p.create_primary(64, 64).map(|()| p)
    });
    let Some(Work::Io(io)) = source.next(WAIT) else {
        panic!("expected the create-primary request");
    };
    io.complete(Ok(()));
    let mut p = creating.join().unwrap().unwrap();

    for i in 0..6 {
        p.fill(qrect(i, 0, i + 1, 1), 0xff00_0000).unwrap();
    }
    for i in 0..3 {
        p.cursor_move(qxl::Point { x: i, y: i }).unwrap();
    }
    let order: String = (0..9)
        .map(|_| match source.next(WAIT) {
            Some(Work::Draw(_)) => 'D',
            Some(Work::Cursor(CursorCommand::Move { .. })) => 'C',
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(order, "DCDCDCDDD");
    assert!(source.next(Duration::from_millis(10)).is_none());
}

#[test]
fn cursor_commands_pushed_before_an_io_request_go_first() {
    let (p, consumer) = qxl::new_device(DeviceConfig::default()).unwrap();
    let mut source = QxlSource::new(consumer);
    let producer = thread::spawn(move || {
        let mut p = p;
        for i in 0..3 {
            p.cursor_move(qxl::Point { x: i, y: i }).unwrap();
        }
        p.destroy_primary()
    });
    for i in 0..3 {
        match source.next(WAIT) {
            Some(Work::Cursor(CursorCommand::Move { position })) => {
                assert_eq!(position, Point { x: i, y: i })
            }
            other => panic!("expected cursor move {i}, got {other:?}"),
        }
    }
    match source.next(WAIT) {
        Some(Work::Io(io)) => io.complete(Ok(())),
        other => panic!("expected the destroy-primary request, got {other:?}"),
    }
    producer.join().unwrap().unwrap();
}

#[test]
fn an_idle_source_waits_for_its_timeout_and_no_longer() {
    let (_p, consumer) = qxl::new_device(DeviceConfig::default()).unwrap();
    let mut source = QxlSource::new(consumer);
    let start = Instant::now();
    assert!(source.next(Duration::from_millis(30)).is_none());
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(30) && waited < Duration::from_secs(1),
        "{waited:?}"
    );
}

#[test]
fn releases_come_back_to_the_producer() {
    let (mut p, handle) = device();
    p.create_primary(W, H).unwrap();
    for i in 0..10 {
        p.fill(qrect(i, 0, i + 1, 1), 0xff00_0000).unwrap();
    }
    sync(&mut p);
    // The source publishes releases when the rings run dry, before it sleeps.
    let deadline = Instant::now() + WAIT;
    while p.live_allocations() > 0 {
        assert!(Instant::now() < deadline, "{} live", p.live_allocations());
        p.reclaim().unwrap();
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(handle.surfaces().len(), 1);
}
