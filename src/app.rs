//! The composition root: builds the QXL device, the display worker, the guest-facing devices
//! and the network side from a [`Config`], and runs them until SIGTERM/SIGINT.
//!
//! ```text
//! virtio-gpu (per connection) ──QxlSink──► qxl::Producer ═ rings ═► qxl::Consumer ──► display worker
//! demo source ───────────────────────────► (instead, with --demo)          DisplayHandle ──► SPICE
//! SPICE inputs ──► InputHandle ──► virtio-input      SPICE resize ──► CurrentGpu ──► virtio-gpu
//! ```
//!
//! Threads: the vhost-user serve loops block on their own threads; the SPICE server runs on a
//! small tokio runtime of its own thread (`spice_service.rs`).

mod spice_service;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::{info, warn};

use crate::config::{Config, SocketSpec};
use crate::demo::Demo;
use crate::display::{self, DisplayHandle};
use crate::guest::{DisplayControl, HeadRequest};
use crate::spice::SpiceConfig;
use crate::systemd::{self, ServiceEnv};
use crate::virtio::daemon::{self, DaemonError, ShutdownSignal, VhostSocket};
use crate::virtio::gpu::{GpuBackend, GpuConfig, GpuControl, QxlSink};
use crate::virtio::input::{InputBackend, InputConfig, InputError, InputHandle};

pub use spice_service::{spice_config, FixedDisplay, SpiceService, WORKER_THREADS};

/// Name of the GPU device in thread names and logs.
const GPU_DEVICE_NAME: &str = "vhost-user-spice-gpu";
/// Name of the input device in thread names and logs.
const INPUT_DEVICE_NAME: &str = "vhost-user-spice-input";

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
    #[error("Cannot create the input device")]
    Input(#[source] InputError),
    #[error("Cannot start a thread")]
    Thread(#[source] io::Error),
    #[error(transparent)]
    SpiceSetup(#[from] crate::spice_setup::SetupError),
    #[error("Cannot start the SPICE runtime")]
    Runtime(#[source] io::Error),
    #[error("Cannot start the SPICE server")]
    Spice(#[source] crate::spice::SpiceError),
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
    let started = Instant::now();
    // First, before any thread exists, so that every thread inherits the blocked signals.
    let shutdown = ShutdownSignal::new().map_err(StartError::Signals)?;
    shutdown
        .trigger_on_termination_signals()
        .map_err(StartError::Signals)?;
    let spice_config = spice_config(&config.spice, started)?;
    let DisplayStack { producer, display } = DisplayStack::new()?;
    let result = serve_display(
        &config,
        spice_config,
        service,
        producer,
        &display,
        &shutdown,
    );
    shutdown.trigger();
    display.shutdown();
    result
}

/// Everything over a running display: the SPICE server, the VMM devices (or the demo) and the
/// watchdog, until shutdown.
fn serve_display(
    config: &Config,
    spice_config: SpiceConfig,
    service: ServiceEnv,
    producer: qxl::Producer,
    display: &DisplayHandle,
    shutdown: &ShutdownSignal,
) -> Result<(), StartError> {
    let notifier = service.notifier;
    let input = InputHandle::new(&InputConfig::default()).map_err(StartError::Input)?;
    follow_display_size(display, input.clone()).map_err(StartError::Thread)?;
    let current = CurrentGpu::default();
    let control: Arc<dyn DisplayControl> = match config.socket {
        Some(_) => Arc::new(current.clone()),
        None => Arc::new(FixedDisplay),
    };
    let spice_status = spice_service::describe(&spice_config);
    // Before the VMM sockets: a SPICE port in use fails the start before a VMM connects.
    let spice = SpiceService::start(
        spice_config,
        display.clone(),
        Arc::new(input.clone()),
        control,
        notifier.clone(),
    )?;
    let watchdog = match service.watchdog {
        Some(interval) => Some(
            systemd::start_watchdog(notifier.clone(), interval, shutdown.clone(), || true)
                .map_err(StartError::Watchdog)?,
        ),
        None => None,
    };
    let front = Front {
        input: &input,
        current: &current,
        spice: &spice,
        spice_status: &spice_status,
    };
    let result = serve_all(config, producer, &front, shutdown);
    notifier.stopping();
    shutdown.trigger();
    spice.stop();
    if let Some(watchdog) = watchdog {
        let _ = watchdog.join();
    }
    result
}

/// What the guest-facing side shares with the SPICE side.
struct Front<'a> {
    input: &'a InputHandle,
    current: &'a CurrentGpu,
    spice: &'a SpiceService,
    /// Where SPICE listens, for `STATUS=`.
    spice_status: &'a str,
}

fn describe(spec: &SocketSpec) -> String {
    match spec {
        SocketSpec::Path(path) => format!("socket {}", path.display()),
        SocketSpec::Fd(fd) => format!("socket fd {fd}"),
    }
}

fn listen(spec: &SocketSpec) -> Result<VhostSocket, StartError> {
    let socket = match spec {
        SocketSpec::Path(path) => VhostSocket::Path(path.clone()),
        SocketSpec::Fd(fd) => VhostSocket::from_inherited_fd(*fd)?,
    };
    Ok(socket.listen()?)
}

/// Everything that serves: the VMM devices (or the demo), each on its own thread, until
/// shutdown. READY=1 goes out once every socket listens (SPICE's already do).
fn serve_all(
    config: &Config,
    producer: qxl::Producer,
    front: &Front<'_>,
    shutdown: &ShutdownSignal,
) -> Result<(), StartError> {
    let Some(gpu_spec) = &config.socket else {
        return run_demo(config, producer, front, shutdown);
    };
    let gpu_socket = listen(gpu_spec)?;
    let input_socket = config.input_socket.as_ref().map(listen).transpose()?;
    let mut status = format!("VMM {}", describe(gpu_spec));
    if let Some(spec) = &config.input_socket {
        status += &format!(", input {}", describe(spec));
    }
    front
        .spice
        .ready(format!("{status}; {}", front.spice_status));

    let input_thread = match input_socket {
        Some(socket) => {
            let (input, stop) = (front.input.clone(), shutdown.clone());
            let thread = std::thread::Builder::new()
                .name("input-serve".into())
                .spawn(move || {
                    let result = serve_input(&input, socket, &stop);
                    // One device failing for good ends the daemon, as a start-up error would.
                    stop.trigger();
                    result
                })
                .map_err(StartError::Thread)?;
            Some(thread)
        }
        None => None,
    };
    let gpu_result = serve_gpu(
        gpu_config(config),
        Arc::new(Mutex::new(producer)),
        front.current,
        gpu_socket,
        shutdown,
    );
    shutdown.trigger();
    let input_result = match input_thread {
        Some(thread) => thread.join().unwrap_or_else(|_| {
            warn!("The input device thread panicked");
            Ok(())
        }),
        None => Ok(()),
    };
    gpu_result.and(input_result)
}

fn run_demo(
    config: &Config,
    producer: qxl::Producer,
    front: &Front<'_>,
    shutdown: &ShutdownSignal,
) -> Result<(), StartError> {
    let demo = Demo::start(producer, config.width, config.height).map_err(StartError::Demo)?;
    front
        .spice
        .ready(format!("Demo picture; {}", front.spice_status));
    shutdown.wait();
    let stopped = demo.stop();
    info!(frames = ?stopped.last_frame, "Demo stopped");
    if let Err(e) = stopped.result {
        warn!(error = %e, "Demo source had stopped early");
    }
    Ok(())
}

/// The virtio-gpu device's settings from the daemon's.
pub fn gpu_config(config: &Config) -> GpuConfig {
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
    gpu: GpuConfig,
    producer: Arc<Mutex<qxl::Producer>>,
    current: &CurrentGpu,
    socket: VhostSocket,
    shutdown: &ShutdownSignal,
) -> Result<(), StartError> {
    let make_backend = |notifier| {
        let sink = QxlSink::new(producer.clone());
        if let Err(e) = sink.reset() {
            warn!(error = %e, "Could not reset the QXL device for a new connection");
        }
        let backend = GpuBackend::new(gpu.clone(), sink, notifier).map_err(io::Error::from)?;
        current.set(backend.control());
        Ok(Arc::new(backend))
    };
    daemon::serve(socket, GPU_DEVICE_NAME, make_backend, shutdown)?;
    Ok(())
}

/// The resize path of whichever VMM connection is current: what the SPICE side asks for a new
/// layout through. It outlives connections; between them a request is dropped (the next guest
/// starts from the configured size).
#[derive(Clone, Default)]
pub struct CurrentGpu {
    control: Arc<Mutex<Option<GpuControl>>>,
}

impl CurrentGpu {
    fn set(&self, control: GpuControl) {
        if let Ok(mut slot) = self.control.lock() {
            *slot = Some(control);
        }
    }
}

impl DisplayControl for CurrentGpu {
    fn request_layout(&self, heads: &[HeadRequest]) {
        // Clone out of the lock: the request may wait on the frontend's ack.
        let control = self.control.lock().ok().and_then(|slot| slot.clone());
        match control {
            Some(control) => control.request_layout(heads),
            None => info!("Display resize requested with no VM connected: ignored"),
        }
    }
}

/// Serves virtio-input connections one after another. `handle` outlives them: it is what the
/// SPICE side types into, and each new connection (a rebooted guest) attaches a fresh device
/// to it.
pub fn serve_input(
    handle: &InputHandle,
    socket: VhostSocket,
    shutdown: &ShutdownSignal,
) -> Result<(), StartError> {
    daemon::serve_with(
        socket,
        INPUT_DEVICE_NAME,
        |notifier| {
            InputBackend::with_handle(handle.clone(), notifier)
                .map(Arc::new)
                .map_err(io::Error::from)
        },
        // Input arrives from SPICE tasks, not from guest kicks: the device's wake-up eventfd
        // must be in the connection's epoll loop.
        |backend, daemon| backend.register_wake(daemon).map_err(io::Error::from),
        shutdown,
    )?;
    Ok(())
}

/// Keeps the tablet's coordinate scale equal to the guest's current primary surface.
pub fn follow_display_size(display: &DisplayHandle, input: InputHandle) -> io::Result<()> {
    use tokio::sync::broadcast::error::RecvError;

    let mut events = display.subscribe();
    let display = display.clone();
    let resync = move |input: &InputHandle| {
        if let Some(primary) = display.surfaces().into_iter().find(|s| s.surface_id == 0) {
            input.set_display_size(primary.width, primary.height);
        }
    };
    resync(&input);
    std::thread::Builder::new()
        .name("input-scale".into())
        .spawn(move || loop {
            match events.blocking_recv() {
                Ok(display::DisplayEvent::SurfaceCreated(info)) if info.surface_id == 0 => {
                    input.set_display_size(info.width, info.height);
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => resync(&input),
                Err(RecvError::Closed) => return,
            }
        })?;
    Ok(())
}
