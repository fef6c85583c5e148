//! A raw SPICE client over a TCP socket, for the auth and hostile-client tests: it speaks the
//! link by hand and can say anything, well-formed or not.

use std::time::Duration;

use rsa::pkcs8::DecodePublicKey;
use sha1::Sha1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vhost_user_spice::spice::wire::{
    Caps, ChannelType, Codec, Frame, Framer, HeaderKind, LinkHeader, LinkMess, Message,
    MessageWriter, MsgcDisplayInit, MsgcMainAttachChannels,
};

/// Waiting for a server that has nothing more to say.
pub const QUIET: Duration = Duration::from_millis(300);
/// SPICE_MSG_MAIN_INIT.
const MAIN_INIT: u16 = 103;

pub struct Raw {
    pub stream: TcpStream,
    pub writer: MessageWriter,
    framer: Framer,
    buf: Vec<u8>,
}

/// What a link attempt got back.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The link reply carried an error.
    ReplyError(u32),
    /// The 4-byte link result.
    Result(u32),
}

pub fn link_bytes(channel_type: ChannelType, connection_id: u32, channel_caps: u32) -> Vec<u8> {
    let mess = LinkMess {
        connection_id,
        channel_type,
        channel_id: 0,
        // AUTH_SELECTION | AUTH_SPICE | MINI_HEADER, as spice-html5 sends (no SASL).
        common_caps: Caps::from_words(vec![0x0b]),
        channel_caps: Caps::from_words(vec![channel_caps]),
    }
    .to_bytes();
    let mut out = LinkHeader::new(mess.len() as u32).to_bytes();
    out.extend_from_slice(&mess);
    out
}

impl Raw {
    pub async fn connect(port: u16) -> Self {
        Self {
            stream: TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
            writer: MessageWriter::new(HeaderKind::Mini),
            framer: Framer::new(HeaderKind::Mini, 64 << 20),
            buf: Vec::new(),
        }
    }

    /// The main channel of a new session, linked and past MAIN_INIT; with the session id.
    pub async fn main_session(port: u16) -> (Self, u32) {
        let mut main = Self::connect(port).await;
        assert_eq!(
            main.link(ChannelType::MAIN, 0, 0, "").await,
            LinkOutcome::Result(0)
        );
        let init = main.recv_until(MAIN_INIT).await;
        let session = u32::from_le_bytes(init[..4].try_into().unwrap());
        (main, session)
    }

    /// A new session's main channel (channels attached) and its display channel, linked;
    /// nothing sent on the display channel yet.
    pub async fn display_session(port: u16) -> (Self, Self) {
        let (mut main, session) = Self::main_session(port).await;
        main.send(&MsgcMainAttachChannels::default()).await;
        let mut display = Self::connect(port).await;
        assert_eq!(
            display.link(ChannelType::DISPLAY, session, 0, "").await,
            LinkOutcome::Result(0)
        );
        (main, display)
    }

    /// DISPLAY_INIT without image caches.
    pub async fn send_display_init(&mut self) {
        self.send(&MsgcDisplayInit {
            pixmap_cache_id: 1,
            pixmap_cache_size: 0,
            glz_dictionary_id: 0,
            glz_dictionary_window_size: 0,
        })
        .await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads exactly `n` bytes.
    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        tokio::time::timeout(super::WAIT, self.stream.read_exact(&mut v))
            .await
            .expect("server answered in time")
            .expect("server sent enough bytes");
        v
    }

    /// Everything the server sends until it closes (or `QUIET` passes without a byte), and
    /// whether it closed.
    pub async fn read_rest(&mut self) -> (Vec<u8>, bool) {
        let mut all = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match tokio::time::timeout(QUIET, self.stream.read(&mut chunk)).await {
                Err(_) => return (all, false),
                Ok(Ok(0)) | Ok(Err(_)) => return (all, true),
                Ok(Ok(n)) => all.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Waits up to [`super::WAIT`] for the server to close the connection; returns the bytes
    /// it sent before.
    pub async fn expect_closed(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match tokio::time::timeout(super::WAIT, self.stream.read(&mut chunk)).await {
                Err(_) => panic!("server did not close the connection"),
                Ok(Ok(0)) | Ok(Err(_)) => return all,
                Ok(Ok(n)) => all.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The whole link; `password` is encrypted with the server's key as spice-gtk does.
    pub async fn link(
        &mut self,
        channel_type: ChannelType,
        connection_id: u32,
        channel_caps: u32,
        password: &str,
    ) -> LinkOutcome {
        self.send_raw(&link_bytes(channel_type, connection_id, channel_caps))
            .await;
        let head = self.read_exact(16).await;
        assert_eq!(&head[..4], b"REDQ");
        let size = u32::from_le_bytes(head[12..16].try_into().unwrap()) as usize;
        let reply = self.read_exact(size).await;
        let error = u32::from_le_bytes(reply[..4].try_into().unwrap());
        if error != 0 {
            return LinkOutcome::ReplyError(error);
        }
        let key = rsa::PublicKey::from_public_key_der(&reply[4..166]).unwrap();
        let mut plain = password.as_bytes().to_vec();
        plain.push(0);
        let ticket = key.oaep_encrypt::<Sha1>(&plain).unwrap();
        let mut out = 1u32.to_le_bytes().to_vec();
        out.extend_from_slice(&ticket);
        self.send_raw(&out).await;
        let result = self.read_exact(4).await;
        LinkOutcome::Result(u32::from_le_bytes(result.try_into().unwrap()))
    }

    pub async fn send<'a, M: Message<'a>>(&mut self, msg: &M) {
        let mut out = Vec::new();
        self.writer.write(msg, &mut out);
        self.send_raw(&out).await;
    }

    /// The next message from the server: (type, body).
    pub async fn recv(&mut self) -> (u16, Vec<u8>) {
        loop {
            if let Some((Frame { msg_type, body, .. }, used)) =
                self.framer.next_frame(&self.buf).unwrap()
            {
                let r = (msg_type, body.to_vec());
                self.buf.drain(..used);
                return r;
            }
            let mut chunk = vec![0u8; 65536];
            let n = tokio::time::timeout(super::WAIT, self.stream.read(&mut chunk))
                .await
                .expect("a message in time")
                .unwrap();
            assert!(n > 0, "server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Receives until a message of type `t`, returning its body.
    pub async fn recv_until(&mut self, t: u16) -> Vec<u8> {
        loop {
            let (ty, body) = self.recv().await;
            if ty == t {
                return body;
            }
        }
    }
}
