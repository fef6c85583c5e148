//! Owned, validated values made from QXL commands: what the consumer hands the display worker.
//!
//! Nothing here refers to shared memory; pixel data was copied out at parse time.

/// Validated geometry, spice order (`QXLRect {top, left, bottom, right}`): `top <= bottom`,
/// `left <= right`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rect {
    pub top: i32,
    pub left: i32,
    pub bottom: i32,
    pub right: i32,
}

impl Rect {
    /// `Rect` from origin and size, `None` on overflow.
    pub fn from_xywh(x: i32, y: i32, width: u32, height: u32) -> Option<Rect> {
        let right = x.checked_add(i32::try_from(width).ok()?)?;
        let bottom = y.checked_add(i32::try_from(height).ok()?)?;
        Some(Rect {
            top: y,
            left: x,
            bottom,
            right,
        })
    }

    /// Width, 0 for an inverted rect.
    pub fn width(&self) -> u32 {
        u32::try_from(i64::from(self.right) - i64::from(self.left)).unwrap_or(0)
    }

    /// Height, 0 for an inverted rect.
    pub fn height(&self) -> u32 {
        u32::try_from(i64::from(self.bottom) - i64::from(self.top)).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.width() == 0 || self.height() == 0
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

/// One command from the command ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Draw(Drawable),
    Surface(SurfaceCmd),
    /// Legacy `QXL_CMD_UPDATE`: render `area` of `surface_id` (spice-server ignores it too).
    Update {
        surface_id: u32,
        area: Rect,
    },
    /// `QXL_CMD_MESSAGE`: a debug text we do not read.
    Message,
    Nop,
}

/// `QXLDrawable`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drawable {
    pub surface_id: u32,
    pub bbox: Rect,
    pub clip: Clip,
    /// `QXL_EFFECT_*`.
    pub effect: u8,
    pub op: DrawOp,
    pub mm_time: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clip {
    None,
    Rects(Vec<Rect>),
}

/// The drawable's operation. Masks (`QXLQMask`) and `self_bitmap` are not carried: the worker
/// does not implement them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrawOp {
    /// Solid brush; `color` is xRGB.
    Fill {
        color: u32,
        rop: u16,
    },
    Copy {
        src: Image,
        src_area: Rect,
        rop: u16,
        scale_mode: u8,
    },
    CopyBits {
        src_pos: Point,
    },
    /// Parsed header only (`QXL_DRAW_*` type); the worker ignores it.
    Other {
        draw_type: u8,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Image {
    Bitmap(Bitmap),
    Surface { surface_id: u32 },
}

/// A bitmap, rows top-down, each `stride` bytes (the minimal row length for the format).
#[derive(Clone, PartialEq, Eq)]
pub struct Bitmap {
    /// `QXLImageDescriptor.id` (`unique << 32 | group`).
    pub id: u64,
    /// `SPICE_BITMAP_FMT_*`.
    pub format: u8,
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    pub data: Vec<u8>,
    pub palette: Option<Vec<u32>>,
}

impl std::fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bitmap")
            .field("id", &self.id)
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("stride", &self.stride)
            .field("data_len", &self.data.len())
            .field("palette_len", &self.palette.as_ref().map(Vec::len))
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SurfaceCmd {
    pub surface_id: u32,
    pub kind: SurfaceCmdKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SurfaceCmdKind {
    Create(SurfaceCreate),
    Destroy,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SurfaceCreate {
    /// `SPICE_SURFACE_FMT_*`.
    pub format: u32,
    pub width: u32,
    pub height: u32,
    /// With `QXL_SURF_FLAG_KEEP_DATA`: top-down rows of `width * bpp / 8` bytes each.
    pub initial: Option<Vec<u8>>,
}

impl std::fmt::Debug for SurfaceCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SurfaceCreate")
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("initial_len", &self.initial.as_ref().map(Vec::len))
            .finish()
    }
}

/// One command from the cursor ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CursorCmd {
    Set {
        position: Point,
        visible: bool,
        shape: CursorShape,
    },
    Move {
        position: Point,
    },
    Hide,
    Trail {
        length: u16,
        frequency: u16,
    },
}

#[derive(Clone, PartialEq, Eq)]
pub struct CursorShape {
    pub unique: u64,
    /// `SPICE_CURSOR_TYPE_*`.
    pub kind: u16,
    pub width: u16,
    pub height: u16,
    pub hot_x: u16,
    pub hot_y: u16,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for CursorShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CursorShape")
            .field("unique", &self.unique)
            .field("kind", &self.kind)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("hot_x", &self.hot_x)
            .field("hot_y", &self.hot_y)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// `QXLHead`: one monitor of a `MonitorsConfig` request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Head {
    pub id: u32,
    pub surface_id: u32,
    pub width: u32,
    pub height: u32,
    pub x: u32,
    pub y: u32,
}
