//! A global-allocator wrapper that makes huge allocations lazy.
//!
//! Why: the kafka-protocol decoders size `Vec`s from array counts read off the wire
//! (`Vec::with_capacity(n)` before reading any element). A hostile frame with a count of
//! 2^31 would ask for hundreds of GiB; the system allocator refuses and Rust aborts the
//! whole process. Our own limits keep every legitimate allocation far below
//! `HUGE_ALLOCATION_BYTES`, so anything at or above it is such a wire count: we back it with
//! an `mmap(MAP_NORESERVE)` mapping, which costs address space only. The decoder then fails
//! on the missing bytes within a few elements and the mapping is unmapped. Memory actually
//! touched stays bounded by the frame size (itself capped by `request_bytes_max`).

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at or above this size are lazy mappings. Above every configured buffer.
pub const HUGE_ALLOCATION_BYTES: usize = 2 << 30;
const PAGE_BYTES: usize = 4096;

pub struct LazyHugeAllocator;

fn is_huge(layout: &Layout) -> bool {
    layout.size() >= HUGE_ALLOCATION_BYTES && layout.align() <= PAGE_BYTES
}

unsafe fn map_huge(size: usize) -> *mut u8 {
    // SAFETY: anonymous private mapping, no fd; the kernel picks the address.
    let address = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if address == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        address as *mut u8
    }
}

// SAFETY: every pointer handed out comes from System or from mmap with the same size
// that `dealloc`/`realloc` later see (a layout's size decides which path owns it).
unsafe impl GlobalAlloc for LazyHugeAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            return unsafe { map_huge(layout.size()) };
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // Anonymous mappings are zero-filled.
            return unsafe { map_huge(layout.size()) };
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            // SAFETY: `ptr` was mapped with exactly this size.
            unsafe { libc::munmap(ptr as *mut libc::c_void, layout.size()) };
            return;
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        if !is_huge(&layout) && !is_huge(&new_layout) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let fresh = unsafe { self.alloc(new_layout) };
        if !fresh.is_null() {
            // SAFETY: both regions are valid for the smaller size and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size)) };
            unsafe { self.dealloc(ptr, layout) };
        }
        fresh
    }
}
