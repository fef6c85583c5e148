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

/// An input event as the guest-facing input device takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputEvent {
    /// A PC set-1 scancode (with its E0 prefix folded into bit 8, 0x100) pressed or released.
    Key { scancode: u16, pressed: bool },
    /// Absolute pointer position in guest display pixels.
    PointerPosition { x: u32, y: u32 },
    /// Pointer button state, SPICE button mask (bit 0 left, 1 middle, 2 right, 3 up, 4 down, ...).
    Buttons { mask: u32 },
    /// Wheel steps: negative is up / left.
    Wheel { vertical: i32, horizontal: i32 },
}

/// Receives input from the network side.
pub trait InputSink: Send + Sync {
    fn input(&self, event: InputEvent);
}
