//! libvirt starts the daemon, as docs/libvirt.md says it does: Debian bookworm's libvirtd 9.0
//! (system mode, in a throwaway namespace: `tests/tools/libvirt-sandbox.sh`) finds the
//! descriptor that `systemd/install.sh` installed, runs `/usr/libexec/vhost-user-spice
//! --fd=N` as `libvirt-qemu`, and the daemon takes its SPICE port and password from
//! `/etc/vhost-user-spice/<domain>.toml`, chosen through the pid file libvirt makes it inherit.
//! A TCG domain booting the test guest with `<video><driver name='vhostuser'/>` draws its
//! pattern, and spice-gtk's `spicy-screenshot` saves exactly that pattern.

#[path = "vm/mod.rs"]
mod vm;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// libvirtd answering after the sandbox starts (it probes QEMU's capabilities first: 2 s idle).
const LIBVIRTD_TIMEOUT: Duration = Duration::from_secs(60);
/// Generous for a TCG boot on a loaded 2-core machine (scripts/README.md: 5-11 s to the pattern).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// spicy-screenshot links, waits for the first frame and saves it.
const SCREENSHOT_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
const W: u32 = 1280;
const H: u32 = 800;

const DOMAIN: &str = "vm1";
const PASSWORD: &str = "s3cret-libvirt";
/// The domain's port, from `vm1.toml`.
const SPICE_PORT: u16 = 5931;
/// The port of `default.toml`, which must stay closed: the domain's own file wins.
const DEFAULT_PORT: u16 = 5930;

/// What libvirt needs here, beyond the VM tests' QEMU and spice-gtk.
const LIBVIRTD: &str = "/usr/sbin/libvirtd";
const VIRSH: &str = "/usr/bin/virsh";
const UNSHARE: &str = "/usr/bin/unshare";
const NSENTER: &str = "/usr/bin/nsenter";
/// Created by libvirt-daemon-system; Debian's libvirt runs QEMU and the backend as this user.
const QEMU_USER_HOME: &str = "/var/lib/libvirt";

/// The operator's steps of docs/libvirt.md, run inside the sandbox as root. `$BINARY` is the
/// daemon under test (`systemd/install.sh` copies it to /usr/libexec/vhost-user-spice).
const SETUP: &str = r#"
set -eu
"$REPO/systemd/install.sh"
cat > /etc/vhost-user-spice/vm1.toml <<EOF
spice-port = 5931
password-file = "/etc/vhost-user-spice/vm1.password"
EOF
install -m 0640 -g libvirt-qemu /dev/null /etc/vhost-user-spice/vm1.password
printf '%s\n' "$PASSWORD" > /etc/vhost-user-spice/vm1.password
cat > /etc/vhost-user-spice/default.toml <<EOF
spice-port = 5930
disable-ticketing = true
EOF
cp "$KERNEL" "$INITRD" /var/lib/libvirt/images/
"#;

/// docs/libvirt.md's domain, booting the test guest directly (kernel and initramfs) under TCG,
/// its serial console to a file the test reads.
const DOMAIN_XML: &str = r#"<domain type='qemu'>
  <name>vm1</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <memoryBacking>
    <source type='memfd'/>
    <access mode='shared'/>
  </memoryBacking>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>/var/lib/libvirt/images/vmlinuz</kernel>
    <initrd>/var/lib/libvirt/images/initrd.gz</initrd>
    <cmdline>console=tty0 console=ttyS0 consoleblank=0 panic=-1</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <cpu mode='custom' match='exact'>
    <model fallback='allow'>qemu64</model>
  </cpu>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'>
      <source path='/var/log/libvirt/qemu/vm1-serial.log'/>
    </serial>
    <video>
      <driver name='vhostuser'/>
      <model type='virtio' heads='1'/>
    </video>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"#;

/// Whether libvirt can run here: the packages (installed by scripts/install-test-deps.sh when
/// root) and root itself (mount namespaces). Panics under CI=true instead of skipping.
fn libvirt_enabled() -> bool {
    vm::root_tools_available(
        "libvirt",
        &[LIBVIRTD, VIRSH, UNSHARE, NSENTER, QEMU_USER_HOME],
        "mount namespaces",
    )
}

/// libvirtd in its namespaces (`tests/tools/libvirt-sandbox.sh`); dropping it kills `unshare`,
/// whose death kills the namespace's PID 1 and so everything in it.
struct Sandbox {
    unshare: vm::ChildGuard,
    /// PID 1 of the namespaces, as this process sees it (for nsenter).
    init: u32,
    root: tempfile::TempDir,
}

impl Sandbox {
    fn start() -> Sandbox {
        let root = tempfile::Builder::new()
            .prefix("vus-libvirt-")
            .tempdir()
            .expect("a temporary directory");
        let log = std::fs::File::create(root.path().join("libvirtd.log")).unwrap();
        let unshare = vm::ChildGuard::spawn(
            Command::new(UNSHARE)
                .args(["--mount", "--net", "--pid", "--fork", "--kill-child"])
                .arg(vm::workspace_root().join("tests/tools/libvirt-sandbox.sh"))
                .arg(root.path())
                // libvirt hands its own environment to the backend: none of the daemon's
                // variables from wherever the test runs.
                .env_remove("VHOST_USER_SPICE_CONFIG")
                .env_remove("CREDENTIALS_DIRECTORY")
                .env_remove("NOTIFY_SOCKET")
                .env_remove("LISTEN_FDS")
                .env_remove("LISTEN_PID")
                .env_remove("LISTEN_FDNAMES")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        )
        .expect("unshare runs");
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let init = vm::poll_until("the namespace's PID 1", Duration::from_secs(10), || {
            std::fs::read_to_string(&children)
                .ok()
                .and_then(|text| text.split_whitespace().next()?.parse().ok())
        });
        let sandbox = Sandbox {
            unshare,
            init,
            root,
        };
        vm::poll_until("libvirtd", LIBVIRTD_TIMEOUT, || {
            sandbox.virsh(&["version"]).status.success().then_some(())
        });
        sandbox
    }

    fn socket(&self) -> PathBuf {
        self.root.path().join("run/libvirt/libvirt-sock")
    }

    fn virsh(&self, args: &[&str]) -> Output {
        let uri = format!("qemu:///system?socket={}", self.socket().display());
        Command::new(VIRSH)
            .args(["-q", "-c", &uri])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("virsh runs")
    }

    /// `command` inside the sandbox's mount and network namespaces.
    fn enter(&self, command: &mut Command) -> Output {
        let program = command.get_program().to_owned();
        Command::new(NSENTER)
            .args(["-t", &self.init.to_string(), "-m", "-n", "--"])
            .arg(program)
            .args(command.get_args())
            .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .stdin(Stdio::null())
            .output()
            .expect("nsenter runs")
    }

    /// A file the sandbox wrote under /var (the overlay's upper layer).
    fn var(&self, path: &str) -> PathBuf {
        self.root.path().join("ov/var-up").join(path)
    }

    fn read_var(&self, path: &str) -> String {
        std::fs::read(self.var(path))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The tails of libvirtd's and the domain's logs, for failure messages.
    fn logs(&self) -> String {
        let tail = |text: String| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(25)..].join("\n")
        };
        format!(
            "--- libvirtd:\n{}\n--- vm1.log:\n{}\n--- serial:\n{}",
            tail(
                std::fs::read_to_string(self.root.path().join("libvirtd.log")).unwrap_or_default()
            ),
            tail(self.read_var("log/libvirt/qemu/vm1.log")),
            tail(self.read_var("log/libvirt/qemu/vm1-serial.log")),
        )
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // After a failed assertion the domain may still run: let libvirt tear it down (it
        // removes the VM's cgroups, which live outside the namespaces) before everything dies.
        let _ = self.virsh(&["destroy", DOMAIN]);
        self.unshare.kill();
    }
}

#[test]
fn libvirt_starts_the_daemon_and_spice_shows_the_guest() {
    if !vm::vm_tests_enabled() || !vm::spice_clients_enabled() || !libvirt_enabled() {
        return;
    }
    let image = vm::GuestImage::build().expect("the guest image builds");
    let started = Instant::now();
    let sandbox = Sandbox::start();
    let libvirtd_up = started.elapsed();

    let out = sandbox.enter(
        Command::new("/bin/sh")
            .args(["-c", SETUP])
            .env("REPO", vm::workspace_root())
            .env("BINARY", env!("CARGO_BIN_EXE_vhost-user-spice"))
            .env("PASSWORD", PASSWORD)
            .env("KERNEL", &image.kernel)
            .env("INITRD", &image.initrd),
    );
    vm::command_succeeded("the docs' set-up", &out);
    let xml = sandbox.root.path().join("vm1.xml");
    std::fs::write(&xml, DOMAIN_XML).unwrap();
    vm::command_succeeded(
        "virsh define",
        &sandbox.virsh(&["define", xml.to_str().unwrap()]),
    );

    let t0 = Instant::now();
    let out = sandbox.virsh(&["start", DOMAIN]);
    assert!(
        out.status.success(),
        "virsh start: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sandbox.logs()
    );
    let virsh_start = t0.elapsed();

    // What libvirt ran: our binary from the descriptor, `--fd=N` and nothing else, as the
    // domain's DAC user, holding the pid file that names the domain.
    let out = sandbox.enter(Command::new("/bin/sh").args([
        "-c",
        r#"f=$(ls /run/libvirt/qemu/*-vm1-video0-vhost-user-gpu.pid); pid=$(cat "$f")
           tr '\0' ' ' < /proc/$pid/cmdline; echo; stat -c %U /proc/$pid; echo "$pid""#,
    ]));
    let report = vm::command_succeeded("looking at the backend", &out);
    let mut lines = report.lines();
    let (cmdline, user, pid) = (
        lines.next().unwrap_or_default().trim_end().to_string(),
        lines.next().unwrap_or_default().to_string(),
        lines.next().unwrap_or_default().to_string(),
    );
    let fd = cmdline
        .strip_prefix("/usr/libexec/vhost-user-spice --fd=")
        .unwrap_or_else(|| panic!("libvirt ran {cmdline:?}"));
    assert!(fd.parse::<u32>().is_ok(), "libvirt ran {cmdline:?}");
    assert_eq!(user, "libvirt-qemu", "the backend's user");

    let serial = "log/libvirt/qemu/vm1-serial.log";
    let drawn = {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            let log = sandbox.read_var(serial);
            if let Some(line) = log.lines().find(|l| l.contains("PATTERN DRAWN")) {
                break line.to_string();
            }
            let qemu_log = sandbox.read_var("log/libvirt/qemu/vm1.log");
            assert!(
                !qemu_log.contains("shutting down") && Instant::now() < deadline,
                "no PATTERN DRAWN within {BOOT_TIMEOUT:?}\n{}",
                sandbox.logs()
            );
            std::thread::sleep(POLL);
        }
    };
    let at_pattern = t0.elapsed();
    assert!(
        drawn.ends_with(&format!("PATTERN DRAWN {W}x{H}")),
        "{drawn}"
    );

    // The SPICE client runs in the sandbox's network namespace, where the daemon listens.
    let shot = sandbox.root.path().join("shot.ppm");
    let t1 = Instant::now();
    let port = SPICE_PORT.to_string();
    let mut client = vm::ChildGuard::spawn(
        Command::new(NSENTER)
            .args(["-t", &sandbox.init.to_string(), "-n", "--"])
            .args([vm::SPICY_SCREENSHOT, "-h", "127.0.0.1", "-p", &port])
            .args(["-w", PASSWORD, "-o"])
            .arg(&shot)
            .stdin(Stdio::null()),
    )
    .expect("spicy-screenshot runs");
    let status = client
        .wait_timeout(SCREENSHOT_TIMEOUT)
        .unwrap()
        .unwrap_or_else(|| panic!("spicy-screenshot did not finish in {SCREENSHOT_TIMEOUT:?}"));
    let screenshot = t1.elapsed();
    assert!(
        status.success(),
        "spicy-screenshot: {status}\n{}",
        sandbox.logs()
    );
    vm::assert_ppm_is_pattern(&shot, W, H);

    // default.toml (no password, another port) was not what the daemon read.
    let out = sandbox.enter(
        Command::new("/bin/bash")
            .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{DEFAULT_PORT}")]),
    );
    assert!(
        !out.status.success(),
        "default.toml's port {DEFAULT_PORT} is open"
    );

    // Destroying the domain stops the backend (libvirt kills the pid file's process).
    let t2 = Instant::now();
    vm::command_succeeded("virsh destroy", &sandbox.virsh(&["destroy", DOMAIN]));
    let destroy = t2.elapsed();
    let out = sandbox.enter(Command::new("/bin/sh").args([
        "-c",
        &format!("! kill -0 {pid} 2>/dev/null && ! ls /run/libvirt/qemu/*vhost-user-gpu.pid"),
    ]));
    vm::command_succeeded("the backend gone after destroy", &out);

    eprintln!(
        "libvirtd answering {libvirtd_up:?}; virsh start {virsh_start:?}; start -> PATTERN \
         DRAWN {at_pattern:?}; spicy-screenshot {screenshot:?}; virsh destroy {destroy:?}; \
         backend fd {fd}"
    );
}
