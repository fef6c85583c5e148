//! Producer and consumer on their own threads: everything arrives, in order, and every
//! allocation comes back.

mod common;

use common::{pattern, small_config, Worker};
use qxl::{new_device, Command, DrawOp, Image, IoRequest, Rect};

const DRAWS: usize = 2000;
const SCREEN: (u32, u32) = (320, 200);

/// xorshift64*: deterministic rects without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

fn rects() -> Vec<Rect> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..DRAWS)
        .map(|_| {
            let (w, h) = (1 + rng.below(96), 1 + rng.below(96));
            let (x, y) = (rng.below(SCREEN.0 - w + 1), rng.below(SCREEN.1 - h + 1));
            Rect::from_xywh(x as i32, y as i32, w, h).unwrap()
        })
        .collect()
}

#[test]
fn two_thousand_draws_arrive_in_order_and_all_memory_comes_back() {
    // Small RAM (8 MiB) so the producer has to wait for releases many times over.
    let (mut p, c) = new_device(small_config()).unwrap();
    let worker = Worker::spawn(c);
    p.create_primary(SCREEN.0, SCREEN.1).unwrap();
    let expected = rects();
    let to_send = expected.clone();
    let producer = std::thread::spawn(move || {
        for (i, r) in to_send.iter().enumerate() {
            let stride = r.width() as usize * 4 + 4 * (i % 3);
            let pixels = pattern(r.width() as usize, r.height() as usize, stride, i as u32);
            p.draw_copy(*r, &pixels, stride).unwrap();
        }
        p
    });
    for (i, r) in expected.iter().enumerate() {
        let Command::Draw(d) = worker.next_command() else {
            panic!("draw {i} is not a draw")
        };
        assert_eq!(d.bbox, *r, "draw {i}");
        let DrawOp::Copy {
            src: Image::Bitmap(b),
            ..
        } = d.op
        else {
            panic!("draw {i}")
        };
        let row = r.width() as usize * 4;
        assert_eq!(
            b.data,
            pattern(r.width() as usize, r.height() as usize, row, i as u32),
            "draw {i}"
        );
    }
    let mut p = producer.join().unwrap();
    p.io(IoRequest::FlushRelease).unwrap();
    p.reclaim().unwrap();
    assert_eq!((p.live_allocations(), p.ram_used()), (0, 0));
    let consumer = worker.stop();
    assert_eq!(consumer.pending_releases(), 0);
}
