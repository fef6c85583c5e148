//! The SPICE server: wire codec, link and auth, sessions, channels, per-client pipes.
//!
//! # Layout
//! - [`wire`]: one typed struct per message; the only code that reads client bytes.
//! - [`link`]: the sans-IO link handshake; [`ticket`]: the RSA ticket and password policy.
//! - `session`: sessions, the link policy (which channels, which session ids), the input
//!   policy and per-client statistics.
//! - `channel`: the sans-IO cores of the main, display, cursor and inputs channels.
//! - [`pipe`]: a display client's bounded, squashing pipe; `region`: its dirty region.
//! - `outbox`: framed bytes waiting for a socket, and the ACK window.
//! - `encode`: 24-bit raw, LZ4 and [`quic`] image payloads; `image_cache`: encode once, send to many;
//!   `encode_pool`: the threads that make large encodings off the connections' runtime.
//! - [`tls`]: the rustls configuration from PEM files, and the handshake.
//! - `conn`: one connection's task (the only code touching a socket); `server`: listeners,
//!   the connection cap, shutdown, and the public [`SpiceServer`] / [`serve`].
#![forbid(unsafe_code)]

mod channel;
mod conn;
mod encode;
mod encode_pool;
mod image_cache;
pub mod link;
mod outbox;
pub mod pipe;
mod region;
mod server;
mod session;
pub mod ticket;
pub mod tls;
pub mod wire;

pub use channel::{decode_scancodes, ChannelError};
pub use conn::DEFAULT_STALL_TIMEOUT;
pub use encode::{quic, ImageCompression};
pub use image_cache::{ImageCacheStats, DEFAULT_IMAGE_CACHE_BYTES};
pub use link::SecureChannels;
pub use server::{
    serve, ListenAt, ListenerSpec, SpiceConfig, SpiceError, SpiceServer, DEFAULT_MAX_CLIENTS,
    DEFAULT_PORT,
};
pub use session::{ClientStats, DisplayStats, InputPolicy};
pub use tls::{TlsError, TlsSettings, TLS_HANDSHAKE_TIMEOUT};
