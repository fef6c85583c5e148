//! INPUTS channel messages, both directions, the decoder and the PC scancode packing
//! (brief §3.4).

use super::base::{BaseClientMsg, EmptyMessage};
use crate::spice::wire::codec::{Codec, PutLe, Reader, WireError};
use crate::spice::wire::enums::wire_enum;
use crate::spice::wire::header::Message;

/// spice-protocol protocol.h: `SPICE_INPUT_MOTION_ACK_BUNCH`. Send MOUSE_MOTION_ACK after
/// every this many MOTION/POSITION messages; clients stop at twice as many unacknowledged.
pub const SPICE_INPUT_MOTION_ACK_BUNCH: u32 = 4;

wire_enum! {
    /// spice-protocol enums.h: `SPICE_MSG_INPUTS_*` (server → client).
    pub struct InputsMsg(u16) {
        /// Lock state on connect.
        INIT = 101,
        /// Guest lock LEDs changed.
        KEY_MODIFIERS = 102,
        /// Four motions received.
        MOUSE_MOTION_ACK = 111,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SPICE_MSGC_INPUTS_*` (client → server).
    pub struct InputsMsgc(u16) {
        /// Key press (packed scancode).
        KEY_DOWN = 101,
        /// Key release (packed scancode).
        KEY_UP = 102,
        /// Client lock state.
        KEY_MODIFIERS = 103,
        /// Raw scancode bytes (server cap KEY_SCANCODE).
        KEY_SCANCODE = 104,
        /// Relative motion (server mouse mode).
        MOUSE_MOTION = 111,
        /// Absolute position (client mouse mode).
        MOUSE_POSITION = 112,
        /// Button press.
        MOUSE_PRESS = 113,
        /// Button release.
        MOUSE_RELEASE = 114,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SpiceKeyboardModifierFlags` (u16 bits).
    pub struct KeyModifiers(u16) {
        /// None.
        NONE = 0,
        /// Scroll lock.
        SCROLL_LOCK = 1 << 0,
        /// Num lock.
        NUM_LOCK = 1 << 1,
        /// Caps lock.
        CAPS_LOCK = 1 << 2,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SpiceMouseButton` (u8).
    pub struct MouseButton(u8) {
        /// Invalid.
        INVALID = 0,
        /// Left.
        LEFT = 1,
        /// Middle.
        MIDDLE = 2,
        /// Right.
        RIGHT = 3,
        /// Wheel up (press then release).
        UP = 4,
        /// Wheel down.
        DOWN = 5,
        /// Side.
        SIDE = 6,
        /// Extra.
        EXTRA = 7,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SpiceMouseButtonMask` (u16 bits of `buttons_state`).
    pub struct ButtonsState(u16) {
        /// None pressed.
        NONE = 0,
        /// Left.
        LEFT = 1 << 0,
        /// Middle.
        MIDDLE = 1 << 1,
        /// Right.
        RIGHT = 1 << 2,
        /// Wheel up.
        UP = 1 << 3,
        /// Wheel down.
        DOWN = 1 << 4,
        /// Side.
        SIDE = 1 << 5,
        /// Extra.
        EXTRA = 1 << 6,
    }
}

/// Packs a PC/XT set-1 scancode as KEY_DOWN/KEY_UP carry it: `sc` (release `sc | 0x80`), or
/// for an extended key bytes `E0 sc` (release `E0 sc|0x80`) little-endian in the u32
/// (spice-gtk `spice_make_scancode`).
pub fn make_scancode(scancode: u8, extended: bool, release: bool) -> u32 {
    let sc = u32::from(if release { scancode | 0x80 } else { scancode });
    if extended {
        0xe0 | (sc << 8)
    } else {
        sc
    }
}

/// The bytes a packed KEY_DOWN/KEY_UP code stands for, low byte first, up to the first zero
/// byte, as spice-server feeds them to the PS/2 keyboard.
pub fn scancode_bytes(code: u32) -> impl Iterator<Item = u8> {
    code.to_le_bytes().into_iter().take_while(|b| *b != 0)
}

/// spice.proto `InputsChannel` server `init`: `u16 keyboard_modifiers`.
#[doc(alias = "SPICE_MSG_INPUTS_INIT")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgInputsInit {
    /// Guest lock state.
    pub keyboard_modifiers: KeyModifiers,
}

impl Codec<'_> for MsgInputsInit {
    fn encode(&self, out: &mut Vec<u8>) {
        self.keyboard_modifiers.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            keyboard_modifiers: KeyModifiers::read(r)?,
        })
    }
}

impl Message<'_> for MsgInputsInit {
    const TYPE: u16 = InputsMsg::INIT.0;
}

/// spice.proto `InputsChannel` server `key_modifiers`: `u16 modifiers`.
#[doc(alias = "SPICE_MSG_INPUTS_KEY_MODIFIERS")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgInputsKeyModifiers {
    /// Guest lock state.
    pub modifiers: KeyModifiers,
}

impl Codec<'_> for MsgInputsKeyModifiers {
    fn encode(&self, out: &mut Vec<u8>) {
        self.modifiers.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            modifiers: KeyModifiers::read(r)?,
        })
    }
}

impl Message<'_> for MsgInputsKeyModifiers {
    const TYPE: u16 = InputsMsg::KEY_MODIFIERS.0;
}

/// spice.proto `InputsChannel` server `mouse_motion_ack` (empty).
#[doc(alias = "SPICE_MSG_INPUTS_MOUSE_MOTION_ACK")]
pub type MsgInputsMouseMotionAck = EmptyMessage<{ InputsMsg::MOUSE_MOTION_ACK.0 }>;

/// spice.proto `InputsChannel` client `key_down` / `key_up`: `u32 code`, a packed scancode
/// (see [`make_scancode`]); `TYPE` tells which.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyCodeMessage<const TYPE: u16> {
    /// Packed scancode bytes.
    pub code: u32,
}

impl<const TYPE: u16> Codec<'_> for KeyCodeMessage<TYPE> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.code);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            code: r.u32("SpiceMsgcKeyDown.code")?,
        })
    }
}

impl<const TYPE: u16> Message<'_> for KeyCodeMessage<TYPE> {
    const TYPE: u16 = TYPE;
}

/// spice.proto `InputsChannel` client `key_down`.
#[doc(alias = "SPICE_MSGC_INPUTS_KEY_DOWN")]
pub type MsgcInputsKeyDown = KeyCodeMessage<{ InputsMsgc::KEY_DOWN.0 }>;

/// spice.proto `InputsChannel` client `key_up`.
#[doc(alias = "SPICE_MSGC_INPUTS_KEY_UP")]
pub type MsgcInputsKeyUp = KeyCodeMessage<{ InputsMsgc::KEY_UP.0 }>;

/// spice.proto `InputsChannel` client `key_modifiers`: `u16 modifiers`, the client's lock
/// state that the guest's should be toggled to.
#[doc(alias = "SPICE_MSGC_INPUTS_KEY_MODIFIERS")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgcInputsKeyModifiers {
    /// Client lock state.
    pub modifiers: KeyModifiers,
}

impl Codec<'_> for MsgcInputsKeyModifiers {
    fn encode(&self, out: &mut Vec<u8>) {
        self.modifiers.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            modifiers: KeyModifiers::read(r)?,
        })
    }
}

impl Message<'_> for MsgcInputsKeyModifiers {
    const TYPE: u16 = InputsMsgc::KEY_MODIFIERS.0;
}

/// spice.proto `InputsChannel` client `key_scancode`: `u8 code[]`, the whole body.
#[doc(alias = "SPICE_MSGC_INPUTS_KEY_SCANCODE")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgcInputsKeyScancode<'a> {
    /// Raw set-1 bytes, press then release.
    pub codes: &'a [u8],
}

impl<'a> Codec<'a> for MsgcInputsKeyScancode<'a> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.codes);
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        Ok(Self { codes: r.rest() })
    }
}

impl<'a> Message<'a> for MsgcInputsKeyScancode<'a> {
    const TYPE: u16 = InputsMsgc::KEY_SCANCODE.0;
}

/// spice.proto `InputsChannel` client `mouse_motion`: `i32 dx, i32 dy, u16 buttons_state`.
#[doc(alias = "SPICE_MSGC_INPUTS_MOUSE_MOTION")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgcInputsMouseMotion {
    /// Relative X.
    pub dx: i32,
    /// Relative Y.
    pub dy: i32,
    /// Buttons held.
    pub buttons_state: ButtonsState,
}

impl Codec<'_> for MsgcInputsMouseMotion {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_i32(self.dx);
        out.put_i32(self.dy);
        self.buttons_state.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            dx: r.i32("MouseMotion.dx")?,
            dy: r.i32("MouseMotion.dy")?,
            buttons_state: ButtonsState::read(r)?,
        })
    }
}

impl Message<'_> for MsgcInputsMouseMotion {
    const TYPE: u16 = InputsMsgc::MOUSE_MOTION.0;
}

/// spice.proto `InputsChannel` client `mouse_position`: `u32 x, u32 y, u16 buttons_state,
/// u8 display_id`, in display `display_id`'s primary surface coordinates.
#[doc(alias = "SPICE_MSGC_INPUTS_MOUSE_POSITION")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgcInputsMousePosition {
    /// X.
    pub x: u32,
    /// Y.
    pub y: u32,
    /// Buttons held.
    pub buttons_state: ButtonsState,
    /// Display channel id.
    pub display_id: u8,
}

impl Codec<'_> for MsgcInputsMousePosition {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.x);
        out.put_u32(self.y);
        self.buttons_state.encode(out);
        out.push(self.display_id);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            x: r.u32("MousePosition.x")?,
            y: r.u32("MousePosition.y")?,
            buttons_state: ButtonsState::read(r)?,
            display_id: r.u8("MousePosition.display_id")?,
        })
    }
}

impl Message<'_> for MsgcInputsMousePosition {
    const TYPE: u16 = InputsMsgc::MOUSE_POSITION.0;
}

/// spice.proto `InputsChannel` client `mouse_press` / `mouse_release`: `u8 button,
/// u16 buttons_state`; `TYPE` tells which.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MouseButtonMessage<const TYPE: u16> {
    /// The button.
    pub button: MouseButton,
    /// Buttons held after the event.
    pub buttons_state: ButtonsState,
}

impl<const TYPE: u16> Codec<'_> for MouseButtonMessage<TYPE> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.button.encode(out);
        self.buttons_state.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            button: MouseButton::read(r)?,
            buttons_state: ButtonsState::read(r)?,
        })
    }
}

impl<const TYPE: u16> Message<'_> for MouseButtonMessage<TYPE> {
    const TYPE: u16 = TYPE;
}

/// spice.proto `InputsChannel` client `mouse_press`.
#[doc(alias = "SPICE_MSGC_INPUTS_MOUSE_PRESS")]
pub type MsgcInputsMousePress = MouseButtonMessage<{ InputsMsgc::MOUSE_PRESS.0 }>;

/// spice.proto `InputsChannel` client `mouse_release`.
#[doc(alias = "SPICE_MSGC_INPUTS_MOUSE_RELEASE")]
pub type MsgcInputsMouseRelease = MouseButtonMessage<{ InputsMsgc::MOUSE_RELEASE.0 }>;

/// A decoded INPUTS client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputsClientMsg<'a> {
    /// A base-channel message.
    Base(BaseClientMsg),
    /// KEY_DOWN.
    KeyDown(MsgcInputsKeyDown),
    /// KEY_UP.
    KeyUp(MsgcInputsKeyUp),
    /// KEY_MODIFIERS.
    KeyModifiers(MsgcInputsKeyModifiers),
    /// KEY_SCANCODE.
    KeyScancode(MsgcInputsKeyScancode<'a>),
    /// MOUSE_MOTION.
    MouseMotion(MsgcInputsMouseMotion),
    /// MOUSE_POSITION.
    MousePosition(MsgcInputsMousePosition),
    /// MOUSE_PRESS.
    MousePress(MsgcInputsMousePress),
    /// MOUSE_RELEASE.
    MouseRelease(MsgcInputsMouseRelease),
    /// Anything else; logged and ignored.
    Unknown(u16),
}

impl<'a> InputsClientMsg<'a> {
    /// Decodes one message body of type `msg_type`.
    pub fn decode(msg_type: u16, body: &'a [u8]) -> Result<Self, WireError> {
        if let Some(base) = BaseClientMsg::decode(msg_type, body) {
            return base.map(Self::Base);
        }
        match InputsMsgc(msg_type) {
            InputsMsgc::KEY_DOWN => MsgcInputsKeyDown::read_bytes(body).map(Self::KeyDown),
            InputsMsgc::KEY_UP => MsgcInputsKeyUp::read_bytes(body).map(Self::KeyUp),
            InputsMsgc::KEY_MODIFIERS => {
                MsgcInputsKeyModifiers::read_bytes(body).map(Self::KeyModifiers)
            }
            InputsMsgc::KEY_SCANCODE => {
                MsgcInputsKeyScancode::read_bytes(body).map(Self::KeyScancode)
            }
            InputsMsgc::MOUSE_MOTION => {
                MsgcInputsMouseMotion::read_bytes(body).map(Self::MouseMotion)
            }
            InputsMsgc::MOUSE_POSITION => {
                MsgcInputsMousePosition::read_bytes(body).map(Self::MousePosition)
            }
            InputsMsgc::MOUSE_PRESS => MsgcInputsMousePress::read_bytes(body).map(Self::MousePress),
            InputsMsgc::MOUSE_RELEASE => {
                MsgcInputsMouseRelease::read_bytes(body).map(Self::MouseRelease)
            }
            _ => Ok(Self::Unknown(msg_type)),
        }
    }
}
