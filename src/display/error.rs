//! Why the display worker refused a command.
//!
//! Every case but [`DisplayError::ShuttingDown`] is the guest's doing (the producer passed on a
//! value the worker cannot honour); the worker logs it, rate-limited, and goes on.

use thiserror::Error;

use super::surface::SurfaceFormat;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DisplayError {
    #[error("Guest asked for surface format {0:?}, which the display worker does not render")]
    UnsupportedSurfaceFormat(SurfaceFormat),
    #[error(
        "Guest asked for a {width}x{height} surface, over the {max}-pixel side limit or empty"
    )]
    SurfaceSizeOutOfRange { width: u32, height: u32, max: u32 },
    #[error("Guest used surface id {0}, past the limit of {max}", max = super::MAX_SURFACES)]
    SurfaceIdOutOfRange(u32),
    #[error("Guest used surface {0}, which does not exist")]
    NoSuchSurface(u32),
    #[error("Guest sent {0} clip rectangles, over the limit of {max}", max = super::geom::MAX_CLIP_RECTS)]
    TooManyClipRects(usize),
    #[error("Guest sent draw type {0}, which the display worker does not render")]
    UnsupportedDrawType(u8),
    #[error("Guest asked for surface {surface_id} of {bytes} bytes, past the {max}-byte total for all surfaces")]
    SurfaceMemoryExhausted {
        surface_id: u32,
        bytes: usize,
        max: usize,
    },
    #[error("Guest sent bitmap format {0}, which the display worker does not decode")]
    UnsupportedBitmapFormat(u8),
    #[error("Guest sent a palette bitmap (format {0}) without a palette")]
    MissingPalette(u8),
    #[error(
        "Guest sent a bitmap with stride {stride} too short for {width} pixels of format {format}"
    )]
    BitmapStrideTooShort {
        format: u8,
        width: u32,
        stride: usize,
    },
    #[error("Guest sent a {width}x{height} cursor of type {kind} with {len} bytes of data, expected at least {expected}")]
    CursorDataTooShort {
        kind: u16,
        width: u16,
        height: u16,
        len: usize,
        expected: usize,
    },
    #[error("Guest sent a {width}x{height} cursor, over the {max}-pixel side limit")]
    CursorTooLarge { width: u16, height: u16, max: u16 },
    #[error("Guest sent cursor type {0}, which SPICE does not define")]
    UnknownCursorType(u16),
    #[error("Guest sent {0} monitor heads, over the limit of {max}", max = super::MAX_HEADS)]
    TooManyHeads(usize),
    #[error("The display worker is shutting down")]
    ShuttingDown,
}
