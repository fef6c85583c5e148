//! Backend tests: real split virtqueues (virtio-queue's mock layout) over small guest memory.

use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;

use super::*;
use crate::virtio::gpu::edid::EDID_BLOCK_SIZE;
use crate::virtio::gpu::protocol::{ctrl_type as t, Rect, FLAG_FENCE};
use crate::virtio::gpu::sink::SinkRect;
use crate::virtio::gpu::testutil::*;
use crate::virtio::testutil::{ready_vring, signalled, RingAddrs};

const MEM_SIZE: u64 = 0x40_0000;
const QUEUE_SIZE: u16 = 256;
const QUEUE_ADDR: [u64; 2] = [0x1000, 0x8000];
/// Request and response buffers are bump-allocated from here.
const DATA_ADDR: u64 = 0x1_0000;
/// Guest framebuffer pages live from here.
const FB_ADDR: u64 = 0x10_0000;
const PAGE: u64 = 4096;

struct Harness<'m> {
    backend: GpuBackend<RecordingSink>,
    sink: RecordingSink,
    notifier: Arc<CountingNotifier>,
    mem: &'m GuestMemoryMmap,
    queues: Vec<MockSplitQueue<'m, GuestMemoryMmap>>,
    vrings: Vec<VringRwLock>,
    calls: Vec<UnixStream>,
    next_desc: [u16; 2],
    next_data: u64,
}

impl<'m> Harness<'m> {
    fn new(mem: &'m GuestMemoryMmap, config: GpuConfig) -> Self {
        let sink = RecordingSink::default();
        let notifier = Arc::new(CountingNotifier::default());
        let backend = GpuBackend::new(config, sink.clone(), notifier.clone()).expect("backend");
        let atomic = GuestMemoryAtomic::new(mem.clone());
        backend.update_memory(atomic.clone()).expect("memory");
        let mut queues = Vec::new();
        let mut vrings = Vec::new();
        let mut calls = Vec::new();
        for addr in QUEUE_ADDR {
            let q = MockSplitQueue::create(mem, GuestAddress(addr), QUEUE_SIZE);
            let addrs = RingAddrs {
                desc: q.desc_table_addr(),
                avail: q.avail_addr(),
                used: q.used_addr(),
            };
            let (vring, ours) = ready_vring(&atomic, QUEUE_SIZE, &addrs);
            queues.push(q);
            vrings.push(vring);
            calls.push(ours);
        }
        Self {
            backend,
            sink,
            notifier,
            mem,
            queues,
            vrings,
            calls,
            next_desc: [0; 2],
            next_data: DATA_ADDR,
        }
    }

    fn alloc(&mut self, len: u64) -> u64 {
        let addr = self.next_data;
        self.next_data += len.next_multiple_of(16);
        addr
    }

    /// Posts one chain: readable buffers, then writable ones of the given sizes; returns
    /// the writable buffers' addresses.
    fn post(&mut self, queue: usize, readable: &[&[u8]], writable: &[u32]) -> Vec<u64> {
        let mut descs = Vec::new();
        let mut out = Vec::new();
        for buf in readable {
            let addr = self.alloc(buf.len() as u64);
            self.mem
                .write_slice(buf, GuestAddress(addr))
                .expect("write request");
            descs.push((addr, buf.len() as u32, 0u16));
        }
        for &len in writable {
            let addr = self.alloc(u64::from(len));
            self.mem
                .write_slice(&vec![0xa5; len as usize], GuestAddress(addr))
                .expect("fill");
            descs.push((addr, len, VRING_DESC_F_WRITE as u16));
            out.push(addr);
        }
        let first = self.next_desc[queue];
        let count = descs.len() as u16;
        let raw: Vec<RawDescriptor> = descs
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, flags))| {
                let i = i as u16;
                let (flags, next) = if i + 1 < count {
                    (flags | VRING_DESC_F_NEXT as u16, first + i + 1)
                } else {
                    (flags, 0)
                };
                RawDescriptor::from(Descriptor::new(addr, len, flags, next))
            })
            .collect();
        self.queues[queue]
            .add_desc_chains(&raw, first)
            .expect("post chain");
        self.next_desc[queue] = (first + count) % QUEUE_SIZE;
        out
    }

    fn kick(&self, queue: u16) {
        self.backend
            .handle_event(queue, EventSet::IN, &self.vrings, 0)
            .expect("handle_event");
    }

    /// Whether the queue's call fd was signalled since the last check.
    fn signalled(&self, queue: usize) -> bool {
        signalled(&self.calls[queue])
    }

    fn used(&self, queue: usize) -> Vec<(u32, u32)> {
        let used = self.queues[queue].used();
        let idx = used.idx().load();
        (0..idx as usize)
            .map(|i| {
                let e = used
                    .ring()
                    .ref_at(i % QUEUE_SIZE as usize)
                    .expect("used")
                    .load();
                (e.id(), e.len())
            })
            .collect()
    }

    /// One control command with a `resp_len` response buffer; returns the response bytes.
    fn control(&mut self, readable: &[&[u8]], resp_len: u32) -> Vec<u8> {
        let before = self.used(0).len();
        let out = self.post(0, readable, &[resp_len]);
        self.kick(0);
        let used = self.used(0);
        assert_eq!(used.len(), before + 1, "exactly one used entry per chain");
        let (_, len) = used[before];
        let mut resp = vec![0u8; len as usize];
        self.mem
            .read_slice(&mut resp, GuestAddress(out[0]))
            .expect("response");
        resp
    }

    /// A backed 32x32 resource 1 on scanout 0; the sink's record is cleared.
    fn show_resource_1(&mut self) {
        self.ok(&create_2d(1, 2, 32, 32));
        let (req, entries) = attach(1, &[(FB_ADDR, 32 * 32 * 4)]);
        self.control(&[&req, &entries], 24);
        self.ok(&set_scanout(0, 1, rect(0, 0, 32, 32)));
        self.sink.take();
    }

    fn ok(&mut self, req: &[u8]) {
        let resp = self.control(&[req], 24);
        assert_eq!(
            resp_type(&resp),
            t::RESP_OK_NODATA,
            "request {:#x}",
            resp_type(req)
        );
    }
}

fn guest_memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)]).expect("guest memory")
}

fn small_config() -> GpuConfig {
    GpuConfig {
        width: 160,
        height: 100,
        ..GpuConfig::default()
    }
}

/// Framebuffer pages in reverse order with gaps, as shmem pages usually are.
fn scattered_pages(bytes: u64) -> Vec<(u64, u32)> {
    let n = bytes.div_ceil(PAGE);
    (0..n)
        .map(|i| (FB_ADDR + (n - 1 - i) * 2 * PAGE, PAGE as u32))
        .collect()
}

/// Writes pixel (x, y) of a `width`-wide framebuffer at its place in the scattered pages.
fn write_guest_pixel(
    mem: &GuestMemoryMmap,
    pages: &[(u64, u32)],
    width: u32,
    x: u32,
    y: u32,
    px: [u8; 4],
) {
    let off = u64::from(y * width + x) * 4;
    let (addr, _) = pages[(off / PAGE) as usize];
    mem.write_slice(&px, GuestAddress(addr + off % PAGE))
        .expect("pixel");
}

fn expected(r: Rect, frame_of: impl Fn(u32, u32) -> u8) -> Vec<u8> {
    let mut v = Vec::new();
    for y in r.y..r.y + r.height {
        for x in r.x..r.x + r.width {
            v.extend_from_slice(&pattern(x, y, frame_of(x, y)));
        }
    }
    v
}

#[test]
fn linux_probe_sequence_reaches_the_sink_with_the_guest_pixels() {
    let mem = guest_memory();
    let mut h = Harness::new(&mem, small_config());
    let (w, ht) = (160u32, 100u32);

    // Config space as the driver reads it at probe.
    assert_eq!(h.backend.get_config(8, 4), 1u32.to_le_bytes().to_vec());
    assert_eq!(h.backend.get_config(12, 4), vec![0; 4]);

    let edid = h.control(&[&get_edid(0)], 1056);
    assert_eq!(edid.len(), 1056);
    assert_eq!(resp_type(&edid), t::RESP_OK_EDID);
    assert_eq!(
        u32::from_le_bytes(edid[24..28].try_into().unwrap()),
        EDID_BLOCK_SIZE as u32
    );
    let block = &edid[32..32 + EDID_BLOCK_SIZE];
    assert_eq!(block.iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0);

    let info = h.control(&[&display_info()], 408);
    assert_eq!(info.len(), 408);
    assert_eq!(resp_type(&info), t::RESP_OK_DISPLAY_INFO);
    let words: Vec<u32> = info[24..48]
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(words, vec![0, 0, w, ht, 1, 0]);
    assert!(
        info[48..].iter().all(|b| *b == 0),
        "other scanouts disabled"
    );
    assert!(h.signalled(0));

    h.ok(&create_2d(1, 2, w, ht));
    let pages = scattered_pages(u64::from(w * ht * 4));
    for y in 0..ht {
        for x in 0..w {
            write_guest_pixel(&mem, &pages, w, x, y, pattern(x, y, 0));
        }
    }
    let (req, entries) = attach(1, &pages);
    let resp = h.control(&[&req, &entries], 24);
    assert_eq!(resp_type(&resp), t::RESP_OK_NODATA);

    let full = rect(0, 0, w, ht);
    h.ok(&set_scanout(0, 1, full));
    let calls = h.sink.take();
    assert_eq!(calls[0], Call::SetPrimary(w, ht));
    assert!(
        matches!(&calls[1], Call::Update(r, px) if *r == sink_rect(full) && px.iter().all(|b| *b == 0))
    );

    h.ok(&transfer(1, full, 0));
    let resp = h.control(&[&fenced(flush(1, full), 7)], 24);
    assert_eq!(resp_type(&resp), t::RESP_OK_NODATA);
    assert_eq!(
        u32::from_le_bytes(resp[4..8].try_into().unwrap()),
        FLAG_FENCE
    );
    assert_eq!(u64::from_le_bytes(resp[8..16].try_into().unwrap()), 7);
    assert_eq!(u32::from_le_bytes(resp[16..20].try_into().unwrap()), 3);
    assert_eq!(
        h.sink.take(),
        vec![Call::Update(sink_rect(full), expected(full, |_, _| 0))]
    );

    // A partial update with Linux's offset (x * 4 + y * pitch).
    let part = rect(10, 20, 30, 15);
    for y in part.y..part.y + part.height {
        for x in part.x..part.x + part.width {
            write_guest_pixel(&mem, &pages, w, x, y, pattern(x, y, 1));
        }
    }
    let offset = u64::from(part.x * 4 + part.y * w * 4);
    h.ok(&transfer(1, part, offset));
    h.ok(&fenced(flush(1, part), 8));
    assert_eq!(
        h.sink.take(),
        vec![Call::Update(sink_rect(part), expected(part, |_, _| 1))]
    );
    // Outside the rect the host copy is unchanged.
    h.ok(&flush(1, full));
    let inside = |x: u32, y: u32| {
        (part.x..part.x + part.width).contains(&x) && (part.y..part.y + part.height).contains(&y)
    };
    assert_eq!(
        h.sink.take(),
        vec![Call::Update(
            sink_rect(full),
            expected(full, |x, y| u8::from(inside(x, y)))
        )]
    );
    assert_eq!(h.notifier.count.load(Ordering::SeqCst), 0);
}

fn sink_rect(r: Rect) -> SinkRect {
    SinkRect {
        x: r.x,
        y: r.y,
        width: r.width,
        height: r.height,
    }
}

#[test]
fn config_reads_return_exactly_the_requested_size() {
    let mem = guest_memory();
    let h = Harness::new(&mem, small_config());
    let full = h.backend.get_config(0, 16);
    assert_eq!(full.len(), 16);
    for offset in 0..32u32 {
        for size in 1..16u32 {
            let got = h.backend.get_config(offset, size);
            assert_eq!(got.len(), size as usize, "offset {offset} size {size}");
            for (i, b) in got.iter().enumerate() {
                let want = full.get(offset as usize + i).copied().unwrap_or(0);
                assert_eq!(*b, want, "offset {offset} size {size} byte {i}");
            }
        }
    }
}

#[test]
fn events_clear_clears_only_the_written_bits() {
    let mem = guest_memory();
    let h = Harness::new(&mem, small_config());
    h.backend.control().request_display_size(800, 600);
    assert_eq!(h.backend.get_config(0, 4), 1u32.to_le_bytes().to_vec());
    // QEMU writes back the whole cached config: events_read and num_scanouts are ignored.
    let mut echo = h.backend.get_config(0, 16);
    echo[4..8].copy_from_slice(&0u32.to_le_bytes());
    h.backend.set_config(0, &echo).expect("set_config");
    assert_eq!(h.backend.get_config(0, 4), 1u32.to_le_bytes().to_vec());
    h.backend
        .set_config(4, &1u32.to_le_bytes())
        .expect("set_config");
    assert_eq!(h.backend.get_config(0, 4), vec![0; 4]);
    assert_eq!(h.backend.get_config(8, 4), 1u32.to_le_bytes().to_vec());
}

#[test]
fn features_offer_edid_and_transport_bits_only() {
    let mem = guest_memory();
    let h = Harness::new(&mem, small_config());
    let f = h.backend.features();
    // RING_RESET (40) is offered only because QEMU acks it unasked (see `features`).
    assert_eq!(
        f,
        (1 << 32) | (1 << 40) | (1 << 28) | (1 << 29) | (1 << 30) | (1 << 1)
    );
    let no_edid = Harness::new(
        &mem,
        GpuConfig {
            edid: false,
            ..small_config()
        },
    );
    assert_eq!(no_edid.backend.features() & 2, 0);
    assert_eq!(h.backend.num_queues(), 2);
    assert_eq!(h.backend.max_queue_size(), 1024);
}

#[test]
fn cursor_queue_chains_are_used_with_length_zero() {
    let mem = guest_memory();
    let mut h = Harness::new(&mem, small_config());
    h.ok(&create_2d(5, 2, 64, 64));
    h.post(1, &[&cursor(t::UPDATE_CURSOR, 0, 10, 20, 5, (1, 2))], &[]);
    h.post(1, &[&cursor(t::MOVE_CURSOR, 0, -3, 40, 5, (0, 0))], &[]);
    h.post(1, &[&[1, 2, 3]], &[]); // truncated: still used
    h.kick(1);
    let used = h.used(1);
    assert_eq!(used.len(), 3);
    assert!(used.iter().all(|&(_, len)| len == 0));
    assert!(h.signalled(1));
    let calls = h.sink.take();
    assert!(matches!(
        &calls[0],
        Call::CursorSet {
            width: 64,
            height: 64,
            hot: (1, 2),
            pos: (10, 20),
            ..
        }
    ));
    assert_eq!(calls[1], Call::CursorMove(-3, 40));
}

#[test]
fn malformed_and_short_chains_each_get_one_used_entry() {
    let mem = guest_memory();
    let mut h = Harness::new(&mem, small_config());
    // No writable buffer at all: nothing written, used length 0.
    h.post(0, &[&display_info()], &[]);
    // A descriptor pointing outside guest memory.
    let raw = RawDescriptor::from(Descriptor::new(MEM_SIZE + 0x1000, 24, 0, 0));
    let slot = h.next_desc[0];
    h.queues[0].add_desc_chains(&[raw], slot).expect("post");
    h.next_desc[0] += 1;
    h.kick(0);
    assert_eq!(
        h.used(0).iter().map(|u| u.1).collect::<Vec<_>>(),
        vec![0, 0]
    );
    // And the device keeps working.
    h.ok(&create_2d(1, 2, 16, 16));
}

#[test]
fn event_idx_processing_drains_everything_posted() {
    let mem = guest_memory();
    let mut h = Harness::new(&mem, small_config());
    h.backend.set_event_idx(true);
    for vring in &h.vrings {
        vring.set_queue_event_idx(true);
    }
    for id in 1..=5 {
        h.post(0, &[&create_2d(id, 2, 16, 16)], &[24]);
    }
    h.kick(0);
    let used = h.used(0);
    assert_eq!(used.len(), 5);
    assert!(used.iter().all(|&(_, len)| len == 24));
}

#[test]
fn reset_drops_resources_and_disables_the_primary() {
    let mem = guest_memory();
    let mut h = Harness::new(&mem, small_config());
    h.show_resource_1();
    h.backend.reset_device();
    assert_eq!(h.sink.take(), vec![Call::DisablePrimary]);
    // The id is free again.
    h.ok(&create_2d(1, 2, 32, 32));
}

#[test]
fn backend_is_what_the_daemon_needs() {
    fn daemon_ready<T: VhostUserBackend + Clone + Send + Sync + 'static>() {}
    daemon_ready::<Arc<GpuBackend<RecordingSink>>>();
    let mem = guest_memory();
    let h = Harness::new(&mem, small_config());
    assert!(h.backend.exit_event(0).is_some());
    let (a, _b) = UnixStream::pair().expect("socket pair");
    h.backend
        .set_gpu_socket(GpuSocket::from_stream(a))
        .expect("QEMU's SET_SOCKET is accepted");
    let (a, _b) = UnixStream::pair().expect("socket pair");
    h.backend.set_backend_req_fd(Backend::from_stream(a));
}

#[test]
fn unref_disables_the_scanout_showing_it_and_frees_the_id() {
    let mem = guest_memory();
    let mut h = Harness::new(&mem, small_config());
    h.show_resource_1();
    h.ok(&detach(1));
    h.ok(&unref(1));
    assert_eq!(h.sink.take(), vec![Call::DisablePrimary]);
    let resp = h.control(&[&flush(1, rect(0, 0, 32, 32))], 24);
    assert_eq!(resp_type(&resp), t::RESP_ERR_INVALID_RESOURCE_ID);
    h.ok(&create_2d(1, 2, 32, 32));
}
