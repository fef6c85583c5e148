//! A message relay between the frontend's vhost-user connection and the rust-vmm daemon: our
//! workaround for two hooks the crates lack.
//!
//! - vhost 0.18.0 gives the backend a `vhost::vhost_user::Backend` for the backend-request
//!   channel (`SET_BACKEND_REQ_FD`) that can neither send `VHOST_USER_BACKEND_CONFIG_CHANGE_MSG`
//!   nor expose its socket, so a backend cannot ask the VMM for a config-change interrupt (needed
//!   for guest resize under cloud-hypervisor).
//! - vhost-user-backend 0.24.0's `VhostUserDaemon` serves only connections it accepts on a
//!   `Listener` (or connects out itself); it cannot serve an already-connected socket, which is
//!   what libvirt passes with `--fd`.
//!
//! Both are solved here on the crates' public API, without copying their code: the relay owns the
//! frontend connection, hands the daemon a private listener it then connects to itself, and copies
//! every vhost-user message (header, payload and SCM_RIGHTS descriptors) in both directions. On the
//! way it keeps a duplicate of the descriptor of `SET_BACKEND_REQ_FD` and notes whether
//! `REPLY_ACK` was negotiated, which is all [`BackendChannel`] needs to send the config-change
//! message itself. The crate's own `Backend` stays idle (it writes only for shared objects and
//! SHMEM maps, which we never use), so the channel keeps one writer and one reader.
//!
//! The main socket carries control messages only (rings live in shared memory, kicks and calls are
//! eventfds), so the relay adds nothing to the data path. Upstream: rust-vmm/vhost has neither a
//! public config-change sender on `Backend` nor a way to serve a connected stream (see
//! `shared/research/rust-vmm.md` §2.5, §2.6); either would let this file go.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libc::iovec;
use tracing::{debug, warn};
use vhost::vhost_user::message::{
    BackendReq, FrontendReq, VhostUserHeaderFlag, VhostUserProtocolFeatures,
};
use vhost::vhost_user::Listener;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use crate::virtio::ConfigChangeNotifier;

/// vhost-user message header: `request: u32, flags: u32, size: u32`, native (little) endian
/// (QEMU `docs/interop/vhost-user.rst`, "Message Specification").
const HEADER_SIZE: usize = 12;

/// Largest payload we forward. The protocol's largest messages are GET/SET_CONFIG (a 12-byte
/// `VhostUserConfig` + up to 0x1000 config bytes, the crate's `VHOST_USER_CONFIG_SIZE`) and
/// SET_MEM_TABLE (8 + 8 regions × 32 bytes); vhost 0.18 itself refuses more than `MAX_MSG_SIZE`
/// (0x1000). Anything larger is a broken or hostile peer and ends the connection.
pub const MAX_PAYLOAD_SIZE: usize = 0x1000 + 12;

/// Most descriptors one message carries: vhost 0.18's `MAX_ATTACHED_FD_ENTRIES` (SET_MEM_TABLE
/// with its maximum of regions). The kernel drops the rest and we end the connection.
const MAX_FDS: usize = 32;

/// How long a config-change sender waits for the frontend's ack before giving up. The VMM acks
/// from its device thread right away (cloud-hypervisor `generic_vhost_user.rs`); a frontend that
/// does not answer within this is stuck, and the display worker must not be held longer.
pub const CONFIG_CHANGE_ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// The `VERSION` bits of every vhost-user header: the protocol has only version 1.
const PROTOCOL_VERSION: u32 = 0x1;

/// Size of the ack to a NEED_REPLY request: header + `u64` status (0 = success).
const ACK_SIZE: usize = HEADER_SIZE + 8;

/// Why a relay stopped. The first three are normal ends of a connection.
#[derive(Debug)]
pub enum RelayEnd {
    /// The frontend (VMM) closed its connection.
    FrontendClosed,
    /// The daemon closed its side (it hit an error handling a request).
    DaemonClosed,
    /// The shutdown descriptor became readable.
    Stopped,
    /// A socket error or a message we refuse to forward.
    Failed(RelayError),
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("Cannot read a vhost-user message")]
    Read(#[source] io::Error),
    #[error("Cannot write a vhost-user message")]
    Write(#[source] io::Error),
    #[error("Peer closed the connection in the middle of a message")]
    PartialMessage,
    #[error("Peer sent a message with {size} payload bytes (limit {MAX_PAYLOAD_SIZE})")]
    MessageTooLarge { size: usize },
    #[error("Cannot set up the private socket to the vhost-user daemon")]
    PrivateSocket(#[source] io::Error),
    #[error("Another process connected to the private daemon socket first")]
    PrivateSocketRaced,
}

/// Outcome of one read attempt: a message, a clean end at a message boundary, or a stop request.
enum Received {
    Message(Message),
    Closed,
    Stopped,
}

struct Message {
    header: [u8; HEADER_SIZE],
    payload: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Message {
    fn request(&self) -> u32 {
        header_field(&self.header, 0)
    }
}

fn header_field(header: &[u8; HEADER_SIZE], index: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(bytes) = header.get(index * 4..index * 4 + 4) {
        word.copy_from_slice(bytes);
    }
    u32::from_le_bytes(word)
}

/// The backend-request channel as the relay saw it go by; implements the config-change sender.
/// One per frontend connection, created before the device so the device can hold it.
#[derive(Default)]
pub struct BackendChannel {
    /// Our duplicate of the `SET_BACKEND_REQ_FD` socket. The mutex also serialises senders, so at
    /// most one request waits for its ack at a time.
    socket: Mutex<Option<UnixStream>>,
    reply_ack: AtomicBool,
}

impl BackendChannel {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<UnixStream>> {
        // A sender that panicked leaves a stream whose state we do not know; dropping it is the
        // safe recovery, the next SET_BACKEND_REQ_FD brings a fresh one.
        self.socket.lock().unwrap_or_else(|poisoned| {
            let mut guard = poisoned.into_inner();
            *guard = None;
            guard
        })
    }

    fn install(&self, fd: OwnedFd) {
        *self.lock() = Some(UnixStream::from(fd));
    }

    fn close(&self) {
        *self.lock() = None;
    }
}

impl ConfigChangeNotifier for BackendChannel {
    fn notify_config_change(&self) -> io::Result<()> {
        let mut guard = self.lock();
        let Some(socket) = guard.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the frontend has not sent SET_BACKEND_REQ_FD yet",
            ));
        };
        let need_reply = self.reply_ack.load(Ordering::Acquire);
        let mut flags = PROTOCOL_VERSION;
        if need_reply {
            flags |= VhostUserHeaderFlag::NEED_REPLY.bits();
        }
        let request = u32::from(BackendReq::CONFIG_CHANGE_MSG);
        let mut header = [0u8; HEADER_SIZE];
        header[0..4].copy_from_slice(&request.to_le_bytes());
        header[4..8].copy_from_slice(&flags.to_le_bytes());
        let result = send_config_change(socket, &header, need_reply, request);
        if result.is_err() {
            // The channel is out of step (half an ack may still arrive): stop using it.
            *guard = None;
        }
        result
    }
}

fn send_config_change(
    socket: &mut UnixStream,
    header: &[u8; HEADER_SIZE],
    need_reply: bool,
    request: u32,
) -> io::Result<()> {
    socket.write_all(header)?;
    if !need_reply {
        return Ok(());
    }
    socket.set_read_timeout(Some(CONFIG_CHANGE_ACK_TIMEOUT))?;
    let mut ack = [0u8; ACK_SIZE];
    socket.read_exact(&mut ack)?;
    let mut reply_header = [0u8; HEADER_SIZE];
    reply_header.copy_from_slice(&ack[..HEADER_SIZE]);
    let mut status = [0u8; 8];
    status.copy_from_slice(&ack[HEADER_SIZE..]);
    let is_reply = header_field(&reply_header, 1) & VhostUserHeaderFlag::REPLY.bits() != 0;
    if header_field(&reply_header, 0) != request || !is_reply || header_field(&reply_header, 2) != 8
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frontend answered CONFIG_CHANGE_MSG with an unexpected message",
        ));
    }
    match u64::from_le_bytes(status) {
        0 => Ok(()),
        code => Err(io::Error::other(format!(
            "frontend refused CONFIG_CHANGE_MSG (status {code})"
        ))),
    }
}

/// One frontend connection relayed to one `VhostUserDaemon`.
pub struct Relay {
    frontend: UnixStream,
    daemon: UnixStream,
    channel: Arc<BackendChannel>,
}

impl Relay {
    /// Connects `frontend` to a daemon: `start` must call `VhostUserDaemon::start` with the
    /// listener it is given (it accepts the relay's own connection and returns).
    pub fn start<E>(
        frontend: UnixStream,
        channel: Arc<BackendChannel>,
        start: impl FnOnce(&mut Listener) -> Result<(), E>,
    ) -> Result<Result<Self, E>, RelayError> {
        let (listener, daemon) = private_pair().map_err(RelayError::PrivateSocket)?;
        let mut daemon_listener =
            Listener::from(listener.try_clone().map_err(RelayError::PrivateSocket)?);
        if let Err(e) = start(&mut daemon_listener) {
            return Ok(Err(e));
        }
        // The name is unguessable but abstract sockets ignore file permissions: if anyone else
        // connected before us, the daemon took their connection and ours is still queued.
        listener
            .set_nonblocking(true)
            .map_err(RelayError::PrivateSocket)?;
        match listener.accept() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            _ => return Err(RelayError::PrivateSocketRaced),
        }
        Ok(Ok(Relay {
            frontend,
            daemon,
            channel,
        }))
    }

    /// Forwards messages until either side closes or `stop` becomes readable, then closes both
    /// sockets (which ends the daemon's request thread) and forgets the backend-request channel.
    pub fn run(self, stop: BorrowedFd<'_>) -> RelayEnd {
        let end = self.pump(stop);
        let _ = self.frontend.shutdown(Shutdown::Both);
        let _ = self.daemon.shutdown(Shutdown::Both);
        self.channel.close();
        end
    }

    fn pump(&self, stop: BorrowedFd<'_>) -> RelayEnd {
        loop {
            let ready = match poll_readable([stop, self.frontend.as_fd(), self.daemon.as_fd()]) {
                Ok(ready) => ready,
                Err(e) => return RelayEnd::Failed(RelayError::Read(e)),
            };
            if ready[0] {
                return RelayEnd::Stopped;
            }
            if ready[1] {
                match read_message(&self.frontend, stop) {
                    Ok(Received::Message(msg)) => {
                        self.inspect_request(&msg);
                        if let Err(e) = write_message(&self.daemon, &msg) {
                            return RelayEnd::Failed(e);
                        }
                    }
                    Ok(Received::Closed) => return RelayEnd::FrontendClosed,
                    Ok(Received::Stopped) => return RelayEnd::Stopped,
                    // A VMM killed mid-write is an ordinary way for a connection to end.
                    Err(RelayError::PartialMessage) => return RelayEnd::FrontendClosed,
                    Err(e) => return RelayEnd::Failed(e),
                }
            }
            if ready[2] {
                match read_message(&self.daemon, stop) {
                    Ok(Received::Message(msg)) => {
                        if let Err(e) = write_message(&self.frontend, &msg) {
                            return RelayEnd::Failed(e);
                        }
                    }
                    Ok(Received::Closed) => return RelayEnd::DaemonClosed,
                    Ok(Received::Stopped) => return RelayEnd::Stopped,
                    // The daemon shuts its socket down after a failed request, possibly while a
                    // reply is half written; for us that is the daemon going away.
                    Err(RelayError::PartialMessage) => return RelayEnd::DaemonClosed,
                    Err(e) => return RelayEnd::Failed(e),
                }
            }
        }
    }

    /// Notes what the config-change sender needs from a frontend request going by.
    fn inspect_request(&self, msg: &Message) {
        let request = msg.request();
        if request == u32::from(FrontendReq::SET_PROTOCOL_FEATURES) {
            if let Ok(bytes) = <[u8; 8]>::try_from(msg.payload.as_slice()) {
                let acked = u64::from_le_bytes(bytes);
                let reply_ack = acked & VhostUserProtocolFeatures::REPLY_ACK.bits() != 0;
                self.channel.reply_ack.store(reply_ack, Ordering::Release);
            }
        } else if request == u32::from(FrontendReq::SET_BACKEND_REQ_FD) {
            // The crate checks the descriptor and gets the original; a bad one ends its
            // connection, and our duplicate then dies with the relay.
            match msg.fds.first().map(|fd| fd.try_clone()) {
                Some(Ok(duplicate)) => self.channel.install(duplicate),
                Some(Err(e)) => warn!("Cannot duplicate the backend-request socket: {e}"),
                None => debug!("SET_BACKEND_REQ_FD without a descriptor"),
            }
        }
    }
}

/// A listener on a fresh abstract-namespace address and a stream already connected to it.
fn private_pair() -> io::Result<(UnixListener, UnixStream)> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(SEQUENCE.fetch_add(1, Ordering::Relaxed));
    let name = format!(
        "vhost-user-spice/{}/{:016x}",
        std::process::id(),
        hasher.finish()
    );
    let address = SocketAddr::from_abstract_name(name.as_bytes())?;
    let listener = UnixListener::bind_addr(&address)?;
    let stream = UnixStream::connect_addr(&address)?;
    Ok((listener, stream))
}

/// Waits until one of `fds` is readable (or hung up); returns which.
pub(crate) fn poll_readable<const N: usize>(fds: [BorrowedFd<'_>; N]) -> io::Result<[bool; N]> {
    let mut pollfds = fds.map(|fd| libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    let count = libc::nfds_t::try_from(N).map_err(io::Error::other)?;
    loop {
        // SAFETY: `pollfds` is a live array of `N` initialised `pollfd`s and `count` is its length;
        // poll(2) only writes their `revents`. The descriptors are borrowed for the call.
        let rc = unsafe { libc::poll(pollfds.as_mut_ptr(), count, -1) };
        if rc >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(pollfds.map(|p| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0))
}

/// Reads one whole message. Checks `stop` before every wait, so a peer that sends half a message
/// and stalls does not hold a shutdown.
fn read_message(socket: &UnixStream, stop: BorrowedFd<'_>) -> Result<Received, RelayError> {
    let mut fds = Vec::new();
    let mut header = [0u8; HEADER_SIZE];
    match read_exact_with_fds(socket, stop, &mut header, &mut fds)? {
        Fill::Done => {}
        Fill::Empty => return Ok(Received::Closed),
        Fill::Stopped => return Ok(Received::Stopped),
    }
    let size = usize::try_from(header_field(&header, 2)).unwrap_or(usize::MAX);
    if size > MAX_PAYLOAD_SIZE {
        return Err(RelayError::MessageTooLarge { size });
    }
    let mut payload = vec![0u8; size];
    match read_exact_with_fds(socket, stop, &mut payload, &mut fds)? {
        Fill::Done => {}
        Fill::Empty if size == 0 => {}
        Fill::Empty => return Err(RelayError::PartialMessage),
        Fill::Stopped => return Ok(Received::Stopped),
    }
    Ok(Received::Message(Message {
        header,
        payload,
        fds,
    }))
}

enum Fill {
    Done,
    /// End of stream before the first byte.
    Empty,
    Stopped,
}

fn read_exact_with_fds(
    socket: &UnixStream,
    stop: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> Result<Fill, RelayError> {
    let mut filled = 0;
    while filled < buf.len() {
        let ready = poll_readable([stop, socket.as_fd()]).map_err(RelayError::Read)?;
        if ready[0] {
            return Ok(Fill::Stopped);
        }
        let rest = buf.get_mut(filled..).unwrap_or_default();
        let mut iov = [iovec {
            iov_base: rest.as_mut_ptr().cast(),
            iov_len: rest.len(),
        }];
        let mut raw_fds: [RawFd; MAX_FDS] = [-1; MAX_FDS];
        // SAFETY: the iovec covers `rest`, a live, exclusively borrowed byte slice, so the kernel
        // may write any bytes into it.
        let received = unsafe { socket.recv_with_fds(&mut iov, &mut raw_fds) };
        let (bytes, fd_count) = match received {
            Ok(counts) => counts,
            Err(e) if e.errno() == libc::EINTR => continue,
            Err(e) => return Err(RelayError::Read(e.into())),
        };
        for raw in raw_fds.iter().take(fd_count) {
            // SAFETY: recvmsg(2) just installed these descriptors in our table; nothing else
            // knows them, so each becomes owned exactly once here.
            fds.push(unsafe { OwnedFd::from_raw_fd(*raw) });
        }
        if bytes == 0 {
            return if filled == 0 {
                Ok(Fill::Empty)
            } else {
                Err(RelayError::PartialMessage)
            };
        }
        filled += bytes;
    }
    Ok(Fill::Done)
}

fn write_message(socket: &UnixStream, msg: &Message) -> Result<(), RelayError> {
    let raw: Vec<RawFd> = msg.fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let total = HEADER_SIZE + msg.payload.len();
    let sent = loop {
        match socket.send_with_fds(&[&msg.header[..], &msg.payload[..]], &raw) {
            Ok(sent) => break sent,
            Err(e) if e.errno() == libc::EINTR => continue,
            Err(e) => return Err(RelayError::Write(e.into())),
        }
    };
    // A blocking stream socket sends everything unless a signal interrupts it; the descriptors
    // went with the first byte, the rest follows as plain data.
    if sent < total {
        let mut whole = Vec::with_capacity(total);
        whole.extend_from_slice(&msg.header);
        whole.extend_from_slice(&msg.payload);
        let mut socket = socket;
        socket
            .write_all(whole.get(sent..).unwrap_or_default())
            .map_err(RelayError::Write)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
