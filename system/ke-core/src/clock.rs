//! Wall-clock time as a seam. Monotonic time comes from `tokio::time` (which turmoil drives);
//! this trait only gives the calendar time that Kubernetes objects carry.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};
use time::OffsetDateTime;

/// Source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Now, in UTC.
    fn now_utc(&self) -> OffsetDateTime;

    /// Now as RFC 3339 with second precision (`2026-11-22T05:34:00Z`), as Kubernetes writes it.
    fn now_rfc3339(&self) -> String {
        format_rfc3339(self.now_utc())
    }

    /// Now in milliseconds since the Unix epoch (KubeEdge's message timestamp unit).
    fn now_millis(&self) -> i64 {
        let t = self.now_utc();
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// Formats a time as Kubernetes does (`metav1.Time`: RFC 3339, seconds, `Z`).
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The real system clock, for daemons.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(
        clippy::disallowed_methods,
        reason = "the one place the real wall clock is read"
    )]
    fn now_utc(&self) -> OffsetDateTime {
        OffsetDateTime::from(std::time::SystemTime::now())
    }
}

/// A clock that moves only when told to: tests and the simulator.
#[derive(Debug, Clone)]
pub struct FixedClock {
    nanos: Arc<AtomicI64>,
}

impl FixedClock {
    /// A clock standing at `unix_seconds`.
    pub fn new(unix_seconds: i64) -> Self {
        Self {
            nanos: Arc::new(AtomicI64::new(unix_seconds.saturating_mul(1_000_000_000))),
        }
    }

    /// Moves the clock forward by `nanos`.
    pub fn advance_nanos(&self, nanos: i64) {
        self.nanos.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now_utc(&self) -> OffsetDateTime {
        let n = i128::from(self.nanos.load(Ordering::SeqCst));
        OffsetDateTime::from_unix_timestamp_nanos(n).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kubernetes timestamps are RFC 3339 in UTC with second precision.
    #[test]
    fn formats_like_kubernetes() {
        let c = FixedClock::new(1_754_450_000);
        assert_eq!(c.now_rfc3339(), "2025-08-06T03:13:20Z");
        assert_eq!(c.now_millis(), 1_754_450_000_000);
        c.advance_nanos(1_500_000_000);
        assert_eq!(c.now_millis(), 1_754_450_001_500);
    }
}
