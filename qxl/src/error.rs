//! The crate's error types, one per boundary: device setup and producer calls (`QxlError`),
//! address translation (`AddrError`), command parsing (`ParseError`), device I/O (`IoError`).

use thiserror::Error;

/// A QXL address could not be turned into a region span.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum AddrError {
    #[error("Address {addr:#x} names memslot {slot}, which is not active")]
    SlotInvalid { addr: u64, slot: u64 },
    #[error("Address {addr:#x} has generation {generation}, memslot {slot} has {expected}")]
    GenerationMismatch {
        addr: u64,
        slot: u64,
        generation: u64,
        expected: u8,
    },
    #[error("Access of {len} bytes at {addr:#x} lies outside its memslot")]
    AddressOutsideSlot { addr: u64, len: usize },
    #[error("Address {addr:#x} is null")]
    Null { addr: u64 },
}

/// The producer put something in shared memory that the consumer refuses (guest is the cause).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("Guest address rejected")]
    Addr(#[from] AddrError),
    #[error("Guest ring indices are inconsistent: prod {prod}, cons {cons}, {num_items} items")]
    RingIndexInvalid {
        prod: u32,
        cons: u32,
        num_items: u32,
    },
    #[error("Guest command type {0} is unknown or not allowed on this ring")]
    UnexpectedCommandType(u32),
    #[error("Guest chunk chain has more than {limit} chunks")]
    ChunkChainTooLong { limit: usize },
    #[error("Guest data of {size} bytes exceeds the limit of {limit}")]
    DataTooLarge { size: u64, limit: usize },
    #[error("Guest chunk chain holds {got} bytes, the header says {expected}")]
    ChunkSizeMismatch { expected: u64, got: u64 },
    #[error("Guest clip has {0} rects")]
    TooManyClipRects(u32),
    #[error("Guest clip type {0} is unknown")]
    UnknownClipType(u32),
    #[error("Guest rectangle {top},{left},{bottom},{right} is inverted")]
    InvalidRect {
        top: i32,
        left: i32,
        bottom: i32,
        right: i32,
    },
    #[error("Guest surface id {0} is out of range")]
    SurfaceIdOutOfRange(u32),
    #[error("Guest surface format {0} is unknown")]
    UnknownSurfaceFormat(u32),
    #[error("Guest surface {width}x{height} stride {stride} is invalid")]
    InvalidSurfaceGeometry {
        width: u32,
        height: u32,
        stride: i64,
    },
    #[error("Guest surface command type {0} is unknown")]
    UnknownSurfaceCmdType(u8),
    #[error("Guest brush type {0} is not supported")]
    UnsupportedBrush(u32),
    #[error("Guest image type {0} is not supported")]
    UnsupportedImageType(u8),
    #[error("Guest bitmap format {0} is not supported")]
    UnsupportedBitmapFormat(u8),
    #[error("Guest bitmap {width}x{height} stride {stride} is invalid")]
    InvalidBitmapGeometry {
        width: u32,
        height: u32,
        stride: u32,
    },
    #[error("Guest palette has {0} entries")]
    PaletteTooLarge(u16),
    #[error("Guest palette format without a palette")]
    PaletteMissing,
    #[error("Guest cursor command type {0} is unknown")]
    UnknownCursorCmdType(u8),
    #[error("Guest cursor type {0} is unknown")]
    UnknownCursorType(u16),
    #[error("Span lies outside the shared region (device layout bug)")]
    RegionFault,
    #[error("Guest cursor {width}x{height} does not fit its {data_size} data bytes")]
    InvalidCursorGeometry {
        width: u16,
        height: u16,
        data_size: u32,
    },
}

/// The consumer (display worker) could not carry out a device I/O request.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum IoError {
    #[error("I/O request rejected: {0}")]
    Rejected(String),
    #[error("I/O request dropped by the consumer without an answer")]
    Dropped,
}

/// Device setup and producer-side failures.
#[derive(Debug, Error)]
pub enum QxlError {
    #[error("Invalid device configuration: {0}")]
    InvalidConfig(&'static str),
    #[error("Failed to create the shared memory file")]
    Memfd(#[source] std::io::Error),
    #[error("Failed to map the shared memory region: {0}")]
    Mmap(String),
    #[error("Access of {len} bytes at region offset {offset:#x} is out of bounds")]
    RegionOutOfBounds { offset: usize, len: usize },
    #[error("Address translation failed")]
    Addr(#[from] AddrError),
    #[error("No room in QXL {what} after waiting for the consumer")]
    Busy { what: &'static str },
    #[error("Allocation of {len} bytes can never fit in QXL {what}")]
    TooLarge { len: usize, what: &'static str },
    #[error(
        "Rectangle {top},{left},{bottom},{right} is empty, inverted or outside the primary surface"
    )]
    InvalidRect {
        top: i32,
        left: i32,
        bottom: i32,
        right: i32,
    },
    #[error("Pixel buffer of {got} bytes is shorter than the {need} bytes the rectangle needs")]
    PixelsTooShort { need: usize, got: usize },
    #[error("Invalid argument: {0}")]
    InvalidArgument(&'static str),
    #[error("No primary surface exists")]
    NoPrimary,
    #[error("Consumer did not answer the I/O request within {0:?}")]
    IoTimeout(std::time::Duration),
    #[error("I/O request failed")]
    Io(#[from] IoError),
    #[error("Consumer published inconsistent {ring} ring indices: prod {prod}, cons {cons}")]
    RingIndexInvalid {
        ring: &'static str,
        prod: u32,
        cons: u32,
    },
}
