//! The only place bytes come off a SPICE socket: `Reader`, the `Codec` trait and `WireError`.
//!
//! Modelled on rustls `msgs/codec.rs`: one `Reader` over a borrowed message body, one
//! `Codec` impl per wire struct, whole messages through [`Codec::read_bytes`], which rejects
//! trailing bytes. SPICE adds one twist: pointers inside a body are `u32` offsets from the
//! **start of the body** (spice-common `spice.proto`, research brief §2.6), so every
//! `Reader` keeps the whole body it came from and [`Reader::pointer`] resolves offsets
//! against it, never against the sub-range being read.

use std::fmt;

/// What went wrong while decoding bytes from the peer. Each variant names the field read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes ended inside a field.
    #[error("Message ended while reading {0}")]
    MissingData(&'static str),
    /// A whole message was decoded and bytes were left over.
    #[error("{left} unexpected bytes after {what}")]
    TrailingData {
        /// The message or struct that should have ended.
        what: &'static str,
        /// How many bytes were left.
        left: usize,
    },
    /// A body-relative pointer points at or past the end of the body.
    #[error("Pointer to {what} at offset {offset} is outside the {len}-byte message")]
    PointerOutOfBounds {
        /// The pointee.
        what: &'static str,
        /// The offset the peer sent.
        offset: u32,
        /// The body length.
        len: usize,
    },
    /// A pointer the protocol marks `@nonnull` was 0.
    #[error("Null pointer to {0}, which the protocol requires")]
    NullPointer(&'static str),
    /// A peer-declared count exceeds our named limit.
    #[error("{what} count {count} exceeds our limit of {limit}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// The peer's count.
        count: u64,
        /// Our limit.
        limit: u64,
    },
    /// A value we understand but do not implement (a palette pointer, a pattern brush…).
    #[error("Unsupported {what} {value:#x}")]
    Unsupported {
        /// The field.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// A value that no valid message carries.
    #[error("Invalid {what} {value:#x}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Its value.
        value: u64,
    },
}

/// A cursor over one message body (or a part of it) that only moves forward.
///
/// `body` is the whole message body, kept for resolving pointers; `pos..end` is the range
/// this reader may still take from.
#[derive(Clone)]
pub struct Reader<'a> {
    body: &'a [u8],
    pos: usize,
    end: usize,
}

impl fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("body_len", &self.body.len())
            .field("pos", &self.pos)
            .field("end", &self.end)
            .finish()
    }
}

impl<'a> Reader<'a> {
    /// A reader over a whole message body.
    pub fn new(body: &'a [u8]) -> Self {
        Self {
            body,
            pos: 0,
            end: body.len(),
        }
    }

    /// Bytes still available to this reader.
    pub fn left(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    /// Whether any byte is left.
    pub fn any_left(&self) -> bool {
        self.pos < self.end
    }

    /// Offset of the next byte from the start of the body.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Takes `len` bytes or fails naming `what`.
    pub fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if len > self.left() {
            return Err(WireError::MissingData(what));
        }
        let start = self.pos;
        self.pos = start.saturating_add(len);
        self.body
            .get(start..self.pos)
            .ok_or(WireError::MissingData(what))
    }

    /// Takes exactly `N` bytes as an array.
    pub fn take_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let bytes = self.take(N, what)?;
        bytes.try_into().map_err(|_| WireError::MissingData(what))
    }

    /// A reader over the next `len` bytes (a length-prefixed part), which this one skips.
    /// Pointers read through it still resolve against the whole body.
    pub fn sub(&mut self, len: usize, what: &'static str) -> Result<Reader<'a>, WireError> {
        let start = self.pos;
        self.take(len, what)?;
        Ok(Reader {
            body: self.body,
            pos: start,
            end: self.pos,
        })
    }

    /// Everything left, e.g. an array that extends to the end of the message (`T a[]`).
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.pos;
        self.pos = self.end;
        self.body.get(start..self.end).unwrap_or_default()
    }

    /// Fails with `TrailingData` if anything is left.
    pub fn expect_empty(&self, what: &'static str) -> Result<(), WireError> {
        match self.left() {
            0 => Ok(()),
            left => Err(WireError::TrailingData { what, left }),
        }
    }

    /// Reads a `u32` body offset; `Ok(None)` for a NULL pointer, else a reader that starts at
    /// the offset and may run to the end of the body. Offsets at or past the end of the body
    /// are errors, as the generated demarshallers reject them.
    pub fn pointer(&mut self, what: &'static str) -> Result<Option<Reader<'a>>, WireError> {
        let offset = self.u32(what)?;
        if offset == 0 {
            return Ok(None);
        }
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        if start >= self.body.len() {
            return Err(WireError::PointerOutOfBounds {
                what,
                offset,
                len: self.body.len(),
            });
        }
        Ok(Some(Reader {
            body: self.body,
            pos: start,
            end: self.body.len(),
        }))
    }

    /// As [`Reader::pointer`] for a `@nonnull` pointer.
    pub fn nonnull_pointer(&mut self, what: &'static str) -> Result<Reader<'a>, WireError> {
        self.pointer(what)?.ok_or(WireError::NullPointer(what))
    }

    /// After following pointers, moves this reader past the furthest byte a pointee used, so
    /// that the trailing-data check of a whole message covers the pointees too.
    pub fn claim_through(&mut self, end: usize) {
        if end > self.pos {
            self.pos = end.min(self.end);
        }
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(u8::from_le_bytes(self.take_array(what)?))
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.take_array(what)?))
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take_array(what)?))
    }

    /// A **big-endian** `u32`, used only for the LZ4 block length inside image data (§4).
    pub fn u32_be(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.take_array(what)?))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.take_array(what)?))
    }

    /// A little-endian `i16`.
    pub fn i16(&mut self, what: &'static str) -> Result<i16, WireError> {
        Ok(i16::from_le_bytes(self.take_array(what)?))
    }

    /// A little-endian `i32`.
    pub fn i32(&mut self, what: &'static str) -> Result<i32, WireError> {
        Ok(i32::from_le_bytes(self.take_array(what)?))
    }

    /// A little-endian `i64`.
    pub fn i64(&mut self, what: &'static str) -> Result<i64, WireError> {
        Ok(i64::from_le_bytes(self.take_array(what)?))
    }

    /// A peer-declared element count, checked against `limit` and against the bytes left
    /// (`count × elem_size` must be present) before anyone allocates for it.
    pub fn count(
        &mut self,
        count: u64,
        elem_size: usize,
        limit: usize,
        what: &'static str,
    ) -> Result<usize, WireError> {
        let limit64 = u64::try_from(limit).unwrap_or(u64::MAX);
        if count > limit64 {
            return Err(WireError::TooMany {
                what,
                count,
                limit: limit64,
            });
        }
        let n = usize::try_from(count).map_err(|_| WireError::MissingData(what))?;
        match n.checked_mul(elem_size) {
            Some(bytes) if bytes <= self.left() => Ok(n),
            _ => Err(WireError::MissingData(what)),
        }
    }
}

/// One wire struct: how it is written and how it is read. Exactly one impl per struct.
pub trait Codec<'a>: Sized {
    /// Appends the encoding. A message's body starts where its `encode` starts, which is what
    /// body-relative pointers are measured from (see [`PointerSlot`]).
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads one value, leaving the reader after it.
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError>;

    /// Reads a whole message body: everything must be consumed.
    fn read_bytes(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let value = Self::read(&mut r)?;
        r.expect_empty(std::any::type_name::<Self>())?;
        Ok(value)
    }

    /// The encoding in a fresh vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Placeholder written for a length or pointer not yet known. An encode interrupted before
/// the patch leaves `0xffff_ffff`: as a size it exceeds every limit, as a pointer it lies
/// outside every message, so a half-written structure can never be read as valid
/// (rustls `LengthPrefixedBuffer` makes the same choice).
const PLACEHOLDER: [u8; 4] = [0xff; 4];

/// A `u32` written now and patched once its value is known (a size or an offset).
#[derive(Debug)]
#[must_use = "a reserved slot must be patched"]
pub struct U32Slot {
    at: usize,
}

impl U32Slot {
    /// Writes the placeholder and remembers where.
    pub fn reserve(out: &mut Vec<u8>) -> Self {
        let at = out.len();
        out.extend_from_slice(&PLACEHOLDER);
        Self { at }
    }

    /// Writes `value` into the slot.
    pub fn patch(self, out: &mut [u8], value: u32) {
        if let Some(slot) = out.get_mut(self.at..self.at.saturating_add(4)) {
            slot.copy_from_slice(&value.to_le_bytes());
        }
    }

    /// Patches with the number of bytes written after the slot (a length prefix).
    pub fn patch_len_since(self, out: &mut [u8]) {
        let len = out.len().saturating_sub(self.at.saturating_add(4));
        self.patch(out, len_u32(len));
    }
}

/// A body-relative pointer whose pointee is appended later.
#[derive(Debug)]
#[must_use = "a pointer slot must be pointed somewhere"]
pub struct PointerSlot(U32Slot);

impl PointerSlot {
    /// Writes the placeholder offset.
    pub fn reserve(out: &mut Vec<u8>) -> Self {
        Self(U32Slot::reserve(out))
    }

    /// Points the slot at the end of `out`, where the caller is about to write the pointee;
    /// `body_start` is where the message body began in `out`.
    pub fn point_here(self, out: &mut [u8], body_start: usize) {
        let offset = out.len().saturating_sub(body_start);
        self.0.patch(out, len_u32(offset));
    }
}

/// A length for a `u32` wire field. Lengths we encode come from our own bounded data; one
/// that did not fit would be a bug of ours, and saturating keeps the message malformed
/// rather than silently short.
pub fn len_u32(len: usize) -> u32 {
    debug_assert!(u32::try_from(len).is_ok(), "wire length {len} exceeds u32");
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Little-endian writers, the mirror of `Reader`'s getters.
pub trait PutLe {
    /// Appends a `u16`.
    fn put_u16(&mut self, v: u16);
    /// Appends a `u32`.
    fn put_u32(&mut self, v: u32);
    /// Appends a `u64`.
    fn put_u64(&mut self, v: u64);
    /// Appends an `i16`.
    fn put_i16(&mut self, v: i16);
    /// Appends an `i32`.
    fn put_i32(&mut self, v: i32);
    /// Appends an `i64`.
    fn put_i64(&mut self, v: i64);
}

impl PutLe for Vec<u8> {
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i16(&mut self, v: i16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i32(&mut self, v: i32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
// Tests index freely: a panic there is a failed test, not a crash.
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn interrupted_length_slot_reads_as_oversized() {
        let mut out = vec![1];
        let slot = U32Slot::reserve(&mut out);
        out.push(0xaa);
        assert_eq!(out, [1, 0xff, 0xff, 0xff, 0xff, 0xaa]);
        slot.patch_len_since(&mut out);
        assert_eq!(out, [1, 1, 0, 0, 0, 0xaa]);
    }

    #[test]
    fn rejects_truncated_u32() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u32("x"), Err(WireError::MissingData("x")));
    }

    #[test]
    fn rejects_pointer_outside_message() {
        let body = [4, 0, 0, 0];
        let mut r = Reader::new(&body);
        assert!(matches!(
            r.pointer("image"),
            Err(WireError::PointerOutOfBounds {
                offset: 4,
                len: 4,
                ..
            })
        ));
    }

    #[test]
    fn pointer_resolves_against_whole_body_from_sub_reader() {
        let body = [0, 5, 0, 0, 0, 0x77];
        let mut r = Reader::new(&body);
        r.u8("pad").unwrap();
        let mut sub = r.sub(4, "sub").unwrap();
        let mut p = sub.pointer("p").unwrap().unwrap();
        assert_eq!(p.u8("pointee").unwrap(), 0x77);
        assert!(r.any_left());
    }

    #[test]
    fn rejects_count_over_bytes_present() {
        let mut r = Reader::new(&[0; 8]);
        assert_eq!(
            r.count(3, 4, 100, "rects"),
            Err(WireError::MissingData("rects"))
        );
        assert!(matches!(
            r.count(101, 0, 100, "rects"),
            Err(WireError::TooMany { .. })
        ));
        assert_eq!(r.count(2, 4, 100, "rects"), Ok(2));
    }
}
