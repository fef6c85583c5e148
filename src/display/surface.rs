//! A canonical surface: the server's own copy of a guest surface's pixels, and the draw
//! operations that change it.
//!
//! Every operation takes guest geometry as is and never panics: rectangles are clipped to the
//! surface and the clip list first, source pixels outside their image are skipped, and each
//! operation returns the damaged rectangle (the clipped destination) or `None` if it drew
//! nothing.

use std::fmt;

use super::error::DisplayError;
use super::geom::{idx, Clip, Point, Rect, Region, RegionError};
use super::huge::PixelBuf;
use super::pixels::{get_px, put_px, Combine, SourceView, BYTES_PER_PIXEL};

/// SPICE surface formats (spice-protocol enums.h `SpiceSurfaceFmt`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SurfaceFormat(pub u32);

impl SurfaceFormat {
    pub const A1: Self = Self(1);
    pub const A8: Self = Self(8);
    pub const X1R5G5B5: Self = Self(16);
    pub const R5G6B5: Self = Self(80);
    /// 32_xRGB: what every primary uses (research/spice-protocol.md §3.2.3).
    pub const XRGB32: Self = Self(32);
    pub const ARGB32: Self = Self(96);

    /// True for the formats the worker renders.
    pub fn is_supported(self) -> bool {
        self == Self::XRGB32 || self == Self::ARGB32
    }
}

impl fmt::Debug for SurfaceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::A1 => f.write_str("1_A"),
            Self::A8 => f.write_str("8_A"),
            Self::X1R5G5B5 => f.write_str("16_555"),
            Self::R5G6B5 => f.write_str("16_565"),
            Self::XRGB32 => f.write_str("32_xRGB"),
            Self::ARGB32 => f.write_str("32_ARGB"),
            other => write!(f, "SurfaceFormat({})", other.0),
        }
    }
}

/// The longest side of a surface. The Linux virtio_gpu and qxl drivers cap modes at
/// 8192 × 8192 (`XRES_MAX`/`YRES_MAX`, and `mode_config.max_width`); twice that leaves room for
/// off-screen surfaces while the per-surface byte limit below does the real capping.
pub const MAX_SURFACE_SIDE: u32 = 16384;

/// The most bytes one surface may hold: one 8192 × 8192 32-bit screen (256 MiB). Bigger
/// requests are refused before any allocation.
pub const MAX_SURFACE_BYTES: usize = 8192 * 8192 * BYTES_PER_PIXEL;

/// One surface's pixels, 32 bits per pixel, rows top-down, `stride = width × 4`.
pub struct Surface {
    width: u32,
    height: u32,
    format: SurfaceFormat,
    pixels: PixelBuf,
}

impl fmt::Debug for Surface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Surface")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// Bytes a surface of this size takes, if it is within the limits.
pub fn surface_bytes(width: u32, height: u32) -> Result<usize, DisplayError> {
    let too_big = DisplayError::SurfaceSizeOutOfRange {
        width,
        height,
        max: MAX_SURFACE_SIDE,
    };
    if width == 0 || height == 0 || width > MAX_SURFACE_SIDE || height > MAX_SURFACE_SIDE {
        return Err(too_big);
    }
    usize::try_from(u64::from(width) * u64::from(height))
        .ok()
        .and_then(|n| n.checked_mul(BYTES_PER_PIXEL))
        .filter(|&n| n <= MAX_SURFACE_BYTES)
        .ok_or(too_big)
}

impl Surface {
    /// A black surface, or one starting from `initial` (top row first, `width × 4` bytes per
    /// row; what is missing stays black, what is extra is ignored).
    pub fn new(
        width: u32,
        height: u32,
        format: SurfaceFormat,
        initial: Option<&[u8]>,
    ) -> Result<Surface, DisplayError> {
        if !format.is_supported() {
            return Err(DisplayError::UnsupportedSurfaceFormat(format));
        }
        let len = surface_bytes(width, height)?;
        let mut pixels = PixelBuf::zeroed(len);
        if let Some(initial) = initial {
            let n = initial.len().min(len);
            pixels[..n].copy_from_slice(&initial[..n]);
        }
        Ok(Surface {
            width,
            height,
            format,
            pixels,
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn format(&self) -> SurfaceFormat {
        self.format
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        idx_u32(self.width) * BYTES_PER_PIXEL
    }

    /// Bytes of memory a surface of `bytes` pixel bytes holds (what limits must count).
    pub const fn footprint_of(bytes: usize) -> usize {
        PixelBuf::footprint_of(bytes)
    }

    /// All pixels, rows top-down, [`Surface::stride`] bytes each.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The whole surface as a rectangle (sides fit `i32`: [`MAX_SURFACE_SIDE`]).
    pub fn bounds(&self) -> Rect {
        let side = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        Rect::ltrb(0, 0, side(self.width), side(self.height))
    }

    /// A copy of the pixels of `rect`, its rows top-down, `width × 4` bytes each; `None`
    /// unless `rect` is non-empty and inside the surface.
    pub fn read_rect(&self, rect: Rect) -> Option<Vec<u8>> {
        if rect.is_empty() || !self.bounds().contains(&rect) {
            return None;
        }
        let stride = self.stride();
        let (x0, x1) = (
            idx(rect.left) * BYTES_PER_PIXEL,
            idx(rect.right) * BYTES_PER_PIXEL,
        );
        let mut out = Vec::with_capacity((x1 - x0) * idx(rect.bottom - rect.top));
        for y in idx(rect.top)..idx(rect.bottom) {
            out.extend_from_slice(self.pixels.get(y * stride + x0..y * stride + x1)?);
        }
        Some(out)
    }

    /// Appends the pixels of `rect` to `out` as 24-bit pixels (bytes B, G, R: SPICE's
    /// `SPICE_BITMAP_FMT_24BIT`, pixman's little-endian r8g8b8), rows top-down, `stride` bytes
    /// each with the padding zeroed; `None`, and nothing appended, unless `rect` is non-empty
    /// and inside the surface and a row fits `stride`.
    pub fn read_rect_bgr(&self, rect: Rect, stride: usize, out: &mut Vec<u8>) -> Option<()> {
        if rect.is_empty() || !self.bounds().contains(&rect) {
            return None;
        }
        let width = idx(rect.right - rect.left);
        let row_bytes = width.checked_mul(BGR_BYTES)?;
        if stride < row_bytes {
            return None;
        }
        let rows = idx(rect.bottom - rect.top);
        let total = stride.checked_mul(rows)?;
        let end = out.len().checked_add(total)?;
        out.reserve(total);
        let src_stride = self.stride();
        let x0 = idx(rect.left) * BYTES_PER_PIXEL;
        for y in idx(rect.top)..idx(rect.bottom) {
            // Grown a row at a time, so the zero fill touches lines the packing writes next,
            // while they are in cache: filling the whole image first costs one more pass over
            // memory (about 3 % of the daemon's CPU on video).
            let at = out.len();
            out.resize(at + stride, 0);
            let from = y * src_stride + x0;
            let src = self.pixels.get(from..from + width * BYTES_PER_PIXEL);
            if let (Some(src), Some(dst)) = (src, out.get_mut(at..at + row_bytes)) {
                pack_bgr(src, dst);
            }
        }
        debug_assert_eq!(out.len(), end);
        Some(())
    }

    /// This surface as the source of a copy (the worker copies a source's part out instead,
    /// as the source may be the target).
    #[cfg(test)]
    pub(crate) fn view(&self) -> SourceView<'_> {
        let alpha = self.format == SurfaceFormat::ARGB32;
        SourceView::from_surface_pixels(self.width, self.height, self.stride(), alpha, &self.pixels)
    }

    fn region(&self, bbox: Rect, clip: &Clip) -> Result<Option<Region>, DisplayError> {
        match Region::new(bbox, self.bounds(), clip) {
            Ok(region) => Ok(Some(region)),
            Err(RegionError::Empty) => Ok(None),
            Err(RegionError::TooManyClipRects(n)) => Err(DisplayError::TooManyClipRects(n)),
        }
    }

    /// Row `y`'s pixels, empty past the last row.
    pub(crate) fn row(&self, y: usize) -> &[u8] {
        let stride = self.stride();
        let start = y.saturating_mul(stride).min(self.pixels.len());
        let end = start.saturating_add(stride).min(self.pixels.len());
        &self.pixels[start..end]
    }

    fn row_mut(&mut self, y: usize) -> &mut [u8] {
        let stride = self.stride();
        let start = y.saturating_mul(stride).min(self.pixels.len());
        let end = start.saturating_add(stride).min(self.pixels.len());
        &mut self.pixels[start..end]
    }

    /// QXL_DRAW_FILL with a solid brush.
    pub fn fill(
        &mut self,
        bbox: Rect,
        clip: &Clip,
        color: u32,
        rop: u16,
    ) -> Result<Option<Rect>, DisplayError> {
        let Some(region) = self.region(bbox, clip)? else {
            return Ok(None);
        };
        let combine = Combine::for_fill(rop);
        let bytes = color.to_le_bytes();
        region.for_each_span(|y, x0, x1| {
            let row = self.row_mut(y);
            if combine.is_put() {
                let span = row
                    .get_mut(x0 * BYTES_PER_PIXEL..x1 * BYTES_PER_PIXEL)
                    .unwrap_or_default();
                for px in span.chunks_exact_mut(BYTES_PER_PIXEL) {
                    px.copy_from_slice(&bytes);
                }
            } else {
                for x in x0..x1 {
                    put_px(row, x, combine.apply(color, get_px(row, x)));
                }
            }
        });
        Ok(Some(region.bounds()))
    }

    /// QXL_DRAW_COPY: `src_area` of `src` drawn onto `bbox`, scaled nearest-neighbour when
    /// the sizes differ. Destination pixels whose source lies outside `src` (or past its
    /// data) are left as they are.
    pub(crate) fn copy(
        &mut self,
        bbox: Rect,
        clip: &Clip,
        src: &SourceView<'_>,
        src_area: Rect,
        rop: u16,
    ) -> Result<Option<Rect>, DisplayError> {
        if src_area.is_empty() {
            return Ok(None);
        }
        let Some(region) = self.region(bbox, clip)? else {
            return Ok(None);
        };
        let combine = Combine::for_copy(rop);
        if combine.is_put() && bbox.width() == src_area.width() {
            if let Some(opaque) = src.direct32() {
                // The common case (QEMU's and virtio-gpu's updates): rows copied as bytes.
                region.for_each_span(|y, x0, x1| {
                    self.copy_span_direct(y, x0, x1, bbox, src, src_area, opaque);
                });
                return Ok(Some(region.bounds()));
            }
        }
        let b = region.bounds();
        // Source column of each destination column in the region's bounds: computed once, so
        // the per-pixel loop does no arithmetic on guest values.
        let xmap: Vec<Option<u32>> = (b.left..b.right)
            .map(|x| {
                map_axis(
                    x,
                    bbox.left,
                    bbox.width(),
                    src_area.left,
                    src_area.width(),
                    src.width(),
                )
            })
            .collect();
        let left = idx(b.left);
        region.for_each_span(|y, x0, x1| {
            let dy = i32::try_from(y).unwrap_or(i32::MAX);
            let Some(sy) = map_axis(
                dy,
                bbox.top,
                bbox.height(),
                src_area.top,
                src_area.height(),
                src.height(),
            ) else {
                return;
            };
            let Some(src_row) = src.row(sy) else {
                return;
            };
            let row = self.row_mut(y);
            for x in x0..x1 {
                let Some(sx) = xmap.get(x - left).copied().flatten() else {
                    continue;
                };
                let Some(p) = src.pixel(src_row, sx) else {
                    continue;
                };
                let v = if combine.is_put() {
                    p
                } else {
                    combine.apply(p, get_px(row, x))
                };
                put_px(row, x, v);
            }
        });
        Ok(Some(b))
    }

    /// One span of an unscaled plain copy from 32-bit pixels: the part whose source lies in
    /// the bitmap row is copied as bytes; `opaque` sets the alpha byte of xRGB sources.
    #[allow(clippy::too_many_arguments)] // one call site, each value a different axis of the draw
    fn copy_span_direct(
        &mut self,
        y: usize,
        x0: usize,
        x1: usize,
        bbox: Rect,
        src: &SourceView<'_>,
        src_area: Rect,
        opaque: bool,
    ) {
        let dy = i32::try_from(y).unwrap_or(i32::MAX);
        let (top, height) = (src_area.top, src_area.height());
        let Some(sy) = map_axis(dy, bbox.top, bbox.height(), top, height, src.height()) else {
            return;
        };
        let Some(src_row) = src.row(sy) else {
            return;
        };
        let as_i64 = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        let available = as_i64(src_row.len() / BYTES_PER_PIXEL).min(i64::from(src.width()));
        // Source column of x0, then the offsets into the span whose source exists.
        let sx0 = i64::from(src_area.left) + as_i64(x0) - i64::from(bbox.left);
        let skip = (-sx0).max(0);
        let end = as_i64(x1 - x0).min(available - sx0);
        let (Ok(skip), Ok(end), Ok(from)) = (
            usize::try_from(skip),
            usize::try_from(end),
            usize::try_from(sx0 + skip),
        ) else {
            return;
        };
        if end <= skip {
            return;
        }
        let n = (end - skip) * BYTES_PER_PIXEL;
        let Some(pixels) = src_row
            .get(from * BYTES_PER_PIXEL..)
            .and_then(|r| r.get(..n))
        else {
            return;
        };
        let start = (x0 + skip) * BYTES_PER_PIXEL;
        let Some(dst) = self.row_mut(y).get_mut(start..start + n) else {
            return;
        };
        if opaque {
            copy_opaque(pixels, dst);
        } else {
            dst.copy_from_slice(pixels);
        }
    }

    /// QXL_DRAW_COPY_BITS: the pixels at `src_pos` (the bbox's top-left moved there) are copied
    /// onto `bbox`, as if through a temporary buffer, so overlap in any direction is safe.
    /// Returns the damage and whether every destination pixel had a source pixel inside the
    /// surface and the clip left the bbox whole (then a client can replay it as COPY_BITS).
    pub fn copy_bits(
        &mut self,
        bbox: Rect,
        clip: &Clip,
        src_pos: Point,
    ) -> Result<Option<(Rect, bool)>, DisplayError> {
        let Some(region) = self.region(bbox, clip)? else {
            return Ok(None);
        };
        let b = region.bounds();
        let dx = i64::from(src_pos.x) - i64::from(bbox.left);
        let dy = i64::from(src_pos.y) - i64::from(bbox.top);
        let bounds = self.bounds();
        let exact = region.is_rectangular()
            && b == bbox
            && bbox.translate(dx, dy).is_some_and(|s| bounds.contains(&s));
        // The source pixels the region needs, read before any is overwritten.
        let Some(src) = b.translate(dx, dy).and_then(|s| s.intersect(&bounds)) else {
            return Ok(Some((b, false)));
        };
        let Some(saved) = self.read_rect(src) else {
            return Ok(Some((b, false)));
        };
        let saved_stride = idx(src.right - src.left) * BYTES_PER_PIXEL;
        region.for_each_span(|y, x0, x1| {
            // Destination span → source span, cut to what `saved` holds.
            let sy = i64::try_from(y).unwrap_or(i64::MAX) + dy;
            if sy < i64::from(src.top) || sy >= i64::from(src.bottom) {
                return;
            }
            let to_src = |x: usize| i64::try_from(x).unwrap_or(i64::MAX) + dx;
            let sx0 = to_src(x0).max(i64::from(src.left));
            let sx1 = to_src(x1).min(i64::from(src.right));
            if sx0 >= sx1 {
                return;
            }
            let (Ok(row_in_saved), Ok(col), Ok(n), Ok(dst_x)) = (
                usize::try_from(sy - i64::from(src.top)),
                usize::try_from(sx0 - i64::from(src.left)),
                usize::try_from(sx1 - sx0),
                usize::try_from(sx0 - dx),
            ) else {
                return;
            };
            let from = row_in_saved * saved_stride + col * BYTES_PER_PIXEL;
            let Some(pixels) = saved.get(from..from + n * BYTES_PER_PIXEL) else {
                return;
            };
            let row = self.row_mut(y);
            if let Some(dst) = row.get_mut(dst_x * BYTES_PER_PIXEL..(dst_x + n) * BYTES_PER_PIXEL) {
                dst.copy_from_slice(pixels);
            }
        });
        Ok(Some((b, exact)))
    }
}

/// Bytes of a 24-bit pixel.
const BGR_BYTES: usize = 3;

/// Copies xRGB pixels with their fourth byte set to 0xff, two pixels a word in one pass:
/// measured 0.08 ns a pixel on 1080p, against 0.23 for a copy followed by a pass setting
/// each alpha byte (the worker's largest cost on full-screen video).
fn copy_opaque(src: &[u8], dst: &mut [u8]) {
    const WORD: usize = 2 * BYTES_PER_PIXEL;
    const ALPHA: u64 = 0xff00_0000_ff00_0000;
    let mut src_words = src.chunks_exact(WORD);
    let mut dst_words = dst.chunks_exact_mut(WORD);
    for (s, d) in (&mut src_words).zip(&mut dst_words) {
        let w = u64::from_le_bytes(<[u8; WORD]>::try_from(s).unwrap_or_default()) | ALPHA;
        d.copy_from_slice(&w.to_le_bytes());
    }
    let rest = src_words.remainder().chunks_exact(BYTES_PER_PIXEL);
    for (s, d) in rest.zip(dst_words.into_remainder().chunks_exact_mut(BYTES_PER_PIXEL)) {
        d.copy_from_slice(s);
        d[3] = 0xff;
    }
}

/// Packs 32-bit pixels (B, G, R, X) into 24-bit ones (B, G, R), `dst.len() / 3` of them.
/// Eight pixels at a time through 64-bit words (two pixels a word, three words out), then
/// pairs, then single pixels. Measured on 1080p: 0.16 ns a pixel, against 0.19 two pixels at
/// a time and 0.27 for a 3-byte copy per pixel.
fn pack_bgr(src: &[u8], dst: &mut [u8]) {
    const PAIR: usize = 2 * BYTES_PER_PIXEL;
    /// Two pixels of a word, packed into its low 48 bits.
    fn pair(s: &[u8]) -> u64 {
        let p = u64::from_le_bytes(<[u8; PAIR]>::try_from(s).unwrap_or_default());
        (p & 0x00ff_ffff) | ((p >> 8) & 0xffff_ff00_0000)
    }
    let mut src_octets = src.chunks_exact(4 * PAIR);
    let mut dst_octets = dst.chunks_exact_mut(8 * BGR_BYTES);
    for (s, d) in (&mut src_octets).zip(&mut dst_octets) {
        let (a, b, c, e) = (
            pair(&s[0..8]),
            pair(&s[8..16]),
            pair(&s[16..24]),
            pair(&s[24..32]),
        );
        d[0..8].copy_from_slice(&(a | (b << 48)).to_le_bytes());
        d[8..16].copy_from_slice(&((b >> 16) | (c << 32)).to_le_bytes());
        d[16..24].copy_from_slice(&((c >> 32) | (e << 16)).to_le_bytes());
    }
    let mut src_pairs = src_octets.remainder().chunks_exact(PAIR);
    let mut dst_pairs = dst_octets.into_remainder().chunks_exact_mut(2 * BGR_BYTES);
    for (s, d) in (&mut src_pairs).zip(&mut dst_pairs) {
        d.copy_from_slice(&pair(s).to_le_bytes()[..2 * BGR_BYTES]);
    }
    let src_rest = src_pairs.remainder().chunks_exact(BYTES_PER_PIXEL);
    for (s, d) in src_rest.zip(dst_pairs.into_remainder().chunks_exact_mut(BGR_BYTES)) {
        d.copy_from_slice(&s[..BGR_BYTES]);
    }
}

fn idx_u32(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// The source coordinate for destination coordinate `d` along one axis, or `None` if it falls
/// outside `0..src_len`. `dst_start`/`dst_len` describe the bbox, `src_start`/`src_len_area`
/// the source area. Equal lengths map one to one; otherwise each destination pixel samples the
/// source at its centre (nearest neighbour). Computed in `i128`: guest lengths reach 2³².
fn map_axis(
    d: i32,
    dst_start: i32,
    dst_len: i64,
    src_start: i32,
    src_area_len: i64,
    src_len: u32,
) -> Option<u32> {
    if dst_len <= 0 || src_area_len <= 0 {
        return None;
    }
    let offset = i64::from(d) - i64::from(dst_start);
    let s = if dst_len == src_area_len {
        i128::from(src_start) + i128::from(offset)
    } else {
        let scaled =
            (2 * i128::from(offset) + 1) * i128::from(src_area_len) / (2 * i128::from(dst_len));
        i128::from(src_start) + scaled
    };
    u32::try_from(s).ok().filter(|&s| s < src_len)
}

#[cfg(test)]
mod tests;
