//! What can go wrong in the virtio-input device.

use std::io;

/// Errors of the virtio-input device and its set-up.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("Invalid input device configuration: {0}")]
    InvalidConfig(&'static str),
    #[error("Failed to create the input wake-up event")]
    WakeEvent(#[source] io::Error),
    #[error("Failed to create the worker exit event")]
    ExitEvent(#[source] io::Error),
    #[error("Failed to register the input wake-up event with the vring worker")]
    RegisterWake(#[source] io::Error),
    #[error("The daemon has no vring worker to register the input wake-up event with")]
    NoWorker,
    #[error("Guest descriptor chain is malformed")]
    BadDescriptorChain(#[source] virtio_queue::Error),
    #[error("Guest gave a {have}-byte event buffer, an event needs 8")]
    EventBufferTooSmall { have: usize },
    #[error("Guest gave a {have}-byte status buffer, an event needs 8")]
    StatusBufferTooSmall { have: usize },
    #[error(
        "Guest sent status event type {kind:#x} code {code:#x}, which the device does not take"
    )]
    UnsupportedStatus { kind: u16, code: u16 },
    #[error(
        "Guest takes no events: queue full, dropped {motion} motion and {presses} press groups"
    )]
    QueueOverflow { motion: u64, presses: u64 },
    #[error("Guest selected config {select:#x}/{subsel:#x}, which does not exist")]
    UnknownConfigSelect { select: u8, subsel: u8 },
}

/// The one conversion to `io::Error`, at the rust-vmm trait boundary.
impl From<InputError> for io::Error {
    fn from(e: InputError) -> Self {
        io::Error::other(e)
    }
}
