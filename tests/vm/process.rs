//! Child processes that never outlive their test (QEMU, backends), and the serial-input FIFO.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) and reaped when dropped. It also gets SIGKILL from the kernel
/// when the *thread* that spawned it exits (`PR_SET_PDEATHSIG`), so a test killed by a timeout or
/// a harness crash leaves nothing running; therefore spawn and use it on the test's own thread,
/// not in a shared fixture.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    /// Spawns `cmd` with the death signal set.
    pub fn spawn(cmd: &mut Command) -> io::Result<ChildGuard> {
        let parent = libc::pid_t::try_from(std::process::id()).map_err(io::Error::other)?;
        // SAFETY: the closure runs in the child between fork and exec and calls only prctl and
        // getppid, which are async-signal-safe (signal-safety(7)); it reads one captured integer
        // and allocates nothing (raw-OS-error io::Errors do not allocate).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent thread may have died between fork and prctl: then nobody would
                // send the signal (we were re-parented, see prctl(2)).
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            })
        };
        cmd.spawn().map(|child| ChildGuard { child })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child itself, e.g. to take its piped stdin and stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits up to `timeout` for the child to exit by itself; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(super::POLL_INTERVAL);
        }
    }

    /// Sends SIGTERM (the way a VMM or systemd stops a backend).
    pub fn terminate(&mut self) -> io::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(self.child.id()).map_err(io::Error::other)?;
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own unreaped child, so
        // it cannot have been recycled for another process.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// SIGKILL and reap; a no-op once the child has exited and been reaped.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Creates a FIFO (mode 0600) at `path`.
pub fn make_fifo(path: &Path) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call; mkfifo only
    // reads it.
    if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether this process runs as root (it may then install missing test dependencies).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail (POSIX).
    unsafe { libc::geteuid() == 0 }
}

/// Polls every 50 ms until `poll` gives a value; panics naming `what` after `timeout`.
pub fn poll_until<T>(what: &str, timeout: Duration, mut poll: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = poll() {
            return value;
        }
        assert!(Instant::now() < deadline, "no {what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A finished command's stdout; panics with its status, stdout and stderr if it failed.
pub fn command_succeeded(what: &str, output: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
