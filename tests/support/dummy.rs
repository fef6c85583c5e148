//! A tiny vhost-user device for daemon-level tests: queue 0 echoes each request behind a
//! per-device request counter, queue 1 completes chains with length 0, and a 16-byte config
//! space reads back what was written. [`DummyFactory`] builds one per connection and keeps each
//! connection's config-change sender for the test.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::GpuBackend;
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_bindings::virtio_config::{VIRTIO_F_RING_RESET, VIRTIO_F_VERSION_1};
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

use vhost_user_spice::virtio::ConfigChangeNotifier;

pub const CONFIG_SIZE: usize = 16;
pub const QUEUE_SIZE_MAX: usize = 256;
/// What the dummy offers: what a 2D GPU backend offers, minus device bits.
pub const FEATURES: u64 = (1 << VIRTIO_F_VERSION_1)
    | (1 << VIRTIO_F_RING_RESET)
    | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
/// The largest request the echo queue copies back.
const ECHO_MAX: usize = 4096;

struct State {
    mem: Mutex<Option<GuestMemoryAtomic<GuestMemoryMmap>>>,
    config: Mutex<[u8; CONFIG_SIZE]>,
    requests: AtomicU32,
    gpu_sockets: AtomicUsize,
}

/// The device. Response on queue 0: `requests handled so far, this one included (u32 LE)` +
/// the readable bytes, cut to the writable space.
#[derive(Clone)]
pub struct Dummy {
    state: Arc<State>,
    pub notifier: Arc<dyn ConfigChangeNotifier>,
}

impl Dummy {
    pub fn new(notifier: Arc<dyn ConfigChangeNotifier>) -> Self {
        Dummy {
            state: Arc::new(State {
                mem: Mutex::new(None),
                config: Mutex::new([0; CONFIG_SIZE]),
                requests: AtomicU32::new(0),
                gpu_sockets: AtomicUsize::new(0),
            }),
            notifier,
        }
    }

    pub fn gpu_sockets(&self) -> usize {
        self.state.gpu_sockets.load(Ordering::SeqCst)
    }

    fn process(&self, queue: usize, vring: &VringRwLock) -> io::Result<()> {
        let Some(atomic) = self.state.mem.lock().expect("not poisoned").clone() else {
            return Ok(());
        };
        let mem = atomic.memory();
        loop {
            // Pop in its own statement: the vring write guard must be gone before add_used.
            let chain = vring
                .get_mut()
                .get_queue_mut()
                .pop_descriptor_chain(mem.clone());
            let Some(chain) = chain else { break };
            let head = chain.head_index();
            let mut input = Vec::new();
            let mut outputs = Vec::new();
            for desc in chain {
                if desc.is_write_only() {
                    outputs.push(desc);
                } else {
                    let start = input.len();
                    let len = (desc.len() as usize).min(ECHO_MAX.saturating_sub(start));
                    input.resize(start + len, 0);
                    mem.read_slice(&mut input[start..], desc.addr())
                        .map_err(io::Error::other)?;
                }
            }
            let mut written = 0u32;
            if queue == 0 {
                let count = self.state.requests.fetch_add(1, Ordering::SeqCst) + 1;
                let mut response = count.to_le_bytes().to_vec();
                response.extend_from_slice(&input);
                let mut rest = &response[..];
                for desc in outputs {
                    let n = rest.len().min(desc.len() as usize);
                    mem.write_slice(&rest[..n], desc.addr())
                        .map_err(io::Error::other)?;
                    rest = &rest[n..];
                    written += n as u32;
                }
            }
            vring.add_used(head, written).map_err(io::Error::other)?;
        }
        vring.signal_used_queue()
    }
}

impl VhostUserBackend for Dummy {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        2
    }

    fn max_queue_size(&self) -> usize {
        QUEUE_SIZE_MAX
    }

    fn features(&self) -> u64 {
        FEATURES
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::BACKEND_REQ
            | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS
    }

    fn set_event_idx(&self, _enabled: bool) {}

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let config = self.state.config.lock().expect("not poisoned");
        let mut out = vec![0; size as usize];
        if let Some(from) = config.get(offset as usize..) {
            let n = from.len().min(out.len());
            out[..n].copy_from_slice(&from[..n]);
        }
        out
    }

    fn set_config(&self, offset: u32, buf: &[u8]) -> io::Result<()> {
        let mut config = self.state.config.lock().expect("not poisoned");
        let start = offset as usize;
        let Some(to) = config.get_mut(start..start + buf.len()) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        to.copy_from_slice(buf);
        Ok(())
    }

    fn update_memory(&self, mem: GuestMemoryAtomic<GuestMemoryMmap>) -> io::Result<()> {
        *self.state.mem.lock().expect("not poisoned") = Some(mem);
        Ok(())
    }

    fn set_gpu_socket(&self, _gpu_backend: GpuBackend) -> io::Result<()> {
        self.state.gpu_sockets.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC).ok()
    }

    fn handle_event(
        &self,
        device_event: u16,
        _evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> io::Result<()> {
        let queue = usize::from(device_event);
        match vrings.get(queue) {
            Some(vring) if queue < self.num_queues() => self.process(queue, vring),
            _ => Ok(()),
        }
    }
}

/// Builds a fresh [`Dummy`] per connection and remembers each one.
#[derive(Clone, Default)]
pub struct DummyFactory {
    pub devices: Arc<Mutex<Vec<Dummy>>>,
}

impl DummyFactory {
    pub fn make(&self) -> impl FnMut(Arc<dyn ConfigChangeNotifier>) -> io::Result<Dummy> + Send {
        let devices = self.devices.clone();
        move |notifier| {
            let device = Dummy::new(notifier);
            devices.lock().expect("not poisoned").push(device.clone());
            Ok(device)
        }
    }

    pub fn count(&self) -> usize {
        self.devices.lock().expect("not poisoned").len()
    }

    /// The device of the `index`-th connection.
    pub fn device(&self, index: usize) -> Dummy {
        self.devices.lock().expect("not poisoned")[index].clone()
    }

    /// The most recent device.
    pub fn last(&self) -> Dummy {
        let devices = self.devices.lock().expect("not poisoned");
        devices.last().expect("a frontend has connected").clone()
    }
}
