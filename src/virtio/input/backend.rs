//! The `VhostUserBackend` impl of virtio-input: queues, features, config space, event handling.
//!
//! One `InputBackend` per frontend connection, attached to the long-lived [`InputHandle`];
//! hand `Arc<InputBackend>` to `VhostUserDaemon`, then call [`InputBackend::register_wake`]
//! with that daemon so input from other threads reaches the guest without waiting for a kick.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::debug;
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::Backend;
use vhost_user_backend::{VhostUserBackend, VhostUserDaemon, VringRwLock, VringT};
use virtio_bindings::virtio_config::{VIRTIO_F_RING_RESET, VIRTIO_F_VERSION_1};
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::{DescriptorChain, QueueT, Reader, Writer};
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryLoadGuard, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

use super::device::{InputConfig, LogKind};
use super::error::InputError;
use super::handle::InputHandle;
use super::protocol::{
    config_space, select, VirtioInputEvent, CONFIG_SELECT_OFFSET, CONFIG_SUBSEL_OFFSET,
};
use crate::virtio::ConfigChangeNotifier;

/// Queue 0: events to the guest.
pub const EVENT_QUEUE: u16 = 0;
/// Queue 1: LED (and sound) requests from the guest.
pub const STATUS_QUEUE: u16 = 1;
const NUM_QUEUES: usize = 2;
/// The wake-up eventfd's epoll id: ids up to `num_queues` are the crate's (vrings, then its
/// exit / vring-enabled event).
pub const WAKE_EVENT: u16 = 3;
const _: () = assert!(WAKE_EVENT as usize > NUM_QUEUES);
/// At least every size a frontend sets: QEMU's vhost-user-input fixes 4; cloud-hypervisor
/// takes it from its command line (Linux posts at most 64 event buffers anyway).
pub const MAX_QUEUE_SIZE: usize = 1024;
/// vhost-user limits config accesses to 4 KiB (`VHOST_USER_CONFIG_SIZE` in the vhost crate).
const MAX_CONFIG_ACCESS: usize = 0x1000;

type GuestMemory = GuestMemoryMmap<()>;
type Memory = GuestMemoryLoadGuard<GuestMemory>;

/// The virtio-input backend of one frontend connection.
pub struct InputBackend {
    handle: InputHandle,
    /// `select` and `subsel` as the driver last wrote them; per connection.
    selection: Mutex<(u8, u8)>,
    /// Replaced by SET_MEM_TABLE / ADD_MEM_REG; `.memory()` is taken per batch of work.
    mem: Mutex<Option<GuestMemoryAtomic<GuestMemory>>>,
    event_idx: AtomicBool,
    exit: (EventConsumer, EventNotifier),
    /// Kept for the connection's lifetime; nothing to send on it (the config never changes).
    backend_req: Mutex<Option<Backend>>,
    /// The daemon's config-change sender; unused while the config space is static.
    _notifier: Arc<dyn ConfigChangeNotifier>,
}

impl InputBackend {
    /// A backend with its own handle (tests, or a daemon that never reconnects).
    pub fn new(
        config: InputConfig,
        notifier: Arc<dyn ConfigChangeNotifier>,
    ) -> Result<Self, InputError> {
        Self::with_handle(InputHandle::new(&config)?, notifier)
    }

    /// A backend for a new connection, attached to the handle the SPICE side already holds.
    /// The guest behind the connection is new: queued events and held keys are forgotten.
    pub fn with_handle(
        handle: InputHandle,
        notifier: Arc<dyn ConfigChangeNotifier>,
    ) -> Result<Self, InputError> {
        let exit =
            new_event_consumer_and_notifier(EventFlag::NONBLOCK).map_err(InputError::ExitEvent)?;
        handle.reset_guest();
        Ok(Self {
            handle,
            selection: Mutex::new((select::UNSET, 0)),
            mem: Mutex::new(None),
            event_idx: AtomicBool::new(false),
            exit,
            backend_req: Mutex::new(None),
            _notifier: notifier,
        })
    }

    pub fn handle(&self) -> InputHandle {
        self.handle.clone()
    }

    /// Makes the daemon's vring worker drain queued input as soon as it arrives. Call once
    /// per daemon, after `VhostUserDaemon::new` (which starts the worker). Without it, queued
    /// input still reaches the guest, but only at its next event-queue kick.
    pub fn register_wake<T>(&self, daemon: &VhostUserDaemon<T>) -> Result<(), InputError>
    where
        T: VhostUserBackend<Bitmap = ()> + Clone + 'static,
        T::Vring: Clone + Send + Sync,
    {
        let handlers = daemon.get_epoll_handlers();
        let worker = handlers.first().ok_or(InputError::NoWorker)?;
        worker
            .register_listener(self.handle.wake_fd(), EventSet::IN, u64::from(WAKE_EVENT))
            .map_err(InputError::RegisterWake)
    }

    fn memory(&self) -> Option<Memory> {
        let atomic = self.mem.lock().unwrap_or_else(PoisonError::into_inner);
        atomic.as_ref().map(GuestMemoryAtomic::memory)
    }

    /// Moves queued events into the guest's event buffers.
    fn flush_events(&self, vring: &VringRwLock) -> io::Result<()> {
        let Some(mem) = self.memory() else {
            debug!("virtio-input: events wait: guest memory not set yet");
            return Ok(());
        };
        let state = vring.get_ref();
        if !state.is_enabled() || !state.get_queue().ready() {
            return Ok(());
        }
        drop(state);
        let event_idx = self.event_idx.load(Ordering::Relaxed);
        loop {
            if event_idx {
                vring.disable_notification().map_err(io::Error::other)?;
            }
            let starved = self.fill_event_buffers(vring, &mem)?;
            // Re-enabling reports buffers added meanwhile; only worth another round if events
            // still wait (an idle device leaves buffers posted, which would loop forever).
            if !event_idx || !vring.enable_notification().map_err(io::Error::other)? || !starved {
                break;
            }
        }
        Ok(())
    }

    /// Fills buffers while events wait; returns whether events are left (out of buffers).
    fn fill_event_buffers(&self, vring: &VringRwLock, mem: &Memory) -> io::Result<bool> {
        let mut device = self.handle.device();
        let mut used = false;
        while let Some(event) = device.queue().front() {
            // Popped in its own statement: the ring's write guard must be gone before
            // `add_used` takes it again.
            let chain = vring
                .get_mut()
                .get_queue_mut()
                .pop_descriptor_chain(mem.clone());
            let Some(chain) = chain else { break };
            let head = chain.head_index();
            let len = match write_event(chain, mem, event) {
                Ok(()) => {
                    device.queue().advance();
                    VirtioInputEvent::SIZE as u32
                }
                Err(e) => {
                    device.log_guest_error(LogKind::BadEventBuffer, &e);
                    0
                }
            };
            vring.add_used(head, len).map_err(io::Error::other)?;
            used = true;
        }
        let starved = !device.queue().is_empty();
        drop(device);
        self.signal(vring, used)?;
        Ok(starved)
    }

    fn process_status(&self, vring: &VringRwLock) -> io::Result<()> {
        let Some(mem) = self.memory() else {
            debug!("virtio-input: status queue kicked before guest memory was set");
            return Ok(());
        };
        let event_idx = self.event_idx.load(Ordering::Relaxed);
        loop {
            if event_idx {
                vring.disable_notification().map_err(io::Error::other)?;
            }
            let mut used = false;
            loop {
                let chain = vring
                    .get_mut()
                    .get_queue_mut()
                    .pop_descriptor_chain(mem.clone());
                let Some(chain) = chain else { break };
                let head = chain.head_index();
                self.run_status(chain, &mem);
                // Device-readable buffers: nothing written back.
                vring.add_used(head, 0).map_err(io::Error::other)?;
                used = true;
            }
            self.signal(vring, used)?;
            if !event_idx || !vring.enable_notification().map_err(io::Error::other)? {
                break;
            }
        }
        Ok(())
    }

    fn run_status(&self, chain: DescriptorChain<Memory>, mem: &Memory) {
        let event = read_event(chain, mem);
        let mut device = self.handle.device();
        let changed = match event.and_then(|e| device.handle_status(e)) {
            Ok(changed) => changed,
            Err(e) => {
                device.log_guest_error(LogKind::BadStatus, &e);
                None
            }
        };
        drop(device);
        if let Some(locks) = changed {
            self.handle.publish_locks(locks);
        }
    }

    fn signal(&self, vring: &VringRwLock, used: bool) -> io::Result<()> {
        let event_idx = self.event_idx.load(Ordering::Relaxed);
        if used && (!event_idx || vring.needs_notification().map_err(io::Error::other)?) {
            vring.signal_used_queue()?;
        }
        Ok(())
    }
}

/// Writes one event into a chain, which must offer at least 8 writable bytes; validated first
/// so nothing is written into a buffer that turns out too small.
fn write_event(
    chain: DescriptorChain<Memory>,
    mem: &Memory,
    event: VirtioInputEvent,
) -> Result<(), InputError> {
    let guest: &GuestMemory = mem;
    let mut writer = Writer::new(guest, chain).map_err(InputError::BadDescriptorChain)?;
    let have = writer.available_bytes();
    if have < VirtioInputEvent::SIZE {
        return Err(InputError::EventBufferTooSmall { have });
    }
    writer
        .write_all(&event.to_bytes())
        .map_err(|_| InputError::EventBufferTooSmall { have })
}

fn read_event(
    chain: DescriptorChain<Memory>,
    mem: &Memory,
) -> Result<VirtioInputEvent, InputError> {
    let guest: &GuestMemory = mem;
    let mut reader = Reader::new(guest, chain).map_err(InputError::BadDescriptorChain)?;
    let have = reader.available_bytes();
    let mut bytes = [0; VirtioInputEvent::SIZE];
    if have < bytes.len() {
        return Err(InputError::StatusBufferTooSmall { have });
    }
    reader
        .read_exact(&mut bytes)
        .map_err(|_| InputError::StatusBufferTooSmall { have })?;
    Ok(VirtioInputEvent::from_bytes(bytes))
}

impl VhostUserBackend for InputBackend {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    /// virtio-input has no feature bits of its own. RING_RESET is offered for the same reason
    /// as in the gpu backend: QEMU's virtio-pci acks it unasked, and vhost-user-backend
    /// refuses an ack of a bit we did not offer.
    fn features(&self) -> u64 {
        (1 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_F_RING_RESET)
            | (1 << VIRTIO_RING_F_INDIRECT_DESC)
            | (1 << VIRTIO_RING_F_EVENT_IDX)
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::BACKEND_REQ
    }

    fn reset_device(&self) {
        *self
            .selection
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = (select::UNSET, 0);
        self.handle.reset_guest();
    }

    fn set_event_idx(&self, enabled: bool) {
        self.event_idx.store(enabled, Ordering::Relaxed);
    }

    /// Exactly `size` bytes for any offset, zero past the 136-byte config: a short reply is an
    /// error in QEMU and a panic in cloud-hypervisor.
    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size > MAX_CONFIG_ACCESS {
            // The vhost crate refuses such a request before it reaches us.
            return Vec::new();
        }
        let (sel, subsel) = *self
            .selection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let config = config_space(self.handle.device().identity(), sel, subsel);
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        (0..size)
            .map(|i| {
                start
                    .checked_add(i)
                    .and_then(|p| config.get(p))
                    .copied()
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Only `select` and `subsel` are taken; QEMU writes the whole cached config back, so
    /// the echoed read-only bytes are ignored.
    fn set_config(&self, offset: u32, buf: &[u8]) -> io::Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let mut selection = self
            .selection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (i, byte) in buf.iter().enumerate() {
            match start.checked_add(i) {
                Some(CONFIG_SELECT_OFFSET) => selection.0 = *byte,
                Some(CONFIG_SUBSEL_OFFSET) => selection.1 = *byte,
                _ => {}
            }
        }
        let (sel, subsel) = *selection;
        drop(selection);
        let known = matches!(
            sel,
            select::UNSET
                | select::ID_NAME
                | select::ID_SERIAL
                | select::ID_DEVIDS
                | select::PROP_BITS
                | select::EV_BITS
                | select::ABS_INFO
        );
        if !known {
            // Answered with size 0, like every unsupported pair; logged as the guest's doing.
            let e = InputError::UnknownConfigSelect {
                select: sel,
                subsel,
            };
            self.handle
                .device()
                .log_guest_error(LogKind::BadConfigSelect, &e);
        }
        Ok(())
    }

    fn update_memory(&self, mem: GuestMemoryAtomic<GuestMemory>) -> io::Result<()> {
        *self.mem.lock().unwrap_or_else(PoisonError::into_inner) = Some(mem);
        Ok(())
    }

    fn set_backend_req_fd(&self, backend: Backend) {
        *self
            .backend_req
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(backend);
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        match (self.exit.0.try_clone(), self.exit.1.try_clone()) {
            (Ok(consumer), Ok(notifier)) => Some((consumer, notifier)),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("virtio-input: cannot clone the exit event: {e}");
                None
            }
        }
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> io::Result<()> {
        if evset != EventSet::IN {
            debug!("virtio-input: ignoring event set {evset:?} on {device_event}");
            return Ok(());
        }
        match device_event {
            // The guest posted buffers (or a ring was just enabled): queued events may go.
            EVENT_QUEUE => match vrings.get(usize::from(EVENT_QUEUE)) {
                Some(vring) => self.flush_events(vring),
                None => Ok(()),
            },
            STATUS_QUEUE => match vrings.get(usize::from(STATUS_QUEUE)) {
                Some(vring) => self.process_status(vring),
                None => Ok(()),
            },
            WAKE_EVENT => {
                self.handle.consume_wake();
                match vrings.get(usize::from(EVENT_QUEUE)) {
                    Some(vring) => self.flush_events(vring),
                    None => Ok(()),
                }
            }
            _ => {
                debug!("virtio-input: ignoring event {device_event}");
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
