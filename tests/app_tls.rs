//! The daemon binary serves SPICE over TLS (issue 6), driven as an operator would: the demo
//! picture reaches spice-gtk over TLS with a CA file; `--tls-only` opens no plaintext port;
//! an expired certificate and another CA's are refused by spice-gtk; the systemd credentials
//! `tls-cert`/`tls-key`/`tls-ca` stand in for the options; a client CA turns clients without a
//! certificate away. The command lines of docs/tls.md are the ones run here.

mod prod_support;
mod spice_support;
mod support;

use std::collections::HashSet;
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prod_support::{binary, require_tool, sigterm, wait_exit, EXIT_DEADLINE};
use spice_support::raw::{link_bytes, LinkOutcome, Raw};
use spice_support::tls::{
    assert_gtk_refused, client_config, gtk_tls, openssl_certificates, tls_link, Pki,
};
use spice_support::{assert_same_picture, demo_frame, have_python_client, rgb_of_bgrx, PyClient};
use support::gpu::{pixel, GpuDriver, GuestFb};
use support::Flavor;
use vhost_user_spice::demo::{DemoPicture, FRAME_PERIOD};
use vhost_user_spice::spice::wire::ChannelType;

/// Generous: only reached when a test is failing.
const WAIT: Duration = Duration::from_secs(20);
const WIDTH: u32 = 320;
const HEIGHT: u32 = 200;
const PASSWORD: &str = "s3cret";

/// The daemon in demo mode, killed if a test fails before stopping it.
struct Daemon {
    child: Child,
    /// The `STATUS=` that came with READY=1: the listeners and the client count.
    status: String,
    started: Instant,
    stderr: PathBuf,
}

/// A scratch directory with an empty configuration file: `--tls-only` must not meet the
/// `spice-port` line `prod_support::scratch` writes.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty.toml"), "").unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The binary with a clean environment, `--demo` and the test's picture size.
    fn demo(&self) -> Command {
        let mut command = binary(&self.path("empty.toml"));
        command.args([
            "--demo",
            "--width",
            &WIDTH.to_string(),
            "--height",
            &HEIGHT.to_string(),
        ]);
        command
    }

    fn password_file(&self) -> PathBuf {
        let path = self.path("spice-password");
        std::fs::write(&path, format!("{PASSWORD}\n")).unwrap();
        path
    }

    /// Starts `command` and waits for READY=1 (every listener accepts by then).
    fn start(&self, command: Command) -> Daemon {
        self.start_then(command, || ())
    }

    /// [`Scratch::start`], running `trigger` once the process runs (socket activation execs
    /// the daemon at the first connection).
    fn start_then(&self, mut command: Command, trigger: impl FnOnce()) -> Daemon {
        let notify = self.path("notify");
        let _ = std::fs::remove_file(&notify);
        let systemd = UnixDatagram::bind(&notify).unwrap();
        systemd
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let stderr = self.path("stderr");
        let started = Instant::now();
        let child = command
            .env("NOTIFY_SOCKET", &notify)
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("the binary runs");
        let mut daemon = Daemon {
            child,
            status: String::new(),
            started,
            stderr,
        };
        trigger();
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = systemd.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                if message.lines().any(|l| l == "READY=1") {
                    daemon.status = message
                        .lines()
                        .find_map(|l| l.strip_prefix("STATUS="))
                        .unwrap_or_default()
                        .to_owned();
                    return daemon;
                }
            }
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!("the daemon exited ({status}): {}", daemon.log());
            }
            assert!(Instant::now() < deadline, "no READY=1: {}", daemon.log());
        }
    }
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The TCP ports the daemon listens on, from /proc: its socket inodes matched against the
    /// listening sockets of its network namespace.
    fn listening_ports(&self) -> Vec<u16> {
        let proc = PathBuf::from(format!("/proc/{}", self.child.id()));
        let inodes: HashSet<String> = std::fs::read_dir(proc.join("fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter_map(|target| {
                let target = target.to_str()?;
                Some(
                    target
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .to_owned(),
                )
            })
            .collect();
        let mut ports = Vec::new();
        for table in ["net/tcp", "net/tcp6"] {
            let Ok(text) = std::fs::read_to_string(proc.join(table)) else {
                continue;
            };
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // sl local_address rem_address st ... inode (the tenth field)
                if fields.len() > 9 && fields[3] == "0A" && inodes.contains(fields[9]) {
                    let port = fields[1].rsplit(':').next().unwrap();
                    ports.push(u16::from_str_radix(port, 16).unwrap());
                }
            }
        }
        ports.sort_unstable();
        ports
    }

    fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the daemon is still serving: {}",
            self.log()
        );
    }

    /// SIGTERM, then a clean exit within the deadline.
    fn stop(mut self) {
        sigterm(&self.child);
        let status = wait_exit(&mut self.child, EXIT_DEADLINE);
        assert!(status.success(), "exit status {status}: {}", self.log());
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

/// `n` distinct TCP ports on 127.0.0.1 that were free a moment ago.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// Runs `command` to its exit, which must be a failure; its stderr.
fn start_fails(mut command: Command) -> String {
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let status = wait_exit(&mut child, WAIT);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "the daemon must refuse to start");
    stderr
}

/// Waits until spice-gtk shows a picture, then checks it is exactly a frame of the demo. The
/// demo moves every [`FRAME_PERIOD`]: a dump caught between two updates of one frame is
/// retried.
async fn assert_sees_the_demo(c: &mut PyClient, daemon: &Daemon) -> u64 {
    c.wait_event("mark").await;
    let picture = DemoPicture::new(WIDTH, HEIGHT);
    for _ in 0..20 {
        let shot = c.dump(10).await;
        // The demo cannot be further than its clock allows (plus slack for rounding).
        let upto = (daemon.started.elapsed().as_millis() / FRAME_PERIOD.as_millis()) as u64 + 2;
        if let Some(n) = demo_frame(picture, &shot, upto) {
            return n;
        }
    }
    panic!("spice-gtk never showed a frame of the demo");
}

fn tls_files(command: &mut Command, cert: &Path, key: &Path) {
    command
        .arg("--tls-cert-file")
        .arg(cert)
        .arg("--tls-key-file")
        .arg(key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtk_with_a_ca_file_sees_the_demo_over_tls() {
    if !have_python_client() {
        return;
    }
    let scratch = Scratch::new();
    let pki = Pki::new();
    let server = pki.server(false, false);
    let [port, tls_port] = free_ports();
    let mut command = scratch.demo();
    command
        .arg("--password-file")
        .arg(scratch.password_file())
        .args(["--spice-port", &port.to_string()])
        .args(["--spice-tls-port", &tls_port.to_string()]);
    tls_files(&mut command, &server.cert, &server.key);
    let daemon = scratch.start(command);
    assert!(
        daemon.status.contains(&format!(
            "; SPICE 127.0.0.1:{port}, TLS 127.0.0.1:{tls_port};"
        )),
        "{}",
        daemon.status
    );
    assert_eq!(daemon.listening_ports(), {
        let mut v = vec![port, tls_port];
        v.sort_unstable();
        v
    });

    let mut c = gtk_tls(tls_port, &pki.ca_file(), Some(PASSWORD)).await;
    let n = assert_sees_the_demo(&mut c, &daemon).await;
    eprintln!("spice-gtk over TLS saw demo frame {n}");
    // The password is still asked for inside TLS.
    let mut wrong = gtk_tls(tls_port, &pki.ca_file(), Some("wrong")).await;
    assert_gtk_refused(&mut wrong).await;
    // Without --tls-only the plaintext port serves as before.
    let mut plain = PyClient::connect(port, Some(PASSWORD)).await;
    assert_sees_the_demo(&mut plain, &daemon).await;
    drop((c, wrong, plain));
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_only_opens_no_plaintext_port() {
    let scratch = Scratch::new();
    let pki = Pki::new();
    let server = pki.server(false, false);
    let [tls_port] = free_ports();
    let tls_only = || {
        let mut command = scratch.demo();
        command.arg("--disable-ticketing").args([
            "--tls-only",
            "--spice-tls-port",
            &tls_port.to_string(),
        ]);
        tls_files(&mut command, &server.cert, &server.key);
        command
    };
    // --tls-only with a plaintext listener, or without a TLS one, does not start.
    let mut with_port = tls_only();
    with_port.args(["--spice-port", &free_ports::<1>()[0].to_string()]);
    let stderr = start_fails(with_port);
    assert!(
        stderr.contains("--tls-only excludes a plaintext --spice-port"),
        "{stderr}"
    );
    let mut with_unix = tls_only();
    with_unix
        .arg("--spice-unix")
        .arg(scratch.path("spice.sock"));
    let stderr = start_fails(with_unix);
    assert!(
        stderr.contains("--tls-only excludes --spice-unix"),
        "{stderr}"
    );
    // A port from the configuration file as well.
    let (_dir, file_with_port) = prod_support::scratch();
    let mut port_in_file = binary(&file_with_port);
    port_in_file.args(["--demo", "--disable-ticketing"]).args([
        "--tls-only",
        "--spice-tls-port",
        &tls_port.to_string(),
    ]);
    tls_files(&mut port_in_file, &server.cert, &server.key);
    let stderr = start_fails(port_in_file);
    assert!(
        stderr.contains("--tls-only excludes a plaintext --spice-port"),
        "{stderr}"
    );
    let mut without_tls = scratch.demo();
    without_tls.args(["--disable-ticketing", "--tls-only"]);
    let stderr = start_fails(without_tls);
    assert!(
        stderr.contains("--tls-only needs a TLS listener"),
        "{stderr}"
    );

    let daemon = scratch.start(tls_only());
    // The only listener is the TLS port: no default 5900, nothing plaintext.
    assert!(
        daemon
            .status
            .contains(&format!("; SPICE TLS 127.0.0.1:{tls_port};")),
        "{}",
        daemon.status
    );
    assert_eq!(daemon.listening_ports(), vec![tls_port]);
    // A plaintext SPICE link on the TLS port is not answered in SPICE.
    let mut raw = Raw::connect(tls_port).await;
    raw.send_raw(&link_bytes(ChannelType::MAIN, 0, 0)).await;
    let answer = raw.expect_closed().await;
    assert!(
        !answer.starts_with(b"REDQ"),
        "a plaintext link on the TLS port gets no link reply"
    );
    if !have_python_client() {
        return;
    }
    // spice-gtk in plaintext on that port fails; over TLS it sees the demo.
    let mut plain = PyClient::connect(tls_port, None).await;
    assert_gtk_refused(&mut plain).await;
    let mut c = gtk_tls(tls_port, &pki.ca_file(), None).await;
    assert_sees_the_demo(&mut c, &daemon).await;
    drop((plain, c));
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtk_refuses_an_expired_certificate_and_another_cas() {
    if !have_python_client() {
        return;
    }
    let pki = Pki::new();
    for (what, other_ca, expired) in [
        ("an expired certificate", false, true),
        ("another CA's certificate", true, false),
    ] {
        let scratch = Scratch::new();
        let server = pki.server(other_ca, expired);
        let [tls_port] = free_ports();
        let mut command = scratch.demo();
        command.arg("--disable-ticketing").args([
            "--tls-only",
            "--spice-tls-port",
            &tls_port.to_string(),
        ]);
        tls_files(&mut command, &server.cert, &server.key);
        let mut daemon = scratch.start(command);
        let mut c = gtk_tls(tls_port, &pki.ca_file(), None).await;
        eprintln!("{what}:");
        let refused = assert_gtk_refused(&mut c).await;
        assert_eq!(refused["what"], "error-tls", "{what}");
        drop(c);
        daemon.assert_running();
        daemon.stop();
    }
}

/// A `$CREDENTIALS_DIRECTORY` as systemd makes it for the shipped unit: `tls-cert`, `tls-key`,
/// `spice-password`, and `tls-ca` as given (blank: the unit's `SetCredential=tls-ca:\n`).
fn credentials(scratch: &Scratch, pki: &Pki, tls_ca: &str) -> PathBuf {
    let dir = scratch.path("credentials");
    std::fs::create_dir(&dir).unwrap();
    let server = pki.server(false, false);
    std::fs::copy(&server.cert, dir.join("tls-cert")).unwrap();
    std::fs::copy(&server.key, dir.join("tls-key")).unwrap();
    std::fs::write(dir.join("spice-password"), format!("{PASSWORD}\n")).unwrap();
    std::fs::write(dir.join("tls-ca"), tls_ca).unwrap();
    dir
}

/// The systemd example of docs/tls.md: `tls-only = true` in the file, the certificate, key and
/// password from credentials, the TLS listener an activated `spice-tls` socket
/// (`systemd-socket-activate` stands in for the socket unit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_credentials_and_activated_tls_socket() {
    let Some(tool) = require_tool("systemd-socket-activate") else {
        return;
    };
    let scratch = Scratch::new();
    let pki = Pki::new();
    let [tls_port] = free_ports();
    let file = scratch.path("vm1.toml");
    std::fs::write(&file, "tls-only = true\n").unwrap();
    let credentials = credentials(&scratch, &pki, "\n");
    let mut command = Command::new(tool);
    command
        .args(["-l", &format!("127.0.0.1:{tls_port}"), "--fdname=spice-tls"])
        .arg(format!(
            "--setenv=VHOST_USER_SPICE_CONFIG={}",
            file.display()
        ))
        .arg(format!(
            "--setenv=CREDENTIALS_DIRECTORY={}",
            credentials.display()
        ))
        .arg(format!(
            "--setenv=NOTIFY_SOCKET={}",
            scratch.path("notify").display()
        ))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_vhost-user-spice"))
        .args(["--demo", "--width", &WIDTH.to_string()])
        .args(["--height", &HEIGHT.to_string()])
        .stdin(Stdio::null());
    // The first connection execs the daemon; it then finds it in the backlog (and drops it:
    // no TLS handshake comes).
    let daemon = scratch.start_then(command, || {
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err() {
            assert!(Instant::now() < deadline, "no activated socket");
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    assert!(
        daemon
            .status
            .contains(&format!("; SPICE TLS 127.0.0.1:{tls_port};")),
        "{}",
        daemon.status
    );
    assert_eq!(daemon.listening_ports(), vec![tls_port]);
    // The blank `tls-ca` asks for no client certificate: the handshake succeeds without
    // one, and the link then wants the password from `spice-password`.
    let addr = ([127, 0, 0, 1], tls_port).into();
    let linked = tls_link(addr, client_config(&pki.ca.pem, None)).await;
    assert!(
        matches!(linked, Ok(LinkOutcome::Result(r)) if r != 0),
        "an empty password is refused inside TLS: {linked:?}"
    );
    if have_python_client() {
        let mut c = gtk_tls(tls_port, &pki.ca_file(), Some(PASSWORD)).await;
        assert_sees_the_demo(&mut c, &daemon).await;
    }
    daemon.stop();
}

/// With a client CA (`--tls-ca-file`, or the credential `tls-ca`) only clients presenting a
/// certificate from that CA get in.
async fn client_ca_is_enforced(credential: bool) {
    let scratch = Scratch::new();
    let pki = Pki::new();
    let [tls_port] = free_ports();
    let mut command = scratch.demo();
    command.arg("--disable-ticketing").args([
        "--tls-only",
        "--spice-tls-port",
        &tls_port.to_string(),
    ]);
    if credential {
        command.env(
            "CREDENTIALS_DIRECTORY",
            credentials(&scratch, &pki, &pki.ca.pem),
        );
    } else {
        let server = pki.server(false, false);
        tls_files(&mut command, &server.cert, &server.key);
        command.arg("--tls-ca-file").arg(pki.ca_file());
    }
    let mut daemon = scratch.start(command);
    let addr = ([127, 0, 0, 1], tls_port).into();
    let ours = pki.ca.sign(&["alice"], true, false);
    let foreign = pki.other_ca.sign(&["mallory"], true, false);
    let expired = pki.ca.sign(&["bob"], true, true);
    for (what, identity) in [
        ("no client certificate", None),
        ("a certificate from another CA", Some(foreign)),
        ("an expired certificate", Some(expired)),
    ] {
        let r = tls_link(addr, client_config(&pki.ca.pem, identity)).await;
        assert!(r.is_err(), "{what} is refused, got {r:?}");
        eprintln!("{what}: {}", r.unwrap_err());
    }
    let linked = tls_link(addr, client_config(&pki.ca.pem, Some(ours))).await;
    assert_eq!(
        linked.unwrap(),
        LinkOutcome::Result(0),
        "a client certificate from the CA links"
    );
    if have_python_client() {
        // spice-gtk cannot present a client certificate.
        let mut c = gtk_tls(tls_port, &pki.ca_file(), None).await;
        assert_gtk_refused(&mut c).await;
    }
    daemon.assert_running();
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_ca_file_refuses_clients_without_a_certificate() {
    client_ca_is_enforced(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_ca_credential_refuses_clients_without_a_certificate() {
    client_ca_is_enforced(true).await;
}

/// The command line of docs/tls.md ("Certificates") with its openssl certificates, paths
/// and port made local: a VMM drives the virtio-gpu and spice-gtk over TLS sees its pixels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_command_line_serves_a_vmm_over_tls() {
    if !have_python_client() {
        return;
    }
    let scratch = Scratch::new();
    let tls = scratch.path("tls");
    std::fs::create_dir(&tls).unwrap();
    if openssl_certificates(&tls).is_none() {
        return;
    }
    let socket = scratch.path("vm1-gpu.sock");
    let [tls_port] = free_ports();
    let mut command = binary(&scratch.path("empty.toml"));
    command
        .arg("--socket-path")
        .arg(&socket)
        .args(["--spice-tls-port", &tls_port.to_string(), "--tls-only"])
        .arg("--tls-cert-file")
        .arg(tls.join("server-cert.pem"))
        .arg("--tls-key-file")
        .arg(tls.join("server-key.pem"))
        .arg("--password-file")
        .arg(scratch.password_file());
    let daemon = scratch.start(command);
    assert_eq!(daemon.listening_ports(), vec![tls_port]);

    let mut gpu = GpuDriver::connect(&socket, Flavor::CloudHypervisor);
    // The default display size: the command line sets none.
    let (width, height) = gpu.probe();
    assert_eq!((width, height), (1280, 800));
    let mut fb = GuestFb::new(&mut gpu.vmm, 1, width, height);
    fb.draw(&gpu.vmm, fb.rect(), pixel(1));
    gpu.bring_up(&fb);
    fb.draw(&gpu.vmm, [100, 60, 200, 120], pixel(2));
    gpu.update(&fb, [100, 60, 200, 120]);
    let want = (width, height, rgb_of_bgrx(&fb.pixels));

    let mut c = gtk_tls(tls_port, &tls.join("ca-cert.pem"), Some(PASSWORD)).await;
    c.wait_event("mark").await;
    // The flush is answered once the QXL command is queued; the display worker may apply it
    // a moment later, so a first dump may miss the last update.
    let deadline = Instant::now() + WAIT;
    let shot = loop {
        let shot = c.dump(100).await;
        if shot == want || Instant::now() > deadline {
            break shot;
        }
    };
    assert_same_picture(&shot, &want);
    drop(c);
    gpu.vmm.disconnect();
    daemon.stop();
}
