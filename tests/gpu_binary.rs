//! The `vhost-user-spice` binary as a VMM meets it: a guest driver's probe, framebuffer and
//! cursor through `--socket-path` and through a connected `--fd`, then a clean exit (SIGTERM,
//! or the VMM closing a connected fd). What reaches the surface is checked by `gpu_vmm`; here
//! the guest's view is: every answer, its fences, and the configured size and memory budget.

mod prod_support;
mod support;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

use prod_support::{wait_exit, EXIT_DEADLINE};
use support::gpu::{create_2d, cursor_cmd, pixel, GpuDriver, GuestFb};
use support::{Flavor, TestVmm};
use vhost_user_spice::virtio::gpu::protocol::ctrl_type as t;

const SIZE: [&str; 4] = ["--width", "640", "--height", "400"];
/// Room for the 1 MiB framebuffer and a cursor, not for a 4 MiB resource.
const MAX_HOSTMEM: &str = "2097152";

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vhost-user-spice"));
    command
        .env_remove("RUST_LOG")
        .arg("--disable-ticketing")
        .args(["--spice-port", &support::free_port().to_string()])
        .args(SIZE)
        .args(["--max-hostmem", MAX_HOSTMEM])
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// The Linux driver's probe, fbdev bring-up, a damage update and a cursor.
fn drive(gpu: &mut GpuDriver) {
    assert_eq!(
        gpu.probe(),
        (640, 400),
        "--width/--height reach display info"
    );
    let mut fb = GuestFb::new(&mut gpu.vmm, 1, 640, 400);
    fb.draw(&gpu.vmm, fb.rect(), pixel(1));
    gpu.bring_up(&fb);
    fb.draw(&gpu.vmm, [10, 20, 30, 40], pixel(2));
    gpu.update(&fb, [10, 20, 30, 40]);
    assert_eq!(
        gpu.status(&[&create_2d(2, 2, 1024, 1024)]),
        t::RESP_ERR_OUT_OF_MEMORY,
        "--max-hostmem is the budget"
    );
    let cursor = GuestFb::new(&mut gpu.vmm, 3, 64, 64);
    gpu.ok(&[&create_2d(3, 2, 64, 64)]);
    let (req, entries) = support::gpu::attach(3, &cursor.entries);
    gpu.ok(&[&req, &entries]);
    gpu.fenced_ok(&support::gpu::transfer(3, cursor.rect(), 0));
    gpu.cursor(&cursor_cmd(t::UPDATE_CURSOR, 5, 5, 3, (1, 1)));
    gpu.cursor(&cursor_cmd(t::MOVE_CURSOR, 50, 60, 3, (1, 1)));
    // The control queue still answers after the cursor traffic.
    assert_eq!(gpu.display_info(), (640, 400, true));
}

#[test]
fn socket_path_serves_the_gpu_then_sigterm_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gpu.sock");
    let mut child = binary()
        .arg("--socket-path")
        .arg(&path)
        .spawn()
        .expect("the binary runs");
    support::wait_until(|| path.exists(), "the socket to appear");
    for flavor in [Flavor::Qemu, Flavor::CloudHypervisor] {
        let mut gpu = GpuDriver::connect(&path, flavor);
        drive(&mut gpu);
        gpu.vmm.disconnect();
    }
    // SIGTERM while a VMM is connected.
    let gpu = GpuDriver::connect(&path, Flavor::Qemu);
    let pid = libc::pid_t::try_from(child.id()).expect("pids fit pid_t");
    // SAFETY: kill(2) on our own unreaped child with a valid signal; no memory is touched.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = wait_exit(&mut child, EXIT_DEADLINE);
    assert!(status.success(), "exit status {status}");
    assert!(!path.exists(), "the socket file is removed");
    drop(gpu);
}

#[test]
fn connected_fd_serves_the_gpu_until_the_vmm_closes() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let fd = theirs.as_raw_fd();
    // SAFETY: F_SETFD on a descriptor we own, clearing only FD_CLOEXEC so the child inherits it.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
    let mut child = binary()
        .args(["--fd", &fd.to_string()])
        .spawn()
        .expect("the binary runs");
    drop(theirs);
    let mut gpu = GpuDriver::new(TestVmm::from_stream(ours, GpuDriver::options(Flavor::Qemu)));
    drive(&mut gpu);
    gpu.vmm.disconnect();
    let status = wait_exit(&mut child, EXIT_DEADLINE);
    assert!(status.success(), "exit status {status}");
}
