//! [`TestVmm`]: an in-process VMM that drives a vhost-user backend as cloud-hypervisor v53 or
//! QEMU 10's `vhost-user-gpu-pci` do (orders from `shared/research/vmm-frontends.md` §3.3,
//! §4.3), over a real unix socket, with memfd guest RAM at a non-zero guest-physical address.
//!
//! Deviations forced by vhost 0.18's `Frontend`, which checks the order of requests itself:
//! - both flavours send an extra `SET_FEATURES(PROTOCOL_FEATURES)` before
//!   `SET_PROTOCOL_FEATURES` (the `Frontend` refuses protocol features before that bit is acked;
//!   real VMMs send SET_FEATURES only at DRIVER_OK);
//! - GET requests never carry NEED_REPLY (cloud-hypervisor sets it on every request);
//! - `connect` ends with one extra GET_FEATURES round trip ([`TestVmm::sync`]);
//! - `GPU_SET_SOCKET` (request 33), which `Frontend` has no method for, is written by hand on a
//!   clone of the main socket between two `Frontend` calls (QEMU sends it without NEED_REPLY, so
//!   a backend that refuses it shows up as a broken connection at the next request).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vhost::vhost_user::message::{VhostUserConfigFlags, VhostUserProtocolFeatures};
use vhost::vhost_user::{
    Frontend, FrontendReqHandler, HandlerResult, VhostUserFrontend, VhostUserFrontendReqHandler,
};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use super::rings::{Buffer, Posted, TestQueue, Used};
use super::TIMEOUT;

/// Guest RAM starts here, not at 0, so a GPA used as a host address (or the reverse) fails.
pub const GUEST_RAM_BASE: u64 = 0x4000_0000;
/// Default guest RAM size; memfd pages are allocated on first touch, so this costs nothing.
pub const GUEST_RAM_SIZE: usize = 64 << 20;
/// Alignment of every allocation from guest RAM (rings need 16; pages keep buffers apart).
const ALLOC_ALIGN: u64 = 4096;

/// `VHOST_USER_GPU_SET_SOCKET` (QEMU `docs/interop/vhost-user.rst`).
const GPU_SET_SOCKET: u32 = 33;
/// `VHOST_SET_CONFIG_TYPE_FRONTEND`: QEMU's flags for a guest config write.
const QEMU_CONFIG_WRITE: VhostUserConfigFlags = VhostUserConfigFlags::empty();

/// Which VMM to imitate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `--generic-vhost-user`: SET_OWNER first, NEED_REPLY on everything, config accessed at the
    /// guest's offset and size, SET_MEM_TABLE, SET_BACKEND_REQ_FD after the rings are enabled.
    CloudHypervisor,
    /// `vhost-user-gpu-pci`: SET_BACKEND_REQ_FD early, whole-config reads, GPU_SET_SOCKET at
    /// DRIVER_OK, RING_RESET in SET_FEATURES, ADD_MEM_REG when CONFIGURE_MEM_SLOTS is acked.
    Qemu,
}

/// Everything [`TestVmm::connect_with`] can vary.
#[derive(Clone, Debug)]
pub struct VmmOptions {
    pub flavor: Flavor,
    /// One entry per queue (the VMM's `queue_sizes` / `SET_VRING_NUM`).
    pub queue_sizes: Vec<u16>,
    /// Device feature bits the "guest driver" acks (intersected with what the backend offers;
    /// VERSION_1 and PROTOCOL_FEATURES are the caller's to include or not).
    pub features: u64,
    /// Size of the device's config space (QEMU reads all of it on every guest access).
    pub config_size: u32,
    /// Ack REPLY_ACK if the backend offers it.
    pub reply_ack: bool,
    /// Send GPU_SET_SOCKET at DRIVER_OK (QEMU's GPU device does; its input device does not).
    pub gpu_socket: bool,
    pub ram_size: usize,
}

impl VmmOptions {
    pub fn new(flavor: Flavor, queue_sizes: &[u16], features: u64) -> Self {
        VmmOptions {
            flavor,
            queue_sizes: queue_sizes.to_vec(),
            features,
            config_size: 16,
            reply_ack: true,
            gpu_socket: flavor == Flavor::Qemu,
            ram_size: GUEST_RAM_SIZE,
        }
    }
}

/// Counts `VHOST_USER_BACKEND_CONFIG_CHANGE_MSG`s; acks each with 0.
#[derive(Default)]
pub struct ConfigChanges(AtomicUsize);

impl VhostUserFrontendReqHandler for ConfigChanges {
    fn handle_config_change(&self) -> HandlerResult<u64> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(0)
    }
}

/// A VMM with one vhost-user device, its guest RAM and its virtqueues.
pub struct TestVmm {
    pub options: VmmOptions,
    pub(super) frontend: Frontend,
    /// A clone of the main socket, for what `Frontend` cannot send.
    pub(super) raw: UnixStream,
    pub(super) mem: GuestMemoryMmap,
    pub(super) next_free: u64,
    pub(super) queues: Vec<TestQueue>,
    pub(super) acked_protocol: VhostUserProtocolFeatures,
    pub(super) acked_features: u64,
    pub(super) backend_req: Option<FrontendReqHandler<ConfigChanges>>,
    pub(super) config_changes: Arc<ConfigChanges>,
    /// Our end of the GPU_SET_SOCKET pair.
    pub(super) gpu_socket: Option<UnixStream>,
}

impl TestVmm {
    /// Connects to `socket` and brings the device up to "driver OK, rings enabled".
    pub fn connect(
        socket: &Path,
        flavor: Flavor,
        num_queues: usize,
        queue_sizes: &[u16],
        features: u64,
    ) -> Self {
        assert_eq!(num_queues, queue_sizes.len(), "one size per queue");
        Self::connect_with(socket, VmmOptions::new(flavor, queue_sizes, features))
    }

    pub fn connect_with(socket: &Path, options: VmmOptions) -> Self {
        Self::from_stream(connect_retrying(socket), options)
    }

    /// Drives a device over an existing connection (e.g. one end of a socketpair whose other end
    /// went to the daemon as `--fd`).
    pub fn from_stream(stream: UnixStream, options: VmmOptions) -> Self {
        let raw = stream.try_clone().expect("the socket can be cloned");
        let num_queues = options.queue_sizes.len() as u64;
        let mem = guest_ram(options.ram_size);
        let mut vmm = TestVmm {
            frontend: Frontend::from_stream(stream, num_queues),
            raw,
            mem,
            next_free: GUEST_RAM_BASE,
            queues: Vec::new(),
            acked_protocol: VhostUserProtocolFeatures::empty(),
            acked_features: 0,
            backend_req: None,
            config_changes: Arc::new(ConfigChanges::default()),
            gpu_socket: None,
            options,
        };
        vmm.queues = vmm
            .options
            .queue_sizes
            .clone()
            .into_iter()
            .map(|size| {
                let bytes = TestQueue::ring_bytes(size);
                let gpa = vmm.alloc(usize::try_from(bytes).expect("rings are small"));
                TestQueue::new(gpa, size)
            })
            .collect();
        match vmm.options.flavor {
            Flavor::CloudHypervisor => vmm.cloud_hypervisor_start(),
            Flavor::Qemu => vmm.qemu_start(),
        }
        vmm.sync();
        vmm
    }

    /// One request/reply round trip (GET_FEATURES): every message sent before it has been
    /// handled by the backend when this returns. `connect` ends with one, so that requests
    /// without NEED_REPLY (all of them without REPLY_ACK) cannot race the test.
    pub fn sync(&mut self) {
        self.frontend.get_features().expect("GET_FEATURES");
    }

    pub(super) fn ram_region(&self) -> VhostUserMemoryRegionInfo {
        let region = self
            .mem
            .find_region(GuestAddress(GUEST_RAM_BASE))
            .expect("guest RAM is mapped");
        VhostUserMemoryRegionInfo::from_guest_region(region).expect("guest RAM is a memfd")
    }

    pub(super) fn set_mem_table(&mut self) {
        let region = self.ram_region();
        self.frontend
            .set_mem_table(&[region])
            .expect("SET_MEM_TABLE");
    }

    /// SET_VRING_ADDR takes the frontend's *virtual* addresses (rust-vmm.md §0.7).
    pub(super) fn set_vring_addr(&mut self, q: usize) {
        let queue = &self.queues[q];
        let config = VringConfigData {
            queue_max_size: queue.size,
            queue_size: queue.size,
            flags: 0,
            desc_table_addr: self.hva(queue.desc_table_addr()),
            used_ring_addr: self.hva(queue.used_addr()),
            avail_ring_addr: self.hva(queue.avail_addr()),
            log_addr: None,
        };
        self.frontend
            .set_vring_addr(q, &config)
            .expect("SET_VRING_ADDR");
    }

    pub(super) fn set_backend_req_fd(&mut self) {
        if !self
            .acked_protocol
            .contains(VhostUserProtocolFeatures::BACKEND_REQ)
        {
            return;
        }
        let mut handler = FrontendReqHandler::new(self.config_changes.clone())
            .expect("a backend-request channel can be created");
        handler.set_reply_ack_flag(
            self.acked_protocol
                .contains(VhostUserProtocolFeatures::REPLY_ACK),
        );
        let tx = handler.get_tx_raw_fd();
        self.frontend
            .set_backend_request_fd(&tx)
            .expect("SET_BACKEND_REQ_FD");
        self.backend_req = Some(handler);
    }

    pub(super) fn send_gpu_set_socket(&mut self) {
        let (ours, theirs) = UnixStream::pair().expect("a socket pair can be created");
        let mut header = [0u8; 12];
        header[0..4].copy_from_slice(&GPU_SET_SOCKET.to_le_bytes());
        header[4..8].copy_from_slice(&1u32.to_le_bytes());
        self.raw
            .send_with_fds(&[&header[..]], &[theirs.as_raw_fd()])
            .expect("GPU_SET_SOCKET can be sent");
        self.gpu_socket = Some(ours);
    }

    /// Host (frontend virtual) address of a guest-physical address.
    pub fn hva(&self, gpa: u64) -> u64 {
        self.mem
            .get_host_address(GuestAddress(gpa))
            .expect("the address is in guest RAM") as u64
    }

    pub fn mem(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Allocates `len` bytes of guest RAM (page aligned); returns the guest-physical address.
    pub fn alloc(&mut self, len: usize) -> u64 {
        let gpa = self.next_free;
        let len = u64::try_from(len.max(1)).expect("usize fits u64");
        let end = (gpa + len).next_multiple_of(ALLOC_ALIGN);
        let ram_end = GUEST_RAM_BASE + self.options.ram_size as u64;
        assert!(end <= ram_end, "test guest RAM exhausted");
        self.next_free = end;
        gpa
    }

    /// Writes `bytes` into newly allocated guest RAM; returns its guest-physical address.
    pub fn alloc_bytes(&mut self, bytes: &[u8]) -> u64 {
        let gpa = self.alloc(bytes.len());
        self.mem
            .write_slice(bytes, GuestAddress(gpa))
            .expect("the allocation is in guest RAM");
        gpa
    }

    pub fn acked_features(&self) -> u64 {
        self.acked_features
    }

    pub fn acked_protocol_features(&self) -> VhostUserProtocolFeatures {
        self.acked_protocol
    }

    /// A guest config read, as this VMM forwards it: cloud-hypervisor at the guest's offset and
    /// size, QEMU as a whole-config GET_CONFIG cut down here.
    pub fn get_config(&mut self, offset: u32, size: u32) -> Vec<u8> {
        let (at, len) = match self.options.flavor {
            Flavor::CloudHypervisor => (offset, size),
            Flavor::Qemu => (0, self.options.config_size),
        };
        // CH does not zero the data area of the request (vmm-frontends.md §4.3).
        let garbage = vec![0x0b; len as usize];
        let (_, data) = self
            .frontend
            .get_config(at, len, VhostUserConfigFlags::WRITABLE, &garbage)
            .expect("GET_CONFIG");
        assert_eq!(
            data.len(),
            len as usize,
            "GET_CONFIG answers the size asked"
        );
        let start = (offset - at) as usize;
        data[start..start + size as usize].to_vec()
    }

    /// A guest config write: cloud-hypervisor forwards it as is, QEMU writes back the whole
    /// config it read, patched.
    pub fn set_config(&mut self, offset: u32, data: &[u8]) {
        match self.options.flavor {
            Flavor::CloudHypervisor => self
                .frontend
                .set_config(offset, VhostUserConfigFlags::WRITABLE, data)
                .expect("SET_CONFIG"),
            Flavor::Qemu => {
                let mut whole = self.get_config(0, self.options.config_size);
                let start = offset as usize;
                whole[start..start + data.len()].copy_from_slice(data);
                self.frontend
                    .set_config(0, QEMU_CONFIG_WRITE, &whole)
                    .expect("SET_CONFIG");
            }
        }
    }

    /// Posts one chain `[readable..., writable...]` on queue `q` (no kick). Writable buffers are
    /// pre-filled with 0xa5 so bytes the device did not write stand out.
    pub fn post(&mut self, q: usize, readable: &[&[u8]], writable_lens: &[u32]) -> Posted {
        let mut buffers = Vec::new();
        for bytes in readable {
            let gpa = self.alloc_bytes(bytes);
            let len = u32::try_from(bytes.len()).expect("a buffer fits u32");
            buffers.push(Buffer {
                gpa,
                len,
                writable: false,
            });
        }
        for &len in writable_lens {
            let gpa = self.alloc_bytes(&vec![0xa5; len as usize]);
            buffers.push(Buffer {
                gpa,
                len,
                writable: true,
            });
        }
        let head = self.queues[q].post(&self.mem, &buffers);
        Posted {
            queue: q,
            head,
            buffers,
        }
    }

    pub fn kick(&self, q: usize) {
        self.queues[q].notify();
    }

    /// The next used entry of queue `q`, or `None` after `timeout`.
    pub fn wait_used(&mut self, q: usize, timeout: Duration) -> Option<Used> {
        self.queues[q].wait_used(&self.mem, timeout)
    }

    /// The writable buffers of a posted chain, whole.
    pub fn read_writable(&self, posted: &Posted) -> Vec<Vec<u8>> {
        posted
            .buffers
            .iter()
            .filter(|b| b.writable)
            .map(|b| {
                let mut bytes = vec![0; b.len as usize];
                self.mem
                    .read_slice(&mut bytes, GuestAddress(b.gpa))
                    .expect("the buffer is in guest RAM");
                bytes
            })
            .collect()
    }

    /// Posts one chain on queue `q`, kicks, waits for it to be used; returns the used length and
    /// the writable buffers. Panics after [`TIMEOUT`] or if another chain comes back first.
    pub fn request(
        &mut self,
        q: usize,
        readable: &[&[u8]],
        writable_lens: &[u32],
    ) -> (u32, Vec<Vec<u8>>) {
        let posted = self.post(q, readable, writable_lens);
        self.kick(q);
        let used = self
            .wait_used(q, TIMEOUT)
            .unwrap_or_else(|| panic!("queue {q}: request not used within {TIMEOUT:?}"));
        assert_eq!(
            used.head, posted.head,
            "queue {q}: used chain is the one posted"
        );
        (used.len, self.read_writable(&posted))
    }

    /// Waits for one `CONFIG_CHANGE_MSG` on the backend-request channel and acks it.
    pub fn wait_config_change(&mut self, timeout: Duration) -> bool {
        let Some(handler) = self.backend_req.as_mut() else {
            return false;
        };
        let mut pollfd = libc::pollfd {
            fd: handler.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one live, initialised pollfd, length 1; poll(2) only writes its `revents`.
        if unsafe { libc::poll(&mut pollfd, 1, millis) } <= 0 {
            return false;
        }
        let before = self.config_changes.0.load(Ordering::SeqCst);
        handler.handle_request().is_ok() && self.config_changes.0.load(Ordering::SeqCst) > before
    }

    /// Config-change messages received so far.
    pub fn config_change_count(&self) -> usize {
        self.config_changes.0.load(Ordering::SeqCst)
    }

    /// Our end of the GPU_SET_SOCKET channel (QEMU flavour).
    pub fn gpu_socket(&self) -> Option<&UnixStream> {
        self.gpu_socket.as_ref()
    }

    /// The main socket, for tests that write broken messages on purpose.
    pub fn raw_socket(&self) -> &UnixStream {
        &self.raw
    }

    /// The VMM goes away: all its sockets close.
    pub fn disconnect(self) {
        drop(self);
    }
}

/// Guest RAM: a memfd mapped at [`GUEST_RAM_BASE`].
fn guest_ram(size: usize) -> GuestMemoryMmap {
    let name = CString::new("test-guest-ram").expect("no NUL in the name");
    // SAFETY: `name` is a live NUL-terminated string; memfd_create(2) reads it and returns a new
    // descriptor or -1, checked below.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.set_len(size as u64).expect("the memfd can be sized");
    GuestMemoryMmap::from_ranges_with_files(&[(
        GuestAddress(GUEST_RAM_BASE),
        size,
        Some(FileOffset::new(file, 0)),
    )])
    .expect("guest RAM can be mapped")
}

/// How long a test VMM keeps retrying a refused connection, as cloud-hypervisor does (it
/// retries for 60 s): a socket file appears at bind(2), a moment before listen(2).
const CONNECT_PATIENCE: Duration = Duration::from_secs(5);

fn connect_retrying(socket: &Path) -> UnixStream {
    let deadline = std::time::Instant::now() + CONNECT_PATIENCE;
    loop {
        match UnixStream::connect(socket) {
            Ok(stream) => return stream,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("the daemon accepts connections on {socket:?}: {e}"),
        }
    }
}
