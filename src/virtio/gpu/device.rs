//! The virtio-gpu 2D device model: commands in, responses and display-sink calls out.
//!
//! No vhost types here: the backend hands over each chain's readable bytes (any `io::Read`),
//! the room in its writable part and the guest memory, and writes back what
//! [`GpuDevice::process_control`] returns. Semantics follow QEMU's `hw/display/virtio-gpu.c`.

use std::error::Error as _;
use std::io::Read;
use std::mem::{discriminant, Discriminant};
use std::time::Instant;

use tracing::warn;
use vm_memory::GuestMemory;

use super::edid;
use super::error::GpuError;
use super::protocol::{
    ctrl_type, Command, CtrlHdr, CursorCmd, DisplayOne, Rect, Response, MAX_SCANOUTS,
};
use super::resources::{Resources, DEFAULT_MAX_HOSTMEM};
use super::sink::{DisplaySink, SinkRect};
use crate::virtio::ratelimit::RateLimiter;

/// `VIRTIO_GPU_EVENT_DISPLAY`: bit 0 of `events_read`, "display configuration changed".
pub const EVENT_DISPLAY: u32 = 1 << 0;
/// Size of `virtio_gpu_config`: events_read, events_clear, num_scanouts, num_capsets.
pub const CONFIG_SIZE: usize = 16;
/// Smallest and largest mode Linux accepts (`virtgpu_display.c`: XRES_MIN/MAX, YRES_MIN/MAX).
pub const MIN_DISPLAY_SIZE: u32 = 32;
pub const MAX_DISPLAY_SIZE: u32 = 8192;
/// QEMU's `virtio_gpu_do_set_scanout` refuses scanout rects narrower or lower than this.
pub const MIN_SCANOUT_SIZE: u32 = 16;
/// Largest cursor image passed on. Linux uses 64x64; SPICE clients handle a few hundred.
pub const MAX_CURSOR_SIZE: u32 = 256;

/// Settings of one virtio-gpu device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuConfig {
    /// Scanouts offered to the guest (1..=16); only scanout 0 reaches the display sink.
    pub num_scanouts: u32,
    /// Initial size of scanout 0 in display info and EDID.
    pub width: u32,
    pub height: u32,
    /// Budget for all resource pixels together; over it, creation fails with OUT_OF_MEMORY.
    pub max_hostmem: u64,
    /// Offer `VIRTIO_GPU_F_EDID` and answer GET_EDID.
    pub edid: bool,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            num_scanouts: 1,
            width: 1280,
            height: 800,
            max_hostmem: DEFAULT_MAX_HOSTMEM,
            edid: true,
        }
    }
}

impl GpuConfig {
    fn validate(&self) -> Result<(), GpuError> {
        if self.num_scanouts == 0 || self.num_scanouts as usize > MAX_SCANOUTS {
            return Err(GpuError::InvalidConfig("num_scanouts must be 1..=16"));
        }
        let size_ok = |v: u32| (MIN_DISPLAY_SIZE..=MAX_DISPLAY_SIZE).contains(&v);
        if !size_ok(self.width) || !size_ok(self.height) {
            return Err(GpuError::InvalidConfig(
                "width and height must be 32..=8192",
            ));
        }
        Ok(())
    }
}

/// What a scanout shows: `resource_id` 0 means disabled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Scanout {
    resource_id: u32,
    rect: Rect,
}

/// The device state of one connection. Dropping it frees everything; a new connection
/// builds a new one.
pub struct GpuDevice<S: DisplaySink> {
    resources: Resources,
    scanouts: Vec<Scanout>,
    /// What GET_DISPLAY_INFO reports, one entry per scanout.
    heads: Vec<DisplayOne>,
    edid: bool,
    /// The configured size, described by the EDID of scanouts that are disabled (QEMU does
    /// the same), so a later hot-plug finds a sensible preferred mode.
    default_size: (u32, u32),
    events_read: u32,
    /// The size last given to `set_primary`, `None` while scanout 0 is disabled.
    primary: Option<(u32, u32)>,
    sink: S,
    warn: RateLimiter<Discriminant<GpuError>>,
}

impl<S: DisplaySink> GpuDevice<S> {
    pub fn new(config: &GpuConfig, sink: S) -> Result<Self, GpuError> {
        config.validate()?;
        let count = config.num_scanouts as usize;
        let mut heads = vec![DisplayOne::default(); count];
        if let Some(head) = heads.first_mut() {
            *head = enabled_head(config.width, config.height);
        }
        Ok(Self {
            resources: Resources::new(config.max_hostmem),
            scanouts: vec![Scanout::default(); count],
            heads,
            edid: config.edid,
            default_size: (config.width, config.height),
            events_read: 0,
            primary: None,
            sink,
            warn: RateLimiter::default(),
        })
    }

    /// Handles one control-queue request. `capacity` is the size of the chain's writable
    /// part; the returned bytes (the encoded response) never exceed it, and are empty when
    /// not even an error header fits.
    pub fn process_control<R, M>(&mut self, request: &mut R, capacity: usize, mem: &M) -> Vec<u8>
    where
        R: Read,
        M: GuestMemory + ?Sized,
    {
        let (hdr, result) = match CtrlHdr::decode(request) {
            Ok(hdr) => (hdr, self.decode_and_handle(&hdr, request, capacity, mem)),
            Err(e) => (CtrlHdr::default(), Err(e.into())),
        };
        let response = result.unwrap_or_else(|e| {
            self.log_rejected(&e);
            Response::Err(e.response())
        });
        let mut out = Vec::new();
        response.encode(&hdr, &mut out);
        if out.len() > capacity {
            // Only an error header can get here (the command's own answer was checked
            // against `capacity` before it ran); with no room for it the guest gets nothing.
            out.clear();
        }
        out
    }

    fn decode_and_handle<R, M>(
        &mut self,
        hdr: &CtrlHdr,
        request: &mut R,
        capacity: usize,
        mem: &M,
    ) -> Result<Response, GpuError>
    where
        R: Read,
        M: GuestMemory + ?Sized,
    {
        let cmd = Command::decode(hdr.ctrl_type, request)?;
        // Validate the whole chain before acting on it: a command whose answer cannot be
        // delivered is not executed.
        let need = Response::size_for(&cmd);
        if capacity < need {
            return Err(GpuError::ResponseBufferTooSmall {
                need,
                have: capacity,
            });
        }
        self.handle(cmd, mem)
    }

    /// Handles one cursor-queue request (no response; QEMU's `virtio_gpu_handle_cursor`).
    pub fn process_cursor(&mut self, request: &mut impl Read) {
        let result = CtrlHdr::decode(request)
            .and_then(|hdr| Command::decode(hdr.ctrl_type, request).map(|cmd| (hdr, cmd)))
            .map_err(GpuError::from)
            .and_then(|(hdr, cmd)| match cmd {
                Command::UpdateCursor(c) => self.update_cursor(&c),
                Command::MoveCursor(c) => self.move_cursor(&c),
                _ => Err(GpuError::UnsupportedCommand {
                    ctrl_type: hdr.ctrl_type,
                }),
            });
        if let Err(e) = result {
            self.log_rejected(&e);
        }
    }

    /// One control command.
    pub fn handle<M: GuestMemory + ?Sized>(
        &mut self,
        cmd: Command,
        mem: &M,
    ) -> Result<Response, GpuError> {
        match cmd {
            Command::GetDisplayInfo => return Ok(Response::OkDisplayInfo(self.heads.clone())),
            Command::ResourceCreate2d {
                resource_id,
                format,
                width,
                height,
            } => self.resources.create(resource_id, format, width, height)?,
            Command::ResourceUnref { resource_id } => self.unref(resource_id)?,
            Command::SetScanout {
                rect,
                scanout_id,
                resource_id,
            } => self.set_scanout(scanout_id, resource_id, rect)?,
            Command::ResourceFlush { rect, resource_id } => self.flush(resource_id, rect)?,
            Command::TransferToHost2d {
                rect,
                offset,
                resource_id,
            } => self
                .resources
                .transfer_to_host(resource_id, &rect, offset, mem)?,
            Command::ResourceAttachBacking {
                resource_id,
                entries,
            } => self.resources.attach_backing(resource_id, entries, mem)?,
            Command::ResourceDetachBacking { resource_id } => {
                self.resources.detach_backing(resource_id)?
            }
            Command::GetEdid { scanout } => return self.edid(scanout),
            Command::UpdateCursor(_) => {
                return Err(GpuError::UnsupportedCommand {
                    ctrl_type: ctrl_type::UPDATE_CURSOR,
                })
            }
            Command::MoveCursor(_) => {
                return Err(GpuError::UnsupportedCommand {
                    ctrl_type: ctrl_type::MOVE_CURSOR,
                })
            }
            Command::Unsupported { ctrl_type } => {
                return Err(GpuError::UnsupportedCommand { ctrl_type })
            }
        }
        Ok(Response::OkNoData)
    }

    fn unref(&mut self, resource_id: u32) -> Result<(), GpuError> {
        self.resources.get(resource_id)?;
        // QEMU's `virtio_gpu_resource_destroy`: scanouts showing it are disabled first.
        let mut sink_result = Ok(());
        for i in 0..self.scanouts.len() {
            if self
                .scanouts
                .get(i)
                .is_some_and(|s| s.resource_id == resource_id)
            {
                let r = self.disable_scanout(i);
                sink_result = sink_result.and(r);
            }
        }
        self.resources.unref(resource_id)?;
        sink_result
    }

    fn disable_scanout(&mut self, index: usize) -> Result<(), GpuError> {
        let Some(scanout) = self.scanouts.get_mut(index) else {
            return Ok(());
        };
        let was_enabled = scanout.resource_id != 0;
        *scanout = Scanout::default();
        if index == 0 && was_enabled {
            self.primary = None;
            self.sink.disable_primary()?;
        }
        Ok(())
    }

    fn set_scanout(
        &mut self,
        scanout_id: u32,
        resource_id: u32,
        rect: Rect,
    ) -> Result<(), GpuError> {
        let count = self.scanouts.len();
        let index = scanout_id as usize;
        if index >= count {
            return Err(GpuError::InvalidScanout {
                id: scanout_id,
                count: count as u32,
            });
        }
        if resource_id == 0 {
            return self.disable_scanout(index);
        }
        self.resources
            .get_with_backing(resource_id)?
            .check_rect(&rect)?;
        if rect.width < MIN_SCANOUT_SIZE || rect.height < MIN_SCANOUT_SIZE {
            return Err(GpuError::ScanoutTooSmall {
                rect,
                min: MIN_SCANOUT_SIZE,
            });
        }
        if let Some(scanout) = self.scanouts.get_mut(index) {
            *scanout = Scanout { resource_id, rect };
        }
        if index != 0 {
            return Ok(());
        }
        let size = (rect.width, rect.height);
        if self.primary != Some(size) {
            // Recorded only once the sink has it, so a failed attempt is retried next time.
            self.sink.set_primary(rect.width, rect.height)?;
            self.primary = Some(size);
        }
        let res = self.resources.get(resource_id)?;
        if let Some(pixels) = res.rect_pixels(&rect) {
            let whole = SinkRect {
                x: 0,
                y: 0,
                width: rect.width,
                height: rect.height,
            };
            self.sink.update(whole, pixels, res.stride())?;
        }
        Ok(())
    }

    fn flush(&mut self, resource_id: u32, rect: Rect) -> Result<(), GpuError> {
        let res = self.resources.get(resource_id)?;
        res.check_rect(&rect)?;
        // Only scanout 0 feeds the sink; other scanouts need no work for a flush.
        let Some(scanout) = self
            .scanouts
            .first()
            .filter(|s| s.resource_id == resource_id)
        else {
            return Ok(());
        };
        let Some(visible) = rect.intersect(&scanout.rect) else {
            return Ok(());
        };
        let Some(pixels) = res.rect_pixels(&visible) else {
            return Ok(());
        };
        let target = SinkRect {
            x: visible.x - scanout.rect.x,
            y: visible.y - scanout.rect.y,
            width: visible.width,
            height: visible.height,
        };
        self.sink.update(target, pixels, res.stride())?;
        Ok(())
    }

    fn edid(&self, scanout: u32) -> Result<Response, GpuError> {
        let count = self.heads.len() as u32;
        let head = self
            .heads
            .get(scanout as usize)
            .ok_or(GpuError::EdidScanoutOutOfRange { id: scanout, count })?;
        let (width, height) = if head.enabled {
            (head.rect.width, head.rect.height)
        } else {
            self.default_size
        };
        if !self.edid {
            return Err(GpuError::EdidUnavailable { width, height });
        }
        let block =
            edid::generate(width, height).ok_or(GpuError::EdidUnavailable { width, height })?;
        Ok(Response::OkEdid(block.to_vec()))
    }

    fn update_cursor(&mut self, c: &CursorCmd) -> Result<(), GpuError> {
        if !self.cursor_on_primary(c.pos.scanout_id)? {
            return Ok(());
        }
        if c.resource_id == 0 {
            self.sink.cursor_hide()?;
            return Ok(());
        }
        let res = self.resources.get(c.resource_id)?;
        if res.width > MAX_CURSOR_SIZE || res.height > MAX_CURSOR_SIZE {
            return Err(GpuError::CursorTooLarge {
                width: res.width,
                height: res.height,
            });
        }
        // Linux fills cursor resources with ARGB under format 2 (B8G8R8X8): the fourth byte
        // is alpha whatever the declared format (`virtgpu_gem.c`, dumb buffers).
        self.sink.cursor_set(
            res.pixels(),
            res.width,
            res.height,
            c.hot_x,
            c.hot_y,
            c.pos.x,
            c.pos.y,
        )?;
        Ok(())
    }

    fn move_cursor(&mut self, c: &CursorCmd) -> Result<(), GpuError> {
        if self.cursor_on_primary(c.pos.scanout_id)? {
            self.sink.cursor_move(c.pos.x, c.pos.y)?;
        }
        Ok(())
    }

    fn cursor_on_primary(&self, scanout_id: u32) -> Result<bool, GpuError> {
        let count = self.scanouts.len() as u32;
        if scanout_id >= count {
            return Err(GpuError::InvalidScanout {
                id: scanout_id,
                count,
            });
        }
        Ok(scanout_id == 0)
    }

    /// The 16-byte `virtio_gpu_config` (num_capsets is 0: no 3D).
    pub fn config_space(&self) -> [u8; CONFIG_SIZE] {
        let mut c = [0u8; CONFIG_SIZE];
        let fields = [self.events_read, 0, self.heads.len() as u32, 0];
        for (chunk, v) in c.chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        c
    }

    /// A driver write to `events_clear`: write-1-to-clear bits of `events_read`.
    pub fn clear_events(&mut self, mask: u32) {
        self.events_read &= !mask;
    }

    pub fn events_read(&self) -> u32 {
        self.events_read
    }

    /// Changes the size display info reports for scanout 0 and raises
    /// `VIRTIO_GPU_EVENT_DISPLAY`. Returns whether anything changed, i.e. whether the caller
    /// must send a config-change notification (done outside the device lock).
    pub fn request_display_size(&mut self, width: u32, height: u32) -> bool {
        let width = width.clamp(MIN_DISPLAY_SIZE, MAX_DISPLAY_SIZE);
        let height = height.clamp(MIN_DISPLAY_SIZE, MAX_DISPLAY_SIZE);
        let wanted = enabled_head(width, height);
        match self.heads.first_mut() {
            Some(head) if *head != wanted => *head = wanted,
            _ => return false,
        }
        self.events_read |= EVENT_DISPLAY;
        true
    }

    /// Device reset: resources, backing and scanouts go; the requested display size stays
    /// (as QEMU's `virtio_gpu_reset` keeps `req_state`).
    pub fn reset(&mut self) {
        if let Err(e) = self.disable_scanout(0) {
            self.log_rejected(&e);
        }
        self.scanouts.fill(Scanout::default());
        self.resources.clear();
        self.events_read = 0;
    }

    /// Logs a refused request, at most a few lines per second per kind of error.
    pub fn log_rejected(&mut self, err: &GpuError) {
        let Some(suppressed) = self.warn.allow(discriminant(err), Instant::now()) else {
            return;
        };
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        warn!(suppressed, "virtio-gpu: {text}");
    }
}

fn enabled_head(width: u32, height: u32) -> DisplayOne {
    DisplayOne {
        rect: Rect {
            x: 0,
            y: 0,
            width,
            height,
        },
        enabled: true,
        flags: 0,
    }
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
