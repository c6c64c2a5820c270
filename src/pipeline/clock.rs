//! Injectable time: the runtime reads time only through [`Clock`], so replays are deterministic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A monotonic time source in microseconds since an arbitrary origin.
pub trait Clock: Send + Sync {
    /// Microseconds since the clock's origin; never decreases.
    fn now_us(&self) -> u64;
    /// Milliseconds since the clock's origin.
    fn now_ms(&self) -> u64 {
        self.now_us() / 1000
    }
}

/// The real monotonic clock, for binaries; its origin is its creation.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock reading 0 now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_us(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// A clock moved by hand (tests, replays). Setting it backwards is ignored, so it stays monotonic.
#[derive(Debug, Default)]
pub struct ScriptedClock {
    us: AtomicU64,
}

impl ScriptedClock {
    /// A clock reading 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Move to `t_ms` unless the clock is already past it.
    pub fn set_ms(&self, t_ms: u64) {
        self.us
            .fetch_max(t_ms.saturating_mul(1000), Ordering::SeqCst);
    }

    /// Move forward by `d_us`.
    pub fn advance_us(&self, d_us: u64) {
        self.us.fetch_add(d_us, Ordering::SeqCst);
    }
}

impl Clock for ScriptedClock {
    fn now_us(&self) -> u64 {
        self.us.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_clock_is_monotonic() {
        let c = ScriptedClock::new();
        c.set_ms(5);
        c.set_ms(3);
        assert_eq!(c.now_ms(), 5);
        c.advance_us(1500);
        assert_eq!(c.now_us(), 6500);
    }

    #[test]
    fn monotonic_clock_does_not_go_back() {
        let c = MonotonicClock::new();
        let a = c.now_us();
        assert!(c.now_us() >= a);
    }
}
