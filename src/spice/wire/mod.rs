//! The SPICE wire format: one typed struct per message, one `Codec` impl each, and the only
//! code that reads bytes from a SPICE peer (STYLE §2; brief §1–§3).
//!
//! # Layout
//! - `codec`: `Reader`, the `Codec` trait, `WireError`, length and pointer slots.
//! - `enums`: the integer-newtype enums and the ones every channel shares.
//! - `link`: the link handshake structs and capability bits.
//! - `header`: data headers, the `Framer`, the `MessageWriter`, per-channel size limits.
//! - `messages`: the typed messages of the base, main, display, cursor and inputs channels.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod codec;
mod enums;
mod header;
mod link;
mod messages;

pub use codec::{len_u32, Codec, PointerSlot, PutLe, Reader, U32Slot, WireError};
pub use enums::{ChannelType, SpiceLinkErr, WireInt};
pub use header::{
    client_message_limit, DataHeader, Frame, FrameError, Framer, HeaderKind, Message,
    MessageWriter, MiniDataHeader, CURSOR_CLIENT_MESSAGE_LIMIT, DISPLAY_CLIENT_MESSAGE_LIMIT,
    INPUTS_CLIENT_MESSAGE_LIMIT, MAIN_CLIENT_MESSAGE_LIMIT, OTHER_CLIENT_MESSAGE_LIMIT,
};
pub use link::{
    AuthMechanism, Caps, CommonCap, DisplayCap, EncryptedTicket, InputsCap, LinkHeader, LinkMess,
    LinkReply, MainCap, LINK_MESS_SIZE_RANGE, MAX_CAP_WORDS, SPICE_MAGIC,
    SPICE_MAX_PASSWORD_LENGTH, SPICE_TICKET_ENCRYPTED_BYTES, SPICE_TICKET_PUBKEY_BYTES,
    SPICE_VERSION_MAJOR, SPICE_VERSION_MINOR,
};
pub use messages::*;
