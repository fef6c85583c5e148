//! virtio-gpu 2D (device id 16) as a vhost-user backend.
//!
//! - [`protocol`]: wire structs, request decoding, response encoding.
//! - [`resources`]: host pixel buffers, guest backing, transfers.
//! - [`edid`]: the EDID block matching the display size.
//! - [`device`]: the device model (commands → responses and display-sink calls).
//! - [`sink`]: the trait the device draws scanout 0 and the cursor through.
//! - [`control`]: the handle other threads use to request a display size.
//! - [`backend`]: the `VhostUserBackend` impl (queues, features, config space).

pub mod backend;
pub mod control;
pub mod device;
pub mod edid;
pub mod error;
pub mod protocol;
pub mod qxl_sink;
pub mod resources;
pub mod sink;
#[cfg(test)]
mod testutil;

pub use backend::GpuBackend;
pub use control::GpuControl;
pub use device::{GpuConfig, GpuDevice};
pub use error::GpuError;
pub use qxl_sink::QxlSink;
pub use sink::{DisplaySink, SinkError, SinkRect};
