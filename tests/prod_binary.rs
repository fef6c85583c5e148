//! The binary in production shape: capabilities as JSON, the configuration file under the
//! command line, secure-default refusals, credentials, and systemd notifications.

mod prod_support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use prod_support::{
    binary, notify_socket, receive_until, scratch, sigterm, spice_port_line, wait_exit,
    EXIT_DEADLINE,
};

/// How long a started daemon may take to create its socket or say READY.
const START_TIMEOUT: Duration = Duration::from_secs(10);

fn wait_for(path: &Path) {
    let deadline = Instant::now() + START_TIMEOUT;
    while !path.exists() {
        assert!(Instant::now() < deadline, "{path:?} did not appear");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs the binary to completion and returns its stderr, asserting it failed.
fn fails(command: &mut std::process::Command) -> String {
    let output = command.output().expect("the binary runs");
    assert!(!output.status.success(), "{command:?} must fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn print_capabilities_is_json_for_a_2d_gpu() {
    let (_dir, empty) = scratch();
    let output = binary(&empty).arg("--print-capabilities").output().unwrap();
    assert!(output.status.success());
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(value, serde_json::json!({"type": "gpu", "features": []}));
}

#[test]
fn configuration_file_alone_starts_the_daemon() {
    let (dir, empty) = scratch();
    let socket = dir.path().join("gpu.sock");
    let file = dir.path().join("vm1.toml");
    std::fs::write(
        &file,
        format!(
            "socket-path = {socket:?}\ndisable-ticketing = true\nwidth = 1024\n{}",
            spice_port_line()
        ),
    )
    .unwrap();
    // Through --config, then through $VHOST_USER_SPICE_CONFIG.
    for by_env in [false, true] {
        let mut command = binary(&empty);
        if by_env {
            command.env("VHOST_USER_SPICE_CONFIG", &file);
        } else {
            command.arg("--config").arg(&file);
        }
        let mut child = command.stderr(Stdio::null()).spawn().unwrap();
        wait_for(&socket);
        sigterm(&child);
        assert!(wait_exit(&mut child, EXIT_DEADLINE).success());
        assert!(!socket.exists());
    }
}

#[test]
fn command_line_overrides_the_file() {
    let (dir, empty) = scratch();
    let from_file = dir.path().join("file.sock");
    let from_cli = dir.path().join("cli.sock");
    let file = dir.path().join("vm1.toml");
    std::fs::write(
        &file,
        format!(
            "socket-path = {from_file:?}\ndisable-ticketing = true\n{}",
            spice_port_line()
        ),
    )
    .unwrap();
    let mut child = binary(&empty)
        .arg("--config")
        .arg(&file)
        .arg("--socket-path")
        .arg(&from_cli)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&from_cli);
    assert!(!from_file.exists());
    sigterm(&child);
    assert!(wait_exit(&mut child, EXIT_DEADLINE).success());

    // And a switch the file turned on, the command line turns off again.
    let stderr = fails(
        binary(&empty)
            .arg("--config")
            .arg(&file)
            .arg("--disable-ticketing=false"),
    );
    assert!(stderr.contains("no password is set"), "{stderr}");
}

#[test]
fn unknown_key_names_the_key_and_the_file() {
    let (dir, empty) = scratch();
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "disable-ticketing = true\nspice-prot = 5930\n").unwrap();
    let stderr = fails(
        binary(&empty)
            .arg("--config")
            .arg(&file)
            .args(["--fd", "3"]),
    );
    assert!(stderr.contains("unknown field `spice-prot`"), "{stderr}");
    assert!(stderr.contains("typo.toml"), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
}

#[test]
fn secure_defaults_refuse_with_a_way_out() {
    let (dir, empty) = scratch();
    let socket = dir.path().join("gpu.sock");
    let socket = socket.to_str().unwrap();
    let stderr = fails(binary(&empty).args(["--socket-path", socket]));
    for hint in [
        "--password-file",
        "LoadCredential=spice-password",
        "--disable-ticketing",
    ] {
        assert!(stderr.contains(hint), "{stderr} lacks {hint}");
    }
    let stderr = fails(binary(&empty).arg("--demo"));
    assert!(stderr.contains("--demo --disable-ticketing"), "{stderr}");

    let password = dir.path().join("pw");
    std::fs::write(&password, "secret\n").unwrap();
    let stderr = fails(binary(&empty).args([
        "--socket-path",
        socket,
        "--password-file",
        password.to_str().unwrap(),
        "--spice-addr",
        "0.0.0.0",
    ]));
    assert!(stderr.contains("--allow-plaintext-password"), "{stderr}");
    assert!(stderr.contains("0.0.0.0"), "{stderr}");
    assert!(!Path::new(socket).exists(), "refused before listening");
}

#[test]
fn password_from_a_systemd_credential() {
    let (dir, empty) = scratch();
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("spice-password"), "from-systemd\n").unwrap();
    let socket = dir.path().join("gpu.sock");
    let mut child = binary(&empty)
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .arg("--socket-path")
        .arg(&socket)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&socket);
    sigterm(&child);
    assert!(wait_exit(&mut child, EXIT_DEADLINE).success());
}

#[test]
fn help_groups_the_options_and_takes_no_password() {
    let (_dir, empty) = scratch();
    let output = binary(&empty).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for heading in [
        "VMM connection",
        "Display:",
        "SPICE listeners:",
        "SPICE authentication and clients:",
        "SPICE TLS:",
        "Files and logging:",
    ] {
        assert!(help.contains(heading), "--help lacks {heading:?}");
    }
    for option in [
        "--spice-tls-port",
        "--tls-cert-file",
        "--tls-key-file",
        "--tls-ca-file",
        "--tls-only",
        "--allow-plaintext-password",
        "--spice-unix",
        "--max-clients",
        "--input <WHO>",
        "--image-compression <MODE>",
        "--input-socket",
        "--input-fd",
        "--ticket-expiry",
        "--config",
    ] {
        assert!(help.contains(option), "--help lacks {option}");
    }
    assert!(!help.contains("--password <"), "never a password on argv");
}

#[test]
fn tells_systemd_ready_status_watchdog_and_stopping() {
    let (dir, empty) = scratch();
    let (notify, systemd) = notify_socket(dir.path());
    let socket = dir.path().join("gpu.sock");
    let mut child = binary(&empty)
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "200000")
        .args(["--disable-ticketing", "--socket-path"])
        .arg(&socket)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let messages = receive_until(&systemd, START_TIMEOUT, |m| m.contains("READY=1"));
    let ready = messages.last().unwrap();
    assert!(socket.exists(), "READY=1 only once the VMM socket listens");
    assert!(ready.contains("STATUS="), "{ready}");
    assert!(ready.contains("Serving 0 SPICE clients"), "{ready}");
    assert!(ready.contains(socket.to_str().unwrap()), "{ready}");
    // WATCHDOG_USEC=200 ms: pings every 100 ms.
    receive_until(&systemd, START_TIMEOUT, |m| m == "WATCHDOG=1\n");
    receive_until(&systemd, START_TIMEOUT, |m| m == "WATCHDOG=1\n");
    sigterm(&child);
    receive_until(&systemd, START_TIMEOUT, |m| m.starts_with("STOPPING=1\n"));
    assert!(wait_exit(&mut child, EXIT_DEADLINE).success());
}

#[test]
fn demo_tells_systemd_ready() {
    let (dir, empty) = scratch();
    let (notify, systemd) = notify_socket(dir.path());
    let mut child = binary(&empty)
        .env("NOTIFY_SOCKET", &notify)
        .args([
            "--demo",
            "--disable-ticketing",
            "--width",
            "320",
            "--height",
            "200",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let messages = receive_until(&systemd, START_TIMEOUT, |m| m.contains("READY=1"));
    assert!(messages.last().unwrap().contains("Demo"), "{messages:?}");
    sigterm(&child);
    receive_until(&systemd, START_TIMEOUT, |m| m.starts_with("STOPPING=1\n"));
    assert!(wait_exit(&mut child, EXIT_DEADLINE).success());
}
