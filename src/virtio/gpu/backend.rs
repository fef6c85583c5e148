//! The `VhostUserBackend` impl of virtio-gpu: queues, features, config space, event handling.
//!
//! One `GpuBackend` per frontend connection; hand `Arc<GpuBackend<S>>` to `VhostUserDaemon`
//! (the crate's blanket impl makes the `Arc` a backend, and it is `Clone`).

use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::{debug, warn};
use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost::vhost_user::{Backend, GpuBackend as GpuSocket};
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_bindings::virtio_gpu::VIRTIO_GPU_F_EDID;
use virtio_queue::{DescriptorChain, Reader, Writer};
use vm_memory::GuestMemoryAtomic;
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{EventConsumer, EventNotifier};

use super::control::GpuControl;
use super::device::{GpuConfig, GpuDevice};
use super::error::GpuError;
use super::sink::DisplaySink;
use crate::virtio::vring::{self, GuestMemory, Memory, Rings};
use crate::virtio::ConfigChangeNotifier;

/// Queue 0: control commands.
pub const CONTROL_QUEUE: u16 = 0;
/// Queue 1: cursor commands, kept apart so they are never stuck behind transfers.
pub const CURSOR_QUEUE: u16 = 1;
const NUM_QUEUES: usize = 2;
/// Must be at least every size a frontend sets (QEMU: 64 and 16; cloud-hypervisor: from its
/// command line, typically 256 and 16), else SET_VRING_NUM fails.
pub const MAX_QUEUE_SIZE: usize = 1024;
/// Offset of `events_clear` in `virtio_gpu_config`; the only field the driver writes.
const EVENTS_CLEAR_OFFSET: usize = 4;

/// The virtio-gpu backend of one frontend connection.
pub struct GpuBackend<S: DisplaySink> {
    device: Arc<Mutex<GpuDevice<S>>>,
    control: GpuControl,
    edid: bool,
    rings: Rings,
    /// Kept for the lifetime of the connection; config changes go through the daemon's
    /// notifier, since `Backend` cannot send them (see `virtio::ConfigChangeNotifier`).
    backend_req: Mutex<Option<Backend>>,
    /// QEMU's vhost-user-gpu display channel: accepted (QEMU stops the device otherwise),
    /// not mirrored to.
    gpu_socket: Mutex<Option<GpuSocket>>,
}

impl<S: DisplaySink + 'static> GpuBackend<S> {
    pub fn new(
        config: GpuConfig,
        sink: S,
        notifier: Arc<dyn ConfigChangeNotifier>,
    ) -> Result<Self, GpuError> {
        let device = Arc::new(Mutex::new(GpuDevice::new(&config, sink)?));
        let control = GpuControl::new(device.clone(), notifier);
        let rings = Rings::new("virtio-gpu").map_err(GpuError::ExitEvent)?;
        Ok(Self {
            device,
            control,
            edid: config.edid,
            rings,
            backend_req: Mutex::new(None),
            gpu_socket: Mutex::new(None),
        })
    }

    /// A handle for other threads to request a display size.
    pub fn control(&self) -> GpuControl {
        self.control.clone()
    }

    fn device(&self) -> MutexGuard<'_, GpuDevice<S>> {
        // A panic inside a sink call poisons the lock; the device state stays usable.
        self.device.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn process_queue(&self, vring: &VringRwLock, queue: u16) -> io::Result<()> {
        let Some(mem) = self.rings.memory() else {
            debug!("virtio-gpu: queue {queue} kicked before guest memory was set");
            return Ok(());
        };
        self.rings.rounds(vring, || {
            self.drain(vring, &mem, queue)?;
            Ok(true)
        })
    }

    fn drain(&self, vring: &VringRwLock, mem: &Memory, queue: u16) -> io::Result<()> {
        let mut used = false;
        while let Some(chain) = vring::pop(vring, mem) {
            let head = chain.head_index();
            let len = if queue == CONTROL_QUEUE {
                self.run_control(chain, mem)
            } else {
                self.run_cursor(chain, mem);
                0
            };
            vring.add_used(head, len).map_err(io::Error::other)?;
            used = true;
        }
        self.rings.signal(vring, used)
    }

    /// Runs one control chain; returns the used length (response bytes written).
    fn run_control(&self, chain: DescriptorChain<Memory>, mem: &Memory) -> u32 {
        let guest: &GuestMemory = mem;
        let reader = Reader::new(guest, chain.clone());
        let writer = Writer::new(guest, chain);
        let (mut reader, mut writer) = match (reader, writer) {
            (Ok(r), Ok(w)) => (r, w),
            (Err(e), _) | (_, Err(e)) => {
                self.device().log_rejected(&GpuError::BadDescriptorChain(e));
                return 0;
            }
        };
        let out = self
            .device()
            .process_control(&mut reader, writer.available_bytes(), guest);
        if let Err(e) = writer.write_all(&out) {
            warn!(
                "virtio-gpu: writing a {}-byte response failed: {e}",
                out.len()
            );
        }
        // At most EDID_RESPONSE_SIZE (1056) bytes.
        u32::try_from(writer.bytes_written()).unwrap_or(0)
    }

    fn run_cursor(&self, chain: DescriptorChain<Memory>, mem: &Memory) {
        let guest: &GuestMemory = mem;
        match Reader::new(guest, chain) {
            Ok(mut reader) => self.device().process_cursor(&mut reader),
            Err(e) => self.device().log_rejected(&GpuError::BadDescriptorChain(e)),
        }
    }
}

impl<S: DisplaySink + 'static> VhostUserBackend for GpuBackend<S> {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    /// Never offers what is not implemented (VIRGL, RESOURCE_BLOB, IN_ORDER, ...), with one
    /// exception: RING_RESET (see `vring::BASE_FEATURES`).
    fn features(&self) -> u64 {
        let mut features = vring::BASE_FEATURES;
        if self.edid {
            features |= 1 << VIRTIO_GPU_F_EDID;
        }
        features
    }

    /// Nothing depends on the acked set: EDID is answered whenever it is enabled in the config.
    fn acked_features(&self, features: u64) {
        debug!("virtio-gpu: features acked {features:#x}");
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        vring::protocol_features()
    }

    fn reset_device(&self) {
        self.device().reset();
    }

    fn set_event_idx(&self, enabled: bool) {
        self.rings.set_event_idx(enabled);
    }

    /// Exactly `size` bytes for any offset, zero past the 16-byte config.
    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let config = self.device().config_space();
        vring::config_window(&config, offset, size)
    }

    /// Only `events_clear` is taken; QEMU writes the whole (cached) config back each time.
    fn set_config(&self, offset: u32, buf: &[u8]) -> io::Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let mut mask = 0u32;
        for (i, byte) in buf.iter().enumerate() {
            let field_byte = start
                .checked_add(i)
                .and_then(|p| p.checked_sub(EVENTS_CLEAR_OFFSET))
                .filter(|b| *b < 4);
            if let Some(b) = field_byte {
                mask |= u32::from(*byte) << (8 * b);
            }
        }
        self.device().clear_events(mask);
        Ok(())
    }

    fn update_memory(&self, mem: GuestMemoryAtomic<GuestMemory>) -> io::Result<()> {
        self.rings.set_memory(mem);
        Ok(())
    }

    fn set_backend_req_fd(&self, backend: Backend) {
        *self
            .backend_req
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(backend);
    }

    /// QEMU's `vhost-user-gpu-pci` sends VHOST_USER_GPU_SET_SOCKET at each DRIVER_OK and never
    /// starts the rings if it fails.
    fn set_gpu_socket(&self, socket: GpuSocket) -> io::Result<()> {
        *self
            .gpu_socket
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(socket);
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        self.rings.exit_event()
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> io::Result<()> {
        if evset != EventSet::IN {
            debug!("virtio-gpu: ignoring event set {evset:?} on {device_event}");
            return Ok(());
        }
        match (device_event, vrings.get(usize::from(device_event))) {
            (CONTROL_QUEUE | CURSOR_QUEUE, Some(vring)) => self.process_queue(vring, device_event),
            _ => {
                debug!("virtio-gpu: ignoring event {device_event}");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[path = "backend_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "e2e_tests.rs"]
mod e2e_tests;
