//! Data-phase framing: the mini and full data headers, a `Framer` that splits complete
//! messages off a byte buffer under a size limit, and a `MessageWriter` that frames ours.
//!
//! Serials are per channel connection and direction, start at 1 and count every top-level
//! message; with the mini header they are implicit, so both sides count (brief §2.2).

use std::sync::Arc;

use super::codec::{Codec, PutLe, Reader, U32Slot, WireError};
use super::enums::ChannelType;
use super::link::{Caps, CommonCap};

/// A message body type: its `Codec` plus the message number it is sent under.
pub trait Message<'a>: Codec<'a> {
    /// The `type` field of the data header.
    const TYPE: u16;
}

/// Which data header a channel connection uses: the mini header when the peer advertised
/// `MINI_HEADER`, else the full one (spice: red-channel-client.cpp; spice-gtk uses the same
/// rule; brief §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    /// `SpiceMiniDataHeader`, 6 bytes.
    Mini,
    /// `SpiceDataHeader`, 18 bytes.
    Full,
}

impl HeaderKind {
    /// The header the peer with these common caps expects.
    pub fn for_peer(peer_common_caps: &Caps) -> Self {
        if peer_common_caps.has(CommonCap::MINI_HEADER) {
            Self::Mini
        } else {
            Self::Full
        }
    }

    /// Encoded header length.
    pub fn header_len(self) -> usize {
        match self {
            Self::Mini => MiniDataHeader::SIZE,
            Self::Full => DataHeader::SIZE,
        }
    }
}

/// spice-protocol protocol.h: `SpiceMiniDataHeader`.
#[doc(alias = "SpiceMiniDataHeader")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiniDataHeader {
    /// Message type.
    pub msg_type: u16,
    /// Body bytes.
    pub size: u32,
}

impl MiniDataHeader {
    /// Encoded size.
    pub const SIZE: usize = 6;
}

impl Codec<'_> for MiniDataHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16(self.msg_type);
        out.put_u32(self.size);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            msg_type: r.u16("SpiceMiniDataHeader.type")?,
            size: r.u32("SpiceMiniDataHeader.size")?,
        })
    }
}

/// spice-protocol protocol.h: `SpiceDataHeader`.
#[doc(alias = "SpiceDataHeader")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    /// Serial, from 1.
    pub serial: u64,
    /// Message type.
    pub msg_type: u16,
    /// Body bytes.
    pub size: u32,
    /// Body offset of a `SpiceSubMessageList`, 0 for none (we never send one).
    pub sub_list: u32,
}

impl DataHeader {
    /// Encoded size.
    pub const SIZE: usize = 18;
}

impl Codec<'_> for DataHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.serial);
        out.put_u16(self.msg_type);
        out.put_u32(self.size);
        out.put_u32(self.sub_list);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            serial: r.u64("SpiceDataHeader.serial")?,
            msg_type: r.u16("SpiceDataHeader.type")?,
            size: r.u32("SpiceDataHeader.size")?,
            sub_list: r.u32("SpiceDataHeader.sub_list")?,
        })
    }
}

/// Largest client message body on a MAIN channel. The largest legitimate one is an
/// AGENT_DATA chunk of at most `VD_AGENT_MAX_DATA_SIZE` = 2048 bytes (spice-protocol
/// vd_agent.h; spice-gtk `agent_msg_queue_many`); twice that leaves room for slack.
pub const MAIN_CLIENT_MESSAGE_LIMIT: u32 = 4096;
/// Largest client message body on a DISPLAY channel: INIT is 14 bytes, STREAM_REPORT 32,
/// PREFERRED_VIDEO_CODEC_TYPE at most 1 + 255.
pub const DISPLAY_CLIENT_MESSAGE_LIMIT: u32 = 512;
/// Largest client message body on an INPUTS channel: MOUSE_POSITION is 11 bytes;
/// KEY_SCANCODE carries a press and release of one key (2–4 bytes, brief §3.4), a little
/// more for a pasted burst.
pub const INPUTS_CLIENT_MESSAGE_LIMIT: u32 = 256;
/// Largest client message body on a CURSOR channel, which only receives base messages
/// (PONG and DISCONNECTING are 12 bytes; MIGRATE_DATA never comes: we offer no migration).
pub const CURSOR_CLIENT_MESSAGE_LIMIT: u32 = 64;
/// For channel types we do not serve: base messages only.
pub const OTHER_CLIENT_MESSAGE_LIMIT: u32 = 64;

/// The client message size limit for a channel type; a larger `size` disconnects.
pub fn client_message_limit(channel: ChannelType) -> u32 {
    match channel {
        ChannelType::MAIN => MAIN_CLIENT_MESSAGE_LIMIT,
        ChannelType::DISPLAY => DISPLAY_CLIENT_MESSAGE_LIMIT,
        ChannelType::INPUTS => INPUTS_CLIENT_MESSAGE_LIMIT,
        ChannelType::CURSOR => CURSOR_CLIENT_MESSAGE_LIMIT,
        _ => OTHER_CLIENT_MESSAGE_LIMIT,
    }
}

/// Why a byte stream cannot be framed; every one ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The peer declared a body larger than this channel allows.
    #[error("Peer declared a {size}-byte message of type {msg_type}, over the limit of {limit}")]
    TooLarge {
        /// Message type.
        msg_type: u16,
        /// Declared size.
        size: u32,
        /// Our limit.
        limit: u32,
    },
    /// A full header with a sub-message list, which clients never send (brief §2.3).
    #[error("Peer sent message type {msg_type} with a sub-message list at {sub_list}")]
    SubMessageList {
        /// Message type.
        msg_type: u16,
        /// The list offset.
        sub_list: u32,
    },
}

/// One complete message split off the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'b> {
    /// Our count of messages received on this connection, from 1 (the implicit serial).
    pub serial: u64,
    /// Message type.
    pub msg_type: u16,
    /// The body, exactly `size` bytes.
    pub body: &'b [u8],
}

/// Splits complete messages off the front of a receive buffer. Sans-IO: the caller reads
/// from the socket into a buffer, calls [`Framer::next_frame`] until it returns `None`, and
/// drops the consumed bytes. The limit is checked as soon as the header is complete, so the
/// caller never buffers more than `header + limit` bytes for one message.
#[derive(Debug, Clone)]
pub struct Framer {
    kind: HeaderKind,
    limit: u32,
    received: u64,
}

impl Framer {
    /// A framer for one connection and direction.
    pub fn new(kind: HeaderKind, limit: u32) -> Self {
        Self {
            kind,
            limit,
            received: 0,
        }
    }

    /// The largest buffer a caller needs to hold one message.
    pub fn max_frame_len(&self) -> usize {
        self.kind
            .header_len()
            .saturating_add(usize::try_from(self.limit).unwrap_or(usize::MAX))
    }

    /// Messages split off so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The next complete message at the front of `buf` and the bytes it used, or `None`
    /// when more bytes are needed.
    pub fn next_frame<'b>(
        &mut self,
        buf: &'b [u8],
    ) -> Result<Option<(Frame<'b>, usize)>, FrameError> {
        let Some(head) = buf.get(..self.kind.header_len()) else {
            return Ok(None);
        };
        let mut r = Reader::new(head);
        // The header slice has exactly the header's length, so these reads cannot fail.
        let (msg_type, size) = match self.kind {
            HeaderKind::Mini => match MiniDataHeader::read(&mut r) {
                Ok(h) => (h.msg_type, h.size),
                Err(_) => return Ok(None),
            },
            HeaderKind::Full => match DataHeader::read(&mut r) {
                Ok(h) if h.sub_list != 0 => {
                    return Err(FrameError::SubMessageList {
                        msg_type: h.msg_type,
                        sub_list: h.sub_list,
                    })
                }
                Ok(h) => (h.msg_type, h.size),
                Err(_) => return Ok(None),
            },
        };
        if size > self.limit {
            return Err(FrameError::TooLarge {
                msg_type,
                size,
                limit: self.limit,
            });
        }
        let total = self
            .kind
            .header_len()
            .saturating_add(usize::try_from(size).unwrap_or(usize::MAX));
        let Some(body) = buf.get(self.kind.header_len()..total) else {
            return Ok(None);
        };
        self.received = self.received.saturating_add(1);
        Ok(Some((
            Frame {
                serial: self.received,
                msg_type,
                body,
            },
            total,
        )))
    }
}

/// Frames our messages for one connection: header, body, size patched in one pass, and the
/// serial counted whatever the header kind.
#[derive(Debug, Clone)]
pub struct MessageWriter {
    kind: HeaderKind,
    sent: u64,
}

impl MessageWriter {
    /// A writer for one connection.
    pub fn new(kind: HeaderKind) -> Self {
        Self { kind, sent: 0 }
    }

    /// The header kind in use.
    pub fn kind(&self) -> HeaderKind {
        self.kind
    }

    /// Serial of the last message written (0 before the first).
    pub fn last_serial(&self) -> u64 {
        self.sent
    }

    /// Appends `msg` framed to `out` and returns its serial.
    pub fn write<'a, M: Message<'a>>(&mut self, msg: &M, out: &mut Vec<u8>) -> u64 {
        self.write_with(M::TYPE, out, |out| msg.encode(out))
    }

    /// Appends a message whose body `encode_body` writes (for bodies assembled by hand, such
    /// as a shared pre-encoded image); returns its serial.
    pub fn write_with(
        &mut self,
        msg_type: u16,
        out: &mut Vec<u8>,
        encode_body: impl FnOnce(&mut Vec<u8>),
    ) -> u64 {
        self.write_with_tail(msg_type, out, |out| {
            encode_body(out);
            None
        })
        .0
    }

    /// Appends a message whose body `encode_head` writes up to a shared tail it returns (see
    /// `MsgDisplayDrawCopy::encode_head`): the header's size counts the tail, which the
    /// caller sends right after the bytes appended here. Returns the serial and the tail.
    pub fn write_with_tail(
        &mut self,
        msg_type: u16,
        out: &mut Vec<u8>,
        encode_head: impl FnOnce(&mut Vec<u8>) -> Option<Arc<Vec<u8>>>,
    ) -> (u64, Option<Arc<Vec<u8>>>) {
        self.sent = self.sent.saturating_add(1);
        let size = match self.kind {
            HeaderKind::Mini => {
                out.put_u16(msg_type);
                U32Slot::reserve(out)
            }
            HeaderKind::Full => {
                out.put_u64(self.sent);
                out.put_u16(msg_type);
                let size = U32Slot::reserve(out);
                out.put_u32(0);
                size
            }
        };
        let body_start = out.len();
        let tail = encode_head(out);
        let body_len = out
            .len()
            .saturating_sub(body_start)
            .saturating_add(tail.as_ref().map_or(0, |t| t.len()));
        size.patch(out, super::codec::len_u32(body_len));
        (self.sent, tail)
    }
}

#[cfg(test)]
// Tests index freely: a panic there is a failed test, not a crash.
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    struct Ping3;
    impl Codec<'_> for Ping3 {
        fn encode(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&[1, 2, 3]);
        }
        fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
            r.take(3, "Ping3")?;
            Ok(Self)
        }
    }
    impl Message<'_> for Ping3 {
        const TYPE: u16 = 0x0130;
    }

    #[test]
    fn writes_mini_and_full_headers() {
        let mut out = vec![0xa5];
        let mut w = MessageWriter::new(HeaderKind::Mini);
        assert_eq!(w.write(&Ping3, &mut out), 1);
        assert_eq!(out, [0xa5, 0x30, 0x01, 3, 0, 0, 0, 1, 2, 3]);

        let mut out = vec![0xa5];
        let mut w = MessageWriter::new(HeaderKind::Full);
        w.write(&Ping3, &mut Vec::new());
        assert_eq!(w.write(&Ping3, &mut out), 2);
        assert_eq!(
            out,
            [0xa5, 2, 0, 0, 0, 0, 0, 0, 0, 0x30, 0x01, 3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]
        );
    }

    #[test]
    fn framer_splits_and_counts() {
        let mut buf = Vec::new();
        let mut w = MessageWriter::new(HeaderKind::Mini);
        w.write(&Ping3, &mut buf);
        w.write(&Ping3, &mut buf);
        let mut f = Framer::new(HeaderKind::Mini, 16);
        assert_eq!(f.next_frame(&buf[..8]), Ok(None));
        let (frame, used) = f.next_frame(&buf).unwrap().unwrap();
        assert_eq!(
            (frame.serial, frame.msg_type, frame.body, used),
            (1, 0x130, &[1, 2, 3][..], 9)
        );
        let (frame, used) = f.next_frame(&buf[9..]).unwrap().unwrap();
        assert_eq!((frame.serial, used), (2, 9));
        assert_eq!(f.next_frame(&[]), Ok(None));
    }

    #[test]
    fn rejects_truncated_header() {
        let mut f = Framer::new(HeaderKind::Full, 16);
        assert_eq!(f.next_frame(&[0; 17]), Ok(None));
        assert_eq!(f.received(), 0);
    }

    #[test]
    fn rejects_size_over_limit_before_body_arrives() {
        let mut f = Framer::new(HeaderKind::Mini, INPUTS_CLIENT_MESSAGE_LIMIT);
        let head = [101, 0, 0x01, 0x01, 0, 0];
        assert_eq!(
            f.next_frame(&head),
            Err(FrameError::TooLarge {
                msg_type: 101,
                size: 257,
                limit: 256
            })
        );
    }

    #[test]
    fn rejects_sub_message_list() {
        let mut f = Framer::new(HeaderKind::Full, 16);
        let mut head = Vec::new();
        DataHeader {
            serial: 1,
            msg_type: 2,
            size: 0,
            sub_list: 4,
        }
        .encode(&mut head);
        assert!(matches!(
            f.next_frame(&head),
            Err(FrameError::SubMessageList { .. })
        ));
    }

    #[test]
    fn header_kind_follows_peer_caps() {
        assert_eq!(
            HeaderKind::for_peer(&Caps::from_words(vec![0x0d])),
            HeaderKind::Mini
        );
        assert_eq!(HeaderKind::for_peer(&Caps::empty()), HeaderKind::Full);
    }
}
