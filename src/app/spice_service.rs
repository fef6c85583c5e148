//! The daemon's SPICE side: the server on a small tokio runtime of its own thread (the
//! vhost-user serve loops stay blocking), its settings mapped from [`SpiceOptions`], and the
//! client count reported to systemd.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use super::StartError;
use crate::config::{Endpoint, SpiceOptions, TicketSetting};
use crate::display::DisplayHandle;
use crate::guest::{DisplayControl, HeadRequest, InputSink};
use crate::spice::ticket::Ticketing;
use crate::spice::{SpiceConfig, SpiceServer};
use crate::systemd::{self, Notifier};

/// The runtime's worker threads: encoding is per client and light; two keep one slow client
/// from holding up the others without taking the cores the vring workers need.
const WORKER_THREADS: usize = 2;
/// How often the client count is looked at for `STATUS=`: cheap (a lock and a length), and
/// quick enough for `systemctl status`.
const CLIENT_POLL: Duration = Duration::from_millis(250);
/// How long blocking work (a layout request waiting for the VMM) may hold up the exit once the
/// server has stopped.
const RUNTIME_GRACE: Duration = Duration::from_millis(500);

/// What the SPICE server cannot serve yet. The configuration accepts it (the listener list and
/// TLS are being added to the server); the daemon refuses it at start-up rather than dropping
/// a listener the operator asked for.
#[derive(Debug, thiserror::Error)]
pub enum Unsupported {
    #[error(
        "SPICE over TLS (--spice-tls-port, --tls-only, a socket-activated `spice-tls` socket) \
         is not supported yet; serve plaintext SPICE on 127.0.0.1 or a unix socket (--spice-unix) \
         and tunnel it"
    )]
    Tls,
    #[error(
        "A socket-activated `spice` socket is not supported yet; remove it from the unit \
         (vhost-user-spice-spice@.socket) and use --spice-port or --spice-unix"
    )]
    ActivatedSpice,
    #[error("More than one SPICE TCP listener ({0} and {1}) is not supported yet")]
    SeveralTcp(SocketAddr, SocketAddr),
    #[error("More than one SPICE unix socket ({0:?} and {1:?}) is not supported yet")]
    SeveralUnix(PathBuf, PathBuf),
}

/// The SPICE server's settings from the daemon's; `started` is when the ticket's lifetime
/// (`--ticket-expiry`) began.
pub fn spice_config(options: &SpiceOptions, started: Instant) -> Result<SpiceConfig, Unsupported> {
    if !options.tls_listeners.is_empty() || options.tls.is_some() {
        return Err(Unsupported::Tls);
    }
    let ticketing = match &options.ticketing {
        TicketSetting::Disabled => Ticketing::Disabled,
        TicketSetting::Password { secret, expiry, .. } => Ticketing::Password {
            secret: secret.clone(),
            // Beyond the clock's range is never.
            expires: expiry.and_then(|expiry| started.checked_add(expiry)),
        },
    };
    let mut config = SpiceConfig {
        port: None,
        unix_path: None,
        max_clients: usize::try_from(options.max_clients).unwrap_or(usize::MAX),
        input: options.input,
        ..SpiceConfig::new(ticketing)
    };
    let mut tcp: Option<SocketAddr> = None;
    for endpoint in &options.plain {
        match endpoint {
            Endpoint::Tcp(addr) => {
                if let Some(first) = tcp {
                    return Err(Unsupported::SeveralTcp(first, *addr));
                }
                tcp = Some(*addr);
                config.addr = addr.ip();
                config.port = Some(addr.port());
            }
            Endpoint::Unix(path) => {
                if let Some(first) = &config.unix_path {
                    return Err(Unsupported::SeveralUnix(first.clone(), path.clone()));
                }
                config.unix_path = Some(path.clone());
            }
            Endpoint::Fd { .. } => return Err(Unsupported::ActivatedSpice),
        }
    }
    Ok(config)
}

/// Where the server listens, for `STATUS=` and the log.
pub fn describe(config: &SpiceConfig) -> String {
    let tcp = config.port.map(|port| SocketAddr::new(config.addr, port));
    match (tcp, &config.unix_path) {
        (Some(addr), Some(path)) => format!("SPICE {addr} and {}", path.display()),
        (Some(addr), None) => format!("SPICE {addr}"),
        (None, Some(path)) => format!("SPICE {}", path.display()),
        (None, None) => "no SPICE listener".to_owned(),
    }
}

/// Display resize requests in demo mode: the demo picture keeps its size.
pub struct FixedDisplay;

impl DisplayControl for FixedDisplay {
    fn request_layout(&self, heads: &[HeadRequest]) {
        info!(?heads, "Display resize requested in demo mode: ignored");
    }
}

/// The running SPICE server and the thread whose runtime drives it.
pub struct SpiceService {
    local_addr: Option<SocketAddr>,
    /// `Some(status)` once the daemon is ready: READY=1 with that status goes out, then
    /// `STATUS=` at every change of the client count.
    ready: watch::Sender<Option<String>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SpiceService {
    /// Starts the server on its own thread and returns once its listeners are bound (or
    /// binding failed).
    pub fn start(
        config: SpiceConfig,
        display: DisplayHandle,
        input: Arc<dyn InputSink>,
        control: Arc<dyn DisplayControl>,
        notifier: Notifier,
    ) -> Result<Self, StartError> {
        let (started_tx, started_rx) = mpsc::channel();
        let (stop, stop_rx) = oneshot::channel();
        let (ready, ready_rx) = watch::channel(None);
        let thread = std::thread::Builder::new()
            .name("spice".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(WORKER_THREADS)
                    .thread_name("spice-rt")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = started_tx.send(Err(StartError::Runtime(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let server = match SpiceServer::start(config, display, input, control).await {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = started_tx.send(Err(StartError::Spice(e)));
                            return;
                        }
                    };
                    let _ = started_tx.send(Ok(server.local_addr()));
                    report(&server, &notifier, ready_rx, stop_rx).await;
                    server.shutdown().await;
                });
                runtime.shutdown_timeout(RUNTIME_GRACE);
            })
            .map_err(StartError::Thread)?;
        let local_addr = match started_rx.recv() {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(StartError::Thread(io::Error::other(
                    "the SPICE thread ended during start-up",
                )));
            }
        };
        Ok(Self {
            local_addr,
            ready,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The TCP listener's address, if there is one.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Everything listens: tells systemd READY=1 with `status` and the client count, then
    /// keeps `STATUS=` current.
    pub fn ready(&self, status: String) {
        self.ready.send_replace(Some(status));
    }

    /// Disconnects every client and stops the server (within its shutdown grace).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("The SPICE thread panicked");
            }
        }
    }
}

impl Drop for SpiceService {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sends READY=1 once the daemon is ready, then `STATUS=` whenever the client count changed,
/// until `stop`.
async fn report(
    server: &SpiceServer,
    notifier: &Notifier,
    mut ready: watch::Receiver<Option<String>>,
    mut stop: oneshot::Receiver<()>,
) {
    let status = tokio::select! {
        status = ready.wait_for(Option::is_some) => match status {
            Ok(status) => status.clone().unwrap_or_default(),
            Err(_) => return,
        },
        _ = &mut stop => return,
    };
    let mut reported = server.client_count();
    notifier.ready(&format!("{status}; {}", systemd::client_status(reported)));
    let mut poll = tokio::time::interval(CLIENT_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            _ = &mut stop => return,
        }
        let count = server.client_count();
        if count != reported {
            reported = count;
            info!(clients = count, "SPICE clients");
            notifier.status(&format!("{status}; {}", systemd::client_status(count)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::config::{InputPolicy, TlsFiles};
    use crate::spice::ticket::Secret;

    fn options(plain: Vec<Endpoint>, ticketing: TicketSetting) -> SpiceOptions {
        SpiceOptions {
            plain,
            tls_listeners: Vec::new(),
            tls: None,
            ticketing,
            max_clients: 3,
            input: InputPolicy::All,
        }
    }

    fn tcp(port: u16) -> Endpoint {
        Endpoint::Tcp(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
    }

    #[test]
    fn tcp_and_unix_listeners_map_onto_the_server() {
        let unix = PathBuf::from("/run/x/spice.sock");
        let config = spice_config(
            &options(
                vec![tcp(5930), Endpoint::Unix(unix.clone())],
                TicketSetting::Disabled,
            ),
            Instant::now(),
        )
        .unwrap();
        assert_eq!(config.addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(config.port, Some(5930));
        assert_eq!(config.unix_path, Some(unix));
        assert_eq!(config.max_clients, 3);
        assert!(matches!(config.ticketing, Ticketing::Disabled));
        assert_eq!(
            describe(&config),
            "SPICE 127.0.0.1:5930 and /run/x/spice.sock"
        );
    }

    #[test]
    fn unix_only_has_no_tcp_port() {
        let config = spice_config(
            &options(vec![Endpoint::Unix("/s".into())], TicketSetting::Disabled),
            Instant::now(),
        )
        .unwrap();
        assert_eq!(config.port, None);
    }

    #[test]
    fn ticket_expiry_counts_from_start() {
        let started = Instant::now();
        let password = |expiry| TicketSetting::Password {
            secret: Secret::new("pw"),
            source: "/pw".into(),
            expiry,
        };
        let config = spice_config(
            &options(vec![tcp(1)], password(Some(Duration::from_secs(60)))),
            started,
        )
        .unwrap();
        match config.ticketing {
            Ticketing::Password { secret, expires } => {
                assert_eq!(secret, Secret::new("pw"));
                assert_eq!(expires, Some(started + Duration::from_secs(60)));
            }
            Ticketing::Disabled => panic!("ticketing must stay on"),
        }
        let config = spice_config(&options(vec![tcp(1)], password(None)), started).unwrap();
        assert!(matches!(
            config.ticketing,
            Ticketing::Password { expires: None, .. }
        ));
    }

    #[test]
    fn what_the_server_cannot_take_is_refused() {
        let started = Instant::now();
        let refused = |options: SpiceOptions| spice_config(&options, started).unwrap_err();
        let mut tls = options(vec![tcp(1)], TicketSetting::Disabled);
        tls.tls_listeners.push(tcp(2));
        tls.tls = Some(TlsFiles {
            cert: "/c".into(),
            key: "/k".into(),
            client_ca: None,
        });
        assert!(matches!(refused(tls), Unsupported::Tls));
        let activated = Endpoint::Fd { fd: 3, local: None };
        assert!(matches!(
            refused(options(vec![activated], TicketSetting::Disabled)),
            Unsupported::ActivatedSpice
        ));
        assert!(matches!(
            refused(options(vec![tcp(1), tcp(2)], TicketSetting::Disabled)),
            Unsupported::SeveralTcp(..)
        ));
        let two_unix = vec![Endpoint::Unix("/a".into()), Endpoint::Unix("/b".into())];
        let message = refused(options(two_unix, TicketSetting::Disabled)).to_string();
        assert!(message.contains("not supported yet"), "{message}");
    }
}
