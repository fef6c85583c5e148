//! End to end over a real vhost-user socket: vhost's `Frontend` against `VhostUserDaemon`
//! serving `Arc<InputBackend>`, shared file-backed guest memory at a non-zero address, input
//! injected from another thread through the registered wake-up event.

use std::thread;
use std::time::{Duration, Instant};

use vhost::vhost_user::message::VhostUserConfigFlags;
use vhost::vhost_user::VhostUserFrontend;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

use super::*;
use crate::guest::{InputClient, InputClientId, InputEvent, InputSink};
use crate::virtio::input::protocol::{ev, CONFIG_SIZE};
use crate::virtio::testutil::{
    connect, shared_memory, start_vring, wait_for, RingAddrs, CALL_TIMEOUT, GPA,
};

const QUEUE_SIZE: u16 = 4;

struct NoNotifier;

impl ConfigChangeNotifier for NoNotifier {
    fn notify_config_change(&self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn frontend_probes_config_and_receives_injected_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("input.sock");
    let backend =
        Arc::new(InputBackend::new(InputConfig::default(), Arc::new(NoNotifier)).expect("b"));
    let handle = backend.handle();
    let mut daemon = VhostUserDaemon::new(
        "vhost-user-input-test".to_owned(),
        backend.clone(),
        GuestMemoryAtomic::new(GuestMemoryMmap::new()),
    )
    .expect("daemon");
    backend.register_wake(&daemon).expect("register");
    let mut frontend = connect(&mut daemon, &path);
    assert_eq!(frontend.get_queue_num().expect("queue num"), 2);

    // QEMU: write select/subsel, read the whole 136 bytes.
    let mut config = [0u8; CONFIG_SIZE];
    config[0] = select::EV_BITS;
    config[1] = ev::LED as u8;
    frontend
        .set_config(0, VhostUserConfigFlags::WRITABLE, &config)
        .expect("set_config");
    let (_, data) = frontend
        .get_config(
            0,
            CONFIG_SIZE as u32,
            VhostUserConfigFlags::WRITABLE,
            &config,
        )
        .expect("get_config");
    assert_eq!(data.len(), CONFIG_SIZE);
    assert_eq!(&data[..3], &[select::EV_BITS, ev::LED as u8, 1]);
    assert_eq!(data[8], 0b111);

    let mem = shared_memory(&mut frontend);

    // Event queue at GPA (desc table, avail +0x100, used +0x200), four 8-byte buffers.
    let desc = GuestAddress(GPA);
    let avail = desc.unchecked_add(0x100);
    let used = desc.unchecked_add(0x200);
    let buffers = GPA + 0x1000;
    for i in 0..u64::from(QUEUE_SIZE) {
        let d = desc.unchecked_add(16 * i);
        mem.write_obj(buffers + 8 * i, d).expect("addr");
        mem.write_obj(8u32, d.unchecked_add(8)).expect("len");
        mem.write_obj(2u16, d.unchecked_add(12))
            .expect("flags: WRITE");
        mem.write_obj(i as u16, avail.unchecked_add(4 + 2 * i))
            .expect("ring");
    }
    mem.write_obj(QUEUE_SIZE, avail.unchecked_add(2))
        .expect("avail idx");
    let addrs = RingAddrs { desc, avail, used };
    let (_kick, call) = start_vring(&mut frontend, &mem, 0, QUEUE_SIZE, &addrs);

    // A SPICE session on another thread types one key; no kick needed to deliver it.
    let sink: Arc<dyn InputSink> = Arc::new(handle.clone());
    thread::spawn(move || {
        let client = InputClient::new(sink, InputClientId(1));
        client.input(InputEvent::ScancodeByte(0x1e));
        // Dropping the session releases the key: the release waits for buffers.
    })
    .join()
    .expect("client thread");
    wait_for(&call);
    let deadline = Instant::now() + CALL_TIMEOUT;
    while mem
        .read_obj::<u16>(used.unchecked_add(2))
        .expect("used idx")
        < QUEUE_SIZE
    {
        assert!(Instant::now() < deadline, "events not delivered");
        thread::sleep(Duration::from_millis(1));
    }
    let mut events = [0u8; 32];
    mem.read_slice(&mut events, GuestAddress(buffers))
        .expect("events");
    assert_eq!(
        &events[8..16],
        &VirtioInputEvent::new(ev::KEY, 30, 1).to_bytes()
    );
    assert_eq!(&events[16..24], &VirtioInputEvent::syn().to_bytes());
    assert_eq!(
        &events[0..8],
        &VirtioInputEvent::new(ev::MSC, 4, 0x1e).to_bytes()
    );
    assert_eq!(
        &events[24..32],
        &VirtioInputEvent::new(ev::MSC, 4, 0x1e).to_bytes()
    );
    // The release (3 events) waits for the guest to re-post buffers.
    assert_eq!(handle.device().queue().len(), 2);

    drop(frontend);
    daemon.wait().ok();
}
