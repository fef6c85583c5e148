//! Test support shared by the integration tests: an in-process VMM frontend ([`TestVmm`]), the
//! daemon run on a thread ([`TestDaemon`]) and a tiny device for daemon-level tests
//! ([`dummy`]).
//!
//! # Layout
//! - `vmm.rs`: [`TestVmm`], a VMM built on vhost's `Frontend` that speaks the cloud-hypervisor or
//!   QEMU order over a real unix socket, with memfd guest RAM at a non-zero GPA.
//! - `handshake.rs`: the two VMMs' start-up sequences.
//! - `rings.rs`: split virtqueues in that RAM, driven as a guest driver does.
//! - `dummy.rs`: an echo device with a 16-byte config and a config-change trigger.
//! - `gpu.rs`: the daemon's virtio-gpu and display stack, a guest virtio_gpu driver, guest
//!   framebuffers in scattered pages; `gpu_requests.rs`: the request builders.

//!
//! # Use
//! ```ignore
//! let daemon = TestDaemon::spawn(|notifier| Ok(MyDevice::new(notifier)));
//! let mut vmm = TestVmm::connect(&daemon.path, Flavor::CloudHypervisor, 2, &[256, 16], FEATURES);
//! let (used_len, writable) = vmm.request(0, &[&request_bytes], &[24]);
//! let scanouts = vmm.get_config(8, 4);                 // as the guest's read reaches the device
//! let gpa = vmm.alloc_bytes(&pixels);                  // guest RAM for backing pages
//! assert!(vmm.wait_config_change(TIMEOUT));            // after the device asked for one
//! vmm.disconnect();
//! daemon.stop().unwrap();
//! ```
//! `VmmOptions` (via `TestVmm::connect_with`) varies REPLY_ACK, GPU_SET_SOCKET, the config size
//! and the RAM size; `post` / `kick` / `wait_used` / `read_writable` split `request` for
//! devices that keep buffers (virtio-input's event queue). Under `Flavor::Qemu` the device must
//! offer VIRTIO_F_RING_RESET (bit 40): QEMU acks it unasked and vhost-user-backend refuses
//! features it did not offer.

// Each integration test compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod dummy;
pub mod gpu;
mod gpu_requests;
mod handshake;
pub mod rings;
pub mod vmm;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vhost_user_backend::VhostUserBackend;
use vhost_user_spice::virtio::daemon::{self, DaemonError, ShutdownSignal, VhostSocket};
use vhost_user_spice::virtio::ConfigChangeNotifier;

// Re-exported for the tests that need them; each test file uses a different subset.
#[allow(unused_imports)]
pub use vmm::{Flavor, TestVmm, VmmOptions, GUEST_RAM_BASE};

/// How long a test waits for something the daemon does promptly (a socket to appear, a thread
/// to end, a request to complete). Generous: the machine is shared and may be busy.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// [`daemon::serve`] running on its own thread, listening in a fresh temporary directory.
pub struct TestDaemon {
    pub path: PathBuf,
    shutdown: ShutdownSignal,
    thread: Option<JoinHandle<Result<(), DaemonError>>>,
    _dir: tempfile::TempDir,
}

impl TestDaemon {
    /// Serves `--socket-path <tempdir>/vhost.sock` with devices from `make_backend`.
    pub fn spawn<B, F>(make_backend: F) -> Self
    where
        F: FnMut(Arc<dyn ConfigChangeNotifier>) -> io::Result<B> + Send + 'static,
        B: VhostUserBackend<Bitmap = ()> + Clone + 'static,
        B::Vring: Clone + Send + Sync,
    {
        let dir = tempfile::tempdir().expect("a temporary directory can be created");
        let path = dir.path().join("vhost.sock");
        let daemon = Self::start(VhostSocket::Path(path.clone()), make_backend, path, dir);
        wait_until(|| daemon.path.exists(), "the daemon socket to appear");
        daemon
    }

    /// Serves an already-open socket (`--fd`).
    pub fn spawn_on<B, F>(socket: VhostSocket, make_backend: F) -> Self
    where
        F: FnMut(Arc<dyn ConfigChangeNotifier>) -> io::Result<B> + Send + 'static,
        B: VhostUserBackend<Bitmap = ()> + Clone + 'static,
        B::Vring: Clone + Send + Sync,
    {
        let dir = tempfile::tempdir().expect("a temporary directory can be created");
        Self::start(socket, make_backend, PathBuf::new(), dir)
    }

    fn start<B, F>(
        socket: VhostSocket,
        make_backend: F,
        path: PathBuf,
        dir: tempfile::TempDir,
    ) -> Self
    where
        F: FnMut(Arc<dyn ConfigChangeNotifier>) -> io::Result<B> + Send + 'static,
        B: VhostUserBackend<Bitmap = ()> + Clone + 'static,
        B::Vring: Clone + Send + Sync,
    {
        let shutdown = ShutdownSignal::new().expect("a shutdown signal can be created");
        let signal = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("test-daemon".into())
            .spawn(move || daemon::serve(socket, "test-device", make_backend, &signal))
            .expect("the daemon thread starts");
        TestDaemon {
            path,
            shutdown,
            thread: Some(thread),
            _dir: dir,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits (bounded) for `serve` to return by itself, e.g. after a connected `--fd` closed.
    pub fn join(mut self) -> Result<(), DaemonError> {
        wait_until(|| self.is_finished(), "the daemon to return");
        self.thread
            .take()
            .expect("the daemon thread is joined once")
            .join()
            .expect("the daemon thread does not panic")
    }

    /// Fires the shutdown signal and waits for `serve` to return.
    pub fn stop(self) -> Result<(), DaemonError> {
        self.shutdown.trigger();
        self.join()
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago: for a daemon's SPICE listener, since
/// tests running at once cannot all have the default 5900.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// Polls `condition` until it holds; panics after [`TIMEOUT`].
pub fn wait_until(mut condition: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Connects to `path` as a plain socket (for tests that misbehave on purpose).
pub fn connect_raw(path: &Path) -> std::os::unix::net::UnixStream {
    std::os::unix::net::UnixStream::connect(path).expect("the daemon accepts connections")
}
