//! Encodes a rectangle's pixels once for every client: the wire payload of a 24-bit raw
//! bitmap, of an LZ4 image when compression pays, or of a QUIC image (natural content, where
//! LZ4 does not pay; see [`quic`]).
//!
//! Pixels go out as `SPICE_BITMAP_FMT_24BIT` (bytes B, G, R): the primary is sent as
//! `SPICE_SURFACE_FMT_32_xRGB`, whose fourth byte the client ignores, so a quarter of every
//! image is dropped before it costs compression, copies or socket writes. spice-common decodes
//! both forms: a 24BIT bitmap becomes pixman's little-endian r8g8b8 (`spice_bitmap_try_as_pixman`,
//! or `bitmap_24_to_32` when the stride is not a multiple of 4), and `canvas_get_lz4` decodes
//! 24BIT blocks into an r8g8b8 image whose rows it expects packed at `width × 3` bytes.
//!
//! LZ4 (spice-server lz4-encoder.c; spice-common canvas_base.c `canvas_get_lz4`): the blocks
//! of one image are decoded by one `LZ4_decompress_safe_continue` stream into one buffer, so
//! a block may reference the blocks before it. The compressor is `lz4_flex`'s block API.
//! Natural content (video) barely compresses: as spice-server does, such images go raw, and
//! the decision is made on a first slice so that noise costs one slice of compression.

use std::cell::RefCell;
use std::sync::Arc;

use super::wire::{
    BitmapFlags, BitmapFormat, BitmapHeader, BitmapPalette, EncodedImage, ImageType, Lz4Writer,
};

/// Bytes of one 24-bit pixel.
pub const BGR_BYTES: usize = 3;

/// LZ4 is tried first on a slice of this many bytes (about 20 rows of a 1080p frame, the
/// whole of most text updates); the rest is compressed only if that slice paid.
const PROBE_BYTES: usize = 64 * 1024;

/// An image smaller than this is compressed whole, without a separate probe.
const PROBE_WHOLE_BELOW: usize = 2 * PROBE_BYTES;

/// LZ4 must bring the probe to at most `PAYS_NUM / PAYS_DEN` of its size: saving less than
/// an eighth is not worth compressing at the server and decompressing at every client.
const PAYS_NUM: usize = 7;
const PAYS_DEN: usize = 8;

/// How images are compressed for the wire (the daemon's `image-compression` option).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ImageCompression {
    /// LZ4 where it pays and the client decodes it, else QUIC, else raw: spice-server's
    /// default (`auto_glz`) sends natural images as QUIC too.
    #[default]
    Auto,
    /// LZ4 where it pays and the client decodes it, else raw (spice-server's `lz4`).
    Lz4,
    /// Raw bitmaps only.
    Off,
}

/// A raw 24-bit bitmap payload being built: the header is written, the pixels are appended
/// by whoever reads them ([`RawImage::pixels`]), top-down, `width × 3` bytes per row.
#[derive(Debug)]
pub struct RawImage {
    bytes: Vec<u8>,
    header_len: usize,
    width: u32,
    height: u32,
}

/// Bytes per row of a 24-bit image of `width` pixels (rows unpadded, as LZ4 needs them).
pub fn bgr_stride(width: u32) -> Option<usize> {
    usize::try_from(width).ok()?.checked_mul(BGR_BYTES)
}

impl RawImage {
    /// The payload of a `width × height` bitmap, with room for its pixels.
    pub fn new(width: u32, height: u32) -> Option<Self> {
        let stride = bgr_stride(width)?;
        let pixels = stride.checked_mul(usize::try_from(height).ok()?)?;
        let mut bytes = Vec::with_capacity(pixels.checked_add(64)?);
        BitmapHeader {
            format: BitmapFormat::FMT_24BIT,
            flags: BitmapFlags::TOP_DOWN,
            x: width,
            y: height,
            stride: u32::try_from(stride).ok()?,
            palette: BitmapPalette::None,
        }
        .encode(&mut bytes);
        let header_len = bytes.len();
        Some(Self {
            bytes,
            header_len,
            width,
            height,
        })
    }

    /// Bytes per row the pixels must have.
    pub fn stride(&self) -> usize {
        bgr_stride(self.width).unwrap_or(0)
    }

    /// Where the pixels go: the reader appends exactly `stride × height` bytes.
    pub fn pixels(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    fn pixel_bytes(&self) -> &[u8] {
        self.bytes.get(self.header_len..).unwrap_or_default()
    }

    /// Whether the pixels are all there.
    fn is_complete(&self) -> bool {
        let rows = usize::try_from(self.height).unwrap_or(usize::MAX);
        Some(self.pixel_bytes().len()) == self.stride().checked_mul(rows)
    }

    /// The bitmap payload as it is; `None` if the pixels are not all there.
    pub fn into_raw(self) -> Option<EncodedImage> {
        self.is_complete().then(|| EncodedImage {
            image_type: ImageType::BITMAP,
            bytes: Arc::new(self.bytes),
        })
    }

    /// LZ4 if it pays (see the module documentation), else the raw bitmap; `None` if the
    /// pixels are not all there.
    pub fn into_lz4_or_raw(self) -> Option<EncodedImage> {
        self.into_lz4_or(Self::into_raw)
    }

    /// QUIC if it is smaller than the raw bitmap (it is for all but noise), else the raw
    /// bitmap; `None` if the pixels are not all there.
    pub fn into_quic_or_raw(self) -> Option<EncodedImage> {
        if !self.is_complete() {
            return None;
        }
        // Stopped as soon as it would not be smaller: noise costs one partial encoding.
        let limit = self.bytes.len().saturating_sub(1);
        match quic::encode_bgr(self.pixel_bytes(), self.width, self.height, limit) {
            Some(bytes) => Some(EncodedImage {
                image_type: ImageType::QUIC,
                bytes: Arc::new(bytes),
            }),
            None => self.into_raw(),
        }
    }

    /// LZ4 if it pays (text, UI), else QUIC if it pays (natural images), else raw.
    pub fn into_lz4_or_quic_or_raw(self) -> Option<EncodedImage> {
        self.into_lz4_or(Self::into_quic_or_raw)
    }

    fn into_lz4_or(self, otherwise: fn(Self) -> Option<EncodedImage>) -> Option<EncodedImage> {
        if !self.is_complete() {
            return None;
        }
        match compress(self.pixel_bytes()) {
            Some(bytes) => Some(EncodedImage {
                image_type: ImageType::LZ4,
                bytes: Arc::new(bytes),
            }),
            None => otherwise(self),
        }
    }
}

thread_local! {
    /// Where blocks are compressed before being copied, at their size, into the payload:
    /// reused, so compressing neither zeroes nor faults in a bound-sized buffer each time,
    /// and a kept payload holds no slack.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Scratch kept between images at most: one 1080p frame's bound; a larger one is freed
/// after use.
const MAX_KEPT_SCRATCH: usize = 8 * 1024 * 1024;

/// Appends one block holding `input` compressed, referring to `prefix` (the input just before
/// it, as the client's decoding stream holds it); returns the block's size.
fn put_block(w: &Lz4Writer, out: &mut Vec<u8>, input: &[u8], prefix: &[u8]) -> Option<usize> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let bound = lz4_flex::block::get_maximum_output_size(input.len());
        if scratch.len() < bound {
            scratch.resize(bound, 0);
        }
        let dst = scratch.get_mut(..bound).unwrap_or_default();
        let n = if prefix.is_empty() {
            lz4_flex::block::compress_into(input, dst)
        } else {
            lz4_flex::block::compress_into_with_dict(input, dst, prefix)
        };
        // The buffer has the bound's room, so this does not fail; if it did, the image is
        // sent raw.
        let block = n.ok().and_then(|n| scratch.get(..n));
        if let Some(block) = block {
            w.block(out, |out| out.extend_from_slice(block));
        }
        let size = block.map(<[u8]>::len);
        if scratch.len() > MAX_KEPT_SCRATCH {
            *scratch = Vec::new();
        }
        size
    })
}

/// The LZ4 image payload of 24-bit top-down `pixels`, or `None` if it does not pay.
fn compress(pixels: &[u8]) -> Option<Vec<u8>> {
    let probe_len = if pixels.len() < PROBE_WHOLE_BELOW {
        pixels.len()
    } else {
        PROBE_BYTES
    };
    let (probe, rest) = pixels.split_at(probe_len);
    let mut out = Vec::new();
    let w = Lz4Writer::begin(&mut out, true, BitmapFormat::FMT_24BIT);
    let probe_size = put_block(&w, &mut out, probe, &[])?;
    if probe_size.saturating_mul(PAYS_DEN) > probe.len().saturating_mul(PAYS_NUM) {
        return None;
    }
    if !rest.is_empty() {
        put_block(&w, &mut out, rest, probe)?;
    }
    w.finish(&mut out);
    // Kept payloads are weighed by capacity: drop the growth slack.
    out.shrink_to_fit();
    // A probe that paid followed by noise can still lose overall.
    (out.len() < pixels.len()).then_some(out)
}

pub mod quic;

#[cfg(test)]
mod tests;
