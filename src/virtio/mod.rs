//! The guest-facing vhost-user devices over the rust-vmm crates.
//!
//! # Layout
//! - [`daemon`]: sockets, one backend per frontend connection, serving again after a disconnect.
//! - [`gpu`], [`input`]: the two devices.
//! - `vring`: the queue mechanics both devices share (guest memory, EVENT_IDX, config window).
//! - `ratelimit`: the per-kind log limit the devices share.
//! - [`relay`]: between the frontend and the rust-vmm daemon, for the hooks the crates lack.

pub mod daemon;
pub mod gpu;
pub mod input;
mod ratelimit;
pub mod relay;
#[cfg(test)]
mod testutil;
mod vring;

/// Sends `VHOST_USER_BACKEND_CONFIG_CHANGE_MSG` to the frontend, so that the VMM raises a
/// config-change interrupt in the guest. The crates' public API has no such sender; the
/// daemon provides one (see `daemon` / `relay`).
pub trait ConfigChangeNotifier: Send + Sync {
    /// Fails when the frontend has not (yet) given us a backend-request channel.
    fn notify_config_change(&self) -> std::io::Result<()>;
}
