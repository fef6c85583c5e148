//! CURSOR channel messages (brief §3.3); the client sends only base messages here.

use super::base::{BaseClientMsg, EmptyMessage};
use super::types::Point16;
use crate::spice::wire::codec::{Codec, PutLe, Reader, WireError};
use crate::spice::wire::enums::wire_enum;
use crate::spice::wire::header::Message;

wire_enum! {
    /// spice-protocol enums.h: `SPICE_MSG_CURSOR_*` (server → client).
    pub struct CursorMsg(u16) {
        /// Mandatory first message, and again after RESET.
        INIT = 101,
        /// Clear cache; ignore SET/MOVE until INIT.
        RESET = 102,
        /// New shape.
        SET = 103,
        /// New position.
        MOVE = 104,
        /// Hide.
        HIDE = 105,
        /// Trail.
        TRAIL = 106,
        /// Drop one cached shape.
        INVAL_ONE = 107,
        /// Drop all cached shapes.
        INVAL_ALL = 108,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SpiceCursorType` (u8 on the wire, u16 in QXL: brief §7.17).
    pub struct CursorType(u8) {
        /// 32-bit ARGB, `w × h × 4` bytes: the only type spice-html5 renders.
        ALPHA = 0,
        /// AND then XOR mask.
        MONO = 1,
        /// 4-bit.
        COLOR4 = 2,
        /// 8-bit.
        COLOR8 = 3,
        /// 16-bit.
        COLOR16 = 4,
        /// 24-bit.
        COLOR24 = 5,
        /// 32-bit with AND mask.
        COLOR32 = 6,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SpiceCursorFlags` (u16 bits).
    pub struct CursorFlags(u16) {
        /// None of the flags.
        EMPTY = 0,
        /// No cursor: no header, no data.
        NONE = 1 << 0,
        /// Cache under `unique`.
        CACHE_ME = 1 << 1,
        /// Use the cached shape `unique` (never with spice-html5).
        FROM_CACHE = 1 << 2,
    }
}

/// spice.proto `CursorHeader` (17 bytes: `type` is a u8 on the wire).
#[doc(alias = "SpiceCursorHeader")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CursorHeader {
    /// Cache id (0: do not cache).
    pub unique: u64,
    /// Pixel type.
    pub cursor_type: CursorType,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// Hot spot X.
    pub hot_spot_x: u16,
    /// Hot spot Y.
    pub hot_spot_y: u16,
}

impl Codec<'_> for CursorHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.unique);
        self.cursor_type.encode(out);
        out.put_u16(self.width);
        out.put_u16(self.height);
        out.put_u16(self.hot_spot_x);
        out.put_u16(self.hot_spot_y);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            unique: r.u64("CursorHeader.unique")?,
            cursor_type: CursorType::read(r)?,
            width: r.u16("CursorHeader.width")?,
            height: r.u16("CursorHeader.height")?,
            hot_spot_x: r.u16("CursorHeader.hot_spot_x")?,
            hot_spot_y: r.u16("CursorHeader.hot_spot_y")?,
        })
    }
}

/// spice.proto `Cursor`: `u16 flags; if !NONE: CursorHeader; u8 data[]` to the end of the
/// message, so it must be the last field of its message.
#[doc(alias = "SpiceCursor")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Cursor {
    /// `flags = NONE`: no pointer.
    #[default]
    None,
    /// A shape.
    Shape {
        /// CACHE_ME / FROM_CACHE (NONE is never set here).
        flags: CursorFlags,
        /// Header.
        header: CursorHeader,
        /// Pixels (empty with FROM_CACHE).
        data: Vec<u8>,
    },
}

impl Codec<'_> for Cursor {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::None => CursorFlags::NONE.encode(out),
            Self::Shape {
                flags,
                header,
                data,
            } => {
                out.put_u16(flags.0 & !CursorFlags::NONE.0);
                header.encode(out);
                out.extend_from_slice(data);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let flags = CursorFlags::read(r)?;
        if flags.0 & CursorFlags::NONE.0 != 0 {
            return Ok(Self::None);
        }
        Ok(Self::Shape {
            flags,
            header: CursorHeader::read(r)?,
            data: r.rest().to_vec(),
        })
    }
}

/// spice.proto `CursorChannel` server `init`: `Point16 position, u16 trail_length,
/// u16 trail_frequency, u8 visible, Cursor`.
#[doc(alias = "SPICE_MSG_CURSOR_INIT")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgCursorInit {
    /// Position.
    pub position: Point16,
    /// Trail length (0).
    pub trail_length: u16,
    /// Trail frequency (0).
    pub trail_frequency: u16,
    /// Visible.
    pub visible: bool,
    /// Shape (may be `None`).
    pub cursor: Cursor,
}

impl Codec<'_> for MsgCursorInit {
    fn encode(&self, out: &mut Vec<u8>) {
        self.position.encode(out);
        out.put_u16(self.trail_length);
        out.put_u16(self.trail_frequency);
        out.push(u8::from(self.visible));
        self.cursor.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            position: Point16::read(r)?,
            trail_length: r.u16("CursorInit.trail_length")?,
            trail_frequency: r.u16("CursorInit.trail_frequency")?,
            visible: r.u8("CursorInit.visible")? != 0,
            cursor: Cursor::read(r)?,
        })
    }
}

impl Message<'_> for MsgCursorInit {
    const TYPE: u16 = CursorMsg::INIT.0;
}

/// spice.proto `CursorChannel` server `reset` (empty).
#[doc(alias = "SPICE_MSG_CURSOR_RESET")]
pub type MsgCursorReset = EmptyMessage<{ CursorMsg::RESET.0 }>;

/// spice.proto `CursorChannel` server `hide` (empty).
#[doc(alias = "SPICE_MSG_CURSOR_HIDE")]
pub type MsgCursorHide = EmptyMessage<{ CursorMsg::HIDE.0 }>;

/// spice.proto `CursorChannel` server `inval_all` (empty).
#[doc(alias = "SPICE_MSG_CURSOR_INVAL_ALL")]
pub type MsgCursorInvalAll = EmptyMessage<{ CursorMsg::INVAL_ALL.0 }>;

/// spice.proto `CursorChannel` server `set`: `Point16 position, u8 visible, Cursor`.
#[doc(alias = "SPICE_MSG_CURSOR_SET")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgCursorSet {
    /// Position.
    pub position: Point16,
    /// Visible.
    pub visible: bool,
    /// Shape.
    pub cursor: Cursor,
}

impl Codec<'_> for MsgCursorSet {
    fn encode(&self, out: &mut Vec<u8>) {
        self.position.encode(out);
        out.push(u8::from(self.visible));
        self.cursor.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            position: Point16::read(r)?,
            visible: r.u8("CursorSet.visible")? != 0,
            cursor: Cursor::read(r)?,
        })
    }
}

impl Message<'_> for MsgCursorSet {
    const TYPE: u16 = CursorMsg::SET.0;
}

/// spice.proto `CursorChannel` server `move`: `Point16 position`.
#[doc(alias = "SPICE_MSG_CURSOR_MOVE")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgCursorMove {
    /// Position.
    pub position: Point16,
}

impl Codec<'_> for MsgCursorMove {
    fn encode(&self, out: &mut Vec<u8>) {
        self.position.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            position: Point16::read(r)?,
        })
    }
}

impl Message<'_> for MsgCursorMove {
    const TYPE: u16 = CursorMsg::MOVE.0;
}

/// spice.proto `CursorChannel` server `inval_one`: `u64 id`.
#[doc(alias = "SPICE_MSG_CURSOR_INVAL_ONE")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgCursorInvalOne {
    /// Cached shape to drop.
    pub id: u64,
}

impl Codec<'_> for MsgCursorInvalOne {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.id);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            id: r.u64("CursorInvalOne.id")?,
        })
    }
}

impl Message<'_> for MsgCursorInvalOne {
    const TYPE: u16 = CursorMsg::INVAL_ONE.0;
}

/// A decoded CURSOR client message: base messages only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorClientMsg {
    /// A base-channel message.
    Base(BaseClientMsg),
    /// Anything else; logged and ignored.
    Unknown(u16),
}

impl CursorClientMsg {
    /// Decodes one message body of type `msg_type`.
    pub fn decode(msg_type: u16, body: &[u8]) -> Result<Self, WireError> {
        match BaseClientMsg::decode(msg_type, body) {
            Some(base) => base.map(Self::Base),
            None => Ok(Self::Unknown(msg_type)),
        }
    }
}
