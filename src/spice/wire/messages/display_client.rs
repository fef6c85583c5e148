//! DISPLAY channel client messages (brief §3.2.2, "Client → server") and their decoder.

use super::base::{BaseClientMsg, EmptyMessage};
use crate::spice::wire::codec::{Codec, PutLe, Reader, WireError};
use crate::spice::wire::enums::wire_enum;
use crate::spice::wire::header::Message;

wire_enum! {
    /// spice-protocol enums.h: `SPICE_MSGC_DISPLAY_*` (client → server).
    pub struct DisplayMsgc(u16) {
        /// Cache sizes; sent right after the link.
        INIT = 101,
        /// Stream statistics.
        STREAM_REPORT = 102,
        /// Preferred image compression.
        PREFERRED_COMPRESSION = 103,
        /// GL draw done.
        GL_DRAW_DONE = 104,
        /// Preferred video codecs.
        PREFERRED_VIDEO_CODEC_TYPE = 105,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SpiceImageCompression` (u8).
    pub struct ImageCompression(u8) {
        /// Invalid.
        INVALID = 0,
        /// No compression.
        OFF = 1,
        /// GLZ or QUIC.
        AUTO_GLZ = 2,
        /// LZ or QUIC.
        AUTO_LZ = 3,
        /// QUIC.
        QUIC = 4,
        /// GLZ.
        GLZ = 5,
        /// LZ.
        LZ = 6,
        /// LZ4.
        LZ4 = 7,
    }
}

/// spice.proto `DisplayChannel` client `init`: `SpiceMsgcDisplayInit` (14 bytes).
#[doc(alias = "SPICE_MSGC_DISPLAY_INIT")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgcDisplayInit {
    /// Image cache id (spice-gtk: 1, shared by the session's display channels).
    pub pixmap_cache_id: u8,
    /// Image cache size in **pixels**.
    pub pixmap_cache_size: i64,
    /// GLZ dictionary id.
    pub glz_dictionary_id: u8,
    /// GLZ window in pixels (0: no GLZ, spice-html5).
    pub glz_dictionary_window_size: i32,
}

impl Codec<'_> for MsgcDisplayInit {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.pixmap_cache_id);
        out.put_i64(self.pixmap_cache_size);
        out.push(self.glz_dictionary_id);
        out.put_i32(self.glz_dictionary_window_size);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            pixmap_cache_id: r.u8("SpiceMsgcDisplayInit.pixmap_cache_id")?,
            pixmap_cache_size: r.i64("SpiceMsgcDisplayInit.pixmap_cache_size")?,
            glz_dictionary_id: r.u8("SpiceMsgcDisplayInit.glz_dictionary_id")?,
            glz_dictionary_window_size: r.i32("SpiceMsgcDisplayInit.glz_dictionary_window_size")?,
        })
    }
}

impl Message<'_> for MsgcDisplayInit {
    const TYPE: u16 = DisplayMsgc::INIT.0;
}

/// spice.proto `DisplayChannel` client `stream_report`: `SpiceMsgcDisplayStreamReport`
/// (32 bytes). `num_frames 0, num_drops 0xFFFFFFFF` means "cannot decode this stream".
#[doc(alias = "SPICE_MSGC_DISPLAY_STREAM_REPORT")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgcDisplayStreamReport {
    /// Stream.
    pub stream_id: u32,
    /// From STREAM_ACTIVATE_REPORT.
    pub unique_id: u32,
    /// First frame's mm time.
    pub start_frame_mm_time: u32,
    /// Last frame's mm time.
    pub end_frame_mm_time: u32,
    /// Frames in the window.
    pub num_frames: u32,
    /// Frames dropped.
    pub num_drops: u32,
    /// Delay of the last frame (ms, may be negative).
    pub last_frame_delay: i32,
    /// Audio delay.
    pub audio_delay: u32,
}

impl Codec<'_> for MsgcDisplayStreamReport {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.stream_id);
        out.put_u32(self.unique_id);
        out.put_u32(self.start_frame_mm_time);
        out.put_u32(self.end_frame_mm_time);
        out.put_u32(self.num_frames);
        out.put_u32(self.num_drops);
        out.put_i32(self.last_frame_delay);
        out.put_u32(self.audio_delay);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            stream_id: r.u32("StreamReport.stream_id")?,
            unique_id: r.u32("StreamReport.unique_id")?,
            start_frame_mm_time: r.u32("StreamReport.start_frame_mm_time")?,
            end_frame_mm_time: r.u32("StreamReport.end_frame_mm_time")?,
            num_frames: r.u32("StreamReport.num_frames")?,
            num_drops: r.u32("StreamReport.num_drops")?,
            last_frame_delay: r.i32("StreamReport.last_frame_delay")?,
            audio_delay: r.u32("StreamReport.audio_delay")?,
        })
    }
}

impl Message<'_> for MsgcDisplayStreamReport {
    const TYPE: u16 = DisplayMsgc::STREAM_REPORT.0;
}

/// spice.proto `DisplayChannel` client `preferred_compression`.
#[doc(alias = "SPICE_MSGC_DISPLAY_PREFERRED_COMPRESSION")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgcDisplayPreferredCompression {
    /// The client's choice.
    pub image_compression: ImageCompression,
}

impl Codec<'_> for MsgcDisplayPreferredCompression {
    fn encode(&self, out: &mut Vec<u8>) {
        self.image_compression.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            image_compression: ImageCompression::read(r)?,
        })
    }
}

impl Message<'_> for MsgcDisplayPreferredCompression {
    const TYPE: u16 = DisplayMsgc::PREFERRED_COMPRESSION.0;
}

/// spice.proto `DisplayChannel` client `gl_draw_done` (empty).
#[doc(alias = "SPICE_MSGC_DISPLAY_GL_DRAW_DONE")]
pub type MsgcDisplayGlDrawDone = EmptyMessage<{ DisplayMsgc::GL_DRAW_DONE.0 }>;

/// spice.proto `DisplayChannel` client `preferred_video_codec_type`:
/// `u8 num_of_codecs, u8 codecs[num_of_codecs]` (1 MJPEG, 2 VP8, 3 H264, 4 VP9, 5 H265).
#[doc(alias = "SPICE_MSGC_DISPLAY_PREFERRED_VIDEO_CODEC_TYPE")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgcDisplayPreferredVideoCodecType<'a> {
    /// Codec types, most preferred first.
    pub codecs: &'a [u8],
}

impl<'a> Codec<'a> for MsgcDisplayPreferredVideoCodecType<'a> {
    fn encode(&self, out: &mut Vec<u8>) {
        let n = u8::try_from(self.codecs.len()).unwrap_or(u8::MAX);
        out.push(n);
        out.extend_from_slice(self.codecs.get(..usize::from(n)).unwrap_or_default());
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let n = r.u8("PreferredVideoCodecType.num_of_codecs")?;
        Ok(Self {
            codecs: r.take(usize::from(n), "PreferredVideoCodecType.codecs")?,
        })
    }
}

impl<'a> Message<'a> for MsgcDisplayPreferredVideoCodecType<'a> {
    const TYPE: u16 = DisplayMsgc::PREFERRED_VIDEO_CODEC_TYPE.0;
}

/// A decoded DISPLAY client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayClientMsg<'a> {
    /// A base-channel message.
    Base(BaseClientMsg),
    /// INIT.
    Init(MsgcDisplayInit),
    /// STREAM_REPORT.
    StreamReport(MsgcDisplayStreamReport),
    /// PREFERRED_COMPRESSION.
    PreferredCompression(MsgcDisplayPreferredCompression),
    /// GL_DRAW_DONE.
    GlDrawDone(MsgcDisplayGlDrawDone),
    /// PREFERRED_VIDEO_CODEC_TYPE.
    PreferredVideoCodecType(MsgcDisplayPreferredVideoCodecType<'a>),
    /// A type we do not parse; the channel logs and ignores it.
    Unknown(u16),
}

impl<'a> DisplayClientMsg<'a> {
    /// Decodes one message body of type `msg_type`.
    pub fn decode(msg_type: u16, body: &'a [u8]) -> Result<Self, WireError> {
        if let Some(base) = BaseClientMsg::decode(msg_type, body) {
            return base.map(Self::Base);
        }
        match DisplayMsgc(msg_type) {
            DisplayMsgc::INIT => MsgcDisplayInit::read_bytes(body).map(Self::Init),
            DisplayMsgc::STREAM_REPORT => {
                MsgcDisplayStreamReport::read_bytes(body).map(Self::StreamReport)
            }
            DisplayMsgc::PREFERRED_COMPRESSION => {
                MsgcDisplayPreferredCompression::read_bytes(body).map(Self::PreferredCompression)
            }
            DisplayMsgc::GL_DRAW_DONE => {
                MsgcDisplayGlDrawDone::read_bytes(body).map(Self::GlDrawDone)
            }
            DisplayMsgc::PREFERRED_VIDEO_CODEC_TYPE => {
                MsgcDisplayPreferredVideoCodecType::read_bytes(body)
                    .map(Self::PreferredVideoCodecType)
            }
            _ => Ok(Self::Unknown(msg_type)),
        }
    }
}
