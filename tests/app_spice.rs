//! The daemon binary serves SPICE: spice-gtk's `spicy-screenshot` sees exactly the demo's
//! picture or the guest's pixels, the password file is enforced, and systemd hears READY=1 once
//! the SPICE port accepts and `STATUS=` with the client count.

mod prod_support;
mod spice_support;
mod support;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prod_support::{
    binary, notify_socket, receive_until, scratch, sigterm, wait_exit, EXIT_DEADLINE,
};
use spice_support::raw::{LinkOutcome, Raw};
use spice_support::{assert_same_picture, client, demo_frame, read_ppm, rgb_of_bgrx};
use support::gpu::{pixel, GpuDriver, GuestFb};
use support::{free_port, Flavor};
use vhost_user_spice::demo::{DemoPicture, FRAME_PERIOD};
use vhost_user_spice::spice::wire::ChannelType;

/// Generous: only reached when a test is failing.
const WAIT: Duration = Duration::from_secs(20);

/// The daemon, killed if a test fails before stopping it.
struct Daemon {
    child: Child,
    port: u16,
    started: Instant,
}

impl Daemon {
    /// Starts `command` (the binary with everything but the SPICE port) on a free port and
    /// waits until the port accepts.
    fn start(mut command: Command) -> Self {
        let port = free_port();
        let started = Instant::now();
        let child = command
            .args(["--spice-port", &port.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary runs");
        let mut daemon = Self {
            child,
            port,
            started,
        };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!("the daemon exited: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "SPICE port {port} never accepted"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        daemon
    }

    /// SIGTERM, then a clean exit within the deadline.
    fn stop(mut self) {
        sigterm(&self.child);
        let status = wait_exit(&mut self.child, EXIT_DEADLINE);
        assert!(status.success(), "exit status {status}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `spicy-screenshot` against `port`: the picture as `(width, height, rgb)`, or `None` when the
/// client failed (a refused password). The outer `None`: spice-gtk is not installed (outside
/// CI only).
fn screenshot(port: u16, password: Option<&str>) -> Option<Option<(u32, u32, Vec<u8>)>> {
    let bin = client("/usr/bin/spicy-screenshot")?;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shot.ppm");
    let mut command = Command::new(bin);
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-o"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(password) = password {
        command.args(["-w", password]);
    }
    let mut child = command.spawn().expect("spicy-screenshot runs");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("spicy-screenshot did not finish within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if !status.success() {
        return Some(None);
    }
    Some(Some(read_ppm(&std::fs::read(&out).unwrap())))
}

#[test]
fn demo_screenshot_is_a_frame_of_the_demo() {
    let (_dir, empty) = scratch();
    let (width, height) = (320u32, 200u32);
    let mut command = binary(&empty);
    command.args(["--demo", "--disable-ticketing"]).args([
        "--width",
        &width.to_string(),
        "--height",
        &height.to_string(),
    ]);
    let daemon = Daemon::start(command);
    let picture = DemoPicture::new(width, height);
    let mut frames = Vec::new();
    // The SPICE port accepts before the demo has drawn its first frame (the listeners come
    // first), so a client that connects at once may be shown the new, still black surface:
    // a true picture of that moment, taken again. Anything else that is no demo frame fails.
    let mut blank_shots = 0;
    while frames.len() < 2 {
        let Some(shot) = screenshot(daemon.port, None) else {
            return;
        };
        let shot = shot.expect("spicy-screenshot succeeds without a password");
        // The demo cannot be further than its clock allows (plus slack for rounding).
        let upto = (daemon.started.elapsed().as_millis() / FRAME_PERIOD.as_millis()) as u64 + 2;
        match demo_frame(picture, &shot, upto) {
            Some(n) => frames.push(n),
            None if frames.is_empty() && blank_shots < 5 && shot.2.iter().all(|&b| b == 0) => {
                blank_shots += 1;
                eprintln!("screenshot {blank_shots} showed the surface before the first frame");
                continue;
            }
            None => panic!(
                "the screenshot is no demo frame 0..={upto} ({} of {} bytes are 0)",
                shot.2.iter().filter(|&&b| b == 0).count(),
                shot.2.len()
            ),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("screenshots showed demo frames {frames:?}");
    assert!(frames[1] > frames[0], "the picture moves: {frames:?}");
    daemon.stop();
}

#[test]
fn password_file_refuses_a_wrong_password_and_accepts_the_right_one() {
    let (dir, empty) = scratch();
    let password = dir.path().join("spice-password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let mut command = binary(&empty);
    command
        .args(["--demo", "--width", "320", "--height", "200"])
        .arg("--password-file")
        .arg(&password);
    let daemon = Daemon::start(command);
    let Some(wrong) = screenshot(daemon.port, Some("wrong")) else {
        return;
    };
    assert!(wrong.is_none(), "a wrong password is refused");
    assert!(
        screenshot(daemon.port, None).unwrap().is_none(),
        "no password is refused"
    );
    let shot = screenshot(daemon.port, Some("s3cret"))
        .unwrap()
        .expect("the right password is accepted");
    assert_eq!((shot.0, shot.1), (320, 200));
    daemon.stop();
}

/// A VMM drives the binary's virtio-gpu; a SPICE client sees exactly the guest's framebuffer.
#[test]
fn guest_pixels_reach_spicy_screenshot() {
    let (dir, empty) = scratch();
    let socket = dir.path().join("gpu.sock");
    let (width, height) = (640u32, 400u32);
    let mut command = binary(&empty);
    command
        .arg("--disable-ticketing")
        .arg("--socket-path")
        .arg(&socket)
        .args(["--width", "640", "--height", "400"]);
    let daemon = Daemon::start(command);
    wait_for_path(&socket);
    let mut gpu = GpuDriver::connect(&socket, Flavor::CloudHypervisor);
    assert_eq!(gpu.probe(), (width, height));
    let mut fb = GuestFb::new(&mut gpu.vmm, 1, width, height);
    fb.draw(&gpu.vmm, fb.rect(), pixel(1));
    gpu.bring_up(&fb);
    fb.draw(&gpu.vmm, [100, 60, 200, 120], pixel(2));
    gpu.update(&fb, [100, 60, 200, 120]);
    let want = (width, height, rgb_of_bgrx(&fb.pixels));
    // The flush is answered once the QXL command is queued; the display worker may apply it a
    // moment later, so a first screenshot may miss the last update.
    let deadline = Instant::now() + WAIT;
    let shot = loop {
        let Some(shot) = screenshot(daemon.port, None) else {
            return;
        };
        let shot = shot.expect("spicy-screenshot succeeds");
        if shot == want || Instant::now() > deadline {
            break shot;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_same_picture(&shot, &want);
    gpu.vmm.disconnect();
    daemon.stop();
}

fn wait_for_path(path: &Path) {
    let deadline = Instant::now() + WAIT;
    while !path.exists() {
        assert!(Instant::now() < deadline, "{path:?} did not appear");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_once_spice_accepts_and_status_counts_clients() {
    let (dir, empty) = scratch();
    let (notify, systemd) = notify_socket(dir.path());
    let port = free_port();
    let child = binary(&empty)
        .env("NOTIFY_SOCKET", &notify)
        .args([
            "--demo",
            "--disable-ticketing",
            "--width",
            "320",
            "--height",
            "200",
        ])
        .args(["--spice-port", &port.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = Daemon {
        child,
        port,
        started: Instant::now(),
    };
    let systemd = std::sync::Arc::new(systemd);
    let messages = {
        let systemd = systemd.clone();
        tokio::task::spawn_blocking(move || {
            receive_until(&systemd, WAIT, |m| m.contains("READY=1"))
        })
        .await
        .unwrap()
    };
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "READY=1 only once the SPICE port accepts"
    );
    let ready = messages.last().unwrap();
    assert!(
        ready.contains(&format!("SPICE 127.0.0.1:{port}")),
        "{ready}"
    );
    assert!(ready.contains("Serving 0 SPICE clients"), "{ready}");

    let mut client = Raw::connect(port).await;
    assert_eq!(
        client.link(ChannelType::MAIN, 0, 0, "").await,
        LinkOutcome::Result(0)
    );
    let wait_status = |want: &'static str| {
        let systemd = systemd.clone();
        tokio::task::spawn_blocking(move || {
            receive_until(&systemd, WAIT, |m| {
                m.starts_with("STATUS=") && m.contains(want)
            })
        })
    };
    let status = wait_status("Serving 1 SPICE client\n").await.unwrap();
    assert!(
        status.last().unwrap().contains("Demo picture"),
        "{status:?}"
    );
    drop(client);
    wait_status("Serving 0 SPICE clients").await.unwrap();

    sigterm(&daemon.child);
    let stopping = {
        let systemd = systemd.clone();
        tokio::task::spawn_blocking(move || {
            receive_until(&systemd, WAIT, |m| m.starts_with("STOPPING=1\n"))
        })
        .await
        .unwrap()
    };
    assert!(!stopping.is_empty());
    let mut daemon = daemon;
    assert!(wait_exit(&mut daemon.child, EXIT_DEADLINE).success());
}
