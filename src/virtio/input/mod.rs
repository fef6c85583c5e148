//! virtio-input (device id 18) as a vhost-user backend: one keyboard + absolute tablet device
//! fed by the SPICE inputs channels of all clients.
//!
//! - [`protocol`]: config space (select/subsel), the 8-byte event, declared evdev codes.
//! - [`keymap`]: PC set-1 scancodes (what SPICE sends) to Linux key codes.
//! - [`queue`]: events waiting for guest buffers, bounded, with the overflow policy.
//! - [`device`]: the model: client input → event groups, held keys per client, LEDs.
//! - [`handle`]: the long-lived handle the SPICE side feeds (`guest::InputSink`).
//! - [`backend`]: the `VhostUserBackend` impl of one frontend connection.
//!
//! Wiring: build one [`InputHandle`] at start-up and give it (as `guest::InputSink`) to the
//! SPICE server; per frontend connection build `InputBackend::with_handle(handle.clone(), ..)`,
//! hand `Arc<InputBackend>` to `VhostUserDaemon`, then call `register_wake(&daemon)`. Feed the
//! display size with `InputHandle::set_display_size` whenever the guest's mode changes.

pub mod backend;
pub mod device;
pub mod error;
pub mod handle;
pub mod keymap;
pub mod protocol;
pub mod queue;

pub use backend::InputBackend;
pub use device::{InputConfig, InputStats};
pub use error::InputError;
pub use handle::InputHandle;
