//! systemd integration: socket activation (`LISTEN_FDS`/`LISTEN_FDNAMES`), service
//! notifications (`NOTIFY_SOCKET`: READY, STATUS, STOPPING) and the watchdog (`WATCHDOG_USEC`).
//!
//! Outside systemd (libvirt, a shell) none of the variables is set and everything here is a
//! no-op. The variables are removed from the environment once read, as `sd_listen_fds(3)` and
//! `sd_notify(3)` do with `unset_environment`, so that children never inherit them.
//!
//! Descriptor names (`FileDescriptorName=` in the `.socket` units; docs/systemd.md):
//! [`FD_VHOST_USER`] (or [`FD_GPU`]), [`FD_INPUT`], [`FD_SPICE`], [`FD_SPICE_TLS`]. A single
//! unnamed descriptor is the vhost-user socket.

use std::ffi::OsString;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{self, UnixDatagram, UnixListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::warn;

use crate::config::Activated;
use crate::virtio::daemon::{socket_option, ShutdownSignal};

/// The virtio-gpu device's vhost-user socket.
pub const FD_VHOST_USER: &str = "vhost-user";
/// Another name for [`FD_VHOST_USER`], matching the unit `vhost-user-spice-gpu@.socket`.
pub const FD_GPU: &str = "gpu";
/// The virtio-input device's vhost-user socket.
pub const FD_INPUT: &str = "input";
/// A plaintext SPICE listener (TCP or unix).
pub const FD_SPICE: &str = "spice";
/// A SPICE-over-TLS TCP listener.
pub const FD_SPICE_TLS: &str = "spice-tls";
/// What `sd_listen_fds_with_names` reports when `LISTEN_FDNAMES` is absent.
const FD_UNNAMED: &str = "unknown";

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("Bad socket activation environment (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES)")]
    ListenEnv(#[source] io::Error),
    #[error(
        "Socket activation passed a descriptor named {name:?}; the names understood are \
         vhost-user (or gpu), input, spice and spice-tls (FileDescriptorName= in the .socket unit)"
    )]
    UnknownFdName { name: String },
    #[error("Socket activation passed two descriptors for {name:?}")]
    DuplicateFdName { name: String },
    #[error("The socket-activated `{name}` descriptor {fd} is not a listening stream socket")]
    NotListening { name: &'static str, fd: RawFd },
    #[error("Cannot inspect the socket-activated `{name}` descriptor {fd}")]
    Inspect {
        name: &'static str,
        fd: RawFd,
        #[source]
        source: io::Error,
    },
}

/// What systemd handed the process, read once at start-up.
#[derive(Debug)]
pub struct ServiceEnv {
    pub activated: Activated,
    pub notifier: Notifier,
    /// Ping the watchdog at least this often (half of `WATCHDOG_USEC`, as `sd_watchdog_enabled(3)`
    /// advises).
    pub watchdog: Option<Duration>,
    /// Why `NOTIFY_SOCKET` could not be used, for the log once it is set up.
    pub notify_error: Option<String>,
}

impl ServiceEnv {
    /// Not under systemd: nothing activated, notifications off.
    pub fn none() -> Self {
        Self {
            activated: Activated::default(),
            notifier: Notifier::disabled(),
            watchdog: None,
            notify_error: None,
        }
    }

    /// Reads and removes `LISTEN_*`, `NOTIFY_SOCKET` and `WATCHDOG_*`.
    ///
    /// # Safety
    /// Call before the process starts any thread: removing environment variables while another
    /// thread reads the environment is undefined behaviour (`std::env::remove_var`).
    pub unsafe fn take() -> Result<Self, SystemdError> {
        // SAFETY: our caller guarantees no other thread exists yet.
        let fds = unsafe { sd_notify::listen_fds_with_names_and_unset_env() }
            .map_err(SystemdError::ListenEnv)?
            .collect::<Vec<_>>();
        let activated = activated_from(fds)?;
        // SAFETY: as above.
        let watchdog = unsafe { sd_notify::watchdog_enabled_and_unset_env() }.map(|t| t / 2);
        let notify_socket = std::env::var_os("NOTIFY_SOCKET");
        // SAFETY: as above.
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        let (notifier, notify_error) = match notify_socket.filter(|s| !s.is_empty()) {
            None => (Notifier::disabled(), None),
            Some(target) => match Notifier::to_socket(&target) {
                Ok(notifier) => (notifier, None),
                Err(e) => (
                    Notifier::disabled(),
                    Some(format!("NOTIFY_SOCKET {target:?} is not usable: {e}")),
                ),
            },
        };
        Ok(Self {
            activated,
            notifier,
            watchdog,
            notify_error,
        })
    }
}

/// Which [`Activated`] slot a descriptor name fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    VhostUser,
    Input,
    Spice,
    SpiceTls,
}

fn slot_of(name: &str, only_one: bool) -> Option<Slot> {
    match name {
        FD_VHOST_USER | FD_GPU => Some(Slot::VhostUser),
        FD_UNNAMED if only_one => Some(Slot::VhostUser),
        FD_INPUT => Some(Slot::Input),
        FD_SPICE => Some(Slot::Spice),
        FD_SPICE_TLS => Some(Slot::SpiceTls),
        _ => None,
    }
}

/// Sorts activated descriptors into their slots; SPICE ones must be listening stream sockets.
fn activated_from(fds: Vec<(RawFd, String)>) -> Result<Activated, SystemdError> {
    let only_one = fds.len() == 1;
    let mut activated = Activated::default();
    for (fd, name) in fds {
        let slot = slot_of(&name, only_one)
            .ok_or_else(|| SystemdError::UnknownFdName { name: name.clone() })?;
        let taken = match slot {
            Slot::VhostUser => activated.vhost_user.replace(fd).is_some(),
            Slot::Input => activated.input.replace(fd).is_some(),
            Slot::Spice => activated
                .spice
                .replace((fd, listener_address(fd, FD_SPICE)?))
                .is_some(),
            Slot::SpiceTls => activated
                .spice_tls
                .replace((fd, listener_address(fd, FD_SPICE_TLS)?))
                .is_some(),
        };
        if taken {
            return Err(SystemdError::DuplicateFdName { name });
        }
    }
    Ok(activated)
}

/// The TCP address of an activated listening socket (`None`: a unix socket).
fn listener_address(fd: RawFd, name: &'static str) -> Result<Option<SocketAddr>, SystemdError> {
    let inspect = |source| SystemdError::Inspect { name, fd, source };
    // SAFETY: sd_listen_fds handed us `fd` open (its `fd_cloexec` has just succeeded on it), and
    // it stays open: the borrow ends in this function and only a later consumer adopts it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let domain = socket_option(borrowed, libc::SO_DOMAIN).map_err(inspect)?;
    let stream = socket_option(borrowed, libc::SO_TYPE).map_err(inspect)? == libc::SOCK_STREAM;
    let listening = socket_option(borrowed, libc::SO_ACCEPTCONN).map_err(inspect)? != 0;
    if !stream || !listening {
        return Err(SystemdError::NotListening { name, fd });
    }
    match domain {
        libc::AF_UNIX => Ok(None),
        libc::AF_INET | libc::AF_INET6 => {
            let probe = TcpListener::from(borrowed.try_clone_to_owned().map_err(inspect)?);
            probe.local_addr().map(Some).map_err(inspect)
        }
        _ => Err(SystemdError::NotListening { name, fd }),
    }
}

/// An activated SPICE listener, adopted by the SPICE server.
#[derive(Debug)]
pub enum InheritedListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// Takes ownership of an activated listening socket ([`Activated::spice`] / `spice_tls`),
/// which [`ServiceEnv::take`] has checked to be a listening TCP or unix stream socket.
pub fn adopt_listener(fd: RawFd) -> io::Result<InheritedListener> {
    // SAFETY: F_GETFD reads the descriptor flags and touches no memory; EBADF if not open.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: `fd` is open (checked above) and, by the activation protocol, the process's to own;
    // `Activated` hands each descriptor to exactly one consumer.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    match socket_option(owned.as_fd(), libc::SO_DOMAIN)? {
        libc::AF_UNIX => Ok(InheritedListener::Unix(UnixListener::from(owned))),
        _ => Ok(InheritedListener::Tcp(TcpListener::from(owned))),
    }
}

/// Sends service notifications (`sd_notify(3)`) to systemd; a no-op when not under systemd.
/// Cloned freely: the SPICE server keeps one to report its client count.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    target: Option<Arc<Target>>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    /// Warn once, not on every status update, when systemd stops listening.
    failed: AtomicBool,
}

impl Notifier {
    pub fn disabled() -> Self {
        Self { target: None }
    }

    /// Notifications to `NOTIFY_SOCKET`-style `target`: a path, or `@name` for the abstract
    /// namespace (which the `sd-notify` crate does not handle, hence our own sender).
    pub fn to_socket(target: &OsString) -> io::Result<Self> {
        let bytes = target.as_encoded_bytes();
        let address = match bytes.strip_prefix(b"@") {
            Some(name) => net::SocketAddr::from_abstract_name(name)?,
            None => net::SocketAddr::from_pathname(target)?,
        };
        let socket = UnixDatagram::unbound()?;
        socket.connect_addr(&address)?;
        Ok(Self {
            target: Some(Arc::new(Target {
                socket,
                failed: AtomicBool::new(false),
            })),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Start-up is complete: every listener is set up and the configuration is loaded.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}\n"));
    }

    /// The one-line state `systemctl status` shows.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}\n"));
    }

    /// The SPICE server calls this whenever a client connects or leaves.
    pub fn clients(&self, connected: usize) {
        self.status(&client_status(connected));
    }

    /// Shutdown has begun.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=Shutting down\n");
    }

    /// Still alive (`WatchdogSec=`).
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1\n");
    }

    fn send(&self, message: &str) {
        let Some(target) = &self.target else { return };
        match target.socket.send(message.as_bytes()) {
            Ok(_) => target.failed.store(false, Ordering::Relaxed),
            Err(e) => {
                if !target.failed.swap(true, Ordering::Relaxed) {
                    warn!("Cannot notify systemd: {e}");
                }
            }
        }
    }
}

/// The `STATUS=` text for a client count.
pub fn client_status(connected: usize) -> String {
    match connected {
        1 => "Serving 1 SPICE client".to_owned(),
        n => format!("Serving {n} SPICE clients"),
    }
}

/// Pings the watchdog every `interval` from its own thread until `shutdown` fires.
///
/// The thread only proves the process is scheduled and not wedged in exit; a hang of the
/// display worker or the SPICE server does not stop it yet (a health check can be added in
/// `healthy`).
pub fn start_watchdog(
    notifier: Notifier,
    interval: Duration,
    shutdown: ShutdownSignal,
    healthy: impl Fn() -> bool + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    let timeout_ms = libc::c_int::try_from(interval.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || loop {
            if healthy() {
                notifier.watchdog();
            }
            if wait_readable(shutdown.as_fd(), timeout_ms) {
                return;
            }
        })
}

/// Whether `fd` became readable within `timeout_ms`.
fn wait_readable(fd: BorrowedFd<'_>, timeout_ms: libc::c_int) -> bool {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live, initialised pollfd, length 1; poll(2) writes only `revents`.
    let rc = unsafe { libc::poll(&mut pollfd, 1, timeout_ms) };
    rc > 0 && pollfd.revents != 0
}

#[cfg(test)]
mod tests;
