//! The clock the saga's claims and leases are measured by.
//!
//! Leases and retry times are milliseconds since the Unix epoch stored in `saga_work`. The
//! functions of [`crate::db`] that compare them take `now` as an argument instead of reading the
//! wall clock, and the worker reads `now` from the [`Clock`] of its
//! [`SagaConfig`](crate::SagaConfig): the system clock in production, a [`ManualClock`] in tests,
//! so a test sees a lease expire by moving the clock, not by sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Milliseconds since the Unix epoch, by the wall clock.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Where the saga reads the time from. Cheap to clone; clones of a manual clock share its time.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The wall clock ([`now_ms`]).
    #[default]
    System,
    /// A clock that moves only when told to.
    Manual(ManualClock),
}

impl Clock {
    /// Milliseconds since the Unix epoch by this clock.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => now_ms(),
            Clock::Manual(m) => m.now_ms(),
        }
    }
}

/// A clock for tests: it stands still until [`advance`](ManualClock::advance)d or
/// [`set`](ManualClock::set). Clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `start_ms` (milliseconds since the Unix epoch).
    pub fn starting_at(start_ms: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(start_ms)))
    }

    /// A clock showing the wall clock's time now, standing still from there.
    pub fn starting_now() -> ManualClock {
        ManualClock::starting_at(now_ms())
    }

    pub fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Moves the clock forward by `by` (saturating at `i64::MAX` milliseconds).
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(by))
            });
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// The [`Clock`] reading this manual clock (for [`SagaConfig::clock`](crate::SagaConfig)).
    pub fn clock(&self) -> Clock {
        Clock::Manual(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let hand = ManualClock::starting_at(1_000);
        let clock = hand.clock();
        assert_eq!(clock.now_ms(), 1_000);
        hand.advance(Duration::from_millis(250));
        assert_eq!(clock.now_ms(), 1_250);
        hand.set(5);
        assert_eq!(clock.clone().now_ms(), 5);
        hand.set(i64::MAX - 1);
        hand.advance(Duration::from_secs(10));
        assert_eq!(clock.now_ms(), i64::MAX);
    }

    #[test]
    fn the_system_clock_is_the_wall_clock() {
        let before = now_ms();
        let t = Clock::default().now_ms();
        assert!(t >= before && t <= now_ms(), "{before} {t}");
    }
}
