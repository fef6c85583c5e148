//! The QXL device model, as spice-server's worker sees it: ABI layouts, a shared-memory
//! region with ROM, RAM and VRAM, memslots, rings, a producer and a consumer. No I/O, no
//! async, no SPICE, no virtio.
//!
//! # Contract
//!
//! * The producer side (`Producer`) plays the guest QXL driver: it writes real QXL structures
//!   into the shared region, pushes commands, and reclaims what the release ring hands back.
//! * The consumer side (`Consumer`) plays spice-server's worker. Everything it reads from the
//!   region is hostile: it is copied out (never borrowed), every QXL address is resolved through
//!   the memslot table with bounds checks, every chain has fuel and a checked total, and every
//!   size is checked against a named limit (`parse::MAX_*`, `chunks::MAX_CHUNKS`) before
//!   anything is allocated. Parsing never panics; a malformed command is an `Err(ParseError)`
//!   and the ring keeps going. Only inconsistent ring indices stop a ring, until `Reset`.
//! * Values handed out (`Command`, `CursorCmd`, `IoRequest`) are owned and validated: pixel data
//!   is copied at parse time, so the guest resource is released right away (a surface CREATE's
//!   resource is held until its DESTROY, as QXL requires). Callers never see release ids.
//! * I/O requests are ordered after the commands pushed before them: `take_io` hands a request
//!   out only once the command ring is drained (except `Reset`, which discards the rings).
//! * Waiting is bounded on the producer side and absent on the consumer side: the consumer
//!   never waits for the producer.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use qxl::{new_device, Command, DeviceConfig, Rect};
//!
//! let (mut producer, mut consumer) = new_device(DeviceConfig::default())?;
//! let worker = std::thread::spawn(move || {
//!     let mut draws = 0;
//!     while draws < 1 {
//!         consumer.wait(Duration::from_millis(50));
//!         while let Some(call) = consumer.take_io() {
//!             call.complete(Ok(())); // CreatePrimary: the worker makes surface 0 here
//!         }
//!         while let Some(cmd) = consumer.pop_command() {
//!             if let Ok(Command::Draw(_)) = cmd {
//!                 draws += 1;
//!             }
//!         }
//!     }
//! });
//! producer.create_primary(64, 64)?;
//! let pixels = vec![0u8; 8 * 8 * 4];
//! producer.draw_copy(Rect { top: 0, left: 0, bottom: 8, right: 8 }, &pixels, 8 * 4)?;
//! worker.join().unwrap();
//! # Ok::<(), qxl::QxlError>(())
//! ```
//!
//! # Layout
//!
//! * `abi` — raw `#[repr(C)]` QXL structs and constants, sizes asserted.
//! * `region` — the memfd: ROM, RAM (+ `QXLRam` header), VRAM; volatile access only.
//! * `memslot` — `QxlPhys` → checked `Span`.
//! * `ring` — ring indices from either side.
//! * `chunks` — chunk chains and row copies out of shared memory.
//! * `parse` — raw commands → validated `types`.
//! * `types` — the owned values.
//! * `io` — the synchronous device I/O requests and the doorbells.
//! * `alloc` — the producer's RAM/VRAM allocator.
//! * `producer` / `consumer` — the two sides.

pub mod abi;
mod alloc;
pub mod chunks;
mod commands;
mod consumer;
mod error;
mod io;
pub mod memslot;
pub mod parse;
mod producer;
pub mod region;
pub mod ring;
mod types;

use std::sync::Arc;

pub use consumer::Consumer;
pub use error::{AddrError, IoError, ParseError, QxlError};
pub use io::{IoCall, IoRequest};
pub use memslot::{QxlPhys, Span};
pub use producer::{Allocation, Producer};
pub use types::{
    Bitmap, Clip, Command, CursorCmd, CursorShape, DrawOp, Drawable, Head, Image, Point, Rect,
    SurfaceCmd, SurfaceCmdKind, SurfaceCreate,
};

use abi::{QxlRom, QXL_RAM_MAGIC, QXL_ROM_MAGIC};
use memslot::{MemSlotTable, NUM_MEMSLOTS, RAM_SLOT, SLOT_GEN_BITS, SLOT_ID_BITS, VRAM_SLOT};
use region::{Layout, Region, PAGE_SIZE};

/// Most surfaces a device may declare (QEMU uses 1024; ids index the worker's surface table).
pub const MAX_N_SURFACES: u32 = 16384;

/// Sizes of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Bytes of RAM (BAR0), including the `QXLRam` header page(s) at its end.
    pub ram_size: usize,
    /// Bytes of VRAM (off-screen surface memory).
    pub vram_size: usize,
    /// Surface ids `0..n_surfaces` are valid.
    pub n_surfaces: u32,
}

impl Default for DeviceConfig {
    /// 64 MiB of RAM holds a 3840×2160×4 frame (33 MB, sent in bands) with room for the next;
    /// 32 MiB of VRAM and 1024 surfaces as QEMU's qxl defaults.
    fn default() -> Self {
        DeviceConfig {
            ram_size: 64 << 20,
            vram_size: 32 << 20,
            n_surfaces: 1024,
        }
    }
}

/// State both sides share. The region is the device; the rest is what QEMU keeps outside it.
#[derive(Debug)]
pub(crate) struct Shared {
    pub region: Region,
    pub slots: MemSlotTable,
    pub n_surfaces: u32,
    /// Rung by the producer: commands or an I/O request are pending (`QXL_IO_NOTIFY_CMD`).
    pub to_consumer: io::Doorbell,
    /// Rung by the consumer: ring room or releases are available (`QXL_INTERRUPT_DISPLAY`).
    pub to_producer: io::Doorbell,
    pub io: io::IoChannel,
}

/// Creates a device: the region, its ROM and `QXLRam` header, and the two ends.
pub fn new_device(cfg: DeviceConfig) -> Result<(Producer, Consumer), QxlError> {
    if cfg.n_surfaces == 0 || cfg.n_surfaces > MAX_N_SURFACES {
        return Err(QxlError::InvalidConfig("n_surfaces must be in 1..=16384"));
    }
    let layout = Layout::new(cfg.ram_size, cfg.vram_size)?;
    let region = Region::new(layout)?;
    let mut slots = MemSlotTable::default();
    slots
        .add(RAM_SLOT, layout.ram_start, layout.ram_usable, 0)
        .ok_or(QxlError::InvalidConfig("RAM does not fit a memslot"))?;
    if layout.vram_size > 0 {
        slots
            .add(VRAM_SLOT, layout.vram_start, layout.vram_size, 0)
            .ok_or(QxlError::InvalidConfig("VRAM does not fit a memslot"))?;
    }
    write_rom(&region, &layout, cfg.n_surfaces)?;
    region.write_obj(
        layout.ram_header,
        &zerocopy::little_endian::U32::new(QXL_RAM_MAGIC),
    )?;
    let shared = Arc::new(Shared {
        region,
        slots,
        n_surfaces: cfg.n_surfaces,
        to_consumer: io::Doorbell::default(),
        to_producer: io::Doorbell::default(),
        io: io::IoChannel::default(),
    });
    let consumer = Consumer::new(shared.clone())?;
    let producer = Producer::new(shared);
    Ok((producer, consumer))
}

/// Fills `QXLRom` as QEMU's `init_qxl_rom` does (no qxl-1 modes: `n_modes` = 0).
fn write_rom(region: &Region, layout: &Layout, n_surfaces: u32) -> Result<(), QxlError> {
    use zerocopy::FromZeros;
    let too_big = QxlError::InvalidConfig("RAM larger than 4 GiB");
    let ram_header = u32::try_from(layout.ram_usable).map_err(|_| too_big)?;
    let mut rom = QxlRom::new_zeroed();
    rom.magic.set(QXL_ROM_MAGIC);
    rom.modes_offset.set(size_of_u32::<QxlRom>());
    rom.num_pages.set(ram_header / PAGE_SIZE as u32);
    rom.ram_header_offset.set(ram_header);
    rom.n_surfaces.set(n_surfaces);
    rom.slots_start = RAM_SLOT;
    rom.slots_end = (NUM_MEMSLOTS - 1) as u8;
    rom.slot_gen_bits = SLOT_GEN_BITS as u8;
    rom.slot_id_bits = SLOT_ID_BITS as u8;
    region.write_obj(0, &rom)
}

const fn size_of_u32<T>() -> u32 {
    std::mem::size_of::<T>() as u32
}

#[cfg(test)]
mod tests {
    use zerocopy::little_endian::U32;

    use super::*;
    use crate::abi::{RingHeader, COMMAND_RING_SIZE, RELEASE_RING_SIZE};

    fn assert_send<T: Send>() {}

    #[test]
    fn both_ends_are_send() {
        assert_send::<Producer>();
        assert_send::<Consumer>();
    }

    #[test]
    fn new_device_lays_out_rom_and_ram_header() {
        let cfg = DeviceConfig {
            ram_size: 1 << 20,
            vram_size: 1 << 16,
            n_surfaces: 7,
        };
        let (p, _c) = new_device(cfg).unwrap();
        let region = &p.shared.region;
        let layout = *region.layout();
        assert_eq!(layout.total, region::ROM_SIZE + (1 << 20) + (1 << 16));
        assert_eq!(layout.ram_usable, (1 << 20) - 8192);
        let rom: QxlRom = region.read_obj(0).unwrap();
        assert_eq!(rom.magic.get(), QXL_ROM_MAGIC);
        assert_eq!(rom.ram_header_offset.get() as usize, layout.ram_usable);
        assert_eq!(rom.n_surfaces.get(), 7);
        assert_eq!(
            (rom.slot_id_bits, rom.slot_gen_bits, rom.slots_start),
            (8, 8, 1)
        );
        let magic: U32 = region.read_obj(layout.ram_header).unwrap();
        assert_eq!(magic.get(), QXL_RAM_MAGIC);
        for (at, n) in [
            (layout.cmd_ring(), COMMAND_RING_SIZE),
            (layout.cursor_ring(), COMMAND_RING_SIZE),
            (layout.release_ring(), RELEASE_RING_SIZE),
        ] {
            let h: RingHeader = region.read_obj(at).unwrap();
            assert_eq!((h.num_items.get(), h.prod.get(), h.cons.get()), (n, 0, 0));
            assert_eq!((h.notify_on_prod.get(), h.notify_on_cons.get()), (1, 0));
        }
    }

    #[test]
    fn rejects_bad_configs() {
        let bad = [
            DeviceConfig {
                ram_size: 4096,
                vram_size: 0,
                n_surfaces: 1,
            },
            DeviceConfig {
                ram_size: (1 << 20) + 1,
                vram_size: 0,
                n_surfaces: 1,
            },
            DeviceConfig {
                ram_size: 1 << 20,
                vram_size: 0,
                n_surfaces: 0,
            },
            DeviceConfig {
                ram_size: 1 << 20,
                vram_size: 0,
                n_surfaces: MAX_N_SURFACES + 1,
            },
        ];
        for cfg in bad {
            assert!(
                matches!(new_device(cfg), Err(QxlError::InvalidConfig(_))),
                "{cfg:?}"
            );
        }
    }
}
