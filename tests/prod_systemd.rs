//! The shipped files: the units pass `systemd-analyze verify`, the service's sandbox scores at
//! most 1.0 in `systemd-analyze security`, `install.sh` stages everything, the libvirt
//! descriptor is valid, and the example configuration is made of real keys.

mod prod_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use prod_support::require_tool;
use vhost_user_spice::config::Settings;

const UNITS: [&str; 4] = [
    "vhost-user-spice@.service",
    "vhost-user-spice-gpu@.socket",
    "vhost-user-spice-input@.socket",
    "vhost-user-spice-spice@.socket",
];

/// Highest `systemd-analyze security` exposure the service may have (brief: "≤ 1.0").
const MAX_EXPOSURE: f64 = 1.0;

fn systemd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd")
}

/// The units in a temporary directory, with ExecStart pointing at the binary just built
/// (`verify` checks that it exists and is executable).
fn staged_units() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for unit in UNITS {
        let text = std::fs::read_to_string(systemd_dir().join(unit)).unwrap();
        let text = text.replace(
            "/usr/libexec/vhost-user-spice",
            env!("CARGO_BIN_EXE_vhost-user-spice"),
        );
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    dir
}

/// `foo@.service` → `foo@vm1.service`: templates are verified through an instance.
fn instance(unit: &str) -> String {
    unit.replace("@.", "@vm1.")
}

#[test]
fn units_verify_cleanly() {
    let Some(analyze) = require_tool("systemd-analyze") else {
        return;
    };
    let dir = staged_units();
    for unit in UNITS {
        let output = Command::new(&analyze)
            .args(["verify", "--man=no", "--generators=no"])
            .arg(dir.path().join(instance(unit)))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{unit}: {stderr}");
        // Warnings (an ignored line, an unknown key) do not fail verify; they fail this test.
        assert!(stderr.trim().is_empty(), "{unit}: {stderr}");
    }
}

#[test]
fn service_sandbox_scores_at_most_one() {
    let Some(analyze) = require_tool("systemd-analyze") else {
        return;
    };
    let dir = staged_units();
    let output = Command::new(&analyze)
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(dir.path().join("vhost-user-spice@vm1.service"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure in {stdout}"));
    let score: f64 = line
        .rsplit(':')
        .next()
        .and_then(|tail| tail.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in {line:?}"));
    println!("systemd-analyze security: {}", line.trim());
    assert!(score <= MAX_EXPOSURE, "{line}\n{stdout}");
    for problem in ["Invalid syntax", "Unknown key"] {
        assert!(!stderr.contains(problem), "{stderr}");
    }
}

#[test]
fn socket_units_name_their_descriptors() {
    for (unit, name) in [
        ("vhost-user-spice-gpu@.socket", "vhost-user"),
        ("vhost-user-spice-input@.socket", "input"),
        ("vhost-user-spice-spice@.socket", "spice"),
    ] {
        let text = std::fs::read_to_string(systemd_dir().join(unit)).unwrap();
        assert!(
            text.contains(&format!("\nFileDescriptorName={name}\n")),
            "{unit}"
        );
        assert!(
            text.contains("\nService=vhost-user-spice@%i.service\n"),
            "{unit}"
        );
    }
    let service = std::fs::read_to_string(systemd_dir().join("vhost-user-spice@.service")).unwrap();
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=",
        "LoadCredential=spice-password:",
        "LoadCredential=tls-key:",
        "ExecStart=/usr/libexec/vhost-user-spice --config /etc/vhost-user-spice/%i.toml",
    ] {
        assert!(service.contains(line), "the service lacks {line}");
    }
}

#[test]
fn install_stages_units_descriptor_and_binary() {
    let root = tempfile::tempdir().unwrap();
    let status = Command::new(systemd_dir().join("install.sh"))
        .arg(root.path())
        .env("BINARY", env!("CARGO_BIN_EXE_vhost-user-spice"))
        .status()
        .unwrap();
    assert!(status.success());
    for unit in UNITS {
        assert!(
            root.path()
                .join("usr/lib/systemd/system")
                .join(unit)
                .is_file(),
            "{unit}"
        );
    }
    assert!(root.path().join("etc/vhost-user-spice").is_dir());
    assert!(root
        .path()
        .join("usr/share/doc/vhost-user-spice/example.toml")
        .is_file());
    let descriptor = std::fs::read(
        root.path()
            .join("usr/share/qemu/vhost-user/40-vhost-user-spice-gpu.json"),
    )
    .unwrap();
    let descriptor: serde_json::Value = serde_json::from_slice(&descriptor).unwrap();
    assert_eq!(descriptor["type"], "gpu");
    assert_eq!(descriptor["binary"], "/usr/libexec/vhost-user-spice");
    assert!(descriptor["description"].is_string());
    // libvirt runs `<binary> --print-capabilities` and needs a features array.
    let installed = root.path().join("usr/libexec/vhost-user-spice");
    let output = Command::new(installed)
        .arg("--print-capabilities")
        .output()
        .unwrap();
    let capabilities: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        capabilities,
        serde_json::json!({"type": "gpu", "features": []})
    );
}

#[test]
fn example_configuration_uses_real_keys() {
    let text = std::fs::read_to_string(systemd_dir().join("example.toml")).unwrap();
    // Every commented-out `# key = value` line, switched on, parses; together they name every
    // key the file understands.
    let mut keys = Vec::new();
    for line in text.lines() {
        let Some(setting) = line.strip_prefix("# ") else {
            continue;
        };
        let Some((key, _)) = setting.split_once(" = ") else {
            continue;
        };
        if key.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
            Settings::from_toml(setting, Path::new("example.toml"))
                .unwrap_or_else(|e| panic!("{setting}: {e}"));
            keys.push(key.to_owned());
        }
    }
    let every = keys
        .iter()
        .map(|k| format!("{k} = {}", sample(k)))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(Settings::from_toml(&every, Path::new("x")).is_ok());
    assert_eq!(keys.len(), 24, "one line per key: {keys:?}");
}

/// A value of the right type for `key`, to parse all keys together.
fn sample(key: &str) -> &'static str {
    match key {
        "fd" | "input-fd" | "width" | "height" | "max-hostmem" | "spice-port" | "ticket-expiry"
        | "max-clients" => "1",
        "demo" | "disable-ticketing" | "allow-plaintext-password" | "tls-only" => "true",
        "input" => "\"all\"",
        "image-compression" => "\"auto\"",
        "spice-tls-port" => "\"off\"",
        _ => "\"x\"",
    }
}
