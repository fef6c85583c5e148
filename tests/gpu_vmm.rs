//! The daemon's virtio-gpu end to end under an in-process VMM: vhost's frontend on a real unix
//! socket, memfd guest RAM, split virtqueues and eventfds, replaying the Linux virtio_gpu
//! driver's probe and framebuffer updates (shared/research/rust-vmm.md §3.6), with the display
//! worker's canonical surface and cursor checked byte for byte.

mod support;

use std::time::Instant;

use support::gpu::{
    cursor_cmd, pixel, unref, wait_display, GpuDaemon, GpuDriver, GuestFb, F_RING_RESET, PAGE,
};
use support::{Flavor, TIMEOUT};
use vhost_user_spice::display::source::CursorShape;
use vhost_user_spice::display::Point;
use vhost_user_spice::virtio::gpu::protocol::ctrl_type as t;
use vhost_user_spice::virtio::gpu::GpuConfig;

const W: u32 = 800;
const H: u32 = 600;
const DEFAULT_HOSTMEM: u64 = 256 << 20;

/// Probe, first frame, one damage update: the canonical surface equals the guest's pixels after
/// each fenced flush. Returns the framebuffer.
fn probe_and_draw(daemon: &GpuDaemon, gpu: &mut GpuDriver) -> GuestFb {
    let started = Instant::now();
    assert_eq!(
        gpu.probe(),
        (W, H),
        "display info reports the configured size"
    );
    let mut fb = GuestFb::new(&mut gpu.vmm, 1, W, H);
    assert!(fb.entries.len() > 100, "scattered backing");
    fb.draw(&gpu.vmm, fb.rect(), pixel(1));
    gpu.bring_up(&fb);
    daemon.wait_primary(W, H, &fb.pixels);
    let first = started.elapsed();

    // A partial update whose rows start mid-page and straddle entries.
    let damage = [33, 17, 301, 211];
    fb.draw(&gpu.vmm, damage, pixel(2));
    gpu.update(&fb, damage);
    daemon.wait_primary(W, H, &fb.pixels);
    // One pixel in the far corner.
    let corner = [W - 1, H - 1, 1, 1];
    fb.draw(&gpu.vmm, corner, pixel(3));
    gpu.update(&fb, corner);
    daemon.wait_primary(W, H, &fb.pixels);
    eprintln!(
        "probe + first frame on the surface in {first:?}; with two updates {:?}",
        started.elapsed()
    );
    fb
}

/// Linux's cursor: a 64x64 dumb buffer (format 2 holding ARGB), fenced transfer, UPDATE_CURSOR
/// on the cursor queue; later MOVE_CURSOR. virtio-gpu's position is the image's top-left
/// (`crtc_x`); QXL's, like SPICE's, is the hot spot's, so the hot spot is added (as QEMU's
/// `qemu_spice_create_cursor_update` does).
fn cursor_follows(daemon: &GpuDaemon, gpu: &mut GpuDriver) {
    let mut image = GuestFb::new(&mut gpu.vmm, 7, 64, 64);
    image.draw(&gpu.vmm, image.rect(), |x, y| {
        [x as u8 * 4, y as u8 * 4, (x ^ y) as u8, (x + y) as u8 * 2]
    });
    gpu.ok(&[&support::gpu::create_2d(7, 2, 64, 64)]);
    let (req, entries) = support::gpu::attach(7, &image.entries);
    gpu.ok(&[&req, &entries]);
    gpu.fenced_ok(&support::gpu::transfer(7, image.rect(), 0));
    gpu.cursor(&cursor_cmd(t::UPDATE_CURSOR, 100, 50, 7, (5, 9)));
    wait_display(&daemon.display, "the cursor shape", |d| {
        d.cursor().shape.is_some()
    });
    let cursor = daemon.display.cursor();
    assert_eq!(
        cursor.position,
        Point { x: 105, y: 59 },
        "hot spot position"
    );
    let shape = cursor.shape.expect("a shape");
    assert_eq!(shape.kind, CursorShape::ALPHA);
    assert_eq!((shape.width, shape.height), (64, 64));
    assert_eq!((shape.hot_x, shape.hot_y), (5, 9));
    assert!(
        shape.data == image.pixels,
        "cursor pixels are the guest's ARGB"
    );
    assert!(cursor.visible);

    gpu.cursor(&cursor_cmd(t::MOVE_CURSOR, 700, 20, 7, (5, 9)));
    wait_display(&daemon.display, "the cursor to move", |d| {
        d.cursor().position == Point { x: 705, y: 29 }
    });
    assert_eq!(daemon.display.cursor().shape, Some(shape), "same shape");
}

#[test]
fn qemu_vhost_user_gpu_pci_probe_draws_exact_pixels_and_cursor() {
    let daemon = GpuDaemon::app(W, H, DEFAULT_HOSTMEM);
    let mut gpu = daemon.connect(Flavor::Qemu);
    assert!(gpu.vmm.gpu_socket().is_some(), "GPU_SET_SOCKET was sent");
    assert_ne!(
        gpu.vmm.acked_features() & F_RING_RESET,
        0,
        "RING_RESET acked"
    );
    assert_eq!(gpu.vmm.options.queue_sizes, [64, 16]);
    probe_and_draw(&daemon, &mut gpu);
    cursor_follows(&daemon, &mut gpu);
    gpu.vmm.disconnect();
    daemon.stop();
}

#[test]
fn cloud_hypervisor_probe_draws_and_resize_reaches_the_guest() {
    let daemon = GpuDaemon::wired(GpuConfig {
        width: W,
        height: H,
        ..GpuConfig::default()
    });
    let mut gpu = daemon.connect(Flavor::CloudHypervisor);
    assert!(gpu.vmm.gpu_socket().is_none(), "no GPU_SET_SOCKET");
    assert_eq!(gpu.vmm.get_config(0, 4), [0; 4], "no event pending");
    probe_and_draw(&daemon, &mut gpu);
    cursor_follows(&daemon, &mut gpu);

    // A client asks for 1024x768: with REPLY_ACK the notifier waits for the VMM's ack, so it
    // runs beside the VMM.
    let control = daemon.control();
    let resize = std::thread::spawn(move || control.request_display_size(1024, 768));
    assert!(
        gpu.vmm.wait_config_change(TIMEOUT),
        "config-change message on the backend channel"
    );
    resize.join().expect("the resize does not panic");
    // What the guest does on the config interrupt.
    assert_eq!(gpu.vmm.get_config(0, 4), 1u32.to_le_bytes(), "events_read");
    assert_eq!(gpu.display_info(), (1024, 768, true));
    assert_eq!(
        support::gpu::edid_mode(&gpu.edid()),
        (1024, 768),
        "EDID follows"
    );
    gpu.vmm.set_config(4, &1u32.to_le_bytes());
    assert_eq!(gpu.vmm.get_config(0, 4), [0; 4], "events_clear cleared it");

    // The guest follows with a new framebuffer; the canonical surface is re-created.
    let mut fb = GuestFb::new(&mut gpu.vmm, 2, 1024, 768);
    fb.draw(&gpu.vmm, fb.rect(), pixel(9));
    gpu.bring_up(&fb);
    daemon.wait_primary(1024, 768, &fb.pixels);
    gpu.ok(&[&unref(1)]);
    assert_eq!(daemon.connections(), 1);
    gpu.vmm.disconnect();
    daemon.stop();
}

/// Each update is answered only after its pixels are on the way: a burst of fenced updates
/// ends with the surface equal to the last frame.
#[test]
fn burst_of_updates_ends_on_the_last_frame() {
    let daemon = GpuDaemon::app(256, 256, DEFAULT_HOSTMEM);
    let mut gpu = daemon.connect(Flavor::CloudHypervisor);
    gpu.probe();
    let mut fb = GuestFb::new(&mut gpu.vmm, 1, 256, 256);
    fb.draw(&gpu.vmm, fb.rect(), pixel(0));
    gpu.bring_up(&fb);
    for frame in 0..40u8 {
        let x = u32::from(frame) * 5;
        let r = [x, x / 2, 40, 30];
        fb.draw(&gpu.vmm, r, pixel(frame));
        gpu.update(&fb, r);
    }
    daemon.wait_primary(256, 256, &fb.pixels);
    assert!(fb
        .entries
        .iter()
        .all(|&(_, len)| u64::from(len) <= 3 * PAGE));
    gpu.vmm.disconnect();
    daemon.stop();
}
