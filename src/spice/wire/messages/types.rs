//! Structs shared by display and cursor messages: points, rectangles, clip, brush, mask.

use super::image::Image;
use crate::spice::wire::codec::{len_u32, Codec, PointerSlot, PutLe, Reader, WireError};
use crate::spice::wire::enums::wire_enum;

/// Clip rectangles a peer may declare. spice-server sends the region of one drawable, which
/// is a handful of rectangles; 4096 covers any real screen and bounds the allocation.
pub const MAX_CLIP_RECTS: usize = 4096;

/// spice.proto `Point`: `{i32 x, i32 y}`.
#[doc(alias = "SpicePoint")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Point {
    /// X.
    pub x: i32,
    /// Y.
    pub y: i32,
}

impl Codec<'_> for Point {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_i32(self.x);
        out.put_i32(self.y);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            x: r.i32("Point.x")?,
            y: r.i32("Point.y")?,
        })
    }
}

/// spice.proto `Point16`: `{i16 x, i16 y}`.
#[doc(alias = "SpicePoint16")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Point16 {
    /// X.
    pub x: i16,
    /// Y.
    pub y: i16,
}

impl Codec<'_> for Point16 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_i16(self.x);
        out.put_i16(self.y);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            x: r.i16("Point16.x")?,
            y: r.i16("Point16.y")?,
        })
    }
}

/// spice.proto `Rect`: **top, left, bottom, right** (brief §7.1).
#[doc(alias = "SpiceRect")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rect {
    /// Top.
    pub top: i32,
    /// Left.
    pub left: i32,
    /// Bottom (exclusive).
    pub bottom: i32,
    /// Right (exclusive).
    pub right: i32,
}

impl Rect {
    /// Encoded size.
    pub const SIZE: usize = 16;
}

impl Codec<'_> for Rect {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_i32(self.top);
        out.put_i32(self.left);
        out.put_i32(self.bottom);
        out.put_i32(self.right);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            top: r.i32("Rect.top")?,
            left: r.i32("Rect.left")?,
            bottom: r.i32("Rect.bottom")?,
            right: r.i32("Rect.right")?,
        })
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SpiceClipType` (u8 on the wire).
    pub struct ClipType(u8) {
        /// No clipping.
        NONE = 0,
        /// A rectangle list follows inline.
        RECTS = 1,
    }
}

/// spice.proto `Clip`: `u8 type; RECTS: u32 num_rects, Rect[num_rects]` inline.
#[doc(alias = "SpiceClip")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Clip {
    /// Draw the whole box.
    #[default]
    None,
    /// Draw only inside the union of these.
    Rects(Vec<Rect>),
}

impl Codec<'_> for Clip {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::None => ClipType::NONE.encode(out),
            Self::Rects(rects) => {
                ClipType::RECTS.encode(out);
                out.put_u32(len_u32(rects.len()));
                for rect in rects {
                    rect.encode(out);
                }
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        match ClipType::read(r)? {
            ClipType::NONE => Ok(Self::None),
            ClipType::RECTS => {
                let count = r.u32("Clip.num_rects")?;
                let n = r.count(count.into(), Rect::SIZE, MAX_CLIP_RECTS, "Clip rects")?;
                let mut rects = Vec::with_capacity(n);
                for _ in 0..n {
                    rects.push(Rect::read(r)?);
                }
                Ok(Self::Rects(rects))
            }
            other => Err(WireError::Invalid {
                what: "Clip.type",
                value: other.0.into(),
            }),
        }
    }
}

/// spice.proto `DisplayBase`: target surface, destination box, clip (21 bytes unclipped).
#[doc(alias = "SpiceMsgDisplayBase")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisplayBase {
    /// Target surface (0 = primary).
    pub surface_id: u32,
    /// Destination.
    pub bbox: Rect,
    /// Clip.
    pub clip: Clip,
}

impl Codec<'_> for DisplayBase {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.surface_id);
        self.bbox.encode(out);
        self.clip.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            surface_id: r.u32("DisplayBase.surface_id")?,
            bbox: Rect::read(r)?,
            clip: Clip::read(r)?,
        })
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SpiceRopd` flags (u16). Plain copy is `OP_PUT`.
    pub struct Ropd(u16) {
        /// Invert the source.
        INVERS_SRC = 1 << 0,
        /// Invert the brush.
        INVERS_BRUSH = 1 << 1,
        /// Invert the destination.
        INVERS_DEST = 1 << 2,
        /// Replace.
        OP_PUT = 1 << 3,
        /// Or.
        OP_OR = 1 << 4,
        /// And.
        OP_AND = 1 << 5,
        /// Xor.
        OP_XOR = 1 << 6,
        /// Black.
        OP_BLACKNESS = 1 << 7,
        /// White.
        OP_WHITENESS = 1 << 8,
        /// Invert.
        OP_INVERS = 1 << 9,
        /// Invert the result.
        INVERS_RES = 1 << 10,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SpiceBrushType` (u8 on the wire, u32 in QXL: brief §7.17).
    pub struct BrushType(u8) {
        /// No brush.
        NONE = 0,
        /// A colour.
        SOLID = 1,
        /// An image pattern.
        PATTERN = 2,
    }
}

/// spice.proto `Brush`. Pattern brushes carry an image pointer; we never send them and
/// refuse to decode them.
#[doc(alias = "SpiceBrush")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Brush {
    /// No brush.
    #[default]
    None,
    /// A solid colour, 0xAARRGGBB.
    Solid(u32),
}

impl Codec<'_> for Brush {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::None => BrushType::NONE.encode(out),
            Self::Solid(color) => {
                BrushType::SOLID.encode(out);
                out.put_u32(*color);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        match BrushType::read(r)? {
            BrushType::NONE => Ok(Self::None),
            BrushType::SOLID => Ok(Self::Solid(r.u32("Brush.color")?)),
            other => Err(WireError::Unsupported {
                what: "Brush.type",
                value: other.0.into(),
            }),
        }
    }
}

/// spice.proto `QMask`: `u8 flags (bit0 INVERS); Point pos; Image *bitmap` (13 bytes).
///
/// Not a `Codec`: its image lives elsewhere in the message, so the enclosing message writes
/// the fixed part with [`QMask::encode_fixed`], then the image with [`QMask::encode_image`],
/// and reads it back with [`QMask::read_with_image`].
#[doc(alias = "SpiceQMask")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QMask {
    /// Bit 0: invert the mask.
    pub flags: u8,
    /// Mask origin.
    pub pos: Point,
    /// The 1-bit mask image; `None` for no mask (all we send).
    pub bitmap: Option<Image>,
}

impl QMask {
    /// Writes flags, pos and the pointer (0, or a slot to patch).
    pub fn encode_fixed(&self, out: &mut Vec<u8>) -> Option<PointerSlot> {
        out.push(self.flags);
        self.pos.encode(out);
        match self.bitmap {
            Some(_) => Some(PointerSlot::reserve(out)),
            None => {
                out.put_u32(0);
                None
            }
        }
    }

    /// Appends the mask image, if any, and points `slot` at it.
    pub fn encode_image(&self, slot: Option<PointerSlot>, out: &mut Vec<u8>, body_start: usize) {
        if let (Some(slot), Some(image)) = (slot, &self.bitmap) {
            slot.point_here(out, body_start);
            image.encode(out);
        }
    }

    /// Reads the mask and its image; returns it and the body offset where the image ended
    /// (0 without an image).
    pub fn read_with_image(r: &mut Reader<'_>) -> Result<(Self, usize), WireError> {
        let flags = r.u8("QMask.flags")?;
        let pos = Point::read(r)?;
        let (bitmap, end) = match r.pointer("QMask.bitmap")? {
            Some(mut image) => (Some(Image::read(&mut image)?), image.position()),
            None => (None, 0),
        };
        Ok((Self { flags, pos, bitmap }, end))
    }
}
