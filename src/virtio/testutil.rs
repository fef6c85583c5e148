//! Test support shared by the gpu and input backends: vrings driven in-process, and the
//! frontend side of the end-to-end tests (vhost's `Frontend` against a `VhostUserDaemon`, with
//! file-backed shared guest memory at a non-zero address).

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use vhost::vhost_user::message::VhostUserHeaderFlag;
use vhost::vhost_user::{Frontend, Listener, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vhost_user_backend::{VhostUserBackend, VhostUserDaemon, VringRwLock, VringT};
use vm_memory::{FileOffset, GuestAddress, GuestMemoryAtomic, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// A guest-physical base that is not 0 catches GPA/HVA mix-ups.
pub const GPA: u64 = 0x4000_0000;
pub const MEM_SIZE: u64 = 0x10_0000;
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A ready, enabled vring of `size` entries with its parts at the given guest addresses, as a
/// vring worker would hold it; returns it with our end of its call socket (nonblocking).
pub fn ready_vring(
    mem: &GuestMemoryAtomic<GuestMemoryMmap<()>>,
    size: u16,
    addrs: &RingAddrs,
) -> (VringRwLock, UnixStream) {
    let vring = VringRwLock::new(mem.clone(), size).expect("vring");
    vring.set_queue_size(size);
    vring
        .set_queue_info(addrs.desc.0, addrs.avail.0, addrs.used.0)
        .expect("queue addresses");
    vring.set_queue_ready(true);
    vring.set_enabled(true);
    let (ours, theirs) = UnixStream::pair().expect("call socket");
    ours.set_nonblocking(true).expect("nonblocking");
    vring.set_call(Some(File::from(OwnedFd::from(theirs))));
    (vring, ours)
}

/// Whether the backend signalled `call` (from [`ready_vring`]) since the last check.
pub fn signalled(call: &UnixStream) -> bool {
    let mut buf = [0u8; 64];
    match (&*call).read(&mut buf) {
        Ok(n) => n > 0,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("call socket: {e}"),
    }
}

/// Starts `daemon` on a socket at `path` and connects a frontend that negotiates as QEMU
/// does: every offered feature acked (RING_RESET included), every protocol feature taken,
/// replies requested.
pub fn connect<T>(daemon: &mut VhostUserDaemon<T>, path: &Path) -> Frontend
where
    T: VhostUserBackend<Bitmap = ()> + Clone + 'static,
    T::Vring: Clone + Send + Sync,
{
    let mut listener = Listener::new(path, true).expect("listener");
    // The connection waits in the backlog until the daemon accepts it.
    let mut frontend = Frontend::connect(path, 2).expect("connect");
    daemon.start(&mut listener).expect("start");

    frontend.set_owner().expect("set_owner");
    let features = frontend.get_features().expect("features");
    frontend.set_features(features).expect("set_features");
    let proto = frontend.get_protocol_features().expect("protocol features");
    frontend
        .set_protocol_features(proto)
        .expect("set protocol features");
    frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
    frontend
}

/// `MEM_SIZE` bytes of file-backed memory at `GPA`, handed to the backend by SET_MEM_TABLE.
pub fn shared_memory(frontend: &mut Frontend) -> GuestMemoryMmap<()> {
    let file = tempfile::tempfile().expect("memory file");
    file.set_len(MEM_SIZE).expect("size");
    let mem = GuestMemoryMmap::<()>::from_ranges_with_files(&[(
        GuestAddress(GPA),
        MEM_SIZE as usize,
        Some(FileOffset::new(file, 0)),
    )])
    .expect("guest memory");
    let region = mem.find_region(GuestAddress(GPA)).expect("region");
    let info = VhostUserMemoryRegionInfo::from_guest_region(region).expect("region info");
    frontend.set_mem_table(&[info]).expect("mem table");
    mem
}

/// The guest-physical addresses of one split ring's parts.
pub struct RingAddrs {
    pub desc: GuestAddress,
    pub avail: GuestAddress,
    pub used: GuestAddress,
}

/// Sets up and enables vring `index` of `size` entries at `addrs` in `mem`; returns its kick
/// and call eventfds.
pub fn start_vring(
    frontend: &mut Frontend,
    mem: &GuestMemoryMmap<()>,
    index: usize,
    size: u16,
    addrs: &RingAddrs,
) -> (EventFd, EventFd) {
    let hva = |gpa: GuestAddress| mem.get_host_address(gpa).expect("mapped") as u64;
    let kick = EventFd::new(EFD_NONBLOCK).expect("kick");
    let call = EventFd::new(EFD_NONBLOCK).expect("call");
    frontend.set_vring_num(index, size).expect("num");
    let config = VringConfigData {
        queue_max_size: size,
        queue_size: size,
        flags: 0,
        desc_table_addr: hva(addrs.desc),
        used_ring_addr: hva(addrs.used),
        avail_ring_addr: hva(addrs.avail),
        log_addr: None,
    };
    frontend.set_vring_addr(index, &config).expect("addr");
    frontend.set_vring_base(index, 0).expect("base");
    frontend.set_vring_call(index, &call).expect("call");
    frontend.set_vring_kick(index, &kick).expect("kick");
    frontend.set_vring_enable(index, true).expect("enable");
    (kick, call)
}

/// Waits (at most `CALL_TIMEOUT`) for a used-buffer notification.
pub fn wait_for(call: &EventFd) {
    let deadline = Instant::now() + CALL_TIMEOUT;
    while call.read().is_err() {
        assert!(Instant::now() < deadline, "no used-buffer notification");
        thread::sleep(Duration::from_millis(1));
    }
}
