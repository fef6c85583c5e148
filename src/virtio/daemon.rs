//! Serves vhost-user frontend connections one after another on `--socket-path` or `--fd`, with
//! fresh device state per connection, until shutdown.
//!
//! Each connection goes through the [`relay`](super::relay) to its own `VhostUserDaemon` (one
//! daemon serves exactly one connection in vhost-user-backend 0.24), so an already-connected
//! `--fd` works and devices get a config-change sender.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};
use vhost::vhost_user::Error as VhostUserError;
use vhost_user_backend::{VhostUserBackend, VhostUserDaemon};
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};

use super::relay::{poll_readable, BackendChannel, Relay, RelayEnd, RelayError};
use super::ConfigChangeNotifier;

/// Pause after an accept error that more load would not fix (out of descriptors or memory), so a
/// persistent condition does not become a busy loop.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("Cannot listen on the vhost-user socket {path:?}")]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path:?} exists and is not a socket; refusing to replace it")]
    PathNotSocket { path: PathBuf },
    #[error("Another process is already serving the vhost-user socket {path:?}")]
    PathInUse { path: PathBuf },
    #[error("File descriptor {fd} is not open")]
    FdNotOpen { fd: RawFd },
    #[error("File descriptor {fd} is not a unix stream socket")]
    FdNotUnixStream { fd: RawFd },
    #[error("Cannot inspect file descriptor {fd}")]
    InspectFd {
        fd: RawFd,
        #[source]
        source: io::Error,
    },
    #[error("Cannot accept a frontend connection")]
    Accept(#[source] io::Error),
    #[error("Cannot create the device backend")]
    MakeBackend(#[source] io::Error),
    /// `vhost_user_backend::Error` does not implement `std::error::Error`, so it is kept as text.
    #[error("Cannot start the vhost-user daemon: {0}")]
    StartDaemon(String),
    #[error("Cannot connect the relay to the vhost-user daemon")]
    Relay(#[source] RelayError),
    #[error("Cannot wait for shutdown")]
    Wait(#[source] io::Error),
}

/// Where frontends come from.
#[derive(Debug)]
pub enum VhostSocket {
    /// `--socket-path`: we bind and listen here (replacing a stale socket file).
    Path(PathBuf),
    /// `--fd`: an inherited unix stream socket, listening or already connected.
    Fd(OwnedFd),
    /// A `Path` already bound by [`VhostSocket::listen`]; its file is removed when dropped.
    Bound(BoundSocket),
}

impl VhostSocket {
    /// Takes ownership of descriptor `fd` handed over by our parent (`--fd N`), after checking
    /// that it is an open unix stream socket.
    pub fn from_inherited_fd(fd: RawFd) -> Result<Self, DaemonError> {
        // SAFETY: F_GETFD reads the descriptor flags of `fd` and touches no memory; on a closed or
        // invalid descriptor it fails with EBADF.
        if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(DaemonError::FdNotOpen { fd });
        }
        // SAFETY: `fd` is open (checked above), and the `--fd` convention hands it to this
        // process to own: nothing else in the process knows it, so it is closed only here.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // Our children (none today) must not inherit the VM's socket.
        // SAFETY: F_SETFD with FD_CLOEXEC only changes the flags of a descriptor we own.
        unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        socket_kind(owned.as_fd())?;
        Ok(VhostSocket::Fd(owned))
    }

    /// Binds a `Path` now, so that the caller knows the socket is listening (systemd's
    /// `READY=1`) before [`serve`] starts; other sockets are returned unchanged.
    pub fn listen(self) -> Result<Self, DaemonError> {
        match self {
            VhostSocket::Path(path) => BoundSocket::bind(path).map(VhostSocket::Bound),
            other => Ok(other),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SocketKind {
    Listening,
    Connected,
}

fn socket_kind(fd: BorrowedFd<'_>) -> Result<SocketKind, DaemonError> {
    let raw = fd.as_raw_fd();
    let inspect = |source| DaemonError::InspectFd { fd: raw, source };
    let not_socket = DaemonError::FdNotUnixStream { fd: raw };
    let domain = match socket_option(fd, libc::SO_DOMAIN) {
        Ok(domain) => domain,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => return Err(not_socket),
        Err(e) => return Err(inspect(e)),
    };
    let kind = socket_option(fd, libc::SO_TYPE).map_err(inspect)?;
    if domain != libc::AF_UNIX || kind != libc::SOCK_STREAM {
        return Err(not_socket);
    }
    // ecosystem.md §1.1: libvirt's GPU launch passes a connected socketpair end, virtiofsd-style
    // launchers a listening socket; SO_ACCEPTCONN tells them apart.
    match socket_option(fd, libc::SO_ACCEPTCONN).map_err(inspect)? {
        0 => Ok(SocketKind::Connected),
        _ => Ok(SocketKind::Listening),
    }
}

/// An `int` `SOL_SOCKET` option of a socket (SO_DOMAIN, SO_TYPE, SO_ACCEPTCONN, ...).
pub(crate) fn socket_option(fd: BorrowedFd<'_>, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len =
        libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).map_err(io::Error::other)?;
    // SAFETY: `value` and `len` are live locals; getsockopt(2) writes at most `len` bytes (an
    // int, as these SOL_SOCKET options are) into `value` and the actual size into `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// A one-way "stop now" flag that threads can also wait on: SIGTERM/SIGINT (through
/// [`trigger_on_termination_signals`](Self::trigger_on_termination_signals)) or a test fires it;
/// it unblocks the accept loop and the running connection's relay.
#[derive(Clone)]
pub struct ShutdownSignal {
    /// A socket pair: triggering shuts down the write end, which leaves the read end readable
    /// (at end of file) for good — a level-triggered flag poll(2) can wait on.
    pair: Arc<(UnixStream, UnixStream)>,
}

impl ShutdownSignal {
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            pair: Arc::new(UnixStream::pair()?),
        })
    }

    /// Fires the signal; idempotent.
    pub fn trigger(&self) {
        let _ = self.pair.0.shutdown(Shutdown::Write);
    }

    pub fn is_triggered(&self) -> bool {
        let mut pollfd = libc::pollfd {
            fd: self.pair.1.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live, initialised pollfd, length 1, zero timeout; poll(2) writes `revents`.
        let rc = unsafe { libc::poll(&mut pollfd, 1, 0) };
        rc > 0 && pollfd.revents != 0
    }

    /// Blocks until the signal fires.
    pub fn wait(&self) {
        let mut pollfd = libc::pollfd {
            fd: self.pair.1.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live, initialised pollfd, length 1, infinite timeout; poll(2) writes
        // `revents`. EINTR just loops.
        while unsafe { libc::poll(&mut pollfd, 1, -1) } <= 0 || pollfd.revents == 0 {}
    }

    /// Readable once the signal fired.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.pair.1.as_fd()
    }

    /// Routes SIGTERM and SIGINT to this signal. Call before any other thread is started: the
    /// signals are blocked in the calling thread, every thread spawned later inherits that mask,
    /// and one thread takes them with sigwait(3). A second signal exits at once.
    pub fn trigger_on_termination_signals(&self) -> io::Result<()> {
        let set = vmm_sys_util::signal::create_sigset(&[libc::SIGTERM, libc::SIGINT])
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
        // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is allowed.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let signal = self.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut fired = false;
                loop {
                    let mut number: libc::c_int = 0;
                    // SAFETY: `set` is initialised and `number` is a live local sigwait writes.
                    if unsafe { libc::sigwait(&set, &mut number) } != 0 {
                        continue;
                    }
                    if fired {
                        warn!(signal = number, "Second termination signal: exiting now");
                        std::process::exit(1);
                    }
                    info!(signal = number, "Termination signal: shutting down");
                    fired = true;
                    signal.trigger();
                }
            })?;
        Ok(())
    }
}

/// Serves frontend connections one after another. For each connection `make_backend` builds
/// FRESH device state (the VM rebooted or the VMM restarted) and receives that connection's
/// config-change sender. Returns when `shutdown` fires, or after an already-connected `--fd`
/// closes.
///
/// The backend must implement `exit_event`: dropping a connection's daemon signals it and joins
/// the vring worker threads.
pub fn serve<B, F>(
    socket: VhostSocket,
    name: &str,
    make_backend: F,
    shutdown: &ShutdownSignal,
) -> Result<(), DaemonError>
where
    F: FnMut(Arc<dyn ConfigChangeNotifier>) -> io::Result<B>,
    B: VhostUserBackend<Bitmap = ()> + Clone + 'static,
    B::Vring: Clone + Send + Sync,
{
    serve_with(socket, name, make_backend, |_, _| Ok(()), shutdown)
}

/// [`serve`] with a hook that runs once per connection, after the connection's
/// `VhostUserDaemon` exists and before it serves: the place where a device registers its own
/// event fds with the daemon's epoll loop (vhost-user-backend 0.24 offers that only on the
/// daemon, through `get_epoll_handlers`). A hook error drops that connection.
pub fn serve_with<B, F, H>(
    socket: VhostSocket,
    name: &str,
    make_backend: F,
    on_daemon: H,
    shutdown: &ShutdownSignal,
) -> Result<(), DaemonError>
where
    F: FnMut(Arc<dyn ConfigChangeNotifier>) -> io::Result<B>,
    H: FnMut(&B, &VhostUserDaemon<B>) -> io::Result<()>,
    B: VhostUserBackend<Bitmap = ()> + Clone + 'static,
    B::Vring: Clone + Send + Sync,
{
    let mut device = Device {
        name,
        make_backend,
        on_daemon,
    };
    match socket {
        VhostSocket::Path(path) => {
            let listener = BoundSocket::bind(path)?;
            accept_loop(&listener.listener, &mut device, shutdown)
        }
        VhostSocket::Bound(listener) => accept_loop(&listener.listener, &mut device, shutdown),
        VhostSocket::Fd(fd) => match socket_kind(fd.as_fd())? {
            SocketKind::Listening => accept_loop(&UnixListener::from(fd), &mut device, shutdown),
            SocketKind::Connected => serve_connection(UnixStream::from(fd), &mut device, shutdown),
        },
    }
}

/// How each connection's device is made: its name, its factory and its start hook.
struct Device<'n, F, H> {
    name: &'n str,
    make_backend: F,
    on_daemon: H,
}

/// A listener we bound ourselves; removes its socket file when dropped.
#[derive(Debug)]
pub struct BoundSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl BoundSocket {
    /// Binds and listens under a temporary name, then renames the socket into place: the file
    /// appears at bind(2), a moment before listen(2), and a VMM that connects in between is
    /// refused (QEMU does not retry). The rename makes the path appear already listening.
    fn bind(path: PathBuf) -> Result<Self, DaemonError> {
        remove_stale_socket(&path)?;
        let mut staging = path.clone().into_os_string();
        staging.push(format!(".{}.binding", std::process::id()));
        let staging = PathBuf::from(staging);
        let _ = std::fs::remove_file(&staging);
        let bound = UnixListener::bind(&staging).and_then(|listener| {
            std::fs::rename(&staging, &path)?;
            Ok(listener)
        });
        match bound {
            Ok(listener) => Ok(Self { listener, path }),
            Err(source) => {
                let _ = std::fs::remove_file(&staging);
                Err(DaemonError::Bind { path, source })
            }
        }
    }
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes a socket file left by a previous run; refuses to touch anything else, or a socket
/// another process still serves.
fn remove_stale_socket(path: &Path) -> Result<(), DaemonError> {
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !metadata.file_type().is_socket() {
        return Err(DaemonError::PathNotSocket { path: path.into() });
    }
    if UnixStream::connect(path).is_ok() {
        return Err(DaemonError::PathInUse { path: path.into() });
    }
    std::fs::remove_file(path).map_err(|source| DaemonError::Bind {
        path: path.into(),
        source,
    })
}

fn accept_loop<B, F, H>(
    listener: &UnixListener,
    device: &mut Device<'_, F, H>,
    shutdown: &ShutdownSignal,
) -> Result<(), DaemonError>
where
    F: FnMut(Arc<dyn ConfigChangeNotifier>) -> io::Result<B>,
    H: FnMut(&B, &VhostUserDaemon<B>) -> io::Result<()>,
    B: VhostUserBackend<Bitmap = ()> + Clone + 'static,
    B::Vring: Clone + Send + Sync,
{
    loop {
        let [stop, incoming] =
            poll_readable([shutdown.as_fd(), listener.as_fd()]).map_err(DaemonError::Wait)?;
        if stop {
            return Ok(());
        }
        if !incoming {
            continue;
        }
        match listener.accept() {
            Ok((stream, _)) => serve_connection(stream, device, shutdown)?,
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR | libc::EAGAIN | libc::ECONNABORTED | libc::EPROTO) => {}
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                    warn!("Cannot accept a frontend connection: {e}");
                    std::thread::sleep(ACCEPT_RETRY_DELAY);
                }
                _ => return Err(DaemonError::Accept(e)),
            },
        }
        if shutdown.is_triggered() {
            return Ok(());
        }
    }
}

/// Serves one frontend connection to its end. Errors are those that would recur on the next
/// connection (the backend or the daemon cannot be built); a misbehaving frontend is logged.
fn serve_connection<B, F, H>(
    frontend: UnixStream,
    device: &mut Device<'_, F, H>,
    shutdown: &ShutdownSignal,
) -> Result<(), DaemonError>
where
    F: FnMut(Arc<dyn ConfigChangeNotifier>) -> io::Result<B>,
    H: FnMut(&B, &VhostUserDaemon<B>) -> io::Result<()>,
    B: VhostUserBackend<Bitmap = ()> + Clone + 'static,
    B::Vring: Clone + Send + Sync,
{
    let name = device.name;
    let peer = peer_pid(&frontend);
    info!(device = name, peer_pid = peer, "Frontend connected");
    let channel = BackendChannel::new();
    let backend = (device.make_backend)(channel.clone()).map_err(DaemonError::MakeBackend)?;
    let memory = GuestMemoryAtomic::new(GuestMemoryMmap::new());
    let mut daemon = VhostUserDaemon::new(name.to_owned(), backend.clone(), memory)
        .map_err(|e| DaemonError::StartDaemon(e.to_string()))?;
    if let Err(e) = (device.on_daemon)(&backend, &daemon) {
        warn!(
            device = name,
            "Frontend disconnected: the device did not start: {e}"
        );
        return Ok(());
    }
    let relay = match Relay::start(frontend, channel, |listener| daemon.start(listener)) {
        Ok(Ok(relay)) => relay,
        Ok(Err(e)) => {
            warn!(
                device = name,
                "Frontend disconnected: the daemon did not start: {e}"
            );
            return Ok(());
        }
        Err(RelayError::PrivateSocketRaced) => {
            daemon.request_shutdown();
            let _ = daemon.wait();
            warn!(
                device = name,
                "Frontend disconnected: {}",
                RelayError::PrivateSocketRaced
            );
            return Ok(());
        }
        Err(e) => return Err(DaemonError::Relay(e)),
    };
    let end = relay.run(shutdown.as_fd());
    let daemon_result = daemon.wait();
    // Dropping the daemon signals the backend's exit events and joins the vring workers.
    drop(daemon);
    let disconnected = |reason: &str| {
        info!(
            device = name,
            peer_pid = peer,
            "Frontend disconnected: {reason}"
        )
    };
    match (&end, &daemon_result) {
        (RelayEnd::Failed(e), _) => {
            warn!(device = name, peer_pid = peer, "Frontend disconnected: {e}");
        }
        (_, Err(e)) if !is_normal_end(e) => {
            // The crate's request handler refused a request (e.g. bad ring addresses).
            warn!(
                device = name,
                peer_pid = peer,
                "Frontend disconnected: the device refused a request: {e}"
            );
        }
        (RelayEnd::Stopped, _) => disconnected("shutting down"),
        (RelayEnd::DaemonClosed, _) => disconnected("the device ended the connection"),
        (RelayEnd::FrontendClosed, _) => disconnected("the frontend closed the connection"),
    }
    Ok(())
}

/// The process id of the frontend, for the connect/disconnect log lines.
fn peer_pid(stream: &UnixStream) -> Option<i32> {
    let mut credentials = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::ucred>()).ok()?;
    // SAFETY: `credentials` and `len` are live locals; SO_PEERCRED writes at most `len` bytes
    // (one `struct ucred`) into `credentials` and the actual size into `len`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut credentials as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0 && credentials.pid > 0).then_some(credentials.pid)
}

/// Ends of a daemon's request loop that just mean "the connection went away".
fn is_normal_end(error: &vhost_user_backend::Error) -> bool {
    matches!(
        error,
        vhost_user_backend::Error::HandleRequest(
            VhostUserError::Disconnected
                | VhostUserError::PartialMessage
                | VhostUserError::SocketBroken(_)
        )
    )
}

/// A do-nothing device for running the daemon before a real device is plugged in: two queues,
/// a 16-byte config that reads as one scanout, and no queue processing.
#[derive(Clone, Default)]
pub struct PlaceholderDevice;

impl PlaceholderDevice {
    /// Size of `virtio_gpu_config` (rust-vmm.md §3.1).
    const CONFIG_SIZE: usize = 16;
    /// Offset of `num_scanouts` in `virtio_gpu_config`.
    const NUM_SCANOUTS_OFFSET: usize = 8;
}

impl VhostUserBackend for PlaceholderDevice {
    type Bitmap = ();
    type Vring = vhost_user_backend::VringRwLock;

    fn num_queues(&self) -> usize {
        2
    }

    fn max_queue_size(&self) -> usize {
        1024
    }

    fn features(&self) -> u64 {
        use virtio_bindings::virtio_config::{VIRTIO_F_RING_RESET, VIRTIO_F_VERSION_1};
        // RING_RESET: QEMU's vhost-user-gpu sets it in SET_FEATURES unasked (vmm-frontends.md
        // §3.3), and vhost-user-backend refuses bits the backend did not offer.
        (1 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_F_RING_RESET)
            | vhost::vhost_user::message::VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn protocol_features(&self) -> vhost::vhost_user::message::VhostUserProtocolFeatures {
        use vhost::vhost_user::message::VhostUserProtocolFeatures as P;
        P::CONFIG | P::MQ | P::REPLY_ACK | P::BACKEND_REQ
    }

    fn set_event_idx(&self, _enabled: bool) {}

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let mut config = [0u8; Self::CONFIG_SIZE];
        config[Self::NUM_SCANOUTS_OFFSET] = 1;
        let size = usize::try_from(size).unwrap_or(0);
        let mut out = vec![0u8; size];
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        if let Some(from) = config.get(start..) {
            let n = from.len().min(size);
            out[..n].copy_from_slice(&from[..n]);
        }
        out
    }

    fn update_memory(&self, _mem: GuestMemoryAtomic<GuestMemoryMmap>) -> io::Result<()> {
        Ok(())
    }

    fn set_gpu_socket(&self, _gpu_backend: vhost::vhost_user::GpuBackend) -> io::Result<()> {
        Ok(())
    }

    fn exit_event(
        &self,
        _thread_index: usize,
    ) -> Option<(
        vmm_sys_util::event::EventConsumer,
        vmm_sys_util::event::EventNotifier,
    )> {
        use vmm_sys_util::event::{new_event_consumer_and_notifier, EventFlag};
        new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC).ok()
    }

    fn handle_event(
        &self,
        _device_event: u16,
        _evset: vmm_sys_util::epoll::EventSet,
        _vrings: &[Self::Vring],
        _thread_id: usize,
    ) -> io::Result<()> {
        Ok(())
    }
}
