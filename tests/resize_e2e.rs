//! Issue 3's bar, end to end: a real spice-gtk client's resize request (VD_AGENT_MONITORS_CONFIG
//! to the server's pseudo-agent) goes through `app::CurrentGpu` to the virtio-gpu device that
//! `app::serve_gpu` serves, and the VMM sees a config-change message, `events_read` bit 0
//! (VIRTIO_GPU_EVENT_DISPLAY) and the new size in GET_DISPLAY_INFO.

mod spice_support;
mod support;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::json;
use spice_support::{have_python_client, PyClient, RecordingSink};
use support::gpu::{pixel, GpuDriver, GuestFb};
use support::{Flavor, TIMEOUT};
use vhost_user_spice::app::{self, CurrentGpu, DisplayStack};
use vhost_user_spice::guest::DisplayControl;
use vhost_user_spice::spice::ticket::Ticketing;
use vhost_user_spice::spice::{ListenerSpec, SpiceConfig, SpiceServer};
use vhost_user_spice::virtio::daemon::{ShutdownSignal, VhostSocket};
use vhost_user_spice::virtio::gpu::GpuConfig;

const W: u32 = 800;
const H: u32 = 600;

/// `serve_gpu` on a thread, stopped (and joined) on drop so a failing test leaves nothing behind.
struct ServeGpu {
    shutdown: ShutdownSignal,
    thread: Option<std::thread::JoinHandle<Result<(), app::StartError>>>,
}

impl ServeGpu {
    fn stop(mut self) {
        self.shutdown.trigger();
        let thread = self.thread.take().expect("stopped once");
        thread
            .join()
            .expect("serve_gpu does not panic")
            .expect("serve_gpu returns Ok");
    }
}

impl Drop for ServeGpu {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn spice_gtk_resize_reaches_the_vmm_as_config_change_and_display_info() {
    if !have_python_client() {
        return;
    }
    // The daemon's GPU side, as `vhost-user-spice --socket-path` wires it.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("gpu.sock");
    let DisplayStack { producer, display } = DisplayStack::new().expect("the QXL device");
    let current = CurrentGpu::default();
    let shutdown = ShutdownSignal::new().expect("a shutdown signal");
    let serve = {
        let (current, signal, socket) = (
            current.clone(),
            shutdown.clone(),
            VhostSocket::Path(path.clone()),
        );
        let config = GpuConfig {
            width: W,
            height: H,
            ..GpuConfig::default()
        };
        ServeGpu {
            shutdown,
            thread: Some(
                std::thread::Builder::new()
                    .name("serve-gpu".into())
                    .spawn(move || {
                        app::serve_gpu(
                            config,
                            Arc::new(Mutex::new(producer)),
                            &current,
                            socket,
                            &signal,
                        )
                    })
                    .expect("the serve-gpu thread starts"),
            ),
        }
    };
    let deadline = Instant::now() + TIMEOUT;
    while !path.exists() {
        assert!(Instant::now() < deadline, "the GPU socket never appeared");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    // The guest: probe, then a primary so the client gets a display.
    let mut gpu = GpuDriver::connect(&path, Flavor::CloudHypervisor);
    assert_eq!(gpu.probe(), (W, H), "the configured size first");
    let mut fb = GuestFb::new(&mut gpu.vmm, 1, W, H);
    fb.draw(&gpu.vmm, fb.rect(), pixel(1));
    gpu.bring_up(&fb);

    // The SPICE server over the same display, resizing through the current VMM connection.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let control: Arc<dyn DisplayControl> = Arc::new(current.clone());
    let (server, client, sent) = rt.block_on(async {
        let server = SpiceServer::start(
            SpiceConfig {
                listeners: vec![ListenerSpec::tcp(([127, 0, 0, 1], 0).into())],
                ..SpiceConfig::new(Ticketing::Disabled)
            },
            display,
            Arc::new(RecordingSink::default()),
            control,
        )
        .await
        .expect("the SPICE server starts");
        let port = server.local_addr().expect("a TCP listener").port();
        let mut c = PyClient::connect(port, None).await;
        let primary = c.wait_event("primary").await;
        assert_eq!(
            (&primary["width"], &primary["height"]),
            (&json!(W), &json!(H)),
            "the client sees the guest's primary"
        );
        c.wait_for("agent", |e| e["event"] == "agent" && e["connected"] == true)
            .await;
        let sent = Instant::now();
        c.send(json!({"cmd": "resize", "width": 1024, "height": 768}))
            .await;
        c.wait_for("resize sent", |e| {
            e["event"] == "sent" && e["cmd"] == "resize"
        })
        .await;
        (server, c, sent)
    });

    // The VMM, on this thread while the runtime serves the client: the backend's config-change
    // message (acked, so the notifier waiting on REPLY_ACK returns), then what the guest does
    // on the config interrupt.
    assert!(
        gpu.vmm.wait_config_change(TIMEOUT),
        "config-change message on the backend channel; client events: {:?}",
        client.events
    );
    eprintln!(
        "client resize -> VMM config change within {:?}",
        sent.elapsed()
    );
    assert_eq!(gpu.vmm.get_config(0, 4), 1u32.to_le_bytes(), "events_read");
    assert_eq!(
        gpu.display_info(),
        (1024, 768, true),
        "GET_DISPLAY_INFO answers the client's size (within 32..=8192, unclamped)"
    );
    gpu.vmm.set_config(4, &1u32.to_le_bytes());
    assert_eq!(gpu.vmm.get_config(0, 4), [0; 4], "events_clear cleared it");

    rt.block_on(async {
        client.kill().await;
        server.shutdown().await;
    });
    gpu.vmm.disconnect();
    serve.stop();
}
