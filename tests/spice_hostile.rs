//! Hostile clients over raw sockets: each misbehaviour closes that connection with one
//! logged reason, and a well-behaved client connected at the same time keeps working.

mod spice_support;

use std::io::Write;
use std::sync::{Mutex, Once};

use tokio::io::AsyncWriteExt;

use spice_support::raw::{self, LinkOutcome, Raw};
use spice_support::*;
use vhost_user_spice::display::Rect;
use vhost_user_spice::spice::ticket::Ticketing;
use vhost_user_spice::spice::wire::{
    ChannelType, Codec, LinkHeader, MsgcAck, MsgcAckSync, MsgcPong, SpiceLinkErr,
};

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        tracing_subscriber::fmt()
            .with_env_filter("vhost_user_spice=info")
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .init();
    });
}

/// Waits until a disconnect line containing `needle` was logged (a warning for
/// misbehaviour, info for a peer that just left).
async fn logged(needle: &str) {
    let ok = wait_until(|| {
        String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|e| e.into_inner()))
            .lines()
            .any(|l| l.contains("SPICE client disconnected") && l.contains(needle))
    })
    .await;
    assert!(
        ok,
        "no disconnect line with {needle:?} in:\n{}",
        String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|e| e.into_inner()))
    );
}

const DRAW_COPY: u16 = 304;
const MARK: u16 = 102;
const SET_ACK: u16 = 3;

/// A correct client: main and display channels, up to the first MARK.
struct Good {
    _main: Raw,
    display: Raw,
}

impl Good {
    async fn open(port: u16) -> Self {
        let (main, mut display) = Raw::display_session(port).await;
        let set_ack = display.recv_until(SET_ACK).await;
        display
            .send(&MsgcAckSync {
                generation: u32::from_le_bytes(set_ack[..4].try_into().unwrap()),
            })
            .await;
        display.send_display_init().await;
        display.recv_until(MARK).await;
        Self {
            _main: main,
            display,
        }
    }

    /// The guest draws `rect`; this client must receive a DRAW_COPY of exactly it.
    async fn sees_draw(&mut self, guest: &Guest, rect: Rect) {
        guest.fill(rect, 0x0012_3456);
        guest.sync();
        loop {
            let body = self.display.recv_until(DRAW_COPY).await;
            let i = |k: usize| i32::from_le_bytes(body[k..k + 4].try_into().unwrap());
            // DisplayBase: surface_id, then top, left, bottom, right.
            if Rect::ltrb(i(8), i(4), i(16), i(12)) == rect {
                self.display.send(&MsgcAck::default()).await;
                return;
            }
        }
    }
}

async fn rig() -> (Rig, Good) {
    capture_logs();
    let rig = start(Ticketing::Disabled).await;
    rig.guest.create_primary(128, 96);
    rig.guest.fill(Rect::ltrb(0, 0, 128, 96), 0x0000_8080);
    rig.guest.sync();
    let good = Good::open(rig.port).await;
    (rig, good)
}

/// An inputs channel of a fresh session, linked.
async fn linked_inputs(port: u16) -> (Raw, Raw) {
    let (main, session) = Raw::main_session(port).await;
    let mut inputs = Raw::connect(port).await;
    assert_eq!(
        inputs.link(ChannelType::INPUTS, session, 0, "").await,
        LinkOutcome::Result(0)
    );
    (main, inputs)
}

fn reply_error(bytes: &[u8]) -> u32 {
    assert!(bytes.len() >= 20, "a link reply, got {} bytes", bytes.len());
    u32::from_le_bytes(bytes[16..20].try_into().unwrap())
}

/// Sends `bytes` on a fresh connection; returns what the server sent before it closed.
async fn refused(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut bad = Raw::connect(port).await;
    bad.send_raw(bytes).await;
    bad.expect_closed().await
}

/// The end of each test: the misbehaving connection's disconnect line containing `needle` was
/// logged, the good client still sees the guest draw `rect`, then the server shuts down.
async fn logged_and_good_unharmed(rig: Rig, mut good: Good, needle: &str, rect: Rect) {
    logged(needle).await;
    good.sees_draw(&rig.guest, rect).await;
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_magic_is_refused() {
    let (rig, good) = rig().await;
    let reply = refused(rig.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(reply_error(&reply), SpiceLinkErr::INVALID_MAGIC.0);
    logged_and_good_unharmed(rig, good, "not REDQ", Rect::ltrb(1, 1, 9, 9)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_link_message_closes() {
    let (rig, good) = rig().await;
    let mut bad = Raw::connect(rig.port).await;
    let link = raw::link_bytes(ChannelType::MAIN, 0, 0);
    bad.send_raw(&link[..20]).await;
    bad.stream.shutdown().await.unwrap();
    assert!(bad.expect_closed().await.is_empty());
    logged_and_good_unharmed(rig, good, "during the link", Rect::ltrb(2, 2, 10, 10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_sizes_close() {
    let (rig, good) = rig().await;
    // A link message of 4 GiB.
    let reply = refused(rig.port, &LinkHeader::new(0xffff_fff0).to_bytes()).await;
    assert_eq!(reply_error(&reply), SpiceLinkErr::INVALID_DATA.0);
    logged("link message").await;
    // A data message of 2 GiB on a linked inputs channel.
    let (_main, mut inputs) = linked_inputs(rig.port).await;
    inputs.send_raw(&[111, 0, 0xff, 0xff, 0xff, 0x7f]).await;
    inputs.expect_closed().await;
    logged_and_good_unharmed(rig, good, "over the limit", Rect::ltrb(3, 3, 11, 11)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_message_type_closes() {
    let (rig, good) = rig().await;
    let (_main, mut inputs) = linked_inputs(rig.port).await;
    inputs.send_raw(&[0xe7, 0x03, 0, 0, 0, 0]).await;
    inputs.expect_closed().await;
    logged_and_good_unharmed(rig, good, "message type 999", Rect::ltrb(4, 4, 12, 12)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pointer_outside_the_message_closes() {
    let (rig, good) = rig().await;
    let mut link = raw::link_bytes(ChannelType::MAIN, 0, 0);
    // SpiceLinkMess.caps_offset (at 16 + 14) pointing far past the message.
    link[30..34].copy_from_slice(&4000u32.to_le_bytes());
    assert_eq!(
        reply_error(&refused(rig.port, &link).await),
        SpiceLinkErr::INVALID_DATA.0
    );
    logged_and_good_unharmed(
        rig,
        good,
        "malformed link message",
        Rect::ltrb(5, 5, 13, 13),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_closes() {
    let (rig, good) = rig().await;
    let (mut main, _) = linked_inputs(rig.port).await;
    let mut flood = Vec::new();
    for id in 0..20_000u32 {
        main.writer
            .write(&MsgcPong { id, timestamp: 0 }, &mut flood);
    }
    // The server may close while we are still writing.
    let _ = main.stream.write_all(&flood).await;
    main.expect_closed().await;
    logged_and_good_unharmed(rig, good, "messages a second", Rect::ltrb(6, 6, 14, 14)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_dropped_mid_message_is_logged() {
    let (rig, good) = rig().await;
    let (_main, mut inputs) = linked_inputs(rig.port).await;
    // Half of a MOUSE_POSITION (11-byte body).
    inputs.send_raw(&[112, 0, 11, 0, 0, 0, 1, 2, 3]).await;
    // FIN, not RST: dropping the socket with unread data would reset it, which the server
    // reports as a socket error instead.
    inputs.stream.shutdown().await.unwrap();
    logged_and_good_unharmed(rig, good, "middle of a message", Rect::ltrb(7, 7, 15, 15)).await;
}
