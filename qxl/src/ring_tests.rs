//! Ring index tests: wrap-around, full/empty, corrupt indices.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;
use crate::region::Layout;

fn region() -> Region {
    Region::new(Layout::new(1 << 16, 0).unwrap()).unwrap()
}

fn ring_at(region: &Region) -> RingAt {
    RingAt {
        base: region.layout().cmd_ring(),
        num_items: 32,
        item_size: 16,
    }
}

fn push(w: &mut RingWriter, region: &Region, v: u64) -> bool {
    if !matches!(w.room(region).unwrap(), Ok(r) if r >= 1) {
        return false;
    }
    region.write(w.prod_offset(), &v.to_le_bytes()).unwrap();
    w.advance(region).unwrap();
    true
}

fn pop(r: &mut RingReader, region: &Region) -> Option<u64> {
    if r.available(region).unwrap().unwrap() == 0 {
        return None;
    }
    let mut b = [0u8; 8];
    region.read(r.front_offset(), &mut b).unwrap();
    r.advance(region).unwrap();
    Some(u64::from_le_bytes(b))
}

#[test]
fn fills_to_n_then_refuses() {
    let region = region();
    let at = ring_at(&region);
    at.init(&region, 0).unwrap();
    let mut w = RingWriter::new(at, 0);
    let mut r = RingReader::new(at, 0);
    for i in 0..32 {
        assert!(push(&mut w, &region, i));
    }
    assert!(!push(&mut w, &region, 99));
    assert_eq!(pop(&mut r, &region), Some(0));
    assert!(push(&mut w, &region, 32));
    for i in 1..=32 {
        assert_eq!(pop(&mut r, &region), Some(i));
    }
    assert_eq!(pop(&mut r, &region), None);
}

#[test]
fn wraps_around_u32_max() {
    let region = region();
    let at = ring_at(&region);
    let start = u32::MAX - 5;
    at.init(&region, start).unwrap();
    let mut w = RingWriter::new(at, start);
    let mut r = RingReader::new(at, start);
    for i in 0..100u64 {
        assert!(push(&mut w, &region, i));
        assert_eq!(pop(&mut r, &region), Some(i));
    }
    assert_eq!(r.cons(), start.wrapping_add(100));
}

#[test]
fn rejects_prod_more_than_n_ahead() {
    let region = region();
    let at = ring_at(&region);
    at.init(&region, 0).unwrap();
    let r = RingReader::new(at, 0);
    region
        .store_u32(at.base + RING_PROD_OFFSET, 33, Ordering::Release)
        .unwrap();
    assert_eq!(
        r.available(&region).unwrap(),
        Err(IndexInvalid {
            prod: 33,
            cons: 0,
            num_items: 32
        })
    );
    // prod behind cons is the same fact seen modulo 2^32.
    region
        .store_u32(at.base + RING_PROD_OFFSET, u32::MAX, Ordering::Release)
        .unwrap();
    assert!(r.available(&region).unwrap().is_err());
}

#[test]
fn rejects_cons_ahead_of_prod() {
    let region = region();
    let at = ring_at(&region);
    at.init(&region, 0).unwrap();
    let w = RingWriter::new(at, 0);
    region
        .store_u32(at.base + RING_CONS_OFFSET, 5, Ordering::Release)
        .unwrap();
    assert!(w.room(&region).unwrap().is_err());
}

#[test]
fn notification_requested_on_empty_ring_fires_on_next_push() {
    let region = region();
    let at = ring_at(&region);
    at.init(&region, 7).unwrap();
    let mut w = RingWriter::new(at, 7);
    let r = RingReader::new(at, 7);
    assert!(!r.request_notification(&region).unwrap());
    region.write(w.prod_offset(), &[0; 16]).unwrap();
    assert!(w.advance(&region).unwrap());
    assert!(r.request_notification(&region).unwrap());
}

proptest! {
    #[test]
    fn random_push_pop_keeps_fifo_order(start in any::<u32>(), ops in proptest::collection::vec(any::<bool>(), 0..400)) {
        let region = region();
        let at = ring_at(&region);
        at.init(&region, start).unwrap();
        let mut w = RingWriter::new(at, start);
        let mut r = RingReader::new(at, start);
        let mut model = VecDeque::new();
        let mut next = 0u64;
        for op in ops {
            if op {
                let pushed = push(&mut w, &region, next);
                prop_assert_eq!(pushed, model.len() < 32);
                if pushed { model.push_back(next); }
                next += 1;
            } else {
                prop_assert_eq!(pop(&mut r, &region), model.pop_front());
            }
        }
        prop_assert_eq!(r.available(&region).unwrap().unwrap() as usize, model.len());
    }
}
