//! The server's public face: configuration, the listeners (TCP and unix), one task per
//! channel connection under a connection cap, and shutdown (STYLE §5, mini-redis layering).

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

use super::conn::{self, ConnError, Identity, Shared};
use super::pipe::DEFAULT_PIPE_BUDGET;
use super::session::{Sessions, CHANNELS_PER_SESSION};
use super::ticket::{ServerKey, TicketError, Ticketing};
use crate::display::DisplayHandle;
use crate::guest::{DisplayControl, HeadRequest, InputSink};

/// The SPICE port QEMU and libvirt use by default.
pub const DEFAULT_PORT: u16 = 5900;
/// Clients served at once by default.
pub const DEFAULT_MAX_CLIENTS: usize = 16;
/// Longest pause between accept retries after an error (e.g. out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// How the server listens and whom it lets in.
#[derive(Debug, Clone)]
pub struct SpiceConfig {
    /// Address of the TCP listener.
    pub addr: IpAddr,
    /// TCP port (0: any free port); `None`: no TCP listener.
    pub port: Option<u16>,
    /// A unix socket to listen on as well.
    pub unix_path: Option<PathBuf>,
    /// The password policy.
    pub ticketing: Ticketing,
    /// Clients (sessions) served at once.
    pub max_clients: usize,
    /// Encoded bytes one display client may have waiting before its updates are squashed.
    pub pipe_budget: usize,
    /// Send LZ4 images to clients that decode them.
    pub lz4: bool,
}

impl SpiceConfig {
    /// 127.0.0.1:5900, no unix socket, 16 clients, the given password policy.
    pub fn new(ticketing: Ticketing) -> Self {
        Self {
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: Some(DEFAULT_PORT),
            unix_path: None,
            ticketing,
            max_clients: DEFAULT_MAX_CLIENTS,
            pipe_budget: DEFAULT_PIPE_BUDGET,
            lz4: true,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpiceError {
    /// Binding the TCP listener failed.
    #[error("Failed to listen on {0}")]
    BindTcp(SocketAddr, #[source] std::io::Error),
    /// Binding the unix socket failed.
    #[error("Failed to listen on unix socket {0}")]
    BindUnix(PathBuf, #[source] std::io::Error),
    /// Generating the RSA key failed.
    #[error("Failed to create the server key")]
    Key(#[source] TicketError),
    /// Neither a TCP port nor a unix socket was configured.
    #[error("No TCP port and no unix socket configured")]
    NoListener,
}

/// A running server. Dropping it without [`SpiceServer::shutdown`] leaves the tasks running
/// until the runtime ends.
pub struct SpiceServer {
    shared: Arc<Shared>,
    local_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    done_tx: Option<mpsc::Sender<()>>,
    done_rx: mpsc::Receiver<()>,
    unix_path: Option<PathBuf>,
}

impl std::fmt::Debug for SpiceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpiceServer")
            .field("local_addr", &self.local_addr)
            .field("clients", &self.client_count())
            .finish_non_exhaustive()
    }
}

impl SpiceServer {
    /// Binds the listeners and starts accepting on the current tokio runtime.
    pub async fn start(
        config: SpiceConfig,
        display: DisplayHandle,
        input: Arc<dyn InputSink>,
        control: Arc<dyn DisplayControl>,
    ) -> Result<Self, SpiceError> {
        if config.port.is_none() && config.unix_path.is_none() {
            return Err(SpiceError::NoListener);
        }
        let tcp = match config.port {
            Some(port) => {
                let addr = SocketAddr::new(config.addr, port);
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|e| SpiceError::BindTcp(addr, e))?,
                )
            }
            None => None,
        };
        let unix = match &config.unix_path {
            Some(path) => {
                // A socket file left by an earlier run would make bind fail.
                let _ = std::fs::remove_file(path);
                Some(UnixListener::bind(path).map_err(|e| SpiceError::BindUnix(path.clone(), e))?)
            }
            None => None,
        };
        let local_addr = tcp.as_ref().and_then(|l| l.local_addr().ok());
        let key = ServerKey::generate().map_err(SpiceError::Key)?;
        let (stop, _) = watch::channel(false);
        let control = LayoutRelay::spawn(control, stop.subscribe());
        let shared = Arc::new(Shared {
            key,
            ticketing: RwLock::new(config.ticketing),
            sessions: Sessions::new(config.max_clients),
            display,
            input,
            control,
            started: Instant::now(),
            pipe_budget: config.pipe_budget,
            lz4: config.lz4,
        });
        let (done_tx, done_rx) = mpsc::channel(1);
        // Every session's channels, plus as many links in progress.
        let limit = Arc::new(Semaphore::new(
            config.max_clients.saturating_mul(CHANNELS_PER_SESSION + 1),
        ));
        let counter = Arc::new(AtomicU64::new(0));
        if let Some(listener) = tcp {
            info!(addr = ?local_addr, "SPICE server listening");
            let acceptor = Acceptor {
                shared: Arc::clone(&shared),
                stop: stop.subscribe(),
                done: done_tx.clone(),
                limit: Arc::clone(&limit),
                counter: Arc::clone(&counter),
            };
            tokio::spawn(acceptor.run(listener));
        }
        if let Some(listener) = unix {
            info!(path = ?config.unix_path, "SPICE server listening");
            let acceptor = Acceptor {
                shared: Arc::clone(&shared),
                stop: stop.subscribe(),
                done: done_tx.clone(),
                limit,
                counter,
            };
            tokio::spawn(acceptor.run(listener));
        }
        Ok(Self {
            shared,
            local_addr,
            stop,
            done_tx: Some(done_tx),
            done_rx,
            unix_path: config.unix_path,
        })
    }

    /// The TCP listener's address (with the port chosen when 0 was asked).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Clients (sessions) connected now.
    pub fn client_count(&self) -> usize {
        self.shared.sessions.count()
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
        if let Some(path) = &self.unix_path {
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
            let span = tracing::info_span!("spice", conn = conn_id, %peer);
            tokio::spawn(
                async move {
                    let mut ident = Identity::default();
                    let result = conn::run(stream, shared, stop, &mut ident).await;
                    log_end(&ident, result);
                    drop(permit);
                    drop(done);
                }
                .instrument(span),
            );
        }
    }
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
