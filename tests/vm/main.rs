//! Self-test of the VM test harness (`tests/vm/mod.rs`): the pattern math, PPM reading, and one
//! boot of the guest without virtio devices under QEMU.

#[path = "mod.rs"]
mod vm;

use std::time::Duration;

/// Generous for a TCG boot on a loaded 2-core machine (about 4 s when idle, scripts/README.md).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn pattern_has_gradients_and_checkerboard() {
    let (w, h) = (1280, 800);
    assert_eq!(vm::pattern_pixel(0, 0, w, h), 0x00_00_00_80);
    // x / 32 = 39 is odd: the darker blue.
    assert_eq!(vm::pattern_pixel(w - 1, 0, w, h), 0x00_ff_00_20);
    assert_eq!(
        vm::pattern_pixel(w - 1, h - 1, w, h) & 0x00ff_ff00,
        0x00ff_ff00
    );
    assert_eq!(vm::pattern_pixel(31, 0, w, h) & 0xff, 0x80);
    assert_eq!(vm::pattern_pixel(32, 0, w, h) & 0xff, 0x20);
    assert_eq!(vm::pattern_pixel(32, 32, w, h) & 0xff, 0x80);
    // 640 * 255 / 1279 = 127 (integer division, as the guest's awk int()).
    assert_eq!(
        vm::pattern_pixel(640, 400, w, h),
        (127 << 16) | (127 << 8) | 0x80
    );
}

#[test]
fn expected_pattern_is_little_endian_bgrx_rows() {
    let p = vm::expected_pattern(64, 2);
    assert_eq!(p.len(), 64 * 2 * 4);
    // Pixel (63, 1): R = 255, G = 255, B = 0x20 (tile 1 + 0 is odd); bytes B, G, R, X.
    assert_eq!(&p[(64 + 63) * 4..(64 + 64) * 4], &[0x20, 0xff, 0xff, 0x00]);
}

#[test]
fn compare_with_pattern_finds_one_wrong_pixel_and_respects_stride() {
    let (w, h, stride) = (40, 3, 40 * 4 + 8);
    let tight = vm::expected_pattern(w, h);
    let mut frame = vec![0xee; stride * h as usize];
    for (y, row) in tight.chunks(w as usize * 4).enumerate() {
        frame[y * stride..y * stride + row.len()].copy_from_slice(row);
    }
    assert_eq!(vm::compare_with_pattern(&frame, w, h, stride), (0, None));
    frame[2 * stride + 5 * 4] ^= 1;
    let (count, first) = vm::compare_with_pattern(&frame, w, h, stride);
    assert_eq!(count, 1);
    assert_eq!(first.map(|m| (m.x, m.y)), Some((5, 2)));
    // A truncated frame: only the first two pixels are there.
    assert_eq!(
        vm::compare_with_pattern(&frame[..8], w, h, stride).0,
        (w * h - 2) as usize
    );
}

#[test]
fn ppm_with_comment_decodes_to_xrgb() {
    let mut ppm = b"P6\n# made by a test\n2 1\n255\n".to_vec();
    ppm.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    let f = vm::parse_ppm(&ppm).expect("valid PPM");
    assert_eq!((f.width, f.height), (2, 1));
    assert_eq!(f.xrgb, vec![3, 2, 1, 0, 6, 5, 4, 0]);
}

#[test]
fn ppm_rejects_short_raster_and_other_formats() {
    assert!(vm::parse_ppm(b"P6 2 1 255\n\x01\x02").is_err());
    assert!(vm::parse_ppm(b"P5 2 1 255\n\x01\x02").is_err());
    assert!(vm::parse_ppm(b"P6 2 1 65535\n").is_err());
    assert!(vm::parse_ppm(b"P6 2").is_err());
}

/// Boots the guest with no virtio-gpu: the markers report no framebuffer, the serial shell
/// answers, and `vus.poweroff` ends QEMU cleanly.
#[test]
fn guest_without_gpu_boots_answers_on_serial_and_powers_off() {
    if !vm::vm_tests_enabled() {
        return;
    }
    let image = vm::GuestImage::build().expect("guest image builds");
    let mut qemu =
        vm::Qemu::start(&image, vm::QemuOpts::default().poweroff_after(3)).expect("QEMU starts");
    qemu.wait_serial("INIT uptime=", BOOT_TIMEOUT)
        .expect("/init runs");
    assert_eq!(
        qemu.wait_serial("NO FB0", BOOT_TIMEOUT).expect("fb marker"),
        "NO FB0"
    );
    assert_eq!(
        qemu.wait_serial("PATTERN", BOOT_TIMEOUT)
            .expect("pattern marker"),
        "PATTERN SKIPPED no-fb0"
    );
    qemu.wait_serial("GUEST READY", BOOT_TIMEOUT)
        .expect("ready marker");
    eprintln!("guest ready {:?} after QEMU start", qemu.elapsed());
    qemu.send_serial("echo SHELL-$((40 + 2))")
        .expect("serial input");
    qemu.wait_serial("SHELL-42", BOOT_TIMEOUT)
        .expect("shell answers");
    let status = qemu.wait_exit(BOOT_TIMEOUT).expect("guest powers off");
    assert!(status.success(), "QEMU exit status {status}");
    assert!(qemu.find_serial("POWEROFF").is_some());
}
