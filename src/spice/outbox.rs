//! The bytes a channel connection has framed for its client but not yet written, and the
//! SET_ACK / ACK window that paces the display and cursor channels (brief §2.4).

use std::collections::VecDeque;

use super::wire::{Message, MessageWriter, MsgSetAck};

/// Framed messages waiting for the socket. The channel cores append; the connection writes
/// from the front and reports how much went out.
#[derive(Debug)]
pub struct Outbox {
    writer: MessageWriter,
    buf: Vec<u8>,
    /// Bytes of `buf` already written to the socket.
    start: usize,
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
            buf: Vec::new(),
            start: 0,
            ends: VecDeque::new(),
            framed: 0,
            written: 0,
        }
    }

    /// Frames `msg` and returns its serial.
    pub fn send<'a, M: Message<'a>>(&mut self, msg: &M) -> u64 {
        let before = self.buf.len();
        let serial = self.writer.write(msg, &mut self.buf);
        self.framed = self
            .framed
            .saturating_add((self.buf.len().saturating_sub(before)) as u64);
        self.ends.push_back(self.framed);
        serial
    }

    /// Messages framed so far (the serial of the last one).
    pub fn sent(&self) -> u64 {
        self.writer.last_serial()
    }

    /// Bytes framed and not yet written.
    pub fn pending(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// The bytes to write next.
    pub fn unsent(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// The unwritten rest of the first message not completely written: what a TLS
    /// connection hands to one record, so that every record ends where a message ends.
    /// spice-gtk decides whether to read on by polling the socket, so a message left behind
    /// in its TLS library's buffer after the one it asked for would wait there until more
    /// data arrived.
    pub fn unsent_message(&self) -> &[u8] {
        let unsent = self.unsent();
        match self.ends.front() {
            Some(end) => {
                let len = usize::try_from(end.saturating_sub(self.written)).unwrap_or(usize::MAX);
                unsent.get(..len).unwrap_or(unsent)
            }
            None => unsent,
        }
    }

    /// Records that `n` bytes of [`Outbox::unsent`] were written.
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.pending());
        self.written = self.written.saturating_add(n as u64);
        while self.ends.front().is_some_and(|end| *end <= self.written) {
            self.ends.pop_front();
        }
        self.start = self.start.saturating_add(n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > self.buf.len() / 2 {
            // Keep the buffer from growing without bound while a slow client drains it.
            self.buf.drain(..self.start);
            self.start = 0;
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
        assert_eq!(out.unsent().len(), 4);
        out.advance(100);
        assert_eq!(out.pending(), 0);
    }

    #[test]
    fn unsent_message_stops_at_each_message_end() {
        let mut out = Outbox::new(MessageWriter::new(HeaderKind::Mini));
        assert!(out.unsent_message().is_empty());
        out.send(&crate::spice::wire::MsgDisplayMark::default());
        out.send(&crate::spice::wire::MsgSetAck {
            generation: 1,
            window: 2,
        });
        assert_eq!(out.pending(), 6 + 14);
        assert_eq!(out.unsent_message().len(), 6);
        out.advance(4);
        assert_eq!(out.unsent_message().len(), 2);
        out.advance(2);
        assert_eq!(out.unsent_message().len(), 14);
        out.send(&crate::spice::wire::MsgDisplayMark::default());
        out.advance(14);
        assert_eq!(out.unsent_message().len(), 6);
        out.advance(6);
        assert!(out.unsent_message().is_empty());
        assert!(out.ends.is_empty());
    }
}
