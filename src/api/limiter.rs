//! The client-side rate limiter: a token bucket at a share of the instance's requests per
//! minute, so that the instance's 429s are rare instead of being the flow control. One limiter
//! is shared (it is a handle: clones are the same bucket) by every call of one command — the
//! reads of the observation and the apply that follows — so that they spend one minute's budget
//! together, as the instance counts it.
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
//!
//! # A 429 all the same
//!
//! A 429 means that the instance's minute is full although the bucket kept under the limit as
//! charter knows it: another client spends the same budget, or the limit is lower than
//! configured — or none is configured ([`Limiter::adaptive`]). The limiter then
//!
//! - takes the calls the instance accepted in the minute before (those it let out, less the
//!   429s) as the limit in force: never above a configured limit, nor below half of it; without
//!   a configured limit, at least [`ADAPTIVE_FLOOR`] — a smaller estimate says more about
//!   someone else's calls than about the limit;
//! - holds every call back until the oldest call of that minute is a minute (and one interval)
//!   old: before then, an instance that counts over a sliding minute refuses them all;
//! - goes at its share of the new limit, with the burst that limit gives, and gets a tenth of
//!   the configured limit (without one: of the highest estimate) back for each minute without a
//!   429.
//!
//! The minute is the instance's counting window: 60 s for Make. [`Limiter::with_window`]
//! shortens it, with the sandbox's, for tests that cannot wait a real minute.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Make counts calls per minute.
pub const MINUTE: Duration = Duration::from_secs(60);

/// Without a configured limit, the lowest limit a 429 makes the limiter assume, per minute:
/// Make's smallest plan allows 60.
pub const ADAPTIVE_FLOOR: f64 = 60.0;

/// At most this many sent calls are remembered (far above any `apiLimit`): the limiter's memory
/// stays bounded at any rate.
const REMEMBERED: usize = 100_000;

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
        interval(f64::from(self.per_minute.max(1)), self.share(), MINUTE)
    }

    /// How many calls may leave at once after a quiet minute (at least one).
    pub fn burst(&self) -> u32 {
        burst(f64::from(self.per_minute), self.share())
    }

    fn share(&self) -> f64 {
        valid_share(self.share)
    }
}

fn valid_share(share: f64) -> f64 {
    if share.is_finite() && share > 0.0 {
        share.min(1.0)
    } else {
        1.0
    }
}

/// The time between two calls at `share` of `limit` calls per `minute`.
fn interval(limit: f64, share: f64, minute: Duration) -> Duration {
    let rate = limit.max(f64::MIN_POSITIVE) * share / minute.as_secs_f64().max(1e-3);
    Duration::try_from_secs_f64(1.0 / rate).unwrap_or(minute)
}

fn burst(limit: f64, share: f64) -> u32 {
    let spare = limit * (1.0 - share) / 2.0;
    // A float of at most half a `u32` converts without loss of meaning; larger ones saturate.
    (spare.floor() as u32).max(1)
}

/// A token bucket shared by every call of a command (clones are the same bucket);
/// [`Limiter::off`] lets everything through.
#[derive(Clone, Debug)]
pub struct Limiter {
    inner: Option<Arc<Mutex<Bucket>>>,
}

#[derive(Debug)]
struct Bucket {
    /// The instance's counting window.
    minute: Duration,
    share: f64,
    /// The configured limit per minute; `None` for an adaptive limiter.
    configured: Option<f64>,
    /// The most the limit in force may come back to: the configured limit, or the highest
    /// estimate of an adaptive one (`None` before its first 429).
    ceiling: Option<f64>,
    /// The limit in force, per minute; `None` while nothing limits (an adaptive limiter before
    /// its first 429).
    limit: Option<f64>,
    interval: Duration,
    /// How far ahead of the theoretical arrival time a call may go: `burst − 1` intervals.
    tolerance: Duration,
    /// When the next call would be due if calls left exactly one interval apart.
    next: Instant,
    /// When the calls of the last minute left.
    sent: VecDeque<Instant>,
    /// When the 429s of the last minute came.
    refused: VecDeque<Instant>,
    /// When the limit last changed (a 429, or a step back up).
    changed: Instant,
    /// Calls let out, ever.
    calls: u64,
}

impl Bucket {
    fn new(configured: Option<f64>, share: f64) -> Bucket {
        let now = Instant::now();
        let mut bucket = Bucket {
            minute: MINUTE,
            share: valid_share(share),
            configured,
            ceiling: configured,
            limit: configured,
            interval: Duration::ZERO,
            tolerance: Duration::ZERO,
            next: now,
            sent: VecDeque::new(),
            refused: VecDeque::new(),
            changed: now,
            calls: 0,
        };
        bucket.pace();
        bucket
    }

    /// Interval and tolerance from the limit in force.
    fn pace(&mut self) {
        match self.limit {
            Some(limit) => {
                self.interval = interval(limit, self.share, self.minute);
                self.tolerance = self
                    .interval
                    .saturating_mul(burst(limit, self.share).saturating_sub(1));
            }
            None => {
                self.interval = Duration::ZERO;
                self.tolerance = Duration::ZERO;
            }
        }
    }

    /// Forgets what is older than a minute.
    fn forget(&mut self, now: Instant) {
        for times in [&mut self.sent, &mut self.refused] {
            while times
                .front()
                .is_some_and(|&at| now.saturating_duration_since(at) >= self.minute)
            {
                times.pop_front();
            }
        }
    }

    fn remember(&mut self, at: Instant, calls: u64) {
        self.calls = self.calls.saturating_add(calls);
        let calls = usize::try_from(calls).unwrap_or(usize::MAX).min(REMEMBERED);
        for _ in 0..calls {
            if self.sent.len() >= REMEMBERED {
                self.sent.pop_front();
            }
            self.sent.push_back(at);
        }
    }

    /// A minute without a 429 gives back a tenth of the ceiling.
    fn recover(&mut self, now: Instant) {
        let (Some(limit), Some(ceiling)) = (self.limit, self.ceiling) else {
            return;
        };
        if limit >= ceiling || now.saturating_duration_since(self.changed) < self.minute {
            return;
        }
        self.limit = Some((limit + ceiling / 10.0).min(ceiling));
        self.changed = now;
        self.pace();
    }

    fn rate_limited(&mut self, now: Instant) {
        self.forget(now);
        self.refused.push_back(now);
        // What the instance accepted in the last minute, as far as this limiter saw.
        let accepted = self.sent.len().saturating_sub(self.refused.len()) as f64;
        let floor = match self.configured {
            Some(configured) => (configured / 2.0).max(1.0).min(configured),
            None => ADAPTIVE_FLOOR,
        };
        let estimate = accepted
            .max(floor)
            .min(self.configured.unwrap_or(f64::INFINITY));
        if self.configured.is_none() {
            self.ceiling = Some(self.ceiling.map_or(estimate, |c| c.max(estimate)));
        }
        let limit = self.limit.map_or(estimate, |l| l.min(estimate));
        self.limit = Some(limit);
        self.changed = now;
        self.pace();
        // No burst left.
        self.next = self.next.max(now + self.tolerance);
        // When these calls are what filled the instance's minute, nothing goes before the oldest
        // of them is a minute old: a sliding window refuses every call until then. (Fewer calls
        // than the floor did not fill it: someone else's did, and the instance may take calls
        // again at any moment.)
        if accepted >= floor {
            let oldest = self.sent.front().copied().unwrap_or(now);
            let free = oldest + self.minute + self.interval;
            self.next = self.next.max(free + self.tolerance);
            // The minute that may give some of the limit back starts when calls go again.
            self.changed = self.changed.max(free);
        }
    }
}

impl Limiter {
    /// A limiter at `limit`, full (its burst available at once).
    pub fn new(limit: RateLimit) -> Limiter {
        Limiter::with_bucket(Bucket::new(
            Some(f64::from(limit.per_minute.max(1))),
            limit.share,
        ))
    }

    /// A limiter for an instance whose limit is not known: it lets everything through until
    /// the first 429, then goes at `share` of the limit it estimates (see the module
    /// documentation).
    pub fn adaptive(share: f64) -> Limiter {
        Limiter::with_bucket(Bucket::new(None, share))
    }

    /// No limit, and 429s change nothing.
    pub fn off() -> Limiter {
        Limiter { inner: None }
    }

    /// A limiter for an optional limit ([`Limiter::off`] without one).
    pub fn from_option(limit: Option<RateLimit>) -> Limiter {
        limit.map_or_else(Limiter::off, Limiter::new)
    }

    fn with_bucket(bucket: Bucket) -> Limiter {
        Limiter {
            inner: Some(Arc::new(Mutex::new(bucket))),
        }
    }

    /// The same limiter counting over `window` instead of a minute (its limit then means calls
    /// per `window`): for tests, against a sandbox whose window is as short.
    pub fn with_window(self, window: Duration) -> Limiter {
        if let Some(bucket) = &self.inner {
            let mut bucket = lock(bucket);
            bucket.minute = window.max(Duration::from_millis(1));
            bucket.pace();
        }
        self
    }

    /// Whether it limits anything (an adaptive one may, once it met a 429).
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// The limit in force, calls per minute: the configured one, or what the 429s taught;
    /// `None` when nothing limits.
    pub fn limit(&self) -> Option<f64> {
        self.inner.as_ref().and_then(|bucket| lock(bucket).limit)
    }

    /// How many calls it let out (spent ones included).
    pub fn calls(&self) -> u64 {
        self.inner.as_ref().map_or(0, |bucket| lock(bucket).calls)
    }

    /// Waits until a call may leave, and counts it.
    pub async fn acquire(&self) {
        let Some(bucket) = &self.inner else {
            return;
        };
        let now = Instant::now();
        let allowed = {
            let mut bucket = lock(bucket);
            bucket.forget(now);
            bucket.recover(now);
            let allowed = if bucket.limit.is_some() {
                let due = bucket.next.max(now);
                bucket.next = due + bucket.interval;
                due.checked_sub(bucket.tolerance).unwrap_or(now).max(now)
            } else {
                now
            };
            bucket.remember(allowed, 1);
            allowed
        };
        if allowed > now {
            tokio::time::sleep_until(allowed).await;
        }
    }

    /// Counts `calls` made with the same token outside the limiter (such as the reads of an
    /// observation through another client): later calls wait as if these had gone through it.
    pub fn spend(&self, calls: u64) {
        let Some(bucket) = &self.inner else {
            return;
        };
        let now = Instant::now();
        let mut bucket = lock(bucket);
        bucket.forget(now);
        bucket.remember(now, calls);
        if bucket.limit.is_some() {
            let calls = u32::try_from(calls).unwrap_or(u32::MAX);
            bucket.next = bucket.next.max(now) + bucket.interval.saturating_mul(calls);
        }
    }

    /// The instance said 429: the limiter slows to what the instance accepted in the last
    /// minute and holds every call back until that minute has passed (see the module
    /// documentation).
    pub fn rate_limited(&self) {
        let Some(bucket) = &self.inner else {
            return;
        };
        lock(bucket).rate_limited(Instant::now());
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

    /// The times at which `n` calls leave, from the first.
    async fn send(limiter: &Limiter, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..n {
            limiter.acquire().await;
            sent.push(Instant::now() - start);
        }
        sent
    }

    /// The most calls in any `window` starting at a call.
    fn busiest(sent: &[Duration], window: Duration) -> usize {
        (0..sent.len())
            .map(|i| {
                sent[i..]
                    .iter()
                    .take_while(|t| **t < sent[i] + window)
                    .count()
            })
            .max()
            .unwrap_or(0)
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
        let sent = send(&limiter, 400).await;
        assert!(busiest(&sent, MINUTE) <= 117, "{}", busiest(&sent, MINUTE));
        // And the steady rate is the share: 400 calls, 3 at once, then 114 a minute.
        let last = sent.last().copied().unwrap_or_default();
        let expected = limit.interval().saturating_mul(400 - limit.burst());
        assert!(
            last.abs_diff(expected) < Duration::from_millis(10),
            "{last:?}"
        );
        assert_eq!(limiter.calls(), 400);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_window_scales_the_bound() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 120,
            share: 0.95,
        })
        .with_window(Duration::from_secs(3));
        let sent = send(&limiter, 400).await;
        assert!(busiest(&sent, Duration::from_secs(3)) <= 117);
        let last = sent.last().copied().unwrap_or_default();
        assert!(
            last.abs_diff(Duration::from_secs_f64(3.0 * 397.0 / 114.0)) < Duration::from_millis(5),
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
    async fn clones_share_one_bucket() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 60,
            share: 1.0,
        });
        let other = limiter.clone();
        let start = Instant::now();
        limiter.acquire().await;
        other.acquire().await;
        limiter.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
        assert_eq!(other.calls(), 3);
    }

    /// Another client took half of a 600-a-minute limit: the 429 comes after about 300 calls
    /// of the minute. The limiter waits until the first of them is a minute old, then goes at
    /// its share of the 300 that got through.
    #[tokio::test(start_paused = true)]
    async fn a_429_slows_to_what_the_instance_accepted_and_waits_out_the_minute() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 600,
            share: 0.9,
        });
        let origin = Instant::now();
        send(&limiter, 301).await;
        assert!(
            origin.elapsed() < Duration::from_secs(31),
            "{:?}",
            origin.elapsed()
        );
        limiter.rate_limited();
        let limit = limiter.limit().unwrap_or_default();
        assert!((limit - 300.0).abs() < 1e-9, "{limit}");
        limiter.acquire().await;
        let steady = Duration::from_secs_f64(60.0 / 270.0);
        assert!(
            origin.elapsed().abs_diff(MINUTE + steady) < Duration::from_millis(5),
            "{:?}",
            origin.elapsed()
        );
        // Then 270 a minute (90 % of 300), without a burst.
        let sent = send(&limiter, 250).await;
        let span = sent[249];
        assert!(
            span.abs_diff(steady.saturating_mul(250)) < Duration::from_millis(5),
            "{span:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_never_takes_a_configured_limit_below_half() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 100,
            share: 0.95,
        });
        limiter.acquire().await;
        limiter.rate_limited();
        assert_eq!(limiter.limit(), Some(50.0));
    }

    #[tokio::test(start_paused = true)]
    async fn each_minute_without_a_429_gives_back_a_tenth() {
        let limiter = Limiter::new(RateLimit {
            per_minute: 100,
            share: 0.95,
        });
        limiter.rate_limited();
        assert_eq!(limiter.limit(), Some(50.0));
        for expected in [60.0, 70.0, 80.0, 90.0, 100.0, 100.0] {
            tokio::time::sleep(MINUTE * 2).await;
            limiter.acquire().await;
            let limit = limiter.limit().unwrap_or_default();
            assert!((limit - expected).abs() < 1e-9, "{limit} ≠ {expected}");
        }
    }

    /// Without a configured limit, calls go at once until the first 429; then the instance's
    /// minute is waited out and the limit taken as what went through.
    #[tokio::test(start_paused = true)]
    async fn an_adaptive_limiter_learns_the_limit_from_the_first_429() {
        let limiter = Limiter::adaptive(0.95);
        let start = Instant::now();
        send(&limiter, 120).await;
        assert_eq!(Instant::now(), start, "nothing waits before a 429");
        assert_eq!(limiter.limit(), None);
        limiter.rate_limited();
        assert_eq!(limiter.limit(), Some(119.0));
        let sent = send(&limiter, 200).await;
        assert!(start.elapsed() >= MINUTE, "{:?}", start.elapsed());
        assert!(busiest(&sent, MINUTE) <= 119, "{}", busiest(&sent, MINUTE));
        // A 429 after a handful of calls says little about the limit: at least 60 a minute,
        // and no wait for a minute these calls did not fill.
        let early = Limiter::adaptive(0.95);
        early.acquire().await;
        early.rate_limited();
        assert_eq!(early.limit(), Some(ADAPTIVE_FLOOR));
        let before = Instant::now();
        send(&early, 3).await;
        let expected = Duration::from_secs_f64(60.0 / 57.0).saturating_mul(2);
        assert!(before.elapsed().abs_diff(expected) < Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_off_limiter_ignores_429s() {
        let limiter = Limiter::off();
        limiter.rate_limited();
        let start = Instant::now();
        send(&limiter, 1000).await;
        assert_eq!(Instant::now(), start);
        assert_eq!(limiter.limit(), None);
        assert!(!limiter.is_on());
    }
}
