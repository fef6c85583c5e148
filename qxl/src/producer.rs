//! The producer end (the guest QXL driver's side): allocates in RAM/VRAM, writes structures,
//! pushes commands, posts device I/O, and reclaims what the release ring hands back.
//!
//! Waiting is always bounded: when RAM or a ring is full the producer reclaims, asks the
//! consumer for `FlushRelease`, and gives up with `QxlError::Busy` after `SPACE_WAIT`.
//! The convenience layer (what QEMU ui/spice-display.c needs) is in `commands.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zerocopy::little_endian::U64;

use crate::abi::QxlCommand;
use crate::alloc::{Block, FreeList};
use crate::consumer::{command_ring, cursor_ring, release_ring};
use crate::error::QxlError;
use crate::io::IoRequest;
use crate::memslot::{QxlPhys, RAM_SLOT, VRAM_SLOT};
use crate::ring::{RingReader, RingWriter};
use crate::Shared;

/// Longest a producer call waits for RAM or ring room before `QxlError::Busy`.
pub const SPACE_WAIT: Duration = Duration::from_secs(1);
/// Longest `io` waits for the consumer's answer (a worker round is ≤ 10 ms in spice-server;
/// two seconds means the worker is stuck, and the caller should hear about it).
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Sleep between retries while waiting for room, so a missed doorbell costs at most this.
const RETRY_SLICE: Duration = Duration::from_millis(10);

/// A RAM allocation made by the lower layer. Its `id` is the release id: write it into the
/// `QXLReleaseInfo` at offset 0 of the allocation (every command struct starts with one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub id: u64,
    /// QXL address of the first byte.
    pub phys: QxlPhys,
    pub len: usize,
    /// Region offset of the first byte.
    region_offset: usize,
}

#[derive(Debug)]
struct Live {
    ram: Block,
    vram: Option<Block>,
}

/// The producer's end of the device. `Send`; one per device.
#[derive(Debug)]
pub struct Producer {
    pub(crate) shared: Arc<Shared>,
    cmd: RingWriter,
    cursor: RingWriter,
    release: RingReader,
    ram: FreeList,
    vram: FreeList,
    /// Release id → its blocks, until the release ring hands the id back.
    live: HashMap<u64, Live>,
    next_id: u64,
    pub(crate) primary: Option<(u32, u32)>,
    pub(crate) image_unique: u64,
    pub(crate) cursor_unique: u64,
    pub(crate) started: Instant,
}

impl Producer {
    pub(crate) fn new(shared: Arc<Shared>) -> Producer {
        let layout = *shared.region.layout();
        Producer {
            cmd: RingWriter::new(command_ring(&shared), 0),
            cursor: RingWriter::new(cursor_ring(&shared), 0),
            release: RingReader::new(release_ring(&shared), 0),
            ram: FreeList::new(layout.ram_usable),
            vram: FreeList::new(layout.vram_size),
            live: HashMap::new(),
            next_id: 1,
            primary: None,
            image_unique: 1,
            cursor_unique: 1,
            started: Instant::now(),
            shared,
        }
    }

    /// The shared memory file, to map the region elsewhere.
    pub fn region_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.shared.region.fd()
    }

    /// Where ROM, RAM, the rings and VRAM sit in the region.
    pub fn layout(&self) -> crate::region::Layout {
        *self.shared.region.layout()
    }

    /// Allocations not yet handed back by the consumer.
    pub fn live_allocations(&self) -> usize {
        self.live.len()
    }

    /// Bytes of RAM in use.
    pub fn ram_used(&self) -> usize {
        self.ram.used()
    }

    /// The current primary surface size, if one exists.
    pub fn primary(&self) -> Option<(u32, u32)> {
        self.primary
    }

    /// Allocates `len` bytes of RAM under a fresh release id, waiting (bounded) for releases.
    pub fn alloc(&mut self, len: usize) -> Result<Allocation, QxlError> {
        let block = self.alloc_in(len, false)?;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.live.insert(
            id,
            Live {
                ram: block,
                vram: None,
            },
        );
        let region_offset = self.shared.region.layout().ram_start + block.offset;
        let phys = self
            .shared
            .slots
            .phys(RAM_SLOT, block.offset)
            .ok_or(QxlError::TooLarge { len, what: "RAM" })?;
        Ok(Allocation {
            id,
            phys,
            len,
            region_offset,
        })
    }

    /// Allocates VRAM tied to `alloc`'s release id (freed when that id comes back).
    pub(crate) fn alloc_vram_for(
        &mut self,
        alloc: &Allocation,
        len: usize,
    ) -> Result<QxlPhys, QxlError> {
        let block = self.alloc_in(len, true)?;
        let phys = self.shared.slots.phys(VRAM_SLOT, block.offset);
        match (self.live.get_mut(&alloc.id), phys) {
            (Some(live), Some(phys)) if live.vram.is_none() => {
                live.vram = Some(block);
                Ok(phys)
            }
            _ => {
                self.vram.free(block);
                Err(QxlError::InvalidArgument(
                    "allocation already has VRAM or is not live",
                ))
            }
        }
    }

    fn alloc_in(&mut self, len: usize, vram: bool) -> Result<Block, QxlError> {
        let what = if vram { "VRAM" } else { "RAM" };
        let pool_size = if vram {
            self.vram.size()
        } else {
            self.ram.size()
        };
        if FreeList::rounded(len).is_none_or(|l| l > pool_size) {
            return Err(QxlError::TooLarge { len, what });
        }
        let deadline = Instant::now() + SPACE_WAIT;
        loop {
            let pool = if vram { &mut self.vram } else { &mut self.ram };
            if let Some(block) = pool.alloc(len) {
                return Ok(block);
            }
            if self.reclaim()? > 0 {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(QxlError::Busy { what });
            }
            // The consumer drains the command ring, releases what it parsed and publishes.
            match self.io_within(IoRequest::FlushRelease, (deadline - now).min(IO_TIMEOUT)) {
                Ok(()) => {}
                Err(QxlError::IoTimeout(_)) => return Err(QxlError::Busy { what }),
                Err(e) => return Err(e),
            }
            if self.reclaim()? == 0 {
                // Everything left is held (surfaces) or the chain could not be published yet.
                let seen = self.shared.to_producer.seen();
                self.shared.to_producer.wait_past(seen, RETRY_SLICE);
            }
        }
    }

    /// Frees an allocation that was never pushed (the consumer cannot hand it back).
    pub fn free_unpushed(&mut self, alloc: &Allocation) {
        if let Some(live) = self.live.remove(&alloc.id) {
            self.free_live(live);
        }
    }

    fn free_live(&mut self, live: Live) {
        self.ram.free(live.ram);
        if let Some(v) = live.vram {
            self.vram.free(v);
        }
    }

    /// Writes `bytes` at `offset` inside `alloc`.
    pub fn write(&self, alloc: &Allocation, offset: usize, bytes: &[u8]) -> Result<(), QxlError> {
        let end = offset.checked_add(bytes.len());
        if end.is_none_or(|e| e > alloc.len) {
            return Err(QxlError::RegionOutOfBounds {
                offset,
                len: bytes.len(),
            });
        }
        self.shared
            .region
            .write(alloc.region_offset + offset, bytes)
    }

    /// Writes `bytes` at a QXL address (resolved through the memslots).
    pub fn write_phys(&self, addr: QxlPhys, bytes: &[u8]) -> Result<(), QxlError> {
        let span = self.shared.slots.resolve(addr, bytes.len())?;
        self.shared.region.write(span.offset(), bytes)
    }

    /// Writes raw bytes anywhere in the region, ring headers included: a hook for tests and
    /// fuzzing that play a hostile guest.
    pub fn write_region(&self, offset: usize, bytes: &[u8]) -> Result<(), QxlError> {
        self.shared.region.write(offset, bytes)
    }

    /// Bytes of the whole region.
    pub fn region_len(&self) -> usize {
        self.shared.region.len()
    }

    /// Pushes a command on the command ring, waiting (bounded) for room, and notifies.
    pub fn push_command(&mut self, cmd: QxlCommand) -> Result<(), QxlError> {
        self.push(cmd, false)
    }

    /// Pushes a command on the cursor ring, waiting (bounded) for room, and notifies.
    pub fn push_cursor(&mut self, cmd: QxlCommand) -> Result<(), QxlError> {
        self.push(cmd, true)
    }

    fn push(&mut self, cmd: QxlCommand, cursor: bool) -> Result<(), QxlError> {
        let what = if cursor {
            "cursor ring"
        } else {
            "command ring"
        };
        let deadline = Instant::now() + SPACE_WAIT;
        loop {
            let shared = &self.shared;
            let ring = if cursor {
                &mut self.cursor
            } else {
                &mut self.cmd
            };
            match ring.room(&shared.region)? {
                Ok(room) if room >= 1 => {
                    shared.region.write_obj(ring.prod_offset(), &cmd)?;
                    if ring.advance(&shared.region)? {
                        shared.to_consumer.ring();
                    }
                    return Ok(());
                }
                Ok(_) => {}
                Err(bad) => {
                    return Err(QxlError::RingIndexInvalid {
                        ring: what,
                        prod: bad.prod,
                        cons: bad.cons,
                    })
                }
            }
            let seen = shared.to_producer.seen();
            if ring.request_room_notification(&shared.region, 1)? {
                continue;
            }
            // The consumer may be asleep without having asked for a notification.
            shared.to_consumer.ring();
            let now = Instant::now();
            if now >= deadline {
                return Err(QxlError::Busy { what });
            }
            shared
                .to_producer
                .wait_past(seen, (deadline - now).min(RETRY_SLICE));
        }
    }

    /// Wakes the consumer (`QXL_IO_NOTIFY_CMD`).
    pub fn notify(&self) {
        self.shared.to_consumer.ring();
    }

    /// Walks the published release chains, freeing every id they name. Returns how many
    /// allocations came back.
    pub fn reclaim(&mut self) -> Result<usize, QxlError> {
        let mut freed = 0;
        let shared = self.shared.clone();
        let region = &shared.region;
        loop {
            match self.release.available(region)? {
                Ok(0) => return Ok(freed),
                Ok(_) => {}
                Err(bad) => {
                    return Err(QxlError::RingIndexInvalid {
                        ring: "release",
                        prod: bad.prod,
                        cons: bad.cons,
                    })
                }
            }
            let mut id = region.read_obj::<U64>(self.release.front_offset())?.get();
            // Fuel: a chain can name each live id at most once; a loop or an unknown id ends it.
            let mut fuel = self.live.len();
            while id != 0 && fuel > 0 {
                fuel -= 1;
                let Some(live) = self.live.remove(&id) else {
                    break;
                };
                let next = region.read_obj::<U64>(region.layout().ram_start + live.ram.offset);
                self.free_live(live);
                freed += 1;
                id = next.map(|n| n.get()).unwrap_or(0);
            }
            if self.release.advance(region)? {
                shared.to_consumer.ring();
            }
        }
    }

    /// Posts a device I/O request and blocks until the consumer answers (at most `IO_TIMEOUT`).
    pub fn io(&mut self, req: IoRequest) -> Result<(), QxlError> {
        let reset = matches!(req, IoRequest::Reset);
        let result = self.io_within(req, IO_TIMEOUT);
        if reset && result.is_ok() {
            self.forget_all();
        }
        result
    }

    fn io_within(&mut self, req: IoRequest, timeout: Duration) -> Result<(), QxlError> {
        if matches!(req, IoRequest::FlushRelease) {
            // The consumer can publish its open chain only into a free slot: empty the ring first.
            self.reclaim()?;
        }
        let id = self.shared.io.post(req);
        self.shared.to_consumer.ring();
        match self.shared.io.wait(id, timeout) {
            Some(result) => Ok(result?),
            None => Err(QxlError::IoTimeout(timeout)),
        }
    }

    /// `QXL_IO_RESET`: the consumer re-initialises the rings; every allocation is forgotten.
    pub fn reset(&mut self) -> Result<(), QxlError> {
        self.io(IoRequest::Reset)
    }

    fn forget_all(&mut self) {
        let layout = *self.shared.region.layout();
        self.cmd = RingWriter::new(self.cmd.at, 0);
        self.cursor = RingWriter::new(self.cursor.at, 0);
        self.release = RingReader::new(self.release.at, 0);
        self.ram = FreeList::new(layout.ram_usable);
        self.vram = FreeList::new(layout.vram_size);
        self.live.clear();
        self.primary = None;
    }

    /// Milliseconds since the device was made, for `mm_time`.
    pub(crate) fn mm_time(&self) -> u32 {
        // Wraps after 49 days, as the guest's media clock does.
        (self.started.elapsed().as_millis() & u128::from(u32::MAX)) as u32
    }
}
