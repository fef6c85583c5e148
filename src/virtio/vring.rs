//! The vring mechanics the gpu and input backends share: guest memory per connection,
//! EVENT_IDX rounds, used-ring signalling, the exit event and the config-space window.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use tracing::warn;
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost_user_backend::{VringRwLock, VringT};
use virtio_bindings::virtio_config::{VIRTIO_F_RING_RESET, VIRTIO_F_VERSION_1};
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::{DescriptorChain, QueueT};
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryLoadGuard, GuestMemoryMmap};
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

pub type GuestMemory = GuestMemoryMmap<()>;
pub type Memory = GuestMemoryLoadGuard<GuestMemory>;

/// vhost-user limits config accesses to 4 KiB (`VHOST_USER_CONFIG_SIZE` in the vhost crate).
const MAX_CONFIG_ACCESS: usize = 0x1000;

/// The virtio feature bits both devices offer. RING_RESET is offered although queue reset is
/// not implemented: QEMU's virtio-pci offers it to the guest by itself and then acks it in
/// SET_FEATURES, and vhost-user-backend 0.24 (`VhostUserHandler::set_features`) answers a bit
/// we did not offer with InvalidParam and drops the connection. Offering it costs nothing:
/// queue reset is the frontend's business (QEMU's vhost-user devices have no `queue_reset`
/// hook, cloud-hypervisor strips the bit) and Linux's drivers never use it.
pub const BASE_FEATURES: u64 = (1 << VIRTIO_F_VERSION_1)
    | (1 << VIRTIO_F_RING_RESET)
    | (1 << VIRTIO_RING_F_INDIRECT_DESC)
    | (1 << VIRTIO_RING_F_EVENT_IDX)
    | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();

/// The vhost-user protocol features both devices offer.
pub fn protocol_features() -> VhostUserProtocolFeatures {
    VhostUserProtocolFeatures::CONFIG
        | VhostUserProtocolFeatures::MQ
        | VhostUserProtocolFeatures::REPLY_ACK
        | VhostUserProtocolFeatures::BACKEND_REQ
}

/// The per-connection queue state of one device: guest memory, EVENT_IDX, the exit event.
pub struct Rings {
    /// What `log` names the device as.
    device: &'static str,
    /// Replaced by SET_MEM_TABLE / ADD_MEM_REG; `.memory()` is taken per batch of work.
    mem: Mutex<Option<GuestMemoryAtomic<GuestMemory>>>,
    event_idx: AtomicBool,
    exit: (EventConsumer, EventNotifier),
}

impl Rings {
    /// Fails only when the exit eventfd cannot be created.
    pub fn new(device: &'static str) -> io::Result<Self> {
        Ok(Self {
            device,
            mem: Mutex::new(None),
            event_idx: AtomicBool::new(false),
            exit: new_event_consumer_and_notifier(EventFlag::NONBLOCK)?,
        })
    }

    /// For `VhostUserBackend::update_memory`.
    pub fn set_memory(&self, mem: GuestMemoryAtomic<GuestMemory>) {
        *self.mem.lock().unwrap_or_else(PoisonError::into_inner) = Some(mem);
    }

    /// The current guest memory; `None` before the frontend has set it.
    pub fn memory(&self) -> Option<Memory> {
        let atomic = self.mem.lock().unwrap_or_else(PoisonError::into_inner);
        atomic.as_ref().map(GuestMemoryAtomic::memory)
    }

    /// For `VhostUserBackend::set_event_idx`.
    pub fn set_event_idx(&self, enabled: bool) {
        self.event_idx.store(enabled, Ordering::Relaxed);
    }

    /// For `VhostUserBackend::exit_event`.
    pub fn exit_event(&self) -> Option<(EventConsumer, EventNotifier)> {
        match (self.exit.0.try_clone(), self.exit.1.try_clone()) {
            (Ok(consumer), Ok(notifier)) => Some((consumer, notifier)),
            (Err(e), _) | (_, Err(e)) => {
                warn!("{}: cannot clone the exit event: {e}", self.device);
                None
            }
        }
    }

    /// Runs `round` (which takes chains and signals) until the driver has added nothing more.
    /// Without EVENT_IDX that is one round. With it, notifications are off during a round and
    /// re-enabling them reports whether the driver added work meanwhile; `round` returns
    /// whether such work is worth another round.
    pub fn rounds(
        &self,
        vring: &VringRwLock,
        mut round: impl FnMut() -> io::Result<bool>,
    ) -> io::Result<()> {
        let event_idx = self.event_idx.load(Ordering::Relaxed);
        loop {
            if event_idx {
                vring.disable_notification().map_err(io::Error::other)?;
            }
            let again = round()?;
            if !event_idx || !vring.enable_notification().map_err(io::Error::other)? || !again {
                break;
            }
        }
        Ok(())
    }

    /// Interrupts the driver after chains were used, unless EVENT_IDX says it needs none.
    pub fn signal(&self, vring: &VringRwLock, used: bool) -> io::Result<()> {
        let event_idx = self.event_idx.load(Ordering::Relaxed);
        if used && (!event_idx || vring.needs_notification().map_err(io::Error::other)?) {
            vring.signal_used_queue()?;
        }
        Ok(())
    }
}

/// The next available chain. Popped in a function of its own: the ring's write guard is gone
/// when it returns, before `add_used` takes it again (a `while let` on the guard's expression
/// itself would hold it through the loop body and deadlock).
pub fn pop(vring: &VringRwLock, mem: &Memory) -> Option<DescriptorChain<Memory>> {
    vring
        .get_mut()
        .get_queue_mut()
        .pop_descriptor_chain(mem.clone())
}

/// Exactly `size` bytes of `config` from `offset`, zero past its end: a short reply is an
/// error in QEMU and a panic in cloud-hypervisor. Empty above the 4 KiB vhost-user limit
/// (the vhost crate refuses such a request before it reaches us).
pub fn config_window(config: &[u8], offset: u32, size: u32) -> Vec<u8> {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size > MAX_CONFIG_ACCESS {
        return Vec::new();
    }
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
