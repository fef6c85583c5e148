//! Reading guest data out of shared memory: chunk chains and row-copied pixel areas, each
//! bounded by fuel and a checked total before anything is allocated.
//!
//! spice: server/red-parse-qxl.cpp `red_get_data_chunks_ptr` follows `next_chunk` until 0,
//! checks every chunk against its memslot and caps the chain; we do the same with tighter
//! named limits, iteratively (a loop in the chain runs out of fuel, it never recurses).
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::mem::size_of;

use zerocopy::{FromBytes, IntoBytes};

use crate::abi::QxlDataChunk;
use crate::error::{ParseError, QxlError};
use crate::memslot::{MemSlotTable, QxlPhys, Span};
use crate::region::Region;

/// Most chunks one chain may have. Our producer writes one chunk per object and the Linux
/// driver a handful; 4096 bounds the header reads a hostile chain costs (spice-server allows
/// `0x7fffffff / 1024`, far more than any driver uses).
pub const MAX_CHUNKS: usize = 4096;

/// Read access to shared memory through the memslots: the only way parse code reads it.
#[derive(Clone, Copy)]
pub struct Mem<'a> {
    pub region: &'a Region,
    pub slots: &'a MemSlotTable,
}

impl Mem<'_> {
    pub fn resolve(&self, addr: QxlPhys, len: usize) -> Result<Span, ParseError> {
        Ok(self.slots.resolve(addr, len)?)
    }

    /// Copies a `T` out of shared memory at `addr`.
    pub fn obj<T: FromBytes + IntoBytes>(&self, addr: QxlPhys) -> Result<(T, Span), ParseError> {
        let span = self.resolve(addr, size_of::<T>())?;
        let value = self.read_obj(span)?;
        Ok((value, span))
    }

    pub fn read_obj<T: FromBytes + IntoBytes>(&self, span: Span) -> Result<T, ParseError> {
        self.region
            .read_obj::<T>(span.offset())
            .map_err(region_fault)
    }

    /// Copies `out.len()` bytes starting at `span.offset() + start`; the range must lie in `span`.
    pub fn read_into(&self, span: Span, start: usize, out: &mut [u8]) -> Result<(), ParseError> {
        let sub = span.sub(start, out.len()).ok_or(ParseError::DataTooLarge {
            size: u64::try_from(out.len()).unwrap_or(u64::MAX),
            limit: span.len(),
        })?;
        self.region.read(sub.offset(), out).map_err(region_fault)
    }

    /// Appends the `len` bytes at `span.offset() + start` to `out`; the range must lie in
    /// `span`.
    pub fn read_append(
        &self,
        span: Span,
        start: usize,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ParseError> {
        let sub = span.sub(start, len).ok_or(ParseError::DataTooLarge {
            size: u64::try_from(len).unwrap_or(u64::MAX),
            limit: span.len(),
        })?;
        self.region
            .read_append(sub.offset(), len, out)
            .map_err(region_fault)
    }
}

/// A resolved span always lies in the region (memslots are built from the region's layout), so
/// a region fault here is a layout bug; it is still reported, never a panic.
fn region_fault(_: QxlError) -> ParseError {
    ParseError::RegionFault
}

/// Reads a chain starting with the chunk header at `first` that must hold exactly `expected`
/// bytes (`expected <= limit` is checked before allocating).
pub fn read_chain(
    mem: Mem<'_>,
    first: QxlPhys,
    expected: u64,
    limit: usize,
) -> Result<Vec<u8>, ParseError> {
    let expected_len = usize::try_from(expected)
        .ok()
        .filter(|&e| e <= limit)
        .ok_or(ParseError::DataTooLarge {
            size: expected,
            limit,
        })?;
    // Grows with the bytes actually found (doubling, capped at `expected_len`), so a header
    // that promises much and delivers little costs little.
    let mut out = Vec::new();
    let mut addr = first;
    for _ in 0..MAX_CHUNKS {
        let (chunk, _) = mem.obj::<QxlDataChunk>(addr)?;
        let size = usize::try_from(chunk.data_size.get()).unwrap_or(usize::MAX);
        let total = out
            .len()
            .checked_add(size)
            .filter(|&t| t <= expected_len)
            .ok_or(ParseError::ChunkSizeMismatch {
                expected,
                got: u64::try_from(out.len())
                    .unwrap_or(u64::MAX)
                    .saturating_add(u64::from(chunk.data_size.get())),
            })?;
        if size > 0 {
            let data_addr = addr
                .checked_add(size_of::<QxlDataChunk>())
                .ok_or(ParseError::Addr(
                    crate::error::AddrError::AddressOutsideSlot {
                        addr: addr.0,
                        len: size,
                    },
                ))?;
            let span = mem.resolve(data_addr, size)?;
            let start = out.len();
            if out.capacity() < total {
                let target = out.capacity().saturating_mul(2).clamp(total, expected_len);
                out.reserve_exact(target.saturating_sub(start));
            }
            mem.read_append(span, 0, size, &mut out)?;
        }
        let next = QxlPhys(chunk.next_chunk.get());
        if next.is_null() {
            return if out.len() == expected_len {
                Ok(out)
            } else {
                Err(ParseError::ChunkSizeMismatch {
                    expected,
                    got: u64::try_from(out.len()).unwrap_or(u64::MAX),
                })
            };
        }
        addr = next;
    }
    Err(ParseError::ChunkChainTooLong { limit: MAX_CHUNKS })
}

/// Where rows come from: a span of shared memory or bytes already copied out of a chain.
pub enum RowSource<'a> {
    Shared(Mem<'a>, Span),
    Owned(Vec<u8>),
}

/// Copies `height` rows of `row_bytes` each, `stride` apart in the source, into a compact
/// top-down buffer. `bottom_up` sources hold the last row first. The caller has checked
/// `stride >= row_bytes` and `stride * height` against its limit; out-of-range reads are errors.
pub fn copy_rows(
    src: RowSource<'_>,
    row_bytes: usize,
    stride: usize,
    height: usize,
    bottom_up: bool,
) -> Result<Vec<u8>, ParseError> {
    let too_large = ParseError::DataTooLarge {
        size: u64::MAX,
        limit: 0,
    };
    let total = row_bytes.checked_mul(height).ok_or(too_large.clone())?;
    if let RowSource::Owned(bytes) = &src {
        if !bottom_up && stride == row_bytes && bytes.len() == total {
            return match src {
                RowSource::Owned(bytes) => Ok(bytes),
                RowSource::Shared(..) => Err(too_large),
            };
        }
    }
    // Filled row by row from the source, never zero-filled first: each shared byte is read
    // once, into the buffer the worker keeps.
    let mut out = Vec::with_capacity(total);
    if row_bytes == 0 {
        return Ok(out);
    }
    if let RowSource::Shared(mem, span) = &src {
        if !bottom_up && stride == row_bytes {
            // Rows back to back, in order: one copy.
            mem.read_append(*span, 0, total, &mut out)?;
            return Ok(out);
        }
    }
    for row in 0..height {
        let src_row = if bottom_up {
            height
                .checked_sub(row)
                .and_then(|r| r.checked_sub(1))
                .ok_or(too_large.clone())?
        } else {
            row
        };
        let start = src_row.checked_mul(stride).ok_or(too_large.clone())?;
        match &src {
            RowSource::Shared(mem, span) => mem.read_append(*span, start, row_bytes, &mut out)?,
            RowSource::Owned(bytes) => {
                let end = start.checked_add(row_bytes).ok_or(too_large.clone())?;
                let part = bytes.get(start..end).ok_or(too_large.clone())?;
                out.extend_from_slice(part);
            }
        }
    }
    Ok(out)
}
