//! DISPLAY channel server messages (brief §3.2): surfaces, draws, marks, cache and monitors.

use std::sync::Arc;

use super::base::{EmptyMessage, WaitList};
use super::image::Image;
use super::types::{Brush, DisplayBase, Point, QMask, Rect, Ropd};
use crate::spice::wire::codec::{len_u32, Codec, PointerSlot, PutLe, Reader, WireError};
use crate::spice::wire::enums::wire_enum;
use crate::spice::wire::header::Message;

/// Heads a MONITORS_CONFIG may carry: spice-gtk clamps `max_allowed` to 1..256
/// (brief §3.2.6), so more could never be shown.
pub const MAX_MONITORS: usize = 256;

wire_enum! {
    /// spice-protocol enums.h: `SPICE_MSG_DISPLAY_*` (server → client).
    pub struct DisplayMsg(u16) {
        /// Legacy, never sent.
        MODE = 101,
        /// The primary may be shown.
        MARK = 102,
        /// Clear primary, palette cache and mark.
        RESET = 103,
        /// Scroll within a surface.
        COPY_BITS = 104,
        /// Drop cache entries.
        INVAL_LIST = 105,
        /// Drop the whole image cache.
        INVAL_ALL_PIXMAPS = 106,
        /// Drop one palette.
        INVAL_PALETTE = 107,
        /// Drop all palettes.
        INVAL_ALL_PALETTES = 108,
        /// Video stream start.
        STREAM_CREATE = 122,
        /// Video frame.
        STREAM_DATA = 123,
        /// Stream clip.
        STREAM_CLIP = 124,
        /// Stream end.
        STREAM_DESTROY = 125,
        /// All streams end.
        STREAM_DESTROY_ALL = 126,
        /// Fill.
        DRAW_FILL = 302,
        /// Opaque.
        DRAW_OPAQUE = 303,
        /// Copy an image.
        DRAW_COPY = 304,
        /// Blend.
        DRAW_BLEND = 305,
        /// Blackness.
        DRAW_BLACKNESS = 306,
        /// Whiteness.
        DRAW_WHITENESS = 307,
        /// Invert.
        DRAW_INVERS = 308,
        /// ROP3.
        DRAW_ROP3 = 309,
        /// Stroke.
        DRAW_STROKE = 310,
        /// Text.
        DRAW_TEXT = 311,
        /// Transparent.
        DRAW_TRANSPARENT = 312,
        /// Alpha blend.
        DRAW_ALPHA_BLEND = 313,
        /// Create a surface.
        SURFACE_CREATE = 314,
        /// Destroy a surface.
        SURFACE_DESTROY = 315,
        /// Sized video frame.
        STREAM_DATA_SIZED = 316,
        /// Heads.
        MONITORS_CONFIG = 317,
        /// Composite.
        DRAW_COMPOSITE = 318,
        /// Ask for stream reports.
        STREAM_ACTIVATE_REPORT = 319,
        /// GL scanout (unix socket).
        GL_SCANOUT_UNIX = 320,
        /// GL draw.
        GL_DRAW = 321,
        /// Quality indicator.
        QUALITY_INDICATOR = 322,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SpiceSurfaceFmt` (u32).
    pub struct SurfaceFormat(u32) {
        /// Invalid.
        INVALID = 0,
        /// 1-bit alpha.
        FMT_1_A = 1,
        /// 8-bit alpha (client cap A8_SURFACE).
        FMT_8_A = 8,
        /// x1r5g5b5.
        FMT_16_555 = 16,
        /// r5g6b5.
        FMT_16_565 = 80,
        /// x8r8g8b8: the primary's format (brief §3.2.3).
        FMT_32_XRGB = 32,
        /// a8r8g8b8.
        FMT_32_ARGB = 96,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SpiceSurfaceFlags` (u32 bits).
    pub struct SurfaceFlags(u32) {
        /// Off-screen.
        NONE = 0,
        /// The primary surface.
        PRIMARY = 1 << 0,
        /// Only streams cover it (send only to MULTI_CODEC clients).
        STREAMING_MODE = 1 << 1,
    }
}

/// spice.proto `DisplayChannel` server `mark` (empty): the primary may be shown.
#[doc(alias = "SPICE_MSG_DISPLAY_MARK")]
pub type MsgDisplayMark = EmptyMessage<{ DisplayMsg::MARK.0 }>;

/// spice.proto `DisplayChannel` server `reset` (empty).
#[doc(alias = "SPICE_MSG_DISPLAY_RESET")]
pub type MsgDisplayReset = EmptyMessage<{ DisplayMsg::RESET.0 }>;

/// spice.proto `DisplayChannel` server `inval_all_palettes` (empty), sent at startup.
#[doc(alias = "SPICE_MSG_DISPLAY_INVAL_ALL_PALETTES")]
pub type MsgDisplayInvalAllPalettes = EmptyMessage<{ DisplayMsg::INVAL_ALL_PALETTES.0 }>;

/// spice.proto `DisplayChannel` server `inval_all_pixmaps`: `SpiceMsgWaitForChannels`.
#[doc(alias = "SPICE_MSG_DISPLAY_INVAL_ALL_PIXMAPS")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgDisplayInvalAllPixmaps {
    /// Channels to wait for before emptying the cache.
    pub wait_list: WaitList,
}

impl Codec<'_> for MsgDisplayInvalAllPixmaps {
    fn encode(&self, out: &mut Vec<u8>) {
        self.wait_list.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            wait_list: WaitList::read(r)?,
        })
    }
}

impl Message<'_> for MsgDisplayInvalAllPixmaps {
    const TYPE: u16 = DisplayMsg::INVAL_ALL_PIXMAPS.0;
}

/// One cache entry to drop: `SpiceResourceID {u8 type (1 = PIXMAP), u64 id}`.
#[doc(alias = "SpiceResourceID")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceId {
    /// 1 = pixmap.
    pub resource_type: u8,
    /// The image id.
    pub id: u64,
}

impl ResourceId {
    /// `SPICE_RES_TYPE_PIXMAP`.
    pub const PIXMAP: u8 = 1;
    const SIZE: usize = 9;
}

/// spice.proto `DisplayChannel` server `inval_list`: `SpiceResourceList`, `u16 count` then
/// entries; at most `u16::MAX` by construction of the count.
#[doc(alias = "SPICE_MSG_DISPLAY_INVAL_LIST")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgDisplayInvalList {
    /// Entries to drop.
    pub resources: Vec<ResourceId>,
}

impl Codec<'_> for MsgDisplayInvalList {
    fn encode(&self, out: &mut Vec<u8>) {
        let n = u16::try_from(self.resources.len()).unwrap_or(u16::MAX);
        out.put_u16(n);
        for res in self.resources.iter().take(usize::from(n)) {
            out.push(res.resource_type);
            out.put_u64(res.id);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let count = r.u16("SpiceResourceList.count")?;
        let n = r.count(
            count.into(),
            ResourceId::SIZE,
            usize::from(u16::MAX),
            "SpiceResourceList",
        )?;
        let mut resources = Vec::with_capacity(n);
        for _ in 0..n {
            resources.push(ResourceId {
                resource_type: r.u8("SpiceResourceID.type")?,
                id: r.u64("SpiceResourceID.id")?,
            });
        }
        Ok(Self { resources })
    }
}

impl Message<'_> for MsgDisplayInvalList {
    const TYPE: u16 = DisplayMsg::INVAL_LIST.0;
}

/// spice.proto `DisplayChannel` server `surface_create`: `SpiceMsgSurfaceCreate` (20 bytes).
#[doc(alias = "SPICE_MSG_DISPLAY_SURFACE_CREATE")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgDisplaySurfaceCreate {
    /// Surface id (0 = primary).
    pub surface_id: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Format.
    pub format: SurfaceFormat,
    /// Flags.
    pub flags: SurfaceFlags,
}

impl Codec<'_> for MsgDisplaySurfaceCreate {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.surface_id);
        out.put_u32(self.width);
        out.put_u32(self.height);
        self.format.encode(out);
        self.flags.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            surface_id: r.u32("SpiceMsgSurfaceCreate.surface_id")?,
            width: r.u32("SpiceMsgSurfaceCreate.width")?,
            height: r.u32("SpiceMsgSurfaceCreate.height")?,
            format: SurfaceFormat::read(r)?,
            flags: SurfaceFlags::read(r)?,
        })
    }
}

impl Message<'_> for MsgDisplaySurfaceCreate {
    const TYPE: u16 = DisplayMsg::SURFACE_CREATE.0;
}

/// spice.proto `DisplayChannel` server `surface_destroy`: `SpiceMsgSurfaceDestroy`.
#[doc(alias = "SPICE_MSG_DISPLAY_SURFACE_DESTROY")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgDisplaySurfaceDestroy {
    /// Surface id.
    pub surface_id: u32,
}

impl Codec<'_> for MsgDisplaySurfaceDestroy {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.surface_id);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            surface_id: r.u32("SpiceMsgSurfaceDestroy.surface_id")?,
        })
    }
}

impl Message<'_> for MsgDisplaySurfaceDestroy {
    const TYPE: u16 = DisplayMsg::SURFACE_DESTROY.0;
}

/// spice.proto `DisplayChannel` server `draw_fill`: `SpiceMsgDisplayDrawFill` =
/// `DisplayBase; Brush; u16 ropd; QMask` (41 bytes solid, unclipped, unmasked).
#[doc(alias = "SPICE_MSG_DISPLAY_DRAW_FILL")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgDisplayDrawFill {
    /// Target and clip.
    pub base: DisplayBase,
    /// What to fill with.
    pub brush: Brush,
    /// Raster op (OP_PUT).
    pub rop_descriptor: Ropd,
    /// Mask (none).
    pub mask: QMask,
}

impl Codec<'_> for MsgDisplayDrawFill {
    fn encode(&self, out: &mut Vec<u8>) {
        let body_start = out.len();
        self.base.encode(out);
        self.brush.encode(out);
        self.rop_descriptor.encode(out);
        let mask = self.mask.encode_fixed(out);
        self.mask.encode_image(mask, out, body_start);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let base = DisplayBase::read(r)?;
        let brush = Brush::read(r)?;
        let rop_descriptor = Ropd::read(r)?;
        let (mask, end) = QMask::read_with_image(r)?;
        r.claim_through(end);
        Ok(Self {
            base,
            brush,
            rop_descriptor,
            mask,
        })
    }
}

impl Message<'_> for MsgDisplayDrawFill {
    const TYPE: u16 = DisplayMsg::DRAW_FILL.0;
}

/// spice.proto `DisplayChannel` server `draw_copy`: `SpiceMsgDisplayDrawCopy` =
/// `DisplayBase; Copy {Image *src_bitmap; Rect src_area; u16 ropd; u8 scale_mode; QMask}`.
/// The fixed part is followed by the source image, then the mask image, as spice-server's
/// marshaller lays them out (brief §2.7).
#[doc(alias = "SPICE_MSG_DISPLAY_DRAW_COPY")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgDisplayDrawCopy {
    /// Target and clip.
    pub base: DisplayBase,
    /// Source image.
    pub src_bitmap: Image,
    /// Part of the source copied to `base.bbox`.
    pub src_area: Rect,
    /// Raster op (OP_PUT).
    pub rop_descriptor: Ropd,
    /// 0 INTERPOLATE, 1 NEAREST.
    pub scale_mode: u8,
    /// Mask (none).
    pub mask: QMask,
}

impl MsgDisplayDrawCopy {
    /// Writes the message up to the source image's shared payload and returns that payload,
    /// which ends the message (the mask has no image); writes everything and returns `None`
    /// otherwise. The one encoding of this message: [`Codec::encode`] appends the payload.
    pub fn encode_head(&self, out: &mut Vec<u8>) -> Option<&Arc<Vec<u8>>> {
        let body_start = out.len();
        self.base.encode(out);
        let src = PointerSlot::reserve(out);
        self.src_area.encode(out);
        self.rop_descriptor.encode(out);
        out.push(self.scale_mode);
        let mask = self.mask.encode_fixed(out);
        src.point_here(out, body_start);
        match (mask, self.src_bitmap.encode_head(out)) {
            (None, Some(tail)) => Some(tail),
            (mask, tail) => {
                if let Some(tail) = tail {
                    out.extend_from_slice(tail);
                }
                self.mask.encode_image(mask, out, body_start);
                None
            }
        }
    }
}

impl Codec<'_> for MsgDisplayDrawCopy {
    fn encode(&self, out: &mut Vec<u8>) {
        if let Some(tail) = self.encode_head(out) {
            out.extend_from_slice(tail);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let base = DisplayBase::read(r)?;
        let mut src = r.nonnull_pointer("Copy.src_bitmap")?;
        let src_area = Rect::read(r)?;
        let rop_descriptor = Ropd::read(r)?;
        let scale_mode = r.u8("Copy.scale_mode")?;
        let (mask, mask_end) = QMask::read_with_image(r)?;
        let src_bitmap = Image::read(&mut src)?;
        r.claim_through(src.position().max(mask_end));
        Ok(Self {
            base,
            src_bitmap,
            src_area,
            rop_descriptor,
            scale_mode,
            mask,
        })
    }
}

impl Message<'_> for MsgDisplayDrawCopy {
    const TYPE: u16 = DisplayMsg::DRAW_COPY.0;
}

/// spice.proto `DisplayChannel` server `copy_bits`: `SpiceMsgDisplayCopyBits` =
/// `DisplayBase; Point src_pos`: copy the box-sized area at `src_pos` to the box.
#[doc(alias = "SPICE_MSG_DISPLAY_COPY_BITS")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgDisplayCopyBits {
    /// Target, destination box and clip.
    pub base: DisplayBase,
    /// Top-left of the source area on the same surface.
    pub src_pos: Point,
}

impl Codec<'_> for MsgDisplayCopyBits {
    fn encode(&self, out: &mut Vec<u8>) {
        self.base.encode(out);
        self.src_pos.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            base: DisplayBase::read(r)?,
            src_pos: Point::read(r)?,
        })
    }
}

impl Message<'_> for MsgDisplayCopyBits {
    const TYPE: u16 = DisplayMsg::COPY_BITS.0;
}

/// One head of MONITORS_CONFIG: `SpiceHead` (28 bytes).
#[doc(alias = "SpiceHead")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    /// Monitor id; spice-gtk's widget waits for id 0.
    pub monitor_id: u32,
    /// Surface shown (0).
    pub surface_id: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// X within the surface.
    pub x: u32,
    /// Y within the surface.
    pub y: u32,
    /// Flags (0).
    pub flags: u32,
}

impl Head {
    const SIZE: usize = 28;
}

/// spice.proto `DisplayChannel` server `monitors_config`: `SpiceMsgDisplayMonitorsConfig` =
/// `u16 count, u16 max_allowed, SpiceHead[count]`.
#[doc(alias = "SPICE_MSG_DISPLAY_MONITORS_CONFIG")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgDisplayMonitorsConfig {
    /// Most heads the client may ask for.
    pub max_allowed: u16,
    /// The heads (at most [`MAX_MONITORS`] are encoded).
    pub heads: Vec<Head>,
}

impl Codec<'_> for MsgDisplayMonitorsConfig {
    fn encode(&self, out: &mut Vec<u8>) {
        let heads = self.heads.get(..MAX_MONITORS).unwrap_or(&self.heads);
        out.put_u16(u16::try_from(len_u32(heads.len())).unwrap_or(u16::MAX));
        out.put_u16(self.max_allowed);
        for h in heads {
            for v in [
                h.monitor_id,
                h.surface_id,
                h.width,
                h.height,
                h.x,
                h.y,
                h.flags,
            ] {
                out.put_u32(v);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let count = r.u16("MonitorsConfig.count")?;
        let max_allowed = r.u16("MonitorsConfig.max_allowed")?;
        let n = r.count(
            count.into(),
            Head::SIZE,
            MAX_MONITORS,
            "MonitorsConfig heads",
        )?;
        let mut heads = Vec::with_capacity(n);
        for _ in 0..n {
            heads.push(Head {
                monitor_id: r.u32("SpiceHead.monitor_id")?,
                surface_id: r.u32("SpiceHead.surface_id")?,
                width: r.u32("SpiceHead.width")?,
                height: r.u32("SpiceHead.height")?,
                x: r.u32("SpiceHead.x")?,
                y: r.u32("SpiceHead.y")?,
                flags: r.u32("SpiceHead.flags")?,
            });
        }
        Ok(Self { max_allowed, heads })
    }
}

impl Message<'_> for MsgDisplayMonitorsConfig {
    const TYPE: u16 = DisplayMsg::MONITORS_CONFIG.0;
}
