//! What can go wrong in the virtio-gpu device, and the one mapping to `VIRTIO_GPU_RESP_ERR_*`.

use std::io;

use super::protocol::{DecodeError, ErrorResponse, Rect};
use super::sink::SinkError;

/// Errors of the virtio-gpu device. Guest-caused variants say so; each becomes one
/// `VIRTIO_GPU_RESP_ERR_*` answer through [`GpuError::response`].
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("Guest request could not be decoded")]
    Decode(#[from] DecodeError),
    #[error("Guest descriptor chain is malformed")]
    BadDescriptorChain(#[source] virtio_queue::Error),
    #[error("Guest sent command type {ctrl_type:#x}, which a 2D device does not implement")]
    UnsupportedCommand { ctrl_type: u32 },
    #[error("Guest gave {have} writable response bytes, the answer needs {need}")]
    ResponseBufferTooSmall { need: usize, have: usize },
    #[error("Guest used resource id 0, which is reserved")]
    ResourceIdZero,
    #[error("Guest created resource {0}, which already exists")]
    ResourceExists(u32),
    #[error("Guest named resource {0}, which does not exist")]
    UnknownResource(u32),
    #[error("Guest created a resource in format {0}, which is not supported")]
    UnsupportedFormat(u32),
    #[error("Guest created a resource of {width}x{height} pixels")]
    EmptyResource { width: u32, height: u32 },
    #[error("Guest resource needs {need} bytes; {used} of the {budget}-byte budget are in use")]
    OverBudget { need: u64, used: u64, budget: u64 },
    #[error("Host could not allocate {0} bytes for a guest resource")]
    HostAllocation(u64),
    #[error("Guest rect {rect:?} is outside its {width}x{height} resource")]
    RectOutsideResource { rect: Rect, width: u32, height: u32 },
    #[error("Guest scanout rect {rect:?} is below the {min}x{min} minimum")]
    ScanoutTooSmall { rect: Rect, min: u32 },
    #[error("Guest attached backing to resource {0}, which already has backing")]
    BackingAlreadyAttached(u32),
    #[error("Guest used resource {0} as if it had backing, but it has none")]
    NoBacking(u32),
    #[error("Guest backing entry {index} ({addr:#x}, {len} bytes) is outside guest memory")]
    BackingOutsideGuestMemory { index: usize, addr: u64, len: u32 },
    #[error("Guest transfer reads backing bytes up to {need}, the backing has {have}")]
    BackingTooSmall { need: u64, have: u64 },
    #[error("Guest backing at {addr:#x} could not be read")]
    BackingUnreadable { addr: u64 },
    #[error("Guest named scanout {id}; the device has {count}")]
    InvalidScanout { id: u32, count: u32 },
    #[error("Guest asked for the EDID of scanout {id}; the device has {count}")]
    EdidScanoutOutOfRange { id: u32, count: u32 },
    #[error("Guest asked for an EDID, which is disabled or cannot describe {width}x{height}")]
    EdidUnavailable { width: u32, height: u32 },
    #[error("Guest cursor resource is {width}x{height}, over the 256x256 limit")]
    CursorTooLarge { width: u32, height: u32 },
    #[error("Display sink refused the update")]
    Sink(#[from] SinkError),
    #[error("Invalid GPU configuration: {0}")]
    InvalidConfig(&'static str),
    #[error("Failed to create the worker exit event")]
    ExitEvent(#[source] io::Error),
}

impl GpuError {
    /// The answer the guest gets. The error codes follow QEMU's `hw/display/virtio-gpu.c`
    /// for the same condition, so Linux sees what it sees with QEMU's own device.
    pub fn response(&self) -> ErrorResponse {
        use ErrorResponse as R;
        match self {
            GpuError::Decode(_) => R::Unspec,
            GpuError::BadDescriptorChain(_) => R::Unspec,
            GpuError::UnsupportedCommand { .. } => R::Unspec,
            GpuError::ResponseBufferTooSmall { .. } => R::Unspec,
            GpuError::ResourceIdZero => R::InvalidResourceId,
            GpuError::ResourceExists(_) => R::InvalidResourceId,
            GpuError::UnknownResource(_) => R::InvalidResourceId,
            GpuError::UnsupportedFormat(_) => R::InvalidParameter,
            GpuError::EmptyResource { .. } => R::InvalidParameter,
            GpuError::OverBudget { .. } => R::OutOfMemory,
            GpuError::HostAllocation(_) => R::OutOfMemory,
            GpuError::RectOutsideResource { .. } => R::InvalidParameter,
            GpuError::ScanoutTooSmall { .. } => R::InvalidParameter,
            // QEMU: attach over existing backing, or a backing it cannot map → ERR_UNSPEC;
            // `virtio_gpu_find_check_resource` without backing → ERR_UNSPEC.
            GpuError::BackingAlreadyAttached(_) => R::Unspec,
            GpuError::NoBacking(_) => R::Unspec,
            GpuError::BackingOutsideGuestMemory { .. } => R::Unspec,
            GpuError::BackingTooSmall { .. } => R::InvalidParameter,
            GpuError::BackingUnreadable { .. } => R::Unspec,
            GpuError::InvalidScanout { .. } => R::InvalidScanoutId,
            // QEMU's `virtio_gpu_get_edid` answers a bad scanout with INVALID_PARAMETER.
            GpuError::EdidScanoutOutOfRange { .. } => R::InvalidParameter,
            GpuError::EdidUnavailable { .. } => R::Unspec,
            GpuError::CursorTooLarge { .. } => R::InvalidParameter,
            GpuError::Sink(_) => R::Unspec,
            // Set-up errors never answer a request; listed so the match stays exhaustive.
            GpuError::InvalidConfig(_) => R::Unspec,
            GpuError::ExitEvent(_) => R::Unspec,
        }
    }
}

/// Errors cross into the rust-vmm traits as `io::Error` in this one place.
impl From<GpuError> for io::Error {
    fn from(e: GpuError) -> Self {
        io::Error::other(e)
    }
}
