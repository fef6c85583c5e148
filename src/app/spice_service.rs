//! The daemon's SPICE side: the server on a small tokio runtime of its own thread (the
//! vhost-user serve loops stay blocking), its settings mapped from [`SpiceOptions`], and the
//! client count reported to systemd.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use super::StartError;
use crate::config::{SpiceOptions, TicketSetting};
use crate::display::DisplayHandle;
use crate::guest::{DisplayControl, HeadRequest, InputSink};
use crate::spice::ticket::Ticketing;
use crate::spice::{ListenAt, SpiceConfig, SpiceServer};
use crate::spice_setup::{self, SetupError};
use crate::systemd::{self, Notifier};

/// The runtime's worker threads. One: it only frames and writes (large encodings go to the
/// encode pool, spice/encode_pool.rs), and a second thread costs more than it does: the two
/// wake each other and wait on each other's encodings (desktop, 4 clients: 13 % less CPU with
/// one). vus-bench runs its SPICE server with as many.
pub const WORKER_THREADS: usize = 1;
/// How often the client count is looked at for `STATUS=`: cheap (a lock and a length), and
/// quick enough for `systemctl status`.
const CLIENT_POLL: Duration = Duration::from_millis(250);
/// How long blocking work (a layout request waiting for the VMM) may hold up the exit once the
/// server has stopped.
const RUNTIME_GRACE: Duration = Duration::from_millis(500);

/// The SPICE server's settings from the daemon's; `started` is when the ticket's lifetime
/// (`--ticket-expiry`) began. Takes over socket-activated SPICE descriptors: call it once.
pub fn spice_config(options: &SpiceOptions, started: Instant) -> Result<SpiceConfig, SetupError> {
    let ticketing = match &options.ticketing {
        TicketSetting::Disabled => Ticketing::Disabled,
        TicketSetting::Password { secret, expiry, .. } => Ticketing::Password {
            secret: secret.clone(),
            // Beyond the clock's range is never.
            expires: expiry.and_then(|expiry| started.checked_add(expiry)),
        },
    };
    let mut config = SpiceConfig {
        max_clients: usize::try_from(options.max_clients).unwrap_or(usize::MAX),
        input: options.input.into(),
        image_compression: options.image_compression.into(),
        ..SpiceConfig::new(ticketing)
    };
    spice_setup::apply(options, &mut config)?;
    Ok(config)
}

/// The listeners, for READY's status line: `SPICE 127.0.0.1:5900, TLS 127.0.0.1:5901`.
pub fn describe(config: &SpiceConfig) -> String {
    let names: Vec<String> = config
        .listeners
        .iter()
        .map(|l| {
            let at = match &l.at {
                ListenAt::Bind(addr) => addr.to_string(),
                ListenAt::Unix(path) => path.display().to_string(),
                ListenAt::Tcp(listener) => listener
                    .local_addr()
                    .map_or_else(|_| "activated TCP socket".into(), |a| a.to_string()),
                ListenAt::UnixStd(_) => "activated unix socket".into(),
            };
            if l.tls {
                format!("TLS {at}")
            } else {
                at
            }
        })
        .collect();
    if names.is_empty() {
        "no SPICE listener".to_owned()
    } else {
        format!("SPICE {}", names.join(", "))
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
    use std::path::PathBuf;

    use super::*;
    use crate::config::{Endpoint, ImageCompression, InputPolicy, TlsFiles};
    use crate::spice::ticket::Secret;

    fn options(plain: Vec<Endpoint>, ticketing: TicketSetting) -> SpiceOptions {
        SpiceOptions {
            plain,
            tls_listeners: Vec::new(),
            tls: None,
            ticketing,
            max_clients: 3,
            input: InputPolicy::First,
            image_compression: ImageCompression::Lz4,
        }
    }

    fn tcp(port: u16) -> Endpoint {
        Endpoint::Tcp(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
    }

    #[test]
    fn listeners_and_policies_map_onto_the_server() {
        let unix = PathBuf::from("/run/x/spice.sock");
        let config = spice_config(
            &options(
                vec![tcp(5930), Endpoint::Unix(unix.clone())],
                TicketSetting::Disabled,
            ),
            Instant::now(),
        )
        .unwrap();
        assert_eq!(config.listeners.len(), 2);
        assert_eq!(config.max_clients, 3);
        assert_eq!(config.input, crate::spice::InputPolicy::First);
        assert_eq!(
            config.image_compression,
            crate::spice::ImageCompression::Lz4
        );
        assert!(matches!(config.ticketing, Ticketing::Disabled));
        assert!(config.tls.is_none());
        assert_eq!(describe(&config), "SPICE 127.0.0.1:5930, /run/x/spice.sock");
    }

    #[test]
    fn tls_listeners_carry_the_files() {
        let mut tls = options(vec![tcp(1)], TicketSetting::Disabled);
        tls.tls_listeners.push(tcp(2));
        tls.tls = Some(TlsFiles {
            cert: "/c".into(),
            key: "/k".into(),
            client_ca: None,
        });
        let config = spice_config(&tls, Instant::now()).unwrap();
        assert_eq!(
            config.tls.as_ref().map(|t| t.cert.clone()),
            Some("/c".into())
        );
        assert_eq!(describe(&config), "SPICE 127.0.0.1:1, TLS 127.0.0.1:2");
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
}
