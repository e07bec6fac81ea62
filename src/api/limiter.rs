//! The client-side rate limiter: a token bucket at a share of the instance's requests per
//! minute, so that the instance's 429s are rare instead of being the flow control.
//!
//! It is kept as a theoretical arrival time (the GCRA form of a token bucket): each call
//! reserves the next slot, `interval` after the previous one, and may go as early as `burst`
//! slots ahead of it. A reservation is never given back, so concurrent callers are served in
//! the order they asked, and a call that is retried reserves a new slot like any other.
//!
//! The bound it keeps: in any minute, at most `burst + share × limit` calls leave. The burst is
//! half of what the share leaves unused (`(1 − share) × limit / 2`), so even an instance that
//! counts calls over a sliding minute (the strictest reading, which the sandbox takes) never
//! sees more than its limit, with room to spare for calls that arrive late or early.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Requests per minute and the share of them charter uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// The instance's limit, requests per minute (the license's `apiLimit`).
    pub per_minute: u32,
    /// The share of it charter uses, in `(0, 1]`.
    pub share: f64,
}

impl RateLimit {
    /// The time between two calls at the share in force.
    pub fn interval(&self) -> Duration {
        let rate = f64::from(self.per_minute.max(1)) * self.share() / 60.0;
        Duration::from_secs_f64(1.0 / rate)
    }

    /// How many calls may leave at once after a quiet minute (at least one).
    pub fn burst(&self) -> u32 {
        let spare = f64::from(self.per_minute) * (1.0 - self.share()) / 2.0;
        // A float of at most half a `u32` converts without loss of meaning.
        (spare.floor() as u32).max(1)
    }

    fn share(&self) -> f64 {
        if self.share.is_finite() && self.share > 0.0 {
            self.share.min(1.0)
        } else {
            1.0
        }
    }
}

/// A token bucket shared by every call of one apply; [`Limiter::off`] lets everything through.
#[derive(Debug)]
pub struct Limiter {
    inner: Option<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    interval: Duration,
    /// How far ahead of the theoretical arrival time a call may go: `burst − 1` intervals.
    tolerance: Duration,
    /// When the next call would be due if calls left exactly one interval apart.
    next: Mutex<Instant>,
}

impl Limiter {
    /// A limiter at `limit`, full (its burst available at once).
    pub fn new(limit: RateLimit) -> Limiter {
        let interval = limit.interval();
        let tolerance = interval.saturating_mul(limit.burst().saturating_sub(1));
        Limiter {
            inner: Some(Bucket {
                interval,
                tolerance,
                next: Mutex::new(Instant::now()),
            }),
        }
    }

    /// No limit.
    pub fn off() -> Limiter {
        Limiter { inner: None }
    }

    /// A limiter for an optional limit.
    pub fn from_option(limit: Option<RateLimit>) -> Limiter {
        limit.map_or_else(Limiter::off, Limiter::new)
    }

    /// Whether it limits anything.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// Waits until a call may leave, and counts it.
    pub async fn acquire(&self) {
        let Some(bucket) = &self.inner else {
            return;
        };
        let now = Instant::now();
        let allowed = {
            let mut next = lock(&bucket.next);
            let due = (*next).max(now);
            *next = due + bucket.interval;
            due.checked_sub(bucket.tolerance).unwrap_or(now)
        };
        if allowed > now {
            tokio::time::sleep_until(allowed).await;
        }
    }

    /// Counts `calls` made with the same token outside the limiter (such as the reads of the
    /// observation just before): later calls wait as if these had gone through it.
    pub fn spend(&self, calls: u64) {
        let Some(bucket) = &self.inner else {
            return;
        };
        let now = Instant::now();
        let mut next = lock(&bucket.next);
        let calls = u32::try_from(calls).unwrap_or(u32::MAX);
        *next = (*next).max(now) + bucket.interval.saturating_mul(calls);
    }

    /// The instance said 429: whatever burst was left is gone, so the calls after this one go
    /// at the steady rate.
    pub fn rate_limited(&self) {
        let Some(bucket) = &self.inner else {
            return;
        };
        let now = Instant::now();
        let mut next = lock(&bucket.next);
        *next = (*next).max(now + bucket.tolerance);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_is_half_of_what_the_share_leaves() {
        let limit = RateLimit {
            per_minute: 600,
            share: 0.95,
        };
        assert_eq!(limit.burst(), 15);
        assert_eq!(limit.interval(), Duration::from_secs_f64(60.0 / 570.0));
        let tiny = RateLimit {
            per_minute: 10,
            share: 0.95,
        };
        assert_eq!(tiny.burst(), 1);
        let odd = RateLimit {
            per_minute: 60,
            share: f64::NAN,
        };
        assert_eq!(odd.interval(), Duration::from_secs(1));
    }

    /// In any minute, no more than the burst and the share of the limit leave: never more than
    /// the limit, even counted over a sliding minute.
    #[tokio::test(start_paused = true)]
    async fn no_minute_sees_more_than_the_limit() {
        let limit = RateLimit {
            per_minute: 120,
            share: 0.95,
        };
        let limiter = Limiter::new(limit);
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..400 {
            limiter.acquire().await;
            sent.push(Instant::now() - start);
        }
        for (i, first) in sent.iter().enumerate() {
            let within = sent[i..]
                .iter()
                .take_while(|t| **t < *first + Duration::from_secs(60))
                .count();
            assert!(within <= 117, "{within} calls in the minute from {first:?}");
        }
        // And the steady rate is the share: 400 calls, 3 at once, then 114 a minute.
        let last = sent.last().copied().unwrap_or_default();
        let expected = limit.interval().saturating_mul(400 - limit.burst());
        assert!(
            last.abs_diff(expected) < Duration::from_millis(10),
            "{last:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn calls_made_outside_are_waited_for() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 60,
            share: 1.0,
        });
        let start = Instant::now();
        limiter.spend(5);
        limiter.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_empties_the_burst() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 600,
            share: 0.9,
        });
        let start = Instant::now();
        limiter.rate_limited();
        limiter.acquire().await;
        limiter.acquire().await;
        assert!(Instant::now() - start >= Duration::from_millis(100));
    }
}
