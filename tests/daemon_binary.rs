//! The `vhost-user-spice` binary follows QEMU's backend program conventions: capabilities on
//! request, a clean exit 0 on SIGTERM, a non-zero exit with a message on bad setup, and `--fd`
//! with a connected socket (libvirt's launch).

mod prod_support;
mod support;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::Instant;

use prod_support::{sigterm, wait_exit, EXIT_DEADLINE};
use support::{Flavor, TestVmm, VmmOptions};

/// Device features the placeholder device offers (VERSION_1, RING_RESET, PROTOCOL_FEATURES).
const PLACEHOLDER_FEATURES: u64 = (1 << 32) | (1 << 40) | (1 << 30);

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vhost-user-spice"));
    command.env_remove("RUST_LOG");
    // No SPICE password in these tests: ticketing is on by default and needs one.
    command.arg("--disable-ticketing");
    command.args(["--spice-port", &support::free_port().to_string()]);
    command
}

#[test]
fn print_capabilities_is_the_gpu_descriptor() {
    for extra in [&[][..], &["--socket-path", "/nonexistent-dir/x.sock"][..]] {
        let output = binary()
            .arg("--print-capabilities")
            .args(extra)
            .output()
            .expect("the binary runs");
        assert!(output.status.success());
        let stdout = String::from_utf8(output.stdout).expect("UTF-8");
        // Exactly this text, so also exactly this JSON value.
        assert_eq!(stdout.trim_end(), r#"{"type":"gpu","features":[]}"#);
    }
}

#[test]
fn sigterm_exits_zero_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gpu.sock");
    let mut child = binary()
        .arg("--socket-path")
        .arg(&path)
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    support::wait_until(|| path.exists(), "the socket to appear");

    // Idle, then again with a VMM connected.
    let vmm = TestVmm::connect_with(
        &path,
        VmmOptions::new(Flavor::CloudHypervisor, &[64, 16], PLACEHOLDER_FEATURES),
    );
    let started = Instant::now();
    sigterm(&child);
    let status = wait_exit(&mut child, EXIT_DEADLINE);
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < EXIT_DEADLINE);
    assert!(!path.exists(), "the socket file is removed");
    drop(vmm);

    let mut child = binary()
        .arg("--socket-path")
        .arg(&path)
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    support::wait_until(|| path.exists(), "the socket to appear");
    sigterm(&child);
    assert!(wait_exit(&mut child, EXIT_DEADLINE).success());
}

fn assert_setup_fails(args: &[&str], message: &str) {
    let output = binary()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    assert!(!output.status.success(), "{args:?} must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(message),
        "{args:?}: stderr {stderr:?} lacks {message:?}"
    );
}

#[test]
fn bad_setup_exits_non_zero_with_a_message() {
    assert_setup_fails(
        &["--socket-path", "/nonexistent-dir-7d3a/gpu.sock"],
        "does not exist",
    );
    assert_setup_fails(
        &["--fd", "0"],
        "File descriptor 0 is not a unix stream socket",
    );
    assert_setup_fails(&["--fd", "987654"], "File descriptor 987654 is not open");
    assert_setup_fails(&[], "--socket-path");
    assert_setup_fails(
        &["--socket-path", "/tmp/a", "--fd", "3"],
        "cannot be used with",
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    assert_setup_fails(
        &["--socket-path", file.path().to_str().unwrap()],
        "is not a socket",
    );
}

#[test]
fn connected_fd_is_served_and_exit_follows_the_vmm() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let fd = theirs.as_raw_fd();
    // The child must inherit this one descriptor.
    // SAFETY: F_SETFD on a descriptor we own, clearing only FD_CLOEXEC.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
    let mut child = binary()
        .args(["--fd", &fd.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    drop(theirs);
    let mut vmm = TestVmm::from_stream(
        ours,
        VmmOptions::new(Flavor::Qemu, &[64, 16], PLACEHOLDER_FEATURES),
    );
    // The placeholder reads as one scanout (virtio_gpu_config.num_scanouts, offset 8).
    assert_eq!(vmm.get_config(8, 4), 1u32.to_le_bytes());
    vmm.disconnect();
    let status = wait_exit(&mut child, EXIT_DEADLINE);
    assert!(status.success(), "exit status {status}");
}
