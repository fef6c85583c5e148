//! Parsing: raw QXL commands in shared memory → owned, validated values (`types`).
//!
//! Never panics and never allocates more than a named limit: every address goes through
//! `Mem::resolve`, every size is checked before a buffer is made. The checks follow spice:
//! server/red-parse-qxl.cpp (`red_get_drawable`, `red_get_image`, `red_get_surface_cmd`,
//! `red_get_cursor_cmd`) and QEMU hw/display/qxl.c, with our own tighter limits.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::mem::size_of;

use zerocopy::FromBytes;

use crate::abi::*;
use crate::chunks::{copy_rows, read_chain, Mem, RowSource};
use crate::error::{AddrError, ParseError};
use crate::memslot::QxlPhys;
use crate::types::*;

/// Largest bitmap we copy out (stride × height). A 3840×2160 xRGB frame is 33 MB; 64 MiB
/// leaves room for one 5K frame while bounding what one guest command can make us allocate.
pub const MAX_IMAGE_BYTES: usize = 64 << 20;
/// Most clip rectangles per drawable; real drivers send a few dozen, 4096 costs 64 KiB.
pub const MAX_CLIP_RECTS: u32 = 4096;
/// Largest surface side (QEMU's qxl accepts what fits VRAM; 16384 is beyond any monitor).
pub const MAX_SURFACE_DIM: u32 = 16384;
/// Largest surface in bytes (`|stride| × height`): 8192×8192×4, the pixels the worker would
/// allocate for it. spice-server's own bound is `0x7fffffff`.
pub const MAX_SURFACE_BYTES: u64 = 256 << 20;
/// Largest cursor side; SPICE clients draw cursors far smaller (Windows and X use ≤ 256).
pub const MAX_CURSOR_DIM: u16 = 512;
/// Largest cursor data: 512×512 ARGB.
pub const MAX_CURSOR_BYTES: u32 = 512 * 512 * 4;
/// Palette entries, 8-bit formats at most (spice-server rejects more).
pub const MAX_PALETTE_ENTRIES: u16 = 256;

/// Parses one command-ring entry.
pub fn command(mem: Mem<'_>, cmd: QxlCommand, n_surfaces: u32) -> Result<Command, ParseError> {
    let addr = QxlPhys(cmd.data.get());
    match cmd.ty.get() {
        QXL_CMD_NOP => Ok(Command::Nop),
        QXL_CMD_DRAW => drawable(mem, addr, n_surfaces).map(Command::Draw),
        QXL_CMD_SURFACE => surface_cmd(mem, addr, n_surfaces).map(Command::Surface),
        QXL_CMD_UPDATE => {
            let (update, _) = mem.obj::<QxlUpdateCmd>(addr)?;
            Ok(Command::Update {
                surface_id: surface_id(update.surface_id.get(), n_surfaces)?,
                area: rect(&update.area)?,
            })
        }
        QXL_CMD_MESSAGE => Ok(Command::Message),
        other => Err(ParseError::UnexpectedCommandType(other)),
    }
}

/// Parses one cursor-ring entry.
pub fn cursor_command(mem: Mem<'_>, cmd: QxlCommand) -> Result<CursorCmd, ParseError> {
    if cmd.ty.get() != QXL_CMD_CURSOR {
        return Err(ParseError::UnexpectedCommandType(cmd.ty.get()));
    }
    let (raw, _) = mem.obj::<QxlCursorCmd>(QxlPhys(cmd.data.get()))?;
    match raw.ty {
        QXL_CURSOR_SET => {
            let (set, _) =
                QxlCursorSet::read_from_prefix(&raw.u).map_err(|_| ParseError::RegionFault)?;
            Ok(CursorCmd::Set {
                position: point16(set.position),
                visible: set.visible != 0,
                shape: cursor_shape(mem, QxlPhys(set.shape.get()))?,
            })
        }
        QXL_CURSOR_MOVE => {
            let (pos, _) =
                QxlPoint16::read_from_prefix(&raw.u).map_err(|_| ParseError::RegionFault)?;
            Ok(CursorCmd::Move {
                position: point16(pos),
            })
        }
        QXL_CURSOR_HIDE => Ok(CursorCmd::Hide),
        QXL_CURSOR_TRAIL => {
            let (trail, _) =
                QxlCursorTrail::read_from_prefix(&raw.u).map_err(|_| ParseError::RegionFault)?;
            Ok(CursorCmd::Trail {
                length: trail.length.get(),
                frequency: trail.frequency.get(),
            })
        }
        other => Err(ParseError::UnknownCursorCmdType(other)),
    }
}

fn point16(p: QxlPoint16) -> Point {
    Point {
        x: i32::from(p.x.get()),
        y: i32::from(p.y.get()),
    }
}

/// A rect that is not inverted (empty is allowed, as spice-server allows it).
pub fn rect(r: &QxlRect) -> Result<Rect, ParseError> {
    let (top, left, bottom, right) = (r.top.get(), r.left.get(), r.bottom.get(), r.right.get());
    if top > bottom || left > right {
        return Err(ParseError::InvalidRect {
            top,
            left,
            bottom,
            right,
        });
    }
    Ok(Rect {
        top,
        left,
        bottom,
        right,
    })
}

fn surface_id(id: u32, n_surfaces: u32) -> Result<u32, ParseError> {
    if id >= n_surfaces {
        return Err(ParseError::SurfaceIdOutOfRange(id));
    }
    Ok(id)
}

fn drawable(mem: Mem<'_>, addr: QxlPhys, n_surfaces: u32) -> Result<Drawable, ParseError> {
    let (raw, _) = mem.obj::<QxlDrawable>(addr)?;
    let op = match raw.ty {
        QXL_DRAW_FILL => {
            let (fill, _) =
                QxlFill::read_from_prefix(&raw.u).map_err(|_| ParseError::RegionFault)?;
            let color = match fill.brush.ty.get() {
                SPICE_BRUSH_TYPE_SOLID => {
                    let (c, _) = zerocopy::little_endian::U32::read_from_prefix(&fill.brush.u)
                        .map_err(|_| ParseError::RegionFault)?;
                    c.get()
                }
                other => return Err(ParseError::UnsupportedBrush(other)),
            };
            DrawOp::Fill {
                color,
                rop: fill.rop_descriptor.get(),
            }
        }
        QXL_DRAW_COPY => {
            let (copy, _) =
                QxlCopy::read_from_prefix(&raw.u).map_err(|_| ParseError::RegionFault)?;
            DrawOp::Copy {
                src: image(mem, QxlPhys(copy.src_bitmap.get()), n_surfaces)?,
                src_area: rect(&copy.src_area)?,
                rop: copy.rop_descriptor.get(),
                scale_mode: copy.scale_mode,
            }
        }
        QXL_COPY_BITS => {
            let (bits, _) =
                QxlCopyBits::read_from_prefix(&raw.u).map_err(|_| ParseError::RegionFault)?;
            DrawOp::CopyBits {
                src_pos: Point {
                    x: bits.src_pos.x.get(),
                    y: bits.src_pos.y.get(),
                },
            }
        }
        draw_type => DrawOp::Other { draw_type },
    };
    Ok(Drawable {
        surface_id: surface_id(raw.surface_id.get(), n_surfaces)?,
        bbox: rect(&raw.bbox)?,
        clip: clip(mem, &raw.clip)?,
        effect: raw.effect,
        op,
        mm_time: raw.mm_time.get(),
    })
}

fn clip(mem: Mem<'_>, raw: &QxlClip) -> Result<Clip, ParseError> {
    match raw.ty.get() {
        SPICE_CLIP_TYPE_NONE => Ok(Clip::None),
        SPICE_CLIP_TYPE_RECTS => {
            let addr = QxlPhys(raw.data.get());
            let (rects, _) = mem.obj::<QxlClipRects>(addr)?;
            let n = rects.num_rects.get();
            if n > MAX_CLIP_RECTS {
                return Err(ParseError::TooManyClipRects(n));
            }
            let bytes = u64::from(n).saturating_mul(size_of::<QxlRect>() as u64);
            let first = chunk_addr(addr, CLIP_RECTS_CHUNK_OFFSET)?;
            let limit = (MAX_CLIP_RECTS as usize).saturating_mul(size_of::<QxlRect>());
            let data = read_chain(mem, first, bytes, limit)?;
            let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
            for chunk in data.chunks_exact(size_of::<QxlRect>()) {
                let r = QxlRect::read_from_bytes(chunk).map_err(|_| ParseError::RegionFault)?;
                out.push(rect(&r)?);
            }
            Ok(Clip::Rects(out))
        }
        other => Err(ParseError::UnknownClipType(other)),
    }
}

/// The address of an inline chunk `offset` bytes into the struct at `addr`.
fn chunk_addr(addr: QxlPhys, offset: usize) -> Result<QxlPhys, ParseError> {
    addr.checked_add(offset)
        .ok_or(ParseError::Addr(AddrError::AddressOutsideSlot {
            addr: addr.0,
            len: offset,
        }))
}

fn image(mem: Mem<'_>, addr: QxlPhys, n_surfaces: u32) -> Result<Image, ParseError> {
    let (desc, _) = mem.obj::<QxlImageDescriptor>(addr)?;
    match desc.ty {
        SPICE_IMAGE_TYPE_BITMAP => {
            let (img, _) = mem.obj::<QxlImage>(addr)?;
            bitmap(mem, desc.id.get(), &img.bitmap).map(Image::Bitmap)
        }
        SPICE_IMAGE_TYPE_SURFACE => {
            let at = chunk_addr(addr, size_of::<QxlImageDescriptor>())?;
            let (sid, _) = mem.obj::<QxlSurfaceId>(at)?;
            Ok(Image::Surface {
                surface_id: surface_id(sid.surface_id.get(), n_surfaces)?,
            })
        }
        other => Err(ParseError::UnsupportedImageType(other)),
    }
}

/// Bits per pixel of a `SPICE_BITMAP_FMT_*`.
fn bitmap_bpp(format: u8) -> Option<u32> {
    Some(match format {
        SPICE_BITMAP_FMT_1BIT_LE | SPICE_BITMAP_FMT_1BIT_BE => 1,
        SPICE_BITMAP_FMT_4BIT_LE | SPICE_BITMAP_FMT_4BIT_BE => 4,
        SPICE_BITMAP_FMT_8BIT | SPICE_BITMAP_FMT_8BIT_A => 8,
        SPICE_BITMAP_FMT_16BIT => 16,
        SPICE_BITMAP_FMT_24BIT => 24,
        SPICE_BITMAP_FMT_32BIT | SPICE_BITMAP_FMT_RGBA => 32,
        _ => return None,
    })
}

/// Bytes of one row of `width` pixels at `bpp` bits, rounded up.
fn row_bytes(width: u32, bpp: u32) -> u64 {
    u64::from(width).saturating_mul(u64::from(bpp)).div_ceil(8)
}

fn bitmap(mem: Mem<'_>, id: u64, raw: &QxlBitmap) -> Result<Bitmap, ParseError> {
    let format = raw.format;
    let bpp = bitmap_bpp(format).ok_or(ParseError::UnsupportedBitmapFormat(format))?;
    let (width, height, stride) = (raw.x.get(), raw.y.get(), raw.stride.get());
    let geometry = ParseError::InvalidBitmapGeometry {
        width,
        height,
        stride,
    };
    let row = row_bytes(width, bpp);
    if width == 0 || height == 0 || u64::from(stride) < row {
        return Err(geometry);
    }
    let total = u64::from(stride).saturating_mul(u64::from(height));
    if total > MAX_IMAGE_BYTES as u64 {
        return Err(ParseError::DataTooLarge {
            size: total,
            limit: MAX_IMAGE_BYTES,
        });
    }
    // All three fit usize: each is ≤ total ≤ MAX_IMAGE_BYTES.
    let to_usize = |v: u64| usize::try_from(v).map_err(|_| geometry.clone());
    let (row, stride_u, height_u, total_u) = (
        to_usize(row)?,
        to_usize(u64::from(stride))?,
        to_usize(u64::from(height))?,
        to_usize(total)?,
    );
    let data_addr = QxlPhys(raw.data.get());
    let source = if raw.flags & QXL_BITMAP_DIRECT != 0 {
        RowSource::Shared(mem, mem.resolve(data_addr, total_u)?)
    } else {
        RowSource::Owned(read_chain(mem, data_addr, total, MAX_IMAGE_BYTES)?)
    };
    let bottom_up = raw.flags & QXL_BITMAP_TOP_DOWN == 0;
    let data = copy_rows(source, row, stride_u, height_u, bottom_up)?;
    let palette = if format <= SPICE_BITMAP_FMT_8BIT && raw.palette.get() != 0 {
        Some(palette(mem, QxlPhys(raw.palette.get()))?)
    } else {
        None
    };
    Ok(Bitmap {
        id,
        format,
        width,
        height,
        stride: row,
        data,
        palette,
    })
}

fn palette(mem: Mem<'_>, addr: QxlPhys) -> Result<Vec<u32>, ParseError> {
    let (pal, _) = mem.obj::<QxlPalette>(addr)?;
    let n = pal.num_ents.get();
    if n > MAX_PALETTE_ENTRIES {
        return Err(ParseError::PaletteTooLarge(n));
    }
    let len = usize::from(n).saturating_mul(4);
    let span = mem.resolve(chunk_addr(addr, size_of::<QxlPalette>())?, len)?;
    let mut bytes = vec![0u8; len];
    mem.read_into(span, 0, &mut bytes)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(<[u8; 4]>::try_from(c).unwrap_or_default()))
        .collect())
}

/// Bits per pixel of a `SPICE_SURFACE_FMT_*` (the format value encodes it, as in spice).
pub fn surface_bpp(format: u32) -> Result<u32, ParseError> {
    match format {
        SPICE_SURFACE_FMT_1_A => Ok(1),
        SPICE_SURFACE_FMT_8_A => Ok(8),
        SPICE_SURFACE_FMT_16_555 | SPICE_SURFACE_FMT_16_565 => Ok(16),
        SPICE_SURFACE_FMT_32_XRGB | SPICE_SURFACE_FMT_32_ARGB => Ok(32),
        other => Err(ParseError::UnknownSurfaceFormat(other)),
    }
}

/// Checks a surface's geometry (QEMU `qxl_create_guest_primary` and spice
/// `red_validate_surface`): known format, sides within limits, `|stride| ≥ row bytes`,
/// `stride % 4 == 0`, `|stride| × height` within `MAX_SURFACE_BYTES`. Returns the row bytes.
pub fn check_surface(format: u32, width: u32, height: u32, stride: i64) -> Result<u64, ParseError> {
    let bpp = surface_bpp(format)?;
    let geometry = ParseError::InvalidSurfaceGeometry {
        width,
        height,
        stride,
    };
    let row = row_bytes(width, bpp);
    let abs = stride.unsigned_abs();
    if width == 0
        || height == 0
        || width > MAX_SURFACE_DIM
        || height > MAX_SURFACE_DIM
        || abs < row
        || abs % 4 != 0
        || abs.saturating_mul(u64::from(height)) > MAX_SURFACE_BYTES
    {
        return Err(geometry);
    }
    Ok(row)
}

fn surface_cmd(mem: Mem<'_>, addr: QxlPhys, n_surfaces: u32) -> Result<SurfaceCmd, ParseError> {
    let (raw, _) = mem.obj::<QxlSurfaceCmd>(addr)?;
    let id = surface_id(raw.surface_id.get(), n_surfaces)?;
    let kind = match raw.ty {
        QXL_SURFACE_CMD_DESTROY => SurfaceCmdKind::Destroy,
        QXL_SURFACE_CMD_CREATE => {
            let s = &raw.surface;
            let (format, width, height) = (s.format.get(), s.width.get(), s.height.get());
            let stride = i64::from(s.stride.get());
            let row = check_surface(format, width, height, stride)?;
            let initial = if raw.flags.get() & QXL_SURF_FLAG_KEEP_DATA != 0 {
                Some(surface_pixels(
                    mem,
                    QxlPhys(s.data.get()),
                    row,
                    stride,
                    height,
                )?)
            } else {
                None
            };
            SurfaceCmdKind::Create(SurfaceCreate {
                format,
                width,
                height,
                initial,
            })
        }
        other => return Err(ParseError::UnknownSurfaceCmdType(other)),
    };
    Ok(SurfaceCmd {
        surface_id: id,
        kind,
    })
}

/// Copies a surface's pixels; negative stride means the memory starts with the bottom row.
fn surface_pixels(
    mem: Mem<'_>,
    data: QxlPhys,
    row: u64,
    stride: i64,
    height: u32,
) -> Result<Vec<u8>, ParseError> {
    let abs = stride.unsigned_abs();
    let total = abs.saturating_mul(u64::from(height));
    let too_large = ParseError::DataTooLarge {
        size: total,
        limit: usize::MAX,
    };
    let to_usize = |v: u64| usize::try_from(v).map_err(|_| too_large.clone());
    let span = mem.resolve(data, to_usize(total)?)?;
    copy_rows(
        RowSource::Shared(mem, span),
        to_usize(row)?,
        to_usize(abs)?,
        to_usize(u64::from(height))?,
        stride < 0,
    )
}

fn cursor_shape(mem: Mem<'_>, addr: QxlPhys) -> Result<CursorShape, ParseError> {
    let (raw, _) = mem.obj::<QxlCursor>(addr)?;
    let h = raw.header;
    let (kind, width, height) = (h.ty.get(), h.width.get(), h.height.get());
    if kind > SPICE_CURSOR_TYPE_COLOR32 {
        return Err(ParseError::UnknownCursorType(kind));
    }
    let data_size = raw.data_size.get();
    let geometry = ParseError::InvalidCursorGeometry {
        width,
        height,
        data_size,
    };
    if width > MAX_CURSOR_DIM || height > MAX_CURSOR_DIM || data_size > MAX_CURSOR_BYTES {
        return Err(geometry);
    }
    // ALPHA data is width × height ARGB pixels; a different size would leave the worker reading
    // garbage or past the end (other types carry masks whose size depends on the type).
    let alpha_size = u32::from(width)
        .saturating_mul(u32::from(height))
        .saturating_mul(4);
    if kind == SPICE_CURSOR_TYPE_ALPHA && data_size != alpha_size {
        return Err(geometry);
    }
    let first = chunk_addr(addr, CURSOR_CHUNK_OFFSET)?;
    let data = read_chain(mem, first, u64::from(data_size), MAX_CURSOR_BYTES as usize)?;
    Ok(CursorShape {
        unique: h.unique.get(),
        kind,
        width,
        height,
        hot_x: h.hot_spot_x.get(),
        hot_y: h.hot_spot_y.get(),
        data,
    })
}
