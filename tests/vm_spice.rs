//! A real Linux guest under QEMU (TCG) draws its test pattern through `vhost-user-gpu-pci` on
//! the daemon's stack (wired in-process as the binary wires it, with the SPICE server and the
//! virtio-input device alongside); spice-gtk's own `spicy-screenshot`, logging in with a
//! password, saves a picture equal to the display worker's surface and to the pattern.

#[path = "vm/mod.rs"]
mod vm;

use std::process::Command;
use std::time::{Duration, Instant};

use vhost_user_spice::spice::ticket::{Secret, Ticketing};
use vm::stack::SpiceStack;

/// Generous for a TCG boot on a loaded 2-core machine (scripts/README.md: 5-9 s to the pattern).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// From `PATTERN DRAWN` until our surface must hold it (the fbdev emulation's last flushes may
/// trail the marker).
const SURFACE_TIMEOUT: Duration = Duration::from_secs(20);
/// spicy-screenshot links, waits for the first frame and saves it.
const SCREENSHOT_TIMEOUT: Duration = Duration::from_secs(30);
const W: u32 = 1280;
const H: u32 = 800;
const PASSWORD: &str = "s3cret-vm";

/// Tightly packed little-endian xRGB with the X byte zeroed, from rows of `stride` bytes.
fn xrgb(pixels: &[u8], w: u32, h: u32, stride: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(w as usize * h as usize * 4);
    for y in 0..h as usize {
        let row = &pixels[y * stride..y * stride + w as usize * 4];
        for px in row.chunks_exact(4) {
            out.extend_from_slice(&[px[0], px[1], px[2], 0]);
        }
    }
    out
}

/// (differing pixels, first mismatch as (x, y, got 0xRRGGBB, want 0xRRGGBB)); X bytes ignored.
fn diff(got: &[u8], want: &[u8], w: u32) -> (usize, Option<(u32, u32, u32, u32)>) {
    assert_eq!(got.len(), want.len(), "picture sizes in bytes");
    let rgb = |p: &[u8]| u32::from_le_bytes([p[0], p[1], p[2], 0]);
    let mut count = 0;
    let mut first = None;
    for (i, (g, e)) in got.chunks_exact(4).zip(want.chunks_exact(4)).enumerate() {
        if rgb(g) != rgb(e) {
            count += 1;
            let i = i as u32;
            first.get_or_insert((i % w, i / w, rgb(g), rgb(e)));
        }
    }
    (count, first)
}

fn surface_matches_pattern(stack: &SpiceStack) -> bool {
    stack.display.snapshot(0).is_some_and(|s| {
        (s.info.width, s.info.height) == (W, H)
            && vm::compare_with_pattern(&s.pixels, W, H, s.stride).0 == 0
    })
}

#[test]
fn spicy_screenshot_of_a_linux_guest_equals_the_surface_and_the_pattern() {
    if !vm::vm_tests_enabled() || !vm::spice_clients_enabled() {
        return;
    }
    let image = vm::GuestImage::build().expect("the guest image builds");
    let stack = SpiceStack::start(
        W,
        H,
        Ticketing::Password {
            secret: Secret::new(PASSWORD),
            expires: None,
        },
    );
    let mut qemu = vm::Qemu::start(
        &image,
        vm::QemuOpts::default()
            .gpu(&stack.gpu_socket)
            .input(&stack.input_socket),
    )
    .expect("QEMU starts");
    let drawn = qemu
        .wait_serial("PATTERN DRAWN", BOOT_TIMEOUT)
        .expect("the guest draws the pattern");
    assert_eq!(drawn, format!("PATTERN DRAWN {W}x{H}"));
    let at_marker = qemu.elapsed();
    let shown = stack
        .display
        .wait_until(SURFACE_TIMEOUT, |_| surface_matches_pattern(&stack));
    let at_surface = qemu.elapsed();
    if !shown {
        let detail = match stack.display.snapshot(0) {
            None => "no primary surface".to_string(),
            Some(s) if (s.info.width, s.info.height) != (W, H) => {
                format!("the primary is {}x{}", s.info.width, s.info.height)
            }
            Some(s) => format!("{:?}", vm::compare_with_pattern(&s.pixels, W, H, s.stride)),
        };
        panic!("the pattern never reached the surface: {detail}");
    }

    let dir = tempfile::tempdir().expect("a temporary directory");
    let shot = dir.path().join("shot.ppm");
    let started = Instant::now();
    let mut client = vm::ChildGuard::spawn(
        Command::new(vm::SPICY_SCREENSHOT)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &stack.port.to_string(),
                "-w",
                PASSWORD,
            ])
            .arg("-o")
            .arg(&shot),
    )
    .expect("spicy-screenshot runs");
    let status = client
        .wait_timeout(SCREENSHOT_TIMEOUT)
        .expect("waiting for spicy-screenshot")
        .unwrap_or_else(|| panic!("spicy-screenshot did not finish in {SCREENSHOT_TIMEOUT:?}"));
    let took = started.elapsed();
    assert!(status.success(), "spicy-screenshot failed: {status}");
    let frame = vm::read_ppm(&shot).expect("spicy-screenshot wrote a PPM");
    assert_eq!((frame.width, frame.height), (W, H), "screenshot size");

    // The worker's surface as it is now (the guest is idle: nothing redraws the console).
    let surface = stack.display.snapshot(0).expect("the primary surface");
    assert_eq!((surface.info.width, surface.info.height), (W, H));
    let canonical = xrgb(&surface.pixels, W, H, surface.stride);
    let (count, first) = diff(&frame.xrgb, &canonical, W);
    assert_eq!(
        count, 0,
        "the screenshot differs from the worker's surface; first (x, y, got, want): {first:x?}"
    );
    let (count, first) = diff(&frame.xrgb, &vm::expected_pattern(W, H), W);
    assert_eq!(
        count, 0,
        "the screenshot differs from the guest's pattern; first (x, y, got, want): {first:x?}"
    );
    eprintln!(
        "QEMU start -> PATTERN DRAWN {at_marker:?}; -> pattern on our surface {at_surface:?}; \
         spicy-screenshot {took:?}"
    );
    drop(qemu);
    drop(stack);
}
