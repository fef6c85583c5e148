//! PC set-1 scancodes (as SPICE clients send them) to Linux input key codes.
//!
//! The table is ours, written from the "AT set1 keycode" and "Linux Keycode" columns of
//! `qemu/keycodemapdb: data/keymaps.csv` (commit 22b8996), with two decisions of our own:
//! - set-1 `0x54` is Alt+SysRq on a real keyboard and Linux's `atkbd` reports it as `KEY_SYSRQ`;
//!   keymaps.csv also lists an unnamed Linux code 84 there, which nothing generates.
//! - `E0 37` (the Print Screen make code, after its `E0 2A` fake shift) is missing from the
//!   csv; `atkbd` maps it to `KEY_SYSRQ` (99), and so do we.
//!
//! Scancodes are "folded": a plain code is its byte (`0x01..=0x7f`, plus `0xf1`/`0xf2`, the
//! Hanja/Hangeul keys that have no break code), an `E0`-prefixed code is `0x100 | byte`. This
//! is the form spice-gtk builds messages from (`spice_make_scancode`) and `guest::InputEvent`
//! documents.

use tracing::debug;

/// Linux `KEY_PAUSE`; the `E1 1D 45` / `E1 9D C5` sequences decode to its `E0 46` alias.
const PAUSE_SCANCODE: u16 = 0x146;
/// `E0` prefix: the next byte is an extended key.
const PREFIX_E0: u8 = 0xe0;
/// `E1` prefix: Pause, as `E1 1D 45` (make) and `E1 9D C5` (break).
const PREFIX_E1: u8 = 0xe1;
/// Bit 7 of a set-1 byte marks a break (release) code.
const BREAK_BIT: u8 = 0x80;
/// Folded-code flag for `E0`-prefixed keys.
pub const EXTENDED: u16 = 0x100;

/// (folded set-1 scancode, Linux key code), sorted by scancode.
#[rustfmt::skip]
pub const SET1_TO_LINUX: &[(u16, u16)] = &[
    (0x001, 1), // KEY_ESC
    (0x002, 2), // KEY_1
    (0x003, 3), // KEY_2
    (0x004, 4), // KEY_3
    (0x005, 5), // KEY_4
    (0x006, 6), // KEY_5
    (0x007, 7), // KEY_6
    (0x008, 8), // KEY_7
    (0x009, 9), // KEY_8
    (0x00a, 10), // KEY_9
    (0x00b, 11), // KEY_0
    (0x00c, 12), // KEY_MINUS
    (0x00d, 13), // KEY_EQUAL
    (0x00e, 14), // KEY_BACKSPACE
    (0x00f, 15), // KEY_TAB
    (0x010, 16), // KEY_Q
    (0x011, 17), // KEY_W
    (0x012, 18), // KEY_E
    (0x013, 19), // KEY_R
    (0x014, 20), // KEY_T
    (0x015, 21), // KEY_Y
    (0x016, 22), // KEY_U
    (0x017, 23), // KEY_I
    (0x018, 24), // KEY_O
    (0x019, 25), // KEY_P
    (0x01a, 26), // KEY_LEFTBRACE
    (0x01b, 27), // KEY_RIGHTBRACE
    (0x01c, 28), // KEY_ENTER
    (0x01d, 29), // KEY_LEFTCTRL
    (0x01e, 30), // KEY_A
    (0x01f, 31), // KEY_S
    (0x020, 32), // KEY_D
    (0x021, 33), // KEY_F
    (0x022, 34), // KEY_G
    (0x023, 35), // KEY_H
    (0x024, 36), // KEY_J
    (0x025, 37), // KEY_K
    (0x026, 38), // KEY_L
    (0x027, 39), // KEY_SEMICOLON
    (0x028, 40), // KEY_APOSTROPHE
    (0x029, 41), // KEY_GRAVE
    (0x02a, 42), // KEY_SHIFT
    (0x02b, 43), // KEY_BACKSLASH
    (0x02c, 44), // KEY_Z
    (0x02d, 45), // KEY_X
    (0x02e, 46), // KEY_C
    (0x02f, 47), // KEY_V
    (0x030, 48), // KEY_B
    (0x031, 49), // KEY_N
    (0x032, 50), // KEY_M
    (0x033, 51), // KEY_COMMA
    (0x034, 52), // KEY_DOT
    (0x035, 53), // KEY_SLASH
    (0x036, 54), // KEY_RIGHTSHIFT
    (0x037, 55), // KEY_KPASTERISK
    (0x038, 56), // KEY_LEFTALT
    (0x039, 57), // KEY_SPACE
    (0x03a, 58), // KEY_CAPSLOCK
    (0x03b, 59), // KEY_F1
    (0x03c, 60), // KEY_F2
    (0x03d, 61), // KEY_F3
    (0x03e, 62), // KEY_F4
    (0x03f, 63), // KEY_F5
    (0x040, 64), // KEY_F6
    (0x041, 65), // KEY_F7
    (0x042, 66), // KEY_F8
    (0x043, 67), // KEY_F9
    (0x044, 68), // KEY_F10
    (0x045, 69), // KEY_NUMLOCK
    (0x046, 70), // KEY_SCROLLLOCK
    (0x047, 71), // KEY_KP7
    (0x048, 72), // KEY_KP8
    (0x049, 73), // KEY_KP9
    (0x04a, 74), // KEY_KPMINUS
    (0x04b, 75), // KEY_KP4
    (0x04c, 76), // KEY_KP5
    (0x04d, 77), // KEY_KP6
    (0x04e, 78), // KEY_KPPLUS
    (0x04f, 79), // KEY_KP1
    (0x050, 80), // KEY_KP2
    (0x051, 81), // KEY_KP3
    (0x052, 82), // KEY_KP0
    (0x053, 83), // KEY_KPDOT
    (0x054, 99), // KEY_SYSRQ
    (0x055, 186), // KEY_F16
    (0x056, 86), // KEY_102ND
    (0x057, 87), // KEY_F11
    (0x058, 88), // KEY_F12
    (0x059, 117), // KEY_KPEQUAL
    (0x05a, 190), // KEY_F20
    (0x05b, 101), // KEY_LINEFEED
    (0x05c, 95), // KEY_KPJPCOMMA
    (0x05d, 183), // KEY_F13
    (0x05e, 184), // KEY_F14
    (0x05f, 185), // KEY_F15
    (0x063, 169), // KEY_PHONE
    (0x064, 134), // KEY_OPEN
    (0x065, 135), // KEY_PASTE
    (0x066, 141), // KEY_SETUP
    (0x067, 144), // KEY_FILE
    (0x068, 145), // KEY_SENDFILE
    (0x069, 146), // KEY_DELETEFILE
    (0x06a, 151), // KEY_MSDOS
    (0x06b, 153), // KEY_DIRECTION
    (0x06c, 161), // KEY_EJECTCD
    (0x06d, 193), // KEY_F23
    (0x06f, 194), // KEY_F24
    (0x070, 93), // KEY_KATAKANAHIRAGANA
    (0x073, 89), // KEY_RO
    (0x074, 191), // KEY_F21
    (0x075, 177), // KEY_SCROLLUP
    (0x076, 85), // KEY_ZENKAKUHANKAKU
    (0x077, 91), // KEY_HIRAGANA
    (0x078, 90), // KEY_KATAKANA
    (0x079, 92), // KEY_HENKAN
    (0x07b, 94), // KEY_MUHENKAN
    (0x07d, 124), // KEY_YEN
    (0x07e, 121), // KEY_KPCOMMA
    (0x0f1, 123), // KEY_HANJA
    (0x0f2, 122), // KEY_HANGEUL
    (0x101, 171), // KEY_CONFIG
    (0x102, 150), // KEY_WWW
    (0x103, 187), // KEY_F17
    (0x104, 189), // KEY_F19
    (0x105, 129), // KEY_AGAIN
    (0x106, 130), // KEY_PROPS
    (0x107, 131), // KEY_UNDO
    (0x108, 176), // KEY_EDIT
    (0x109, 181), // KEY_NEW
    (0x10a, 182), // KEY_REDO
    (0x10b, 120), // KEY_SCALE
    (0x10c, 132), // KEY_FRONT
    (0x10e, 233), // KEY_FORWARDMAIL
    (0x10f, 178), // KEY_SCROLLDOWN
    (0x110, 165), // KEY_PREVIOUSSONG
    (0x112, 152), // KEY_SCREENLOCK
    (0x113, 147), // KEY_XFER
    (0x114, 222), // KEY_ALTERASE
    (0x115, 195), // KEY_195
    (0x116, 196), // KEY_196
    (0x117, 149), // KEY_PROG2
    (0x118, 168), // KEY_REWIND
    (0x119, 163), // KEY_NEXTSONG
    (0x11a, 197), // KEY_197
    (0x11b, 198), // KEY_198
    (0x11c, 96), // KEY_KPENTER
    (0x11d, 97), // KEY_RIGHTCTRL
    (0x11e, 139), // KEY_MENU
    (0x11f, 148), // KEY_PROG1
    (0x120, 113), // KEY_MUTE
    (0x121, 140), // KEY_CALC
    (0x122, 164), // KEY_PLAYPAUSE
    (0x123, 160), // KEY_CLOSECD
    (0x124, 166), // KEY_STOPCD
    (0x125, 205), // KEY_SUSPEND
    (0x126, 154), // KEY_CYCLEWINDOWS
    (0x127, 199), // KEY_199
    (0x128, 200), // KEY_PLAYCD
    (0x129, 201), // KEY_PAUSECD
    (0x12b, 202), // KEY_PROG3
    (0x12c, 203), // KEY_PROG4
    (0x12d, 204), // KEY_DASHBOARD
    (0x12e, 114), // KEY_VOLUMEDOWN
    (0x12f, 206), // KEY_CLOSE
    (0x130, 115), // KEY_VOLUMEUP
    (0x131, 167), // KEY_RECORD
    (0x132, 172), // KEY_HOMEPAGE
    (0x133, 207), // KEY_PLAY
    (0x134, 208), // KEY_FASTFORWARD
    (0x135, 98), // KEY_KPSLASH
    (0x136, 209), // KEY_BASSBOOST
    (0x137, 99), // KEY_SYSRQ
    (0x138, 100), // KEY_RIGHTALT
    (0x139, 210), // KEY_PRINT
    (0x13a, 211), // KEY_HP
    (0x13b, 212), // KEY_CAMERA
    (0x13c, 137), // KEY_CUT
    (0x13d, 213), // KEY_SOUND
    (0x13e, 214), // KEY_QUESTION
    (0x13f, 215), // KEY_EMAIL
    (0x140, 216), // KEY_CHAT
    (0x141, 136), // KEY_FIND
    (0x142, 218), // KEY_CONNECT
    (0x143, 219), // KEY_FINANCE
    (0x144, 220), // KEY_SPORT
    (0x145, 221), // KEY_SHOP
    (0x146, 119), // KEY_PAUSE
    (0x147, 102), // KEY_HOME
    (0x148, 103), // KEY_UP
    (0x149, 104), // KEY_PAGEUP
    (0x14a, 223), // KEY_CANCEL
    (0x14b, 105), // KEY_LEFT
    (0x14c, 224), // KEY_BRIGHTNESSDOWN
    (0x14d, 106), // KEY_RIGHT
    (0x14e, 118), // KEY_KPPLUSMINUS
    (0x14f, 107), // KEY_END
    (0x150, 108), // KEY_DOWN
    (0x151, 109), // KEY_PAGEDOWN
    (0x152, 110), // KEY_INSERT
    (0x153, 111), // KEY_DELETE
    (0x154, 225), // KEY_BRIGHTNESSUP
    (0x155, 234), // KEY_SAVE
    (0x156, 227), // KEY_SWITCHVIDEOMODE
    (0x157, 228), // KEY_KBDILLUMTOGGLE
    (0x158, 229), // KEY_KBDILLUMDOWN
    (0x159, 230), // KEY_KBDILLUMUP
    (0x15a, 231), // KEY_SEND
    (0x15b, 125), // KEY_LEFTMETA
    (0x15c, 126), // KEY_RIGHTMETA
    (0x15d, 127), // KEY_COMPOSE
    (0x15e, 116), // KEY_POWER
    (0x15f, 142), // KEY_SLEEP
    (0x163, 143), // KEY_WAKEUP
    (0x164, 232), // KEY_REPLY
    (0x165, 217), // KEY_SEARCH
    (0x166, 156), // KEY_BOOKMARKS
    (0x167, 173), // KEY_REFRESH
    (0x168, 128), // KEY_STOP
    (0x169, 159), // KEY_FORWARD
    (0x16a, 158), // KEY_BACK
    (0x16b, 157), // KEY_COMPUTER
    (0x16c, 155), // KEY_MAIL
    (0x16d, 226), // KEY_MEDIA
    (0x16f, 112), // KEY_MACRO
    (0x170, 235), // KEY_DOCUMENTS
    (0x171, 236), // KEY_BATTERY
    (0x172, 237), // KEY_BLUETOOTH
    (0x173, 238), // KEY_WLAN
    (0x174, 239), // KEY_UWB
    (0x175, 138), // KEY_HELP
    (0x176, 179), // KEY_KPLEFTPAREN
    (0x177, 188), // KEY_F18
    (0x178, 133), // KEY_COPY
    (0x179, 192), // KEY_F22
    (0x17b, 180), // KEY_KPRIGHTPAREN
    (0x17d, 162), // KEY_EJECTCLOSECD
];

/// The Linux key code of a folded set-1 scancode; `None` (with a debug line) for codes no PC
/// keyboard sends, so a client cannot make the device emit an undeclared code.
pub fn linux_key(scancode: u16) -> Option<u16> {
    match SET1_TO_LINUX.binary_search_by_key(&scancode, |&(sc, _)| sc) {
        Ok(i) => SET1_TO_LINUX.get(i).map(|&(_, key)| key),
        Err(_) => {
            debug!("virtio-input: ignoring unknown set-1 scancode {scancode:#05x}");
            None
        }
    }
}

/// What one byte of a set-1 stream completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A make or break code.
    Key { scancode: u16, pressed: bool },
    /// A key that sends one byte for press and release alike (Hanja, Hangeul): both at once.
    Tap { scancode: u16 },
}

/// Decodes a PC set-1 byte stream (the bytes of SPICE KEY_DOWN / KEY_UP / KEY_SCANCODE) the way
/// a PS/2 keyboard controller's consumer would, one client at a time: prefixes may arrive in
/// one message and the code in the next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Set1Decoder {
    state: DecodeState,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum DecodeState {
    #[default]
    Idle,
    ExpectExtended,
    /// After `E1`: the first byte of the two that follow, once seen.
    ExpectPause(Option<u8>),
}

impl Set1Decoder {
    /// Whether the decoder is between keys (no prefix pending).
    pub fn is_idle(&self) -> bool {
        self.state == DecodeState::Idle
    }

    pub fn feed(&mut self, byte: u8) -> Option<Decoded> {
        match self.state {
            DecodeState::Idle => match byte {
                PREFIX_E0 => {
                    self.state = DecodeState::ExpectExtended;
                    None
                }
                PREFIX_E1 => {
                    self.state = DecodeState::ExpectPause(None);
                    None
                }
                // spice-server stops at a zero byte; a stray one carries no key.
                0 => None,
                0xf1 | 0xf2 => Some(Decoded::Tap {
                    scancode: u16::from(byte),
                }),
                _ => Some(Decoded::Key {
                    scancode: u16::from(byte & !BREAK_BIT),
                    pressed: byte & BREAK_BIT == 0,
                }),
            },
            DecodeState::ExpectExtended => {
                self.state = DecodeState::Idle;
                match byte & !BREAK_BIT {
                    // Fake shifts around Print Screen and the navigation keys: atkbd drops
                    // them, and so do we (they would press a shift the user never pressed).
                    0x2a | 0x36 => None,
                    code => Some(Decoded::Key {
                        scancode: EXTENDED | u16::from(code),
                        pressed: byte & BREAK_BIT == 0,
                    }),
                }
            }
            DecodeState::ExpectPause(None) => {
                self.state = DecodeState::ExpectPause(Some(byte));
                None
            }
            DecodeState::ExpectPause(Some(first)) => {
                self.state = DecodeState::Idle;
                match (first, byte) {
                    (0x1d, 0x45) => Some(Decoded::Key {
                        scancode: PAUSE_SCANCODE,
                        pressed: true,
                    }),
                    (0x9d, 0xc5) => Some(Decoded::Key {
                        scancode: PAUSE_SCANCODE,
                        pressed: false,
                    }),
                    _ => {
                        debug!("virtio-input: ignoring E1 {first:#04x} {byte:#04x}");
                        None
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "keymap_tests.rs"]
mod tests;
