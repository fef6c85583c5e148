//! The three QXL rings in shared memory, from either side: `RingReader` consumes, `RingWriter`
//! produces.
//!
//! spice-protocol `spice/ipc_ring.h`: free-running u32 `prod`/`cons` (slot = index & (N − 1)),
//! empty ⇔ `prod == cons`, full ⇔ `prod − cons == N`. Each side keeps its own index as a
//! shadow and only *publishes* it; the other side's index is loaded and checked against N
//! before any item is read (`RingIndexInvalid`), as virtio-queue's `AvailIter::new` does.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::num::Wrapping;
use std::sync::atomic::{fence, Ordering};

use crate::abi::{
    RingHeader, RING_CONS_OFFSET, RING_ITEMS_OFFSET, RING_NOTIFY_ON_CONS_OFFSET,
    RING_NOTIFY_ON_PROD_OFFSET, RING_PROD_OFFSET,
};
use crate::error::QxlError;
use crate::region::Region;

/// The other side published an index more than N away from ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexInvalid {
    pub prod: u32,
    pub cons: u32,
    pub num_items: u32,
}

/// Where a ring lives and how its items are laid out.
#[derive(Clone, Copy, Debug)]
pub struct RingAt {
    /// Region offset of the ring header.
    pub base: usize,
    /// N, a power of two (our constant, never the `num_items` in shared memory).
    pub num_items: u32,
    /// Bytes per item slot (already rounded to a power of two by the ABI).
    pub item_size: usize,
}

impl RingAt {
    fn field(&self, offset: usize) -> usize {
        // `base` is a header offset inside the region (set up by `Layout`), so this cannot wrap.
        self.base.wrapping_add(offset)
    }

    /// Region offset of the slot for `index`.
    pub fn item_offset(&self, index: Wrapping<u32>) -> usize {
        let mask = self.num_items.wrapping_sub(1);
        let slot = usize::try_from(index.0 & mask).unwrap_or(0);
        self.base
            .wrapping_add(RING_ITEMS_OFFSET)
            .wrapping_add(slot.wrapping_mul(self.item_size))
    }

    fn load(
        &self,
        region: &Region,
        offset: usize,
        order: Ordering,
    ) -> Result<Wrapping<u32>, QxlError> {
        region.load_u32(self.field(offset), order).map(Wrapping)
    }

    fn store(
        &self,
        region: &Region,
        offset: usize,
        v: Wrapping<u32>,
        order: Ordering,
    ) -> Result<(), QxlError> {
        region.store_u32(self.field(offset), v.0, order)
    }

    /// Writes a fresh header (`ipc_ring.h` `SPICE_RING_INIT` with indices starting at `start`,
    /// 0 outside tests) and zeroes the items.
    pub fn init(&self, region: &Region, start: u32) -> Result<(), QxlError> {
        let header = RingHeader {
            num_items: self.num_items.into(),
            prod: start.into(),
            notify_on_prod: start.wrapping_add(1).into(),
            cons: start.into(),
            notify_on_cons: start.into(),
        };
        region.write_obj(self.base, &header)?;
        let items = usize::try_from(self.num_items)
            .ok()
            .and_then(|n| n.checked_mul(self.item_size))
            .ok_or(QxlError::InvalidConfig("ring too large"))?;
        region.zero(self.field(RING_ITEMS_OFFSET), items)
    }

    fn check(&self, prod: Wrapping<u32>, cons: Wrapping<u32>) -> Result<u32, IndexInvalid> {
        let used = (prod - cons).0;
        if used > self.num_items {
            return Err(IndexInvalid {
                prod: prod.0,
                cons: cons.0,
                num_items: self.num_items,
            });
        }
        Ok(used)
    }
}

/// The consuming side: keeps `cons`, loads the producer's `prod`.
#[derive(Debug)]
pub struct RingReader {
    pub at: RingAt,
    cons: Wrapping<u32>,
}

impl RingReader {
    pub fn new(at: RingAt, start: u32) -> RingReader {
        RingReader {
            at,
            cons: Wrapping(start),
        }
    }

    /// Items published and not yet consumed.
    pub fn available(&self, region: &Region) -> Result<Result<u32, IndexInvalid>, QxlError> {
        // Acquire pairs with the producer's Release store of `prod`: every item it wrote before
        // publishing is visible once we see the new index.
        let prod = self.at.load(region, RING_PROD_OFFSET, Ordering::Acquire)?;
        Ok(self.at.check(prod, self.cons))
    }

    /// Region offset of the next item; call only when `available() > 0`.
    pub fn front_offset(&self) -> usize {
        self.at.item_offset(self.cons)
    }

    /// Consumes the front item. Returns true when the producer asked to be told about room
    /// (`cons == notify_on_cons`, `SPICE_RING_POP`'s notify).
    pub fn advance(&mut self, region: &Region) -> Result<bool, QxlError> {
        self.cons += 1;
        // Release: our reads of the item happen before the producer may overwrite the slot.
        self.at
            .store(region, RING_CONS_OFFSET, self.cons, Ordering::Release)?;
        // Pairs with the producer's fence after it sets notify_on_cons: either it sees our
        // new cons on its re-check, or we see its request here.
        fence(Ordering::SeqCst);
        let notify = self
            .at
            .load(region, RING_NOTIFY_ON_CONS_OFFSET, Ordering::Relaxed)?;
        Ok(notify == self.cons)
    }

    /// Asks the producer to notify on the next item (`SPICE_RING_CONS_WAIT`), then re-checks.
    /// Returns true when items are already available, so the caller must not sleep.
    pub fn request_notification(&self, region: &Region) -> Result<bool, QxlError> {
        self.at.store(
            region,
            RING_NOTIFY_ON_PROD_OFFSET,
            self.cons + Wrapping(1),
            Ordering::Relaxed,
        )?;
        // Closes the lost-wake-up race: the producer stores prod, fences, then loads
        // notify_on_prod; we store notify_on_prod, fence, then load prod. One of us sees the other.
        fence(Ordering::SeqCst);
        Ok(!matches!(self.available(region)?, Ok(0)))
    }

    pub fn cons(&self) -> u32 {
        self.cons.0
    }
}

/// The producing side: keeps `prod`, loads the consumer's `cons`.
#[derive(Debug)]
pub struct RingWriter {
    pub at: RingAt,
    prod: Wrapping<u32>,
}

impl RingWriter {
    pub fn new(at: RingAt, start: u32) -> RingWriter {
        RingWriter {
            at,
            prod: Wrapping(start),
        }
    }

    /// Free slots (N − used).
    pub fn room(&self, region: &Region) -> Result<Result<u32, IndexInvalid>, QxlError> {
        // Acquire pairs with the consumer's Release store of `cons`: it finished reading a slot
        // before we may overwrite it.
        let cons = self.at.load(region, RING_CONS_OFFSET, Ordering::Acquire)?;
        Ok(self
            .at
            .check(self.prod, cons)
            .map(|used| self.at.num_items.saturating_sub(used)))
    }

    /// Region offset of the slot at `prod` (the next item; for the release ring the open slot).
    pub fn prod_offset(&self) -> usize {
        self.at.item_offset(self.prod)
    }

    /// Publishes the slot at `prod`. Returns true when the consumer asked to be notified
    /// (`prod == notify_on_prod`, `SPICE_RING_PUSH`'s notify).
    pub fn advance(&mut self, region: &Region) -> Result<bool, QxlError> {
        self.prod += 1;
        // Release: the item's bytes (and everything it points to) are written before the index.
        self.at
            .store(region, RING_PROD_OFFSET, self.prod, Ordering::Release)?;
        // Pairs with the fence in `RingReader::request_notification`.
        fence(Ordering::SeqCst);
        let notify = self
            .at
            .load(region, RING_NOTIFY_ON_PROD_OFFSET, Ordering::Relaxed)?;
        Ok(notify == self.prod)
    }

    /// Asks the consumer to notify when it consumes the next item, then re-checks.
    /// Returns true when there is already room.
    pub fn request_room_notification(
        &self,
        region: &Region,
        needed: u32,
    ) -> Result<bool, QxlError> {
        let cons = self.at.load(region, RING_CONS_OFFSET, Ordering::Acquire)?;
        self.at.store(
            region,
            RING_NOTIFY_ON_CONS_OFFSET,
            cons + Wrapping(1),
            Ordering::Relaxed,
        )?;
        // Pairs with the fence in `RingReader::advance`.
        fence(Ordering::SeqCst);
        Ok(matches!(self.room(region)?, Ok(r) if r >= needed))
    }

    pub fn prod(&self) -> u32 {
        self.prod.0
    }
}

#[cfg(test)]
#[path = "ring_tests.rs"]
mod tests;
