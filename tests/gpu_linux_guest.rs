//! A real Linux guest under QEMU 10 (TCG) with `vhost-user-gpu-pci` on our daemon: the test
//! pattern the guest writes to /dev/fb0 must appear, pixel for pixel, on the display worker's
//! canonical primary surface; after QEMU goes away the daemon serves the next VMM afresh.

#[path = "vm/mod.rs"]
mod vm;

mod support;

use std::time::{Duration, Instant};

use support::gpu::GpuDaemon;
use support::Flavor;

/// Generous for a TCG boot on a loaded 2-core machine (scripts/README.md: 5-9 s to the pattern).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// From `PATTERN DRAWN` until our surface must hold it: the fbdev emulation flushes damage from
/// a worker, so the last flushes may trail the marker a little.
const SURFACE_TIMEOUT: Duration = Duration::from_secs(20);
/// QMP `quit` to process exit.
const QUIT_TIMEOUT: Duration = Duration::from_secs(10);
const W: u32 = 1280;
const H: u32 = 800;

/// `"FB0 name=virtio_gpudrmfb virtual_size=1280,800 ..."` → (1280, 800).
fn fb0_size(line: &str) -> (u32, u32) {
    let size = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("virtual_size="))
        .unwrap_or_else(|| panic!("no virtual_size in {line:?}"));
    let (w, h) = size.split_once(',').expect("w,h");
    (w.parse().expect("width"), h.parse().expect("height"))
}

/// `"PATTERN DRAWN 1280x800"` → (1280, 800).
fn drawn_size(line: &str) -> (u32, u32) {
    let size = line.rsplit(' ').next().expect("a size");
    let (w, h) = size.split_once('x').expect("WxH");
    (w.parse().expect("width"), h.parse().expect("height"))
}

/// (differing pixels, first mismatch) between the primary surface and the guest's pattern.
fn compare(daemon: &GpuDaemon, w: u32, h: u32) -> (usize, String) {
    match daemon.display.snapshot(0) {
        None => (usize::MAX, "no primary surface".into()),
        Some(s) if (s.info.width, s.info.height) != (w, h) => (
            usize::MAX,
            format!("primary is {}x{}", s.info.width, s.info.height),
        ),
        Some(s) => {
            let (count, first) = vm::compare_with_pattern(&s.pixels, w, h, s.stride);
            (count, format!("first mismatch {first:x?}"))
        }
    }
}

#[test]
fn linux_fbdev_pattern_lands_on_the_canonical_surface() {
    if !vm::vm_tests_enabled() {
        return;
    }
    let image = vm::GuestImage::build().expect("the guest image builds");
    let daemon = GpuDaemon::app(W, H, 256 << 20);
    let mut qemu =
        vm::Qemu::start(&image, vm::QemuOpts::default().gpu(&daemon.path)).expect("QEMU starts");
    let fb0 = qemu
        .wait_serial("FB0 ", BOOT_TIMEOUT)
        .expect("the guest has /dev/fb0");
    let drawn = qemu
        .wait_serial("PATTERN DRAWN", BOOT_TIMEOUT)
        .expect("the guest draws the pattern");
    let at_marker = qemu.elapsed();
    let (w, h) = drawn_size(&drawn);
    assert_eq!(fb0_size(&fb0), (w, h), "fb0 is the size drawn");
    assert_eq!((w, h), (W, H), "the guest took the display-info mode");
    let drm = qemu.find_serial("DRM ").expect("a DRM connector line");
    assert!(
        drm.contains("status=connected modes=1280x800"),
        "our EDID's mode comes first: {drm}"
    );

    let shown = daemon
        .display
        .wait_until(SURFACE_TIMEOUT, |_| compare(&daemon, w, h).0 == 0);
    let (count, detail) = compare(&daemon, w, h);
    assert!(shown, "{count} pixels differ from the pattern; {detail}");
    let surface = daemon.display.snapshot(0).expect("the primary surface");
    assert_eq!((surface.info.width, surface.info.height), (w, h));
    eprintln!(
        "QEMU start -> PATTERN DRAWN {at_marker:?}; -> pattern on our surface {:?}",
        qemu.elapsed()
    );

    // QEMU quits; the daemon serves the next VMM with a fresh device.
    let quit = Instant::now();
    qemu.qmp(r#"{"execute":"quit"}"#).expect("QMP quit");
    let status = qemu.wait_exit(QUIT_TIMEOUT).expect("QEMU exits");
    assert!(status.success(), "QEMU exit status {status}");
    drop(qemu);
    let mut gpu = daemon.connect(Flavor::CloudHypervisor);
    eprintln!("next connection served {:?} after QMP quit", quit.elapsed());
    daemon.wait_no_primary();
    assert_eq!(gpu.probe(), (W, H));
    gpu.vmm.disconnect();
    daemon.stop();
}
