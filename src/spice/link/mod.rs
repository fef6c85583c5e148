//! The sans-IO link handshake of one channel connection: link message, auth mechanism,
//! ticket, result (brief §1.2–§1.6), from the first byte to `Linked`.
//!
//! # Call order
//! 1. [`LinkState::new`] when the connection is accepted.
//! 2. Append received bytes to a buffer and call [`LinkState::handle`]; drop the bytes it
//!    says it used, send whatever it wrote to `out`, repeat. It never uses more than it
//!    needs, so bytes after the ticket (none, with real clients) stay for the data phase.
//! 3. When [`LinkState::deadline`] passes, call [`LinkState::handle_timeout`].
//! 4. On `Ok(LinkState::Linked(_))` the result OK has been written; framing starts. On
//!    `Err`, send what is in `out` (a refusal, if the protocol has one for that case) and
//!    close.
//!
//! Before authentication succeeds nothing but the link reply and the link result is ever
//! written to `out`.

use std::time::{Duration, Instant};

use tracing::debug;

use super::ticket::{ServerKey, TicketError, Ticketing};
use super::wire::{
    AuthMechanism, Caps, ChannelType, Codec, CommonCap, EncryptedTicket, HeaderKind, LinkHeader,
    LinkMess, LinkReply, Reader, SpiceLinkErr, WireError, LINK_MESS_SIZE_RANGE, SPICE_MAGIC,
    SPICE_TICKET_ENCRYPTED_BYTES, SPICE_VERSION_MAJOR,
};

/// How long a connection may take from accept to link result. A real client needs one
/// round trip plus an RSA decryption; a peer that stalls holds a task and a buffer, so it is
/// cut off well before a person would notice.
pub const LINK_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes the link phase ever needs buffered at once: a link header and the largest body.
pub const MAX_LINK_INPUT: usize = LinkHeader::SIZE + 4096;

/// The server's common caps, exactly AUTH_SELECTION | AUTH_SPICE | MINI_HEADER = 0x0B: SASL
/// would make Debian's spice-gtk pick SASL, and spice-html5 needs the other three (brief
/// §1.4, §7.2).
pub fn server_common_caps() -> Caps {
    Caps::empty()
        .with(CommonCap::AUTH_SELECTION)
        .with(CommonCap::AUTH_SPICE)
        .with(CommonCap::MINI_HEADER)
}

/// What the server offers, asked by the link machine.
pub trait LinkPolicy {
    /// Our capabilities for this channel, or `None` if we do not serve it.
    fn channel_caps(&self, channel_type: ChannelType, channel_id: u8) -> Option<Caps>;

    /// Called once the ticket is good: may this channel join? Refuse a non-main channel
    /// naming an unknown session with `BAD_CONNECTION_ID` (brief §1.7).
    fn admit(&self, link: &LinkMess) -> Result<(), SpiceLinkErr>;
}

/// Which channel types must arrive over TLS (spice-server's `secure-channels`). A link for
/// one of them on a plaintext connection is answered with a `NEED_SECURED` link reply;
/// spice-gtk then reconnects that channel to the TLS port, if it was given one (brief §1.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecureChannels(u32);

impl SecureChannels {
    /// Every channel may come over plaintext (spice-server's default).
    pub const NONE: Self = Self(0);
    /// Every channel needs TLS.
    pub const ALL: Self = Self(u32::MAX);

    /// These and `channel_type`.
    #[must_use]
    pub fn with(self, channel_type: ChannelType) -> Self {
        Self(self.0 | Self::bit(channel_type))
    }

    /// Whether `channel_type` needs TLS.
    pub fn requires(self, channel_type: ChannelType) -> bool {
        self == Self::ALL || self.0 & Self::bit(channel_type) != 0
    }

    fn bit(channel_type: ChannelType) -> u32 {
        1u32.checked_shl(u32::from(channel_type.0)).unwrap_or(0)
    }
}

/// What the link machine needs besides bytes and time.
pub struct LinkContext<'c> {
    /// The server's RSA key.
    pub key: &'c ServerKey,
    /// The password policy at this moment.
    pub ticketing: &'c Ticketing,
    /// Channels and sessions.
    pub policy: &'c dyn LinkPolicy,
    /// Whether this connection is TLS.
    pub secured: bool,
    /// Channels refused on a plaintext connection.
    pub secure_channels: SecureChannels,
}

/// Why a link failed. Each variant fixes what, if anything, the client is told
/// ([`LinkError::refusal`]) and with which code (`From<&LinkError> for SpiceLinkErr`).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Client's first bytes are not "REDQ" (a WebSocket `GET ` would show here).
    #[error("Client sent magic {0:02x?}, not REDQ")]
    BadMagic([u8; 4]),
    /// Client speaks another major version.
    #[error("Client speaks SPICE {major}.{minor}, not 2.x")]
    VersionMismatch {
        /// Client's major.
        major: u32,
        /// Client's minor.
        minor: u32,
    },
    /// Client declared a link body outside 18..=4096 bytes.
    #[error("Client declared a {0}-byte link message")]
    LinkSizeOutOfRange(u32),
    /// Client's link message does not parse.
    #[error("Client sent a malformed link message")]
    MalformedLinkMess(#[source] WireError),
    /// Client asked for a channel type spice-protocol does not define.
    #[error("Client asked for unknown channel type {0:?}")]
    UnknownChannelType(ChannelType),
    /// Client asked for a channel we do not serve.
    #[error("Client asked for channel {channel_type:?} {channel_id}, which is not served")]
    ChannelNotServed {
        /// Type asked for.
        channel_type: ChannelType,
        /// Id asked for.
        channel_id: u8,
    },
    /// Client asked for a channel that needs TLS on a plaintext connection.
    #[error("Client asked for channel {0:?} over plaintext; it needs TLS")]
    NeedSecured(ChannelType),
    /// Client chose an auth mechanism we did not offer.
    #[error("Client chose auth mechanism {0:?}, which is not offered")]
    AuthMechanismNotOffered(AuthMechanism),
    /// The ticket was refused.
    #[error("Client's ticket was refused")]
    Ticket(#[source] TicketError),
    /// The policy refused the channel after authentication.
    #[error("Channel refused after authentication with {0:?}")]
    NotAdmitted(SpiceLinkErr),
    /// The link did not complete in time.
    #[error("Client did not complete the link within {0:?}")]
    Timeout(Duration),
}

/// How a link failure is told to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A full `SpiceLinkReply` with `error` set (before the reply was sent).
    LinkReply,
    /// The 4-byte link result (after the reply was sent).
    LinkResult,
    /// Nothing: just close.
    Close,
}

impl LinkError {
    /// Where this failure is reported, per brief §1.6: errors found before the reply go in
    /// an error reply, later ones in the 4-byte result. spice-server closes without a word
    /// for channel types it does not have.
    pub fn refusal(&self) -> Refusal {
        match self {
            Self::BadMagic(_)
            | Self::VersionMismatch { .. }
            | Self::LinkSizeOutOfRange(_)
            | Self::MalformedLinkMess(_)
            | Self::NeedSecured(_)
            | Self::ChannelNotServed { .. } => Refusal::LinkReply,
            Self::AuthMechanismNotOffered(_) | Self::Ticket(_) | Self::NotAdmitted(_) => {
                Refusal::LinkResult
            }
            Self::UnknownChannelType(_) | Self::Timeout(_) => Refusal::Close,
        }
    }
}

impl From<&LinkError> for SpiceLinkErr {
    fn from(e: &LinkError) -> Self {
        match e {
            LinkError::BadMagic(_) => Self::INVALID_MAGIC,
            LinkError::VersionMismatch { .. } => Self::VERSION_MISMATCH,
            LinkError::LinkSizeOutOfRange(_) | LinkError::MalformedLinkMess(_) => {
                Self::INVALID_DATA
            }
            LinkError::UnknownChannelType(_) | LinkError::ChannelNotServed { .. } => {
                Self::CHANNEL_NOT_AVAILABLE
            }
            LinkError::NeedSecured(_) => Self::NEED_SECURED,
            LinkError::AuthMechanismNotOffered(_) => Self::INVALID_DATA,
            LinkError::Ticket(_) => Self::PERMISSION_DENIED,
            // OK is no refusal: a policy that returns it as one gets the generic error.
            LinkError::NotAdmitted(SpiceLinkErr::OK) => Self::ERROR,
            LinkError::NotAdmitted(code) => *code,
            LinkError::Timeout(_) => Self::ERROR,
        }
    }
}

/// The one place a link fails: writes the refusal for `err` (if it has one) and hands the
/// error back. A client can trigger this at will, so only `debug!` here; the caller logs the
/// returned error once with the connection's identity.
fn refuse(err: LinkError, out: &mut Vec<u8>) -> LinkError {
    let code = SpiceLinkErr::from(&err);
    match err.refusal() {
        Refusal::LinkReply => write_link_reply(&LinkReply::refusal(code), out),
        Refusal::LinkResult => code.encode(out),
        Refusal::Close => {}
    }
    debug!(error = %err, ?code, "link refused");
    err
}

fn write_link_reply(reply: &LinkReply, out: &mut Vec<u8>) {
    let body = reply.to_bytes();
    LinkHeader::new(super::wire::len_u32(body.len())).encode(out);
    out.extend_from_slice(&body);
}

/// Waiting for `SpiceLinkHeader` + `SpiceLinkMess` + caps.
#[derive(Debug)]
pub struct ExpectLinkMess {
    deadline: Instant,
}

/// Waiting for the u32 auth mechanism (the client advertised AUTH_SELECTION).
#[derive(Debug)]
pub struct ExpectAuthMechanism {
    deadline: Instant,
    mess: LinkMess,
}

/// Waiting for the 128-byte encrypted ticket.
#[derive(Debug)]
pub struct ExpectTicket {
    deadline: Instant,
    mess: LinkMess,
}

/// The link succeeded and the OK result was written: the event for the session layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    /// Channel type.
    pub channel_type: ChannelType,
    /// Channel instance.
    pub channel_id: u8,
    /// 0 for a new session's main channel, else the session id.
    pub connection_id: u32,
    /// Client's common caps.
    pub client_common_caps: Caps,
    /// Client's caps for this channel.
    pub client_channel_caps: Caps,
    /// Whether both directions use the mini header (the client advertised it; we always do).
    pub mini_header: bool,
}

impl Linked {
    /// The data header both directions use.
    pub fn header_kind(&self) -> HeaderKind {
        if self.mini_header {
            HeaderKind::Mini
        } else {
            HeaderKind::Full
        }
    }
}

/// The link machine of one connection.
#[derive(Debug)]
pub enum LinkState {
    /// See [`ExpectLinkMess`].
    ExpectLinkMess(ExpectLinkMess),
    /// See [`ExpectAuthMechanism`].
    ExpectAuthMechanism(ExpectAuthMechanism),
    /// See [`ExpectTicket`].
    ExpectTicket(ExpectTicket),
    /// See [`Linked`].
    Linked(Linked),
}

/// A state's answer to some input: the next state and the bytes used (0 = need more).
type Step = Result<(LinkState, usize), LinkError>;

impl LinkState {
    /// A connection accepted at `now`.
    pub fn new(now: Instant) -> Self {
        Self::ExpectLinkMess(ExpectLinkMess {
            deadline: now + LINK_TIMEOUT,
        })
    }

    /// When [`LinkState::handle_timeout`] must be called, while the link is incomplete.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            Self::ExpectLinkMess(s) => Some(s.deadline),
            Self::ExpectAuthMechanism(s) => Some(s.deadline),
            Self::ExpectTicket(s) => Some(s.deadline),
            Self::Linked(_) => None,
        }
    }

    /// Fails an incomplete link whose deadline has passed.
    pub fn handle_timeout(self, now: Instant) -> Result<Self, LinkError> {
        match self.deadline() {
            Some(deadline) if now >= deadline => {
                Err(refuse(LinkError::Timeout(LINK_TIMEOUT), &mut Vec::new()))
            }
            _ => Ok(self),
        }
    }

    /// Consumes as much of `input` as the link needs; returns the new state and the bytes
    /// used. Replies go to `out`.
    pub fn handle(
        self,
        input: &[u8],
        now: Instant,
        cx: &LinkContext<'_>,
        out: &mut Vec<u8>,
    ) -> Step {
        let mut state = self;
        let mut used = 0;
        loop {
            let rest = input.get(used..).unwrap_or_default();
            let (next, n) = match state {
                Self::ExpectLinkMess(s) => s.handle(rest, now, cx, out)?,
                Self::ExpectAuthMechanism(s) => s.handle(rest, out)?,
                Self::ExpectTicket(s) => s.handle(rest, now, cx, out)?,
                linked @ Self::Linked(_) => return Ok((linked, used)),
            };
            state = next;
            if n == 0 {
                return Ok((state, used));
            }
            used = used.saturating_add(n);
        }
    }
}

impl ExpectLinkMess {
    fn handle(self, input: &[u8], _now: Instant, cx: &LinkContext<'_>, out: &mut Vec<u8>) -> Step {
        // Check the magic as soon as it is there, as spice-server does (so a WebSocket or TLS
        // hello on the plain port fails fast).
        if let Some(magic) = input.get(..SPICE_MAGIC.len()) {
            if magic != SPICE_MAGIC {
                let mut got = [0; 4];
                got.copy_from_slice(magic);
                return Err(refuse(LinkError::BadMagic(got), out));
            }
        }
        let Some(head) = input.get(..LinkHeader::SIZE) else {
            return Ok((LinkState::ExpectLinkMess(self), 0));
        };
        let header = LinkHeader::read_bytes(head)
            .map_err(|e| refuse(LinkError::MalformedLinkMess(e), out))?;
        if header.major_version != SPICE_VERSION_MAJOR {
            return Err(refuse(
                LinkError::VersionMismatch {
                    major: header.major_version,
                    minor: header.minor_version,
                },
                out,
            ));
        }
        if !LINK_MESS_SIZE_RANGE.contains(&header.size) {
            return Err(refuse(LinkError::LinkSizeOutOfRange(header.size), out));
        }
        let total = LinkHeader::SIZE.saturating_add(usize::try_from(header.size).unwrap_or(0));
        let Some(body) = input.get(LinkHeader::SIZE..total) else {
            return Ok((LinkState::ExpectLinkMess(self), 0));
        };
        let mess =
            LinkMess::read_bytes(body).map_err(|e| refuse(LinkError::MalformedLinkMess(e), out))?;
        if !mess.channel_type.is_known() {
            return Err(refuse(
                LinkError::UnknownChannelType(mess.channel_type),
                out,
            ));
        }
        // spice-server checks the transport before the channel (`reds_security_check`).
        if !cx.secured && cx.secure_channels.requires(mess.channel_type) {
            return Err(refuse(LinkError::NeedSecured(mess.channel_type), out));
        }
        let Some(channel_caps) = cx.policy.channel_caps(mess.channel_type, mess.channel_id) else {
            return Err(refuse(
                LinkError::ChannelNotServed {
                    channel_type: mess.channel_type,
                    channel_id: mess.channel_id,
                },
                out,
            ));
        };
        write_link_reply(
            &LinkReply {
                error: SpiceLinkErr::OK,
                pub_key: *cx.key.public_der(),
                common_caps: server_common_caps(),
                channel_caps,
            },
            out,
        );
        // spice-server reads the mechanism word only from clients that advertised
        // AUTH_SELECTION (`reds_handle_read_link_done`); older clients send the ticket at once.
        let next = if mess.common_caps.has(CommonCap::AUTH_SELECTION) {
            LinkState::ExpectAuthMechanism(ExpectAuthMechanism {
                deadline: self.deadline,
                mess,
            })
        } else {
            LinkState::ExpectTicket(ExpectTicket {
                deadline: self.deadline,
                mess,
            })
        };
        Ok((next, total))
    }
}

impl ExpectAuthMechanism {
    fn handle(self, input: &[u8], out: &mut Vec<u8>) -> Step {
        let Some(word) = input.get(..4) else {
            return Ok((LinkState::ExpectAuthMechanism(self), 0));
        };
        let mechanism = AuthMechanism::read_bytes(word)
            .map_err(|e| refuse(LinkError::MalformedLinkMess(e), out))?;
        // We offer only AUTH_SPICE; anything else gets INVALID_DATA as a 4-byte result, which
        // is what the client expects at this point (brief §1.6).
        if mechanism != AuthMechanism::SPICE {
            return Err(refuse(LinkError::AuthMechanismNotOffered(mechanism), out));
        }
        let next = LinkState::ExpectTicket(ExpectTicket {
            deadline: self.deadline,
            mess: self.mess,
        });
        Ok((next, word.len()))
    }
}

impl ExpectTicket {
    fn handle(self, input: &[u8], now: Instant, cx: &LinkContext<'_>, out: &mut Vec<u8>) -> Step {
        let Some(bytes) = input.get(..SPICE_TICKET_ENCRYPTED_BYTES) else {
            return Ok((LinkState::ExpectTicket(self), 0));
        };
        let ticket = EncryptedTicket::read(&mut Reader::new(bytes))
            .map_err(|e| refuse(LinkError::MalformedLinkMess(e), out))?;
        cx.ticketing
            .check(cx.key, &ticket, now)
            .map_err(|e| refuse(LinkError::Ticket(e), out))?;
        cx.policy
            .admit(&self.mess)
            .map_err(|code| refuse(LinkError::NotAdmitted(code), out))?;
        SpiceLinkErr::OK.encode(out);
        let mess = self.mess;
        let linked = Linked {
            channel_type: mess.channel_type,
            channel_id: mess.channel_id,
            connection_id: mess.connection_id,
            mini_header: mess.common_caps.has(CommonCap::MINI_HEADER),
            client_common_caps: mess.common_caps,
            client_channel_caps: mess.channel_caps,
        };
        Ok((LinkState::Linked(linked), bytes.len()))
    }
}

#[cfg(test)]
mod tests;
