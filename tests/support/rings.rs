//! Split virtqueues in the test VMM's guest RAM, driven as a guest driver does: descriptor
//! chains posted on the avail ring, kicks and calls through eventfds, completions read back from
//! the used ring.
//!
//! The layout is the virtio 1.x split ring (OASIS virtio §2.7): descriptor table (16 bytes per
//! entry), avail ring (`flags, idx, ring[size], used_event`, all u16), used ring aligned to 4
//! (`flags, idx` u16, `ring[size]` of `{id, len}` u32 pairs, `avail_event` u16). virtio-queue's
//! `MockSplitQueue` is not used for this: constructing one zeroes the ring indices, and its
//! `end()` counts ring entries as bytes, so the used ring it lays out overlaps the avail ring.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Size of a split-ring descriptor: `addr u64, len u32, flags u16, next u16`.
const DESC_SIZE: u64 = 16;
/// `flags` and `idx` ahead of each ring's entries.
const RING_HEADER: u64 = 4;
/// Used-ring alignment (virtio §2.7: "Used Ring ... 4").
const USED_ALIGN: u64 = 4;

/// One guest buffer of a posted chain.
#[derive(Clone, Copy, Debug)]
pub struct Buffer {
    pub gpa: u64,
    pub len: u32,
    pub writable: bool,
}

/// A chain the guest made available and has not seen used yet.
#[derive(Clone, Debug)]
pub struct Posted {
    pub queue: usize,
    pub head: u16,
    pub buffers: Vec<Buffer>,
}

/// A used-ring entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Used {
    pub head: u16,
    pub len: u32,
}

/// The guest side of one split virtqueue.
pub struct TestQueue {
    pub size: u16,
    pub kick: EventFd,
    pub call: EventFd,
    desc_table: u64,
    avail: u64,
    used: u64,
    next_desc: u16,
    avail_idx: u16,
    last_used: u16,
    in_flight: u16,
}

impl TestQueue {
    /// Bytes of guest RAM the rings of a queue of `size` entries take.
    pub fn ring_bytes(size: u16) -> u64 {
        let (_, _, used) = Self::layout(0, size);
        used + RING_HEADER + 8 * u64::from(size) + 2
    }

    fn layout(base: u64, size: u16) -> (u64, u64, u64) {
        let avail = base + DESC_SIZE * u64::from(size);
        let used = (avail + RING_HEADER + 2 * u64::from(size) + 2).next_multiple_of(USED_ALIGN);
        (base, avail, used)
    }

    /// A queue whose (zeroed) rings start at guest-physical `base`.
    pub fn new(base: u64, size: u16) -> Self {
        let (desc_table, avail, used) = Self::layout(base, size);
        TestQueue {
            size,
            kick: EventFd::new(EFD_NONBLOCK).expect("an eventfd can be created"),
            call: EventFd::new(EFD_NONBLOCK).expect("an eventfd can be created"),
            desc_table,
            avail,
            used,
            next_desc: 0,
            avail_idx: 0,
            last_used: 0,
            in_flight: 0,
        }
    }

    pub fn desc_table_addr(&self) -> u64 {
        self.desc_table
    }

    pub fn avail_addr(&self) -> u64 {
        self.avail
    }

    pub fn used_addr(&self) -> u64 {
        self.used
    }

    /// Writes the descriptors of one chain and makes its head available (no kick).
    pub fn post(&mut self, mem: &GuestMemoryMmap, buffers: &[Buffer]) -> u16 {
        let count = u16::try_from(buffers.len()).expect("a chain has fewer than 65536 buffers");
        assert!(count > 0, "a chain has at least one buffer");
        assert!(
            self.in_flight + count <= self.size,
            "queue overfull: {} descriptors in flight, {count} more, size {}",
            self.in_flight,
            self.size
        );
        // Chains are laid out contiguously; wrap to the start when one does not fit at the end
        // (the earlier chains there have been used by then, or the assert above fires).
        if self.next_desc + count > self.size {
            self.next_desc = 0;
        }
        let head = self.next_desc;
        for (i, b) in buffers.iter().enumerate() {
            let index = head + u16::try_from(i).expect("checked above");
            let last = i + 1 == buffers.len();
            let mut flags = if last { 0 } else { VRING_DESC_F_NEXT as u16 };
            if b.writable {
                flags |= VRING_DESC_F_WRITE as u16;
            }
            let next = if last { 0 } else { index + 1 };
            let mut desc = [0u8; DESC_SIZE as usize];
            desc[0..8].copy_from_slice(&b.gpa.to_le_bytes());
            desc[8..12].copy_from_slice(&b.len.to_le_bytes());
            desc[12..14].copy_from_slice(&flags.to_le_bytes());
            desc[14..16].copy_from_slice(&next.to_le_bytes());
            let at = self.desc_table + DESC_SIZE * u64::from(index);
            mem.write_slice(&desc, GuestAddress(at))
                .expect("the descriptor table is in guest RAM");
        }
        let slot = self.avail + RING_HEADER + 2 * u64::from(self.avail_idx % self.size);
        mem.write_obj(head.to_le(), GuestAddress(slot))
            .expect("the avail ring is in guest RAM");
        // used_event (read by devices that negotiated EVENT_IDX): call us at the next used entry,
        // as Linux's `virtqueue_enable_cb` asks, so waits need not fall back on polling.
        let used_event = self.avail + RING_HEADER + 2 * u64::from(self.size);
        mem.write_obj(self.last_used.to_le(), GuestAddress(used_event))
            .expect("the avail ring is in guest RAM");
        self.avail_idx = self.avail_idx.wrapping_add(1);
        // Release: the device must see the descriptors and the ring entry before the new index.
        mem.store(
            self.avail_idx.to_le(),
            GuestAddress(self.avail + 2),
            Ordering::Release,
        )
        .expect("the avail ring is in guest RAM");
        self.next_desc += count;
        self.in_flight += count;
        head
    }

    pub fn notify(&self) {
        self.kick.write(1).expect("the kick eventfd can be written");
    }

    /// The next used entry, waiting for a call (or polling the ring) up to `timeout`.
    pub fn wait_used(&mut self, mem: &GuestMemoryMmap, timeout: Duration) -> Option<Used> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(used) = self.pop_used(mem) {
                return Some(used);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            // A device may suppress calls (EVENT_IDX); poll the ring at least every 10 ms.
            wait_readable(&self.call, left.min(Duration::from_millis(10)));
            let _ = self.call.read();
        }
    }

    /// The next used entry if the device has returned one.
    pub fn pop_used(&mut self, mem: &GuestMemoryMmap) -> Option<Used> {
        let used_idx = u16::from_le(
            mem.load::<u16>(GuestAddress(self.used + 2), Ordering::Acquire)
                .expect("the used ring is in guest RAM"),
        );
        if used_idx == self.last_used {
            return None;
        }
        let at = self.used + RING_HEADER + 8 * u64::from(self.last_used % self.size);
        let id: u32 = mem.read_obj(GuestAddress(at)).expect("in guest RAM");
        let len: u32 = mem.read_obj(GuestAddress(at + 4)).expect("in guest RAM");
        self.last_used = self.last_used.wrapping_add(1);
        let head = u16::try_from(u32::from_le(id)).expect("the device returned a valid head");
        // Count the chain's descriptors back out of flight.
        let mut index = head;
        loop {
            let at = self.desc_table + DESC_SIZE * u64::from(index);
            let flags: u16 = mem.read_obj(GuestAddress(at + 12)).expect("in guest RAM");
            let next: u16 = mem.read_obj(GuestAddress(at + 14)).expect("in guest RAM");
            self.in_flight = self.in_flight.saturating_sub(1);
            if u16::from_le(flags) & VRING_DESC_F_NEXT as u16 == 0 {
                break;
            }
            index = u16::from_le(next);
        }
        Some(Used {
            head,
            len: u32::from_le(len),
        })
    }
}

fn wait_readable(fd: &impl AsRawFd, timeout: Duration) {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one live, initialised pollfd, length 1; poll(2) only writes its `revents`.
    unsafe { libc::poll(&mut pollfd, 1, millis) };
}
