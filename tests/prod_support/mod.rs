//! Helpers shared by the tests that run the daemon binary (`prod_*`, `daemon_binary`,
//! `gpu_binary`, ...): the binary, exit waits, signals, tools that must be installed (never
//! skipped under CI=true).

// Each test file uses part of it.
#![allow(dead_code)]

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How quickly the daemon must exit after SIGTERM (QEMU: "as quickly as possible").
pub const EXIT_DEADLINE: Duration = Duration::from_secs(3);

/// The daemon with a clean environment: no log filter, configuration file or credentials from
/// the host, so that a host's /etc/vhost-user-spice/default.toml cannot change the outcome (an
/// empty `VHOST_USER_SPICE_CONFIG` file is an empty configuration).
pub fn binary(empty_config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vhost-user-spice"));
    command
        .env_remove("RUST_LOG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env("VHOST_USER_SPICE_CONFIG", empty_config)
        .stdin(Stdio::null());
    command
}

/// A temporary directory holding `none.toml`, for [`binary`]: empty but for a free SPICE port
/// (tests running at once cannot all have the default 5900; the command line overrides it).
pub fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("none.toml");
    std::fs::write(&empty, spice_port_line()).unwrap();
    (dir, empty)
}

/// `spice-port = N` with a port on 127.0.0.1 that was free a moment ago.
pub fn spice_port_line() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port();
    format!("spice-port = {port}\n")
}

pub fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A stand-in for systemd's notify socket at `dir/notify`, with its path; reads wait 100 ms.
pub fn notify_socket(dir: &Path) -> (PathBuf, UnixDatagram) {
    let notify = dir.join("notify");
    let systemd = UnixDatagram::bind(&notify).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    (notify, systemd)
}

/// Notifications on `socket` until one satisfies `done`; panics when none has `within`.
pub fn receive_until(
    socket: &UnixDatagram,
    within: Duration,
    mut done: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let finished = done(&message);
            messages.push(message);
            if finished {
                return messages;
            }
        }
    }
    panic!("no matching notification; got {messages:?}");
}

pub fn sigterm(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("pids fit pid_t");
    // SAFETY: kill(2) with the pid of our own child, not reaped yet, and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

/// The path of `tool`, installing the test dependencies first when it is missing and we are
/// root. `None` (the caller skips) only outside CI.
pub fn require_tool(tool: &str) -> Option<PathBuf> {
    let find = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(tool))
                .find(|path| path.is_file())
        })
    };
    if let Some(path) = find() {
        return Some(path);
    }
    // SAFETY: geteuid(2) has no preconditions and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-test-deps.sh");
        let _ = Command::new(script).status();
        if let Some(path) = find() {
            return Some(path);
        }
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{tool} is missing and CI=true forbids skipping (scripts/install-test-deps.sh installs it)"
    );
    eprintln!("SKIP: {tool} is not installed (scripts/install-test-deps.sh installs it)");
    None
}
