//! The handle the network side holds: it owns the device state and the pending events, so it
//! outlives frontend connections; each connection's backend attaches to it.
//!
//! Input arrives on tokio tasks, which must not touch vrings: the handle queues events under a
//! mutex and writes the wake-up eventfd, which the connection's vring worker watches
//! (`InputBackend::register_wake`) and answers by draining the queue into the event queue.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use tracing::debug;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::device::{InputConfig, InputDevice, InputStats};
use super::error::InputError;
use crate::guest::{InputClientId, InputEvent, InputSink};

/// Shared by every clone of the handle and by the backend of the current connection.
#[derive(Clone)]
pub struct InputHandle {
    shared: Arc<Shared>,
}

struct Shared {
    /// Held briefly by input calls (tokio tasks) and by the vring worker while it fills
    /// buffers; never across I/O or an await.
    device: Mutex<InputDevice>,
    /// Readable while events wait; level-triggered in the worker's epoll.
    wake: EventFd,
    /// Guest LEDs as SPICE modifier bits, for every client's inputs channel.
    locks: watch::Sender<u16>,
}

impl InputHandle {
    pub fn new(config: &InputConfig) -> Result<Self, InputError> {
        let device = InputDevice::new(config)?;
        let wake = EventFd::new(EFD_NONBLOCK).map_err(InputError::WakeEvent)?;
        let (locks, _) = watch::channel(0);
        Ok(Self {
            shared: Arc::new(Shared {
                device: Mutex::new(device),
                wake,
                locks,
            }),
        })
    }

    /// The display the tablet's axes span; pointer positions are in its pixels.
    pub fn set_display_size(&self, width: u32, height: u32) {
        self.device().set_display_size(width, height);
    }

    pub fn stats(&self) -> InputStats {
        self.device().stats()
    }

    pub(super) fn device(&self) -> MutexGuard<'_, InputDevice> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.shared
            .device
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn wake_fd(&self) -> RawFd {
        self.shared.wake.as_raw_fd()
    }

    /// Empties the wake-up counter (the worker is about to drain the queue).
    pub(super) fn consume_wake(&self) {
        // EAGAIN: nobody woke us since the last read; nothing to do.
        let _ = self.shared.wake.read();
    }

    fn wake(&self) {
        if let Err(e) = self.shared.wake.write(1) {
            debug!("virtio-input: wake-up event write failed: {e}");
        }
    }

    /// Publishes the guest's LEDs to the SPICE side when they changed.
    pub(super) fn publish_locks(&self, locks: u16) {
        self.shared.locks.send_if_modified(|current| {
            let changed = *current != locks;
            *current = locks;
            changed
        });
    }

    /// A new guest driver took over (new connection or device reset).
    pub(super) fn reset_guest(&self) {
        let mut device = self.device();
        device.reset_guest();
        let locks = device.guest_locks();
        drop(device);
        self.publish_locks(locks);
    }
}

impl InputSink for InputHandle {
    fn input(&self, client: InputClientId, event: InputEvent) {
        if self.device().input(client, event) {
            self.wake();
        }
    }

    fn release_all_from(&self, client: InputClientId) {
        let mut device = self.device();
        device.release_all_from(client);
        let pending = !device.queue().is_empty();
        drop(device);
        if pending {
            self.wake();
        }
    }

    fn guest_modifiers(&self) -> watch::Receiver<u16> {
        self.shared.locks.subscribe()
    }
}
