//! The `VhostUserBackend` impl of virtio-input: queues, features, config space, event handling.
//!
//! One `InputBackend` per frontend connection, attached to the long-lived [`InputHandle`];
//! hand `Arc<InputBackend>` to `VhostUserDaemon`, then call [`InputBackend::register_wake`]
//! with that daemon so input from other threads reaches the guest without waiting for a kick.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::debug;
use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost::vhost_user::Backend;
use vhost_user_backend::{VhostUserBackend, VhostUserDaemon, VringRwLock, VringT};
use virtio_queue::{DescriptorChain, QueueT, Reader, Writer};
use vm_memory::GuestMemoryAtomic;
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{EventConsumer, EventNotifier};

use super::device::{InputConfig, LogKind};
use super::error::InputError;
use super::handle::InputHandle;
use super::protocol::{
    config_space, select, VirtioInputEvent, CONFIG_SELECT_OFFSET, CONFIG_SUBSEL_OFFSET,
};
use crate::virtio::vring::{self, GuestMemory, Memory, Rings};
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

/// The virtio-input backend of one frontend connection.
pub struct InputBackend {
    handle: InputHandle,
    /// `select` and `subsel` as the driver last wrote them; per connection.
    selection: Mutex<(u8, u8)>,
    rings: Rings,
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
        let rings = Rings::new("virtio-input").map_err(InputError::ExitEvent)?;
        handle.reset_guest();
        Ok(Self {
            handle,
            selection: Mutex::new((select::UNSET, 0)),
            rings,
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

    /// Moves queued events into the guest's event buffers.
    fn flush_events(&self, vring: &VringRwLock) -> io::Result<()> {
        let Some(mem) = self.rings.memory() else {
            debug!("virtio-input: events wait: guest memory not set yet");
            return Ok(());
        };
        let state = vring.get_ref();
        if !state.is_enabled() || !state.get_queue().ready() {
            return Ok(());
        }
        drop(state);
        // Buffers added meanwhile are only worth another round if events still wait (an idle
        // device leaves buffers posted, which would loop forever).
        self.rings
            .rounds(vring, || self.fill_event_buffers(vring, &mem))
    }

    /// Fills buffers while events wait; returns whether events are left (out of buffers).
    fn fill_event_buffers(&self, vring: &VringRwLock, mem: &Memory) -> io::Result<bool> {
        let mut device = self.handle.device();
        let mut used = false;
        while let Some(event) = device.queue().front() {
            let Some(chain) = vring::pop(vring, mem) else {
                break;
            };
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
        self.rings.signal(vring, used)?;
        Ok(starved)
    }

    fn process_status(&self, vring: &VringRwLock) -> io::Result<()> {
        let Some(mem) = self.rings.memory() else {
            debug!("virtio-input: status queue kicked before guest memory was set");
            return Ok(());
        };
        self.rings.rounds(vring, || {
            let mut used = false;
            while let Some(chain) = vring::pop(vring, &mem) {
                let head = chain.head_index();
                self.run_status(chain, &mem);
                // Device-readable buffers: nothing written back.
                vring.add_used(head, 0).map_err(io::Error::other)?;
                used = true;
            }
            self.rings.signal(vring, used)?;
            Ok(true)
        })
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

    /// virtio-input has no feature bits of its own (on RING_RESET see
    /// `vring::BASE_FEATURES`).
    fn features(&self) -> u64 {
        vring::BASE_FEATURES
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        vring::protocol_features()
    }

    fn reset_device(&self) {
        *self
            .selection
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = (select::UNSET, 0);
        self.handle.reset_guest();
    }

    fn set_event_idx(&self, enabled: bool) {
        self.rings.set_event_idx(enabled);
    }

    /// Exactly `size` bytes for any offset, zero past the 136-byte config.
    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let (sel, subsel) = *self
            .selection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let config = config_space(self.handle.device().identity(), sel, subsel);
        vring::config_window(&config, offset, size)
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
        self.rings.set_memory(mem);
        Ok(())
    }

    fn set_backend_req_fd(&self, backend: Backend) {
        *self
            .backend_req
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(backend);
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
