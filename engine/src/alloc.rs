//! The server's global allocator: large blocks on transparent huge pages.
//!
//! A GET touches three cache lines in three far-apart places — the hash
//! table's control bytes, its bucket, the record — and on 4 KiB pages each
//! is also a TLB miss: with a million records (144 MB) the translations do
//! not fit any TLB, and in a virtual machine a miss is a nested page walk.
//! Profiling the server showed ~88 % of its time on those three loads.
//!
//! [`HugePageAlloc`] serves every allocation of [`HUGE`] bytes or more —
//! the store's 2 MiB record chunks, its hash table, large buffers — from
//! its own anonymous mapping, 2 MiB-aligned and marked `MADV_HUGEPAGE`, so
//! the kernel backs it with 2 MiB pages where it can (it works whether
//! transparent huge pages are `always` or `madvise`; with `never` it is a
//! plain mapping). Smaller allocations go to the system allocator
//! unchanged. Mappings are zero-filled by the kernel, so zeroed
//! allocations cost nothing extra and touch no page early.
//!
//! Binaries opt in with `#[global_allocator] static A: HugePageAlloc = HugePageAlloc;`.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations of this many bytes or more get their own huge-page mapping.
pub const HUGE: usize = 2 << 20;

/// The allocator (see the module docs).
pub struct HugePageAlloc;

/// Maps `size` bytes aligned to `max(HUGE, align)`; null on failure.
///
/// # Safety
/// `size` must be non-zero.
unsafe fn map(size: usize, align: usize) -> *mut u8 {
    let align = align.max(HUGE);
    let Some(span) = size.checked_add(align) else { return std::ptr::null_mut() };
    // SAFETY: an anonymous private mapping with no address hint.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    let start = (base as usize).next_multiple_of(align);
    let end = start + size.next_multiple_of(4096);
    // Give back what the alignment did not use, before and after.
    // SAFETY: both ranges lie inside the mapping just made.
    unsafe {
        if start > base as usize {
            libc::munmap(base, start - base as usize);
        }
        let map_end = base as usize + span;
        if map_end > end {
            libc::munmap(end as *mut libc::c_void, map_end - end);
        }
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
    start as *mut u8
}

// SAFETY: large blocks come from `map` and go back through `munmap` with the
// same (rounded) length; every other block is System's, both ways. A block's
// size decides its side, and GlobalAlloc guarantees `dealloc` sees the
// layout `alloc` was given.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= HUGE {
            // SAFETY: size is non-zero (≥ HUGE).
            unsafe { map(layout.size(), layout.align()) }
        } else {
            // SAFETY: forwarded as is.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= HUGE {
            // SAFETY: as in `alloc`; fresh anonymous mappings read as zeros.
            unsafe { map(layout.size(), layout.align()) }
        } else {
            // SAFETY: forwarded as is.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= HUGE {
            // SAFETY: `ptr` came from `map` with this size (rounded the same way).
            unsafe {
                libc::munmap(ptr as *mut libc::c_void, layout.size().next_multiple_of(4096));
            }
        } else {
            // SAFETY: forwarded as is.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() < HUGE && new_size < HUGE {
            // SAFETY: both sides are System's.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Crossing or within the large side: allocate, copy, free.
        // SAFETY: the new layout keeps the alignment (valid by contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: new_size is non-zero by GlobalAlloc's contract.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller of the sizes.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_are_aligned_zeroed_and_reusable() {
        let a = HugePageAlloc;
        let layout = Layout::from_size_align(3 * HUGE + 123, 8).expect("layout");
        // SAFETY: a valid non-zero layout; the block is freed with it.
        unsafe {
            let p = a.alloc_zeroed(layout);
            assert!(!p.is_null());
            assert_eq!(p as usize % HUGE, 0);
            assert!((0..layout.size()).step_by(4093).all(|i| *p.add(i) == 0));
            *p.add(layout.size() - 1) = 7;
            let q = a.realloc(p, layout, 5 * HUGE);
            assert_eq!(*q.add(layout.size() - 1), 7);
            a.dealloc(q, Layout::from_size_align(5 * HUGE, 8).expect("layout"));
        }
    }

    #[test]
    fn small_blocks_cross_over() {
        let a = HugePageAlloc;
        let small = Layout::from_size_align(100, 8).expect("layout");
        // SAFETY: valid layouts; each block is freed with its own layout.
        unsafe {
            let p = a.alloc(small);
            *p = 9;
            let q = a.realloc(p, small, HUGE * 2);
            assert_eq!(*q, 9);
            assert_eq!(q as usize % HUGE, 0);
            let r = a.realloc(q, Layout::from_size_align(HUGE * 2, 8).expect("layout"), 64);
            assert_eq!(*r, 9);
            a.dealloc(r, Layout::from_size_align(64, 8).expect("layout"));
        }
    }
}
