//! The allocator's free memory back to the kernel: not a socket call, but this crate holds the
//! project's `unsafe` calls into libc, so it is here.

/// Give the allocator's free pages back to the kernel (glibc's `malloc_trim`): memory freed
/// after a burst (a thousand DTLS handshakes) otherwise stays in the process's RSS for good.
/// Walks the allocator's free lists, so call it after a burst, not per allocation. A no-op
/// where the C library is not glibc.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only walks the allocator's own lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
