//! The node's clock: unix milliseconds. The pure cores never read it; the actor passes `now`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time source, optionally offset (testbeds simulate skewed clocks with it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// Added to the system time (ms).
    pub offset_ms: i64,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock { offset_ms: 0 }
    }

    /// Now, in unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        (ms + self.offset_ms).max(0) as u64
    }
}
