//! spice-gtk's own `spicy-screenshot` connects to our server and saves exactly the guest's
//! screen.

mod spice_support;

use std::time::Instant;

use spice_support::*;
use tokio::process::Command;
use vhost_user_spice::display::qxl_source::spawn_qxl;
use vhost_user_spice::display::Rect;
use vhost_user_spice::spice::ticket::Ticketing;

async fn screenshot(port: u16, password: Option<&str>) -> Option<(u32, u32, Vec<u8>)> {
    let bin = client("/usr/bin/spicy-screenshot")?;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shot.ppm");
    let mut cmd = Command::new(bin);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-o"])
        .arg(&out)
        .kill_on_drop(true);
    if let Some(p) = password {
        cmd.args(["-w", p]);
    }
    let started = Instant::now();
    let status = tokio::time::timeout(WAIT, cmd.status())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "spicy-screenshot failed: {status}");
    eprintln!("spicy-screenshot took {:?}", started.elapsed());
    Some(read_ppm(&std::fs::read(&out).unwrap()))
}

/// The whole path a VM's screen takes: QXL commands in shared memory, the display worker, the
/// server, spice-gtk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spicy_screenshot_sees_exact_qxl_pixels_with_password() {
    let (mut producer, consumer) = qxl::new_device(qxl::DeviceConfig::default()).unwrap();
    let display = spawn_qxl(consumer);
    let (server, _, port) = serve_display(display.clone(), password("s3cret")).await;
    let (w, h) = (640u32, 480u32);
    let rect = |l, t, r, b| qxl::Rect {
        top: t,
        left: l,
        bottom: b,
        right: r,
    };
    producer.create_primary(w, h).unwrap();
    producer
        .draw_copy(
            rect(0, 0, w as i32, h as i32),
            &pattern(w, h, 7),
            w as usize * 4,
        )
        .unwrap();
    producer.fill(rect(100, 50, 300, 120), 0x0033_66cc).unwrap();
    producer
        .io(qxl::IoRequest::UpdateArea {
            surface_id: 0,
            area: rect(0, 0, 1, 1),
        })
        .unwrap();
    let Some(shot) = screenshot(port, Some("s3cret")).await else {
        return;
    };
    let snap = display.snapshot(0).unwrap();
    let rgb: Vec<u8> = snap
        .pixels
        .chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    assert_same_picture(&shot, &(w, h, rgb));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spicy_screenshot_sees_exact_guest_pixels_with_password() {
    let rig = start(password("s3cret")).await;
    rig.guest.create_primary(320, 200);
    rig.guest
        .draw(Rect::ltrb(0, 0, 320, 200), pattern(320, 200, 1));
    rig.guest.fill(Rect::ltrb(10, 20, 50, 60), 0x00ff_8000);
    rig.guest.sync();
    let Some(shot) = screenshot(rig.port, Some("s3cret")).await else {
        return;
    };
    assert_same_picture(&shot, &rig.guest.primary_rgb());
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spicy_screenshot_without_ticketing_sees_a_large_screen() {
    let rig = start(Ticketing::Disabled).await;
    rig.guest.create_primary(1024, 768);
    rig.guest
        .draw(Rect::ltrb(0, 0, 1024, 768), pattern(1024, 768, 2));
    rig.guest.sync();
    let Some(shot) = screenshot(rig.port, None).await else {
        return;
    };
    assert_same_picture(&shot, &rig.guest.primary_rgb());
    rig.server.shutdown().await;
}
