//! The shipped units under a real systemd PID 1: a `systemd-nspawn` container of this host's own
//! OS (`tests/tools/nspawn-sandbox.sh`) gets `systemd/install.sh DESTDIR` and docs/systemd.md's
//! per-VM steps for `vm1`, with a password credential and a port drop-in. A QEMU guest on the
//! host connects to the container's socket units; systemd starts the service (sandbox and all),
//! the guest's pattern reaches spicy-screenshot, a spice-gtk client's key reaches the guest,
//! `STATUS=` counts the client, and `systemctl stop` ends it with STOPPING=1 and exit 0. Started
//! with stdio on /dev/null, as libvirt starts it, its start-up error is in the journal.

#[path = "vm/mod.rs"]
mod vm;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

/// The container's systemd reaching `running` (about 1 s idle here; generous for a loaded CI
/// machine).
const BOOT_CONTAINER_TIMEOUT: Duration = Duration::from_secs(120);
/// Generous for a TCG boot on a loaded 2-core machine (scripts/README.md: 5-11 s to the pattern).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// The service's state or status text changing after an event.
const STATE_TIMEOUT: Duration = Duration::from_secs(20);
/// spicy-screenshot links, waits for the first frame and saves it.
const SCREENSHOT_TIMEOUT: Duration = Duration::from_secs(30);
/// The container powering off after SIGTERM to nspawn.
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(20);
const W: u32 = 1280;
const H: u32 = 800;
const PASSWORD: &str = "correct horse";
const SERVICE: &str = "vhost-user-spice@vm1.service";
/// The guest's evdev line for KEY_A (30) pressed, from `guest/init`'s logger.
const KEY_A_PRESSED: &str = " 1 30 1";
/// PC scancode of the `a` key, as spice-gtk sends it.
const SCANCODE_A: u32 = 0x1e;

const NSPAWN: &str = "/usr/bin/systemd-nspawn";
const UNSHARE: &str = "/usr/bin/unshare";
const NSENTER: &str = "/usr/bin/nsenter";

/// docs/systemd.md "Per VM", run in the container as root; `$PORT` is a free port of this host
/// (the container shares its network).
const PER_VM: &str = r#"
set -eu
cp /usr/share/doc/vhost-user-spice/example.toml /etc/vhost-user-spice/vm1.toml
install -m 0600 /dev/null /etc/vhost-user-spice/vm1.password
printf '%s\n' 'correct horse' > /etc/vhost-user-spice/vm1.password
mkdir -p /etc/systemd/system/vhost-user-spice-spice@vm1.socket.d
printf "[Socket]\nListenStream=\nListenStream=127.0.0.1:$PORT\n" \
    > /etc/systemd/system/vhost-user-spice-spice@vm1.socket.d/port.conf
systemctl daemon-reload
systemctl enable --now vhost-user-spice-gpu@vm1.socket vhost-user-spice-spice@vm1.socket
systemctl enable --now vhost-user-spice-input@vm1.socket
"#;

/// Whether containers can run here: systemd-nspawn (installed by scripts/install-test-deps.sh
/// when root) and root itself. Panics under CI=true instead of skipping.
fn nspawn_enabled() -> bool {
    vm::root_tools_available(
        "nspawn",
        &[NSPAWN, UNSHARE, NSENTER],
        "mount namespaces, nspawn",
    )
}

/// The container; dropping it powers it off (SIGTERM to nspawn), or kills it.
struct Container {
    nspawn: vm::ChildGuard,
    /// The container's PID 1 (systemd), as this process sees it.
    init: u32,
    root: tempfile::TempDir,
}

impl Container {
    fn boot() -> Container {
        let root = tempfile::Builder::new()
            .prefix("vus-nspawn-")
            .tempdir()
            .expect("a temporary directory");
        let log = std::fs::File::create(root.path().join("nspawn.log")).unwrap();
        let nspawn = vm::ChildGuard::spawn(
            Command::new(UNSHARE)
                .arg("--mount")
                .arg(vm::workspace_root().join("tests/tools/nspawn-sandbox.sh"))
                .arg(root.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        )
        .expect("unshare runs");
        let mut container = Container {
            nspawn,
            init: 0,
            root,
        };
        // nspawn forks a short-lived helper before the container's PID 1, and PID 1 is
        // nspawn's own code until it execs systemd: only a child named `systemd` is the one.
        // Looked up again on every poll, so a helper seen first is never kept.
        let deadline = Instant::now() + BOOT_CONTAINER_TIMEOUT;
        let mut last_state = String::from("(no systemd child yet)");
        loop {
            if let Ok(Some(status)) = container.nspawn.try_wait() {
                panic!("nspawn exited: {status}\n{}", container.diagnostics());
            }
            if let Some(init) = container.systemd_child() {
                container.init = init;
                let out = container.run(&["systemctl", "is-system-running"]);
                let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if matches!(state.as_str(), "running" | "degraded") {
                    return container;
                }
                last_state = format!("{state} {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            if Instant::now() >= deadline {
                panic!(
                    "the container's systemd not running within {BOOT_CONTAINER_TIMEOUT:?}: \
                     is-system-running: {last_state}\n{}",
                    container.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pid of nspawn's child that runs systemd, if there is one yet.
    fn systemd_child(&self) -> Option<u32> {
        let pid = self.nspawn.id();
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        children
            .split_whitespace()
            .filter_map(|child| child.parse().ok())
            .find(|child: &u32| {
                std::fs::read_to_string(format!("/proc/{child}/comm"))
                    .is_ok_and(|comm| comm.trim() == "systemd")
            })
    }

    /// What the container printed and, if its systemd answers, its pending jobs and failed
    /// units: for a boot that did not finish.
    fn diagnostics(&self) -> String {
        let log = std::fs::read_to_string(self.root.path().join("nspawn.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let mut text = format!(
            "nspawn's output (last {} lines):\n{}\n",
            tail.len(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        if self.init != 0 {
            for command in [
                &["systemctl", "list-jobs", "--no-pager"][..],
                &["systemctl", "--failed", "--no-pager"],
            ] {
                let out = self.run(command);
                text.push_str(&format!(
                    "{}:\n{}{}\n",
                    command.join(" "),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        text
    }

    /// A command in all of the container's namespaces.
    fn run(&self, command: &[&str]) -> Output {
        Command::new(NSENTER)
            .args(["-t", &self.init.to_string(), "-a", "--"])
            .args(command)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter runs")
    }

    /// `systemctl show -p NAME --value SERVICE`.
    fn property(&self, name: &str) -> String {
        let out = self.run(&["systemctl", "show", "-p", name, "--value", SERVICE]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn wait_property(&self, name: &str, want: impl Fn(&str) -> bool) -> String {
        vm::poll_until(&format!("{SERVICE} {name}"), STATE_TIMEOUT, || {
            let value = self.property(name);
            want(&value).then_some(value)
        })
    }

    /// A path inside the container, reached from the host through its PID 1's root.
    fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{inside}", self.init))
    }

    fn journal(&self) -> String {
        let out = self.run(&["journalctl", "--no-pager", "-n", "40", "-u", SERVICE]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.nspawn.terminate().is_ok() {
            let _ = self.nspawn.wait_timeout(POWEROFF_TIMEOUT);
        }
        self.nspawn.kill();
    }
}

/// A port on 127.0.0.1 that was free a moment ago (the container shares this host's network).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

#[test]
fn units_run_under_systemd_in_a_container_and_serve_a_guest() {
    if !vm::vm_tests_enabled() || !vm::spice_clients_enabled() || !nspawn_enabled() {
        return;
    }
    let image = vm::GuestImage::build().expect("the guest image builds");
    let started = Instant::now();
    let container = Container::boot();
    let booted = started.elapsed();

    // Installed from outside, into the container's tree (install.sh's DESTDIR), as a package
    // would be; then the operator's steps inside.
    let destdir = container.path("/");
    let out = Command::new(vm::workspace_root().join("systemd/install.sh"))
        .arg(&destdir)
        .env("BINARY", env!("CARGO_BIN_EXE_vhost-user-spice"))
        .output()
        .expect("install.sh runs");
    vm::command_succeeded("install.sh DESTDIR", &out);
    let port = free_port();
    let script = format!("PORT={port}\n{PER_VM}");
    vm::command_succeeded(
        "the docs' per-VM steps",
        &container.run(&["sh", "-c", &script]),
    );

    // Socket activation: nothing runs until the VMM connects.
    assert_eq!(container.property("ActiveState"), "inactive");
    let gpu = container.path("/run/vhost-user-spice/vm1/gpu.sock");
    let input = container.path("/run/vhost-user-spice/vm1/input.sock");
    let mut qemu = vm::Qemu::start(&image, vm::QemuOpts::default().gpu(&gpu).input(&input))
        .expect("QEMU starts");
    container.wait_property("ActiveState", |s| s == "active");
    let at_active = qemu.elapsed();
    // systemd's own clock: exec of the daemon to READY=1.
    let usec = |name: &str| container.property(name).parse::<u64>().unwrap_or_default();
    let to_ready = Duration::from_micros(
        usec("ActiveEnterTimestampMonotonic")
            .saturating_sub(usec("ExecMainStartTimestampMonotonic")),
    );
    let status = container.property("StatusText");
    assert!(
        status.contains(&format!("SPICE 127.0.0.1:{port}")) && status.contains("Serving 0"),
        "STATUS= {status:?}"
    );
    let drawn = qemu.wait_serial("PATTERN DRAWN", BOOT_TIMEOUT);
    let drawn = drawn.unwrap_or_else(|e| panic!("{e}\n{}", container.journal()));
    assert_eq!(drawn, format!("PATTERN DRAWN {W}x{H}"));
    let at_pattern = qemu.elapsed();

    let shot = container.root.path().join("shot.ppm");
    let t0 = Instant::now();
    let mut screenshot = vm::ChildGuard::spawn(
        Command::new(vm::SPICY_SCREENSHOT)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-w",
                PASSWORD,
                "-o",
            ])
            .arg(&shot)
            .stdin(Stdio::null()),
    )
    .expect("spicy-screenshot runs");
    let exit = screenshot
        .wait_timeout(SCREENSHOT_TIMEOUT)
        .unwrap()
        .unwrap_or_else(|| panic!("spicy-screenshot did not finish in {SCREENSHOT_TIMEOUT:?}"));
    let took = t0.elapsed();
    assert!(
        exit.success(),
        "spicy-screenshot: {exit}\n{}",
        container.journal()
    );
    vm::assert_ppm_is_pattern(&shot, W, H);

    // A client that stays: counted in STATUS=, its key reaches the guest through the
    // activated input socket, and leaving is counted too.
    qemu.wait_serial("GUEST READY", BOOT_TIMEOUT)
        .expect("the guest is ready for input");
    let mut client = vm::client::SpiceClient::connect(port, Some(PASSWORD)).expect("the client");
    client
        .wait_for("the inputs channel", STATE_TIMEOUT, |e| {
            e["event"] == "channel" && e["type"] == 3 && e["what"] == "opened"
        })
        .unwrap();
    container.wait_property("StatusText", |s| s.ends_with("Serving 1 SPICE client"));
    client
        .send(json!({"cmd": "key", "scancode": SCANCODE_A}))
        .unwrap();
    vm::poll_until("KEY_A in the guest", STATE_TIMEOUT, || {
        let log = qemu.serial_log();
        log.lines()
            .any(|l| l.contains("EVDEV") && l.trim_end().ends_with(KEY_A_PRESSED))
            .then_some(())
    });
    drop(client);
    container.wait_property("StatusText", |s| s.ends_with("Serving 0 SPICE clients"));

    // `systemctl stop`: SIGTERM, STOPPING=1 with STATUS=Shutting down in one notification,
    // exit 0.
    let t1 = Instant::now();
    vm::command_succeeded(
        "systemctl stop",
        &container.run(&["systemctl", "stop", SERVICE]),
    );
    let stop = t1.elapsed();
    assert_eq!(container.property("ActiveState"), "inactive");
    assert_eq!(container.property("Result"), "success");
    assert_eq!(container.property("ExecMainStatus"), "0");
    assert_eq!(container.property("StatusText"), "Shutting down");
    let journal = container.journal();
    assert!(journal.contains("Termination signal"), "{journal}");
    drop(qemu);

    // Started as libvirt starts a backend (stdio on /dev/null, libvirt's environment): a
    // start-up error reaches the journal instead of being lost.
    let out = container.run(&[
        "sh",
        "-c",
        "env -i /usr/libexec/vhost-user-spice --socket-path /run/nowhere.sock \
         </dev/null >/dev/null 2>&1; echo $?",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    vm::poll_until("the start-up error in the journal", STATE_TIMEOUT, || {
        let out = container.run(&[
            "journalctl",
            "--no-pager",
            "-o",
            "cat",
            "-t",
            "vhost-user-spice",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .contains("no password is set")
            .then_some(())
    });

    eprintln!(
        "container running {booted:?}; QEMU start -> service active {at_active:?} (exec -> \
         READY=1 {to_ready:?}); -> PATTERN DRAWN {at_pattern:?}; spicy-screenshot {took:?}; \
         systemctl stop {stop:?}\n{}",
        String::from_utf8_lossy(
            &container
                .run(&["systemctl", "status", "--no-pager", SERVICE])
                .stdout
        )
    );
}
