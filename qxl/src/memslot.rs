//! Memslots: the one place a QXL address (`QxlPhys`) becomes a checked region `Span`.
//!
//! spice: server/memslot.c `memslot_get_virt`: slot id in the top `slot_id_bits`, generation in
//! the next `slot_gen_bits`, offset in the rest; the offset is relative to the slot's start
//! (QEMU `qxl_add_memslot` uses delta 0), and `[offset, offset + len)` must lie in the slot.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use crate::error::AddrError;

/// Bits of a `QXLPHYSICAL` that name the slot (QEMU `rom.slot_id_bits`).
pub const SLOT_ID_BITS: u32 = 8;
/// Bits that carry the slot generation (QEMU `rom.slot_gen_bits`).
pub const SLOT_GEN_BITS: u32 = 8;
/// Bits left for the offset inside a slot.
pub const SLOT_OFFSET_BITS: u32 = 64 - SLOT_ID_BITS - SLOT_GEN_BITS;
const OFFSET_MASK: u64 = (1 << SLOT_OFFSET_BITS) - 1;
const GEN_MASK: u64 = (1 << SLOT_GEN_BITS) - 1;
/// Slots in the table (QEMU `NUM_MEMSLOTS`).
pub const NUM_MEMSLOTS: usize = 8;
/// The slot holding RAM (BAR0 below the `QXLRam` header); QEMU's guest slots start at 1.
pub const RAM_SLOT: u8 = 1;
/// The slot holding VRAM (BAR1).
pub const VRAM_SLOT: u8 = 2;

/// A QXL address (`QXLPHYSICAL`), as found in shared memory: untrusted until resolved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QxlPhys(pub u64);

impl QxlPhys {
    pub const NULL: QxlPhys = QxlPhys(0);

    /// Builds an address from its parts; `offset` must fit the offset bits.
    pub fn new(slot: u8, generation: u8, offset: u64) -> Option<QxlPhys> {
        if offset > OFFSET_MASK {
            return None;
        }
        let slot_bits = u64::from(slot) << (SLOT_OFFSET_BITS + SLOT_GEN_BITS);
        let gen_bits = u64::from(generation) << SLOT_OFFSET_BITS;
        Some(QxlPhys(slot_bits | gen_bits | offset))
    }

    pub fn is_null(self) -> bool {
        self.0 == 0
    }

    /// `self + n`, `None` on u64 overflow (a carry into the slot bits is caught by `resolve`).
    pub fn checked_add(self, n: usize) -> Option<QxlPhys> {
        let n = u64::try_from(n).ok()?;
        self.0.checked_add(n).map(QxlPhys)
    }
}

/// A bounds-checked range of the region. Only `MemSlotTable::resolve` builds one from a QXL
/// address, so holding a `Span` proves the check was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    offset: usize,
    len: usize,
}

impl Span {
    /// Region offset of the first byte.
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// A sub-range of this span, `None` if it does not fit.
    pub fn sub(&self, start: usize, len: usize) -> Option<Span> {
        let end = start.checked_add(len)?;
        if end > self.len {
            return None;
        }
        Some(Span {
            offset: self.offset.checked_add(start)?,
            len,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MemSlot {
    /// Region offset of the slot's first byte.
    start: usize,
    /// Bytes in the slot.
    size: usize,
    generation: u8,
}

/// The active memslots (one group: everything here is the guest group).
#[derive(Clone, Debug, Default)]
pub struct MemSlotTable {
    slots: [Option<MemSlot>; NUM_MEMSLOTS],
}

impl MemSlotTable {
    /// Activates slot `id` over `[start, start + size)` of the region.
    pub fn add(&mut self, id: u8, start: usize, size: usize, generation: u8) -> Option<()> {
        let slot = self.slots.get_mut(usize::from(id))?;
        if u64::try_from(size).ok()? > OFFSET_MASK.checked_add(1)? {
            return None;
        }
        start.checked_add(size)?;
        *slot = Some(MemSlot {
            start,
            size,
            generation,
        });
        Some(())
    }

    /// The address of byte `offset` of slot `id`, `None` if the slot is inactive or too small.
    pub fn phys(&self, id: u8, offset: usize) -> Option<QxlPhys> {
        let slot = (*self.slots.get(usize::from(id))?)?;
        if offset >= slot.size {
            return None;
        }
        QxlPhys::new(id, slot.generation, u64::try_from(offset).ok()?)
    }

    /// The address of a region offset inside slot `id`.
    pub fn phys_of_region_offset(&self, id: u8, region_offset: usize) -> Option<QxlPhys> {
        let slot = (*self.slots.get(usize::from(id))?)?;
        self.phys(id, region_offset.checked_sub(slot.start)?)
    }

    /// Checks that `[addr, addr + len)` lies inside one active slot of the right generation.
    pub fn resolve(&self, addr: QxlPhys, len: usize) -> Result<Span, AddrError> {
        let raw = addr.0;
        if raw == 0 {
            return Err(AddrError::Null { addr: raw });
        }
        let slot_id = raw >> (SLOT_OFFSET_BITS + SLOT_GEN_BITS);
        let generation = (raw >> SLOT_OFFSET_BITS) & GEN_MASK;
        let offset = raw & OFFSET_MASK;
        let invalid = AddrError::SlotInvalid {
            addr: raw,
            slot: slot_id,
        };
        let index = usize::try_from(slot_id).map_err(|_| invalid)?;
        let slot = self.slots.get(index).copied().flatten().ok_or(invalid)?;
        if generation != u64::from(slot.generation) {
            return Err(AddrError::GenerationMismatch {
                addr: raw,
                slot: slot_id,
                generation,
                expected: slot.generation,
            });
        }
        let outside = AddrError::AddressOutsideSlot { addr: raw, len };
        let offset = usize::try_from(offset).map_err(|_| outside)?;
        let end = offset.checked_add(len).ok_or(outside)?;
        if end > slot.size {
            return Err(outside);
        }
        Ok(Span {
            offset: slot.start.checked_add(offset).ok_or(outside)?,
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
    use super::*;

    fn table() -> MemSlotTable {
        let mut t = MemSlotTable::default();
        t.add(RAM_SLOT, 0x1000, 0x1000, 0).unwrap();
        t.add(VRAM_SLOT, 0x4000, 0x100, 3).unwrap();
        t
    }

    #[test]
    fn resolves_inside_slot() {
        let t = table();
        let a = t.phys(RAM_SLOT, 0x10).unwrap();
        assert_eq!(a.0, (1u64 << 56) | 0x10);
        let s = t.resolve(a, 0x20).unwrap();
        assert_eq!((s.offset(), s.len()), (0x1010, 0x20));
        let v = t.phys(VRAM_SLOT, 0).unwrap();
        assert_eq!(v.0, (2u64 << 56) | (3u64 << 48));
        assert_eq!(t.resolve(v, 0x100).unwrap().offset(), 0x4000);
    }

    #[test]
    fn accepts_access_ending_exactly_at_slot_end() {
        let t = table();
        let a = t.phys(RAM_SLOT, 0xff0).unwrap();
        assert!(t.resolve(a, 0x10).is_ok());
        assert!(t.resolve(a, 0).is_ok());
    }

    #[test]
    fn rejects_access_past_slot_end() {
        let t = table();
        let a = t.phys(RAM_SLOT, 0xff0).unwrap();
        assert!(matches!(
            t.resolve(a, 0x11),
            Err(AddrError::AddressOutsideSlot { .. })
        ));
        let past = QxlPhys(a.0 + 0x10);
        assert!(matches!(
            t.resolve(past, 1),
            Err(AddrError::AddressOutsideSlot { .. })
        ));
    }

    #[test]
    fn rejects_length_overflow() {
        let t = table();
        let a = t.phys(RAM_SLOT, 1).unwrap();
        assert!(matches!(
            t.resolve(a, usize::MAX),
            Err(AddrError::AddressOutsideSlot { .. })
        ));
    }

    #[test]
    fn rejects_null_inactive_and_out_of_range_slots() {
        let t = table();
        assert!(matches!(
            t.resolve(QxlPhys(0), 1),
            Err(AddrError::Null { .. })
        ));
        assert!(matches!(
            t.resolve(QxlPhys(5u64 << 56), 1),
            Err(AddrError::SlotInvalid { .. })
        ));
        assert!(matches!(
            t.resolve(QxlPhys(200u64 << 56), 1),
            Err(AddrError::SlotInvalid { .. })
        ));
    }

    #[test]
    fn rejects_wrong_generation() {
        let t = table();
        let a = QxlPhys((2u64 << 56) | (4u64 << 48));
        assert!(matches!(
            t.resolve(a, 1),
            Err(AddrError::GenerationMismatch { .. })
        ));
    }

    #[test]
    fn offset_carry_into_generation_is_rejected() {
        let t = table();
        let a = QxlPhys::new(RAM_SLOT, 0, OFFSET_MASK).unwrap();
        let carried = a.checked_add(1).unwrap();
        assert!(t.resolve(carried, 1).is_err());
        assert!(QxlPhys(u64::MAX).checked_add(1).is_none());
    }

    #[test]
    fn span_sub_stays_inside() {
        let t = table();
        let s = t.resolve(t.phys(RAM_SLOT, 0).unwrap(), 16).unwrap();
        assert_eq!(s.sub(8, 8).unwrap().offset(), 0x1008);
        assert!(s.sub(8, 9).is_none());
        assert!(s.sub(usize::MAX, 2).is_none());
    }
}
