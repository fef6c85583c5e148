//! Backend tests: real split virtqueues (virtio-queue's mock layout) over small guest memory,
//! QEMU's queue size of 4.

use std::os::unix::net::UnixStream;
use std::sync::Arc;

use vhost_user_backend::{VhostUserBackend, VringRwLock};
use virtio_bindings::virtio_ring::VRING_DESC_F_WRITE;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;

use super::*;
use crate::guest::{lock_modifiers, InputClientId, InputEvent, InputSink};
use crate::virtio::input::protocol::{ev, CONFIG_SIZE, LED_CAPSL, LED_NUML, MSC_SCAN};
use crate::virtio::testutil::{ready_vring, signalled, RingAddrs};

const MEM_SIZE: u64 = 0x10_0000;
/// QEMU's vhost-user-input-pci: both queues have 4 entries.
const QUEUE_SIZE: u16 = 4;
const QUEUE_ADDR: [u64; 2] = [0x1000, 0x4000];
/// Offsets of the avail and used rings from a queue's descriptor table.
const AVAIL_OFFSET: u64 = 0x100;
const USED_OFFSET: u64 = 0x200;
const DATA_ADDR: u64 = 0x1_0000;
const CLIENT: InputClientId = InputClientId(7);

struct NoNotifier;

impl ConfigChangeNotifier for NoNotifier {
    fn notify_config_change(&self) -> io::Result<()> {
        Ok(())
    }
}

pub(super) struct Harness<'m> {
    pub backend: InputBackend,
    mem: &'m GuestMemoryMmap,
    vrings: Vec<VringRwLock>,
    calls: Vec<UnixStream>,
    next_desc: [u16; 2],
    next_data: u64,
}

impl<'m> Harness<'m> {
    fn new(mem: &'m GuestMemoryMmap) -> Self {
        let backend =
            InputBackend::new(InputConfig::default(), Arc::new(NoNotifier)).expect("backend");
        Self::with_backend(mem, backend)
    }

    fn with_backend(mem: &'m GuestMemoryMmap, backend: InputBackend) -> Self {
        let atomic = GuestMemoryAtomic::new(mem.clone());
        backend.update_memory(atomic.clone()).expect("memory");
        let mut vrings = Vec::new();
        let mut calls = Vec::new();
        for addr in QUEUE_ADDR {
            // Laid out by hand: virtio-queue's MockSplitQueue neither wraps its avail ring
            // nor keeps a 4-entry used ring clear of its avail ring.
            let desc = GuestAddress(addr);
            let addrs = RingAddrs {
                desc,
                avail: desc.unchecked_add(AVAIL_OFFSET),
                used: desc.unchecked_add(USED_OFFSET),
            };
            let (vring, ours) = ready_vring(&atomic, QUEUE_SIZE, &addrs);
            vrings.push(vring);
            calls.push(ours);
        }
        Self {
            backend,
            mem,
            vrings,
            calls,
            next_desc: [0; 2],
            next_data: DATA_ADDR,
        }
    }

    /// Posts single-descriptor buffers (the Linux driver's layout); returns their addresses.
    fn post(&mut self, queue: usize, buffers: &[(u32, bool, &[u8])]) -> Vec<u64> {
        let mut out = Vec::new();
        for &(len, writable, content) in buffers {
            let addr = self.next_data;
            self.next_data += 16;
            let mut fill = vec![0xa5; len as usize];
            fill[..content.len()].copy_from_slice(content);
            self.mem
                .write_slice(&fill, GuestAddress(addr))
                .expect("fill");
            let flags = if writable {
                VRING_DESC_F_WRITE as u16
            } else {
                0
            };
            let index = self.next_desc[queue];
            self.make_available(queue, index, (addr, len, flags));
            self.next_desc[queue] = (index + 1) % QUEUE_SIZE;
            out.push(addr);
        }
        out
    }

    /// Writes a descriptor (no NEXT) and publishes it in the avail ring.
    fn make_available(&self, queue: usize, index: u16, (addr, len, flags): (u64, u32, u16)) {
        let base = GuestAddress(QUEUE_ADDR[queue]);
        let desc = base.unchecked_add(16 * u64::from(index));
        self.mem.write_obj(addr, desc).expect("desc addr");
        self.mem
            .write_obj(len, desc.unchecked_add(8))
            .expect("desc len");
        self.mem
            .write_obj(flags, desc.unchecked_add(12))
            .expect("desc flags");
        self.mem
            .write_obj(0u16, desc.unchecked_add(14))
            .expect("desc next");
        let avail = base.unchecked_add(AVAIL_OFFSET);
        let idx: u16 = self
            .mem
            .read_obj(avail.unchecked_add(2))
            .expect("avail idx");
        let slot = avail.unchecked_add(4 + 2 * u64::from(idx % QUEUE_SIZE));
        self.mem.write_obj(index, slot).expect("avail ring");
        self.mem
            .write_obj(idx.wrapping_add(1), avail.unchecked_add(2))
            .expect("avail idx");
    }

    fn post_event_buffers(&mut self, count: usize) -> Vec<u64> {
        let bufs = vec![(8u32, true, &[][..]); count];
        self.post(0, &bufs)
    }

    fn event(&self, device_event: u16) {
        self.backend
            .handle_event(device_event, EventSet::IN, &self.vrings, 0)
            .expect("handle_event");
    }

    fn signalled(&self, queue: usize) -> bool {
        signalled(&self.calls[queue])
    }

    /// Used entries (id, len) of a queue so far.
    fn used(&self, queue: usize) -> Vec<(u32, u32)> {
        let used = GuestAddress(QUEUE_ADDR[queue] + USED_OFFSET);
        let idx: u16 = self.mem.read_obj(used.unchecked_add(2)).expect("used idx");
        (0..u64::from(idx))
            .map(|i| {
                let elem = used.unchecked_add(4 + 8 * (i % u64::from(QUEUE_SIZE)));
                let id: u32 = self.mem.read_obj(elem).expect("used id");
                let len: u32 = self.mem.read_obj(elem.unchecked_add(4)).expect("used len");
                (id, len)
            })
            .collect()
    }

    fn read_event(&self, addr: u64) -> VirtioInputEvent {
        let mut b = [0u8; 8];
        self.mem
            .read_slice(&mut b, GuestAddress(addr))
            .expect("event");
        VirtioInputEvent::from_bytes(b)
    }

    fn input(&self, event: InputEvent) {
        self.backend.handle().input(CLIENT, event);
    }

    fn config(&self, offset: u32, size: u32) -> Vec<u8> {
        let out = self.backend.get_config(offset, size);
        assert_eq!(out.len(), size as usize, "get_config({offset}, {size})");
        out
    }

    fn select(&self, select: u8, subsel: u8) -> Vec<u8> {
        self.backend
            .set_config(0, &[select, subsel])
            .expect("set_config");
        let size = self.config(2, 1)[0];
        self.config(8, u32::from(size))
    }
}

fn guest_memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)]).expect("guest memory")
}

#[test]
fn config_select_protocol_as_linux_probes() {
    let mem = guest_memory();
    let h = Harness::new(&mem);
    assert_eq!(
        h.select(select::ID_NAME, 0),
        InputConfig::default().name.as_bytes()
    );
    assert!(h.select(select::ID_SERIAL, 0).is_empty());
    assert_eq!(h.select(select::ID_DEVIDS, 0)[..2], [0x06, 0]);
    assert!(h.select(select::PROP_BITS, 0).is_empty());
    assert_eq!(h.select(select::EV_BITS, ev::REP as u8), [0]);
    assert_eq!(h.select(select::EV_BITS, ev::LED as u8), [0b111]);
    assert_eq!(h.select(select::EV_BITS, ev::ABS as u8), [0b11]);
    assert_eq!(h.select(select::ABS_INFO, 1)[4..8], 32767u32.to_le_bytes());
    assert!(h.select(select::ABS_INFO, 2).is_empty());
    assert!(h.select(select::EV_BITS, 0x05).is_empty());
    // subsel and select written one byte at a time, in either order.
    h.backend.set_config(1, &[ev::REL as u8]).expect("subsel");
    h.backend.set_config(0, &[select::EV_BITS]).expect("select");
    assert_eq!(h.config(2, 1), [2]);
}

#[test]
fn every_config_read_is_exactly_the_size_asked() {
    let mem = guest_memory();
    let h = Harness::new(&mem);
    h.backend
        .set_config(0, &[select::EV_BITS, ev::KEY as u8])
        .expect("select");
    let whole = h.config(0, CONFIG_SIZE as u32);
    for offset in 0..=CONFIG_SIZE as u32 + 8 {
        for size in 1..=(CONFIG_SIZE as u32 + 16 - offset.min(CONFIG_SIZE as u32)) {
            let part = h.config(offset, size);
            for (i, b) in part.iter().enumerate() {
                let p = offset as usize + i;
                assert_eq!(*b, whole.get(p).copied().unwrap_or(0), "byte {p}");
            }
        }
    }
    assert_eq!(h.config(u32::MAX, 4), [0; 4]);
    assert_eq!(h.config(0, 0x1000).len(), 0x1000);
}

#[test]
fn qemu_writes_the_whole_config_back() {
    let mem = guest_memory();
    let h = Harness::new(&mem);
    h.backend
        .set_config(0, &[select::ID_NAME, 0])
        .expect("select");
    let mut whole = h.config(0, CONFIG_SIZE as u32);
    // QEMU echoes its cached copy, with the guest's new select in it.
    whole[0] = select::EV_BITS;
    whole[1] = ev::LED as u8;
    whole[2] = 99;
    h.backend.set_config(0, &whole).expect("write back");
    assert_eq!(h.config(0, 3), [select::EV_BITS, ev::LED as u8, 1]);
}

#[test]
fn hostile_config_selects_answer_size_zero() {
    let mem = guest_memory();
    let h = Harness::new(&mem);
    for (sel, subsel) in [(0x04, 0), (0x13, 0), (0xff, 0xff), (select::ID_NAME, 1)] {
        assert!(h.select(sel, subsel).is_empty(), "{sel:#x}/{subsel:#x}");
        assert_eq!(h.config(8, 128), [0; 128]);
    }
    h.backend
        .set_config(u32::MAX, &[1, 2, 3])
        .expect("past the end is ignored");
}

#[test]
fn events_wait_for_buffers_and_flush_in_order_on_the_next_kick() {
    let mem = guest_memory();
    let mut h = Harness::new(&mem);
    // Events before the guest posted anything just wait.
    h.input(InputEvent::PointerPosition { x: 640, y: 400 });
    h.event(WAKE_EVENT);
    assert!(h.used(0).is_empty());
    let first = h.post_event_buffers(4);
    h.input(InputEvent::Key {
        scancode: 0x1e,
        pressed: true,
    });
    h.event(WAKE_EVENT);
    assert_eq!(h.used(0), [(0, 8), (1, 8), (2, 8), (3, 8)]);
    assert!(h.signalled(0));
    let got: Vec<_> = first.iter().map(|&a| h.read_event(a)).collect();
    assert_eq!(
        got,
        [
            VirtioInputEvent::new(ev::ABS, 0, 16396),
            VirtioInputEvent::new(ev::ABS, 1, 16404),
            VirtioInputEvent::syn(),
            VirtioInputEvent::new(ev::MSC, MSC_SCAN, 0x1e),
        ]
    );
    // The rest of the key group waits for the guest's next buffers and kick.
    assert_eq!(h.backend.handle().device().queue().len(), 2);
    let second = h.post_event_buffers(4);
    h.event(EVENT_QUEUE);
    assert_eq!(h.used(0).len(), 6);
    assert_eq!(
        h.read_event(second[0]),
        VirtioInputEvent::new(ev::KEY, 30, 1)
    );
    assert_eq!(h.read_event(second[1]), VirtioInputEvent::syn());
    assert!(h.backend.handle().device().queue().is_empty());
    // Two buffers stay posted for the next events.
    h.input(InputEvent::Key {
        scancode: 0x1e,
        pressed: false,
    });
    h.event(WAKE_EVENT);
    assert_eq!(h.used(0).len(), 8);
    assert_eq!(
        h.read_event(second[3]),
        VirtioInputEvent::new(ev::KEY, 30, 0)
    );
    assert_eq!(h.backend.handle().stats().queue.delivered, 8);
}

#[test]
fn a_full_queue_drops_motion_and_keeps_every_release() {
    let mem = guest_memory();
    let mut h = Harness::new(&mem);
    let handle = h.backend.handle();
    for i in 0..2000u32 {
        handle.input(CLIENT, InputEvent::PointerPosition { x: i, y: i });
        handle.input(CLIENT, InputEvent::Buttons { mask: i & 1 });
    }
    handle.input(CLIENT, InputEvent::Buttons { mask: 0 });
    let stats = handle.stats();
    assert!(stats.queue.dropped_motion > 0 || stats.queue.dropped_presses > 0);
    assert!(handle.device().queue().len() <= crate::virtio::input::queue::MAX_PENDING_EVENTS);
    // Drain everything through 4-entry rings.
    let mut events = Vec::new();
    loop {
        let addrs = h.post_event_buffers(4);
        h.event(EVENT_QUEUE);
        let delivered = h.used(0).len();
        let new = delivered - events.len();
        events.extend(addrs[..new].iter().map(|&a| h.read_event(a)));
        if new < 4 {
            break;
        }
    }
    let buttons: Vec<u32> = events
        .iter()
        .filter(|e| e.kind == ev::KEY)
        .map(|e| e.value)
        .collect();
    // Presses and releases alternate and the last one is a release: no stuck button.
    assert!(buttons.windows(2).all(|w| w[0] != w[1]), "{buttons:?}");
    assert_eq!(buttons.last(), Some(&0));
}

#[test]
fn guest_leds_reach_the_spice_side() {
    let mem = guest_memory();
    let mut h = Harness::new(&mem);
    let mut locks = h.backend.handle().guest_modifiers();
    let caps = VirtioInputEvent::new(ev::LED, LED_CAPSL, 1).to_bytes();
    let num = VirtioInputEvent::new(ev::LED, LED_NUML, 1).to_bytes();
    h.post(1, &[(8, false, &caps), (8, false, &num)]);
    h.event(STATUS_QUEUE);
    assert_eq!(h.used(1), [(0, 0), (1, 0)]);
    assert!(h.signalled(1));
    assert!(locks.has_changed().expect("sender alive"));
    assert_eq!(
        *locks.borrow_and_update(),
        lock_modifiers::CAPS_LOCK | lock_modifiers::NUM_LOCK
    );
}

#[test]
fn hostile_status_buffers_are_returned_empty_and_counted() {
    let mem = guest_memory();
    let mut h = Harness::new(&mem);
    let bad_type = VirtioInputEvent::new(ev::KEY, 30, 1).to_bytes();
    let bad_led = VirtioInputEvent::new(ev::LED, 200, 1).to_bytes();
    h.post(
        1,
        &[
            (4, false, &[]),
            (8, true, &[]),
            (8, false, &bad_type),
            (8, false, &bad_led),
        ],
    );
    h.event(STATUS_QUEUE);
    assert_eq!(h.used(1), [(0, 0), (1, 0), (2, 0), (3, 0)]);
    assert_eq!(h.backend.handle().stats().bad_status_buffers, 4);
    assert_eq!(*h.backend.handle().guest_modifiers().borrow(), 0);
}

#[test]
fn hostile_event_buffers_get_nothing_and_the_event_waits() {
    let mem = guest_memory();
    let mut h = Harness::new(&mem);
    let addrs = h.post(0, &[(8, false, &[]), (4, true, &[]), (8, true, &[])]);
    h.input(InputEvent::Wheel {
        vertical: -1,
        horizontal: 0,
    });
    h.event(WAKE_EVENT);
    assert_eq!(h.used(0), [(0, 0), (1, 0), (2, 8)]);
    assert_eq!(h.read_event(addrs[2]), VirtioInputEvent::new(ev::REL, 8, 1));
    // Untouched: nothing is written into a buffer that fails validation.
    let mut b = [0u8; 4];
    mem.read_slice(&mut b, GuestAddress(addrs[1]))
        .expect("read");
    assert_eq!(b, [0xa5; 4]);
    assert_eq!(h.backend.handle().stats().bad_event_buffers, 2);
}

#[test]
fn no_queue_activity_before_memory_or_for_unknown_events() {
    let backend = InputBackend::new(InputConfig::default(), Arc::new(NoNotifier)).expect("b");
    backend.handle().input(
        CLIENT,
        InputEvent::Key {
            scancode: 0x1e,
            pressed: true,
        },
    );
    for id in [EVENT_QUEUE, STATUS_QUEUE, WAKE_EVENT, 2, 99] {
        backend
            .handle_event(id, EventSet::IN, &[], 0)
            .expect("no panic");
    }
    assert_eq!(backend.handle().device().queue().len(), 3);
}

#[test]
fn a_new_connection_keeps_the_handle_and_starts_clean() {
    let mem = guest_memory();
    let h = Harness::new(&mem);
    let handle = h.backend.handle();
    let mut locks = handle.guest_modifiers();
    handle.input(
        CLIENT,
        InputEvent::Key {
            scancode: 0x1e,
            pressed: true,
        },
    );
    handle
        .device()
        .handle_status(VirtioInputEvent::new(ev::LED, LED_CAPSL, 1))
        .expect("led");
    handle.publish_locks(lock_modifiers::CAPS_LOCK);
    locks.borrow_and_update();
    drop(h);
    let backend = InputBackend::with_handle(handle.clone(), Arc::new(NoNotifier)).expect("b");
    let mut h = Harness::with_backend(&mem, backend);
    assert!(handle.device().queue().is_empty());
    assert!(
        locks.has_changed().expect("alive"),
        "LEDs reset to off for the new guest"
    );
    assert_eq!(*locks.borrow_and_update(), 0);
    // The same handle feeds the new connection.
    let addrs = h.post_event_buffers(3);
    handle.input(
        CLIENT,
        InputEvent::Key {
            scancode: 0x30,
            pressed: true,
        },
    );
    h.event(WAKE_EVENT);
    assert_eq!(
        h.read_event(addrs[1]),
        VirtioInputEvent::new(ev::KEY, 48, 1)
    );
}

#[test]
fn reset_device_clears_the_selection() {
    let mem = guest_memory();
    let h = Harness::new(&mem);
    h.backend
        .set_config(0, &[select::ID_NAME, 0])
        .expect("select");
    h.backend.reset_device();
    assert_eq!(h.config(0, 3), [0, 0, 0]);
}
