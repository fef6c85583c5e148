//! Decides whether the VM tests can run here: probes the host, installs what is missing when
//! root, and turns "cannot run" into a loud failure under CI instead of a silent skip.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::process::is_root;
use super::{qemu_binary, workspace_root};

/// The oldest QEMU these tests are written against (`vhost-user-gpu-pci` behaviour of
/// shared/research/vmm-frontends.md §3, QEMU 10.0.2 from bookworm-backports).
const MIN_QEMU_MAJOR: u32 = 10;

/// What the VM tests need and this host lacks, one human-readable entry per item; empty when the
/// tests can run.
pub fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        missing.push("an x86_64 Linux host".to_string());
        return missing;
    }
    match qemu_major_version() {
        Some(v) if v >= MIN_QEMU_MAJOR => {}
        Some(v) => missing.push(format!(
            "QEMU >= {MIN_QEMU_MAJOR} ({} is {v}; bookworm-backports qemu-system-x86)",
            qemu_binary()
        )),
        None => missing.push(format!(
            "{} (bookworm-backports qemu-system-x86)",
            qemu_binary()
        )),
    }
    // The guest is assembled from Debian packages; a finished image needs none of these.
    if !super::GuestImage::is_built() {
        for tool in ["apt-get", "apt-cache", "dpkg-deb", "flock", "gzip", "tar"] {
            if !has_command(tool) {
                missing.push(tool.to_string());
            }
        }
    }
    missing
}

/// Whether the calling test should boot VMs. Missing prerequisites are installed with
/// `scripts/install-test-deps.sh` when running as root. If they are still missing, this returns
/// false (print-and-skip) normally, and panics when `CI=true`, so CI never passes by skipping.
/// `VUS_SKIP_VM_TESTS=1` skips explicitly, also under CI. Evaluated once per test binary.
pub fn vm_tests_enabled() -> bool {
    static ENABLED: OnceLock<Result<(), String>> = OnceLock::new();
    let verdict = ENABLED.get_or_init(|| {
        if std::env::var("VUS_SKIP_VM_TESTS").as_deref() == Ok("1") {
            return Err("VUS_SKIP_VM_TESTS=1".into());
        }
        let mut missing = missing_prerequisites();
        if !missing.is_empty() && is_root() {
            let script = workspace_root().join("scripts/install-test-deps.sh");
            eprintln!(
                "vm tests: missing {missing:?}; running {}",
                script.display()
            );
            match Command::new(&script).status() {
                Ok(s) if s.success() => {}
                Ok(s) => eprintln!("vm tests: {} failed with {s}", script.display()),
                Err(e) => eprintln!("vm tests: cannot run {}: {e}", script.display()),
            }
            missing = missing_prerequisites();
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("missing {}", missing.join(", ")))
        }
    });
    match verdict {
        Ok(()) => true,
        Err(why) if std::env::var("VUS_SKIP_VM_TESTS").as_deref() == Ok("1") => {
            eprintln!("vm tests skipped: {why}");
            false
        }
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("VM tests cannot run under CI=true: {why} (see scripts/README.md)")
        }
        Err(why) => {
            eprintln!("vm tests skipped: {why} (run scripts/install-test-deps.sh as root)");
            false
        }
    }
}

fn qemu_major_version() -> Option<u32> {
    let out = Command::new(qemu_binary())
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    // "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split("version ").nth(1)?;
    version.split('.').next()?.trim().parse().ok()
}

fn has_command(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(name)))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// spice-gtk's programs the VM tests drive as SPICE clients.
pub const SPICY_SCREENSHOT: &str = "/usr/bin/spicy-screenshot";
/// Debian's Python, which has the GObject bindings (`tests/tools/spice_client.py`).
pub const PYTHON: &str = "/usr/bin/python3";
const SPICE_TYPELIB: &str =
    "/usr/lib/x86_64-linux-gnu/girepository-1.0/SpiceClientGLib-2.0.typelib";
const PYTHON_GI: &str = "/usr/lib/python3/dist-packages/gi/__init__.py";

fn missing_spice_clients() -> Vec<&'static str> {
    [SPICY_SCREENSHOT, PYTHON, SPICE_TYPELIB, PYTHON_GI]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect()
}

/// Whether the real spice-gtk clients (`spicy-screenshot`, the Python binding) can run here,
/// with the same rule as [`vm_tests_enabled`]: installed by `scripts/install-test-deps.sh` when
/// root, else a loud skip, or a panic under `CI=true`.
pub fn spice_clients_enabled() -> bool {
    static ENABLED: OnceLock<Result<(), String>> = OnceLock::new();
    let verdict = ENABLED.get_or_init(|| {
        let mut missing = missing_spice_clients();
        if !missing.is_empty() && is_root() {
            let script = workspace_root().join("scripts/install-test-deps.sh");
            eprintln!(
                "spice clients: missing {missing:?}; running {}",
                script.display()
            );
            if let Err(e) = Command::new(&script).status() {
                eprintln!("spice clients: cannot run {}: {e}", script.display());
            }
            missing = missing_spice_clients();
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("missing {}", missing.join(", ")))
        }
    });
    match verdict {
        Ok(()) => true,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "SPICE client tests cannot run under CI=true: {why} (scripts/install-test-deps.sh)"
            )
        }
        Err(why) => {
            eprintln!("!!!!! SKIPPED: {why} (run scripts/install-test-deps.sh as root)");
            false
        }
    }
}

/// Whether a test that needs `tools` (absolute paths) and root can run: installs what is
/// missing with `scripts/install-test-deps.sh` when root; if something is still missing it
/// prints and returns false, or panics under `CI=true` so CI never passes by skipping. `what`
/// names the test and `root_for` why it needs root, for the messages.
pub fn root_tools_available(what: &str, tools: &[&str], root_for: &str) -> bool {
    let missing = || -> Vec<&str> {
        tools
            .iter()
            .copied()
            .filter(|p| !Path::new(p).exists())
            .collect()
    };
    let root = is_root();
    if !missing().is_empty() && root {
        let script = workspace_root().join("scripts/install-test-deps.sh");
        let _ = Command::new(script).status();
    }
    let mut why = missing().join(", ");
    if !root {
        why.push_str(&format!(" root ({root_for})"));
    }
    if why.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the {what} test cannot run under CI=true: missing {why} (scripts/install-test-deps.sh)"
    );
    eprintln!("!!!!! SKIPPED: missing {why} (run scripts/install-test-deps.sh as root)");
    false
}
