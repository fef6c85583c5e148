//! The guest-facing vhost-user devices over the rust-vmm crates.

pub mod gpu;
