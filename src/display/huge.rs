//! Surface-sized pixel buffers in transparent huge pages where the kernel allows it.
//!
//! The worker compares and copies whole rows of a surface for every draw (`delta`, `surface`):
//! a 1920 × 1080 surface is 8 MiB, 2,025 pages of 4 KiB, more than the TLB holds, so each pass
//! over it walks page tables again. Measured on the benchmark machine (a PVM guest, where page
//! walks cost more than on bare metal), with the primary in 2 MiB pages: the scroll search of
//! the office editor's 944 × 976 redraw 772/740 -> 683/614 µs, of the fullscreen workload's
//! 1280 × 800 one 366/320 -> 305/271 µs. THP runs in `madvise` mode by default, so the buffer
//! asks for it; where THP is off the advice fails and nothing else changes.

use std::ops::{Deref, DerefMut};

/// The huge page size of x86-64 (and of aarch64 with 4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// Zero-filled bytes whose whole huge pages are advised as such.
pub(crate) struct PixelBuf {
    /// The bytes from `start`, after a lead-in that aligns them to a huge page.
    buf: Vec<u8>,
    start: usize,
}

impl PixelBuf {
    /// `len` zero bytes. Below one huge page, a plain vector.
    pub(crate) fn zeroed(len: usize) -> Self {
        if len < HUGE_PAGE {
            return Self {
                buf: vec![0; len],
                start: 0,
            };
        }
        // Aligned bytes make every 2 MiB of them one page; the lead-in costs less than one.
        let mut buf = Vec::with_capacity(len.saturating_add(HUGE_PAGE));
        let base = buf.as_ptr() as usize;
        let start = base.next_multiple_of(HUGE_PAGE) - base;
        let whole_pages = start..start + (len - len % HUGE_PAGE);
        if let Some(range) = buf.spare_capacity_mut().get_mut(whole_pages) {
            if let Err(error) = crate::alloc_tuning::advise_huge_pages(range, HUGE_PAGE) {
                tracing::trace!(%error, "madvise(MADV_HUGEPAGE): plain pages");
            }
        }
        // The first touch comes after the advice: pages not mapped before fault in huge.
        buf.resize(start + len, 0);
        Self { buf, start }
    }

    /// Bytes a buffer of `len` holds, lead-in included (what memory limits must count).
    pub(crate) const fn footprint_of(len: usize) -> usize {
        if len < HUGE_PAGE {
            len
        } else {
            len.saturating_add(HUGE_PAGE)
        }
    }
}

impl Deref for PixelBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }
}

impl DerefMut for PixelBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.start..).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_of_any_size_are_zero_and_as_long_as_asked() {
        for len in [
            0,
            1,
            4096,
            HUGE_PAGE - 1,
            HUGE_PAGE,
            HUGE_PAGE + 3,
            3 * HUGE_PAGE + 5,
        ] {
            let mut b = PixelBuf::zeroed(len);
            assert_eq!(b.len(), len);
            assert!(b.buf.capacity() <= PixelBuf::footprint_of(len));
            assert!(b.iter().all(|&v| v == 0));
            if let Some(last) = b.last_mut() {
                *last = 7;
            }
            let sum: usize = b.iter().map(|&v| usize::from(v)).sum();
            assert_eq!(sum, if len > 0 { 7 } else { 0 });
        }
    }

    #[test]
    fn large_buffers_start_on_a_huge_page() {
        let b = PixelBuf::zeroed(3 * HUGE_PAGE);
        assert_eq!(b.as_ptr() as usize % HUGE_PAGE, 0);
    }
}
