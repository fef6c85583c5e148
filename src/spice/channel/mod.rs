//! The sans-IO cores of the four channels a session serves, and what they share.
//!
//! # Call order (every core)
//! 1. `new(..., out)` when the link succeeds: the core frames its greeting into `out`.
//! 2. [`ChannelCore::handle_message`] for each message the connection frames off the socket.
//! 3. [`ChannelCore::handle_event`] / [`ChannelCore::handle_lagged`] for display events (the
//!    display and cursor channels subscribe).
//! 4. [`ChannelCore::poll_transmit`] whenever the socket has room; it frames a bounded batch
//!    and says whether more is waiting.
//! 5. [`ChannelCore::handle_timeout`] once [`ChannelCore::deadline`] passes.
//!
//! An `Err` from any of them ends the connection; the driver logs it once.
//!
//! # Layout
//! - `main`: MAIN (session greeting, channel list, mouse mode, the pseudo-agent).
//! - `agent`: the VD agent stream the main channel plays the guest side of.
//! - `display`: DISPLAY (startup, ACK window, the [`DisplayPipe`](super::pipe::DisplayPipe)).
//! - `cursor`: CURSOR (latest-value cursor state).
//! - `inputs`: INPUTS (keys, pointer, buttons, motion acks).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::image_cache::InFlight;
use super::outbox::Outbox;
use super::wire::{ChannelType, SpiceLinkErr, WireError};
use crate::display::DisplayEvent;

mod agent;
mod cursor;
mod display;
mod inputs;
mod main;

pub use cursor::CursorChannel;
pub use display::DisplayChannel;
pub use inputs::{decode_scancodes, InputsChannel};
pub use main::MainChannel;

/// Why a channel connection ends because of what its client did.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// A message body did not decode.
    #[error("Client sent a malformed message of type {msg_type}")]
    Malformed {
        /// Message type.
        msg_type: u16,
        /// What was wrong.
        #[source]
        source: WireError,
    },
    /// A message type this channel does not take (spice-server disconnects too: brief §2.8).
    #[error("Client sent message type {msg_type}, which the {channel:?} channel does not take")]
    UnknownMessage {
        /// The channel.
        channel: ChannelType,
        /// Message type.
        msg_type: u16,
    },
    /// The display client never sent its INIT.
    #[error("Client sent no DISPLAY INIT within {0:?}")]
    InitTimeout(Duration),
    /// The client said it is leaving.
    #[error("Client is disconnecting with reason {0:?}")]
    ClientDisconnecting(SpiceLinkErr),
    /// The client sent more AGENT_DATA than its tokens allow.
    #[error("Client sent AGENT_DATA without an agent token")]
    AgentTokensExhausted,
    /// The client's agent stream is not VD agent protocol 1.
    #[error("Client's agent message has protocol {0}, not 1")]
    AgentProtocol(u32),
}

impl ChannelError {
    pub(crate) fn malformed(msg_type: u16) -> impl FnOnce(WireError) -> Self {
        move |source| Self::Malformed { msg_type, source }
    }
}

/// What the connection driver needs from a channel core. See the module documentation.
pub trait ChannelCore: Send {
    /// One message from the client.
    fn handle_message(
        &mut self,
        msg_type: u16,
        body: &[u8],
        now: Instant,
        out: &mut Outbox,
    ) -> Result<(), ChannelError>;

    /// One display event.
    fn handle_event(&mut self, _event: &DisplayEvent) {}

    /// Display events were missed: resynchronise from the display's state.
    fn handle_lagged(&mut self) {}

    /// Frames a bounded batch of what is ready to go; returns true if it stopped at its batch
    /// limit with more ready (the driver yields, then calls again). Blocked by the ACK
    /// window or the byte budget it returns false: the ACK or the socket draining brings the
    /// next call.
    fn poll_transmit(&mut self, _out: &mut Outbox) -> bool {
        false
    }

    /// Whether the core holds work it is waiting to frame (the ACK window or the byte budget
    /// stops it). With bytes waiting for the socket, this is what makes a client that reads
    /// nothing a stalled one.
    fn has_backlog(&self) -> bool {
        false
    }

    /// An image encoding the core waits for before it can frame more (made in the encode
    /// pool or by another client); [`ChannelCore::poll_transmit`] is worth calling again
    /// once it is in.
    fn awaited(&self) -> Option<Arc<InFlight>> {
        None
    }

    /// A line of counters for the connection's final log entry, if the core keeps any.
    fn summary(&self) -> Option<String> {
        None
    }

    /// The guest's keyboard lock LEDs changed (the inputs channel reports them).
    fn handle_guest_modifiers(&mut self, _modifiers: u16, _out: &mut Outbox) {}

    /// When [`ChannelCore::handle_timeout`] is due.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// Called at or after the deadline.
    fn handle_timeout(&mut self, _now: Instant) -> Result<(), ChannelError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
