//! Round-trip properties: what the producer's convenience layer writes, the consumer reads back
//! unchanged.

mod common;

use common::{small_config, Worker};
use proptest::prelude::*;
use qxl::{new_device, Command, CursorCmd, DrawOp, Image, Point, Rect};

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn draw_copy_round_trips_any_rect_and_stride(
        (x, y, w, h) in (0..40i32, 0..40i32, 1..24u32, 1..24u32),
        pad in 0..3usize,
        seed in any::<u64>(),
    ) {
        let (mut p, c) = new_device(small_config()).unwrap();
        let worker = Worker::spawn(c);
        p.create_primary(64, 64).unwrap();
        let stride = w as usize * 4 + pad * 4;
        let mut s = seed | 1;
        let pixels: Vec<u8> = (0..stride * h as usize).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s as u8 }).collect();
        let rect = Rect::from_xywh(x, y, w, h).unwrap();
        p.draw_copy(rect, &pixels, stride).unwrap();
        let Command::Draw(d) = worker.next_command() else { panic!() };
        prop_assert_eq!(d.bbox, rect);
        let DrawOp::Copy { src: Image::Bitmap(b), .. } = d.op else { panic!() };
        let row = w as usize * 4;
        let expected: Vec<u8> = pixels.chunks(stride).flat_map(|r| r[..row].to_vec()).collect();
        prop_assert_eq!(b.data, expected);
    }

    #[test]
    fn cursor_shape_round_trips(w in 1..64u16, h in 1..64u16, byte in any::<u8>(), x in any::<i16>(), y in any::<i16>()) {
        let (mut p, c) = new_device(small_config()).unwrap();
        let worker = Worker::spawn(c);
        let shape: Vec<u8> = (0..usize::from(w) * usize::from(h) * 4).map(|i| (i as u8) ^ byte).collect();
        let pos = Point { x: i32::from(x), y: i32::from(y) };
        p.cursor_set(&shape, w, h, w - 1, 0, pos, false).unwrap();
        let CursorCmd::Set { position, visible, shape: got } = worker.next_cursor() else { panic!() };
        prop_assert_eq!((position, visible, got.width, got.height, got.hot_x), (pos, false, w, h, w - 1));
        prop_assert_eq!(got.data, shape);
    }
}
