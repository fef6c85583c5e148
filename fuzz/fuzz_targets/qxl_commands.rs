//! What a guest leaves in the QXL rings and memory, through the whole consuming side: the
//! `qxl` consumer parses each command out of shared memory and the display worker draws it
//! onto the canonical surfaces. Nothing may panic, and the worker must answer an I/O request
//! pushed after the commands, which it takes only once it has taken them all.
//!
//! Input: two bytes giving how many of the following bytes are written into guest RAM (the
//! arena the commands point into), then 9-byte commands: a flags byte (type in bits 0-2,
//! cursor ring in bit 3, how the address is formed in bits 4-5) and a little-endian u64.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qxl::abi::QxlCommand;
use qxl::memslot::{QxlPhys, RAM_SLOT, VRAM_SLOT};
use qxl::{new_device, DeviceConfig, IoError, IoRequest, QxlError, Rect};
use vhost_user_spice::display::qxl_source::spawn_qxl;
use zerocopy::little_endian::{U32, U64};

const RAM: usize = 1 << 20;
const VRAM: usize = 1 << 16;
/// Bytes at the start of RAM the input fills and the commands point into.
const ARENA: u64 = 1 << 16;

fn address(mode: u8, value: u64) -> u64 {
    let phys = match mode {
        0 => QxlPhys::new(RAM_SLOT, 0, value % ARENA),
        1 => QxlPhys::new(VRAM_SLOT, 0, value % VRAM as u64),
        2 => QxlPhys::new(RAM_SLOT, 0, (RAM as u64) - 8192 - value % 64),
        _ => return value,
    };
    phys.map_or(value, |p| p.0)
}

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let arena_len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (arena, commands) = rest.split_at(arena_len);
    let (mut producer, consumer) = new_device(DeviceConfig {
        ram_size: RAM,
        vram_size: VRAM,
        n_surfaces: 16,
    })
    .expect("device");
    let ram_start = producer.layout().ram_start;
    producer.write_region(ram_start, arena).expect("arena");
    let display = spawn_qxl(consumer);
    // A primary to draw on, as a guest makes first.
    producer.create_primary(64, 48).expect("primary");
    for record in commands.chunks_exact(9) {
        let flags = record[0];
        let value = u64::from_le_bytes(record[1..9].try_into().unwrap());
        let cmd = QxlCommand {
            data: U64::new(address((flags >> 4) & 3, value)),
            ty: U32::new(u32::from(flags & 7)),
            padding: U32::new(0),
        };
        let pushed = if flags & 8 != 0 {
            producer.push_cursor(cmd)
        } else {
            producer.push_command(cmd)
        };
        if pushed.is_err() {
            break;
        }
    }
    // Answered only once the worker has taken everything pushed before it; refused is an
    // answer too (the commands may have destroyed the primary).
    let drained = producer.io(IoRequest::UpdateArea {
        surface_id: 0,
        area: Rect {
            left: 0,
            top: 0,
            right: 64,
            bottom: 48,
        },
    });
    assert!(
        matches!(drained, Ok(()) | Err(QxlError::Io(IoError::Rejected(_)))),
        "the worker did not answer: {drained:?}"
    );
    let _ = producer.reclaim();
    display.shutdown();
});
