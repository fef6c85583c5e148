//! One typed struct per SPICE message, grouped by channel; each has exactly one `Codec` impl
//! and names the spice.proto message it mirrors.
//!
//! # Layout
//! - `base`: messages every channel inherits (SET_ACK, PING, ACK_SYNC, PONG…).
//! - `types`: points, rectangles, clip, brush, mask.
//! - `image`: the image descriptor and BITMAP / LZ4 / JPEG payloads.
//! - `display`, `display_client`: DISPLAY server and client messages.
//! - `main`: MAIN messages; `agent`: the VD agent payloads they carry.
//! - `cursor`: CURSOR messages and the cursor shape.
//! - `inputs`: INPUTS messages and scancode packing.

mod agent;
mod base;
mod cursor;
mod display;
mod display_client;
mod image;
mod inputs;
mod main;
mod types;

pub use agent::{
    VdAgentAnnounceCapabilities, VdAgentCap, VdAgentMessage, VdAgentMessageType, VdAgentMonConfig,
    VdAgentMonitorMm, VdAgentMonitorsConfig, VdAgentReply, MAX_AGENT_MONITORS,
    VD_AGENT_MAX_DATA_SIZE, VD_AGENT_PROTOCOL,
};

pub use base::{
    BaseClientMsg, BaseMsg, BaseMsgc, EmptyMessage, MsgDisconnecting, MsgNotify, MsgPing,
    MsgSetAck, MsgWaitForChannels, MsgcAck, MsgcAckSync, MsgcDisconnecting, MsgcMigrateFlushMark,
    MsgcPong, WaitForChannel, WaitList,
};
pub use cursor::{
    Cursor, CursorClientMsg, CursorFlags, CursorHeader, CursorMsg, CursorType, MsgCursorHide,
    MsgCursorInit, MsgCursorInvalAll, MsgCursorInvalOne, MsgCursorMove, MsgCursorReset,
    MsgCursorSet,
};
pub use display::{
    DisplayMsg, Head, MsgDisplayCopyBits, MsgDisplayDrawCopy, MsgDisplayDrawFill,
    MsgDisplayInvalAllPalettes, MsgDisplayInvalAllPixmaps, MsgDisplayInvalList, MsgDisplayMark,
    MsgDisplayMonitorsConfig, MsgDisplayReset, MsgDisplaySurfaceCreate, MsgDisplaySurfaceDestroy,
    ResourceId, SurfaceFlags, SurfaceFormat, MAX_MONITORS,
};
pub use display_client::{
    DisplayClientMsg, DisplayMsgc, ImageCompression, MsgcDisplayGlDrawDone, MsgcDisplayInit,
    MsgcDisplayPreferredCompression, MsgcDisplayPreferredVideoCodecType, MsgcDisplayStreamReport,
};
pub use image::{
    Bitmap, BitmapFlags, BitmapFormat, BitmapHeader, BitmapPalette, EncodedImage, Image, ImageData,
    ImageDescriptor, ImageFlags, ImageType, Lz4Data, Lz4Writer,
};
pub use inputs::{
    make_scancode, scancode_bytes, ButtonsState, InputsClientMsg, InputsMsg, InputsMsgc,
    KeyCodeMessage, KeyModifiers, MouseButton, MouseButtonMessage, MsgInputsInit,
    MsgInputsKeyModifiers, MsgInputsMouseMotionAck, MsgcInputsKeyDown, MsgcInputsKeyModifiers,
    MsgcInputsKeyScancode, MsgcInputsKeyUp, MsgcInputsMouseMotion, MsgcInputsMousePosition,
    MsgcInputsMousePress, MsgcInputsMouseRelease, SPICE_INPUT_MOTION_ACK_BUNCH,
};
pub use main::{
    ChannelId, MainClientMsg, MainMsg, MainMsgc, MouseMode, MsgMainAgentConnected,
    MsgMainAgentConnectedTokens, MsgMainAgentData, MsgMainAgentDisconnected, MsgMainAgentToken,
    MsgMainChannelsList, MsgMainInit, MsgMainMouseMode, MsgMainMultiMediaTime, MsgMainName,
    MsgMainUuid, MsgcMainAgentData, MsgcMainAgentStart, MsgcMainAgentToken, MsgcMainAttachChannels,
    MsgcMainClientInfo, MsgcMainMouseModeRequest, U32Message, MAX_CHANNELS_LIST,
};
pub use types::{
    Brush, BrushType, Clip, ClipType, DisplayBase, Point, Point16, QMask, Rect, Ropd,
    MAX_CLIP_RECTS,
};

#[cfg(test)]
mod channel_tests;
#[cfg(test)]
mod display_tests;
#[cfg(test)]
mod mutation_tests;

/// Shared by the message tests.
#[cfg(test)]
pub(crate) mod test_util {
    use std::fmt::Debug;

    use crate::spice::wire::Codec;

    /// Bytes before the body: unwritten or misplaced bytes and offsets measured from the
    /// buffer instead of the body show up against them (STYLE §7.2).
    pub(crate) const PREFILL: usize = 7;

    /// Encodes after a 0xa5 prefix, checks the prefix survived, decodes the body back.
    pub(crate) fn assert_round_trip<M>(msg: &M) -> Vec<u8>
    where
        M: for<'a> Codec<'a> + PartialEq + Debug,
    {
        let mut out = vec![0xa5; PREFILL];
        msg.encode(&mut out);
        assert_eq!(out.get(..PREFILL), Some(&[0xa5; PREFILL][..]));
        let body = out.split_off(PREFILL);
        assert_eq!(&M::read_bytes(&body).unwrap(), msg);
        body
    }
}
