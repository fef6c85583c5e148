//! The seam between the virtio-gpu device and whatever shows scanout 0 (STYLE §4.4).

/// A rectangle in primary-surface coordinates, already clipped to the surface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Why the display side refused a change; the guest command that caused it gets
/// `VIRTIO_GPU_RESP_ERR_UNSPEC`.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The display side has gone away (daemon shutting down, producer closed).
    #[error("Display sink is closed")]
    Closed,
    /// The display side cannot hold a surface of this size.
    #[error("Display sink cannot create a {width}x{height} surface")]
    SurfaceTooLarge { width: u32, height: u32 },
    /// Any other failure, with the sink's own description.
    #[error("Display sink failed: {0}")]
    Other(String),
}

/// Where the guest's scanout 0 goes: the QXL producer in the daemon, a recorder in tests.
pub trait DisplaySink: Send {
    /// Scanout 0 now shows a `width` x `height` image: create (or replace) the primary surface.
    fn set_primary(&mut self, width: u32, height: u32) -> Result<(), SinkError>;
    /// Scanout 0 disabled.
    fn disable_primary(&mut self) -> Result<(), SinkError>;
    /// Pixels of `rect` (in primary-surface coordinates) changed. `pixels` starts at the rect's
    /// first pixel, rows `stride` bytes apart, 4 bytes per pixel B,G,R,X.
    fn update(&mut self, rect: SinkRect, pixels: &[u8], stride: usize) -> Result<(), SinkError>;
    /// New cursor image: `argb` is width*height*4 bytes B,G,R,A.
    #[allow(clippy::too_many_arguments)] // The signature is the team's agreed seam.
    fn cursor_set(
        &mut self,
        argb: &[u8],
        width: u32,
        height: u32,
        hot_x: u32,
        hot_y: u32,
        x: i32,
        y: i32,
    ) -> Result<(), SinkError>;
    fn cursor_move(&mut self, x: i32, y: i32) -> Result<(), SinkError>;
    fn cursor_hide(&mut self) -> Result<(), SinkError>;
}
