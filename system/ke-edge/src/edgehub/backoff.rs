//! Reconnect backoff and the upstream rate limiter, both on tokio time (which turmoil drives).

use std::time::Duration;

use ke_core::Entropy;
use tokio::time::{Instant, sleep};

/// Bounded exponential backoff with "equal jitter": the n-th delay is drawn uniformly from
/// `[d/2, d]` where `d = min(initial × 2^n, max)`. Jitter comes from a seeded stream, so a
/// simulation replays the same delays; it spreads the reconnects of many edges after a cloud
/// restart.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    entropy: Entropy,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration, entropy: Entropy) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
            entropy,
        }
    }

    /// The next delay; grows until the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let factor = 1u32 << self.attempt.min(20);
        let full = self.initial.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = full / 2;
        let span = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if span == 0 {
            0
        } else {
            self.entropy.next_u64() % (span + 1)
        };
        half + Duration::from_nanos(jitter)
    }

    /// Starts over from `initial` (after a session that lasted).
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A token bucket: `burst` tokens, refilled at `qps` per second (KubeEdge's
/// `messageQPS`/`messageBurst`, a `flowcontrol` limiter). `qps == 0` means unlimited.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(qps: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps: f64::from(qps),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.last = now;
    }

    /// Waits until a token is available and takes it.
    pub(crate) async fn take(&mut self) {
        if self.qps <= 0.0 {
            return;
        }
        self.refill(Instant::now());
        if self.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.qps);
            sleep(wait).await;
            self.refill(Instant::now());
        }
        self.tokens = (self.tokens - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ke_core::Seed;

    /// Goal: delays grow, stay within `[d/2, d]`, are capped, and replay with the same seed.
    /// Method: draw eight delays from two backoffs with one seed, then reset one.
    #[test]
    fn backoff_is_bounded_jittered_and_seeded() {
        let mk = || {
            Backoff::new(
                Duration::from_secs(1),
                Duration::from_secs(8),
                Entropy::seeded(Seed(3), "edge/backoff"),
            )
        };
        let (mut a, mut b) = (mk(), mk());
        let da: Vec<Duration> = (0..8).map(|_| a.next_delay()).collect();
        let db: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert_eq!(da, db);
        for (n, d) in da.iter().enumerate() {
            let full = Duration::from_secs(1 << n.min(3));
            assert!(*d >= full / 2 && *d <= full, "delay {n}: {d:?}");
        }
        a.reset();
        assert!(a.next_delay() <= Duration::from_secs(1));
    }

    /// Goal: the bucket allows a burst, then paces at `qps`. Method: paused tokio time; take
    /// burst + 2 tokens and measure the elapsed virtual time.
    #[tokio::test(start_paused = true)]
    async fn token_bucket_paces_after_burst() {
        let mut bucket = TokenBucket::new(10, 3);
        let start = Instant::now();
        for _ in 0..3 {
            bucket.take().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        bucket.take().await;
        bucket.take().await;
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(199) && elapsed <= Duration::from_millis(210));
    }
}
