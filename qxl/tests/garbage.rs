//! Property tests: whatever bytes the producer leaves in the region, and whatever commands
//! point into them, the consumer never panics, never loops, and never makes an allocation
//! beyond its named limits.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use qxl::abi::QxlCommand;
use qxl::memslot::{QxlPhys, RAM_SLOT, VRAM_SLOT};
use qxl::parse::MAX_IMAGE_BYTES;
use qxl::{new_device, Consumer, DeviceConfig, Producer};
use zerocopy::little_endian::{U32, U64};

/// Records the largest single allocation this test binary makes.
struct Counting;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// GlobalAlloc contract is System's; the counter has no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` through this allocator with this `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const RAM: usize = 1 << 20;
const VRAM: usize = 1 << 16;
/// Bytes at the start of RAM the properties scribble on and point into.
const ARENA: u64 = 1 << 16;

fn device() -> (Producer, Consumer) {
    new_device(DeviceConfig {
        ram_size: RAM,
        vram_size: VRAM,
        n_surfaces: 16,
    })
    .unwrap()
}

/// Addresses worth trying: inside the arena, at the slot end, VRAM, other slots, anything.
fn address() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (0..ARENA).prop_map(|o| QxlPhys::new(RAM_SLOT, 0, o).unwrap().0),
        1 => (0..64u64).prop_map(|d| QxlPhys::new(RAM_SLOT, 0, (RAM as u64) - 8192 - d).unwrap().0),
        1 => (0..VRAM as u64).prop_map(|o| QxlPhys::new(VRAM_SLOT, 0, o).unwrap().0),
        1 => Just(0u64),
        1 => any::<u64>(),
    ]
}

/// A write into the arena: either random bytes or an address (so chains can form).
fn scribble() -> impl Strategy<Value = (u64, Vec<u8>)> {
    prop_oneof![
        (0..ARENA, proptest::collection::vec(any::<u8>(), 1..64)),
        (0..ARENA, address()).prop_map(|(o, a)| (o, a.to_le_bytes().to_vec())),
        (0..ARENA, 0..4096u32).prop_map(|(o, v)| (o, v.to_le_bytes().to_vec())),
    ]
}

fn drain(c: &mut Consumer) -> usize {
    let mut n = 0;
    while let Some(r) = c.pop_command() {
        n += 1;
        let _ = r;
    }
    while let Some(r) = c.pop_cursor() {
        n += 1;
        let _ = r;
    }
    c.flush_release();
    n
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn garbage_commands_never_panic_or_overallocate(
        scribbles in proptest::collection::vec(scribble(), 0..200),
        cmds in proptest::collection::vec((0..7u32, address(), any::<bool>()), 1..40),
    ) {
        let (mut p, mut c) = device();
        let ram_start = p.layout().ram_start;
        for (offset, bytes) in &scribbles {
            p.write_region(ram_start + *offset as usize, bytes).unwrap();
        }
        let mut pushed = 0;
        for chunk in cmds.chunks(30) {
            for &(ty, data, cursor) in chunk {
                let cmd = QxlCommand { data: U64::new(data), ty: U32::new(ty), padding: U32::new(0) };
                if cursor { p.push_cursor(cmd).unwrap() } else { p.push_command(cmd).unwrap() }
                pushed += 1;
            }
            prop_assert!(drain(&mut c) <= pushed);
        }
        // Releasing garbage wrote into the arena; the producer's reclaim must cope too.
        let _ = p.reclaim();
        prop_assert!(LARGEST.load(Ordering::Relaxed) <= MAX_IMAGE_BYTES);
    }

    #[test]
    fn garbage_ring_indices_never_panic(words in proptest::collection::vec((0..1148usize, any::<u32>()), 1..16)) {
        let (mut p, mut c) = device();
        let base = p.layout().cmd_ring();
        for (at, v) in words {
            // Anywhere in the three rings: headers and items.
            p.write_region(base + (at / 4) * 4, &v.to_le_bytes()).unwrap();
        }
        for _ in 0..3 {
            drain(&mut c);
        }
        let _ = c.wait(std::time::Duration::from_millis(0));
        let _ = p.reclaim();
    }
}
