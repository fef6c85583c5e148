//! The virtio-input device model: client input → evdev event groups, who holds which key,
//! guest LED state, and the pending queue. No vhost types.
//!
//! One device is a keyboard and an absolute tablet at once (one vhost-user socket is one
//! virtio device). Linux handles that as one evdev node: udev's `input_id` builtin
//! (`systemd/systemd: src/udev/udev-builtin-input_id.c`) tags it ID_INPUT_KEYBOARD (all of
//! KEY_ESC..KEY_S are declared) *and* ID_INPUT_MOUSE (ABS_X/ABS_Y with BTN_LEFT and neither
//! BTN_TOUCH, BTN_STYLUS/BTN_TOOL_PEN nor INPUT_PROP_DIRECT: the "absolute mouse" path taken by
//! VMware's and QEMU's tablets); no keyboard code falls in the joystick ranges (BTN_1,
//! BTN_TRIGGER, BTN_A), which `protocol_tests` checks. libinput and X then give the node both
//! a keyboard and a pointer capability.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use tracing::{debug, warn};

use super::error::InputError;
use super::keymap::{self, Decoded, Set1Decoder, EXTENDED};
use super::protocol::{
    ev, DevIds, Identity, VirtioInputEvent, ABS_MAX, ABS_X, ABS_Y, BUS_VIRTUAL, BUTTONS,
    KEY_CAPSLOCK, KEY_NUMLOCK, KEY_SCROLLLOCK, LED_CAPSL, LED_NUML, LED_SCROLLL, MAX_ID_STRING,
    MSC_SCAN, REL_HWHEEL, REL_WHEEL,
};
use super::queue::{EventQueue, GroupKind, QueueStats};
use crate::guest::{lock_modifiers, InputClientId, InputEvent};
use crate::virtio::ratelimit::RateLimiter;

/// QEMU's PCI vendor id, which its virtio input devices also report.
pub const DEFAULT_VENDOR: u16 = 0x0627;
/// A product id QEMU's own virtio keyboard (1), mouse (2) and tablet (3) do not use, so hwdb
/// rules written for those never match this combined device by accident.
pub const DEFAULT_PRODUCT: u16 = 0x5350;
/// Until the display size is first set: the virtio-gpu default mode.
pub const DEFAULT_DISPLAY_SIZE: (u32, u32) = (1280, 800);

/// The device's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputConfig {
    /// ID_NAME; at most 63 bytes.
    pub name: String,
    /// ID_SERIAL (the evdev `uniq`); empty for none; at most 63 bytes.
    pub serial: String,
    pub devids: DevIds,
    /// Pointer positions are scaled over this until `set_display_size`.
    pub display_size: (u32, u32),
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            name: "vhost-user-spice keyboard and tablet".to_owned(),
            serial: String::new(),
            devids: DevIds {
                bustype: BUS_VIRTUAL,
                vendor: DEFAULT_VENDOR,
                product: DEFAULT_PRODUCT,
                version: 1,
            },
            display_size: DEFAULT_DISPLAY_SIZE,
        }
    }
}

impl InputConfig {
    pub fn validate(&self) -> Result<(), InputError> {
        if self.name.is_empty() || self.name.len() > MAX_ID_STRING {
            return Err(InputError::InvalidConfig("name must be 1 to 63 bytes"));
        }
        if self.serial.len() > MAX_ID_STRING {
            return Err(InputError::InvalidConfig("serial must be at most 63 bytes"));
        }
        Ok(())
    }
}

/// The lock keys: SPICE modifier bit, guest LED, key code, set-1 scancode.
const LOCKS: [(u16, u16, u16, u16); 3] = [
    (
        lock_modifiers::SCROLL_LOCK,
        LED_SCROLLL,
        KEY_SCROLLLOCK,
        0x46,
    ),
    (lock_modifiers::NUM_LOCK, LED_NUML, KEY_NUMLOCK, 0x45),
    (lock_modifiers::CAPS_LOCK, LED_CAPSL, KEY_CAPSLOCK, 0x3a),
];

/// Kinds of guest-triggered log lines, rate-limited separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogKind {
    Overflow,
    BadEventBuffer,
    BadStatus,
    BadConfigSelect,
}

/// What one client holds, and where its scancode stream stands.
#[derive(Debug, Default)]
struct ClientState {
    decoder: Set1Decoder,
    /// Held keys: Linux code → the folded scancode that pressed it (for MSC_SCAN).
    keys: BTreeMap<u16, u16>,
    /// SPICE button mask, restricted to [`BUTTONS`].
    buttons: u32,
}

impl ClientState {
    fn is_idle(&self) -> bool {
        self.decoder.is_idle() && self.keys.is_empty() && self.buttons == 0
    }
}

/// Counters for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputStats {
    pub queue: QueueStats,
    pub bad_event_buffers: u64,
    pub bad_status_buffers: u64,
}

#[derive(Debug)]
pub struct InputDevice {
    identity: Identity,
    display: (u32, u32),
    /// Clients that hold something or are mid-sequence; idle ones are forgotten, so the map is
    /// bounded by what clients hold, not by how many ever connected.
    clients: HashMap<InputClientId, ClientState>,
    /// Guest LEDs as last reported on the status queue ([`lock_modifiers`] bits).
    reported_locks: u16,
    /// What the guest's locks will be once the toggles we queued are processed.
    expected_locks: u16,
    queue: EventQueue,
    stats: InputStats,
    limiter: RateLimiter<LogKind>,
}

impl InputDevice {
    pub fn new(config: &InputConfig) -> Result<Self, InputError> {
        config.validate()?;
        Ok(Self {
            identity: Identity {
                name: config.name.clone(),
                serial: config.serial.clone(),
                devids: config.devids,
            },
            display: config.display_size,
            clients: HashMap::new(),
            reported_locks: 0,
            expected_locks: 0,
            queue: EventQueue::default(),
            stats: InputStats::default(),
            limiter: RateLimiter::default(),
        })
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn queue(&mut self) -> &mut EventQueue {
        &mut self.queue
    }

    pub fn stats(&self) -> InputStats {
        InputStats {
            queue: self.queue.stats(),
            ..self.stats
        }
    }

    pub fn guest_locks(&self) -> u16 {
        self.reported_locks
    }

    pub fn set_display_size(&mut self, width: u32, height: u32) {
        self.display = (width, height);
    }

    /// A new guest driver (new connection or device reset): nothing is pressed in it and its
    /// LEDs are off, and events queued for the old one are meaningless. Returns whether the
    /// reported LED state changed.
    pub fn reset_guest(&mut self) -> bool {
        self.queue.clear();
        for client in self.clients.values_mut() {
            client.keys.clear();
            client.buttons = 0;
        }
        self.clients.retain(|_, c| !c.is_idle());
        self.expected_locks = 0;
        std::mem::replace(&mut self.reported_locks, 0) != 0
    }

    /// Handles one client event; returns whether events wait for the guest.
    pub fn input(&mut self, client: InputClientId, event: InputEvent) -> bool {
        match event {
            InputEvent::Key { scancode, pressed } => self.key(client, scancode, pressed),
            InputEvent::ScancodeByte(byte) => {
                let decoded = self.clients.entry(client).or_default().decoder.feed(byte);
                match decoded {
                    Some(Decoded::Key { scancode, pressed }) => self.key(client, scancode, pressed),
                    Some(Decoded::Tap { scancode }) => {
                        self.key(client, scancode, true);
                        self.key(client, scancode, false);
                    }
                    None => {}
                }
            }
            InputEvent::PointerPosition { x, y } => self.pointer(x, y),
            InputEvent::Buttons { mask } => self.buttons(client, mask),
            InputEvent::Wheel {
                vertical,
                horizontal,
            } => self.wheel(vertical, horizontal),
            InputEvent::LockModifiers { modifiers } => self.sync_locks(modifiers),
        }
        self.forget_if_idle(client);
        !self.queue.is_empty()
    }

    /// Releases every key and button `client` holds (it disconnected).
    pub fn release_all_from(&mut self, client: InputClientId) {
        let keys: Vec<u16> = self
            .clients
            .get(&client)
            .map(|c| c.keys.keys().copied().collect())
            .unwrap_or_default();
        for key in keys {
            self.release(client, key);
        }
        self.buttons(client, 0);
        self.clients.remove(&client);
    }

    /// One event from the status queue; returns the new LED state if it changed.
    pub fn handle_status(&mut self, event: VirtioInputEvent) -> Result<Option<u16>, InputError> {
        match (event.kind, LOCKS.iter().find(|l| l.1 == event.code)) {
            (ev::LED, Some(&(bit, ..))) => {
                let before = self.reported_locks;
                if event.value != 0 {
                    self.reported_locks |= bit;
                } else {
                    self.reported_locks &= !bit;
                }
                self.expected_locks = self.reported_locks;
                Ok((self.reported_locks != before).then_some(self.reported_locks))
            }
            // Bell and click requests: nothing to ring. Repeat rate and delay: Linux forwards
            // every EV_REP the guest sets (kbd rate, `xset r rate`) to the device; the guest
            // kernel repeats by itself, so there is nothing to apply.
            (ev::SND | ev::REP, _) => Ok(None),
            // Our own MSC_SCAN, echoed: the input core passes EV_MSC to the device as well as to
            // the handlers, and Linux's virtio_input forwards every EV_MSC except MSC_TIMESTAMP
            // to the status queue, so each key event comes back once (seen with Linux 6.12).
            (ev::MSC, _) if event.code == MSC_SCAN => Ok(None),
            _ => Err(InputError::UnsupportedStatus {
                kind: event.kind,
                code: event.code,
            }),
        }
    }

    /// Counts and logs (rate-limited) a guest misbehaviour.
    pub fn log_guest_error(&mut self, kind: LogKind, error: &InputError) {
        match kind {
            LogKind::BadEventBuffer => self.stats.bad_event_buffers += 1,
            LogKind::BadStatus => self.stats.bad_status_buffers += 1,
            LogKind::Overflow | LogKind::BadConfigSelect => {}
        }
        if let Some(suppressed) = self.limiter.allow(kind, Instant::now()) {
            warn!("virtio-input: {error} ({suppressed} similar lines suppressed)");
        }
    }

    fn forget_if_idle(&mut self, client: InputClientId) {
        if self.clients.get(&client).is_some_and(ClientState::is_idle) {
            self.clients.remove(&client);
        }
    }

    fn held_by_anyone(&self, key: u16) -> bool {
        self.clients.values().any(|c| c.keys.contains_key(&key))
    }

    fn key(&mut self, client: InputClientId, scancode: u16, pressed: bool) {
        let Some(key) = keymap::linux_key(scancode) else {
            return;
        };
        if pressed {
            let others = self.held_by_anyone(key);
            let state = self.clients.entry(client).or_default();
            // A client's own autorepeat: the guest repeats held keys itself (EV_REP).
            if state.keys.insert(key, scancode).is_none() && !others {
                self.push_key(key, scancode, true);
            }
        } else {
            self.release(client, key);
        }
    }

    fn release(&mut self, client: InputClientId, key: u16) {
        let Some(scancode) = self
            .clients
            .get_mut(&client)
            .and_then(|c| c.keys.remove(&key))
        else {
            debug!("virtio-input: {client:?} released key {key}, which it does not hold");
            return;
        };
        if !self.held_by_anyone(key) {
            self.push_key(key, scancode, false);
        }
    }

    fn push_key(&mut self, key: u16, scancode: u16, pressed: bool) {
        // MSC_SCAN carries the scancode as keymaps.csv writes it (E0 prefix as 0xe0xx).
        let raw = if scancode & EXTENDED != 0 {
            0xe000 | u32::from(scancode & 0xff)
        } else {
            u32::from(scancode)
        };
        let kind = if pressed {
            GroupKind::Press(key)
        } else {
            GroupKind::Release(key)
        };
        self.push(
            kind,
            vec![
                VirtioInputEvent::new(ev::MSC, MSC_SCAN, raw),
                VirtioInputEvent::new(ev::KEY, key, u32::from(pressed)),
                VirtioInputEvent::syn(),
            ],
        );
    }

    fn pointer(&mut self, x: u32, y: u32) {
        let (width, height) = self.display;
        let events = vec![
            VirtioInputEvent::new(ev::ABS, ABS_X, scale(x, width)),
            VirtioInputEvent::new(ev::ABS, ABS_Y, scale(y, height)),
            VirtioInputEvent::syn(),
        ];
        self.push(GroupKind::Motion, events);
    }

    fn buttons(&mut self, client: InputClientId, mask: u32) {
        let known = BUTTONS.iter().fold(0, |m, &(bit, _)| m | bit);
        let union = |clients: &HashMap<InputClientId, ClientState>| {
            clients.values().fold(0, |m, c| m | c.buttons)
        };
        let before = union(&self.clients);
        self.clients.entry(client).or_default().buttons = mask & known;
        let after = union(&self.clients);
        for &(bit, code) in &BUTTONS {
            if (before ^ after) & bit != 0 {
                let pressed = after & bit != 0;
                let kind = if pressed {
                    GroupKind::Press(code)
                } else {
                    GroupKind::Release(code)
                };
                let events = vec![
                    VirtioInputEvent::new(ev::KEY, code, u32::from(pressed)),
                    VirtioInputEvent::syn(),
                ];
                self.push(kind, events);
            }
        }
    }

    fn wheel(&mut self, vertical: i32, horizontal: i32) {
        let mut events = Vec::new();
        // SPICE "up" is negative here; evdev REL_WHEEL is positive away from the user.
        if vertical != 0 {
            events.push(VirtioInputEvent::new(
                ev::REL,
                REL_WHEEL,
                u32::from_le_bytes(vertical.saturating_neg().to_le_bytes()),
            ));
        }
        if horizontal != 0 {
            events.push(VirtioInputEvent::new(
                ev::REL,
                REL_HWHEEL,
                u32::from_le_bytes(horizontal.to_le_bytes()),
            ));
        }
        if !events.is_empty() {
            events.push(VirtioInputEvent::syn());
            self.push(GroupKind::Wheel, events);
        }
    }

    /// Toggles each guest lock that differs from the client's, as spice-server does on
    /// KEY_MODIFIERS, by a synthesised press and release of its key.
    fn sync_locks(&mut self, wanted: u16) {
        for &(bit, _, key, scancode) in &LOCKS {
            if (self.expected_locks ^ wanted) & bit != 0 && !self.held_by_anyone(key) {
                self.push_key(key, scancode, true);
                self.push_key(key, scancode, false);
                self.expected_locks ^= bit;
            }
        }
    }

    fn push(&mut self, kind: GroupKind, events: Vec<VirtioInputEvent>) {
        let dropped = self.queue.push(kind, events);
        if dropped.any() {
            let error = InputError::QueueOverflow {
                motion: dropped.motion,
                presses: dropped.presses,
            };
            self.log_guest_error(LogKind::Overflow, &error);
        }
    }
}

/// A display coordinate to the tablet's 0..=32767 range: `x * 32767 / (size - 1)`, so the
/// first and last pixels map to the ends of the axis; positions past the edge are clamped.
pub fn scale(position: u32, size: u32) -> u32 {
    let Some(last) = size.checked_sub(1).filter(|&l| l > 0) else {
        return 0;
    };
    let scaled = u64::from(position.min(last)) * u64::from(ABS_MAX) / u64::from(last);
    u32::try_from(scaled).unwrap_or(ABS_MAX)
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
