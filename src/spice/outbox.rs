//! The bytes a channel connection has framed for its client but not yet written, and the
//! SET_ACK / ACK window that paces the display and cursor channels (brief §2.4).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;

use super::wire::{Message, MessageWriter, MsgSetAck};

/// Slices handed to one vectored write: a few dozen messages with their shared payloads
/// (Linux takes up to `IOV_MAX` = 1024; past a few the syscall's cost no longer drops).
pub const MAX_WRITE_SLICES: usize = 64;

/// A framed buffer whose bytes are all written is kept for the next messages if it is at
/// most this big, so that steady framing does not allocate; a larger one is freed.
const KEEP_BUFFER: usize = 256 * 1024;

/// A sealed piece of the byte stream waiting for the socket.
#[derive(Debug)]
enum Chunk {
    /// Bytes framed for this client (headers, small messages, per-client image parts).
    Own(Vec<u8>),
    /// A payload shared with other clients: an image encoded once.
    Shared(Arc<Vec<u8>>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Own(v) => v,
            Self::Shared(b) => b,
        }
    }
}

/// Framed messages waiting for the socket. The channel cores append; the connection writes
/// from the front and reports how much went out. Shared image payloads are queued by
/// reference and written with vectored writes, never copied into this client's buffer.
///
/// The stream is `chunks` then `tail`; `head` bytes of its first piece are written.
#[derive(Debug)]
pub struct Outbox {
    writer: MessageWriter,
    chunks: VecDeque<Chunk>,
    /// Where messages are framed; sealed into `chunks` before a shared payload.
    tail: Vec<u8>,
    /// Bytes of the first piece (front chunk, else `tail`) already written.
    head: usize,
    /// Bytes framed and not yet written.
    pending: usize,
    /// An emptied framing buffer, kept for reuse.
    spare: Vec<u8>,
    /// Where each unwritten message ends, counted in bytes framed since the outbox was made.
    ends: VecDeque<u64>,
    /// Bytes framed since the outbox was made.
    framed: u64,
    /// Bytes written since the outbox was made.
    written: u64,
}

impl Outbox {
    /// An empty outbox framing with `writer`'s header kind.
    pub fn new(writer: MessageWriter) -> Self {
        Self {
            writer,
            chunks: VecDeque::new(),
            tail: Vec::new(),
            head: 0,
            pending: 0,
            spare: Vec::new(),
            ends: VecDeque::new(),
            framed: 0,
            written: 0,
        }
    }

    fn framed_bytes(&mut self, n: usize) {
        self.pending = self.pending.saturating_add(n);
        self.framed = self.framed.saturating_add(n as u64);
        self.ends.push_back(self.framed);
    }

    /// Frames `msg` and returns its serial.
    pub fn send<'a, M: Message<'a>>(&mut self, msg: &M) -> u64 {
        let before = self.tail.len();
        let serial = self.writer.write(msg, &mut self.tail);
        self.framed_bytes(self.tail.len().saturating_sub(before));
        serial
    }

    /// Frames `msg`, whose encoding `head` writes up to a shared payload it returns (such as
    /// `MsgDisplayDrawCopy::encode_head`); the payload is queued by reference. Returns the
    /// serial.
    pub fn send_split<'a, M: Message<'a>>(
        &mut self,
        msg: &M,
        head: impl for<'m> FnOnce(&'m M, &mut Vec<u8>) -> Option<&'m Arc<Vec<u8>>>,
    ) -> u64 {
        let before = self.tail.len();
        let (serial, payload) = self
            .writer
            .write_with_tail(M::TYPE, &mut self.tail, |out| head(msg, out).cloned());
        let mut n = self.tail.len().saturating_sub(before);
        if let Some(payload) = payload.filter(|p| !p.is_empty()) {
            n = n.saturating_add(payload.len());
            let framed = std::mem::replace(&mut self.tail, std::mem::take(&mut self.spare));
            self.chunks.push_back(Chunk::Own(framed));
            self.chunks.push_back(Chunk::Shared(payload));
        }
        self.framed_bytes(n);
        serial
    }

    /// Messages framed so far (the serial of the last one).
    pub fn sent(&self) -> u64 {
        self.writer.last_serial()
    }

    /// Bytes framed and not yet written.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// The pieces of the stream, the first one less what is written.
    fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks
            .iter()
            .map(Chunk::bytes)
            .chain(std::iter::once(self.tail.as_slice()))
            .enumerate()
            .map(|(i, b)| {
                if i == 0 {
                    b.get(self.head..).unwrap_or_default()
                } else {
                    b
                }
            })
            .filter(|b| !b.is_empty())
    }

    /// Fills `dst` with the bytes to write next, in order, and returns how many slices it
    /// used. With `one_message`, only the unwritten rest of the first message not completely
    /// written: what a TLS connection hands to one record, so that every record ends where a
    /// message ends. spice-gtk decides whether to read on by polling the socket, so a message
    /// left behind in its TLS library's buffer after the one it asked for would wait there
    /// until more data arrived.
    pub fn unsent_slices<'a>(&'a self, one_message: bool, dst: &mut [IoSlice<'a>]) -> usize {
        let mut limit = if one_message {
            self.ends.front().map_or(usize::MAX, |end| {
                usize::try_from(end.saturating_sub(self.written)).unwrap_or(usize::MAX)
            })
        } else {
            usize::MAX
        };
        let mut used = 0;
        for (bytes, slot) in self.pieces().zip(dst.iter_mut()) {
            if limit == 0 {
                break;
            }
            let bytes = bytes.get(..limit.min(bytes.len())).unwrap_or_default();
            limit -= bytes.len();
            *slot = IoSlice::new(bytes);
            used += 1;
        }
        used
    }

    /// All unwritten bytes in one buffer (tests).
    #[cfg(test)]
    pub fn unsent_bytes(&self) -> Vec<u8> {
        self.pieces().flatten().copied().collect()
    }

    /// Records that `n` bytes of what [`Outbox::unsent_slices`] gave were written.
    pub fn advance(&mut self, n: usize) {
        let mut n = n.min(self.pending);
        self.pending -= n;
        self.written = self.written.saturating_add(n as u64);
        while self.ends.front().is_some_and(|end| *end <= self.written) {
            self.ends.pop_front();
        }
        while let Some(front) = self.chunks.front() {
            let left = front.bytes().len().saturating_sub(self.head);
            if n < left {
                self.head += n;
                return;
            }
            n -= left;
            self.head = 0;
            if let Some(Chunk::Own(mut v)) = self.chunks.pop_front() {
                if v.capacity() <= KEEP_BUFFER && self.spare.capacity() < v.capacity() {
                    v.clear();
                    self.spare = v;
                }
            }
        }
        self.head = self.head.saturating_add(n).min(self.tail.len());
        if self.head == self.tail.len() {
            self.tail.clear();
            self.head = 0;
        } else if self.head > self.tail.len() / 2 {
            // Keep the buffer from growing without bound while a slow client drains it.
            self.tail.drain(..self.head);
            self.head = 0;
        }
    }
}

/// The window spice-server gives a client with a normal link (`NARROW_CLIENT_ACK_WINDOW`):
/// the client ACKs every this many messages.
pub const ACK_WINDOW: u32 = 20;

/// The server stops sending on a channel while more than this many messages are unacked
/// (spice-server: `messages_window > client_window * 2`, red-channel-client.cpp).
const MAX_UNACKED: u64 = 2 * ACK_WINDOW as u64;

/// The ACK flow control of one display or cursor connection.
///
/// Lifecycle: [`AckWindow::start`] sends SET_ACK (generation 1) first on the channel; every
/// message counts as sent once framed; ACK_SYNC records the client's generation; each ACK of
/// the current generation frees a window's worth.
#[derive(Debug)]
pub struct AckWindow {
    generation: u32,
    client_generation: Option<u32>,
    /// Messages the client has acknowledged, counted like [`Outbox::sent`].
    acked: u64,
}

impl AckWindow {
    /// Sends SET_ACK on `out`; call before anything else is framed on the channel.
    pub fn start(out: &mut Outbox) -> Self {
        let generation = 1;
        out.send(&MsgSetAck {
            generation,
            window: ACK_WINDOW,
        });
        Self {
            generation,
            client_generation: None,
            acked: 0,
        }
    }

    /// ACK_SYNC: the client took SET_ACK of `generation`.
    pub fn handle_ack_sync(&mut self, generation: u32) {
        self.client_generation = Some(generation);
    }

    /// ACK: the client received another window of messages. An ACK of an old generation, or
    /// one the client could not owe yet, frees nothing.
    pub fn handle_ack(&mut self, sent: u64) {
        if self.client_generation == Some(self.generation) {
            self.acked = self.acked.saturating_add(ACK_WINDOW.into()).min(sent);
        }
    }

    /// Whether another message may be framed now.
    pub fn is_open(&self, sent: u64) -> bool {
        sent.saturating_sub(self.acked) <= MAX_UNACKED
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spice::wire::HeaderKind;

    #[test]
    fn window_closes_past_twice_the_window_and_reopens_on_ack() {
        let mut out = Outbox::new(MessageWriter::new(HeaderKind::Mini));
        let mut ack = AckWindow::start(&mut out);
        while ack.is_open(out.sent()) {
            out.send(&crate::spice::wire::MsgDisplayMark::default());
        }
        assert_eq!(out.sent(), MAX_UNACKED + 1);
        ack.handle_ack(out.sent());
        assert!(
            !ack.is_open(out.sent()),
            "no ACK_SYNC yet: the ACK is ignored"
        );
        ack.handle_ack_sync(1);
        ack.handle_ack(out.sent());
        assert!(ack.is_open(out.sent()));
    }

    #[test]
    fn outbox_advances_and_compacts() {
        let mut out = Outbox::new(MessageWriter::new(HeaderKind::Mini));
        out.send(&crate::spice::wire::MsgDisplayMark::default());
        out.send(&crate::spice::wire::MsgDisplayMark::default());
        assert_eq!(out.pending(), 12);
        out.advance(8);
        assert_eq!(out.unsent_bytes().len(), 4);
        out.advance(100);
        assert_eq!(out.pending(), 0);
    }

    fn first_message_len(out: &Outbox) -> usize {
        let mut iov = [IoSlice::new(&[]); 8];
        let n = out.unsent_slices(true, &mut iov);
        iov[..n].iter().map(|s| s.len()).sum()
    }

    #[test]
    fn unsent_message_stops_at_each_message_end() {
        let mut out = Outbox::new(MessageWriter::new(HeaderKind::Mini));
        assert_eq!(first_message_len(&out), 0);
        out.send(&crate::spice::wire::MsgDisplayMark::default());
        out.send(&crate::spice::wire::MsgSetAck {
            generation: 1,
            window: 2,
        });
        assert_eq!(out.pending(), 6 + 14);
        assert_eq!(first_message_len(&out), 6);
        out.advance(4);
        assert_eq!(first_message_len(&out), 2);
        out.advance(2);
        assert_eq!(first_message_len(&out), 14);
        out.send(&crate::spice::wire::MsgDisplayMark::default());
        out.advance(14);
        assert_eq!(first_message_len(&out), 6);
        out.advance(6);
        assert_eq!(first_message_len(&out), 0);
        assert!(out.ends.is_empty());
    }

    /// A message with a shared payload, as `MsgDisplayDrawCopy::encode_head` frames one.
    struct Split(Arc<Vec<u8>>);
    impl crate::spice::wire::Codec<'_> for Split {
        fn encode(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(b"hd");
            out.extend_from_slice(&self.0);
        }
        fn read(
            _: &mut crate::spice::wire::Reader<'_>,
        ) -> Result<Self, crate::spice::wire::WireError> {
            unreachable!("never read")
        }
    }
    impl Message<'_> for Split {
        const TYPE: u16 = 0x0130;
    }

    #[test]
    fn shared_payloads_are_queued_by_reference_and_written_in_order() {
        let mut out = Outbox::new(MessageWriter::new(HeaderKind::Mini));
        let payload = Arc::new(b"PAYLOAD".to_vec());
        let mut expect = Vec::new();
        let mut reference = MessageWriter::new(HeaderKind::Mini);
        for _ in 0..3 {
            out.send(&crate::spice::wire::MsgDisplayMark::default());
            reference.write(&crate::spice::wire::MsgDisplayMark::default(), &mut expect);
            out.send_split(&Split(Arc::clone(&payload)), |m, o| {
                o.extend_from_slice(b"hd");
                Some(&m.0)
            });
            reference.write(&Split(Arc::clone(&payload)), &mut expect);
        }
        assert_eq!(out.unsent_bytes(), expect, "same bytes as framing it whole");
        assert_eq!(Arc::strong_count(&payload), 4, "queued, not copied");
        assert_eq!(out.pending(), expect.len());
        // TLS: one message at a time, across the own and shared pieces.
        assert_eq!(first_message_len(&out), 6);
        out.advance(6);
        assert_eq!(first_message_len(&out), 6 + 2 + 7);
        // Written in odd pieces, the rest is always the reference's tail.
        let mut at = 6;
        for step in [1, 6, 3, 9, 100] {
            out.advance(step);
            at = (at + step).min(expect.len());
            assert_eq!(out.unsent_bytes(), expect[at..]);
            assert_eq!(out.pending(), expect.len() - at);
        }
        assert_eq!(Arc::strong_count(&payload), 1);
        let mut iov = [IoSlice::new(&[]); 8];
        assert_eq!(out.unsent_slices(false, &mut iov), 0);
    }
}
