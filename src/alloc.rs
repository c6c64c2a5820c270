//! Allocator tuning for tensor-heavy loops.
//!
//! Each candle op allocates its output. With glibc's defaults, buffers above the mmap threshold
//! come straight from the kernel and go back on free, so every training step page-faults its
//! whole working set in again (zeroing pages, TLB shootdowns across threads): on the 2-core build
//! machine that was ~30 % of a training step. Keeping freed memory in the heap removes it.

/// Ask glibc to serve large buffers from the heap and to keep freed memory for reuse.
/// Returns whether the settings were applied (false on other platforms or allocators).
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // 32 MiB is glibc's maximum mmap threshold on 64-bit; bigger buffers still use mmap.
        // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
        unsafe {
            let a = libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            let b = libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            let c = libc::mallopt(libc::M_TOP_PAD, 256 << 20);
            a == 1 && b == 1 && c == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
