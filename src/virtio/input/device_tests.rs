//! The device model: what events client input becomes, per-client holds, LEDs.

use super::*;
use crate::virtio::input::protocol::{BTN_LEFT, BTN_MIDDLE, BTN_RIGHT, BTN_SIDE, SYN_REPORT};

const A: InputClientId = InputClientId(1);
const B: InputClientId = InputClientId(2);
const KEY_LEFTCTRL: u16 = 29;
const KEY_LEFTALT: u16 = 56;
const KEY_DELETE: u16 = 111;

fn device() -> InputDevice {
    InputDevice::new(&InputConfig::default()).expect("device")
}

fn drain(d: &mut InputDevice) -> Vec<VirtioInputEvent> {
    let mut out = Vec::new();
    while let Some(e) = d.queue().front() {
        out.push(e);
        d.queue().advance();
    }
    out
}

fn e(kind: u16, code: u16, value: u32) -> VirtioInputEvent {
    VirtioInputEvent::new(kind, code, value)
}

fn syn() -> VirtioInputEvent {
    VirtioInputEvent::syn()
}

fn key_events(events: &[VirtioInputEvent]) -> Vec<(u16, u32)> {
    events
        .iter()
        .filter(|e| e.kind == ev::KEY)
        .map(|e| (e.code, e.value))
        .collect()
}

fn key(d: &mut InputDevice, client: InputClientId, scancode: u16, pressed: bool) {
    d.input(client, InputEvent::Key { scancode, pressed });
}

fn bytes(d: &mut InputDevice, client: InputClientId, bytes: &[u8]) {
    for &b in bytes {
        d.input(client, InputEvent::ScancodeByte(b));
    }
}

#[test]
fn key_press_and_release_are_scan_key_syn_groups() {
    let mut d = device();
    assert!(d.input(
        A,
        InputEvent::Key {
            scancode: 0x1e,
            pressed: true
        }
    ));
    key(&mut d, A, 0x1e, false);
    assert_eq!(
        drain(&mut d),
        [
            e(ev::MSC, MSC_SCAN, 0x1e),
            e(ev::KEY, 30, 1),
            syn(),
            e(ev::MSC, MSC_SCAN, 0x1e),
            e(ev::KEY, 30, 0),
            syn(),
        ]
    );
}

#[test]
fn extended_keys_from_scancode_bytes() {
    let mut d = device();
    // Right Ctrl, Up arrow, keypad Enter, as spice-gtk packs them in KEY_DOWN/KEY_UP.
    bytes(&mut d, A, &[0xe0, 0x1d, 0xe0, 0x9d]);
    bytes(&mut d, A, &[0xe0, 0x48, 0xe0, 0xc8]);
    bytes(&mut d, A, &[0xe0, 0x1c, 0xe0, 0x9c]);
    let out = drain(&mut d);
    assert_eq!(
        key_events(&out),
        [(97, 1), (97, 0), (103, 1), (103, 0), (96, 1), (96, 0)]
    );
    assert_eq!(out[0], e(ev::MSC, MSC_SCAN, 0xe01d));
}

#[test]
fn ctrl_alt_del_reaches_the_guest_in_order() {
    let mut d = device();
    bytes(&mut d, A, &[0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d]);
    assert_eq!(
        key_events(&drain(&mut d)),
        [
            (KEY_LEFTCTRL, 1),
            (KEY_LEFTALT, 1),
            (KEY_DELETE, 1),
            (KEY_DELETE, 0),
            (KEY_LEFTALT, 0),
            (KEY_LEFTCTRL, 0),
        ]
    );
}

#[test]
fn unknown_scancodes_send_nothing() {
    let mut d = device();
    key(&mut d, A, 0x17f, true);
    bytes(&mut d, A, &[0xe0, 0x2a]);
    assert!(drain(&mut d).is_empty());
}

#[test]
fn client_autorepeat_is_not_forwarded() {
    let mut d = device();
    for _ in 0..5 {
        key(&mut d, A, 0x1e, true);
    }
    key(&mut d, A, 0x1e, false);
    assert_eq!(key_events(&drain(&mut d)), [(30, 1), (30, 0)]);
}

#[test]
fn pointer_position_scales_over_the_display() {
    let mut d = device();
    d.set_display_size(1280, 800);
    d.input(A, InputEvent::PointerPosition { x: 640, y: 400 });
    assert_eq!(
        drain(&mut d),
        [e(ev::ABS, ABS_X, 16396), e(ev::ABS, ABS_Y, 16404), syn()]
    );
    d.input(A, InputEvent::PointerPosition { x: 1279, y: 0 });
    assert_eq!(
        drain(&mut d)[..2],
        [e(ev::ABS, ABS_X, 32767), e(ev::ABS, ABS_Y, 0)]
    );
    // Past the edge: clamped.
    d.input(A, InputEvent::PointerPosition { x: 5000, y: 5000 });
    assert_eq!(
        drain(&mut d)[..2],
        [e(ev::ABS, ABS_X, 32767), e(ev::ABS, ABS_Y, 32767)]
    );
    // A mode change rescales.
    d.set_display_size(800, 600);
    d.input(A, InputEvent::PointerPosition { x: 799, y: 599 });
    assert_eq!(
        drain(&mut d)[..2],
        [e(ev::ABS, ABS_X, 32767), e(ev::ABS, ABS_Y, 32767)]
    );
}

#[test]
fn scale_handles_degenerate_sizes() {
    assert_eq!(scale(0, 0), 0);
    assert_eq!(scale(10, 1), 0);
    assert_eq!(scale(u32::MAX, u32::MAX), 32767);
    assert_eq!(scale(1, 2), 32767);
}

#[test]
fn wheel_steps() {
    let mut d = device();
    d.input(
        A,
        InputEvent::Wheel {
            vertical: -1,
            horizontal: 0,
        },
    );
    d.input(
        A,
        InputEvent::Wheel {
            vertical: 1,
            horizontal: 0,
        },
    );
    d.input(
        A,
        InputEvent::Wheel {
            vertical: 0,
            horizontal: -2,
        },
    );
    d.input(
        A,
        InputEvent::Wheel {
            vertical: 0,
            horizontal: 0,
        },
    );
    assert_eq!(
        drain(&mut d),
        [
            e(ev::REL, REL_WHEEL, 1),
            syn(),
            e(ev::REL, REL_WHEEL, u32::MAX),
            syn(),
            e(ev::REL, REL_HWHEEL, (-2i32) as u32),
            syn(),
        ]
    );
}

#[test]
fn buttons_follow_the_spice_mask() {
    let mut d = device();
    d.input(A, InputEvent::Buttons { mask: 1 });
    d.input(A, InputEvent::Buttons { mask: 1 | 4 });
    // Wheel bits (8, 16) are not buttons.
    d.input(A, InputEvent::Buttons { mask: 4 | 8 | 16 });
    d.input(A, InputEvent::Buttons { mask: 2 | 32 });
    d.input(A, InputEvent::Buttons { mask: 0 });
    let out = drain(&mut d);
    assert_eq!(
        key_events(&out),
        [
            (BTN_LEFT, 1),
            (BTN_RIGHT, 1),
            (BTN_LEFT, 0),
            (BTN_MIDDLE, 1),
            (BTN_RIGHT, 0),
            (BTN_SIDE, 1),
            (BTN_MIDDLE, 0),
            (BTN_SIDE, 0),
        ]
    );
    assert_eq!(
        out[..2],
        [e(ev::KEY, BTN_LEFT, 1), e(ev::SYN, SYN_REPORT, 0)]
    );
}

#[test]
fn a_key_held_by_two_clients_is_released_when_both_let_go() {
    let mut d = device();
    key(&mut d, A, 0x2a, true);
    key(&mut d, B, 0x2a, true);
    key(&mut d, A, 0x2a, false);
    assert_eq!(key_events(&drain(&mut d)), [(42, 1)]);
    key(&mut d, B, 0x2a, false);
    assert_eq!(key_events(&drain(&mut d)), [(42, 0)]);
    // A release from a client that holds nothing is ignored.
    key(&mut d, A, 0x2a, false);
    assert!(drain(&mut d).is_empty());
}

#[test]
fn disconnecting_client_releases_its_keys_and_buttons_only() {
    let mut d = device();
    bytes(&mut d, A, &[0x1d, 0x38]);
    key(&mut d, B, 0x1d, true);
    key(&mut d, B, 0x1e, true);
    d.input(A, InputEvent::Buttons { mask: 1 });
    drain(&mut d);
    d.release_all_from(A);
    // Ctrl stays down: B holds it too.
    assert_eq!(
        key_events(&drain(&mut d)),
        [(KEY_LEFTALT, 0), (BTN_LEFT, 0)]
    );
    d.release_all_from(B);
    assert_eq!(key_events(&drain(&mut d)), [(KEY_LEFTCTRL, 0), (30, 0)]);
    d.release_all_from(B);
    assert!(drain(&mut d).is_empty());
    assert!(d.clients.is_empty(), "idle clients are forgotten");
}

#[test]
fn leds_come_from_the_status_queue() {
    let mut d = device();
    assert_eq!(d.guest_locks(), 0);
    let on = |code| VirtioInputEvent::new(ev::LED, code, 1);
    assert_eq!(
        d.handle_status(on(LED_CAPSL)).ok(),
        Some(Some(lock_modifiers::CAPS_LOCK))
    );
    assert_eq!(d.handle_status(on(LED_CAPSL)).ok(), Some(None), "unchanged");
    assert_eq!(
        d.handle_status(on(LED_NUML)).ok(),
        Some(Some(lock_modifiers::CAPS_LOCK | lock_modifiers::NUM_LOCK))
    );
    let off = VirtioInputEvent::new(ev::LED, LED_CAPSL, 0);
    assert_eq!(
        d.handle_status(off).ok(),
        Some(Some(lock_modifiers::NUM_LOCK))
    );
    assert_eq!(
        d.handle_status(VirtioInputEvent::new(ev::SND, 1, 1)).ok(),
        Some(None)
    );
    assert_eq!(
        d.handle_status(VirtioInputEvent::new(ev::REP, 0, 250)).ok(),
        Some(None),
        "repeat-rate changes are taken quietly"
    );
    assert_eq!(
        d.handle_status(VirtioInputEvent::new(ev::MSC, MSC_SCAN, 0x1e))
            .ok(),
        Some(None),
        "Linux echoes every MSC_SCAN the device sends"
    );
    assert!(d
        .handle_status(VirtioInputEvent::new(ev::LED, 9, 1))
        .is_err());
    assert!(d
        .handle_status(VirtioInputEvent::new(ev::KEY, 30, 1))
        .is_err());
    assert_eq!(d.guest_locks(), lock_modifiers::NUM_LOCK);
}

#[test]
fn lock_modifiers_toggle_only_the_locks_that_differ() {
    let mut d = device();
    d.handle_status(VirtioInputEvent::new(ev::LED, LED_NUML, 1))
        .expect("led");
    d.input(
        A,
        InputEvent::LockModifiers {
            modifiers: lock_modifiers::CAPS_LOCK | lock_modifiers::NUM_LOCK,
        },
    );
    assert_eq!(
        key_events(&drain(&mut d)),
        [(KEY_CAPSLOCK, 1), (KEY_CAPSLOCK, 0)]
    );
    // Asked again before the guest reported its LEDs: the toggle is not repeated.
    d.input(
        A,
        InputEvent::LockModifiers {
            modifiers: lock_modifiers::CAPS_LOCK | lock_modifiers::NUM_LOCK,
        },
    );
    assert!(drain(&mut d).is_empty());
    d.input(
        A,
        InputEvent::LockModifiers {
            modifiers: lock_modifiers::SCROLL_LOCK,
        },
    );
    assert_eq!(
        key_events(&drain(&mut d)),
        [
            (KEY_SCROLLLOCK, 1),
            (KEY_SCROLLLOCK, 0),
            (KEY_NUMLOCK, 1),
            (KEY_NUMLOCK, 0),
            (KEY_CAPSLOCK, 1),
            (KEY_CAPSLOCK, 0),
        ]
    );
}

#[test]
fn reset_forgets_queue_holds_and_leds() {
    let mut d = device();
    key(&mut d, A, 0x1e, true);
    d.handle_status(VirtioInputEvent::new(ev::LED, LED_CAPSL, 1))
        .expect("led");
    assert!(d.reset_guest(), "LED state changed");
    assert!(d.queue().is_empty());
    assert_eq!(d.guest_locks(), 0);
    // The new guest never saw the press, so no release is sent for it.
    key(&mut d, A, 0x1e, false);
    assert!(drain(&mut d).is_empty());
}

#[test]
fn config_is_validated() {
    let mut c = InputConfig {
        name: "x".repeat(64),
        ..InputConfig::default()
    };
    assert!(InputDevice::new(&c).is_err());
    c.name = String::new();
    assert!(InputDevice::new(&c).is_err());
    c.name = "ok".to_owned();
    c.serial = "s".repeat(64);
    assert!(InputDevice::new(&c).is_err());
}
