//! Cache prefetch hints, for a caller that knows which contexts it will protect with next.
//!
//! A shard seals a batch of copies for tens of viewers whose keys were last used a whole frame
//! ago, long evicted by the copies in between: the first copy of each viewer's run would wait on
//! a chain of misses (context, cipher, streams). Asking for all of a batch's lines first lets
//! those misses overlap instead of queueing one behind the other.

/// Octets per cache line on the targets that matter (x86_64, aarch64).
const LINE: usize = 64;

/// Start loading the cache lines `value` occupies. A hint only: no effect on what the program
/// computes, and nothing on targets without a prefetch instruction.
pub(crate) fn prefetch<T: ?Sized>(value: &T) {
    let start = (value as *const T).cast::<u8>();
    let len = std::mem::size_of_val(value);
    for offset in (0..len).step_by(LINE) {
        prefetch_line(start.wrapping_add(offset));
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn prefetch_line(at: *const u8) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: PREFETCHT0 reads nothing the program sees and never faults, whatever the
    // address; `at` lies within a live reference in any case. SSE is in every x86_64 baseline.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast()) }
}

#[cfg(not(target_arch = "x86_64"))]
fn prefetch_line(_at: *const u8) {}
