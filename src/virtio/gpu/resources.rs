//! 2D resources: host pixel buffers under a memory budget, their guest backing, and transfers.
//!
//! Semantics follow QEMU's `hw/display/virtio-gpu.c` (`virtio_gpu_resource_create_2d`,
//! `_attach_backing`, `_transfer_to_host_2d`). Host pixels are always stored B,G,R,X/A (SPICE's
//! 32-bit layout) with stride `width * 4`; other guest formats are swizzled while copying.
//! Backing is kept as guest-physical extents and translated through the guest memory passed to
//! each call, so a memory-table change never leaves a stale host pointer behind.

use std::collections::HashMap;

use vm_memory::{Bytes, GuestAddress, GuestMemory, Permissions};

use super::error::GpuError;
use super::protocol::{MemEntry, Rect};

/// Bytes per pixel of every format a 2D resource may have.
pub const BYTES_PER_PIXEL: u32 = 4;

/// The default budget for all resources together: QEMU's `max_hostmem` default (256 MiB).
pub const DEFAULT_MAX_HOSTMEM: u64 = 256 * 1024 * 1024;
/// Bytes charged per resource besides its pixels (map slot and bookkeeping, rounded up).
/// QEMU charges pixels only; without this a guest could create millions of 1x1 resources
/// whose bookkeeping the budget never sees.
pub const RESOURCE_OVERHEAD: u64 = 256;
/// Bytes charged per backing entry: the stored entry (16) and its offset (8). A guest may
/// attach 16384 entries to each resource, so they count against the budget too.
pub const BACKING_ENTRY_COST: u64 = 24;

/// A `VIRTIO_GPU_FORMAT_*`, as the byte-order permutation from guest pixel to host B,G,R,A.
/// The names give byte order in memory (`virtio_gpu.h`; QEMU's `virtio_gpu_get_pixman_format`
/// maps B8G8R8X8 to pixman x8r8g8b8 on little-endian hosts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// `host[i] = guest[from[i]]`.
    from: [usize; 4],
}

impl Format {
    const IDENTITY: [usize; 4] = [0, 1, 2, 3];

    pub fn from_virtio(format: u32) -> Option<Self> {
        let from = match format {
            1 | 2 => Self::IDENTITY,  // B8G8R8A8, B8G8R8X8
            3 | 4 => [3, 2, 1, 0],    // A8R8G8B8, X8R8G8B8
            67 | 134 => [2, 1, 0, 3], // R8G8B8A8, R8G8B8X8
            68 | 121 => [1, 2, 3, 0], // X8B8G8R8, A8B8G8R8
            _ => return None,
        };
        Some(Self { from })
    }

    fn swizzle(&self, pixels: &mut [u8]) {
        if self.from == Self::IDENTITY {
            return;
        }
        let [a, b, c, d] = self.from;
        for px in pixels.chunks_exact_mut(4) {
            let g: [u8; 4] = [px[0], px[1], px[2], px[3]];
            px.copy_from_slice(&[g[a], g[b], g[c], g[d]]);
        }
    }
}

/// A resource's guest backing: extents in guest-physical memory, read as one linear buffer.
#[derive(Debug)]
struct Backing {
    entries: Vec<MemEntry>,
    /// `starts[i]` = linear offset of `entries[i]`; ascending.
    starts: Vec<u64>,
    total: u64,
}

impl Backing {
    /// Checks that every extent lies in guest memory now; transfers check again, since the
    /// memory table may change later.
    fn new<M: GuestMemory + ?Sized>(entries: Vec<MemEntry>, mem: &M) -> Result<Self, GpuError> {
        let mut starts = Vec::with_capacity(entries.len());
        let mut total = 0u64;
        for (index, e) in entries.iter().enumerate() {
            let len = usize::try_from(e.length).unwrap_or(usize::MAX);
            if !mem.check_range(GuestAddress(e.addr), len, Permissions::Read) {
                return Err(GpuError::BackingOutsideGuestMemory {
                    index,
                    addr: e.addr,
                    len: e.length,
                });
            }
            starts.push(total);
            // At most MAX_MEM_ENTRIES entries of at most 4 GiB: cannot overflow a u64.
            total += u64::from(e.length);
        }
        Ok(Self {
            entries,
            starts,
            total,
        })
    }

    fn cost(&self) -> u64 {
        self.entries.len() as u64 * BACKING_ENTRY_COST
    }

    /// Fills `dst` from linear backing offset `offset`, across extents.
    fn read<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        offset: u64,
        dst: &mut [u8],
    ) -> Result<(), GpuError> {
        let need = offset.checked_add(dst.len() as u64);
        match need {
            Some(need) if need <= self.total => {}
            _ => {
                return Err(GpuError::BackingTooSmall {
                    need: need.unwrap_or(u64::MAX),
                    have: self.total,
                })
            }
        }
        // The last extent starting at or before `offset` (zero-length extents are skipped).
        let mut index = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let mut pos = offset;
        let mut dst = dst;
        while !dst.is_empty() {
            let (Some(entry), Some(&start)) = (self.entries.get(index), self.starts.get(index))
            else {
                // Unreachable: the total was checked above.
                return Err(GpuError::BackingTooSmall {
                    need: pos,
                    have: self.total,
                });
            };
            let within = pos - start;
            let avail = u64::from(entry.length).saturating_sub(within);
            let n = usize::try_from(avail).unwrap_or(usize::MAX).min(dst.len());
            if n > 0 {
                let (chunk, rest) = dst.split_at_mut(n);
                let addr = entry.addr.wrapping_add(within);
                mem.read_slice(chunk, GuestAddress(addr))
                    .map_err(|_| GpuError::BackingUnreadable { addr })?;
                dst = rest;
                pos += n as u64;
            }
            index += 1;
        }
        Ok(())
    }
}

/// One 2D resource.
#[derive(Debug)]
pub struct Resource {
    pub width: u32,
    pub height: u32,
    format: Format,
    /// B,G,R,X/A, `width * 4` bytes per row.
    pixels: Vec<u8>,
    backing: Option<Backing>,
}

impl Resource {
    pub fn stride(&self) -> usize {
        self.width as usize * BYTES_PER_PIXEL as usize
    }

    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The pixels of `rect` (inside the resource) as (slice from its first pixel, stride).
    pub fn rect_pixels(&self, rect: &Rect) -> Option<&[u8]> {
        if !rect.fits_in(self.width, self.height) || rect.width == 0 || rect.height == 0 {
            return None;
        }
        let stride = self.stride();
        let start = rect.y as usize * stride + rect.x as usize * BYTES_PER_PIXEL as usize;
        let len = (rect.height as usize - 1) * stride + rect.width as usize * 4;
        self.pixels.get(start..start + len)
    }

    /// What this resource counts against the budget.
    fn cost(&self) -> u64 {
        let backing = self.backing.as_ref().map_or(0, Backing::cost);
        self.pixels.len() as u64 + RESOURCE_OVERHEAD + backing
    }

    /// The rect lies inside the resource (else INVALID_PARAMETER, as QEMU).
    pub fn check_rect(&self, rect: &Rect) -> Result<(), GpuError> {
        if rect.fits_in(self.width, self.height) {
            Ok(())
        } else {
            Err(GpuError::RectOutsideResource {
                rect: *rect,
                width: self.width,
                height: self.height,
            })
        }
    }
}

/// All resources of one device, with their total host memory.
#[derive(Debug)]
pub struct Resources {
    map: HashMap<u32, Resource>,
    used: u64,
    budget: u64,
}

impl Resources {
    pub fn new(budget: u64) -> Self {
        Self {
            map: HashMap::new(),
            used: 0,
            budget,
        }
    }

    pub fn get(&self, id: u32) -> Result<&Resource, GpuError> {
        self.map.get(&id).ok_or(GpuError::UnknownResource(id))
    }

    fn get_mut(&mut self, id: u32) -> Result<&mut Resource, GpuError> {
        self.map.get_mut(&id).ok_or(GpuError::UnknownResource(id))
    }

    /// RESOURCE_CREATE_2D.
    pub fn create(
        &mut self,
        id: u32,
        format: u32,
        width: u32,
        height: u32,
    ) -> Result<(), GpuError> {
        if id == 0 {
            return Err(GpuError::ResourceIdZero);
        }
        if self.map.contains_key(&id) {
            return Err(GpuError::ResourceExists(id));
        }
        let format = Format::from_virtio(format).ok_or(GpuError::UnsupportedFormat(format))?;
        if width == 0 || height == 0 {
            return Err(GpuError::EmptyResource { width, height });
        }
        // u32 × u32 × 4 can exceed u64; such a size is over any budget anyway.
        let bytes = u64::from(width)
            .checked_mul(u64::from(height))
            .and_then(|n| n.checked_mul(u64::from(BYTES_PER_PIXEL)))
            .unwrap_or(u64::MAX);
        self.check_budget(bytes.saturating_add(RESOURCE_OVERHEAD))?;
        let need = bytes;
        let len = usize::try_from(need).map_err(|_| GpuError::HostAllocation(need))?;
        let mut pixels = Vec::new();
        pixels
            .try_reserve_exact(len)
            .map_err(|_| GpuError::HostAllocation(need))?;
        pixels.resize(len, 0);
        self.map.insert(
            id,
            Resource {
                width,
                height,
                format,
                pixels,
                backing: None,
            },
        );
        self.used += need + RESOURCE_OVERHEAD;
        Ok(())
    }

    fn check_budget(&self, need: u64) -> Result<(), GpuError> {
        if need > self.budget.saturating_sub(self.used) {
            return Err(GpuError::OverBudget {
                need,
                used: self.used,
                budget: self.budget,
            });
        }
        Ok(())
    }

    /// RESOURCE_UNREF: frees the pixels and the backing (Linux need not detach first).
    pub fn unref(&mut self, id: u32) -> Result<(), GpuError> {
        let res = self.map.remove(&id).ok_or(GpuError::UnknownResource(id))?;
        self.used = self.used.saturating_sub(res.cost());
        Ok(())
    }

    /// RESOURCE_ATTACH_BACKING.
    pub fn attach_backing<M: GuestMemory + ?Sized>(
        &mut self,
        id: u32,
        entries: Vec<MemEntry>,
        mem: &M,
    ) -> Result<(), GpuError> {
        if self.get(id)?.backing.is_some() {
            return Err(GpuError::BackingAlreadyAttached(id));
        }
        let backing = Backing::new(entries, mem)?;
        self.check_budget(backing.cost())?;
        self.used += backing.cost();
        self.get_mut(id)?.backing = Some(backing);
        Ok(())
    }

    /// RESOURCE_DETACH_BACKING.
    pub fn detach_backing(&mut self, id: u32) -> Result<(), GpuError> {
        let backing = self
            .get_mut(id)?
            .backing
            .take()
            .ok_or(GpuError::NoBacking(id))?;
        self.used = self.used.saturating_sub(backing.cost());
        Ok(())
    }

    /// Whether the resource exists and has backing (QEMU's `virtio_gpu_find_check_resource`
    /// with `require_backing`).
    pub fn get_with_backing(&self, id: u32) -> Result<&Resource, GpuError> {
        let res = self.get(id)?;
        match res.backing {
            Some(_) => Ok(res),
            None => Err(GpuError::NoBacking(id)),
        }
    }

    /// TRANSFER_TO_HOST_2D: row `h` of `rect` comes from backing offset `offset + h * stride`
    /// and lands at host `(rect.y + h) * stride + rect.x * 4` (the backing has the resource's
    /// own stride; Linux sends `offset = x * 4 + y * pitch`).
    pub fn transfer_to_host<M: GuestMemory + ?Sized>(
        &mut self,
        id: u32,
        rect: &Rect,
        offset: u64,
        mem: &M,
    ) -> Result<(), GpuError> {
        let res = self.get_mut(id)?;
        let backing = res.backing.as_ref().ok_or(GpuError::NoBacking(id))?;
        res.check_rect(rect)?;
        if rect.width == 0 || rect.height == 0 {
            return Ok(());
        }
        let stride = res.stride();
        let first = rect.y as usize * stride + rect.x as usize * BYTES_PER_PIXEL as usize;
        // Full-width rows are contiguous on both sides: one copy instead of one per row.
        let (rows, row_len) = if rect.width == res.width {
            (1, rect.height as usize * stride)
        } else {
            (
                rect.height as usize,
                rect.width as usize * BYTES_PER_PIXEL as usize,
            )
        };
        for row in 0..rows {
            let src =
                offset
                    .checked_add((row * stride) as u64)
                    .ok_or(GpuError::BackingTooSmall {
                        need: u64::MAX,
                        have: backing.total,
                    })?;
            let start = first + row * stride;
            // In bounds: `check_rect` above.
            let Some(dst) = res.pixels.get_mut(start..start + row_len) else {
                return Err(GpuError::RectOutsideResource {
                    rect: *rect,
                    width: res.width,
                    height: res.height,
                });
            };
            backing.read(mem, src, dst)?;
            res.format.swizzle(dst);
        }
        Ok(())
    }

    /// Drops every resource (device reset).
    pub fn clear(&mut self) {
        self.map.clear();
        self.used = 0;
    }

    /// Host bytes in use by all resources.
    pub fn used(&self) -> u64 {
        self.used
    }
}

#[cfg(test)]
#[path = "resources_tests.rs"]
mod tests;
