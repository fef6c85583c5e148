//! The composition root: builds the QXL device, the display worker, the guest-facing devices
//! and the network side from a [`Config`], and runs them until SIGTERM/SIGINT.
//!
//! ```text
//! virtio-gpu (per connection) ──QxlSink──► qxl::Producer ═ rings ═► qxl::Consumer ──► display worker
//! demo source ───────────────────────────► (instead, with --demo)          DisplayHandle ──► SPICE
//! ```

use std::io;
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use crate::config::{Config, SocketSpec};
use crate::demo::Demo;
use crate::display::{self, DisplayHandle};
use crate::systemd::{self, Notifier, ServiceEnv};
use crate::virtio::daemon::{self, DaemonError, ShutdownSignal, VhostSocket};
use crate::virtio::gpu::{GpuBackend, GpuConfig, QxlSink};

/// Name of the GPU device in thread names and logs.
const GPU_DEVICE_NAME: &str = "vhost-user-spice-gpu";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("Cannot set up termination signal handling")]
    Signals(#[source] io::Error),
    #[error("Cannot start the watchdog thread")]
    Watchdog(#[source] io::Error),
    #[error("Cannot create the QXL device")]
    Qxl(#[source] qxl::QxlError),
    #[error("Cannot start the demo source")]
    Demo(#[source] io::Error),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

/// The running display side: the QXL device's producer end, which a front (a VM or the demo)
/// draws through, and the display worker consuming the other end.
pub struct DisplayStack {
    pub producer: qxl::Producer,
    pub display: DisplayHandle,
}

impl DisplayStack {
    pub fn new() -> Result<Self, StartError> {
        let (producer, consumer) =
            qxl::new_device(qxl::DeviceConfig::default()).map_err(StartError::Qxl)?;
        Ok(Self {
            producer,
            display: display::qxl_source::spawn_qxl(consumer),
        })
    }
}

/// Runs the daemon until SIGTERM/SIGINT (or until a connected `--fd` closes).
pub fn run(config: Config) -> Result<(), StartError> {
    run_service(config, ServiceEnv::none())
}

/// [`run`], telling systemd how it goes (READY, STATUS, STOPPING, watchdog) when `service`
/// came from systemd.
pub fn run_service(config: Config, service: ServiceEnv) -> Result<(), StartError> {
    // First, before any thread exists, so that every thread inherits the blocked signals.
    let shutdown = ShutdownSignal::new().map_err(StartError::Signals)?;
    shutdown
        .trigger_on_termination_signals()
        .map_err(StartError::Signals)?;
    let notifier = service.notifier;
    if let Some(spec) = &config.input_socket {
        // The virtio-input device is wired in by its own branch; until then say so.
        warn!(socket = ?spec, "virtio-input is not served by this build; the input socket is ignored");
    }
    let DisplayStack { producer, display } = DisplayStack::new()?;
    let watchdog = match service.watchdog {
        Some(interval) => Some(
            systemd::start_watchdog(notifier.clone(), interval, shutdown.clone(), || true)
                .map_err(StartError::Watchdog)?,
        ),
        None => None,
    };
    let result = match &config.socket {
        None => run_demo(&config, producer, &shutdown, &notifier),
        Some(spec) => {
            let socket = match spec {
                SocketSpec::Path(path) => VhostSocket::Path(path.clone()),
                SocketSpec::Fd(fd) => VhostSocket::from_inherited_fd(*fd)?,
            };
            // READY=1 once the VMM can connect. The SPICE listeners join this point when the
            // SPICE server is wired in.
            let socket = socket.listen()?;
            notifier.ready(&ready_status(spec));
            serve_gpu(&config, Arc::new(Mutex::new(producer)), socket, &shutdown)
        }
    };
    notifier.stopping();
    shutdown.trigger();
    if let Some(watchdog) = watchdog {
        let _ = watchdog.join();
    }
    display.shutdown();
    result
}

fn ready_status(spec: &SocketSpec) -> String {
    let vmm = match spec {
        SocketSpec::Path(path) => format!("VMM socket {}", path.display()),
        SocketSpec::Fd(fd) => format!("VMM socket fd {fd}"),
    };
    format!("{vmm}; {}", systemd::client_status(0))
}

fn run_demo(
    config: &Config,
    producer: qxl::Producer,
    shutdown: &ShutdownSignal,
    notifier: &Notifier,
) -> Result<(), StartError> {
    let demo = Demo::start(producer, config.width, config.height).map_err(StartError::Demo)?;
    notifier.ready(&format!("Demo picture; {}", systemd::client_status(0)));
    shutdown.wait();
    let stopped = demo.stop();
    info!(frames = ?stopped.last_frame, "Demo stopped");
    if let Err(e) = stopped.result {
        warn!(error = %e, "Demo source had stopped early");
    }
    Ok(())
}

fn gpu_config(config: &Config) -> GpuConfig {
    GpuConfig {
        width: config.width,
        height: config.height,
        max_hostmem: config.max_hostmem,
        ..GpuConfig::default()
    }
}

/// Serves VMM connections one after another; each gets a fresh virtio-gpu device over a
/// freshly reset QXL device (the VM rebooted or the VMM restarted).
pub fn serve_gpu(
    config: &Config,
    producer: Arc<Mutex<qxl::Producer>>,
    socket: VhostSocket,
    shutdown: &ShutdownSignal,
) -> Result<(), StartError> {
    let make_backend = |notifier| {
        let sink = QxlSink::new(producer.clone());
        if let Err(e) = sink.reset() {
            warn!(error = %e, "Could not reset the QXL device for a new connection");
        }
        GpuBackend::new(gpu_config(config), sink, notifier)
            .map(Arc::new)
            .map_err(io::Error::from)
    };
    daemon::serve(socket, GPU_DEVICE_NAME, make_backend, shutdown)?;
    Ok(())
}
