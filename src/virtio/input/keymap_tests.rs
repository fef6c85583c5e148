//! The whole scancode table, the decoder's prefixes, and what is ignored.

use std::collections::BTreeSet;

use super::*;

/// Independent spot checks, from `qemu/keycodemapdb: data/keymaps.csv` and atkbd.
const SPOT_CHECKS: &[(u16, u16, &str)] = &[
    (0x01, 1, "KEY_ESC"),
    (0x1c, 28, "KEY_ENTER"),
    (0x1d, 29, "KEY_LEFTCTRL"),
    (0x38, 56, "KEY_LEFTALT"),
    (0x3a, 58, "KEY_CAPSLOCK"),
    (0x45, 69, "KEY_NUMLOCK"),
    (0x46, 70, "KEY_SCROLLLOCK"),
    (0x53, 83, "KEY_KPDOT"),
    (0x54, 99, "KEY_SYSRQ (Alt+SysRq)"),
    (0x56, 86, "KEY_102ND"),
    (0x57, 87, "KEY_F11"),
    (0x58, 88, "KEY_F12"),
    (0xf1, 123, "KEY_HANJA"),
    (0xf2, 122, "KEY_HANGEUL"),
    (0x11c, 96, "KEY_KPENTER"),
    (0x11d, 97, "KEY_RIGHTCTRL"),
    (0x135, 98, "KEY_KPSLASH"),
    (0x137, 99, "KEY_SYSRQ (Print Screen)"),
    (0x138, 100, "KEY_RIGHTALT"),
    (0x146, 119, "KEY_PAUSE"),
    (0x147, 102, "KEY_HOME"),
    (0x148, 103, "KEY_UP"),
    (0x149, 104, "KEY_PAGEUP"),
    (0x14b, 105, "KEY_LEFT"),
    (0x14d, 106, "KEY_RIGHT"),
    (0x14f, 107, "KEY_END"),
    (0x150, 108, "KEY_DOWN"),
    (0x151, 109, "KEY_PAGEDOWN"),
    (0x152, 110, "KEY_INSERT"),
    (0x153, 111, "KEY_DELETE"),
    (0x15b, 125, "KEY_LEFTMETA"),
    (0x15c, 126, "KEY_RIGHTMETA"),
    (0x15d, 127, "KEY_COMPOSE"),
    (0x120, 113, "KEY_MUTE"),
    (0x15e, 116, "KEY_POWER"),
];

#[test]
fn table_is_sorted_unique_and_every_entry_maps() {
    assert_eq!(SET1_TO_LINUX.len(), 236);
    for pair in SET1_TO_LINUX.windows(2) {
        assert!(
            pair[0].0 < pair[1].0,
            "unsorted or duplicate at {:#x}",
            pair[1].0
        );
    }
    for &(scancode, key) in SET1_TO_LINUX {
        assert_eq!(linux_key(scancode), Some(key), "scancode {scancode:#x}");
        // Only plain bytes, the two no-break keys, and E0 codes without the break bit.
        assert!(
            scancode < 0x80
                || scancode == 0xf1
                || scancode == 0xf2
                || (0x100..0x180).contains(&scancode),
            "{scancode:#x}"
        );
        // Never a BTN_* code: the device must stay a keyboard, not a joystick, to udev.
        assert!(key > 0 && key < 0x100, "key {key} for {scancode:#x}");
    }
}

#[test]
fn plain_range_is_identity_except_where_pc_keyboards_differ() {
    // Linux key codes were laid out after set 1: 0x01..=0x53 are the same numbers.
    for sc in 0x01..=0x53u16 {
        assert_eq!(linux_key(sc), Some(sc), "scancode {sc:#x}");
    }
}

#[test]
fn spot_checks_match_the_reference() {
    for &(scancode, key, name) in SPOT_CHECKS {
        assert_eq!(linux_key(scancode), Some(key), "{name}");
    }
}

#[test]
fn unknown_scancodes_are_ignored() {
    let known: BTreeSet<u16> = SET1_TO_LINUX.iter().map(|&(sc, _)| sc).collect();
    let mut unknown = 0;
    for sc in 0..0x200u16 {
        if !known.contains(&sc) {
            assert_eq!(linux_key(sc), None, "{sc:#x}");
            unknown += 1;
        }
    }
    assert!(unknown > 0);
    assert_eq!(linux_key(0), None);
    assert_eq!(linux_key(0x12a), None, "E0 2A fake shift");
    assert_eq!(linux_key(0xffff), None);
}

fn decode(bytes: &[u8]) -> Vec<Decoded> {
    let mut d = Set1Decoder::default();
    let out = bytes.iter().filter_map(|&b| d.feed(b)).collect();
    assert!(d.is_idle(), "decoder left mid-sequence after {bytes:x?}");
    out
}

fn key(scancode: u16, pressed: bool) -> Decoded {
    Decoded::Key { scancode, pressed }
}

#[test]
fn decodes_make_and_break_codes() {
    assert_eq!(decode(&[0x1e, 0x9e]), [key(0x1e, true), key(0x1e, false)]);
}

#[test]
fn decodes_e0_prefixes_across_messages() {
    let mut d = Set1Decoder::default();
    assert_eq!(d.feed(0xe0), None);
    assert!(!d.is_idle());
    assert_eq!(d.feed(0x1d), Some(key(0x11d, true)));
    assert_eq!(decode(&[0xe0, 0x9d]), [key(0x11d, false)]);
}

#[test]
fn drops_fake_shifts_of_print_screen() {
    assert_eq!(
        decode(&[0xe0, 0x2a, 0xe0, 0x37, 0xe0, 0xb7, 0xe0, 0xaa]),
        [key(0x137, true), key(0x137, false)]
    );
}

#[test]
fn decodes_pause_sequences() {
    assert_eq!(
        decode(&[0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5]),
        [key(0x146, true), key(0x146, false)]
    );
    assert_eq!(decode(&[0xe1, 0x12, 0x34]), []);
}

#[test]
fn hanja_and_hangeul_tap() {
    assert_eq!(decode(&[0xf1]), [Decoded::Tap { scancode: 0xf1 }]);
    assert_eq!(decode(&[0xf2]), [Decoded::Tap { scancode: 0xf2 }]);
}

#[test]
fn zero_bytes_carry_nothing() {
    assert_eq!(decode(&[0, 0]), []);
}
