//! Reading source pixels (bitmaps of every uncompressed SPICE format, or a surface) as ARGB,
//! and combining them with the destination by ROP descriptor.
//!
//! Pixels are `u32` 0xAARRGGBB, stored little-endian (bytes B, G, R, A): the layout of SPICE's
//! 32BIT/RGBA bitmaps and of both 32-bit surface formats, so surfaces go on the wire unchanged.

use super::error::DisplayError;
use super::source::{Bitmap, BitmapFormat, Rop};

/// Bytes per surface pixel of every format the worker renders (32_xRGB, 32_ARGB).
pub(crate) const BYTES_PER_PIXEL: usize = 4;

/// The alpha byte of an opaque pixel: formats without alpha (32BIT, 24BIT, 16BIT, palettes)
/// read as opaque, as pixman reads x8r8g8b8 when spice-server's canvas composites them.
const OPAQUE: u32 = 0xff00_0000;

/// A read-only view of a source image, rows counted from the top.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SourceView<'a> {
    format: BitmapFormat,
    width: u32,
    height: u32,
    stride: usize,
    top_down: bool,
    data: &'a [u8],
    palette: &'a [u32],
}

/// Bits per pixel of the formats a copy can read.
fn bits_per_pixel(format: BitmapFormat) -> Option<u64> {
    Some(match format {
        BitmapFormat::ONE_BIT_LE | BitmapFormat::ONE_BIT_BE => 1,
        BitmapFormat::FOUR_BIT_LE | BitmapFormat::FOUR_BIT_BE => 4,
        BitmapFormat::EIGHT_BIT => 8,
        BitmapFormat::SIXTEEN_BIT => 16,
        BitmapFormat::TWENTY_FOUR_BIT => 24,
        BitmapFormat::THIRTY_TWO_BIT | BitmapFormat::RGBA => 32,
        _ => return None,
    })
}

fn needs_palette(format: BitmapFormat) -> bool {
    matches!(
        format,
        BitmapFormat::ONE_BIT_LE
            | BitmapFormat::ONE_BIT_BE
            | BitmapFormat::FOUR_BIT_LE
            | BitmapFormat::FOUR_BIT_BE
            | BitmapFormat::EIGHT_BIT
    )
}

impl<'a> SourceView<'a> {
    /// Checks the format, palette and stride of a guest bitmap. Short `data` is not an error:
    /// the rows and pixels it lacks are simply not drawn.
    pub(crate) fn from_bitmap(bitmap: &'a Bitmap) -> Result<Self, DisplayError> {
        let format = BitmapFormat(bitmap.format);
        let bpp =
            bits_per_pixel(format).ok_or(DisplayError::UnsupportedBitmapFormat(bitmap.format))?;
        let palette = match (&bitmap.palette, needs_palette(format)) {
            (Some(p), true) => p.as_slice(),
            (None, true) => return Err(DisplayError::MissingPalette(bitmap.format)),
            (_, false) => &[],
        };
        // "stride ... must be ≥ ceil(x × bpp / 8)" (spice-common spice.proto BitmapData).
        let min_row = (u64::from(bitmap.width) * bpp).div_ceil(8);
        if u64::try_from(bitmap.stride).is_ok_and(|s| s < min_row) {
            return Err(DisplayError::BitmapStrideTooShort {
                format: bitmap.format,
                width: bitmap.width,
                stride: bitmap.stride,
            });
        }
        Ok(Self {
            format,
            width: bitmap.width,
            height: bitmap.height,
            stride: bitmap.stride,
            top_down: bitmap.top_down,
            data: &bitmap.data,
            palette,
        })
    }

    /// A view of 32-bit surface pixels (`alpha`: the surface is 32_ARGB).
    pub(crate) fn from_surface_pixels(
        width: u32,
        height: u32,
        stride: usize,
        alpha: bool,
        data: &'a [u8],
    ) -> Self {
        Self {
            format: if alpha {
                BitmapFormat::RGBA
            } else {
                BitmapFormat::THIRTY_TWO_BIT
            },
            width,
            height,
            stride,
            top_down: true,
            data,
            palette: &[],
        }
    }

    pub(crate) fn width(&self) -> u32 {
        self.width
    }

    pub(crate) fn height(&self) -> u32 {
        self.height
    }

    /// For 32-bit sources, whether their alpha byte must be forced opaque (32BIT) or kept
    /// (RGBA); `None` for the formats that need decoding.
    pub(crate) fn direct32(&self) -> Option<bool> {
        match self.format {
            BitmapFormat::THIRTY_TWO_BIT => Some(true),
            BitmapFormat::RGBA => Some(false),
            _ => None,
        }
    }

    /// Row `y` (0 = top) as far as `data` holds it, or `None` past the data or the height.
    pub(crate) fn row(&self, y: u32) -> Option<&'a [u8]> {
        if y >= self.height {
            return None;
        }
        let stored = if self.top_down {
            y
        } else {
            self.height - 1 - y
        };
        let start = usize::try_from(stored).ok()?.checked_mul(self.stride)?;
        let rest = self.data.get(start..)?;
        rest.get(..self.stride)
            .or(Some(rest))
            .filter(|r| !r.is_empty())
    }

    /// Pixel `x` of `row` as ARGB, `None` if the row is too short to hold it.
    pub(crate) fn pixel(&self, row: &[u8], x: u32) -> Option<u32> {
        let x = usize::try_from(x).ok()?;
        let entry = |i: usize| self.palette.get(i).map_or(OPAQUE, |c| c | OPAQUE);
        match self.format {
            BitmapFormat::THIRTY_TWO_BIT => Some(le32(row, x)? | OPAQUE),
            BitmapFormat::RGBA => le32(row, x),
            BitmapFormat::TWENTY_FOUR_BIT => {
                let p = row.get(x.checked_mul(3)?..)?.get(..3)?;
                Some(OPAQUE | u32::from(p[2]) << 16 | u32::from(p[1]) << 8 | u32::from(p[0]))
            }
            BitmapFormat::SIXTEEN_BIT => {
                let p = row.get(x.checked_mul(2)?..)?.get(..2)?;
                Some(x1r5g5b5_to_argb(u16::from_le_bytes([p[0], p[1]])))
            }
            BitmapFormat::EIGHT_BIT => row.get(x).map(|&i| entry(usize::from(i))),
            BitmapFormat::FOUR_BIT_LE | BitmapFormat::FOUR_BIT_BE => {
                let byte = *row.get(x / 2)?;
                // BE: the first pixel is in the high nibble.
                let high_first = self.format == BitmapFormat::FOUR_BIT_BE;
                let i = if (x % 2 == 0) == high_first {
                    byte >> 4
                } else {
                    byte & 0x0f
                };
                Some(entry(usize::from(i)))
            }
            BitmapFormat::ONE_BIT_LE | BitmapFormat::ONE_BIT_BE => {
                let byte = *row.get(x / 8)?;
                let bit = if self.format == BitmapFormat::ONE_BIT_BE {
                    7 - x % 8
                } else {
                    x % 8
                };
                Some(entry(usize::from((byte >> bit) & 1)))
            }
            _ => None,
        }
    }
}

fn le32(row: &[u8], x: usize) -> Option<u32> {
    let p = row.get(x.checked_mul(4)?..)?.get(..4)?;
    Some(u32::from_le_bytes([p[0], p[1], p[2], p[3]]))
}

/// Widens 5-bit channels by repeating their top bits, so 0x1f becomes 0xff.
fn x1r5g5b5_to_argb(p: u16) -> u32 {
    let widen = |c: u16| {
        let c = u32::from(c & 0x1f);
        (c << 3) | (c >> 2)
    };
    OPAQUE | widen(p >> 10) << 16 | widen(p >> 5) << 8 | widen(p)
}

/// Reads surface pixel `x` of a row slice.
pub(crate) fn get_px(row: &[u8], x: usize) -> u32 {
    le32(row, x).unwrap_or(0)
}

/// Writes surface pixel `x` of a row slice (ignored outside the row).
pub(crate) fn put_px(row: &mut [u8], x: usize, v: u32) {
    if let Some(p) = x
        .checked_mul(4)
        .and_then(|i| row.get_mut(i..))
        .and_then(|r| r.get_mut(..4))
    {
        p.copy_from_slice(&v.to_le_bytes());
    }
}

/// How a draw combines its source (a bitmap or a brush) with the destination.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Combine {
    rop: u16,
    /// The inversion bit that applies to this draw's source: INVERS_SRC for copies,
    /// INVERS_BRUSH for fills (spice-common canvas_base.c `ropd_descriptor_to_rop`).
    src_invert: u16,
}

impl Combine {
    pub(crate) fn for_copy(rop: u16) -> Self {
        Self {
            rop,
            src_invert: Rop::INVERS_SRC,
        }
    }

    pub(crate) fn for_fill(rop: u16) -> Self {
        Self {
            rop,
            src_invert: Rop::INVERS_BRUSH,
        }
    }

    /// A plain copy: the source replaces the destination. Unknown or missing operation bits
    /// are drawn as PUT too: showing the guest's pixels beats dropping them.
    pub(crate) fn is_put(&self) -> bool {
        let ops = Rop::OP_OR
            | Rop::OP_AND
            | Rop::OP_XOR
            | Rop::OP_BLACKNESS
            | Rop::OP_WHITENESS
            | Rop::OP_INVERS;
        let inverts = self.src_invert | Rop::INVERS_DEST | Rop::INVERS_RES;
        self.rop & (ops | inverts) == 0
    }

    /// The result pixel. The operations are bitwise on the whole 32-bit value, as spice-common's
    /// canvas applies them to 32-bit surfaces (`spice_pixman_blit_rop`, `_fill_rect_rop`).
    pub(crate) fn apply(&self, src: u32, dst: u32) -> u32 {
        let s = if self.rop & self.src_invert != 0 {
            !src
        } else {
            src
        };
        let d = if self.rop & Rop::INVERS_DEST != 0 {
            !dst
        } else {
            dst
        };
        let r = if self.rop & Rop::OP_OR != 0 {
            s | d
        } else if self.rop & Rop::OP_AND != 0 {
            s & d
        } else if self.rop & Rop::OP_XOR != 0 {
            s ^ d
        } else if self.rop & Rop::OP_BLACKNESS != 0 {
            0
        } else if self.rop & Rop::OP_WHITENESS != 0 {
            u32::MAX
        } else if self.rop & Rop::OP_INVERS != 0 {
            !d
        } else {
            s
        };
        if self.rop & Rop::INVERS_RES != 0 {
            !r
        } else {
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitmap(format: BitmapFormat, width: u32, stride: usize, data: Vec<u8>) -> Bitmap {
        Bitmap {
            format: format.0,
            width,
            height: 1,
            stride,
            top_down: true,
            data,
            palette: None,
        }
    }

    #[test]
    fn decodes_every_direct_format() {
        let b = bitmap(BitmapFormat::TWENTY_FOUR_BIT, 1, 3, vec![0x11, 0x22, 0x33]);
        let v = SourceView::from_bitmap(&b).unwrap();
        assert_eq!(v.pixel(v.row(0).unwrap(), 0), Some(0xff33_2211));
        let b = bitmap(
            BitmapFormat::SIXTEEN_BIT,
            1,
            2,
            0x7c1fu16.to_le_bytes().to_vec(),
        );
        let v = SourceView::from_bitmap(&b).unwrap();
        assert_eq!(v.pixel(v.row(0).unwrap(), 0), Some(0xffff_00ff));
        let b = bitmap(BitmapFormat::THIRTY_TWO_BIT, 1, 4, vec![1, 2, 3, 0]);
        let v = SourceView::from_bitmap(&b).unwrap();
        assert_eq!(v.pixel(v.row(0).unwrap(), 0), Some(0xff03_0201));
        let b = bitmap(BitmapFormat::RGBA, 1, 4, vec![1, 2, 3, 0x40]);
        let v = SourceView::from_bitmap(&b).unwrap();
        assert_eq!(v.pixel(v.row(0).unwrap(), 0), Some(0x4003_0201));
    }

    #[test]
    fn decodes_palette_formats_in_bit_order() {
        let mut b = bitmap(BitmapFormat::ONE_BIT_LE, 8, 1, vec![0b0000_0010]);
        b.palette = Some(vec![0x000000, 0xffffff]);
        let v = SourceView::from_bitmap(&b).unwrap();
        let row = v.row(0).unwrap();
        assert_eq!(
            (v.pixel(row, 0), v.pixel(row, 1)),
            (Some(OPAQUE), Some(u32::MAX))
        );
        let mut b = b.clone();
        b.format = BitmapFormat::ONE_BIT_BE.0;
        let v = SourceView::from_bitmap(&b).unwrap();
        assert_eq!(v.pixel(v.row(0).unwrap(), 6), Some(u32::MAX));
        let mut b = bitmap(BitmapFormat::FOUR_BIT_BE, 2, 1, vec![0x10]);
        b.palette = Some(vec![0x0a, 0x0b]);
        let v = SourceView::from_bitmap(&b).unwrap();
        let row = v.row(0).unwrap();
        assert_eq!(
            (v.pixel(row, 0), v.pixel(row, 1)),
            (Some(OPAQUE | 0x0b), Some(OPAQUE | 0x0a))
        );
        let mut b = bitmap(BitmapFormat::EIGHT_BIT, 2, 2, vec![1, 200]);
        b.palette = Some(vec![0, 0x123456]);
        let v = SourceView::from_bitmap(&b).unwrap();
        let row = v.row(0).unwrap();
        // An index past the palette reads as black rather than failing the draw.
        assert_eq!(
            (v.pixel(row, 0), v.pixel(row, 1)),
            (Some(0xff12_3456), Some(OPAQUE))
        );
    }

    #[test]
    fn rejects_bad_bitmaps() {
        let b = bitmap(BitmapFormat::EIGHT_BIT, 2, 2, vec![0, 0]);
        assert_eq!(
            SourceView::from_bitmap(&b).unwrap_err(),
            DisplayError::MissingPalette(5)
        );
        let b = bitmap(BitmapFormat::EIGHT_BIT_A, 2, 2, vec![0, 0]);
        assert_eq!(
            SourceView::from_bitmap(&b).unwrap_err(),
            DisplayError::UnsupportedBitmapFormat(10)
        );
        let b = bitmap(BitmapFormat::THIRTY_TWO_BIT, 2, 7, vec![0; 8]);
        assert!(matches!(
            SourceView::from_bitmap(&b).unwrap_err(),
            DisplayError::BitmapStrideTooShort { .. }
        ));
        let b = bitmap(BitmapFormat::THIRTY_TWO_BIT, u32::MAX, usize::MAX, vec![]);
        let v = SourceView::from_bitmap(&b).unwrap();
        assert_eq!(v.row(0), None);
    }

    #[test]
    fn bottom_up_rows_and_short_data() {
        let b = Bitmap {
            format: BitmapFormat::THIRTY_TWO_BIT.0,
            width: 1,
            height: 3,
            stride: 4,
            top_down: false,
            data: vec![1, 0, 0, 0, 2, 0, 0],
            palette: None,
        };
        let v = SourceView::from_bitmap(&b).unwrap();
        assert_eq!(v.row(0), None, "the top row is stored last and is missing");
        let row = v.row(1).unwrap();
        assert_eq!(v.pixel(row, 0), None, "the middle row is cut short");
        assert_eq!(v.pixel(v.row(2).unwrap(), 0), Some(OPAQUE | 1));
        assert_eq!(v.row(3), None);
    }

    #[test]
    fn rops_combine_bitwise() {
        let (s, d) = (0x00ff_00f0, 0x0f0f_0f0f);
        assert_eq!(Combine::for_copy(Rop::OP_PUT).apply(s, d), s);
        assert!(Combine::for_copy(Rop::OP_PUT).is_put());
        assert!(!Combine::for_copy(Rop::OP_PUT | Rop::INVERS_SRC).is_put());
        assert_eq!(Combine::for_copy(Rop::OP_OR).apply(s, d), s | d);
        assert_eq!(Combine::for_copy(Rop::OP_AND).apply(s, d), s & d);
        assert_eq!(Combine::for_copy(Rop::OP_XOR).apply(s, d), s ^ d);
        assert_eq!(Combine::for_copy(Rop::OP_INVERS).apply(s, d), !d);
        assert_eq!(Combine::for_fill(Rop::OP_BLACKNESS).apply(s, d), 0);
        assert_eq!(Combine::for_fill(Rop::OP_WHITENESS).apply(s, d), u32::MAX);
        assert_eq!(
            Combine::for_fill(Rop::OP_PUT | Rop::INVERS_BRUSH).apply(s, d),
            !s
        );
        assert_eq!(
            Combine::for_copy(Rop::OP_PUT | Rop::INVERS_BRUSH).apply(s, d),
            s
        );
        assert_eq!(
            Combine::for_copy(Rop::OP_OR | Rop::INVERS_DEST).apply(s, d),
            s | !d
        );
        assert_eq!(
            Combine::for_copy(Rop::OP_AND | Rop::INVERS_RES).apply(s, d),
            !(s & d)
        );
    }
}
