//! What a pipe reads the display through, so that tests can stand in for the display.

use std::sync::Arc;

use crate::display::{self, DisplayHandle, Rect, RectVersion, SurfaceInfo};

/// What the pipe reads the display through; [`DisplayHandle`] in the server, a fake in tests.
pub trait Canvas: Send + Sync {
    /// Every surface.
    fn surfaces(&self) -> Vec<SurfaceInfo>;
    /// The version of a surface rectangle's pixels now, without reading them.
    fn rect_version(&self, surface_id: u32, rect: Rect) -> Option<RectVersion>;
    /// Appends the pixels of `rect` as 24-bit B, G, R rows of `stride` bytes (see
    /// [`DisplayHandle::read_rect_bgr`]) and returns the version they are of.
    fn read_rect_bgr(
        &self,
        surface_id: u32,
        rect: Rect,
        stride: usize,
        out: &mut Vec<u8>,
    ) -> Option<RectVersion>;
    /// The guest's monitor layout (empty if it sent none).
    fn monitors(&self) -> Arc<[display::Head]>;
    /// The cursor.
    fn cursor(&self) -> display::CursorState;
}

impl Canvas for DisplayHandle {
    fn surfaces(&self) -> Vec<SurfaceInfo> {
        DisplayHandle::surfaces(self)
    }
    fn rect_version(&self, surface_id: u32, rect: Rect) -> Option<RectVersion> {
        DisplayHandle::rect_version(self, surface_id, rect)
    }
    fn read_rect_bgr(
        &self,
        surface_id: u32,
        rect: Rect,
        stride: usize,
        out: &mut Vec<u8>,
    ) -> Option<RectVersion> {
        DisplayHandle::read_rect_bgr(self, surface_id, rect, stride, out)
    }
    fn monitors(&self) -> Arc<[display::Head]> {
        DisplayHandle::monitors(self)
    }
    fn cursor(&self) -> display::CursorState {
        DisplayHandle::cursor(self)
    }
}
