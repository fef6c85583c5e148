//! The server's public face: configuration, the listeners (TCP and unix, bound here or
//! inherited, plaintext or TLS), one task per channel connection under a connection cap, and
//! shutdown (STYLE §5, mini-redis layering).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{info, warn, Instrument};

use super::conn::{self, ConnError, Identity, Shared, DEFAULT_STALL_TIMEOUT};
use super::encode::ImageCompression;
use super::image_cache::ImageCacheStats;
use super::link::SecureChannels;
use super::pipe::DEFAULT_PIPE_BUDGET;
use super::session::InputPolicy;
use super::session::{ClientStats, Sessions, CHANNELS_PER_SESSION};
use super::ticket::{ServerKey, TicketError, Ticketing};
use super::tls::{self, Tls, TlsError, TlsSettings};
use crate::display::DisplayHandle;
use crate::guest::{DisplayControl, HeadRequest, InputSink};

/// The SPICE port QEMU and libvirt use by default.
pub const DEFAULT_PORT: u16 = 5900;
/// Clients served at once by default.
pub const DEFAULT_MAX_CLIENTS: usize = 16;
/// Longest pause between accept retries after an error (e.g. out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Where one listener listens.
#[derive(Debug)]
pub enum ListenAt {
    /// Bind this TCP address (port 0: any free port).
    Bind(SocketAddr),
    /// Bind a unix socket here; a socket file left by an earlier run is replaced, and the
    /// file is removed at shutdown.
    Unix(PathBuf),
    /// A listening TCP socket bound by someone else (socket activation); taken over.
    Tcp(std::net::TcpListener),
    /// A listening unix socket bound by someone else (socket activation); taken over, its
    /// file left alone.
    UnixStd(std::os::unix::net::UnixListener),
}

/// One listener: where, and whether its connections are TLS.
#[derive(Debug)]
pub struct ListenerSpec {
    pub at: ListenAt,
    /// Every connection starts with a TLS handshake ([`SpiceConfig::tls`] holds the files).
    pub tls: bool,
}

impl ListenerSpec {
    /// A plaintext TCP listener on `addr`.
    pub fn tcp(addr: SocketAddr) -> Self {
        Self {
            at: ListenAt::Bind(addr),
            tls: false,
        }
    }

    /// A TLS TCP listener on `addr`.
    pub fn tls(addr: SocketAddr) -> Self {
        Self {
            at: ListenAt::Bind(addr),
            tls: true,
        }
    }

    /// A plaintext unix socket at `path`.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self {
            at: ListenAt::Unix(path.into()),
            tls: false,
        }
    }
}

/// How the server listens and whom it lets in.
#[derive(Debug)]
pub struct SpiceConfig {
    /// The listeners; at least one.
    pub listeners: Vec<ListenerSpec>,
    /// Certificate, key and client CAs of the TLS listeners; required when one is TLS.
    pub tls: Option<TlsSettings>,
    /// Channels refused (`NEED_SECURED`) on plaintext listeners.
    pub secure_channels: SecureChannels,
    /// The password policy.
    pub ticketing: Ticketing,
    /// Clients (sessions) served at once.
    pub max_clients: usize,
    /// Encoded bytes one display client may have waiting before its updates are squashed.
    pub pipe_budget: usize,
    /// How images are compressed (LZ4 only for clients that decode it).
    pub image_compression: ImageCompression,
    /// Whose keyboard and mouse reach the guest.
    pub input: InputPolicy,
    /// A client that takes nothing of what waits for it this long is disconnected.
    pub stall_timeout: Duration,
}

impl SpiceConfig {
    /// Plaintext on 127.0.0.1:5900, no TLS, 16 clients, the given password policy.
    pub fn new(ticketing: Ticketing) -> Self {
        Self {
            listeners: vec![ListenerSpec::tcp(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                DEFAULT_PORT,
            ))],
            tls: None,
            secure_channels: SecureChannels::NONE,
            ticketing,
            max_clients: DEFAULT_MAX_CLIENTS,
            pipe_budget: DEFAULT_PIPE_BUDGET,
            image_compression: ImageCompression::Auto,
            input: InputPolicy::All,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpiceError {
    /// Binding a TCP listener failed.
    #[error("Failed to listen on {0}")]
    BindTcp(SocketAddr, #[source] std::io::Error),
    /// Binding a unix socket failed.
    #[error("Failed to listen on unix socket {0}")]
    BindUnix(PathBuf, #[source] std::io::Error),
    /// A listening socket handed over could not be used.
    #[error("Cannot use the inherited SPICE listening socket")]
    Inherited(#[source] std::io::Error),
    /// Generating the RSA key failed.
    #[error("Failed to create the server key")]
    Key(#[source] TicketError),
    /// No listener was configured.
    #[error("No SPICE listener configured")]
    NoListener,
    /// A TLS listener without certificate and key.
    #[error("A SPICE TLS listener is configured but no certificate and key")]
    NoTlsSettings,
    /// The certificate, key or CA files are not usable.
    #[error("Cannot set up SPICE TLS")]
    Tls(#[from] TlsError),
}

/// A listener bound and ready for the acceptor.
enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// Binds or adopts every listener; `created` collects the unix socket files made here.
fn bind_all(
    specs: Vec<ListenerSpec>,
    created: &mut Vec<PathBuf>,
) -> Result<Vec<(Bound, bool)>, SpiceError> {
    let mut bound = Vec::with_capacity(specs.len());
    for spec in specs {
        let listener = match spec.at {
            ListenAt::Bind(addr) => {
                // std's bind, so that this needs no await: SO_REUSEADDR as tokio's bind sets.
                let socket = match addr {
                    SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                    SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
                }
                .and_then(|s| {
                    s.set_reuseaddr(true)?;
                    s.bind(addr)?;
                    s.listen(1024)
                })
                .map_err(|e| SpiceError::BindTcp(addr, e))?;
                Bound::Tcp(socket)
            }
            ListenAt::Unix(path) => {
                // A socket file left by an earlier run would make bind fail.
                let _ = std::fs::remove_file(&path);
                let l =
                    UnixListener::bind(&path).map_err(|e| SpiceError::BindUnix(path.clone(), e))?;
                created.push(path);
                Bound::Unix(l)
            }
            ListenAt::Tcp(l) => Bound::Tcp(
                l.set_nonblocking(true)
                    .and_then(|()| TcpListener::from_std(l))
                    .map_err(SpiceError::Inherited)?,
            ),
            ListenAt::UnixStd(l) => Bound::Unix(
                l.set_nonblocking(true)
                    .and_then(|()| UnixListener::from_std(l))
                    .map_err(SpiceError::Inherited)?,
            ),
        };
        bound.push((listener, spec.tls));
    }
    Ok(bound)
}

/// A running server. Dropping it without [`SpiceServer::shutdown`] leaves the tasks running
/// until the runtime ends.
pub struct SpiceServer {
    shared: Arc<Shared>,
    /// Every TCP listener's address, and whether it is TLS.
    tcp_addrs: Vec<(SocketAddr, bool)>,
    stop: watch::Sender<bool>,
    done_tx: Option<mpsc::Sender<()>>,
    done_rx: mpsc::Receiver<()>,
    /// Unix socket files this server created, removed at shutdown.
    unix_paths: Vec<PathBuf>,
}

impl std::fmt::Debug for SpiceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpiceServer")
            .field("tcp_addrs", &self.tcp_addrs)
            .field("clients", &self.client_count())
            .finish_non_exhaustive()
    }
}

impl SpiceServer {
    /// Binds (or adopts) the listeners, reads the TLS files and starts accepting on the
    /// current tokio runtime.
    pub async fn start(
        config: SpiceConfig,
        display: DisplayHandle,
        input: Arc<dyn InputSink>,
        control: Arc<dyn DisplayControl>,
    ) -> Result<Self, SpiceError> {
        if config.listeners.is_empty() {
            return Err(SpiceError::NoListener);
        }
        let tls = if config.listeners.iter().any(|l| l.tls) {
            let settings = config.tls.as_ref().ok_or(SpiceError::NoTlsSettings)?;
            Some(Tls::new(tls::server_config(settings)?))
        } else {
            None
        };
        let mut unix_paths = Vec::new();
        let bound = match bind_all(config.listeners, &mut unix_paths) {
            Ok(b) => b,
            Err(e) => {
                for path in &unix_paths {
                    let _ = std::fs::remove_file(path);
                }
                return Err(e);
            }
        };
        let key = ServerKey::generate().map_err(SpiceError::Key)?;
        let (stop, _) = watch::channel(false);
        let control = LayoutRelay::spawn(control, stop.subscribe());
        let shared = Arc::new(Shared {
            key,
            ticketing: RwLock::new(config.ticketing),
            sessions: Sessions::new(config.max_clients, config.input),
            display,
            input,
            control,
            started: Instant::now(),
            pipe_budget: config.pipe_budget,
            image_compression: config.image_compression,
            stall_timeout: config.stall_timeout,
            secure_channels: config.secure_channels,
        });
        let (done_tx, done_rx) = mpsc::channel(1);
        // Every session's channels, plus as many links in progress.
        let limit = Arc::new(Semaphore::new(
            config.max_clients.saturating_mul(CHANNELS_PER_SESSION + 1),
        ));
        let counter = Arc::new(AtomicU64::new(0));
        let mut tcp_addrs = Vec::new();
        for (listener, is_tls) in bound {
            let acceptor = Acceptor {
                shared: Arc::clone(&shared),
                stop: stop.subscribe(),
                done: done_tx.clone(),
                limit: Arc::clone(&limit),
                counter: Arc::clone(&counter),
                tls: if is_tls { tls.clone() } else { None },
            };
            match listener {
                Bound::Tcp(l) => {
                    let addr = l.local_addr().ok();
                    if let Some(addr) = addr {
                        tcp_addrs.push((addr, is_tls));
                    }
                    info!(?addr, tls = is_tls, "SPICE server listening");
                    tokio::spawn(acceptor.run(l));
                }
                Bound::Unix(l) => {
                    let path = l
                        .local_addr()
                        .ok()
                        .and_then(|a| a.as_pathname().map(PathBuf::from));
                    info!(?path, tls = is_tls, "SPICE server listening");
                    tokio::spawn(acceptor.run(l));
                }
            }
        }
        Ok(Self {
            shared,
            tcp_addrs,
            stop,
            done_tx: Some(done_tx),
            done_rx,
            unix_paths,
        })
    }

    /// The first plaintext TCP listener's address (with the port chosen when 0 was asked).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp_addrs.iter().find(|(_, t)| !t).map(|(a, _)| *a)
    }

    /// The first TLS TCP listener's address.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tcp_addrs.iter().find(|(_, t)| *t).map(|(a, _)| *a)
    }

    /// Every TCP listener's address, in configuration order, and whether it is TLS.
    pub fn local_addrs(&self) -> &[(SocketAddr, bool)] {
        &self.tcp_addrs
    }

    /// Clients (sessions) connected now.
    pub fn client_count(&self) -> usize {
        self.shared.sessions.count()
    }

    /// Every connected client's statistics, oldest first.
    pub fn client_stats(&self) -> Vec<ClientStats> {
        self.shared.sessions.stats()
    }

    /// The encode-once image cache's counters.
    pub fn image_cache_stats(&self) -> ImageCacheStats {
        self.shared.sessions.image_cache().stats()
    }

    /// Replaces the password policy for links from now on.
    pub fn set_ticketing(&self, ticketing: Ticketing) {
        *self
            .shared
            .ticketing
            .write()
            .unwrap_or_else(PoisonError::into_inner) = ticketing;
    }

    /// Stops accepting, disconnects every client and waits for every task to end.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        self.shared.sessions.close_all();
        drop(self.done_tx.take());
        let wait = async { while self.done_rx.recv().await.is_some() {} };
        if tokio::time::timeout(conn::SHUTDOWN_GRACE, wait)
            .await
            .is_err()
        {
            warn!(
                "Some SPICE connections did not end within {:?}",
                conn::SHUTDOWN_GRACE
            );
        }
        for path in &self.unix_paths {
            let _ = std::fs::remove_file(path);
        }
        info!("SPICE server stopped");
    }
}

/// Runs the server until `shutdown` resolves.
pub async fn serve(
    config: SpiceConfig,
    display: DisplayHandle,
    input: Arc<dyn InputSink>,
    control: Arc<dyn DisplayControl>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SpiceError> {
    let server = SpiceServer::start(config, display, input, control).await?;
    shutdown.await;
    server.shutdown().await;
    Ok(())
}

/// Hands clients' layout requests to the guest side off the runtime: the guest side may wait
/// for the VMM to acknowledge (app.rs `CurrentGpu`), and a connection task must not block.
/// Latest value: a request that arrives while one is being applied replaces any older one
/// still waiting.
struct LayoutRelay {
    latest: watch::Sender<Option<Vec<HeadRequest>>>,
}

impl LayoutRelay {
    fn spawn(
        control: Arc<dyn DisplayControl>,
        mut stop: watch::Receiver<bool>,
    ) -> Arc<dyn DisplayControl> {
        let (latest, mut rx) = watch::channel(None::<Vec<HeadRequest>>);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return },
                    _ = stop.changed() => return,
                }
                let Some(heads) = rx.borrow_and_update().clone() else {
                    continue;
                };
                let control = Arc::clone(&control);
                // A panic in the guest side ends that one request, not the relay.
                let _ = tokio::task::spawn_blocking(move || control.request_layout(&heads)).await;
            }
        });
        Arc::new(Self { latest })
    }
}

impl DisplayControl for LayoutRelay {
    fn request_layout(&self, heads: &[HeadRequest]) {
        self.latest.send_replace(Some(heads.to_vec()));
    }
}

/// A listener the acceptor can take connections from.
trait Listen: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// The next connection and a printable peer name.
    fn accept_peer(&self) -> impl Future<Output = std::io::Result<(Self::Stream, String)>> + Send;
}

impl Listen for TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_peer(&self) -> std::io::Result<(Self::Stream, String)> {
        let (s, peer) = self.accept().await?;
        // Small messages (acks, cursor moves) must not wait for Nagle.
        let _ = s.set_nodelay(true);
        Ok((s, peer.to_string()))
    }
}

impl Listen for UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_peer(&self) -> std::io::Result<(Self::Stream, String)> {
        let (s, _) = self.accept().await?;
        Ok((s, "unix".to_owned()))
    }
}

struct Acceptor {
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    /// Cloned into every task; its drop tells `shutdown` the task is done.
    done: mpsc::Sender<()>,
    limit: Arc<Semaphore>,
    counter: Arc<AtomicU64>,
    /// Set on TLS listeners: every connection starts with the handshake.
    tls: Option<Tls>,
}

impl Acceptor {
    async fn run<L: Listen>(mut self, listener: L) {
        let mut backoff = Duration::from_millis(1);
        loop {
            let permit = tokio::select! {
                p = Arc::clone(&self.limit).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = self.stop.changed() => return,
            };
            let accepted = tokio::select! {
                a = listener.accept_peer() => a,
                _ = self.stop.changed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(a) => {
                    backoff = Duration::from_millis(1);
                    a
                }
                Err(e) => {
                    warn!(error = %e, "SPICE accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                    continue;
                }
            };
            let conn_id = self.counter.fetch_add(1, Ordering::Relaxed);
            let shared = Arc::clone(&self.shared);
            let stop = self.stop.clone();
            let done = self.done.clone();
            let tls = self.tls.clone();
            let span = tracing::info_span!("spice", conn = conn_id, %peer, tls = tls.is_some());
            tokio::spawn(
                async move {
                    let mut ident = Identity::default();
                    let result = match tls {
                        Some(tls) => serve_tls(&tls, stream, shared, stop, &mut ident).await,
                        None => conn::run(stream, shared, stop, false, &mut ident).await,
                    };
                    log_end(&ident, result);
                    drop(permit);
                    drop(done);
                }
                .instrument(span),
            );
        }
    }
}

/// The TLS handshake (given up at shutdown), then the connection inside it.
async fn serve_tls<S>(
    tls: &Tls,
    stream: S,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    ident: &mut Identity,
) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let stream = tokio::select! {
        s = tls.accept(stream) => s?,
        _ = stop.changed() => return Err(ConnError::Shutdown),
    };
    conn::run(stream, shared, stop, true, ident).await
}

/// The one line per connection that says why it ended.
fn log_end(ident: &Identity, result: Result<(), ConnError>) {
    let channel = ident.channel.map(|c| format!("{c:?}"));
    let session = ident.session.map(|s| format!("{s:#x}"));
    match result {
        Ok(()) => info!(?channel, ?session, "SPICE channel closed"),
        Err(e) => {
            let reason = error_chain(&e);
            if e.is_misbehaviour() {
                warn!(?channel, ?session, %reason, "SPICE client disconnected");
            } else {
                info!(?channel, ?session, %reason, "SPICE client disconnected");
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}
