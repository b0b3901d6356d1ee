//! How long the saga waits before trying a failed step again: exponential backoff with jitter.
//!
//! Pure: the random part is an input (`jitter`, any number: the worker passes a random one), so
//! a test can pin every delay. Jitter spreads the retries of many events that failed together
//! (a Moodle outage) so they do not all come back in the same instant.

use std::time::Duration;

/// The backoff of a worker (`SagaConfig::backoff_base` / `backoff_max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first retry delay (doubled per attempt).
    pub base: Duration,
    /// The longest delay, before jitter.
    pub max: Duration,
}

impl Backoff {
    /// The delay before try number `attempt + 1`: base·2^(attempt-1), at most `max`, then
    /// 50–100 % of it chosen by `jitter` (`ms/2 + jitter mod (ms/2 + 1)`). Attempt 0 counts as 1.
    pub fn delay(&self, attempt: u32, jitter: u64) -> Duration {
        // 2^20 already passes any sensible cap; the shift never overflows.
        let exp = attempt.saturating_sub(1).min(20);
        let full = self.base.saturating_mul(1u32 << exp).min(self.max);
        let ms = u64::try_from(full.as_millis()).unwrap_or(u64::MAX);
        let spread = if ms > 1 { jitter % (ms / 2 + 1) } else { 0 };
        Duration::from_millis(ms / 2 + spread)
    }

    /// [`Backoff::delay`] in whole milliseconds, as the work rows store times.
    pub fn delay_ms(&self, attempt: u32, jitter: u64) -> i64 {
        i64::try_from(self.delay(attempt, jitter).as_millis()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(base_ms: u64, max_ms: u64) -> Backoff {
        Backoff {
            base: Duration::from_millis(base_ms),
            max: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn doubles_per_attempt_within_the_jitter_band() {
        // Given a 1 s base and a 300 s cap, when no jitter is drawn, then half the full delay.
        let b = backoff(1_000, 300_000);
        assert_eq!(b.delay(1, 0), Duration::from_millis(500));
        assert_eq!(b.delay(2, 0), Duration::from_millis(1_000));
        assert_eq!(b.delay(3, 0), Duration::from_millis(2_000));
        // When the largest jitter is drawn, then the full delay.
        assert_eq!(b.delay(1, 500), Duration::from_millis(1_000));
        assert_eq!(b.delay(3, 2_000), Duration::from_millis(4_000));
        // Jitter wraps: never past the full delay.
        assert_eq!(b.delay(1, 501), Duration::from_millis(500));
        for j in [0, 1, 7, 499, 500, u64::MAX] {
            let d = b.delay(4, j).as_millis();
            assert!((4_000..=8_000).contains(&d), "{d}");
        }
    }

    #[test]
    fn attempt_zero_counts_as_the_first() {
        let b = backoff(1_000, 300_000);
        assert_eq!(b.delay(0, 123), b.delay(1, 123));
    }

    #[test]
    fn the_cap_holds_for_any_attempt() {
        // Given a 300 s cap, when the attempts pile up (the shift saturates), then at most 300 s.
        let b = backoff(1_000, 300_000);
        assert_eq!(b.delay(10, 0), Duration::from_millis(150_000));
        assert_eq!(b.delay(10, u64::MAX - 1), b.delay(u32::MAX, u64::MAX - 1));
        for attempt in [10, 20, 21, 30, 31, 1_000, u32::MAX] {
            let d = b.delay(attempt, u64::MAX).as_millis();
            assert!((150_000..=300_000).contains(&d), "attempt {attempt}: {d}");
        }
    }

    #[test]
    fn tiny_delays_take_no_jitter() {
        // A 1 ms delay cannot be halved usefully: it stays 0–1 ms whatever the draw.
        assert_eq!(backoff(1, 1).delay(5, 99), Duration::from_millis(0));
        assert_eq!(backoff(0, 10).delay(3, 99), Duration::ZERO);
        assert_eq!(
            backoff(2, 2).delay(1, 99),
            Duration::from_millis(1 + 99 % 2)
        );
    }

    #[test]
    fn milliseconds_for_the_work_rows() {
        let b = backoff(1_000, 300_000);
        assert_eq!(b.delay_ms(2, 0), 1_000);
    }
}
