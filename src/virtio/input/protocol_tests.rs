//! Config select answers and event encoding.

use super::*;
use crate::virtio::input::device::InputConfig;

fn identity() -> Identity {
    let c = InputConfig::default();
    Identity {
        name: c.name,
        serial: "serial-1".to_owned(),
        devids: c.devids,
    }
}

fn bit(bitmap: &[u8], code: u16) -> bool {
    bitmap
        .get(usize::from(code / 8))
        .is_some_and(|b| b & (1 << (code % 8)) != 0)
}

#[test]
fn event_round_trips_little_endian() {
    let e = VirtioInputEvent::new(ev::KEY, 0x1234, 0xdead_beef);
    let bytes = e.to_bytes();
    assert_eq!(bytes, [1, 0, 0x34, 0x12, 0xef, 0xbe, 0xad, 0xde]);
    assert_eq!(VirtioInputEvent::from_bytes(bytes), e);
}

#[test]
fn identity_strings_and_devids() {
    let id = identity();
    assert_eq!(config_payload(&id, select::ID_NAME, 0), id.name.as_bytes());
    assert_eq!(config_payload(&id, select::ID_SERIAL, 0), b"serial-1");
    assert_eq!(
        config_payload(&id, select::ID_DEVIDS, 0),
        [0x06, 0, 0x27, 0x06, 0x50, 0x53, 1, 0]
    );
    let mut no_serial = id.clone();
    no_serial.serial.clear();
    assert!(config_payload(&no_serial, select::ID_SERIAL, 0).is_empty());
}

#[test]
fn long_names_are_cut_to_what_linux_keeps() {
    let mut id = identity();
    id.name = "n".repeat(200);
    assert_eq!(config_payload(&id, select::ID_NAME, 0).len(), MAX_ID_STRING);
}

#[test]
fn no_input_properties() {
    assert!(config_payload(&identity(), select::PROP_BITS, 0).is_empty());
}

#[test]
fn key_bits_make_a_full_keyboard_and_an_absolute_mouse() {
    let keys = config_payload(&identity(), select::EV_BITS, ev::KEY as u8);
    // udev ID_INPUT_KEYBOARD: KEY_ESC..KEY_S (1..=31) all set.
    assert!((1..=31).all(|k| bit(&keys, k)));
    for b in [BTN_LEFT, BTN_RIGHT, BTN_MIDDLE, BTN_SIDE, BTN_EXTRA] {
        assert!(bit(&keys, b), "button {b:#x}");
    }
    // Trimmed after BTN_EXTRA.
    assert_eq!(keys.len(), usize::from(BTN_EXTRA / 8) + 1);
    // Not a touchscreen, tablet, pen or joystick to udev.
    const BTN_TOUCH: u16 = 0x14a;
    const BTN_TOOL_PEN: u16 = 0x140;
    const BTN_STYLUS: u16 = 0x14b;
    const BTN_1: u16 = 0x101;
    const BTN_TRIGGER: u16 = 0x120;
    const BTN_A: u16 = 0x130;
    for b in [
        BTN_TOUCH,
        BTN_TOOL_PEN,
        BTN_STYLUS,
        BTN_1,
        BTN_TRIGGER,
        BTN_A,
    ] {
        assert!(!bit(&keys, b), "{b:#x}");
    }
    // Every table code is declared.
    for &(_, key) in super::super::keymap::SET1_TO_LINUX {
        assert!(bit(&keys, key), "key {key}");
    }
}

#[test]
fn other_event_types() {
    let id = identity();
    let rel = config_payload(&id, select::EV_BITS, ev::REL as u8);
    assert!(bit(&rel, REL_WHEEL) && bit(&rel, REL_HWHEEL));
    assert_eq!(rel.len(), 2);
    assert_eq!(config_payload(&id, select::EV_BITS, ev::ABS as u8), [0b11]);
    assert_eq!(
        config_payload(&id, select::EV_BITS, ev::MSC as u8),
        [1 << MSC_SCAN]
    );
    assert_eq!(config_payload(&id, select::EV_BITS, ev::LED as u8), [0b111]);
    assert_eq!(config_payload(&id, select::EV_BITS, ev::REP as u8), [0]);
    for kind in [
        ev::SYN,
        ev::SND,
        0x05, /* EV_SW */
        0x15, /* EV_FF */
        0x1f,
        0xff,
    ] {
        assert!(
            config_payload(&id, select::EV_BITS, kind as u8).is_empty(),
            "{kind:#x}"
        );
    }
}

#[test]
fn abs_info_for_x_and_y_only() {
    let id = identity();
    let mut expected = vec![0; 20];
    expected[4..8].copy_from_slice(&0x7fffu32.to_le_bytes());
    assert_eq!(config_payload(&id, select::ABS_INFO, ABS_X as u8), expected);
    assert_eq!(config_payload(&id, select::ABS_INFO, ABS_Y as u8), expected);
    for axis in 2..=255u8 {
        assert!(config_payload(&id, select::ABS_INFO, axis).is_empty());
    }
}

#[test]
fn unsupported_combinations_have_size_zero() {
    let id = identity();
    for sel in 0..=255u8 {
        for subsel in 0..=255u8 {
            let payload = config_payload(&id, sel, subsel);
            assert!(payload.len() <= CONFIG_PAYLOAD_SIZE);
            let space = config_space(&id, sel, subsel);
            assert_eq!(usize::from(space[CONFIG_SIZE_OFFSET]), payload.len());
            assert_eq!(space[0], sel);
            assert_eq!(space[1], subsel);
            assert_eq!(&space[8..8 + payload.len()], payload.as_slice());
            let id_with_subsel = matches!(
                sel,
                select::ID_NAME | select::ID_SERIAL | select::ID_DEVIDS | select::PROP_BITS
            ) && subsel != 0;
            let unknown = !matches!(
                sel,
                select::ID_NAME
                    | select::ID_SERIAL
                    | select::ID_DEVIDS
                    | select::EV_BITS
                    | select::ABS_INFO
            );
            if id_with_subsel || unknown {
                assert!(payload.is_empty(), "{sel:#x}/{subsel:#x}");
            }
        }
    }
}
