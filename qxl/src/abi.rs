//! The raw QXL device ABI: `#[repr(C)]` little-endian layouts and constants.
//!
//! Mirrors spice-protocol 0.14.3 `spice/qxl_dev.h` and `spice/ipc_ring.h` (all structures
//! packed). Every struct is built from zerocopy's alignment-1 little-endian types, so the
//! derives prove there is no padding; sizes and the offsets we touch are asserted against
//! `shared/research/spice-protocol.md` §5 and Appendix A. Nothing here is validated: these
//! are the bytes as the producer wrote them (see `parse` for the checked values).

use std::mem::{offset_of, size_of};

use zerocopy::little_endian::{I16, I32, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// "QXRO", `QXL_ROM_MAGIC`.
pub const QXL_ROM_MAGIC: u32 = 0x4f52_5851;
/// "QXRA", `QXL_RAM_MAGIC`.
pub const QXL_RAM_MAGIC: u32 = 0x4152_5851;

/// Entries in the command and cursor rings (`QXL_COMMAND_RING_SIZE`, `QXL_CURSOR_RING_SIZE`).
pub const COMMAND_RING_SIZE: u32 = 32;
/// Entries in the release ring (`QXL_RELEASE_RING_SIZE`).
pub const RELEASE_RING_SIZE: u32 = 8;

/// `QXLCommand.type` values (`enum QXLCmdType`).
pub const QXL_CMD_NOP: u32 = 0;
pub const QXL_CMD_DRAW: u32 = 1;
pub const QXL_CMD_UPDATE: u32 = 2;
pub const QXL_CMD_CURSOR: u32 = 3;
pub const QXL_CMD_MESSAGE: u32 = 4;
pub const QXL_CMD_SURFACE: u32 = 5;

/// `QXLDrawable.type` values (QXL numbering, not the SPICE message numbers).
pub const QXL_DRAW_NOP: u8 = 0;
pub const QXL_DRAW_FILL: u8 = 1;
pub const QXL_DRAW_OPAQUE: u8 = 2;
pub const QXL_DRAW_COPY: u8 = 3;
pub const QXL_COPY_BITS: u8 = 4;

/// `QXLDrawable.effect`: `QXL_EFFECT_OPAQUE`.
pub const QXL_EFFECT_OPAQUE: u8 = 1;

/// `SpiceRopd` `SPICE_ROPD_OP_PUT`.
pub const SPICE_ROPD_OP_PUT: u16 = 0x0008;
/// `SPICE_BRUSH_TYPE_SOLID`.
pub const SPICE_BRUSH_TYPE_NONE: u32 = 0;
pub const SPICE_BRUSH_TYPE_SOLID: u32 = 1;
/// `SPICE_CLIP_TYPE_*`.
pub const SPICE_CLIP_TYPE_NONE: u32 = 0;
pub const SPICE_CLIP_TYPE_RECTS: u32 = 1;

/// `QXLImageDescriptor.type` (SPICE image numbering).
pub const SPICE_IMAGE_TYPE_BITMAP: u8 = 0;
pub const SPICE_IMAGE_TYPE_SURFACE: u8 = 104;
/// `QXL_IMAGE_GROUP_DEVICE`: low 32 bits of an image id made by the device (QEMU's choice).
pub const QXL_IMAGE_GROUP_DEVICE: u64 = 1;

/// `QXLBitmap.flags`.
pub const QXL_BITMAP_DIRECT: u8 = 1 << 0;
pub const QXL_BITMAP_UNSTABLE: u8 = 1 << 1;
pub const QXL_BITMAP_TOP_DOWN: u8 = 1 << 2;

/// `SPICE_BITMAP_FMT_*`.
pub const SPICE_BITMAP_FMT_1BIT_LE: u8 = 1;
pub const SPICE_BITMAP_FMT_1BIT_BE: u8 = 2;
pub const SPICE_BITMAP_FMT_4BIT_LE: u8 = 3;
pub const SPICE_BITMAP_FMT_4BIT_BE: u8 = 4;
pub const SPICE_BITMAP_FMT_8BIT: u8 = 5;
pub const SPICE_BITMAP_FMT_16BIT: u8 = 6;
pub const SPICE_BITMAP_FMT_24BIT: u8 = 7;
pub const SPICE_BITMAP_FMT_32BIT: u8 = 8;
pub const SPICE_BITMAP_FMT_RGBA: u8 = 9;
pub const SPICE_BITMAP_FMT_8BIT_A: u8 = 10;

/// `SPICE_SURFACE_FMT_*`.
pub const SPICE_SURFACE_FMT_1_A: u32 = 1;
pub const SPICE_SURFACE_FMT_8_A: u32 = 8;
pub const SPICE_SURFACE_FMT_16_555: u32 = 16;
pub const SPICE_SURFACE_FMT_16_565: u32 = 80;
pub const SPICE_SURFACE_FMT_32_XRGB: u32 = 32;
pub const SPICE_SURFACE_FMT_32_ARGB: u32 = 96;

/// `QXLSurfaceCmd.type`.
pub const QXL_SURFACE_CMD_CREATE: u8 = 0;
pub const QXL_SURFACE_CMD_DESTROY: u8 = 1;
/// `QXL_SURF_FLAG_KEEP_DATA`.
pub const QXL_SURF_FLAG_KEEP_DATA: u32 = 1;
/// `QXL_SURF_TYPE_PRIMARY`.
pub const QXL_SURF_TYPE_PRIMARY: u32 = 0;

/// `QXLCursorCmd.type`.
pub const QXL_CURSOR_SET: u8 = 0;
pub const QXL_CURSOR_MOVE: u8 = 1;
pub const QXL_CURSOR_HIDE: u8 = 2;
pub const QXL_CURSOR_TRAIL: u8 = 3;
/// `SPICE_CURSOR_TYPE_ALPHA`, the first of the seven cursor types (`..=COLOR32` = 6).
pub const SPICE_CURSOR_TYPE_ALPHA: u16 = 0;
pub const SPICE_CURSOR_TYPE_COLOR32: u16 = 6;

/// spice-protocol `spice/qxl_dev.h`: `QXLRect`.
#[doc(alias = "QXLRect")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlRect {
    pub top: I32,
    pub left: I32,
    pub bottom: I32,
    pub right: I32,
}
const _: () = assert!(size_of::<QxlRect>() == 16);

/// `QXLPoint`.
#[doc(alias = "QXLPoint")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlPoint {
    pub x: I32,
    pub y: I32,
}
const _: () = assert!(size_of::<QxlPoint>() == 8);

/// `QXLPoint16`.
#[doc(alias = "QXLPoint16")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlPoint16 {
    pub x: I16,
    pub y: I16,
}
const _: () = assert!(size_of::<QxlPoint16>() == 4);

/// `QXLURect` (the ROM's client monitors config).
#[doc(alias = "QXLURect")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlURect {
    pub top: U32,
    pub left: U32,
    pub bottom: U32,
    pub right: U32,
}

/// `QXLRom` (BAR2), 1160 bytes; `QXLModes` follows at `modes_offset`.
#[doc(alias = "QXLRom")]
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlRom {
    pub magic: U32,
    pub id: U32,
    pub update_id: U32,
    pub compression_level: U32,
    pub log_level: U32,
    pub mode: U32,
    pub modes_offset: U32,
    pub num_pages: U32,
    pub pages_offset: U32,
    pub draw_area_offset: U32,
    pub surface0_area_size: U32,
    pub ram_header_offset: U32,
    pub mm_clock: U32,
    pub n_surfaces: U32,
    pub flags: U64,
    pub slots_start: u8,
    pub slots_end: u8,
    pub slot_gen_bits: u8,
    pub slot_id_bits: u8,
    pub slot_generation: u8,
    pub client_present: u8,
    pub client_capabilities: [u8; 58],
    pub client_monitors_config_crc: U32,
    pub client_monitors_count: U16,
    pub client_monitors_padding: U16,
    pub client_monitors_heads: [QxlURect; 64],
}
const _: () = assert!(size_of::<QxlRom>() == 1160);
const _: () = assert!(offset_of!(QxlRom, ram_header_offset) == 44);
const _: () = assert!(offset_of!(QxlRom, n_surfaces) == 52);
const _: () = assert!(offset_of!(QxlRom, slots_start) == 64);
const _: () = assert!(offset_of!(QxlRom, client_present) == 69);
const _: () = assert!(offset_of!(QxlRom, client_monitors_config_crc) == 128);
const _: () = assert!(offset_of!(QxlRom, client_monitors_count) == 132);

/// `SPICE_RING_DECLARE` header: the five u32 that precede the items.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct RingHeader {
    pub num_items: U32,
    pub prod: U32,
    pub notify_on_prod: U32,
    pub cons: U32,
    pub notify_on_cons: U32,
}
const _: () = assert!(size_of::<RingHeader>() == 20);
pub const RING_PROD_OFFSET: usize = offset_of!(RingHeader, prod);
pub const RING_NOTIFY_ON_PROD_OFFSET: usize = offset_of!(RingHeader, notify_on_prod);
pub const RING_CONS_OFFSET: usize = offset_of!(RingHeader, cons);
pub const RING_NOTIFY_ON_CONS_OFFSET: usize = offset_of!(RingHeader, notify_on_cons);
pub const RING_ITEMS_OFFSET: usize = size_of::<RingHeader>();
const _: () = assert!(RING_PROD_OFFSET == 4 && RING_CONS_OFFSET == 12);

/// `QXLCommand`: an address and a type; 16 bytes, so no ring padding.
#[doc(alias = "QXLCommand")]
#[repr(C)]
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
pub struct QxlCommand {
    pub data: U64,
    pub ty: U32,
    pub padding: U32,
}
const _: () = assert!(size_of::<QxlCommand>() == 16);

/// `QXLCommandRing` / `QXLCursorRing`: 32 × `QXLCommand`.
#[doc(alias = "QXLCommandRing")]
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlCommandRing {
    pub header: RingHeader,
    pub items: [QxlCommand; COMMAND_RING_SIZE as usize],
}
const _: () = assert!(size_of::<QxlCommandRing>() == 532);

/// `QXLReleaseRing`: 8 × u64 release ids.
#[doc(alias = "QXLReleaseRing")]
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlReleaseRing {
    pub header: RingHeader,
    pub items: [U64; RELEASE_RING_SIZE as usize],
}
const _: () = assert!(size_of::<QxlReleaseRing>() == 84);

/// `QXLMemSlot`.
#[doc(alias = "QXLMemSlot")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlMemSlot {
    pub mem_start: U64,
    pub mem_end: U64,
}

/// `QXLSurfaceCreate` (the CREATE_PRIMARY argument in `QXLRam`).
#[doc(alias = "QXLSurfaceCreate")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlSurfaceCreate {
    pub width: U32,
    pub height: U32,
    pub stride: I32,
    pub format: U32,
    pub position: U32,
    pub mouse_mode: U32,
    pub flags: U32,
    pub ty: U32,
    pub mem: U64,
}
const _: () = assert!(size_of::<QxlSurfaceCreate>() == 40);

/// `QXLRam`: the header at the end of BAR0, holding the three rings and I/O arguments.
#[doc(alias = "QXLRam")]
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlRam {
    pub magic: U32,
    pub int_pending: U32,
    pub int_mask: U32,
    pub log_buf: [u8; 4096],
    pub cmd_ring: QxlCommandRing,
    pub cursor_ring: QxlCommandRing,
    pub release_ring: QxlReleaseRing,
    pub update_area: QxlRect,
    pub update_surface: U32,
    pub mem_slot: QxlMemSlot,
    pub create_surface: QxlSurfaceCreate,
    pub flags: U64,
    pub monitors_config: U64,
}
const _: () = assert!(size_of::<QxlRam>() == 5348);
pub const RAM_CMD_RING_OFFSET: usize = offset_of!(QxlRam, cmd_ring);
pub const RAM_CURSOR_RING_OFFSET: usize = offset_of!(QxlRam, cursor_ring);
pub const RAM_RELEASE_RING_OFFSET: usize = offset_of!(QxlRam, release_ring);
const _: () = assert!(RAM_CMD_RING_OFFSET == 4108);
const _: () = assert!(RAM_CURSOR_RING_OFFSET == 4640);
const _: () = assert!(RAM_RELEASE_RING_OFFSET == 5172);
const _: () = assert!(offset_of!(QxlRam, create_surface) == 5292);
const _: () = assert!(offset_of!(QxlRam, monitors_config) == 5340);

/// `QXLReleaseInfo`: the guest writes `id`; the device overwrites it with `next` (a union).
#[doc(alias = "QXLReleaseInfo")]
pub type QxlReleaseInfo = U64;

/// `QXLClip`.
#[doc(alias = "QXLClip")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlClip {
    pub ty: U32,
    pub data: U64,
}
const _: () = assert!(size_of::<QxlClip>() == 12);

/// Bytes of `QXLDrawable`'s union (its largest member, `QXLText`, is 68).
pub const DRAWABLE_UNION_SIZE: usize = 68;

/// `QXLDrawable`, 191 bytes; `u` holds one of the draw-op structs below.
#[doc(alias = "QXLDrawable")]
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlDrawable {
    pub release_info: QxlReleaseInfo,
    pub surface_id: U32,
    pub effect: u8,
    pub ty: u8,
    pub self_bitmap: u8,
    pub self_bitmap_area: QxlRect,
    pub bbox: QxlRect,
    pub clip: QxlClip,
    pub mm_time: U32,
    pub surfaces_dest: [I32; 3],
    pub surfaces_rects: [QxlRect; 3],
    pub u: [u8; DRAWABLE_UNION_SIZE],
}
const _: () = assert!(size_of::<QxlDrawable>() == 191);
const _: () = assert!(offset_of!(QxlDrawable, surface_id) == 8);
const _: () = assert!(offset_of!(QxlDrawable, ty) == 13);
const _: () = assert!(offset_of!(QxlDrawable, bbox) == 31);
const _: () = assert!(offset_of!(QxlDrawable, clip) == 47);
const _: () = assert!(offset_of!(QxlDrawable, mm_time) == 59);
const _: () = assert!(offset_of!(QxlDrawable, surfaces_dest) == 63);
const _: () = assert!(offset_of!(QxlDrawable, u) == 123);

/// `QXLQMask`.
#[doc(alias = "QXLQMask")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlQMask {
    pub flags: u8,
    pub pos: QxlPoint,
    pub bitmap: U64,
}
const _: () = assert!(size_of::<QxlQMask>() == 17);

/// `QXLBrush`: `type` then a union of `u32 color` and `QXLPattern {u64 pat; QXLPoint pos}`.
#[doc(alias = "QXLBrush")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlBrush {
    pub ty: U32,
    pub u: [u8; 16],
}
const _: () = assert!(size_of::<QxlBrush>() == 20);

/// `QXLFill`.
#[doc(alias = "QXLFill")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlFill {
    pub brush: QxlBrush,
    pub rop_descriptor: U16,
    pub mask: QxlQMask,
}
const _: () = assert!(size_of::<QxlFill>() == 39);

/// `QXLCopy` (also `QXLBlend`).
#[doc(alias = "QXLCopy")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlCopy {
    pub src_bitmap: U64,
    pub src_area: QxlRect,
    pub rop_descriptor: U16,
    pub scale_mode: u8,
    pub mask: QxlQMask,
}
const _: () = assert!(size_of::<QxlCopy>() == 44);

/// `QXLCopyBits`.
#[doc(alias = "QXLCopyBits")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlCopyBits {
    pub src_pos: QxlPoint,
}

/// `QXLImageDescriptor`.
#[doc(alias = "QXLImageDescriptor")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlImageDescriptor {
    pub id: U64,
    pub ty: u8,
    pub flags: u8,
    pub width: U32,
    pub height: U32,
}
const _: () = assert!(size_of::<QxlImageDescriptor>() == 18);

/// `QXLBitmap`.
#[doc(alias = "QXLBitmap")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlBitmap {
    pub format: u8,
    pub flags: u8,
    pub x: U32,
    pub y: U32,
    pub stride: U32,
    pub palette: U64,
    pub data: U64,
}
const _: () = assert!(size_of::<QxlBitmap>() == 30);

/// `QXLImage` with its BITMAP member (the largest), 48 bytes.
#[doc(alias = "QXLImage")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlImage {
    pub descriptor: QxlImageDescriptor,
    pub bitmap: QxlBitmap,
}
const _: () = assert!(size_of::<QxlImage>() == 48);
const _: () = assert!(offset_of!(QxlImage, bitmap) == 18);

/// `QXLSurfaceId`, the SURFACE member of `QXLImage`'s union.
#[doc(alias = "QXLSurfaceId")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlSurfaceId {
    pub surface_id: U32,
}

/// `QXLPalette` header; `num_ents` × u32 follow.
#[doc(alias = "QXLPalette")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlPalette {
    pub unique: U64,
    pub num_ents: U16,
}
const _: () = assert!(size_of::<QxlPalette>() == 10);

/// `QXLDataChunk` header; `data_size` bytes follow.
#[doc(alias = "QXLDataChunk")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlDataChunk {
    pub data_size: U32,
    pub prev_chunk: U64,
    pub next_chunk: U64,
}
const _: () = assert!(size_of::<QxlDataChunk>() == 20);

/// `QXLClipRects` header: the count, then the first chunk inline.
#[doc(alias = "QXLClipRects")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlClipRects {
    pub num_rects: U32,
    pub chunk: QxlDataChunk,
}
pub const CLIP_RECTS_CHUNK_OFFSET: usize = offset_of!(QxlClipRects, chunk);
const _: () = assert!(CLIP_RECTS_CHUNK_OFFSET == 4);

/// `QXLUpdateCmd` (legacy).
#[doc(alias = "QXLUpdateCmd")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlUpdateCmd {
    pub release_info: QxlReleaseInfo,
    pub area: QxlRect,
    pub update_id: U32,
    pub surface_id: U32,
}
const _: () = assert!(size_of::<QxlUpdateCmd>() == 32);

/// `QXLSurface`, inside `QXLSurfaceCmd`.
#[doc(alias = "QXLSurface")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlSurface {
    pub format: U32,
    pub width: U32,
    pub height: U32,
    pub stride: I32,
    pub data: U64,
}

/// `QXLSurfaceCmd`, 41 bytes.
#[doc(alias = "QXLSurfaceCmd")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlSurfaceCmd {
    pub release_info: QxlReleaseInfo,
    pub surface_id: U32,
    pub ty: u8,
    pub flags: U32,
    pub surface: QxlSurface,
}
const _: () = assert!(size_of::<QxlSurfaceCmd>() == 41);
const _: () = assert!(offset_of!(QxlSurfaceCmd, surface) == 17);

/// `QXLCursorCmd`, 150 bytes. `u` is SET `{QXLPoint16 position, u8 visible, u64 shape}`,
/// MOVE `{QXLPoint16 position}` or TRAIL `{u16 length, u16 frequency}`.
#[doc(alias = "QXLCursorCmd")]
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlCursorCmd {
    pub release_info: QxlReleaseInfo,
    pub ty: u8,
    pub u: [u8; 13],
    pub device_data: [u8; 128],
}
const _: () = assert!(size_of::<QxlCursorCmd>() == 150);
const _: () = assert!(offset_of!(QxlCursorCmd, u) == 9);

/// The SET member of `QXLCursorCmd`'s union.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlCursorSet {
    pub position: QxlPoint16,
    pub visible: u8,
    pub shape: U64,
}
const _: () = assert!(size_of::<QxlCursorSet>() == 13);

/// The TRAIL member of `QXLCursorCmd`'s union.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlCursorTrail {
    pub length: U16,
    pub frequency: U16,
}

/// `QXLCursorHeader`.
#[doc(alias = "QXLCursorHeader")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlCursorHeader {
    pub unique: U64,
    pub ty: U16,
    pub width: U16,
    pub height: U16,
    pub hot_spot_x: U16,
    pub hot_spot_y: U16,
}
const _: () = assert!(size_of::<QxlCursorHeader>() == 18);

/// `QXLCursor`: header, total data size, then the first chunk inline (42 bytes).
#[doc(alias = "QXLCursor")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlCursor {
    pub header: QxlCursorHeader,
    pub data_size: U32,
    pub chunk: QxlDataChunk,
}
const _: () = assert!(size_of::<QxlCursor>() == 42);
pub const CURSOR_CHUNK_OFFSET: usize = offset_of!(QxlCursor, chunk);
const _: () = assert!(CURSOR_CHUNK_OFFSET == 22);

/// `QXLHead`, 28 bytes.
#[doc(alias = "QXLHead")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct QxlHead {
    pub id: U32,
    pub surface_id: U32,
    pub width: U32,
    pub height: U32,
    pub x: U32,
    pub y: U32,
    pub flags: U32,
}
const _: () = assert!(size_of::<QxlHead>() == 28);
