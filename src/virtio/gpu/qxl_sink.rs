//! The daemon's [`DisplaySink`]: scanout 0 becomes QXL commands through the `qxl` producer,
//! as a guest QXL driver would issue them.
//!
//! The producer outlives vhost-user connections (the QXL device is the daemon's, not the
//! VM's), so it is shared; a new connection resets it to a clean device.

use std::sync::{Arc, Mutex, MutexGuard};

use qxl::{Point, Producer, QxlError, Rect};

use super::sink::{DisplaySink, SinkError, SinkRect};

/// The QXL producer, shared by the connection that currently drives it and the daemon.
#[derive(Clone)]
pub struct QxlSink {
    producer: Arc<Mutex<Producer>>,
    /// Hot spot of the current cursor image. virtio-gpu positions the image's top-left corner
    /// (Linux sends the cursor plane's `crtc_x`/`crtc_y`); QXL, like SPICE, positions the hot
    /// spot, so it is added to every position (QEMU's `qemu_spice_create_cursor_update` adds
    /// `hot_x`/`hot_y` to the same virtio-gpu positions).
    hot: Point,
}

impl QxlSink {
    pub fn new(producer: Arc<Mutex<Producer>>) -> Self {
        Self {
            producer,
            hot: Point { x: 0, y: 0 },
        }
    }

    fn hot_spot_at(&self, x: i32, y: i32) -> Point {
        Point {
            x: x.saturating_add(self.hot.x),
            y: y.saturating_add(self.hot.y),
        }
    }

    /// A fresh device for a new frontend connection: the previous VM's surfaces, cursor and
    /// command memory are gone (QXL_IO_RESET).
    pub fn reset(&self) -> Result<(), SinkError> {
        self.lock()?.reset().map_err(to_sink)
    }

    fn lock(&self) -> Result<MutexGuard<'_, Producer>, SinkError> {
        // A poisoned lock means a producer call panicked mid-command: the rings may hold a
        // half-built command, so refuse rather than build on it.
        self.producer.lock().map_err(|_| SinkError::Closed)
    }
}

fn to_sink(e: QxlError) -> SinkError {
    match e {
        QxlError::InvalidArgument(_) => SinkError::SurfaceTooLarge {
            width: 0,
            height: 0,
        },
        other => SinkError::Other(other.to_string()),
    }
}

fn to_rect(r: SinkRect) -> Result<Rect, SinkError> {
    let x = i32::try_from(r.x).map_err(|_| SinkError::Other("rect x out of range".into()))?;
    let y = i32::try_from(r.y).map_err(|_| SinkError::Other("rect y out of range".into()))?;
    Rect::from_xywh(x, y, r.width, r.height)
        .ok_or_else(|| SinkError::Other("rect out of range".into()))
}

impl DisplaySink for QxlSink {
    fn set_primary(&mut self, width: u32, height: u32) -> Result<(), SinkError> {
        self.lock()?
            .create_primary(width, height)
            .map_err(|e| match e {
                QxlError::InvalidArgument(_) | QxlError::TooLarge { .. } => {
                    SinkError::SurfaceTooLarge { width, height }
                }
                other => SinkError::Other(other.to_string()),
            })
    }

    fn disable_primary(&mut self) -> Result<(), SinkError> {
        let mut p = self.lock()?;
        if p.primary().is_some() {
            p.destroy_primary().map_err(to_sink)?;
        }
        Ok(())
    }

    fn update(&mut self, rect: SinkRect, pixels: &[u8], stride: usize) -> Result<(), SinkError> {
        let rect = to_rect(rect)?;
        // draw_copy copies the pixels into QXL memory before it returns, so the resource the
        // slice comes from may be overwritten by the next transfer right away.
        self.lock()?
            .draw_copy(rect, pixels, stride)
            .map_err(to_sink)
    }

    fn cursor_set(
        &mut self,
        argb: &[u8],
        width: u32,
        height: u32,
        hot_x: u32,
        hot_y: u32,
        x: i32,
        y: i32,
    ) -> Result<(), SinkError> {
        let narrow =
            |v: u32| u16::try_from(v).map_err(|_| SinkError::Other("cursor too large".into()));
        // Linux may put the hot spot anywhere in its 64x64 buffer; clamp rather than refuse.
        let (w, h) = (narrow(width)?, narrow(height)?);
        let hot_x = narrow(hot_x)?.min(w.saturating_sub(1));
        let hot_y = narrow(hot_y)?.min(h.saturating_sub(1));
        let hot = Point {
            x: i32::from(hot_x),
            y: i32::from(hot_y),
        };
        let at = Point {
            x: x.saturating_add(hot.x),
            y: y.saturating_add(hot.y),
        };
        self.lock()?
            .cursor_set(argb, w, h, hot_x, hot_y, at, true)
            .map_err(to_sink)?;
        self.hot = hot;
        Ok(())
    }

    fn cursor_move(&mut self, x: i32, y: i32) -> Result<(), SinkError> {
        let at = self.hot_spot_at(x, y);
        self.lock()?.cursor_move(at).map_err(to_sink)
    }

    fn cursor_hide(&mut self) -> Result<(), SinkError> {
        self.lock()?.cursor_hide().map_err(to_sink)
    }
}
