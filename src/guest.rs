//! The small traits through which the network side acts on the guest: input events and
//! display resize requests. `virtio` implements them, `spice` calls them, `main` wires them.
#![forbid(unsafe_code)]

/// One head of a requested display layout, in guest pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadRequest {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Asks the guest to change its display layout (a client resized its window).
pub trait DisplayControl: Send + Sync {
    /// Requests a new layout; the guest decides whether and when to follow it.
    fn request_layout(&self, heads: &[HeadRequest]);
}

/// One client of the input devices (a SPICE session), so that what it holds can be released
/// when it leaves and several clients can type at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputClientId(pub u64);

/// SPICE keyboard-modifier bits (`SPICE_KEYBOARD_MODIFIER_FLAGS_*`), as INPUTS_INIT,
/// KEY_MODIFIERS and the client's KEY_MODIFIERS carry them.
pub mod lock_modifiers {
    pub const SCROLL_LOCK: u16 = 1 << 0;
    pub const NUM_LOCK: u16 = 1 << 1;
    pub const CAPS_LOCK: u16 = 1 << 2;
}

/// An input event as the guest-facing input device takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputEvent {
    /// A PC set-1 scancode (with its E0 prefix folded into bit 8, 0x100) pressed or released.
    Key { scancode: u16, pressed: bool },
    /// One byte of a raw PC set-1 stream, as SPICE carries it: the bytes of KEY_DOWN / KEY_UP
    /// low byte first up to the first zero, or each byte of KEY_SCANCODE. The device decodes
    /// E0/E1 prefixes per client, as spice-server's `kbd_push_scan` consumer does.
    ScancodeByte(u8),
    /// Absolute pointer position in guest display pixels.
    PointerPosition { x: u32, y: u32 },
    /// Pointer button state, SPICE button mask (bit 0 left, 1 middle, 2 right, 3 up, 4 down, ...).
    Buttons { mask: u32 },
    /// Wheel steps: negative is up / left.
    Wheel { vertical: i32, horizontal: i32 },
    /// The client's lock-key state ([`lock_modifiers`] bits, from SPICE KEY_MODIFIERS): the
    /// device toggles each guest lock that differs by synthesising its key.
    LockModifiers { modifiers: u16 },
}

/// Receives input from the network side.
pub trait InputSink: Send + Sync {
    /// One event from `client`.
    fn input(&self, client: InputClientId, event: InputEvent);
    /// `client` is gone: release every key and button it still holds.
    fn release_all_from(&self, client: InputClientId);
    /// The guest's keyboard LEDs as [`lock_modifiers`] bits (for INPUTS_INIT); the receiver
    /// sees each change (for KEY_MODIFIERS).
    fn guest_modifiers(&self) -> tokio::sync::watch::Receiver<u16>;
}

/// One client's input session: dropping it releases what the client still holds, however the
/// session ends (error, abort, disconnect).
pub struct InputClient {
    sink: std::sync::Arc<dyn InputSink>,
    id: InputClientId,
}

impl InputClient {
    pub fn new(sink: std::sync::Arc<dyn InputSink>, id: InputClientId) -> Self {
        Self { sink, id }
    }

    pub fn id(&self) -> InputClientId {
        self.id
    }

    pub fn input(&self, event: InputEvent) {
        self.sink.input(self.id, event);
    }

    pub fn guest_modifiers(&self) -> tokio::sync::watch::Receiver<u16> {
        self.sink.guest_modifiers()
    }
}

impl Drop for InputClient {
    fn drop(&mut self) {
        self.sink.release_all_from(self.id);
    }
}
