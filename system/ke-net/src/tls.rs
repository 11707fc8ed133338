//! Certificate validity judged by the [`Clock`] seam instead of the host clock: a rustls
//! [`TimeProvider`] ([`ClockTime`]) and the conversion it rests on ([`unix_time`]). Shared by
//! cloudcore's certificate server and CloudHub (ke-cloud) and edgecore's certificate bootstrap
//! (ke-edge), so that under the simulator every TLS handshake sees simulated time.

use ke_core::Clock;
use rustls::{pki_types::UnixTime, time_provider::TimeProvider};
use std::{sync::Arc, time::Duration};

/// `clock`'s time as rustls wants it (times before 1970 clamp to the epoch).
pub fn unix_time(clock: &dyn Clock) -> UnixTime {
    let secs = u64::try_from(clock.now_utc().unix_timestamp()).unwrap_or(0);
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

/// A rustls time source backed by a [`Clock`].
#[derive(Clone)]
pub struct ClockTime(pub Arc<dyn Clock>);

impl std::fmt::Debug for ClockTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClockTime")
    }
}

impl TimeProvider for ClockTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(unix_time(&*self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ke_core::FixedClock;

    /// Goal: rustls sees the seam's time, whole seconds, and pre-1970 clamps to the epoch.
    /// Method: a fixed clock moved by hand, read through `ClockTime`.
    #[test]
    fn follows_the_clock_and_clamps_before_1970() {
        let clock = FixedClock::new(1_754_450_000);
        let time = ClockTime(Arc::new(clock.clone()));
        let at = |secs| Some(UnixTime::since_unix_epoch(Duration::from_secs(secs)));
        assert_eq!(time.current_time(), at(1_754_450_000));
        clock.advance_nanos(1_500_000_000);
        assert_eq!(time.current_time(), at(1_754_450_001));
        let before = ClockTime(Arc::new(FixedClock::new(-10)));
        assert_eq!(before.current_time(), at(0));
    }
}
