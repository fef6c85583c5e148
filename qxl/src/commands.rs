//! The producer's convenience layer: builds the real QXL structures for the few operations a
//! simple producer needs, as QEMU ui/spice-display.c `qemu_spice_create_one_update` does
//! (DRAW_COPY, effect OPAQUE, clip NONE, surfaces_dest −1, bitmap 32BIT DIRECT|TOP_DOWN,
//! rop OP_PUT), plus fills, copy-bits, cursors and surfaces.

use std::mem::size_of;

use zerocopy::little_endian::{I16, I32, U32, U64};
use zerocopy::{FromZeros, IntoBytes};

use crate::abi::*;
use crate::error::QxlError;
use crate::io::IoRequest;
use crate::memslot::QxlPhys;
use crate::parse::{MAX_CURSOR_DIM, MAX_SURFACE_DIM};
use crate::producer::Producer;
use crate::types::{Point, Rect, SurfaceCreate};

/// Largest pixel payload of one DRAW_COPY. Larger rects are split into bands of whole rows:
/// a 3840×2160 frame becomes 8 commands, each a small allocation that is released on its own.
pub const BAND_BYTES: usize = 4 << 20;
/// Bytes per pixel of the 32-bit xRGB format everything here uses.
const BPP: usize = 4;
/// Where the `QXLImage` follows the `QXLDrawable` in a DRAW_COPY allocation (8-aligned).
const IMAGE_AT: usize = size_of::<QxlDrawable>().next_multiple_of(8);
/// Where the pixels follow the `QXLImage`.
const PIXELS_AT: usize = IMAGE_AT + size_of::<QxlImage>();
/// Where the `QXLCursor` follows the `QXLCursorCmd`.
const CURSOR_AT: usize = size_of::<QxlCursorCmd>().next_multiple_of(8);
/// Where the cursor pixels follow the `QXLCursor` (its inline chunk's data).
const CURSOR_DATA_AT: usize = CURSOR_AT + size_of::<QxlCursor>();

fn qxl_rect(r: Rect) -> QxlRect {
    QxlRect {
        top: I32::new(r.top),
        left: I32::new(r.left),
        bottom: I32::new(r.bottom),
        right: I32::new(r.right),
    }
}

fn invalid(r: Rect) -> QxlError {
    QxlError::InvalidRect {
        top: r.top,
        left: r.left,
        bottom: r.bottom,
        right: r.right,
    }
}

fn point16(p: Point) -> QxlPoint16 {
    let clamp = |v: i32| I16::new(v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16);
    QxlPoint16 {
        x: clamp(p.x),
        y: clamp(p.y),
    }
}

impl Producer {
    /// Checks `r` is non-empty and inside the primary surface.
    fn check_on_primary(&self, r: Rect) -> Result<(), QxlError> {
        let (w, h) = self.primary.ok_or(QxlError::NoPrimary)?;
        let inside = r.left >= 0
            && r.top >= 0
            && !r.is_empty()
            && i64::from(r.right) <= i64::from(w)
            && i64::from(r.bottom) <= i64::from(h);
        if inside {
            Ok(())
        } else {
            Err(invalid(r))
        }
    }

    /// A drawable on surface 0 with QEMU's defaults; the caller fills `ty` and `u`.
    fn drawable(&self, id: u64, bbox: Rect, ty: u8) -> QxlDrawable {
        let mut d = QxlDrawable::new_zeroed();
        d.release_info = U64::new(id);
        d.effect = QXL_EFFECT_OPAQUE;
        d.ty = ty;
        d.bbox = qxl_rect(bbox);
        d.mm_time = U32::new(self.mm_time());
        d.surfaces_dest = [I32::new(-1); 3];
        d
    }

    /// Writes `head` at the start of a fresh allocation and pushes it; frees it on failure.
    fn push_new(
        &mut self,
        alloc: &crate::Allocation,
        head: &[u8],
        ty: u32,
        cursor: bool,
    ) -> Result<(), QxlError> {
        let cmd = QxlCommand {
            data: U64::new(alloc.phys.0),
            ty: U32::new(ty),
            padding: U32::new(0),
        };
        let result = self.write(alloc, 0, head).and_then(|()| {
            if cursor {
                self.push_cursor(cmd)
            } else {
                self.push_command(cmd)
            }
        });
        if result.is_err() {
            self.free_unpushed(alloc);
        }
        result
    }

    /// `QXL_IO_CREATE_PRIMARY` of a `width`×`height` 32-bit xRGB surface. An existing primary
    /// is destroyed first (QXL requires DESTROY_PRIMARY before a new CREATE_PRIMARY).
    pub fn create_primary(&mut self, width: u32, height: u32) -> Result<(), QxlError> {
        if width == 0 || height == 0 || width > MAX_SURFACE_DIM || height > MAX_SURFACE_DIM {
            return Err(QxlError::InvalidArgument("primary size out of range"));
        }
        if self.primary.is_some() {
            self.destroy_primary()?;
        }
        let create = SurfaceCreate {
            format: SPICE_SURFACE_FMT_32_XRGB,
            width,
            height,
            initial: None,
        };
        self.io(IoRequest::CreatePrimary(create))?;
        self.primary = Some((width, height));
        Ok(())
    }

    /// `QXL_IO_DESTROY_PRIMARY`.
    pub fn destroy_primary(&mut self) -> Result<(), QxlError> {
        self.io(IoRequest::DestroyPrimary)?;
        self.primary = None;
        Ok(())
    }

    /// DRAW_COPY of `rect` on the primary from `pixels` (rows of `src_stride` bytes, B,G,R,X),
    /// split into bands of at most `BAND_BYTES`.
    pub fn draw_copy(
        &mut self,
        rect: Rect,
        pixels: &[u8],
        src_stride: usize,
    ) -> Result<(), QxlError> {
        self.check_on_primary(rect)?;
        let (w, h) = (rect.width() as usize, rect.height() as usize);
        let row = w * BPP;
        if src_stride < row {
            return Err(QxlError::InvalidArgument("src_stride shorter than a row"));
        }
        let need = (h - 1)
            .checked_mul(src_stride)
            .and_then(|n| n.checked_add(row))
            .unwrap_or(usize::MAX);
        if pixels.len() < need {
            return Err(QxlError::PixelsTooShort {
                need,
                got: pixels.len(),
            });
        }
        let band_rows = (BAND_BYTES / row).max(1);
        let mut top = 0;
        while top < h {
            let rows = band_rows.min(h - top);
            let band = Rect {
                top: rect.top + top as i32,
                left: rect.left,
                bottom: rect.top + (top + rows) as i32,
                right: rect.right,
            };
            let src = pixels.get(top * src_stride..).unwrap_or_default();
            self.draw_copy_band(band, src, src_stride)?;
            top += rows;
        }
        Ok(())
    }

    fn draw_copy_band(
        &mut self,
        band: Rect,
        pixels: &[u8],
        src_stride: usize,
    ) -> Result<(), QxlError> {
        let (w, h) = (band.width(), band.height());
        let row = w as usize * BPP;
        let alloc = self.alloc(PIXELS_AT + row * h as usize)?;
        let image_phys = alloc.phys.checked_add(IMAGE_AT).ok_or(QxlError::TooLarge {
            len: alloc.len,
            what: "RAM",
        })?;
        let data_phys = alloc
            .phys
            .checked_add(PIXELS_AT)
            .ok_or(QxlError::TooLarge {
                len: alloc.len,
                what: "RAM",
            })?;

        let mut image = QxlImage::new_zeroed();
        image.descriptor.id = U64::new(self.image_unique << 32 | QXL_IMAGE_GROUP_DEVICE);
        self.image_unique = self.image_unique.wrapping_add(1);
        image.descriptor.ty = SPICE_IMAGE_TYPE_BITMAP;
        image.descriptor.width = U32::new(w);
        image.descriptor.height = U32::new(h);
        image.bitmap = QxlBitmap {
            format: SPICE_BITMAP_FMT_32BIT,
            flags: QXL_BITMAP_DIRECT | QXL_BITMAP_TOP_DOWN,
            x: U32::new(w),
            y: U32::new(h),
            stride: U32::new(row as u32),
            palette: U64::new(0),
            data: U64::new(data_phys.0),
        };
        let mut written = self.write(&alloc, IMAGE_AT, image.as_bytes());
        for (r, src_row) in pixels.chunks(src_stride).take(h as usize).enumerate() {
            let src_row = src_row.get(..row).unwrap_or_default();
            written = written.and_then(|()| self.write(&alloc, PIXELS_AT + r * row, src_row));
        }
        if let Err(e) = written {
            self.free_unpushed(&alloc);
            return Err(e);
        }

        let mut d = self.drawable(alloc.id, band, QXL_DRAW_COPY);
        let copy = QxlCopy {
            src_bitmap: U64::new(image_phys.0),
            src_area: qxl_rect(Rect {
                top: 0,
                left: 0,
                bottom: h as i32,
                right: w as i32,
            }),
            rop_descriptor: SPICE_ROPD_OP_PUT.into(),
            scale_mode: 0,
            mask: QxlQMask::default(),
        };
        write_union(&mut d.u, copy.as_bytes());
        self.push_new(&alloc, d.as_bytes(), QXL_CMD_DRAW, false)
    }

    /// DRAW_FILL of `rect` on the primary with a solid xRGB `color`.
    pub fn fill(&mut self, rect: Rect, color: u32) -> Result<(), QxlError> {
        self.check_on_primary(rect)?;
        let alloc = self.alloc(size_of::<QxlDrawable>())?;
        let mut d = self.drawable(alloc.id, rect, QXL_DRAW_FILL);
        let mut fill = QxlFill::new_zeroed();
        fill.brush.ty = U32::new(SPICE_BRUSH_TYPE_SOLID);
        write_union(&mut fill.brush.u, &color.to_le_bytes());
        fill.rop_descriptor = SPICE_ROPD_OP_PUT.into();
        write_union(&mut d.u, fill.as_bytes());
        self.push_new(&alloc, d.as_bytes(), QXL_CMD_DRAW, false)
    }

    /// COPY_BITS on the primary: the area of `dest`'s size at `src` moves to `dest`.
    pub fn copy_bits(&mut self, src: Point, dest: Rect) -> Result<(), QxlError> {
        self.check_on_primary(dest)?;
        let src_rect =
            Rect::from_xywh(src.x, src.y, dest.width(), dest.height()).ok_or(invalid(dest))?;
        self.check_on_primary(src_rect)?;
        let alloc = self.alloc(size_of::<QxlDrawable>())?;
        let mut d = self.drawable(alloc.id, dest, QXL_COPY_BITS);
        // spice-server reads the source area from surfaces_dest/surfaces_rects for ordering.
        d.surfaces_dest[0] = I32::new(0);
        d.surfaces_rects[0] = qxl_rect(src_rect);
        let bits = QxlCopyBits {
            src_pos: QxlPoint {
                x: I32::new(src.x),
                y: I32::new(src.y),
            },
        };
        write_union(&mut d.u, bits.as_bytes());
        self.push_new(&alloc, d.as_bytes(), QXL_CMD_DRAW, false)
    }

    /// Cursor SET with an ALPHA (ARGB, 4 bytes a pixel) shape.
    #[allow(clippy::too_many_arguments)] // mirrors the QXL SET fields one for one
    pub fn cursor_set(
        &mut self,
        shape_argb: &[u8],
        width: u16,
        height: u16,
        hot_x: u16,
        hot_y: u16,
        pos: Point,
        visible: bool,
    ) -> Result<(), QxlError> {
        if width == 0 || height == 0 || width > MAX_CURSOR_DIM || height > MAX_CURSOR_DIM {
            return Err(QxlError::InvalidArgument("cursor size out of range"));
        }
        if hot_x >= width || hot_y >= height {
            return Err(QxlError::InvalidArgument(
                "cursor hot spot outside the shape",
            ));
        }
        let size = usize::from(width) * usize::from(height) * 4;
        if shape_argb.len() != size {
            return Err(QxlError::PixelsTooShort {
                need: size,
                got: shape_argb.len(),
            });
        }
        let alloc = self.alloc(CURSOR_DATA_AT + size)?;
        let shape_phys = alloc
            .phys
            .checked_add(CURSOR_AT)
            .ok_or(QxlError::TooLarge {
                len: alloc.len,
                what: "RAM",
            })?;
        let mut cursor = QxlCursor::new_zeroed();
        cursor.header.unique = U64::new(self.cursor_unique);
        self.cursor_unique = self.cursor_unique.wrapping_add(1);
        cursor.header.ty = SPICE_CURSOR_TYPE_ALPHA.into();
        cursor.header.width = width.into();
        cursor.header.height = height.into();
        cursor.header.hot_spot_x = hot_x.into();
        cursor.header.hot_spot_y = hot_y.into();
        cursor.data_size = U32::new(size as u32);
        cursor.chunk.data_size = U32::new(size as u32);
        let written = self
            .write(&alloc, CURSOR_AT, cursor.as_bytes())
            .and_then(|()| self.write(&alloc, CURSOR_DATA_AT, shape_argb));
        if let Err(e) = written {
            self.free_unpushed(&alloc);
            return Err(e);
        }
        let set = QxlCursorSet {
            position: point16(pos),
            visible: u8::from(visible),
            shape: U64::new(shape_phys.0),
        };
        self.push_cursor_cmd(alloc, QXL_CURSOR_SET, set.as_bytes())
    }

    /// Cursor MOVE.
    pub fn cursor_move(&mut self, pos: Point) -> Result<(), QxlError> {
        let alloc = self.alloc(size_of::<QxlCursorCmd>())?;
        self.push_cursor_cmd(alloc, QXL_CURSOR_MOVE, point16(pos).as_bytes())
    }

    /// Cursor HIDE.
    pub fn cursor_hide(&mut self) -> Result<(), QxlError> {
        let alloc = self.alloc(size_of::<QxlCursorCmd>())?;
        self.push_cursor_cmd(alloc, QXL_CURSOR_HIDE, &[])
    }

    fn push_cursor_cmd(
        &mut self,
        alloc: crate::Allocation,
        ty: u8,
        u: &[u8],
    ) -> Result<(), QxlError> {
        let mut cmd = QxlCursorCmd::new_zeroed();
        cmd.release_info = U64::new(alloc.id);
        cmd.ty = ty;
        write_union(&mut cmd.u, u);
        self.push_new(&alloc, cmd.as_bytes(), QXL_CMD_CURSOR, true)
    }

    /// SURFACE CREATE of an off-screen 32-bit xRGB surface, its memory in VRAM.
    pub fn create_surface(
        &mut self,
        surface_id: u32,
        width: u32,
        height: u32,
    ) -> Result<(), QxlError> {
        if width == 0 || height == 0 || width > MAX_SURFACE_DIM || height > MAX_SURFACE_DIM {
            return Err(QxlError::InvalidArgument("surface size out of range"));
        }
        let stride = width as usize * BPP;
        let alloc = self.alloc(size_of::<QxlSurfaceCmd>())?;
        let data = match self.alloc_vram_for(&alloc, stride * height as usize) {
            Ok(data) => data,
            Err(e) => {
                self.free_unpushed(&alloc);
                return Err(e);
            }
        };
        let cmd = self.surface_cmd(
            alloc.id,
            surface_id,
            QXL_SURFACE_CMD_CREATE,
            width,
            height,
            data,
        );
        self.push_new(&alloc, cmd.as_bytes(), QXL_CMD_SURFACE, false)
    }

    /// SURFACE DESTROY.
    pub fn destroy_surface(&mut self, surface_id: u32) -> Result<(), QxlError> {
        let alloc = self.alloc(size_of::<QxlSurfaceCmd>())?;
        let cmd = self.surface_cmd(
            alloc.id,
            surface_id,
            QXL_SURFACE_CMD_DESTROY,
            0,
            0,
            QxlPhys::NULL,
        );
        self.push_new(&alloc, cmd.as_bytes(), QXL_CMD_SURFACE, false)
    }

    fn surface_cmd(
        &self,
        id: u64,
        surface_id: u32,
        ty: u8,
        width: u32,
        height: u32,
        data: QxlPhys,
    ) -> QxlSurfaceCmd {
        let mut cmd = QxlSurfaceCmd::new_zeroed();
        cmd.release_info = U64::new(id);
        cmd.surface_id = U32::new(surface_id);
        cmd.ty = ty;
        cmd.surface = QxlSurface {
            format: U32::new(SPICE_SURFACE_FMT_32_XRGB),
            width: U32::new(width),
            height: U32::new(height),
            stride: I32::new((width as usize * BPP) as i32),
            data: U64::new(data.0),
        };
        cmd
    }
}

/// Copies `src` into the front of a union's bytes (members are at offset 0).
fn write_union(dst: &mut [u8], src: &[u8]) {
    let n = src.len().min(dst.len());
    if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
        d.copy_from_slice(s);
    }
}
