//! The shared memory region (one memfd): ROM, then RAM with the `QXLRam` header at its end,
//! then VRAM.
//!
//! Only volatile accessors touch it: the other side writes while we read, so nothing is ever
//! borrowed as `&T` (STYLE §1.3). Offsets here are region offsets; QXL addresses become region
//! offsets only through `memslot::MemSlotTable::resolve`.

use std::fs::File;
use std::mem::size_of;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd};
use std::sync::atomic::Ordering;

use vm_memory::{Bytes, FileOffset, MmapRegion, VolatileMemory, WriteVolatile};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::abi::{self, QxlRam};
use crate::error::QxlError;

/// Bytes of the ROM area (QEMU's `QXL_ROM_SZ`, 8 KiB: `QXLRom` + the mode table).
pub const ROM_SIZE: usize = 8192;
/// Page size used to align the areas and the RAM header (QEMU: `TARGET_PAGE_SIZE`).
pub const PAGE_SIZE: usize = 4096;
/// Bytes reserved at the end of RAM for `QXLRam` (`ALIGN(sizeof(QXLRam), 4096)`).
pub const RAM_HEADER_SIZE: usize = size_of::<QxlRam>().next_multiple_of(PAGE_SIZE);

/// Where each area lives in the memfd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Region offset of BAR0 (RAM).
    pub ram_start: usize,
    /// Bytes of RAM usable for commands and resources (everything before the header).
    pub ram_usable: usize,
    /// Region offset of the `QXLRam` header.
    pub ram_header: usize,
    /// Region offset of VRAM.
    pub vram_start: usize,
    /// Bytes of VRAM.
    pub vram_size: usize,
    /// Bytes of the whole region.
    pub total: usize,
}

impl Layout {
    pub(crate) fn new(ram_size: usize, vram_size: usize) -> Result<Layout, QxlError> {
        if ram_size % PAGE_SIZE != 0 || vram_size % PAGE_SIZE != 0 {
            return Err(QxlError::InvalidConfig(
                "RAM and VRAM sizes must be multiples of 4096",
            ));
        }
        let ram_usable = ram_size
            .checked_sub(RAM_HEADER_SIZE)
            .filter(|&u| u >= PAGE_SIZE)
            .ok_or(QxlError::InvalidConfig(
                "RAM too small for the QXLRam header",
            ))?;
        let ram_start = ROM_SIZE;
        let ram_header = ram_start + ram_usable;
        let vram_start = ram_start
            .checked_add(ram_size)
            .ok_or(QxlError::InvalidConfig("RAM size overflows"))?;
        let total = vram_start
            .checked_add(vram_size)
            .ok_or(QxlError::InvalidConfig("VRAM size overflows"))?;
        Ok(Layout {
            ram_start,
            ram_usable,
            ram_header,
            vram_start,
            vram_size,
            total,
        })
    }

    pub fn cmd_ring(&self) -> usize {
        self.ram_header + abi::RAM_CMD_RING_OFFSET
    }
    pub fn cursor_ring(&self) -> usize {
        self.ram_header + abi::RAM_CURSOR_RING_OFFSET
    }
    pub fn release_ring(&self) -> usize {
        self.ram_header + abi::RAM_RELEASE_RING_OFFSET
    }
}

/// The mapped memfd. Every accessor bounds-checks and returns `RegionOutOfBounds` past the end.
#[derive(Debug)]
pub struct Region {
    file: File,
    map: MmapRegion<()>,
    layout: Layout,
}

impl Region {
    /// Creates and maps a zero-filled memfd laid out as `layout`.
    pub(crate) fn new(layout: Layout) -> Result<Region, QxlError> {
        // SAFETY: memfd_create reads the NUL-terminated name we pass (a C string literal that
        // lives for the whole call) and returns a new fd or -1; no memory of ours is written.
        let fd = unsafe { libc::memfd_create(c"qxl-region".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(QxlError::Memfd(std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just returned by memfd_create, is open, and nothing else owns it, so
        // the File becomes its sole owner and closes it exactly once.
        let file = unsafe { File::from_raw_fd(fd) };
        let len =
            u64::try_from(layout.total).map_err(|_| QxlError::InvalidConfig("region too large"))?;
        file.set_len(len).map_err(QxlError::Memfd)?;
        let clone = file.try_clone().map_err(QxlError::Memfd)?;
        let map = MmapRegion::from_file(FileOffset::new(clone, 0), layout.total)
            .map_err(|e| QxlError::Mmap(e.to_string()))?;
        Ok(Region { file, map, layout })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The memfd, for mapping the region in another process.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    pub fn len(&self) -> usize {
        self.layout.total
    }

    pub fn is_empty(&self) -> bool {
        self.layout.total == 0
    }

    /// Copies `buf.len()` bytes out of the region at `offset`.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), QxlError> {
        let slice =
            self.map
                .get_slice(offset, buf.len())
                .map_err(|_| QxlError::RegionOutOfBounds {
                    offset,
                    len: buf.len(),
                })?;
        slice.copy_to(buf);
        Ok(())
    }

    /// Appends the `len` bytes at `offset` to `out`: one read of the shared bytes, straight
    /// into `out`'s spare capacity (no zero-filled buffer first).
    pub fn read_append(
        &self,
        offset: usize,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), QxlError> {
        let out_of_bounds = || QxlError::RegionOutOfBounds { offset, len };
        let slice = self
            .map
            .get_slice(offset, len)
            .map_err(|_| out_of_bounds())?;
        out.write_all_volatile(&slice).map_err(|_| out_of_bounds())
    }

    /// Copies `buf` into the region at `offset`.
    pub fn write(&self, offset: usize, buf: &[u8]) -> Result<(), QxlError> {
        let slice =
            self.map
                .get_slice(offset, buf.len())
                .map_err(|_| QxlError::RegionOutOfBounds {
                    offset,
                    len: buf.len(),
                })?;
        slice.copy_from(buf);
        Ok(())
    }

    /// Copies a `T` out of the region (the only way a struct is read from shared memory).
    pub fn read_obj<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, QxlError> {
        let mut value = T::new_zeroed();
        self.read(offset, value.as_mut_bytes())?;
        Ok(value)
    }

    pub fn write_obj<T: IntoBytes + Immutable>(
        &self,
        offset: usize,
        value: &T,
    ) -> Result<(), QxlError> {
        self.write(offset, value.as_bytes())
    }

    /// Fills `len` bytes at `offset` with zeroes.
    pub fn zero(&self, offset: usize, len: usize) -> Result<(), QxlError> {
        let slice = self
            .map
            .get_slice(offset, len)
            .map_err(|_| QxlError::RegionOutOfBounds { offset, len })?;
        // Chunked so zeroing a large area needs no large buffer.
        const CHUNK: usize = 4096;
        let zeroes = [0u8; CHUNK];
        let mut done = 0;
        while done < len {
            let n = CHUNK.min(len - done);
            let part = slice
                .subslice(done, n)
                .map_err(|_| QxlError::RegionOutOfBounds { offset, len })?;
            part.copy_from(&zeroes[..n]);
            done += n;
        }
        Ok(())
    }

    /// Atomic load of a naturally aligned u32 (ring indices).
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32, QxlError> {
        self.map
            .as_volatile_slice()
            .load::<u32>(offset, order)
            .map_err(|_| QxlError::RegionOutOfBounds { offset, len: 4 })
    }

    /// Atomic store of a naturally aligned u32 (ring indices).
    pub fn store_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<(), QxlError> {
        self.map
            .as_volatile_slice()
            .store::<u32>(value, offset, order)
            .map_err(|_| QxlError::RegionOutOfBounds { offset, len: 4 })
    }
}
