//! Helpers shared by the `prod_*` tests: the daemon binary, exit waits, signals, tools that must
//! be installed (never skipped under CI=true).

// Each test file uses part of it.
#![allow(dead_code)]

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

/// A temporary directory holding an empty `none.toml`, for [`binary`].
pub fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("none.toml");
    std::fs::write(&empty, "").unwrap();
    (dir, empty)
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
