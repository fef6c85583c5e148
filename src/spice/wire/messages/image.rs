//! spice.proto `Image`: the 18-byte descriptor and the payloads we send — raw BITMAP, LZ4,
//! QUIC, JPEG, SURFACE and cache references (brief §3.2.4, §4).

use std::sync::Arc;

use crate::spice::wire::codec::{len_u32, Codec, PutLe, Reader, U32Slot, WireError};
use crate::spice::wire::enums::wire_enum;

wire_enum! {
    /// spice-protocol enums.h: `SpiceImageType` (u8).
    pub struct ImageType(u8) {
        /// Uncompressed pixels.
        BITMAP = 0,
        /// QUIC.
        QUIC = 1,
        /// LZ with palette.
        LZ_PLT = 100,
        /// LZ RGB.
        LZ_RGB = 101,
        /// Global LZ.
        GLZ_RGB = 102,
        /// A cached image.
        FROM_CACHE = 103,
        /// Another surface.
        SURFACE = 104,
        /// JFIF.
        JPEG = 105,
        /// A cached image once it is lossless.
        FROM_CACHE_LOSSLESS = 106,
        /// zlib over GLZ.
        ZLIB_GLZ_RGB = 107,
        /// JPEG plus LZ alpha.
        JPEG_ALPHA = 108,
        /// LZ4 blocks (client display cap LZ4_COMPRESSION).
        LZ4 = 109,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SpiceImageFlags` (u8 bits).
    pub struct ImageFlags(u8) {
        /// None.
        NONE = 0,
        /// Client stores the image under its id.
        CACHE_ME = 1 << 0,
        /// Force alpha 0xFF on 32-bit images.
        HIGH_BITS_SET = 1 << 1,
        /// Replace a lossy cache entry.
        CACHE_REPLACE_ME = 1 << 2,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SpiceBitmapFmt` (u8).
    pub struct BitmapFormat(u8) {
        /// Invalid.
        INVALID = 0,
        /// 1 bpp, LSB first.
        FMT_1BIT_LE = 1,
        /// 1 bpp, MSB first.
        FMT_1BIT_BE = 2,
        /// 4 bpp, low nibble first.
        FMT_4BIT_LE = 3,
        /// 4 bpp, high nibble first.
        FMT_4BIT_BE = 4,
        /// 8 bpp palette.
        FMT_8BIT = 5,
        /// x1r5g5b5.
        FMT_16BIT = 6,
        /// B, G, R.
        FMT_24BIT = 7,
        /// B, G, R, X.
        FMT_32BIT = 8,
        /// B, G, R, A.
        FMT_RGBA = 9,
        /// Alpha only.
        FMT_8BIT_A = 10,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SpiceBitmapFlags` (u8 bits).
    pub struct BitmapFlags(u8) {
        /// None (bottom-up rows).
        NONE = 0,
        /// Cache the palette.
        PAL_CACHE_ME = 1 << 0,
        /// The palette is a cache id, not a pointer.
        PAL_FROM_CACHE = 1 << 1,
        /// First row is the top row.
        TOP_DOWN = 1 << 2,
    }
}

/// The image descriptor less its type, which follows from [`ImageData`].
#[doc(alias = "SpiceImageDescriptor")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageDescriptor {
    /// Cache id: group in the low 32 bits, unique in the high 32 (brief §2.7).
    pub id: u64,
    /// Cache flags.
    pub flags: ImageFlags,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// spice.proto `Image`.
#[doc(alias = "SpiceImage")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Descriptor.
    pub descriptor: ImageDescriptor,
    /// Payload.
    pub data: ImageData,
}

/// The type-specific part of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageData {
    /// BITMAP.
    Bitmap(Bitmap),
    /// LZ4.
    Lz4(Lz4Data),
    /// QUIC (`SpiceQUICData`): the stream of little-endian words after `data_size`.
    Quic(Vec<u8>),
    /// JPEG: one baseline JFIF whose size equals the descriptor's.
    Jpeg(Vec<u8>),
    /// SURFACE: copy from another surface.
    Surface(u32),
    /// FROM_CACHE: the id in the descriptor.
    FromCache,
    /// FROM_CACHE_LOSSLESS.
    FromCacheLossless,
    /// A BITMAP or LZ4 payload encoded once and shared by every client that sends it; never
    /// decoded (a reader sees the payload's own variant).
    Encoded(EncodedImage),
}

/// Everything of an image after its descriptor, as the wire carries it: built once (with
/// [`BitmapHeader`] or [`Lz4Writer`]) and shared, so that N clients cost one encoding and
/// N socket writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedImage {
    /// BITMAP, LZ4 or QUIC.
    pub image_type: ImageType,
    /// The payload's wire bytes.
    pub bytes: Arc<Vec<u8>>,
}

impl ImageData {
    /// The descriptor type for this payload.
    pub fn image_type(&self) -> ImageType {
        match self {
            Self::Bitmap(_) => ImageType::BITMAP,
            Self::Lz4(_) => ImageType::LZ4,
            Self::Quic(_) => ImageType::QUIC,
            Self::Jpeg(_) => ImageType::JPEG,
            Self::Surface(_) => ImageType::SURFACE,
            Self::FromCache => ImageType::FROM_CACHE,
            Self::FromCacheLossless => ImageType::FROM_CACHE_LOSSLESS,
            Self::Encoded(e) => e.image_type,
        }
    }
}

impl Image {
    /// Writes the image up to a shared payload and returns that payload, which the caller
    /// sends after the bytes written (it ends the message); writes everything and returns
    /// `None` for any other image.
    pub fn encode_head(&self, out: &mut Vec<u8>) -> Option<&Arc<Vec<u8>>> {
        out.put_u64(self.descriptor.id);
        self.data.image_type().encode(out);
        self.descriptor.flags.encode(out);
        out.put_u32(self.descriptor.width);
        out.put_u32(self.descriptor.height);
        match &self.data {
            ImageData::Encoded(e) => return Some(&e.bytes),
            ImageData::Bitmap(b) => b.encode(out),
            ImageData::Lz4(l) => l.encode(out),
            ImageData::Quic(data) | ImageData::Jpeg(data) => {
                out.put_u32(len_u32(data.len()));
                out.extend_from_slice(data);
            }
            ImageData::Surface(id) => out.put_u32(*id),
            ImageData::FromCache | ImageData::FromCacheLossless => {}
        }
        None
    }
}

impl Codec<'_> for Image {
    fn encode(&self, out: &mut Vec<u8>) {
        if let Some(tail) = self.encode_head(out) {
            out.extend_from_slice(tail);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let id = r.u64("ImageDescriptor.id")?;
        let image_type = ImageType::read(r)?;
        let descriptor = ImageDescriptor {
            id,
            flags: ImageFlags::read(r)?,
            width: r.u32("ImageDescriptor.width")?,
            height: r.u32("ImageDescriptor.height")?,
        };
        let data = match image_type {
            ImageType::BITMAP => ImageData::Bitmap(Bitmap::read(r)?),
            ImageType::LZ4 => ImageData::Lz4(Lz4Data::read(r)?),
            ImageType::QUIC => {
                let size = r.u32("QUICData.data_size")?;
                ImageData::Quic(r.take(usize_from(size), "QUICData.data")?.to_vec())
            }
            ImageType::JPEG => {
                let size = r.u32("JPEGData.data_size")?;
                ImageData::Jpeg(r.take(usize_from(size), "JPEGData.data")?.to_vec())
            }
            ImageType::SURFACE => ImageData::Surface(r.u32("Surface.surface_id")?),
            ImageType::FROM_CACHE => ImageData::FromCache,
            ImageType::FROM_CACHE_LOSSLESS => ImageData::FromCacheLossless,
            other => {
                return Err(WireError::Unsupported {
                    what: "image type",
                    value: other.0.into(),
                })
            }
        };
        Ok(Self { descriptor, data })
    }
}

fn usize_from(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Where a bitmap's palette comes from. Only 32-bit images are sent, which have none; a
/// palette pointer is refused on decode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BitmapPalette {
    /// No palette (NULL pointer).
    #[default]
    None,
    /// A palette the client cached under this id (`PAL_FROM_CACHE`).
    FromCache(u64),
}

/// spice.proto `BitmapData`: `u8 format, u8 flags, u32 x, u32 y, u32 stride`, the palette
/// field, then exactly `stride × y` pixel bytes.
#[doc(alias = "SpiceBitmap")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    /// Pixel format (send 32BIT).
    pub format: BitmapFormat,
    /// Flags other than PAL_FROM_CACHE, which follows from `palette`.
    pub flags: BitmapFlags,
    /// Width.
    pub x: u32,
    /// Height (rows).
    pub y: u32,
    /// Bytes per row, at least the packed row length (send width × 4 for spice-html5).
    pub stride: u32,
    /// Palette source.
    pub palette: BitmapPalette,
    /// `stride × y` bytes, top row first if TOP_DOWN.
    pub data: Vec<u8>,
}

/// [`Bitmap`] less its pixels: what precedes `stride × y` pixel bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitmapHeader {
    /// Pixel format.
    pub format: BitmapFormat,
    /// Flags other than PAL_FROM_CACHE.
    pub flags: BitmapFlags,
    /// Width.
    pub x: u32,
    /// Height (rows).
    pub y: u32,
    /// Bytes per row.
    pub stride: u32,
    /// Palette source.
    pub palette: BitmapPalette,
}

impl BitmapHeader {
    /// Appends the header; the caller appends exactly `stride × y` pixel bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.format.encode(out);
        let mut flags = self.flags.0 & !BitmapFlags::PAL_FROM_CACHE.0;
        if matches!(self.palette, BitmapPalette::FromCache(_)) {
            flags |= BitmapFlags::PAL_FROM_CACHE.0;
        }
        out.push(flags);
        out.put_u32(self.x);
        out.put_u32(self.y);
        out.put_u32(self.stride);
        match self.palette {
            BitmapPalette::None => out.put_u32(0),
            BitmapPalette::FromCache(id) => out.put_u64(id),
        }
    }
}

impl Codec<'_> for Bitmap {
    fn encode(&self, out: &mut Vec<u8>) {
        BitmapHeader {
            format: self.format,
            flags: self.flags,
            x: self.x,
            y: self.y,
            stride: self.stride,
            palette: self.palette,
        }
        .encode(out);
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let format = BitmapFormat::read(r)?;
        let flags = BitmapFlags::read(r)?;
        let x = r.u32("BitmapData.x")?;
        let y = r.u32("BitmapData.y")?;
        let stride = r.u32("BitmapData.stride")?;
        let palette = if flags.0 & BitmapFlags::PAL_FROM_CACHE.0 != 0 {
            BitmapPalette::FromCache(r.u64("BitmapData.palette_id")?)
        } else {
            match r.u32("BitmapData.palette")? {
                0 => BitmapPalette::None,
                offset => {
                    return Err(WireError::Unsupported {
                        what: "bitmap palette pointer",
                        value: offset.into(),
                    })
                }
            }
        };
        let len = usize_from(stride)
            .checked_mul(usize_from(y))
            .ok_or(WireError::MissingData("BitmapData.data"))?;
        let data = r.take(len, "BitmapData.data")?.to_vec();
        Ok(Self {
            format,
            flags: BitmapFlags(flags.0 & !BitmapFlags::PAL_FROM_CACHE.0),
            x,
            y,
            stride,
            palette,
            data,
        })
    }
}

/// The data of an LZ4 image (spice: server/lz4-encoder.c; spice-common canvas_base.c
/// `canvas_get_lz4`): `u32 data_size`, then `u8 top_down, u8 format`, then blocks, each a
/// **big-endian** `u32` length and one raw LZ4 block (no frame header). Decoded back to back
/// the blocks give `height × width × Bpp` bytes without row padding.
#[doc(alias = "SpiceLZ4Data")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lz4Data {
    /// First row is the top row.
    pub top_down: bool,
    /// 16BIT, 24BIT, 32BIT or RGBA; the client rejects others.
    pub format: BitmapFormat,
    /// Compressed blocks in order.
    pub blocks: Vec<Vec<u8>>,
}

/// Writes an LZ4 image payload in one pass: [`Lz4Writer::begin`], one
/// [`Lz4Writer::block`] per compressed block, [`Lz4Writer::finish`].
#[derive(Debug)]
#[must_use = "an LZ4 payload's data_size must be patched by finish"]
pub struct Lz4Writer {
    size: U32Slot,
}

impl Lz4Writer {
    /// Writes `data_size` (a placeholder), `top_down` and `format`.
    pub fn begin(out: &mut Vec<u8>, top_down: bool, format: BitmapFormat) -> Self {
        let size = U32Slot::reserve(out);
        out.push(u8::from(top_down));
        format.encode(out);
        Self { size }
    }

    /// Appends one block: its big-endian length, then what `compress` appends to `out`.
    pub fn block(&self, out: &mut Vec<u8>, compress: impl FnOnce(&mut Vec<u8>)) {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        compress(out);
        let len = len_u32(out.len().saturating_sub(at.saturating_add(4)));
        if let Some(slot) = out.get_mut(at..at.saturating_add(4)) {
            slot.copy_from_slice(&len.to_be_bytes());
        }
    }

    /// Patches `data_size` with everything written since [`Lz4Writer::begin`].
    pub fn finish(self, out: &mut [u8]) {
        self.size.patch_len_since(out);
    }
}

impl Codec<'_> for Lz4Data {
    fn encode(&self, out: &mut Vec<u8>) {
        let w = Lz4Writer::begin(out, self.top_down, self.format);
        for block in &self.blocks {
            w.block(out, |out| out.extend_from_slice(block));
        }
        w.finish(out);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let size = r.u32("LZ4Data.data_size")?;
        let mut data = r.sub(usize_from(size), "LZ4Data.data")?;
        let top_down = match data.u8("LZ4 top_down")? {
            0 => false,
            1 => true,
            other => {
                return Err(WireError::Invalid {
                    what: "LZ4 top_down",
                    value: other.into(),
                })
            }
        };
        let format = BitmapFormat::read(&mut data)?;
        // Each block costs at least its 4-byte length, so the loop is bounded by data_size.
        let mut blocks = Vec::new();
        while data.any_left() {
            let len = data.u32_be("LZ4 block length")?;
            blocks.push(data.take(usize_from(len), "LZ4 block")?.to_vec());
        }
        Ok(Self {
            top_down,
            format,
            blocks,
        })
    }
}
