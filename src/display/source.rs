//! What the worker consumes: owned, already-parsed QXL commands and the trait that hands them
//! over.
//!
//! These mirror the validated values the `qxl` crate's consumer produces (field names kept), so
//! the glue between the two is a field-by-field move. Nothing here is trusted: the worker checks
//! every id, size and rectangle again before touching a pixel.

use std::fmt;
use std::time::Duration;

use super::error::DisplayError;
pub use super::geom::{Clip, Point, Rect};

/// Hands the worker its next piece of work.
pub trait CommandSource: Send {
    /// Waits up to `timeout` for work; `None` on timeout. The worker checks for shutdown
    /// between calls, so `timeout` bounds how long a shutdown waits.
    fn next(&mut self, timeout: Duration) -> Option<Work>;
}

/// One unit of work, in the order the device produced it.
#[derive(Debug)]
pub enum Work {
    /// A drawable from the command ring (QXL_CMD_DRAW).
    Draw(DrawCommand),
    /// A surface command from the command ring (QXL_CMD_SURFACE).
    Surface(SurfaceCommand),
    /// A command from the cursor ring (QXL_CMD_CURSOR).
    Cursor(CursorCommand),
    /// A synchronous device I/O request; the producer waits for its completion.
    Io(IoWork),
}

/// A drawable (QXLDrawable), reduced to what the worker renders.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawCommand {
    /// Target surface.
    pub surface_id: u32,
    /// Destination rectangle.
    pub bbox: Rect,
    pub clip: Clip,
    pub op: DrawOp,
}

/// The draw operation (the QXLDrawable union, by `type`).
#[derive(Clone, Debug, PartialEq)]
pub enum DrawOp {
    /// QXL_DRAW_FILL with a solid brush: `color` is xRGB (or ARGB on an ARGB surface).
    Fill { color: u32, rop: u16 },
    /// QXL_DRAW_COPY: `src_area` of `src` onto `bbox`, scaled when the sizes differ.
    Copy {
        src: Image,
        src_area: Rect,
        rop: u16,
        scale_mode: u8,
    },
    /// QXL_DRAW_COPY_BITS: the target's pixels at `src_pos` move to `bbox`.
    CopyBits { src_pos: Point },
    /// A draw type the worker does not render (QXLDrawable `type`).
    Other { draw_type: u8 },
}

/// The source image of a copy (QXLImage, by descriptor type).
#[derive(Clone, Debug, PartialEq)]
pub enum Image {
    /// SPICE_IMAGE_TYPE_BITMAP, pixels copied out of guest memory.
    Bitmap(Bitmap),
    /// SPICE_IMAGE_TYPE_SURFACE: another surface (or the target itself), as rendered so far.
    SurfaceImage { surface_id: u32 },
}

/// An uncompressed bitmap (QXLBitmap), its pixels owned.
#[derive(Clone, PartialEq)]
pub struct Bitmap {
    /// SPICE bitmap format ([`BitmapFormat`] constants).
    pub format: u8,
    pub width: u32,
    pub height: u32,
    /// Bytes per row in `data`; rows may be padded.
    pub stride: usize,
    /// QXL_BITMAP_TOP_DOWN: the first row in `data` is the top one; otherwise the bottom one.
    pub top_down: bool,
    pub data: Vec<u8>,
    /// xRGB entries for the palette formats (QXLPalette `ents`).
    pub palette: Option<Vec<u32>>,
}

impl fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bitmap")
            .field("format", &BitmapFormat(self.format))
            .field("width", &self.width)
            .field("height", &self.height)
            .field("stride", &self.stride)
            .field("top_down", &self.top_down)
            .field("data_len", &self.data.len())
            .field("palette_len", &self.palette.as_ref().map(Vec::len))
            .finish()
    }
}

/// SPICE bitmap formats (spice-protocol enums.h `SpiceBitmapFmt`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BitmapFormat(pub u8);

impl BitmapFormat {
    pub const ONE_BIT_LE: Self = Self(1);
    pub const ONE_BIT_BE: Self = Self(2);
    pub const FOUR_BIT_LE: Self = Self(3);
    pub const FOUR_BIT_BE: Self = Self(4);
    /// 8-bit palette indices.
    pub const EIGHT_BIT: Self = Self(5);
    /// x1r5g5b5.
    pub const SIXTEEN_BIT: Self = Self(6);
    /// Bytes B, G, R.
    pub const TWENTY_FOUR_BIT: Self = Self(7);
    /// Bytes B, G, R, X (xRGB little-endian).
    pub const THIRTY_TWO_BIT: Self = Self(8);
    /// Bytes B, G, R, A (premultiplied ARGB little-endian).
    pub const RGBA: Self = Self(9);
    /// Alpha only (masks).
    pub const EIGHT_BIT_A: Self = Self(10);

    fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::ONE_BIT_LE => "1BIT_LE",
            Self::ONE_BIT_BE => "1BIT_BE",
            Self::FOUR_BIT_LE => "4BIT_LE",
            Self::FOUR_BIT_BE => "4BIT_BE",
            Self::EIGHT_BIT => "8BIT",
            Self::SIXTEEN_BIT => "16BIT",
            Self::TWENTY_FOUR_BIT => "24BIT",
            Self::THIRTY_TWO_BIT => "32BIT",
            Self::RGBA => "RGBA",
            Self::EIGHT_BIT_A => "8BIT_A",
            _ => return None,
        })
    }
}

impl fmt::Debug for BitmapFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "BitmapFormat({:#x})", self.0),
        }
    }
}

/// ROP descriptor bits (spice-protocol enums.h `SpiceRopd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rop(pub u16);

impl Rop {
    pub const INVERS_SRC: u16 = 1 << 0;
    pub const INVERS_BRUSH: u16 = 1 << 1;
    pub const INVERS_DEST: u16 = 1 << 2;
    pub const OP_PUT: u16 = 1 << 3;
    pub const OP_OR: u16 = 1 << 4;
    pub const OP_AND: u16 = 1 << 5;
    pub const OP_XOR: u16 = 1 << 6;
    pub const OP_BLACKNESS: u16 = 1 << 7;
    pub const OP_WHITENESS: u16 = 1 << 8;
    pub const OP_INVERS: u16 = 1 << 9;
    pub const INVERS_RES: u16 = 1 << 10;
}

/// A surface command (QXLSurfaceCmd).
#[derive(Clone, PartialEq)]
pub enum SurfaceCommand {
    /// QXL_SURFACE_CMD_CREATE. `initial` (QXL_SURF_FLAG_KEEP_DATA) holds the starting pixels,
    /// top row first, `width × bytes per pixel` bytes per row; short data leaves the rest black.
    Create {
        surface_id: u32,
        format: u32,
        width: u32,
        height: u32,
        initial: Option<Vec<u8>>,
    },
    /// QXL_SURFACE_CMD_DESTROY.
    Destroy { surface_id: u32 },
}

impl fmt::Debug for SurfaceCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Create {
                surface_id,
                format,
                width,
                height,
                initial,
            } => f
                .debug_struct("Create")
                .field("surface_id", surface_id)
                .field("format", format)
                .field("width", width)
                .field("height", height)
                .field("initial_len", &initial.as_ref().map(Vec::len))
                .finish(),
            Self::Destroy { surface_id } => f
                .debug_struct("Destroy")
                .field("surface_id", surface_id)
                .finish(),
        }
    }
}

/// A cursor command (QXLCursorCmd). TRAIL is not forwarded: no client implements it.
#[derive(Clone, Debug, PartialEq)]
pub enum CursorCommand {
    Set {
        position: Point,
        visible: bool,
        shape: CursorShape,
    },
    Move {
        position: Point,
    },
    Hide,
}

/// A cursor image (QXLCursor: header plus the pixel data of its chunk chain).
#[derive(Clone, PartialEq, Eq)]
pub struct CursorShape {
    /// Cache id (`header.unique`); 0 means "do not cache".
    pub unique: u64,
    /// SPICE cursor type ([`CursorShape::ALPHA`] ...).
    pub kind: u16,
    pub width: u16,
    pub height: u16,
    pub hot_x: u16,
    pub hot_y: u16,
    pub data: Vec<u8>,
}

impl CursorShape {
    /// `w × h × 4` bytes of premultiplied ARGB (spice-protocol enums.h `SpiceCursorType`).
    pub const ALPHA: u16 = 0;
    /// AND mask then XOR mask, `h × ceil(w / 8)` bytes each.
    pub const MONO: u16 = 1;
    pub const COLOR4: u16 = 2;
    pub const COLOR8: u16 = 3;
    pub const COLOR16: u16 = 4;
    pub const COLOR24: u16 = 5;
    pub const COLOR32: u16 = 6;
}

impl fmt::Debug for CursorShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

/// A device I/O request (QXL I/O ports), handled in order with the ring commands.
#[derive(Clone, PartialEq)]
pub enum IoRequest {
    /// QXL_IO_CREATE_PRIMARY: creates (or replaces) surface 0.
    CreatePrimary {
        format: u32,
        width: u32,
        height: u32,
        initial: Option<Vec<u8>>,
    },
    /// QXL_IO_DESTROY_PRIMARY: destroys surface 0 and resets the cursor.
    DestroyPrimary,
    /// QXL_IO_DESTROY_SURFACE_WAIT.
    DestroySurface { surface_id: u32 },
    /// QXL_IO_DESTROY_ALL_SURFACES.
    DestroyAllSurfaces,
    /// QXL_IO_UPDATE_AREA: the worker renders eagerly, so this only confirms the surface.
    UpdateArea { surface_id: u32, area: Rect },
    /// QXL_IO_RESET: every surface and the cursor go.
    Reset,
    /// QXL_IO_MONITORS_CONFIG_ASYNC: the guest's monitor layout, for clients to follow.
    MonitorsConfig { heads: Vec<Head> },
}

/// One monitor of the guest's layout (QXLHead).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Head {
    pub id: u32,
    /// The surface the monitor shows.
    pub surface_id: u32,
    pub width: u32,
    pub height: u32,
    pub x: u32,
    pub y: u32,
}

impl fmt::Debug for IoRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreatePrimary {
                format,
                width,
                height,
                initial,
            } => f
                .debug_struct("CreatePrimary")
                .field("format", format)
                .field("width", width)
                .field("height", height)
                .field("initial_len", &initial.as_ref().map(Vec::len))
                .finish(),
            Self::DestroyPrimary => f.write_str("DestroyPrimary"),
            Self::DestroySurface { surface_id } => f
                .debug_struct("DestroySurface")
                .field("surface_id", surface_id)
                .finish(),
            Self::DestroyAllSurfaces => f.write_str("DestroyAllSurfaces"),
            Self::UpdateArea { surface_id, area } => f
                .debug_struct("UpdateArea")
                .field("surface_id", surface_id)
                .field("area", area)
                .finish(),
            Self::Reset => f.write_str("Reset"),
            Self::MonitorsConfig { heads } => f
                .debug_struct("MonitorsConfig")
                .field("heads", heads)
                .finish(),
        }
    }
}

/// Called once with the outcome of an [`IoRequest`].
pub type Completion = Box<dyn FnOnce(Result<(), DisplayError>) + Send>;

/// An I/O request and its completion.
///
/// The completion runs exactly once: when the worker has handled the request or, if the
/// `IoWork` is dropped unhandled (worker shutting down), with [`DisplayError::ShuttingDown`].
/// The producer blocks on it, so it must never be lost.
pub struct IoWork {
    pub request: IoRequest,
    done: Option<Completion>,
}

impl IoWork {
    pub fn new(
        request: IoRequest,
        done: impl FnOnce(Result<(), DisplayError>) + Send + 'static,
    ) -> Self {
        Self {
            request,
            done: Some(Box::new(done)),
        }
    }

    /// Reports the outcome to the producer.
    pub fn complete(mut self, result: Result<(), DisplayError>) {
        if let Some(done) = self.done.take() {
            done(result);
        }
    }
}

impl Drop for IoWork {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(Err(DisplayError::ShuttingDown));
        }
    }
}

impl fmt::Debug for IoWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoWork")
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}
