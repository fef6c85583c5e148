//! The SPICE server: wire codec, link and auth, sessions, channels, per-client pipes.
#![forbid(unsafe_code)]

pub mod link;
pub mod ticket;
pub mod wire;
