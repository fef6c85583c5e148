//! The SPICE server: wire codec, link and auth, sessions, channels, per-client pipes.
//!
//! # Layout
//! - [`wire`]: one typed struct per message; the only code that reads client bytes.
//! - [`link`]: the sans-IO link handshake; [`ticket`]: the RSA ticket and password policy.
//! - `session`: sessions and the link policy (which channels, which session ids).
//! - `channel`: the sans-IO cores of the main, display, cursor and inputs channels.
//! - [`pipe`]: a display client's bounded, squashing pipe; `region`: its dirty region.
//! - `outbox`: framed bytes waiting for a socket, and the ACK window.
//! - `lz4`: the LZ4 block compressor for images.
//! - `conn`: one connection's task (the only code touching a socket); `server`: listeners,
//!   the connection cap, shutdown, and the public [`SpiceServer`] / [`serve`].
#![forbid(unsafe_code)]

mod channel;
mod conn;
pub mod link;
mod lz4;
mod outbox;
pub mod pipe;
mod region;
mod server;
mod session;
pub mod ticket;
pub mod wire;

pub use channel::{decode_scancodes, ChannelError};
pub use server::{serve, SpiceConfig, SpiceError, SpiceServer, DEFAULT_MAX_CLIENTS, DEFAULT_PORT};
