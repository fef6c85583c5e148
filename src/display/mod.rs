//! The display worker: consumes QXL commands on its own thread, renders them into canonical
//! surfaces, keeps the cursor, and publishes every change as an event with a generation.
//!
//! SPICE sessions subscribe to the events and pull consistent copies through
//! [`DisplayHandle`]; the worker never waits on them and keeps nothing per client (DESIGN.md,
//! "The display worker").
//!
//! # Layout
//! - [`source`]: the owned commands the worker consumes and the [`CommandSource`] trait.
//! - `geom`: rectangles, points, clip regions.
//! - `pixels`: reading source bitmaps as ARGB, ROP combination.
//! - `surface`: a canonical surface and its draw operations.
//! - `delta`: what a draw really changes: unchanged rows and columns trimmed, scrolls found.
//! - `huge`: surface pixels in transparent huge pages.
//! - `tiles`: per-tile versions, so readers can name what a rectangle's pixels are.
//! - `cursor`: the cursor state.
//! - `worker`: the thread loop.
//! - `warn_limit`: the rate limit on warnings the guest can trigger.
//! - `handle`: shared state, events, [`DisplayHandle`].
#![forbid(unsafe_code)]

mod cursor;
mod delta;
mod error;
mod geom;
mod handle;
mod huge;
mod pixels;
pub mod qxl_source;
pub mod source;
mod surface;
mod tiles;
mod warn_limit;
mod worker;

pub use cursor::{CursorEvent, CursorState, MAX_CURSOR_SIDE};
pub use error::DisplayError;
pub use geom::{Clip, Point, Rect, MAX_CLIP_RECTS};
pub use handle::{
    spawn, try_spawn, DisplayEvent, DisplayHandle, RectVersion, SurfaceInfo, SurfaceSnapshot,
    EVENT_CAPACITY,
};
pub use source::{CommandSource, Head};
pub use surface::{Surface, SurfaceFormat, MAX_SURFACE_BYTES, MAX_SURFACE_SIDE};
pub use worker::MAX_TOTAL_SURFACE_BYTES;

/// Surface ids run from 0 (the primary) to this, exclusive: QEMU's qxl default `n_surfaces`
/// (research/spice-protocol.md §3.2.3).
pub const MAX_SURFACES: u32 = 1024;

/// Monitor heads accepted in one layout: what `QXLRom`'s client monitors config holds.
pub const MAX_HEADS: usize = 64;

#[cfg(test)]
mod scroll_tests;
#[cfg(test)]
mod tests;
