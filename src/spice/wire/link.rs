//! The link exchange's wire structs: header, `SpiceLinkMess`, `SpiceLinkReply`, capabilities,
//! the auth mechanism word and the encrypted ticket (brief §1.2–§1.6).

use super::codec::{len_u32, Codec, PutLe, Reader, WireError};
use super::enums::{wire_enum, ChannelType, SpiceLinkErr};

/// spice-protocol protocol.h: `SPICE_MAGIC`, the bytes "REDQ".
pub const SPICE_MAGIC: [u8; 4] = *b"REDQ";
/// spice-protocol protocol.h: `SPICE_VERSION_MAJOR`; a different major is refused.
pub const SPICE_VERSION_MAJOR: u32 = 2;
/// spice-protocol protocol.h: `SPICE_VERSION_MINOR`.
pub const SPICE_VERSION_MINOR: u32 = 2;
/// spice-protocol protocol.h: `SPICE_TICKET_PUBKEY_BYTES` = 1024 / 8 + 34, the DER
/// SubjectPublicKeyInfo of a 1024-bit RSA key with e = 65537.
pub const SPICE_TICKET_PUBKEY_BYTES: usize = 162;
/// spice-protocol protocol.h: `SPICE_TICKET_KEY_PAIR_LENGTH` / 8, one RSA-1024 block.
pub const SPICE_TICKET_ENCRYPTED_BYTES: usize = 128;
/// spice-protocol protocol.h: `SPICE_MAX_PASSWORD_LENGTH`.
pub const SPICE_MAX_PASSWORD_LENGTH: usize = 60;

/// Capability words a peer may declare per list. spice-server refuses more than 1024
/// (`reds_handle_read_link_done`); the 4096-byte link limit bounds them further.
pub const MAX_CAP_WORDS: usize = 1024;

/// The smallest and largest link message body we accept after the header: at least a whole
/// `SpiceLinkMess` (18), at most 4096, the bounds spice-server enforces
/// (`reds_handle_read_header_done`). Real clients send 26.
pub const LINK_MESS_SIZE_RANGE: std::ops::RangeInclusive<u32> = 18..=4096;

/// A set of capability bits: bit *n* is bit `n % 32` of word `n / 32`. A missing word means
/// all its bits are 0 (brief §1.4).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Caps(Vec<u32>);

impl Caps {
    /// No capabilities.
    pub const fn empty() -> Self {
        Self(Vec::new())
    }

    /// From the words as sent.
    pub fn from_words(words: Vec<u32>) -> Self {
        Self(words)
    }

    /// With `bit` set.
    #[must_use]
    pub fn with(mut self, bit: u32) -> Self {
        self.set(bit);
        self
    }

    /// Sets `bit` (our own constants only: the vector grows to hold it).
    pub fn set(&mut self, bit: u32) {
        let word = usize::try_from(bit / 32).unwrap_or(usize::MAX);
        if word >= self.0.len() {
            self.0.resize(word.saturating_add(1), 0);
        }
        if let Some(w) = self.0.get_mut(word) {
            *w |= 1 << (bit % 32);
        }
    }

    /// Whether `bit` is set.
    pub fn has(&self, bit: u32) -> bool {
        let word = usize::try_from(bit / 32).unwrap_or(usize::MAX);
        self.0.get(word).is_some_and(|w| w & (1 << (bit % 32)) != 0)
    }

    /// The words as they go on the wire.
    pub fn words(&self) -> &[u32] {
        &self.0
    }

    fn word_count(&self) -> u32 {
        len_u32(self.0.len())
    }

    fn encode_words(&self, out: &mut Vec<u8>) {
        for w in &self.0 {
            out.put_u32(*w);
        }
    }

    /// Reads `count` words, bounded by [`MAX_CAP_WORDS`] and by the bytes present.
    fn read_words(r: &mut Reader<'_>, count: u32, what: &'static str) -> Result<Self, WireError> {
        let n = r.count(u64::from(count), 4, MAX_CAP_WORDS, what)?;
        let mut words = Vec::with_capacity(n);
        for _ in 0..n {
            words.push(r.u32(what)?);
        }
        Ok(Self(words))
    }
}

impl std::fmt::Debug for Caps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Caps[")?;
        for (i, w) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{w:#x}")?;
        }
        f.write_str("]")
    }
}

/// spice-protocol protocol.h: `SPICE_COMMON_CAP_*`, bits of the common capability list.
pub struct CommonCap;
impl CommonCap {
    /// The client sends a u32 auth mechanism before the ticket.
    #[doc(alias = "SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION")]
    pub const AUTH_SELECTION: u32 = 0;
    /// RSA ticket authentication.
    #[doc(alias = "SPICE_COMMON_CAP_AUTH_SPICE")]
    pub const AUTH_SPICE: u32 = 1;
    /// Cyrus SASL authentication (we never offer it: brief §1.4).
    #[doc(alias = "SPICE_COMMON_CAP_AUTH_SASL")]
    pub const AUTH_SASL: u32 = 2;
    /// The 6-byte mini data header.
    #[doc(alias = "SPICE_COMMON_CAP_MINI_HEADER")]
    pub const MINI_HEADER: u32 = 3;
}

/// spice-protocol enums.h: `SPICE_MAIN_CAP_*`.
pub struct MainCap;
impl MainCap {
    /// MIGRATE_BEGIN/END (we do not offer it).
    pub const SEMI_SEAMLESS_MIGRATE: u32 = 0;
    /// MAIN_NAME and MAIN_UUID.
    pub const NAME_AND_UUID: u32 = 1;
    /// AGENT_CONNECTED_TOKENS instead of AGENT_CONNECTED.
    pub const AGENT_CONNECTED_TOKENS: u32 = 2;
    /// Seamless migration (we do not offer it).
    pub const SEAMLESS_MIGRATE: u32 = 3;
}

/// spice-protocol enums.h: `SPICE_DISPLAY_CAP_*`.
pub struct DisplayCap;
impl DisplayCap {
    /// Client accepts STREAM_DATA_SIZED.
    pub const SIZED_STREAM: u32 = 0;
    /// MONITORS_CONFIG; a server that sets it must send one with monitor 0 (brief §7.8).
    pub const MONITORS_CONFIG: u32 = 1;
    /// DRAW_COMPOSITE.
    pub const COMPOSITE: u32 = 2;
    /// Surfaces of format 8_A.
    pub const A8_SURFACE: u32 = 3;
    /// STREAM_REPORT flow.
    pub const STREAM_REPORT: u32 = 4;
    /// Client decodes LZ4 images.
    pub const LZ4_COMPRESSION: u32 = 5;
    /// Server accepts PREFERRED_COMPRESSION.
    pub const PREF_COMPRESSION: u32 = 6;
    /// GL_SCANOUT_UNIX / GL_DRAW (unix socket only).
    pub const GL_SCANOUT: u32 = 7;
    /// Honours `codec_type` and the CODEC_* bits.
    pub const MULTI_CODEC: u32 = 8;
    /// MJPEG stream decoder.
    pub const CODEC_MJPEG: u32 = 9;
    /// VP8 stream decoder.
    pub const CODEC_VP8: u32 = 10;
    /// H.264 stream decoder.
    pub const CODEC_H264: u32 = 11;
    /// Server accepts PREFERRED_VIDEO_CODEC_TYPE.
    pub const PREF_VIDEO_CODEC_TYPE: u32 = 12;
    /// VP9 stream decoder.
    pub const CODEC_VP9: u32 = 13;
    /// H.265 stream decoder.
    pub const CODEC_H265: u32 = 14;
}

/// spice-protocol enums.h: `SPICE_INPUTS_CAP_*`. The cursor channel has none.
pub struct InputsCap;
impl InputsCap {
    /// Server accepts MSGC KEY_SCANCODE.
    pub const KEY_SCANCODE: u32 = 0;
}

/// spice-protocol protocol.h: `SpiceLinkHeader`, 16 bytes, both directions.
#[doc(alias = "SpiceLinkHeader")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkHeader {
    /// "REDQ".
    pub magic: [u8; 4],
    /// 2.
    pub major_version: u32,
    /// 2.
    pub minor_version: u32,
    /// Bytes following this header.
    pub size: u32,
}

impl LinkHeader {
    /// Encoded size.
    pub const SIZE: usize = 16;

    /// Our header for a body of `size` bytes.
    pub fn new(size: u32) -> Self {
        Self {
            magic: SPICE_MAGIC,
            major_version: SPICE_VERSION_MAJOR,
            minor_version: SPICE_VERSION_MINOR,
            size,
        }
    }
}

impl Codec<'_> for LinkHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.magic);
        out.put_u32(self.major_version);
        out.put_u32(self.minor_version);
        out.put_u32(self.size);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            magic: r.take_array("SpiceLinkHeader.magic")?,
            major_version: r.u32("SpiceLinkHeader.major_version")?,
            minor_version: r.u32("SpiceLinkHeader.minor_version")?,
            size: r.u32("SpiceLinkHeader.size")?,
        })
    }
}

/// spice-protocol protocol.h: `SpiceLinkMess` (18 bytes) and its capability words.
#[doc(alias = "SpiceLinkMess")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkMess {
    /// 0 for a new session's main channel, else the session id from MAIN_INIT.
    pub connection_id: u32,
    /// Which channel.
    pub channel_type: ChannelType,
    /// Which instance of it.
    pub channel_id: u8,
    /// The client's common capabilities.
    pub common_caps: Caps,
    /// The client's capabilities for this channel type.
    pub channel_caps: Caps,
}

impl LinkMess {
    /// Size of the fixed part, also the `caps_offset` clients send.
    pub const FIXED_SIZE: u32 = 18;
}

impl Codec<'_> for LinkMess {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.connection_id);
        self.channel_type.encode(out);
        out.push(self.channel_id);
        out.put_u32(self.common_caps.word_count());
        out.put_u32(self.channel_caps.word_count());
        out.put_u32(Self::FIXED_SIZE);
        self.common_caps.encode_words(out);
        self.channel_caps.encode_words(out);
    }

    /// Reads from a reader over exactly the header's `size` bytes; `caps_offset` is measured
    /// from the start of `SpiceLinkMess`.
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let connection_id = r.u32("SpiceLinkMess.connection_id")?;
        let channel_type = ChannelType::read(r)?;
        let channel_id = r.u8("SpiceLinkMess.channel_id")?;
        let num_common = r.u32("SpiceLinkMess.num_common_caps")?;
        let num_channel = r.u32("SpiceLinkMess.num_channel_caps")?;
        let caps_offset = r.u32("SpiceLinkMess.caps_offset")?;
        // Anything between the fixed part and caps_offset is skipped, as spice-server does.
        let gap = caps_offset
            .checked_sub(Self::FIXED_SIZE)
            .ok_or(WireError::Invalid {
                what: "SpiceLinkMess.caps_offset",
                value: caps_offset.into(),
            })?;
        r.take(
            usize::try_from(gap).unwrap_or(usize::MAX),
            "SpiceLinkMess.caps_offset",
        )?;
        let common_caps = Caps::read_words(r, num_common, "SpiceLinkMess common caps")?;
        let channel_caps = Caps::read_words(r, num_channel, "SpiceLinkMess channel caps")?;
        Ok(Self {
            connection_id,
            channel_type,
            channel_id,
            common_caps,
            channel_caps,
        })
    }
}

/// spice-protocol protocol.h: `SpiceLinkReply` (178 bytes) and its capability words.
#[doc(alias = "SpiceLinkReply")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReply {
    /// OK, or why the link is refused (then everything else is zero).
    pub error: SpiceLinkErr,
    /// DER SubjectPublicKeyInfo of the server's RSA-1024 key.
    pub pub_key: [u8; SPICE_TICKET_PUBKEY_BYTES],
    /// Server common capabilities (0x0B).
    pub common_caps: Caps,
    /// Server capabilities for this channel type.
    pub channel_caps: Caps,
}

impl LinkReply {
    /// Size of the fixed part, also the `caps_offset` we send.
    pub const FIXED_SIZE: u32 = 178;

    /// An error reply: `error` set, everything else zero and no caps, as spice-server's
    /// `reds_send_link_error` writes it.
    pub fn refusal(error: SpiceLinkErr) -> Self {
        Self {
            error,
            pub_key: [0; SPICE_TICKET_PUBKEY_BYTES],
            common_caps: Caps::empty(),
            channel_caps: Caps::empty(),
        }
    }
}

impl Codec<'_> for LinkReply {
    fn encode(&self, out: &mut Vec<u8>) {
        self.error.encode(out);
        out.extend_from_slice(&self.pub_key);
        out.put_u32(self.common_caps.word_count());
        out.put_u32(self.channel_caps.word_count());
        let no_caps = self.common_caps.words().is_empty() && self.channel_caps.words().is_empty();
        out.put_u32(if no_caps { 0 } else { Self::FIXED_SIZE });
        self.common_caps.encode_words(out);
        self.channel_caps.encode_words(out);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let error = SpiceLinkErr::read(r)?;
        let pub_key = r.take_array("SpiceLinkReply.pub_key")?;
        let num_common = r.u32("SpiceLinkReply.num_common_caps")?;
        let num_channel = r.u32("SpiceLinkReply.num_channel_caps")?;
        let caps_offset = r.u32("SpiceLinkReply.caps_offset")?;
        if num_common != 0 || num_channel != 0 {
            let gap = caps_offset
                .checked_sub(Self::FIXED_SIZE)
                .ok_or(WireError::Invalid {
                    what: "SpiceLinkReply.caps_offset",
                    value: caps_offset.into(),
                })?;
            r.take(
                usize::try_from(gap).unwrap_or(usize::MAX),
                "SpiceLinkReply.caps_offset",
            )?;
        }
        Ok(Self {
            error,
            pub_key,
            common_caps: Caps::read_words(r, num_common, "SpiceLinkReply common caps")?,
            channel_caps: Caps::read_words(r, num_channel, "SpiceLinkReply channel caps")?,
        })
    }
}

wire_enum! {
    /// spice-protocol protocol.h: `SpiceLinkAuthMechanism.auth_mechanism`: the common
    /// capability *index* of the chosen mechanism, not a mask (brief §7.3).
    #[doc(alias = "SpiceLinkAuthMechanism")]
    pub struct AuthMechanism(u32) {
        /// RSA ticket (`SPICE_COMMON_CAP_AUTH_SPICE`).
        SPICE = CommonCap::AUTH_SPICE,
        /// SASL (`SPICE_COMMON_CAP_AUTH_SASL`).
        SASL = CommonCap::AUTH_SASL,
    }
}

/// spice-protocol protocol.h: `SpiceLinkEncryptedTicket`, RSA-OAEP(SHA-1) of password + NUL.
#[doc(alias = "SpiceLinkEncryptedTicket")]
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptedTicket(pub [u8; SPICE_TICKET_ENCRYPTED_BYTES]);

impl std::fmt::Debug for EncryptedTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptedTicket(..)")
    }
}

impl Codec<'_> for EncryptedTicket {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        r.take_array("SpiceLinkEncryptedTicket").map(Self)
    }
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
