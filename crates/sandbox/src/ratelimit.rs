//! The per-token requests-per-minute limit.
//!
//! A sliding window: a request is allowed when fewer than `limit` requests of the same token were
//! allowed in the 60 seconds before it. Refused requests do not count. This is the strictest
//! reading of "N per minute": no burst of 2N across a minute boundary. (Tests may shorten the
//! window, to see several of its minutes in a few seconds.)

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Requests allowed per token per minute (or per a shorter window).
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    /// For each token (by its position among the grants), when its allowed requests came.
    windows: Mutex<HashMap<usize, VecDeque<Instant>>>,
    /// Instead of the window: a token bucket of this capacity, refilled at `limit` per
    /// `window`.
    bucket: Option<(u32, Levels)>,
}

/// Each token's bucket level and when it was last filled.
type Levels = Mutex<HashMap<usize, (f64, Instant)>>;

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            limit,
            window,
            windows: Mutex::new(HashMap::new()),
            bucket: None,
        }
    }

    /// Counts with a token bucket of `capacity` instead (see [`Config`](super::Config)).
    pub fn with_bucket(mut self, capacity: Option<u32>) -> RateLimiter {
        self.bucket = capacity.map(|capacity| (capacity.max(1), Mutex::new(HashMap::new())));
        self
    }

    /// `40 requests per minute` (or `per 3 s`).
    pub fn describe(&self) -> String {
        if self.window == Duration::from_secs(60) {
            format!("{} requests per minute", self.limit)
        } else {
            format!(
                "{} requests per {} s",
                self.limit,
                self.window.as_secs_f64()
            )
        }
    }

    /// Counts a request of this token now; false when it is over the limit.
    pub fn allow(&self, token: usize) -> bool {
        self.allow_at(token, Instant::now())
    }

    fn allow_at(&self, token: usize, now: Instant) -> bool {
        if let Some((capacity, levels)) = &self.bucket {
            let mut levels = match levels.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            let capacity = f64::from(*capacity);
            let (level, at) = levels.entry(token).or_insert((capacity, now));
            let rate = f64::from(self.limit) / self.window.as_secs_f64();
            *level =
                (*level + now.saturating_duration_since(*at).as_secs_f64() * rate).min(capacity);
            *at = now;
            if *level < 1.0 {
                return false;
            }
            *level -= 1.0;
            return true;
        }
        let mut windows = match self.windows.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let window = windows.entry(token).or_default();
        while window
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= self.window)
        {
            window.pop_front();
        }
        if window.len() >= self.limit as usize {
            return false;
        }
        window.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_after_the_limit_is_refused_until_the_window_slides() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for i in 0..3 {
            assert!(limiter.allow_at(0, start + Duration::from_secs(i)));
        }
        assert!(!limiter.allow_at(0, start + Duration::from_secs(59)));
        assert!(
            limiter.allow_at(1, start + Duration::from_secs(59)),
            "tokens are separate"
        );
        assert!(limiter.allow_at(0, start + Duration::from_secs(60)));
        assert!(!limiter.allow_at(0, start + Duration::from_secs(60)));
    }

    #[test]
    fn a_shorter_window_slides_sooner() {
        let limiter = RateLimiter::new(2, Duration::from_secs(3));
        let start = Instant::now();
        assert!(limiter.allow_at(0, start));
        assert!(limiter.allow_at(0, start + Duration::from_secs(1)));
        assert!(!limiter.allow_at(0, start + Duration::from_millis(2999)));
        assert!(limiter.allow_at(0, start + Duration::from_secs(3)));
        assert_eq!(limiter.describe(), "2 requests per 3 s");
    }

    #[test]
    fn a_bucket_refuses_bursts_beyond_its_capacity() {
        let limiter = RateLimiter::new(60, Duration::from_secs(60)).with_bucket(Some(2));
        let start = Instant::now();
        assert!(limiter.allow_at(0, start));
        assert!(limiter.allow_at(0, start));
        assert!(!limiter.allow_at(0, start));
        assert!(!limiter.allow_at(0, start + Duration::from_millis(999)));
        assert!(limiter.allow_at(0, start + Duration::from_secs(1)));
    }
}
