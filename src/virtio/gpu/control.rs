//! The handle through which other threads (the SPICE side) ask the guest for a display size.

use std::sync::{Arc, Mutex};

use tracing::debug;

use super::device::GpuDevice;
use super::sink::DisplaySink;
use crate::guest::{DisplayControl, HeadRequest};
use crate::virtio::ConfigChangeNotifier;

/// What [`GpuControl`] needs of the device, without naming its sink type.
pub(super) trait Resize: Send + Sync {
    /// See [`GpuDevice::request_display_size`].
    fn request_display_size(&self, width: u32, height: u32) -> bool;
}

impl<S: DisplaySink> Resize for Mutex<GpuDevice<S>> {
    fn request_display_size(&self, width: u32, height: u32) -> bool {
        // A poisoned lock means a sink call panicked; the display state is still consistent
        // (every field is written whole), so keep serving resize requests.
        let mut device = self.lock().unwrap_or_else(|p| p.into_inner());
        device.request_display_size(width, height)
    }
}

/// Cheap to clone, `Send + Sync`; valid for as long as its connection's device lives.
#[derive(Clone)]
pub struct GpuControl {
    device: Arc<dyn Resize>,
    notifier: Arc<dyn ConfigChangeNotifier>,
}

impl GpuControl {
    pub(super) fn new(device: Arc<dyn Resize>, notifier: Arc<dyn ConfigChangeNotifier>) -> Self {
        Self { device, notifier }
    }

    /// Asks the guest to use `width` x `height` (clamped to 32..=8192) on scanout 0: the
    /// display info changes, `VIRTIO_GPU_EVENT_DISPLAY` is raised and the frontend is told
    /// the config changed. The guest decides whether and when to follow.
    pub fn request_display_size(&self, width: u32, height: u32) {
        // The notification waits for the frontend's ack; sending it after the device lock is
        // released keeps the frontend's own config reads (which take that lock) from waiting
        // on us while we wait on it.
        if !self.device.request_display_size(width, height) {
            return;
        }
        if let Err(e) = self.notifier.notify_config_change() {
            // Expected before the frontend has set up its backend-request channel, and under
            // QEMU's vhost-user-gpu, which ignores config changes: the guest sees the new
            // size at its next GET_DISPLAY_INFO.
            debug!("virtio-gpu: config-change notification not sent: {e}");
        }
    }
}

impl DisplayControl for GpuControl {
    /// Only scanout 0 is shown, so only the first head counts.
    fn request_layout(&self, heads: &[HeadRequest]) {
        if let Some(head) = heads.first() {
            self.request_display_size(head.width, head.height);
        }
    }
}
