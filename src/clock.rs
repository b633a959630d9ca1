//! The time the service runs on. Deadlines, retention, rate limits, key epochs and the periodic
//! jobs read it from here, never from the system directly, so that a test can move time
//! forward instead of sleeping through it.
//!
//! In production the clock is the system's. A test builds the application with
//! [`Clock::adjustable`] and calls [`Clock::advance`]: every reader sees the same jump, both on
//! the calendar ([`Clock::now`]) and on the monotonic scale that rate limits measure
//! ([`Clock::elapsed`]). Time never goes backwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};

/// A clock: the system's, plus an offset that only an adjustable clock can grow.
#[derive(Clone, Debug)]
pub struct Clock {
    started: Instant,
    /// Nanoseconds added to the system's time; `None` for the system clock.
    offset: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system's clock.
    pub(crate) fn system() -> Clock {
        Clock {
            started: Instant::now(),
            offset: None,
        }
    }

    /// A clock that starts at the system's time and that [`Clock::advance`] moves forward.
    #[cfg(any(test, feature = "test-support"))]
    pub fn adjustable() -> Clock {
        Clock {
            started: Instant::now(),
            offset: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    fn offset(&self) -> Duration {
        self.offset.as_ref().map_or(Duration::ZERO, |offset| {
            Duration::from_nanos(offset.load(Ordering::Acquire))
        })
    }

    /// Moves an adjustable clock forward by `by`; returns `false` (and changes nothing) on the
    /// system clock.
    #[cfg(any(test, feature = "test-support"))]
    pub fn advance(&self, by: Duration) -> bool {
        let Some(offset) = &self.offset else {
            return false;
        };
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        offset.fetch_add(nanos, Ordering::AcqRel);
        true
    }

    /// The current time.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        match chrono::Duration::from_std(self.offset()) {
            Ok(offset) => now + offset,
            Err(_) => now,
        }
    }

    /// The current time in UTC without its zone, as the database stores it, to microseconds
    /// (what both backends keep).
    pub(crate) fn now_naive(&self) -> NaiveDateTime {
        use chrono::SubsecRound;
        self.now().naive_utc().trunc_subsecs(6)
    }

    /// Time since the clock was made, monotonic (what rate limits measure).
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed() + self.offset()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

/// Rate limiters measure on the same clock.
impl governor::clock::Clock for Clock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.elapsed()
    }
}

impl governor::clock::ReasonablyRealtime for Clock {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_both_scales_and_the_system_clock_does_not_move() {
        let clock = Clock::adjustable();
        let (calendar, monotonic) = (clock.now(), clock.elapsed());
        assert!(clock.advance(Duration::from_secs(3600)));
        assert!(clock.now() - calendar >= chrono::Duration::seconds(3600));
        assert!(clock.elapsed() - monotonic >= Duration::from_secs(3600));
        // Clones share the offset.
        let clone = clock.clone();
        assert!(clock.advance(Duration::from_secs(60)));
        assert!(clone.now() - calendar >= chrono::Duration::seconds(3660));

        let system = Clock::system();
        assert!(!system.advance(Duration::from_secs(3600)));
        assert!(system.now() - Utc::now() < chrono::Duration::seconds(1));
    }
}
