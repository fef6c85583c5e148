//! The daemon's whole stack in-process, wired with the public `app` pieces as the binary wires
//! them: the QXL display stack, `app::serve_gpu` and `app::serve_input` on their own threads
//! (one vhost-user socket each), the tablet following the primary surface's size, and the SPICE
//! server on a tokio runtime over the same display and input handle.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use vhost_user_spice::app::{self, CurrentGpu, DisplayStack, StartError};
use vhost_user_spice::display::DisplayHandle;
use vhost_user_spice::guest::{DisplayControl, InputSink};
use vhost_user_spice::spice::ticket::Ticketing;
use vhost_user_spice::spice::{SpiceConfig, SpiceServer};
use vhost_user_spice::virtio::daemon::{ShutdownSignal, VhostSocket};
use vhost_user_spice::virtio::gpu::GpuConfig;
use vhost_user_spice::virtio::input::{InputConfig, InputHandle};

use super::wait_for_socket;

/// The running stack. Drop the [`super::Qemu`] first (declare it after the stack): dropping the
/// stack stops the SPICE server, then the device threads, then the display worker.
pub struct SpiceStack {
    pub display: DisplayHandle,
    pub input: InputHandle,
    pub gpu_socket: PathBuf,
    pub input_socket: PathBuf,
    /// The SPICE server's TCP port on 127.0.0.1.
    pub port: u16,
    pub runtime: tokio::runtime::Runtime,
    server: Option<SpiceServer>,
    shutdown: ShutdownSignal,
    threads: Vec<JoinHandle<Result<(), StartError>>>,
    _dir: tempfile::TempDir,
}

impl SpiceStack {
    /// Starts everything with a `width`×`height` virtio-gpu display and the given password
    /// policy; returns once both vhost-user sockets listen.
    pub fn start(width: u32, height: u32, ticketing: Ticketing) -> SpiceStack {
        init_logs();
        let dir = tempfile::Builder::new()
            .prefix("vus-stack-")
            .tempdir()
            .expect("a temporary directory");
        let gpu_socket = dir.path().join("gpu.sock");
        let input_socket = dir.path().join("input.sock");
        let shutdown = ShutdownSignal::new().expect("a shutdown signal");

        let DisplayStack { producer, display } = DisplayStack::new().expect("the QXL device");
        let current = CurrentGpu::default();
        let gpu = GpuConfig {
            width,
            height,
            ..GpuConfig::default()
        };
        let gpu_thread = {
            let (current, socket, stop) = (
                current.clone(),
                VhostSocket::Path(gpu_socket.clone()),
                shutdown.clone(),
            );
            let producer = Arc::new(Mutex::new(producer));
            std::thread::Builder::new()
                .name("serve-gpu".into())
                .spawn(move || app::serve_gpu(gpu, producer, &current, socket, &stop))
                .expect("the GPU thread starts")
        };

        let input = InputHandle::new(&InputConfig::default()).expect("the input device");
        app::follow_display_size(&display, input.clone()).expect("the input-scale thread");
        let input_thread = {
            let (input, socket, stop) = (
                input.clone(),
                VhostSocket::Path(input_socket.clone()),
                shutdown.clone(),
            );
            std::thread::Builder::new()
                .name("serve-input".into())
                .spawn(move || app::serve_input(&input, socket, &stop))
                .expect("the input thread starts")
        };

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let server = runtime
            .block_on(SpiceServer::start(
                SpiceConfig {
                    listeners: vec![vhost_user_spice::spice::ListenerSpec::tcp(
                        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                    )],
                    ..SpiceConfig::new(ticketing)
                },
                display.clone(),
                Arc::new(input.clone()) as Arc<dyn InputSink>,
                Arc::new(current) as Arc<dyn DisplayControl>,
            ))
            .expect("the SPICE server starts");
        let port = server.local_addr().expect("a TCP listener").port();

        let stack = SpiceStack {
            display,
            input,
            gpu_socket,
            input_socket,
            port,
            runtime,
            server: Some(server),
            shutdown,
            threads: vec![gpu_thread, input_thread],
            _dir: dir,
        };
        for sock in [&stack.gpu_socket, &stack.input_socket] {
            wait_for_socket(sock, Duration::from_secs(10)).expect("the device sockets listen");
        }
        stack
    }
}

impl Drop for SpiceStack {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown());
        }
        self.shutdown.trigger();
        for thread in self.threads.drain(..) {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("stack: a device thread failed: {e}"),
                Err(_) => eprintln!("stack: a device thread panicked"),
            }
        }
        self.display.shutdown();
    }
}

/// The daemon's log in the test's output (`RUST_LOG` overrides the default level).
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "vhost_user_spice=info".into()),
        )
        .with_test_writer()
        .try_init();
}
