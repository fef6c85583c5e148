//! virtio-input wire formats: the 136-byte config space with its select protocol, the 8-byte
//! event, and the evdev codes this device declares.
//!
//! Spec: OASIS virtio 1.2 §5.8 "Input Device"; Linux `include/uapi/linux/virtio_input.h`,
//! `include/uapi/linux/input-event-codes.h`, `drivers/virtio/virtio_input.c`.

use super::keymap::SET1_TO_LINUX;

/// `sizeof(struct virtio_input_config)`: select, subsel, size, 5 reserved, 128-byte union.
pub const CONFIG_SIZE: usize = 136;
/// Offset of the union in the config space.
pub const CONFIG_PAYLOAD_OFFSET: usize = 8;
/// Size of the union; also the longest answer.
pub const CONFIG_PAYLOAD_SIZE: usize = 128;
/// Offset of `select`, written by the driver.
pub const CONFIG_SELECT_OFFSET: usize = 0;
/// Offset of `subsel`, written by the driver.
pub const CONFIG_SUBSEL_OFFSET: usize = 1;
/// Offset of `size`, read by the driver.
pub const CONFIG_SIZE_OFFSET: usize = 2;

/// `enum virtio_input_config_select`.
pub mod select {
    pub const UNSET: u8 = 0x00;
    pub const ID_NAME: u8 = 0x01;
    pub const ID_SERIAL: u8 = 0x02;
    pub const ID_DEVIDS: u8 = 0x03;
    pub const PROP_BITS: u8 = 0x10;
    pub const EV_BITS: u8 = 0x11;
    pub const ABS_INFO: u8 = 0x12;
}

/// evdev event types (`EV_*`).
pub mod ev {
    pub const SYN: u16 = 0x00;
    pub const KEY: u16 = 0x01;
    pub const REL: u16 = 0x02;
    pub const ABS: u16 = 0x03;
    pub const MSC: u16 = 0x04;
    pub const LED: u16 = 0x11;
    pub const SND: u16 = 0x12;
    pub const REP: u16 = 0x14;
}

/// `SYN_REPORT`: ends one group of events that belong together.
pub const SYN_REPORT: u16 = 0;
/// `MSC_SCAN`: the raw scancode, sent before the key event as PC keyboards do.
pub const MSC_SCAN: u16 = 0x04;
pub const ABS_X: u16 = 0x00;
pub const ABS_Y: u16 = 0x01;
pub const REL_HWHEEL: u16 = 0x06;
pub const REL_WHEEL: u16 = 0x08;
pub const LED_NUML: u16 = 0x00;
pub const LED_CAPSL: u16 = 0x01;
pub const LED_SCROLLL: u16 = 0x02;
pub const KEY_NUMLOCK: u16 = 69;
pub const KEY_CAPSLOCK: u16 = 58;
pub const KEY_SCROLLLOCK: u16 = 70;
pub const BTN_LEFT: u16 = 0x110;
pub const BTN_RIGHT: u16 = 0x111;
pub const BTN_MIDDLE: u16 = 0x112;
pub const BTN_SIDE: u16 = 0x113;
pub const BTN_EXTRA: u16 = 0x114;
/// `BUS_VIRTUAL`, the bus type Linux assumes when ID_DEVIDS is absent.
pub const BUS_VIRTUAL: u16 = 0x06;
/// Top of the tablet axes: 15 bits, as QEMU's virtio tablet (`INPUT_EVENT_ABS_MAX`).
pub const ABS_MAX: u32 = 0x7fff;
/// Linux copies at most 64 bytes of name and serial (`virtinput_probe`), NUL included.
pub const MAX_ID_STRING: usize = 63;

/// The mouse buttons, in SPICE button-mask bit order (bit 0 left, 1 middle, 2 right; bits 3
/// and 4 are the wheel; 5 side, 6 extra): `(mask bit, evdev code)`.
pub const BUTTONS: [(u32, u16); 5] = [
    (1 << 0, BTN_LEFT),
    (1 << 1, BTN_MIDDLE),
    (1 << 2, BTN_RIGHT),
    (1 << 5, BTN_SIDE),
    (1 << 6, BTN_EXTRA),
];

/// `struct virtio_input_event`: three little-endian fields, 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioInputEvent {
    pub kind: u16,
    pub code: u16,
    pub value: u32,
}

impl VirtioInputEvent {
    pub const SIZE: usize = 8;

    pub const fn new(kind: u16, code: u16, value: u32) -> Self {
        Self { kind, code, value }
    }

    pub const fn syn() -> Self {
        Self::new(ev::SYN, SYN_REPORT, 0)
    }

    pub fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        let (kind, rest) = out.split_at_mut(2);
        let (code, value) = rest.split_at_mut(2);
        kind.copy_from_slice(&self.kind.to_le_bytes());
        code.copy_from_slice(&self.code.to_le_bytes());
        value.copy_from_slice(&self.value.to_le_bytes());
        out
    }

    pub fn from_bytes(bytes: [u8; Self::SIZE]) -> Self {
        let [k0, k1, c0, c1, v0, v1, v2, v3] = bytes;
        Self {
            kind: u16::from_le_bytes([k0, k1]),
            code: u16::from_le_bytes([c0, c1]),
            value: u32::from_le_bytes([v0, v1, v2, v3]),
        }
    }
}

/// `virtio_input_devids`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevIds {
    pub bustype: u16,
    pub vendor: u16,
    pub product: u16,
    pub version: u16,
}

/// What the device reports about itself through the select protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// At most [`MAX_ID_STRING`] bytes (checked by `InputConfig::validate`).
    pub name: String,
    /// Empty: no serial (size 0).
    pub serial: String,
    pub devids: DevIds,
}

/// The answer to one (select, subsel) pair: the union bytes; empty means "size 0",
/// i.e. unsupported. Never longer than [`CONFIG_PAYLOAD_SIZE`].
pub fn config_payload(identity: &Identity, select: u8, subsel: u8) -> Vec<u8> {
    match (select, subsel) {
        (select::ID_NAME, 0) => id_string(&identity.name),
        (select::ID_SERIAL, 0) => id_string(&identity.serial),
        (select::ID_DEVIDS, 0) => {
            let d = identity.devids;
            [d.bustype, d.vendor, d.product, d.version]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect()
        }
        // No INPUT_PROP_DIRECT (would make udev call it a touchscreen), like QEMU's tablet.
        (select::PROP_BITS, 0) => Vec::new(),
        (select::EV_BITS, kind) => ev_bits(u16::from(kind)),
        (select::ABS_INFO, axis) if u16::from(axis) == ABS_X || u16::from(axis) == ABS_Y => {
            // min, max, fuzz, flat, res.
            [0, ABS_MAX, 0, 0, 0]
                .iter()
                .flat_map(|v: &u32| v.to_le_bytes())
                .collect()
        }
        _ => Vec::new(),
    }
}

fn id_string(s: &str) -> Vec<u8> {
    s.as_bytes().iter().take(MAX_ID_STRING).copied().collect()
}

/// The code bitmap for one event type, trimmed after its highest set bit (Linux treats a
/// non-zero size as "type supported").
fn ev_bits(kind: u16) -> Vec<u8> {
    let codes: Vec<u16> = match kind {
        ev::KEY => SET1_TO_LINUX
            .iter()
            .map(|&(_, key)| key)
            .chain(BUTTONS.iter().map(|&(_, code)| code))
            .collect(),
        ev::REL => vec![REL_HWHEEL, REL_WHEEL],
        ev::ABS => vec![ABS_X, ABS_Y],
        ev::MSC => vec![MSC_SCAN],
        ev::LED => vec![LED_NUML, LED_CAPSL, LED_SCROLLL],
        // Size 1 with no bits: "autorepeat supported"; the guest kernel repeats held keys, so
        // the device sends only presses and releases.
        ev::REP => return vec![0],
        _ => Vec::new(),
    };
    bitmap(&codes)
}

fn bitmap(codes: &[u16]) -> Vec<u8> {
    let mut out = Vec::new();
    for &code in codes {
        let byte = usize::from(code / 8);
        if byte >= CONFIG_PAYLOAD_SIZE {
            continue; // Unreachable with our codes (all below 0x400); kept total.
        }
        if out.len() <= byte {
            out.resize(byte + 1, 0);
        }
        if let Some(b) = out.get_mut(byte) {
            *b |= 1 << (code % 8);
        }
    }
    out
}

/// The whole config space for the current selection: the bytes QEMU reads in one go.
pub fn config_space(identity: &Identity, select: u8, subsel: u8) -> [u8; CONFIG_SIZE] {
    let payload = config_payload(identity, select, subsel);
    let mut out = [0; CONFIG_SIZE];
    out[CONFIG_SELECT_OFFSET] = select;
    out[CONFIG_SUBSEL_OFFSET] = subsel;
    // `config_payload` never exceeds the 128-byte union.
    out[CONFIG_SIZE_OFFSET] = u8::try_from(payload.len()).unwrap_or(0);
    for (dst, src) in out
        .iter_mut()
        .skip(CONFIG_PAYLOAD_OFFSET)
        .zip(payload.iter())
    {
        *dst = *src;
    }
    out
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
