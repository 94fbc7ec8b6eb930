//! The node's one clock: monotonic nanoseconds since start, as the engine's `Nanos`. Only the I/O
//! layer reads it; the engine is handed `now`.

use std::time::Instant;

use corecast_engine::Nanos;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    pub fn now(&self) -> Nanos {
        Nanos(self.origin.elapsed().as_nanos() as u64)
    }
}
