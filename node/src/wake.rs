//! Parking an idle worker and waking it only when it sleeps.
//!
//! A worker with nothing to do marks itself parked, looks at its queues once more, and only then
//! blocks in `mio::Poll`. A producer pushes, then wakes the worker only if it is parked: a busy
//! worker costs producers no syscall. The two `SeqCst` fences order "mark parked, then look" on
//! one side against "push, then look at parked" on the other, so a wake-up is never lost.

use std::sync::atomic::{fence, AtomicBool, Ordering};

pub struct Wake {
    parked: AtomicBool,
    waker: mio::Waker,
}

impl Wake {
    pub fn new(waker: mio::Waker) -> Wake {
        Wake {
            parked: AtomicBool::new(false),
            waker,
        }
    }

    /// Called by a producer after it pushed work.
    pub fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) && self.parked.swap(false, Ordering::AcqRel) {
            // A failed wake means the eventfd is full: the worker is already due to wake.
            let _ = self.waker.wake();
        }
    }

    /// Called by the worker before its last look at its queues; `unpark` after it wakes.
    pub fn park(&self) {
        self.parked.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    pub fn unpark(&self) {
        self.parked.store(false, Ordering::Relaxed);
    }

    /// Wake the worker whatever it is doing (shutdown).
    pub fn force(&self) {
        let _ = self.waker.wake();
    }
}
