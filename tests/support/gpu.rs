//! The virtio-gpu side of the tests: the daemon's display stack served as `app::serve_gpu` serves
//! it ([`GpuDaemon`]), a guest driver issuing virtio-gpu commands through a [`TestVmm`]
//! ([`GpuDriver`]), and a guest framebuffer in scattered guest pages with the host's model of
//! what it holds ([`GuestFb`]).
//!
//! Request builders are in `gpu_requests.rs`, re-exported here.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use vhost_user_spice::app::{self, DisplayStack, StartError};
use vhost_user_spice::display::{DisplayHandle, SurfaceSnapshot};
use vhost_user_spice::virtio::daemon::{ShutdownSignal, VhostSocket};
use vhost_user_spice::virtio::gpu::protocol::{ctrl_type as t, FLAG_FENCE};
use vhost_user_spice::virtio::gpu::{GpuBackend, GpuConfig, GpuControl, QxlSink};
use vm_memory::{Bytes, GuestAddress};

pub use super::gpu_requests::*;
use super::vmm::{Flavor, TestVmm, VmmOptions};
use super::{wait_until, TestDaemon, TIMEOUT};

pub const CONTROL: usize = 0;
pub const CURSOR: usize = 1;
/// `VIRTIO_F_VERSION_1` | `VIRTIO_GPU_F_EDID` | `VIRTIO_RING_F_INDIRECT_DESC` |
/// `VIRTIO_RING_F_EVENT_IDX`: what Linux's virtio_gpu acks of what we offer.
pub const LINUX_FEATURES: u64 = (1 << 32) | (1 << 1) | (1 << 28) | (1 << 29);
/// `VIRTIO_GPU_F_EDID`.
pub const F_EDID: u64 = 1 << 1;
/// `VIRTIO_F_RING_RESET`, which QEMU's PCI layer adds by itself.
pub const F_RING_RESET: u64 = 1 << 40;
/// `VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM`: every Linux dumb buffer (rust-vmm.md §3.5).
pub const FORMAT_BGRX: u32 = 2;
pub const PAGE: u64 = 4096;
/// Writable bytes of an OK_NODATA answer: just the header.
pub const HDR: u32 = 24;
pub const DISPLAY_INFO: u32 = 408;
pub const EDID: u32 = 1056;
/// How long the display worker may take to show what a flush sent (generous: busy machine).
pub const SHOW_TIMEOUT: Duration = Duration::from_secs(10);

/// Queue sizes each VMM uses for the GPU (QEMU: fixed 64/16; cloud-hypervisor: command line).
pub fn queue_sizes(flavor: Flavor) -> [u16; 2] {
    match flavor {
        Flavor::Qemu => [64, 16],
        Flavor::CloudHypervisor => [256, 16],
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon side.

/// The display stack and the virtio-gpu served over a unix socket in a temporary directory.
pub struct GpuDaemon {
    pub display: DisplayHandle,
    pub path: PathBuf,
    server: Server,
    /// The GPU control of the connection served last (only with [`GpuDaemon::wired`]).
    control: Arc<Mutex<Option<GpuControl>>>,
    connections: Arc<AtomicUsize>,
    _dir: Option<tempfile::TempDir>,
}

enum Server {
    App {
        shutdown: ShutdownSignal,
        thread: Option<JoinHandle<Result<(), StartError>>>,
    },
    Test(Option<TestDaemon>),
}

impl GpuDaemon {
    /// `app::serve_gpu` itself on a thread, as `vhost-user-spice --socket-path` runs it.
    pub fn app(width: u32, height: u32, max_hostmem: u64) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory can be created");
        let path = dir.path().join("gpu.sock");
        let DisplayStack { producer, display } = DisplayStack::new().expect("the QXL device");
        let config = GpuConfig {
            width,
            height,
            max_hostmem,
            ..GpuConfig::default()
        };
        let shutdown = ShutdownSignal::new().expect("a shutdown signal");
        let signal = shutdown.clone();
        let socket = VhostSocket::Path(path.clone());
        let thread = std::thread::Builder::new()
            .name("serve-gpu".into())
            .spawn(move || {
                app::serve_gpu(
                    config,
                    Arc::new(Mutex::new(producer)),
                    &app::CurrentGpu::default(),
                    socket,
                    &signal,
                )
            })
            .expect("the daemon thread starts");
        wait_until(|| path.exists(), "the daemon socket to appear");
        GpuDaemon {
            display,
            path,
            server: Server::App {
                shutdown,
                thread: Some(thread),
            },
            control: Arc::default(),
            connections: Arc::default(),
            _dir: Some(dir),
        }
    }

    /// The same wiring as `app::serve_gpu` (a reset `QxlSink` over the shared producer, a
    /// `GpuBackend` per connection), keeping each connection's [`GpuControl`] for the test.
    pub fn wired(config: GpuConfig) -> Self {
        let DisplayStack { producer, display } = DisplayStack::new().expect("the QXL device");
        let producer = Arc::new(Mutex::new(producer));
        let control: Arc<Mutex<Option<GpuControl>>> = Arc::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let (slot, count) = (control.clone(), connections.clone());
        let daemon = TestDaemon::spawn(move |notifier| {
            let sink = QxlSink::new(producer.clone());
            sink.reset().map_err(std::io::Error::other)?;
            let backend = Arc::new(GpuBackend::new(config.clone(), sink, notifier)?);
            *slot.lock().unwrap() = Some(backend.control());
            count.fetch_add(1, Ordering::SeqCst);
            Ok(backend)
        });
        GpuDaemon {
            display,
            path: daemon.path.clone(),
            server: Server::Test(Some(daemon)),
            control,
            connections,
            _dir: None,
        }
    }

    pub fn control(&self) -> GpuControl {
        self.control
            .lock()
            .unwrap()
            .clone()
            .expect("a connection was served (GpuDaemon::wired only)")
    }

    /// Connections served so far (only counted by [`GpuDaemon::wired`]).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn connect(&self, flavor: Flavor) -> GpuDriver {
        GpuDriver::connect(&self.path, flavor)
    }

    /// Waits until the primary surface is `width` x `height` and holds exactly `pixels`.
    pub fn wait_primary(&self, width: u32, height: u32, pixels: &[u8]) {
        let shown = self.display.wait_until(SHOW_TIMEOUT, |d| {
            d.snapshot(0)
                .is_some_and(|s| same(&s, width, height, pixels))
        });
        if !shown {
            panic!(
                "{}",
                describe_mismatch(self.display.snapshot(0), width, height, pixels)
            );
        }
    }

    /// Waits until there is no primary surface (the QXL device was reset or it was destroyed).
    pub fn wait_no_primary(&self) {
        assert!(
            self.display
                .wait_until(SHOW_TIMEOUT, |d| d.snapshot(0).is_none()),
            "the primary surface is still there"
        );
    }

    /// Stops serving; the serve loop must return Ok.
    pub fn stop(mut self) {
        match &mut self.server {
            Server::App { shutdown, thread } => {
                shutdown.trigger();
                let thread = thread.take().expect("stopped once");
                wait_until(|| thread.is_finished(), "serve_gpu to return");
                thread
                    .join()
                    .expect("serve_gpu does not panic")
                    .expect("serve_gpu returns Ok");
            }
            Server::Test(daemon) => daemon
                .take()
                .expect("stopped once")
                .stop()
                .expect("serve returns Ok"),
        }
    }
}

impl Drop for GpuDaemon {
    fn drop(&mut self) {
        if let Server::App { shutdown, thread } = &mut self.server {
            shutdown.trigger();
            if let Some(thread) = thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// Whether `s` is `width` x `height` with the B, G, R bytes of `pixels`. The X byte of the
/// guest's B8G8R8X8 (SPICE's 32-bit xRGB) is padding that neither side defines: the display
/// side may set it (it does, to 0xff), so it is not compared.
fn same(s: &SurfaceSnapshot, width: u32, height: u32, pixels: &[u8]) -> bool {
    let row = width as usize * 4;
    s.info.width == width
        && s.info.height == height
        && (0..height as usize).all(|y| {
            let got = s.pixels.get(y * s.stride..y * s.stride + row);
            let want = pixels.get(y * row..(y + 1) * row);
            matches!((got, want), (Some(g), Some(w)) if bgr_equal(g, w))
        })
}

/// Equal in every B, G and R byte (every byte but each fourth).
pub fn bgr_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.chunks_exact(4)
            .zip(b.chunks_exact(4))
            .all(|(p, q)| p[..3] == q[..3])
}

/// Size, count of differing pixels and the first one, for a failure message.
pub fn describe_mismatch(
    snapshot: Option<SurfaceSnapshot>,
    width: u32,
    height: u32,
    pixels: &[u8],
) -> String {
    let Some(s) = snapshot else {
        return format!("no primary surface; expected {width}x{height}");
    };
    if (s.info.width, s.info.height) != (width, height) {
        return format!(
            "primary is {}x{}; expected {width}x{height}",
            s.info.width, s.info.height
        );
    }
    let mut count = 0;
    let mut first = None;
    for y in 0..height as usize {
        for x in 0..width as usize {
            let got = s.pixels.get(y * s.stride + x * 4..y * s.stride + x * 4 + 4);
            let want = pixels.get((y * width as usize + x) * 4..(y * width as usize + x) * 4 + 4);
            let equal = matches!((got, want), (Some(g), Some(w)) if bgr_equal(g, w));
            if !equal {
                count += 1;
                first.get_or_insert((x, y, got.map(<[u8]>::to_vec), want.map(<[u8]>::to_vec)));
            }
        }
    }
    format!("{count} pixels differ; first (x, y, got, want): {first:?}")
}

// ---------------------------------------------------------------------------------------------
// The guest driver.

/// A guest virtio_gpu driver over a [`TestVmm`].
pub struct GpuDriver {
    pub vmm: TestVmm,
    next_fence: u64,
}

impl GpuDriver {
    pub fn new(vmm: TestVmm) -> Self {
        GpuDriver { vmm, next_fence: 1 }
    }

    /// A VMM of `flavor` with the GPU's queue sizes and Linux's feature choice.
    pub fn connect(socket: &Path, flavor: Flavor) -> Self {
        Self::new(TestVmm::connect_with(socket, Self::options(flavor)))
    }

    pub fn options(flavor: Flavor) -> VmmOptions {
        VmmOptions::new(flavor, &queue_sizes(flavor), LINUX_FEATURES)
    }

    /// One control-queue chain: `readable` parts (one descriptor each) and a `resp_len`-byte
    /// writable buffer. Returns the response bytes the device wrote (its used length).
    pub fn ctrl(&mut self, readable: &[&[u8]], resp_len: u32) -> Vec<u8> {
        let (len, writable) = self.vmm.request(CONTROL, readable, &[resp_len]);
        let mut resp = writable.into_iter().next().expect("one writable buffer");
        assert!(len <= resp_len, "used length {len} > buffer {resp_len}");
        resp.truncate(len as usize);
        resp
    }

    /// The response type of a request answered with a header.
    pub fn status(&mut self, readable: &[&[u8]]) -> u32 {
        let resp = self.ctrl(readable, HDR);
        assert_eq!(resp.len(), HDR as usize, "an answer is one 24-byte header");
        resp_type(&resp)
    }

    /// Asserts OK_NODATA.
    pub fn ok(&mut self, readable: &[&[u8]]) {
        assert_eq!(self.status(readable), t::RESP_OK_NODATA, "request refused");
    }

    /// Sends `req` with FENCE set and asserts OK_NODATA carrying the same fence back.
    pub fn fenced_ok(&mut self, req: &[u8]) {
        let fence = self.next_fence;
        self.next_fence += 1;
        let resp = self.ctrl(&[&fenced(req.to_vec(), fence)], HDR);
        assert_eq!(
            resp_type(&resp),
            t::RESP_OK_NODATA,
            "fenced request refused"
        );
        assert_eq!(
            u32_at(&resp, 4) & FLAG_FENCE,
            FLAG_FENCE,
            "FENCE flag echoed"
        );
        assert_eq!(u64_at(&resp, 8), fence, "fence id echoed");
    }

    /// A cursor-queue command (no response buffer, used length 0).
    pub fn cursor(&mut self, req: &[u8]) {
        let (len, _) = self.vmm.request(CURSOR, &[req], &[]);
        assert_eq!(len, 0, "cursor commands have no answer");
    }

    /// GET_DISPLAY_INFO: scanout 0's (width, height, enabled).
    pub fn display_info(&mut self) -> (u32, u32, bool) {
        let resp = self.ctrl(&[&hdr(t::GET_DISPLAY_INFO)], DISPLAY_INFO);
        assert_eq!(resp.len(), DISPLAY_INFO as usize);
        assert_eq!(resp_type(&resp), t::RESP_OK_DISPLAY_INFO);
        // pmodes[0] = {rect x, y, width, height; enabled; flags} after the header.
        (u32_at(&resp, 32), u32_at(&resp, 36), u32_at(&resp, 40) != 0)
    }

    /// GET_EDID of scanout 0: the EDID bytes (`resp_edid.size` of them).
    pub fn edid(&mut self) -> Vec<u8> {
        let mut req = hdr(t::GET_EDID);
        le(&mut req, &[0, 0]);
        let resp = self.ctrl(&[&req], EDID);
        assert_eq!(resp_type(&resp), t::RESP_OK_EDID);
        let size = u32_at(&resp, 24) as usize;
        resp[32..32 + size].to_vec()
    }

    /// The driver's probe reads and the display-mode queries (rust-vmm.md §3.6, steps 1-4):
    /// num_scanouts, num_capsets, GET_EDID when negotiated, GET_DISPLAY_INFO. Returns the mode.
    pub fn probe(&mut self) -> (u32, u32) {
        assert_eq!(
            self.vmm.get_config(8, 4),
            1u32.to_le_bytes(),
            "num_scanouts"
        );
        assert_eq!(self.vmm.get_config(12, 4), [0; 4], "num_capsets (2D: none)");
        let (width, height, enabled) = self.display_info();
        assert!(enabled, "scanout 0 is connected");
        if self.vmm.acked_features() & F_EDID != 0 {
            assert_eq!(edid_mode(&self.edid()), (width, height), "EDID matches");
        }
        (width, height)
    }

    /// What fbdev emulation does with a mode (§3.6 step 5): a format-2 resource, its scattered
    /// backing, SET_SCANOUT, a full transfer and a fenced flush.
    pub fn bring_up(&mut self, fb: &GuestFb) {
        self.ok(&[&create_2d(fb.id, FORMAT_BGRX, fb.width, fb.height)]);
        let (req, entries) = attach(fb.id, &fb.entries);
        self.ok(&[&req, &entries]);
        self.ok(&[&set_scanout(0, fb.id, fb.rect())]);
        self.ok(&[&transfer(fb.id, fb.rect(), 0)]);
        self.fenced_ok(&flush(fb.id, fb.rect()));
    }

    /// A damage update: transfer `r` (at Linux's offset `y * pitch + x * 4`), fenced flush.
    pub fn update(&mut self, fb: &GuestFb, r: [u32; 4]) {
        let offset = u64::from(r[1]) * u64::from(fb.stride()) + u64::from(r[0]) * 4;
        self.ok(&[&transfer(fb.id, r, offset)]);
        self.fenced_ok(&flush(fb.id, r));
    }
}

/// (width, height) of the first detailed timing descriptor (EDID 1.4 §3.10.2, bytes 54..72).
pub fn edid_mode(edid: &[u8]) -> (u32, u32) {
    assert!(edid.len() >= 128, "an EDID base block");
    assert_eq!(
        &edid[..8],
        &[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0],
        "EDID header"
    );
    let sum: u32 = edid[..128].iter().map(|&b| u32::from(b)).sum();
    assert_eq!(sum % 256, 0, "EDID checksum");
    let d = &edid[54..72];
    let width = u32::from(d[2]) | (u32::from(d[4] >> 4) << 8);
    let height = u32::from(d[5]) | (u32::from(d[7] >> 4) << 8);
    (width, height)
}

// ---------------------------------------------------------------------------------------------
// A guest framebuffer.

/// A `width` x `height` B8G8R8X8 framebuffer in guest RAM, spread over extents in reverse order
/// with holes between them (as shmem pages are), and the bytes the guest wrote, by row.
pub struct GuestFb {
    pub id: u32,
    pub width: u32,
    pub height: u32,
    /// `(guest-physical address, length)` per ATTACH_BACKING entry, in framebuffer order.
    pub entries: Vec<(u64, u32)>,
    /// What the guest wrote, `width * 4` bytes per row.
    pub pixels: Vec<u8>,
}

impl GuestFb {
    /// Allocates the backing in `vmm`'s RAM. Extents are 1, 2 or 3 pages, with one odd-sized
    /// one so that pixels straddle entries.
    pub fn new(vmm: &mut TestVmm, id: u32, width: u32, height: u32) -> Self {
        let size = u64::from(width) * u64::from(height) * 4;
        let mut lengths = Vec::new();
        let mut left = size;
        for i in 0.. {
            if left == 0 {
                break;
            }
            let want = match i % 4 {
                0 => PAGE,
                1 => 2 * PAGE,
                2 => PAGE + 6,
                _ => 3 * PAGE - 6,
            };
            let len = want.min(left);
            lengths.push(len);
            left -= len;
        }
        // Allocated last-extent-first, a page of hole after each.
        let mut entries = vec![(0, 0); lengths.len()];
        for (i, &len) in lengths.iter().enumerate().rev() {
            let gpa = vmm.alloc(usize::try_from(len + PAGE).expect("small"));
            entries[i] = (gpa, u32::try_from(len).expect("small"));
        }
        let fb = GuestFb {
            id,
            width,
            height,
            entries,
            pixels: vec![0; usize::try_from(size).expect("small")],
        };
        // Guest pages start out dirty: the device must show only what was transferred.
        let mut junk = 0u8;
        for &(gpa, len) in &fb.entries {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    junk = junk.wrapping_add(97);
                    junk
                })
                .collect();
            vmm.mem()
                .write_slice(&bytes, GuestAddress(gpa))
                .expect("in RAM");
        }
        fb
    }

    pub fn stride(&self) -> u32 {
        self.width * 4
    }

    pub fn rect(&self) -> [u32; 4] {
        [0, 0, self.width, self.height]
    }

    /// The guest draws `pixel(x, y)` (bytes B, G, R, X) over `r` = [x, y, w, h]: into its
    /// backing pages and into the model.
    pub fn draw(&mut self, vmm: &TestVmm, r: [u32; 4], pixel: impl Fn(u32, u32) -> [u8; 4]) {
        let [x0, y0, w, h] = r;
        for y in y0..y0 + h {
            let row: Vec<u8> = (x0..x0 + w).flat_map(|x| pixel(x, y)).collect();
            let at = (y as usize * self.width as usize + x0 as usize) * 4;
            self.pixels[at..at + row.len()].copy_from_slice(&row);
            self.write_backing(vmm, at as u64, &row);
        }
    }

    /// Writes `bytes` at byte `offset` of the framebuffer, across entries.
    fn write_backing(&self, vmm: &TestVmm, mut offset: u64, mut bytes: &[u8]) {
        let mut start = 0u64;
        for &(gpa, len) in &self.entries {
            let end = start + u64::from(len);
            if offset < end && !bytes.is_empty() {
                let n = usize::try_from((end - offset).min(bytes.len() as u64)).expect("small");
                vmm.mem()
                    .write_slice(&bytes[..n], GuestAddress(gpa + (offset - start)))
                    .expect("in RAM");
                bytes = &bytes[n..];
                offset += n as u64;
            }
            start = end;
        }
        assert!(bytes.is_empty(), "write past the framebuffer");
    }
}

/// A pixel distinct per position and per `frame`, X byte included.
pub fn pixel(frame: u8) -> impl Fn(u32, u32) -> [u8; 4] {
    move |x, y| {
        [
            x as u8 ^ frame,
            y as u8,
            (x >> 8) as u8 ^ (y >> 8) as u8 ^ frame.rotate_left(3),
            frame,
        ]
    }
}

/// Waits (bounded) for `f` to hold on the display.
pub fn wait_display(display: &DisplayHandle, what: &str, f: impl Fn(&DisplayHandle) -> bool) {
    assert!(
        display.wait_until(TIMEOUT, f),
        "timed out waiting for {what}"
    );
}
