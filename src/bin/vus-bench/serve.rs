//! The network side of the benchmark: our SPICE server on the display worker, ticketing
//! disabled, on its own tokio runtime, with inputs and resize requests going nowhere.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::watch;

use vhost_user_spice::display::DisplayHandle;
use vhost_user_spice::guest::{DisplayControl, HeadRequest, InputClientId, InputEvent, InputSink};
use vhost_user_spice::spice::ticket::Ticketing;
use vhost_user_spice::spice::{
    ImageCompression, ListenerSpec, SpiceConfig, SpiceServer, DEFAULT_MAX_CLIENTS,
};

use crate::{Args, WAIT_POLL};

/// Once the sessions are there, how long their display channels get to come up before the
/// workload starts (spice-ref-server waits for the display channels themselves; a probe's
/// display channel follows its main channel within about 0.1 s on loopback).
const DISPLAY_SETTLE: Duration = Duration::from_millis(500);

/// Input and resize requests from the probes: the benchmark has no guest to give them to.
struct NoGuest {
    leds: watch::Sender<u16>,
}

impl InputSink for NoGuest {
    fn input(&self, _client: InputClientId, _event: InputEvent) {}

    fn release_all_from(&self, _client: InputClientId) {}

    fn guest_modifiers(&self) -> watch::Receiver<u16> {
        self.leds.subscribe()
    }
}

impl DisplayControl for NoGuest {
    fn request_layout(&self, _heads: &[HeadRequest]) {}
}

/// spice-ref-server's `--image-compression` as ours: `off` is raw bitmaps, `lz4` LZ4 or raw
/// (as spice-server's lz4 mode), and `auto_glz` (its default) and every other mode our
/// default, LZ4 or QUIC or raw.
pub fn image_compression(mode: &str) -> ImageCompression {
    match mode {
        "off" => ImageCompression::Off,
        "lz4" => ImageCompression::Lz4,
        _ => ImageCompression::Auto,
    }
}

pub struct Clients {
    runtime: Runtime,
    server: SpiceServer,
    port: u16,
    max_seen: AtomicUsize,
}

impl Clients {
    pub fn start(args: &Args, display: &DisplayHandle) -> Result<Self, String> {
        let addr: IpAddr = args
            .addr
            .parse()
            .map_err(|e| format!("bad --addr {}: {e}", args.addr))?;
        let mut config = SpiceConfig::new(Ticketing::Disabled);
        config.listeners = vec![ListenerSpec::tcp(std::net::SocketAddr::new(
            addr, args.port,
        ))];
        config.max_clients = DEFAULT_MAX_CLIENTS.max(args.wait_clients);
        config.image_compression = image_compression(&args.image_compression);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.spice_threads.max(1))
            .enable_all()
            .thread_name("spice")
            .build()
            .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
        let no_guest = Arc::new(NoGuest {
            leds: watch::channel(0).0,
        });
        let server = runtime
            .block_on(SpiceServer::start(
                config,
                display.clone(),
                no_guest.clone(),
                no_guest,
            ))
            .map_err(|e| format!("cannot start the SPICE server: {e}"))?;
        let port = server.local_addr().map_or(args.port, |a| a.port());
        Ok(Self {
            runtime,
            server,
            port,
            max_seen: AtomicUsize::new(0),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Clients (sessions) connected now.
    pub fn count(&self) -> usize {
        let n = self.server.client_count();
        self.max_seen.fetch_max(n, Ordering::Relaxed);
        n
    }

    /// Most clients seen by `count`.
    pub fn max_count(&self) -> usize {
        self.count();
        self.max_seen.load(Ordering::Relaxed)
    }

    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.count() < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(WAIT_POLL);
        }
        if n > 0 {
            std::thread::sleep(DISPLAY_SETTLE);
        }
        true
    }

    pub fn shutdown(self) {
        self.runtime.block_on(self.server.shutdown());
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use vhost_user_spice::app::DisplayStack;

    use super::*;

    #[test]
    fn serves_on_a_free_port_and_times_out_waiting_for_absent_clients() {
        let args = Args::try_parse_from(["vus-bench", "--port", "0"]).expect("parses");
        let stack = DisplayStack::new().expect("display stack");
        let clients = Clients::start(&args, &stack.display).expect("server starts");
        assert_ne!(clients.port(), 0);
        assert!(clients.wait_for(0, Duration::ZERO));
        assert!(!clients.wait_for(1, Duration::from_millis(50)));
        assert_eq!((clients.count(), clients.max_count()), (0, 0));
        clients.shutdown();
        stack.display.shutdown();
    }
}
