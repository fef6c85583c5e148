//! End to end over a real vhost-user socket: vhost's `Frontend` against `VhostUserDaemon`
//! serving `Arc<GpuBackend>`, file-backed shared guest memory at a non-zero address.

use std::sync::Arc;

use vhost::vhost_user::message::VhostUserConfigFlags;
use vhost::vhost_user::VhostUserFrontend;
use vhost_user_backend::VhostUserDaemon;
use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};

use super::*;
use crate::virtio::gpu::protocol::ctrl_type as t;
use crate::virtio::gpu::testutil::*;
use crate::virtio::testutil::{connect, shared_memory, start_vring, wait_for, RingAddrs, GPA};

const QUEUE_SIZE: u16 = 64;

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
    let mut frontend = connect(&mut daemon, &path);
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

    let mem = shared_memory(&mut frontend);

    // Control queue at GPA, data after it.
    let q = MockSplitQueue::create(&mem, GuestAddress(GPA), QUEUE_SIZE);
    let addrs = RingAddrs {
        desc: q.desc_table_addr(),
        avail: q.avail_addr(),
        used: q.used_addr(),
    };
    let (kick, call) = start_vring(&mut frontend, &mem, 0, QUEUE_SIZE, &addrs);

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
