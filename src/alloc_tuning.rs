//! How the process asks for memory: freed frame-sized buffers kept instead of given back to
//! the kernel, and frame-sized pixel buffers in transparent huge pages.
//!
//! Every encoded image is a fresh buffer of up to a few MiB. glibc serves those with `mmap` and
//! returns them with `munmap`, so each frame paid a page fault per 4 KiB on first touch (seen
//! in the benchmark: office at one raw client 0.102 → 0.085 CPU s/s with freed memory kept).
//! Serving them from the heap and trimming it only past a bound keeps the pages mapped and
//! reused; the bound caps what idle memory the process may hold on to.

use std::mem::MaybeUninit;

/// Allocations up to this size come from the heap (a full-HD frame of 32-bit pixels fits).
const MMAP_THRESHOLD: libc::c_int = 16 * 1024 * 1024;
/// Free heap memory kept before glibc trims it back to the kernel.
const TRIM_THRESHOLD: libc::c_int = 64 * 1024 * 1024;

/// Call once, first thing in `main`, before any thread starts.
pub fn keep_freed_buffers() {
    // SAFETY: mallopt only changes glibc's allocator parameters; it is called before any other
    // thread exists, so no allocation runs concurrently with the change.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Advises `range`, aligned to and a whole number of `page` bytes, as transparent huge
/// pages (`madvise(MADV_HUGEPAGE)`): its pages not touched yet fault in huge where the kernel
/// has THP in `always` or `madvise` mode. A misaligned range is refused; an error means plain
/// pages, as without the advice.
pub fn advise_huge_pages(range: &mut [MaybeUninit<u8>], page: usize) -> std::io::Result<()> {
    let aligned =
        page.is_power_of_two() && (range.as_ptr() as usize) % page == 0 && range.len() % page == 0;
    if !aligned {
        return Err(std::io::ErrorKind::InvalidInput.into());
    }
    if range.is_empty() {
        return Ok(());
    }
    // SAFETY: `range` is memory this process owns (a live mutable borrow), aligned to `page`,
    // a power of two at least the base page size here. MADV_HUGEPAGE changes no byte and
    // unmaps nothing: it only marks the pages as wanted huge, so every reference into them
    // stays valid whatever the call returns.
    let r = unsafe { libc::madvise(range.as_mut_ptr().cast(), range.len(), libc::MADV_HUGEPAGE) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_page_advice_refuses_misaligned_ranges() {
        const PAGE: usize = 2 << 20;
        let mut v: Vec<u8> = Vec::with_capacity(3 * PAGE);
        let spare = v.spare_capacity_mut();
        let start = (spare.as_ptr() as usize).next_multiple_of(PAGE) - spare.as_ptr() as usize;
        let misaligned = spare.get_mut(start + 4096..start + 4096 + PAGE).unwrap();
        assert_eq!(
            advise_huge_pages(misaligned, PAGE).unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
        let short = spare.get_mut(start..start + PAGE - 4096).unwrap();
        assert!(advise_huge_pages(short, PAGE).is_err());
        // An aligned range is passed on: the kernel takes it, or refuses it where THP is off.
        let whole = spare.get_mut(start..start + PAGE).unwrap();
        let _ = advise_huge_pages(whole, PAGE);
    }
}
