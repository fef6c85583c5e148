//! Socket activation as systemd does it, through `systemd-socket-activate` (no PID 1 needed):
//! the daemon serves VMMs on the activated socket, picks sockets by `LISTEN_FDNAMES` rather than
//! by position, and refuses names it does not know.

mod prod_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use prod_support::{require_tool, scratch, sigterm, wait_exit, EXIT_DEADLINE};
use support::{Flavor, TestVmm, VmmOptions};

/// Device features the VMM acks: VERSION_1, RING_RESET, PROTOCOL_FEATURES.
const FEATURES: u64 = (1 << 32) | (1 << 40) | (1 << 30);
/// `virtio_gpu_config.num_scanouts`.
const NUM_SCANOUTS_OFFSET: u32 = 8;

/// `systemd-socket-activate -l SOCKET... --fdname=NAMES -- vhost-user-spice ARGS`. It passes the
/// daemon no environment but `-E` variables, so the configuration is pinned to an empty file.
fn activate(
    tool: &Path,
    sockets: &[&Path],
    names: &str,
    env: &[(&str, &Path)],
    args: &[&str],
    empty_config: &Path,
) -> Child {
    let mut command = std::process::Command::new(tool);
    for socket in sockets {
        command.arg("-l").arg(socket);
    }
    command.arg(format!("--fdname={names}"));
    command.arg(format!(
        "--setenv=VHOST_USER_SPICE_CONFIG={}",
        empty_config.display()
    ));
    for (name, value) in env {
        command.arg(format!("--setenv={name}={}", value.display()));
    }
    command
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_vhost-user-spice"))
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate runs")
}

/// Waits until `path` is a listening socket: the file appears at bind(2), a moment before
/// listen(2), and a connect in between is refused.
fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_listening(path) {
        assert!(
            Instant::now() < deadline,
            "{path:?} did not start listening"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether /proc/net/unix lists `path` with the listening flag (`__SO_ACCEPTCON`, 0x10000).
fn is_listening(path: &Path) -> bool {
    const SO_ACCEPTCON: u32 = 0x1_0000;
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = fields.get(3).and_then(|f| u32::from_str_radix(f, 16).ok());
        fields.get(7) == path.to_str().as_ref() && flags.is_some_and(|f| f & SO_ACCEPTCON != 0)
    })
}

fn scanouts(socket: &Path) -> u32 {
    let mut vmm = TestVmm::connect_with(
        socket,
        VmmOptions::new(Flavor::CloudHypervisor, &[64, 16], FEATURES),
    );
    let bytes = vmm.get_config(NUM_SCANOUTS_OFFSET, 4);
    vmm.disconnect();
    u32::from_le_bytes(bytes.try_into().expect("4 bytes"))
}

/// The first connection to `socket` makes systemd-socket-activate exec the daemon, which must
/// fail; returns its stderr.
fn fails_at_first_connection(child: &mut Child, socket: &Path) -> String {
    wait_for(socket);
    let _trigger = std::os::unix::net::UnixStream::connect(socket).unwrap();
    let status = wait_exit(child, EXIT_DEADLINE);
    assert!(!status.success());
    std::io::read_to_string(child.stderr.take().unwrap()).unwrap()
}

/// SIGTERM: the daemon exits successfully.
fn stops_cleanly(child: &mut Child) {
    sigterm(child);
    let status = wait_exit(child, EXIT_DEADLINE);
    assert!(status.success(), "exit status {status}");
}

fn tool() -> Option<PathBuf> {
    require_tool("systemd-socket-activate")
}

#[test]
fn serves_one_vmm_after_another_on_the_activated_socket() {
    let Some(tool) = tool() else { return };
    let (dir, empty) = scratch();
    let socket = dir.path().join("gpu.sock");
    let notify = dir.path().join("notify");
    let systemd = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut child = activate(
        &tool,
        &[&socket],
        "vhost-user",
        &[("NOTIFY_SOCKET", &notify)],
        &["--disable-ticketing"],
        &empty,
    );
    wait_for(&socket);
    // The first connection makes systemd-socket-activate exec the daemon, which serves it.
    assert_eq!(scanouts(&socket), 1);
    let mut buf = [0u8; 512];
    let n = systemd.recv(&mut buf).expect("READY=1");
    let ready = String::from_utf8_lossy(&buf[..n]);
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(ready.contains("VMM socket fd 3"), "{ready}");
    // A listening socket keeps being served.
    assert_eq!(scanouts(&socket), 1);
    stops_cleanly(&mut child);
}

#[test]
fn fd_names_choose_the_socket_not_the_position() {
    let Some(tool) = tool() else { return };
    let (dir, empty) = scratch();
    let input = dir.path().join("input.sock");
    let gpu = dir.path().join("gpu.sock");
    // fd 3 is the input socket, fd 4 the GPU's: the daemon must serve the GPU on fd 4.
    let mut child = activate(
        &tool,
        &[&input, &gpu],
        "input:gpu",
        &[],
        &["--disable-ticketing"],
        &empty,
    );
    wait_for(&gpu);
    assert_eq!(scanouts(&gpu), 1);
    stops_cleanly(&mut child);
}

#[test]
fn activated_socket_and_socket_path_conflict() {
    let Some(tool) = tool() else { return };
    let (dir, empty) = scratch();
    let socket = dir.path().join("gpu.sock");
    let other = dir.path().join("other.sock");
    let mut child = activate(
        &tool,
        &[&socket],
        "vhost-user",
        &[],
        &[
            "--disable-ticketing",
            "--socket-path",
            other.to_str().unwrap(),
        ],
        &empty,
    );
    let stderr = fails_at_first_connection(&mut child, &socket);
    assert!(
        stderr.contains("--socket-path and the socket-activated `vhost-user`"),
        "{stderr}"
    );
}

#[test]
fn unknown_fd_name_is_refused_with_the_fix() {
    let Some(tool) = tool() else { return };
    let (dir, empty) = scratch();
    let socket = dir.path().join("gpu.sock");
    let mut child = activate(
        &tool,
        &[&socket],
        "vhost-user-spice-gpu@vm1.socket",
        &[],
        &["--disable-ticketing"],
        &empty,
    );
    let stderr = fails_at_first_connection(&mut child, &socket);
    assert!(stderr.contains("FileDescriptorName="), "{stderr}");
    assert!(
        stderr.contains("vhost-user-spice-gpu@vm1.socket"),
        "{stderr}"
    );
}

#[test]
fn activated_spice_listener_off_loopback_is_checked() {
    let Some(tool) = tool() else { return };
    let (dir, empty) = scratch();
    let gpu = dir.path().join("gpu.sock");
    let password = dir.path().join("pw");
    std::fs::write(&password, "secret\n").unwrap();
    // A port free a moment ago, on every address (systemd-socket-activate refuses port 0).
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spice = PathBuf::from(format!("0.0.0.0:{port}"));
    let mut child = activate(
        &tool,
        &[&gpu, &spice],
        "vhost-user:spice",
        &[],
        &["--password-file", password.to_str().unwrap()],
        &empty,
    );
    let stderr = fails_at_first_connection(&mut child, &gpu);
    assert!(stderr.contains("--allow-plaintext-password"), "{stderr}");
}

/// A unix SPICE socket is local: password login is fine, the password comes as a credential,
/// and the SPICE server takes the activated listener over.
#[test]
fn activated_spice_listener_on_loopback_takes_a_password() {
    let Some(tool) = tool() else { return };
    let (dir, empty) = scratch();
    let gpu = dir.path().join("gpu.sock");
    let spice = dir.path().join("spice.sock");
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("spice-password"), "secret\n").unwrap();
    // A unix SPICE socket is local: password login is fine; the password comes as a credential.
    let mut child = activate(
        &tool,
        &[&gpu, &spice],
        "vhost-user:spice",
        &[("CREDENTIALS_DIRECTORY", &credentials)],
        &[],
        &empty,
    );
    wait_for(&gpu);
    assert_eq!(scanouts(&gpu), 1);
    stops_cleanly(&mut child);
}
