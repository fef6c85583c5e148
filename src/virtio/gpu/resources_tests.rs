//! Resource tests: backing reads across extents, transfers, budget accounting.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::*;
use crate::virtio::gpu::testutil::rect;

fn memory() -> GuestMemoryMmap {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1_0000)]).expect("memory");
    let bytes: Vec<u8> = (0..0x1_0000u32).map(|i| (i % 251) as u8).collect();
    mem.write_slice(&bytes, GuestAddress(0)).expect("fill");
    mem
}

fn guest_byte(addr: u64) -> u8 {
    (addr % 251) as u8
}

#[test]
fn backing_reads_span_extents_and_skip_empty_ones() {
    let mem = memory();
    let entries = vec![
        MemEntry {
            addr: 0x100,
            length: 0,
        },
        MemEntry {
            addr: 0x2000,
            length: 10,
        },
        MemEntry {
            addr: 0x5000,
            length: 0,
        },
        MemEntry {
            addr: 0x300,
            length: 6,
        },
    ];
    let backing = Backing::new(entries, &mem).expect("backing");
    assert_eq!(backing.total, 16);
    let mut dst = [0u8; 16];
    backing.read(&mem, 0, &mut dst).expect("read");
    let want: Vec<u8> = (0x2000..0x200a)
        .chain(0x300..0x306)
        .map(guest_byte)
        .collect();
    assert_eq!(&dst[..], &want[..]);
    let mut dst = [0u8; 4];
    backing.read(&mem, 8, &mut dst).expect("read");
    assert_eq!(&dst[..], &want[8..12]);
    assert!(matches!(
        backing.read(&mem, 13, &mut dst),
        Err(GpuError::BackingTooSmall { need: 17, have: 16 })
    ));
}

#[test]
fn partial_transfer_copies_rows_from_offset_with_the_resource_stride() {
    let mem = memory();
    let mut res = Resources::new(DEFAULT_MAX_HOSTMEM);
    res.create(1, 2, 8, 4).expect("create");
    // 8 px × 4 bytes = 32-byte rows; backing split mid-row in two extents.
    let entries = vec![
        MemEntry {
            addr: 0x1000,
            length: 50,
        },
        MemEntry {
            addr: 0x4000,
            length: 78,
        },
    ];
    res.attach_backing(1, entries, &mem).expect("attach");
    let linear = |off: u64| {
        if off < 50 {
            guest_byte(0x1000 + off)
        } else {
            guest_byte(0x4000 + off - 50)
        }
    };
    let r = rect(2, 1, 3, 2);
    let offset = u64::from(r.x * 4 + r.y * 32);
    res.transfer_to_host(1, &r, offset, &mem).expect("transfer");
    let px = res.get(1).expect("resource").pixels();
    for y in 0..4u32 {
        for x in 0..8u32 {
            let host = &px[(y * 32 + x * 4) as usize..][..4];
            let inside = (2..5).contains(&x) && (1..3).contains(&y);
            let want: Vec<u8> = if inside {
                let src = offset + u64::from((y - r.y) * 32 + (x - r.x) * 4);
                (src..src + 4).map(linear).collect()
            } else {
                vec![0; 4]
            };
            assert_eq!(host, &want[..], "pixel {x},{y}");
        }
    }
}

#[test]
fn budget_counts_pixels_overhead_and_backing_until_freed() {
    let o = RESOURCE_OVERHEAD;
    let mut res = Resources::new(1000 + 2 * o + 2 * BACKING_ENTRY_COST);
    res.create(1, 2, 10, 10).expect("400 bytes");
    res.create(2, 2, 10, 15).expect("600 bytes");
    assert_eq!(res.used(), 1000 + 2 * o);
    let mem = memory();
    let two = vec![MemEntry { addr: 0, length: 8 }; 2];
    res.attach_backing(1, two.clone(), &mem)
        .expect("two entries fit");
    assert!(matches!(
        res.attach_backing(2, vec![MemEntry { addr: 0, length: 8 }], &mem),
        Err(GpuError::OverBudget {
            need: BACKING_ENTRY_COST,
            ..
        })
    ));
    assert!(matches!(
        res.create(3, 2, 1, 1),
        Err(GpuError::OverBudget { .. })
    ));
    res.detach_backing(1).expect("detach");
    assert_eq!(res.used(), 1000 + 2 * o);
    res.attach_backing(1, two, &mem).expect("attach again");
    res.unref(1)
        .expect("unref frees pixels, overhead and backing");
    assert_eq!(res.used(), 600 + o);
    res.create(3, 2, 10, 10).expect("fits again");
    res.clear();
    assert_eq!(res.used(), 0);
}

#[test]
fn rect_pixels_starts_at_the_first_pixel_and_ends_at_the_last() {
    let mut res = Resources::new(DEFAULT_MAX_HOSTMEM);
    res.create(1, 2, 4, 4).expect("create");
    let r = res.get(1).expect("resource");
    let slice = r.rect_pixels(&rect(1, 1, 2, 2)).expect("inside");
    assert_eq!(slice.len(), 16 + 8);
    assert!(r.rect_pixels(&rect(3, 3, 2, 1)).is_none());
    assert!(r.rect_pixels(&rect(0, 0, 0, 1)).is_none());
}
