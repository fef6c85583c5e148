//! End to end over a real vhost-user socket: vhost's `Frontend` against `VhostUserDaemon`
//! serving `Arc<GpuBackend>`, file-backed shared guest memory at a non-zero address.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use vhost::vhost_user::message::{VhostUserConfigFlags, VhostUserHeaderFlag};
use vhost::vhost_user::{Frontend, Listener, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vhost_user_backend::VhostUserDaemon;
use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{
    Bytes, FileOffset, GuestAddress, GuestMemoryAtomic, GuestMemoryBackend, GuestMemoryMmap,
};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::*;
use crate::virtio::gpu::protocol::ctrl_type as t;
use crate::virtio::gpu::testutil::*;

/// A guest-physical base that is not 0 catches GPA/HVA mix-ups.
const GPA: u64 = 0x4000_0000;
const MEM_SIZE: u64 = 0x10_0000;
const QUEUE_SIZE: u16 = 64;
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

fn wait_for(call: &EventFd) {
    let deadline = Instant::now() + CALL_TIMEOUT;
    while call.read().is_err() {
        assert!(Instant::now() < deadline, "no used-buffer notification");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn frontend_drives_the_daemon_through_display_info_and_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gpu.sock");
    let sink = RecordingSink::default();
    let notifier = Arc::new(CountingNotifier::default());
    let backend = Arc::new(GpuBackend::new(GpuConfig::default(), sink, notifier).expect("backend"));
    let mut daemon = VhostUserDaemon::new(
        "vhost-user-gpu-test".to_owned(),
        backend.clone(),
        GuestMemoryAtomic::new(GuestMemoryMmap::new()),
    )
    .expect("daemon");
    let mut listener = Listener::new(&path, true).expect("listener");
    // The connection waits in the backlog until the daemon accepts it.
    let mut frontend = Frontend::connect(&path, 2).expect("connect");
    daemon.start(&mut listener).expect("start");

    frontend.set_owner().expect("set_owner");
    let features = frontend.get_features().expect("features");
    // As QEMU does: ack everything offered (RING_RESET included).
    frontend.set_features(features).expect("set_features");
    let proto = frontend.get_protocol_features().expect("protocol features");
    frontend
        .set_protocol_features(proto)
        .expect("set protocol features");
    frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
    assert_eq!(frontend.get_queue_num().expect("queue num"), 2);

    // cloud-hypervisor forwards the guest's own offsets and widths; every reply is exact.
    for (offset, size) in [(0, 16), (8, 4), (12, 4), (6, 3), (20, 8), (0, 64)] {
        let buf = vec![0xa5; size];
        let (_, data) = frontend
            .get_config(offset, size as u32, VhostUserConfigFlags::WRITABLE, &buf)
            .expect("get_config");
        assert_eq!(data.len(), size, "offset {offset}");
    }
    let (_, scanouts) = frontend
        .get_config(8, 4, VhostUserConfigFlags::WRITABLE, &[0; 4])
        .expect("get_config");
    assert_eq!(scanouts, 1u32.to_le_bytes());

    // Shared guest memory.
    let file = tempfile::tempfile().expect("memory file");
    file.set_len(MEM_SIZE).expect("size");
    let mem = GuestMemoryMmap::<()>::from_ranges_with_files(&[(
        GuestAddress(GPA),
        MEM_SIZE as usize,
        Some(FileOffset::new(file, 0)),
    )])
    .expect("guest memory");
    let hva = |gpa: GuestAddress| mem.get_host_address(gpa).expect("mapped") as u64;
    let region = mem.find_region(GuestAddress(GPA)).expect("region");
    let info = VhostUserMemoryRegionInfo::from_guest_region(region).expect("region info");
    frontend.set_mem_table(&[info]).expect("mem table");

    // Control queue at GPA, data after it.
    let q = MockSplitQueue::create(&mem, GuestAddress(GPA), QUEUE_SIZE);
    let kick = EventFd::new(EFD_NONBLOCK).expect("kick");
    let call = EventFd::new(EFD_NONBLOCK).expect("call");
    frontend.set_vring_num(0, QUEUE_SIZE).expect("num");
    let config = VringConfigData {
        queue_max_size: QUEUE_SIZE,
        queue_size: QUEUE_SIZE,
        flags: 0,
        desc_table_addr: hva(q.desc_table_addr()),
        used_ring_addr: hva(q.used_addr()),
        avail_ring_addr: hva(q.avail_addr()),
        log_addr: None,
    };
    frontend.set_vring_addr(0, &config).expect("addr");
    frontend.set_vring_base(0, 0).expect("base");
    frontend.set_vring_call(0, &call).expect("call");
    frontend.set_vring_kick(0, &kick).expect("kick");
    frontend.set_vring_enable(0, true).expect("enable");

    let req_addr = GPA + 0x8000;
    let resp_addr = GPA + 0x9000;
    mem.write_slice(&display_info(), GuestAddress(req_addr))
        .expect("request");
    let descs = [
        RawDescriptor::from(Descriptor::new(req_addr, 24, VRING_DESC_F_NEXT as u16, 1)),
        RawDescriptor::from(Descriptor::new(
            resp_addr,
            408,
            VRING_DESC_F_WRITE as u16,
            0,
        )),
    ];
    q.add_desc_chains(&descs, 0).expect("post");
    kick.write(1).expect("kick");
    wait_for(&call);

    assert_eq!(q.used().idx().load(), 1);
    let used = q.used().ring().ref_at(0).expect("used").load();
    assert_eq!((used.id(), used.len()), (0, 408));
    let mut resp = [0u8; 408];
    mem.read_slice(&mut resp, GuestAddress(resp_addr))
        .expect("response");
    assert_eq!(resp_type(&resp), t::RESP_OK_DISPLAY_INFO);
    assert_eq!(&resp[32..36], &1280u32.to_le_bytes());
    assert_eq!(&resp[36..40], &800u32.to_le_bytes());

    // A resize raises the event the driver then reads through GET_CONFIG.
    backend.control().request_display_size(1024, 768);
    let (_, events) = frontend
        .get_config(0, 4, VhostUserConfigFlags::WRITABLE, &[0; 4])
        .expect("get_config");
    assert_eq!(events, 1u32.to_le_bytes());
    frontend
        .set_config(4, VhostUserConfigFlags::WRITABLE, &1u32.to_le_bytes())
        .expect("set_config");
    let (_, events) = frontend
        .get_config(0, 4, VhostUserConfigFlags::WRITABLE, &[0; 4])
        .expect("get_config");
    assert_eq!(events, [0; 4]);

    drop(frontend);
    daemon.wait().ok();
}
